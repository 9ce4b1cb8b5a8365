//! `/dev/xen/evtchn`: interdomain event channels (Linux's `xen/evtchn.h`
//! UAPI).
//!
//! [`Evtchn`] is one open of the device: bind ports to a remote domain's
//! ports, notify them, and read which of its ports fired (each read port
//! is masked until written back: [`Evtchn::unmask`]). It is [`AsFd`], so a
//! runtime can await its readability itself.
//!
//! [`InterdomainChannel`] is one bound port on its own open of the device,
//! with a small thread waiting on it: the
//! [`EventChannel`] a backend processor runs on, usable from any async
//! runtime. [`InterdomainChannel::close`] makes the processor's `wait`
//! answer `false`, which is how a device is disconnected.
//!
//! ```no_run
//! use tgtkit_xen::evtchn::InterdomainChannel;
//! use tgtkit_xen_ring::event::EventChannel;
//!
//! let ch = InterdomainChannel::bind(1, 16)?; // domain 1's port 16
//! ch.notify();
//! let kicked = futures::executor::block_on(ch.wait());
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::thread::JoinHandle;

use futures::future::BoxFuture;
use futures::task::AtomicWaker;
use rustix::event::{EventfdFlags, PollFd, PollFlags};
use rustix::fs::{Mode, OFlags};
use tgtkit_xen_ring::event::EventChannel;

use crate::ioctl;

/// The device node.
pub const EVTCHN_PATH: &str = "/dev/xen/evtchn";

/// An event-channel port number (`evtchn_port_t`).
pub type Port = u32;

/// The raw UAPI structures and ioctl numbers (`xen/evtchn.h`), checked
/// against the header by `tests/header_layout.rs`.
pub mod sys {
    use std::mem::size_of;

    /// `struct ioctl_evtchn_bind_interdomain`.
    #[derive(Debug, Clone, Copy, Default)]
    #[repr(C)]
    pub struct BindInterdomain {
        /// The other domain.
        pub remote_domain: u32,
        /// Its port.
        pub remote_port: u32,
    }

    /// `struct ioctl_evtchn_unbind` and `struct ioctl_evtchn_notify`.
    #[derive(Debug, Clone, Copy, Default)]
    #[repr(C)]
    pub struct PortArg {
        /// A local port.
        pub port: u32,
    }

    /// `IOCTL_EVTCHN_BIND_INTERDOMAIN` (returns the local port).
    pub const IOCTL_EVTCHN_BIND_INTERDOMAIN: u32 =
        super::ioctl::none(b'E', 1, size_of::<BindInterdomain>()) as u32;
    /// `IOCTL_EVTCHN_UNBIND`.
    pub const IOCTL_EVTCHN_UNBIND: u32 = super::ioctl::none(b'E', 3, size_of::<PortArg>()) as u32;
    /// `IOCTL_EVTCHN_NOTIFY`.
    pub const IOCTL_EVTCHN_NOTIFY: u32 = super::ioctl::none(b'E', 4, size_of::<PortArg>()) as u32;
}

/// An open `/dev/xen/evtchn` (non-blocking).
#[derive(Debug)]
pub struct Evtchn {
    fd: OwnedFd,
}

impl AsFd for Evtchn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Evtchn {
    /// Open [`EVTCHN_PATH`].
    ///
    /// # Errors
    ///
    /// The `open` error.
    pub fn open() -> io::Result<Self> {
        let fd = rustix::fs::open(
            EVTCHN_PATH,
            OFlags::RDWR | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )?;
        Ok(Self { fd })
    }

    /// `IOCTL_EVTCHN_BIND_INTERDOMAIN`: a local port connected to
    /// `remote_port` of `remote_domain`.
    ///
    /// # Errors
    ///
    /// The ioctl error.
    pub fn bind_interdomain(&self, remote_domain: u32, remote_port: Port) -> io::Result<Port> {
        let mut arg = sys::BindInterdomain {
            remote_domain,
            remote_port,
        };
        // SAFETY: the argument struct this ioctl takes.
        let port =
            unsafe { ioctl::call(&self.fd, sys::IOCTL_EVTCHN_BIND_INTERDOMAIN as _, &mut arg) }?;
        u32::try_from(port).map_err(|_| io::Error::other("negative port"))
    }

    /// `IOCTL_EVTCHN_UNBIND`.
    ///
    /// # Errors
    ///
    /// The ioctl error.
    pub fn unbind(&self, port: Port) -> io::Result<()> {
        let mut arg = sys::PortArg { port };
        // SAFETY: the argument struct this ioctl takes.
        unsafe { ioctl::call(&self.fd, sys::IOCTL_EVTCHN_UNBIND as _, &mut arg) }.map(drop)
    }

    /// `IOCTL_EVTCHN_NOTIFY`: kick the other end of `port`.
    ///
    /// # Errors
    ///
    /// The ioctl error.
    pub fn notify(&self, port: Port) -> io::Result<()> {
        let mut arg = sys::PortArg { port };
        // SAFETY: the argument struct this ioctl takes.
        unsafe { ioctl::call(&self.fd, sys::IOCTL_EVTCHN_NOTIFY as _, &mut arg) }.map(drop)
    }

    /// Read the ports that fired into `out` (each is masked until
    /// [`Evtchn::unmask`]ed); `Ok(0)` when none is pending.
    ///
    /// # Errors
    ///
    /// The read error.
    pub fn pending(&self, out: &mut [Port]) -> io::Result<usize> {
        let mut bytes = vec![0u8; out.len().min(64) * 4];
        match rustix::io::read(&self.fd, &mut bytes) {
            Ok(n) => {
                let mut k = 0;
                for (slot, c) in out.iter_mut().zip(bytes[..n - n % 4].chunks_exact(4)) {
                    *slot = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
                    k += 1;
                }
                Ok(k)
            }
            Err(rustix::io::Errno::AGAIN) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Unmask `port` (a `u32` write), so it can fire again.
    ///
    /// # Errors
    ///
    /// The write error.
    pub fn unmask(&self, port: Port) -> io::Result<()> {
        rustix::io::write(&self.fd, &port.to_ne_bytes())?;
        Ok(())
    }
}

struct Shared {
    pending: AtomicBool,
    closed: AtomicBool,
    waker: AtomicWaker,
}

/// One interdomain port and a thread that waits on it: an
/// [`EventChannel`] for a backend processor.
pub struct InterdomainChannel {
    dev: Arc<Evtchn>,
    port: Port,
    shared: Arc<Shared>,
    stop: Arc<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for InterdomainChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterdomainChannel")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl InterdomainChannel {
    /// Bind `remote_port` of `remote_domain` on a new open of the device.
    ///
    /// # Errors
    ///
    /// The open, ioctl, eventfd or thread-spawn error.
    pub fn bind(remote_domain: u32, remote_port: Port) -> io::Result<Self> {
        let dev = Arc::new(Evtchn::open()?);
        let port = dev.bind_interdomain(remote_domain, remote_port)?;
        let stop = Arc::new(rustix::event::eventfd(0, EventfdFlags::CLOEXEC)?);
        let shared = Arc::new(Shared {
            // Requests may already be on the ring: look once.
            pending: AtomicBool::new(true),
            closed: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        let thread = {
            let (dev, shared, stop) = (Arc::clone(&dev), Arc::clone(&shared), Arc::clone(&stop));
            std::thread::Builder::new()
                .name(format!("evtchn-{port}"))
                .spawn(move || wait_loop(&dev, &shared, &stop))?
        };
        Ok(Self {
            dev,
            port,
            shared,
            stop,
            thread: Some(thread),
        })
    }

    /// The local port.
    #[must_use]
    pub fn port(&self) -> Port {
        self.port
    }

    /// The device (to await its fd with another reactor).
    #[must_use]
    pub fn device(&self) -> &Evtchn {
        &self.dev
    }

    /// Make every `wait` answer `false` from now on (the device is being
    /// disconnected).
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        let _ = rustix::io::write(&*self.stop, &1u64.to_ne_bytes());
        self.shared.waker.wake();
    }
}

fn wait_loop(dev: &Evtchn, shared: &Shared, stop: &OwnedFd) {
    let mut ports = [0u32; 16];
    while !shared.closed.load(Ordering::SeqCst) {
        let mut fds = [
            PollFd::new(dev, PollFlags::IN),
            PollFd::new(stop, PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                tracing::error!(error = %e, "evtchn: poll failed");
                break;
            }
        }
        if !fds[1].revents().is_empty() {
            break;
        }
        match dev.pending(&mut ports) {
            Ok(n) => {
                for p in &ports[..n] {
                    if let Err(e) = dev.unmask(*p) {
                        tracing::warn!(port = p, error = %e, "evtchn: unmask failed");
                    }
                }
                if n > 0 {
                    shared.pending.store(true, Ordering::SeqCst);
                    shared.waker.wake();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "evtchn: read failed");
                break;
            }
        }
    }
    // Whatever ended the loop, the waiter must not sleep forever.
    shared.closed.store(true, Ordering::SeqCst);
    shared.waker.wake();
}

impl EventChannel for InterdomainChannel {
    fn notify(&self) {
        if let Err(e) = self.dev.notify(self.port) {
            tracing::warn!(port = self.port, error = %e, "evtchn: notify failed");
        }
    }

    fn wait(&self) -> BoxFuture<'_, bool> {
        let shared = &self.shared;
        Box::pin(futures::future::poll_fn(move |cx| {
            if shared.closed.load(Ordering::SeqCst) {
                return Poll::Ready(false);
            }
            if shared.pending.swap(false, Ordering::SeqCst) {
                return Poll::Ready(true);
            }
            shared.waker.register(cx.waker());
            if shared.closed.load(Ordering::SeqCst) {
                return Poll::Ready(false);
            }
            if shared.pending.swap(false, Ordering::SeqCst) {
                return Poll::Ready(true);
            }
            Poll::Pending
        }))
    }
}

impl Drop for InterdomainChannel {
    fn drop(&mut self) {
        self.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Err(e) = self.dev.unbind(self.port) {
            tracing::debug!(port = self.port, error = %e, "evtchn: unbind failed");
        }
    }
}
