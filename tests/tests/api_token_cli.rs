//! `meshlift token new` prints a token once and the config entry for it; the controller's own
//! config reader and token book accept that entry and know the token by it (and only it).

use meshlift_controller::api::tokens::{Caller, TokenBook};
use meshlift_protocol::Role;

#[test]
fn a_new_token_is_admitted_by_the_config_lines_printed_with_it() {
    let out = std::process::Command::new(meshlift_tests::bin_dir().join("meshlift"))
        .args(["token", "new", "--name", "nms east", "--role", "operator"])
        .output()
        .expect("meshlift runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let token =
        text.split_whitespace().find(|w| w.starts_with("mlt_")).expect("the token is printed").to_string();
    let entry = &text[text.find("[[security.api_tokens]]").expect("the config entry is printed")..];
    let entry = &entry[..entry.find("\nUse:").unwrap_or(entry.len())];
    assert!(!entry.contains(&token), "the config holds the hash, never the token: {entry}");

    #[derive(serde::Deserialize)]
    struct Security {
        api_tokens: Vec<meshlift_controller::api::ApiTokenConfig>,
    }
    #[derive(serde::Deserialize)]
    struct File {
        security: Security,
    }
    let parsed: File = toml::from_str(entry).expect("the printed entry is valid TOML");
    let book = TokenBook::new(&parsed.security.api_tokens).expect("the controller accepts it");
    assert_eq!(book.identify(&token), Some(&Caller { name: "nms east".into(), role: Role::Operator }));

    let bad = std::process::Command::new(meshlift_tests::bin_dir().join("meshlift"))
        .args(["token", "new", "--name", "x", "--role", "root"])
        .output()
        .expect("meshlift runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("viewer, operator or admin"));
}
