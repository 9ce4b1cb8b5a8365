//! The virtual-device map of one vhost: "channel:id:lun" → engine logical
//! unit.
//!
//! A [`DeviceMap`] is a cheap handle; clones share one map. The backend
//! processor looks each request's address up in it, and the toolstack side
//! (a xenstore watcher answering LUN hot-plug) adds and removes devices
//! through its own handle while the ring keeps running. A request for an
//! address that is not (or no longer) mapped is answered `NO_CONNECT`.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use tgtkit_scsi_core::engine::{NexusId, Target};
use tgtkit_scsi_core::lun::Lun;

use crate::request::VirtualDevice;

/// The engine logical unit behind a virtual device.
#[derive(Debug, Clone)]
pub struct DeviceTarget {
    /// The target.
    pub target: Arc<Target>,
    /// The vhost's I_T nexus on it.
    pub nexus: NexusId,
    /// The logical unit.
    pub lun: Lun,
}

/// A device that cannot be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The virtual device belongs to another vhost.
    #[error("{0} is not on vhost {1}")]
    WrongHost(VirtualDevice, u32),
    /// The address is already mapped.
    #[error("{0} is already mapped")]
    Exists(VirtualDevice),
}

/// "channel:id:lun" of a request.
pub(crate) type Address = (u16, u16, u16);

/// The devices of one vhost, shared between its ring processor and
/// whoever hot-plugs devices.
///
/// ```
/// use tgtkit_vscsiif::DeviceMap;
///
/// let map = DeviceMap::new(0);
/// let other = map.clone(); // the same map
/// assert!(other.is_empty());
/// assert!(!map.remove("0:0:1:0".parse().unwrap()));
/// ```
#[derive(Debug, Clone)]
pub struct DeviceMap {
    host: u32,
    inner: Arc<RwLock<HashMap<Address, DeviceTarget>>>,
}

impl DeviceMap {
    /// An empty map for vhost `host` (the "host" of every address).
    #[must_use]
    pub fn new(host: u32) -> Self {
        Self {
            host,
            inner: Arc::default(),
        }
    }

    /// The vhost number.
    #[must_use]
    pub fn host(&self) -> u32 {
        self.host
    }

    /// Map `vdev` to an engine logical unit.
    ///
    /// # Errors
    ///
    /// [`DeviceError`]: `vdev` is on another vhost or already mapped.
    pub fn add(&self, vdev: VirtualDevice, dev: DeviceTarget) -> Result<(), DeviceError> {
        if vdev.host != self.host {
            return Err(DeviceError::WrongHost(vdev, self.host));
        }
        let mut map = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let key = (vdev.channel, vdev.id, vdev.lun);
        if map.contains_key(&key) {
            return Err(DeviceError::Exists(vdev));
        }
        map.insert(key, dev);
        Ok(())
    }

    /// Unmap `vdev`; later requests for it get `NO_CONNECT`. `false` if it
    /// was not mapped.
    pub fn remove(&self, vdev: VirtualDevice) -> bool {
        vdev.host == self.host
            && self
                .inner
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&(vdev.channel, vdev.id, vdev.lun))
                .is_some()
    }

    /// Number of mapped devices.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no device is mapped.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn get(&self, addr: Address) -> Option<DeviceTarget> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&addr)
            .cloned()
    }
}
