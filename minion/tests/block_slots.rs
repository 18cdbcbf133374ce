//! Raw-partition slots, with regular files of the partition's size standing in for the
//! partitions: the payload lands at the start of the partition and is read back from the medium,
//! metadata lives in a sidecar in the data directory, an image larger than the partition and a
//! mounted partition (the running root) are refused before a byte is written.

use meshlift_image::{build_image, generate_keypair, load_public_key, load_signing_key, BuildOptions};
use meshlift_minion::block_slots::BlockSlotStore;
use meshlift_minion::slots::{SlotError, SlotStore};
use meshlift_minion::{verify_and_flash, FlashError, FlashRequest, FlashedImage};
use meshlift_protocol::SlotId;
use std::io::Read;
use std::path::{Path, PathBuf};

const PARTITION: usize = 128 * 1024;

struct Disk {
    dir: tempfile::TempDir,
    trusted: Vec<meshlift_image::VerifyingKey>,
    key: meshlift_image::SigningKey,
}

impl Disk {
    fn new() -> Disk {
        let dir = tempfile::tempdir().unwrap();
        for p in ["p2", "p3"] {
            std::fs::write(dir.path().join(p), vec![0xA5u8; PARTITION]).unwrap();
        }
        let keys = generate_keypair(&dir.path().join("keys")).unwrap();
        Disk {
            trusted: vec![load_public_key(&keys.public).unwrap()],
            key: load_signing_key(&keys.private).unwrap(),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn store(&self, b: &Path) -> BlockSlotStore {
        BlockSlotStore::open(&self.path("p2"), b, &self.path("data"), SlotId::A).unwrap()
    }

    fn image(&self, version: &str, payload: &[u8]) -> PathBuf {
        let payload_path = self.path(&format!("{version}.payload"));
        std::fs::write(&payload_path, payload).unwrap();
        let out = self.path(&format!("{version}.mlimg"));
        let options = BuildOptions {
            name: "os".into(),
            version: version.into(),
            hardware_board_ids: vec!["board".into()],
            payload: payload_path,
            hooks: vec![],
            created: 0,
        };
        build_image(&options, Some(&self.key), &out).unwrap();
        out
    }

    fn flash(&self, store: &mut BlockSlotStore, image: &Path) -> Result<FlashedImage, FlashError> {
        let req = FlashRequest {
            image_path: image,
            trusted_keys: &self.trusted,
            board: "board",
            installed_version: Some("1.0.0"),
            allow_downgrade: false,
            expected_sha256: None,
            failed_images: &[],
            hooks: None,
        };
        let mut standby = store.standby();
        verify_and_flash(&req, standby.as_mut())
    }
}

#[test]
fn the_payload_goes_to_the_partition_and_its_metadata_to_the_data_directory() {
    let disk = Disk::new();
    let mut store = disk.store(&disk.path("p3"));
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let flashed = disk.flash(&mut store, &disk.image("2.0.0", &payload)).unwrap();
    assert_eq!(flashed.slot, SlotId::B);

    let partition = std::fs::read(disk.path("p3")).unwrap();
    assert_eq!(partition.len(), PARTITION, "a partition never grows or shrinks");
    assert_eq!(&partition[..payload.len()], &payload[..]);
    assert!(partition[payload.len()..].iter().all(|b| *b == 0xA5), "bytes past the payload untouched");
    assert_eq!(
        std::fs::read(disk.path("p2")).unwrap(),
        vec![0xA5u8; PARTITION],
        "the running slot untouched"
    );

    assert!(disk.path("data/slots/b.meta.json").is_file(), "metadata is a sidecar in the data directory");
    let image = store.image(SlotId::B).unwrap().unwrap();
    assert_eq!(image.file_sha256, flashed.sha256());
    let mut read = Vec::new();
    store.open_payload(SlotId::B).unwrap().read_to_end(&mut read).unwrap();
    assert_eq!(read, payload, "the slot's payload is exactly the image's");
    assert_eq!(store.image(SlotId::A).unwrap(), None);
}

#[test]
fn an_image_larger_than_the_partition_is_refused_before_writing() {
    let disk = Disk::new();
    let mut store = disk.store(&disk.path("p3"));
    let first = disk.flash(&mut store, &disk.image("2.0.0", b"small image that fits")).unwrap();
    assert_eq!(store.image(SlotId::B).unwrap().unwrap().file_sha256, first.sha256());
    let before = std::fs::read(disk.path("p3")).unwrap();

    let err = disk.flash(&mut store, &disk.image("3.0.0", &vec![7u8; PARTITION + 1])).unwrap_err();
    match &err {
        FlashError::Slot(SlotError::TooLarge { len, capacity, .. }) => {
            assert_eq!((*len, *capacity), (PARTITION as u64 + 1, PARTITION as u64));
        }
        other => panic!("expected TooLarge: {other}"),
    }
    assert_eq!(std::fs::read(disk.path("p3")).unwrap(), before, "not a byte written");
    assert_eq!(store.image(SlotId::B).unwrap(), None, "the slot reads empty: its metadata went first");
    let missing = disk.store(&disk.path("p9"));
    let mut missing = missing;
    let err = disk.flash(&mut missing, &disk.image("3.0.1", b"x")).unwrap_err();
    assert!(matches!(err, FlashError::Slot(SlotError::Io { .. })), "a partition that is not there: {err}");
    assert!(!disk.path("p9").exists(), "never created");
}

/// The running system's mounts say the standby partition is `/` (the slot paths swapped in the
/// config): the write is refused. The mounts come from a mountinfo file naming the stand-in
/// partition as the root's source; a test never goes near the machine's real root device.
#[test]
fn the_mounted_root_is_never_written() {
    let disk = Disk::new();
    let p3 = std::fs::canonicalize(disk.path("p3")).unwrap();
    let mountinfo = disk.path("mountinfo");
    std::fs::write(
        &mountinfo,
        format!(
            "22 27 0:21 / /proc rw,relatime - proc proc rw\n27 1 0:99 / / rw,relatime - ext4 {} rw\n",
            p3.display()
        ),
    )
    .unwrap();
    let before = std::fs::read(&p3).unwrap();
    let mut store = disk.store(&disk.path("p3")).with_mountinfo(&mountinfo);
    assert_eq!(store.mounted_root_slot(), Some(SlotId::B), "the store sees which slot runs");
    let err =
        disk.flash(&mut store, &disk.image("2.0.0", b"would overwrite the running system")).unwrap_err();
    match &err {
        FlashError::Slot(SlotError::Mounted { mount_point, .. }) => assert_eq!(mount_point, "/"),
        other => panic!("expected a refusal: {other}"),
    }
    assert!(err.to_string().contains("is mounted at /"), "{err}");
    assert_eq!(std::fs::read(&p3).unwrap(), before, "not a byte written");

    // The same partition, not mounted: written.
    let mut store = disk.store(&disk.path("p3"));
    assert_eq!(store.mounted_root_slot(), None);
    disk.flash(&mut store, &disk.image("2.0.1", b"fine when nothing runs from it")).unwrap();
}
