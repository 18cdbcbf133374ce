//! One node's persistent hardware in memory: the boot environment and the two A/B slots behind the
//! minion's own traits ([`Bootloader`], [`SlotStore`]), and the upgrade state file.
//!
//! The real boot step ([`meshlift_minion::boot::boot_step`]) and the real boot-environment changes
//! (`arm_trial`, `confirm_trial`, `record_trial_failure`) run against these, so what is simulated
//! is only the medium. Two media faults are modelled:
//! - a power cut during a boot-environment write: the write is atomic on real media (U-Boot's
//!   redundant environment, a rename), so the environment afterwards is either the old or the new
//!   one, never a mix; the process dies at once;
//! - a full disk: slot writes fail with `ENOSPC`, as a real `write(2)` would.

use meshlift_minion::boot_env::{BootEnv, BootEnvError, Bootloader};
use meshlift_minion::slots::{SlotError, SlotImage, SlotStore, StandbySlot};
use meshlift_minion::state::PersistedState;
use meshlift_protocol::{SlotId, SlotsReport};
use sha2::{Digest, Sha256};
use std::io::{self, Cursor, Read};
use std::path::PathBuf;

/// What survives a power cycle on one node.
#[derive(Debug, Clone, Default)]
pub struct Disk {
    /// `None` only before the factory install; the simulator installs it at creation.
    pub env: Option<BootEnv>,
    pub slot_a: SlotData,
    pub slot_b: SlotData,
    /// `<data>/upgrade_state.json` (the agent's `Action::Persist`).
    pub state: Option<PersistedState>,
    /// A power cut armed for the next boot-environment write: `Some(true)` leaves the new
    /// environment, `Some(false)` the old one.
    pub env_cut: Option<bool>,
    /// Set by a write that lost power; the simulator kills the node as soon as it sees it.
    pub power_lost: bool,
    /// Bumped by every write to the environment or a slot: the checks re-hash only what changed.
    pub writes: u64,
}

/// One slot: what its metadata says and the bytes on the medium.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotData {
    /// `None`: empty, or a write never completed (invalidated before the first byte).
    pub meta: Option<SlotImage>,
    pub payload: Vec<u8>,
}

impl SlotData {
    /// The slot holds a complete image whose bytes match its metadata: U-Boot can boot it.
    pub fn bootable(&self) -> bool {
        self.meta.as_ref().is_some_and(|m| {
            m.manifest.payload_size == self.payload.len() as u64
                && m.manifest.payload_sha256.0 == <[u8; 32]>::from(Sha256::digest(&self.payload))
        })
    }
}

impl Disk {
    pub fn slot(&self, id: SlotId) -> &SlotData {
        match id {
            SlotId::A => &self.slot_a,
            SlotId::B => &self.slot_b,
        }
    }

    /// The boot environment as the simulator reads it (no fault applies to reads).
    pub fn env(&self) -> Option<&BootEnv> {
        self.env.as_ref()
    }

    /// Boot-environment access for the minion's boot functions.
    pub fn bootloader(&mut self) -> MemBootloader<'_> {
        MemBootloader { disk: self }
    }

    /// Slot access as the minion running from `booted` has it.
    pub fn slots(&mut self, booted: SlotId, no_space: bool) -> MemSlots<'_> {
        // Handing out write access counts as a write (the checks look again).
        self.writes += 1;
        MemSlots { a: &mut self.slot_a, b: &mut self.slot_b, booted, no_space }
    }

    /// The report both slots make, from [`meshlift_minion::slots_report`] itself.
    pub fn slots_report(&mut self, booted: SlotId) -> Option<SlotsReport> {
        let env = self.env.clone()?;
        // Read-only use: not counted as a write.
        let slots = MemSlots { a: &mut self.slot_a, b: &mut self.slot_b, booted, no_space: false };
        Some(meshlift_minion::slots_report(&slots, &env))
    }
}

/// [`Bootloader`] on a [`Disk`].
pub struct MemBootloader<'a> {
    disk: &'a mut Disk,
}

impl Bootloader for MemBootloader<'_> {
    fn load(&self) -> Result<Option<BootEnv>, BootEnvError> {
        Ok(self.disk.env.clone())
    }

    fn store(&mut self, env: &BootEnv) -> Result<(), BootEnvError> {
        if let Some(applied) = self.disk.env_cut.take() {
            if applied {
                self.disk.env = Some(env.clone());
            }
            self.disk.power_lost = true;
            self.disk.writes += 1;
            return Err(BootEnvError::Io {
                path: PathBuf::from("sim:bootenv"),
                source: io::Error::other("power cut during the boot-environment write"),
            });
        }
        self.disk.env = Some(env.clone());
        self.disk.writes += 1;
        Ok(())
    }
}

/// [`SlotStore`] on a [`Disk`]: only the slot not booted is handed out for writing.
pub struct MemSlots<'a> {
    a: &'a mut SlotData,
    b: &'a mut SlotData,
    booted: SlotId,
    no_space: bool,
}

impl MemSlots<'_> {
    fn get(&self, id: SlotId) -> &SlotData {
        match id {
            SlotId::A => self.a,
            SlotId::B => self.b,
        }
    }
}

impl SlotStore for MemSlots<'_> {
    fn booted(&self) -> SlotId {
        self.booted
    }

    fn image(&self, slot: SlotId) -> Result<Option<SlotImage>, SlotError> {
        Ok(self.get(slot).meta.clone())
    }

    fn open_payload(&self, slot: SlotId) -> Result<Box<dyn Read + '_>, SlotError> {
        Ok(Box::new(Cursor::new(self.get(slot).payload.as_slice())))
    }

    fn standby(&mut self) -> Box<dyn StandbySlot + '_> {
        let id = self.booted.other();
        let data = match id {
            SlotId::A => &mut *self.a,
            SlotId::B => &mut *self.b,
        };
        Box::new(MemStandby { id, data, no_space: self.no_space })
    }
}

struct MemStandby<'a> {
    id: SlotId,
    data: &'a mut SlotData,
    no_space: bool,
}

impl StandbySlot for MemStandby<'_> {
    fn id(&self) -> SlotId {
        self.id
    }

    fn invalidate(&mut self) -> Result<(), SlotError> {
        self.data.meta = None;
        Ok(())
    }

    fn write_payload(&mut self, src: &mut dyn Read, len: u64) -> Result<(), SlotError> {
        let path = PathBuf::from(format!("sim:slot-{}", self.id.as_str()));
        if self.no_space {
            return Err(SlotError::Io { path, source: io::Error::from_raw_os_error(28) });
        }
        let mut bytes = Vec::new();
        src.take(len).read_to_end(&mut bytes).map_err(|source| SlotError::Io { path, source })?;
        let written = bytes.len() as u64;
        self.data.payload = bytes;
        if written != len {
            return Err(SlotError::ShortSource { slot: self.id.as_str(), written, expected: len });
        }
        Ok(())
    }

    fn read_back(&self) -> Result<Box<dyn Read + '_>, SlotError> {
        Ok(Box::new(Cursor::new(self.data.payload.as_slice())))
    }

    fn record(&mut self, image: &SlotImage) -> Result<(), SlotError> {
        self.data.meta = Some(image.clone());
        Ok(())
    }
}
