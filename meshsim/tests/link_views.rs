//! Each node's radio file lists its links, up exactly when both ends run and no fault cuts it.

mod common;

use common::*;
use meshlift_meshsim::NodeState;
use std::time::Duration;

#[tokio::test]
async fn radio_files_follow_nodes_and_cuts() {
    let (sim, work) = start_chain(Duration::from_millis(200)).await;

    // All up: every alive link is up in both ends' files; the dead spare is listed, down.
    let leaf = radio_file(&sim, "leaf");
    let names: Vec<_> = leaf.links.iter().map(|l| (l.name.as_str(), l.peer.as_str(), l.up)).collect();
    assert_eq!(names, [("link-ap2-leaf", "ap2", true), ("link-pop-leaf", "pop", false)]);
    assert!(leaf.updated_ms > 0);
    assert!(radio_says(&sim, "ap", "link-ap-ap2") && radio_says(&sim, "ap2", "link-ap-ap2"));

    // A cut takes the link down in both files, restore brings it back.
    sim.cut_link("link-pop-ap").unwrap();
    assert!(!radio_says(&sim, "pop", "link-pop-ap"));
    assert!(!radio_says(&sim, "ap", "link-pop-ap"));
    assert_eq!(sim.has_path("leaf"), Some(false));
    sim.restore_link("link-pop-ap").unwrap();
    assert!(radio_says(&sim, "ap", "link-pop-ap"));
    assert_eq!(sim.has_path("leaf"), Some(true));

    // Restoring a link the file lists as dead brings it up.
    sim.restore_link("link-pop-leaf").unwrap();
    assert!(radio_says(&sim, "leaf", "link-pop-leaf"));

    // A node that is down takes its links down, the intra-site ethernet included.
    sim.power_off("ap2").unwrap();
    wait_until("ap2 off", Duration::from_secs(5), || sim.node_state("ap2") == Some(NodeState::Down)).await;
    assert!(!radio_says(&sim, "ap", "link-ap-ap2"));
    assert!(!radio_says(&sim, "leaf", "link-ap2-leaf"));
    assert!(radio_says(&sim, "pop", "link-pop-ap"), "unrelated link stays up");
    sim.power_on("ap2").unwrap();
    wait_until("ap2 back", Duration::from_secs(5), || radio_says(&sim, "leaf", "link-ap2-leaf")).await;
    assert!(radio_says(&sim, "ap", "link-ap-ap2"));

    // Unknown names are errors, not panics.
    assert!(sim.cut_link("no-such-link").is_err());
    assert!(sim.kill_node("no-such-node").is_err());
    // After stop every process is gone and the files say so.
    sim.stop().await;
    let text = std::fs::read_to_string(work.path().join("pop/data/radio.json")).unwrap();
    let view: meshlift_meshsim::RadioView = serde_json::from_str(&text).unwrap();
    assert!(view.links.iter().all(|l| !l.up), "{view:?}");
}
