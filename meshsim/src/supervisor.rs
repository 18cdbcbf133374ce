//! One node's process supervisor: what systemd `Restart=always` plus a power switch do on a real
//! device. Starts the minion, waits for it to exit (a reboot request, a crash, or a kill from a
//! fault), reports the node down, waits the boot delay and starts it again.

use crate::model::{Change, DownCause};
use crate::sim::Shared;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Requests from the [`crate::MeshSim`] API to one node's supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// SIGKILL the process group now; restart after the boot delay (a power cycle).
    Kill,
    /// SIGKILL and stay down until [`Control::PowerOn`].
    PowerOff,
    PowerOn,
    /// SIGKILL and end the supervisor (simulation stopping).
    Stop,
}

/// Send `signal` to the node's whole process group (the minion and anything it spawned).
/// `pid` is the group leader: every node process is started with `process_group(0)`.
pub(crate) fn signal_group(pid: u32, signal: Signal) -> nix::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| nix::errno::Errno::ESRCH)?;
    killpg(Pid::from_raw(pid), signal)
}

enum Woken {
    Exited(std::io::Result<ExitStatus>),
    Control(Option<Control>),
}

pub(crate) async fn supervise(
    shared: Arc<Shared>,
    node: String,
    mut control: mpsc::UnboundedReceiver<Control>,
    mut powered: bool,
) {
    let Some(handle) = shared.nodes.get(&node) else {
        return;
    };
    let mut boot_now = true;
    loop {
        // Powered off: nothing runs until the caller powers the node on again.
        while !powered {
            match control.recv().await {
                Some(Control::PowerOn) => {
                    powered = true;
                    boot_now = false;
                }
                Some(Control::Stop) | None => return,
                Some(Control::Kill | Control::PowerOff) => {}
            }
        }
        // Boot delay: the time a real node takes from reset to a running agent.
        if !boot_now {
            let sleep = tokio::time::sleep(shared.boot_delay);
            tokio::pin!(sleep);
            let interrupted = loop {
                tokio::select! {
                    _ = &mut sleep => break false,
                    cmd = control.recv() => match cmd {
                        Some(Control::Stop) | None => return,
                        Some(Control::PowerOff) => { powered = false; break true }
                        Some(Control::Kill | Control::PowerOn) => {}
                    }
                }
            };
            if interrupted {
                continue;
            }
        }
        boot_now = false;

        // The radio comes up with the process, so the node is up before the agent first runs.
        shared.apply(Change::NodeUp(node.clone()));
        let mut child = match spawn(&shared, &node) {
            Ok(child) => child,
            Err(e) => {
                tracing::error!(%node, error = %e, "cannot start node process");
                handle.stats.lock().expect("node stats lock is never poisoned").crashes += 1;
                shared.apply(Change::NodeDown(node.clone(), DownCause::Crash { code: None }));
                continue;
            }
        };
        let pid = child.id().unwrap_or(0);
        handle.pid.store(pid, Ordering::SeqCst);
        handle.stats.lock().expect("node stats lock is never poisoned").starts += 1;

        let cause = loop {
            let woken = tokio::select! {
                status = child.wait() => Woken::Exited(status),
                cmd = control.recv() => Woken::Control(cmd),
            };
            match woken {
                Woken::Exited(status) => break classify(status, shared.reboot_exit_code),
                Woken::Control(Some(Control::PowerOn)) => {}
                Woken::Control(Some(Control::Kill)) => {
                    kill_and_reap(&mut child, pid).await;
                    break DownCause::Killed;
                }
                Woken::Control(Some(Control::PowerOff)) => {
                    kill_and_reap(&mut child, pid).await;
                    powered = false;
                    break DownCause::PoweredOff;
                }
                Woken::Control(Some(Control::Stop) | None) => {
                    kill_and_reap(&mut child, pid).await;
                    handle.pid.store(0, Ordering::SeqCst);
                    shared.apply(Change::NodeDown(node.clone(), DownCause::Stopped));
                    return;
                }
            }
        };
        // Like systemd's KillMode=control-group: nothing the old boot spawned survives it.
        let _ = signal_group(pid, Signal::SIGKILL);
        handle.pid.store(0, Ordering::SeqCst);
        {
            let mut stats = handle.stats.lock().expect("node stats lock is never poisoned");
            match cause {
                DownCause::Reboot => stats.reboots += 1,
                DownCause::Crash { .. } => stats.crashes += 1,
                DownCause::Killed | DownCause::PoweredOff => stats.kills += 1,
                DownCause::Stopped => {}
            }
        }
        tracing::info!(%node, ?cause, "node down");
        shared.apply(Change::NodeDown(node.clone(), cause));
    }
}

fn classify(status: std::io::Result<ExitStatus>, reboot_exit_code: i32) -> DownCause {
    match status {
        Ok(s) if s.code() == Some(reboot_exit_code) => DownCause::Reboot,
        Ok(s) => DownCause::Crash { code: s.code() },
        Err(_) => DownCause::Crash { code: None },
    }
}

async fn kill_and_reap(child: &mut Child, pid: u32) {
    if signal_group(pid, Signal::SIGKILL).is_err() {
        let _ = child.start_kill();
    }
    let _ = child.wait().await;
}

fn spawn(shared: &Shared, node: &str) -> std::io::Result<Child> {
    let handle = &shared.nodes[node];
    let mut log = OpenOptions::new().create(true).append(true).open(&handle.log_path)?;
    let starts = handle.stats.lock().expect("node stats lock is never poisoned").starts;
    writeln!(log, "=== meshsim: start #{} of {node} ===", starts + 1)?;
    let stderr = log.try_clone()?;
    let mut command = Command::new(&shared.minion_bin);
    command
        .arg("--config")
        .arg(&handle.config_path)
        .current_dir(&handle.node_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true)
        // Its own group, so faults and shutdown reach the minion's children too.
        .process_group(0);
    command.spawn()
}
