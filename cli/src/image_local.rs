//! `meshlift image build` and `meshlift image inspect`: local image tools, no controller needed.

use clap::Args;
use meshlift_image::{
    build_image, load_public_key, load_signing_key, read_manifest, verify_file, BuildOptions, HookKind,
    ImageError, Manifest, VerifyingKey,
};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Args)]
pub struct BuildArgs {
    /// Image name shown to operators.
    #[arg(long)]
    pub name: String,
    /// Version: dotted numbers (2.1.0), optionally -pre and +build.
    #[arg(long)]
    pub version: String,
    /// Hardware board ids the image runs on, comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub boards: Vec<String>,
    /// File written to the standby slot.
    #[arg(long)]
    pub payload: PathBuf,
    /// Private signing key (from `meshlift keygen`).
    #[arg(long)]
    pub key: PathBuf,
    /// Embed a hook: KIND=FILE, KIND one of pre-flash, post-flash, post-boot-check. Repeatable.
    #[arg(long = "hook", value_name = "KIND=FILE")]
    pub hooks: Vec<String>,
    /// Output .mlimg path.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct InspectArgs {
    /// The .mlimg file.
    pub image: PathBuf,
    /// Public key to verify against (repeatable). Without it the signature is only checked
    /// against the key the image names, which proves integrity but not trust.
    #[arg(long = "trusted-key")]
    pub trusted_keys: Vec<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub fn build(args: BuildArgs) -> u8 {
    let mut hooks = Vec::new();
    for spec in &args.hooks {
        match parse_hook(spec) {
            Ok(hook) => hooks.push(hook),
            Err(message) => {
                eprintln!("meshlift image build: {message}");
                return 2;
            }
        }
    }
    let key = match load_signing_key(&args.key) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("meshlift image build: {e}");
            return 2;
        }
    };
    let options = BuildOptions {
        name: args.name,
        version: args.version,
        hardware_board_ids: args.boards,
        payload: args.payload,
        hooks,
        created: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
    };
    match build_image(&options, Some(&key), &args.out) {
        Ok(built) => {
            println!("built {}", args.out.display());
            println!("name:     {}", built.manifest.name);
            println!("version:  {}", built.manifest.version);
            println!("boards:   {}", built.manifest.hardware_board_ids.join(", "));
            println!(
                "payload:  {} bytes, sha256 {}",
                built.manifest.payload_size, built.manifest.payload_sha256
            );
            println!("file:     {} bytes, sha256 {}", built.file_len, built.file_sha256);
            println!("signer:   {}", meshlift_image::key_id(&key.verifying_key()));
            0
        }
        Err(e @ (ImageError::BadBuildInput(_) | ImageError::BadVersion(_))) => {
            eprintln!("meshlift image build: {e}");
            1
        }
        Err(e) => {
            eprintln!("meshlift image build: {e}");
            2
        }
    }
}

fn parse_hook(spec: &str) -> Result<(HookKind, PathBuf), String> {
    let (kind, file) = spec.split_once('=').ok_or_else(|| format!("--hook {spec:?}: want KIND=FILE"))?;
    let kind = HookKind::parse(kind).ok_or_else(|| {
        format!("--hook {spec:?}: unknown kind {kind:?} (want pre-flash, post-flash or post-boot-check)")
    })?;
    Ok((kind, PathBuf::from(file)))
}

/// `inspect --json` output.
#[derive(Serialize)]
struct InspectReport {
    path: String,
    name: String,
    version: String,
    hardware_board_ids: Vec<String>,
    payload_sha256: String,
    payload_size: u64,
    created: u64,
    hooks: Vec<HookSummary>,
    file_size: u64,
    file_sha256: Option<String>,
    signer_key_id: Option<String>,
    /// Verified against a key given with --trusted-key.
    trusted: bool,
    /// "verified", "intact" (consistent, signer not checked against a trusted key) or "refused".
    verdict: &'static str,
    reason: Option<String>,
}

#[derive(Serialize)]
struct HookSummary {
    kind: &'static str,
    size: usize,
}

pub fn inspect(args: InspectArgs) -> u8 {
    let mut trusted = Vec::new();
    for path in &args.trusted_keys {
        match load_public_key(path) {
            Ok(k) => trusted.push(k),
            Err(e) => {
                eprintln!("meshlift image inspect: {e}");
                return 2;
            }
        }
    }
    let summary = match read_manifest(&args.image) {
        Ok(s) => s,
        Err(e @ ImageError::Io { .. }) => {
            eprintln!("meshlift image inspect: {e}");
            return 2;
        }
        Err(e) => {
            eprintln!("meshlift image inspect: {}: refused: {e}", args.image.display());
            return 1;
        }
    };
    let signer = summary.signer.as_ref();
    let checked_against: Vec<VerifyingKey> = if trusted.is_empty() {
        signer.map(|s| vec![s.public_key]).unwrap_or_default()
    } else {
        trusted.clone()
    };
    let verification = verify_file(&args.image, &checked_against);
    let (verdict, reason, file_sha256) = match &verification {
        Ok(v) if trusted.is_empty() => ("intact", None, Some(v.file_sha256.to_hex())),
        Ok(v) => ("verified", None, Some(v.file_sha256.to_hex())),
        Err(e) => ("refused", Some(e.to_string()), None),
    };
    let report = InspectReport {
        path: args.image.display().to_string(),
        hooks: hook_summaries(&summary.manifest),
        name: summary.manifest.name.clone(),
        version: summary.manifest.version.clone(),
        hardware_board_ids: summary.manifest.hardware_board_ids.clone(),
        payload_sha256: summary.manifest.payload_sha256.to_hex(),
        payload_size: summary.manifest.payload_size,
        created: summary.manifest.created,
        file_size: summary.file_len,
        file_sha256,
        signer_key_id: signer.map(|s| s.key_id.to_string()),
        trusted: !trusted.is_empty() && verification.is_ok(),
        verdict,
        reason,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("report serialises: plain data"));
    } else {
        print_human(&report, &args.image);
    }
    if verification.is_ok() {
        0
    } else {
        1
    }
}

fn hook_summaries(manifest: &Manifest) -> Vec<HookSummary> {
    manifest.hooks.iter().map(|h| HookSummary { kind: h.kind.as_str(), size: h.content.len() }).collect()
}

fn print_human(r: &InspectReport, path: &Path) {
    println!("image:    {}", path.display());
    println!("name:     {}", r.name);
    println!("version:  {}", r.version);
    println!("boards:   {}", r.hardware_board_ids.join(", "));
    println!("payload:  {} bytes, sha256 {}", r.payload_size, r.payload_sha256);
    println!("file:     {} bytes, sha256 {}", r.file_size, r.file_sha256.as_deref().unwrap_or("-"));
    let hooks: Vec<String> = r.hooks.iter().map(|h| format!("{} ({} bytes)", h.kind, h.size)).collect();
    println!("hooks:    {}", if hooks.is_empty() { "none".to_string() } else { hooks.join(", ") });
    println!("signer:   {}", r.signer_key_id.as_deref().unwrap_or("none (unsigned)"));
    match (r.verdict, &r.reason) {
        ("verified", _) => println!("verdict:  VERIFIED against a trusted key"),
        ("intact", _) => {
            println!("verdict:  INTACT (signature and payload consistent; pass --trusted-key to check trust)")
        }
        (_, reason) => println!("verdict:  REFUSED: {}", reason.as_deref().unwrap_or("")),
    }
}
