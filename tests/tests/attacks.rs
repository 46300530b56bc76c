//! Attacks from one access port of a vswitchd-run switch (TESTING.md "Threats"), judged
//! by what the other hosts' namespaces captured and by the daemon's counters:
//! - 100,000 source MACs: the table stays within its capacity, the other ports' entries
//!   survive (fair eviction) and known unicast between other hosts is never flooded;
//! - VLAN hopping with double tags (outer 0 / inner 20, outer 20 / inner 10);
//! - invalid source MACs (multicast, broadcast, zero): dropped `invalid_src`, never learned;
//! - reserved destinations 01:80:c2:00:00:00-0f: dropped `reserved_dst`, never delivered.
//!
//! The attacker's frames are injected raw through an AF_XDP socket on its veth end.

use std::net::Ipv4Addr;
use std::time::Duration;

use vswitch_tests::daemon::{config, wait_until, Daemon};
use vswitch_tests::inject::Injector;
use vswitch_tests::testutil::{is_test_frame, test_seq};
use vswitch_tests::{
    assert_ping_ok, drain, dst_mac, eth_frame, mac_string, outer_vlan, src_mac, Host, Watchdog,
};

const BR: &str = "br0";
const BCAST: [u8; 6] = [0xff; 6];
const CAPACITY: usize = 4096;

/// A switch with access-10 hosts a, b, c, x (the attacker) and access-20 host d.
struct Lab {
    a: Host,
    b: Host,
    c: Host,
    d: Host,
    x: Host,
    // Dropped first: the daemon releases the ports before the links go.
    dmn: Daemon,
}

fn lab(net: u8) -> Lab {
    let ip = |h| Ipv4Addr::new(10, 70, net, h);
    let a = Host::with_offloads("ka", ip(1));
    let b = Host::with_offloads("kb", ip(2));
    let c = Host::with_offloads("kc", ip(3));
    let d = Host::with_offloads("kd", ip(4));
    let x = Host::with_offloads("kx", ip(5));
    let dmn = Daemon::start(&config(1, CAPACITY));
    dmn.add_br(BR);
    for (name, h, vlan) in [
        ("a", &a, "10"),
        ("b", &b, "10"),
        ("c", &c, "10"),
        ("d", &d, "20"),
        ("x", &x, "10"),
    ] {
        dmn.add_port(BR, name, h.switch_if(), &["--access", vlan]);
    }
    Lab { a, b, c, d, x, dmn }
}

/// Test frames (seq in `range`) among `frames`.
fn in_range(frames: &[Vec<u8>], range: std::ops::Range<u32>) -> Vec<&Vec<u8>> {
    frames
        .iter()
        .filter(|f| is_test_frame(f) && test_seq(f).is_some_and(|s| range.contains(&s)))
        .collect()
}

#[test]
fn mac_flood_100k_sources_keeps_table_bounded_and_other_hosts_intact() {
    if !vswitch_tests::root_or_skip(
        "mac_flood_100k_sources_keeps_table_bounded_and_other_hosts_intact",
    ) {
        return;
    }
    let l = lab(1);
    let _wd = Watchdog::new(Duration::from_secs(90), "mac flood test", l.dmn.pid());
    // The victims' entries exist before the flood.
    assert_ping_ok(&l.a, l.b.ip, 3);
    assert_ping_ok(&l.c, l.a.ip, 2);
    let before = l.dmn.fdb_entries(BR);
    for (h, port) in [(&l.a, "a"), (&l.b, "b"), (&l.c, "c")] {
        assert!(
            before
                .iter()
                .any(|e| e.1 == mac_string(h.mac) && e.2 == port && e.0 == 10),
            "{port}'s MAC not learned before the flood: {before:?}"
        );
    }
    let cap_c = l.c.capture();
    let mut inj = Injector::open(&l.x.ns, &l.x.ifname);
    const N: u64 = 100_000;
    // 100,000 distinct sources, all addressed to a (known unicast: only a may get them),
    // while a and b keep talking.
    let a_mac = l.a.mac;
    std::thread::scope(|s| {
        let pinger = s.spawn(|| l.a.ping(l.b.ip, 15));
        inj.send_paced(N, 50_000, 256, |i| {
            let src = [0x02, 0xee, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
            eth_frame(a_mac, src, &[], 1_000_000 + i as u32, 60)
        });
        let r = pinger.join().expect("ping thread");
        assert!(
            r.all_received(),
            "a -> b lost pings during the MAC flood: {}",
            r.output
        );
    });
    wait_until(Duration::from_secs(10), "switch received the flood", || {
        l.dmn.port_stats(BR, "x").rx_packets >= N
    });
    let st = l.dmn.fdb_stats(BR);
    let entries = st["entries"].as_u64().expect("entries");
    let learned = st["learned"].as_u64().expect("learned");
    let evicted = st["evicted"].as_u64().expect("evicted");
    assert!(
        entries <= CAPACITY as u64,
        "table holds {entries} entries, capacity {CAPACITY}: {st}"
    );
    assert!(learned >= N, "every flooded source was learned: {st}");
    assert!(
        evicted >= learned - CAPACITY as u64,
        "entries beyond capacity were evicted: {st}"
    );
    let after = l.dmn.fdb_entries(BR);
    for (h, port) in [(&l.a, "a"), (&l.b, "b"), (&l.c, "c")] {
        assert!(
            after
                .iter()
                .any(|e| e.1 == mac_string(h.mac) && e.2 == port && e.0 == 10),
            "{port}'s entry was evicted by the flood from x ({} entries)",
            after.len()
        );
    }
    // Nothing addressed to a or b ever reached c: neither the flood (known unicast to a)
    // nor a's and b's own traffic.
    let at_c = drain(&cap_c);
    let leaked: Vec<&Vec<u8>> = at_c
        .iter()
        .filter(|f| dst_mac(f) == Some(l.a.mac) || dst_mac(f) == Some(l.b.mac))
        .collect();
    assert!(
        leaked.is_empty(),
        "c received {} frame(s) addressed to a or b (known unicast flooded), first {:02x?}",
        leaked.len(),
        leaked.first()
    );
    // Positive control: c's capture works and x's broadcasts reach c.
    inj.send_all(&[eth_frame(BCAST, l.x.mac, &[], 7, 60)]);
    let got = cap_c
        .collect_test_frames(1, Duration::from_secs(2))
        .iter()
        .filter(|f| test_seq(f) == Some(7))
        .count();
    assert_eq!(got, 1, "c did not get x's broadcast (capture broken?)");
    assert_ping_ok(&l.a, l.b.ip, 3);
}

#[test]
fn double_tags_on_access_port_never_hop_vlans() {
    if !vswitch_tests::root_or_skip("double_tags_on_access_port_never_hop_vlans") {
        return;
    }
    let l = lab(2);
    let _wd = Watchdog::new(Duration::from_secs(60), "vlan hopping test", l.dmn.pid());
    let cap_c = l.c.capture();
    let cap_d = l.d.capture();
    let mut inj = Injector::open(&l.x.ns, &l.x.ifname);
    let before = l.dmn.port_stats(BR, "x");
    // 20 frames outer VID 0 (priority tag) / inner 20, broadcast and to d's MAC;
    // 20 frames outer 20 / inner 10.
    let mut frames = Vec::new();
    for i in 0..10u32 {
        frames.push(eth_frame(BCAST, l.x.mac, &[0, 20], 100 + i, 64));
        frames.push(eth_frame(l.d.mac, l.x.mac, &[0, 20], 200 + i, 64));
        frames.push(eth_frame(BCAST, l.x.mac, &[20, 10], 300 + i, 64));
        frames.push(eth_frame(l.d.mac, l.x.mac, &[20, 10], 400 + i, 64));
    }
    inj.send_all(&frames);
    wait_until(Duration::from_secs(10), "x's frames counted", || {
        l.dmn.port_stats(BR, "x").rx_packets >= before.rx_packets + 40
    });
    let at_d = drain(&cap_d);
    let from_x: Vec<&Vec<u8>> = at_d
        .iter()
        .filter(|f| src_mac(f) == Some(l.x.mac))
        .collect();
    assert!(
        from_x.is_empty(),
        "VLAN 20 host d received {} double-tagged frame(s) from VLAN 10 port x: {:02x?}",
        from_x.len(),
        from_x.first()
    );
    // Outer VID 0 classifies into VLAN 10 (the inner tag is payload): c gets those, with
    // the inner tag intact; outer VID 20 on an access port is dropped.
    let at_c = drain(&cap_c);
    let prio = in_range(&at_c, 100..300);
    assert_eq!(
        prio.len(),
        20,
        "c (VLAN 10) should get the 20 priority-tagged frames, got {}",
        prio.len()
    );
    for f in &prio {
        assert_eq!(
            outer_vlan(f),
            (0x8100, Some(20)),
            "inner tag kept as payload: {f:02x?}"
        );
    }
    assert!(
        in_range(&at_c, 300..500).is_empty(),
        "outer VID 20 frames from an access port were delivered"
    );
    let after = l.dmn.port_stats(BR, "x");
    assert_eq!(
        after.drop("tagged_on_access") - before.drop("tagged_on_access"),
        20,
        "outer VID 20 frames counted tagged_on_access: {after:?}"
    );
}

#[test]
fn invalid_source_macs_dropped_and_never_learned() {
    if !vswitch_tests::root_or_skip("invalid_source_macs_dropped_and_never_learned") {
        return;
    }
    let l = lab(3);
    let _wd = Watchdog::new(Duration::from_secs(60), "invalid src test", l.dmn.pid());
    let cap_a = l.a.capture();
    let cap_d = l.d.capture();
    let mut inj = Injector::open(&l.x.ns, &l.x.ifname);
    let before = l.dmn.port_stats(BR, "x");
    let bad: [[u8; 6]; 5] = [
        [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01],
        [0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        [0x33, 0x33, 0x00, 0x00, 0x00, 0x01],
        BCAST,
        [0; 6],
    ];
    let mut frames = Vec::new();
    for (k, src) in bad.iter().enumerate() {
        for i in 0..4u32 {
            let seq = 500 + 10 * k as u32 + i;
            frames.push(eth_frame(BCAST, *src, &[], seq, 60));
            frames.push(eth_frame(l.a.mac, *src, &[], seq + 1000, 60));
        }
    }
    inj.send_all(&frames);
    let n = frames.len() as u64;
    wait_until(Duration::from_secs(10), "x's frames counted", || {
        l.dmn.port_stats(BR, "x").rx_packets >= before.rx_packets + n
    });
    let after = l.dmn.port_stats(BR, "x");
    assert_eq!(
        after.drop("invalid_src") - before.drop("invalid_src"),
        n,
        "every invalid source dropped invalid_src: {after:?}"
    );
    for (who, cap) in [("a", &cap_a), ("d", &cap_d)] {
        let got = drain(cap);
        let bad_at = in_range(&got, 500..2000);
        assert!(
            bad_at.is_empty(),
            "{who} received {} frame(s) with an invalid source: {:02x?}",
            bad_at.len(),
            bad_at.first()
        );
    }
    let fdb = l.dmn.fdb_entries(BR);
    for src in bad {
        assert!(
            !fdb.iter().any(|e| e.1 == mac_string(src)),
            "invalid source {} was learned: {fdb:?}",
            mac_string(src)
        );
    }
}

#[test]
fn reserved_destinations_dropped_never_delivered() {
    if !vswitch_tests::root_or_skip("reserved_destinations_dropped_never_delivered") {
        return;
    }
    let l = lab(4);
    let _wd = Watchdog::new(Duration::from_secs(60), "reserved dst test", l.dmn.pid());
    let caps = [
        ("a", l.a.capture()),
        ("c", l.c.capture()),
        ("d", l.d.capture()),
    ];
    let mut inj = Injector::open(&l.x.ns, &l.x.ifname);
    let before = l.dmn.port_stats(BR, "x");
    let mut frames = Vec::new();
    for last in 0u8..=0x0f {
        let dst = [0x01, 0x80, 0xc2, 0x00, 0x00, last];
        frames.push(eth_frame(dst, l.x.mac, &[], 3000 + u32::from(last), 60));
        // Priority-tagged too: the VLAN tag does not hide the reserved address.
        frames.push(eth_frame(dst, l.x.mac, &[0], 3100 + u32::from(last), 64));
    }
    // Positive control: the first address past the reserved block is flooded.
    frames.push(eth_frame(
        [0x01, 0x80, 0xc2, 0x00, 0x00, 0x10],
        l.x.mac,
        &[],
        3999,
        60,
    ));
    inj.send_all(&frames);
    let n = frames.len() as u64;
    wait_until(Duration::from_secs(10), "x's frames counted", || {
        l.dmn.port_stats(BR, "x").rx_packets >= before.rx_packets + n
    });
    let after = l.dmn.port_stats(BR, "x");
    assert_eq!(
        after.drop("reserved_dst") - before.drop("reserved_dst"),
        32,
        "reserved destinations dropped reserved_dst: {after:?}"
    );
    for (who, cap) in &caps {
        let got = drain(cap);
        let reserved = in_range(&got, 3000..3200);
        assert!(
            reserved.is_empty(),
            "{who} received {} frame(s) to a reserved address: {:02x?}",
            reserved.len(),
            reserved.first()
        );
        let control = in_range(&got, 3999..4000).len();
        let want = usize::from(*who != "d");
        assert_eq!(
            control, want,
            "{who}: the 01:80:c2:00:00:10 control frame (flooded in VLAN 10 only)"
        );
    }
}
