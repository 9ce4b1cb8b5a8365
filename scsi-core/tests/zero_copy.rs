//! The READ/WRITE path moves data between the backstore and the transport's
#![allow(clippy::cast_possible_truncation)] // tests build CDB fields by hand
//! buffer without a per-command copy: no allocation on that path is as
//! large as the data (ARCHITECTURE: "READ and WRITE never copy through an
//! intermediate per-command Vec"). With a backstore that completes inline
//! (`Backstore::read_nowait`/`write_nowait`), a READ or WRITE allocates
//! nothing at all once the logical unit has seen one command.
//!
//! Allocations are counted per thread, so tests running in parallel do not
//! see each other's.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;
use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::engine::TaskAttribute;
use tgtkit_scsi_core::status::Status;

struct Counting;

thread_local! {
    /// Count this thread's allocations (const-initialised: no allocation
    /// and no destructor, so the allocator may read it).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

fn counting(on: bool) {
    COUNTING.with(|c| c.set(on));
}

/// (allocations, largest) counted on this thread so far.
fn counted() -> (usize, usize) {
    (COUNT.with(Cell::get), LARGEST.with(Cell::get))
}

// SAFETY: forwards to the system allocator; only adds relaxed counters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // `try_with`: the thread-local may already be gone while the
        // thread exits.
        let _ = COUNTING.try_with(|on| {
            if on.get() {
                COUNT.with(|c| c.set(c.get() + 1));
                LARGEST.with(|l| l.set(l.get().max(layout.size())));
            }
        });
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

    counting(true);
    let w = futures::executor::block_on(t.execute(write));
    let r = futures::executor::block_on(t.execute(read));
    counting(false);

    assert_eq!((w.status, r.status), (Status::GOOD, Status::GOOD));
    assert_eq!(into.to_vec(), pattern(LEN, 3));
    let (count, largest) = counted();
    assert!(
        largest < 1024,
        "largest allocation on the data path: {largest} bytes"
    );
    assert!(count <= 16, "{count} allocations for two commands");
}

#[test]
fn read_and_write_allocate_nothing_once_warm() {
    let (t, _s, init) = disk();
    const LEN: usize = 4096;
    const ROUNDS: usize = 64;
    let blocks = (LEN / BS as usize) as u32;
    let out = DataBuffer::from_vec(pattern(LEN, 5));
    let into = DataBuffer::zeroed(LEN);
    let mut commands = Vec::new();
    for i in 0..=ROUNDS {
        let lba = (i % 8) as u64 * u64::from(blocks);
        for attribute in [TaskAttribute::Simple, TaskAttribute::Ordered] {
            commands.push(init.command(&write16(lba, blocks), out.clone(), attribute));
            commands.push(init.command(&read16(lba, blocks), into.clone(), attribute));
        }
    }
    let mut commands = commands.into_iter();
    // The first round warms the logical unit: its unit attention entry for
    // this nexus, the task set's storage and its pool of abort slots.
    for cmd in commands.by_ref().take(4) {
        let r = futures::executor::block_on(t.execute(cmd));
        assert_eq!(r.status, Status::GOOD);
    }

    let mut statuses = Vec::with_capacity(ROUNDS * 4);
    counting(true);
    for cmd in commands {
        statuses.push(futures::executor::block_on(t.execute(cmd)).status);
    }
    counting(false);

    assert_eq!(statuses.len(), ROUNDS * 4);
    assert!(statuses.iter().all(|&s| s == Status::GOOD), "{statuses:?}");
    assert_eq!(into.to_vec(), pattern(LEN, 5));
    let (count, largest) = counted();
    assert_eq!(
        count,
        0,
        "{count} allocations (largest {largest} bytes) in {} READ/WRITE commands",
        ROUNDS * 4
    );
}
