//! Copy results held for RECEIVE COPY RESULTS (SPC-4 §6.18) and RECEIVE
//! ROD TOKEN INFORMATION, per I_T nexus and list identifier.
//!
//! A logical unit keeps at most one record per (nexus, list identifier),
//! and at most [`MAX_RECORDS_PER_NEXUS`] per nexus (the oldest finished
//! record goes first), dropped with the nexus. LID1 identifiers (one byte)
//! and the four-byte ones of POPULATE TOKEN and WRITE USING TOKEN share one
//! space, the one-byte values being the four-byte values 0-255. A copy that
//! is running holds its record as [`CopyState::Running`]; the [`Running`]
//! guard finishes the record when the copy ends, including when a task
//! management function drops the copy part-way.

use std::collections::HashMap;
use std::sync::Mutex;

use super::rod::TOKEN_LEN;

use crate::engine::NexusId;
use crate::sense::{Asc, Sense, SenseFormat};
use crate::status::Status;

use super::list::{self, ListIdUsage};

/// How a copy ended, or that it has not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CopyState {
    /// Still copying.
    Running,
    /// Completed without errors.
    Done,
    /// Completed with an error: the command's status and sense.
    Failed { status: Status, sense: Vec<u8> },
}

/// What RECEIVE COPY RESULTS and RECEIVE ROD TOKEN INFORMATION report
/// about one copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopyRecord {
    pub state: CopyState,
    /// The THIRD-PARTY COPY OUT service action that made it (00h for
    /// EXTENDED COPY(LID1), 10h POPULATE TOKEN, 11h WRITE USING TOKEN).
    pub action: u8,
    /// Segment descriptors processed.
    pub segments: u16,
    /// Bytes written to copy destinations.
    pub bytes: u64,
    /// Logical blocks transferred or represented (ROD token commands).
    pub blocks: u64,
    /// How WRITE USING TOKEN ended, when it did not use the whole ROD or
    /// write every block asked for (copy operation status 03h or 04h).
    pub partial: Option<u8>,
    /// The ROD token POPULATE TOKEN created.
    pub token: Option<Box<[u8; TOKEN_LEN]>>,
    /// Whether the record outlives the copy (LIST ID USAGE 00b, and every
    /// ROD token command).
    pub held: bool,
    /// Order of creation, to drop the oldest finished record first.
    pub(crate) seq: u64,
}

/// Most records one nexus keeps on one logical unit.
pub(crate) const MAX_RECORDS_PER_NEXUS: usize = 256;

#[derive(Debug, Default)]
struct Records {
    map: HashMap<(NexusId, u32), CopyRecord>,
    next_seq: u64,
}

/// The records of one logical unit.
#[derive(Debug, Default)]
pub(crate) struct HeldResults(Mutex<Records>);

impl HeldResults {
    fn records(&self) -> std::sync::MutexGuard<'_, Records> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Start a copy under `list_id`: refused with OPERATION IN PROGRESS when
    /// a copy with the same identifier runs for `nexus` (SPC-4 §6.4.1).
    pub(crate) fn start(
        &self,
        nexus: NexusId,
        list_id: u32,
        usage: ListIdUsage,
        action: u8,
    ) -> Result<Running<'_>, Sense> {
        if usage == ListIdUsage::None {
            return Ok(Running {
                results: self,
                key: None,
            });
        }
        let mut records = self.records();
        let key = (nexus, list_id);
        if records
            .map
            .get(&key)
            .is_some_and(|r| r.state == CopyState::Running)
        {
            return Err(Sense::illegal(Asc::OPERATION_IN_PROGRESS));
        }
        if !records.map.contains_key(&key) {
            records.make_room(nexus)?;
        }
        let seq = records.next_seq;
        records.next_seq += 1;
        records.map.insert(
            key,
            CopyRecord {
                state: CopyState::Running,
                action,
                segments: 0,
                bytes: 0,
                blocks: 0,
                partial: None,
                token: None,
                held: usage == ListIdUsage::Hold,
                seq,
            },
        );
        Ok(Running {
            results: self,
            key: Some(key),
        })
    }

    /// The record of `list_id` for `nexus`.
    pub(crate) fn get(&self, nexus: NexusId, list_id: u32) -> Option<CopyRecord> {
        self.records().map.get(&(nexus, list_id)).cloned()
    }

    /// Drop every record of `nexus` (I_T nexus loss or reset).
    pub(crate) fn forget(&self, nexus: NexusId) {
        self.records().map.retain(|(n, _), _| *n != nexus);
    }

    /// Drop every finished record (logical unit reset).
    pub(crate) fn clear_finished(&self) {
        self.records()
            .map
            .retain(|_, r| r.state == CopyState::Running);
    }
}

impl Records {
    /// Keep `nexus` below its limit: drop its oldest finished record, or
    /// refuse when every one of them still runs.
    fn make_room(&mut self, nexus: NexusId) -> Result<(), Sense> {
        let mine = self.map.keys().filter(|(n, _)| *n == nexus).count();
        if mine < MAX_RECORDS_PER_NEXUS {
            return Ok(());
        }
        let oldest = self
            .map
            .iter()
            .filter(|((n, _), r)| *n == nexus && r.state != CopyState::Running)
            .min_by_key(|(_, r)| r.seq)
            .map(|(k, _)| *k)
            .ok_or_else(|| Sense::illegal(Asc::OPERATION_IN_PROGRESS))?;
        self.map.remove(&oldest);
        Ok(())
    }
}

/// A running copy's hold on its record.
pub(crate) struct Running<'a> {
    results: &'a HeldResults,
    key: Option<(NexusId, u32)>,
}

impl Running<'_> {
    /// Count a processed segment.
    pub(crate) fn segment_done(&self) {
        self.update(|r| r.segments = r.segments.saturating_add(1));
    }

    /// Count `bytes` copied within the current segment.
    pub(crate) fn progress(&self, bytes: u64) {
        self.update(|r| r.bytes = r.bytes.saturating_add(bytes));
    }

    /// Record what a ROD token command did: the blocks transferred (or
    /// represented), how it fell short if it did, and the token it made.
    pub(crate) fn record_rod(
        &self,
        blocks: u64,
        partial: Option<u8>,
        token: Option<Box<[u8; TOKEN_LEN]>>,
    ) {
        self.update(|r| {
            r.blocks = blocks;
            r.partial = partial;
            r.token = token;
        });
    }

    /// End the copy with `outcome`.
    pub(crate) fn finish(mut self, outcome: &Result<(), Sense>) {
        let state = match outcome {
            Ok(()) => CopyState::Done,
            Err(sense) => CopyState::Failed {
                status: Status::CHECK_CONDITION,
                sense: sense.to_vec(SenseFormat::Fixed),
            },
        };
        self.end(state);
    }

    fn update(&self, f: impl FnOnce(&mut CopyRecord)) {
        if let Some(key) = self.key {
            if let Some(r) = self.results.records().map.get_mut(&key) {
                f(r);
            }
        }
    }

    fn end(&mut self, state: CopyState) {
        if let Some(key) = self.key.take() {
            let records = &mut *self.results.records();
            if let Some(r) = records.map.get_mut(&key) {
                if r.held {
                    r.state = state;
                } else {
                    records.map.remove(&key);
                }
            }
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        // Dropped part-way: the task was aborted.
        self.end(CopyState::Failed {
            status: Status::TASK_ABORTED,
            sense: Vec::new(),
        });
    }
}

/// COPY STATUS parameter data (SPC-4 §6.18.3).
pub(crate) fn copy_status(r: &CopyRecord) -> Vec<u8> {
    let mut d = vec![0u8; 12];
    d[0..4].copy_from_slice(&8u32.to_be_bytes());
    // HDD stays zero: no held data is ever discarded (none is kept).
    d[4] = match r.state {
        CopyState::Running => 0x00,
        CopyState::Done => 0x01,
        CopyState::Failed { .. } => 0x02,
    };
    d[5..7].copy_from_slice(&r.segments.to_be_bytes());
    // TRANSFER COUNT UNITS: the smallest of bytes, KiB, MiB ... (00h-06h,
    // SPC-4 table 185) in which the count fits.
    let (mut units, mut count) = (0u8, r.bytes);
    while count > u64::from(u32::MAX) && units < 6 {
        units += 1;
        count = count.div_ceil(1024);
    }
    d[7] = units;
    d[8..12].copy_from_slice(&u32::try_from(count).unwrap_or(u32::MAX).to_be_bytes());
    d
}

/// FAILED SEGMENT DETAILS parameter data (SPC-4 §6.18.5): the status and
/// sense data of a copy that failed; only the header for one that did not.
pub(crate) fn failed_segment_details(r: &CopyRecord) -> Vec<u8> {
    let CopyState::Failed { status, sense } = &r.state else {
        return vec![0u8; 4];
    };
    let mut d = vec![0u8; 60];
    d.extend_from_slice(sense);
    let available = u32::try_from(d.len() - 4).unwrap_or(u32::MAX);
    d[0..4].copy_from_slice(&available.to_be_bytes());
    d[56] = status.0;
    d[58..60].copy_from_slice(&u16::try_from(sense.len()).unwrap_or(0).to_be_bytes());
    d
}

/// OPERATING PARAMETERS parameter data (SPC-4 §6.18.4) for a logical unit
/// with `block_size`-byte blocks.
pub(crate) fn operating_parameters(block_size: u32) -> Vec<u8> {
    let implemented = [list::SEG_BLOCK_TO_BLOCK, list::CSCD_IDENTIFICATION];
    let mut d = vec![0u8; 44];
    let available = u32::try_from(d.len() - 4 + implemented.len()).unwrap_or(0);
    d[0..4].copy_from_slice(&available.to_be_bytes());
    d[4] = 0x01; // SNLID: LIST ID USAGE 11b is supported
    d[8..10].copy_from_slice(&list::MAX_CSCDS.to_be_bytes());
    d[10..12].copy_from_slice(&list::MAX_SEGMENTS.to_be_bytes());
    d[12..16].copy_from_slice(&list::MAX_DESC_LIST_LEN.to_be_bytes());
    d[16..20].copy_from_slice(&max_segment_len(block_size).to_be_bytes());
    // MAXIMUM INLINE DATA LENGTH, HELD DATA LIMIT and MAXIMUM STREAM
    // DEVICE TRANSFER SIZE stay zero: no inline, held or stream data.
    d[34..36].copy_from_slice(&MAX_CONCURRENT_COPIES.to_be_bytes());
    d[36] = u8::try_from(MAX_CONCURRENT_COPIES).unwrap_or(u8::MAX);
    d[37] = u8::try_from(block_size.trailing_zeros()).unwrap_or(0); // DATA SEGMENT GRANULARITY
    d[43] = u8::try_from(implemented.len()).unwrap_or(0);
    d.extend_from_slice(&implemented);
    d
}

/// TOTAL CONCURRENT COPIES and MAXIMUM CONCURRENT COPIES: how many list
/// identifiers a nexus can have running at once.
pub(crate) const MAX_CONCURRENT_COPIES: u16 = 255;

/// MAXIMUM SEGMENT LENGTH: the most NUMBER OF BLOCKS (16 bits) can name.
pub(crate) fn max_segment_len(block_size: u32) -> u32 {
    u32::try_from(u64::from(u16::MAX) * u64::from(block_size)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: CopyState) -> CopyRecord {
        CopyRecord {
            state,
            action: 0,
            segments: 0,
            bytes: 0,
            blocks: 0,
            partial: None,
            token: None,
            held: true,
            seq: 0,
        }
    }

    #[test]
    fn keeps_a_bounded_number_of_records_per_nexus() {
        let held = HeldResults::default();
        let n = NexusId(1);
        let first = held.start(n, 0, ListIdUsage::Hold, 0).unwrap();
        for id in 1..u32::try_from(MAX_RECORDS_PER_NEXUS).unwrap() {
            held.start(n, id, ListIdUsage::Hold, 0x10)
                .unwrap()
                .finish(&Ok(()));
        }
        // Full: a new identifier pushes out the oldest finished record
        // (1), never the running one (0).
        held.start(n, 1000, ListIdUsage::Hold, 0x10)
            .unwrap()
            .finish(&Ok(()));
        assert!(held.get(n, 1).is_none());
        assert_eq!(held.get(n, 0).unwrap().state, CopyState::Running);
        assert!(held.get(n, 1000).is_some());
        // Another nexus is not affected.
        assert!(held.start(NexusId(2), 1, ListIdUsage::Hold, 0).is_ok());
        drop(first);
    }

    #[test]
    fn holds_results_only_for_list_id_usage_00b() {
        let held = HeldResults::default();
        let n = NexusId(1);
        held.start(n, 1, ListIdUsage::Hold, 0)
            .unwrap()
            .finish(&Ok(()));
        assert_eq!(held.get(n, 1).unwrap().state, CopyState::Done);
        held.start(n, 2, ListIdUsage::Unique, 0)
            .unwrap()
            .finish(&Ok(()));
        assert!(held.get(n, 2).is_none());
        held.start(n, 3, ListIdUsage::None, 0)
            .unwrap()
            .finish(&Ok(()));
        assert!(held.get(n, 3).is_none());
        held.forget(n);
        assert!(held.get(n, 1).is_none());
    }

    #[test]
    fn refuses_a_list_identifier_in_use_and_records_aborts() {
        let held = HeldResults::default();
        let n = NexusId(1);
        let running = held.start(n, 9, ListIdUsage::Hold, 0).unwrap();
        let e = held.start(n, 9, ListIdUsage::Unique, 0).err().unwrap();
        assert_eq!(e.asc, Asc::OPERATION_IN_PROGRESS);
        // Another nexus has its own identifiers.
        assert!(held.start(NexusId(2), 9, ListIdUsage::Hold, 0).is_ok());
        running.progress(4096);
        running.segment_done();
        drop(running);
        let r = held.get(n, 9).unwrap();
        assert_eq!((r.segments, r.bytes), (1, 4096));
        assert!(matches!(
            r.state,
            CopyState::Failed {
                status: Status::TASK_ABORTED,
                ..
            }
        ));
        assert!(held.start(n, 9, ListIdUsage::Hold, 0).is_ok());
    }

    #[test]
    fn encodes_copy_status_in_the_smallest_unit_that_fits() {
        let mut r = record(CopyState::Done);
        r.segments = 3;
        r.bytes = 3 * 4096;
        let d = copy_status(&r);
        assert_eq!(&d[..8], &[0, 0, 0, 8, 1, 0, 3, 0]);
        assert_eq!(u32::from_be_bytes([d[8], d[9], d[10], d[11]]), 12288);
        r.bytes = 8 << 30;
        let d = copy_status(&r);
        assert_eq!(d[7], 1);
        assert_eq!(u32::from_be_bytes([d[8], d[9], d[10], d[11]]), 8 << 20);
    }

    #[test]
    fn encodes_failed_segment_details_with_the_sense_data() {
        let sense = Sense::new(
            crate::sense::SenseKey::COPY_ABORTED,
            Asc::COPY_TARGET_DEVICE_NOT_REACHABLE,
        )
        .to_vec(SenseFormat::Fixed);
        let r = record(CopyState::Failed {
            status: Status::CHECK_CONDITION,
            sense: sense.clone(),
        });
        let d = failed_segment_details(&r);
        assert_eq!(d.len(), 60 + sense.len());
        assert_eq!(d[56], 0x02);
        assert_eq!(&d[60..], &sense[..]);
        assert_eq!(
            u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize,
            d.len() - 4
        );
    }

    #[test]
    fn operating_parameters_list_the_implemented_descriptors() {
        let d = operating_parameters(512);
        assert_eq!(d.len(), 46);
        assert_eq!(u32::from_be_bytes([d[0], d[1], d[2], d[3]]), 42);
        assert_eq!(d[37], 9);
        assert_eq!(&d[43..], &[2, 0x02, 0xe4]);
        assert_eq!(
            u32::from_be_bytes([d[16], d[17], d[18], d[19]]),
            65535 * 512
        );
    }
}
