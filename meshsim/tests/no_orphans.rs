//! No node process, nor anything a node spawned, outlives the simulation.

mod common;

use common::*;
use std::time::Duration;

/// Every fake node spawns a grandchild; returns all pids (nodes and grandchildren).
async fn all_pids(sim: &meshlift_meshsim::MeshSim) -> Vec<u32> {
    let mut pids = Vec::new();
    for node in ALL {
        command(sim, node, "spawn");
    }
    for node in ALL {
        let file = sim.data_dir(node).unwrap().join("grandchild.pid");
        wait_until("grandchild", Duration::from_secs(5), || {
            std::fs::read_to_string(&file).map(|s| !s.is_empty()).unwrap_or(false)
        })
        .await;
        pids.push(std::fs::read_to_string(&file).unwrap().trim().parse().unwrap());
        pids.push(sim.pid(node).unwrap());
    }
    assert!(pids.iter().all(|&p| alive(p)));
    pids
}

#[tokio::test]
async fn stop_leaves_no_process() {
    let (sim, _work) = start_chain(Duration::from_millis(100)).await;
    let pids = all_pids(&sim).await;
    sim.stop().await;
    wait_until("all dead", Duration::from_secs(5), || pids.iter().all(|&p| !alive(p))).await;
}

#[tokio::test]
async fn drop_leaves_no_process() {
    let (sim, _work) = start_chain(Duration::from_millis(100)).await;
    let pids = all_pids(&sim).await;
    drop(sim);
    wait_until("all dead", Duration::from_secs(5), || pids.iter().all(|&p| !alive(p))).await;
}

#[tokio::test]
async fn reboot_kills_what_the_old_boot_spawned() {
    let (sim, _work) = start_chain(Duration::from_millis(100)).await;
    command(&sim, "ap", "spawn");
    let file = sim.data_dir("ap").unwrap().join("grandchild.pid");
    wait_until("grandchild", Duration::from_secs(5), || file.exists()).await;
    wait_until("pid written", Duration::from_secs(5), || {
        std::fs::read_to_string(&file).is_ok_and(|s| !s.is_empty())
    })
    .await;
    let grandchild: u32 = std::fs::read_to_string(&file).unwrap().trim().parse().unwrap();
    command(&sim, "ap", "reboot");
    wait_until("grandchild gone", Duration::from_secs(5), || !alive(grandchild)).await;
    sim.stop().await;
}
