//! The READ/WRITE path moves data between the backstore and the transport's
#![allow(clippy::cast_possible_truncation)] // tests build CDB fields by hand
//! buffer without a per-command copy: no allocation on that path is as
//! large as the data (ARCHITECTURE: "READ and WRITE never copy through an
//! intermediate per-command Vec").

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::*;
use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::engine::TaskAttribute;
use tgtkit_scsi_core::status::Status;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only adds relaxed counters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            COUNT.fetch_add(1, Ordering::Relaxed);
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn read_and_write_allocate_nothing_data_sized() {
    let (t, _s, init) = disk();
    const LEN: usize = 64 * 1024;
    let blocks = (LEN / BS as usize) as u32;
    let out = DataBuffer::from_vec(pattern(LEN, 3));
    let into = DataBuffer::zeroed(LEN);
    let write = init.command(&write16(0, blocks), out, TaskAttribute::Simple);
    let read = init.command(&read16(0, blocks), into.clone(), TaskAttribute::Simple);

    COUNTING.store(true, Ordering::Relaxed);
    let w = futures::executor::block_on(t.execute(write));
    let r = futures::executor::block_on(t.execute(read));
    COUNTING.store(false, Ordering::Relaxed);

    assert_eq!((w.status, r.status), (Status::GOOD, Status::GOOD));
    assert_eq!(into.to_vec(), pattern(LEN, 3));
    let largest = LARGEST.load(Ordering::Relaxed);
    let count = COUNT.load(Ordering::Relaxed);
    assert!(
        largest < 1024,
        "largest allocation on the data path: {largest} bytes"
    );
    assert!(count <= 16, "{count} allocations for two commands");
}
