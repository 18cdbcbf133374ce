//! CurveZMQ from the operator's side: which keys a command uses, what it is told when a key is
//! missing, refused or wrong, `keygen --curve`, and `node enroll` / `node keys`.

mod remote_fake;

use meshlift_protocol::transport::{CurveKeyPair, CurvePublicKey};
use meshlift_protocol::*;
use remote_fake::{meshlift, meshlift_cmd, path, stderr, stdout, FakeController, TestKeys, OPERATOR};

fn state_fake() -> FakeController {
    FakeController::start(Box::new(|_, m| match m {
        Message::UpgradeStateReq(_) => Message::UpgradeStateDump(UpgradeStateDump::default()),
        Message::NodeKeysReq(_) => Message::NodeKeysResp(NodeKeysResp {
            enrolled: vec![("pop.a".into(), "k".repeat(40))],
            missing: vec!["leaf 1".into()],
        }),
        Message::NodeEnrollReq(r) if r.node == "ghost" => {
            Message::Ack(Ack::refused("ghost is not a node of the topology"))
        }
        Message::NodeEnrollReq(r) => Message::Ack(Ack::ok(format!("node key of {} enrolled", r.node))),
        _ => Message::Ack(Ack::refused("unexpected")),
    }))
}

fn keys(fake: &FakeController) -> &TestKeys {
    fake.keys.as_ref().expect("a CURVE fake")
}

#[test]
fn requests_over_curve_come_from_the_authenticated_operator() {
    let fake = state_fake();
    let out = fake.run(&["upgrade", "state"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fake.senders(), vec![Some(OPERATOR.to_string())]);
}

#[test]
fn keys_from_the_environment_and_the_default_path() {
    let fake = state_fake();
    let k = keys(&fake);
    // MESHLIFT_KEY, and the controller key as Z85 text in MESHLIFT_CONTROLLER_KEY.
    let out = meshlift_cmd()
        .args(["upgrade", "state", "--controller", &fake.endpoint])
        .env("MESHLIFT_KEY", &k.operator_key)
        .env("MESHLIFT_CONTROLLER_KEY", k.controller.public().to_z85())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // ~/.config/meshlift/operator.key; --key beats it (the stranger is refused).
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join(".config/meshlift");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&k.operator_key, dir.join("operator.key")).unwrap();
    let with_home = |extra: &[&str]| {
        meshlift_cmd()
            .args(["upgrade", "state", "--controller", &fake.endpoint, "--reply-timeout", "3"])
            .args(["--controller-key", &path(&k.controller_pub)])
            .args(extra)
            .env("HOME", home.path())
            .output()
            .unwrap()
    };
    let out = with_home(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = with_home(&["--key", &path(&k.stranger_key)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(fake.received().len(), 2);
}

#[test]
fn missing_keys_exit_2_and_say_how_to_get_them() {
    let fake = state_fake();
    let out = meshlift(&["upgrade", "state", "--controller", &fake.endpoint]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for want in ["--key FILE", "MESHLIFT_KEY", "meshlift keygen --curve", "--controller-key", "--insecure"] {
        assert!(err.contains(want), "missing {want:?} in: {err}");
    }
    assert!(fake.received().is_empty());
}

#[test]
fn an_unknown_operator_key_is_refused_by_name() {
    let fake = state_fake();
    let k = keys(&fake);
    let stranger = CurvePublicKey::load(&k.stranger_key).unwrap();
    let out = meshlift(&[
        "upgrade",
        "state",
        "--controller",
        &fake.endpoint,
        "--key",
        &path(&k.stranger_key),
        "--controller-key",
        &path(&k.controller_pub),
        "--reply-timeout",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("refused operator key") && err.contains(&stranger.to_z85()), "{err}");
    assert!(err.contains("[[security.operators]]") && err.contains("from --key"), "{err}");
    assert!(fake.received().is_empty());
}

#[test]
fn a_wrong_controller_key_or_plain_text_is_told_as_such() {
    let fake = state_fake();
    let k = keys(&fake);
    let other = CurveKeyPair::generate().unwrap().public().to_z85();
    let out = meshlift(&[
        "upgrade",
        "state",
        "--controller",
        &fake.endpoint,
        "--key",
        &path(&k.operator_key),
        "--controller-key",
        &other,
        "--reply-timeout",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains(&format!("cannot reach controller at {}", fake.endpoint)), "{err}");
    assert!(err.contains("check the controller key") && err.contains(&other), "{err}");

    let out =
        meshlift(&["upgrade", "state", "--controller", &fake.endpoint, "--insecure", "--reply-timeout", "2"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("drop --insecure"), "{err}");
    assert!(fake.received().is_empty());
}

#[test]
fn plain_text_by_flag_or_environment() {
    let fake = FakeController::start_insecure(Box::new(|_, _| {
        Message::UpgradeStateDump(UpgradeStateDump::default())
    }));
    assert_eq!(fake.run(&["upgrade", "state"]).status.code(), Some(0));
    let out = meshlift_cmd()
        .args(["upgrade", "state", "--controller", &fake.endpoint])
        .env("MESHLIFT_INSECURE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fake.senders(), vec![None, None]);
}

#[test]
fn keygen_curve_writes_a_private_key_and_prints_the_public_one() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = meshlift(&["keygen", "--curve", "--out", &path(dir.path()), "--name", "node-a"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let key = dir.path().join("node-a.key");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let public = CurvePublicKey::load(&dir.path().join("node-a.pub")).unwrap();
    assert_eq!(CurveKeyPair::load(&key).unwrap().public(), public);
    assert!(stdout(&out).lines().any(|l| l == public.to_z85()), "{}", stdout(&out));
    // Default name; never overwrites; --name needs --curve; no path escapes.
    assert_eq!(meshlift(&["keygen", "--curve", "--out", &path(dir.path())]).status.code(), Some(0));
    assert!(dir.path().join("curve.key").exists() && dir.path().join("curve.pub").exists());
    let again = meshlift(&["keygen", "--curve", "--out", &path(dir.path()), "--name", "node-a"]);
    assert_eq!(again.status.code(), Some(2));
    assert_eq!(CurvePublicKey::load(&dir.path().join("node-a.pub")).unwrap(), public);
    assert_eq!(meshlift(&["keygen", "--out", &path(dir.path()), "--name", "x"]).status.code(), Some(2));
    assert_eq!(
        meshlift(&["keygen", "--curve", "--out", &path(dir.path()), "--name", "../x"]).status.code(),
        Some(2)
    );
}

#[test]
fn node_enroll_sends_the_key_and_reports_the_answer() {
    let fake = state_fake();
    let k = keys(&fake);
    let node = CurveKeyPair::generate().unwrap();
    let (_, node_pub) = node.save(k.dir.path(), "pop-a").unwrap();
    let out = fake.run(&["node", "enroll", "pop.a", "--key", &path(&node_pub), "--reason", "new radio"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("node key of pop.a enrolled"), "{}", stdout(&out));
    // Z85 inline works too; a refusal exits 1 with the controller's reason.
    let out = fake.run(&["node", "enroll", "ghost", "--key", &node.public().to_z85()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("ghost is not a node of the topology"), "{}", stderr(&out));
    let sent = fake.received();
    let Message::NodeEnrollReq(first) = &sent[0] else { panic!("{sent:?}") };
    assert_eq!(first.node, "pop.a");
    assert_eq!(first.public_key, node.public().to_z85());
    assert_eq!(first.operator.reason.as_deref(), Some("new radio"));
    // A bad key is told before anything is sent.
    let out = fake.run(&["node", "enroll", "pop.a", "--key", "not-a-key"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(fake.received().len(), 2);
}

#[test]
fn node_enroll_takes_the_operator_key_from_operator_key() {
    let fake = state_fake();
    let k = keys(&fake);
    let z85 = CurveKeyPair::generate().unwrap().public().to_z85();
    let out = meshlift(&[
        "node",
        "enroll",
        "pop.a",
        "--key",
        &z85,
        "--operator-key",
        &path(&k.operator_key),
        "--controller-key",
        &path(&k.controller_pub),
        "--controller",
        &fake.endpoint,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fake.senders(), vec![Some(OPERATOR.to_string())]);
}

#[test]
fn node_keys_table_and_json() {
    let fake = state_fake();
    let out = fake.run(&["node", "keys"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("pop.a") && text.contains(&"k".repeat(40)), "{text}");
    assert!(text.contains("1 node(s) without a key") && text.contains("leaf 1"), "{text}");
    let out = fake.run(&["node", "keys", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["enrolled"][0]["node"], "pop.a");
    assert_eq!(v["enrolled"][0]["public_key"], "k".repeat(40));
    assert_eq!(v["missing"][0], "leaf 1");
}
