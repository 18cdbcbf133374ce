//! One process at a time on a node's data directory: `<data>/lock`, an exclusive `flock`.
//!
//! The running agent and every offline tool (`--versions`, `--revert-to-standby`,
//! `--clear-failed`) hold it. Without it `--revert-to-standby` run while the minion is up flips
//! the active slot under the agent, whose next flash then writes the slot the node will boot
//! from; and two writers of the boot environment lose each other's changes. `flock` is released
//! by the kernel when the holder exits or dies, so a crash never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Held until dropped (or until the process exits).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

/// The data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the directory: the minion itself, or another offline tool.
    #[error("the minion is running ({}); stop it first", holder(.pid))]
    Held { pid: Option<u32> },
    /// The lock file cannot be created or locked (missing data directory, permissions).
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn holder(pid: &Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".to_string(),
    }
}

impl DataDirLock {
    /// Takes the lock without waiting: a second process is refused at once rather than left
    /// hanging behind the agent, which holds the lock for as long as it runs.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, LockError> {
        let path = data_dir.join("lock");
        let io_err = |source| LockError::Io { path: path.clone(), source };
        // Not truncated on open: the holder's pid stays readable for the refusal message.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                let mut text = String::new();
                let pid = file.read_to_string(&mut text).ok().and_then(|_| text.trim().parse().ok());
                return Err(LockError::Held { pid });
            }
            Err(e) => return Err(io_err(io::Error::from(e))),
        }
        // The pid is only for the message another process prints; the lock is the flock.
        file.set_len(0).map_err(io_err)?;
        file.rewind().map_err(io_err)?;
        writeln!(file, "{}", std::process::id()).map_err(io_err)?;
        Ok(DataDirLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let err = DataDirLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(err, LockError::Held { pid: Some(p) } if p == std::process::id()), "{err}");
        assert_eq!(
            err.to_string(),
            format!("the minion is running (pid {}); stop it first", std::process::id())
        );
        drop(first);
        DataDirLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn a_missing_data_directory_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let err = DataDirLock::acquire(&dir.path().join("absent")).unwrap_err();
        assert!(matches!(err, LockError::Io { .. }), "{err}");
    }
}
