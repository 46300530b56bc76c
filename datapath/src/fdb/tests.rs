//! FDB tests: deterministic cases on a virtual clock, and a property test against a
//! simple reference model (a vector scanned linearly).

use super::*;
use proptest::prelude::*;

fn pid(i: usize) -> PortId {
    PortId::new(i).expect("valid port")
}

fn mac(i: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, i])
}

fn small(capacity: usize, aging: u64) -> Fdb {
    Fdb::new(FdbConfig {
        capacity,
        aging_secs: aging,
    })
}

#[test]
fn learn_lookup_refresh_age() {
    let mut f = small(16, 300);
    assert_eq!(f.learn(10, mac(1), pid(1), 0, None), Learn::Learned);
    assert_eq!(f.lookup(10, mac(1), 0), Some(pid(1)));
    assert_eq!(f.lookup(20, mac(1), 0), None, "keyed by VLAN too");
    assert_eq!(f.learn(10, mac(1), pid(1), 100, None), Learn::Refreshed);
    assert_eq!(
        f.learn(10, mac(1), pid(1), 100, None),
        Learn::Known,
        "same second"
    );
    assert_eq!(f.lookup(10, mac(1), 399), Some(pid(1)));
    assert_eq!(
        f.lookup(10, mac(1), 400),
        None,
        "expired at last_seen + aging"
    );
    assert_eq!(f.age(399), 0);
    assert_eq!(f.age(400), 1);
    assert!(f.is_empty());
    let c = f.counters();
    assert_eq!((c.learned, c.expired, c.entries), (1, 1, 0));
}

#[test]
fn move_and_static_move_blocked() {
    let mut f = small(16, 300);
    f.learn(1, mac(1), pid(1), 0, None);
    assert_eq!(
        f.learn(1, mac(1), pid(2), 1, None),
        Learn::Moved { from: pid(1) }
    );
    assert_eq!(f.lookup(1, mac(1), 1), Some(pid(2)));
    assert_eq!(f.dynamic_count(pid(1)), 0);
    assert_eq!(f.dynamic_count(pid(2)), 1);
    f.add_static(1, mac(9), pid(3)).expect("static");
    assert_eq!(
        f.learn(1, mac(9), pid(1), 2, None),
        Learn::StaticMoveBlocked
    );
    assert_eq!(
        f.lookup(1, mac(9), 1_000_000),
        Some(pid(3)),
        "static never ages"
    );
    assert_eq!(f.age(1_000_000), 1, "only the dynamic entry ages");
    let c = f.counters();
    assert_eq!(
        (c.moved, c.static_move_blocked, c.static_entries),
        (1, 1, 1)
    );
}

#[test]
fn static_rejects_group_addresses() {
    let mut f = small(4, 300);
    assert_eq!(
        f.add_static(1, MacAddr::BROADCAST, pid(0)),
        Err(FdbError::NotUnicast {
            mac: MacAddr::BROADCAST
        })
    );
    assert!(f.add_static(1, MacAddr::ZERO, pid(0)).is_err());
    assert!(f.is_empty());
}

#[test]
fn per_port_limit_counts_only_learned_entries() {
    let mut f = small(64, 300);
    f.add_static(1, mac(100), pid(1)).expect("static");
    f.add_static(1, mac(101), pid(1)).expect("static");
    for i in 0..3 {
        assert_eq!(f.learn(1, mac(i), pid(1), 0, Some(3)), Learn::Learned);
    }
    assert_eq!(f.learn(1, mac(3), pid(1), 0, Some(3)), Learn::LimitReached);
    assert_eq!(f.lookup(1, mac(3), 0), None);
    assert_eq!(f.counters().learn_limit, 1);
    // A move into a port at its limit removes the stale entry instead of keeping it.
    f.learn(1, mac(50), pid(2), 0, None);
    assert_eq!(f.learn(1, mac(50), pid(1), 1, Some(3)), Learn::LimitReached);
    assert_eq!(f.lookup(1, mac(50), 1), None);
}

#[test]
fn fair_eviction_takes_lru_of_biggest_port() {
    let mut f = small(6, 300);
    // Port 1: two old entries; port 2: four entries (the attacker).
    f.learn(1, mac(1), pid(1), 0, None);
    f.learn(1, mac(2), pid(1), 1, None);
    for i in 10..14 {
        f.learn(1, mac(i), pid(2), 2 + u64::from(i), None);
    }
    assert_eq!(f.len(), 6);
    // Refresh mac(10) so mac(11) becomes port 2's LRU.
    f.learn(1, mac(10), pid(2), 50, None);
    assert_eq!(f.learn(1, mac(20), pid(3), 51, None), Learn::Learned);
    assert_eq!(f.len(), 6);
    assert_eq!(
        f.lookup(1, mac(11), 51),
        None,
        "LRU of the biggest port evicted"
    );
    assert_eq!(
        f.lookup(1, mac(1), 51),
        Some(pid(1)),
        "small port untouched"
    );
    assert_eq!(f.lookup(1, mac(10), 51), Some(pid(2)));
    assert_eq!(f.counters().evicted, 1);
}

#[test]
fn flood_of_source_macs_keeps_other_ports_entries() {
    let mut f = small(1000, 300);
    for i in 0..10u8 {
        f.learn(7, mac(i), pid(1), 0, None);
    }
    for i in 0..100_000u64 {
        let m = MacAddr::from_u64(0x0200_0000_0000 | (i + 1000));
        f.learn(7, m, pid(5), i / 1000, None);
    }
    assert_eq!(f.len(), 1000);
    for i in 0..10u8 {
        assert_eq!(f.lookup(7, mac(i), 99), Some(pid(1)));
    }
    assert_eq!(f.dynamic_count(pid(5)), 990);
    assert_eq!(f.counters().evicted, 100_000 - 990);
}

#[test]
fn table_full_of_statics() {
    let mut f = small(2, 300);
    f.add_static(1, mac(1), pid(0)).expect("static");
    f.add_static(1, mac(2), pid(0)).expect("static");
    assert_eq!(f.learn(1, mac(3), pid(0), 0, None), Learn::TableFull);
    assert_eq!(
        f.add_static(1, mac(4), pid(0)),
        Err(FdbError::Full { capacity: 2 })
    );
    assert_eq!(f.counters().table_full, 1);
}

#[test]
fn flushes() {
    let mut f = small(64, 300);
    f.add_static(1, mac(1), pid(1)).expect("static");
    f.learn(1, mac(2), pid(1), 0, None);
    f.learn(2, mac(3), pid(1), 0, None);
    f.learn(2, mac(4), pid(2), 0, None);
    f.learn(3, mac(4), pid(2), 0, None);
    assert_eq!(
        f.flush(Flush {
            mac: Some(mac(4)),
            ..Flush::default()
        }),
        2
    );
    assert_eq!(
        f.flush(Flush {
            vid: Some(2),
            ..Flush::default()
        }),
        1
    );
    assert_eq!(
        f.flush(Flush {
            port: Some(pid(1)),
            ..Flush::default()
        }),
        1,
        "static survives a dynamic flush"
    );
    assert_eq!(f.lookup(1, mac(1), 0), Some(pid(1)));
    assert_eq!(
        f.flush(Flush {
            port: Some(pid(1)),
            include_static: true,
            ..Flush::default()
        }),
        1
    );
    assert!(f.is_empty());
    assert_eq!(f.counters().static_entries, 0);
}

#[test]
fn static_removals_are_counted() {
    let mut f = small(8, 300);
    f.add_static(1, mac(1), pid(1)).expect("static");
    f.add_static(1, mac(2), pid(2)).expect("static");
    f.learn(1, mac(3), pid(1), 0, None);
    // Replacing a static (another port) and removing or flushing dynamic entries is no
    // static removal.
    f.add_static(1, mac(1), pid(3)).expect("static");
    f.remove(1, mac(3));
    f.flush(Flush::default());
    assert_eq!(f.counters().static_removed, 0);
    assert!(f.remove(1, mac(1)));
    assert_eq!(
        f.flush(Flush {
            include_static: true,
            ..Flush::default()
        }),
        1
    );
    let c = f.counters();
    assert_eq!((c.static_removed, c.static_entries), (2, 0));
}

#[test]
fn replica_updates_do_not_count_as_local_learning() {
    let mut f = small(8, 300);
    let u = FdbUpdate::Learned {
        vid: 5,
        mac: mac(1),
        port: pid(3),
        now: 7,
        stamp: 7_000_000_000,
        epoch: 0,
    };
    assert_eq!(f.apply(u, None), Learn::Learned);
    assert_eq!(f.lookup(5, mac(1), 7), Some(pid(3)));
    assert_eq!(f.counters().learned, 0);
}

/// Another replica's learning of (1, mac(1)) on `port` with `stamp`.
fn update(port: usize, stamp: u64) -> FdbUpdate {
    FdbUpdate::Learned {
        vid: 1,
        mac: mac(1),
        port: pid(port),
        now: stamp / 1_000_000_000,
        stamp,
        epoch: 0,
    }
}

#[test]
fn late_updates_never_revert_a_newer_move() {
    // Worker A saw the MAC on port 1 at t=100 ns, worker B on port 2 at t=200 ns; the
    // lanes from A and B deliver them in either order.
    let (old, new) = (update(1, 100), update(2, 200));
    let mut c = small(8, 300);
    assert_eq!(c.apply(new, None), Learn::Learned);
    assert_eq!(c.apply(old, None), Learn::Stale);
    assert_eq!(c.lookup(1, mac(1), 0), Some(pid(2)));
    let mut d = small(8, 300);
    d.apply(old, None);
    assert_eq!(d.apply(new, None), Learn::Moved { from: pid(1) });
    assert_eq!(d.lookup(1, mac(1), 0), Some(pid(2)));
    // B itself: its own move stands against A's older update.
    let mut b = small(8, 300);
    b.set_clock_ns(200);
    assert_eq!(b.learn(1, mac(1), pid(2), 0, None), Learn::Learned);
    assert_eq!(b.last_stamp(), 200);
    assert_eq!(b.apply(old, None), Learn::Stale);
    assert_eq!(b.lookup(1, mac(1), 0), Some(pid(2)));
    // A refresh of the same entry that is older than the move is stale too.
    assert_eq!(c.apply(update(2, 150), None), Learn::Stale);
    assert_eq!(c.apply(update(2, 1_000_000_200), None), Learn::Refreshed);
}

#[test]
fn equal_stamps_settle_on_one_port_in_any_order() {
    let (a, b) = (update(1, 100), update(3, 100));
    let mut x = small(8, 300);
    let mut y = small(8, 300);
    x.apply(a, None);
    x.apply(b, None);
    y.apply(b, None);
    y.apply(a, None);
    assert_eq!(x.lookup(1, mac(1), 0), Some(pid(3)));
    assert_eq!(y.lookup(1, mac(1), 0), Some(pid(3)));
}

#[test]
fn local_learning_after_a_newer_update_is_stamped_after_it() {
    // This replica's clock (read at its burst start) is behind the stamp of an update it
    // applied; a move it sees afterwards is still newer, here and at other replicas.
    let mut f = small(8, 300);
    f.apply(update(1, 500), None);
    f.set_clock_ns(300);
    assert_eq!(
        f.learn(1, mac(1), pid(2), 0, None),
        Learn::Moved { from: pid(1) }
    );
    assert_eq!(f.last_stamp(), 501);
    let mut other = small(8, 300);
    other.apply(update(1, 500), None);
    assert_eq!(
        other.apply(update(2, f.last_stamp()), None),
        Learn::Moved { from: pid(1) }
    );
}

// ---- property test against a reference model ----

#[derive(Debug, Clone)]
struct ModelEntry {
    vid: u16,
    mac: MacAddr,
    port: usize,
    is_static: bool,
    last_seen: u64,
    order: u64,
}

#[derive(Debug, Default)]
struct Model {
    entries: Vec<ModelEntry>,
    seq: u64,
    capacity: usize,
    aging: u64,
    c: FdbCounters,
}

impl Model {
    fn find(&self, vid: u16, m: MacAddr) -> Option<usize> {
        self.entries.iter().position(|e| e.vid == vid && e.mac == m)
    }
    fn dyn_count(&self, port: usize) -> usize {
        self.entries
            .iter()
            .filter(|e| !e.is_static && e.port == port)
            .count()
    }
    fn expired(&self, e: &ModelEntry, now: u64) -> bool {
        !e.is_static && now.saturating_sub(e.last_seen) >= self.aging
    }
    fn lookup(&self, vid: u16, m: MacAddr, now: u64) -> Option<usize> {
        let e = &self.entries[self.find(vid, m)?];
        (!self.expired(e, now)).then_some(e.port)
    }
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
    fn evict(&mut self) -> bool {
        let mut best: Option<(usize, usize)> = None; // (port, count)
        for p in 0..MAX_PORTS {
            let n = self.dyn_count(p);
            if n > 0 && best.is_none_or(|(_, b)| n > b) {
                best = Some((p, n));
            }
        }
        let Some((p, _)) = best else { return false };
        let victim = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.is_static && e.port == p)
            .min_by_key(|(_, e)| e.order)
            .map(|(i, _)| i)
            .expect("port has entries");
        self.entries.remove(victim);
        self.c.evicted += 1;
        true
    }
    fn learn(&mut self, vid: u16, m: MacAddr, port: usize, now: u64, limit: Option<u32>) -> Learn {
        let at_limit = |me: &Model| limit.is_some_and(|l| me.dyn_count(port) >= l as usize);
        if let Some(i) = self.find(vid, m) {
            if self.entries[i].port == port {
                if !self.entries[i].is_static && self.entries[i].last_seen != now {
                    let o = self.next();
                    self.entries[i].last_seen = now;
                    self.entries[i].order = o;
                    return Learn::Refreshed;
                }
                return Learn::Known;
            }
            if self.entries[i].is_static {
                self.c.static_move_blocked += 1;
                return Learn::StaticMoveBlocked;
            }
            let from = self.entries[i].port;
            if at_limit(self) {
                self.entries.remove(i);
                self.c.learn_limit += 1;
                return Learn::LimitReached;
            }
            let o = self.next();
            let e = &mut self.entries[i];
            e.port = port;
            e.last_seen = now;
            e.order = o;
            self.c.moved += 1;
            return Learn::Moved { from: pid(from) };
        }
        if at_limit(self) {
            self.c.learn_limit += 1;
            return Learn::LimitReached;
        }
        if self.entries.len() >= self.capacity && !self.evict() {
            self.c.table_full += 1;
            return Learn::TableFull;
        }
        let o = self.next();
        self.entries.push(ModelEntry {
            vid,
            mac: m,
            port,
            is_static: false,
            last_seen: now,
            order: o,
        });
        self.c.learned += 1;
        Learn::Learned
    }
    fn add_static(&mut self, vid: u16, m: MacAddr, port: usize) -> bool {
        if let Some(i) = self.find(vid, m) {
            self.entries[i].is_static = true;
            self.entries[i].port = port;
            return true;
        }
        if self.entries.len() >= self.capacity && !self.evict() {
            return false;
        }
        self.entries.push(ModelEntry {
            vid,
            mac: m,
            port,
            is_static: true,
            last_seen: 0,
            order: 0,
        });
        true
    }
    fn age(&mut self, now: u64) -> usize {
        let before = self.entries.len();
        let aging = self.aging;
        self.entries
            .retain(|e| e.is_static || now.saturating_sub(e.last_seen) < aging);
        let n = before - self.entries.len();
        self.c.expired += n as u64;
        n
    }
    fn flush(&mut self, f: Flush) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| {
            !((f.include_static || !e.is_static)
                && f.port.is_none_or(|p| p.index() == e.port)
                && f.vid.is_none_or(|v| v == e.vid)
                && f.mac.is_none_or(|m| m == e.mac))
        });
        before - self.entries.len()
    }
    fn snapshot(&self, now: u64) -> Vec<(u16, MacAddr, usize, bool, u64)> {
        let mut v: Vec<_> = self
            .entries
            .iter()
            .map(|e| {
                let age = if e.is_static {
                    0
                } else {
                    now.saturating_sub(e.last_seen)
                };
                (e.vid, e.mac, e.port, e.is_static, age)
            })
            .collect();
        v.sort();
        v
    }
}

fn snapshot(f: &Fdb, now: u64) -> Vec<(u16, MacAddr, usize, bool, u64)> {
    let mut v: Vec<_> = f
        .entries(now)
        .map(|e| (e.vid, e.mac, e.port.index(), e.is_static, e.age))
        .collect();
    v.sort();
    v
}

#[derive(Debug, Clone)]
enum Op {
    Learn { vid: u16, mac: u8, port: usize },
    Lookup { vid: u16, mac: u8 },
    Static { vid: u16, mac: u8, port: usize },
    Remove { vid: u16, mac: u8 },
    Tick(u64),
    Age,
    Flush(Option<usize>, Option<u16>, Option<u8>, bool),
}

fn op() -> impl Strategy<Value = Op> {
    let vid = 1u16..4;
    let m = 1u8..10;
    let port = 0usize..4;
    prop_oneof![
        6 => (vid.clone(), m.clone(), port.clone()).prop_map(|(vid, mac, port)| Op::Learn { vid, mac, port }),
        3 => (vid.clone(), m.clone()).prop_map(|(vid, mac)| Op::Lookup { vid, mac }),
        1 => (vid.clone(), m.clone(), port.clone()).prop_map(|(vid, mac, port)| Op::Static { vid, mac, port }),
        1 => (vid.clone(), m.clone()).prop_map(|(vid, mac)| Op::Remove { vid, mac }),
        3 => (0u64..4).prop_map(Op::Tick),
        1 => Just(Op::Age),
        1 => (proptest::option::of(port), proptest::option::of(vid), proptest::option::of(m), any::<bool>())
            .prop_map(|(p, v, m, s)| Op::Flush(p, v, m, s)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn fdb_matches_reference_model(
        capacity in 1usize..10,
        aging in 1u64..8,
        limits in proptest::collection::vec(proptest::option::of(0u32..4), 4),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut f = small(capacity, aging);
        let mut m = Model { capacity, aging, ..Model::default() };
        let mut now = 0u64;
        for o in ops {
            match o {
                Op::Learn { vid, mac: x, port } => {
                    let a = f.learn(vid, mac(x), pid(port), now, limits[port]);
                    let b = m.learn(vid, mac(x), port, now, limits[port]);
                    prop_assert_eq!(a, b);
                }
                Op::Lookup { vid, mac: x } => {
                    prop_assert_eq!(f.lookup(vid, mac(x), now).map(PortId::index), m.lookup(vid, mac(x), now));
                }
                Op::Static { vid, mac: x, port } => {
                    prop_assert_eq!(f.add_static(vid, mac(x), pid(port)).is_ok(), m.add_static(vid, mac(x), port));
                }
                Op::Remove { vid, mac: x } => {
                    let had = m.find(vid, mac(x)).map(|i| m.entries.remove(i)).is_some();
                    prop_assert_eq!(f.remove(vid, mac(x)), had);
                }
                Op::Tick(dt) => now += dt,
                Op::Age => prop_assert_eq!(f.age(now), m.age(now)),
                Op::Flush(p, v, x, s) => {
                    let fl = Flush { port: p.map(pid), vid: v, mac: x.map(mac), include_static: s };
                    prop_assert_eq!(f.flush(fl), m.flush(fl));
                }
            }
            prop_assert_eq!(snapshot(&f, now), m.snapshot(now));
            let fc = f.counters();
            prop_assert_eq!(fc.entries as usize, m.entries.len());
            prop_assert_eq!(fc.static_entries as usize, m.entries.iter().filter(|e| e.is_static).count());
            prop_assert_eq!(
                (fc.learned, fc.expired, fc.evicted, fc.moved, fc.learn_limit, fc.static_move_blocked),
                (m.c.learned, m.c.expired, m.c.evicted, m.c.moved, m.c.learn_limit, m.c.static_move_blocked)
            );
            for p in 0..4 {
                prop_assert_eq!(f.dynamic_count(pid(p)), m.dyn_count(p));
            }
        }
    }
}
