//! The extra request's SCSI pass-through over the `tgtkit-scsi-core` engine.
//!
//! Each blkif device that negotiated `feature-extra-request` gets one I_T
//! nexus on a [`Target`] and addresses one logical unit; every extra
//! request becomes one engine [`Command`] whose data buffer is the guest's
//! granted pages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};
use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::engine::{Command, NexusId, RawCdb, Residual, Target, TaskAttribute};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_scsi_core::status::Status;

use crate::passthrough::{DataDirection, PassThroughResult, ScsiPassThrough};

/// A [`ScsiPassThrough`] that runs commands on one engine logical unit.
#[derive(Debug)]
pub struct EnginePassThrough {
    target: Arc<Target>,
    nexus: NexusId,
    lun: Lun,
    next_tag: AtomicU64,
}

impl EnginePassThrough {
    /// Commands go to `lun` of `target` on `nexus` (the device's own nexus).
    #[must_use]
    pub fn new(target: Arc<Target>, nexus: NexusId, lun: Lun) -> Self {
        Self {
            target,
            nexus,
            lun,
            next_tag: AtomicU64::new(1),
        }
    }
}

impl ScsiPassThrough for EnginePassThrough {
    fn execute(
        &self,
        cdb: &[u8],
        data: DataBuffer,
        _dir: DataDirection,
    ) -> BoxFuture<'static, PassThroughResult> {
        let Ok(cdb) = RawCdb::new(cdb) else {
            // The backend already bounds cmd_len to 1..=32.
            return futures::future::ready(PassThroughResult {
                status: Status::CHECK_CONDITION.0,
                ..PassThroughResult::default()
            })
            .boxed();
        };
        let cmd = Command {
            nexus: self.nexus,
            lun: self.lun,
            tag: self.next_tag.fetch_add(1, Ordering::Relaxed),
            attribute: TaskAttribute::Simple,
            cdb,
            data,
        };
        let target = Arc::clone(&self.target);
        async move {
            let resp = target.execute(cmd).await;
            let status = if resp.aborted {
                Status::TASK_ABORTED
            } else {
                resp.status
            };
            PassThroughResult {
                status: status.0,
                sense: resp.sense_bytes().to_vec(),
                residual: match resp.residual {
                    Residual::Under(n) => n,
                    _ => 0,
                },
            }
        }
        .boxed()
    }
}
