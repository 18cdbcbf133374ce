//! Fuzz the wire decoder: any bytes must give an envelope or a typed error, never a panic, and a
//! decoded envelope must re-encode to bytes that decode to the same envelope.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshlift_protocol::{decode, encode, MAX_FRAME_DEFAULT};

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = decode(data, MAX_FRAME_DEFAULT) {
        let again = encode(&env).expect("a decoded envelope re-encodes");
        assert_eq!(decode(&again, MAX_FRAME_DEFAULT).expect("re-encoded envelope decodes"), env);
    }
});
