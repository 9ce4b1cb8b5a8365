//! The engine: a [`Target`] maps I_T_L nexuses to logical units and runs
//! commands on them.
//!
//! A transport registers each I_T nexus ([`Target::add_nexus`]), turns each
//! wire request into a [`Command`] and awaits [`Target::execute`]; the
//! [`Response`] says what to put on the wire. Many commands may be in
//! flight at once, from many nexuses; task attributes order them
//! ([`TaskAttribute`]), and [`Target::task_management`] aborts them.
//!
//! ```
//! use std::sync::Arc;
//! use tgtkit_scsi_core::engine::{Command, LuConfig, NexusInfo, RawCdb, Target, TargetConfig, TaskAttribute};
//! use tgtkit_scsi_core::{buffer::DataBuffer, lun::Lun, status::Status};
//! # use tgtkit_scsi_core::backstore::*;
//! # struct Zero;
//! # #[async_trait::async_trait]
//! # impl Backstore for Zero {
//! #     fn geometry(&self) -> Geometry { Geometry::new(1 << 20, 512) }
//! #     fn capabilities(&self) -> Capabilities { Capabilities::empty() }
//! #     async fn read(&self, _: u64, buf: DataBuffer) -> IoResult<()> { buf.fill(0, buf.len(), 0); Ok(()) }
//! #     async fn write(&self, _: u64, _: DataBuffer, _: WriteFlags) -> IoResult<()> { Ok(()) }
//! #     async fn flush(&self) -> IoResult<()> { Ok(()) }
//! # }
//!
//! let target = Target::new(TargetConfig::default());
//! target.add_lun(0, LuConfig::new(Arc::new(Zero))).unwrap();
//! let nexus = target.add_nexus(NexusInfo::default());
//! let tur = |tag| Command {
//!     nexus,
//!     lun: Lun::from_index(0).unwrap(),
//!     tag,
//!     attribute: TaskAttribute::Simple,
//!     cdb: RawCdb::new(&[0; 6]).unwrap(),
//!     data: DataBuffer::empty(),
//! };
//! // The first command on a new nexus reports the power-on unit attention.
//! let first = futures::executor::block_on(target.execute(tur(1)));
//! assert_eq!(first.status, Status::CHECK_CONDITION);
//! let second = futures::executor::block_on(target.execute(tur(2)));
//! assert_eq!(second.status, Status::GOOD);
//! ```

mod command;
pub(crate) mod exec;
pub(crate) mod lu;
mod nexus;
mod task;
mod tmf;
mod ua;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub use command::{
    CdbLengthError, Command, RawCdb, Residual, Response, SenseBytes, TaskAttribute, MAX_CDB_LEN,
};
pub use lu::LuConfig;
pub use nexus::{NexusId, NexusInfo};
pub use tmf::{TmFunction, TmfResponse};

pub use crate::table::DataDirection;

use crate::lun::{Lun, MAX_LUN_INDEX};
use crate::sense::Asc;
use lu::LogicalUnit;

impl DataDirection {
    /// The data direction of `cdb` on a disk according to the command
    /// table, or `None` for an opcode the engine does not implement there.
    #[must_use]
    pub fn of(cdb: &[u8]) -> Option<Self> {
        Self::of_device(crate::device::DeviceType::Disk, cdb)
    }

    /// The data direction of `cdb` on a logical unit of model `device`.
    #[must_use]
    pub fn of_device(device: crate::device::DeviceType, cdb: &[u8]) -> Option<Self> {
        crate::table::direction_of(device, cdb)
    }
}

/// Identity and limits of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetConfig {
    /// T10 VENDOR IDENTIFICATION (8 ASCII characters, space padded).
    pub vendor: String,
    /// PRODUCT IDENTIFICATION (16 ASCII characters).
    pub product: String,
    /// PRODUCT REVISION LEVEL (4 ASCII characters).
    pub revision: String,
    /// The SCSI target device name (iSCSI: the target IQN), reported in
    /// VPD page 83h and used to derive default identifiers.
    pub name: String,
    /// Largest transfer in logical blocks for one READ/WRITE (VPD B0h
    /// MAXIMUM TRANSFER LENGTH); longer requests get INVALID FIELD IN CDB.
    pub max_transfer_blocks: u32,
    /// Largest UNMAP LBA COUNT per descriptor (VPD B0h MAXIMUM UNMAP LBA
    /// COUNT).
    pub max_unmap_blocks: u32,
    /// Largest WRITE SAME length in blocks (VPD B0h MAXIMUM WRITE SAME
    /// LENGTH; 0 = no limit). It also bounds a WRITE SAME with NUMBER OF
    /// LOGICAL BLOCKS zero, which covers the rest of the medium.
    pub max_write_same_blocks: u32,
    /// Largest number of UNMAP block descriptors (VPD B0h).
    pub max_unmap_descriptors: u32,
}

impl Default for TargetConfig {
    fn default() -> Self {
        Self {
            vendor: "TGTKIT".into(),
            product: "VIRTUAL-DISK".into(),
            revision: "0001".into(),
            name: "iqn.2026-11.dev.tgtkit:target".into(),
            max_transfer_blocks: 16384,
            // libiscsi treats more than 2^20 as insane, and sends WRITE
            // SAME of 65536 blocks as one WRITE when the limit allows it.
            max_unmap_blocks: 1 << 20,
            max_write_same_blocks: 0xffff,
            max_unmap_descriptors: 256,
        }
    }
}

/// An error configuring a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The LUN is already in use.
    #[error("LUN {0} already exists")]
    LunExists(u16),
    /// The LUN number cannot be encoded (above 16383).
    #[error("LUN {0} is out of range")]
    LunOutOfRange(u16),
    /// The backstore's geometry is unusable (zero or non-power-of-two
    /// block size, or a size that is not a multiple of it).
    #[error("backstore geometry is invalid: {0}")]
    BadGeometry(&'static str),
    /// A target port group ID that is in use (or 0), or a port another
    /// group already holds.
    #[error("target port group: {0}")]
    PortGroup(&'static str),
    /// Saved persistent reservation state exists but cannot be loaded
    /// (unreadable or corrupt): the logical unit is not started rather than
    /// started with its reservations silently gone.
    #[error("persistent reservation state: {0}")]
    ReservationState(String),
}

/// A SCSI target device: logical units and the I_T nexuses that reach them.
pub struct Target {
    config: TargetConfig,
    luns: RwLock<BTreeMap<u16, Arc<LogicalUnit>>>,
    nexuses: RwLock<HashMap<NexusId, Arc<NexusInfo>>>,
    /// Each nexus's reservation identity, computed once at `add_nexus`.
    identities: RwLock<HashMap<NexusId, Arc<crate::pr::ItNexusIdentity>>>,
    next_nexus: AtomicU64,
    /// Target port groups (SPC-4 §5.15).
    alua: RwLock<crate::alua::Groups>,
    /// Every group is active: commands skip the ALUA check.
    alua_all_active: AtomicBool,
    /// The embedder's say on SET TARGET PORT GROUPS (explicit ALUA).
    alua_policy: RwLock<Option<Arc<dyn crate::alua::AluaPolicy>>>,
    /// ROD tokens made by POPULATE TOKEN on any of its units.
    pub(crate) tokens: crate::spc::xcopy::rod::TokenStore,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.config.name)
            .field("luns", &self.lun_indexes())
            .finish_non_exhaustive()
    }
}

impl Target {
    /// A target with no logical units.
    #[must_use]
    pub fn new(config: TargetConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            luns: RwLock::new(BTreeMap::new()),
            nexuses: RwLock::new(HashMap::new()),
            identities: RwLock::new(HashMap::new()),
            next_nexus: AtomicU64::new(1),
            alua: RwLock::new(crate::alua::Groups::default()),
            alua_all_active: AtomicBool::new(true),
            alua_policy: RwLock::new(None),
            tokens: crate::spc::xcopy::rod::TokenStore::default(),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &TargetConfig {
        &self.config
    }

    /// Add logical unit `index` (LUN number). Every nexus gets REPORTED
    /// LUNS DATA HAS CHANGED on its other logical units.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if the LUN exists, is out of range, or the
    /// backstore's geometry is unusable.
    pub fn add_lun(&self, index: u16, config: LuConfig) -> Result<(), ConfigError> {
        if Lun::from_index(index).is_none() || index > MAX_LUN_INDEX {
            return Err(ConfigError::LunOutOfRange(index));
        }
        let g = config.backstore.geometry();
        if g.logical_block_size < 512 || !g.logical_block_size.is_power_of_two() {
            return Err(ConfigError::BadGeometry("logical block size"));
        }
        if g.physical_block_size < g.logical_block_size || !g.physical_block_size.is_power_of_two()
        {
            return Err(ConfigError::BadGeometry("physical block size"));
        }
        if config
            .device
            .model()
            .block_size
            .is_some_and(|b| b != g.logical_block_size)
        {
            return Err(ConfigError::BadGeometry(
                "logical block size is not the device type's",
            ));
        }
        if g.size % u64::from(g.logical_block_size) != 0 {
            return Err(ConfigError::BadGeometry(
                "size is not a multiple of the block size",
            ));
        }
        let mut luns = self.write_luns();
        if luns.contains_key(&index) {
            return Err(ConfigError::LunExists(index));
        }
        let lu = LogicalUnit::new(index, config, &self.config.name)
            .map_err(|e| ConfigError::ReservationState(e.to_string()))?;
        for other in luns.values() {
            other
                .state()
                .raise_all(Asc::REPORTED_LUNS_DATA_HAS_CHANGED, None);
        }
        luns.insert(index, Arc::new(lu));
        Ok(())
    }

    /// Remove logical unit `index`; returns whether it existed. Commands in
    /// flight on it are aborted.
    pub fn remove_lun(&self, index: u16) -> bool {
        let mut luns = self.write_luns();
        let Some(lu) = luns.remove(&index) else {
            return false;
        };
        lu.tasks.abort_where(|_, _| true);
        self.tokens.revoke(&lu);
        for other in luns.values() {
            other
                .state()
                .raise_all(Asc::REPORTED_LUNS_DATA_HAS_CHANGED, None);
        }
        true
    }

    /// The device model of the logical unit at `lun`, if there is one
    /// (transports that must know a command's data direction ask
    /// [`DataDirection::of_device`] with it).
    #[must_use]
    pub fn device_type(&self, lun: &Lun) -> Option<crate::device::DeviceType> {
        self.lu(lun).map(|lu| lu.device)
    }

    /// The LUN numbers, ascending.
    #[must_use]
    pub fn lun_indexes(&self) -> Vec<u16> {
        self.read_luns().keys().copied().collect()
    }

    /// Register an I_T nexus. A nexus with the identity (initiator port and
    /// relative target port) of one lost earlier reports I_T NEXUS LOSS
    /// OCCURRED first on each logical unit (SAM-5 §6.3.4); persistent
    /// reservation registrations of that identity still apply to it.
    pub fn add_nexus(&self, info: NexusInfo) -> NexusId {
        let id = NexusId(self.next_nexus.fetch_add(1, Ordering::Relaxed));
        let identity = (info.initiator_port.clone(), info.relative_port);
        self.identities
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, Arc::new(crate::pr::identity_of(&info)));
        self.nexuses
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, Arc::new(info));
        for lu in self.read_luns().values() {
            let mut state = lu.state();
            if state.lost.remove(&identity) {
                let mut q = ua::UaQueue::default();
                q.push(Asc::I_T_NEXUS_LOSS_OCCURRED);
                state.ua.insert(id, q);
                state.forget_ua(id);
            }
        }
        id
    }

    /// Remove an I_T nexus (I_T nexus loss): its tasks are aborted, its
    /// unit attention queues dropped and its SPC-2 reservations released;
    /// its identity is remembered so that a new nexus from the same port
    /// learns of the loss.
    pub fn remove_nexus(&self, nexus: NexusId) {
        let info = self
            .nexuses
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&nexus);
        self.identities
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&nexus);
        for lu in self.read_luns().values() {
            let mut state = lu.end_nexus(nexus);
            state.ua.remove(&nexus);
            state.forget_ua(nexus);
            if let Some(info) = &info {
                // Bounded: one entry per distinct initiator port seen.
                if state.lost.len() < 4096 {
                    state
                        .lost
                        .insert((info.initiator_port.clone(), info.relative_port));
                }
            }
        }
    }

    /// Every registered nexus with its reservation identity.
    pub(crate) fn nexus_identities(&self) -> Vec<(NexusId, Arc<crate::pr::ItNexusIdentity>)> {
        self.identities
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(id, who)| (*id, Arc::clone(who)))
            .collect()
    }

    /// The reservation identity of `nexus` (an identity no registration
    /// names, for a nexus that is gone).
    pub(crate) fn identity(&self, nexus: NexusId) -> Arc<crate::pr::ItNexusIdentity> {
        self.identities
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&nexus)
            .cloned()
            .unwrap_or_else(|| {
                Arc::new(crate::pr::ItNexusIdentity {
                    initiator: crate::pr::TransportId::Other(Vec::new()),
                    relative_port: 0,
                })
            })
    }

    /// The identity of a registered nexus.
    #[must_use]
    pub fn nexus_info(&self, nexus: NexusId) -> Option<Arc<NexusInfo>> {
        self.nexuses
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&nexus)
            .cloned()
    }

    fn read_luns(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u16, Arc<LogicalUnit>>> {
        self.luns
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_luns(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<u16, Arc<LogicalUnit>>> {
        self.luns
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lu(&self, lun: &Lun) -> Option<Arc<LogicalUnit>> {
        let index = lun.index()?;
        self.read_luns().get(&index).cloned()
    }

    /// The shared handle of `lu`, while it is one of this target's units.
    pub(crate) fn unit_arc(&self, lu: &LogicalUnit) -> Option<Arc<LogicalUnit>> {
        self.read_luns()
            .values()
            .find(|l| std::ptr::eq(l.as_ref(), lu))
            .cloned()
    }

    /// The logical unit of this target a copy names by designator: only
    /// logical-unit NAA designators (association 0, type 3) match.
    pub(crate) fn lu_by_designator(
        &self,
        designator_type: u8,
        association: u8,
        designator: &[u8],
    ) -> Option<Arc<LogicalUnit>> {
        if designator_type != 3 || association != 0 {
            return None;
        }
        self.read_luns()
            .values()
            .find(|lu| lu.naa_designator() == designator)
            .cloned()
    }

    /// Add target port group `id` holding relative target ports `ports`
    /// (taken from the default group 1, which keeps every other port), in
    /// `state`. See [`crate::alua`].
    ///
    /// # Errors
    ///
    /// [`ConfigError::PortGroup`] if `id` is 0 or in use, or a port is in
    /// another added group.
    pub fn add_port_group(
        &self,
        id: u16,
        ports: &[u16],
        state: crate::alua::AccessState,
    ) -> Result<(), ConfigError> {
        let mut groups = self.write_alua();
        if id == 0 || groups.0.iter().any(|g| g.id == id) {
            return Err(ConfigError::PortGroup("ID 0 or already in use"));
        }
        if groups
            .0
            .iter()
            .any(|g| g.ports.iter().any(|p| ports.contains(p)))
        {
            return Err(ConfigError::PortGroup("a port is in another group"));
        }
        groups.0.push(crate::alua::PortGroup {
            id,
            state,
            ports: ports.to_vec(),
            status: 0,
        });
        self.alua_all_active
            .store(groups.all_active(), Ordering::Release);
        Ok(())
    }

    /// Move target port group `id` to `state` (implicit ALUA: the
    /// embedder decides). Every I_T nexus learns of it by ASYMMETRIC ACCESS
    /// STATE CHANGED. Returns whether the group exists.
    pub fn set_access_state(&self, id: u16, state: crate::alua::AccessState) -> bool {
        self.change_access_state(&[(id, state)], 2, None)
    }

    /// The access state of the group holding relative target port `port`.
    #[must_use]
    pub fn access_state_of_port(&self, port: u16) -> crate::alua::AccessState {
        self.read_alua().of_port(port).state
    }

    /// Give target port group `group` the access state `state` for logical
    /// unit `index` alone (`None`: the group's own state again), as when
    /// each logical unit is owned by one controller of a dual-controller
    /// array. That unit's nexuses learn of it by ASYMMETRIC ACCESS STATE
    /// CHANGED; REPORT TARGET PORT GROUPS on it reports the state. Returns
    /// whether the unit and the group exist.
    pub fn set_lu_access_state(
        &self,
        index: u16,
        group: u16,
        state: Option<crate::alua::AccessState>,
    ) -> bool {
        if !self.read_alua().0.iter().any(|g| g.id == group) {
            return false;
        }
        let Some(lu) = self.read_luns().get(&index).cloned() else {
            return false;
        };
        {
            let mut own = lu
                .alua
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            own.retain(|&(g, _)| g != group);
            if let Some(state) = state {
                own.push((group, state));
            }
            lu.alua_own.store(!own.is_empty(), Ordering::Release);
        }
        lu.state()
            .raise_all(Asc::ASYMMETRIC_ACCESS_STATE_CHANGED, None);
        true
    }

    /// Let initiators ask for access states with SET TARGET PORT GROUPS
    /// (explicit ALUA), each request granted or refused by `policy`.
    pub fn set_alua_policy(&self, policy: Arc<dyn crate::alua::AluaPolicy>) {
        *self
            .alua_policy
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(policy);
    }

    pub(crate) fn alua_policy(&self) -> Option<Arc<dyn crate::alua::AluaPolicy>> {
        self.alua_policy
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Apply `changes` with STATUS CODE `status`; ASYMMETRIC ACCESS STATE
    /// CHANGED goes to every nexus but `except`.
    pub(crate) fn change_access_state(
        &self,
        changes: &[(u16, crate::alua::AccessState)],
        status: u8,
        except: Option<NexusId>,
    ) -> bool {
        let mut groups = self.write_alua();
        let mut found = true;
        for &(id, state) in changes {
            match groups.0.iter_mut().find(|g| g.id == id) {
                Some(g) => {
                    g.state = state;
                    g.status = status;
                }
                None => found = false,
            }
        }
        self.alua_all_active
            .store(groups.all_active(), Ordering::Release);
        drop(groups);
        for lu in self.read_luns().values() {
            lu.state()
                .raise_all(Asc::ASYMMETRIC_ACCESS_STATE_CHANGED, except);
        }
        found
    }

    /// Why a command of `handler` from `nexus` may not run in its port
    /// group's access state (only looked at when a group is not active).
    #[inline]
    pub(crate) fn alua_refusal(
        &self,
        lu: &LogicalUnit,
        nexus: NexusId,
        handler: crate::table::Handler,
    ) -> Option<crate::sense::Sense> {
        if self.alua_all_active.load(Ordering::Acquire) && !lu.alua_own.load(Ordering::Acquire) {
            return None;
        }
        self.alua_refusal_slow(lu, nexus, handler)
    }

    /// [`Self::alua_refusal`] when some group is not active.
    #[inline(never)]
    fn alua_refusal_slow(
        &self,
        lu: &LogicalUnit,
        nexus: NexusId,
        handler: crate::table::Handler,
    ) -> Option<crate::sense::Sense> {
        let port = self.nexus_info(nexus).map_or(0, |i| i.relative_port);
        let (group, state) = {
            let groups = self.read_alua();
            let g = groups.of_port(port);
            (g.id, g.state)
        };
        lu.own_access_state(group).unwrap_or(state).refusal(handler)
    }

    /// The target's port groups as logical unit `lu` sees them (its own
    /// access states applied).
    pub(crate) fn alua_of(&self, lu: &LogicalUnit) -> crate::alua::Groups {
        let mut groups = self.read_alua().clone();
        for g in &mut groups.0 {
            if let Some(state) = lu.own_access_state(g.id) {
                g.state = state;
            }
        }
        groups
    }

    pub(crate) fn read_alua(&self) -> std::sync::RwLockReadGuard<'_, crate::alua::Groups> {
        self.alua
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_alua(&self) -> std::sync::RwLockWriteGuard<'_, crate::alua::Groups> {
        self.alua
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The relative target ports of the registered nexuses, ascending.
    pub(crate) fn known_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .nexuses
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .map(|i| i.relative_port)
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// Run a task management function for `nexus` on `lun`.
    pub async fn task_management(
        &self,
        nexus: NexusId,
        lun: Lun,
        function: TmFunction,
    ) -> TmfResponse {
        self.run_tmf(nexus, lun, function)
    }
}
