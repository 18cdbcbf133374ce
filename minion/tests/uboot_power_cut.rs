//! U-Boot backend: the power goes between two environment writes, at every point of a trial, and
//! in the middle of one write. Whatever the cut, the node ends up booting a slot whose image is
//! confirmed here, with nothing pending in U-Boot.
//!
//! A trial is three writes by the minion, each ONE fw_setenv: arm (COMMIT), consume (the boot
//! step on the trial slot), confirm. The minion's fw_setenv is a wrapper that kills itself before
//! the real tool runs once the power budget is spent: the cut write never happens. Within one
//! write, libubootenv writes the copy not in use and only a complete copy with a valid CRC counts,
//! so a torn write leaves the old environment.

mod uboot_harness;

use meshlift_minion::boot::confirm_trial;
use meshlift_minion::BootOutcome;
use meshlift_protocol::SlotId;
use uboot_harness::{Device, PowerOn, ENV_SIZE, NEW_PAYLOAD};

/// Boots until the minion comes up and runs its boot step to the end (a cut mid-boot is
/// followed by another power-on, as the power comes back).
fn boot_until_up(dev: &mut Device) -> BootOutcome {
    for _ in 0..10 {
        match dev.power_on() {
            PowerOn::Booted(outcome) => return outcome,
            PowerOn::BootFailed(..) | PowerOn::Hung(_) => continue,
        }
    }
    panic!("the node never came up");
}

#[test]
fn a_cut_between_any_two_writes_leaves_a_bootable_confirmed_node() {
    // (writes that complete before the cut, slot the node ends on)
    let cases = [(0, SlotId::A), (1, SlotId::B), (2, SlotId::A), (3, SlotId::B)];
    for (writes, expected) in cases {
        let mut dev = Device::manufacture();
        dev.boot();
        let img = dev.image("v2", "2.0.0", NEW_PAYLOAD);
        let flashed = dev.flash(&img).unwrap();
        dev.writes_left(writes);

        // The minion's side of the trial, until the power goes.
        let cut = (|| {
            dev.arm(&flashed, "commit-1").ok()?;
            let trial = match dev.power_on() {
                PowerOn::Booted(outcome) => outcome,
                _ => return None,
            };
            assert!(trial.trial, "writes={writes}: the armed trial boots");
            confirm_trial(&mut dev.bootloader, SlotId::B, flashed.sha256()).ok()
        })()
        .is_none();
        assert_eq!(cut, writes < 3, "writes={writes}");

        dev.power_restored();
        let mut outcome = boot_until_up(&mut dev);
        if outcome.trial {
            // Power came back on the trial slot (the cut hit the consume): the checks run again
            // and confirm, as the agent would.
            confirm_trial(&mut dev.bootloader, SlotId::B, flashed.sha256()).unwrap();
            outcome = boot_until_up(&mut dev);
        }
        assert_eq!(outcome.booted, expected, "writes={writes}");
        dev.assert_on_confirmed_slot(&outcome);
        if expected == SlotId::A && writes > 0 {
            assert!(
                dev.env().failed_image(&flashed.sha256()).is_some(),
                "writes={writes}: recorded as failed"
            );
        }
    }
}

#[test]
fn a_write_torn_by_the_power_cut_leaves_the_old_environment() {
    let mut dev = Device::manufacture();
    dev.boot();
    let img = dev.image("v2", "2.0.0", NEW_PAYLOAD);
    let flashed = dev.flash(&img).unwrap();
    let before = dev.vars();
    dev.arm(&flashed, "commit-1").unwrap();
    assert_eq!(dev.var("upgrade_available").as_deref(), Some("1"));

    // The power went halfway through writing the new copy: its second half never reached the
    // medium (still the bytes of an older write there), so its CRC fails.
    let copies = dev.copies();
    let newest = if copies[0].1 > copies[1].1 { "uboot.env" } else { "uboot.env.redund" };
    let path = dev.root().join(newest);
    let mut bytes = std::fs::read(&path).unwrap();
    for b in &mut bytes[16..ENV_SIZE / 2] {
        *b = 0xff;
    }
    std::fs::write(&path, bytes).unwrap();
    assert_eq!(dev.copies().iter().filter(|c| c.0).count(), 1, "one valid copy left");

    assert_eq!(dev.vars(), before, "U-Boot and the minion read the environment from before the commit");
    let outcome = boot_until_up(&mut dev);
    assert_eq!(outcome.booted, SlotId::A);
    assert!(!outcome.trial && outcome.fallback.is_none(), "nothing was armed, nothing failed");
    dev.assert_on_confirmed_slot(&outcome);
}
