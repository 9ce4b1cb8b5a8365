//! SPC-2 RESERVE (6)/(10) and RELEASE (6)/(10) (SPC-2 §5.5.1, §7.17-7.22),
//! and their interplay with persistent reservations (SPC-4 §5.13.3, which
//! this device server follows: REPORT CAPABILITIES says CRH=1).
//!
//! A RESERVE reserves the whole logical unit for the I_T nexus; it ends
//! with RELEASE from that nexus, the loss of that nexus, an I_T NEXUS
//! RESET, a LOGICAL UNIT RESET or a target reset. Third-party reservations
//! and extents are not supported and are refused as invalid fields.
//!
//! While a persistent reservation exists, RESERVE from its holder completes
//! with GOOD and does nothing, and from anyone else is a RESERVATION
//! CONFLICT; RELEASE from a registered I_T nexus completes with GOOD and
//! does nothing, and from anyone else is a RESERVATION CONFLICT.

use crate::engine::exec::{Ctx, Xfer};
use crate::pr::Refusal;
use crate::sense::Sense;

fn check_fields(third_party: bool, long_id: bool, third_party_id: u8) -> Result<(), Refusal> {
    if third_party {
        return Err(Refusal::Check(Sense::invalid_cdb_field(1, Some(4))));
    }
    if long_id {
        return Err(Refusal::Check(Sense::invalid_cdb_field(1, Some(1))));
    }
    if third_party_id != 0 {
        return Err(Refusal::Check(Sense::invalid_cdb_field(3, None)));
    }
    Ok(())
}

/// RESERVE (6)/(10).
pub(crate) fn reserve(
    ctx: &Ctx<'_>,
    third_party: bool,
    long_id: bool,
    third_party_id: u8,
) -> Result<Xfer, Refusal> {
    check_fields(third_party, long_id, third_party_id)?;
    let me = crate::pr::handlers::me(ctx);
    let mut state = ctx.lu.state();
    if state.pr.reservation.is_some() {
        return if state.pr.is_holder(&me) {
            Ok(Xfer::NONE)
        } else {
            Err(Refusal::Conflict)
        };
    }
    match state.spc2 {
        Some(n) if n != ctx.nexus => Err(Refusal::Conflict),
        _ => {
            state.spc2 = Some(ctx.nexus);
            Ok(Xfer::NONE)
        }
    }
}

/// RELEASE (6)/(10).
pub(crate) fn release(
    ctx: &Ctx<'_>,
    third_party: bool,
    long_id: bool,
    third_party_id: u8,
) -> Result<Xfer, Refusal> {
    check_fields(third_party, long_id, third_party_id)?;
    let me = crate::pr::handlers::me(ctx);
    let mut state = ctx.lu.state();
    if state.pr.reservation.is_some() {
        return if state.pr.registration_of(&me).is_some() {
            Ok(Xfer::NONE)
        } else {
            Err(Refusal::Conflict)
        };
    }
    // SPC-2 §7.17: RELEASE from a nexus that holds no reservation is not
    // an error and changes nothing.
    if state.spc2 == Some(ctx.nexus) {
        state.spc2 = None;
    }
    Ok(Xfer::NONE)
}
