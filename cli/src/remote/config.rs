//! `meshlift config …`: startup configuration documents on a running controller (DMI
//! `UpdateStartupConfiguration`, Terragraph's `nextNodeConfigJson`).
//!
//! A document (JSON or TOML, at most 64 KiB) is set per node, per board or for the fleet; a node's
//! effective document is the most specific one. It reaches the node with its next PREPARE, is
//! written beside the new image and becomes active when that image boots (`<data>/startup-config`
//! on the node); a fallback or a revert brings the old one back. Every set is a new version,
//! journaled with `--reason`. `set` needs the operator role, `show` and `diff` the viewer role.

use clap::{ArgGroup, Args, Subcommand};
use meshlift_protocol::{ConfigDoc, ConfigScope, ConfigSetReq, ConfigShow, ConfigShowReq, Message};
use std::path::PathBuf;

use super::{
    command, group_req, read, to_json, ControllerOpts, EXIT_FAILED, EXIT_OK, EXIT_USAGE, READ_TIMEOUT,
};

/// `meshlift config …`
#[derive(Args, Debug)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub opts: ControllerOpts,
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Store a new version of a scope's document (a file, or `-` for stdin); `--clear` removes
    /// the scope's document. Needs `--reason`.
    Set(SetArgs),
    /// A node's effective document (node > board > fleet) and the digest it reports running, or
    /// without `--node` every stored document.
    Show {
        #[arg(long, short = 'n')]
        node: Option<String>,
    },
    /// The effective document of a node against what it reports running (exit 1 if they differ).
    Diff {
        #[arg(long, short = 'n')]
        node: String,
    },
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("scope").required(true).args(["node", "board", "fleet"])))]
#[command(group(ArgGroup::new("what").required(true).args(["file", "clear"])))]
pub struct SetArgs {
    #[arg(long, short = 'n')]
    pub node: Option<String>,
    #[arg(long, short = 'b')]
    pub board: Option<String>,
    #[arg(long)]
    pub fleet: bool,
    /// The document: JSON or TOML text.
    pub file: Option<PathBuf>,
    #[arg(long)]
    pub clear: bool,
}

pub fn run(args: ConfigArgs) -> u8 {
    let opts = args.opts;
    match args.command {
        ConfigCommand::Set(s) => set(&opts, s),
        ConfigCommand::Show { node } => show(&opts, node),
        ConfigCommand::Diff { node } => diff(&opts, node),
    }
}

fn set(opts: &ControllerOpts, s: SetArgs) -> u8 {
    if opts.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        eprintln!("meshlift config set: --reason is required (journaled with who asked)");
        return EXIT_USAGE;
    }
    let scope = match (s.node, s.board) {
        (Some(n), _) => ConfigScope::Node(n),
        (None, Some(b)) => ConfigScope::Board(b),
        (None, None) => ConfigScope::Fleet,
    };
    let text = match &s.file {
        None => None,
        Some(p) => match read_document(p) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("meshlift config set: {}: {e}", p.display());
                return EXIT_USAGE;
            }
        },
    };
    let msg = Message::ConfigSetReq(ConfigSetReq {
        scope,
        text,
        operator: group_req::operator(opts.reason.clone()),
    });
    command(opts, READ_TIMEOUT, "config set", msg)
}

/// The file (or stdin for `-`), read up to one byte past the limit: the controller refuses an
/// oversized document with its size, and nothing larger is ever held here.
fn read_document(p: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let limit = meshlift_protocol::MAX_STARTUP_CONFIG as u64 + 1;
    let mut bytes = Vec::new();
    if p.as_os_str() == "-" {
        std::io::stdin().take(limit).read_to_end(&mut bytes)?;
    } else {
        std::fs::File::open(p)?.take(limit).read_to_end(&mut bytes)?;
    }
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

fn show(opts: &ControllerOpts, node: Option<String>) -> u8 {
    read(opts, "config show", Message::ConfigShowReq(ConfigShowReq { node }), |reply| match reply {
        Message::ConfigShow(c) => Some(if opts.json { to_json(&c) } else { show_text(&c) }),
        _ => None,
    })
}

fn diff(opts: &ControllerOpts, node: String) -> u8 {
    let mut same = true;
    let code =
        read(opts, "config diff", Message::ConfigShowReq(ConfigShowReq { node: Some(node) }), |reply| {
            match reply {
                Message::ConfigShow(c) => {
                    let want = c.effective.as_ref().map(|d| d.sha256);
                    same = want == c.running;
                    Some(if opts.json {
                        to_json(&serde_json::json!({
                            "node": c.node,
                            "effective": want,
                            "effective_version": c.effective.as_ref().map(|d| d.version),
                            "running": c.running,
                            "in_sync": same,
                        }))
                    } else {
                        diff_text(&c, same)
                    })
                }
                _ => None,
            }
        });
    match code {
        EXIT_OK if !same => EXIT_FAILED,
        other => other,
    }
}

fn doc_line(d: &ConfigDoc) -> String {
    format!(
        "{} version {} sha256 {} ({} bytes) by {}{}",
        d.scope.label(),
        d.version,
        d.sha256.short(),
        d.text.len(),
        d.who,
        d.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
    )
}

fn show_text(c: &ConfigShow) -> String {
    let Some(node) = &c.node else {
        if c.documents.is_empty() {
            return "No startup configuration stored.".into();
        }
        return c.documents.iter().map(doc_line).collect::<Vec<_>>().join("\n");
    };
    let mut out = match &c.effective {
        Some(d) => format!("{node}: {}\n", doc_line(d)),
        None => format!("{node}: no startup configuration applies\n"),
    };
    out.push_str(&format!("running: {}\n", c.running.map_or_else(|| "none".to_string(), |d| d.short())));
    if let Some(d) = &c.effective {
        out.push_str("---\n");
        out.push_str(d.text.trim_end());
    }
    out.trim_end().to_string()
}

fn diff_text(c: &ConfigShow, same: bool) -> String {
    let node = c.node.as_deref().unwrap_or("?");
    let want = c
        .effective
        .as_ref()
        .map_or_else(|| "none".to_string(), |d| format!("{} (version {})", d.sha256.short(), d.version));
    let have = c.running.map_or_else(|| "none".to_string(), |d| d.short());
    if same {
        format!("{node}: in sync, runs {have}")
    } else {
        format!("{node}: differs: effective {want}, running {have} (it takes effect with the node's next upgrade)")
    }
}
