//! Running the node's own tools (`fw_printenv`/`fw_setenv`, the radio's link command, the reboot
//! command): with a timeout, bounded output, and the tool's stderr kept for the error.
//!
//! Unlike hooks (which come inside an image and log to a file), these are short-lived commands
//! whose stdout *is* the answer, so it is read from a pipe, but never more than a cap: a tool that
//! prints without end is drained and discarded past the cap (so it cannot block on a full pipe)
//! and the call fails. A hung tool (an environment lock held by someone else, a radio driver that
//! never answers) is killed with its whole process group at the timeout.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes of stderr kept for an error message; the rest is read and dropped.
pub const STDERR_KEPT: usize = 2048;

/// What a command printed, once it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// At most [`STDERR_KEPT`] bytes, lossily decoded, trimmed.
    pub stderr: String,
}

/// Why a command gave no usable answer. Each variant names the program; `Display` is what an
/// operator reads in the log or the status reason.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Not installed, not executable, or no such path: a packaging or configuration problem.
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    /// Did not finish in time; it was killed with its process group.
    #[error("{program} did not finish within {}s and was killed; stderr: {stderr}", timeout.as_secs_f32())]
    TimedOut { program: String, timeout: Duration, stderr: String },
    /// Printed more than the caller accepts: not the tool (or the version) the config meant.
    #[error("{program} printed more than {limit} bytes on stdout")]
    TooMuchOutput { program: String, limit: usize },
    /// Exited with a failure; its stderr usually says why.
    #[error("{program} failed ({status}): {stderr}")]
    Failed { program: String, status: ExitStatus, stderr: String },
}

/// Runs `argv` (program, then arguments), feeds it `stdin` (or nothing), waits at most `timeout`,
/// keeps at most `max_stdout` bytes of stdout. A non-zero exit is [`CommandError::Failed`].
/// Blocking: call it from a blocking task.
pub fn run(
    argv: &[OsString],
    stdin: Option<&[u8]>,
    timeout: Duration,
    max_stdout: usize,
) -> Result<CommandOutput, CommandError> {
    let program = argv.first().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    let Some((exe, args)) = argv.split_first() else {
        return Err(CommandError::Spawn {
            program,
            source: io::Error::new(io::ErrorKind::InvalidInput, "empty command"),
        });
    };
    let mut child = Command::new(exe)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| CommandError::Spawn { program: program.clone(), source })?;
    let too_much = Arc::new(AtomicBool::new(false));
    let out = child.stdout.take().map(|s| drain(s, max_stdout, Some(too_much.clone())));
    let err = child.stderr.take().map(|s| drain(s, STDERR_KEPT, None));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A tool that exits without reading all of it gives EPIPE: its exit status says more.
        let _ = pipe.write_all(input);
    }
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            // Past the cap the answer is useless: stop the tool now rather than at the timeout.
            Ok(None) if too_much.load(Ordering::Relaxed) => {
                kill_group(&mut child);
                return Err(CommandError::TooMuchOutput { program, limit: max_stdout });
            }
            Ok(None) if started.elapsed() >= timeout => {
                kill_group(&mut child);
                let stderr = collect(err).0;
                return Err(CommandError::TimedOut { program, timeout, stderr: text(&stderr) });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(source) => {
                kill_group(&mut child);
                return Err(CommandError::Spawn { program, source });
            }
        }
    };
    let (stdout, overflow) = collect(out);
    let stderr = text(&collect(err).0);
    if !status.success() {
        return Err(CommandError::Failed { program, status, stderr });
    }
    if overflow {
        return Err(CommandError::TooMuchOutput { program, limit: max_stdout });
    }
    Ok(CommandOutput { status, stdout, stderr })
}

/// Converts configured strings to an argv.
pub fn argv<I, S>(parts: I) -> Vec<OsString>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    parts.into_iter().map(Into::into).collect()
}

type Drained = JoinHandle<(Vec<u8>, bool)>;

/// Reads `pipe` to its end on a thread, keeping the first `limit` bytes; the flag says more came
/// (and is raised in `signal` at once, so the caller can stop the writer).
fn drain(mut pipe: impl Read + Send + 'static, limit: usize, signal: Option<Arc<AtomicBool>>) -> Drained {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut overflow = false;
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = limit.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                    if n > room {
                        overflow = true;
                        if let Some(flag) = &signal {
                            flag.store(true, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        (kept, overflow)
    })
}

fn collect(handle: Option<Drained>) -> (Vec<u8>, bool) {
    handle.and_then(|h| h.join().ok()).unwrap_or_default()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// SIGKILL to the command's process group (`process_group(0)`: its pgid is its pid), so a shell
/// wrapper's children die with it and release the pipes; then reap it.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<OsString> {
        argv(["/bin/sh", "-c", script])
    }

    #[test]
    fn output_stdin_and_failures_with_stderr() {
        let out = run(&sh("cat; echo done"), Some(b"in\n"), Duration::from_secs(5), 1024).unwrap();
        assert_eq!(out.stdout, b"in\ndone\n");
        let err = run(&sh("echo 'no env here' >&2; exit 3"), None, Duration::from_secs(5), 1024).unwrap_err();
        assert!(matches!(&err, CommandError::Failed { stderr, .. } if stderr == "no env here"), "{err}");
        assert!(err.to_string().contains("exit status: 3"), "{err}");
        let err = run(&argv(["/nonexistent/fw_setenv"]), None, Duration::from_secs(5), 1024).unwrap_err();
        assert!(matches!(err, CommandError::Spawn { .. }), "{err}");
    }

    #[test]
    fn endless_output_is_cut_and_a_hang_is_killed_with_its_children() {
        let started = Instant::now();
        // `yes` never exits on its own: it is stopped as soon as it passes the cap.
        let err = run(&sh("yes"), None, Duration::from_secs(5), 4096).unwrap_err();
        assert!(matches!(err, CommandError::TooMuchOutput { limit: 4096, .. }), "{err}");
        let err = run(&sh("head -c 100000 /dev/zero"), None, Duration::from_secs(5), 4096).unwrap_err();
        assert!(matches!(err, CommandError::TooMuchOutput { limit: 4096, .. }), "{err}");
        // A wrapper whose child holds the pipe open: the group kill ends both.
        let err = run(&sh("sleep 30 & wait"), None, Duration::from_millis(300), 16).unwrap_err();
        assert!(matches!(err, CommandError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    }
}
