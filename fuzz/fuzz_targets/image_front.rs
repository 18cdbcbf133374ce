//! Fuzz the image reader: header, manifest JSON and signature block of a `.mlimg` file. Any bytes
//! must give a summary or a typed error — never a panic, never an allocation the header alone
//! sizes beyond its limits — and a summary must agree with the bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshlift_image::format::{HEADER_LEN, MAX_MANIFEST_LEN};
use meshlift_image::read_manifest_from_bytes;

fuzz_target!(|data: &[u8]| {
    if let Ok(summary) = read_manifest_from_bytes(data) {
        let h = summary.header;
        assert!(h.manifest_len <= MAX_MANIFEST_LEN);
        assert_eq!(h.file_len(), data.len() as u64, "a summary is only given for a file of the header's length");
        assert!(h.payload_offset() >= HEADER_LEN as u64);
        assert_eq!(summary.manifest.payload_size, h.payload_len);
        if let Some(signer) = &summary.signer {
            // The signature flag must match a fresh check of the same bytes.
            let start = HEADER_LEN;
            let manifest = &data[start..start + h.manifest_len as usize];
            let block = &data[start + h.manifest_len as usize..h.payload_offset() as usize];
            let sig = ed25519_dalek::Signature::from_slice(&block[32..96]).ok();
            assert_eq!(
                sig.is_some_and(|s| signer.public_key.verify_strict(manifest, &s).is_ok()),
                signer.signature_valid
            );
        }
    }
});
