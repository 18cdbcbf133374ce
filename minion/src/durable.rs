//! Crash-safe replacement of small state files (boot environment, upgrade state).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Replaces `path` with `bytes` so that after a power cut the file holds either the old or the new
/// content, never a mix: write a temp file next to it, fsync it, rename over the target, fsync the
/// directory (without the last step the rename itself may be lost).
///
/// Each call writes its own temp file ([`temp_path`]): with one shared `<file>.tmp`, two writers
/// of the same file (two threads, or the agent and an offline tool) truncate each other's temp
/// file and one renames the other's half-written bytes into place.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = temp_path(path);
    let written = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        // Best effort: a leftover is harmless (readers ignore it) and removed at the next start.
        let _ = fs::remove_file(&tmp);
    }
    written?;
    File::open(dir)?.sync_all()
}

/// A temp name next to `path` no other write uses: `<file>.<pid>.<n>.tmp`, unique within this
/// process by the counter and between processes by the pid. Readers ignore such files (a leftover
/// is a write that never completed); [`remove_stale_temps`] deletes them.
pub fn temp_path(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{}.{n}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Removes temp files left in `dir` by writes that never completed (a crash or power cut between
/// create and rename): with unique names nothing would ever reuse, and so clean, them. Call only
/// while holding the data-directory lock, when no other write can be in flight. Returns how many
/// were removed.
pub fn remove_stale_temps(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let is_temp = name.to_str().is_some_and(is_own_temp_name);
        if is_temp && entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Is `name` one of [`temp_path`]'s names (`<file>.<pid>.<n>.tmp`) or a legacy one (below)? Only those are removed: the
/// data directory also holds files other programs write, such as the radio view meshsim (or a
/// radio driver) replaces through its own `radio.json.tmp`. Removing every `*.tmp` at start raced
/// with such a write in flight and lost it: the rename failed, the node kept a stale "link down"
/// view and its trial fell back after 120 s (seen under load in the e2e suite).
/// Builds before unique temp names used `<file>.tmp` for the minion's own files; those leftovers
/// (boot environment, upgrade state, slot metadata) are removed too.
fn is_own_temp_name(name: &str) -> bool {
    let Some(rest) = name.strip_suffix(".tmp") else { return false };
    if matches!(rest, "bootenv.json" | "upgrade_state.json") || rest.ends_with(".meta.json") {
        return true;
    }
    let mut parts = rest.rsplitn(3, '.');
    let (Some(n), Some(pid), Some(file)) = (parts.next(), parts.next(), parts.next()) else { return false };
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    !file.is_empty() && numeric(n) && numeric(pid)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_write_gets_its_own_temp_name_next_to_the_file() {
        let target = Path::new("/data/bootenv.json");
        let (a, b) = (temp_path(target), temp_path(target));
        assert_ne!(a, b);
        assert_eq!(a.parent(), target.parent(), "same directory, so the rename is atomic");
        assert!(
            a.to_str().unwrap().starts_with("/data/bootenv.json.") && a.to_str().unwrap().ends_with(".tmp")
        );
    }

    #[test]
    fn concurrent_writers_of_one_file_never_fail_or_mix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let contents: Vec<Vec<u8>> = (0..8u8).map(|i| vec![b'a' + i; 64 << 10]).collect();
        std::thread::scope(|s| {
            for c in &contents {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..40 {
                        write_atomically(path, c).unwrap();
                    }
                });
            }
        });
        let last = fs::read(&path).unwrap();
        assert!(contents.contains(&last), "the file holds one writer's bytes, whole");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temp file left behind");
    }

    #[test]
    fn stale_temps_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("bootenv.json"), b"{}").unwrap();
        fs::write(dir.path().join("bootenv.json.tmp"), b"{\"act").unwrap();
        fs::write(temp_path(&dir.path().join("upgrade_state.json")), b"{").unwrap();
        fs::create_dir(dir.path().join("slots")).unwrap();
        // Another program's atomic write in flight (meshsim's radio view): not ours to remove.
        fs::write(dir.path().join("radio.json.tmp"), b"{\"links\"").unwrap();
        fs::write(dir.path().join("notes.tmp"), b"x").unwrap();
        fs::write(dir.path().join("a.b.tmp"), b"x").unwrap();
        assert_eq!(remove_stale_temps(dir.path()).unwrap(), 2);
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["a.b.tmp", "bootenv.json", "notes.tmp", "radio.json.tmp", "slots"]);
    }
}
