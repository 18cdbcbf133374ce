//! Crash-safe replacement of small state files (boot environment, upgrade state).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `bytes` so that after a power cut the file holds either the old or the new
/// content, never a mix: write a temp file next to it, fsync it, rename over the target, fsync the
/// directory (without the last step the rename itself may be lost).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = temp_path(path);
    {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// The temp file [`write_atomically`] uses; readers ignore it (a leftover is a write that never
/// completed).
pub fn temp_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// The on-node state format this build writes and understands (boot environment, upgrade state,
/// slot metadata). A newer minion adds fields without changing it: older minions keep unknown
/// fields (see [`Extra`]) and write them back. It is raised only when a file would mean something
/// else to an older reader (a field that changes the meaning of an old one), and an older reader
/// then refuses the file instead of acting on a misreading.
pub const STATE_FORMAT: u32 = 1;

/// Fields this build does not know, kept so that a file written by a newer minion survives being
/// rewritten by an older one (after a fallback the older image's minion runs on state the newer
/// one wrote; Bottlerocket's migration notes make the same point for its data store).
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// Serde default of the `format` fields: files written before the field existed are format 1.
pub(crate) fn format_v1() -> u32 {
    1
}

/// Format 1 is not written out, and neither is an empty [`Extra`]: a file from this build then
/// has exactly the fields older minions know, and those refuse unknown fields (`deny_unknown_fields`
/// in every build before the format field existed), so it stays readable after a fallback to them.
pub(crate) fn is_format_v1(format: &u32) -> bool {
    *format == 1
}

/// A file in a format newer than [`STATE_FORMAT`]: its fields may not mean what this build thinks.
pub(crate) fn is_newer_format(found: u32) -> bool {
    found > STATE_FORMAT
}
