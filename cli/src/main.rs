//! `meshlift`: the operator CLI.
//!
//! Every subcommand lives in its own module and returns the process exit code:
//! 0 done, 1 refused or failed, 2 usage or connection error.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod demo;
mod image_local;
mod keys;
mod plan;
mod remote;
mod token;

/// meshlift: upgrade every node of a wireless mesh without cutting any running node off.
#[derive(Parser)]
#[command(name = "meshlift", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a virtual mesh (controller and one minion process per node on this machine) and upgrade
    /// it end to end, then print a summary.
    Demo(demo::DemoArgs),
    /// Offline dry run of the commit planner on a topology file.
    Plan(plan::PlanArgs),
    /// Generate an ed25519 signing key pair for images, or with --curve a CurveZMQ key pair for
    /// the controller, a node or an operator.
    Keygen(keys::KeygenArgs),
    /// Build, inspect, add, delete and list images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Start, follow, abort and inspect upgrades on a running controller.
    Upgrade(remote::UpgradeArgs),
    /// Per-node table: version, slots, upgrade state, progress, last seen.
    Status(remote::StatusArgs),
    /// Enroll node CURVE keys and list them.
    Node(remote::NodeArgs),
    /// Bearer tokens for the controller's HTTP API and dashboard.
    Token(token::TokenArgs),
    /// The golden-image loop: targets per board, waves, window, blacklist, quarantines.
    Golden(remote::golden::GoldenArgs),
    /// Active and standby version of every node, with totals per version and board.
    Versions(remote::versions::VersionsArgs),
    /// Snapshots of what runs where: create, list, show, delete, restore.
    Snapshot(remote::snapshot::SnapshotArgs),
    /// Startup configuration per node, board or fleet, delivered with the image: set, show, diff.
    Config(remote::config::ConfigArgs),
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Build and sign an .mlimg image.
    Build(image_local::BuildArgs),
    /// Show an image's manifest, signer and verdict.
    Inspect(image_local::InspectArgs),
    /// Add an image (path on the controller or http(s) URL) to the controller's store.
    Add(remote::ImageAddArgs),
    /// Delete an image from the controller's store.
    Del(remote::ImageDelArgs),
    /// List the controller's images (oldest version first), filtered by board, version, tag.
    List(remote::ImageListArgs),
    /// Add tags to a stored image.
    Tag(remote::ImageTagArgs),
    /// Remove tags from a stored image.
    Untag(remote::ImageTagArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Keygen(args) => keys::run(args),
        Command::Image(ImageCommand::Build(args)) => image_local::build(args),
        Command::Image(ImageCommand::Inspect(args)) => image_local::inspect(args),
        Command::Image(ImageCommand::Add(args)) => remote::image_add(args),
        Command::Image(ImageCommand::Del(args)) => remote::image_del(args),
        Command::Image(ImageCommand::List(args)) => remote::image_list(args),
        Command::Image(ImageCommand::Tag(args)) => remote::image_tag(args, false),
        Command::Image(ImageCommand::Untag(args)) => remote::image_tag(args, true),
        Command::Upgrade(args) => remote::upgrade(args),
        Command::Status(args) => remote::status(args),
        Command::Node(args) => remote::node(args),
        Command::Token(args) => token::run(args),
        Command::Golden(args) => remote::golden::run(args),
        Command::Versions(args) => remote::versions::run(args),
        Command::Snapshot(args) => remote::snapshot::run(args),
        Command::Config(args) => remote::config::run(args),
    };
    ExitCode::from(code)
}
