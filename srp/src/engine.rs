//! SRP to the engine: a [`Session`]'s commands and task management run on
//! an engine [`Target`] through one I_T nexus, their data through a
//! [`MemoryResolver`].
//!
//! [`EngineTarget::handle`] takes one IU from the initiator, runs what it
//! asks to completion (one command at a time: a transport that wants
//! commands in parallel drives [`Session`] and [`Target::execute`]
//! itself) and leaves the answers in the session's transmit queue.
//! [`LocalMemory`] is a resolver over memory in this process, for loops
//! and tests: descriptor addresses are offsets into it.

use std::sync::{Arc, Mutex, PoisonError};

use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::engine::{
    Command as EngineCommand, NexusId, RawCdb, Residual as EngineResidual, Target, TaskAttribute,
    TmfResponse,
};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_scsi_core::sense::{Asc, Sense, SenseFormat, SenseKey};

use crate::cmd::{Command, TaskAttr};
use crate::desc::{DataDesc, DirectBuf, DIRECT_LEN};
use crate::rsp::Residual;
use crate::session::{Event, MemoryResolver, Session, SessionError};

/// SCSI status CHECK CONDITION.
const CHECK_CONDITION: u8 = 0x02;
/// Largest CDB the engine takes.
const MAX_CDB: usize = 32;

/// A command's status, sense data and data-out/data-in residuals.
type Outcome = (u8, Option<Vec<u8>>, Residual, Residual);

/// CHECK CONDITION with `key`/`asc` and nothing transferred.
fn check_condition(key: SenseKey, asc: Asc) -> Outcome {
    (
        CHECK_CONDITION,
        Some(sense_bytes(key, asc)),
        Residual::None,
        Residual::None,
    )
}

/// A session's I_T nexus on an engine target, and how its descriptors
/// become memory.
#[derive(Debug)]
pub struct EngineTarget<R> {
    target: Arc<Target>,
    nexus: NexusId,
    resolver: R,
}

fn sense_bytes(key: SenseKey, asc: Asc) -> Vec<u8> {
    let sense = Sense::new(key, asc);
    let mut buf = vec![0u8; sense.encoded_len(SenseFormat::Fixed)];
    let n = sense.encode(SenseFormat::Fixed, &mut buf);
    buf.truncate(n);
    buf
}

fn residual(r: EngineResidual) -> Residual {
    match r {
        EngineResidual::None => Residual::None,
        EngineResidual::Under(n) => Residual::Under(n),
        EngineResidual::Over(n) => Residual::Over(n),
    }
}

impl<R: MemoryResolver> EngineTarget<R> {
    /// Commands of the session run on `target` as nexus `nexus`.
    pub fn new(target: Arc<Target>, nexus: NexusId, resolver: R) -> Self {
        Self {
            target,
            nexus,
            resolver,
        }
    }

    /// The resolver.
    pub fn resolver(&self) -> &R {
        &self.resolver
    }

    /// Take IU `iu` from the initiator and run what it asks; the answers
    /// wait in `session`'s transmit queue. Returns the events the embedder
    /// still has to see (login, logout).
    ///
    /// # Errors
    ///
    /// [`SessionError`] for an IU the session refuses.
    pub async fn handle(
        &self,
        session: &mut Session,
        iu: &[u8],
    ) -> Result<Vec<Event>, SessionError> {
        session.handle_iu(iu)?;
        let mut rest = Vec::new();
        while let Some(ev) = session.poll_event() {
            match ev {
                Event::Command(cmd) => {
                    let (status, sense, out, inn) = self.run(&cmd, iu).await;
                    session.respond(cmd.tag, status, sense.as_deref(), out, inn)?;
                }
                Event::TaskManagement {
                    tag,
                    lun,
                    function,
                    task_tag,
                } => {
                    let r = match function.to_engine(task_tag) {
                        Some(f) => self.target.task_management(self.nexus, Lun(lun), f).await,
                        None => TmfResponse::NotSupported,
                    };
                    session.respond_tmf(tag, r)?;
                }
                other => rest.push(other),
            }
        }
        Ok(rest)
    }

    async fn run(&self, cmd: &Command, iu: &[u8]) -> Outcome {
        let illegal = |asc| check_condition(SenseKey::ILLEGAL_REQUEST, asc);
        // Memory the resolver could not map or deliver to.
        let unreachable = || check_condition(SenseKey::ABORTED_COMMAND, Asc::INVALID_FIELD_IN_CDB);
        let attribute = match cmd.task_attr {
            TaskAttr::Simple => TaskAttribute::Simple,
            TaskAttr::HeadOfQueue => TaskAttribute::HeadOfQueue,
            TaskAttr::Ordered => TaskAttribute::Ordered,
            TaskAttr::Aca => TaskAttribute::Aca,
            TaskAttr::Reserved(_) => return illegal(Asc::INVALID_FIELD_IN_CDB),
        };
        let Ok(cdb) = RawCdb::new(&cmd.cdb[..cmd.cdb.len().min(MAX_CDB)]) else {
            return illegal(Asc::INVALID_FIELD_IN_CDB);
        };
        // The engine moves data one way per command.
        let (desc, to_device) = match (&cmd.data_out, &cmd.data_in) {
            (DataDesc::None, d) => (d, false),
            (d, DataDesc::None) => (d, true),
            _ => return illegal(Asc::INVALID_FIELD_IN_CDB),
        };
        let data = match desc {
            DataDesc::None => DataBuffer::empty(),
            d => match self.resolver.resolve(d, iu, to_device) {
                Ok(b) => b,
                Err(_) => return unreachable(),
            },
        };
        let resp = self
            .target
            .execute(EngineCommand {
                nexus: self.nexus,
                lun: Lun(cmd.lun),
                tag: u64::from_be_bytes(cmd.tag),
                attribute,
                cdb,
                data: data.clone(),
            })
            .await;
        if !to_device
            && resp.data_len > 0
            && self.resolver.deliver(desc, &data, resp.data_len).is_err()
        {
            return unreachable();
        }
        let sense = resp.sense.map(|s| s.as_bytes().to_vec());
        let r = residual(resp.residual);
        if to_device {
            (resp.status.0, sense, r, Residual::None)
        } else {
            (resp.status.0, sense, Residual::None, r)
        }
    }
}

/// A [`MemoryResolver`] over a byte arena in this process: a descriptor's
/// address is an offset into it, its key must be [`LocalMemory::KEY`].
/// Indirect tables are read from the arena in full; immediate data is
/// refused (the session does not offer it).
#[derive(Debug)]
pub struct LocalMemory {
    arena: Mutex<Vec<u8>>,
}

/// Why [`LocalMemory`] refused a descriptor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LocalMemoryError {
    /// A region outside the arena, or a key other than [`LocalMemory::KEY`].
    #[error("descriptor {0:?} is not in this memory")]
    OutOfRange(DirectBuf),
    /// Immediate data (not offered by the session).
    #[error("immediate data is not supported")]
    Immediate,
}

impl LocalMemory {
    /// The one key regions carry.
    pub const KEY: u32 = 0x5250_4d31;

    /// An arena of `len` zero bytes.
    #[must_use]
    pub fn new(len: usize) -> Self {
        Self {
            arena: Mutex::new(vec![0; len]),
        }
    }

    /// Copy `data` into the arena at `offset`.
    ///
    /// # Panics
    ///
    /// If it does not fit.
    pub fn write(&self, offset: usize, data: &[u8]) {
        self.lock()[offset..offset + data.len()].copy_from_slice(data);
    }

    /// `len` bytes of the arena at `offset`.
    ///
    /// # Panics
    ///
    /// If they are not in it.
    #[must_use]
    pub fn read(&self, offset: usize, len: usize) -> Vec<u8> {
        self.lock()[offset..offset + len].to_vec()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.arena.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The regions `desc` names, each checked against the arena.
    fn regions(&self, desc: &DataDesc) -> Result<Vec<(usize, usize)>, LocalMemoryError> {
        let arena_len = self.lock().len();
        let check = |d: &DirectBuf| -> Result<(usize, usize), LocalMemoryError> {
            let start =
                usize::try_from(d.va.get()).map_err(|_| LocalMemoryError::OutOfRange(*d))?;
            let len = d.len.get() as usize;
            if d.key.get() != Self::KEY || start.checked_add(len).is_none_or(|e| e > arena_len) {
                return Err(LocalMemoryError::OutOfRange(*d));
            }
            Ok((start, len))
        };
        match desc {
            DataDesc::None => Ok(Vec::new()),
            DataDesc::Direct(d) => Ok(vec![check(d)?]),
            DataDesc::Indirect { table, list, .. } => {
                // The whole table, from memory (the IU may list only a part).
                let (start, len) = check(table)?;
                let bytes = self.read(start, len);
                let mut out = Vec::with_capacity(len / DIRECT_LEN);
                for (i, chunk) in bytes.chunks_exact(DIRECT_LEN).enumerate() {
                    let d = list.get(i).copied().unwrap_or_else(|| {
                        let (d, _) = <DirectBuf as zerocopy::FromBytes>::read_from_prefix(chunk)
                            .expect("16-byte chunk");
                        d
                    });
                    out.push(check(&d)?);
                }
                Ok(out)
            }
            DataDesc::Immediate { .. } => Err(LocalMemoryError::Immediate),
        }
    }
}

impl MemoryResolver for LocalMemory {
    type Error = LocalMemoryError;

    fn resolve(
        &self,
        desc: &DataDesc,
        _iu: &[u8],
        to_device: bool,
    ) -> Result<DataBuffer, Self::Error> {
        let regions = self.regions(desc)?;
        let total: usize = regions.iter().map(|r| r.1).sum();
        let mut v = Vec::with_capacity(total);
        if to_device {
            let arena = self.lock();
            for (start, len) in regions {
                v.extend_from_slice(&arena[start..start + len]);
            }
        } else {
            v.resize(total, 0);
        }
        Ok(DataBuffer::from_vec(v))
    }

    fn deliver(&self, desc: &DataDesc, buf: &DataBuffer, len: usize) -> Result<(), Self::Error> {
        let bytes = buf.to_vec();
        let mut left = &bytes[..len.min(bytes.len())];
        let regions = self.regions(desc)?;
        let mut arena = self.lock();
        for (start, rlen) in regions {
            let n = rlen.min(left.len());
            arena[start..start + n].copy_from_slice(&left[..n]);
            left = &left[n..];
        }
        Ok(())
    }
}
