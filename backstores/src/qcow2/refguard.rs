//! Crash consistency of qcow2 metadata pointers, kept in our storage layer.
//!
//! imago 0.2.6 writes a pointer to newly allocated metadata straight to the
//! file (an L1 entry naming a new L2 table in `ensure_l2()`, the header's
//! L1 table pointer in `grow_l1_table()`, a refcount-table entry naming a
//! new refcount block in `ensure_rb()`) while the new cluster's refcount is
//! still only in its refcount-block cache. A process killed before the
//! next flush leaves a referenced cluster with refcount 0 on disk
//! (`qemu-img check`: `ERROR cluster N refcount=0 reference=1`), and a
//! later allocation may hand that cluster out twice. QEMU flushes its
//! refcount cache before such a pointer (`l2_allocate()`).
//!
//! A published crate cannot patch imago, so the rule is kept here, in the
//! [`Storage`](imago::Storage) imago writes through: [`RefcountGuard`]
//! sees every write that lands in a *pointer region* (the header, the L1
//! table, the refcount table) and, before it reaches the file, makes sure
//! each cluster the write names has a refcount of at least 1 on disk: it
//! reads that cluster's refcount entry from the refcount block the
//! refcount table names and, if it is 0, writes 1. This is only ever an
//! increase, the refcount imago's cache already holds, so the worst a kill
//! can leave is a leaked cluster, which `qemu-img check` reports and allows
//! (as QEMU's own crashes do). Nothing is held back, so imago's own order
//! for everything else (refcount blocks before L2 tables, new pointers
//! before freeing old tables) stays as it wrote it.
//!
//! To find refcount entries the guard keeps the refcount table's index →
//! block map, read at open and updated by every write to the table (and
//! re-read when the header moves the table). `tests/qcow2_crash.rs` kills a
//! writer at random moments, sixty times, against the crates.io imago.
//!
//! A write that imago issues concurrently for the same refcount block,
//! from a snapshot older than the allocation, could still land after ours;
//! imago writes a cached block under that block's lock, after the
//! allocation that dirtied it, so this is not seen in practice.

use std::collections::BTreeMap;
use std::io;
use std::sync::Mutex;

/// The header bytes the layout is read from (version 3 up to
/// `refcount_order`).
pub(crate) const HEADER_BYTES: usize = 100;

/// Bits 9-55 of an L1 or refcount table entry: the cluster offset.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;

/// The largest L1 table qcow2 allows (QEMU's `QCOW_MAX_L1_SIZE`); a
/// header naming a larger one names no clusters here.
const MAX_L1_BYTES: u64 = 32 << 20;

/// The largest refcount table re-read when the header moves it (as
/// `check_header` allows at open).
const MAX_REFTABLE_BYTES: u64 = 8 << 20;

/// A byte range `[start, end)` of the image file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u64,
    end: u64,
}

impl Span {
    fn new(start: u64, len: u64) -> Self {
        Self {
            start,
            end: start.saturating_add(len),
        }
    }

    fn overlaps(self, other: Span) -> bool {
        self.start < other.end && other.start < self.end
    }

    fn len(self) -> u64 {
        self.end - self.start
    }
}

/// Where the header puts the pointer tables, and the refcount geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    l1: Span,
    reftable: Span,
    cluster: u64,
    /// Width of a refcount in bits: 1 to 64.
    refcount_bits: u32,
}

impl Layout {
    /// Read from a header; garbage gives garbage spans, never a panic (the
    /// image was validated at open).
    fn parse(h: &[u8; HEADER_BYTES]) -> Self {
        let be32 = |at: usize| u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let be64 = |at: usize| (u64::from(be32(at)) << 32) | u64::from(be32(at + 4));
        let cluster = 1u64 << be32(20).clamp(9, 21);
        let refcount_order = if be32(4) >= 3 { be32(96).min(6) } else { 4 };
        Self {
            l1: Span::new(be64(40), u64::from(be32(36)).saturating_mul(8)),
            reftable: Span::new(be64(48), u64::from(be32(56)).saturating_mul(cluster)),
            cluster,
            refcount_bits: 1 << refcount_order,
        }
    }

    /// Refcount entries in one refcount block.
    fn entries_per_block(&self) -> u64 {
        self.cluster * 8 / u64::from(self.refcount_bits)
    }

    /// Clusters a table in `span` occupies.
    fn clusters(&self, span: Span) -> impl Iterator<Item = u64> {
        let first = span.start - span.start % self.cluster;
        let step = usize::try_from(self.cluster).unwrap_or(usize::MAX);
        (first..span.end).step_by(step)
    }
}

/// How the guard reads and writes the image file (no ordering of its own).
pub(crate) trait RawFile {
    /// Read the file's bytes at `offset` (zeroes past its end).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Write `data` at `offset`.
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
}

#[derive(Debug)]
struct State {
    header: [u8; HEADER_BYTES],
    layout: Layout,
    /// Refcount table index → refcount block offset (non-zero entries).
    blocks: BTreeMap<u64, u64>,
}

impl State {
    /// Apply a refcount table write at `offset` (whole entries only) to
    /// the map; returns the refcount blocks it names.
    fn learn(&mut self, offset: u64, data: &[u8]) -> Vec<u64> {
        let mut named = Vec::new();
        let rt = self.layout.reftable;
        let skip = (8 - (offset.wrapping_sub(rt.start)) % 8) % 8;
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        let mut at = offset.saturating_add(skip as u64);
        for e in data.get(skip..).unwrap_or(&[]).chunks_exact(8) {
            if Span::new(at, 8).overlaps(rt) && at >= rt.start {
                let index = (at - rt.start) / 8;
                let mut b = [0u8; 8];
                b.copy_from_slice(e);
                let block = u64::from_be_bytes(b) & OFFSET_MASK;
                if block == 0 {
                    self.blocks.remove(&index);
                } else {
                    self.blocks.insert(index, block);
                    named.push(block);
                }
            }
            at = at.saturating_add(8);
        }
        named
    }

    /// Make the refcount of the cluster at `cluster` at least 1 on disk.
    fn ensure_counted(&self, file: &dyn RawFile, cluster: u64) -> io::Result<()> {
        let l = self.layout;
        let index = cluster / l.cluster;
        let per = l.entries_per_block();
        let Some(&block) = self.blocks.get(&(index / per)) else {
            // No refcount block covers it yet: imago names the block in the
            // refcount table (a write this guard sees) before it hands out
            // clusters it covers, so this is a corrupt or hostile image.
            tracing::debug!(
                cluster,
                "qcow2: pointer to a cluster no refcount block covers"
            );
            return Ok(());
        };
        let bit = (index % per) * u64::from(l.refcount_bits);
        let at = block + bit / 8;
        let width = usize::try_from(u64::from(l.refcount_bits).div_ceil(8)).unwrap_or(1);
        let mut entry = [0u8; 8];
        let entry = &mut entry[..width];
        file.read_at(at, entry)?;
        if l.refcount_bits >= 8 {
            if entry.iter().all(|&b| b == 0) {
                entry[width - 1] = 1;
                file.write_at(at, entry)?;
            }
        } else {
            let shift = u32::try_from(bit % 8).unwrap_or(0);
            // refcount_bits is 1, 2 or 4 here.
            let mask = u8::MAX >> (8 - l.refcount_bits);
            if (entry[0] >> shift) & mask == 0 {
                entry[0] |= 1 << shift;
                file.write_at(at, entry)?;
            }
        }
        Ok(())
    }
}

/// Keeps imago's pointer writes behind the refcounts they need; see the
/// module documentation.
#[derive(Debug)]
pub(crate) struct RefcountGuard {
    state: Mutex<State>,
}

impl RefcountGuard {
    /// Start from the header the file holds (its first bytes) and its
    /// refcount table.
    pub(crate) fn new(header: &[u8], reftable: &[u8]) -> Self {
        let mut bytes = [0u8; HEADER_BYTES];
        let n = header.len().min(HEADER_BYTES);
        bytes[..n].copy_from_slice(&header[..n]);
        let layout = Layout::parse(&bytes);
        let mut state = State {
            header: bytes,
            layout,
            blocks: BTreeMap::new(),
        };
        state.learn(layout.reftable.start, reftable);
        Self {
            state: Mutex::new(state),
        }
    }

    /// Whether a write of `len` bytes at `offset` lands in a pointer region
    /// (then pass it to [`RefcountGuard::before_write`]).
    pub(crate) fn watches(&self, offset: u64, len: u64) -> bool {
        let span = Span::new(offset, len);
        self.state.lock().is_ok_and(|st| {
            span.overlaps(Span::new(0, HEADER_BYTES as u64))
                || span.overlaps(st.layout.l1)
                || span.overlaps(st.layout.reftable)
        })
    }

    /// Before `data` is written at `offset`: give every cluster it names a
    /// refcount on disk. The caller writes `data` while `file` is not
    /// written by anyone else's pointer update (imago serialises them).
    pub(crate) fn before_write(
        &self,
        offset: u64,
        data: &[u8],
        file: &dyn RawFile,
    ) -> io::Result<()> {
        let mut st = self
            .state
            .lock()
            .map_err(|_| io::Error::other("qcow2 refcount guard poisoned"))?;
        let span = Span::new(offset, data.len() as u64);
        let mut named: Vec<u64> = Vec::new();

        if span.overlaps(Span::new(0, HEADER_BYTES as u64)) {
            let before = st.layout;
            let end = usize::try_from(span.end.min(HEADER_BYTES as u64)).unwrap_or(0);
            let start = usize::try_from(offset).unwrap_or(HEADER_BYTES).min(end);
            st.header[start..end].copy_from_slice(&data[..end - start]);
            st.layout = Layout::parse(&st.header);
            let now = st.layout;
            if now.l1 != before.l1 && now.l1.len() <= MAX_L1_BYTES {
                named.extend(now.clusters(now.l1));
            }
            if now.reftable != before.reftable && now.reftable.len() <= MAX_REFTABLE_BYTES {
                named.extend(now.clusters(now.reftable));
                // imago wrote the new table before the header naming it.
                if now.reftable.len() <= MAX_REFTABLE_BYTES {
                    let mut table = vec![0u8; usize::try_from(now.reftable.len()).unwrap_or(0)];
                    file.read_at(now.reftable.start, &mut table)?;
                    st.blocks.clear();
                    st.learn(now.reftable.start, &table);
                }
            }
        }
        if span.overlaps(st.layout.reftable) {
            named.extend(st.learn(offset, data));
        }
        let l1 = st.layout.l1;
        if span.overlaps(l1) {
            let skip =
                usize::try_from((8 - offset.wrapping_sub(l1.start) % 8) % 8).unwrap_or(usize::MAX);
            let mut at = offset.saturating_add(skip as u64);
            for e in data.get(skip..).unwrap_or(&[]).chunks_exact(8) {
                if at >= l1.start && at < l1.end {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(e);
                    let l2 = u64::from_be_bytes(b) & OFFSET_MASK;
                    if l2 != 0 {
                        named.push(l2);
                    }
                }
                at = at.saturating_add(8);
            }
        }
        named.sort_unstable();
        named.dedup();
        for cluster in named {
            st.ensure_counted(file, cluster)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test offsets are small
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A file in memory that logs its writes.
    #[derive(Default)]
    struct Mem {
        bytes: RefCell<Vec<u8>>,
        writes: RefCell<Vec<u64>>,
    }

    impl RawFile for Mem {
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            let b = self.bytes.borrow();
            for (i, x) in buf.iter_mut().enumerate() {
                *x = b.get(offset as usize + i).copied().unwrap_or(0);
            }
            Ok(())
        }
        fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
            if offset > 1 << 20 {
                return Ok(()); // garbage offsets: not worth the memory
            }
            let mut b = self.bytes.borrow_mut();
            let end = offset as usize + data.len();
            if b.len() < end {
                b.resize(end, 0);
            }
            b[offset as usize..end].copy_from_slice(data);
            self.writes.borrow_mut().push(offset);
            Ok(())
        }
    }

    /// 512-byte clusters (256 16-bit refcounts a block), 4 L1 entries at
    /// 0x600, a one-cluster reftable at 0x200 naming a block at 0x400.
    fn header(version: u32, l1: u64, rt: u64, order: u32) -> [u8; HEADER_BYTES] {
        let mut h = [0u8; HEADER_BYTES];
        h[4..8].copy_from_slice(&version.to_be_bytes());
        h[20..24].copy_from_slice(&9u32.to_be_bytes());
        h[36..40].copy_from_slice(&4u32.to_be_bytes());
        h[40..48].copy_from_slice(&l1.to_be_bytes());
        h[48..56].copy_from_slice(&rt.to_be_bytes());
        h[56..60].copy_from_slice(&1u32.to_be_bytes());
        h[96..100].copy_from_slice(&order.to_be_bytes());
        h
    }

    fn reftable(block: u64) -> Vec<u8> {
        let mut rt = vec![0u8; 512];
        rt[..8].copy_from_slice(&block.to_be_bytes());
        rt
    }

    fn refcount16(f: &Mem, cluster: u64) -> u16 {
        let mut e = [0u8; 2];
        f.read_at(0x400 + 2 * cluster, &mut e).unwrap();
        u16::from_be_bytes(e)
    }

    #[test]
    fn data_writes_are_not_watched() {
        let g = RefcountGuard::new(&header(3, 0x600, 0x200, 4), &reftable(0x400));
        assert!(!g.watches(0x1000, 4096));
        assert!(g.watches(0x608, 8));
        assert!(g.watches(0x200, 8));
        assert!(g.watches(0, 104));
    }

    #[test]
    fn an_l1_entry_gets_its_l2_tables_refcount_first() {
        let g = RefcountGuard::new(&header(3, 0x600, 0x200, 4), &reftable(0x400));
        let f = Mem::default();
        // L1 entry 1 names the L2 table in cluster 9 (0x1200), with the
        // COPIED flag.
        let entry = (0x1200u64 | 1 << 63).to_be_bytes();
        g.before_write(0x608, &entry, &f).unwrap();
        assert_eq!(refcount16(&f, 9), 1);
        // Already counted: nothing written again.
        g.before_write(0x608, &entry, &f).unwrap();
        assert_eq!(f.writes.borrow().len(), 1);
        // A refcount of 2 is left alone.
        f.write_at(0x400 + 2 * 10, &2u16.to_be_bytes()).unwrap();
        g.before_write(0x610, &0x1400u64.to_be_bytes(), &f).unwrap();
        assert_eq!(refcount16(&f, 10), 2);
    }

    #[test]
    fn a_new_refcount_block_and_a_moved_l1_are_counted() {
        // 16 refcount blocks' worth of clusters: index 1 covers clusters
        // 256..512.
        let g = RefcountGuard::new(&header(3, 0x600, 0x200, 4), &reftable(0x400));
        let f = Mem::default();
        // Reftable entry 1 names a refcount block in cluster 7 (covered by
        // block 0).
        g.before_write(0x208, &0xe00u64.to_be_bytes(), &f).unwrap();
        assert_eq!(refcount16(&f, 7), 1);
        // An L1 entry naming cluster 300 finds block 1 (at 0xe00).
        g.before_write(0x600, &(300u64 * 512).to_be_bytes(), &f)
            .unwrap();
        let mut e = [0u8; 2];
        f.read_at(0xe00 + 2 * (300 - 256), &mut e).unwrap();
        assert_eq!(u16::from_be_bytes(e), 1);
        // The header moves L1 to clusters 20..: its cluster is counted.
        g.before_write(0, &header(3, 20 * 512, 0x200, 4), &f)
            .unwrap();
        assert_eq!(refcount16(&f, 20), 1);
    }

    #[test]
    fn a_moved_reftable_is_reread() {
        let g = RefcountGuard::new(&header(3, 0x600, 0x200, 4), &reftable(0x400));
        let f = Mem::default();
        // The new reftable at cluster 12 names blocks 0x400 and 0x1000.
        let mut rt = reftable(0x400);
        rt[8..16].copy_from_slice(&0x1000u64.to_be_bytes());
        f.write_at(12 * 512, &rt).unwrap();
        g.before_write(0, &header(3, 0x600, 12 * 512, 4), &f)
            .unwrap();
        assert_eq!(refcount16(&f, 12), 1);
        g.before_write(0x600, &(260u64 * 512).to_be_bytes(), &f)
            .unwrap();
        let mut e = [0u8; 2];
        f.read_at(0x1000 + 2 * 4, &mut e).unwrap();
        assert_eq!(u16::from_be_bytes(e), 1);
    }

    #[test]
    fn narrow_refcounts_set_one_bit_field() {
        // refcount_order 2: 4-bit refcounts, least significant first.
        let g = RefcountGuard::new(&header(3, 0x600, 0x200, 2), &reftable(0x400));
        let f = Mem::default();
        f.write_at(0x400 + 4, &[0x30]).unwrap();
        // Cluster 9: byte 4, high nibble... cluster 8 is the low nibble.
        g.before_write(0x600, &(9u64 * 512).to_be_bytes(), &f)
            .unwrap();
        let mut b = [0u8];
        f.read_at(0x404, &mut b).unwrap();
        assert_eq!(b[0], 0x30, "cluster 9 already had 3");
        g.before_write(0x600, &(8u64 * 512).to_be_bytes(), &f)
            .unwrap();
        f.read_at(0x404, &mut b).unwrap();
        assert_eq!(b[0], 0x31);
    }

    #[test]
    fn garbage_never_panics() {
        let g = RefcountGuard::new(&[0xff; 100], &[0xff; 64]);
        let f = Mem::default();
        let _ = g.watches(u64::MAX - 3, 8);
        let _ = g.before_write(u64::MAX - 3, &[0xff; 8], &f);
        let _ = g.before_write(0, &[0xff; 200], &f);
        let _ = g.before_write(3, &[0x00; 5], &f);
    }
}
