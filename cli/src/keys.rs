//! `meshlift keygen --out DIR`: an ed25519 key pair for signing images, or with `--curve` a
//! CurveZMQ key pair for the management plane.
//!
//! Signing keys: `DIR/meshlift.key` (PKCS#8 PEM, mode 0600) and `DIR/meshlift.pub` (SPKI PEM):
//! standard PEM so `openssl pkey -in DIR/meshlift.key -text` can read them. Put `meshlift.pub`
//! into every node's `trusted_keys`; keep `meshlift.key` where images are built.
//!
//! CURVE keys (`--curve [--name NAME]`): `DIR/NAME.key` (public and secret key in Z85, mode 0600;
//! refused by every program if group or others can read it) and `DIR/NAME.pub` (the public key,
//! 40 Z85 characters). One pair for the controller (`security.key_file`), one per node (the
//! minion's `key_file`, enrolled with `meshlift node enroll`), one per operator (listed under the
//! controller's `[[security.operators]]`).

use clap::Args;
use meshlift_protocol::transport::CurveKeyPair;
use std::path::PathBuf;

#[derive(Args)]
pub struct KeygenArgs {
    /// Directory for the key files (created if missing; an existing key is never overwritten).
    #[arg(long)]
    pub out: PathBuf,
    /// A CurveZMQ key pair (controller, node or operator) instead of an image signing key.
    #[arg(long)]
    pub curve: bool,
    /// File stem of a CURVE key pair: writes NAME.key and NAME.pub.
    #[arg(long, requires = "curve", default_value = "curve")]
    pub name: String,
}

pub fn run(args: KeygenArgs) -> u8 {
    if args.curve {
        return curve(&args);
    }
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

fn curve(args: &KeygenArgs) -> u8 {
    if !valid_stem(&args.name) {
        eprintln!(
            "meshlift keygen: --name {:?} must be a plain file name (letters, digits, '.', '_', '-')",
            args.name
        );
        return 2;
    }
    let saved = CurveKeyPair::generate().and_then(|kp| {
        let paths = kp.save(&args.out, &args.name)?;
        Ok((kp.public(), paths))
    });
    match saved {
        Ok((public, (key, public_file))) => {
            println!("secret key: {} (mode 0600, keep it secret)", key.display());
            println!("public key: {}", public_file.display());
            println!("{public}");
            0
        }
        Err(e) => {
            eprintln!("meshlift keygen --curve: {e}");
            2
        }
    }
}

/// A stem that stays inside `--out`: no separators, no `..`, nothing a shell would mangle.
fn valid_stem(stem: &str) -> bool {
    !stem.is_empty()
        && !stem.starts_with('.')
        && stem.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_stay_inside_the_output_directory() {
        for ok in ["curve", "controller", "node-a.1", "op_alice"] {
            assert!(valid_stem(ok), "{ok}");
        }
        for bad in ["", "..", ".hidden", "a/b", "../x", "a b"] {
            assert!(!valid_stem(bad), "{bad:?}");
        }
    }
}
