//! The minion binary on a U-Boot node with raw slots (`[boot] backend = "uboot"`,
//! `[slots] backend = "block"`): the operator's offline tools read and change the U-Boot
//! environment through the real fw_printenv/fw_setenv, and U-Boot then boots what they chose.

mod uboot_harness;

use meshlift_minion::boot::confirm_trial;
use meshlift_protocol::{SlotId, SlotsReport};
use std::path::Path;
use std::process::Command;
use uboot_harness::{Device, BOARD, NEW_PAYLOAD};

fn minion(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meshlift-minion"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn versions_and_revert_work_on_the_u_boot_environment() {
    let mut dev = Device::manufacture();
    dev.boot();
    let img = dev.image("v2", "2.0.0", NEW_PAYLOAD);
    let flashed = dev.flash(&img).unwrap();
    dev.arm(&flashed, "commit-1").unwrap();
    assert!(dev.boot().trial);
    confirm_trial(&mut dev.bootloader, SlotId::B, flashed.sha256()).unwrap();

    let tools = dev.bootloader.tools().clone();
    let config = dev.root().join("minion.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"node-1\"\nmac = \"00:00:00:00:00:01\"\ndata_dir = {data:?}\ncontroller = \"tcp://127.0.0.1:1\"\n\
             board = \"{BOARD}\"\ntrusted_keys = []\ninsecure = true\nreboot = \"exit\"\n\
             [boot]\nbackend = \"uboot\"\nfw_env_config = {cfg:?}\nfw_printenv = {printenv:?}\nfw_setenv = {setenv:?}\n\
             cmdline = {cmdline:?}\n\
             [slots]\nbackend = \"block\"\na = {a:?}\nb = {b:?}\n",
            data = dev.data(),
            cfg = tools.fw_env_config,
            printenv = tools.fw_printenv,
            setenv = tools.fw_setenv,
            cmdline = dev.root().join("no-cmdline"),
            a = dev.partition(SlotId::A),
            b = dev.partition(SlotId::B),
        ),
    )
    .unwrap();

    let (code, stdout, stderr) = minion(&config, &["--versions"]);
    assert_eq!(code, 0, "{stderr}");
    let report: SlotsReport = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report.active, SlotId::B);
    assert_eq!(report.a.version.as_deref(), Some("1.0.0"));
    assert_eq!(report.b.version.as_deref(), Some("2.0.0"));
    assert!(report.a.confirmed && report.b.confirmed, "{report:?}");

    // Back to 1.0.0 on A, confirmed here before: one fw_setenv, and U-Boot boots A.
    let (code, stdout, stderr) = minion(&config, &["--revert-to-standby"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("slot a is now active"), "{stdout}");
    assert_eq!(dev.var("meshlift_active").as_deref(), Some("a"));
    assert_eq!(dev.var("meshlift_boot").as_deref(), Some("a"));
    let outcome = dev.boot();
    assert_eq!(outcome.booted, SlotId::A);
    assert!(!outcome.trial && outcome.fallback.is_none());
    dev.assert_on_confirmed_slot(&outcome);

    let (code, stdout, stderr) = minion(&config, &["--clear-failed", "all"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("cleared 0"), "{stdout}");

    // A broken environment tool is a clear error naming it, not a guess.
    let broken = std::fs::read_to_string(&config).unwrap().replace(
        &format!("fw_printenv = {:?}", tools.fw_printenv),
        "fw_printenv = \"/nonexistent/fw_printenv\"",
    );
    std::fs::write(&config, broken).unwrap();
    let (code, _, stderr) = minion(&config, &["--versions"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("/nonexistent/fw_printenv"), "{stderr}");
}
