//! I_T nexus identities (SAM-5 §4.6).

use std::fmt;

/// A handle naming an I_T nexus registered with a [`Target`](super::Target).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NexusId(pub(crate) u64);

impl NexusId {
    /// The raw handle value (unique for the life of the target).
    #[must_use]
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for NexusId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NexusId({})", self.0)
    }
}

/// Who is at each end of an I_T nexus.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct NexusInfo {
    /// SCSI initiator port name (iSCSI: `<initiator name>,i,0x<ISID>`).
    pub initiator_port: String,
    /// SCSI target port name (iSCSI: `<target name>,t,0x<TPGT>`).
    pub target_port: String,
    /// Relative target port identifier (1-based).
    pub relative_port: u16,
    /// The initiator port's TransportID (SPC-4 §7.6.4), used to key
    /// persistent-reservation registrations.
    pub transport_id: Vec<u8>,
}
