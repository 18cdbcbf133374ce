//! U-Boot backend: the new image boots but fails its post-boot check. The minion records why
//! (one fw_setenv) and reboots; U-Boot starts the old slot at once (the minion consumed the boot
//! counter's trial at start), and the old image's minion reports the fallback with the reason.
//! The failed image is refused if offered again.

mod uboot_harness;

use meshlift_minion::boot::record_trial_failure;
use meshlift_minion::FlashError;
use meshlift_protocol::SlotId;
use uboot_harness::{Device, FACTORY_PAYLOAD, NEW_PAYLOAD};

#[test]
fn failed_post_boot_check_falls_back_to_the_old_slot() {
    let mut dev = Device::manufacture();
    dev.boot();
    let img = dev.image("v2", "2.0.0", NEW_PAYLOAD);
    let flashed = dev.flash(&img).unwrap();
    dev.arm(&flashed, "commit-1").unwrap();
    let trial = dev.boot();
    assert!(trial.trial);
    assert_eq!(trial.booted, SlotId::B);

    let reason = "post-boot-check hook exited with 1: radio calibration check failed";
    record_trial_failure(&mut dev.bootloader, reason).unwrap();
    assert!(dev.var("meshlift_attempt").unwrap().contains("radio calibration"));

    // The reboot: straight to A, U-Boot's fallback not even needed.
    let back = dev.boot();
    assert_eq!(back.booted, SlotId::A);
    assert!(!back.trial);
    let failed = back.fallback.clone().expect("the fallback is reported");
    assert_eq!(failed.reason, reason);
    assert_eq!(failed.version, "2.0.0");
    assert_eq!(failed.upgrade_req_id, "commit-1");
    dev.assert_on_confirmed_slot(&back);
    assert_eq!(dev.rom.altboots, 0);
    let vars = dev.vars();
    assert!(!vars.contains_key("meshlift_attempt"));
    assert!(vars["meshlift_failed_0"].contains(&flashed.sha256().to_hex()));
    assert_eq!(dev.slot_payload(SlotId::A), FACTORY_PAYLOAD);

    // Reported once: the next power-on is a plain boot of A.
    let again = dev.boot();
    assert!(again.fallback.is_none() && !again.trial);
    assert_eq!(again.booted, SlotId::A);

    // The same image is refused before a byte is written.
    match dev.flash(&img) {
        Err(FlashError::PreviouslyFailed { reason: r, .. }) => assert!(r.contains("radio calibration")),
        other => panic!("expected a refusal: {other:?}"),
    }
}
