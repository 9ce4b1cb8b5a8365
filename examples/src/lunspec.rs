//! `--lun SPEC` and `USER:SECRET` flag parsing shared by the example targets.
//!
//! A LUN spec is `ram:SIZE`, `file:PATH` or `qcow2:PATH`, optionally
//! followed by `,ro` for a read-only logical unit. SIZE is bytes with an
//! optional `K`, `M`, `G` or `T` suffix (powers of 1024).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use tgtkit_backstores::{FileOptions, IoEngine, RamOptions};
use tgtkit_scsi_core::backstore::Backstore;

/// Where a logical unit's data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LunKind {
    /// A sparse ram disk of this many bytes.
    Ram(u64),
    /// A raw file or block device.
    File(PathBuf),
    /// A qcow2 image (not available yet: refused when opened).
    Qcow2(PathBuf),
}

/// A parsed `--lun` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunSpec {
    /// The medium.
    pub kind: LunKind,
    /// `,ro`: the logical unit refuses writes.
    pub read_only: bool,
}

/// A malformed flag value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Not `ram:`, `file:` or `qcow2:`.
    #[error("unknown LUN kind in {0:?} (expected ram:SIZE, file:PATH or qcow2:PATH)")]
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
        let (body, opts) = match s.rsplit_once(',') {
            Some((b, o)) if !o.contains(['/', ':']) => (b, Some(o)),
            _ => (s, None),
        };
        let read_only = match opts {
            None => false,
            Some("ro") => true,
            Some("rw") => false,
            Some(o) => return Err(SpecError::Option(o.to_owned())),
        };
        let kind = match body.split_once(':') {
            Some(("ram", size)) => LunKind::Ram(parse_size(size)?),
            Some(("file", path)) if !path.is_empty() => LunKind::File(path.into()),
            Some(("qcow2", path)) if !path.is_empty() => LunKind::Qcow2(path.into()),
            _ => return Err(SpecError::Kind(s.to_owned())),
        };
        Ok(Self { kind, read_only })
    }
}

impl fmt::Display for LunSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            LunKind::Ram(n) => write!(f, "ram:{n}")?,
            LunKind::File(p) => write!(f, "file:{}", p.display())?,
            LunKind::Qcow2(p) => write!(f, "qcow2:{}", p.display())?,
        }
        if self.read_only {
            f.write_str(",ro")?;
        }
        Ok(())
    }
}

impl LunSpec {
    /// Open the backstore this spec names (files on io_uring if asked).
    ///
    /// # Errors
    ///
    /// A message when the medium cannot be opened, or for `qcow2:` until
    /// the qcow2 backstore exists.
    pub fn open(&self, io_uring: bool) -> Result<Arc<dyn Backstore>, String> {
        match &self.kind {
            LunKind::Ram(size) => RamOptions::new()
                .read_only(self.read_only)
                .build(*size)
                .map(|b| Arc::new(b) as Arc<dyn Backstore>)
                .map_err(|e| format!("ram:{size}: {e}")),
            LunKind::File(path) => FileOptions::new()
                .read_only(self.read_only)
                .engine(if io_uring {
                    IoEngine::IoUring
                } else {
                    IoEngine::ThreadPool
                })
                .open(path)
                .map(|b| Arc::new(b) as Arc<dyn Backstore>)
                .map_err(|e| format!("{}: {e}", path.display())),
            LunKind::Qcow2(path) => Err(format!(
                "{}: the qcow2 backstore is not available in this build",
                path.display()
            )),
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
        assert_eq!(
            "ram:1G".parse::<LunSpec>().unwrap(),
            LunSpec {
                kind: LunKind::Ram(1 << 30),
                read_only: false
            }
        );
        assert_eq!(
            "file:/tmp/a,b.img,ro".parse::<LunSpec>().unwrap(),
            LunSpec {
                kind: LunKind::File("/tmp/a,b.img".into()),
                read_only: true
            }
        );
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
        assert!("nouser".parse::<Credentials>().is_err());
    }
}
