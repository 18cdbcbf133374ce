//! Who may command the fleet, against a real controller with CURVE on: a client that does not
//! know the controller's key, a client whose key is not an operator's, and a viewer trying to
//! commit are all refused with a reason they can see; the refusals are journaled; a viewer can
//! still read; and the journal names the authenticated operator, never the `who` a client sent.

use meshlift_meshsim::lab::{Role, LAB_OPERATOR};
use meshlift_protocol::transport::CurveKeyPair;
use meshlift_protocol::*;
use meshlift_tests::*;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_keys_and_missing_roles_are_refused_and_journaled() {
    let (mut cfg, dir) = lab_config(small_topology());
    cfg.extra_operators = vec![("vera".to_string(), Role::Viewer)];
    let (lab, _image) = start_with_v2(cfg).await;

    // The wrong controller key: the handshake never completes; the CLI says so.
    let impostor = CurveKeyPair::generate().expect("key");
    let out = lab
        .cli()
        .env("MESHLIFT_CONTROLLER_KEY", impostor.public().to_z85())
        .args(["upgrade", "state", "--reply-timeout", "3"])
        .output()
        .expect("meshlift runs");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("key"), "names the key as the likely cause: {}", stderr(&out));

    // An operator key the controller does not know.
    let keys_dir = dir_path(&dir).join("stranger");
    let (stranger_key, _) = CurveKeyPair::generate().expect("key").save(&keys_dir, "stranger").expect("save");
    let out = lab
        .cli()
        .env("MESHLIFT_KEY", &stranger_key)
        .args(["upgrade", "state", "--reply-timeout", "5"])
        .output()
        .expect("meshlift runs");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("refused"), "the refusal reaches the client: {}", stderr(&out));

    // A viewer reads, but cannot commit.
    let out = lab.cli_as("vera").expect("vera").args(["upgrade", "state"]).output().expect("runs");
    assert!(out.status.success(), "a viewer reads: {}", stderr(&out));
    let out = lab
        .cli_as("vera")
        .expect("vera")
        .args(["upgrade", "network", "commit", "--reason", "vera tries", "--yes"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("needs role operator"), "{}", stderr(&out));
    assert!(stderr(&out).contains("vera has role viewer"), "{}", stderr(&out));
    let reply = lab
        .ask_as(
            "vera",
            Message::UpgradeAbortReq(UpgradeAbortReq {
                abort_all: true,
                req_ids: vec![],
                reset_status: false,
                operator: Operator { who: "admin".into(), reason: Some("pretending".into()) },
            }),
        )
        .await
        .expect("lab")
        .expect("an answer");
    assert!(
        matches!(&reply, Message::Ack(a) if !a.success && a.message.contains("needs role operator")),
        "{reply:?}"
    );

    // The admin's own request, sent with a forged `who`: journaled under the authenticated name.
    let reply = lab
        .ask(Message::UpgradeAbortReq(UpgradeAbortReq {
            abort_all: true,
            req_ids: vec![],
            reset_status: false,
            operator: Operator { who: "mallory".into(), reason: Some("forged who".into()) },
        }))
        .await
        .expect("an answer");
    assert!(matches!(&reply, Message::Ack(_)), "{reply:?}");

    let journal = journal(&lab);
    let who = |e: &meshlift_controller::store::JournalEntry| {
        e.operator.as_ref().map(|o| o.who.clone()).unwrap_or_default()
    };
    assert!(
        journal.iter().any(|e| who(e) == "vera" && e.message.contains("needs role operator")),
        "the viewer's refused commit is journaled: {journal:#?}"
    );
    assert!(
        journal.iter().any(|e| who(e).starts_with("unauthenticated") && e.message.contains("not configured")),
        "the unknown key's refused connection is journaled: {journal:#?}"
    );
    assert!(journal.iter().all(|e| who(e) != "mallory"), "a client-chosen who reached the journal");
    assert!(
        journal.iter().any(|e| who(e) == LAB_OPERATOR && e.message.contains("abort")),
        "the admin's abort is journaled under its key's name: {journal:#?}"
    );
    lab.stop().await;
}

fn dir_path(dir: &WorkDir) -> std::path::PathBuf {
    dir.path().to_path_buf()
}
