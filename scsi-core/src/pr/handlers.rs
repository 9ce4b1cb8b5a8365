//! PERSISTENT RESERVE IN (SPC-4 §6.15) and OUT (SPC-4 §6.16).

use std::collections::HashSet;

use crate::cdb::{be32, be64};
use crate::engine::exec::{Ctx, Xfer};
use crate::engine::NexusId;
use crate::pr::state::{sa, ItNexusIdentity, PrState, PrType, ProutRequest, Refusal};
use crate::pr::transport_id::TransportId;
use crate::sense::{Asc, Sense, SenseKey};

/// Largest PERSISTENT RESERVE OUT parameter list we read: the basic 24
/// bytes plus room for 64 of the longest TransportIDs.
const MAX_PARAM_LEN: usize = 28 + 64 * crate::pr::MAX_TRANSPORT_ID_LEN;

fn length_error() -> Refusal {
    Refusal::Check(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR))
}

fn param_field(byte: usize, bit: Option<u8>) -> Refusal {
    Refusal::Check(Sense::invalid_param_field(
        u16::try_from(byte).unwrap_or(u16::MAX),
        bit,
    ))
}

/// The identity of the nexus running the command.
pub(crate) fn me(ctx: &Ctx<'_>) -> ItNexusIdentity {
    ctx.target.nexus_info(ctx.nexus).map_or_else(
        || ItNexusIdentity {
            initiator: TransportId::Other(Vec::new()),
            relative_port: 0,
        },
        |info| crate::pr::identity_of(&info),
    )
}

/// Parse TransportIDs filling `b` exactly; `base` is the offset of `b` in
/// the parameter list (for field pointers).
fn transport_ids(b: &[u8], base: usize) -> Result<Vec<TransportId>, Refusal> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < b.len() {
        let (id, len) = TransportId::parse(&b[at..]).map_err(|e| match e {
            crate::pr::TransportIdError::Truncated => length_error(),
            crate::pr::TransportIdError::InvalidField { offset } => {
                param_field(base + at + offset, None)
            }
        })?;
        out.push(id);
        at += len;
    }
    Ok(out)
}

/// Decode the parameter list of PERSISTENT RESERVE OUT (SPC-4 §6.16.3,
/// §6.16.4).
fn parse_request(
    service_action: u8,
    scope: u8,
    pr_type: u8,
    p: &[u8],
) -> Result<ProutRequest, Refusal> {
    let mut req = ProutRequest {
        service_action,
        scope,
        pr_type: PrType(pr_type),
        ..ProutRequest::default()
    };
    if p.len() < 24 {
        return Err(length_error());
    }
    req.key = be64(p, 0);
    req.sa_key = be64(p, 8);
    if service_action == sa::REGISTER_AND_MOVE {
        req.unreg = p[17] & 0x02 != 0;
        req.aptpl = p[17] & 0x01 != 0;
        req.move_relative_port = u16::from_be_bytes([p[18], p[19]]);
        let tid_len = be32(p, 20) as usize;
        if 24usize.checked_add(tid_len) != Some(p.len()) {
            return Err(length_error());
        }
        let ids = transport_ids(&p[24..], 24)?;
        if ids.len() != 1 {
            return Err(param_field(20, None));
        }
        req.transport_ids = ids;
        return Ok(req);
    }
    req.spec_i_pt = p[20] & 0x08 != 0;
    req.all_tg_pt = p[20] & 0x04 != 0;
    req.aptpl = p[20] & 0x01 != 0;
    if req.spec_i_pt {
        if service_action != sa::REGISTER {
            return Err(param_field(20, Some(3)));
        }
        if p.len() < 28 {
            return Err(length_error());
        }
        let tid_len = be32(p, 24) as usize;
        if 28usize.checked_add(tid_len) != Some(p.len()) {
            return Err(length_error());
        }
        req.transport_ids = transport_ids(&p[28..], 28)?;
    } else if p.len() != 24 {
        return Err(length_error());
    }
    // ALL_TG_PT is ignored by every service action but the register ones
    // (SPC-4 §6.16.3).
    req.all_tg_pt &= matches!(service_action, sa::REGISTER | sa::REGISTER_AND_IGNORE);
    Ok(req)
}

/// PERSISTENT RESERVE OUT.
pub(crate) async fn prout(
    ctx: &Ctx<'_>,
    service_action: u8,
    scope: u8,
    pr_type: u8,
    param_len: u32,
) -> Result<Xfer, Refusal> {
    let len = param_len as usize;
    if len > MAX_PARAM_LEN {
        return Err(length_error());
    }
    let p = ctx.data_out(len).ok_or_else(length_error)?;
    let req = parse_request(service_action, scope, pr_type, &p)?;
    let me = me(ctx);
    let lu = ctx.lu;

    // One PERSISTENT RESERVE OUT at a time per logical unit, so what is
    // persisted is what is applied, in order.
    let _gate = lu.pr_gate.lock().await;
    let old = lu.state().pr.clone();
    let (new, fx) = old.prout(&me, &req, lu.pr_store.is_some())?;
    if let Some(store) = &lu.pr_store {
        let result = if new.aptpl {
            (new != old).then(|| store.save(&new))
        } else if old.aptpl {
            Some(store.clear())
        } else {
            None
        };
        if let Some(Err(err)) = result {
            tracing::error!(%err, "persistent reservation state not saved");
            return Err(Refusal::Check(Sense::new(
                SenseKey::HARDWARE_ERROR,
                Asc::INTERNAL_TARGET_FAILURE,
            )));
        }
    }

    let nexuses = ctx.target.nexus_identities();
    let mut aborted: HashSet<NexusId> = HashSet::new();
    if !fx.abort.is_empty() {
        for (n, id) in &nexuses {
            if *n != ctx.nexus && fx.abort.iter().any(|r| r.names(id)) {
                aborted.insert(*n);
            }
        }
    }
    {
        let mut state = lu.state();
        state.set_pr(new);
        for ua in &fx.ua {
            for (n, id) in &nexuses {
                if *n != ctx.nexus && ua.to.iter().any(|r| r.names(id)) {
                    state.ua_of(*n).push(ua.asc);
                }
            }
        }
    }
    if !aborted.is_empty() {
        // PREEMPT AND ABORT (SPC-4 §5.13.11.4.4): the preempted nexuses'
        // tasks end as SAM-5 §5.6 says for tasks aborted by another nexus.
        lu.abort_for_other(ctx.nexus, |n| aborted.contains(&n));
    }
    Ok(Xfer { len, wanted: len })
}

fn header(generation: u32, additional: usize) -> Vec<u8> {
    let mut d = Vec::with_capacity(8 + additional);
    d.extend_from_slice(&generation.to_be_bytes());
    d.extend_from_slice(&u32::try_from(additional).unwrap_or(u32::MAX).to_be_bytes());
    d
}

/// PERSISTENT RESERVE IN.
pub(crate) fn prin(ctx: &Ctx<'_>, service_action: u8, alloc_len: u16) -> Result<Xfer, Refusal> {
    let (pr, aptpl_capable): (PrState, bool) =
        (ctx.lu.state().pr.clone(), ctx.lu.pr_store.is_some());
    let data = match u16::from(service_action) {
        0x00 => {
            // READ KEYS (SPC-4 §6.15.2).
            let mut d = header(pr.generation, 8 * pr.registrations.len());
            for r in &pr.registrations {
                d.extend_from_slice(&r.key.to_be_bytes());
            }
            d
        }
        0x01 => {
            // READ RESERVATION (SPC-4 §6.15.3).
            match &pr.reservation {
                None => header(pr.generation, 0),
                Some(r) => {
                    let mut d = header(pr.generation, 16);
                    d.extend_from_slice(&pr.reservation_key().to_be_bytes());
                    d.extend_from_slice(&[0; 5]);
                    d.push(r.pr_type.0 & 0x0f); // SCOPE 0h: logical unit
                    d.extend_from_slice(&[0; 2]);
                    d
                }
            }
        }
        0x02 => {
            // REPORT CAPABILITIES (SPC-4 §6.15.4).
            let mut d = vec![0u8; 8];
            d[1] = 8;
            // RLR_C, CRH, SIP_C, ATP_C, PTPL_C.
            d[2] = 0x80 | 0x10 | 0x08 | 0x04 | u8::from(aptpl_capable);
            // TMV, ALLOW COMMANDS 011b (table 47 as implemented), PTPL_A.
            d[3] = 0x80 | (0x3 << 4) | u8::from(pr.aptpl);
            // Type mask: WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX; EX_AC_AR.
            d[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02;
            d[5] = 0x01;
            d
        }
        0x03 => {
            // READ FULL STATUS (SPC-4 §6.15.5).
            let mut body = Vec::new();
            for r in &pr.registrations {
                let holder = match &pr.reservation {
                    Some(res) if res.pr_type.all_registrants() => true,
                    Some(res) => r.names(&res.holder),
                    None => false,
                };
                let tid = r.initiator.encode();
                body.extend_from_slice(&r.key.to_be_bytes());
                body.extend_from_slice(&[0; 4]);
                body.push(u8::from(r.all_tg_pt) << 1 | u8::from(holder));
                body.push(if holder {
                    pr.reservation
                        .as_ref()
                        .map_or(0, |res| res.pr_type.0 & 0x0f)
                } else {
                    0
                });
                body.extend_from_slice(&[0; 4]);
                body.extend_from_slice(&r.relative_port.to_be_bytes());
                body.extend_from_slice(&u32::try_from(tid.len()).unwrap_or(0).to_be_bytes());
                body.extend_from_slice(&tid);
            }
            let mut d = header(pr.generation, body.len());
            d.extend_from_slice(&body);
            d
        }
        _ => return Err(Refusal::Check(Sense::invalid_cdb_field(1, Some(4)))),
    };
    Ok(ctx.data_in(&data, usize::from(alloc_len)))
}
