//! Turning command-line flags into the wire requests (`UpgradeGroupReq`, `UpgradeCommitPlanReq`).
//!
//! Pure: no I/O except reading the clock and the environment for the defaults (request id, who).
//!
//! Defaults follow Terragraph's CLI and NMS (reference §8) where they agree: prepare skips failed
//! nodes and POP checks (a node that cannot download should not hold back the rest), commit stops
//! on the first failure and checks POP uplinks (a reboot that went wrong must stop the rollout),
//! full upgrade skips failed nodes but checks POPs.

use super::{Action, BatchOpts, CommitOpts, SubmitOpts, TorrentOpts};
use meshlift_protocol::{
    Operator, TorrentParams, UpgradeCommitPlanReq, UpgradeGroupReq, UpgradeGroupType, UpgradeReq,
    UpgradeReqType,
};
use std::time::{SystemTime, UNIX_EPOCH};

/// Per-batch timeout of a prepare when `--timeout` is not given (Terragraph CLI and NMS: 180 s).
pub const PREPARE_TIMEOUT_S: u64 = 180;
/// Per-batch timeout of a commit or full upgrade: a reboot, the trial boot's checks (confirm
/// timeout 120 s by default) and the links coming back must fit in it.
pub const COMMIT_TIMEOUT_S: u64 = 300;

/// Which nodes a request covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub ug_type: UpgradeGroupType,
    /// `Nodes`: the nodes; `Network`: the excluded nodes.
    pub names: Vec<String>,
}

impl Target {
    pub fn network(exclude: Vec<String>) -> Target {
        Target { ug_type: UpgradeGroupType::Network, names: exclude }
    }

    pub fn nodes(nodes: Vec<String>) -> Target {
        Target { ug_type: UpgradeGroupType::Nodes, names: nodes }
    }

    /// Trims names, drops empty ones (`-n a,,b`), refuses duplicates and an empty node list.
    pub fn validated(self) -> Result<Target, String> {
        let mut names: Vec<String> =
            self.names.iter().map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect();
        let mut seen = std::collections::BTreeSet::new();
        for n in &names {
            if !seen.insert(n.as_str()) {
                return Err(format!("node {n:?} is listed twice"));
            }
        }
        if self.ug_type == UpgradeGroupType::Nodes && names.is_empty() {
            return Err("no node names given (-n a,b)".into());
        }
        names.shrink_to_fit();
        Ok(Target { ug_type: self.ug_type, names })
    }

    fn apply(&self, g: &mut UpgradeGroupReq) {
        match self.ug_type {
            UpgradeGroupType::Nodes => g.nodes = self.names.clone(),
            UpgradeGroupType::Network => g.exclude_nodes = self.names.clone(),
        }
    }
}

/// `operator` of every command: `$USER@host` and the `--reason`.
pub fn operator(reason: Option<String>) -> Operator {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".into());
    Operator { who: format!("{user}@{}", hostname()), reason: reason.filter(|r| !r.trim().is_empty()) }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()))
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Build the group request for `action` and return how it is to be submitted (`None` for reset,
/// which is immediate and cannot be followed).
pub fn build(
    target: &Target,
    action: &Action,
    operator: Operator,
) -> Result<(UpgradeGroupReq, Option<SubmitOpts>), String> {
    let (mut g, submit) = match action {
        Action::Prepare(p) => {
            let id = request_id(&p.submit)?;
            let ur = prepare_req(
                UpgradeReqType::PrepareUpgrade,
                id,
                &p.image,
                &p.batch,
                &p.torrent,
                p.allow_downgrade,
            );
            let mut g =
                UpgradeGroupReq::new(target.ug_type, ur, p.batch.timeout.unwrap_or(PREPARE_TIMEOUT_S));
            apply_batch(&mut g, &p.batch, true, true);
            (g, Some(p.submit.clone()))
        }
        Action::Commit(c) => {
            let id = request_id(&c.submit)?;
            let mut ur = UpgradeReq::new(UpgradeReqType::CommitUpgrade, id);
            ur.version = c.batch.version.clone();
            apply_commit_ur(&mut ur, &c.commit);
            let mut g = UpgradeGroupReq::new(target.ug_type, ur, c.batch.timeout.unwrap_or(COMMIT_TIMEOUT_S));
            apply_batch(&mut g, &c.batch, false, false);
            apply_commit_group(&mut g, &c.commit);
            (g, Some(c.submit.clone()))
        }
        Action::Full(f) => {
            let id = request_id(&f.submit)?;
            let mut ur = prepare_req(
                UpgradeReqType::FullUpgrade,
                id,
                &f.image,
                &f.batch,
                &f.torrent,
                f.allow_downgrade,
            );
            apply_commit_ur(&mut ur, &f.commit);
            let mut g = UpgradeGroupReq::new(target.ug_type, ur, f.batch.timeout.unwrap_or(COMMIT_TIMEOUT_S));
            apply_batch(&mut g, &f.batch, true, false);
            apply_commit_group(&mut g, &f.commit);
            (g, Some(f.submit.clone()))
        }
        Action::Revert(r) => {
            let id = request_id(&r.submit)?;
            let mut ur = UpgradeReq::new(UpgradeReqType::RevertToStandby, id);
            ur.version = r.batch.version.clone();
            ur.skip_links = r.skip_links.clone();
            let mut g = UpgradeGroupReq::new(target.ug_type, ur, r.batch.timeout.unwrap_or(COMMIT_TIMEOUT_S));
            // Like a commit: a node that does not come back stops the rollout, POPs are checked.
            apply_batch(&mut g, &r.batch, false, false);
            apply_commit_group(&mut g, &r.commit_opts());
            (g, Some(r.submit.clone()))
        }
        Action::Reset(_) => {
            let ur = UpgradeReq::new(UpgradeReqType::ResetStatus, default_request_id(SystemTime::now()));
            (UpgradeGroupReq::new(target.ug_type, ur, 0), None)
        }
    };
    target.apply(&mut g);
    g.operator = operator;
    Ok((g, submit))
}

/// The dry run of a commit (or, with `revert`, of a revert). Terragraph's plan request only
/// knows exclusions, so it plans the whole network; a plan for a node list cannot be asked for
/// honestly and is refused.
pub fn commit_plan_req(
    target: &Target,
    batch: &BatchOpts,
    commit: &CommitOpts,
    revert: bool,
) -> Result<UpgradeCommitPlanReq, String> {
    if target.ug_type == UpgradeGroupType::Nodes {
        let what = if revert { "revert" } else { "commit" };
        return Err(format!(
            "the {what} plan covers the whole network: use `meshlift upgrade network \
             [--exclude a,b] {what} --dry-run`"
        ));
    }
    Ok(UpgradeCommitPlanReq {
        limit: batch.batch_size,
        exclude_nodes: target.names.clone(),
        ap_policy: commit.ap_policy.into(),
        max_pops_per_batch: commit.max_pops_per_batch,
        strategy: commit.strategy.into(),
        version: batch.version.clone(),
        revert,
    })
}

/// `image add` source: URLs go as they are; a local file becomes an absolute path so the
/// controller (whose working directory is not ours) finds it.
pub fn image_source(source: &str) -> Result<String, String> {
    let s = source.trim();
    if s.is_empty() {
        return Err("no image path or URL given".into());
    }
    if s.contains("://") {
        if s.starts_with("http://") || s.starts_with("https://") {
            return Ok(s.to_string());
        }
        return Err(format!("{s:?}: only http(s) URLs or file paths are supported"));
    }
    match std::fs::canonicalize(s) {
        Ok(p) => Ok(p.to_string_lossy().into_owned()),
        // Not here: perhaps a path on the controller's host; it must then be absolute.
        Err(_) if s.starts_with('/') => Ok(s.to_string()),
        Err(e) => Err(format!("{s}: {e} (give an absolute path if the file is on the controller's host)")),
    }
}

fn prepare_req(
    ur_type: UpgradeReqType,
    id: String,
    image: &str,
    batch: &BatchOpts,
    torrent: &TorrentOpts,
    allow_downgrade: bool,
) -> UpgradeReq {
    let mut ur = UpgradeReq::new(ur_type, id);
    // The controller fills sha256, URLs, size and boards from its image store.
    ur.image_name = Some(image.trim().to_string());
    ur.version = batch.version.clone();
    ur.allow_downgrade = allow_downgrade;
    ur.download_attempts = torrent.download_attempts;
    ur.torrent_params = TorrentParams {
        download_timeout_s: torrent
            .download_timeout
            .or(batch.timeout)
            .unwrap_or(TorrentParams::default().download_timeout_s),
        download_limit: torrent.download_limit,
        upload_limit: torrent.upload_limit,
        max_connections: torrent.max_connections,
        ..TorrentParams::default()
    };
    ur
}

fn apply_batch(g: &mut UpgradeGroupReq, b: &BatchOpts, skip_failure: bool, skip_pop_failure: bool) {
    g.skip_failure = b.skip_failure.unwrap_or(skip_failure);
    g.skip_pop_failure = b.skip_pop_failure.unwrap_or(skip_pop_failure);
    g.version = b.version.clone();
    g.limit = b.batch_size;
    g.retry_limit = b.retries;
}

fn apply_commit_ur(ur: &mut UpgradeReq, c: &CommitOpts) {
    ur.schedule_to_commit_s = c.delay;
    ur.skip_links = c.skip_links.clone();
    ur.confirm_timeout_s = c.confirm_timeout;
}

fn apply_commit_group(g: &mut UpgradeGroupReq, c: &CommitOpts) {
    g.skip_links = c.skip_links.clone();
    g.ap_policy = c.ap_policy.into();
    g.max_pops_per_batch = c.max_pops_per_batch;
    g.strategy = c.strategy.into();
}

fn request_id(s: &SubmitOpts) -> Result<String, String> {
    match &s.request_id {
        Some(id) if id.is_empty() || id.contains(char::is_whitespace) => {
            Err(format!("request id {id:?} must be one non-empty word"))
        }
        Some(id) => Ok(id.clone()),
        None => Ok(default_request_id(SystemTime::now())),
    }
}

/// `%Y%m%d%H%M%S` in UTC (Terragraph's CLI id, sortable) plus four random hex digits, so two
/// operators submitting in the same second get different ids.
pub fn default_request_id(now: SystemTime) -> String {
    use std::hash::{BuildHasher, Hasher};
    let secs = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    // RandomState is seeded from the OS per process: random enough for a suffix, no extra crate.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(secs);
    format!("{}-{:04x}", utc_compact(secs), h.finish() & 0xffff)
}

/// UNIX seconds → `YYYYMMDDhhmmss` (UTC), by the civil-from-days algorithm (H. Hinnant).
fn utc_compact(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn utc_formatting_matches_known_dates() {
        assert_eq!(utc_compact(0), "19700101000000");
        // 2026-11-25 10:34:15 UTC
        assert_eq!(utc_compact(1_795_602_855), "20261125103415");
        // Leap day.
        assert_eq!(utc_compact(951_782_400), "20000229000000");
        let id = default_request_id(UNIX_EPOCH + Duration::from_secs(1_795_602_855));
        assert!(id.starts_with("20261125103415-") && id.len() == 19, "{id}");
    }

    #[test]
    fn targets_are_cleaned_and_checked() {
        let t = Target::nodes(vec![" a".into(), "".into(), "b".into()]).validated().unwrap();
        assert_eq!(t.names, ["a", "b"]);
        assert!(Target::nodes(vec!["a".into(), "a".into()]).validated().unwrap_err().contains("twice"));
        assert!(Target::nodes(vec![" ".into()]).validated().is_err());
        assert!(Target::network(vec![]).validated().is_ok());
    }

    #[test]
    fn image_sources() {
        assert_eq!(image_source("http://x/y.mlimg").unwrap(), "http://x/y.mlimg");
        assert!(image_source("ftp://x/y").is_err());
        assert_eq!(image_source("/srv/images/a.mlimg").unwrap(), "/srv/images/a.mlimg");
        assert!(image_source("no/such/relative.mlimg").is_err());
        let f = tempfile::NamedTempFile::new().unwrap();
        let abs = image_source(f.path().to_str().unwrap()).unwrap();
        assert!(abs.starts_with('/'));
    }
}
