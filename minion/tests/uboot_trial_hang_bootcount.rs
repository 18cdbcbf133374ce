//! U-Boot backend: the new image hangs before the minion starts (a kernel panic, init stuck), so
//! no software of ours runs. The hardware watchdog resets the board each time; U-Boot counts the
//! boots, and past `bootlimit` runs `altbootcmd`, which returns to the old slot. The old image's
//! minion then reports the silent failure.

mod uboot_harness;

use meshlift_minion::boot::SILENT_TRIAL_FAILURE;
use meshlift_protocol::SlotId;
use uboot_harness::{Device, PowerOn, BOOTLIMIT, NEW_PAYLOAD};

#[test]
fn a_hang_before_the_minion_starts_falls_back_by_bootcount() {
    let mut dev = Device::manufacture();
    dev.boot();
    let img = dev.image("v2", "2.0.0", NEW_PAYLOAD);
    let flashed = dev.flash(&img).unwrap();
    dev.arm(&flashed, "commit-1").unwrap();
    dev.hangs.push(SlotId::B);

    let mut hung = 0;
    let outcome = loop {
        match dev.power_on() {
            PowerOn::Hung(slot) => {
                assert_eq!(slot, SlotId::B);
                hung += 1;
                assert_eq!(dev.var("bootcount"), Some(hung.to_string()), "U-Boot saved its count");
                assert!(hung <= BOOTLIMIT, "U-Boot must give up after bootlimit boots");
            }
            PowerOn::Booted(outcome) => break outcome,
            PowerOn::BootFailed(slot, e) => panic!("boot step failed on {slot:?}: {e}"),
        }
    };
    assert_eq!(hung, BOOTLIMIT, "B was tried exactly bootlimit times");
    assert_eq!(dev.rom.altboots, 1);
    assert_eq!(outcome.booted, SlotId::A);
    assert!(!outcome.trial);
    let failed = outcome.fallback.clone().expect("the silent failure is reported");
    assert_eq!(failed.reason, SILENT_TRIAL_FAILURE);
    assert_eq!(failed.sha256, flashed.sha256());
    dev.assert_on_confirmed_slot(&outcome);
    assert_eq!(dev.env().failed.len(), 1);

    // Stable afterwards: A again, U-Boot's counter idle.
    let again = dev.boot();
    assert_eq!(again.booted, SlotId::A);
    assert!(again.fallback.is_none());
    assert_eq!(dev.rom.altboots, 1);
}
