//! Image downloader (BitTorrent first, HTTP fallback): placeholder.
