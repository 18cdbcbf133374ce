//! Who is calling the HTTP API: per-operator bearer tokens, kept hashed in the controller config.
//!
//! The same [`Role`]s as the app socket's operator keys, and the same [`crate::auth::required_role`]
//! per request (checked in the controller loop, like an app-socket request). A token only names
//! the caller; what the caller may do is decided where the app socket decides it.

use crate::auth::Role;
use meshlift_protocol::api_token;
use serde::Deserialize;
use std::collections::HashMap;

/// One `[[security.api_tokens]]` entry: a token the API admits, by its SHA-256.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTokenConfig {
    /// Journaled as `who` for every action taken with this token.
    pub name: String,
    pub role: Role,
    /// SHA-256 of the token, 64 hex digits (`meshlift token new` prints the whole entry).
    pub sha256: String,
}

/// The authenticated caller of one API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// Why the token list in the config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenConfigError {
    /// Not 64 hex digits: a token pasted instead of its hash, or a truncated line.
    #[error(
        "security.api_tokens {name:?}: sha256 must be 64 hex digits (the token's SHA-256, not the token)"
    )]
    BadHash { name: String },
    /// Two entries with the same hash: one token would speak for two names.
    #[error("security.api_tokens {a:?} and {b:?} have the same sha256; every token needs its own")]
    Duplicate { a: String, b: String },
}

/// Tokens by hash.
#[derive(Debug, Default)]
pub struct TokenBook {
    by_hash: HashMap<[u8; 32], Caller>,
}

impl TokenBook {
    pub fn new(entries: &[ApiTokenConfig]) -> Result<TokenBook, TokenConfigError> {
        let mut by_hash = HashMap::new();
        for e in entries {
            let hash =
                parse_hex32(&e.sha256).ok_or_else(|| TokenConfigError::BadHash { name: e.name.clone() })?;
            let caller = Caller { name: e.name.clone(), role: e.role };
            if let Some(other) = by_hash.insert(hash, caller) {
                return Err(TokenConfigError::Duplicate { a: other.name, b: e.name.clone() });
            }
        }
        Ok(TokenBook { by_hash })
    }

    /// The caller a presented token belongs to. Lookup is by the token's SHA-256, so the time it
    /// takes does not depend on how much of a guess matches a stored secret.
    pub fn identify(&self, token: &str) -> Option<&Caller> {
        // A token longer than any we issue is not hashed at all (a client cannot make us hash
        // megabytes per request; hyper already bounds header size).
        if token.len() > 256 {
            return None;
        }
        self.by_hash.get(&api_token::token_sha256(token))
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_known_by_its_hash_only_and_bad_entries_are_refused() {
        let token = api_token::token_from_secret(&[7; 32]);
        let entry = ApiTokenConfig {
            name: "nms".into(),
            role: Role::Operator,
            sha256: api_token::token_sha256_hex(&token).to_uppercase(),
        };
        let book = TokenBook::new(std::slice::from_ref(&entry)).unwrap();
        assert_eq!(book.identify(&token), Some(&Caller { name: "nms".into(), role: Role::Operator }));
        assert_eq!(book.identify(&entry.sha256), None, "the stored hash is not a token");
        assert_eq!(book.identify(&api_token::token_from_secret(&[8; 32])), None);

        let pasted_token = ApiTokenConfig { sha256: token.clone(), ..entry.clone() };
        assert!(matches!(TokenBook::new(&[pasted_token]), Err(TokenConfigError::BadHash { .. })));
        let twice = ApiTokenConfig { name: "other".into(), ..entry.clone() };
        assert!(matches!(TokenBook::new(&[entry, twice]), Err(TokenConfigError::Duplicate { .. })));
    }
}
