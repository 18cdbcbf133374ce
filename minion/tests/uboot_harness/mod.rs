//! A device with a U-Boot environment and raw slots, all in files: the REAL `fw_printenv` and
//! `fw_setenv` (libubootenv) on a redundant, file-backed environment (two copies of 0x4000 bytes
//! named by an `fw_env.config`), two "partitions" (regular files of the partition's size) behind
//! [`BlockSlotStore`], and a fake U-Boot ROM that does at power-on what U-Boot does.
//!
//! The minion's side is the library calls the binary makes: [`boot_on`] at start (with the slot
//! the kernel command line would name), [`arm_trial`], [`confirm_trial`],
//! [`record_trial_failure`]. Its `fw_setenv` goes through a wrapper that can lose power: once the
//! test allows no more writes, the wrapper kills itself before the real tool runs.

#![allow(dead_code)]

use meshlift_image::{build_image, generate_keypair, load_public_key, load_signing_key, BuildOptions};
use meshlift_image::{SigningKey, VerifyingKey};
use meshlift_minion::block_slots::BlockSlotStore;
use meshlift_minion::boot::{boot_on, BootError, BootOutcome, BootTarget, Factory};
use meshlift_minion::boot_env::{BootEnv, Bootloader, TrialAttempt};
use meshlift_minion::slots::{SlotError, SlotStore};
use meshlift_minion::uboot::{UBootBootloader, UBootTools};
use meshlift_minion::{verify_and_flash, FlashRequest, FlashedImage};
use meshlift_protocol::SlotId;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const BOARD: &str = "uboot-board";
/// Size of each environment copy (`CONFIG_ENV_SIZE`).
pub const ENV_SIZE: usize = 0x4000;
/// Size of each slot partition.
pub const PARTITION: u64 = 256 * 1024;
pub const BOOTLIMIT: u64 = 3;
pub const FACTORY_PAYLOAD: &[u8] = b"factory rootfs 1.0.0, written at manufacturing";
pub const NEW_PAYLOAD: &[u8] = b"rootfs 2.0.0 -- the new image under trial";

/// U-Boot's compiled-in environment as a device ships it (what the sample boot script sets).
const DEFAULT_ENV: &str = "\
bootdelay=0
bootlimit=3
meshlift_bootargs=setenv bootargs console=ttyS0 root=/dev/mmcblk0p${meshlift_part} meshlift.slot=${meshlift_boot} rootwait
bootcmd=if test ${meshlift_boot} = b; then setenv meshlift_part 3; else setenv meshlift_part 2; fi; run meshlift_bootargs; run meshlift_load
altbootcmd=setenv meshlift_boot ${meshlift_active}; setenv upgrade_available 0; saveenv; run bootcmd
";

/// What U-Boot does at power-on; the test's stand-in for the boot ROM and the bootloader.
pub trait Rom {
    /// Powers the device on: returns the slot the bootloader starts.
    fn power_on(&mut self) -> SlotId;
}

/// U-Boot's `CONFIG_BOOTCOUNT_LIMIT` with `CONFIG_BOOTCOUNT_ENV`, and the sample script's
/// `bootcmd`/`altbootcmd`: while `upgrade_available=1`, `bootcount` is incremented and saved;
/// past `bootlimit`, `altbootcmd` returns `meshlift_boot` to `meshlift_active`, clears
/// `upgrade_available`, saves, and boots that. Its `saveenv` is the real `fw_setenv`.
pub struct UBootRom {
    pub env: UBootBootloader,
    /// How many times `altbootcmd` ran.
    pub altboots: u32,
}

impl Rom for UBootRom {
    fn power_on(&mut self) -> SlotId {
        let vars = self.env.read_vars().expect("U-Boot reads its environment");
        let num = |k: &str| vars.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let mut bootcount = 0;
        if num("upgrade_available") == 1 {
            bootcount = num("bootcount") + 1;
            self.env.write_vars(&[set("bootcount", &bootcount.to_string())]).expect("saveenv");
        }
        let limit = num("bootlimit");
        if limit > 0 && bootcount > limit {
            self.altboots += 1;
            let active = vars.get("meshlift_active").cloned().unwrap_or_else(|| "a".into());
            self.env
                .write_vars(&[set("meshlift_boot", &active), set("upgrade_available", "0")])
                .expect("saveenv in altbootcmd");
            return slot(&active);
        }
        slot(vars.get("meshlift_boot").or(vars.get("meshlift_active")).map_or("a", String::as_str))
    }
}

fn slot(s: &str) -> SlotId {
    if s == "b" {
        SlotId::B
    } else {
        SlotId::A
    }
}

pub fn set(name: &str, value: &str) -> (String, Option<String>) {
    (name.to_string(), Some(value.to_string()))
}

/// What happened at one power-on.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // a test value, one at a time
pub enum PowerOn {
    /// The kernel of this slot hung before the minion started (the watchdog will reset it).
    Hung(SlotId),
    /// The minion started and ran its boot step.
    Booted(BootOutcome),
    /// The minion started but its boot step failed (e.g. the power went while it wrote).
    BootFailed(SlotId, BootError),
}

pub struct Device {
    pub dir: tempfile::TempDir,
    pub key: SigningKey,
    pub trusted: Vec<VerifyingKey>,
    /// The minion's view of the environment (its `fw_setenv` can lose power).
    pub bootloader: UBootBootloader,
    pub rom: UBootRom,
    /// Slots whose kernel hangs at boot.
    pub hangs: Vec<SlotId>,
    /// The slot the last power-on started.
    pub running: Option<SlotId>,
    pub now: u64,
}

impl Device {
    /// A device fresh from manufacturing: slot A holds the factory image's payload, the
    /// environment holds U-Boot's defaults only (no `meshlift_*` yet). Fails loudly when the tools
    /// are not installed: CI installs them (`.ci/setup`: libubootenv-tool).
    pub fn manufacture() -> Device {
        let (printenv, setenv) = (which("fw_printenv"), which("fw_setenv"));
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        for copy in ["uboot.env", "uboot.env.redund"] {
            std::fs::write(root.join(copy), vec![0u8; ENV_SIZE]).unwrap();
        }
        let config = root.join("fw_env.config");
        std::fs::write(
            &config,
            format!(
                "# device offset size\n{} 0x0 {ENV_SIZE:#x}\n{} 0x0 {ENV_SIZE:#x}\n",
                root.join("uboot.env").display(),
                root.join("uboot.env.redund").display()
            ),
        )
        .unwrap();
        // The first write starts from U-Boot's defaults (`-f`), as `saveenv` on a new board does.
        let defaults = root.join("u-boot-initial-env");
        std::fs::write(&defaults, DEFAULT_ENV).unwrap();
        let status = std::process::Command::new(&setenv)
            .args([
                "-c".as_ref(),
                config.as_os_str(),
                "-f".as_ref(),
                defaults.as_os_str(),
                "bootdelay".as_ref(),
                "0".as_ref(),
            ])
            .status()
            .unwrap();
        assert!(status.success(), "fw_setenv could not create the environment");
        // The minion's fw_setenv: loses power when `power_budget` says no writes are left.
        let wrapper = root.join("fw_setenv-minion");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nbudget={budget}\nif [ -e \"$budget\" ]; then\n  left=$(cat \"$budget\")\n  \
                 if [ \"$left\" -le 0 ]; then kill -9 $$; fi\n  echo $((left - 1)) > \"$budget\"\nfi\n\
                 exec {setenv} \"$@\"\n",
                budget = root.join("power_budget").display(),
                setenv = setenv.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let tools = UBootTools {
            fw_env_config: config,
            fw_printenv: printenv.clone(),
            fw_setenv: wrapper,
            default_env: None,
            timeout: Duration::from_secs(10),
        };
        let rom_tools = UBootTools { fw_setenv: setenv, ..tools.clone() };
        let paths = generate_keypair(&root.join("keys")).unwrap();
        let device = Device {
            key: load_signing_key(&paths.private).unwrap(),
            trusted: vec![load_public_key(&paths.public).unwrap()],
            bootloader: UBootBootloader::new(tools),
            rom: UBootRom { env: UBootBootloader::new(rom_tools), altboots: 0 },
            hangs: Vec::new(),
            running: None,
            now: 1_700_000_000_000,
            dir,
        };
        device.image("factory", "1.0.0", FACTORY_PAYLOAD);
        // The factory writes slot A; the rest of each partition is erased flash.
        let mut part_a = FACTORY_PAYLOAD.to_vec();
        part_a.resize(PARTITION as usize, 0xff);
        std::fs::write(device.partition(SlotId::A), part_a).unwrap();
        std::fs::write(device.partition(SlotId::B), vec![0xffu8; PARTITION as usize]).unwrap();
        device
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn data(&self) -> PathBuf {
        self.root().join("data")
    }

    pub fn partition(&self, slot: SlotId) -> PathBuf {
        self.root().join(format!("mmcblk0p{}", if slot == SlotId::A { 2 } else { 3 }))
    }

    pub fn slots(&self, booted: SlotId) -> BlockSlotStore {
        BlockSlotStore::open(&self.partition(SlotId::A), &self.partition(SlotId::B), &self.data(), booted)
            .unwrap()
    }

    /// Builds a signed image in the device's directory.
    pub fn image(&self, file: &str, version: &str, payload: &[u8]) -> PathBuf {
        let payload_path = self.root().join(format!("{file}.payload"));
        std::fs::write(&payload_path, payload).unwrap();
        let out = self.root().join(format!("{file}.mlimg"));
        let options = BuildOptions {
            name: "os".into(),
            version: version.into(),
            hardware_board_ids: vec![BOARD.into()],
            payload: payload_path,
            hooks: vec![],
            created: 0,
        };
        build_image(&options, Some(&self.key), &out).unwrap();
        out
    }

    /// Power on: the ROM picks a slot; a hanging kernel stops there, otherwise the minion runs its
    /// boot step knowing the slot it runs from (`meshlift.slot=` on the kernel command line).
    pub fn power_on(&mut self) -> PowerOn {
        self.now += 60_000;
        let slot = self.rom.power_on();
        self.running = Some(slot);
        if self.hangs.contains(&slot) {
            return PowerOn::Hung(slot);
        }
        let factory = self.root().join("factory.mlimg");
        let (a, b, data) = (self.partition(SlotId::A), self.partition(SlotId::B), self.data());
        let open = move |booted: SlotId| -> Result<Box<dyn SlotStore>, SlotError> {
            Ok(Box::new(BlockSlotStore::open(&a, &b, &data, booted)?))
        };
        let target = BootTarget { bootloader: &mut self.bootloader, open_slots: &open, running: Some(slot) };
        let factory = Factory { image: Some(&factory), trusted_keys: &self.trusted, board: BOARD };
        match boot_on(target, factory, self.now) {
            Ok(outcome) => PowerOn::Booted(outcome),
            Err(e) => PowerOn::BootFailed(slot, e),
        }
    }

    /// Power on, expecting the minion to come up.
    pub fn boot(&mut self) -> BootOutcome {
        match self.power_on() {
            PowerOn::Booted(outcome) => outcome,
            other => panic!("expected the minion to start: {other:?}"),
        }
    }

    /// PREPARE: verify and write `image` to the standby slot of the running system.
    pub fn flash(&mut self, image: &Path) -> Result<FlashedImage, meshlift_minion::FlashError> {
        let booted = self.running.expect("the device is running");
        let mut slots = self.slots(booted);
        let installed = slots.image(booted).unwrap().map(|i| i.manifest.version).unwrap_or_default();
        let failed = self.env().failed;
        let req = FlashRequest {
            image_path: image,
            trusted_keys: &self.trusted,
            board: BOARD,
            installed_version: Some(&installed),
            allow_downgrade: false,
            expected_sha256: None,
            failed_images: &failed,
            hooks: None,
        };
        let mut standby = slots.standby();
        verify_and_flash(&req, standby.as_mut())
    }

    /// The attempt the agent hands to `arm_trial` at COMMIT.
    pub fn attempt(&self, flashed: &FlashedImage, req: &str) -> TrialAttempt {
        TrialAttempt {
            slot: flashed.slot,
            image_sha256: flashed.sha256(),
            version: flashed.version().to_string(),
            upgrade_req_id: req.into(),
            fail_reason: None,
            extra: Default::default(),
        }
    }

    /// COMMIT: [`meshlift_minion::boot::arm_trial`] with the agent's attempt.
    pub fn arm(&mut self, flashed: &FlashedImage, req: &str) -> Result<(), BootError> {
        let attempt = self.attempt(flashed, req);
        meshlift_minion::boot::arm_trial(&mut self.bootloader, attempt)
    }

    pub fn env(&self) -> BootEnv {
        self.bootloader.load().unwrap().expect("meshlift wrote the environment")
    }

    /// Every variable, as `fw_printenv` prints them.
    pub fn vars(&self) -> BTreeMap<String, String> {
        self.rom.env.read_vars().unwrap()
    }

    pub fn var(&self, name: &str) -> Option<String> {
        self.vars().get(name).cloned()
    }

    /// Allows the minion `n` more environment writes; the next one dies as the power goes.
    pub fn writes_left(&self, n: u32) {
        std::fs::write(self.root().join("power_budget"), n.to_string()).unwrap();
    }

    /// The power is back for good: no limit on writes.
    pub fn power_restored(&self) {
        let _ = std::fs::remove_file(self.root().join("power_budget"));
    }

    /// The bytes at the start of a slot's partition, as long as its image's payload.
    pub fn slot_payload(&self, slot: SlotId) -> Vec<u8> {
        use std::io::Read;
        let slots = self.slots(slot);
        let mut out = Vec::new();
        slots.open_payload(slot).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    /// The node runs a slot whose image is confirmed here, and nothing is pending in U-Boot.
    pub fn assert_on_confirmed_slot(&self, outcome: &BootOutcome) {
        let env = self.env();
        assert_eq!(outcome.booted, env.active, "runs the active slot");
        let image = self.slots(outcome.booted).image(outcome.booted).unwrap().expect("slot has an image");
        assert_eq!(env.confirmed(outcome.booted), Some(image.file_sha256), "its image is confirmed");
        assert_eq!(self.var("upgrade_available").as_deref(), Some("0"));
        assert_eq!(self.var("meshlift_boot").as_deref(), Some(outcome.booted.as_str()));
    }

    /// Both environment copies, each as `(crc_ok, flags, variables)`: libubootenv's redundant
    /// format is a little-endian CRC-32 of the data area, one flag byte (the copy with the higher
    /// flag is current), then `name=value\0…\0\0`.
    pub fn copies(&self) -> Vec<(bool, u8, Vec<String>)> {
        ["uboot.env", "uboot.env.redund"]
            .iter()
            .map(|f| {
                let bytes = std::fs::read(self.root().join(f)).unwrap();
                assert_eq!(bytes.len(), ENV_SIZE);
                let crc = u32::from_le_bytes(bytes[..4].try_into().unwrap());
                let data = &bytes[5..];
                let vars = data
                    .split(|b| *b == 0)
                    .take_while(|v| !v.is_empty())
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect();
                (crc32(data) == crc, bytes[4], vars)
            })
            .collect()
    }
}

/// CRC-32 (IEEE, reflected, as zlib's `crc32` that libubootenv and U-Boot use).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn which(tool: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{tool} is not installed: run .ci/setup (Debian package libubootenv-tool)"))
}
