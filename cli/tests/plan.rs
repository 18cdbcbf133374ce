//! `meshlift plan` as an operator runs it: the documentation figure, and bad input.

use std::collections::BTreeSet;
use std::process::Command;

fn meshlift() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meshlift"))
}

fn figure() -> String {
    format!("{}/../configs/topologies/figure.json", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn plan_json_on_the_documentation_figure_is_a_legal_plan() {
    let out = meshlift().args(["plan", "--topology", &figure(), "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("exactly one JSON object");
    assert_eq!(v["ap_groups"], serde_json::json!({"F": ["G", "H"]}));
    assert_eq!(v["unplanned"], serde_json::json!([]));
    let batches: Vec<Vec<String>> = serde_json::from_value(v["batches"].clone()).unwrap();
    // Every node exactly once, names sorted within a batch.
    let mut seen = BTreeSet::new();
    for b in &batches {
        let mut sorted = b.clone();
        sorted.sort();
        assert_eq!(&sorted, b);
        for n in b {
            assert!(seen.insert(n.clone()), "{n} twice");
        }
    }
    assert_eq!(seen.len(), 8);
    // One of the four plans Terragraph can produce for the figure (reference §4.2): the AP group
    // F+G+H goes together, at most one POP (a1, c1) per batch, and the first batch is legal.
    let f_batch = batches.iter().find(|b| b.contains(&"f1".to_string())).unwrap();
    assert!(f_batch.contains(&"g1".to_string()) && f_batch.contains(&"h1".to_string()));
    for b in &batches {
        assert!(!(b.contains(&"a1".to_string()) && b.contains(&"c1".to_string())));
    }
    assert_eq!(
        batches,
        vec![vec!["c1", "d1", "f1", "g1", "h1"], vec!["a1", "b1"], vec!["e1"]]
            .into_iter()
            .map(|b| b.into_iter().map(String::from).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    );
}

#[test]
fn plan_human_output_explains_groups_and_outages() {
    let out = meshlift().args(["plan", "--topology", &figure(), "--limit", "2"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("AP groups"), "{text}");
    assert!(text.contains("Outages per site"), "{text}");
    assert!(text.contains("WARNING"), "AP group F+G+H exceeds limit 2: {text}");
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    let cases: Vec<Vec<String>> = vec![
        vec!["--topology".into(), dir.path().join("missing.json").display().to_string()],
        vec!["--topology".into(), bad.display().to_string()],
        vec!["--topology".into(), figure(), "--exclude".into(), "a1,nosuchnode".into()],
    ];
    for args in cases {
        let out = meshlift().arg("plan").args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn excluding_the_pop_of_a_single_pop_line_stages_it() {
    let line = format!("{}/../configs/topologies/single-pop-line.json", env!("CARGO_MANIFEST_DIR"));
    let out = meshlift().args(["plan", "--topology", &line, "--json", "--exclude", "a1"]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ap_groups"], serde_json::json!({"B": ["C", "D"]}));
    let out = meshlift()
        .args(["plan", "--topology", &line, "--json", "--exclude", "a1", "--ap-policy", "dependents-first"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["batches"], serde_json::json!([["d1"], ["c1"], ["b1"]]));
}

/// A — x1 (offline, excluded) — Y: upstream's GraphHelper has no vertex for X, so Y has no path to
/// the POP and is never in a batch; excluding x1 must not bring it back online.
#[test]
fn an_excluded_offline_node_still_cuts_off_what_hangs_behind_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.json");
    let node = |name: &str, site: &str, pop: bool, status: u8, mac: u8| {
        serde_json::json!({"name": name, "node_type": 2, "mac_addr": format!("02:00:00:00:00:{mac:02x}"),
            "pop_node": pop, "status": status, "site_name": site})
    };
    let link = |a: &str, z: &str| {
        serde_json::json!({"name": format!("link-{a}-{z}"), "a_node_name": a, "z_node_name": z,
            "link_type": 1, "is_alive": true})
    };
    let sites: Vec<serde_json::Value> =
        ["A", "X", "Y"].iter().map(|s| serde_json::json!({"name": s})).collect();
    let topology = serde_json::json!({
        "name": "cut",
        "sites": sites,
        "nodes": [node("a1", "A", true, 2, 1), node("x1", "X", false, 1, 2), node("y1", "Y", false, 2, 3)],
        "links": [link("a1", "x1"), link("x1", "y1")],
    });
    std::fs::write(&path, topology.to_string()).unwrap();
    let out = meshlift()
        .args(["plan", "--topology", &path.display().to_string(), "--json", "--exclude", "x1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["batches"], serde_json::json!([["a1"]]));
    assert_eq!(v["unplanned"], serde_json::json!(["y1"]));
}

#[test]
fn fewest_batches_plans_the_figure_in_fewer_batches_and_shows_both_costs() {
    let out = meshlift()
        .args([
            "plan",
            "--topology",
            &figure(),
            "--json",
            "--strategy",
            "fewest-batches",
            "--max-pops-per-batch",
            "2",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["strategy"], "fewest-batches");
    let batches: Vec<Vec<String>> = serde_json::from_value(v["batches"].clone()).unwrap();
    let nodes: BTreeSet<&String> = batches.iter().flatten().collect();
    assert_eq!(nodes.len(), 8, "every node once: {batches:?}");
    let ours = v["costs"]["fewest-batches"]["batches"].as_u64().unwrap();
    let terragraph = v["costs"]["terragraph"]["batches"].as_u64().unwrap();
    assert_eq!(ours, batches.len() as u64);
    assert!(ours < terragraph, "{ours} batches against Terragraph's {terragraph}");
    let human = meshlift()
        .args(["plan", "--topology", &figure(), "--strategy", "fewest-batches", "--max-pops-per-batch", "2"])
        .output()
        .unwrap();
    let text = String::from_utf8(human.stdout).unwrap();
    assert!(text.contains("Cost of each strategy"), "{text}");
    assert!(text.contains("strategy fewest-batches"), "{text}");
}
