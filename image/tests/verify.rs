//! Every refusal the minion relies on, each with its own reason, on real files.

use meshlift_image::{
    build_image, generate_keypair, load_public_key, load_signing_key, read_manifest, verify_file,
    verify_file_with, BuildOptions, HookKind, ImageError, SigningKey, VerifyingKey,
};
use proptest::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};

struct Fixture {
    dir: tempfile::TempDir,
    key: SigningKey,
    public: VerifyingKey,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let paths = generate_keypair(&dir.path().join("keys")).unwrap();
        Fixture {
            key: load_signing_key(&paths.private).unwrap(),
            public: load_public_key(&paths.public).unwrap(),
            dir,
        }
    }

    fn options(&self, version: &str, payload: &[u8]) -> BuildOptions {
        let payload_path = self.dir.path().join(format!("payload-{version}"));
        fs::write(&payload_path, payload).unwrap();
        BuildOptions {
            name: "meshlift-os".into(),
            version: version.into(),
            hardware_board_ids: vec!["NXP_LS1048A_PUMA".into(), "sim".into()],
            payload: payload_path,
            hooks: vec![],
            created: 1_700_000_000_000,
        }
    }

    fn build(&self, version: &str, payload: &[u8]) -> PathBuf {
        let out = self.dir.path().join(format!("{version}.mlimg"));
        build_image(&self.options(version, payload), Some(&self.key), &out).unwrap();
        out
    }
}

fn patch(path: &Path, offset: usize, byte_xor: u8) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset] ^= byte_xor;
    fs::write(path, bytes).unwrap();
}

#[test]
fn a_signed_image_verifies_and_reports_both_digests() {
    let f = Fixture::new();
    let payload = vec![7u8; 3 << 20];
    let mut options = f.options("2.1.0", &payload);
    let hook = f.dir.path().join("check.sh");
    fs::write(&hook, "#!/bin/sh\nexit 0\n").unwrap();
    options.hooks.push((HookKind::PostBootCheck, hook));
    let out = f.dir.path().join("img.mlimg");
    let built = build_image(&options, Some(&f.key), &out).unwrap();

    let verified = verify_file(&out, &[f.public]).unwrap();
    assert_eq!(verified.manifest, built.manifest);
    assert_eq!(verified.file_sha256, built.file_sha256);
    let file_digest = {
        use sha2::Digest;
        meshlift_image::Sha256Digest(sha2::Sha256::digest(fs::read(&out).unwrap()).into())
    };
    assert_eq!(verified.file_sha256, file_digest, "file_sha256 is the sha256sum of the .mlimg");
    assert_eq!(verified.manifest.payload_size, payload.len() as u64);
    assert_eq!(verified.manifest.hook(HookKind::PostBootCheck).unwrap().content, b"#!/bin/sh\nexit 0\n");
    assert!(verify_file_with(&out, &[f.public], Some(built.file_sha256)).is_ok());
    assert!(matches!(
        verify_file_with(&out, &[f.public], Some(meshlift_image::Sha256Digest([0; 32]))),
        Err(ImageError::FileDigestMismatch { .. })
    ));
}

#[test]
fn unsigned_image_is_refused_as_unsigned() {
    let f = Fixture::new();
    let out = f.dir.path().join("unsigned.mlimg");
    build_image(&f.options("1.0", b"payload"), None, &out).unwrap();
    assert!(matches!(verify_file(&out, &[f.public]), Err(ImageError::Unsigned)));
    assert!(read_manifest(&out).unwrap().signer.is_none());
}

#[test]
fn image_signed_by_another_key_is_refused_with_its_key_id() {
    let f = Fixture::new();
    let other = Fixture::new();
    let img = other.build("1.0", b"payload");
    let err = verify_file(&img, &[f.public]).unwrap_err();
    let ImageError::UnknownKey { key_id } = &err else { panic!("{err}") };
    assert_eq!(key_id, &meshlift_image::key_id(&other.public).0);
    assert!(err.to_string().contains("unknown key"));
}

#[test]
fn altered_manifest_fails_the_signature() {
    let f = Fixture::new();
    let img = f.build("1.0", b"payload");
    // Turn "1.0" into "1.1" inside the manifest: still valid JSON, but no longer what was signed.
    let bytes = fs::read(&img).unwrap();
    let at = bytes.windows(7).position(|w| w == b"\"1.0\",\n").unwrap();
    patch(&img, at + 3, b'0' ^ b'1');
    assert!(matches!(verify_file(&img, &[f.public]), Err(ImageError::BadSignature { .. })));
}

#[test]
fn truncated_image_is_refused_as_truncated() {
    let f = Fixture::new();
    let img = f.build("1.0", &[1u8; 10_000]);
    let len = fs::metadata(&img).unwrap().len();
    for cut in [len - 1, 100, 20, 3] {
        let bytes = fs::read(&img).unwrap();
        let short = f.dir.path().join("short.mlimg");
        fs::write(&short, &bytes[..cut as usize]).unwrap();
        let err = verify_file(&short, &[f.public]).unwrap_err();
        assert!(matches!(err, ImageError::Truncated { .. }), "cut at {cut}: {err}");
    }
    let mut long = fs::read(&img).unwrap();
    long.push(0);
    fs::write(&img, long).unwrap();
    assert!(matches!(verify_file(&img, &[f.public]), Err(ImageError::TrailingData { extra: 1 })));
}

#[test]
fn corrupt_payload_is_refused_as_corrupt() {
    let f = Fixture::new();
    let img = f.build("1.0", &[1u8; 3 << 20]);
    let len = fs::metadata(&img).unwrap().len() as usize;
    patch(&img, len - 5, 0xff);
    assert!(matches!(verify_file(&img, &[f.public]), Err(ImageError::CorruptPayload { .. })));
}

#[test]
fn board_and_version_policy() {
    let f = Fixture::new();
    let v = verify_file(&f.build("2.0.1", b"x"), &[f.public]).unwrap();
    assert!(v.check_install("sim", "2.0.0", false).is_ok());
    assert!(v.check_install("sim", "2.0.1", false).is_ok(), "same version is a reinstall, not a downgrade");
    assert!(matches!(v.check_install("other-board", "1.0", false), Err(ImageError::WrongBoard { .. })));
    let err = v.check_install("sim", "2.0.10", false).unwrap_err();
    assert!(matches!(err, ImageError::Downgrade { .. }), "{err}");
    assert!(v.check_install("sim", "2.0.10", true).is_ok());
}

#[test]
fn build_refuses_bad_input() {
    let f = Fixture::new();
    let out = f.dir.path().join("x.mlimg");
    let mut o = f.options("v1", b"x");
    assert!(matches!(build_image(&o, Some(&f.key), &out), Err(ImageError::BadVersion(_))));
    o.version = "1.0".into();
    o.hardware_board_ids.clear();
    assert!(matches!(build_image(&o, Some(&f.key), &out), Err(ImageError::BadBuildInput(_))));
    assert!(!out.exists());
}

#[test]
fn keygen_refuses_to_overwrite_and_keeps_private_key_private() {
    let dir = tempfile::tempdir().unwrap();
    let paths = generate_keypair(dir.path()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&paths.private).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(generate_keypair(dir.path()).is_err());
    assert!(matches!(load_public_key(&paths.private), Err(ImageError::BadKey { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// No single flipped bit anywhere in the file yields an image that verifies.
    #[test]
    fn any_bit_flip_is_caught(offset_frac in 0.0f64..1.0, bit in 0u8..8) {
        let f = Fixture::new();
        let img = f.build("1.0", &[3u8; 4096]);
        let len = fs::metadata(&img).unwrap().len() as usize;
        let offset = ((len as f64) * offset_frac) as usize % len;
        patch(&img, offset, 1 << bit);
        prop_assert!(verify_file(&img, &[f.public]).is_err());
    }
}
