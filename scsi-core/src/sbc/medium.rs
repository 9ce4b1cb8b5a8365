//! Removable media (SBC-4 §4.2.2): START STOP UNIT with LOEJ ejects and
//! loads the medium, PREVENT ALLOW MEDIUM REMOVAL (SPC-4 §6.13) locks it in.
//!
//! Prevention is kept per I_T nexus: the medium cannot move while any
//! nexus prevents it. An I_T nexus loss ends that nexus's prevention; a
//! logical unit reset or a target reset ends every nexus's (SPC-4 §6.13).
//! While the medium is out, every command the table marks as a medium
//! access ([`Handler::needs_medium`]) answers NOT READY, MEDIUM NOT
//! PRESENT.
//!
//! [`Handler::needs_medium`]: crate::table::Handler

use std::collections::HashSet;

use crate::engine::exec::{Ctx, Outcome, Xfer};
use crate::engine::NexusId;
use crate::sense::{Asc, Sense, SenseKey};

/// The removable medium of a logical unit.
#[derive(Debug, Default)]
pub(crate) struct Medium {
    /// The medium is out.
    pub ejected: bool,
    /// The nexuses preventing its removal.
    pub prevent: HashSet<NexusId>,
    /// The media event not yet reported by GET EVENT STATUS NOTIFICATION
    /// (MMC-6 §6.7.2.5: 0 none, 2 new media, 3 media removal).
    pub event: u8,
}

/// NOT READY, MEDIUM NOT PRESENT.
pub(crate) fn not_present() -> Sense {
    Sense::new(SenseKey::NOT_READY, Asc::MEDIUM_NOT_PRESENT)
}

/// PREVENT ALLOW MEDIUM REMOVAL (SPC-4 §6.13): PREVENT 00b allows, 01b
/// prevents; 10b and 11b (medium changers) are invalid here.
pub(crate) fn prevent_allow(ctx: &Ctx<'_>, prevent: u8) -> Outcome {
    if prevent > 1 {
        return Err(Sense::invalid_cdb_field(4, Some(1)));
    }
    if !ctx.lu.removable {
        // Nothing to lock in: allowing is a no-op, preventing is refused.
        if prevent == 1 {
            return Err(Sense::invalid_cdb_field(4, Some(0)));
        }
        return Ok(Xfer::NONE);
    }
    let mut state = ctx.lu.state();
    if prevent == 1 {
        state.medium.prevent.insert(ctx.nexus);
    } else {
        state.medium.prevent.remove(&ctx.nexus);
    }
    Ok(Xfer::NONE)
}

/// START STOP UNIT with LOEJ set and POWER CONDITION 0h: eject (`start`
/// clear) or load (`start` set) the medium. Either is refused with
/// MEDIUM REMOVAL PREVENTED while a nexus prevents removal (libiscsi's
/// PreventAllow.Eject checks both). The nexuses other than the one that
/// loaded the medium learn of it by NOT READY TO READY CHANGE.
pub(crate) async fn load_eject(ctx: &Ctx<'_>, start: bool) -> Outcome {
    {
        let state = ctx.lu.state();
        if !state.medium.prevent.is_empty() {
            return Err(Sense::illegal(Asc::MEDIUM_REMOVAL_PREVENTED));
        }
        if state.medium.ejected != start {
            // Already where it was asked to be.
            return Ok(Xfer::NONE);
        }
    }
    if !start {
        ctx.lu.backstore.flush().await.map_err(|e| e.sense())?;
    }
    let mut state = ctx.lu.state();
    if !state.medium.prevent.is_empty() {
        // Prevented while the cache was flushed.
        return Err(Sense::illegal(Asc::MEDIUM_REMOVAL_PREVENTED));
    }
    state.set_ejected(!start);
    if start {
        state.raise_all(Asc::NOT_READY_TO_READY_CHANGE, Some(ctx.nexus));
    }
    Ok(Xfer::NONE)
}
