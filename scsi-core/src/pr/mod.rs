//! Persistent reservations (SPC-4 §5.13): registrations keyed by I_T
//! nexus identity, the six reservation types, PERSISTENT RESERVE IN and
//! OUT, TransportIDs, and persistence of the state for APTPL.
//!
//! * [`state`]: the state of one logical unit and the PERSISTENT RESERVE
//!   OUT state machine, as pure functions;
//! * [`transport_id`]: TransportID parsing, encoding and matching;
//! * [`store`]: the [`PrStore`] trait and the atomic [`FilePrStore`];
//! * the command handlers (internal), which parse parameter lists, apply
//!   the state machine under the logical unit's lock, persist, and raise
//!   the unit attentions and task aborts it asks for.
//!
//! Registrations are keyed by [`ItNexusIdentity`]: the initiator port's
//! TransportID (from [`NexusInfo::transport_id`], or derived from
//! [`NexusInfo::initiator_port`] when the transport gives none) and the
//! relative target port. A nexus that logs in again from the same initiator
//! port therefore keeps its registration.
//!
//! [`NexusInfo::transport_id`]: crate::engine::NexusInfo::transport_id
//! [`NexusInfo::initiator_port`]: crate::engine::NexusInfo::initiator_port

pub(crate) mod handlers;
pub mod state;
pub mod store;
pub mod transport_id;

pub use state::{
    Effects, ItNexusIdentity, PrState, PrType, ProutRequest, Refusal, Registration, Reservation,
    MAX_REGISTRATIONS,
};
pub use store::{FilePrStore, PrStore, PrStoreError};
pub use transport_id::{TransportId, TransportIdError, MAX_TRANSPORT_ID_LEN};

use crate::engine::NexusInfo;

/// The reservation identity of the nexus described by `info`: its
/// TransportID if the transport gave a valid one, else one derived from the
/// SCSI initiator port name (iSCSI form `<name>,i,0x<ISID>`).
#[must_use]
pub fn identity_of(info: &NexusInfo) -> ItNexusIdentity {
    let parsed = (!info.transport_id.is_empty())
        .then(|| TransportId::parse(&info.transport_id).ok())
        .flatten()
        .map(|(t, _)| t);
    ItNexusIdentity {
        initiator: parsed
            .unwrap_or_else(|| TransportId::from_iscsi_port_name(&info.initiator_port)),
        relative_port: info.relative_port,
    }
}
