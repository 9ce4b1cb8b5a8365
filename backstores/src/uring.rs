//! The io_uring engine of the file backstore (cargo feature `io-uring`).
//!
//! One thread per backstore owns the ring. Callers send requests over a
//! channel and poke an eventfd; the thread keeps a read of that eventfd
//! armed in the ring, so a single `io_uring_enter` wait wakes for new
//! requests and for completions alike. Each completion resolves the
//! caller's oneshot channel. Short transfers are resubmitted for the rest,
//! a read that reaches the end of a regular file zero-fills the remainder,
//! and a durable write whose `RWF_DSYNC` flag the kernel refuses is retried
//! as a plain write followed by an `fdatasync`.
//!
//! Each in-flight request keeps its [`DataBuffer`] handle (and the iovec
//! array the kernel reads) in the thread's slot table until its completion
//! arrives, so a caller dropping its future cannot free memory the kernel
//! is still using.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use futures::channel::oneshot;
use io_uring::{opcode, types, IoUring};
use tgtkit_scsi_core::buffer::DataBuffer;

use crate::file::Inner;

/// Submission queue entries (the completion queue gets twice as many).
const ENTRIES: u32 = 256;
/// The user_data of the eventfd read.
const WAKE: u64 = u64::MAX;
/// iovecs per SQE (`UIO_MAXIOV`).
const MAX_IOV: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Write { durable: bool },
    Flush,
}

struct Request {
    op: Op,
    offset: u64,
    buf: DataBuffer,
    done: oneshot::Sender<io::Result<()>>,
}

/// A request in the ring.
struct Slot {
    req: Request,
    /// Bytes transferred so far.
    moved: usize,
    /// The iovecs of the current submission (the kernel reads them).
    iov: Vec<libc::iovec>,
    /// Use `RWF_DSYNC` on this write.
    dsync: bool,
    /// Send an fdatasync once the data is written.
    fsync_after: bool,
    /// The fdatasync is what is in flight now.
    syncing: bool,
}

// SAFETY: the raw iovec pointers name memory of `req.buf`, which is `Send`;
// the slot moves to the ring thread once and stays there.
unsafe impl Send for Slot {}

/// Handle to a running ring thread.
pub(crate) struct Ring {
    tx: Option<mpsc::Sender<Request>>,
    wake: Arc<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

fn poke(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live local to an eventfd we own.
    let _ = unsafe { libc::write(fd.as_raw_fd(), (&raw const one).cast(), 8) };
}

impl Ring {
    /// Set up a ring and start its thread.
    ///
    /// # Errors
    ///
    /// The error of `io_uring_setup` (or of the opcode probe when the
    /// kernel lacks READV/WRITEV/FSYNC/READ), for the caller to log and
    /// fall back.
    pub(crate) fn start(inner: Arc<Inner>) -> io::Result<Ring> {
        let ring = IoUring::new(ENTRIES)?;
        let mut probe = io_uring::Probe::new();
        if ring.submitter().register_probe(&mut probe).is_ok() {
            for code in [
                opcode::Readv::CODE,
                opcode::Writev::CODE,
                opcode::Fsync::CODE,
                opcode::Read::CODE,
            ] {
                if !probe.is_supported(code) {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        format!("io_uring lacks opcode {code}"),
                    ));
                }
            }
        }
        // SAFETY: eventfd has no memory-safety preconditions.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let wake = Arc::new(unsafe { OwnedFd::from_raw_fd(raw) });
        let (tx, rx) = mpsc::channel();
        let thread_wake = Arc::clone(&wake);
        let thread = std::thread::Builder::new()
            .name("tgtkit-uring".into())
            .spawn(move || {
                let mut worker = Worker {
                    ring,
                    inner,
                    wake: thread_wake,
                    wake_buf: Box::leak(Box::new(0)),
                    slots: Vec::new(),
                    free: Vec::new(),
                    waiting: VecDeque::new(),
                    in_ring: 0,
                };
                worker.run(&rx);
            })?;
        Ok(Ring {
            tx: Some(tx),
            wake,
            thread: Some(thread),
        })
    }

    async fn submit(&self, op: Op, offset: u64, buf: DataBuffer) -> io::Result<()> {
        let gone = || io::Error::other("the io_uring thread is gone");
        let (done, rx) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or_else(gone)?;
        tx.send(Request {
            op,
            offset,
            buf,
            done,
        })
        .map_err(|_| gone())?;
        poke(&self.wake);
        rx.await.unwrap_or_else(|_| Err(gone()))
    }

    pub(crate) async fn read(&self, offset: u64, buf: DataBuffer) -> io::Result<()> {
        self.submit(Op::Read, offset, buf).await
    }

    pub(crate) async fn write(
        &self,
        offset: u64,
        buf: DataBuffer,
        durable: bool,
    ) -> io::Result<()> {
        self.submit(Op::Write { durable }, offset, buf).await
    }

    pub(crate) async fn flush(&self) -> io::Result<()> {
        self.submit(Op::Flush, 0, DataBuffer::empty()).await
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        drop(self.tx.take());
        poke(&self.wake);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Worker {
    ring: IoUring,
    inner: Arc<Inner>,
    wake: Arc<OwnedFd>,
    /// Where the eventfd read lands. Leaked (8 bytes per backstore) so a
    /// read still armed when the ring closes never targets freed memory.
    wake_buf: &'static mut u64,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    /// Requests that did not fit in the ring yet.
    waiting: VecDeque<Slot>,
    /// SQEs submitted and not completed (requests, not the eventfd read).
    in_ring: usize,
}

impl Worker {
    fn run(&mut self, rx: &mpsc::Receiver<Request>) {
        self.arm_wake();
        let mut closed = false;
        loop {
            loop {
                match rx.try_recv() {
                    Ok(req) => self.start(req),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            self.fill_ring();
            if closed && self.in_ring == 0 && self.waiting.is_empty() {
                return;
            }
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(err) if err.raw_os_error() == Some(libc::EINTR) => {}
                Err(err) if err.raw_os_error() == Some(libc::EBUSY) => {}
                Err(err) => {
                    tracing::error!(%err, "io_uring_enter failed; failing in-flight requests");
                    self.fail_all(&err);
                    return;
                }
            }
            self.reap();
        }
    }

    fn arm_wake(&mut self) {
        let sqe = opcode::Read::new(
            types::Fd(self.wake.as_raw_fd()),
            std::ptr::from_mut::<u64>(self.wake_buf).cast(),
            8,
        )
        .build()
        .user_data(WAKE);
        // SAFETY: `wake_buf` is leaked: valid for 8-byte writes forever.
        if unsafe { self.ring.submission().push(&sqe) }.is_err() {
            // Full: submit what is queued and try again.
            let _ = self.ring.submit();
            // SAFETY: as above.
            let _ = unsafe { self.ring.submission().push(&sqe) };
        }
    }

    fn start(&mut self, req: Request) {
        let dsync_ok = self.inner.dsync_flag.load(Ordering::Relaxed);
        let (dsync, fsync_after) = match req.op {
            Op::Write { durable: true } if dsync_ok => (true, false),
            Op::Write { durable: true } => (false, true),
            _ => (false, false),
        };
        self.waiting.push_back(Slot {
            req,
            moved: 0,
            iov: Vec::new(),
            dsync,
            fsync_after,
            syncing: false,
        });
    }

    /// Move waiting requests into the ring while it has room.
    fn fill_ring(&mut self) {
        while self.in_ring < ENTRIES as usize - 1 {
            let Some(slot) = self.waiting.pop_front() else {
                break;
            };
            let index = match self.free.pop() {
                Some(i) => i,
                None => {
                    self.slots.push(None);
                    self.slots.len() - 1
                }
            };
            self.slots[index] = Some(slot);
            self.push(index);
        }
    }

    /// Push the SQE for the current state of slot `index`.
    fn push(&mut self, index: usize) {
        let fd = types::Fd(self.inner.file.as_raw_fd());
        let Some(slot) = self.slots[index].as_mut() else {
            return;
        };
        let sqe = if slot.syncing || slot.req.op == Op::Flush {
            opcode::Fsync::new(fd)
                .flags(types::FsyncFlags::DATASYNC)
                .build()
        } else {
            let buf = &slot.req.buf;
            slot.iov.clear();
            if let Some(rest) = buf.slice(slot.moved, buf.len() - slot.moved) {
                slot.iov
                    .extend(rest.segments().take(MAX_IOV).map(|seg| libc::iovec {
                        iov_base: seg.ptr_guard_mut().as_ptr().cast(),
                        iov_len: seg.len(),
                    }));
            }
            // At most MAX_IOV entries.
            #[allow(clippy::cast_possible_truncation)]
            let count = slot.iov.len() as u32;
            let at = slot.req.offset + slot.moved as u64;
            match slot.req.op {
                Op::Read => opcode::Readv::new(fd, slot.iov.as_ptr(), count)
                    .offset(at)
                    .build(),
                _ => {
                    let flags = if slot.dsync { libc::RWF_DSYNC } else { 0 };
                    opcode::Writev::new(fd, slot.iov.as_ptr(), count)
                        .offset(at)
                        .rw_flags(flags)
                        .build()
                }
            }
        }
        .user_data(index as u64);
        loop {
            // SAFETY: the iovecs live in the slot (its Vec is not touched
            // until this SQE completes) and name memory of `slot.req.buf`,
            // which the slot keeps alive; the fd is kept open by `inner`.
            let pushed = unsafe { self.ring.submission().push(&sqe) }.is_ok();
            if pushed {
                break;
            }
            // The SQ is full: hand it to the kernel and retry.
            let _ = self.ring.submit();
        }
        self.in_ring += 1;
    }

    fn reap(&mut self) {
        let done: Vec<(u64, i32)> = self
            .ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        for (user_data, res) in done {
            if user_data == WAKE {
                self.arm_wake();
                continue;
            }
            self.in_ring -= 1;
            #[allow(clippy::cast_possible_truncation)]
            let index = user_data as usize;
            self.complete(index, res);
        }
    }

    fn finish(&mut self, index: usize, result: io::Result<()>) {
        if let Some(slot) = self.slots[index].take() {
            let _ = slot.req.done.send(result);
        }
        self.free.push(index);
    }

    fn complete(&mut self, index: usize, res: i32) {
        let Some(slot) = self.slots[index].as_mut() else {
            return;
        };
        if res < 0 {
            let err = io::Error::from_raw_os_error(-res);
            match -res {
                libc::EINTR | libc::EAGAIN => self.push(index),
                libc::EOPNOTSUPP | libc::EINVAL if slot.dsync => {
                    tracing::info!(%err, "io_uring: RWF_DSYNC refused; using fdatasync for FUA");
                    self.inner.dsync_flag.store(false, Ordering::Relaxed);
                    slot.dsync = false;
                    slot.fsync_after = true;
                    self.push(index);
                }
                _ => self.finish(index, Err(err)),
            }
            return;
        }
        if slot.syncing || slot.req.op == Op::Flush {
            self.finish(index, Ok(()));
            return;
        }
        // Non-negative and at most the iovec total.
        #[allow(clippy::cast_sign_loss)]
        let n = res as usize;
        let len = slot.req.buf.len();
        if n == 0 && slot.moved < len {
            if slot.req.op == Op::Read {
                // End of a regular file: the rest reads as zeroes.
                slot.req.buf.fill(slot.moved, len - slot.moved, 0);
                slot.moved = len;
            } else {
                self.finish(index, Err(io::Error::from(io::ErrorKind::WriteZero)));
                return;
            }
        }
        slot.moved += n;
        if slot.moved < len {
            self.push(index);
        } else if slot.fsync_after {
            slot.syncing = true;
            self.push(index);
        } else {
            self.finish(index, Ok(()));
        }
    }

    fn fail_all(&mut self, err: &io::Error) {
        for slot in self.slots.iter_mut().filter_map(Option::take) {
            let Slot { req, iov, .. } = slot;
            let _ = req
                .done
                .send(Err(io::Error::new(err.kind(), err.to_string())));
            // The kernel may still be using these: leak them rather than
            // free memory under an I/O that never completed.
            std::mem::forget(req.buf);
            std::mem::forget(iov);
        }
        for slot in self.waiting.drain(..) {
            let _ = slot
                .req
                .done
                .send(Err(io::Error::new(err.kind(), err.to_string())));
        }
    }
}
