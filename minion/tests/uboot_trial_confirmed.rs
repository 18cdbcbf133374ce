//! U-Boot backend, the happy path, on the real fw_printenv/fw_setenv: first boot adopts the
//! factory image already in slot A, COMMIT arms U-Boot's boot counter for slot B in one write,
//! the trial boot is consumed by the minion, CONFIRM makes B active, and every later power-on
//! boots B with nothing pending. Both environment copies stay valid (CRC) and alternate.

mod uboot_harness;

use meshlift_minion::boot::confirm_trial;
use meshlift_protocol::SlotId;
use uboot_harness::{crc32, Device, FACTORY_PAYLOAD, NEW_PAYLOAD};

#[test]
fn commit_trial_confirm_on_u_boot() {
    let mut dev = Device::manufacture();
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926, "the CRC-32 check value");

    // First boot: U-Boot has only its defaults; the factory image is checked against slot A's
    // bytes (slot A is the running root: it is not rewritten) and recorded.
    let first = dev.boot();
    assert!(first.first_boot && !first.trial && first.fallback.is_none());
    assert_eq!(first.booted, SlotId::A);
    dev.assert_on_confirmed_slot(&first);
    assert_eq!(dev.slot_payload(SlotId::A), FACTORY_PAYLOAD);
    assert_eq!(dev.var("bootlimit").as_deref(), Some("3"), "U-Boot's own variables are kept");

    // PREPARE writes slot B; COMMIT arms the trial in ONE fw_setenv.
    let img = dev.image("v2", "2.0.0", NEW_PAYLOAD);
    let flashed = dev.flash(&img).unwrap();
    assert_eq!(flashed.slot, SlotId::B);
    let flags_before: Vec<u8> = dev.copies().iter().map(|c| c.1).collect();
    dev.arm(&flashed, "commit-1").unwrap();
    let vars = dev.vars();
    assert_eq!(vars["meshlift_boot"], "b");
    assert_eq!(vars["meshlift_active"], "a");
    assert_eq!(vars["upgrade_available"], "1");
    assert_eq!(vars["bootcount"], "0");
    assert!(vars["meshlift_attempt"].contains("commit-1"));
    let copies = dev.copies();
    assert!(copies.iter().all(|c| c.0), "both copies carry a valid CRC");
    let newest = copies.iter().max_by_key(|c| c.1).unwrap();
    assert!(newest.2.contains(&"upgrade_available=1".to_string()), "the newest copy holds the commit");
    assert_eq!(
        copies.iter().map(|c| c.1).max().unwrap(),
        flags_before.iter().max().unwrap() + 1,
        "one write: the flag moved by one"
    );

    // Power-on: U-Boot counts the boot and starts B; the minion consumes the trial.
    let trial = dev.boot();
    assert!(trial.trial && trial.fallback.is_none());
    assert_eq!(trial.booted, SlotId::B);
    let vars = dev.vars();
    assert_eq!(vars["meshlift_boot"], "a", "from now on any reboot returns to the old slot");
    assert_eq!(vars["upgrade_available"], "0");
    assert!(vars.contains_key("meshlift_attempt"), "the attempt stays until confirm or fallback");

    // Post-boot checks passed: confirm.
    confirm_trial(&mut dev.bootloader, SlotId::B, flashed.sha256()).unwrap();
    let vars = dev.vars();
    assert_eq!(vars["meshlift_active"], "b");
    assert_eq!(vars["meshlift_boot"], "b");
    assert_eq!(vars["upgrade_available"], "0");
    assert_eq!(vars["bootcount"], "0");
    assert_eq!(vars["meshlift_confirmed_b"], flashed.sha256().to_hex());
    assert!(!vars.contains_key("meshlift_attempt"));

    // Any number of later power-ons: B, nothing pending, A still holds the confirmed factory image.
    for _ in 0..2 {
        let again = dev.boot();
        assert!(!again.trial && again.fallback.is_none());
        dev.assert_on_confirmed_slot(&again);
        assert_eq!(again.booted, SlotId::B);
    }
    assert_eq!(dev.slot_payload(SlotId::B), NEW_PAYLOAD);
    assert_eq!(dev.slot_payload(SlotId::A), FACTORY_PAYLOAD);
    assert_eq!(dev.rom.altboots, 0);
}
