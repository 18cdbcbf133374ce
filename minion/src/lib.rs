//! meshlift minion: the node agent (sans-IO core), slots and boot environment, downloader,
//! flasher, post-boot checks and hooks.
//!
//! - [`boot`]: what U-Boot does at start (consume a trial, notice a fallback, first-boot factory
//!   install) and the few boot-environment changes (arm, confirm, record failure, revert).
//! - [`boot_env`], [`slots`]: the hardware behind traits ([`Bootloader`], [`SlotStore`]) with
//!   file-backed implementations; the running slot cannot be written through the API.
//!   [`uboot`]: the boot environment in U-Boot's (fw_printenv/fw_setenv, boot-count fallback);
//!   [`block_slots`]: slots on raw partitions; [`platform`]: the backends the config selects,
//!   the reboot command and the radio; [`command`]: running those tools with bounds.
//! - [`flasher`]: verify an image, write the standby slot, read it back.
//! - [`agent`]: the upgrade state machine; its docs hold the contract with the binary shell.
//! - [`startup_config`]: the configuration document kept per slot and made active with it.
//! - [`state`]: the persisted upgrade state; [`hooks`]: image hooks; [`radio`]: link states;
//!   [`config`]: the TOML config; [`data_lock`]: one process at a time on the data directory.
//! - [`systemd`]: READY=1 after the boot step and watchdog pings from the main loop (no-ops
//!   outside systemd).
//!
//! # Panics
//! Nothing read from the network, the disk or the operator panics: every failure is a typed error
//! whose text becomes a status reason. The few `expect`s state the invariant they rely on; a
//! panic is a bug.

pub mod agent;
pub mod block_slots;
pub mod boot;
pub mod boot_env;
pub mod command;
pub mod config;
pub mod data_lock;
pub mod download;
mod durable;
pub mod flasher;
pub mod hooks;
pub mod platform;
pub mod radio;
pub mod slots;
pub mod startup_config;
pub mod state;
pub mod systemd;
pub mod uboot;

pub use agent::{exit_code_reboot, Action, Agent, AgentInit, NodeFacts, REBOOT_EXIT_CODE};
pub use boot::{boot, BootError, BootOutcome, Factory};
pub use boot_env::{BootEnv, Bootloader, FailedImage, FileBootloader, TrialAttempt};
pub use config::{ConfigError, MinionConfig};
pub use data_lock::{DataDirLock, LockError};
pub use durable::{remove_stale_temps, write_atomically, Extra, STATE_FORMAT};
pub use flasher::{verify_and_flash, FlashError, FlashRequest, FlashedImage};
pub use radio::{FileRadio, Radio, RadioError};
pub use slots::{slots_report, FileSlotStore, SlotImage, SlotStore, StandbySlot};
pub use state::{load_state, save_state, PersistedState};
