//! A node that asks for a reboot (exit 10) or crashes comes back after the boot delay, and the
//! two are counted apart.

mod common;

use common::*;
use meshlift_meshsim::{DownCause, MeshEvent, NodeState};
use std::time::{Duration, Instant};

const BOOT_DELAY: Duration = Duration::from_millis(400);

#[tokio::test]
async fn reboot_request_restarts_after_boot_delay() {
    let (sim, _work) = start_chain(BOOT_DELAY).await;
    let mut events = sim.subscribe();
    let asked = Instant::now();
    command(&sim, "ap", "reboot");

    wait_until("ap down", Duration::from_secs(5), || sim.node_state("ap") == Some(NodeState::Down)).await;
    wait_until("ap second boot", Duration::from_secs(5), || boots(&sim, "ap") == 2).await;
    assert!(asked.elapsed() >= BOOT_DELAY, "restarted before the boot delay: {:?}", asked.elapsed());
    wait_until("ap up", Duration::from_secs(5), || sim.node_state("ap") == Some(NodeState::Up)).await;

    assert_eq!(sim.reboots("ap"), 1);
    assert_eq!(sim.restarts("ap"), 1);
    assert_eq!(sim.crashes("ap"), 0);
    assert_eq!(sim.restarts("pop"), 0, "other nodes untouched");

    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    let down = seen
        .iter()
        .position(|e| *e == MeshEvent::NodeDown { node: "ap".into(), cause: DownCause::Reboot })
        .expect("reboot event");
    let up = seen.iter().position(|e| *e == MeshEvent::NodeUp { node: "ap".into() }).expect("up event");
    assert!(down < up);

    let log = std::fs::read_to_string(sim.log_path("ap").unwrap()).unwrap();
    assert_eq!(log.matches("fake node ap booted").count(), 2, "stdout of both boots in minion.log:\n{log}");
    sim.stop().await;
}

#[tokio::test]
async fn crash_restarts_too_and_is_counted_as_a_crash() {
    let (sim, _work) = start_chain(BOOT_DELAY).await;
    let mut events = sim.subscribe();
    command(&sim, "leaf", "crash");
    wait_until("leaf second boot", Duration::from_secs(5), || boots(&sim, "leaf") == 2).await;
    wait_until("stats", Duration::from_secs(5), || sim.crashes("leaf") == 1).await;
    assert_eq!(sim.reboots("leaf"), 0);
    assert_eq!(sim.restarts("leaf"), 1);
    let mut crashed = false;
    while let Ok(e) = events.try_recv() {
        crashed |=
            e == MeshEvent::NodeDown { node: "leaf".into(), cause: DownCause::Crash { code: Some(3) } };
    }
    assert!(crashed, "crash event with exit code 3");
    sim.stop().await;
}
