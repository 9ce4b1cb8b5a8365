//! `--lun SPEC` and `USER:SECRET` flag parsing shared by the example targets.
//!
//! A LUN spec is `ram:SIZE`, `file:PATH`, `qcow2:PATH`, `cdrom:PATH` (an
//! ISO image served read-only as a CD/DVD device, 2048-byte blocks, whose
//! tray START STOP UNIT opens and closes) or `tape:PATH` (a tape image
//! served as a sequential-access device; the file's size is the tape's
//! capacity and a zero-filled file is a blank tape), optionally
//! followed by options: `,ro` for a read-only logical unit, `,removable`
//! for a removable medium (START STOP UNIT ejects and loads it, PREVENT
//! ALLOW MEDIUM REMOVAL locks it in), `,pbs=BYTES` for a physical block
//! larger than the 512-byte logical block (reported in READ CAPACITY(16)). SIZE is bytes with an optional `K`, `M`, `G` or `T`
//! suffix (powers of 1024).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use tgtkit_backstores::qcow2::{Qcow2Backstore, Qcow2Options};
use tgtkit_backstores::{FileOptions, IoEngine, RamOptions};
use tgtkit_scsi_core::backstore::Backstore;
use tgtkit_scsi_core::device::DeviceType;
use tgtkit_scsi_core::engine::LuConfig;

/// Where a logical unit's data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LunKind {
    /// A sparse ram disk of this many bytes.
    Ram(u64),
    /// A raw file or block device.
    File(PathBuf),
    /// A qcow2 image (with its backing chain).
    Qcow2(PathBuf),
    /// An ISO image, served as a read-only CD/DVD device.
    Cdrom(PathBuf),
    /// A tape image, served as a sequential-access (tape) device.
    Tape(PathBuf),
}

/// A parsed `--lun` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunSpec {
    /// The medium.
    pub kind: LunKind,
    /// `,ro`: the logical unit refuses writes.
    pub read_only: bool,
    /// `,removable`: the medium can be ejected and loaded.
    pub removable: bool,
    /// `,pbs=BYTES`: the physical block size, when larger than the logical.
    pub physical_block_size: Option<u32>,
}

/// A malformed flag value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Not `ram:`, `file:`, `qcow2:`, `cdrom:` or `tape:`.
    #[error(
        "unknown LUN kind in {0:?} (expected ram:SIZE, file:PATH, qcow2:PATH, cdrom:PATH or tape:PATH)"
    )]
    Kind(String),
    /// A size that does not parse or is zero.
    #[error("invalid size {0:?}")]
    Size(String),
    /// An option after the comma other than `ro`.
    #[error("unknown LUN option {0:?}")]
    Option(String),
    /// Not `USER:SECRET`.
    #[error("expected USER:SECRET")]
    Credentials,
}

/// Parse `512`, `64K`, `100M`, `1G`, `2T` (powers of 1024).
///
/// # Errors
///
/// [`SpecError::Size`] for anything else, zero, or an overflow.
pub fn parse_size(s: &str) -> Result<u64, SpecError> {
    let err = || SpecError::Size(s.to_owned());
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1 << 30),
        Some('t' | 'T') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: u64 = num.parse().map_err(|_| err())?;
    let v = n.checked_mul(mult).ok_or_else(err)?;
    if v == 0 {
        return Err(err());
    }
    Ok(v)
}

impl FromStr for LunSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let mut body = s;
        let mut read_only = false;
        let mut removable = false;
        let mut physical_block_size = None;
        // Options are peeled off the end, so a path may contain commas.
        while let Some((b, o)) = body.rsplit_once(',') {
            if o.contains(['/', ':']) {
                break;
            }
            match o {
                "ro" => read_only = true,
                "rw" => read_only = false,
                "removable" => removable = true,
                _ => match o.strip_prefix("pbs=") {
                    Some(n) => {
                        let n = parse_size(n)?;
                        let n = u32::try_from(n)
                            .ok()
                            .filter(|n| n.is_power_of_two() && *n >= 512)
                            .ok_or_else(|| SpecError::Size(o.to_owned()))?;
                        physical_block_size = Some(n);
                    }
                    // Not an option: part of a path with a comma in it, or
                    // garbage the kind's own parser will refuse.
                    None if ["file:", "qcow2:", "cdrom:", "tape:"]
                        .iter()
                        .any(|k| body.starts_with(k)) =>
                    {
                        break
                    }
                    None => return Err(SpecError::Option(o.to_owned())),
                },
            }
            body = b;
        }
        let kind = match body.split_once(':') {
            Some(("ram", size)) => LunKind::Ram(parse_size(size)?),
            Some(("file", path)) if !path.is_empty() => LunKind::File(path.into()),
            Some(("qcow2", path)) if !path.is_empty() => LunKind::Qcow2(path.into()),
            Some(("cdrom", path)) if !path.is_empty() => LunKind::Cdrom(path.into()),
            Some(("tape", path)) if !path.is_empty() => LunKind::Tape(path.into()),
            _ => return Err(SpecError::Kind(s.to_owned())),
        };
        Ok(Self {
            kind,
            read_only,
            removable,
            physical_block_size,
        })
    }
}

impl fmt::Display for LunSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            LunKind::Ram(n) => write!(f, "ram:{n}")?,
            LunKind::File(p) => write!(f, "file:{}", p.display())?,
            LunKind::Qcow2(p) => write!(f, "qcow2:{}", p.display())?,
            LunKind::Cdrom(p) => write!(f, "cdrom:{}", p.display())?,
            LunKind::Tape(p) => write!(f, "tape:{}", p.display())?,
        }
        if self.read_only {
            f.write_str(",ro")?;
        }
        if self.removable {
            f.write_str(",removable")?;
        }
        if let Some(pbs) = self.physical_block_size {
            write!(f, ",pbs={pbs}")?;
        }
        Ok(())
    }
}

impl LunSpec {
    /// A writable, fixed ram disk of `size` bytes.
    #[must_use]
    pub fn ram(size: u64) -> Self {
        Self {
            kind: LunKind::Ram(size),
            read_only: false,
            removable: false,
            physical_block_size: None,
        }
    }

    /// The logical unit configuration for `backstore` with this spec's
    /// options (`ro`, `removable`) and device type (a CD/DVD device for
    /// `cdrom:`, a tape device for `tape:`).
    #[must_use]
    pub fn lu_config(&self, backstore: Arc<dyn Backstore>) -> LuConfig {
        let device = match self.kind {
            LunKind::Cdrom(_) => DeviceType::Cdrom,
            LunKind::Tape(_) => DeviceType::Tape,
            _ => DeviceType::Disk,
        };
        LuConfig::new(backstore)
            .read_only(self.read_only)
            .removable(self.removable)
            .device_type(device)
    }

    /// Open the backstore this spec names (files on io_uring if asked).
    ///
    /// # Errors
    ///
    /// A message when the medium cannot be opened.
    pub fn open(&self, io_uring: bool) -> Result<Arc<dyn Backstore>, String> {
        let pbs = self.physical_block_size.unwrap_or(512);
        match &self.kind {
            LunKind::Ram(size) => RamOptions::new()
                .read_only(self.read_only)
                .physical_block_size(pbs)
                .build(*size)
                .map(|b| Arc::new(b) as Arc<dyn Backstore>)
                .map_err(|e| format!("ram:{size}: {e}")),
            LunKind::File(path) => FileOptions::new()
                .read_only(self.read_only)
                .physical_block_size(pbs)
                .engine(if io_uring {
                    IoEngine::IoUring
                } else {
                    IoEngine::ThreadPool
                })
                .open(path)
                .map(|b| Arc::new(b) as Arc<dyn Backstore>)
                .map_err(|e| format!("{}: {e}", path.display())),
            LunKind::Cdrom(path) => FileOptions::new()
                .read_only(true)
                .logical_block_size(2048)
                .open(path)
                .map(|b| Arc::new(b) as Arc<dyn Backstore>)
                .map_err(|e| format!("{}: {e}", path.display())),
            // Buffered I/O: tape objects sit at any byte offset.
            LunKind::Tape(path) => FileOptions::new()
                .read_only(self.read_only)
                .open(path)
                .map(|b| Arc::new(b) as Arc<dyn Backstore>)
                .map_err(|e| format!("{}: {e}", path.display())),
            LunKind::Qcow2(path) => {
                let options = Qcow2Options {
                    read_only: self.read_only,
                    ..Qcow2Options::default()
                };
                // Opening reads the headers on the image's own pool; block
                // here, before the target starts serving.
                futures::executor::block_on(Qcow2Backstore::open(path, options))
                    .map(|b| Arc::new(b) as Arc<dyn Backstore>)
                    .map_err(|e| format!("{}: {e}", path.display()))
            }
        }
    }
}

/// A `USER:SECRET` pair (the secret may contain colons).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Secret.
    pub secret: String,
}

impl FromStr for Credentials {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() && !p.is_empty() => Ok(Self {
                user: u.to_owned(),
                secret: p.to_owned(),
            }),
            _ => Err(SpecError::Credentials),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ram_file_and_ro() {
        assert_eq!("ram:1G".parse::<LunSpec>().unwrap(), LunSpec::ram(1 << 30));
        assert_eq!(
            "file:/tmp/a,b.img,ro".parse::<LunSpec>().unwrap(),
            LunSpec {
                kind: LunKind::File("/tmp/a,b.img".into()),
                read_only: true,
                removable: false,
                physical_block_size: None,
            }
        );
        let spec: LunSpec = "file:/y.img,removable".parse().unwrap();
        assert!(spec.removable && !spec.read_only);
        assert_eq!(spec.to_string(), "file:/y.img,removable");
        let spec: LunSpec = "tape:/srv/tape.img".parse().unwrap();
        assert_eq!(spec.kind, LunKind::Tape("/srv/tape.img".into()));
        assert_eq!(spec.to_string(), "tape:/srv/tape.img");
        let spec: LunSpec = "cdrom:/srv/debian.iso".parse().unwrap();
        assert_eq!(spec.kind, LunKind::Cdrom("/srv/debian.iso".into()));
        assert_eq!(spec.to_string(), "cdrom:/srv/debian.iso");
        let spec: LunSpec = "file:/x.img,pbs=4K,ro".parse().unwrap();
        assert_eq!(spec.physical_block_size, Some(4096));
        assert!(spec.read_only);
        assert_eq!(spec.to_string(), "file:/x.img,ro,pbs=4096");
        assert_eq!(parse_size("64K").unwrap(), 65536);
        assert_eq!("u:s:x".parse::<Credentials>().unwrap().secret, "s:x");
    }

    #[test]
    fn rejects_bad_specs() {
        assert!("disk:1G".parse::<LunSpec>().is_err());
        assert!("ram:0".parse::<LunSpec>().is_err());
        assert!("ram:1G,rx".parse::<LunSpec>().is_err());
        assert!("ram:99999999999T".parse::<LunSpec>().is_err());
        assert!("file:".parse::<LunSpec>().is_err());
        assert!("ram:1G,pbs=1000".parse::<LunSpec>().is_err());
        assert!("ram:1G,pbs=256".parse::<LunSpec>().is_err());
        assert!("nouser".parse::<Credentials>().is_err());
    }
}
