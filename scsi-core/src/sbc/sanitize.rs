//! SANITIZE (SBC-4 §5.30, §4.11): OVERWRITE, BLOCK ERASE and EXIT
//! FAILURE MODE. CRYPTO ERASE is not implemented (there is no media
//! encryption key to change) and is not in the command table, so it is
//! answered as an invalid service action and not listed as supported.
//!
//! The sanitize operation runs as the SANITIZE command itself (IMMED set is
//! refused: the engine has no executor of its own to keep an operation
//! going after its command completes). While it runs, every command but
//! INQUIRY, REPORT LUNS, REQUEST SENSE and the REPORT SUPPORTED ...
//! commands answers NOT READY, SANITIZE IN PROGRESS. An operation that
//! fails, or whose command is aborted part-way, leaves the logical unit in
//! sanitize failure mode (medium access answers MEDIUM ERROR, SANITIZE
//! COMMAND FAILED) until a SANITIZE completes, or until EXIT FAILURE MODE
//! when the failed one had AUSE set.

use crate::backstore::Capabilities;
use crate::buffer::DataBuffer;
use crate::engine::exec::{Ctx, Outcome, Xfer};
use crate::engine::lu::LogicalUnit;
use crate::sense::{Asc, Sense, SenseKey};
use crate::table::Handler;

/// SANITIZE service actions (SBC-4 table 92).
pub(crate) mod sa {
    /// OVERWRITE.
    pub const OVERWRITE: u8 = 0x01;
    /// BLOCK ERASE.
    pub const BLOCK_ERASE: u8 = 0x02;
    /// EXIT FAILURE MODE.
    pub const EXIT_FAILURE_MODE: u8 = 0x1f;
}

/// Where a logical unit stands with sanitize operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum SanitizeState {
    /// No sanitize operation has failed or is running.
    #[default]
    Idle,
    /// A sanitize operation is running.
    Running,
    /// The last one failed; `ause` as it was given.
    Failed { ause: bool },
}

impl SanitizeState {
    /// The answer to a command of `handler` in this state, if it is not
    /// to run (SBC-4 §4.11.3, §4.11.4).
    pub(crate) fn refusal(self, handler: Handler) -> Option<Sense> {
        match self {
            SanitizeState::Idle => None,
            SanitizeState::Running => (!handler
                .runs_when()
                .contains(crate::table::RunsWhen::SANITIZING))
            .then(in_progress),
            SanitizeState::Failed { .. } => (handler.needs_medium()
                && handler != Handler::Sanitize)
                .then(|| Sense::new(SenseKey::MEDIUM_ERROR, Asc::SANITIZE_COMMAND_FAILED)),
        }
    }
}

/// NOT READY, SANITIZE IN PROGRESS.
fn in_progress() -> Sense {
    Sense::new(SenseKey::NOT_READY, Asc::SANITIZE_IN_PROGRESS)
}

/// The decoded OVERWRITE parameter list.
struct Overwrite {
    invert: bool,
    passes: u8,
    pattern: Vec<u8>,
}

/// Check the OVERWRITE parameter list (SBC-4 §5.30.3): PARAMETER LIST
/// LENGTH from 5 to the block length plus 4, an OVERWRITE COUNT of at
/// least one, TEST zero, and an INITIALIZATION PATTERN of 1 to the block
/// length bytes that the list holds exactly.
fn overwrite_params(ctx: &Ctx<'_>, param_len: u16) -> Result<Overwrite, Sense> {
    let bs = ctx.block_size();
    let len = u64::from(param_len);
    if len < 5 || len > bs + 4 {
        return Err(Sense::invalid_cdb_field(7, None));
    }
    let p = ctx
        .data_out(usize::from(param_len))
        .ok_or_else(|| Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR))?;
    let passes = p[0] & 0x1f;
    if passes == 0 {
        return Err(Sense::invalid_param_field(0, Some(4)));
    }
    if p[0] & 0x60 != 0 {
        return Err(Sense::invalid_param_field(0, Some(6)));
    }
    let pattern_len = usize::from(u16::from_be_bytes([p[2], p[3]]));
    if pattern_len == 0 || pattern_len as u64 > bs || pattern_len + 4 != p.len() {
        return Err(Sense::invalid_param_field(2, None));
    }
    Ok(Overwrite {
        invert: p[0] & 0x80 != 0,
        passes,
        pattern: p[4..].to_vec(),
    })
}

/// SANITIZE (SBC-4 §5.30).
pub(crate) async fn sanitize(
    ctx: &Ctx<'_>,
    immed: bool,
    ause: bool,
    service_action: u8,
    param_len: u16,
) -> Outcome {
    if immed {
        return Err(Sense::invalid_cdb_field(1, Some(7)));
    }
    let caps = ctx.lu.backstore.capabilities();
    let overwrite = match service_action {
        sa::OVERWRITE => Some(overwrite_params(ctx, param_len)?),
        sa::BLOCK_ERASE | sa::EXIT_FAILURE_MODE if param_len != 0 => {
            return Err(Sense::invalid_cdb_field(7, None));
        }
        sa::BLOCK_ERASE if !caps.contains(Capabilities::DISCARD) => {
            // No blocks to deallocate on this backstore.
            return Err(Sense::invalid_cdb_field(1, Some(4)));
        }
        _ => None,
    };
    super::check_writable(ctx)?;
    if service_action == sa::EXIT_FAILURE_MODE {
        let mut state = ctx.lu.state();
        return match state.sanitize {
            SanitizeState::Failed { ause: true } => {
                state.set_sanitize(SanitizeState::Idle);
                Ok(Xfer::NONE)
            }
            // SBC-4 §4.11.4: only a failure of a sanitize with AUSE set
            // can be left this way.
            _ => Err(Sense::invalid_cdb_field(1, Some(4))),
        };
    }
    let running = Running::start(ctx.lu, ause)?;
    let done = match overwrite {
        Some(o) => run_overwrite(ctx, &o).await,
        None => block_erase(ctx).await,
    };
    running.finish(done.is_ok());
    done.map(|()| Xfer::NONE)
}

/// Write the pattern over every block, `passes` times (inverted on every
/// other pass with INVERT), then flush.
async fn run_overwrite(ctx: &Ctx<'_>, o: &Overwrite) -> Result<(), Sense> {
    let size = ctx.geometry.size;
    let bs = usize::try_from(ctx.block_size()).unwrap_or(512);
    let chunk = (super::CHUNK_BYTES / bs).max(1) * bs;
    let chunk = chunk.min(usize::try_from(size).unwrap_or(chunk));
    let backstore = &ctx.lu.backstore;
    let _exclusive = ctx.lu.write_gate.write().await;
    for pass in 0..o.passes {
        let flip = if o.invert && pass % 2 == 1 { 0xff } else { 0 };
        let mut block = vec![0u8; bs];
        for (i, b) in block.iter_mut().enumerate() {
            *b = o.pattern[i % o.pattern.len()] ^ flip;
        }
        let buf = DataBuffer::from_vec(block.repeat(chunk / bs));
        let mut at = 0u64;
        while at < size {
            let n = usize::try_from((size - at).min(chunk as u64)).unwrap_or(chunk);
            backstore
                .write(at, buf.truncated(n), crate::backstore::WriteFlags::empty())
                .await
                .map_err(|e| e.sense())?;
            at += n as u64;
        }
    }
    backstore.flush().await.map_err(|e| e.sense())
}

/// Deallocate every block (they read back as zeroes where the backstore
/// says so, which VPD B2h's LBPRZ reports).
async fn block_erase(ctx: &Ctx<'_>) -> Result<(), Sense> {
    let _exclusive = ctx.lu.write_gate.write().await;
    let backstore = &ctx.lu.backstore;
    backstore
        .discard(0, ctx.geometry.size)
        .await
        .map_err(|e| e.sense())?;
    backstore.flush().await.map_err(|e| e.sense())
}

/// A running sanitize operation's hold on the logical unit's state: a
/// drop without [`Running::finish`] (the command was aborted) is a failure.
struct Running<'a> {
    lu: &'a LogicalUnit,
    ause: bool,
    finished: bool,
}

impl<'a> Running<'a> {
    fn start(lu: &'a LogicalUnit, ause: bool) -> Result<Self, Sense> {
        let mut state = lu.state();
        if state.sanitize == SanitizeState::Running {
            return Err(in_progress());
        }
        state.set_sanitize(SanitizeState::Running);
        Ok(Self {
            lu,
            ause,
            finished: false,
        })
    }

    fn finish(mut self, ok: bool) {
        self.end(ok);
    }

    fn end(&mut self, ok: bool) {
        if !self.finished {
            self.finished = true;
            let next = if ok {
                SanitizeState::Idle
            } else {
                SanitizeState::Failed { ause: self.ause }
            };
            self.lu.state().set_sanitize(next);
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.end(false);
    }
}
