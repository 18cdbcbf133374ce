//! The operator's path: a real controller and five real minion processes, driven only through
//! the `meshlift` CLI — image list, prepare, commit dry run, commit — checking outcomes through
//! `--json`.

use meshlift_tests::*;
use serde_json::Value;

fn json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("one JSON object ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn all_succeeded(v: &Value, nodes: usize) {
    let outcomes = v["outcomes"].as_array().expect("outcomes");
    assert_eq!(outcomes.len(), nodes, "{v}");
    for o in outcomes {
        assert_eq!(o["outcome"], "Succeeded", "{o}");
    }
    assert_eq!(v["success"], true, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_drives_a_prepare_and_a_commit() {
    let (cfg, _dir) = lab_config(small_topology());
    let (lab, name) = start_with_v2(cfg).await;
    let n = lab.cfg.topology.nodes.len();

    let images = json(&cli(&lab, &["image", "list", "--json"]));
    let text = images.to_string();
    assert!(text.contains(V2) && text.contains("magnet:?"), "{text}");

    let prep = json(&cli(
        &lab,
        &["upgrade", "network", "prepare", "--image", &name, "--reason", "e2e prepare", "--watch", "--json"],
    ));
    all_succeeded(&prep, n);

    let plan = json(&cli(&lab, &["upgrade", "network", "commit", "--dry-run", "--json"]));
    assert!(plan.to_string().contains("relay"), "{plan}");

    let commit = json(&cli(
        &lab,
        &["upgrade", "network", "commit", "--reason", "e2e commit", "--watch", "--json", "--yes"],
    ));
    all_succeeded(&commit, n);

    let status = json(&cli(&lab, &["status", "--json"]));
    let nodes = status["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), n);
    for node in nodes {
        assert_eq!(node["version"], V2, "{node}");
        assert_eq!(node["slots"]["booted"], node["slots"]["active"], "{node}");
    }
    lab.stop().await;
}
