//! Proves the fast path does not allocate: a counting global allocator, armed only on this
//! test's thread, counts allocations while bursts are processed and transmitted — known
//! unicast with push and pop, floods, drops of every ingress kind, and learning a stream of
//! new source MACs into a full table (eviction included).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use datapath::fdb::FdbConfig;
use datapath::mem::{MemPortConfig, MemSwitch};
use datapath::topology::{PortConfig, PortId, Topology};
use datapath::wire::{EthernetRepr, MacAddr, Tci};

struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the thread-local may be gone during thread teardown.
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: forwards every call unchanged to the system allocator, which upholds the
// GlobalAlloc contract; the bookkeeping only touches const-initialised thread-locals,
// which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn pid(i: usize) -> PortId {
    PortId::new(i).expect("port id")
}

fn frame(dst: MacAddr, src: MacAddr, tag: Option<u16>, buf: &mut [u8; 64]) -> &[u8] {
    let repr = EthernetRepr {
        dst,
        src,
        tag: tag.map(|v| Tci::new(0, false, v)),
        ethertype: 0x0800,
    };
    let n = repr.emit(buf).expect("room for header");
    let total = if tag.is_some() { 64 } else { 60 };
    buf[n..total].fill(0x5a);
    &buf[..total]
}

/// Drops whatever ports transmitted, without allocating.
fn drain(sw: &mut MemSwitch) {
    for i in 0..4 {
        if let Some(p) = sw.port(pid(i)) {
            while p.tx.pop() {}
        }
    }
}

#[test]
fn forwarding_learning_and_dropping_never_allocate() {
    let mut b = Topology::builder();
    b.add_port(
        0,
        PortConfig::new("vm1", "access 100".parse().expect("vlan")),
    )
    .expect("p0");
    b.add_port(
        1,
        PortConfig::new("vm2", "access 100".parse().expect("vlan")),
    )
    .expect("p1");
    b.add_port(
        2,
        PortConfig::new("up", "trunk 100,200".parse().expect("vlan")),
    )
    .expect("p2");
    b.add_port(
        3,
        PortConfig::new("vm3", "access 200".parse().expect("vlan")),
    )
    .expect("p3");
    let fdb = FdbConfig {
        capacity: 1024,
        aging_secs: 300,
    };
    let mut sw = MemSwitch::new(b.build(), fdb, MemPortConfig::default(), 32);
    let a = MacAddr([2, 0, 0, 0, 0, 1]);
    let z = MacAddr([2, 0, 0, 0, 0, 2]);
    let mut buf = [0u8; 64];
    // Warm-up outside the armed region: learn both ends once.
    sw.inject(pid(0), frame(MacAddr::BROADCAST, a, None, &mut buf))
        .expect("inject");
    sw.inject(pid(2), frame(MacAddr::BROADCAST, z, Some(100), &mut buf))
        .expect("inject");
    sw.run();
    drain(&mut sw);

    ARMED.with(|x| x.set(true));
    let mut processed = 0;
    for round in 0..200u64 {
        sw.set_time(round / 10);
        for i in 0..40u64 {
            // Known unicast both ways (push and pop).
            sw.inject(pid(0), frame(z, a, None, &mut buf))
                .expect("inject");
            sw.inject(pid(2), frame(a, z, Some(100), &mut buf))
                .expect("inject");
            // A broadcast, an unknown unicast and drops of several kinds.
            sw.inject(
                pid(3),
                frame(
                    MacAddr::BROADCAST,
                    MacAddr([2, 0, 0, 0, 1, 3]),
                    None,
                    &mut buf,
                ),
            )
            .expect("inject");
            sw.inject(
                pid(1),
                frame(
                    MacAddr([2, 9, 9, 9, 9, 9]),
                    MacAddr([2, 0, 0, 0, 1, 4]),
                    None,
                    &mut buf,
                ),
            )
            .expect("inject");
            sw.inject(pid(0), frame(z, a, Some(100), &mut buf))
                .expect("inject"); // tagged on access
            sw.inject(pid(2), frame(z, a, None, &mut buf))
                .expect("inject"); // untagged on trunk
            sw.inject(pid(0), &buf[..10]).expect("inject"); // runt
                                                            // A stream of new sources: fills the 1024-entry table, then evicts.
            let src = MacAddr::from_u64(0x0200_0100_0000 | (round * 40 + i));
            sw.inject(pid(3), frame(MacAddr::BROADCAST, src, None, &mut buf))
                .expect("inject");
        }
        processed += sw.run();
        drain(&mut sw);
    }
    ARMED.with(|x| x.set(false));
    let allocs = ALLOCS.with(Cell::get);

    assert_eq!(processed, 200 * 40 * 8);
    assert_eq!(allocs, 0, "allocations on the fast path");
    let fdb = sw.pipeline().fdb();
    assert_eq!(fdb.len(), 1024);
    assert!(fdb.counters().evicted > 6000, "{:?}", fdb.counters());
    // The trunk sends per inner iteration: the known unicast a->z, the VLAN 200 broadcast,
    // the VLAN 100 unknown unicast and the new-source broadcast; plus the warm-up flood.
    assert_eq!(sw.pipeline().counters(pid(2)).tx_packets, 1 + 200 * 40 * 4);
}
