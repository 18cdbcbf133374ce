//! Bearer tokens of the controller's HTTP API: the format both ends agree on.
//!
//! A token is `mlt_` followed by 64 hex digits (32 random bytes from the caller's generator; this
//! crate does no I/O). The controller keeps only the SHA-256 of the whole token string, in hex, in
//! its config (`[[security.api_tokens]] name, role, sha256`): a leaked config file does not hand
//! out working tokens, and the token is shown once, when it is made (`meshlift token new`).

use crate::Role;
use sha2::{Digest, Sha256};

/// Prefix of every token, so a secret scanner (or a person) can tell one in a log or a paste.
pub const TOKEN_PREFIX: &str = "mlt_";

/// The token string for 32 secret bytes.
pub fn token_from_secret(secret: &[u8; 32]) -> String {
    let mut s = String::with_capacity(TOKEN_PREFIX.len() + 64);
    s.push_str(TOKEN_PREFIX);
    for b in secret {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// SHA-256 of the token string, lowercase hex: what the controller config stores.
pub fn token_sha256_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of the token string, raw: what the controller looks tokens up by.
pub fn token_sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The controller config lines that admit a token (the name is TOML-quoted).
pub fn config_entry(name: &str, role: Role, sha256_hex: &str) -> String {
    let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "[[security.api_tokens]]\nname = \"{quoted}\"\nrole = \"{}\"\nsha256 = \"{sha256_hex}\"\n",
        role.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_its_prefix_and_the_secret_in_hex_and_its_hash_is_stable() {
        let t = token_from_secret(&[0xab; 32]);
        assert_eq!(t.len(), 68);
        assert!(t.starts_with("mlt_abab"));
        // sha256("mlt_" + "ab" * 32), computed independently with sha256sum.
        assert_eq!(token_sha256_hex(&t), "c251af7ca0d4b3a0269ff9042db50f84825603a22afd5519b937fe447bf0e02e");
        assert_ne!(token_sha256_hex(&t), token_sha256_hex(&token_from_secret(&[0xac; 32])));
        let entry = config_entry("nms \"east\"", Role::Viewer, &token_sha256_hex(&t));
        assert!(entry.contains("name = \"nms \\\"east\\\"\""), "{entry}");
        assert!(entry.contains("role = \"viewer\""), "{entry}");
    }
}
