//! Device types: which device model serves a logical unit.
//!
//! A logical unit is a direct-access block device (SBC-4) unless its
//! [`LuConfig`](crate::engine::LuConfig) says otherwise. Each model is one
//! row of a table of facts (peripheral device type, VPD and mode pages,
//! version descriptors); the command table's
//! [`devices`](crate::table::CommandDesc::devices) column says which
//! commands each model implements.

/// The device model of a logical unit (SPC-4 §6.6.2, PERIPHERAL DEVICE
/// TYPE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum DeviceType {
    /// A direct-access block device (SBC-4), peripheral device type 00h.
    #[default]
    Disk = 0,
    /// A CD/DVD device (MMC-6), peripheral device type 05h: a read-only,
    /// removable medium of 2048-byte blocks, such as an ISO 9660 image,
    /// served as one complete data track in one session.
    Cdrom = 1,
    /// A sequential-access (tape) device (SSC-3), peripheral device type
    /// 01h: one partition of variable or fixed-length logical blocks and
    /// filemarks, kept in a tape image (see [`crate::ssc`]).
    Tape = 2,
}

/// The facts of one device model.
#[derive(Debug)]
pub(crate) struct Model {
    /// PERIPHERAL DEVICE TYPE.
    pub peripheral: u8,
    /// The VPD pages INQUIRY returns, ascending (SPC-4 §7.8.13).
    pub vpd_pages: &'static [u8],
    /// The mode pages MODE SENSE returns, ascending.
    pub mode_pages: &'static [u8],
    /// INQUIRY version descriptors (SPC-4 table 143).
    pub versions: &'static [u16],
    /// The logical unit is a copy manager (INQUIRY 3PC, EXTENDED COPY).
    pub copy_manager: bool,
    /// The medium is always removable (INQUIRY RMB).
    pub removable: bool,
    /// The medium is always read-only.
    pub read_only: bool,
    /// The one logical block size the model allows, if it has one.
    pub block_size: Option<u32>,
}

/// Version descriptors: SAM-5, SPC-4, SBC-3.
const DISK_VERSIONS: &[u16] = &[0x00a0, 0x0460, 0x04c0];
/// Version descriptors: SAM-5, SPC-4 (no MMC version is claimed).
const CDROM_VERSIONS: &[u16] = &[0x00a0, 0x0460];

/// Version descriptors: SAM-5, SPC-4 (no SSC version is claimed).
const TAPE_VERSIONS: &[u16] = &[0x00a0, 0x0460];

/// One row per [`DeviceType`], in its order.
static MODELS: [Model; 3] = [
    Model {
        peripheral: 0x00,
        vpd_pages: &[0x00, 0x80, 0x83, 0x86, 0x8f, 0xb0, 0xb1, 0xb2],
        mode_pages: &[0x01, 0x08, 0x0a, 0x1c],
        versions: DISK_VERSIONS,
        copy_manager: true,
        removable: false,
        read_only: false,
        block_size: None,
    },
    Model {
        peripheral: 0x05,
        vpd_pages: &[0x00, 0x80, 0x83],
        mode_pages: &[0x01, 0x0a, 0x2a],
        versions: CDROM_VERSIONS,
        copy_manager: false,
        removable: true,
        read_only: true,
        block_size: Some(2048),
    },
    Model {
        peripheral: 0x01,
        vpd_pages: &[0x00, 0x80, 0x83],
        mode_pages: &[0x0a, 0x0f, 0x10],
        versions: TAPE_VERSIONS,
        copy_manager: false,
        removable: true,
        read_only: false,
        block_size: None,
    },
];

impl DeviceType {
    /// Every device model.
    pub const ALL: [DeviceType; 3] = [DeviceType::Disk, DeviceType::Cdrom, DeviceType::Tape];

    /// The PERIPHERAL DEVICE TYPE INQUIRY reports.
    #[must_use]
    pub fn peripheral_type(self) -> u8 {
        self.model().peripheral
    }

    pub(crate) fn model(self) -> &'static Model {
        &MODELS[self as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_are_in_enum_order() {
        assert_eq!(DeviceType::Disk.peripheral_type(), 0x00);
        assert_eq!(DeviceType::Cdrom.peripheral_type(), 0x05);
        assert_eq!(DeviceType::Tape.peripheral_type(), 0x01);
        for m in &MODELS {
            assert!(m.vpd_pages.windows(2).all(|w| w[0] < w[1]));
            assert!(m.mode_pages.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
