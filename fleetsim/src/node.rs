//! One simulated node: its hardware ([`Disk`]), its process (down, running, frozen) and, while it
//! runs, the real minion [`Agent`] started the way the minion binary starts it.

use crate::hardware::Disk;
use meshlift_minion::Agent;
use meshlift_protocol::{SlotId, UpgradeStatusType};

/// The node's process, as the hardware sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proc {
    /// Off, rebooting or crashed (waiting for its boot delay).
    Down,
    Up,
    /// Frozen (SIGSTOP): events addressed to it wait until it resumes.
    Hung,
}

/// Faults armed on a node, waiting for the moment they apply to.
#[derive(Debug, Clone, Default)]
pub struct Armed {
    pub crash_in_state: Option<UpgradeStatusType>,
    pub power_cut_flash: bool,
    pub stuck_download: bool,
    pub corrupt_download: bool,
    /// Disk full until this time (simulated ms).
    pub disk_full_until: u64,
}

pub struct SimNode {
    pub name: String,
    pub mac: String,
    pub pop: bool,
    pub disk: Disk,
    pub proc: Proc,
    /// Bumped at every power-on and every power-off: events of an earlier life are stale.
    pub life: u64,
    pub agent: Option<Agent>,
    pub booted: SlotId,
    /// SHA-256 of the running slot's bytes at boot: they must not change while it runs.
    pub running_bytes: [u8; 32],
    pub seq: u64,
    /// Current download job; a cancel or a cleanup moves on to the next id.
    pub job: u64,
    /// A flash in progress (its completion event is pending).
    pub flashing: bool,
    /// Down for an upgrade reboot (a commit's trial reboot, a fallback, a trial slot that would
    /// not boot): the isolation this causes to others is the planner's responsibility.
    pub upgrade_down: bool,
    /// When the controller last sent this node a COMMIT.
    pub last_commit_at: Option<u64>,
    pub armed: Armed,
    /// Events that arrived while the process was frozen, replayed when it resumes.
    pub deferred: Vec<crate::sim::Ev>,
    /// The agent's deadline an event is already scheduled for.
    pub deadline_scheduled: Option<u64>,
    /// Delivery time of the last message on the connection, node → controller and back.
    pub fifo_up: u64,
    pub fifo_down: u64,
    /// `(disk.writes, life)` when the node's disk was last checked.
    pub checked: Option<(u64, u64)>,
}

impl SimNode {
    pub fn new(name: String, mac: String, pop: bool, disk: Disk) -> SimNode {
        SimNode {
            name,
            mac,
            pop,
            disk,
            proc: Proc::Down,
            life: 0,
            agent: None,
            booted: SlotId::A,
            running_bytes: [0; 32],
            seq: 0,
            job: 0,
            flashing: false,
            upgrade_down: false,
            last_commit_at: None,
            armed: Armed::default(),
            deferred: Vec::new(),
            deadline_scheduled: None,
            fifo_up: 0,
            fifo_down: 0,
            checked: None,
        }
    }

    pub fn status(&self) -> Option<UpgradeStatusType> {
        self.agent.as_ref().map(|a| a.status().us_type)
    }
}
