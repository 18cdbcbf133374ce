//! `meshlift golden …`: the golden-image loop on a running controller.
//!
//! Every change is journaled by the controller with the operator's key name and `--reason`;
//! `show` and `blacklist list` need the viewer role, `unquarantine` the admin role, the rest the
//! operator role.

use clap::{Args, Subcommand};
use meshlift_protocol::{GoldenCmd, GoldenReq, GoldenShow, GoldenShowReq, Message};
use std::fmt::Write as _;

use super::{command, group_req, read, to_json, ControllerOpts, EXIT_USAGE, READ_TIMEOUT};

/// `meshlift golden …`
#[derive(Args, Debug)]
pub struct GoldenArgs {
    #[command(flatten)]
    pub opts: ControllerOpts,
    #[command(subcommand)]
    pub command: GoldenCommand,
}

#[derive(Subcommand, Debug)]
pub enum GoldenCommand {
    /// Per board: target, nodes behind, current wave, next window, blacklist, quarantines.
    Show,
    /// Make an image (a name in `meshlift image list`) the golden target of a board.
    /// `--image` may be `latest` / `earliest` (for `--board`, resolved by the controller).
    /// Asks first (`--yes`, `--dry-run`): an enabled loop starts upgrading to it.
    Set {
        #[arg(long, short = 'b')]
        board: Option<String>,
        #[arg(long, short = 'i')]
        image: String,
        #[command(flatten)]
        confirm: super::confirm::ConfirmOpts,
    },
    /// The board has no golden target any more.
    Unset {
        #[arg(long, short = 'b')]
        board: String,
    },
    /// Turn the loop on.
    Enable,
    /// Turn the loop off.
    Disable,
    /// Start no new wave (a wave in flight finishes); the rollout keeps its place.
    Pause,
    /// Go on after a pause.
    Resume,
    /// When waves may start: `"<days> <HH:MM-HH:MM>[,…] <IANA zone>"`, e.g.
    /// `"mon-fri 22:00-02:00 Europe/Berlin"`; ranges may cross midnight. `--always` removes it.
    Window {
        #[arg(required_unless_present = "always")]
        window: Option<String>,
        #[arg(long, conflicts_with = "window")]
        always: bool,
    },
    /// Nodes the loop must not give a version.
    #[command(subcommand)]
    Blacklist(BlacklistCommand),
    /// Lift the fleet-wide quarantine of an image version (admin).
    Unquarantine {
        /// The quarantined version.
        version: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum BlacklistCommand {
    /// Never give `--version` to `--node` (until `--for` seconds from now, if given); the reason
    /// is `--reason`.
    Add {
        #[arg(long, short = 'n')]
        node: String,
        #[arg(long, short = 'v')]
        version: String,
        /// Expire after this many seconds.
        #[arg(long = "for", value_name = "SECS")]
        for_s: Option<u64>,
    },
    /// Remove the node's entry for `--version`, or all its entries.
    Del {
        #[arg(long, short = 'n')]
        node: String,
        #[arg(long, short = 'v')]
        version: Option<String>,
    },
    /// The blacklist.
    List,
}

pub fn run(args: GoldenArgs) -> u8 {
    let opts = args.opts;
    let cmd = match args.command {
        GoldenCommand::Show => return show(&opts, false),
        GoldenCommand::Blacklist(BlacklistCommand::List) => return show(&opts, true),
        GoldenCommand::Set { board, image, confirm } => {
            let preview = |ctrl: &super::connection::Controller| {
                super::previews::golden_set(ctrl, board.as_deref(), &image)
            };
            if let super::confirm::Go::Exit(code) =
                super::confirm::guard(&opts, &confirm, "golden set", preview)
            {
                return code;
            }
            GoldenCmd::SetTarget { board, image }
        }
        GoldenCommand::Unset { board } => GoldenCmd::UnsetTarget { board },
        GoldenCommand::Enable => GoldenCmd::Enable,
        GoldenCommand::Disable => GoldenCmd::Disable,
        GoldenCommand::Pause => GoldenCmd::Pause,
        GoldenCommand::Resume => GoldenCmd::Resume,
        GoldenCommand::Window { window, always } => {
            if always == window.is_some() {
                eprintln!("meshlift golden window: give a window or --always");
                return EXIT_USAGE;
            }
            GoldenCmd::SetWindow { window }
        }
        GoldenCommand::Blacklist(BlacklistCommand::Add { node, version, for_s }) => {
            let expires_at =
                for_s.map(|s| super::render::now_millis().saturating_add(s.saturating_mul(1000)));
            GoldenCmd::BlacklistAdd { node, version, expires_at }
        }
        GoldenCommand::Blacklist(BlacklistCommand::Del { node, version }) => {
            GoldenCmd::BlacklistDel { node, version }
        }
        GoldenCommand::Unquarantine { version } => GoldenCmd::Unquarantine { version },
    };
    set(&opts, cmd)
}

/// Send one change (also used by `upgrade … full --set-golden`).
pub(super) fn set(opts: &ControllerOpts, cmd: GoldenCmd) -> u8 {
    let msg = Message::GoldenReq(GoldenReq { cmd, operator: group_req::operator(opts.reason.clone()) });
    command(opts, READ_TIMEOUT, "golden", msg)
}

fn show(opts: &ControllerOpts, blacklist_only: bool) -> u8 {
    read(opts, "golden show", Message::GoldenShowReq(GoldenShowReq {}), |reply| match reply {
        Message::GoldenShow(g) if blacklist_only => Some(if opts.json {
            to_json(&serde_json::json!({"blacklist": g.blacklist}))
        } else {
            blacklist_text(&g)
        }),
        Message::GoldenShow(g) => Some(if opts.json { to_json(&g) } else { show_text(&g) }),
        _ => None,
    })
}

/// A time relative to now ("in 3h 20m", "42s ago"): what an operator reading `show` wants.
fn when(ms: u64) -> String {
    let now = super::render::now_millis();
    if ms <= now {
        return super::render::ago(Some(ms), now);
    }
    let s = (ms - now) / 1000;
    match s {
        0..=59 => format!("in {s}s"),
        60..=3599 => format!("in {}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("in {}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("in {}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn show_text(g: &GoldenShow) -> String {
    let mut s = String::new();
    let state = match (g.enabled, g.paused) {
        (false, false) => "disabled",
        (false, true) => "disabled (and paused)",
        (true, true) => "paused",
        (true, false) => "enabled",
    };
    let _ = writeln!(s, "golden-image loop: {state}, check every {} s", g.check_interval_s);
    let window = g.window.as_deref().unwrap_or("always open");
    let next = match (g.window_open, g.next_window_open) {
        (true, _) => "open now".to_string(),
        (false, Some(t)) => format!("opens {}", when(t)),
        (false, None) => "never opens".to_string(),
    };
    let _ = writeln!(s, "window: {window} ({next})");
    let _ = writeln!(s, "last wave started: {}", g.last_run_at.map_or("never".to_string(), when));
    if g.boards.is_empty() {
        let _ = writeln!(s, "no golden target (meshlift golden set --board B --image V)");
    }
    for b in &g.boards {
        let _ = writeln!(
            s,
            "\nboard {}: target {} (version {}), {} of {} nodes behind, {}{}",
            b.board,
            b.image,
            b.version,
            b.behind,
            b.nodes,
            b.state,
            b.current_wave.as_deref().map_or(String::new(), |w| format!(", current wave: {w}"))
        );
        for w in &b.waves {
            let status = match w.finished_at {
                Some(_) => format!("{} upgraded, {} failed", w.upgraded.len(), w.failed.len()),
                None => "running".to_string(),
            };
            let _ = writeln!(s, "  {:<16} {} — {} ({})", w.label, w.request_id, w.nodes.join(", "), status);
        }
    }
    s.push('\n');
    s.push_str(&blacklist_text(g));
    if g.quarantined.is_empty() {
        s.push_str("quarantined: none\n");
    }
    for q in &g.quarantined {
        let _ = writeln!(s, "QUARANTINED {} since {}: {}", q.version, when(q.at), q.reason);
    }
    s.trim_end().to_string()
}

fn blacklist_text(g: &GoldenShow) -> String {
    let mut s = String::new();
    if g.blacklist.is_empty() {
        s.push_str("blacklist: empty\n");
    }
    for e in &g.blacklist {
        let until = e.expires_at.map_or("no expiry".to_string(), |t| format!("until {}", when(t)));
        let _ = writeln!(s, "blacklisted {} for {} by {} ({until}): {}", e.node, e.version, e.who, e.reason);
    }
    s
}
