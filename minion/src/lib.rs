//! meshlift minion: the node agent (sans-IO core), slots and boot environment, downloader,
//! flasher, post-boot checks and hooks.

pub mod download;
