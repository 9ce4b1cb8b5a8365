#![allow(clippy::cast_possible_truncation)] // test patterns cut to bytes on purpose

use super::*;
use proptest::prelude::*;

fn poke(mem: &RingMemory, off: usize, val: u32) {
    mem.as_volatile_slice()
        .store(val, off, Ordering::SeqCst)
        .unwrap();
}

fn pair(pages: usize, entry: usize) -> (RingMemory, FrontRing, BackRing) {
    let mem = RingMemory::anonymous(pages).unwrap();
    let front = FrontRing::init(mem.clone(), entry).unwrap();
    let back = BackRing::attach(mem.clone(), entry, 0).unwrap();
    (mem, front, back)
}

#[test]
fn accepts_ring_sizes_as_ring_h_computes_them() {
    // __CONST_RING_SIZE: blkif 112-byte entries, 32 per page; vscsiif 252, 16.
    assert_eq!(RingLayout::new(4096, 112).unwrap().size(), 32);
    assert_eq!(RingLayout::new(4096, 108).unwrap().size(), 32);
    assert_eq!(RingLayout::new(4096, 252).unwrap().size(), 16);
    // Multi-page rings (ring-page-order): blkback's __CONST_RING_SIZE(blkif, PAGE_SIZE * n).
    assert_eq!(RingLayout::new(2 * 4096, 112).unwrap().size(), 64);
    assert_eq!(RingLayout::new(16 * 4096, 112).unwrap().size(), 512);
    assert_eq!(RingLayout::new(4096, 4032).unwrap().size(), 1);
    assert_eq!(RingLayout::new(4096, 1).unwrap().size(), 2048);
}

#[test]
fn rejects_regions_without_room() {
    assert_eq!(
        RingLayout::new(64, 112),
        Err(LayoutError::RegionTooSmall { len: 64 })
    );
    assert_eq!(RingLayout::new(4096, 0), Err(LayoutError::ZeroEntrySize));
    assert!(RingMemory::anonymous(0).is_err());
    assert!(RingMemory::anonymous(MAX_RING_PAGES + 1).is_err());
}

#[test]
fn accepts_shared_ring_init_values() {
    let (mem, _f, back) = pair(1, 112);
    let idx = back.shared_indices();
    assert_eq!(
        (idx.req_prod, idx.req_event, idx.rsp_prod, idx.rsp_event),
        (0, 1, 0, 1)
    );
    let mut pad = [0xffu8; 48];
    mem.as_volatile_slice()
        .read_slice(&mut pad, sring::PVT)
        .unwrap();
    assert_eq!(pad, [0; 48]);
}

#[test]
fn accepts_requests_and_responses_round_trip_with_wrap() {
    let (_mem, mut front, mut back) = pair(1, 16);
    let size = front.size();
    let mut req = [0u8; 16];
    let mut rsp = [0u8; 16];
    for round in 0u32..(3 * size + 5) {
        let v = (round % 251) as u8;
        front.push_request(&[v; 16]).unwrap();
        let _ = front.push_requests_and_check_notify();
        assert!(back.next_request(&mut req).unwrap());
        assert_eq!(req, [v; 16]);
        assert!(!back.next_request(&mut req).unwrap());
        back.push_response(&[v.wrapping_add(1); 16]).unwrap();
        let _ = back.push_responses_and_check_notify();
        assert!(front.next_response(&mut rsp).unwrap());
        assert_eq!(rsp, [v.wrapping_add(1); 16]);
    }
}

#[test]
fn accepts_indices_wrapping_past_u32_max() {
    let mem = RingMemory::anonymous(1).unwrap();
    let start = u32::MAX - 3;
    poke(&mem, sring::REQ_PROD, start);
    poke(&mem, sring::RSP_PROD, start);
    let mut back = BackRing::attach(mem.clone(), 64, start).unwrap();
    poke(&mem, sring::REQ_PROD, start.wrapping_add(10));
    assert_eq!(back.unconsumed_requests().unwrap(), 10);
    let mut buf = [0u8; 64];
    for _ in 0..10 {
        assert!(back.next_request(&mut buf).unwrap());
    }
    assert_eq!(back.req_cons(), 6);
    for _ in 0..10 {
        back.push_response(&buf).unwrap();
    }
    assert_eq!(
        back.push_response(&buf),
        Err(RingError::NoRequestOutstanding)
    );
}

#[test]
fn accepts_resume_at_the_published_response_producer() {
    let (mem, mut front, mut back) = pair(1, 32);
    for i in 0..5u8 {
        front.push_request(&[i; 32]).unwrap();
    }
    let _kick = front.push_requests_and_check_notify();
    let mut buf = [0u8; 32];
    for _ in 0..4 {
        assert!(back.next_request(&mut buf).unwrap());
    }
    // Two answered and published; two consumed but never answered; one
    // never consumed. Then the backend process dies.
    back.push_response(&[0xA0; 32]).unwrap();
    back.push_response(&[0xA1; 32]).unwrap();
    let _ = back.push_responses_and_check_notify();
    drop(back);
    let mut resumed = BackRing::resume(mem.clone(), 32).unwrap();
    assert_eq!(resumed.req_cons(), 2);
    assert_eq!(resumed.unconsumed_requests().unwrap(), 3);
    for want in 2..5u8 {
        assert!(resumed.next_request(&mut buf).unwrap());
        assert_eq!(buf, [want; 32]);
        resumed.push_response(&[0xA0 | want; 32]).unwrap();
    }
    assert!(!resumed.next_request(&mut buf).unwrap());
    let _ = resumed.push_responses_and_check_notify();
    let mut seen = Vec::new();
    while front.next_response(&mut buf).unwrap() {
        seen.push(buf[0]);
    }
    assert_eq!(seen, [0xA0, 0xA1, 0xA2, 0xA3, 0xA4]);
    // A fresh ring resumes at 0, like attach.
    let fresh = RingMemory::anonymous(1).unwrap();
    let _front = FrontRing::init(fresh.clone(), 32).unwrap();
    assert_eq!(BackRing::resume(fresh, 32).unwrap().req_cons(), 0);
}

#[test]
fn accepts_notify_decisions_of_ring_h() {
    let (mem, mut front, mut back) = pair(1, 32);
    // Backend armed req_event = 1: the first request notifies, the second not.
    front.push_request(&[1; 32]).unwrap();
    assert!(front.push_requests_and_check_notify());
    front.push_request(&[2; 32]).unwrap();
    assert!(!front.push_requests_and_check_notify());
    let mut buf = [0u8; 32];
    assert!(back.next_request(&mut buf).unwrap());
    assert!(back.next_request(&mut buf).unwrap());
    // Nothing left: the final check re-arms req_event to req_cons + 1.
    assert!(!back.final_check_for_requests().unwrap());
    assert_eq!(back.shared_indices().req_event, 3);
    front.push_request(&[3; 32]).unwrap();
    assert!(front.push_requests_and_check_notify());
    // Responses: rsp_event = 1 initially.
    back.push_response(&buf).unwrap();
    assert!(back.push_responses_and_check_notify());
    back.push_response(&buf).unwrap();
    assert!(!back.push_responses_and_check_notify());
    // The frontend sets rsp_event far ahead: no notification.
    poke(&mem, sring::RSP_EVENT, 100);
    assert!(back.next_request(&mut buf).unwrap());
    back.push_response(&buf).unwrap();
    assert!(!back.push_responses_and_check_notify());
}

#[test]
fn accepts_final_check_seeing_late_request() {
    let (_mem, mut front, mut back) = pair(1, 32);
    assert!(!back.final_check_for_requests().unwrap());
    front.push_request(&[1; 32]).unwrap();
    assert!(front.push_requests_and_check_notify());
    assert!(back.final_check_for_requests().unwrap());
}

#[test]
fn rejects_request_producer_too_far_ahead() {
    // Linux blkback: RING_REQUEST_PROD_OVERFLOW halts the ring.
    let (mem, _front, mut back) = pair(1, 112);
    poke(&mem, sring::REQ_PROD, 33);
    let err = back.unconsumed_requests().unwrap_err();
    assert!(matches!(
        err,
        RingError::RequestProducerOverflow {
            prod: 33,
            size: 32,
            ..
        }
    ));
    // Broken for good, even if the frontend puts it back.
    poke(&mem, sring::REQ_PROD, 0);
    assert_eq!(back.next_request(&mut [0u8; 112]), Err(err.clone()));
    assert_eq!(back.broken(), Some(&err));
}

#[test]
fn rejects_request_producer_rewind() {
    let (mem, _front, mut back) = pair(1, 112);
    poke(&mem, sring::REQ_PROD, 5);
    let mut buf = [0u8; 112];
    for _ in 0..5 {
        assert!(back.next_request(&mut buf).unwrap());
    }
    poke(&mem, sring::REQ_PROD, 3);
    assert_eq!(
        back.unconsumed_requests(),
        Err(RingError::RequestProducerRewound { prod: 3, cons: 5 })
    );
}

#[test]
fn accepts_full_ring_without_overrunning_unanswered_slots() {
    // RING_REQUEST_CONS_OVERFLOW: we never consume past unanswered slots.
    let (mem, _front, mut back) = pair(1, 112);
    poke(&mem, sring::REQ_PROD, 32);
    let mut buf = [0u8; 112];
    for _ in 0..32 {
        assert!(back.next_request(&mut buf).unwrap());
    }
    assert!(!back.next_request(&mut buf).unwrap());
    back.push_response(&buf[..16]).unwrap();
    // One slot answered: the frontend may now legally produce one more.
    poke(&mem, sring::REQ_PROD, 33);
    assert!(back.next_request(&mut buf).unwrap());
    poke(&mem, sring::REQ_PROD, 34);
    assert!(back.next_request(&mut buf).is_err());
}

#[test]
fn rejects_response_producer_overflow_on_front() {
    let (mem, mut front, _back) = pair(1, 16);
    front.push_request(&[0; 16]).unwrap();
    let _ = front.push_requests_and_check_notify();
    poke(&mem, sring::RSP_PROD, 2);
    assert!(matches!(
        front.unconsumed_responses(),
        Err(RingError::ResponseProducerOverflow { prod: 2, cons: 0 })
    ));
}

#[test]
fn rejects_push_on_full_front_ring_and_oversized_entries() {
    let (_mem, mut front, _back) = pair(1, 2016);
    assert_eq!(front.size(), 2);
    front.push_request(&[0; 8]).unwrap();
    front.push_request(&[0; 8]).unwrap();
    assert_eq!(front.push_request(&[0; 8]), Err(RingError::Full));
    let (_m, mut f2, _b) = pair(1, 16);
    assert!(matches!(
        f2.push_request(&[0; 17]),
        Err(RingError::EntryTooLarge {
            len: 17,
            entry_size: 16
        })
    ));
}

#[test]
fn accepts_multi_page_ring_entries_in_later_pages() {
    let (_mem, mut front, mut back) = pair(4, 112);
    assert_eq!(back.size(), 128);
    let mut buf = [0u8; 112];
    for i in 0..128u32 {
        front.push_request(&[(i % 256) as u8; 112]).unwrap();
    }
    let _ = front.push_requests_and_check_notify();
    for i in 0..128u32 {
        assert!(back.next_request(&mut buf).unwrap());
        assert_eq!(buf[111], (i % 256) as u8);
    }
}

#[test]
fn accepts_concurrent_front_and_back_threads() {
    let (_mem, mut front, mut back) = pair(1, 16);
    const N: u64 = 20_000;
    let backend = std::thread::spawn(move || {
        let mut buf = [0u8; 16];
        let mut done = 0u64;
        while done < N {
            match back.next_request(&mut buf).unwrap() {
                true => {
                    let v = u64::from_le_bytes(buf[..8].try_into().unwrap());
                    assert_eq!(v, done);
                    let mut rsp = [0u8; 16];
                    rsp[..8].copy_from_slice(&(v * 3).to_le_bytes());
                    back.push_response(&rsp).unwrap();
                    let _ = back.push_responses_and_check_notify();
                    done += 1;
                }
                false => std::thread::yield_now(),
            }
        }
    });
    let mut sent = 0u64;
    let mut got = 0u64;
    let mut rsp = [0u8; 16];
    while got < N {
        while sent < N && front.free_requests() > 0 {
            let mut req = [0u8; 16];
            req[..8].copy_from_slice(&sent.to_le_bytes());
            front.push_request(&req).unwrap();
            sent += 1;
        }
        let _ = front.push_requests_and_check_notify();
        while front.next_response(&mut rsp).unwrap() {
            assert_eq!(u64::from_le_bytes(rsp[..8].try_into().unwrap()), got * 3);
            got += 1;
        }
        std::thread::yield_now();
    }
    backend.join().unwrap();
}

proptest! {
    /// Whatever the frontend writes into the header, the back ring never
    /// hands out more than a ring's worth of requests and never panics.
    #[test]
    fn accepts_any_shared_page_contents_without_panic(
        header in proptest::collection::vec(any::<u32>(), 4),
        updates in proptest::collection::vec(any::<u32>(), 0..16),
    ) {
        let mem = RingMemory::anonymous(1).unwrap();
        for (i, v) in header.iter().enumerate() {
            poke(&mem, i * 4, *v);
        }
        let mut back = BackRing::attach(mem.clone(), 112, header[0]).unwrap();
        let mut buf = [0u8; 112];
        let mut consumed = 0u32;
        for u in updates {
            poke(&mem, sring::REQ_PROD, u);
            while let Ok(true) = back.next_request(&mut buf) {
                consumed += 1;
                prop_assert!(back.outstanding() <= back.size());
                if consumed % 3 == 0 {
                    back.push_response(&buf[..16]).unwrap();
                }
                prop_assert!(consumed <= 10_000);
            }
            let _ = back.final_check_for_requests();
        }
    }
}
