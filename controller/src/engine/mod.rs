//! Upgrade engine (sans-IO): placeholder.
