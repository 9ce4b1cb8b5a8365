//! Logical units: a backstore plus the state SPC and SBC keep per unit.

use std::collections::{HashMap, HashSet};
use std::future::{ready, Future, Ready};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::{BoxFuture, Either};

use crate::backstore::{Backstore, Capabilities, Extent, Geometry, IoResult, WriteFlags};
use crate::buffer::DataBuffer;
use crate::engine::task::TaskSet;
use crate::engine::ua::UaQueue;
use crate::engine::NexusId;
use crate::pr::state::Standing;
use crate::pr::{PrState, PrStore, PrStoreError};
use crate::sense::{Asc, SenseFormat};

/// How to build a logical unit.
#[derive(Clone)]
pub struct LuConfig {
    pub(crate) backstore: Arc<dyn Backstore>,
    pub(crate) read_only: bool,
    pub(crate) removable: bool,
    pub(crate) device: crate::device::DeviceType,
    pub(crate) serial: Option<String>,
    pub(crate) naa: Option<u64>,
    pub(crate) pr_store: Option<Arc<dyn PrStore>>,
}

impl std::fmt::Debug for LuConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LuConfig")
            .field("read_only", &self.read_only)
            .field("removable", &self.removable)
            .field("device", &self.device)
            .field("serial", &self.serial)
            .field("naa", &self.naa)
            .field("pr_store", &self.pr_store)
            .finish_non_exhaustive()
    }
}

impl LuConfig {
    /// A logical unit over `backstore`.
    #[must_use]
    pub fn new(backstore: Arc<dyn Backstore>) -> Self {
        Self {
            backstore,
            read_only: false,
            removable: false,
            device: crate::device::DeviceType::Disk,
            serial: None,
            naa: None,
            pr_store: None,
        }
    }

    /// Keep persistent reservations in `store` when an application client
    /// sets APTPL (SPC-4 §5.13.5). Saved state is loaded when the logical
    /// unit is added; without a store, APTPL is refused (PTPL_C is zero).
    #[must_use]
    pub fn persist_reservations(mut self, store: Arc<dyn PrStore>) -> Self {
        self.pr_store = Some(store);
        self
    }

    /// Refuse writes (DATA PROTECT, WRITE PROTECTED) even if the backstore
    /// accepts them.
    #[must_use]
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// A removable medium (INQUIRY RMB): START STOP UNIT with LOEJ ejects
    /// and loads it, PREVENT ALLOW MEDIUM REMOVAL locks it in, and while it
    /// is out, medium access commands answer NOT READY, MEDIUM NOT PRESENT.
    #[must_use]
    pub fn removable(mut self, removable: bool) -> Self {
        self.removable = removable;
        self
    }

    /// The device model (default [`DeviceType::Disk`]). A
    /// [`DeviceType::Cdrom`] unit is always removable and read-only, and
    /// needs a backstore of 2048-byte logical blocks.
    ///
    /// [`DeviceType::Disk`]: crate::device::DeviceType::Disk
    /// [`DeviceType::Cdrom`]: crate::device::DeviceType::Cdrom
    #[must_use]
    pub fn device_type(mut self, device: crate::device::DeviceType) -> Self {
        self.device = device;
        self
    }

    /// The unit serial number (VPD page 80h). Default: derived from the
    /// target name and LUN.
    #[must_use]
    pub fn serial(mut self, serial: impl Into<String>) -> Self {
        self.serial = Some(serial.into());
        self
    }

    /// The 60-bit locally assigned NAA identifier (NAA type 3, VPD page 83h).
    /// Default: derived from the target name and LUN.
    #[must_use]
    pub fn naa(mut self, id: u64) -> Self {
        self.naa = Some(id & 0x0fff_ffff_ffff_ffff);
        self
    }
}

/// Mode parameters a logical unit keeps (current values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ModeParams {
    /// Caching page: write cache enable.
    pub wce: bool,
    /// Control page: descriptor-format sense.
    pub d_sense: bool,
    /// Control page: task aborted status.
    pub tas: bool,
    /// Control page: software write protect.
    pub swp: bool,
    /// Informational exceptions page: DEXCPT.
    pub dexcpt: bool,
    /// Informational exceptions page: MRIE.
    pub mrie: u8,
    /// Tape block descriptor: BLOCK LENGTH (0 = variable-length blocks).
    pub block_len: u32,
}

impl ModeParams {
    pub(crate) fn defaults(write_cache: bool) -> Self {
        Self {
            wce: write_cache,
            d_sense: false,
            tas: false,
            swp: false,
            dexcpt: true,
            mrie: 0,
            block_len: 0,
        }
    }
}

/// Slots of [`Quiet::clean`]; a power of two.
const CLEAN_SLOTS: usize = 64;

/// A lock-free summary of [`LuState`] that lets most commands skip its
/// lock: when it says "quiet" for a nexus, that nexus has no unit attention
/// pending, no reservation held on the logical unit can refuse the
/// command's class (reads under a Write Exclusive type, say), none is being
/// changed, and the medium's size has not changed since it was last
/// reported.
///
/// It may say "not quiet" when things are quiet (the command then takes the
/// lock and looks), never the reverse: every change that could make a
/// command need the lock clears it first, under the state lock, and only
/// the locked path sets it. A command that reads "quiet" just before such a
/// change is ordered before the change, as it would be had it taken the
/// lock first.
#[derive(Debug)]
pub(crate) struct Quiet {
    /// Slot `id % CLEAN_SLOTS` holds `id` when nexus `id` has an empty unit
    /// attention queue here (0: no nexus; ids start at 1).
    clean: [AtomicU64; CLEAN_SLOTS],
    /// The conflict columns ([`table::column`](crate::table::column) bits)
    /// the reservations held may fire: 0 when none is held.
    reserved: AtomicU8,
    /// Reservation commands running (they may create a reservation).
    reserving: AtomicUsize,
    /// The medium size last reported (mirror of [`LuState::last_size`]).
    size: AtomicU64,
    /// The removable medium is out, or a sanitize operation runs or has
    /// failed (mirror of [`LuState::unready`]).
    unready: AtomicBool,
}

impl Quiet {
    fn new(size: u64, reserved: u8) -> Self {
        Self {
            clean: std::array::from_fn(|_| AtomicU64::new(0)),
            reserved: AtomicU8::new(reserved),
            reserving: AtomicUsize::new(0),
            size: AtomicU64::new(size),
            unready: AtomicBool::new(false),
        }
    }

    fn slot(&self, nexus: NexusId) -> &AtomicU64 {
        // The mask keeps the index below CLEAN_SLOTS: the cast is lossless.
        #[allow(clippy::cast_possible_truncation)]
        let i = (nexus.0 as usize) & (CLEAN_SLOTS - 1);
        &self.clean[i]
    }

    /// Whether a command from `nexus` of conflict columns `columns`
    /// ([`PrConflicts::bits`](crate::table::PrConflicts::bits)) on a
    /// medium of `size` bytes may skip the state lock.
    pub(crate) fn is_quiet(&self, nexus: NexusId, columns: u8, size: u64) -> bool {
        self.slot(nexus).load(Ordering::Acquire) == nexus.0
            && self.reserving.load(Ordering::Acquire) == 0
            && self.reserved.load(Ordering::Acquire) & columns == 0
            && self.size.load(Ordering::Acquire) == size
            && !self.unready.load(Ordering::Acquire)
    }

    /// `nexus` may have a unit attention pending now (under the state lock).
    fn forget(&self, nexus: NexusId) {
        let _ = self
            .slot(nexus)
            .compare_exchange(nexus.0, 0, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// Every nexus may have a unit attention pending (under the state lock).
    fn forget_all(&self) {
        for slot in &self.clean {
            slot.store(0, Ordering::Release);
        }
    }

    /// A reservation command starts; the returned guard ends it.
    pub(crate) fn reserving<'a>(&'a self, lu: &'a LogicalUnit) -> Reserving<'a> {
        self.reserving.fetch_add(1, Ordering::AcqRel);
        Reserving { lu }
    }
}

/// A running reservation command (see [`Quiet::reserving`]): when it ends,
/// the summary learns whether a reservation is now held.
pub(crate) struct Reserving<'a> {
    lu: &'a LogicalUnit,
}

impl Drop for Reserving<'_> {
    fn drop(&mut self) {
        let quiet = &self.lu.quiet;
        self.lu.state().note_reservations();
        quiet.reserving.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Mutable per-LU state, behind one short-held lock.
#[derive(Debug)]
pub(crate) struct LuState {
    pub ua: HashMap<NexusId, UaQueue, BuildHasherDefault<NexusHasher>>,
    pub mode: ModeParams,
    /// The size last reported, to notice backstore resizes.
    pub last_size: u64,
    /// Persistent reservations (changed only through [`LuState::set_pr`]).
    pub pr: PrState,
    /// Each nexus's standing under `pr`, as far as commands have asked.
    pr_standing: HashMap<NexusId, Standing, BuildHasherDefault<NexusHasher>>,
    /// The I_T nexus holding an SPC-2 RESERVE.
    pub spc2: Option<NexusId>,
    /// The removable medium: in or out, and who prevents its removal.
    pub medium: crate::sbc::Medium,
    /// Sanitize operations: running, failed, or neither.
    pub sanitize: crate::sbc::SanitizeState,
    /// Identities (initiator port, relative port) of nexuses lost since
    /// they last reached this LU: a new nexus with one of them gets I_T
    /// NEXUS LOSS OCCURRED (SAM-5 §6.3.4).
    pub lost: HashSet<(String, u16)>,
    /// The lock-free summary this state keeps up to date (shared with the
    /// [`LogicalUnit`]). Code that changes `ua` other than through
    /// [`LuState::ua_of`] and [`LuState::raise_all`] must call
    /// [`LuState::forget_ua`].
    quiet: Arc<Quiet>,
}

impl LuState {
    /// The UA queue of `nexus`, created with POWER ON on first contact.
    pub(crate) fn ua_of(&mut self, nexus: NexusId) -> &mut UaQueue {
        self.quiet.forget(nexus);
        self.ua.entry(nexus).or_insert_with(UaQueue::power_on)
    }

    /// Tell the lock-free summary that `nexus` may have a unit attention
    /// pending (after changing `ua` directly).
    pub(crate) fn forget_ua(&self, nexus: NexusId) {
        self.quiet.forget(nexus);
    }

    /// After a command's unit attention check: remember `nexus` as quiet
    /// if nothing is pending for it.
    pub(crate) fn note_checked(&self, nexus: NexusId) {
        if self.ua.get(&nexus).is_some_and(UaQueue::is_empty) {
            self.quiet.slot(nexus).store(nexus.0, Ordering::Release);
        }
    }

    /// Tell the lock-free summary which conflict columns the reservations
    /// held can fire (after releasing one outside a reservation command).
    pub(crate) fn note_reservations(&self) {
        self.quiet
            .reserved
            .store(self.reserved_columns(), Ordering::Release);
    }

    /// The conflict columns the reservations held may fire.
    fn reserved_columns(&self) -> u8 {
        let spc2 = if self.spc2.is_some() {
            crate::table::column::SPC2
        } else {
            0
        };
        spc2 | self.pr.columns()
    }

    /// Replace the persistent reservation state (after PERSISTENT RESERVE
    /// OUT), forgetting every nexus's remembered standing.
    pub(crate) fn set_pr(&mut self, pr: PrState) {
        self.pr = pr;
        self.pr_standing.clear();
    }

    /// What `nexus` (whose identity `identity` gives) is to the persistent
    /// reservation, remembered until the next change of it: the conflict
    /// check then costs a hash lookup instead of a scan of the
    /// registrations comparing initiator names.
    pub(crate) fn standing_of(
        &mut self,
        nexus: NexusId,
        identity: impl FnOnce() -> Arc<crate::pr::ItNexusIdentity>,
    ) -> Standing {
        if let Some(&s) = self.pr_standing.get(&nexus) {
            return s;
        }
        let s = self.pr.standing(&identity());
        self.pr_standing.insert(nexus, s);
        s
    }

    /// Take the removable medium out or put it back in.
    pub(crate) fn set_ejected(&mut self, ejected: bool) {
        self.medium.ejected = ejected;
        self.medium.event = if ejected {
            crate::mmc::MEDIA_REMOVAL
        } else {
            crate::mmc::NEW_MEDIA
        };
        self.note_unready();
    }

    /// Enter a sanitize state.
    pub(crate) fn set_sanitize(&mut self, state: crate::sbc::SanitizeState) {
        self.sanitize = state;
        self.note_unready();
    }

    fn note_unready(&self) {
        let unready = self.medium.ejected || self.sanitize != crate::sbc::SanitizeState::Idle;
        self.quiet.unready.store(unready, Ordering::Release);
    }

    /// Why a command of `handler` cannot run now: a sanitize operation
    /// running or failed, or the removable medium out.
    pub(crate) fn unready(&self, handler: crate::table::Handler) -> Option<crate::sense::Sense> {
        self.sanitize.refusal(handler).or_else(|| {
            (self.medium.ejected && handler.needs_medium()).then(crate::sbc::medium_not_present)
        })
    }

    /// Record the medium size reported from now on.
    pub(crate) fn set_last_size(&mut self, size: u64) {
        self.last_size = size;
        self.quiet.size.store(size, Ordering::Release);
    }

    /// Queue `asc` for every nexus known to this LU except `except`.
    pub(crate) fn raise_all(&mut self, asc: Asc, except: Option<NexusId>) {
        self.quiet.forget_all();
        for (n, q) in &mut self.ua {
            if Some(*n) != except {
                q.push(asc);
            }
        }
    }

    pub(crate) fn sense_format(&self) -> SenseFormat {
        if self.mode.d_sense {
            SenseFormat::Descriptor
        } else {
            SenseFormat::Fixed
        }
    }
}

/// A backstore request: finished on the fast path (`Left`), or the
/// backstore's own boxed future (`Right`).
pub(crate) type IoFuture<'a> = Either<Ready<IoResult<()>>, BoxFuture<'a, IoResult<()>>>;

/// The backstore of a logical unit, as the device models call it.
///
/// The same methods as [`Backstore`], except that `read` and `write` first
/// try the backstore's synchronous fast path ([`Backstore::read_nowait`],
/// [`Backstore::write_nowait`]) and await its boxed future only when that
/// declines. Device models keep calling `ctx.lu.backstore.read(..).await`.
pub(crate) struct LuBackstore(Arc<dyn Backstore>);

impl LuBackstore {
    pub(crate) fn geometry(&self) -> Geometry {
        self.0.geometry()
    }

    pub(crate) fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }

    /// [`Backstore::read`], done at once when the backstore can: the fast
    /// path runs here, before the caller awaits, so the returned future is
    /// either a finished result or the backstore's boxed future (and does
    /// not hold the buffer).
    pub(crate) fn read(&self, offset: u64, buf: DataBuffer) -> IoFuture<'_> {
        match self.0.read_nowait(offset, &buf) {
            Some(done) => Either::Left(ready(done)),
            None => Either::Right(self.0.read(offset, buf)),
        }
    }

    /// [`Backstore::write`], done at once when the backstore can (see
    /// [`LuBackstore::read`]).
    pub(crate) fn write(&self, offset: u64, buf: DataBuffer, flags: WriteFlags) -> IoFuture<'_> {
        match self.0.write_nowait(offset, &buf, flags) {
            Some(done) => Either::Left(ready(done)),
            None => Either::Right(self.0.write(offset, buf, flags)),
        }
    }

    pub(crate) fn atomic_limits(&self) -> Option<crate::backstore::AtomicLimits> {
        self.0.atomic_limits()
    }

    pub(crate) fn write_atomic(
        &self,
        offset: u64,
        buf: DataBuffer,
        flags: WriteFlags,
    ) -> impl Future<Output = IoResult<()>> + Send + '_ {
        self.0.write_atomic(offset, buf, flags)
    }

    pub(crate) fn flush(&self) -> impl Future<Output = IoResult<()>> + Send + '_ {
        self.0.flush()
    }

    pub(crate) fn discard(
        &self,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = IoResult<()>> + Send + '_ {
        self.0.discard(offset, len)
    }

    pub(crate) fn write_zeroes(
        &self,
        offset: u64,
        len: u64,
        may_unmap: bool,
    ) -> impl Future<Output = IoResult<()>> + Send + '_ {
        self.0.write_zeroes(offset, len, may_unmap)
    }

    pub(crate) fn allocation(
        &self,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = IoResult<Extent>> + Send + '_ {
        self.0.allocation(offset, len)
    }

    pub(crate) fn set_write_cache(&self, enabled: bool) -> IoResult<()> {
        self.0.set_write_cache(enabled)
    }
}

/// A logical unit of a [`Target`](super::Target).
pub(crate) struct LogicalUnit {
    pub backstore: LuBackstore,
    pub read_only: bool,
    pub removable: bool,
    pub device: crate::device::DeviceType,
    pub serial: String,
    pub naa: u64,
    pub state: Mutex<LuState>,
    pub tasks: TaskSet,
    /// Lock-free summary of `state` for the hot path.
    pub quiet: Arc<Quiet>,
    /// Writes hold it shared; COMPARE AND WRITE holds it exclusive, which
    /// makes the compare and the write atomic against every other write.
    pub write_gate: async_lock::RwLock<()>,
    /// Odd while a WRITE ATOMIC is writing; bumped twice by each. A read
    /// that sees it odd or changed across its I/O is done again under the
    /// shared write gate, so it never returns part of an atomic write.
    pub atomic_seq: AtomicU64,
    /// Where APTPL state goes.
    pub pr_store: Option<Arc<dyn PrStore>>,
    /// Serialises PERSISTENT RESERVE OUT commands.
    pub pr_gate: async_lock::Mutex<()>,
    /// EXTENDED COPY results held for RECEIVE COPY RESULTS.
    pub copies: crate::spc::xcopy::HeldResults,
    /// A tape's position; tape commands hold it while they run, which
    /// serialises them (a sequential medium has one position).
    pub tape: async_lock::Mutex<crate::ssc::Position>,
    /// Access states of target port groups for this logical unit alone
    /// (over the target's), set by `Target::set_lu_access_state`.
    pub alua: std::sync::RwLock<Vec<(u16, crate::alua::AccessState)>>,
    /// `alua` is not empty (the lock-free check of the hot path).
    pub alua_own: AtomicBool,
}

impl LogicalUnit {
    /// The access state of `group` for this unit, if it has its own.
    pub(crate) fn own_access_state(&self, group: u16) -> Option<crate::alua::AccessState> {
        if !self.alua_own.load(Ordering::Acquire) {
            return None;
        }
        self.alua
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|&&(g, _)| g == group)
            .map(|&(_, s)| s)
    }

    pub(crate) fn new(
        index: u16,
        config: LuConfig,
        target_name: &str,
    ) -> Result<Self, PrStoreError> {
        let pr = match &config.pr_store {
            Some(store) => store.load()?.unwrap_or_default(),
            None => PrState::default(),
        };
        let geometry = config.backstore.geometry();
        let caps = config.backstore.capabilities();
        let model = config.device.model();
        let hash = fnv1a(target_name.as_bytes(), u64::from(index));
        let serial = config
            .serial
            .unwrap_or_else(|| format!("{:016x}", hash & 0x0fff_ffff_ffff_ffff));
        let naa = config.naa.unwrap_or(hash & 0x0fff_ffff_ffff_ffff);
        let write_cache =
            config.backstore.write_cache() && caps.contains(Capabilities::WRITE_CACHE);
        let quiet = Arc::new(Quiet::new(geometry.size, pr.columns()));
        Ok(Self {
            read_only: config.read_only || geometry.read_only || model.read_only,
            removable: config.removable || model.removable,
            device: config.device,
            backstore: LuBackstore(config.backstore),
            serial,
            naa,
            state: Mutex::new(LuState {
                ua: HashMap::default(),
                mode: ModeParams::defaults(write_cache),
                last_size: geometry.size,
                pr,
                pr_standing: HashMap::default(),
                spc2: None,
                medium: crate::sbc::Medium::default(),
                sanitize: crate::sbc::SanitizeState::default(),
                lost: HashSet::new(),
                quiet: Arc::clone(&quiet),
            }),
            tasks: TaskSet::default(),
            quiet,
            write_gate: async_lock::RwLock::new(()),
            atomic_seq: AtomicU64::new(0),
            pr_store: config.pr_store,
            pr_gate: async_lock::Mutex::new(()),
            copies: crate::spc::xcopy::HeldResults::default(),
            tape: async_lock::Mutex::new(crate::ssc::Position::default()),
            alua: std::sync::RwLock::new(Vec::new()),
            alua_own: AtomicBool::new(false),
        })
    }

    /// Abort the tasks of the nexuses `victim` selects, on behalf of
    /// `by` (another nexus): with TAS set they end with TASK ABORTED status,
    /// with TAS clear silently and their nexus gets COMMANDS CLEARED BY
    /// ANOTHER INITIATOR (SAM-5 §5.6, SPC-4 §7.5.8 TAS). Returns the nexuses
    /// whose tasks were aborted.
    pub(crate) fn abort_for_other(
        &self,
        by: NexusId,
        victim: impl Fn(NexusId) -> bool,
    ) -> Vec<NexusId> {
        let tas = self.state().mode.tas;
        let hit = self
            .tasks
            .abort_matching(|n, _| n != by && victim(n), |_| tas);
        if !tas && !hit.is_empty() {
            let mut state = self.state();
            for n in &hit {
                state
                    .ua_of(*n)
                    .push(Asc::COMMANDS_CLEARED_BY_ANOTHER_INITIATOR);
            }
        }
        hit
    }

    /// What an I_T nexus loss ends on this logical unit, shared by nexus
    /// removal and I_T NEXUS RESET: the nexus's tasks, held copy results,
    /// medium removal prevention and SPC-2 reservation (SPC-2 §5.5.1).
    /// Returns the state, locked, for what the caller ends besides.
    pub(crate) fn end_nexus(&self, nexus: NexusId) -> MutexGuard<'_, LuState> {
        self.tasks.abort_where(|n, _| n == nexus);
        self.copies.forget(nexus);
        let mut state = self.state();
        state.medium.prevent.remove(&nexus);
        state.pr_standing.remove(&nexus);
        if state.spc2 == Some(nexus) {
            state.spc2 = None;
            state.note_reservations();
        }
        state
    }

    /// The logical unit's NAA designator (type 3, locally assigned), as
    /// VPD page 83h reports it and EXTENDED COPY names the unit.
    pub(crate) fn naa_designator(&self) -> [u8; 8] {
        ((0x3u64 << 60) | self.naa).to_be_bytes()
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, LuState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// FNV-1a over `bytes` then `salt`: a stable, dependency-free identifier
/// source for default serial numbers and NAA identifiers.
pub(crate) fn fnv1a(bytes: &[u8], salt: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes.iter().chain(salt.to_le_bytes().iter()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Hasher for [`NexusId`] keys: they are small sequential integers the
/// target hands out, not peer-chosen, so a multiplicative mix is enough and
/// much cheaper than SipHash on the per-command path.
#[derive(Default)]
pub(crate) struct NexusHasher(u64);

impl Hasher for NexusHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}
