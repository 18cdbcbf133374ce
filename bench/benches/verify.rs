//! Image verification throughput: `verify_file` on a 256 MiB image against `sha256sum` of the same
//! file (target: at least 0.9x its speed). Both read from the page cache after the first run.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meshlift_image::{build_image, verify_file, BuildOptions, SigningKey};
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const PAYLOAD_MIB: usize = 256;

fn image() -> (PathBuf, SigningKey) {
    let dir = std::env::temp_dir().join("meshlift-bench-verify");
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    let payload = dir.join("payload.bin");
    let mut file = std::fs::File::create(&payload).expect("temp dir is writable");
    let mut chunk = vec![0u8; 1 << 20];
    for (i, mib) in (0..PAYLOAD_MIB).enumerate() {
        chunk.iter_mut().enumerate().for_each(|(j, b)| *b = (i * 31 + j * 7 + mib) as u8);
        file.write_all(&chunk).expect("disk has room for the bench image");
    }
    drop(file);
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let out = dir.join("bench.mlimg");
    let options = BuildOptions {
        name: "bench".into(),
        version: "1.0.0".into(),
        hardware_board_ids: vec!["sim".into()],
        payload: payload.clone(),
        hooks: vec![],
        created: 0,
    };
    build_image(&options, Some(&key), &out).expect("bench image builds");
    std::fs::remove_file(payload).ok();
    (out, key)
}

fn bench(c: &mut Criterion) {
    let (path, key) = image();
    let size = std::fs::metadata(&path).expect("image exists").len();
    let trusted = [key.verifying_key()];
    let mut group = c.benchmark_group("image_verification_256MiB");
    group.throughput(Throughput::Bytes(size));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("verify_file", |b| {
        b.iter(|| verify_file(&path, &trusted).expect("bench image verifies"))
    });
    group.bench_function("sha256sum", |b| {
        b.iter(|| {
            let out = Command::new("sha256sum").arg(&path).output().expect("sha256sum is installed");
            assert!(out.status.success());
        })
    });
    group.finish();
    std::fs::remove_file(&path).ok();
}

criterion_group!(benches, bench);
criterion_main!(benches);
