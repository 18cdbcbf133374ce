//! `meshlift keygen`, `image build`, `image inspect` as an operator runs them.

use std::path::Path;
use std::process::{Command, Output};

fn meshlift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshlift")).args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn keygen_build_inspect_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let out = meshlift(&["keygen", "--out", s(&keys)]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(keys.join("meshlift.key").exists() && keys.join("meshlift.pub").exists());
    assert_eq!(meshlift(&["keygen", "--out", s(&keys)]).status.code(), Some(2), "never overwrites a key");

    let payload = dir.path().join("rootfs.bin");
    std::fs::write(&payload, vec![42u8; 100_000]).unwrap();
    let hook = dir.path().join("check.sh");
    std::fs::write(&hook, "#!/bin/sh\nexit 0\n").unwrap();
    let img = dir.path().join("os-2.0.mlimg");
    let key = keys.join("meshlift.key");
    let pubkey = keys.join("meshlift.pub");
    let out = meshlift(&[
        "image",
        "build",
        "--name",
        "os",
        "--version",
        "2.0.0",
        "--boards",
        "sim,puma",
        "--payload",
        s(&payload),
        "--key",
        s(&key),
        "--hook",
        &format!("post-boot-check={}", s(&hook)),
        "--out",
        s(&img),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    let out = meshlift(&["image", "inspect", s(&img), "--trusted-key", s(&pubkey), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "verified");
    assert_eq!(report["version"], "2.0.0");
    assert_eq!(report["hardware_board_ids"], serde_json::json!(["sim", "puma"]));
    assert_eq!(report["hooks"][0]["kind"], "post-boot-check");
    assert_eq!(report["payload_size"], 100_000);

    let human = meshlift(&["image", "inspect", s(&img)]);
    assert_eq!(human.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&human.stdout).contains("INTACT"));

    // Another key: refused, exit 1, with the reason.
    let other = dir.path().join("other");
    meshlift(&["keygen", "--out", s(&other)]);
    let out =
        meshlift(&["image", "inspect", s(&img), "--trusted-key", s(&other.join("meshlift.pub")), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "refused");
    assert!(report["reason"].as_str().unwrap().contains("unknown key"));

    // A corrupted payload byte: refused as corrupt.
    let mut bytes = std::fs::read(&img).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&img, bytes).unwrap();
    let out = meshlift(&["image", "inspect", s(&img), "--trusted-key", s(&pubkey)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("corrupt payload"));
}

#[test]
fn build_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    meshlift(&["keygen", "--out", s(&keys)]);
    let payload = dir.path().join("p");
    std::fs::write(&payload, b"x").unwrap();
    let base = |version: &str, hook: &str| {
        meshlift(&[
            "image",
            "build",
            "--name",
            "os",
            "--version",
            version,
            "--boards",
            "sim",
            "--payload",
            s(&payload),
            "--key",
            s(&keys.join("meshlift.key")),
            "--hook",
            hook,
            "--out",
            s(&dir.path().join("o.mlimg")),
        ])
    };
    assert_eq!(base("1.0", "reboot=/bin/true").status.code(), Some(2), "unknown hook kind");
    assert_eq!(base("one", "post-flash=/bin/true").status.code(), Some(1), "bad version");
    assert_eq!(meshlift(&["image", "inspect", "/nonexistent.mlimg"]).status.code(), Some(2));
}
