//! `meshlift golden …` against a real controller with CURVE on: an operator sets the target,
//! the window and the blacklist, each change journaled under the operator's key name with the
//! reason; a viewer can read (`show`, `blacklist list`) but not change; `unquarantine` needs the
//! admin role; `--json` gives one object the tooling can parse.

use meshlift_meshsim::lab::{Role, SIM_BOARD};
use meshlift_tests::*;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_commands_need_their_role_and_are_journaled_with_who_and_why() {
    let (mut cfg, _dir) = lab_config(small_topology());
    cfg.extra_operators = vec![("vera".to_string(), Role::Viewer), ("otto".to_string(), Role::Operator)];
    let (lab, image) = start_with_v2(cfg).await;
    let otto =
        |args: &[&str]| lab.cli_as("otto").expect("otto's key").args(args).output().expect("meshlift runs");
    let vera =
        |args: &[&str]| lab.cli_as("vera").expect("vera's key").args(args).output().expect("meshlift runs");

    // The operator pauses the loop first (it is off anyway), then sets a target and a window.
    let out = otto(&["golden", "pause", "--reason", "set up first"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out =
        otto(&["golden", "set", "--board", SIM_BOARD, "--image", &image, "--reason", "Q4 release", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = otto(&["golden", "window", "mon-fri 22:00-02:00 Europe/Berlin", "--reason", "nights only"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = otto(&["golden", "window", "mon-fri 25:00-02:00 Europe/Berlin"]);
    assert!(!out.status.success(), "a window nobody can read is refused");
    let out = otto(&["golden", "set", "--board", SIM_BOARD, "--image", "9.9.9", "--yes"]);
    assert!(!out.status.success(), "an image that is not in the store is refused");
    let out = otto(&[
        "golden",
        "blacklist",
        "add",
        "--node",
        "leaf1",
        "--version",
        "2.0.0",
        "--for",
        "3600",
        "--reason",
        "radio swap",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The viewer reads, as JSON, and cannot change anything.
    let out = vera(&["golden", "show", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let show: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    assert_eq!(show["paused"], true);
    assert_eq!(show["window"], "mon-fri 22:00-02:00 Europe/Berlin");
    assert_eq!(show["boards"][0]["board"], SIM_BOARD);
    assert_eq!(show["boards"][0]["version"], "2.0.0");
    assert_eq!(show["blacklist"][0]["node"], "leaf1");
    assert_eq!(show["blacklist"][0]["who"], "otto");
    assert_eq!(show["blacklist"][0]["reason"], "radio swap");
    assert!(show["blacklist"][0]["expires_at"].is_u64());
    let out = vera(&["golden", "blacklist", "list", "--json"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("radio swap"));
    let out = vera(&["golden", "resume"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("needs role operator"), "{}", stderr(&out));

    // Unquarantine is the admin's: the operator is refused before anything is looked at; the
    // admin gets the loop's own answer (nothing is quarantined).
    let out = otto(&["golden", "unquarantine", "2.0.0"]);
    assert!(stderr(&out).contains("needs role admin"), "{}", stderr(&out));
    let out = cli(&lab, &["golden", "unquarantine", "2.0.0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not quarantined"), "{}", stderr(&out));

    // The text view names the target, the window and the blacklist.
    let out = cli(&lab, &["golden", "show"]);
    let text = stdout(&out);
    assert!(text.contains("golden-image loop: disabled (and paused)"), "{text}");
    assert!(text.contains(&format!("board {SIM_BOARD}: target 2.0.0")), "{text}");
    assert!(text.contains("blacklisted leaf1 for 2.0.0 by otto"), "{text}");

    // A manual upgrade never changes the target, unless the operator asks with --set-golden.
    let out = otto(&["golden", "unset", "--board", SIM_BOARD, "--reason", "start over"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let boards = |o: &std::process::Output| -> usize {
        let v: serde_json::Value = serde_json::from_str(&stdout(o)).expect("JSON");
        v["boards"].as_array().expect("boards").len()
    };
    let out = otto(&[
        "upgrade", "nodes", "-n", "leaf1", "full", "--image", &image, "--reason", "one node", "--yes",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(boards(&vera(&["golden", "show", "--json"])), 0, "a plain upgrade set no target");
    let out = otto(&[
        "upgrade",
        "nodes",
        "-n",
        "leaf2",
        "full",
        "--image",
        &image,
        "--set-golden",
        "--reason",
        "and keep it",
        "--yes",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let show: serde_json::Value =
        serde_json::from_str(&stdout(&vera(&["golden", "show", "--json"]))).expect("JSON");
    assert_eq!(show["boards"][0]["board"], SIM_BOARD, "--set-golden set the image's boards: {show}");
    assert_eq!(show["boards"][0]["version"], "2.0.0");

    // Every change is in the journal with the authenticated name and the reason.
    let j = journal(&lab);
    let line = |needle: &str| j.iter().find(|e| e.message.contains(needle)).cloned();
    let set = line("golden: golden target of").expect("target journaled");
    assert_eq!(set.operator.as_ref().unwrap().who, "otto");
    assert_eq!(set.operator.as_ref().unwrap().reason.as_deref(), Some("Q4 release"));
    let win = line("golden: golden window set").expect("window journaled");
    assert_eq!(win.operator.as_ref().unwrap().reason.as_deref(), Some("nights only"));
    assert!(line("refused SetWindow").is_some(), "a refused change is journaled too");
    lab.stop().await;
}
