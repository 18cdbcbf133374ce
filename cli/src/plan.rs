//! `meshlift plan`: placeholder until the planner lands.
use clap::Args;

#[derive(Args)]
pub struct PlanArgs {}

pub fn run(_args: PlanArgs) -> u8 {
    eprintln!("meshlift plan: not implemented yet");
    2
}
