//! `meshlift image build|inspect`: placeholder.
use clap::Args;

#[derive(Args)]
pub struct BuildArgs {}
#[derive(Args)]
pub struct InspectArgs {}

pub fn build(_args: BuildArgs) -> u8 {
    eprintln!("meshlift image build: not implemented yet");
    2
}
pub fn inspect(_args: InspectArgs) -> u8 {
    eprintln!("meshlift image inspect: not implemented yet");
    2
}
