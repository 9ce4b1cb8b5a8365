//! Running one command: LU lookup, unit attentions, task ordering, dispatch.

use std::sync::Arc;

use crate::backstore::Geometry;
use crate::buffer::DataBuffer;
use crate::cdb::Cdb;
use crate::engine::lu::{LogicalUnit, LuState};
use crate::engine::task::Ending;
use crate::engine::{Command, NexusId, Residual, Response, Target, TmFunction, TmfResponse};
use crate::lun::Lun;
use crate::pr::Refusal;
use crate::sense::{Asc, Sense, SenseFormat};
use crate::status::Status;
use crate::table::{self, CommandDesc, Handler};
use crate::{sbc, spc};

/// What a handler moved: `len` bytes transferred, `wanted` bytes the
/// command would have transferred with a large enough buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Xfer {
    pub len: usize,
    pub wanted: usize,
}

impl Xfer {
    pub(crate) const NONE: Self = Self { len: 0, wanted: 0 };
}

/// A handler's result: the transfer, or the sense for CHECK CONDITION.
pub(crate) type Outcome = Result<Xfer, Sense>;

/// Everything a handler may look at.
pub(crate) struct Ctx<'a> {
    pub target: &'a Target,
    pub lu: &'a LogicalUnit,
    pub nexus: NexusId,
    pub data: &'a DataBuffer,
    pub geometry: Geometry,
}

impl Ctx<'_> {
    /// Return parameter data `bytes`, cut to `alloc_len` and to the buffer.
    pub(crate) fn data_in(&self, bytes: &[u8], alloc_len: usize) -> Xfer {
        let wanted = bytes.len().min(alloc_len);
        let len = self.data.write_at(0, &bytes[..wanted]);
        Xfer { len, wanted }
    }

    /// Copy in at most `param_len` bytes of parameter data. Returns `None`
    /// when the buffer holds fewer bytes than the parameter list length.
    pub(crate) fn data_out(&self, param_len: usize) -> Option<Vec<u8>> {
        if self.data.len() < param_len {
            return None;
        }
        let mut out = vec![0u8; param_len];
        self.data.read_at(0, &mut out);
        Some(out)
    }

    pub(crate) fn block_size(&self) -> u64 {
        u64::from(self.geometry.logical_block_size)
    }

    /// The same command's context on another logical unit `lu` (the copy
    /// manager's source and destination).
    pub(crate) fn on<'b>(&'b self, lu: &'b LogicalUnit) -> Ctx<'b> {
        Ctx {
            target: self.target,
            lu,
            nexus: self.nexus,
            data: self.data,
            geometry: lu.backstore.geometry(),
        }
    }
}

impl Target {
    /// Execute `cmd` and return the response for the wire.
    ///
    /// The future may be dropped at any point (the transport lost the
    /// connection); the task is then removed from the task set and any
    /// backstore I/O in flight completes into memory the command's
    /// [`DataBuffer`] keeps alive.
    pub async fn execute(&self, cmd: Command) -> Response {
        let Some(lu) = self.lu(&cmd.lun) else {
            return self.execute_without_lu(&cmd);
        };
        let cdb = cmd.cdb.as_bytes();
        let geometry = lu.backstore.geometry();

        // Unit attentions, reservations and size changes: looked at under
        // the state lock, unless the lock-free summary says there is
        // nothing to look at (the common case).
        let row = table::lookup_for(lu.device, cdb);
        // The tape model's own commands run in `ssc` (they can transfer
        // data with CHECK CONDITION).
        let stream = row
            .as_ref()
            .is_ok_and(|r| r.devices == table::Devices::TAPE);
        let columns = row.as_ref().map_or(0, |r| reservation_columns(r));
        let format = if lu.quiet.is_quiet(cmd.nexus, columns, geometry.size) {
            None
        } else {
            let mut state = lu.state();
            if geometry.size != state.last_size {
                state.set_last_size(geometry.size);
                state.raise_all(Asc::CAPACITY_DATA_HAS_CHANGED, None);
            }
            let format = state.sense_format();
            let handler = row.as_ref().ok().map(|row| row.handler);
            let ua = state.ua_of(cmd.nexus);
            if !ua.is_empty() {
                match handler {
                    // SPC-4 §5.14: INQUIRY and REPORT LUNS never report a
                    // unit attention; REQUEST SENSE reports it as its data.
                    Some(Handler::Inquiry | Handler::RequestSense) => {}
                    Some(Handler::ReportLuns) => ua.remove(Asc::REPORTED_LUNS_DATA_HAS_CHANGED),
                    _ => {
                        if let Some(asc) = ua.pop() {
                            return Response::check_condition(&Sense::unit_attention(asc), format);
                        }
                    }
                }
            }
            if let Ok(row) = &row {
                if self.reservation_conflict(&mut state, &cmd, row) {
                    return Response::status(Status::RESERVATION_CONFLICT);
                }
                if let Some(sense) = state.unready(row.handler) {
                    return Response::check_condition(&sense, format);
                }
            }
            state.note_checked(cmd.nexus);
            Some(format)
        };
        // The sense format, read when a response needs it.
        let format = || format.unwrap_or_else(|| lu.state().sense_format());

        // Target port group access states, after unit attentions (a check
        // that costs one atomic load unless a group is not active).
        if let Ok(r) = &row {
            if let Some(sense) = self.alua_refusal(&lu, cmd.nexus, r.handler) {
                return Response::check_condition(&sense, format());
            }
        }

        let decoded = match row.and_then(|row| Cdb::decode_row(row, cdb)) {
            Ok(c) => c,
            Err(sense) => return Response::check_condition(&sense, format()),
        };

        let Ok(guard) = lu.tasks.insert(cmd.nexus, cmd.tag, cmd.attribute) else {
            let sense = Sense::new(
                crate::sense::SenseKey::ABORTED_COMMAND,
                Asc::OVERLAPPED_COMMANDS_ATTEMPTED,
            );
            return Response::check_condition(&sense, format());
        };
        let run = async {
            guard.enabled().await;
            let ctx = Ctx {
                target: self,
                lu: &lu,
                nexus: cmd.nexus,
                data: &cmd.data,
                geometry,
            };
            // READ and WRITE run inline; every other command's future is
            // boxed, so that the largest handler future does not set the
            // size of every command's future (which transports and
            // executors move, byte by byte, at least once per command).
            // An error carries the data transferred before it (a tape
            // READ that met a filemark); only sequential-access commands
            // transfer data with CHECK CONDITION.
            let check = |s| (Refusal::Check(s), Xfer::NONE);
            match decoded {
                Cdb::Read(ref rw) => sbc::read(&ctx, rw).await.map_err(check),
                Cdb::Write(ref rw) => sbc::write(&ctx, rw, false).await.map_err(check),
                Cdb::PersistentReserveIn { .. }
                | Cdb::PersistentReserveOut { .. }
                | Cdb::Reserve { .. }
                | Cdb::Release { .. } => {
                    // The lock-free summary stays off while it runs.
                    let _reserving = lu.quiet.reserving(&lu);
                    Box::pin(dispatch_reservations(&ctx, &decoded))
                        .await
                        .map_err(|r| (r, Xfer::NONE))
                }
                _ if stream => Box::pin(crate::ssc::dispatch(&ctx, &decoded))
                    .await
                    .map_err(|stop| (Refusal::Check(stop.sense), stop.xfer)),
                _ => Box::pin(dispatch(&ctx, &decoded)).await.map_err(check),
            }
        };
        let outcome = guard.run(std::pin::pin!(run)).await;
        match (guard.finish(), outcome) {
            (Ending::AbortedSilently, _) | (Ending::Completed, Err(_)) => Response::aborted(),
            (Ending::AbortedWithStatus, _) => Response::status(Status::TASK_ABORTED),
            (Ending::Completed, Ok(Ok(xfer))) => {
                Response::good(xfer.len, Residual::of(xfer.wanted, cmd.data.len()))
            }
            (Ending::Completed, Ok(Err((Refusal::Conflict, _)))) => {
                Response::status(Status::RESERVATION_CONFLICT)
            }
            (Ending::Completed, Ok(Err((Refusal::Check(sense), xfer)))) => {
                // The format may have changed during MODE SELECT; re-read.
                let format = lu.state().sense_format();
                let mut resp = Response::check_condition(&sense, format);
                if xfer != Xfer::NONE {
                    resp.data_len = xfer.len;
                    resp.residual = Residual::of(xfer.wanted, cmd.data.len());
                }
                resp
            }
        }
    }

    /// Whether `cmd` (whose table row is `row`) conflicts with an SPC-2 or
    /// persistent reservation held by another I_T nexus.
    fn reservation_conflict(&self, state: &mut LuState, cmd: &Command, row: &CommandDesc) -> bool {
        if state.spc2.is_some_and(|n| n != cmd.nexus) && row.conflicts.spc2 {
            return true;
        }
        let cdb = cmd.cdb.as_bytes();
        // SBC-3 table 13: START STOP UNIT with START set and POWER
        // CONDITION 0h is allowed under every persistent reservation.
        if row.handler == Handler::StartStopUnit
            && cdb.get(4).is_some_and(|&b| b & 0x01 != 0 && b >> 4 == 0)
        {
            return false;
        }
        // SPC-4 table 62: PREVENT ALLOW MEDIUM REMOVAL with PREVENT set is
        // a write-class command; allowing removal is always allowed.
        if row.handler == Handler::PreventAllow && cdb.get(4).is_some_and(|&b| b & 0x03 != 0) {
            return self.conflicts(state, cmd.nexus, &table::WRITES);
        }
        self.conflicts(state, cmd.nexus, &row.conflicts)
    }

    /// Whether a command of reservation class `cols` from `nexus`
    /// conflicts with a reservation under `state`.
    fn conflicts(&self, state: &mut LuState, nexus: NexusId, cols: &table::PrConflicts) -> bool {
        if state.spc2.is_some_and(|n| n != nexus) && cols.spc2 {
            return true;
        }
        // No reservation, or a class the held type refuses nobody (reads
        // under the Write Exclusive types): no need to look at who asks.
        if state.pr.columns() & cols.bits() == 0 {
            return false;
        }
        let standing = state.standing_of(nexus, || self.identity(nexus));
        state.pr.conflicts_as(standing, cols)
    }

    /// [`Self::conflicts`] on logical unit `lu` (a copy's other units).
    pub(crate) fn conflicts_on(
        &self,
        lu: &LogicalUnit,
        nexus: NexusId,
        cols: &table::PrConflicts,
    ) -> bool {
        self.conflicts(&mut lu.state(), nexus, cols)
    }

    /// A command addressed to a LUN with no logical unit (SPC-4 §4.7.4).
    fn execute_without_lu(&self, cmd: &Command) -> Response {
        let fixed = SenseFormat::Fixed;
        let not_supported = Sense::illegal(Asc::LUN_NOT_SUPPORTED);
        let cdb = cmd.cdb.as_bytes();
        let decoded = match Cdb::decode(cdb) {
            Ok(c) => c,
            Err(sense) => return Response::check_condition(&sense, fixed),
        };
        let data = &cmd.data;
        let xfer = match decoded {
            Cdb::ReportLuns { select, alloc_len } => {
                match spc::report_luns_data(self, select, alloc_len) {
                    Ok(bytes) => data_in(data, &bytes, alloc_len as usize),
                    Err(sense) => return Response::check_condition(&sense, fixed),
                }
            }
            Cdb::Inquiry {
                evpd: false,
                alloc_len,
                ..
            } => {
                let bytes = spc::inquiry_no_lu(self);
                data_in(data, &bytes, usize::from(alloc_len))
            }
            Cdb::RequestSense { desc, alloc_len } => {
                let format = if desc { SenseFormat::Descriptor } else { fixed };
                data_in(data, &not_supported.to_vec(format), usize::from(alloc_len))
            }
            Cdb::TestUnitReady if cmd.lun == Lun::REPORT_LUNS_WLUN => Xfer::NONE,
            _ => return Response::check_condition(&not_supported, fixed),
        };
        Response::good(xfer.len, Residual::of(xfer.wanted, data.len()))
    }

    pub(crate) fn run_tmf(&self, nexus: NexusId, lun: Lun, function: TmFunction) -> TmfResponse {
        if matches!(function, TmFunction::TargetReset | TmFunction::ITNexusReset) {
            for lu in self.read_luns().values() {
                self.reset_lu(lu, nexus, function);
            }
            return TmfResponse::Complete;
        }
        let Some(lu) = self.lu(&lun) else {
            return TmfResponse::IncorrectLun;
        };
        match function {
            TmFunction::AbortTask { tag } => {
                if lu.tasks.abort_where(|n, t| n == nexus && t == tag) > 0 {
                    TmfResponse::Complete
                } else {
                    TmfResponse::TaskNotFound
                }
            }
            TmFunction::AbortTaskSet => {
                lu.tasks.abort_where(|n, _| n == nexus);
                TmfResponse::Complete
            }
            TmFunction::ClearTaskSet => {
                // SAM-5 §7.4: the other nexuses' tasks end as TAS says.
                lu.tasks.abort_where(|n, _| n == nexus);
                lu.abort_for_other(nexus, |_| true);
                TmfResponse::Complete
            }
            TmFunction::LogicalUnitReset => {
                self.reset_lu(&lu, nexus, function);
                TmfResponse::Complete
            }
            TmFunction::QueryTask { tag } => {
                if lu.tasks.any(|n, t| n == nexus && t == tag) {
                    TmfResponse::Succeeded
                } else {
                    TmfResponse::Complete
                }
            }
            TmFunction::QueryTaskSet => {
                if lu.tasks.any(|n, _| n == nexus) {
                    TmfResponse::Succeeded
                } else {
                    TmfResponse::Complete
                }
            }
            TmFunction::QueryAsyncEvent => {
                if lu.state().ua.get(&nexus).is_some_and(|q| !q.is_empty()) {
                    TmfResponse::Succeeded
                } else {
                    TmfResponse::Complete
                }
            }
            TmFunction::ClearAca => TmfResponse::NotSupported,
            TmFunction::TargetReset | TmFunction::ITNexusReset => TmfResponse::Complete,
        }
    }

    fn reset_lu(&self, lu: &Arc<LogicalUnit>, nexus: NexusId, function: TmFunction) {
        match function {
            TmFunction::ITNexusReset => {
                lu.end_nexus(nexus)
                    .ua_of(nexus)
                    .push(Asc::I_T_NEXUS_LOSS_OCCURRED);
            }
            _ => {
                // SAM-5 §6.3.2: every task is aborted; those of other
                // nexuses report TASK ABORTED when TAS is set.
                let tas = lu.state().mode.tas;
                lu.tasks.abort_matching(|_, _| true, |n| tas && n != nexus);
                lu.copies.clear_finished();
                let asc = if function == TmFunction::TargetReset {
                    Asc::POWER_ON_RESET
                } else {
                    Asc::BUS_DEVICE_RESET_FUNCTION_OCCURRED
                };
                let mut state = lu.state();
                let write_cache = state.mode.wce;
                state.mode = crate::engine::lu::ModeParams::defaults(write_cache);
                // SPC-2 reservations end with a reset; persistent ones stay
                // (SPC-4 §5.13.1).
                state.spc2 = None;
                state.note_reservations();
                // SPC-4 §6.13: a reset ends every prevention.
                state.medium.prevent.clear();
                // SAM-5 §6.3.3: every nexus gets the reset condition,
                // including the one that asked for it.
                state.raise_all(asc, None);
            }
        }
    }
}

/// Run a reservation command (their handlers can answer RESERVATION
/// CONFLICT).
async fn dispatch_reservations(ctx: &Ctx<'_>, cdb: &Cdb) -> Result<Xfer, Refusal> {
    match *cdb {
        Cdb::PersistentReserveIn {
            service_action,
            alloc_len,
        } => crate::pr::handlers::prin(ctx, service_action, alloc_len),
        Cdb::PersistentReserveOut {
            service_action,
            scope,
            pr_type,
            param_len,
        } => crate::pr::handlers::prout(ctx, service_action, scope, pr_type, param_len).await,
        Cdb::Reserve {
            third_party,
            long_id,
            third_party_id,
            ..
        } => spc::reserve::reserve(ctx, third_party, long_id, third_party_id),
        Cdb::Release {
            third_party,
            long_id,
            third_party_id,
            ..
        } => spc::reserve::release(ctx, third_party, long_id, third_party_id),
        _ => Ok(Xfer::NONE),
    }
}

fn data_in(data: &DataBuffer, bytes: &[u8], alloc_len: usize) -> Xfer {
    let wanted = bytes.len().min(alloc_len);
    let len = data.write_at(0, &bytes[..wanted]);
    Xfer { len, wanted }
}

/// Run the handler of a decoded command.
async fn dispatch(ctx: &Ctx<'_>, cdb: &Cdb) -> Outcome {
    match *cdb {
        Cdb::TestUnitReady => Ok(Xfer::NONE),
        Cdb::RequestSense { desc, alloc_len } => spc::request_sense(ctx, desc, alloc_len),
        Cdb::Inquiry {
            evpd,
            page,
            alloc_len,
        } => spc::inquiry(ctx, evpd, page, alloc_len),
        Cdb::ModeSense { .. } => spc::mode::sense(ctx, cdb),
        Cdb::ModeSelect {
            long,
            pf,
            sp,
            param_len,
        } => spc::mode::select(ctx, long, pf, sp, param_len).await,
        Cdb::LogSense { .. } => spc::log_sense(ctx, cdb),
        Cdb::ReportLuns { select, alloc_len } => {
            let bytes = spc::report_luns_data(ctx.target, select, alloc_len)?;
            Ok(ctx.data_in(&bytes, alloc_len as usize))
        }
        Cdb::ReportSupportedOpcodes {
            rctd,
            options,
            opcode,
            service_action,
            alloc_len,
        } => spc::rsoc::report(ctx, rctd, options, opcode, service_action, alloc_len),
        Cdb::ReportSupportedTmf { repd, alloc_len } => spc::rsoc::report_tmf(ctx, repd, alloc_len),
        Cdb::ReadCapacity10 { lba, pmi } => sbc::read_capacity_10(ctx, lba, pmi),
        Cdb::ReadCapacity16 { alloc_len } => sbc::read_capacity_16(ctx, alloc_len),
        Cdb::GetLbaStatus { lba, alloc_len } => sbc::get_lba_status(ctx, lba, alloc_len).await,
        Cdb::Read(ref rw) => sbc::read(ctx, rw).await,
        Cdb::Write(ref rw) => sbc::write(ctx, rw, false).await,
        Cdb::WriteAndVerify(ref rw) => sbc::write(ctx, rw, true).await,
        Cdb::OrWrite(ref rw) => sbc::or_write(ctx, rw).await,
        Cdb::Verify(ref rw) => sbc::verify(ctx, rw).await,
        Cdb::WriteSame(ref ws) => sbc::write_same(ctx, ws).await,
        Cdb::WriteAtomic(ref wa) => sbc::write_atomic(ctx, wa).await,
        Cdb::Unmap {
            anchor, param_len, ..
        } => sbc::unmap(ctx, anchor, param_len).await,
        Cdb::CompareAndWrite {
            lba,
            blocks,
            wrprotect,
            fua,
            ..
        } => sbc::compare_and_write(ctx, lba, blocks, wrprotect, fua).await,
        Cdb::SynchronizeCache(ref r) => sbc::synchronize_cache(ctx, r).await,
        Cdb::PreventAllow { prevent } => sbc::prevent_allow(ctx, prevent),
        Cdb::ReportTargetPortGroups { format, alloc_len } => {
            spc::report_target_port_groups(ctx, format, alloc_len)
        }
        Cdb::SetTargetPortGroups { param_len } => spc::set_target_port_groups(ctx, param_len),
        Cdb::Sanitize {
            immed,
            ause,
            service_action,
            param_len,
        } => sbc::sanitize(ctx, immed, ause, service_action, param_len).await,
        Cdb::ExtendedCopy { param_len } => spc::xcopy::extended_copy(ctx, param_len).await,
        Cdb::ReceiveCopyResults {
            service_action,
            list_id,
            alloc_len,
        } => spc::xcopy::receive_copy_results(ctx, service_action, list_id, alloc_len),
        Cdb::PopulateToken { list_id, param_len } => {
            spc::xcopy::rod::populate_token(ctx, list_id, param_len)
        }
        Cdb::WriteUsingToken { list_id, param_len } => {
            spc::xcopy::rod::write_using_token(ctx, list_id, param_len).await
        }
        Cdb::ReceiveRodTokenInformation { list_id, alloc_len } => {
            spc::xcopy::rod::receive_rod_token_information(ctx, list_id, alloc_len)
        }
        Cdb::PreFetch(ref r) => sbc::pre_fetch(ctx, r),
        Cdb::ReadToc {
            msf,
            format,
            track,
            alloc_len,
        } => crate::mmc::read_toc(ctx, msf, format, track, alloc_len),
        Cdb::GetConfiguration {
            rt,
            start,
            alloc_len,
        } => crate::mmc::get_configuration(ctx, rt, start, alloc_len),
        Cdb::GetEventStatus {
            polled,
            classes,
            alloc_len,
        } => crate::mmc::get_event_status(ctx, polled, classes, alloc_len),
        Cdb::ReadDiscInformation {
            data_type,
            alloc_len,
        } => crate::mmc::read_disc_information(ctx, data_type, alloc_len),
        Cdb::ReadTrackInformation {
            open,
            address_type,
            address,
            alloc_len,
        } => crate::mmc::read_track_information(ctx, open, address_type, address, alloc_len),
        Cdb::MechanismStatus { alloc_len } => crate::mmc::mechanism_status(ctx, alloc_len),
        Cdb::StartStopUnit {
            power_condition,
            no_flush,
            start,
            loej,
            ..
        } => sbc::start_stop_unit(ctx, power_condition, no_flush, start, loej).await,
        Cdb::FormatUnit {
            fmtpinfo,
            longlist,
            fmtdata,
            ..
        } => sbc::format_unit(ctx, fmtpinfo, longlist, fmtdata),
        Cdb::ReadDefectData {
            size,
            req_plist,
            req_glist,
            format,
            alloc_len,
        } => sbc::read_defect_data(ctx, size, req_plist, req_glist, format, alloc_len),
        // Routed to `ssc::dispatch` by `execute` (they can transfer data
        // with CHECK CONDITION).
        Cdb::Rewind { .. }
        | Cdb::ReadBlockLimits
        | Cdb::TapeRead { .. }
        | Cdb::TapeWrite { .. }
        | Cdb::WriteFilemarks { .. }
        | Cdb::Space { .. }
        | Cdb::Erase { .. }
        | Cdb::LoadUnload { .. }
        | Cdb::Locate { .. }
        | Cdb::ReadPosition { .. } => Ok(Xfer::NONE),
        // Routed to `dispatch_reservations` by `execute`.
        Cdb::PersistentReserveIn { .. }
        | Cdb::PersistentReserveOut { .. }
        | Cdb::Reserve { .. }
        | Cdb::Release { .. } => Ok(Xfer::NONE),
    }
}

impl From<Status> for Response {
    fn from(status: Status) -> Self {
        Response::status(status)
    }
}

/// The conflict columns ([`table::PrConflicts::bits`]) a command of table
/// row `row` may be refused by: its row's, and for PREVENT ALLOW MEDIUM
/// REMOVAL the write class too (it is one when PREVENT is set). The
/// lock-free check compares them with those the held reservations fire.
fn reservation_columns(row: &CommandDesc) -> u8 {
    let extra = if row.handler == Handler::PreventAllow {
        table::WRITES.bits()
    } else {
        0
    };
    row.conflicts.bits() | extra
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Transports spawn `execute` on multi-threaded executors: its future
    /// must stay `Send` (a compile-time check).
    #[test]
    fn accepts_execute_futures_on_any_thread() {
        fn is_send<T: Send>(_: &T) {}
        let target = Target::new(crate::engine::TargetConfig::default());
        let cmd = Command {
            nexus: NexusId(1),
            lun: Lun::from_index(0).unwrap(),
            tag: 0,
            attribute: crate::engine::TaskAttribute::Simple,
            cdb: crate::engine::RawCdb::new(&[0; 6]).unwrap(),
            data: DataBuffer::empty(),
        };
        let fut = target.execute(cmd);
        is_send(&fut);
        let r = futures::executor::block_on(fut);
        assert_eq!(r.status, Status::CHECK_CONDITION); // no LU 0
    }
}
