//! `meshlift-minion --revert-to-standby` (and the other offline tools) while the minion is up:
//! refused with the running minion's pid, the slots and boot environment left as they were.

mod harness;

use harness::Node;
use meshlift_minion::DataDirLock;
use meshlift_protocol::{SlotId, UpgradeStatusType as S};
use std::path::Path;
use std::process::Command;

fn minion(config: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meshlift-minion"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn revert_to_standby_is_refused_while_the_minion_holds_the_data_directory() {
    // 2.0.0 confirmed on B; A still holds the confirmed 1.0.0, so a revert would be allowed.
    let mut node = Node::new();
    let img = node.image("v2", "2.0.0", b"rootfs v2.0.0", &[]);
    node.prepare("p1", &img);
    node.finish_download(Ok(img));
    node.commit("c1");
    node.ack();
    assert_eq!(node.status(), S::Confirmed);
    assert_eq!(node.env().active, SlotId::B);

    let config = node.dir.path().join("minion.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"node-1\"\nmac = \"00:00:00:00:00:01\"\ndata_dir = \"{}\"\n\
             controller = \"tcp://127.0.0.1:1\"\nboard = \"sim\"\ntrusted_keys = []\ninsecure = true\n",
            node.data().display()
        ),
    )
    .unwrap();
    let env_file = node.data().join("bootenv.json");
    let env_before = std::fs::read(&env_file).unwrap();
    let slots_before: Vec<Vec<u8>> = [SlotId::A, SlotId::B].map(|s| node.slot_bytes(s)).to_vec();

    // This test process stands in for the running agent.
    let running = DataDirLock::acquire(&node.data()).unwrap();
    let expected = format!("the minion is running (pid {}); stop it first", std::process::id());
    for args in [&["--revert-to-standby"][..], &["--clear-failed", "all"], &["--versions"]] {
        let (code, stderr) = minion(&config, args);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(stderr.contains(&expected), "{args:?}: {stderr}");
    }
    assert_eq!(std::fs::read(&env_file).unwrap(), env_before, "boot environment untouched");
    assert_eq!(node.env().active, SlotId::B);
    assert_eq!([SlotId::A, SlotId::B].map(|s| node.slot_bytes(s)).to_vec(), slots_before);

    // Once the minion is stopped the same command works.
    drop(running);
    let (code, stderr) = minion(&config, &["--revert-to-standby"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(node.env().active, SlotId::A);
}
