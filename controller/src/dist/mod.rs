//! Image store, BitTorrent seeder, tracker, HTTP serving: placeholder.
