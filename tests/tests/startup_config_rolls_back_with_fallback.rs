//! A fleet-wide startup configuration travels with v2: nodes that confirm v2 run it, a node whose
//! v2 fails its post-boot check falls back to v1 *and* to v1's configuration (none: the factory
//! image came without one), and `meshlift config diff` says which node is out of step.

use meshlift_protocol::Role;
use meshlift_protocol::*;
use meshlift_tests::*;

const DOC: &str = "{\"radio\": {\"channel\": 2, \"tx_power_dbm\": 18}}\n";

/// The node's data directory (beside its minion config in the lab's work dir).
fn data_dir(lab: &meshlift_meshsim::lab::Lab, node: &str) -> std::path::PathBuf {
    let cfg = lab.mesh.config_path(node).expect("node config");
    let text = std::fs::read_to_string(cfg).expect("minion config");
    let v: toml::Table = toml::from_str(&text).expect("TOML");
    v["data_dir"].as_str().expect("data_dir").into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_configuration_comes_back_with_the_old_image_after_a_fallback() {
    let (mut cfg, dir) = lab_config(small_topology());
    cfg.bad_image_nodes = vec!["leaf1".into()];
    cfg.extra_operators = vec![("otto".into(), Role::Operator), ("vera".into(), Role::Viewer)];
    let (lab, image) = start_with_v2(cfg).await;
    let file = dir.path().join("radio.json");
    std::fs::write(&file, DOC).unwrap();
    let digest = meshlift_controller::engine::startup_config::digest(DOC);

    let out = cli(&lab, &["config", "set", "--fleet", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "--reason is required: {out:?}");
    let out =
        cli(&lab, &["config", "set", "--fleet", file.to_str().unwrap(), "--reason", "channel plan 2026"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"radio\": ").unwrap();
    let out = cli(&lab, &["config", "set", "--node", "leaf2", bad.to_str().unwrap(), "--reason", "typo"]);
    assert!(!out.status.success(), "a document that is neither JSON nor TOML is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither valid JSON"), "{out:?}");

    let id = lab.submit(full_upgrade_request("e2e-cfg", &image, 60)).await.expect("accepted");
    let mut log = BatchLog::default();
    let dump = finish(&lab, &id, &mut log).await;
    let commits = outcomes(&dump, &id, UpgradeReqType::CommitUpgrade);
    assert_eq!(commits["leaf1"].outcome, OutcomeKind::FellBack, "{:?}", commits["leaf1"]);

    let status = lab.node_status().await.expect("status");
    for row in &status.nodes {
        if row.name == "leaf1" {
            assert_eq!(row.version.as_deref(), Some(V1));
            assert_eq!(row.startup_config, None, "leaf1 runs v1's configuration again");
        } else {
            assert_eq!(row.version.as_deref(), Some(V2), "{}", row.name);
            assert_eq!(row.startup_config, Some(digest), "{} runs the new configuration", row.name);
        }
    }
    // On the nodes: the running document is the booted slot's; leaf1 keeps v2's beside slot B.
    let leaf2 = data_dir(&lab, "leaf2");
    assert_eq!(std::fs::read_to_string(leaf2.join("startup-config")).unwrap(), DOC);
    let leaf1 = data_dir(&lab, "leaf1");
    assert!(!leaf1.join("startup-config").exists(), "no configuration active on leaf1");
    assert_eq!(std::fs::read_to_string(leaf1.join("slots/b.config")).unwrap(), DOC);

    let diff = cli(&lab, &["config", "diff", "--node", "leaf1"]);
    assert_eq!(diff.status.code(), Some(1), "{diff:?}");
    assert!(String::from_utf8_lossy(&diff.stdout).contains("differs"), "{diff:?}");
    let diff = cli(&lab, &["config", "diff", "--node", "leaf2"]);
    assert!(diff.status.success(), "{diff:?}");
    // The same over the HTTP API: a viewer may read, not set; an operator sets a node's own
    // document, which now differs from what the node runs.
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/config", lab.http_url());
    let otto = lab.api_token("otto").expect("token").to_string();
    let vera = lab.api_token("vera").expect("token").to_string();
    let body =
        serde_json::json!({"node": "leaf2", "text": "[radio]\nchannel = 3\n", "reason": "interference"});
    let r = http
        .post(&url)
        .bearer_auth(&vera)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 403);
    let r = http
        .post(&url)
        .bearer_auth(&otto)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    let both = serde_json::json!({"node": "leaf2", "fleet": true, "text": "{}"});
    let r = http
        .post(&url)
        .bearer_auth(&otto)
        .header("content-type", "application/json")
        .body(both.to_string())
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 400);
    let r = http.get(format!("{url}?node=leaf2")).bearer_auth(&vera).send().await.expect("answer");
    let v: serde_json::Value = serde_json::from_str(&r.text().await.expect("body")).expect("JSON");
    assert_eq!(v["effective"]["scope"], "node:leaf2", "{v}");
    assert_eq!(v["effective"]["version"], 2, "{v}");
    assert_eq!(v["running"], digest.to_hex(), "{v}");
    assert_eq!(v["in_sync"], false, "{v}");
    let doc = http.get(format!("{}/api/v1/openapi.json", lab.http_url())).send().await.expect("answer");
    let doc: serde_json::Value = serde_json::from_str(&doc.text().await.expect("body")).expect("JSON");
    assert!(doc["paths"]["/api/v1/config"]["post"].is_object(), "OpenAPI lists /api/v1/config");
    assert!(doc["components"]["schemas"]["ConfigBody"].is_object());

    // Journaled with who and why.
    let j = journal(&lab);
    assert!(
        j.iter().any(|e| e.message.starts_with("startup configuration of fleet set: version 1")
            && e.operator.as_ref().is_some_and(|o| o.reason.as_deref() == Some("channel plan 2026"))),
        "{j:?}"
    );
    lab.stop().await;
}
