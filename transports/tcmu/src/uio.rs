//! UIO devices of `target_core_user`: discovery, mapping, waiting, kicking.
//!
//! Every enabled user-backstore device is a UIO device whose sysfs `name`
//! is `tcm-user/<hba>/<dev>/<cfgstring>` and whose `maps/map0` is the
//! shared area (mailbox, command ring, data area). Reading 4 bytes from
//! `/dev/uioN` blocks until the kernel signals new ring entries (the fd is
//! pollable); writing 4 bytes makes the kernel reap completed entries.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::mem::SharedMemory;

/// Prefix of the UIO names of TCMU devices.
pub const NAME_PREFIX: &str = "tcm-user/";
/// Largest map0 accepted (the kernel's default is 8 MiB + 1 GiB).
pub const MAX_MAP_SIZE: u64 = 64 << 30;

/// The parts of a TCMU UIO name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UioName {
    /// HBA index (the N of `core/user_N`).
    pub hba: u32,
    /// Device name (the directory under `core/user_N`).
    pub dev: String,
    /// The `dev_config` string: `<subtype>/<rest>`.
    pub cfgstring: String,
}

impl UioName {
    /// Split `tcm-user/<hba>/<dev>/<cfgstring>`; `None` for other UIO devices.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        let rest = name.trim_end_matches('\n').strip_prefix(NAME_PREFIX)?;
        let mut parts = rest.splitn(3, '/');
        let hba = parts.next()?.parse().ok()?;
        let dev = parts.next()?;
        if dev.is_empty() {
            return None;
        }
        let cfgstring = parts.next().unwrap_or("").to_owned();
        Some(Self {
            hba,
            dev: dev.to_owned(),
            cfgstring,
        })
    }

    /// The handler subtype: the cfgstring up to its first `/`.
    #[must_use]
    pub fn subtype(&self) -> &str {
        self.cfgstring.split('/').next().unwrap_or("")
    }

    /// The handler's argument: the cfgstring after its first `/`.
    #[must_use]
    pub fn argument(&self) -> &str {
        self.cfgstring.split_once('/').map_or("", |(_, rest)| rest)
    }

    /// The device's configfs directory under `configfs_root`
    /// (`<root>/target/core/user_<hba>/<dev>`).
    #[must_use]
    pub fn configfs_dir(&self, configfs_root: &Path) -> PathBuf {
        configfs_root
            .join("target/core")
            .join(format!("user_{}", self.hba))
            .join(&self.dev)
    }
}

/// A TCMU UIO device found in sysfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UioInfo {
    /// N of `uioN`.
    pub index: u32,
    /// Its parsed name.
    pub name: UioName,
    /// The raw name.
    pub raw_name: String,
    /// Size of map0 in bytes.
    pub map_size: u64,
}

fn read_trim(path: &Path) -> io::Result<String> {
    Ok(std::fs::read_to_string(path)?.trim().to_owned())
}

fn parse_sysfs_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Read one `uioN` directory of `sysfs_class` (normally `/sys/class/uio`).
///
/// # Errors
///
/// I/O errors reading sysfs; `InvalidData` for a name that is not TCMU's
/// or a map size that cannot be parsed.
pub fn info(sysfs_class: &Path, index: u32) -> io::Result<UioInfo> {
    let dir = sysfs_class.join(format!("uio{index}"));
    let raw_name = read_trim(&dir.join("name"))?;
    let name = UioName::parse(&raw_name).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not a TCMU device: {raw_name}"),
        )
    })?;
    let size = read_trim(&dir.join("maps/map0/size"))?;
    let map_size = parse_sysfs_u64(&size)
        .filter(|&s| s > 0 && s <= MAX_MAP_SIZE)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad map0 size {size:?}"),
            )
        })?;
    Ok(UioInfo {
        index,
        name,
        raw_name,
        map_size,
    })
}

/// Every TCMU device under `sysfs_class` (normally `/sys/class/uio`),
/// ordered by index. Other UIO devices are skipped.
///
/// # Errors
///
/// I/O errors listing the directory (a missing directory yields no devices).
pub fn discover(sysfs_class: &Path) -> io::Result<Vec<UioInfo>> {
    let entries = match std::fs::read_dir(sysfs_class) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(index) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix("uio"))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        match info(sysfs_class, index) {
            Ok(i) => out.push(i),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                tracing::debug!(index, %e, "skipping UIO device");
            }
            Err(e) => return Err(e),
        }
    }
    out.sort_by_key(|i| i.index);
    Ok(out)
}

struct Mapping {
    addr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is a plain address range; it is only unmapped in Drop.
unsafe impl Send for Mapping {}
// SAFETY: as above; shared access goes through `SharedMemory`'s volatile accessors.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `addr`/`len` came from a successful mmap and nothing else
        // unmaps it; every user of the memory holds this owner alive.
        unsafe {
            libc::munmap(self.addr, self.len);
        }
    }
}

/// An open TCMU UIO device with its map0 mapped.
pub struct UioDevice {
    file: File,
    mem: Arc<SharedMemory>,
    info: UioInfo,
}

impl std::fmt::Debug for UioDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UioDevice")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl UioDevice {
    /// Open `<dev_dir>/uio<index>` (normally `/dev`) and map map0.
    ///
    /// # Errors
    ///
    /// I/O errors from open or mmap.
    pub fn open(dev_dir: &Path, info: UioInfo) -> io::Result<Self> {
        let path = dev_dir.join(format!("uio{}", info.index));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)?;
        let len = usize::try_from(info.map_size)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "map0 too large"))?;
        // SAFETY: mapping a fresh range chosen by the kernel; UIO map N is
        // selected by offset N * page size, so map0 is offset 0.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let owner = Mapping { addr, len };
        // SAFETY: the mapping is `len` bytes, page aligned, kept alive by
        // `owner`, and shared only with the kernel; this crate accesses it
        // only through `SharedMemory`'s volatile and atomic accessors.
        let mem = unsafe { SharedMemory::from_raw(addr.cast(), len, Box::new(owner)) };
        Ok(Self {
            file,
            mem: Arc::new(mem),
            info,
        })
    }

    /// The mapped shared area.
    #[must_use]
    pub fn memory(&self) -> &Arc<SharedMemory> {
        &self.mem
    }

    /// What sysfs said about the device.
    #[must_use]
    pub fn info(&self) -> &UioInfo {
        &self.info
    }

    /// Block until the kernel signals the device; returns its event count.
    ///
    /// # Errors
    ///
    /// I/O errors from read(2).
    pub fn wait(&self) -> io::Result<u32> {
        let mut count = [0u8; 4];
        (&self.file).read_exact(&mut count)?;
        Ok(u32::from_ne_bytes(count))
    }

    /// Wait up to `timeout_ms` (negative: forever) for a signal; true if one
    /// arrived (and was consumed).
    ///
    /// # Errors
    ///
    /// I/O errors from poll(2) or read(2).
    pub fn wait_timeout(&self, timeout_ms: i32) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        match n {
            0 => Ok(false),
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
            _ => self.wait().map(|_| true),
        }
    }

    /// Tell the kernel that completions are on the ring.
    ///
    /// # Errors
    ///
    /// I/O errors from write(2).
    pub fn kick(&self) -> io::Result<()> {
        (&self.file).write_all(&0u32.to_ne_bytes())
    }
}

impl AsFd for UioDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_tcmu_uio_names() {
        // target_core_user.c tcmu_update_uio_info: "tcm-user/%u/%s/%s".
        let n = UioName::parse("tcm-user/0/dev0/file//var/tmp/disk.img\n").unwrap();
        assert_eq!((n.hba, n.dev.as_str()), (0, "dev0"));
        assert_eq!((n.subtype(), n.argument()), ("file", "/var/tmp/disk.img"));
        assert_eq!(
            n.configfs_dir(Path::new("/sys/kernel/config")),
            Path::new("/sys/kernel/config/target/core/user_0/dev0")
        );
        let bare = UioName::parse("tcm-user/3/d").unwrap();
        assert_eq!((bare.subtype(), bare.argument()), ("", ""));
    }

    #[test]
    fn rejects_other_uio_names() {
        for n in [
            "uio_pdrv",
            "tcm-user/x/dev/file/a",
            "tcm-user/1//file/a",
            "tcm-user/",
        ] {
            assert_eq!(UioName::parse(n), None, "{n}");
        }
    }

    #[test]
    fn accepts_a_sysfs_tree() {
        let root = std::env::temp_dir().join(format!("tgtkit-uio-{}", std::process::id()));
        let mk = |i: u32, name: &str, size: &str| {
            let d = root.join(format!("uio{i}/maps/map0"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(root.join(format!("uio{i}/name")), name).unwrap();
            std::fs::write(d.join("size"), size).unwrap();
        };
        mk(2, "tcm-user/0/b/ram/1M\n", "0x40800000\n");
        mk(0, "tcm-user/0/a/file//x\n", "0x40800000\n");
        mk(1, "other\n", "0x1000\n");
        let found = discover(&root).unwrap();
        assert_eq!(found.iter().map(|i| i.index).collect::<Vec<_>>(), [0, 2]);
        assert_eq!(found[0].map_size, 0x4080_0000);
        mk(3, "tcm-user/0/c/ram/1M\n", "zero\n");
        assert_eq!(
            info(&root, 3).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        std::fs::remove_dir_all(&root).unwrap();
        assert!(discover(&root).unwrap().is_empty());
    }
}
