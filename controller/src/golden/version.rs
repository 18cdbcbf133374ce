//! The order the golden-image loop uses to tell "older than the target": one total order over
//! meshlift's dotted versions and Terragraph's release strings.
//!
//! # The order (documented because the loop never downgrades by it)
//! Every version maps to a key compared left to right:
//! 1. **major, minor** as numbers. Dotted (`2.1.0`): the first two numbers (missing = 0).
//!    Terragraph (`RELEASE_M78_1`): `M78` → 78, `_1` → 1 (missing = 0), as Terragraph's
//!    `SwVersion` does (reference §7). Numbers, never strings: Terragraph's string fallback put
//!    `M9` after `M10`.
//! 2. **grammar**: with equal major/minor, a Terragraph release sorts before a dotted version
//!    (a fleet moving from Terragraph builds to meshlift images moves forward, never back).
//! 3. **the rest, as a tiebreak** (where Terragraph stops and calls them equal, so a node on
//!    `RELEASE_M80_PRE-12-gabcdef` was never moved to `RELEASE_M80`):
//!    - dotted: [`meshlift_image::Version`]'s own order (patch and further numbers, then
//!      pre-release before release, semver-like);
//!    - Terragraph: a `PRE` suffix (pre-release) sorts before the plain release, which sorts
//!      before any other suffix (builds after the tag, `RELEASE_M78_1-3-gabc`); suffixes of one
//!      kind compare token by token (tokens split on `-` and `_`; numeric tokens numerically and
//!      before alphanumeric ones, which compare as ASCII; fewer tokens first).
//!
//! A string that neither grammar understands is refused ([`BadGoldenVersion`]) rather than
//! counted as 0.0 (Terragraph's choice, which made such a node "older" than every target).

use std::cmp::Ordering;
use std::fmt;

use meshlift_image::Version;

/// A version the loop can order: see the module docs for the order.
#[derive(Debug, Clone)]
pub struct GoldenVersion {
    text: String,
    major: u64,
    minor: u64,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Terragraph release: the suffix after `RELEASE_M<major>[_<minor>]`.
    Release { suffix: Suffix },
    /// meshlift dotted version.
    Dotted(Version),
}

/// A Terragraph release suffix, in the order of the module docs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Suffix {
    /// `PRE…`: before the release.
    Pre(Vec<Token>),
    /// No suffix: the release itself.
    Release,
    /// Anything else after the tag: after the release.
    Post(Vec<Token>),
}

/// One token of a suffix: numbers before words, numbers numerically.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Token {
    Num(u64),
    Word(String),
}

/// A version string outside both grammars: an operator typo or a node reporting something this
/// controller cannot order. Refused when a target is set; a node reporting one is never upgraded
/// by the loop (it is listed as "unknown version").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "version {0:?} is neither a meshlift version (dotted numbers like 2.1.0) nor a Terragraph \
     release (RELEASE_M78_1, RELEASE_M80_PRE-12-gabcdef)"
)]
pub struct BadGoldenVersion(pub String);

/// Longest version text accepted: a version is a label, not a document.
const MAX_LEN: usize = 256;

impl GoldenVersion {
    /// Parse either grammar. Terragraph's full version line (`Facebook Terragraph Release
    /// RELEASE_M78_1 (user@host …)`) is accepted as Terragraph reads it: from `RELEASE_` up to
    /// `(`.
    pub fn parse(text: &str) -> Result<GoldenVersion, BadGoldenVersion> {
        let bad = || BadGoldenVersion(text.chars().take(MAX_LEN).collect());
        if text.len() > MAX_LEN {
            return Err(bad());
        }
        if let Ok(v) = Version::parse(text.trim()) {
            let (major, minor) = v.major_minor();
            return Ok(GoldenVersion { text: text.to_string(), major, minor, kind: Kind::Dotted(v) });
        }
        let Some(at) = text.find("RELEASE_") else { return Err(bad()) };
        let release = text[at..].split('(').next().unwrap_or_default().trim();
        let rest = release.strip_prefix("RELEASE_M").ok_or_else(bad)?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let major: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let mut rest = &rest[digits..];
        let mut minor = 0;
        if let Some(after) = rest.strip_prefix('_') {
            let d = after.bytes().take_while(u8::is_ascii_digit).count();
            if d > 0 {
                minor = after[..d].parse().map_err(|_| bad())?;
                rest = &after[d..];
            }
        }
        let rest = rest.trim_start_matches(['-', '_']);
        let suffix = if rest.is_empty() {
            Suffix::Release
        } else {
            if !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') {
                return Err(bad());
            }
            let tokens: Vec<Token> = rest
                .split(['-', '_'])
                .filter(|t| !t.is_empty())
                .map(|t| match t.parse::<u64>() {
                    Ok(n) => Token::Num(n),
                    Err(_) => Token::Word(t.to_string()),
                })
                .collect();
            match tokens.first() {
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("pre") => Suffix::Pre(tokens[1..].to_vec()),
                _ => Suffix::Post(tokens),
            }
        };
        Ok(GoldenVersion { text: text.to_string(), major, minor, kind: Kind::Release { suffix } })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Terragraph's view of the version: what its loop compared, and all it compared.
    pub fn major_minor(&self) -> (u64, u64) {
        (self.major, self.minor)
    }
}

/// Major and minor of a dotted version (missing numbers are 0, as in [`Version`]'s order).
trait MajorMinor {
    fn major_minor(&self) -> (u64, u64);
}

impl MajorMinor for Version {
    fn major_minor(&self) -> (u64, u64) {
        // `Version` keeps its numbers private; its text is already known to be in its grammar,
        // so the core is the part before any `-` or `+`, dot-separated decimal numbers.
        let core = self.as_str().trim().split(['-', '+']).next().unwrap_or_default();
        let mut parts = core.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }
}

impl fmt::Display for GoldenVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Ord for GoldenVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor).cmp(&(other.major, other.minor)).then_with(|| {
            match (&self.kind, &other.kind) {
                (Kind::Release { suffix: a }, Kind::Release { suffix: b }) => a.cmp(b),
                (Kind::Dotted(a), Kind::Dotted(b)) => a.cmp(b),
                (Kind::Release { .. }, Kind::Dotted(_)) => Ordering::Less,
                (Kind::Dotted(_), Kind::Release { .. }) => Ordering::Greater,
            }
        })
    }
}

impl PartialOrd for GoldenVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for GoldenVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for GoldenVersion {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> GoldenVersion {
        GoldenVersion::parse(s).unwrap()
    }

    #[test]
    fn dotted_versions_order_as_the_image_crate_does() {
        assert!(v("1.0.0") < v("2.0.0"));
        assert!(v("2.0.0-rc1") < v("2.0.0"));
        assert!(v("2.1") == v("2.1.0"));
        assert!(v("2.9.0") < v("2.10.0"));
    }

    #[test]
    fn terragraph_releases_compare_major_minor_numerically_then_the_rest() {
        assert!(v("RELEASE_M9") < v("RELEASE_M10"), "numbers, not strings");
        assert!(v("RELEASE_M78") == v("RELEASE_M78_0"));
        assert!(v("RELEASE_M78_1") < v("RELEASE_M78_2"));
        assert!(v("RELEASE_M78_2") < v("RELEASE_M80_PRE-12-gabcdef"));
        assert!(v("RELEASE_M80_PRE-12-gabcdef") < v("RELEASE_M80"), "a pre-release is before its release");
        assert!(v("RELEASE_M80_PRE-9-gabcdef") < v("RELEASE_M80_PRE-12-g0"), "build numbers numerically");
        assert!(v("RELEASE_M80") < v("RELEASE_M80-3-gabc"), "a build after the tag is after it");
        assert_eq!(v("Facebook Terragraph Release RELEASE_M78_1 (user@host Tue)").major_minor(), (78, 1));
        // Across grammars: major/minor first, then a release before a dotted version.
        assert!(v("RELEASE_M99_9") > v("1.0.0") && v("RELEASE_M99_9") > v("99.8.7"));
        assert!(v("RELEASE_M99_9_PRE-1") < v("99.9.0") && v("RELEASE_M99_9-3-gabc") < v("99.9.0-rc1"));
    }

    #[test]
    fn strings_neither_grammar_understands_are_refused() {
        for bad in ["", "latest", "v2", "RELEASE_", "RELEASE_Mx", "RELEASE_M78 ; rm", "2..1", "M78_1"] {
            assert!(GoldenVersion::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(GoldenVersion::parse(&"1".repeat(300)).is_err());
    }

    fn any_version() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u64..5, 0u64..5, 0u64..4, proptest::option::of("rc[0-9]|[0-9]")).prop_map(
                |(a, b, c, p)| match p {
                    Some(p) => format!("{a}.{b}.{c}-{p}"),
                    None => format!("{a}.{b}.{c}"),
                }
            ),
            (
                0u64..5,
                proptest::option::of(0u64..5),
                proptest::option::of("PRE-[0-9]{1,2}-g[a-f]{3}|[0-9]-g[a-f]{2}")
            )
                .prop_map(|(a, b, s)| {
                    let mut t = format!("RELEASE_M{a}");
                    if let Some(b) = b {
                        t.push_str(&format!("_{b}"));
                    }
                    if let Some(s) = s {
                        t.push_str(&format!("_{s}"));
                    }
                    t
                }),
        ]
    }

    proptest! {
        #[test]
        fn the_order_is_total_antisymmetric_and_transitive(a in any_version(), b in any_version(), c in any_version()) {
            let (a, b, c) = (v(&a), v(&b), v(&c));
            // Total and antisymmetric: exactly one of <, ==, > and the reverse agrees.
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            prop_assert_eq!(a.cmp(&a), Ordering::Equal);
            // Transitive.
            if a <= b && b <= c {
                prop_assert!(a <= c);
            }
            if a == b {
                prop_assert_eq!(a.cmp(&c), b.cmp(&c));
            }
        }
    }
}
