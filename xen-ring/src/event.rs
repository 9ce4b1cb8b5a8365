//! The event channel of one ring, as a backend processor sees it.

use futures::future::BoxFuture;

/// The event channel of one ring, as the processor sees it.
///
/// `wait` must be cancel-safe: a kick that arrives while a `wait` future is
/// dropped unresolved must still wake the next `wait` (keep a pending flag).
pub trait EventChannel: Send + Sync {
    /// Notify the frontend (responses are ready).
    fn notify(&self);
    /// Resolve when the frontend kicks (`true`) or the device is being
    /// closed (`false`).
    fn wait(&self) -> BoxFuture<'_, bool>;
}
