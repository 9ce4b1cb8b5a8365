//! Persistence of reservation state for APTPL (SPC-4 §5.13.5).
//!
//! A [`PrStore`] keeps the registrations and the reservation of one
//! logical unit across power loss (here: process restarts). The engine
//! calls [`PrStore::save`] after every PERSISTENT RESERVE OUT that changes
//! the state while APTPL is set, before the command completes, and
//! [`PrStore::clear`] when APTPL is turned off; [`PrStore::load`] runs once
//! when the logical unit is added.
//!
//! [`FilePrStore`] writes a new file, fsyncs it, renames it over the old
//! one and fsyncs the directory, so a crash at any instant leaves the old
//! state or the new one, never a mix. A file that is present but cannot be
//! read or does not check out is an error at start-up, never an empty
//! state.
//!
//! The store's methods block (they fsync); they run on the task of the
//! PERSISTENT RESERVE OUT command, which is rare and ordered.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::pr::state::{ItNexusIdentity, PrState, PrType, Registration, Reservation};
use crate::pr::transport_id::{hex, TransportId};

/// An error loading or saving reservation state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrStoreError {
    /// The state could not be read or written.
    #[error("reservation state I/O on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The state exists but is not valid (truncated, altered, or from an
    /// unknown version).
    #[error("reservation state in {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Where a logical unit keeps its persistent reservations across restarts.
pub trait PrStore: Send + Sync + std::fmt::Debug {
    /// The saved state, or `None` if nothing was saved.
    ///
    /// # Errors
    ///
    /// [`PrStoreError`] when saved state exists but cannot be read or is
    /// corrupt.
    fn load(&self) -> Result<Option<PrState>, PrStoreError>;

    /// Replace the saved state with `state`, atomically and durably.
    ///
    /// # Errors
    ///
    /// [`PrStoreError`] if the state could not be made durable; the old
    /// state is then still the saved one.
    fn save(&self, state: &PrState) -> Result<(), PrStoreError>;

    /// Forget the saved state (APTPL turned off).
    ///
    /// # Errors
    ///
    /// [`PrStoreError`] if it could not be removed.
    fn clear(&self) -> Result<(), PrStoreError>;
}

const MAGIC: &str = "tgtkit-pr 1";

/// Encode `state` in the file format: text lines, the last one a checksum
/// of all the others.
#[must_use]
pub fn encode_state(state: &PrState) -> String {
    let mut out = String::new();
    out.push_str(MAGIC);
    out.push('\n');
    out.push_str(&format!("aptpl {}\n", u8::from(state.aptpl)));
    for r in &state.registrations {
        out.push_str(&format!(
            "reg {:016x} {} {} {}\n",
            r.key,
            r.relative_port,
            u8::from(r.all_tg_pt),
            hex(&r.initiator.encode())
        ));
    }
    if let Some(res) = &state.reservation {
        out.push_str(&format!(
            "res {} {} {}\n",
            res.pr_type.0,
            res.holder.relative_port,
            hex(&res.holder.initiator.encode())
        ));
    }
    let sum = crate::engine::lu::fnv1a(out.as_bytes(), 0);
    out.push_str(&format!("end {sum:016x}\n"));
    out
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || s.len() > 2 * crate::pr::MAX_TRANSPORT_ID_LEN {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn tid(s: &str) -> Option<TransportId> {
    let bytes = unhex(s)?;
    let (id, len) = TransportId::parse(&bytes).ok()?;
    (len == bytes.len()).then_some(id)
}

/// Decode the file format.
///
/// # Errors
///
/// A description of the first thing wrong.
pub fn decode_state(text: &str) -> Result<PrState, String> {
    let body_end = text
        .rfind("end ")
        .ok_or_else(|| "no end line (truncated)".to_string())?;
    let (body, tail) = text.split_at(body_end);
    let want = tail
        .strip_prefix("end ")
        .and_then(|t| t.strip_suffix('\n'))
        .and_then(|t| u64::from_str_radix(t, 16).ok())
        .ok_or_else(|| "bad end line".to_string())?;
    if crate::engine::lu::fnv1a(body.as_bytes(), 0) != want {
        return Err("checksum mismatch".into());
    }
    let mut lines = body.lines();
    if lines.next() != Some(MAGIC) {
        return Err("unknown format or version".into());
    }
    let mut state = PrState::default();
    for (n, line) in lines.enumerate() {
        let bad = || format!("line {}: {line:?}", n + 2);
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["aptpl", v] => state.aptpl = *v == "1",
            ["reg", key, port, all, id] => {
                if state.registrations.len() >= crate::pr::MAX_REGISTRATIONS {
                    return Err(bad());
                }
                state.registrations.push(Registration {
                    key: u64::from_str_radix(key, 16).map_err(|_| bad())?,
                    relative_port: port.parse().map_err(|_| bad())?,
                    all_tg_pt: *all == "1",
                    initiator: tid(id).ok_or_else(bad)?,
                });
            }
            ["res", ty, port, id] => {
                let pr_type = PrType(ty.parse().map_err(|_| bad())?);
                if !pr_type.is_valid() || state.reservation.is_some() {
                    return Err(bad());
                }
                state.reservation = Some(Reservation {
                    pr_type,
                    holder: ItNexusIdentity {
                        initiator: tid(id).ok_or_else(bad)?,
                        relative_port: port.parse().map_err(|_| bad())?,
                    },
                });
            }
            _ => return Err(bad()),
        }
    }
    Ok(state)
}

/// A [`PrStore`] in one file, replaced atomically on every save.
#[derive(Debug, Clone)]
pub struct FilePrStore {
    path: PathBuf,
}

impl FilePrStore {
    /// A store at `path` (its directory must exist).
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> PrStoreError {
        PrStoreError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn tmp_path(&self) -> PathBuf {
        let mut name = self
            .path
            .file_name()
            .map(std::ffi::OsStr::to_os_string)
            .unwrap_or_default();
        name.push(".tmp");
        self.path.with_file_name(name)
    }

    fn sync_dir(&self) -> Result<(), PrStoreError> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io(e))
    }
}

impl PrStore for FilePrStore {
    fn load(&self) -> Result<Option<PrState>, PrStoreError> {
        let text = match fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        let text = String::from_utf8(text).map_err(|_| PrStoreError::Corrupt {
            path: self.path.clone(),
            reason: "not UTF-8".into(),
        })?;
        decode_state(&text)
            .map(Some)
            .map_err(|reason| PrStoreError::Corrupt {
                path: self.path.clone(),
                reason,
            })
    }

    fn save(&self, state: &PrState) -> Result<(), PrStoreError> {
        let tmp = self.tmp_path();
        let mut f = fs::File::create(&tmp).map_err(|e| self.io(e))?;
        f.write_all(encode_state(state).as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| self.io(e))?;
        drop(f);
        fs::rename(&tmp, &self.path).map_err(|e| self.io(e))?;
        self.sync_dir()
    }

    fn clear(&self) -> Result<(), PrStoreError> {
        match fs::remove_file(&self.path) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PrState {
        let me = ItNexusIdentity {
            initiator: TransportId::from_iscsi_port_name("iqn.x:a,i,0x000000000001"),
            relative_port: 1,
        };
        PrState {
            generation: 3,
            registrations: vec![
                Registration {
                    key: 0xabc,
                    initiator: me.initiator.clone(),
                    relative_port: 1,
                    all_tg_pt: false,
                },
                Registration {
                    key: 7,
                    initiator: TransportId::Fc([1, 2, 3, 4, 5, 6, 7, 8]),
                    relative_port: 2,
                    all_tg_pt: true,
                },
            ],
            reservation: Some(Reservation {
                pr_type: PrType::WRITE_EXCLUSIVE_RO,
                holder: me,
            }),
            aptpl: true,
        }
    }

    #[test]
    fn accepts_its_own_encoding() {
        let s = sample();
        let back = decode_state(&encode_state(&s)).unwrap();
        // PRgeneration restarts at zero at power on (SPC-4 §6.15.2).
        assert_eq!(back, PrState { generation: 0, ..s });
    }

    #[test]
    fn rejects_every_truncation_and_single_byte_change() {
        let text = encode_state(&sample());
        for cut in 0..text.len() {
            assert!(decode_state(&text[..cut]).is_err(), "cut at {cut}");
        }
        let bytes = text.as_bytes();
        for i in 0..bytes.len() {
            let mut b = bytes.to_vec();
            b[i] ^= 0x01;
            if let Ok(t) = String::from_utf8(b) {
                assert!(decode_state(&t).is_err(), "flip at {i}");
            }
        }
    }
}
