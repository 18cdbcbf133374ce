//! The fleet routes of the HTTP API (issue 17) on a small mesh, with a token of each role:
//! `GET /api/v1/versions` with filters, image tags and `GET /api/v1/images?tag=`, and snapshots —
//! create (operator), list and restore dry run (viewer), delete (admin) — each refused with a
//! problem document below its role, and listed in the OpenAPI document.

use meshlift_meshsim::lab::LAB_OPERATOR;
use meshlift_protocol::Role;
use meshlift_tests::*;
use serde_json::{json, Value};
use std::time::Duration;

async fn call(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb = http.request(method, format!("{base}{path}")).bearer_auth(token);
    if let Some(b) = body {
        rb = rb.header("content-type", "application/json").body(b.to_string());
    }
    let resp = rb.send().await.expect("the controller answers HTTP");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_routes_answer_by_role_and_agree_with_the_cli() {
    let (mut cfg, _dir) = lab_config(small_topology());
    cfg.extra_operators = vec![("otto".into(), Role::Operator), ("vera".into(), Role::Viewer)];
    let (lab, v2) = start_with_v2(cfg).await;
    lab.wait_all_reported(Duration::from_secs(60)).await.expect("every node reports");
    let (base, http) = (lab.http_url(), reqwest::Client::new());
    let otto = lab.api_token("otto").expect("otto").to_string();
    let vera = lab.api_token("vera").expect("vera").to_string();
    let admin = lab.api_token(LAB_OPERATOR).expect("admin").to_string();
    use reqwest::Method as M;

    let (s, doc) = call(&http, &base, M::GET, "/api/v1/openapi.json", &vera, None).await;
    assert_eq!(s, 200);
    for route in [
        "/api/v1/versions",
        "/api/v1/images/{name}/tags",
        "/api/v1/snapshots",
        "/api/v1/snapshots/{name}",
        "/api/v1/snapshots/{name}/restore",
    ] {
        assert!(doc["paths"].get(route).is_some(), "OpenAPI lacks {route}");
    }

    // Versions: every node, filters on the controller, the same totals the CLI prints.
    let (s, v) = call(&http, &base, M::GET, "/api/v1/versions", &vera, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["nodes"].as_array().map(Vec::len), Some(lab.cfg.topology.nodes.len()));
    assert_eq!(v["by_version"][V1], lab.cfg.topology.nodes.len());
    let (_, site) = call(&http, &base, M::GET, "/api/v1/versions?site=R", &vera, None).await;
    let names: Vec<&str> =
        site["nodes"].as_array().unwrap().iter().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(names, ["relay", "relay2"]);
    let out = cli(&lab, &["versions", "--site", "R", "--json"]);
    let from_cli: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(from_cli["by_version"], site["by_version"], "CLI and API count the same nodes");
    let (s, p) = call(&http, &base, M::GET, "/api/v1/versions?sight=R", &vera, None).await;
    assert_eq!((s, p["field"].as_str()), (400, Some("sight")));

    // Tags: a viewer may not; an operator tags `latest` (= v2); the list filters by tag.
    let tag = json!({"add": ["stable"], "reason": "api test"});
    let (s, _) = call(&http, &base, M::POST, "/api/v1/images/latest/tags", &vera, Some(tag.clone())).await;
    assert_eq!(s, 403);
    let (s, r) = call(&http, &base, M::POST, "/api/v1/images/latest/tags", &otto, Some(tag)).await;
    assert_eq!(s, 200, "{r}");
    let (_, list) = call(&http, &base, M::GET, "/api/v1/images?tag=stable", &vera, None).await;
    assert_eq!(list[0]["name"], v2.as_str());
    assert_eq!(list[0]["tags"], json!(["stable"]));
    let (_, none) = call(&http, &base, M::GET, "/api/v1/images?tag=old", &vera, None).await;
    assert_eq!(none, json!([]));

    // Snapshots by role.
    let body = json!({"name": "api-snap", "sites": ["L1", "L2"], "reason": "api test"});
    let (s, _) = call(&http, &base, M::POST, "/api/v1/snapshots", &vera, Some(body.clone())).await;
    assert_eq!(s, 403);
    let (s, r) = call(&http, &base, M::POST, "/api/v1/snapshots", &otto, Some(body.clone())).await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = call(&http, &base, M::POST, "/api/v1/snapshots", &otto, Some(body)).await;
    assert_eq!(s, 409, "a taken name is refused: {r}");
    let (s, list) = call(&http, &base, M::GET, "/api/v1/snapshots", &vera, None).await;
    assert_eq!(s, 200);
    let nodes: Vec<&str> =
        list[0]["nodes"].as_array().unwrap().iter().filter_map(|n| n["node"].as_str()).collect();
    assert_eq!(nodes, ["leaf1", "leaf2"]);
    assert_eq!(list[0]["created_by"], "otto");
    let (s, r) = call(
        &http,
        &base,
        M::POST,
        "/api/v1/snapshots/api-snap/restore",
        &vera,
        Some(json!({"dry_run": true})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["campaign"]["unchanged"], json!(["leaf1", "leaf2"]), "nothing changed since: {r}");
    let (s, _) =
        call(&http, &base, M::POST, "/api/v1/snapshots/api-snap/restore", &vera, Some(json!({}))).await;
    assert_eq!(s, 403, "a real restore needs the operator role");
    let (s, _) = call(&http, &base, M::DELETE, "/api/v1/snapshots/api-snap", &otto, None).await;
    assert_eq!(s, 403, "delete needs admin");
    let (s, r) = call(&http, &base, M::DELETE, "/api/v1/snapshots/api-snap?reason=done", &admin, None).await;
    assert_eq!(s, 200, "{r}");
    let (_, list) = call(&http, &base, M::GET, "/api/v1/snapshots", &vera, None).await;
    assert_eq!(list, json!([]));
    // The journal has who and why.
    let j = journal(&lab);
    assert!(j.iter().any(|e| e.message.contains("snapshot api-snap taken: 2 node(s)")
        && e.operator.as_ref().is_some_and(|o| o.who == "otto" && o.reason.as_deref() == Some("api test"))));
    lab.stop().await;
}
