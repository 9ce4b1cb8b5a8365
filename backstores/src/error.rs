//! Errors from building, opening and resizing backstores.
//!
//! I/O errors of the data path are [`IoError`](tgtkit_scsi_core::backstore::IoError)
//! values, mapped to sense data by the engine; the errors here are the
//! caller's: a bad configuration, a file that cannot be opened.

use std::io;
use std::path::PathBuf;

/// A backstore could not be built, opened or resized.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The logical block size is not a power of two between 512 and 65536.
    #[error("logical block size {0} is not a power of two in 512..=65536")]
    LogicalBlockSize(u32),
    /// The physical block size is not a power-of-two multiple of the
    /// logical block size (or larger than 1 MiB).
    #[error("physical block size {physical} is not a power-of-two multiple of the logical block size {logical}")]
    PhysicalBlockSize {
        /// The physical block size asked for.
        physical: u32,
        /// The logical block size.
        logical: u32,
    },
    /// The size is not a multiple of the logical block size.
    #[error("size {size} is not a multiple of the logical block size {block}")]
    Size {
        /// The size asked for.
        size: u64,
        /// The logical block size.
        block: u32,
    },
    /// The ram chunk size is not a power of two between the logical block
    /// size and 16 MiB.
    #[error("chunk size {0} is not a power of two between the logical block size and 16 MiB")]
    ChunkSize(usize),
    /// The operation needs a regular file (resizing a block device, say).
    #[error("{0} is not a regular file")]
    NotRegularFile(PathBuf),
    /// The path is neither a regular file nor a block device.
    #[error("{0} is neither a regular file nor a block device")]
    UnsupportedFileType(PathBuf),
    /// The backstore is read-only.
    #[error("the backstore is read-only")]
    ReadOnly,
    /// A system call failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Check a logical/physical block size pair and a size against it.
pub(crate) fn check_geometry(size: u64, logical: u32, physical: u32) -> Result<(), ConfigError> {
    if !logical.is_power_of_two() || !(512..=65536).contains(&logical) {
        return Err(ConfigError::LogicalBlockSize(logical));
    }
    if !physical.is_power_of_two() || physical < logical || physical > (1 << 20) {
        return Err(ConfigError::PhysicalBlockSize { physical, logical });
    }
    if size % u64::from(logical) != 0 {
        return Err(ConfigError::Size {
            size,
            block: logical,
        });
    }
    Ok(())
}

/// Check that `[offset, offset + len)` lies inside a medium of `size` bytes.
pub(crate) fn check_range(
    offset: u64,
    len: u64,
    size: u64,
) -> Result<(), tgtkit_scsi_core::backstore::IoError> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(tgtkit_scsi_core::backstore::IoError::OutOfRange),
    }
}
