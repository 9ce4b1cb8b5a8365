//! The SCSI pass-through behind blkif's extra request.
//!
//! The backend processor hands a validated extra request's CDB and data
//! buffer to a [`ScsiPassThrough`]; [`crate::engine`] implements it over a
//! `tgtkit-scsi-core` engine logical unit.

use futures::future::BoxFuture;
use tgtkit_scsi_core::buffer::DataBuffer;

/// Direction of the data of a pass-through command, as the frontend set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDirection {
    /// No data.
    None,
    /// Data-out: the guest's pages are written to the device.
    ToDevice,
    /// Data-in: the device's answer is written into the guest's pages.
    FromDevice,
}

/// The outcome of a pass-through command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PassThroughResult {
    /// The SCSI status byte.
    pub status: u8,
    /// Sense data (copied to the frontend's sense page, at most 252 bytes).
    pub sense: Vec<u8>,
    /// Expected minus transferred bytes.
    pub residual: u32,
}

/// Executes SCSI commands for blkif extra requests.
pub trait ScsiPassThrough: Send + Sync + 'static {
    /// Execute `cdb` with `data` (the guest's pages; its length is the
    /// expected transfer length).
    fn execute(
        &self,
        cdb: &[u8],
        data: DataBuffer,
        dir: DataDirection,
    ) -> BoxFuture<'static, PassThroughResult>;
}
