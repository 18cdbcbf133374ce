//! SQLite store and journal: placeholder.
