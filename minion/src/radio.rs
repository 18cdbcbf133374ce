//! Which radio links are up: a JSON file (meshsim writes it) or, on a device, a command that
//! asks the radio driver and prints the same JSON.

use crate::command::{self, CommandError};
use meshlift_protocol::LinkReport;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The node's view of its links. A real backend asks the radio driver; the post-boot check needs
/// nothing more than names and up/down.
pub trait Radio {
    fn links(&self) -> Result<Vec<LinkReport>, RadioError>;
}

/// The radio could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum RadioError {
    /// The link file exists but cannot be read (permissions, I/O error).
    #[error("cannot read link state {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The link file is not the JSON meshsim writes: a version mismatch between meshsim and minion.
    #[error("bad link state file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// The link command failed, hung or printed too much (its stderr is in the message).
    #[error("radio link command: {0}")]
    Command(#[from] CommandError),
    /// The link command printed something else than the links JSON.
    #[error("radio link command {program} printed invalid JSON: {message}")]
    CommandOutput { program: String, message: String },
}

/// Reads `{"links":[{"name":"<link>","peer":"<node>","up":true}],"updated_ms":0}`, which meshsim
/// replaces atomically. A missing file means no links (a node alone, or meshsim not started yet).
#[derive(Debug, Clone)]
pub struct FileRadio {
    pub path: PathBuf,
}

#[derive(Deserialize)]
struct LinkFile {
    links: Vec<LinkEntry>,
    #[allow(dead_code)]
    #[serde(default)]
    updated_ms: u64,
}

#[derive(Deserialize)]
struct LinkEntry {
    name: String,
    #[allow(dead_code)]
    #[serde(default)]
    peer: String,
    up: bool,
}

impl Radio for FileRadio {
    fn links(&self) -> Result<Vec<LinkReport>, RadioError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(RadioError::Io { path: self.path.clone(), source }),
        };
        parse_links(&bytes).map_err(|message| RadioError::Invalid { path: self.path.clone(), message })
    }
}

/// Largest answer read from a link command (a node has a handful of links; 64 KiB is hundreds).
pub const MAX_LINK_OUTPUT: usize = 64 * 1024;

/// Runs a configured command (`radio_command`) that asks the radio driver and prints the links
/// in the JSON [`FileRadio`] reads. The shell polls the radio twice a second; a command is run at
/// most once per `min_interval` (default 2 s) and the answer reused in between, so a node does
/// not fork a process per poll. A command that fails, hangs past `timeout` (default 5 s, then
/// it is killed) or prints more than [`MAX_LINK_OUTPUT`] is an error, never a guess: the
/// post-boot check then waits for a good answer.
#[derive(Debug)]
pub struct CommandRadio {
    argv: Vec<String>,
    pub timeout: Duration,
    pub min_interval: Duration,
    last: Mutex<Option<(Instant, Vec<LinkReport>)>>,
}

impl CommandRadio {
    pub fn new(argv: Vec<String>) -> CommandRadio {
        CommandRadio {
            argv,
            timeout: Duration::from_secs(5),
            min_interval: Duration::from_secs(2),
            last: Mutex::new(None),
        }
    }
}

impl Radio for CommandRadio {
    fn links(&self) -> Result<Vec<LinkReport>, RadioError> {
        let mut last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((at, links)) = last.as_ref() {
            if at.elapsed() < self.min_interval {
                return Ok(links.clone());
            }
        }
        let out = command::run(&command::argv(&self.argv), None, self.timeout, MAX_LINK_OUTPUT)?;
        let program = self.argv.first().cloned().unwrap_or_default();
        let links =
            parse_links(&out.stdout).map_err(|message| RadioError::CommandOutput { program, message })?;
        *last = Some((Instant::now(), links.clone()));
        Ok(links)
    }
}

fn parse_links(bytes: &[u8]) -> Result<Vec<LinkReport>, String> {
    let file: LinkFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    Ok(file.links.into_iter().map(|l| LinkReport { name: l.name, up: l.up }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_meshsim_file_and_treats_missing_as_no_links() {
        let dir = tempfile::tempdir().unwrap();
        let radio = FileRadio { path: dir.path().join("radio.json") };
        assert!(radio.links().unwrap().is_empty());
        std::fs::write(
            &radio.path,
            r#"{"links":[{"name":"link-a-b","peer":"b","up":true},{"name":"link-a-c","peer":"c","up":false}],"updated_ms":5}"#,
        )
        .unwrap();
        let links = radio.links().unwrap();
        assert_eq!(
            links,
            vec![
                LinkReport { name: "link-a-b".into(), up: true },
                LinkReport { name: "link-a-c".into(), up: false }
            ]
        );
        std::fs::write(&radio.path, "{").unwrap();
        assert!(matches!(radio.links(), Err(RadioError::Invalid { .. })));
    }

    fn sh(script: &str) -> CommandRadio {
        CommandRadio::new(vec!["/bin/sh".into(), "-c".into(), script.into()])
    }

    #[test]
    fn a_command_prints_the_links_and_is_not_rerun_within_its_interval() {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("runs");
        let mut radio = sh(&format!(
            "echo x >> {}; echo '{{\"links\":[{{\"name\":\"link-a-b\",\"peer\":\"b\",\"up\":true}}]}}'",
            count.display()
        ));
        radio.min_interval = Duration::from_millis(300);
        let expected = vec![LinkReport { name: "link-a-b".into(), up: true }];
        assert_eq!(radio.links().unwrap(), expected);
        assert_eq!(radio.links().unwrap(), expected);
        assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 1, "second answer reused");
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(radio.links().unwrap(), expected);
        assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 2);
    }

    #[test]
    fn command_failures_are_clear_errors() {
        let err = sh("echo 'radio driver not loaded' >&2; exit 2").links().unwrap_err();
        assert!(err.to_string().contains("radio driver not loaded"), "{err}");
        let err = sh("echo not json").links().unwrap_err();
        assert!(matches!(&err, RadioError::CommandOutput { program, .. } if program == "/bin/sh"), "{err}");
        let mut hung = sh("sleep 20");
        hung.timeout = Duration::from_millis(200);
        let started = Instant::now();
        let err = hung.links().unwrap_err();
        assert!(matches!(err, RadioError::Command(CommandError::TimedOut { .. })), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let err = sh("while :; do echo '{\"links\":[]}'; done").links().unwrap_err();
        assert!(matches!(err, RadioError::Command(CommandError::TooMuchOutput { .. })), "{err}");
        let err = CommandRadio::new(vec!["/nonexistent/radio-links".into()]).links().unwrap_err();
        assert!(matches!(err, RadioError::Command(CommandError::Spawn { .. })), "{err}");
    }
}
