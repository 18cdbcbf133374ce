//! `meshlift`: the operator CLI.
//!
//! Every subcommand lives in its own module and returns the process exit code:
//! 0 done, 1 refused or failed, 2 usage or connection error.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod plan;

/// meshlift: upgrade every node of a wireless mesh without cutting any running node off.
#[derive(Parser)]
#[command(name = "meshlift", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Offline dry run of the commit planner on a topology file.
    Plan(plan::PlanArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Plan(args) => plan::run(args),
    };
    ExitCode::from(code)
}
