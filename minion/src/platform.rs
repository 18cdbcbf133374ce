//! The node's hardware as the config selects it: boot environment (`[boot]`), slots
//! (`[slots]`), radio (`radio_file` or `radio_command`) and reboot (`reboot`, `reboot_command`).
//!
//! ```toml
//! reboot = "command"                      # or "exit": exit code 10 for a supervisor (meshsim)
//! reboot_command = ["systemctl", "reboot"]
//! radio_command = ["/usr/sbin/radio-links", "--json"]   # else radio_file is read
//!
//! [boot]
//! backend = "uboot"                       # or "file": <data_dir>/bootenv.json
//! fw_env_config = "/etc/fw_env.config"
//! # fw_printenv = "/usr/bin/fw_printenv"; fw_setenv = "/usr/bin/fw_setenv"
//! # default_env = "/etc/u-boot-initial-env"; tool_timeout_s = 10; cmdline = "/proc/cmdline"
//!
//! [slots]
//! backend = "block"                       # or "file": <data_dir>/slots/{a,b}.img
//! a = "/dev/mmcblk0p2"
//! b = "/dev/mmcblk0p3"
//! ```

use crate::block_slots::BlockSlotStore;
use crate::boot::{boot_on, BootError, BootOutcome, BootTarget, Factory};
use crate::boot_env::{Bootloader, FileBootloader};
use crate::command::CommandError;
use crate::radio::{CommandRadio, FileRadio, Radio};
use crate::slots::{FileSlotStore, SlotError, SlotStore};
use crate::uboot::{UBootBootloader, UBootTools};
use crate::MinionConfig;
use meshlift_protocol::SlotId;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[boot]`: where the boot environment lives.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootConfig {
    #[serde(default)]
    pub backend: BootBackend,
    /// libubootenv's configuration: which device holds the environment copies, at which offset.
    #[serde(default = "default_fw_env_config")]
    pub fw_env_config: PathBuf,
    #[serde(default = "default_fw_printenv")]
    pub fw_printenv: PathBuf,
    #[serde(default = "default_fw_setenv")]
    pub fw_setenv: PathBuf,
    /// libubootenv's `--defenv`, used only when no valid environment copy exists.
    #[serde(default)]
    pub default_env: Option<PathBuf>,
    #[serde(default = "default_tool_timeout_s")]
    pub tool_timeout_s: u64,
    /// Kernel command line, read for `meshlift.slot=a|b` (the slot U-Boot booted; the sample boot
    /// script in `configs/uboot/` passes it).
    #[serde(default = "default_cmdline")]
    pub cmdline: PathBuf,
}

impl Default for BootConfig {
    fn default() -> BootConfig {
        BootConfig {
            backend: BootBackend::default(),
            fw_env_config: default_fw_env_config(),
            fw_printenv: default_fw_printenv(),
            fw_setenv: default_fw_setenv(),
            default_env: None,
            tool_timeout_s: default_tool_timeout_s(),
            cmdline: default_cmdline(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootBackend {
    /// `<data_dir>/bootenv.json`, and a process start counts as a boot (meshsim).
    #[default]
    File,
    /// U-Boot's environment through `fw_printenv`/`fw_setenv` ([`crate::uboot`]).
    Uboot,
}

/// `[slots]`: where the two slots are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotsConfig {
    #[serde(default)]
    pub backend: SlotBackend,
    /// Slot A's partition (`backend = "block"`).
    #[serde(default)]
    pub a: Option<PathBuf>,
    #[serde(default)]
    pub b: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotBackend {
    /// `<data_dir>/slots/{a,b}.img`.
    #[default]
    File,
    /// Raw partitions ([`crate::block_slots`]).
    Block,
}

/// How the minion reboots the node (commit, failed trial).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RebootMethod {
    /// Run `reboot_command` and wait to be stopped by the shutdown.
    #[default]
    Command,
    /// Exit with [`crate::REBOOT_EXIT_CODE`]: the supervisor restarts the process, which is the
    /// node's "reboot" in meshsim.
    Exit,
}

pub fn default_reboot_command() -> Vec<String> {
    vec!["systemctl".into(), "reboot".into()]
}

fn default_fw_env_config() -> PathBuf {
    "/etc/fw_env.config".into()
}
fn default_fw_printenv() -> PathBuf {
    "fw_printenv".into()
}
fn default_fw_setenv() -> PathBuf {
    "fw_setenv".into()
}
fn default_tool_timeout_s() -> u64 {
    10
}
fn default_cmdline() -> PathBuf {
    "/proc/cmdline".into()
}

/// The configuration asks for hardware it does not describe.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error(
        "[slots] backend = \"block\" needs both partitions: set [slots] a and b (e.g. \"/dev/mmcblk0p2\")"
    )]
    MissingPartitions,
    #[error("reboot = \"command\" needs a non-empty reboot_command")]
    EmptyRebootCommand,
    #[error("radio_command must not be empty")]
    EmptyRadioCommand,
}

/// The backends the config chose, cheap to clone into blocking tasks.
#[derive(Debug, Clone)]
pub struct Platform {
    data_dir: PathBuf,
    boot: BootConfig,
    slots: SlotsConfig,
    radio_file: PathBuf,
    radio_command: Option<Vec<String>>,
    pub reboot: RebootMethod,
    pub reboot_command: Vec<String>,
}

impl Platform {
    pub fn new(cfg: &MinionConfig) -> Result<Platform, PlatformError> {
        if cfg.slots.backend == SlotBackend::Block && (cfg.slots.a.is_none() || cfg.slots.b.is_none()) {
            return Err(PlatformError::MissingPartitions);
        }
        if cfg.reboot == RebootMethod::Command && cfg.reboot_command.is_empty() {
            return Err(PlatformError::EmptyRebootCommand);
        }
        if cfg.radio_command.as_ref().is_some_and(Vec::is_empty) {
            return Err(PlatformError::EmptyRadioCommand);
        }
        Ok(Platform {
            data_dir: cfg.data_dir.clone(),
            boot: cfg.boot.clone(),
            slots: cfg.slots.clone(),
            radio_file: cfg.radio_file(),
            radio_command: cfg.radio_command.clone(),
            reboot: cfg.reboot,
            reboot_command: cfg.reboot_command.clone(),
        })
    }

    pub fn bootloader(&self) -> Box<dyn Bootloader + Send> {
        match self.boot.backend {
            BootBackend::File => Box::new(FileBootloader::new(&self.data_dir)),
            BootBackend::Uboot => Box::new(UBootBootloader::new(self.uboot_tools())),
        }
    }

    pub fn uboot_tools(&self) -> UBootTools {
        UBootTools {
            fw_env_config: self.boot.fw_env_config.clone(),
            fw_printenv: self.boot.fw_printenv.clone(),
            fw_setenv: self.boot.fw_setenv.clone(),
            default_env: self.boot.default_env.clone(),
            timeout: Duration::from_secs(self.boot.tool_timeout_s.max(1)),
        }
    }

    /// The slots as a process booted from `booted` sees them.
    pub fn open_slots(&self, booted: SlotId) -> Result<Box<dyn SlotStore + Send>, SlotError> {
        match (&self.slots.backend, &self.slots.a, &self.slots.b) {
            (SlotBackend::Block, Some(a), Some(b)) => {
                Ok(Box::new(BlockSlotStore::open(a, b, &self.data_dir, booted)?))
            }
            _ => Ok(Box::new(FileSlotStore::open(&self.data_dir, booted)?)),
        }
    }

    /// The slot the system runs from, where the platform can tell: the kernel command line's
    /// `meshlift.slot=`, else the block slot mounted at `/`. `None` with the file boot backend,
    /// where a process start is a boot and the boot environment decides.
    pub fn running_slot(&self) -> Option<SlotId> {
        if self.boot.backend == BootBackend::File {
            return None;
        }
        let from_cmdline =
            std::fs::read_to_string(&self.boot.cmdline).ok().and_then(|text| slot_from_cmdline(&text));
        from_cmdline.or_else(|| match (&self.slots.backend, &self.slots.a, &self.slots.b) {
            (SlotBackend::Block, Some(a), Some(b)) => {
                BlockSlotStore::open(a, b, &self.data_dir, SlotId::A).ok()?.mounted_root_slot()
            }
            _ => None,
        })
    }

    /// The boot step on this platform ([`boot_on`]).
    pub fn boot(&self, factory: Factory<'_>, now_ms: u64) -> Result<BootOutcome, BootError> {
        let running = self.running_slot();
        if self.boot.backend == BootBackend::Uboot && running.is_none() {
            tracing::warn!(
                cmdline = %self.boot.cmdline.display(),
                "no meshlift.slot= on the kernel command line and no slot mounted at /: trusting the boot environment \
                 for the running slot (a minion restarted without a reboot may misjudge a pending trial)"
            );
        }
        let mut bootloader = self.bootloader();
        let open = |booted: SlotId| -> Result<Box<dyn SlotStore>, SlotError> {
            let store: Box<dyn SlotStore> = self.open_slots(booted)?;
            Ok(store)
        };
        boot_on(BootTarget { bootloader: bootloader.as_mut(), open_slots: &open, running }, factory, now_ms)
    }

    pub fn radio(&self) -> Box<dyn Radio + Send> {
        match &self.radio_command {
            Some(argv) => Box::new(CommandRadio::new(argv.clone())),
            None => Box::new(FileRadio { path: self.radio_file.clone() }),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

/// `meshlift.slot=a` (or `b`) among the kernel's parameters.
pub fn slot_from_cmdline(cmdline: &str) -> Option<SlotId> {
    cmdline.split_whitespace().find_map(|p| match p.strip_prefix("meshlift.slot=")? {
        "a" | "A" => Some(SlotId::A),
        "b" | "B" => Some(SlotId::B),
        _ => None,
    })
}

/// Runs the configured reboot command (blocking; give it a blocking task). Success means the
/// system accepted the request: the caller then waits to be stopped, and must not start anything
/// new (a restart of the minion before the reboot would run the boot step on the old system).
pub fn request_reboot(argv: &[String], timeout: Duration) -> Result<(), CommandError> {
    crate::command::run(&crate::command::argv(argv), None, timeout, 64 * 1024).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "name = \"n\"\nmac = \"00:00:00:00:00:01\"\ndata_dir = \"/tmp/n\"\n\
        controller = \"tcp://127.0.0.1:7007\"\nboard = \"b\"\ntrusted_keys = []\n";

    #[test]
    fn defaults_are_file_backends_and_a_real_reboot() {
        let cfg = MinionConfig::parse(NODE).unwrap();
        assert_eq!(cfg.reboot, RebootMethod::Command);
        assert_eq!(cfg.reboot_command, ["systemctl", "reboot"]);
        assert_eq!(cfg.boot.backend, BootBackend::File);
        assert_eq!(cfg.slots.backend, SlotBackend::File);
        let platform = Platform::new(&cfg).unwrap();
        assert_eq!(platform.running_slot(), None, "a process start is a boot");
    }

    #[test]
    fn u_boot_and_block_slots_from_the_config_and_their_refusals() {
        let text = format!(
            "{NODE}reboot = \"exit\"\nradio_command = [\"/usr/sbin/links\"]\n\
             [boot]\nbackend = \"uboot\"\nfw_env_config = \"/etc/fw_env.config\"\nfw_setenv = \"/opt/fw_setenv\"\n\
             cmdline = \"/nonexistent/cmdline\"\n[slots]\nbackend = \"block\"\na = \"/dev/mmcblk0p2\"\nb = \"/dev/mmcblk0p3\"\n"
        );
        let cfg = MinionConfig::parse(&text).unwrap();
        assert_eq!(cfg.reboot, RebootMethod::Exit);
        let platform = Platform::new(&cfg).unwrap();
        let tools = platform.uboot_tools();
        assert_eq!(tools.fw_setenv, PathBuf::from("/opt/fw_setenv"));
        assert_eq!(tools.fw_printenv, PathBuf::from("fw_printenv"), "default: the tool on PATH");
        assert_eq!(tools.timeout, Duration::from_secs(10));
        // No command line and no such partitions mounted: the platform cannot tell.
        assert_eq!(platform.running_slot(), None);

        let no_b = text.replace("b = \"/dev/mmcblk0p3\"\n", "");
        let err = Platform::new(&MinionConfig::parse(&no_b).unwrap()).unwrap_err();
        assert!(matches!(err, PlatformError::MissingPartitions), "{err}");
        let err =
            MinionConfig::parse(&text.replace("backend = \"uboot\"", "backend = \"grub\"")).unwrap_err();
        assert!(err.contains("grub"), "{err}");
        let err = MinionConfig::parse(&format!("{text}fw_env = \"x\"\n")).unwrap_err();
        assert!(err.contains("fw_env"), "unknown keys in [slots] are refused: {err}");
        let cmd = format!("{NODE}reboot_command = []\n");
        let err = Platform::new(&MinionConfig::parse(&cmd).unwrap()).unwrap_err();
        assert!(matches!(err, PlatformError::EmptyRebootCommand), "{err}");
    }

    #[test]
    fn the_running_slot_comes_from_the_kernel_command_line() {
        let line = "console=ttyS0 root=/dev/mmcblk0p3 meshlift.slot=b rootwait\n";
        assert_eq!(slot_from_cmdline(line), Some(SlotId::B));
        assert_eq!(slot_from_cmdline("meshlift.slot=c quiet"), None);
        assert_eq!(slot_from_cmdline("quiet"), None);
    }

    #[test]
    fn reboot_command_runs_and_its_failure_is_typed_with_stderr() {
        let ok = ["/bin/sh".to_string(), "-c".into(), "exit 0".into()];
        request_reboot(&ok, Duration::from_secs(5)).unwrap();
        let fail = ["/bin/sh".to_string(), "-c".into(), "echo 'Failed to connect to bus' >&2; exit 1".into()];
        let err = request_reboot(&fail, Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, CommandError::Failed { .. }), "{err}");
        assert!(err.to_string().contains("Failed to connect to bus"), "{err}");
    }
}
