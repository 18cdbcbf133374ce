//! Image records (Cray FAS "image records with filters"): tags stored with each image, filters by
//! board, version and tag, and the selectors `latest` / `earliest` that any `--image` argument
//! may use instead of a name.
//!
//! Pure: the engine holds the images and tags and calls these. Selectors are resolved on the
//! controller, in one place, so the CLI, the API and the golden-image loop pick the same image.
//!
//! # Selectors
//! `latest`, `earliest`, or either with a board: `latest:rev5`. The order is the golden-image
//! loop's version order ([`crate::golden::version`]), so "latest" is exactly the image the loop
//! would call newest. An image whose version that order cannot read is never picked. An image
//! actually named `latest` wins over the selector (names are versions, and an operator who named
//! one so meant it). Two images of one version (different boards) tie; the name breaks the tie.

use std::collections::{BTreeMap, BTreeSet};

use meshlift_protocol::fleet::{ImageRecord, ImageRecords, ImageRecordsReq};
use meshlift_protocol::UpgradeImage;

use crate::golden::GoldenVersion;

/// Most tags one image may carry.
pub const MAX_TAGS: usize = 32;
/// Longest tag, bytes.
pub const MAX_TAG_LEN: usize = 64;

/// Why a tag change or a selector was refused: the operator's input, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// Tags are short words: letters, digits, `.`, `_`, `-`.
    #[error("tag {0:?} is not 1 to 64 letters, digits, '.', '_' or '-'")]
    BadTag(String),
    /// `latest`/`earliest` are selectors, not tags: a tag of that name would read like one.
    #[error("tag {0:?} is reserved (it selects images by version)")]
    ReservedTag(String),
    #[error("image {name:?} would carry {count} tags (at most {MAX_TAGS})")]
    TooManyTags { name: String, count: usize },
    /// No stored image answers the name or selector.
    #[error("no image matches {what}; stored: {stored}")]
    NoMatch { what: String, stored: String },
}

/// A selector: newest or oldest, maybe for one board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub newest: bool,
    pub board: Option<String>,
}

impl Selector {
    /// `latest`, `earliest`, `latest:BOARD`, `earliest:BOARD`; anything else is a name.
    pub fn parse(text: &str) -> Option<Selector> {
        let (word, board) = match text.split_once(':') {
            Some((w, b)) if !b.is_empty() => (w, Some(b.to_string())),
            Some(_) => return None,
            None => (text, None),
        };
        match word {
            "latest" => Some(Selector { newest: true, board }),
            "earliest" => Some(Selector { newest: false, board }),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        let w = if self.newest { "latest" } else { "earliest" };
        match &self.board {
            Some(b) => format!("{w} (images for board {b})"),
            None => w.to_string(),
        }
    }
}

/// The image `text` names: an image of that name, else a selector's pick. `board` restricts a
/// selector without a board of its own (the `--board` of `golden set`). The error names what was
/// looked for and what is stored.
pub fn resolve<'a>(
    text: &str,
    board: Option<&str>,
    images: impl IntoIterator<Item = &'a UpgradeImage> + Clone,
) -> Result<&'a UpgradeImage, CatalogError> {
    if let Some(img) = images.clone().into_iter().find(|i| i.name == text) {
        return Ok(img);
    }
    let stored = || {
        let names: Vec<&str> = images.clone().into_iter().map(|i| i.name.as_str()).collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let Some(mut sel) = Selector::parse(text) else {
        return Err(CatalogError::NoMatch { what: format!("the name {text:?}"), stored: stored() });
    };
    if sel.board.is_none() {
        sel.board = board.map(str::to_string);
    }
    let mut ordered: Vec<(GoldenVersion, &UpgradeImage)> = images
        .clone()
        .into_iter()
        .filter(|i| {
            sel.board
                .as_ref()
                .is_none_or(|b| i.hardware_board_ids.is_empty() || i.hardware_board_ids.contains(b))
        })
        .filter_map(|i| GoldenVersion::parse(&i.version).ok().map(|v| (v, i)))
        .collect();
    ordered.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
    let pick = if sel.newest { ordered.last() } else { ordered.first() };
    pick.map(|(_, i)| *i).ok_or_else(|| CatalogError::NoMatch { what: sel.describe(), stored: stored() })
}

/// Check one tag.
pub fn check_tag(tag: &str) -> Result<(), CatalogError> {
    let ok = !tag.is_empty()
        && tag.len() <= MAX_TAG_LEN
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(CatalogError::BadTag(tag.chars().take(MAX_TAG_LEN + 1).collect()));
    }
    if Selector::parse(tag).is_some() {
        return Err(CatalogError::ReservedTag(tag.to_string()));
    }
    Ok(())
}

/// `current` with `add` added and `remove` removed, every tag checked and the count bounded.
pub fn retag(
    name: &str,
    current: &BTreeSet<String>,
    add: &[String],
    remove: &[String],
) -> Result<BTreeSet<String>, CatalogError> {
    for t in add {
        check_tag(t)?;
    }
    let mut out = current.clone();
    out.extend(add.iter().cloned());
    for t in remove {
        out.remove(t);
    }
    if out.len() > MAX_TAGS {
        return Err(CatalogError::TooManyTags { name: name.to_string(), count: out.len() });
    }
    Ok(out)
}

/// The records that pass `req`, oldest version first (unreadable versions last, by name).
pub fn records<'a>(
    images: impl IntoIterator<Item = &'a UpgradeImage>,
    tags: &BTreeMap<String, BTreeSet<String>>,
    req: &ImageRecordsReq,
) -> ImageRecords {
    let mut rows: Vec<(Option<GoldenVersion>, ImageRecord)> = images
        .into_iter()
        .filter(|i| req.version.as_ref().is_none_or(|v| &i.version == v))
        .filter(|i| req.board.as_ref().is_none_or(|b| i.hardware_board_ids.contains(b)))
        .filter(|i| req.tag.as_ref().is_none_or(|t| tags.get(&i.name).is_some_and(|s| s.contains(t))))
        .map(|i| {
            let t = tags.get(&i.name).map_or_else(Vec::new, |s| s.iter().cloned().collect());
            (GoldenVersion::parse(&i.version).ok(), ImageRecord { image: i.clone(), tags: t })
        })
        .collect();
    rows.sort_by(|a, b| match (&a.0, &b.0) {
        (Some(x), Some(y)) => x.cmp(y).then_with(|| a.1.image.name.cmp(&b.1.image.name)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.1.image.name.cmp(&b.1.image.name),
    });
    ImageRecords { images: rows.into_iter().map(|(_, r)| r).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshlift_protocol::Sha256Digest;

    fn img(name: &str, boards: &[&str]) -> UpgradeImage {
        UpgradeImage {
            name: name.into(),
            version: name.into(),
            magnet_uri: String::new(),
            http_uri: String::new(),
            sha256: Sha256Digest([0; 32]),
            size: 1,
            hardware_board_ids: boards.iter().map(|b| b.to_string()).collect(),
        }
    }

    fn store() -> Vec<UpgradeImage> {
        // Not in version order, and one version only a dotted order gets right (1.10 > 1.9).
        vec![
            img("1.10.0", &["rev5"]),
            img("1.9.0", &["rev5", "rev6"]),
            img("2.0.0", &["rev6"]),
            img("nightly", &["rev5"]),
        ]
    }

    #[test]
    fn latest_and_earliest_follow_the_golden_version_order_and_the_board() {
        let s = store();
        assert_eq!(resolve("latest", None, &s).unwrap().name, "2.0.0");
        assert_eq!(resolve("earliest", None, &s).unwrap().name, "1.9.0");
        assert_eq!(resolve("latest:rev5", None, &s).unwrap().name, "1.10.0");
        assert_eq!(
            resolve("latest", Some("rev5"), &s).unwrap().name,
            "1.10.0",
            "--board restricts a bare selector"
        );
        assert_eq!(
            resolve("latest:rev6", Some("rev5"), &s).unwrap().name,
            "2.0.0",
            "the selector's own board wins"
        );
        assert_eq!(resolve("1.9.0", None, &s).unwrap().name, "1.9.0", "a name is a name");
    }

    #[test]
    fn an_unresolvable_selector_names_what_was_looked_for() {
        let s = store();
        let e = resolve("latest:rev9", None, &s).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no image matches latest (images for board rev9); stored: 1.10.0, 1.9.0, 2.0.0, nightly"
        );
        let e = resolve("3.0.0", None, &s).unwrap_err();
        assert!(e.to_string().starts_with("no image matches the name \"3.0.0\""), "{e}");
        assert!(matches!(resolve("latest", None, &Vec::new()), Err(CatalogError::NoMatch { .. })));
        assert!(resolve("latest:", None, &s).is_err(), "an empty board is not a selector");
    }

    #[test]
    fn an_image_named_like_a_selector_wins() {
        let s = vec![img("2.0.0", &[]), UpgradeImage { version: "0.1.0".into(), ..img("latest", &[]) }];
        assert_eq!(resolve("latest", None, &s).unwrap().name, "latest");
    }

    #[test]
    fn filters_by_board_version_and_tag_in_version_order() {
        let s = store();
        let tags = BTreeMap::from([
            ("1.9.0".to_string(), BTreeSet::from(["stable".to_string()])),
            ("2.0.0".to_string(), BTreeSet::from(["stable".to_string(), "lab".to_string()])),
        ]);
        let names = |r: ImageRecords| r.images.into_iter().map(|r| r.image.name).collect::<Vec<_>>();
        let all = records(&s, &tags, &ImageRecordsReq::default());
        assert_eq!(names(all.clone()), ["1.9.0", "1.10.0", "2.0.0", "nightly"]);
        assert_eq!(all.images[2].tags, ["lab", "stable"]);
        let q = |board: Option<&str>, version: Option<&str>, tag: Option<&str>| ImageRecordsReq {
            board: board.map(Into::into),
            version: version.map(Into::into),
            tag: tag.map(Into::into),
        };
        assert_eq!(names(records(&s, &tags, &q(Some("rev6"), None, None))), ["1.9.0", "2.0.0"]);
        assert_eq!(names(records(&s, &tags, &q(None, None, Some("stable")))), ["1.9.0", "2.0.0"]);
        assert_eq!(names(records(&s, &tags, &q(Some("rev5"), None, Some("stable")))), ["1.9.0"]);
        assert_eq!(names(records(&s, &tags, &q(None, Some("2.0.0"), Some("lab")))), ["2.0.0"]);
        assert!(names(records(&s, &tags, &q(None, Some("2.0.0"), Some("old")))).is_empty());
    }

    #[test]
    fn tags_are_checked_bounded_and_never_a_selector() {
        let none = BTreeSet::new();
        assert_eq!(retag("x", &none, &["stable".into(), "rc-1.2".into()], &[]).unwrap().len(), 2);
        assert_eq!(
            retag("x", &none, &["latest".into()], &[]),
            Err(CatalogError::ReservedTag("latest".into()))
        );
        assert!(matches!(retag("x", &none, &["two words".into()], &[]), Err(CatalogError::BadTag(_))));
        assert!(matches!(retag("x", &none, &["".into()], &[]), Err(CatalogError::BadTag(_))));
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert!(matches!(retag("x", &none, &many, &[]), Err(CatalogError::TooManyTags { count: 33, .. })));
        let cur = BTreeSet::from(["a".to_string(), "b".to_string()]);
        assert_eq!(
            retag("x", &cur, &[], &["a".into(), "zz".into()]).unwrap(),
            BTreeSet::from(["b".to_string()])
        );
    }
}
