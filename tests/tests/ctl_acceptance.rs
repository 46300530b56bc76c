//! Acceptance scenarios of TESTING.md run against vswitchd, configured only through
//! vswitchctl, with hosts in network namespaces behind AF_XDP or `packet` veth ports and
//! switch-owned tap ports. Verdicts come from what the receiving namespaces captured (AF_PACKET, outer
//! tag re-inserted from auxdata) and from exact counter values the daemon reports.
//!
//! Scenarios (each with 1 and with 2 workers; with 2 workers the ports that talk sit on
//! different workers where the scenario allows it):
//! 1. access VLAN 100 hosts behind `packet` ports, with the kernel's default offloads (as
//!    pods send), ping each other and move 4 MiB over TCP each way (content checked); a
//!    VLAN 200 host reaches neither and captures none of their frames;
//! 2. two vswitchd ("host A", "host B") joined by one veth pair, trunk on both ends: tags on
//!    the wire (exact VIDs), VLAN 100 across, VLAN 200 kept apart;
//! 3. a tap port moved into a namespace reaches an AF_XDP veth host; TCP both ways (the
//!    tap host's superframes cut into wire segments for the AF_XDP port);
//! 4. learning, move (fdb show + where unicast goes), `del-port` flushes the port's entries;
//! 5. a static entry does not move on spoofing (`static_move_blocked`);
//! 6. learn limit: exactly N dynamic entries, static entries not counted;
//! 7. trunk without native VLAN drops untagged and VID-0 frames (`untagged_on_trunk`);
//! 8. isolated ports do not talk to each other, both talk to a non-isolated port;
//! 9. flood in a 2-port VLAN reaches exactly the other member.
//!
//! Test frames are sent raw through an AF_PACKET socket on the sending host's interface
//! (the same socket captures what arrives there; its own transmissions are not captured).
//! Hosts keep the kernel's default offloads, except the one that sends TCP into an AF_XDP
//! port ([`Host::for_afxdp`]): AF_XDP cannot see partial checksums.

use std::net::Ipv4Addr;
use std::time::Duration;

use vswitch_tests::daemon::{config, wait_until, Daemon};
use vswitch_tests::lab::{collect, seqs, Lab};
use vswitch_tests::per_workers;
use vswitch_tests::testutil::{Capture, VethPair};
use vswitch_tests::{
    assert_ping_fails, assert_ping_fails_from, assert_ping_ok, assert_ping_ok_from, drain, dst_mac,
    eth_frame, mac_string, outer_vlan, ping_from, src_mac, tcp_transfer, Host, TapHost, Watchdog,
};

const BR: &str = "br0";
const BCAST: [u8; 6] = [0xff; 6];

fn ip(net: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 80, net, host)
}

/// Asserts that ports `a` and `b` of `dmn` sit on different workers (2-worker runs).
fn assert_cross_worker(dmn: &Daemon, workers: usize, a: &str, b: &str) {
    if workers == 2 {
        assert_ne!(
            dmn.port_worker(BR, a),
            dmn.port_worker(BR, b),
            "ports {a} and {b} should be on different workers"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 1. Access ports: ping, TCP, VLAN isolation.

fn access_ping_tcp(workers: usize, net: u8) {
    let a = Host::with_offloads("ca", ip(net, 1));
    let b = Host::with_offloads("cb", ip(net, 2));
    let c = Host::with_offloads("cc", ip(net, 3));
    let dmn = Daemon::start(&config(workers, 4096));
    let _wd = Watchdog::new(Duration::from_secs(60), "access ping/TCP", dmn.pid());
    dmn.add_br(BR);
    // Round-robin placement: a on worker 0, b on worker 1 (with 2 workers), c on 0.
    dmn.add_packet_port(BR, "a", a.switch_if(), &["--access", "100"]);
    dmn.add_packet_port(BR, "b", b.switch_if(), &["--access", "100"]);
    dmn.add_packet_port(BR, "c", c.switch_if(), &["--access", "200"]);
    for p in ["a", "b", "c"] {
        let v = dmn.port_view(BR, p);
        assert_eq!(v["type"], "packet", "{v}");
    }
    assert_cross_worker(&dmn, workers, "a", "b");
    let cap_b = b.capture();
    let cap_c = c.capture();

    assert_ping_ok(&a, b.ip, 5);
    assert_ping_ok(&b, a.ip, 5);
    let bytes = 4 << 20;
    let r = tcp_transfer(&a.ns, &b.ns, b.ip, 5401, bytes, Duration::from_secs(30));
    assert_eq!(r.received, bytes, "bytes received over TCP");
    assert_eq!(r.first_mismatch, None, "received bytes equal the sent ones");
    let r = tcp_transfer(&b.ns, &a.ns, a.ip, 5403, bytes, Duration::from_secs(30));
    assert_eq!(r.received, bytes, "bytes received over TCP (b -> a)");
    assert_eq!(
        r.first_mismatch, None,
        "received bytes equal the sent ones (b -> a)"
    );

    // VLAN 200 reaches neither host (side by side: each waits out its deadline).
    std::thread::scope(|s| {
        s.spawn(|| assert_ping_fails(&c, a.ip, 3));
        s.spawn(|| assert_ping_fails(&c, b.ip, 3));
    });
    let at_c = drain(&cap_c);
    let from_100: Vec<&Vec<u8>> = at_c
        .iter()
        .filter(|f| {
            [src_mac(f), dst_mac(f)]
                .iter()
                .any(|m| *m == Some(a.mac) || *m == Some(b.mac))
        })
        .collect();
    assert!(
        from_100.is_empty(),
        "VLAN 200 host captured {} frame(s) of VLAN 100's hosts, first {:02x?}",
        from_100.len(),
        from_100.first()
    );
    // Nothing at all was sent to c's port: VLAN 200 has no other member.
    let st_c = dmn.port_stats(BR, "c");
    assert_eq!(
        st_c.tx_packets, 0,
        "frames sent to the VLAN 200 port: {st_c:?}"
    );
    assert!(st_c.rx_packets > 0, "c's ARP requests reached the switch");

    // Positive control for the captures: b got a's frames, untagged.
    let at_b = drain(&cap_b);
    let from_a: Vec<&Vec<u8>> = at_b.iter().filter(|f| src_mac(f) == Some(a.mac)).collect();
    assert!(!from_a.is_empty(), "b captured nothing from a");
    for f in from_a {
        assert_eq!(outer_vlan(f).1, None, "tagged frame at an access host");
    }
    for p in ["a", "b"] {
        let st = dmn.port_stats(BR, p);
        assert_eq!(st.total_drops(), 0, "drops on VLAN 100 port {p}: {st:?}");
    }
    if workers == 2 {
        assert!(dmn.handoffs(BR) > 0, "frames crossed between the workers");
    }
}
per_workers!(access_ping_tcp, 1);

// ---------------------------------------------------------------------------------------
// 2. Two daemons joined by a trunk.

/// Asserts that `frames` hold at least one frame from `mac` and that every one of them is
/// 802.1Q tagged with exactly `vid`.
fn assert_tagged_from(frames: &[Vec<u8>], mac: [u8; 6], vid: u16, what: &str) {
    let from: Vec<&Vec<u8>> = frames.iter().filter(|f| src_mac(f) == Some(mac)).collect();
    assert!(
        !from.is_empty(),
        "{what}: no frame from {} on the trunk ({} frames captured)",
        mac_string(mac),
        frames.len()
    );
    for f in from {
        assert_eq!(
            outer_vlan(f),
            (0x8100, Some(vid)),
            "{what}: frame from {} on the trunk must carry VID {vid}: {f:02x?}",
            mac_string(mac)
        );
    }
}

fn trunk_two_daemons(workers: usize, net: u8) {
    let a100 = Host::with_offloads("ta", ip(net, 1));
    let a200 = Host::with_offloads("tb", ip(net, 2));
    let b100 = Host::with_offloads("tc", ip(net, 3));
    let b200 = Host::with_offloads("td", ip(net, 4));
    let wire = VethPair::new("tw");
    let host_a = Daemon::start(&config(workers, 4096));
    let host_b = Daemon::start(&config(workers, 4096));
    let _wd_a = Watchdog::new(Duration::from_secs(60), "trunk host A", host_a.pid());
    let _wd_b = Watchdog::new(Duration::from_secs(60), "trunk host B", host_b.pid());
    let trunk = ["--trunk", "100,200"];
    for (d, h100, h200) in [(&host_a, &a100, &a200), (&host_b, &b100, &b200)] {
        d.add_br(BR);
        d.add_port(BR, "h100", h100.switch_if(), &["--access", "100"]);
        d.add_port(BR, "h200", h200.switch_if(), &["--access", "200"]);
    }

    // Phase 1: only A's end of the wire is a switch port; B's end is a plain interface,
    // so a capture there shows exactly what A put on the wire. Nobody answers yet: the
    // pings only make A send tagged ARP requests.
    host_a.add_port(BR, "trunk", &wire.a, &trunk);
    let cap = Capture::open(&wire.b);
    std::thread::scope(|s| {
        s.spawn(|| ping_from(&a100.ns, b100.ip, 2));
        s.spawn(|| ping_from(&a200.ns, b200.ip, 2));
    });
    let frames = drain(&cap);
    drop(cap);
    assert_tagged_from(&frames, a100.mac, 100, "host A, VLAN 100");
    assert_tagged_from(&frames, a200.mac, 200, "host A, VLAN 200");

    // Phase 2: the other way round (A's trunk port deleted through vswitchctl).
    host_a.ctl_ok(&["del-port", BR, "trunk"]);
    host_b.add_port(BR, "trunk", &wire.b, &trunk);
    let cap = Capture::open(&wire.a);
    std::thread::scope(|s| {
        s.spawn(|| ping_from(&b100.ns, a100.ip, 2));
        s.spawn(|| ping_from(&b200.ns, a200.ip, 2));
    });
    let frames = drain(&cap);
    drop(cap);
    assert_tagged_from(&frames, b100.mac, 100, "host B, VLAN 100");
    assert_tagged_from(&frames, b200.mac, 200, "host B, VLAN 200");

    // Phase 3: both ends attached.
    host_a.add_port(BR, "trunk", &wire.a, &trunk);
    assert_cross_worker(&host_a, workers, "h100", "trunk");
    let cap_b100 = b100.capture();
    let cap_b200 = b200.capture();
    assert_ping_ok(&a100, b100.ip, 5);
    assert_ping_ok(&b100, a100.ip, 5);
    assert_ping_ok(&a200, b200.ip, 5);
    assert_ping_ok(&b200, a200.ip, 5);
    std::thread::scope(|s| {
        s.spawn(|| assert_ping_fails(&a100, b200.ip, 3));
        s.spawn(|| assert_ping_fails(&b200, a100.ip, 3));
        s.spawn(|| assert_ping_fails(&a200, b100.ip, 3));
    });
    let at_b200 = drain(&cap_b200);
    let at_b100 = drain(&cap_b100);
    assert!(
        !at_b200.iter().any(|f| src_mac(f) == Some(a100.mac)),
        "VLAN 200 host on B captured a frame of the VLAN 100 host on A"
    );
    assert!(
        !at_b100.iter().any(|f| src_mac(f) == Some(a200.mac)),
        "VLAN 100 host on B captured a frame of the VLAN 200 host on A"
    );
    assert!(
        at_b100.iter().any(|f| src_mac(f) == Some(a100.mac)),
        "VLAN 100 host on B captured nothing from the VLAN 100 host on A"
    );
    for f in at_b100.iter().chain(&at_b200) {
        assert_eq!(
            outer_vlan(f).1,
            None,
            "tagged frame at an access host: {f:02x?}"
        );
    }
    for d in [&host_a, &host_b] {
        let st = d.port_stats(BR, "trunk");
        assert_eq!(
            st.total_drops(),
            0,
            "drops on a trunk port carrying only 100/200: {st:?}"
        );
    }
    if workers == 2 {
        assert!(
            host_a.handoffs(BR) > 0,
            "host A moved frames between workers"
        );
    }
}
per_workers!(trunk_two_daemons, 2);

// ---------------------------------------------------------------------------------------
// 3. Tap port.

/// The tap host and `c` (VLAN 200, pings only) keep the kernel's default offloads; `a`
/// sits behind an AF_XDP port and sends TCP, so its TX checksum offload is off: this
/// scenario is about a tap port talking to an AF_XDP port.
fn tap_to_afxdp(workers: usize, net: u8) {
    let a = Host::for_afxdp("pa", ip(net, 1));
    let c = Host::with_offloads("pc", ip(net, 3));
    let t = TapHost::new("pt", ip(net, 2));
    let dmn = Daemon::start(&config(workers, 4096));
    let _wd = Watchdog::new(Duration::from_secs(60), "tap port", dmn.pid());
    dmn.add_br(BR);
    dmn.add_port(BR, "a", a.switch_if(), &["--access", "100"]);
    dmn.add_tap_port(BR, "t", &t.ifname, &["--access", "100"]);
    dmn.add_port(BR, "c", c.switch_if(), &["--access", "200"]);
    t.attach();
    let v = dmn.port_view(BR, "t");
    assert_eq!(v["type"], "tap", "{v}");
    assert_eq!(v["state"], "up", "{v}");
    assert_cross_worker(&dmn, workers, "a", "t");
    let cap_t = t.capture();
    let cap_c = c.capture();

    assert_ping_ok(&a, t.ip, 5);
    assert_ping_ok_from(&t.ns, a.ip, 5);
    let bytes = 2 << 20;
    let r = tcp_transfer(&a.ns, &t.ns, t.ip, 5402, bytes, Duration::from_secs(30));
    assert_eq!(r.received, bytes, "bytes received behind the tap");
    assert_eq!(r.first_mismatch, None, "received bytes equal the sent ones");
    // The tap host sends superframes (default offloads); the daemon cuts them into wire
    // segments for the AF_XDP port.
    let r = tcp_transfer(&t.ns, &a.ns, a.ip, 5404, bytes, Duration::from_secs(30));
    assert_eq!(r.received, bytes, "bytes received from the tap host");
    assert_eq!(
        r.first_mismatch, None,
        "received bytes equal the sent ones (t -> a)"
    );

    std::thread::scope(|s| {
        s.spawn(|| assert_ping_fails(&c, t.ip, 3));
        s.spawn(|| assert_ping_fails_from(&t.ns, c.ip, 3));
    });
    let at_c = drain(&cap_c);
    assert!(
        !at_c
            .iter()
            .any(|f| src_mac(f) == Some(t.mac) || src_mac(f) == Some(a.mac)),
        "VLAN 200 host captured a frame of VLAN 100"
    );
    let at_t = drain(&cap_t);
    assert!(
        at_t.iter().any(|f| src_mac(f) == Some(a.mac)),
        "the tap host captured nothing from a"
    );
    assert!(
        !at_t.iter().any(|f| src_mac(f) == Some(c.mac)),
        "the tap host captured a frame of VLAN 200"
    );
    let st = dmn.port_stats(BR, "t");
    assert_eq!(st.total_drops(), 0, "drops on the tap port: {st:?}");
    if workers == 2 {
        assert!(dmn.handoffs(BR) > 0, "frames crossed between the workers");
    }
}
per_workers!(tap_to_afxdp, 3);

// ---------------------------------------------------------------------------------------
// Raw-frame scenarios: three or four quiet hosts on one bridge.

/// A locally administered unicast MAC built from `tag` and `i`.
fn test_mac(tag: u8, i: u8) -> [u8; 6] {
    [0x02, 0x5e, tag, 0x00, (std::process::id() & 0xff) as u8, i]
}

// ---------------------------------------------------------------------------------------
// 4. Learning, move, port deletion.

fn learning_move_and_del_port(workers: usize, net: u8) {
    let a10 = ["--access", "10"];
    // Placement with 2 workers: a 0, b 1, c 0.
    let l = Lab::new(
        &config(workers, 4096),
        |h| ip(net, h),
        &[("a", &a10), ("b", &a10), ("c", &a10)],
    );
    let m = test_mac(4, 1);
    let c_mac = l.host("c").mac;

    // m appears on a.
    l.send("a", &[eth_frame(BCAST, m, &[], 1, 60)]);
    wait_until(Duration::from_secs(5), "m learned on a", || {
        l.fdb_for(m) == vec![(10, mac_string(m), "a".into(), false)]
    });
    // Known unicast to m goes to a only.
    l.send("c", &[eth_frame(m, c_mac, &[], 10, 60)]);
    assert_eq!(
        seqs(&collect(l.cap("a"), 1, 10..11)),
        vec![10],
        "a gets unicast to m"
    );
    assert!(
        collect(l.cap("b"), 0, 10..11).is_empty(),
        "b got unicast to m (flooded?)"
    );
    let moved0 = l.dmn.fdb_counter(BR, "moved");
    assert_eq!(moved0, 0, "{}", l.dmn.fdb_stats(BR));

    // m moves to b.
    l.send("b", &[eth_frame(BCAST, m, &[], 2, 60)]);
    wait_until(Duration::from_secs(5), "m moved to b", || {
        l.fdb_for(m) == vec![(10, mac_string(m), "b".into(), false)]
    });
    assert_eq!(l.dmn.fdb_counter(BR, "moved"), 1, "{}", l.dmn.fdb_stats(BR));
    // Unicast to m now goes to b only.
    l.send(
        "c",
        &[
            eth_frame(m, c_mac, &[], 20, 60),
            eth_frame(m, c_mac, &[], 21, 60),
        ],
    );
    assert_eq!(
        seqs(&collect(l.cap("b"), 2, 20..22)),
        vec![20, 21],
        "b gets unicast to m"
    );
    assert!(
        collect(l.cap("a"), 0, 20..22).is_empty(),
        "a still got unicast to m"
    );
    // (The broadcasts from a and b reached the other hosts; drain them.)
    for h in ["a", "b", "c"] {
        drain(l.cap(h));
    }

    // b's own MAC is on b too; c's on c.
    let b_mac = l.host("b").mac;
    l.send("b", &[eth_frame(BCAST, b_mac, &[], 3, 60)]);
    wait_until(Duration::from_secs(5), "b's MAC learned", || {
        l.fdb_for(b_mac).len() == 1
    });
    let entries = l.dmn.fdb_entries(BR);
    assert_eq!(
        entries.iter().filter(|e| e.2 == "b").count(),
        2,
        "b holds m and its own MAC: {entries:?}"
    );

    // Deleting b flushes both of its entries and nothing else.
    l.dmn.ctl_ok(&["del-port", BR, "b"]);
    let after = l.dmn.fdb_entries(BR);
    assert!(
        !after.iter().any(|e| e.2 == "b"),
        "entries of the deleted port b remain: {after:?}"
    );
    assert_eq!(
        l.fdb_for(c_mac),
        vec![(10, mac_string(c_mac), "c".into(), false)],
        "c's entry survives the deletion of b"
    );
    let st = l.dmn.fdb_stats(BR);
    assert_eq!(st["entries"], after.len() as u64, "{st}");
    // The datapath forgot m as well: unicast to m is unknown now and floods to a.
    l.send("c", &[eth_frame(m, c_mac, &[], 30, 60)]);
    assert_eq!(
        seqs(&collect(l.cap("a"), 1, 30..31)),
        vec![30],
        "unicast to the flushed MAC floods to a"
    );
}
per_workers!(learning_move_and_del_port, 4);

// ---------------------------------------------------------------------------------------
// 5. Static entry vs spoofing.

fn static_entry_does_not_move(workers: usize, net: u8) {
    let a10 = ["--access", "10"];
    // Placement with 2 workers: a 0, b 1, c 0.
    let l = Lab::new(
        &config(workers, 4096),
        |h| ip(net, h),
        &[("a", &a10), ("b", &a10), ("c", &a10)],
    );
    let s = test_mac(5, 1);
    let c_mac = l.host("c").mac;
    l.dmn.ctl_ok(&[
        "fdb",
        "add",
        BR,
        "--vlan",
        "10",
        "--mac",
        &mac_string(s),
        "--port",
        "a",
    ]);
    assert_eq!(l.fdb_for(s), vec![(10, mac_string(s), "a".into(), true)]);
    let st0 = l.dmn.fdb_stats(BR);
    assert_eq!(st0["static_entries"], 1, "{st0}");
    assert_eq!(st0["static_move_blocked"], 0, "{st0}");

    // b spoofs s five times (broadcasts, so the frames go everywhere in VLAN 10).
    let spoof: Vec<Vec<u8>> = (0..5)
        .map(|i| eth_frame(BCAST, s, &[], 100 + i, 60))
        .collect();
    l.send("b", &spoof);
    let st = l.dmn.fdb_stats(BR);
    assert_eq!(
        st["static_move_blocked"], 5,
        "one count per spoofed frame: {st}"
    );
    assert_eq!(st["moved"], 0, "{st}");
    assert_eq!(st["static_entries"], 1, "{st}");
    assert_eq!(
        l.fdb_for(s),
        vec![(10, mac_string(s), "a".into(), true)],
        "the static entry stays on a"
    );
    for h in ["a", "c"] {
        drain(l.cap(h));
    }
    // Unicast to s still goes to a only.
    l.send(
        "c",
        &[
            eth_frame(s, c_mac, &[], 200, 60),
            eth_frame(s, c_mac, &[], 201, 60),
        ],
    );
    assert_eq!(seqs(&collect(l.cap("a"), 2, 200..202)), vec![200, 201]);
    assert!(
        collect(l.cap("b"), 0, 200..202).is_empty(),
        "the spoofer b got unicast addressed to the static MAC"
    );
}
per_workers!(static_entry_does_not_move, 5);

// ---------------------------------------------------------------------------------------
// 6. Learn limit.

fn learn_limit(workers: usize, net: u8) {
    let x_opts = ["--access", "10", "--learn-limit", "3"];
    let a10 = ["--access", "10"];
    let l = Lab::new(
        &config(workers, 4096),
        |h| ip(net, h),
        &[("x", &x_opts), ("y", &a10)],
    );
    let stat1 = test_mac(6, 0xf1);
    let stat2 = test_mac(6, 0xf2);
    let add_static = |mac: [u8; 6]| {
        l.dmn.ctl_ok(&[
            "fdb",
            "add",
            BR,
            "--vlan",
            "10",
            "--mac",
            &mac_string(mac),
            "--port",
            "x",
        ]);
    };
    // A static entry on x before learning: it must not use up the limit.
    add_static(stat1);
    let macs: Vec<[u8; 6]> = (1..=6).map(|i| test_mac(6, i)).collect();
    let frames: Vec<Vec<u8>> = macs
        .iter()
        .enumerate()
        .map(|(i, m)| eth_frame(BCAST, *m, &[], 300 + i as u32, 60))
        .collect();
    l.send("x", &frames);
    // Every frame is forwarded, learned or not.
    assert_eq!(
        seqs(&collect(l.cap("y"), 6, 300..306)),
        (300..306).collect::<Vec<_>>(),
        "y gets all six frames (the limit never blocks forwarding)"
    );
    let on_x = |e: &Vec<(u64, String, String, bool)>| -> Vec<(String, bool)> {
        let mut v: Vec<(String, bool)> = e
            .iter()
            .filter(|e| e.2 == "x")
            .map(|e| (e.1.clone(), e.3))
            .collect();
        v.sort();
        v
    };
    let mut want: Vec<(String, bool)> = macs[..3]
        .iter()
        .map(|m| (mac_string(*m), false))
        .chain([(mac_string(stat1), true)])
        .collect();
    want.sort();
    assert_eq!(
        on_x(&l.dmn.fdb_entries(BR)),
        want,
        "x holds exactly the first three learned MACs plus its static entry"
    );
    let st = l.dmn.fdb_stats(BR);
    assert_eq!(st["learned"], 3, "{st}");
    assert_eq!(
        st["learn_limit"], 3,
        "one count per frame over the limit: {st}"
    );
    assert_eq!(st["static_entries"], 1, "{st}");

    // A static entry can still be added at the limit, and learning stays capped.
    add_static(stat2);
    l.send("x", &[eth_frame(BCAST, macs[3], &[], 310, 60)]);
    want.push((mac_string(stat2), true));
    want.sort();
    assert_eq!(
        on_x(&l.dmn.fdb_entries(BR)),
        want,
        "after a second static entry"
    );
    let st = l.dmn.fdb_stats(BR);
    assert_eq!(st["learned"], 3, "{st}");
    assert_eq!(st["learn_limit"], 4, "{st}");
    assert_eq!(st["static_entries"], 2, "{st}");
    // A known MAC on x refreshes, it is not a new entry.
    l.send("x", &[eth_frame(BCAST, macs[0], &[], 311, 60)]);
    assert_eq!(l.dmn.fdb_counter(BR, "learn_limit"), 4);
}
per_workers!(learn_limit, 6);

// ---------------------------------------------------------------------------------------
// 7. Trunk without a native VLAN.

fn trunk_without_native(workers: usize, net: u8) {
    let l = Lab::new(
        &config(workers, 4096),
        |h| ip(net, h),
        &[
            ("t", &["--trunk", "10,20"]),
            ("a", &["--access", "10"]),
            ("d", &["--access", "20"]),
        ],
    );
    let t_mac = l.host("t").mac;
    let mut frames = Vec::new();
    // 400..404: untagged; 410..414: VID 0 (priority tags, PCP 0 and 5); 420..422 VID 10;
    // 430: VID 30 (not allowed).
    for i in 0..4 {
        frames.push(eth_frame(BCAST, t_mac, &[], 400 + i, 60));
    }
    for i in 0..2 {
        frames.push(eth_frame(BCAST, t_mac, &[0], 410 + i, 64));
        let mut f = eth_frame(BCAST, t_mac, &[0], 412 + i, 64);
        f[14] |= 5 << 5;
        frames.push(f);
    }
    for i in 0..2 {
        frames.push(eth_frame(BCAST, t_mac, &[10], 420 + i, 64));
    }
    frames.push(eth_frame(BCAST, t_mac, &[30], 430, 64));
    l.send("t", &frames);
    let at_a = collect(l.cap("a"), 2, 400..440);
    assert_eq!(seqs(&at_a), vec![420, 421], "a gets only the VID 10 frames");
    for f in &at_a {
        assert_eq!(
            outer_vlan(f).1,
            None,
            "untagged at the access port: {f:02x?}"
        );
    }
    assert!(
        collect(l.cap("d"), 0, 400..440).is_empty(),
        "the VLAN 20 host got a frame"
    );
    let st = l.dmn.port_stats(BR, "t");
    assert_eq!(st.drop("untagged_on_trunk"), 8, "untagged + VID 0: {st:?}");
    assert_eq!(st.drop("vlan_not_allowed"), 1, "VID 30: {st:?}");
    assert_eq!(st.total_drops(), 9, "{st:?}");
    assert_eq!(st.rx_packets, frames.len() as u64, "{st:?}");
    // Nothing from the dropped frames was learned... except that t's MAC is learned from
    // the accepted VID 10 frames, in VLAN 10 only.
    let fdb = l.fdb_for(t_mac);
    assert_eq!(fdb, vec![(10, mac_string(t_mac), "t".into(), false)]);
}
per_workers!(trunk_without_native, 7);

// ---------------------------------------------------------------------------------------
// 8. Isolated ports.

fn isolated_ports(workers: usize, net: u8) {
    let iso = ["--access", "10", "--isolated"];
    let l = Lab::new(
        &config(workers, 4096),
        |h| ip(net, h),
        &[("i1", &iso), ("i2", &iso), ("n", &["--access", "10"])],
    );
    let (i1, i2, n) = (l.host("i1"), l.host("i2"), l.host("n"));
    assert_ping_ok(i1, n.ip, 3);
    assert_ping_ok(i2, n.ip, 3);
    assert_ping_ok(n, i1.ip, 2);
    assert_ping_fails(i1, i2.ip, 3);
    let at_i2 = drain(l.cap("i2"));
    assert!(
        !at_i2.iter().any(|f| src_mac(f) == Some(i1.mac)),
        "isolated i2 captured a frame of isolated i1"
    );
    let at_i1 = drain(l.cap("i1"));
    assert!(
        !at_i1.iter().any(|f| src_mac(f) == Some(i2.mac)),
        "isolated i1 captured a frame of isolated i2"
    );
    let at_n = drain(l.cap("n"));
    for h in [i1, i2] {
        assert!(
            at_n.iter().any(|f| src_mac(f) == Some(h.mac)),
            "n captured nothing from {}",
            h.ip
        );
    }
    // Known unicast between the isolated ports (both MACs are learned) is dropped and
    // counted, and not flooded anywhere else.
    assert_eq!(l.fdb_for(i2.mac).len(), 1, "i2 learned");
    let before = l.dmn.port_stats(BR, "i1").drop("isolated");
    let frames: Vec<Vec<u8>> = (0..3)
        .map(|i| eth_frame(i2.mac, i1.mac, &[], 500 + i, 60))
        .collect();
    l.send("i1", &frames);
    let st = l.dmn.port_stats(BR, "i1");
    assert_eq!(st.drop("isolated") - before, 3, "{st:?}");
    assert!(
        collect(l.cap("i2"), 0, 500..503).is_empty(),
        "i2 got i1's unicast"
    );
    assert!(
        collect(l.cap("n"), 0, 500..503).is_empty(),
        "n got unicast for i2"
    );
}
per_workers!(isolated_ports, 8);

// ---------------------------------------------------------------------------------------
// 9. Flooding in a 2-port VLAN.

fn flood_two_port_vlan(workers: usize, net: u8) {
    let l = Lab::new(
        &config(workers, 4096),
        |h| ip(net, h),
        &[
            ("p", &["--access", "30"]),
            ("q", &["--access", "30"]),
            ("r", &["--access", "40"]),
            ("s", &["--trunk", "40,50"]),
        ],
    );
    let p_mac = l.host("p").mac;
    let before: Vec<_> = ["p", "q", "r", "s"]
        .iter()
        .map(|n| l.dmn.port_stats(BR, n))
        .collect();
    let frames = vec![
        eth_frame(BCAST, p_mac, &[], 600, 60),
        eth_frame([0x01, 0x00, 0x5e, 0x00, 0x00, 0x42], p_mac, &[], 601, 60),
        eth_frame([0x02, 0xde, 0xad, 0x00, 0x00, 0x01], p_mac, &[], 602, 60),
    ];
    l.send("p", &frames);
    let at_q = collect(l.cap("q"), 3, 600..603);
    assert_eq!(
        seqs(&at_q),
        vec![600, 601, 602],
        "q gets each frame exactly once"
    );
    for f in &at_q {
        assert_eq!(outer_vlan(f).1, None, "untagged at q: {f:02x?}");
    }
    for h in ["p", "r", "s"] {
        let got = collect(l.cap(h), 0, 600..603);
        assert!(got.is_empty(), "{h} got {} frame(s) of VLAN 30", got.len());
    }
    let after: Vec<_> = ["p", "q", "r", "s"]
        .iter()
        .map(|n| l.dmn.port_stats(BR, n))
        .collect();
    let tx = |i: usize| after[i].tx_packets - before[i].tx_packets;
    assert_eq!(
        (tx(0), tx(1), tx(2), tx(3)),
        (0, 3, 0, 0),
        "tx deltas p q r s"
    );
    assert_eq!(
        after[0].rx_flooded - before[0].rx_flooded,
        3,
        "{:?}",
        after[0]
    );
    assert_eq!(after[0].total_drops(), 0, "{:?}", after[0]);
}
per_workers!(flood_two_port_vlan, 9);
