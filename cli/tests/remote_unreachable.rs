//! With no controller listening, every remote command exits 2 and names the endpoint it tried.

mod remote_fake;

use remote_fake::{free_port, meshlift, stderr};

#[test]
fn nothing_listening_exits_2_naming_the_endpoint() {
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    for cmd in [&["status"][..], &["upgrade", "state"], &["upgrade", "network", "commit"], &["image", "list"]]
    {
        let mut args = cmd.to_vec();
        args.extend(["--controller", &ep, "--reply-timeout", "1"]);
        let out = meshlift(&args);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}");
        let err = stderr(&out);
        assert!(err.contains(&format!("cannot reach controller at {ep}")), "{cmd:?}: {err}");
    }
}

#[test]
fn malformed_endpoint_is_a_usage_error() {
    let out = meshlift(&["status", "--controller", "localhost:17077"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("expected tcp://host:port"), "{}", stderr(&out));
}
