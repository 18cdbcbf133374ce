//! The HTTP/JSON API end to end, on a small mesh: every route with a token of each role, the
//! refusals an NMS integrator meets (no token 401, too low a role 403, bad input 400 naming the
//! field), the journal recording the token's name, the event stream, and the OpenAPI document
//! listing every route.

use meshlift_protocol::Role;
use meshlift_tests::*;
use serde_json::{json, Value};
use std::time::Duration;

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.header("content-type", "application/json").body(b.to_string());
        }
        let resp = rb.send().await.expect("the controller answers HTTP");
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or("").to_string())
            .unwrap_or_default();
        let text = resp.text().await.expect("body");
        if status >= 400 {
            assert_eq!(ctype, "application/problem+json", "{path}: errors are problem documents: {text}");
        }
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body)).await
    }

    async fn upload(&self, file: &std::path::Path, token: &str) -> (u16, Value) {
        let bytes = std::fs::read(file).expect("image file");
        let resp = self
            .http
            .post(format!("{}/api/v1/images?reason=api%20test", self.base))
            .bearer_auth(token)
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .expect("upload");
        let status = resp.status().as_u16();
        (status, serde_json::from_str(&resp.text().await.expect("body")).expect("JSON reply"))
    }
}

/// A problem document with the RFC 9457 members, and (for bad input) the field it names.
fn assert_problem(v: &Value, status: u16, field: Option<&str>) {
    assert_eq!(v["status"], status, "{v}");
    for member in ["type", "title", "detail"] {
        assert!(v[member].as_str().is_some_and(|s| !s.is_empty()), "problem lacks {member}: {v}");
    }
    if let Some(f) = field {
        assert_eq!(v["field"], f, "{v}");
        assert!(v["detail"].as_str().unwrap().contains(f), "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_with_roles_refusals_and_named_fields() {
    let (mut cfg, _dir) = lab_config(small_topology());
    cfg.extra_operators = vec![("otto".into(), Role::Operator), ("vera".into(), Role::Viewer)];
    let lab = meshlift_meshsim::lab::Lab::start(cfg).await.expect("lab starts");
    let api = Api { base: lab.http_url(), http: reqwest::Client::new() };
    let otto = lab.api_token("otto").expect("otto's token").to_string();
    let vera = lab.api_token("vera").expect("vera's token").to_string();
    let (otto, vera) = (Some(otto.as_str()), Some(vera.as_str()));

    // OpenAPI: open, and lists every route.
    let (s, doc) = api.get("/api/v1/openapi.json", None).await;
    assert_eq!(s, 200);
    let paths = doc["paths"].as_object().expect("paths");
    for route in [
        "/api/v1/whoami",
        "/api/v1/images",
        "/api/v1/images/{name}",
        "/api/v1/upgrades",
        "/api/v1/abort",
        "/api/v1/state",
        "/api/v1/commit-plan",
        "/api/v1/nodes",
        "/api/v1/journal",
        "/api/v1/map",
        "/api/v1/golden",
        "/api/v1/events",
        "/api/v1/openapi.json",
    ] {
        assert!(paths.contains_key(route), "OpenAPI lacks {route}: {:?}", paths.keys().collect::<Vec<_>>());
    }
    assert!(doc["components"]["schemas"]["UpgradeRequestBody"]["properties"]["limit"].is_object());

    // 401: no token, an unknown token; /metrics and /healthz stay open.
    let (s, p) = api.get("/api/v1/state", None).await;
    assert_eq!(s, 401);
    assert_problem(&p, 401, None);
    let (s, _) = api.get("/api/v1/state", Some("mlt_0000")).await;
    assert_eq!(s, 401);
    assert_eq!(api.get("/healthz", None).await.0, 200);
    assert_eq!(api.get("/metrics", None).await.0, 200);

    let (s, me) = api.get("/api/v1/whoami", vera).await;
    assert_eq!((s, me["name"].as_str(), me["role"].as_str()), (200, Some("vera"), Some("viewer")));

    // The event stream, as the viewer, opened before anything happens (token in the query, as a
    // browser's EventSource sends it).
    let sse = api
        .http
        .get(format!("{}/api/v1/events?access_token={}", api.base, vera.unwrap()))
        .send()
        .await
        .expect("event stream");
    assert_eq!(sse.status().as_u16(), 200);
    let mut sse = sse.bytes_stream();

    // Images: empty; a viewer may not upload (403); an operator uploads v2 and v1, deletes v1.
    let (s, list) = api.get("/api/v1/images", vera).await;
    assert_eq!((s, list.as_array().map(Vec::len)), (200, Some(0)));
    let (s, p) = api.upload(&lab.v2_path, vera.unwrap()).await;
    assert_eq!(s, 403, "{p}");
    assert_problem(&p, 403, None);
    let (s, v2) = api.upload(&lab.v2_path, otto.unwrap()).await;
    assert_eq!(s, 201, "{v2}");
    assert_eq!(v2["version"], V2);
    let v2_name = v2["name"].as_str().unwrap().to_string();
    let (s, v1) = api.upload(&lab.v1_path, otto.unwrap()).await;
    assert_eq!(s, 201, "{v1}");
    let v1_name = v1["name"].as_str().unwrap().to_string();
    let del = format!("/api/v1/images/{v1_name}?reason=cleanup");
    assert_eq!(api.call(reqwest::Method::DELETE, &del, vera, None).await.0, 403);
    let (s, r) = api.call(reqwest::Method::DELETE, &del, otto, None).await;
    assert_eq!(s, 200, "{r}");
    let (_, list) = api.get("/api/v1/images", vera).await;
    let names: Vec<&str> = list.as_array().unwrap().iter().filter_map(|i| i["name"].as_str()).collect();
    assert_eq!(names, vec![v2_name.as_str()]);

    // Bad input: 400 naming the field.
    let bad = |body: Value| api.post("/api/v1/upgrades", otto, body);
    let (s, p) = bad(json!({"type": "prepare", "image": v2_name, "limit": "two"})).await;
    assert_eq!(s, 400);
    assert_problem(&p, 400, Some("limit"));
    let (s, p) = bad(json!({"type": "upgrade-everything"})).await;
    assert_eq!(s, 400);
    assert_problem(&p, 400, Some("type"));
    let (s, p) = bad(json!({"type": "prepare", "imagee": v2_name})).await;
    assert_eq!(s, 400);
    assert_problem(&p, 400, Some("imagee"));
    let (s, p) = bad(json!({"type": "prepare"})).await;
    assert_eq!(s, 400);
    assert_problem(&p, 400, Some("image"));
    let (s, p) = api.post("/api/v1/commit-plan", vera, json!({"strategy": "fastest"})).await;
    assert_eq!(s, 400);
    assert_problem(&p, 400, Some("strategy"));

    // 403: a viewer may not start anything; an operator may not go above the batch-limit cap
    // (admin only), exactly as on the app socket.
    let prep = json!({"type": "prepare", "image": v2_name, "nodes": ["leaf1"], "request_id": "api-prep-1",
        "reason": "api test"});
    let (s, p) = api.post("/api/v1/upgrades", vera, prep.clone()).await;
    assert_eq!(s, 403);
    assert!(p["detail"].as_str().unwrap().contains("needs role operator"), "{p}");
    let mut wide = prep.clone();
    wide["limit"] = json!(1000);
    let (s, p) = api.post("/api/v1/upgrades", otto, wide).await;
    assert_eq!(s, 403, "{p}");

    // An operator's prepare is queued (202) and aborted; a refused duplicate id is a 409.
    let (s, r) = api.post("/api/v1/upgrades", otto, prep.clone()).await;
    assert_eq!((s, r["request_id"].as_str()), (202, Some("api-prep-1")), "{r}");
    let (s, p) = api.post("/api/v1/upgrades", otto, prep).await;
    assert_eq!(s, 409, "{p}");
    let (s, p) = api.post("/api/v1/abort", otto, json!({})).await;
    assert_eq!(s, 400);
    assert_problem(&p, 400, Some("request_ids"));
    let (s, r) = api
        .post(
            "/api/v1/abort",
            otto,
            json!({"request_ids": ["api-prep-1"], "reset_status": true, "reason": "test"}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let state = loop {
        let (s, state) = api.get("/api/v1/state", vera).await;
        assert_eq!(s, 200);
        if state["finished"].as_array().unwrap().iter().any(|f| f["request_id"] == "api-prep-1") {
            break state;
        }
        assert!(std::time::Instant::now() < deadline, "aborted request never finished: {state}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(state["current"].is_null(), "{state}");

    // The event stream saw the operator's command.
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    use futures::StreamExt;
    while !(text.contains("event: engine") && text.contains("otto")) {
        let chunk = tokio::time::timeout_at(deadline, sse.next()).await.expect("an engine event within 10 s");
        text.push_str(&String::from_utf8_lossy(&chunk.expect("stream open").expect("bytes")));
    }
    assert!(text.starts_with("event: hello"), "{text}");

    // Commit plan (viewer): batches, AP groups and the blast radius of each strategy.
    let (s, plan) = api.post("/api/v1/commit-plan", vera, json!({})).await;
    assert_eq!(s, 200, "{plan}");
    assert!(plan["batches"].is_array() && plan["ap_groups"].is_object(), "{plan}");
    assert!(
        plan["costs"].as_array().is_some_and(|c| c.iter().all(|c| c["largest_blast_radius"].is_u64())),
        "{plan}"
    );

    // Node table: filters and paging; unknown parameters and bad numbers name the parameter.
    let (s, page) = api.get("/api/v1/nodes?site=R", vera).await;
    assert_eq!(s, 200);
    let names: Vec<&str> =
        page["nodes"].as_array().unwrap().iter().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!((page["total"].as_u64(), names), (Some(2), vec!["relay", "relay2"]));
    let (_, page) = api.get("/api/v1/nodes?limit=2&offset=4", vera).await;
    assert_eq!((page["total"].as_u64(), page["nodes"].as_array().unwrap().len()), (Some(5), 1));
    // leaf1 goes back to NONE once its RESET_STATUS lands; then all five match both filters.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, page) = api.get(&format!("/api/v1/nodes?version={V1}&state=none"), vera).await;
        if page["total"].as_u64() == Some(5) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "every node runs v1 and is idle after the reset: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, page) = api.get("/api/v1/nodes?state=CONFIRMED", vera).await;
    assert_eq!(page["total"].as_u64(), Some(0));
    let (s, p) = api.get("/api/v1/nodes?limit=0", vera).await;
    assert_eq!(s, 400);
    assert_problem(&p, 400, Some("limit"));
    let (s, p) = api.get("/api/v1/nodes?sitee=R", vera).await;
    assert_eq!(s, 400);
    assert_problem(&p, 400, Some("sitee"));
    let (s, p) = api.get("/api/v1/journal?after=x", vera).await;
    assert_eq!(s, 400);
    assert_problem(&p, 400, Some("after"));

    // Journal: the token's name is `who`, for what was done and what was refused.
    let (s, journal) = api.get("/api/v1/journal?last=200&limit=200", vera).await;
    assert_eq!(s, 200);
    let lines = journal.as_array().unwrap();
    let by = |who: &str, needle: &str| {
        lines.iter().any(|l| l["who"] == who && l["message"].as_str().is_some_and(|m| m.contains(needle)))
    };
    assert!(by("otto", "image added"), "{journal}");
    assert!(by("otto", "image removed"), "{journal}");
    assert!(by("vera", "refused"), "{journal}");
    assert!(lines.iter().any(|l| l["who"] == "otto" && l["request_id"] == "api-prep-1"), "{journal}");

    // Map: every site, node and link, with liveness.
    let (s, map) = api.get("/api/v1/map", vera).await;
    assert_eq!(s, 200);
    assert_eq!(map["sites"].as_array().unwrap().len(), 4);
    assert_eq!(map["nodes"].as_array().unwrap().len(), 5);
    let links = map["links"].as_array().unwrap();
    assert_eq!(links.len(), 4);
    assert!(links.iter().all(|l| l["alive"] == true), "{map}");

    // The golden-image loop: a viewer reads it, may not change it; an operator pauses it.
    let (s, g) = api.get("/api/v1/golden", vera).await;
    assert_eq!(s, 200, "{g}");
    assert!(g["enabled"].is_boolean() && g["boards"].is_array(), "{g}");
    let pause = json!({"cmd": "pause", "reason": "api test"});
    assert_eq!(api.post("/api/v1/golden", vera, pause.clone()).await.0, 403);
    let (s, r) = api.post("/api/v1/golden", otto, pause).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(api.get("/api/v1/golden", vera).await.1["paused"], true);
    let (s, p) =
        api.post("/api/v1/golden", otto, json!({"cmd": "set-target", "image": v2_name, "bord": "x"})).await;
    assert_eq!(s, 400);
    assert_problem(&p, 400, Some("bord"));

    // Unknown route: a problem document too.
    let (s, p) = api.get("/api/v1/nope", vera).await;
    assert_eq!(s, 404);
    assert_problem(&p, 404, None);

    lab.stop().await;
}
