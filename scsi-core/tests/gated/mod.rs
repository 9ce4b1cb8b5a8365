//! A backstore whose reads wait until the test opens a gate, for tests that
//! need commands to stay running (task attributes, aborts, resets).
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures::task::noop_waker_ref;
use tgtkit_scsi_core::backstore::{Backstore, Capabilities, Geometry, IoResult, WriteFlags};
use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::test_utils::MemBackstore;

/// Reads wait for [`Gated::open`]; everything else goes straight to `inner`.
pub struct Gated {
    inner: MemBackstore,
    open: AtomicBool,
    waiters: event_listener::Event,
}

impl Gated {
    /// A closed gate in front of `inner`.
    pub fn new(inner: MemBackstore) -> Self {
        Self {
            inner,
            open: AtomicBool::new(false),
            waiters: event_listener::Event::new(),
        }
    }

    /// Let every waiting and future read through.
    pub fn open(&self) {
        self.open.store(true, Ordering::Release);
        self.waiters.notify(usize::MAX);
    }
}

#[async_trait]
impl Backstore for Gated {
    fn geometry(&self) -> Geometry {
        self.inner.geometry()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn read(&self, offset: u64, buf: DataBuffer) -> IoResult<()> {
        while !self.open.load(Ordering::Acquire) {
            let l = self.waiters.listen();
            if self.open.load(Ordering::Acquire) {
                break;
            }
            l.await;
        }
        self.inner.read(offset, buf).await
    }
    async fn write(&self, offset: u64, buf: DataBuffer, flags: WriteFlags) -> IoResult<()> {
        self.inner.write(offset, buf, flags).await
    }
    async fn flush(&self) -> IoResult<()> {
        self.inner.flush().await
    }
}

/// Poll `f` once with a waker that does nothing.
pub fn poll_once<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(noop_waker_ref()))
}
