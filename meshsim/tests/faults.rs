//! Fault injection: kill (power cycle), hang/resume (SIGSTOP/SIGCONT), power cut during a flash.

mod common;

use common::*;
use meshlift_meshsim::{DownCause, MeshError, MeshEvent, NodeState};
use std::time::Duration;

const BOOT_DELAY: Duration = Duration::from_millis(200);

#[tokio::test]
async fn kill_power_cycles_the_node() {
    let (sim, _work) = start_chain(BOOT_DELAY).await;
    let mut events = sim.subscribe();
    let first_pid = sim.pid("ap2").unwrap();
    sim.kill_node("ap2").unwrap();
    wait_until("ap2 second boot", Duration::from_secs(5), || boots(&sim, "ap2") == 2).await;
    wait_until("ap2 up", Duration::from_secs(5), || sim.node_state("ap2") == Some(NodeState::Up)).await;
    assert!(!alive(first_pid), "old process is gone");
    assert_ne!(sim.pid("ap2"), Some(first_pid));
    let stats = sim.stats("ap2").unwrap();
    assert_eq!((stats.kills, stats.crashes, stats.reboots, stats.restarts()), (1, 0, 0, 1));
    let mut killed = false;
    while let Ok(e) = events.try_recv() {
        killed |= e == MeshEvent::NodeDown { node: "ap2".into(), cause: DownCause::Killed };
    }
    assert!(killed);
    sim.stop().await;
}

#[tokio::test]
async fn hang_freezes_the_agent_but_not_the_radio() {
    let (sim, _work) = start_chain(BOOT_DELAY).await;
    let pid = sim.pid("ap").unwrap();
    sim.hang_node("ap").unwrap();
    assert_eq!(sim.node_state("ap"), Some(NodeState::Hung));
    wait_until("stopped", Duration::from_secs(5), || proc_state(pid).as_deref() == Some("T")).await;

    // The frozen agent does not act on commands...
    command(&sim, "ap", "reboot");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(sim.data_dir("ap").unwrap().join("command").exists(), "hung node must not read commands");
    // ...but its radio still forwards: nothing behind it is cut off.
    assert_eq!(sim.has_path("leaf"), Some(true));
    assert!(sim.isolated_nodes().is_empty());

    sim.resume_node("ap").unwrap();
    assert_eq!(sim.node_state("ap"), Some(NodeState::Up));
    // Thawed, it reads the pending command and reboots.
    wait_until("ap rebooted", Duration::from_secs(5), || boots(&sim, "ap") == 2).await;
    assert_eq!(sim.reboots("ap"), 1);
    sim.stop().await;
}

#[tokio::test]
async fn faults_on_a_node_without_a_process_are_refused() {
    let (sim, _work) = start_chain(BOOT_DELAY).await;
    sim.power_off("leaf").unwrap();
    wait_until("leaf off", Duration::from_secs(5), || sim.node_state("leaf") == Some(NodeState::Down)).await;
    assert!(matches!(sim.hang_node("leaf"), Err(MeshError::NotRunning(_))));
    assert!(matches!(sim.hang_node("ghost"), Err(MeshError::Unknown(_))));
    // Powered off means off: no restart after the boot delay.
    tokio::time::sleep(BOOT_DELAY * 2).await;
    assert_eq!(sim.node_state("leaf"), Some(NodeState::Down));
    assert_eq!(boots(&sim, "leaf"), 1);
    sim.stop().await;
}

#[tokio::test]
async fn power_cut_during_flash_kills_mid_write() {
    let (sim, _work) = start_chain(BOOT_DELAY).await;
    const IMAGE: u64 = 4 << 20; // 4 MiB at 4 KiB per 10 ms: ~10 s, far longer than the kill.
    command(&sim, "ap", &format!("flash {IMAGE}"));
    sim.kill_during_flash("ap", Duration::from_secs(5)).await.unwrap();
    wait_until("ap second boot", Duration::from_secs(5), || boots(&sim, "ap") == 2).await;
    let written = std::fs::metadata(sim.data_dir("ap").unwrap().join("slots/b.img")).unwrap().len();
    assert!(written > 0 && written < IMAGE, "standby slot torn mid-write: {written} bytes");
    assert_eq!(sim.stats("ap").unwrap().kills, 1);

    // No flash started: the helper gives up instead of killing.
    let err = sim.kill_during_flash("pop", Duration::from_millis(50)).await.unwrap_err();
    assert!(matches!(err, MeshError::Timeout { .. }), "{err}");
    assert_eq!(sim.stats("pop").unwrap().kills, 0);
    sim.stop().await;
}

#[tokio::test]
async fn a_node_offline_in_the_topology_starts_powered_off() {
    let work = tempfile::TempDir::new().unwrap();
    let offline = CHAIN.replace(
        r#""pop_node": false, "status": 2, "site_name": "L""#,
        r#""pop_node": false, "status": 1, "site_name": "L""#,
    );
    let sim = meshlift_meshsim::MeshSim::start(config(&offline, &work, BOOT_DELAY)).await.unwrap();
    wait_until("ap booted", Duration::from_secs(5), || boots(&sim, "ap") == 1).await;
    assert_eq!(sim.node_state("leaf"), Some(NodeState::Down));
    assert_eq!(boots(&sim, "leaf"), 0);
    sim.power_on("leaf").unwrap();
    wait_until("leaf booted", Duration::from_secs(5), || boots(&sim, "leaf") == 1).await;
    assert_eq!(sim.has_path("leaf"), Some(true));
    sim.stop().await;
}
