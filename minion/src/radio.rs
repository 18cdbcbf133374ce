//! Which radio links are up. On a device this is the driver; in meshsim a JSON file.

use meshlift_protocol::LinkReport;
use serde::Deserialize;
use std::path::PathBuf;

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
        let file: LinkFile = serde_json::from_slice(&bytes)
            .map_err(|e| RadioError::Invalid { path: self.path.clone(), message: e.to_string() })?;
        Ok(file.links.into_iter().map(|l| LinkReport { name: l.name, up: l.up }).collect())
    }
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
}
