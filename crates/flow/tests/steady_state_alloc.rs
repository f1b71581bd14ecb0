//! Checks the "no allocation per packet in steady state" promise of the three tables with a
//! counting global allocator: after a warm-up that lets buffers, slabs and indexes reach their
//! working size, a long run of the same traffic must not allocate at all.
//!
//! The allocator wrapper needs `unsafe impl GlobalAlloc`; it only forwards to the system
//! allocator and counts, and lives in this test binary alone.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};

use flow::defrag::{DefragConfig, Defragmenter, FragKey};
use flow::tcp::{TcpConfig, TcpDnsReassembler, flags};
use flow::xact::{Finish, Pending, XactConfig, XactKey, XactTable};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the thread-locals may already be gone while a thread shuts down.
    let _ = COUNTING.try_with(|c| {
        if c.get() {
            let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        }
    });
}

// SAFETY: forwards every call unchanged to the system allocator; the counting touches only
// const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made on this thread by `f`.
fn allocations(f: impl FnOnce()) -> u64 {
    ALLOCS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCS.with(|a| a.get())
}

const C: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const S: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 53));

/// One DNS-over-TCP connection: handshake, a query in one segment, a reply split in three
/// (prefix split too), FIN both ways.
fn tcp_connection(r: &mut TcpDnsReassembler, port: u16, now: u64, seen: &mut u64) {
    let mut q = [1u8; 32];
    q[..2].copy_from_slice(&30u16.to_be_bytes());
    let mut a = [2u8; 202];
    a[..2].copy_from_slice(&200u16.to_be_bytes());
    let mut cb = |_: &[u8], _| *seen += 1;
    let (syn, ack, fin) = (flags::SYN, flags::ACK, flags::FIN);
    r.segment(C, port, S, 53, 0, 1000, syn, &[], now, &mut cb);
    r.segment(S, 53, C, port, 0, 5000, syn | ack, &[], now, &mut cb);
    r.segment(C, port, S, 53, 0, 1001, ack, &q, now, &mut cb);
    r.segment(S, 53, C, port, 0, 5001, ack, &a[..1], now, &mut cb);
    r.segment(S, 53, C, port, 0, 5002, ack, &a[1..100], now, &mut cb);
    r.segment(S, 53, C, port, 0, 5101, ack | fin, &a[100..], now, &mut cb);
    r.segment(C, port, S, 53, 0, 1033, ack | fin, &[], now, &mut cb);
}

#[test]
fn tables_do_not_allocate_in_steady_state() {
    // The counter itself works.
    let probe = allocations(|| drop(std::hint::black_box(vec![1u8; 16])));
    assert_eq!(probe, 1);

    // Everything the loops below need is created here, outside the counted sections.
    let mut r = TcpDnsReassembler::new(TcpConfig::default());
    let mut seen = 0u64;
    for i in 0..2_000u16 {
        tcp_connection(&mut r, 10_000 + i, u64::from(i), &mut seen);
    }
    let n = allocations(|| {
        for i in 0..20_000u16 {
            tcp_connection(&mut r, 20_000 + i, 10_000 + u64::from(i), &mut seen);
        }
    });
    assert_eq!(seen, 22_000 * 2);
    assert_eq!(r.connections(), 0);
    assert_eq!(n, 0, "tcp reassembler allocated {n} times");

    let mut d = Defragmenter::new(DefragConfig::default());
    let mut hdr = [0u8; 20];
    hdr[0] = 0x45;
    let body = [7u8; 1480];
    let mut done = 0u64;
    let mut datagram = |d: &mut Defragmenter, id: u32| {
        let k = FragKey {
            src: C,
            dst: S,
            id,
            proto: 17,
            vlan: 0,
        };
        // Reversed order, with a duplicate.
        d.insert(k, &hdr, 2960, false, &body[..500], 0);
        d.insert(k, &hdr, 1480, true, &body, 0);
        d.insert(k, &hdr, 1480, true, &body, 0);
        if d.insert(k, &hdr, 0, true, &body, 0).is_some() {
            done += 1;
        }
    };
    for id in 0..100 {
        datagram(&mut d, id);
    }
    let n = allocations(|| {
        for id in 100..20_000 {
            datagram(&mut d, id);
        }
    });
    assert_eq!(done, 20_000);
    assert_eq!(n, 0, "defragmenter allocated {n} times");

    let mut x = XactTable::new(XactConfig::default());
    let mut matched = 0u64;
    let mut step = |x: &mut XactTable, i: u64| {
        let key = |j: u64| XactKey {
            flow: j % 5_000,
            id: j as u16,
        };
        x.start(
            key(i),
            Pending {
                start_ns: i,
                query_size: 40,
                filtered: false,
                tag: 0,
            },
        );
        if i >= 1_000 && matches!(x.finish(key(i - 1_000), i), Finish::Matched { .. }) {
            matched += 1;
        }
    };
    for i in 0..10_000 {
        step(&mut x, i);
    }
    let n = allocations(|| {
        for i in 10_000..200_000 {
            step(&mut x, i);
        }
    });
    assert_eq!(matched, 199_000);
    assert_eq!(n, 0, "transaction table allocated {n} times");
}
