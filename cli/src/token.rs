//! `meshlift token new --name N --role R`: a bearer token for the controller's HTTP API.
//!
//! The token is printed once; the controller keeps only its SHA-256, so the lines to paste into
//! its config (`[[security.api_tokens]]`) are printed beside it. Nothing is sent anywhere.

use clap::{Args, Subcommand};
use meshlift_protocol::{api_token, Role};

#[derive(Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a new token: print it once, and the config entry that admits it.
    New(NewArgs),
}

#[derive(Args)]
struct NewArgs {
    /// Who uses the token (a person or a system such as the NMS); journaled as `who`.
    #[arg(long)]
    name: String,
    /// viewer (read only, e.g. the dashboard), operator (upgrades, images) or admin.
    #[arg(long, value_parser = parse_role)]
    role: Role,
}

fn parse_role(s: &str) -> Result<Role, String> {
    match s {
        "viewer" => Ok(Role::Viewer),
        "operator" => Ok(Role::Operator),
        "admin" => Ok(Role::Admin),
        other => Err(format!("{other:?} is not a role: viewer, operator or admin")),
    }
}

pub fn run(args: TokenArgs) -> u8 {
    match args.command {
        TokenCommand::New(a) => new(a),
    }
}

fn new(a: NewArgs) -> u8 {
    if a.name.trim().is_empty() || a.name.len() > 128 || a.name.chars().any(char::is_control) {
        eprintln!("meshlift token new: --name must be 1 to 128 printable characters");
        return 2;
    }
    let token = api_token::token_from_secret(&rand::random::<[u8; 32]>());
    let entry = api_token::config_entry(&a.name, a.role, &api_token::token_sha256_hex(&token));
    println!("API token for {} (role {}); shown only now, keep it secret:\n", a.name, a.role.as_str());
    println!("  {token}\n");
    println!("Add to the controller config (it keeps only the hash), then restart the controller:\n");
    print!("{entry}");
    println!("\nUse: curl -H \"Authorization: Bearer <token>\" http://<controller>:8080/api/v1/state");
    println!("or open http://<controller>:8080/ and paste it into the dashboard.");
    0
}
