//! Running the executables an image carries (seed 004's update interface, after Mender's update
//! modules): `<hook> <state> <work-dir> <node> [args]`, with a timeout.
//!
//! Output goes to a log file rather than a pipe, so a hook that writes a lot can never block on a
//! full pipe, and the last lines are still there for the status reason. A hung hook is killed at
//! the timeout, with everything it started: each hook runs in a process group of its own and the
//! whole group is killed (killing only the direct child left a hook's own children running,
//! holding the radio or the disk the next attempt needs). A child that leaves the group
//! (`setsid`) escapes; so does the group if the minion itself is killed first (systemd's
//! control-group kill covers that on a node).

use meshlift_image::{Hook, HookKind};
use std::fs::{self, File};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Lines of hook output kept in a status reason.
pub const REASON_TAIL_LINES: usize = 5;

/// Where and as whom hooks run.
#[derive(Debug, Clone)]
pub struct HookContext {
    pub work_dir: PathBuf,
    pub node: String,
    pub timeout: Duration,
    pub args: Vec<String>,
}

/// A hook that did not pass. `Display` is the status reason.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The hook could not be written or started (disk full, no exec permission on the work dir).
    #[error("{kind} hook could not start: {source}")]
    Spawn {
        kind: HookKind,
        #[source]
        source: io::Error,
    },
    /// The hook ran and said no.
    #[error("{kind} hook exited with {code}: {tail}")]
    Failed { kind: HookKind, code: String, tail: String },
    /// The hook did not finish in time and was killed.
    #[error("{kind} hook timed out after {secs}s and was killed: {tail}")]
    TimedOut { kind: HookKind, secs: u64, tail: String },
}

/// Runs `hook` with `state` (the state the minion is in, e.g. `TRIAL`). Blocking; call it from a
/// blocking task.
pub fn run_hook(hook: &Hook, state: &str, ctx: &HookContext) -> Result<(), HookError> {
    let kind = hook.kind;
    let spawn_err = |source| HookError::Spawn { kind, source };
    fs::create_dir_all(&ctx.work_dir).map_err(spawn_err)?;
    let exe = ctx.work_dir.join(kind.as_str());
    install_executable(&exe, &hook.content).map_err(spawn_err)?;
    let log_path = ctx.work_dir.join(format!("{}.log", kind.as_str()));
    let log = File::create(&log_path).map_err(spawn_err)?;
    let mut command = Command::new(&exe);
    command
        .arg(state)
        .arg(&ctx.work_dir)
        .arg(&ctx.node)
        .args(&ctx.args)
        .current_dir(&ctx.work_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(spawn_err)?)
        .stderr(log)
        .process_group(0);
    let mut child = spawn_retrying_busy(&mut command).map_err(spawn_err)?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(spawn_err)? {
            break status;
        }
        if started.elapsed() >= ctx.timeout {
            kill_group(&mut child);
            return Err(HookError::TimedOut { kind, secs: ctx.timeout.as_secs(), tail: tail(&log_path) });
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if status.success() {
        return Ok(());
    }
    let code = status.code().map(|c| c.to_string()).unwrap_or_else(|| format!("{status}"));
    Err(HookError::Failed { kind, code, tail: tail(&log_path) })
}

/// SIGKILL to the hook's process group (its pgid is its pid: `process_group(0)`), then reap the
/// hook. The direct child is killed on its own too, in case the group signal failed.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn install_executable(path: &Path, content: &[u8]) -> io::Result<()> {
    let _ = fs::remove_file(path);
    fs::write(path, content)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// A freshly written executable can be "text file busy" for a moment when another thread forks
/// while the file is open for writing; retrying shortly is the standard remedy.
fn spawn_retrying_busy(command: &mut Command) -> io::Result<std::process::Child> {
    let mut tries = 0;
    loop {
        match command.spawn() {
            Err(e) if e.raw_os_error() == Some(26) && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// The last [`REASON_TAIL_LINES`] non-empty lines of the log, joined with " | ".
fn tail(log: &Path) -> String {
    let text = fs::read(log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let start = lines.len().saturating_sub(REASON_TAIL_LINES);
    let joined = lines[start..].join(" | ");
    if joined.is_empty() {
        "(no output)".to_string()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(dir: &Path, timeout_ms: u64) -> HookContext {
        HookContext {
            work_dir: dir.join("work"),
            node: "node-7".into(),
            timeout: Duration::from_millis(timeout_ms),
            args: vec![],
        }
    }

    fn hook(script: &str) -> Hook {
        Hook { kind: HookKind::PostBootCheck, content: script.as_bytes().to_vec() }
    }

    #[test]
    fn passes_arguments_and_reports_failures_with_output() {
        let dir = tempfile::tempdir().unwrap();
        let c = ctx(dir.path(), 5_000);
        run_hook(
            &hook("#!/bin/sh\n[ \"$1\" = TRIAL ] && [ \"$3\" = node-7 ] && [ -d \"$2\" ]\n"),
            "TRIAL",
            &c,
        )
        .unwrap();
        let err = run_hook(&hook("#!/bin/sh\necho one\necho two >&2\nexit 3\n"), "TRIAL", &c).unwrap_err();
        assert_eq!(err.to_string(), "post-boot-check hook exited with 3: one | two");
    }

    #[test]
    fn a_hanging_hook_is_killed_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let err = run_hook(&hook("#!/bin/sh\necho waiting\nexec sleep 30\n"), "TRIAL", &ctx(dir.path(), 300))
            .unwrap_err();
        assert!(matches!(err, HookError::TimedOut { .. }), "{err}");
        assert!(err.to_string().contains("waiting"));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    /// Alive and not a zombie (an orphan's zombie waits for whoever reaps orphans here).
    fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| stat.rsplit(')').next().map(|rest| !rest.trim_start().starts_with('Z')))
            .unwrap_or(false)
    }

    #[test]
    fn a_timed_out_hook_is_killed_with_the_children_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let script = format!(
            "#!/bin/sh\nsleep 300 &\necho $! > {p}.child\necho $$ > {p}.hook\nmv {p}.child {p}\nsleep 30\n",
            p = pids.display()
        );
        let err = run_hook(&hook(&script), "TRIAL", &ctx(dir.path(), 500)).unwrap_err();
        assert!(matches!(err, HookError::TimedOut { .. }), "{err}");
        let child: i32 = fs::read_to_string(&pids).unwrap().trim().parse().unwrap();
        let hook_pid: i32 = fs::read_to_string(pids.with_extension("hook")).unwrap().trim().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        while (alive(child) || alive(hook_pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(hook_pid), "the hook survived its timeout");
        assert!(!alive(child), "the hook's `sleep 300` survived the hook's timeout");
    }
}
