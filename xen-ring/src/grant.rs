//! Access to the frontend's granted pages.
//!
//! A backend never sees guest memory except through a [`GrantAccess`]:
//! the Xen transport implements it with gntdev (map/unmap) and grant-copy
//! ioctls, tests with plain memory (`testing::MemoryGrants`, feature `test-utils`).
//! Mapped pages are only touched through volatile accessors (the
//! `DataBuffer` of `tgtkit-scsi-core` built over them).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// A grant reference (`grant_ref_t`).
pub type GrantRef = u32;

/// The grant layer refused an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// The frontend did not grant this reference (or granted it read-only
    /// where write access was needed).
    #[error("grant reference {0} refused")]
    Refused(GrantRef),
    /// An offset or length outside the 4 KiB page.
    #[error("access outside the granted page")]
    OutOfPage,
    /// The grant device failed (mapping limit, ENOMEM, ...).
    #[error("grant device error: {0}")]
    Device(String),
}

/// A set of granted pages mapped into this process.
///
/// Each page pointer is valid for volatile reads and writes of 4096 bytes
/// until the mapping is handed back to [`GrantAccess::unmap`].
pub struct GrantMapping {
    pages: Vec<*mut u8>,
    token: u64,
}

// SAFETY: the pointers name mapped pages that stay valid until `unmap`; they
// are only dereferenced through volatile accessors, from any thread.
unsafe impl Send for GrantMapping {}
// SAFETY: as above: `&GrantMapping` only hands out the raw pointers.
unsafe impl Sync for GrantMapping {}

impl fmt::Debug for GrantMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantMapping")
            .field("pages", &self.pages.len())
            .field("token", &self.token)
            .finish()
    }
}

impl GrantMapping {
    /// A mapping of `pages` (one pointer per granted page, in the order of
    /// the references), with a `token` the implementation uses to unmap.
    ///
    /// # Safety
    ///
    /// Every pointer must be valid for volatile reads and writes of 4096
    /// bytes (reads only, if mapped read-only and the backend only reads)
    /// until this mapping is passed to [`GrantAccess::unmap`].
    #[must_use]
    pub unsafe fn new(pages: Vec<*mut u8>, token: u64) -> Self {
        Self { pages, token }
    }

    /// Number of pages.
    #[must_use]
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether there are no pages.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// The page for the `i`-th reference.
    #[must_use]
    pub fn page(&self, i: usize) -> Option<*mut u8> {
        self.pages.get(i).copied()
    }

    /// The implementation's token.
    #[must_use]
    pub fn token(&self) -> u64 {
        self.token
    }
}

/// Map, unmap and copy the frontend's granted pages.
pub trait GrantAccess: Send + Sync + 'static {
    /// Map the pages granted as `refs` (`writable` when the backend will
    /// write into them, i.e. for reads from the disk).
    ///
    /// # Errors
    ///
    /// [`GrantError`] if any reference is refused; nothing stays mapped.
    fn map(&self, refs: &[GrantRef], writable: bool) -> Result<GrantMapping, GrantError>;

    /// Unmap a mapping made by [`GrantAccess::map`].
    fn unmap(&self, mapping: &GrantMapping);

    /// Copy `out.len()` bytes at `offset` of the page granted as `gref`
    /// into `out` (grant copy; used for indirect segment pages and the
    /// extra request's command page).
    ///
    /// # Errors
    ///
    /// [`GrantError`].
    fn copy_from(&self, gref: GrantRef, offset: usize, out: &mut [u8]) -> Result<(), GrantError>;

    /// Copy `data` into the page granted as `gref` at `offset`.
    ///
    /// # Errors
    ///
    /// [`GrantError`].
    fn copy_to(&self, gref: GrantRef, offset: usize, data: &[u8]) -> Result<(), GrantError>;
}

/// A mapping that unmaps itself when the last user drops it (it is the
/// owner behind the request's `DataBuffer`).
pub struct MappedGrants<G: GrantAccess> {
    grants: Arc<G>,
    mapping: GrantMapping,
}

impl<G: GrantAccess> fmt::Debug for MappedGrants<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.mapping.fmt(f)
    }
}

impl<G: GrantAccess> MappedGrants<G> {
    /// Map `refs` through `grants`.
    ///
    /// # Errors
    ///
    /// [`GrantError`] from the grant layer.
    pub fn map(grants: &Arc<G>, refs: &[GrantRef], writable: bool) -> Result<Self, GrantError> {
        let mapping = grants.map(refs, writable)?;
        if mapping.len() != refs.len() {
            grants.unmap(&mapping);
            return Err(GrantError::Device(format!(
                "mapped {} pages for {} references",
                mapping.len(),
                refs.len()
            )));
        }
        Ok(Self {
            grants: Arc::clone(grants),
            mapping,
        })
    }

    /// The mapping.
    #[must_use]
    pub fn mapping(&self) -> &GrantMapping {
        &self.mapping
    }
}

impl<G: GrantAccess> Drop for MappedGrants<G> {
    fn drop(&mut self) {
        self.grants.unmap(&self.mapping);
    }
}

/// A bounded cache of persistently mapped grants (`feature-persistent`):
/// the frontend reuses a fixed pool of granted pages, and the backend keeps
/// each one mapped (writable) after first use instead of mapping it for
/// every request. Past the capacity, pages are mapped per request as usual.
pub struct PersistentGrants<G: GrantAccess> {
    cap: usize,
    map: HashMap<GrantRef, Arc<MappedGrants<G>>>,
}

impl<G: GrantAccess> fmt::Debug for PersistentGrants<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersistentGrants")
            .field("cap", &self.cap)
            .field("len", &self.map.len())
            .finish()
    }
}

impl<G: GrantAccess> PersistentGrants<G> {
    /// A cache of at most `cap` pages (Linux blkback's `max_pgrants`,
    /// 1056 by default); 0 disables it.
    #[must_use]
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            map: HashMap::new(),
        }
    }

    /// Number of cached pages.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the cache is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether the cache is enabled.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.cap > 0
    }

    /// The cached mapping of `gref`, mapping and caching it if there is
    /// room; `Ok(None)` when the cache is full or disabled.
    ///
    /// # Errors
    ///
    /// [`GrantError`] from the grant layer.
    pub fn get(
        &mut self,
        grants: &Arc<G>,
        gref: GrantRef,
    ) -> Result<Option<Arc<MappedGrants<G>>>, GrantError> {
        if let Some(m) = self.map.get(&gref) {
            return Ok(Some(Arc::clone(m)));
        }
        if self.map.len() >= self.cap {
            return Ok(None);
        }
        let m = Arc::new(MappedGrants::map(grants, &[gref], true)?);
        self.map.insert(gref, Arc::clone(&m));
        Ok(Some(m))
    }

    /// Drop every cached mapping (disconnect); each unmaps once its
    /// in-flight users finish.
    pub fn clear(&mut self) {
        self.map.clear();
    }
}
