//! A/B slots on raw partitions (`/dev/mmcblk0p2`, `/dev/mmcblk0p3`…), named in the config.
//!
//! - **Payload**: written from byte 0 of the partition, never past its end (a payload larger than
//!   the partition is refused before the first byte), then `fsync` (which also flushes the
//!   device's write cache), then the page cache for the partition is dropped
//!   (`posix_fadvise(DONTNEED)`), so the flasher's read-back hashes what the medium returns, not
//!   what the kernel still holds in memory.
//! - **Metadata** (which image, its manifest, its digest) lives in a sidecar file in the data
//!   directory, `<data>/slots/{a,b}.meta.json`, exactly as for [`crate::FileSlotStore`]: the data
//!   partition survives both slots' rewrites, a raw partition has no room that an image's root
//!   filesystem would not claim, and the sidecar is removed (durably) before the payload is
//!   overwritten and written (atomically) only after the read-back matched, so a power cut
//!   mid-write leaves an empty slot, never metadata describing bytes that are not there.
//! - **Never the running system**: before writing, the partition's device number is compared with
//!   every mounted filesystem (`/proc/self/mountinfo`) and with the device of `/`; a mounted
//!   standby (the paths in the config swapped, or the bootloader booted another slot than the
//!   minion believes) is refused.
//!
//! Tests stand in for partitions with regular files of the partition's size.

use crate::slots::{read_meta, remove_meta, write_meta, SlotError, SlotImage, SlotStore, StandbySlot};
use meshlift_protocol::SlotId;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Copy buffer for the payload.
const CHUNK: usize = 1 << 20;

/// The two partitions and the sidecar metadata directory.
#[derive(Debug, Clone)]
pub struct BlockSlotStore {
    a: PathBuf,
    b: PathBuf,
    meta_dir: PathBuf,
    booted: SlotId,
    mountinfo: PathBuf,
}

impl BlockSlotStore {
    /// `a`, `b`: the partitions; metadata goes to `<data_dir>/slots/`.
    pub fn open(a: &Path, b: &Path, data_dir: &Path, booted: SlotId) -> Result<BlockSlotStore, SlotError> {
        let meta_dir = data_dir.join("slots");
        fs::create_dir_all(&meta_dir).map_err(|source| SlotError::Io { path: meta_dir.clone(), source })?;
        Ok(BlockSlotStore {
            a: a.to_path_buf(),
            b: b.to_path_buf(),
            meta_dir,
            booted,
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
        })
    }

    /// Reads mounts from `path` instead of `/proc/self/mountinfo` (a test's stand-in for the
    /// running system's mounts).
    pub fn with_mountinfo(mut self, path: &Path) -> BlockSlotStore {
        self.mountinfo = path.to_path_buf();
        self
    }

    pub fn partition(&self, slot: SlotId) -> &Path {
        match slot {
            SlotId::A => &self.a,
            SlotId::B => &self.b,
        }
    }

    fn meta_path(&self, slot: SlotId) -> PathBuf {
        self.meta_dir.join(format!("{}.meta.json", slot.as_str()))
    }

    /// The slot whose partition is mounted at `/`, if either is: the slot this system runs from,
    /// as the kernel sees it (used when the kernel command line does not say).
    pub fn mounted_root_slot(&self) -> Option<SlotId> {
        [SlotId::A, SlotId::B].into_iter().find(|&slot| {
            mount_point(self.partition(slot), &self.mountinfo).ok().flatten().as_deref() == Some("/")
        })
    }
}

impl SlotStore for BlockSlotStore {
    fn booted(&self) -> SlotId {
        self.booted
    }

    fn image(&self, slot: SlotId) -> Result<Option<SlotImage>, SlotError> {
        read_meta(&self.meta_path(slot))
    }

    /// The payload's bytes when the slot's metadata says how many; the whole partition otherwise.
    fn open_payload(&self, slot: SlotId) -> Result<Box<dyn Read + '_>, SlotError> {
        let path = self.partition(slot);
        let file = File::open(path).map_err(|source| SlotError::Io { path: path.to_path_buf(), source })?;
        match self.image(slot).ok().flatten() {
            Some(image) => Ok(Box::new(file.take(image.manifest.payload_size))),
            None => Ok(Box::new(file)),
        }
    }

    fn standby(&mut self) -> Box<dyn StandbySlot + '_> {
        let slot = self.booted.other();
        Box::new(BlockStandby {
            slot,
            device: self.partition(slot).to_path_buf(),
            meta: self.meta_path(slot),
            mountinfo: self.mountinfo.clone(),
        })
    }
}

struct BlockStandby {
    slot: SlotId,
    device: PathBuf,
    meta: PathBuf,
    mountinfo: PathBuf,
}

impl StandbySlot for BlockStandby {
    fn id(&self) -> SlotId {
        self.slot
    }

    fn invalidate(&mut self) -> Result<(), SlotError> {
        remove_meta(&self.meta)
    }

    fn write_payload(&mut self, src: &mut dyn Read, len: u64) -> Result<(), SlotError> {
        let io_err = |source| SlotError::Io { path: self.device.clone(), source };
        if let Some(mount_point) = mount_point(&self.device, &self.mountinfo).map_err(io_err)? {
            return Err(SlotError::Mounted { path: self.device.clone(), mount_point });
        }
        // No create, no truncate: a partition that is not there is a configuration error, and a
        // block device cannot be truncated anyway.
        let mut dev = OpenOptions::new().write(true).open(&self.device).map_err(io_err)?;
        let capacity = dev.seek(SeekFrom::End(0)).map_err(io_err)?;
        if len > capacity {
            return Err(SlotError::TooLarge { path: self.device.clone(), len, capacity });
        }
        dev.seek(SeekFrom::Start(0)).map_err(io_err)?;
        let mut src = src.take(len);
        let mut buf = vec![0u8; CHUNK];
        let mut written = 0u64;
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(e)),
            };
            dev.write_all(&buf[..n]).map_err(io_err)?;
            written += n as u64;
        }
        if written != len {
            return Err(SlotError::ShortSource { slot: self.slot.as_str(), written, expected: len });
        }
        dev.flush().map_err(io_err)?;
        dev.sync_all().map_err(io_err)?;
        drop_cache(&dev).map_err(io_err)
    }

    fn read_back(&self) -> Result<Box<dyn Read + '_>, SlotError> {
        let file =
            File::open(&self.device).map_err(|source| SlotError::Io { path: self.device.clone(), source })?;
        // Anything cached since the write (a reader in between) goes too: hash the medium.
        drop_cache(&file).map_err(|source| SlotError::Io { path: self.device.clone(), source })?;
        Ok(Box::new(file))
    }

    fn record(&mut self, image: &SlotImage) -> Result<(), SlotError> {
        write_meta(&self.meta, image)
    }
}

/// Drops the file's cached pages (clean after the fsync) so the next read goes to the device.
fn drop_cache(file: &File) -> io::Result<()> {
    rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed).map_err(io::Error::from)
}

/// Where `device` is mounted, if anywhere: by device number for a block device (the mountinfo's
/// `major:minor`, and the device of `/` itself, which on some systems reads differently there),
/// by path for anything else (the mount source names it).
pub fn mount_point(device: &Path, mountinfo: &Path) -> io::Result<Option<String>> {
    let stat = rustix::fs::stat(device).map_err(io::Error::from)?;
    let is_block = rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::BlockDevice;
    let dev = is_block.then(|| (rustix::fs::major(stat.st_rdev), rustix::fs::minor(stat.st_rdev)));
    if let Some(dev) = dev {
        let root = rustix::fs::stat("/").map_err(io::Error::from)?;
        if (rustix::fs::major(root.st_dev), rustix::fs::minor(root.st_dev)) == dev {
            return Ok(Some("/".into()));
        }
    }
    let canonical = fs::canonicalize(device)?;
    let text = match fs::read_to_string(mountinfo) {
        Ok(t) => t,
        // No /proc (a chroot): the comparison with `/` above is all there is.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(mounted_in(&text, dev, &canonical))
}

/// The mount point of the first line of `/proc/self/mountinfo` text whose `major:minor` is `dev`
/// or whose mount source is `path`. Format (proc(5)): `id parent major:minor root mount-point
/// options [optional fields] - fstype source super-options`.
pub fn mounted_in(mountinfo: &str, dev: Option<(u32, u32)>, path: &Path) -> Option<String> {
    let path = path.to_str();
    mountinfo.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let (numbers, mount_point) = (fields.get(2)?, fields.get(4)?);
        let by_number = dev.is_some_and(|(major, minor)| *numbers == format!("{major}:{minor}"));
        let source = fields.iter().position(|f| *f == "-").and_then(|i| fields.get(i + 2)).copied();
        let by_path = path.is_some() && source == path;
        (by_number || by_path).then(|| unescape(mount_point))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\\ooo`.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 179:2 / / rw,relatime - ext4 /dev/mmcblk0p2 rw
31 27 179:4 / /var/lib/meshlift rw,relatime shared:5 - ext4 /dev/mmcblk0p4 rw
40 27 7:0 / /mnt/with\\040space rw - ext4 /dev/loop0 rw
41 27 0:44 / /data rw - btrfs /srv/images/data.img rw";

    #[test]
    fn mounted_partitions_are_found_by_number_or_source() {
        let p = Path::new("/dev/mmcblk0p2");
        assert_eq!(mounted_in(MOUNTINFO, Some((179, 2)), p).as_deref(), Some("/"));
        assert_eq!(mounted_in(MOUNTINFO, Some((179, 3)), Path::new("/dev/mmcblk0p3")), None);
        assert_eq!(
            mounted_in(MOUNTINFO, Some((179, 4)), Path::new("/dev/x")).as_deref(),
            Some("/var/lib/meshlift"),
            "optional fields before the separator are skipped"
        );
        assert_eq!(
            mounted_in(MOUNTINFO, Some((7, 0)), Path::new("/dev/loop0")).as_deref(),
            Some("/mnt/with space")
        );
        assert_eq!(mounted_in(MOUNTINFO, None, Path::new("/srv/images/data.img")).as_deref(), Some("/data"));
        assert_eq!(mounted_in(MOUNTINFO, None, Path::new("/srv/images/slot-b.img")), None);
    }
}
