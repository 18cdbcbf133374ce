//! The dashboard in a real browser: headless Chromium, driven over WebDriver (chromedriver),
//! opens the controller's page with a viewer token, finds every node of the sample mesh on the
//! map and in the table, follows a full upgrade started through the API until every node shows
//! CONFIRMED on v2, and leaves a screenshot of the finished map in
//! `target/test-artifacts/dashboard.png`.

use fantoccini::{ClientBuilder, Locator};
use meshlift_protocol::Role;
use meshlift_tests::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// chromedriver on a free loopback port, killed with the test.
async fn chromedriver() -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().unwrap().port();
    let child = tokio::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver runs (Debian package chromium-driver, installed by .ci/setup)");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{url}/status")).await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not answer within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (child, url)
}

/// (node, state, version) of every row of the page's node table, and how many nodes the map
/// draws and highlights as the current batch.
async fn page_nodes(c: &fantoccini::Client) -> (BTreeMap<String, (String, String)>, usize, usize) {
    let v = c
        .execute(
            "return { rows: [...document.querySelectorAll('#nodes tbody tr[data-node]')]
                        .map(r => [r.dataset.node, r.dataset.state, r.dataset.version]),
                      drawn: document.querySelectorAll('#map g.node[data-node]').length,
                      batch: document.querySelectorAll('#map g.node.in-batch').length };",
            vec![],
        )
        .await
        .expect("script runs");
    let rows = v["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let s = |i: usize| r[i].as_str().unwrap_or("").to_string();
            (s(0), (s(1), s(2)))
        })
        .collect();
    (rows, v["drawn"].as_u64().unwrap_or(0) as usize, v["batch"].as_u64().unwrap_or(0) as usize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_a_full_upgrade_in_headless_chromium() {
    let (mut cfg, _dir) = lab_config(sample_topology());
    cfg.extra_operators = vec![("vera".into(), Role::Viewer)];
    // On a loaded 2-core machine a node's links can take longer than the default 30 s trial to
    // come back; this test is about the page, not about trial timing.
    cfg.confirm_timeout_s = 90;
    let (lab, image) = start_with_v2(cfg).await;
    let names: BTreeSet<String> = lab.cfg.topology.nodes.iter().map(|n| n.name.clone()).collect();

    let (_driver, driver_url) = chromedriver().await;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1300"]}),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver_url)
        .await
        .expect("a WebDriver session in headless Chromium");

    // The token is typed in once, as an operator would.
    c.goto(&format!("{}/", lab.http_url())).await.expect("the dashboard loads");
    c.find(Locator::Css("#token"))
        .await
        .expect("a token field")
        .send_keys(lab.api_token("vera").expect("vera's token"))
        .await
        .expect("typed");
    c.find(Locator::Css("#login button")).await.expect("the open button").click().await.expect("clicked");

    // Every node appears, on the map and in the table.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (rows, drawn, _) = page_nodes(&c).await;
        if rows.keys().cloned().collect::<BTreeSet<_>>() == names && drawn == names.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the page shows {drawn} nodes and rows {:?}, not {names:?}",
            rows.keys()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let who = c.find(Locator::Css("#who")).await.expect("#who").text().await.expect("text");
    assert_eq!(who, "vera (viewer)");

    // A full upgrade, started through the API with the lab's admin token.
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/api/v1/upgrades", lab.http_url()))
        .bearer_auth(lab.api_token(meshlift_meshsim::lab::LAB_OPERATOR).expect("admin token"))
        .header("content-type", "application/json")
        .body(
            json!({"type": "full", "request_id": "browser-full", "image": image, "version": image,
                "skip_failure": true, "retry_limit": 1, "timeout_s": 90, "download_timeout_s": 120,
                "bt_stall_timeout_s": 10, "reason": "dashboard browser test"})
            .to_string(),
        )
        .send()
        .await
        .expect("the API answers");
    let status = resp.status().as_u16();
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(status, 202, "{body}");

    // The page follows: states change, the current batch is outlined, until the request ends
    // (the progress line says so).
    let mut seen_states = BTreeSet::new();
    let mut batch_highlighted = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    let rows = loop {
        let (rows, _, batch) = page_nodes(&c).await;
        batch_highlighted = batch_highlighted.max(batch);
        seen_states.extend(rows.values().map(|(s, _)| s.clone()));
        let text = c.find(Locator::Css("#request")).await.expect("#request").text().await.expect("text");
        if text.contains("browser-full") && text.starts_with("Idle") {
            break rows;
        }
        assert!(Instant::now() < deadline, "the request never finished on the page: {text}; {rows:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        seen_states.contains("FLASHED") || seen_states.contains("DOWNLOADING_IMAGE"),
        "the page never showed a node between NONE and CONFIRMED: {seen_states:?}"
    );
    assert!(batch_highlighted > 0, "the current batch was never highlighted on the map");

    // Every node shows CONFIRMED on v2 (live: the last reports reach the page within a tick).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut rows = rows;
    while !rows.values().all(|(s, v)| s == "CONFIRMED" && v == V2) {
        assert!(
            Instant::now() < deadline,
            "not every node shows CONFIRMED on {V2}: {rows:?}; controller log: {}",
            lab.cfg.work_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        rows = page_nodes(&c).await.0;
    }
    let png = c.screenshot().await.expect("screenshot");
    let dir = workspace_root().join("target").join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    std::fs::write(dir.join("dashboard.png"), &png).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    c.close().await.expect("session closed");
    lab.stop().await;
}
