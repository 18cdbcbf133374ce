//! The controller's image store and its HTTP routes: add, refuse, list, delete, re-seed at
//! start-up, Range requests, and the tracker's refusal of unknown swarms.

use meshlift_controller::dist::{
    router, DistConfig, ImageStore, ImageStoreError, ImageVerifier, VerifiedImageInfo,
};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// Accepts files starting with `IMG <name>\n`; everything else is "badly signed".
struct PrefixVerifier;

impl ImageVerifier for PrefixVerifier {
    fn verify(&self, path: &Path) -> Result<VerifiedImageInfo, String> {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
        let name = line
            .strip_prefix(b"IMG ")
            .and_then(|n| std::str::from_utf8(n).ok())
            .ok_or("signature check failed")?;
        Ok(VerifiedImageInfo {
            name: name.into(),
            version: name.into(),
            hardware_board_ids: vec!["b1".into()],
        })
    }
}

fn free_port() -> u16 {
    use rand::Rng;
    loop {
        let port = rand::thread_rng().gen_range(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn cfg(http: SocketAddr) -> DistConfig {
    let mut c = DistConfig::new(
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        format!("http://{http}"),
        Arc::new(PrefixVerifier),
    );
    c.min_free_bytes = 0;
    c
}

fn image(dir: &Path, name: &str, size: usize) -> String {
    let mut bytes = format!("IMG {name}\n").into_bytes();
    bytes.extend((0..size).map(|i| (i * 31 % 253) as u8));
    let p = dir.join(format!("{name}.src"));
    std::fs::write(&p, bytes).unwrap();
    p.to_string_lossy().into_owned()
}

async fn serve(store: ImageStore) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let app = router(store);
    let h = tokio::spawn(async move {
        let _ = axum::serve(l, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    (addr, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_list_refuse_delete_and_reseed() {
    let dir = tempfile::tempdir().unwrap();
    let http: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let store = ImageStore::open(dir.path().join("images"), cfg(http)).await.unwrap();
    let src = image(dir.path(), "v1.0", 100_000);
    let img = store.add(&src).await.unwrap();
    assert_eq!((img.name.as_str(), img.version.as_str()), ("v1.0", "v1.0"));
    assert_eq!(img.size, std::fs::metadata(&src).unwrap().len());
    assert_eq!(img.hardware_board_ids, vec!["b1".to_string()]);
    assert!(img.magnet_uri.starts_with("magnet:?xt=urn:btih:"), "{}", img.magnet_uri);
    assert!(img.magnet_uri.contains("tr=http%3A%2F%2F127.0.0.1%3A8080%2Fannounce"));
    assert_eq!(img.http_uri, format!("http://127.0.0.1:8080/images/{}.mlimg", img.sha256));
    assert_eq!(store.list(), vec![img.clone()]);

    // Same file again, a bad image, an unreadable path: refused with reasons.
    let dup = store.add(&src).await.unwrap_err();
    assert!(matches!(dup, ImageStoreError::DuplicateFile { .. }), "{dup}");
    let bad = dir.path().join("bad.src");
    std::fs::write(&bad, b"not an image").unwrap();
    let e = store.add(bad.to_str().unwrap()).await.unwrap_err();
    assert_eq!(e.to_string(), "image refused: signature check failed");
    let e = store.add("/nonexistent/x.mlimg").await.unwrap_err();
    assert!(matches!(e, ImageStoreError::Source { .. }), "{e}");
    let same_name = image(dir.path(), "v1.0", 5);
    assert!(matches!(store.add(&same_name).await, Err(ImageStoreError::DuplicateName(_))));
    let files: Vec<_> = std::fs::read_dir(dir.path().join("images")).unwrap().collect();
    assert_eq!(files.len(), 1, "refused adds leave nothing behind");

    // Restart: the image is re-seeded under the same magnet URI.
    let img2 = store.add(&image(dir.path(), "v2.0", 70_000)).await.unwrap();
    store.shutdown().await;
    drop(store);
    let store = ImageStore::open(dir.path().join("images"), cfg(http)).await.unwrap();
    assert_eq!(store.list(), vec![img.clone(), img2.clone()]);

    // Delete: gone from the list and the disk.
    store.del("v1.0").await.unwrap();
    assert_eq!(store.list(), vec![img2]);
    assert!(!dir.path().join("images").join(format!("{}.mlimg", img.sha256)).exists());
    assert!(matches!(store.del("v1.0").await, Err(ImageStoreError::NotFound(_))));
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_disk_space_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg("127.0.0.1:8080".parse().unwrap());
    c.min_free_bytes = u64::MAX / 2;
    let store = ImageStore::open(dir.path().join("images"), c).await.unwrap();
    let e = store.add(&image(dir.path(), "v1", 10)).await.unwrap_err();
    assert!(matches!(e, ImageStoreError::OutOfDiskSpace { .. }), "{e}");
    assert!(e.to_string().starts_with("out of disk space"));
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_from_url_serves_ranges_and_tracker_refuses_unknown_swarms() {
    let dir = tempfile::tempdir().unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = l.local_addr().unwrap();
    drop(l);
    let store = ImageStore::open(dir.path().join("images"), cfg(http)).await.unwrap();
    let first = store.add(&image(dir.path(), "v1", 300_000)).await.unwrap();
    let (addr, server) = serve(store.clone()).await;

    // Range request through tower-http.
    let client = reqwest::Client::new();
    let url = first.http_uri.replace(&http.to_string(), &addr.to_string());
    let r = client.get(&url).header("Range", "bytes=100-199").send().await.unwrap();
    assert_eq!(r.status(), 206);
    let want = std::fs::read(dir.path().join("v1.src")).unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &want[100..200]);
    let r = client.get(format!("http://{addr}/images/{}.mlimg", "0".repeat(64))).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // `image add` from an http URL (the store's own server serves the source).
    let second = store.add(&url).await;
    assert!(matches!(second, Err(ImageStoreError::DuplicateFile { .. })), "{second:?}");

    // Tracker: unknown info_hash → bencoded failure reason.
    let q = format!("info_hash={}&peer_id={}&port=7000&left=1&compact=1", "%01".repeat(20), "%02".repeat(20));
    let body = client.get(format!("http://{addr}/announce?{q}")).send().await.unwrap().bytes().await.unwrap();
    assert!(body.starts_with(b"d14:failure reason"), "{}", String::from_utf8_lossy(&body));
    server.abort();
    store.shutdown().await;
}

/// `image add` of a FIFO, a device or a directory is refused at once (a FIFO used to block the
/// add, and with it the store, until a writer came; /dev/zero never ends), an image above the
/// size limit is refused, and nothing of a refused add is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_regular_sources_and_oversized_images_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg("127.0.0.1:1".parse().unwrap());
    c.max_image_bytes = 64 << 10;
    let store = ImageStore::open(dir.path().join("images"), c).await.unwrap();
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for src in
        [fifo.to_string_lossy().into_owned(), "/dev/zero".into(), dir.path().to_string_lossy().into_owned()]
    {
        let r = tokio::time::timeout(std::time::Duration::from_secs(5), store.add(&src))
            .await
            .unwrap_or_else(|_| panic!("adding {src} blocked"));
        assert!(matches!(r, Err(ImageStoreError::NotRegularFile(_))), "{src}: {r:?}");
    }
    let big = image(dir.path(), "big", 100 << 10);
    let r = store.add(&big).await;
    assert!(matches!(r, Err(ImageStoreError::TooLarge { .. })), "{r:?}");
    let small = image(dir.path(), "small", 1 << 10);
    assert_eq!(store.add(&small).await.unwrap().name, "small");
    // Nothing of the refused adds is left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("images"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The controller opens its store without checking it, binds its sockets, then re-verifies: until
/// its check passed an image is neither listed nor served, and a stored file that fails its check
/// (tampered with while the controller was down) is never served at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_images_are_checked_after_open_and_served_only_once_they_pass() {
    let dir = tempfile::tempdir().unwrap();
    let http: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let store = ImageStore::open(dir.path().join("images"), cfg(http)).await.unwrap();
    let good = store.add(&image(dir.path(), "v1", 50_000)).await.unwrap();
    let tampered = store.add(&image(dir.path(), "v2", 50_000)).await.unwrap();
    store.shutdown().await;
    drop(store);
    let tampered_path = dir.path().join("images").join(format!("{}.mlimg", tampered.sha256));
    let mut bytes = std::fs::read(&tampered_path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&tampered_path, bytes).unwrap();

    let (store, stored) = ImageStore::open_deferred(dir.path().join("images"), cfg(http)).await.unwrap();
    assert_eq!(stored.len(), 2, "both files are found");
    assert!(store.list().is_empty(), "nothing is served before its check");
    let (addr, server) = serve(store.clone()).await;
    let url = format!("http://{addr}/images/{}.mlimg", good.sha256);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 404, "not served before its check");

    let passed = store.reverify(stored).await;
    assert_eq!(passed, vec![good.clone()], "the tampered file fails its check");
    assert_eq!(store.list(), vec![good.clone()]);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    let bad_url = format!("http://{addr}/images/{}.mlimg", tampered.sha256);
    assert_eq!(reqwest::get(&bad_url).await.unwrap().status(), 404);
    server.abort();
    store.shutdown().await;
}
