//! With no controller listening, every remote command exits 2 and names the endpoint it tried,
//! with CURVE keys and in plain text alike.

mod remote_fake;

use remote_fake::{free_port, meshlift, stderr, TestKeys};

#[test]
fn nothing_listening_exits_2_naming_the_endpoint() {
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let keys = TestKeys::new();
    let curve = keys.args();
    let insecure = vec!["--insecure".to_string()];
    for security in [&curve, &insecure] {
        for cmd in [
            &["status"][..],
            &["upgrade", "state"],
            &["upgrade", "network", "commit", "--yes"],
            &["image", "list"],
        ] {
            let mut args = cmd.to_vec();
            args.extend(["--controller", &ep, "--reply-timeout", "1"]);
            args.extend(security.iter().map(String::as_str));
            let out = meshlift(&args);
            assert_eq!(out.status.code(), Some(2), "{args:?}");
            let err = stderr(&out);
            assert!(err.contains(&format!("cannot reach controller at {ep}")), "{args:?}: {err}");
        }
    }
}

#[test]
fn malformed_endpoint_is_a_usage_error() {
    // Told before any key is looked for (none is given here).
    let out = meshlift(&["status", "--controller", "localhost:17077"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("expected tcp://host:port"), "{}", stderr(&out));
}
