//! `meshlift keygen`: placeholder.
use clap::Args;

#[derive(Args)]
pub struct KeygenArgs {}

pub fn run(_args: KeygenArgs) -> u8 {
    eprintln!("meshlift keygen: not implemented yet");
    2
}
