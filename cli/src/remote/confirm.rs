//! Dry run first (Cray FAS: "the default is a dry run"; issue 17 item 6): every command that
//! reboots nodes or deletes a record shows what it will do and asks on a terminal before doing
//! it. `--yes` skips the question; `--dry-run` shows and changes nothing. When stdin is not a
//! terminal (a script, CI, a pipe) there is no one to ask, so the command refuses unless it was
//! given one of the two: a script that forgot `--yes` must not reboot a network by accident.
//!
//! `upgrade abort` is deliberately not guarded: it is the emergency brake, it reboots nothing,
//! and a question in front of it costs time on the bad day.

use clap::Args;
use std::io::{BufRead, IsTerminal, Write};

use super::connection::Controller;
use super::{ControllerOpts, EXIT_FAILED, EXIT_OK, EXIT_USAGE, READ_TIMEOUT};

/// `--yes` / `--dry-run` of a destructive command.
#[derive(Args, Debug, Clone, Default)]
pub struct ConfirmOpts {
    /// Do it without asking (required when stdin is not a terminal, unless --dry-run).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Show what would be done (from the controller's own plan or record) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// What the caller does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Go {
    /// Send the command.
    Proceed,
    /// Stop with this exit code (dry run shown, refused, declined, or the preview failed).
    Exit(u8),
}

/// The decision without I/O, for tests: `answer` is the operator's reply, if one was read.
pub fn decide(c: &ConfirmOpts, stdin_is_terminal: bool, answer: Option<&str>) -> Go {
    if c.dry_run {
        return Go::Exit(EXIT_OK);
    }
    if c.yes {
        return Go::Proceed;
    }
    if !stdin_is_terminal {
        return Go::Exit(EXIT_USAGE);
    }
    match answer.map(|a| a.trim().to_ascii_lowercase()) {
        Some(a) if a == "y" || a == "yes" => Go::Proceed,
        _ => Go::Exit(EXIT_FAILED),
    }
}

/// Guard `what`: `preview` asks the controller what the command would do and renders it. Returns
/// [`Go::Proceed`] when the command may be sent.
pub fn guard(
    opts: &ControllerOpts,
    c: &ConfirmOpts,
    what: &str,
    preview: impl FnOnce(&Controller) -> Result<String, String>,
) -> Go {
    let tty = std::io::stdin().is_terminal();
    if c.yes && !c.dry_run {
        return Go::Proceed;
    }
    if !c.dry_run && !tty {
        eprintln!(
            "meshlift {what}: refused: this command reboots nodes or deletes a record, and stdin is not a terminal \
             to ask on; pass --yes to do it, or --dry-run to see what it would do"
        );
        return Go::Exit(EXIT_USAGE);
    }
    let ctrl = match opts.connect(READ_TIMEOUT) {
        Ok(c) => c,
        Err(code) => return Go::Exit(code),
    };
    let text = match preview(&ctrl) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("meshlift {what}: {e}");
            return Go::Exit(EXIT_FAILED);
        }
    };
    if c.dry_run {
        emit!("{text}");
        emit!("(dry run: nothing was changed)");
        return Go::Exit(EXIT_OK);
    }
    eprintln!("{text}");
    eprint!("meshlift {what}: proceed? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let answer = std::io::stdin().lock().read_line(&mut line).ok().map(|_| line.as_str());
    let go = decide(c, tty, answer);
    if go != Go::Proceed {
        eprintln!("meshlift {what}: not done");
    }
    go
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_run_wins_yes_skips_and_no_terminal_refuses() {
        let c = |yes, dry_run| ConfirmOpts { yes, dry_run };
        assert_eq!(decide(&c(true, true), false, None), Go::Exit(EXIT_OK), "--dry-run never acts");
        assert_eq!(decide(&c(false, true), true, Some("y")), Go::Exit(EXIT_OK));
        assert_eq!(decide(&c(true, false), false, None), Go::Proceed);
        assert_eq!(
            decide(&c(false, false), false, Some("y")),
            Go::Exit(EXIT_USAGE),
            "no terminal, no --yes: refused"
        );
        assert_eq!(decide(&c(false, false), true, Some("yes\n")), Go::Proceed);
        assert_eq!(decide(&c(false, false), true, Some("Y")), Go::Proceed);
        assert_eq!(decide(&c(false, false), true, Some("\n")), Go::Exit(EXIT_FAILED), "the default is no");
        assert_eq!(decide(&c(false, false), true, None), Go::Exit(EXIT_FAILED));
    }
}
