//! ROD tokens: POPULATE TOKEN, WRITE USING TOKEN and RECEIVE ROD TOKEN
//! INFORMATION (SBC-4, SPC-4 §5.17.6), the offloaded copy Windows calls
//! ODX.
//!
//! POPULATE TOKEN names up to [`MAX_RANGES`] ranges of the addressed
//! logical unit and gets back (through RECEIVE ROD TOKEN INFORMATION) a
//! 512-byte token standing for their data; WRITE USING TOKEN, sent by any
//! I_T nexus to any logical unit of the same target, writes that data to
//! its own ranges. No data crosses the transport.
//!
//! The tokens are of ROD type *access upon reference* (00010000h): they
//! name the blocks, not a snapshot of them, so WRITE USING TOKEN copies
//! what the source holds when it runs (FreeBSD's CTL makes the same
//! choice). A token is 16 bytes of header, the creating unit's NAA
//! designator and the size it represents, then random bytes: it can be
//! neither guessed nor forged, and it is only ever looked up in the store
//! of the target that made it, so a token never reaches another target's
//! logical units. Tokens lapse after their inactivity timeout, at most
//! [`MAX_TOKENS`] live per target, and WRITE USING TOKEN with DEL_TKN
//! deletes its token once done. The well-known *block device zero* token
//! (FFFF0001h) writes zeroes.
//!
//! WRITE USING TOKEN honours reservations on the source as a read by its
//! own nexus, copies in bounded chunks and is abortable like EXTENDED
//! COPY. A copy within one unit whose source and destination overlap is
//! done front to back or back to front as the overlap needs when both are
//! a single range; with several ranges it is refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::engine::exec::{Ctx, Outcome, Xfer};
use crate::engine::lu::LogicalUnit;
use crate::sense::{Asc, Sense, SenseKey};
use crate::table;

use super::list::ListIdUsage;
use super::results::{CopyRecord, CopyState};
use super::{copy_span, sa, Span};

/// Length of a ROD token.
pub(crate) const TOKEN_LEN: usize = 512;
/// ROD TOKEN LENGTH: the bytes after the first eight.
const TOKEN_BODY_LEN: u16 = 0x01f8;
/// ROD type *access upon reference* (SPC-4 table 127).
pub(crate) const ROD_TYPE_ACCESS_UPON_REFERENCE: u32 = 0x0001_0000;
/// ROD type *block device zero* (SBC-4): a well-known token for zeroes.
pub(crate) const ROD_TYPE_BLOCK_ZERO: u32 = 0xffff_0001;
/// Most block device range descriptors in one command.
pub(crate) const MAX_RANGES: u16 = 64;
/// Most live tokens per target.
pub(crate) const MAX_TOKENS: usize = 256;
/// Inactivity timeout of a token when POPULATE TOKEN asks for none.
pub(crate) const DEFAULT_INACTIVITY_SECS: u32 = 60;
/// Longest inactivity timeout POPULATE TOKEN may ask for.
pub(crate) const MAX_INACTIVITY_SECS: u32 = 600;

/// POPULATE TOKEN parameter list header.
const PT_HEADER: usize = 16;
/// WRITE USING TOKEN parameter list header (with the token).
const WUT_HEADER: usize = 536;
/// Block device range descriptor.
const RANGE_LEN: usize = 16;
/// RECEIVE ROD TOKEN INFORMATION: TRANSFER COUNT UNITS in logical blocks.
const UNITS_BLOCKS: u8 = 0xf1;

/// Copy operation status (SPC-4, RECEIVE COPY STATUS(LID4)).
mod status {
    pub const COMPLETED: u8 = 0x01;
    pub const COMPLETED_WITH_ERRORS: u8 = 0x02;
    pub const PARTIAL_ROD_USE: u8 = 0x03;
    pub const RESIDUAL_DATA: u8 = 0x04;
    pub const IN_PROGRESS_FOREGROUND: u8 = 0x11;
    pub const TERMINATED: u8 = 0x60;
}

/// One block device range descriptor: `blocks` blocks at `lba`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub lba: u64,
    pub blocks: u32,
}

/// A live token and what it stands for.
#[derive(Debug)]
struct Rod {
    token: Box<[u8; TOKEN_LEN]>,
    source: Weak<LogicalUnit>,
    ranges: Arc<[Range]>,
    block_size: u32,
    timeout: Duration,
    last_use: Instant,
    /// WRITE USING TOKEN commands using it now: it does not lapse.
    in_use: u32,
    /// DEL_TKN: deleted when the last user is done.
    delete: bool,
}

impl Rod {
    fn lapsed(&self, now: Instant) -> bool {
        self.in_use == 0 && now.duration_since(self.last_use) > self.timeout
    }
}

/// The tokens of one target, by their copy manager ROD token identifier.
#[derive(Debug, Default)]
pub(crate) struct TokenStore(Mutex<Tokens>);

#[derive(Debug, Default)]
struct Tokens {
    next_id: u64,
    live: HashMap<u64, Rod>,
}

/// What a token names, held while WRITE USING TOKEN reads it.
struct Lease<'a> {
    store: &'a TokenStore,
    id: u64,
    source: Arc<LogicalUnit>,
    ranges: Arc<[Range]>,
    block_size: u32,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut tokens = self.store.lock();
        if let Some(rod) = tokens.live.get_mut(&self.id) {
            rod.in_use -= 1;
            rod.last_use = Instant::now();
            if rod.delete && rod.in_use == 0 {
                tokens.live.remove(&self.id);
            }
        }
    }
}

impl TokenStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tokens> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Make a token for `ranges` (`blocks` in all) of `source`.
    fn create(
        &self,
        source: &Arc<LogicalUnit>,
        ranges: Vec<Range>,
        blocks: u64,
        block_size: u32,
        timeout_secs: u32,
    ) -> Result<Box<[u8; TOKEN_LEN]>, Sense> {
        let mut tokens = self.lock();
        let now = Instant::now();
        tokens.live.retain(|_, rod| !rod.lapsed(now));
        if tokens.live.len() >= MAX_TOKENS {
            return Err(Sense::illegal(
                Asc::INSUFFICIENT_RESOURCES_TO_CREATE_ROD_TOKEN,
            ));
        }
        let id = tokens.next_id;
        tokens.next_id += 1;
        let token = token_bytes(id, source, blocks * u64::from(block_size), block_size)?;
        tokens.live.insert(
            id,
            Rod {
                token: token.clone(),
                source: Arc::downgrade(source),
                ranges: ranges.into(),
                block_size,
                timeout: Duration::from_secs(u64::from(timeout_secs)),
                last_use: now,
                in_use: 0,
                delete: false,
            },
        );
        Ok(token)
    }

    /// The token `token` names, kept from lapsing until the lease drops
    /// (and deleted then, with `delete`).
    fn lease(&self, token: &[u8; TOKEN_LEN], delete: bool) -> Result<Lease<'_>, Sense> {
        let invalid = Sense::illegal;
        if u16::from_be_bytes([token[6], token[7]]) != TOKEN_BODY_LEN {
            return Err(invalid(Asc::INVALID_TOKEN_LENGTH));
        }
        if be32(token, 0) != ROD_TYPE_ACCESS_UPON_REFERENCE {
            return Err(invalid(Asc::UNSUPPORTED_TOKEN_TYPE));
        }
        let id = be64(token, 8);
        let mut tokens = self.lock();
        let rod = match tokens.live.get_mut(&id) {
            Some(rod) if rod.token[..] == token[..] => rod,
            _ => return Err(invalid(Asc::TOKEN_UNKNOWN)),
        };
        if rod.lapsed(Instant::now()) {
            tokens.live.remove(&id);
            return Err(invalid(Asc::TOKEN_EXPIRED));
        }
        let Some(source) = rod.source.upgrade() else {
            tokens.live.remove(&id);
            return Err(invalid(Asc::TOKEN_REVOKED));
        };
        rod.in_use += 1;
        rod.delete |= delete;
        Ok(Lease {
            store: self,
            id,
            source,
            ranges: rod.ranges.clone(),
            block_size: rod.block_size,
        })
    }

    /// Forget the tokens of `lu` (the unit left the target).
    pub(crate) fn revoke(&self, lu: &LogicalUnit) {
        self.lock()
            .live
            .retain(|_, rod| !std::ptr::eq(rod.source.as_ptr(), lu));
    }
}

/// A ROD token (SPC-4 §5.17.6.1): the header, the creating logical unit
/// as an identification CSCD descriptor, the bytes it represents, the
/// unit's block length (where FreeBSD's CTL keeps its block device data),
/// and random bytes that make it unguessable.
fn token_bytes(
    id: u64,
    source: &LogicalUnit,
    bytes: u64,
    block_size: u32,
) -> Result<Box<[u8; TOKEN_LEN]>, Sense> {
    let mut t = Box::new([0u8; TOKEN_LEN]);
    t[0..4].copy_from_slice(&ROD_TYPE_ACCESS_UPON_REFERENCE.to_be_bytes());
    t[6..8].copy_from_slice(&TOKEN_BODY_LEN.to_be_bytes());
    t[8..16].copy_from_slice(&id.to_be_bytes());
    // CREATOR LOGICAL UNIT DESCRIPTOR: identification descriptor E4h with
    // the unit's NAA designator (binary, logical unit, NAA).
    t[16] = super::list::CSCD_IDENTIFICATION;
    t[20] = 0x01;
    t[21] = 0x03;
    t[23] = 8;
    t[24..32].copy_from_slice(&source.naa_designator());
    t[45..48].copy_from_slice(&block_size.to_be_bytes()[1..]);
    // NUMBER OF BYTES REPRESENTED (16 bytes).
    t[48..64].copy_from_slice(&u128::from(bytes).to_be_bytes());
    t[88..92].copy_from_slice(&block_size.to_be_bytes());
    getrandom::fill(&mut t[128..])
        .map_err(|_| Sense::illegal(Asc::INSUFFICIENT_RESOURCES_TO_CREATE_ROD_TOKEN))?;
    Ok(t)
}

/// A parameter list offset as a field pointer (our lists are far shorter
/// than 64 KiB).
fn field(at: usize) -> u16 {
    u16::try_from(at).unwrap_or(u16::MAX)
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(v)
}

/// The parameter list of a command whose list is a `header` then up to
/// [`MAX_RANGES`] range descriptors, whose length is at byte `len_at`:
/// its bytes and its ranges, checked against the addressed unit's capacity.
fn parameters(
    ctx: &Ctx<'_>,
    param_len: u32,
    header: usize,
    len_at: usize,
) -> Result<(Vec<u8>, Vec<Range>), Sense> {
    let max = header + usize::from(MAX_RANGES) * RANGE_LEN;
    let len = usize::try_from(param_len).unwrap_or(usize::MAX);
    // As FreeBSD's CTL: a list that cannot hold one range, or more than
    // the most we take, is an invalid PARAMETER LIST LENGTH.
    if len < header + RANGE_LEN || len > max {
        return Err(Sense::invalid_cdb_field(10, None));
    }
    let p = ctx
        .data_out(len)
        .ok_or_else(|| Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR))?;
    // The DATA LENGTH counts the bytes after itself.
    let data_len = usize::from(be16(&p, 0)) + 2;
    if data_len < header + RANGE_LEN {
        return Err(Sense::invalid_param_field(0, None));
    }
    let ranges_len = usize::from(be16(&p, len_at));
    if ranges_len % RANGE_LEN != 0 || ranges_len == 0 {
        return Err(Sense::invalid_param_field(field(len_at), None));
    }
    if ranges_len / RANGE_LEN > usize::from(MAX_RANGES) {
        return Err(Sense::illegal(Asc::TOO_MANY_SEGMENT_DESCRIPTORS));
    }
    if header + ranges_len > p.len().min(data_len) {
        return Err(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR));
    }
    let capacity = ctx.geometry.blocks();
    let mut ranges: Vec<Range> = Vec::with_capacity(ranges_len / RANGE_LEN);
    for at in (header..header + ranges_len).step_by(RANGE_LEN) {
        let r = Range {
            lba: be64(&p, at),
            blocks: be32(&p, at + 8),
        };
        let end = r.lba.checked_add(u64::from(r.blocks));
        if end.is_none_or(|end| end > capacity) {
            return Err(Sense::illegal(Asc::LBA_OUT_OF_RANGE).with_information(r.lba));
        }
        let overlaps =
            |o: &Range| r.lba < o.lba + u64::from(o.blocks) && o.lba < r.lba + u64::from(r.blocks);
        if r.blocks > 0 && ranges.iter().any(overlaps) {
            return Err(Sense::invalid_param_field(field(at), None));
        }
        ranges.push(r);
    }
    Ok((p, ranges))
}

/// POPULATE TOKEN (SBC-4): make a token for the ranges; RECEIVE ROD TOKEN
/// INFORMATION under `list_id` returns it.
pub(crate) fn populate_token(ctx: &Ctx<'_>, list_id: u32, param_len: u32) -> Outcome {
    let (p, ranges) = parameters(ctx, param_len, PT_HEADER, 14)?;
    let rtv = p[2] & 0x02 != 0;
    let timeout = be32(&p, 4);
    if timeout > MAX_INACTIVITY_SECS {
        return Err(Sense::invalid_param_field(4, None));
    }
    let rod_type = be32(&p, 8);
    if rtv && rod_type != 0 && rod_type != ROD_TYPE_ACCESS_UPON_REFERENCE {
        return Err(Sense::invalid_param_field(8, None));
    }
    let Some(source) = ctx.target.unit_arc(ctx.lu) else {
        return Err(Sense::illegal(
            Asc::INSUFFICIENT_RESOURCES_TO_CREATE_ROD_TOKEN,
        ));
    };
    let running = ctx
        .lu
        .copies
        .start(ctx.nexus, list_id, ListIdUsage::Hold, sa::POPULATE_TOKEN)?;
    let blocks = ranges.iter().map(|r| u64::from(r.blocks)).sum();
    let timeout = if timeout == 0 {
        DEFAULT_INACTIVITY_SECS
    } else {
        timeout
    };
    let made = ctx.target.tokens.create(
        &source,
        ranges,
        blocks,
        ctx.geometry.logical_block_size,
        timeout,
    );
    let outcome = made.map(|token| running.record_rod(blocks, None, Some(token)));
    running.finish(&outcome);
    outcome.map(|()| Xfer::NONE)
}

/// WRITE USING TOKEN (SBC-4): write the data the token names, from OFFSET
/// INTO ROD on, to the ranges of this unit.
pub(crate) async fn write_using_token(ctx: &Ctx<'_>, list_id: u32, param_len: u32) -> Outcome {
    let (p, ranges) = parameters(ctx, param_len, WUT_HEADER, 534)?;
    let delete = p[2] & 0x02 != 0;
    let offset = be64(&p, 8);
    let mut token = [0u8; TOKEN_LEN];
    token.copy_from_slice(&p[16..16 + TOKEN_LEN]);
    crate::sbc::check_writable(ctx)?;
    let running =
        ctx.lu
            .copies
            .start(ctx.nexus, list_id, ListIdUsage::Hold, sa::WRITE_USING_TOKEN)?;
    let outcome = if be32(&token, 0) == ROD_TYPE_BLOCK_ZERO {
        write_zeroes(ctx, &ranges)
            .await
            .map(|blocks| (blocks, None))
    } else {
        copy_from_token(ctx, &token, delete, offset, &ranges, &running).await
    };
    let outcome = outcome.map(|(blocks, partial)| running.record_rod(blocks, partial, None));
    running.finish(&outcome);
    outcome.map(|()| Xfer::NONE)
}

/// The block device zero token: zero every range.
async fn write_zeroes(ctx: &Ctx<'_>, ranges: &[Range]) -> Result<u64, Sense> {
    let bs = ctx.block_size();
    let _shared = ctx.lu.write_gate.read().await;
    let mut blocks = 0;
    for r in ranges.iter().filter(|r| r.blocks > 0) {
        ctx.lu
            .backstore
            .write_zeroes(r.lba * bs, u64::from(r.blocks) * bs, false)
            .await
            .map_err(|e| e.sense().with_information(r.lba))?;
        blocks += u64::from(r.blocks);
    }
    Ok(blocks)
}

/// Copy from the token's source ranges, `offset` blocks in, to `ranges`;
/// returns the blocks written and the copy operation status when it fell
/// short of either side.
async fn copy_from_token(
    ctx: &Ctx<'_>,
    token: &[u8; TOKEN_LEN],
    delete: bool,
    offset: u64,
    ranges: &[Range],
    running: &super::results::Running<'_>,
) -> Result<(u64, Option<u8>), Sense> {
    let lease = ctx.target.tokens.lease(token, delete)?;
    let source = &lease.source;
    let bs = ctx.block_size();
    let geometry = source.backstore.geometry();
    // A token of another block length (or one whose ranges a shrunk source
    // no longer holds) cannot be written block for block.
    if lease.block_size != ctx.geometry.logical_block_size {
        return Err(Sense::illegal(Asc::INVALID_TOKEN_OPERATION));
    }
    if geometry.logical_block_size != lease.block_size
        || lease
            .ranges
            .iter()
            .any(|r| r.lba + u64::from(r.blocks) > geometry.blocks())
    {
        return Err(Sense::illegal(Asc::TOKEN_REVOKED));
    }
    // Reading the source is a read by this nexus (SPC-4 table 62 gives the
    // copy the policy of its copy targets).
    if ctx.target.conflicts_on(source, ctx.nexus, &table::READS) {
        return Err(Sense::new(SenseKey::COPY_ABORTED, Asc::NO_ADDITIONAL_SENSE));
    }
    let rod: u64 = lease.ranges.iter().map(|r| u64::from(r.blocks)).sum();
    let wanted: u64 = ranges.iter().map(|r| u64::from(r.blocks)).sum();
    if offset >= rod && wanted > 0 {
        return Err(Sense::invalid_param_field(8, None));
    }
    let blocks = wanted.min(rod - offset.min(rod));
    let pieces = pair_up(&lease.ranges, offset, ranges, blocks);
    let same_unit = std::ptr::eq(Arc::as_ptr(source), ctx.lu);
    let overlapping = same_unit && overlap(&pieces);
    if overlapping && pieces.len() > 1 {
        return Err(Sense::invalid_param_field(534, None));
    }
    for &(from, to, n) in &pieces {
        let span = Span {
            source,
            from: from * bs,
            destination: ctx.lu,
            to: to * bs,
            bytes: n * bs,
        };
        let backwards = overlapping && to > from;
        copy_span(ctx, &span, backwards, |b| running.progress(b)).await?;
    }
    let partial = if blocks < wanted {
        Some(status::RESIDUAL_DATA)
    } else if offset + blocks < rod {
        Some(status::PARTIAL_ROD_USE)
    } else {
        None
    };
    Ok((blocks, partial))
}

/// Walk the source ranges from `offset` blocks in and the destination
/// ranges together for `blocks` blocks: runs of (source LBA, destination
/// LBA, blocks) contiguous on both sides. At most one run per range of
/// either list.
fn pair_up(
    source: &[Range],
    offset: u64,
    destination: &[Range],
    blocks: u64,
) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    let mut src = source
        .iter()
        .filter(|r| r.blocks > 0)
        .map(|r| (r.lba, u64::from(r.blocks)));
    let mut dst = destination
        .iter()
        .filter(|r| r.blocks > 0)
        .map(|r| (r.lba, u64::from(r.blocks)));
    let mut skip = offset;
    let mut s = src.next();
    while let Some((lba, n)) = s {
        if skip < n {
            s = Some((lba + skip, n - skip));
            break;
        }
        skip -= n;
        s = src.next();
    }
    let mut d = dst.next();
    let mut left = blocks;
    while left > 0 {
        let (Some((sl, sn)), Some((dl, dn))) = (s, d) else {
            break;
        };
        let n = sn.min(dn).min(left);
        out.push((sl, dl, n));
        left -= n;
        s = if n == sn {
            src.next()
        } else {
            Some((sl + n, sn - n))
        };
        d = if n == dn {
            dst.next()
        } else {
            Some((dl + n, dn - n))
        };
    }
    out
}

/// Whether any run's source overlaps any run's destination (one unit).
fn overlap(pieces: &[(u64, u64, u64)]) -> bool {
    pieces.iter().any(|&(from, _, n)| {
        pieces
            .iter()
            .any(|&(_, to, m)| from < to + m && to < from + n)
    })
}

/// RECEIVE ROD TOKEN INFORMATION (SPC-4 §6.19): the status of the command
/// sent under `list_id` by this nexus, with the token POPULATE TOKEN made.
pub(crate) fn receive_rod_token_information(
    ctx: &Ctx<'_>,
    list_id: u32,
    alloc_len: u32,
) -> Outcome {
    let r = ctx
        .lu
        .copies
        .get(ctx.nexus, list_id)
        .ok_or_else(|| Sense::invalid_cdb_field(2, None))?;
    let data = token_information(&r);
    Ok(ctx.data_in(&data, usize::try_from(alloc_len).unwrap_or(usize::MAX)))
}

/// The RECEIVE ROD TOKEN INFORMATION parameter data of `r`: the RECEIVE
/// COPY STATUS(LID4) header, its sense data, then the ROD token
/// descriptors.
fn token_information(r: &CopyRecord) -> Vec<u8> {
    let (op_status, completion, sense): (u8, u8, &[u8]) = match &r.state {
        CopyState::Running => (status::IN_PROGRESS_FOREGROUND, 0, &[]),
        CopyState::Done => (r.partial.unwrap_or(status::COMPLETED), 0, &[]),
        CopyState::Failed { status: s, sense } if *s == crate::status::Status::TASK_ABORTED => {
            (status::TERMINATED, s.0, sense)
        }
        CopyState::Failed { status: s, sense } => (status::COMPLETED_WITH_ERRORS, s.0, sense),
    };
    let sense = &sense[..sense.len().min(usize::from(u8::MAX))];
    let mut d = vec![0u8; 32];
    d[4] = r.action & 0x1f;
    d[5] = op_status;
    // ESTIMATED STATUS UPDATE DELAY: poll again in 100 ms while running.
    let delay: u32 = if r.state == CopyState::Running {
        100
    } else {
        0
    };
    d[8..12].copy_from_slice(&delay.to_be_bytes());
    d[12] = completion;
    let sense_len = u8::try_from(sense.len()).unwrap_or(u8::MAX);
    d[13] = sense_len;
    d[14] = sense_len;
    let (units, count) = if r.action == sa::EXTENDED_COPY_LID1 {
        (0x00, r.bytes)
    } else {
        (UNITS_BLOCKS, r.blocks)
    };
    d[15] = units;
    d[16..24].copy_from_slice(&count.to_be_bytes());
    d[24..26].copy_from_slice(&r.segments.to_be_bytes());
    d.extend_from_slice(sense);
    match &r.token {
        Some(token) => {
            d.extend_from_slice(&(2 + 8 + u32::from(TOKEN_BODY_LEN)).to_be_bytes());
            d.extend_from_slice(&[0, 0]);
            d.extend_from_slice(&token[..]);
        }
        None => d.extend_from_slice(&0u32.to_be_bytes()),
    }
    let available = u32::try_from(d.len() - 4).unwrap_or(u32::MAX);
    d[0..4].copy_from_slice(&available.to_be_bytes());
    d
}

/// The ROD token descriptors of the Third-party Copy VPD page for a unit
/// of `block_size`-byte blocks: Block Device ROD Token Limits (0000h), ROD
/// Token Features (0106h) and Supported ROD Types (0108h).
pub(crate) fn vpd_descriptors(out: &mut Vec<u8>) {
    // Block Device ROD Token Limits: MAXIMUM RANGE DESCRIPTORS, MAXIMUM
    // and DEFAULT INACTIVITY TIMEOUT; MAXIMUM TOKEN TRANSFER SIZE and
    // OPTIMAL TRANSFER COUNT zero: no limit, no preference.
    let mut body = vec![0u8; 32];
    body[6..8].copy_from_slice(&MAX_RANGES.to_be_bytes());
    body[8..12].copy_from_slice(&MAX_INACTIVITY_SECS.to_be_bytes());
    body[12..16].copy_from_slice(&DEFAULT_INACTIVITY_SECS.to_be_bytes());
    super::tpc_descriptor(out, 0x0000, &body);
    // ROD Token Features: no remote tokens; a token lives from one second
    // with no upper bound while in use, lapsing after its inactivity
    // timeout.
    let mut body = vec![0u8; 44];
    body[12..16].copy_from_slice(&1u32.to_be_bytes());
    body[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
    body[20..24].copy_from_slice(&MAX_INACTIVITY_SECS.to_be_bytes());
    super::tpc_descriptor(out, 0x0106, &body);
    // Supported ROD Types: access upon reference (token in and out) and
    // block device zero (token in).
    let mut body = vec![0u8; 4];
    body[2..4].copy_from_slice(&16u16.to_be_bytes());
    for (rod_type, flags) in [
        (ROD_TYPE_ACCESS_UPON_REFERENCE, 0x03u8),
        (ROD_TYPE_BLOCK_ZERO, 0x02),
    ] {
        body.extend_from_slice(&rod_type.to_be_bytes());
        body.extend_from_slice(&[flags, 0, 0, 0]);
    }
    super::tpc_descriptor(out, 0x0108, &body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sense::SenseFormat;

    fn r(lba: u64, blocks: u32) -> Range {
        Range { lba, blocks }
    }

    #[test]
    fn pairs_up_ranges_from_an_offset() {
        // Source 10..14 and 20..24, destination 100..103 and 200..210.
        let src = [r(10, 4), r(20, 4)];
        let dst = [r(100, 3), r(200, 10)];
        assert_eq!(
            pair_up(&src, 2, &dst, 6),
            vec![(12, 100, 2), (20, 102, 1), (21, 200, 3)]
        );
        assert_eq!(
            pair_up(&src, 0, &dst, 8).iter().map(|p| p.2).sum::<u64>(),
            8
        );
        // Zero-length ranges are skipped; the count bounds the walk.
        assert_eq!(
            pair_up(&[r(0, 0), r(5, 2)], 0, &[r(9, 8)], 1),
            vec![(5, 9, 1)]
        );
    }

    #[test]
    fn finds_overlap_between_any_source_and_destination() {
        assert!(overlap(&[(0, 4, 8)]));
        assert!(!overlap(&[(0, 8, 8)]));
        assert!(overlap(&[(0, 100, 4), (100, 50, 4)]));
    }

    #[test]
    fn token_information_carries_the_token_after_the_header() {
        let mut rec = CopyRecord {
            state: CopyState::Done,
            action: sa::POPULATE_TOKEN,
            segments: 0,
            bytes: 0,
            blocks: 8,
            partial: None,
            token: Some(Box::new([7u8; TOKEN_LEN])),
            held: true,
            seq: 0,
        };
        let d = token_information(&rec);
        assert_eq!(d.len(), 32 + 4 + 2 + TOKEN_LEN);
        assert_eq!(be32(&d, 0) as usize, d.len() - 4);
        assert_eq!((d[4], d[5], d[15]), (0x10, 0x01, 0xf1));
        assert_eq!(be64(&d, 16), 8);
        assert_eq!(be32(&d, 32), 514);
        assert_eq!(&d[38..], &[7u8; TOKEN_LEN][..]);
        rec.token = None;
        rec.state = CopyState::Failed {
            status: crate::status::Status::CHECK_CONDITION,
            sense: Sense::illegal(Asc::TOKEN_UNKNOWN).to_vec(SenseFormat::Fixed),
        };
        let d = token_information(&rec);
        assert_eq!((d[5], d[12], d[13]), (0x02, 0x02, 18));
        assert_eq!(d[32 + 12], 0x23);
        assert_eq!(be32(&d, 32 + 18), 0);
    }
}
