//! The minion binary with `reboot = "command"`: a trial that never hears from its controller
//! falls back, records why in the boot environment, runs the configured reboot command, and then
//! waits for the shutdown instead of exiting (a supervisor restarting it before the reboot would
//! run the boot step on the old system).

mod harness;

use harness::Node;
use meshlift_protocol::{SlotId, UpgradeStatusType as S};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn edit(path: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

#[test]
fn a_failed_trial_runs_the_reboot_command_and_waits_for_the_shutdown() {
    // 2.0.0 committed on slot B; the in-process agent is on trial. Re-arm the trial on disk so the
    // binary's boot step boots it, with a 1 s confirm timeout: no controller will ever answer.
    let mut node = Node::new();
    let img = node.image("v2", "2.0.0", b"rootfs v2.0.0", &[]);
    node.prepare("p1", &img);
    node.finish_download(Ok(img));
    node.commit("c1");
    assert_eq!(node.status(), S::Trial);
    node.agent = None;
    edit(&node.data().join("bootenv.json"), |v| v["trial"] = json!("B"));
    edit(&node.data().join("upgrade_state.json"), |v| v["trial"]["confirm_timeout_s"] = json!(1));

    let marker = node.dir.path().join("reboot-requested");
    let config = node.dir.path().join("minion.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"node-1\"\nmac = \"00:00:00:00:00:01\"\ndata_dir = {:?}\ncontroller = \"tcp://127.0.0.1:1\"\n\
             board = \"sim\"\ntrusted_keys = []\ninsecure = true\nreboot = \"command\"\n\
             reboot_command = [\"/bin/sh\", \"-c\", \"echo $$ > {}\"]\n",
            node.data(),
            marker.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshlift-minion"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let started = Instant::now();
    while !marker.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the minion exited instead of rebooting");
        assert!(started.elapsed() < Duration::from_secs(20), "the reboot command never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The failure was recorded before the reboot: the old slot's minion will report it.
    let env: Value =
        serde_json::from_slice(&std::fs::read(node.data().join("bootenv.json")).unwrap()).unwrap();
    assert_eq!(env["trial"], Value::Null, "the trial was consumed at boot");
    assert_eq!(env["active"], json!("A"));
    let reason = env["attempt"]["fail_reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("not passed within 1s"), "{env}");

    // Requested, not exited: the minion waits to be stopped by the shutdown.
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "the minion must wait for the shutdown");
    child.kill().unwrap();
    child.wait().unwrap();

    // The shutdown came: the node boots the old slot and reports the fallback with that reason.
    node.crash();
    assert_eq!(node.running_slot, SlotId::A);
    assert_eq!(node.status(), S::FellBack);
    assert!(node.agent().status().reason.contains("not passed within 1s"));
}
