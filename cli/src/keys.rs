//! `meshlift keygen --out DIR`: an ed25519 key pair for signing images.
//!
//! Writes `DIR/meshlift.key` (PKCS#8 PEM, mode 0600) and `DIR/meshlift.pub` (SPKI PEM): standard
//! PEM so `openssl pkey -in DIR/meshlift.key -text` can read them. Put `meshlift.pub` into every
//! node's `trusted_keys`; keep `meshlift.key` where images are built.

use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct KeygenArgs {
    /// Directory for meshlift.key and meshlift.pub (created if missing; an existing key is never
    /// overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: KeygenArgs) -> u8 {
    match meshlift_image::generate_keypair(&args.out) {
        Ok(paths) => {
            println!("private key: {} (mode 0600, keep it secret)", paths.private.display());
            println!("public key:  {}", paths.public.display());
            println!("key id:      {}", paths.key_id);
            0
        }
        Err(e) => {
            eprintln!("meshlift keygen: {e}");
            2
        }
    }
}
