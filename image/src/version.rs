//! Version ordering, so "older than installed" means the same thing on every node.

use std::cmp::Ordering;
use std::fmt;

/// A version as meshlift orders it: semver-like, numeric and dotted.
///
/// Grammar: `core ["-" pre] ["+" build]`, where `core` is 1 to 8 dot-separated decimal numbers
/// (`2`, `2.1`, `2.1.0.7`), `pre` is dot-separated identifiers of `[0-9A-Za-z]`, and `build` is
/// ignored for ordering.
///
/// Ordering:
/// - cores compare number by number, missing numbers count as 0 (`2.1` == `2.1.0`);
/// - with equal cores, a pre-release sorts before the release (`2.1.0-rc1` < `2.1.0`);
/// - pre-release identifiers compare left to right, numeric ones numerically and before
///   alphanumeric ones, which compare as ASCII; fewer identifiers sort first (as semver).
///
/// Numbers, not strings, because Terragraph's string comparison put `M9` after `M10`.
#[derive(Debug, Clone)]
pub struct Version {
    text: String,
    core: Vec<u64>,
    pre: Vec<String>,
}

/// A version string outside the grammar of [`Version`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad version {0:?}: want dotted numbers like 2.1.0, optionally -pre and +build")]
pub struct BadVersion(pub String);

impl Version {
    pub fn parse(text: &str) -> Result<Version, BadVersion> {
        let bad = || BadVersion(text.to_string());
        let without_build = text.split('+').next().unwrap_or_default();
        let (core_text, pre_text) = match without_build.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (without_build, None),
        };
        let core = core_text
            .split('.')
            .map(|part| {
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                part.parse::<u64>().map_err(|_| bad())
            })
            .collect::<Result<Vec<u64>, _>>()?;
        if core.len() > 8 {
            return Err(bad());
        }
        let pre = match pre_text {
            None => Vec::new(),
            Some(p) => {
                let ids: Vec<String> = p.split('.').map(str::to_string).collect();
                if ids.iter().any(|id| id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric())) {
                    return Err(bad());
                }
                ids
            }
        };
        Ok(Version { text: text.to_string(), core, pre })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.core.len().max(other.core.len());
        for i in 0..len {
            let a = self.core.get(i).copied().unwrap_or(0);
            let b = other.core.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Greater,
            (false, true) => return Ordering::Less,
            (false, false) => {}
        }
        for (a, b) in self.pre.iter().zip(&other.pre) {
            let ord = match (a.parse::<u64>(), b.parse::<u64>()) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                (Ok(_), Err(_)) => Ordering::Less,
                (Err(_), Ok(_)) => Ordering::Greater,
                (Err(_), Err(_)) => a.cmp(b),
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        self.pre.len().cmp(&other.pre.len())
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn orders_numerically_not_as_text() {
        assert!(v("1.10") > v("1.9"));
        assert!(v("2") > v("1.99.99"));
        assert_eq!(v("2.1"), v("2.1.0"));
        assert!(v("2.1.0-rc1") < v("2.1.0"));
        assert!(v("2.1.0-rc.2") < v("2.1.0-rc.10"));
        assert!(v("2.1.0-1") < v("2.1.0-alpha"));
        assert!(v("2.1.0-alpha") < v("2.1.0-alpha.1"));
        assert_eq!(v("1.0+build5"), v("1.0"));
    }

    #[test]
    fn refuses_what_it_cannot_order() {
        for bad in ["", "v1.0", "1..2", "1.a", "1.0-", "1.0-rc!", "1.2.3.4.5.6.7.8.9"] {
            assert!(Version::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
