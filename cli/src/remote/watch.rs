//! `--watch`: follow one request until the controller lists it as finished.
//!
//! The controller has no push channel for operator tools, so the watch polls `UpgradeStateReq`
//! (once a second by default) and derives a [`Snapshot`] from each dump. Deriving is pure (tested
//! without a controller); drawing is either indicatif bars (stderr is a terminal) or one plain
//! line per change (logs, CI, pipes).
//!
//! Exit code: 0 when the request finished successfully and every node of it ended `succeeded`,
//! `already_at_version` or `excluded` (the operator asked for that); 1 otherwise; 2 when the
//! controller stayed unreachable for [`GIVE_UP_AFTER`].

use super::render::{self, stage_name};
use super::{connection::Controller, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use meshlift_protocol::{
    BatchNodeView, FinishedReq, Message, NodeOutcome, OutcomeKind, UpgradeReqType, UpgradeStateDump,
    UpgradeStateReq,
};
use serde_json::json;
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How long the controller may stay unreachable before the watch gives up (a controller restart
/// takes a few seconds; the request resumes there, so it is worth waiting for).
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// Consecutive polls in which the controller does not know the request at all before giving up.
const MAX_UNKNOWN_POLLS: u32 = 3;

/// Per-node bars shown at most; the rest of a large batch is summed up in one line.
const MAX_NODE_BARS: usize = 16;

/// Where a request stands, as derived from one state dump.
#[derive(Debug, Clone, PartialEq)]
pub enum Snapshot {
    /// Waiting in the controller's queue.
    Queued {
        position: usize,
    },
    Running(Running),
    Finished(FinishedReq),
    /// The controller does not know this request id.
    Unknown,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub stage: UpgradeReqType,
    pub batch_index: u32,
    /// Nodes of this stage with an outcome.
    pub done: usize,
    /// Every node of this stage known so far (done, in the batch, waiting).
    pub total: usize,
    pub batch: Vec<BatchNodeView>,
}

impl Snapshot {
    pub fn of(dump: &UpgradeStateDump, request_id: &str) -> Snapshot {
        if let Some(f) = dump.finished_reqs.iter().rev().find(|f| f.request_id == request_id) {
            return Snapshot::Finished(f.clone());
        }
        if let Some(cur) = dump.cur_req.as_ref().filter(|c| c.request.ur_req.upgrade_req_id == request_id) {
            let stage = cur.stage;
            let done: BTreeSet<&str> = dump
                .outcomes
                .iter()
                .filter(|o| o.request_id == request_id && o.stage == stage)
                .map(|o| o.node.as_str())
                .collect();
            let mut all = done.clone();
            all.extend(dump.cur_batch.iter().map(|n| n.node.as_str()));
            all.extend(dump.pending_nodes.iter().map(String::as_str));
            return Snapshot::Running(Running {
                stage,
                batch_index: dump.cur_batch_index,
                done: done.len(),
                total: all.len(),
                batch: dump.cur_batch.iter().filter(|n| !done.contains(n.node.as_str())).cloned().collect(),
            });
        }
        match dump.pending_reqs.iter().position(|r| r.request.ur_req.upgrade_req_id == request_id) {
            Some(i) => Snapshot::Queued { position: i + 1 },
            None => Snapshot::Unknown,
        }
    }

    /// One line for logs: `prepare batch 2: 5/40 done | n1 DOWNLOADING_IMAGE 45% | …`.
    pub fn line(&self, request_id: &str) -> String {
        match self {
            Snapshot::Queued { position } => format!("{request_id}: queued (position {position})"),
            Snapshot::Unknown => format!("{request_id}: not known to the controller"),
            Snapshot::Finished(f) => {
                format!("{request_id}: finished, {}: {}", if f.success { "ok" } else { "FAILED" }, f.summary)
            }
            Snapshot::Running(r) => {
                let mut s = format!(
                    "{request_id}: {} batch {}: {}/{} done",
                    stage_name(r.stage),
                    r.batch_index,
                    r.done,
                    r.total
                );
                for n in r.batch.iter().take(MAX_NODE_BARS) {
                    s.push_str(&format!(" | {} {}", n.node, n.state.as_str()));
                    if let Some(p) = n.progress_ppm {
                        s.push_str(&format!(" {}", render::percent(Some(p))));
                    }
                }
                if r.batch.len() > MAX_NODE_BARS {
                    s.push_str(&format!(" | … {} more", r.batch.len() - MAX_NODE_BARS));
                }
                s
            }
        }
    }
}

/// Outcomes of `request_id` in the dump, in the controller's order.
pub fn outcomes_of<'a>(dump: &'a UpgradeStateDump, request_id: &str) -> Vec<&'a NodeOutcome> {
    dump.outcomes.iter().filter(|o| o.request_id == request_id).collect()
}

/// Whether a finished request counts as done for the exit code.
pub fn succeeded(finished: &FinishedReq, outcomes: &[&NodeOutcome]) -> bool {
    finished.success
        && outcomes.iter().all(|o| {
            matches!(
                o.outcome,
                OutcomeKind::Succeeded | OutcomeKind::AlreadyAtVersion | OutcomeKind::Excluded
            )
        })
}

/// Poll until `request_id` finishes; print the outcome table (or one JSON object) and return the
/// exit code.
pub fn follow(ctrl: &Controller, request_id: &str, poll: Duration, json_out: bool) -> u8 {
    let mut display: Box<dyn Display> = if json_out {
        Box::new(Quiet)
    } else if std::io::stderr().is_terminal() {
        Box::new(Bars::new(request_id))
    } else {
        Box::new(Lines::default())
    };
    let mut unreachable_since: Option<Instant> = None;
    let mut unknown_polls = 0;
    loop {
        let dump = match ctrl.call(Message::UpgradeStateReq(UpgradeStateReq {})) {
            Ok(Message::UpgradeStateDump(d)) => {
                unreachable_since = None;
                d
            }
            Ok(other) => {
                display.clear();
                eprintln!(
                    "meshlift: unexpected {} reply from {} while watching",
                    other.kind(),
                    ctrl.endpoint()
                );
                return EXIT_USAGE;
            }
            Err(e) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= GIVE_UP_AFTER {
                    display.clear();
                    eprintln!("meshlift: {e}; gave up watching {request_id}");
                    return e.exit_code();
                }
                display.note(&format!("{e}; retrying"));
                std::thread::sleep(poll);
                continue;
            }
        };
        let snap = Snapshot::of(&dump, request_id);
        match &snap {
            Snapshot::Finished(f) => {
                display.clear();
                let outcomes = outcomes_of(&dump, request_id);
                let ok = succeeded(f, &outcomes);
                if json_out {
                    let doc = json!({
                        "request_id": request_id,
                        "accepted": true,
                        "success": ok,
                        "finished": f,
                        "outcomes": outcomes,
                    });
                    emit!("{doc}");
                } else {
                    emit!("{}", snap.line(request_id));
                    if !outcomes.is_empty() {
                        emit!("{}", render::outcomes_table(&outcomes));
                    }
                }
                return if ok { EXIT_OK } else { EXIT_FAILED };
            }
            Snapshot::Unknown => {
                unknown_polls += 1;
                if unknown_polls >= MAX_UNKNOWN_POLLS {
                    display.clear();
                    eprintln!(
                        "meshlift: the controller at {} does not know request {request_id} (wrong id, or it \
                         finished long ago: see `meshlift upgrade state`)",
                        ctrl.endpoint()
                    );
                    return EXIT_FAILED;
                }
            }
            _ => unknown_polls = 0,
        }
        display.show(&snap, request_id);
        std::thread::sleep(poll);
    }
}

/// How a watch draws progress.
trait Display {
    fn show(&mut self, snap: &Snapshot, request_id: &str);
    /// A transient problem (controller unreachable for a moment).
    fn note(&mut self, text: &str);
    /// Remove whatever is drawn before the final output.
    fn clear(&mut self);
}

/// `--json`: nothing but the final object.
struct Quiet;

impl Display for Quiet {
    fn show(&mut self, _: &Snapshot, _: &str) {}
    fn note(&mut self, _: &str) {}
    fn clear(&mut self) {}
}

/// No terminal: one line each time something changes.
#[derive(Default)]
struct Lines {
    last: String,
}

impl Display for Lines {
    fn show(&mut self, snap: &Snapshot, request_id: &str) {
        let line = snap.line(request_id);
        if line != self.last {
            emit!("{line}");
            self.last = line;
        }
    }
    fn note(&mut self, text: &str) {
        eprintln!("{text}");
    }
    fn clear(&mut self) {}
}

/// A terminal: an overall bar (nodes done / total of the stage), one bar per node of the current
/// batch, and a line for the rest.
struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    nodes: Vec<(String, ProgressBar)>,
    more: Option<ProgressBar>,
    stage: Option<UpgradeReqType>,
}

impl Bars {
    fn new(request_id: &str) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template("{prefix:.bold} [{bar:40.cyan/blue}] {pos}/{len} nodes {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        overall.set_prefix(request_id.to_string());
        Bars { multi, overall, nodes: Vec::new(), more: None, stage: None }
    }

    fn node_style() -> ProgressStyle {
        ProgressStyle::with_template("  {prefix:<20} [{bar:30}] {pos:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
    }

    fn set_batch(&mut self, batch: &[BatchNodeView]) {
        let names: Vec<&str> = batch.iter().take(MAX_NODE_BARS).map(|n| n.node.as_str()).collect();
        let same = names.len() == self.nodes.len() && names.iter().zip(&self.nodes).all(|(a, (b, _))| a == b);
        if !same {
            for (_, bar) in self.nodes.drain(..) {
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
            for n in &names {
                let bar = self.multi.add(ProgressBar::new(100));
                bar.set_style(Self::node_style());
                bar.set_prefix(n.to_string());
                self.nodes.push((n.to_string(), bar));
            }
        }
        for (view, (_, bar)) in batch.iter().zip(&self.nodes) {
            bar.set_position(u64::from(view.progress_ppm.unwrap_or(0).min(1_000_000) / 10_000));
            let mut msg = view.state.as_str().to_string();
            if !view.detail.is_empty() {
                msg.push_str(": ");
                msg.push_str(&view.detail);
            }
            bar.set_message(msg);
        }
        let rest = batch.len().saturating_sub(MAX_NODE_BARS);
        match (&self.more, rest) {
            (Some(bar), 0) => {
                bar.finish_and_clear();
                self.multi.remove(bar);
                self.more = None;
            }
            (Some(bar), n) => bar.set_message(format!("  … and {n} more node(s) in this batch")),
            (None, 0) => {}
            (None, n) => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_message(format!("  … and {n} more node(s) in this batch"));
                self.more = Some(bar);
            }
        }
    }
}

impl Display for Bars {
    fn show(&mut self, snap: &Snapshot, _request_id: &str) {
        match snap {
            Snapshot::Running(r) => {
                if self.stage != Some(r.stage) {
                    self.stage = Some(r.stage);
                    self.overall.reset();
                }
                self.overall.set_length(r.total as u64);
                self.overall.set_position(r.done as u64);
                self.overall.set_message(format!("{} batch {}", stage_name(r.stage), r.batch_index));
                self.set_batch(&r.batch);
            }
            Snapshot::Queued { position } => {
                self.overall.set_message(format!("queued (position {position})"))
            }
            Snapshot::Unknown => self.overall.set_message("not known to the controller yet".to_string()),
            Snapshot::Finished(_) => {}
        }
    }

    fn note(&mut self, text: &str) {
        self.overall.set_message(text.to_string());
    }

    fn clear(&mut self) {
        for (_, bar) in self.nodes.drain(..) {
            bar.finish_and_clear();
        }
        if let Some(bar) = self.more.take() {
            bar.finish_and_clear();
        }
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshlift_protocol::*;

    fn view(id: &str, stage: UpgradeReqType) -> RequestView {
        RequestView {
            request: UpgradeGroupReq::new(
                UpgradeGroupType::Network,
                UpgradeReq::new(UpgradeReqType::FullUpgrade, id),
                300,
            ),
            stage,
            submitted_at: 0,
            started_at: Some(0),
        }
    }

    fn outcome(id: &str, node: &str, stage: UpgradeReqType, outcome: OutcomeKind) -> NodeOutcome {
        NodeOutcome {
            request_id: id.into(),
            stage,
            node: node.into(),
            outcome,
            reason: String::new(),
            started_at: 0,
            finished_at: 0,
        }
    }

    fn batch_node(node: &str, ppm: Option<u32>) -> BatchNodeView {
        BatchNodeView {
            node: node.into(),
            state: UpgradeStatusType::DownloadingImage,
            detail: String::new(),
            retries: 0,
            last_seen: None,
            progress_ppm: ppm,
        }
    }

    #[test]
    fn running_counts_only_this_stage() {
        use UpgradeReqType::*;
        let dump = UpgradeStateDump {
            cur_req: Some(view("r1", CommitUpgrade)),
            cur_batch_index: 2,
            cur_batch: vec![batch_node("c", None), batch_node("a", None)],
            pending_nodes: vec!["d".into()],
            outcomes: vec![
                outcome("r1", "a", PrepareUpgrade, OutcomeKind::Succeeded),
                outcome("r1", "b", PrepareUpgrade, OutcomeKind::Succeeded),
                outcome("r1", "a", CommitUpgrade, OutcomeKind::Succeeded),
                outcome("other", "z", CommitUpgrade, OutcomeKind::Failed),
            ],
            ..Default::default()
        };
        let Snapshot::Running(r) = Snapshot::of(&dump, "r1") else { panic!("not running") };
        assert_eq!((r.done, r.total, r.batch_index), (1, 3, 2));
        // "a" is done; only "c" is still in flight.
        assert_eq!(r.batch.iter().map(|n| n.node.as_str()).collect::<Vec<_>>(), ["c"]);
    }

    #[test]
    fn queued_finished_unknown() {
        let dump = UpgradeStateDump {
            cur_req: Some(view("r1", UpgradeReqType::PrepareUpgrade)),
            pending_reqs: vec![
                view("r2", UpgradeReqType::PrepareUpgrade),
                view("r3", UpgradeReqType::PrepareUpgrade),
            ],
            finished_reqs: vec![FinishedReq {
                request_id: "r0".into(),
                success: true,
                summary: "s".into(),
                finished_at: 1,
            }],
            ..Default::default()
        };
        assert_eq!(Snapshot::of(&dump, "r3"), Snapshot::Queued { position: 2 });
        assert!(matches!(Snapshot::of(&dump, "r0"), Snapshot::Finished(f) if f.success));
        assert_eq!(Snapshot::of(&dump, "nope"), Snapshot::Unknown);
    }

    #[test]
    fn verdict_needs_every_node_upgraded() {
        use OutcomeKind::*;
        let fin =
            |success| FinishedReq { request_id: "r".into(), success, summary: String::new(), finished_at: 0 };
        let stage = UpgradeReqType::CommitUpgrade;
        let good = [
            outcome("r", "a", stage, Succeeded),
            outcome("r", "b", stage, AlreadyAtVersion),
            outcome("r", "c", stage, Excluded),
        ];
        let good_refs: Vec<&NodeOutcome> = good.iter().collect();
        assert!(succeeded(&fin(true), &good_refs));
        assert!(!succeeded(&fin(false), &good_refs));
        for bad in [Failed, FellBack, SkippedNotReady, SkippedOffline, Aborted] {
            let o = [outcome("r", "a", stage, Succeeded), outcome("r", "b", stage, bad)];
            let refs: Vec<&NodeOutcome> = o.iter().collect();
            assert!(!succeeded(&fin(true), &refs), "{bad:?}");
        }
    }

    #[test]
    fn progress_line_lists_batch_nodes() {
        let snap = Snapshot::Running(Running {
            stage: UpgradeReqType::PrepareUpgrade,
            batch_index: 1,
            done: 5,
            total: 40,
            batch: vec![batch_node("n1", Some(450_000)), batch_node("n2", None)],
        });
        assert_eq!(
            snap.line("r1"),
            "r1: prepare batch 1: 5/40 done | n1 DOWNLOADING_IMAGE 45% | n2 DOWNLOADING_IMAGE"
        );
    }
}
