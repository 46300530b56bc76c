//! The packet ports' fast path through vswitchd, as a new user gets it: a plain `add-port`
//! on a pod's veth (a `packet` port) with the default `[datapath] packet_fast_path = true`.
//! Known unicast between packet ports is forwarded by the kernel (the port socket's eBPF
//! filter decides, the tcx ingress program redirects); the workers see only what the
//! pipeline must decide (floods, new sources). Verdicts come from what the receiving
//! namespaces captured (each test frame exactly once, in order, tags pushed/popped as the
//! pipeline does), from TCP with the kernel's default offloads (every byte as sent), and
//! from the workers' packet counters (`pmd show --json`). With the setting off, the
//! workers see every frame, as before.

use std::net::Ipv4Addr;
use std::time::Duration;

use vswitch_tests::daemon::{wait_until, Daemon};
use vswitch_tests::testutil::{tagged, test_seq, Capture};
use vswitch_tests::{
    assert_ping_ok, burst_exactly_once, drain, eth_frame, ns_run_ok, root_or_skip, run_ok,
    tcp_transfer, Host, Watchdog,
};

const BR: &str = "br0";
/// Test frames per burst.
const N: u32 = 300;
const BROADCAST: [u8; 6] = [0xff; 6];

fn ip(net: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 84, net, host)
}

/// A host whose stack sends nothing on its own (no IPv6 autoconfiguration or multicast
/// listener reports), so that the workers' counters count the test's frames only.
fn quiet_host(prefix: &str, ip: Ipv4Addr) -> Host {
    let h = Host::with_offloads(prefix, ip);
    run_ok(
        "sysctl",
        &[
            "-qw",
            &format!("net.ipv6.conf.{}.disable_ipv6=1", h.switch_if()),
        ],
    );
    for conf in ["all", h.ifname.as_str()] {
        ns_run_ok(
            &h.ns,
            "sysctl",
            &["-qw", &format!("net.ipv6.conf.{conf}.disable_ipv6=1")],
        );
    }
    h
}

fn daemon(packet_fast_path: bool) -> Daemon {
    Daemon::start(&format!(
        "[datapath]\nworkers = 1\npacket_fast_path = {packet_fast_path}\n\n[fdb]\ncapacity = 4096\n"
    ))
}

/// Frames the workers of `BR` received so far.
fn worker_packets(dmn: &Daemon) -> u64 {
    dmn.pmd_sum(BR, "packets")
}

/// `pmd show --json`: whether `BR`'s packet fast path is on, and its FDB entries.
fn fast_path_state(dmn: &Daemon) -> (bool, u64) {
    let w = &dmn.pmd_workers(BR)[0];
    (
        w["packet_fast_path"] == true,
        w["xdp_fdb_entries"].as_u64().unwrap_or(0),
    )
}

/// 1..=N frames made by `frame` from `at_from`, each received as `expect(seq)` at `at_to`.
fn burst(
    at_from: &Capture,
    at_to: &Capture,
    frame: impl Fn(u32) -> Vec<u8>,
    expect: impl Fn(u32) -> Vec<u8>,
    what: &str,
) {
    burst_exactly_once(at_from, at_to, N, frame, expect, what);
}

struct Lab {
    a: Host,
    b: Host,
    c: Host,
    d: Host,
    dmn: Daemon,
}

/// Hosts a and b on access VLAN 10, c on a trunk of VLANs 10 and 20 (tagged), d on access
/// VLAN 20; every port a plain `add-port` (the interface names the port; `auto` picks
/// `packet` on a veth). All four MACs are learned.
fn lab(prefix: &str, packet_fast_path: bool) -> Lab {
    let h = |n: &str, i: u8| quiet_host(&format!("{prefix}{n}"), ip(1, i));
    let (a, b, c, d) = (h("a", 1), h("b", 2), h("c", 3), h("d", 4));
    let dmn = daemon(packet_fast_path);
    dmn.add_br(BR);
    for (host, vlan) in [
        (&a, ["--access", "10"]),
        (&b, ["--access", "10"]),
        (&c, ["--trunk", "10,20"]),
        (&d, ["--access", "20"]),
    ] {
        let mut args = vec!["add-port", BR, host.switch_if()];
        args.extend_from_slice(&vlan);
        dmn.ctl_ok(&args);
    }
    for p in [&a, &b, &c, &d] {
        let v = dmn.port_view(BR, p.switch_if());
        assert_eq!(v["backend"], "packet", "a plain add-port on a veth: {v}");
        let fast = packet_fast_path.then_some(&serde_json::Value::Bool(true));
        assert_eq!(v.get("fast_path"), fast, "port {}: {v}", p.switch_if());
    }
    assert_eq!(fast_path_state(&dmn).0, packet_fast_path);
    // Learning: a and b by ARP and ICMP; c and d by a broadcast each.
    assert_ping_ok(&a, b.ip, 2);
    let cc = Capture::open_in(&c.ns, &c.ifname);
    cc.send(&eth_frame(BROADCAST, c.mac, &[10], 0, 64));
    let cd = Capture::open_in(&d.ns, &d.ifname);
    cd.send(&eth_frame(BROADCAST, d.mac, &[], 0, 64));
    Lab { a, b, c, d, dmn }
}

#[test]
fn packet_ports_forward_known_unicast_in_the_kernel() {
    if !root_or_skip("packet_ports_forward_known_unicast_in_the_kernel") {
        return;
    }
    let Lab { a, b, c, d, dmn } = lab("pk", true);
    let _wd = Watchdog::new(Duration::from_secs(90), "packet fast path", dmn.pid());
    // a, b and c in VLAN 10, d in VLAN 20, mirrored for the kernel within milliseconds.
    wait_until(
        Duration::from_secs(5),
        "the fast path's FDB has 4 entries",
        || fast_path_state(&dmn).1 >= 4,
    );
    let (ca, cb, cc, cd) = (a.capture(), b.capture(), c.capture(), d.capture());
    for cap in [&ca, &cb, &cc, &cd] {
        drain(cap);
    }
    let before = worker_packets(&dmn);
    let rx_a = dmn.port_stats(BR, a.switch_if()).rx_packets;

    // Untagged from an access port to a trunk: the tag (VID 10, PCP 0) is pushed.
    let plain = |to: [u8; 6], from: [u8; 6]| move |seq| eth_frame(to, from, &[], seq, 128);
    burst(
        &ca,
        &cc,
        plain(c.mac, a.mac),
        |s| tagged(&plain(c.mac, a.mac)(s), 10),
        "a -> c",
    );
    // Tagged from the trunk to an access port: the tag is popped.
    let from_c = |seq| eth_frame(a.mac, c.mac, &[10], seq, 128);
    let popped = |seq| eth_frame(a.mac, c.mac, &[], seq, 124);
    burst(&cc, &ca, from_c, popped, "c -> a");
    // Access to access: unchanged.
    burst(&ca, &cb, plain(b.mac, a.mac), plain(b.mac, a.mac), "a -> b");
    let leaked = drain(&cd)
        .into_iter()
        .filter(|f| test_seq(f).is_some())
        .count();
    assert_eq!(leaked, 0, "VLAN 20's host captured test frames");
    let slow = worker_packets(&dmn) - before;
    eprintln!("{} frames forwarded, {slow} seen by the worker", 3 * N);
    assert!(
        slow < 10,
        "the worker received {slow} of {} known-unicast frames: the kernel should forward them",
        3 * N
    );
    // The kernel's work is in the ports' counters (folded in about once a second).
    wait_until(
        Duration::from_secs(5),
        "a's rx_packets count the bursts",
        || dmn.port_stats(BR, a.switch_if()).rx_packets >= rx_a + 2 * u64::from(N),
    );

    // TCP with the kernel's default offloads: superframes cross whole.
    let before = worker_packets(&dmn);
    let bytes = 16 << 20;
    let r = tcp_transfer(&a.ns, &b.ns, b.ip, 5201, bytes, Duration::from_secs(30));
    assert_eq!((r.received, r.first_mismatch), (bytes, None), "TCP a -> b");
    let slow = worker_packets(&dmn) - before;
    eprintln!(
        "TCP 16 MiB in {:?}: {slow} frames seen by the worker",
        r.elapsed
    );
    assert!(
        slow < 20,
        "the worker received {slow} frames of a known TCP flow"
    );
}

#[test]
fn packet_fast_path_off_sends_every_frame_through_the_workers() {
    if !root_or_skip("packet_fast_path_off_sends_every_frame_through_the_workers") {
        return;
    }
    let Lab {
        a,
        b,
        c,
        d: _d,
        dmn,
    } = lab("pn", false);
    let _wd = Watchdog::new(Duration::from_secs(60), "packet fast path off", dmn.pid());
    let text = dmn.ctl_ok(&["pmd", "show"]);
    assert!(!text.contains("packet fast path"), "pmd show: {text}");
    let (ca, cc) = (a.capture(), c.capture());
    drain(&cc);
    let before = worker_packets(&dmn);
    let plain = |seq| eth_frame(c.mac, a.mac, &[], seq, 128);
    burst(&ca, &cc, plain, |s| tagged(&plain(s), 10), "a -> c");
    let seen = worker_packets(&dmn) - before;
    assert!(
        seen >= u64::from(N),
        "the worker received {seen} of {N} frames with the packet fast path off"
    );
    let bytes = 4 << 20;
    let r = tcp_transfer(&a.ns, &b.ns, b.ip, 5202, bytes, Duration::from_secs(30));
    assert_eq!((r.received, r.first_mismatch), (bytes, None), "TCP a -> b");
}
