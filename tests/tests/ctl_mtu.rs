//! MTU acceptance (TESTING.md: "ping and TCP across tap and AF_XDP ports at MTUs
//! 512/1500/2048/2049/9000"), through vswitchd configured by vswitchctl, judged by what the
//! receiving namespaces captured and by exact counter values.
//!
//! What a user of Open vSwitch or the Linux bridge expects, and what these tests hold the
//! switch to:
//! - With the same MTU M on the hosts' interfaces (both ends of each veth) and on the switch
//!   ports (`--mtu M`), frames of exactly M + 14 bytes cross between AF_XDP and tap ports
//!   (ping with DF and M - 28 bytes of ICMP payload; TCP segments fill the MTU), for every
//!   M in 512 1500 2048 2049 9000 (AF_XDP ports above MTU 3826 run AF_XDP multi-buffer).
//!   Above its maximum (9216) an AF_XDP port refuses `add-port --mtu M` with an error
//!   naming the MTU (as OVS refuses an AF_XDP `mtu_request` it cannot honour); accepting
//!   the MTU and then losing the frames would be wrong.
//! - A frame a port cannot carry is dropped and counted `mtu_exceeded` (never truncated,
//!   never counted under another reason, never taking frames queued behind it along), and
//!   the port keeps working: a normal-size ping passes right after.
//! - `set-port --mtu` takes effect on a running port like `add-port --mtu` does, and leaves
//!   a tap device where the user moved it (namespace, address).
//!
//! ICMP sizes: `ping -s S` sends S bytes of payload, an IPv4 packet of S + 28 bytes and an
//! Ethernet frame of S + 42 bytes.

use std::net::Ipv4Addr;
use std::time::Duration;

use vswitch_tests::daemon::{config, wait_until, Daemon};
use vswitch_tests::testutil::{test_seq, Capture};
use vswitch_tests::{
    drain, eth_frame, ping_with, src_mac, tcp_transfer, Host, PingResult, TapHost, Watchdog,
};

const BR: &str = "br0";

fn ip(net: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 81, net, host)
}

/// `count` pings with DF set and `payload` bytes of ICMP payload.
fn ping_df(
    ns: &vswitch_tests::testutil::Netns,
    dst: Ipv4Addr,
    count: u32,
    payload: u32,
) -> PingResult {
    ping_with(ns, dst, count, &["-M", "do", "-s", &payload.to_string()])
}

/// Lengths of the IPv4 ICMP echo requests from `mac` among `frames`.
fn echo_request_lens(frames: &[Vec<u8>], mac: [u8; 6]) -> Vec<usize> {
    frames
        .iter()
        .filter(|f| {
            src_mac(f) == Some(mac)
                && f.len() > 14 + 20
                && f[12..14] == [0x08, 0x00]
                && f[14 + 9] == 1
                && f.get(14 + usize::from(f[14] & 0x0f) * 4) == Some(&8)
        })
        .map(Vec::len)
        .collect()
}

/// Lengths of the IPv4 TCP frames from `mac` among `frames`.
fn tcp_lens(frames: &[Vec<u8>], mac: [u8; 6]) -> Vec<usize> {
    frames
        .iter()
        .filter(|f| {
            src_mac(f) == Some(mac)
                && f.len() > 14 + 20
                && f[12..14] == [0x08, 0x00]
                && f[14 + 9] == 6
        })
        .map(Vec::len)
        .collect()
}

/// Sum of `mtu_exceeded` over the bridge's ports.
fn mtu_exceeded_total(dmn: &Daemon) -> u64 {
    dmn.all_port_stats(BR)
        .iter()
        .map(|s| s.drop("mtu_exceeded"))
        .sum()
}

/// Checks that 3 DF pings of `payload` bytes from `from` to `to_ip` are all answered and
/// that `cap` (at the destination) captured exactly 3 echo requests of `payload` + 42 bytes
/// from `from_mac`; the error describes what happened instead.
fn check_exact_ping(
    what: &str,
    from: &vswitch_tests::testutil::Netns,
    from_mac: [u8; 6],
    to_ip: Ipv4Addr,
    cap: &Capture,
    payload: u32,
    dmn: &Daemon,
) -> Result<(), String> {
    drain(cap);
    let r = ping_df(from, to_ip, 3, payload);
    let lens = echo_request_lens(&drain(cap), from_mac);
    let want = vec![payload as usize + 42; 3];
    if r.transmitted == 3 && r.received == 3 && lens == want {
        return Ok(());
    }
    Err(format!(
        "{what}: DF ping with {payload} bytes of payload ({}-byte frames): {}/{} answered, \
         echo requests captured at the destination {lens:?} (want {want:?}); port stats {:?}\n{}",
        payload + 42,
        r.received,
        r.transmitted,
        dmn.all_port_stats(BR),
        r.output
    ))
}

/// [`check_exact_ping`], panicking on failure.
fn assert_exact_ping(
    what: &str,
    from: &vswitch_tests::testutil::Netns,
    from_mac: [u8; 6],
    to_ip: Ipv4Addr,
    cap: &Capture,
    payload: u32,
    dmn: &Daemon,
) {
    if let Err(e) = check_exact_ping(what, from, from_mac, to_ip, cap, payload, dmn) {
        panic!("{e}");
    }
}

/// Adds AF_XDP port `name` with `--mtu mtu`. Either it is accepted, or it is refused with an
/// error that names the MTU (then the daemon must still answer and the port must not exist);
/// returns whether the port exists.
fn add_afxdp_port_mtu(dmn: &Daemon, name: &str, ifname: &str, vlan: &[&str], mtu: u32) -> bool {
    let m = mtu.to_string();
    let mut args = vec![
        "add-port",
        BR,
        name,
        "--type",
        "afxdp",
        "--interface",
        ifname,
        "--mtu",
        &m,
    ];
    args.extend_from_slice(vlan);
    let o = dmn.ctl(&args);
    if o.success() {
        return true;
    }
    let err = format!("{}{}", o.stdout, o.stderr);
    assert!(
        err.to_lowercase().contains("mtu") && err.contains(&m),
        "add-port {name} --mtu {mtu} (AF_XDP) failed without naming the MTU: {err}"
    );
    dmn.ctl_ok(&["show"]);
    assert!(
        !dmn.ports(BR).iter().any(|p| p["name"] == name),
        "a refused port was left behind"
    );
    false
}

// ---------------------------------------------------------------------------------------
// The MTU matrix.

/// Hosts a, b behind AF_XDP veth ports and t, u behind switch-owned taps, all in VLAN 100,
/// all at MTU `mtu` (hosts and ports). 2 workers: a and b on worker 0, t and u on worker 1.
fn mtu_matrix(mtu: u32, net: u8) {
    let a = Host::for_afxdp("ma", ip(net, 1));
    let b = Host::for_afxdp("mb", ip(net, 2));
    let t = TapHost::new("mt", ip(net, 3));
    let u = TapHost::new("mu", ip(net, 4));
    a.set_mtu(mtu);
    b.set_mtu(mtu);
    let dmn = Daemon::start(&config(2, 4096));
    let _wd = Watchdog::new(Duration::from_secs(60), "MTU matrix", dmn.pid());
    dmn.add_br(BR);
    let m = mtu.to_string();
    let vlan = ["--access", "100"];
    let a_ok = add_afxdp_port_mtu(&dmn, "a", a.switch_if(), &vlan, mtu);
    dmn.add_tap_port(BR, "t", &t.ifname, &["--access", "100", "--mtu", &m]);
    let b_ok = add_afxdp_port_mtu(&dmn, "b", b.switch_if(), &vlan, mtu);
    dmn.add_tap_port(BR, "u", &u.ifname, &["--access", "100", "--mtu", &m]);
    // vswitch's AF_XDP ports carry every MTU up to 9216 (multi-buffer above 3826).
    assert!(a_ok && b_ok, "AF_XDP ports at MTU {mtu} refused");
    for tap in [&t, &u] {
        tap.attach();
        assert_eq!(tap.mtu(), mtu, "the tap device got the port's MTU");
    }
    for (p, ok) in [("a", a_ok), ("t", true), ("b", b_ok), ("u", true)] {
        if ok {
            assert_eq!(dmn.port_view(BR, p)["mtu"], u64::from(mtu), "port {p}");
        }
    }
    let cap_a = a.capture();
    let cap_b = b.capture();
    let cap_t = t.capture();
    let cap_u = u.capture();
    // (The tap sat in this namespace for a moment before being moved: not part of the test.)
    let drops0: Vec<u64> = dmn
        .all_port_stats(BR)
        .iter()
        .map(|s| s.total_drops())
        .collect();
    let full = mtu - 28;
    let mut failures = Vec::new();

    // Small pings first: addresses resolved, MACs learned.
    let hosts = [
        ("a", a_ok, &a.ns, a.mac, a.ip, &cap_a),
        ("t", true, &t.ns, t.mac, t.ip, &cap_t),
        ("b", b_ok, &b.ns, b.mac, b.ip, &cap_b),
        ("u", true, &u.ns, u.mac, u.ip, &cap_u),
    ];
    // AF_XDP <-> tap both ways, AF_XDP <-> AF_XDP, tap <-> tap.
    let pairs = [(0, 1), (1, 0), (0, 2), (1, 2), (2, 1), (1, 3), (3, 1)];
    for (i, j) in pairs {
        let (from, to) = (hosts[i], hosts[j]);
        if !(from.1 && to.1) {
            continue;
        }
        for payload in [56, full] {
            let what = format!("{} -> {} at MTU {mtu}", from.0, to.0);
            if let Err(e) = check_exact_ping(&what, from.2, from.3, to.4, to.5, payload, &dmn) {
                failures.push(e);
            }
        }
    }

    // TCP from an AF_XDP host to the tap host: content intact, segments fill the MTU
    // (skipped when full-size frames do not cross: the connection would stall). The test is
    // about the AF_XDP port's MTU, so `a` sends with TX checksum offload off (AF_XDP cannot
    // see partial checksums); default offloads are covered by `offloads.rs`.
    if a_ok && failures.is_empty() {
        drain(&cap_t);
        let bytes = 1 << 20;
        let r = tcp_transfer(&a.ns, &t.ns, t.ip, 5501, bytes, Duration::from_secs(20));
        assert_eq!(r.received, bytes, "TCP bytes at MTU {mtu}");
        assert_eq!(r.first_mismatch, None, "TCP content at MTU {mtu}");
        let lens = tcp_lens(&drain(&cap_t), a.mac);
        assert_eq!(
            lens.iter().max().copied(),
            Some(mtu as usize + 14),
            "largest TCP frame from a at the tap host (MTU {mtu})"
        );
    } else if a_ok {
        failures.push(format!("TCP a -> t at MTU {mtu} not attempted"));
    }
    for (st, d0) in dmn.all_port_stats(BR).iter().zip(drops0) {
        if st.total_drops() != d0 {
            failures.push(format!("drops at MTU {mtu}: {st:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "MTU {mtu}: {} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    if a_ok || b_ok {
        assert!(dmn.handoffs(BR) > 0, "frames crossed between the workers");
    }
}

#[test]
fn mtu_512() {
    if !vswitch_tests::root_or_skip("mtu_512") {
        return;
    }
    mtu_matrix(512, 1);
}

#[test]
fn mtu_1500() {
    if !vswitch_tests::root_or_skip("mtu_1500") {
        return;
    }
    mtu_matrix(1500, 2);
}

#[test]
fn mtu_2048() {
    if !vswitch_tests::root_or_skip("mtu_2048") {
        return;
    }
    mtu_matrix(2048, 3);
}

#[test]
fn mtu_2049() {
    if !vswitch_tests::root_or_skip("mtu_2049") {
        return;
    }
    mtu_matrix(2049, 4);
}

#[test]
fn mtu_9000() {
    if !vswitch_tests::root_or_skip("mtu_9000") {
        return;
    }
    mtu_matrix(9000, 5);
}

// ---------------------------------------------------------------------------------------
// Frames a port cannot carry.

/// A sender behind a jumbo tap; receivers at smaller MTUs: AF_XDP at 1500, tap at 1500,
/// AF_XDP at 2048. One byte over each receiver's MTU: dropped, counted `mtu_exceeded` at
/// that port (exactly once per frame), nothing (truncated or not) delivered; the largest
/// frame that fits passes right after.
#[test]
fn egress_mtu_exceeded_counted_and_port_keeps_working() {
    if !vswitch_tests::root_or_skip("egress_mtu_exceeded_counted_and_port_keeps_working") {
        return;
    }
    let net = 20;
    let a = Host::with_offloads("ea", ip(net, 1));
    let c = Host::with_offloads("ec", ip(net, 3));
    let t = TapHost::new("et", ip(net, 9));
    let u = TapHost::new("eu", ip(net, 2));
    c.set_mtu(2048);
    let dmn = Daemon::start(&config(1, 4096));
    let _wd = Watchdog::new(Duration::from_secs(60), "egress MTU", dmn.pid());
    dmn.add_br(BR);
    dmn.add_tap_port(BR, "t", &t.ifname, &["--access", "100", "--mtu", "9000"]);
    dmn.add_port(BR, "a", a.switch_if(), &["--access", "100"]);
    dmn.add_tap_port(BR, "u", &u.ifname, &["--access", "100"]);
    dmn.add_port(
        BR,
        "c",
        c.switch_if(),
        &["--access", "100", "--mtu", "2048"],
    );
    t.attach();
    u.attach();
    assert_eq!(u.mtu(), 1500, "a tap port's default MTU");
    let cases: [(&str, Ipv4Addr, [u8; 6], Capture, u32); 3] = [
        ("a", a.ip, a.mac, a.capture(), 1500),
        ("u", u.ip, u.mac, u.capture(), 1500),
        ("c", c.ip, c.mac, c.capture(), 2048),
    ];
    // (Before being moved into their namespaces the taps were in this one for a moment;
    // what they sent or missed then is not part of the test.)
    let t_drops = dmn.port_stats(BR, "t").total_drops();
    for (port, dst, _, cap, mtu) in &cases {
        // Resolve and learn with small pings first.
        let r = ping_df(&t.ns, *dst, 2, 56);
        assert_eq!(r.received, 2, "t -> {port}: {}", r.output);
        let before = dmn.port_stats(BR, port);
        drain(cap);
        let over = mtu - 28 + 1;
        let r = ping_df(&t.ns, *dst, 3, over);
        let n = u64::from(r.transmitted);
        assert!(
            n >= 3 && r.received == 0,
            "t -> {port}: {over}-byte payload ({}-byte frames) over MTU {mtu}: {}",
            over + 42,
            r.output
        );
        let after = dmn.port_stats(BR, port);
        assert_eq!(
            after.drop("mtu_exceeded") - before.drop("mtu_exceeded"),
            n,
            "t -> {port}: one mtu_exceeded per frame: {after:?}"
        );
        assert_eq!(
            after.total_drops() - before.total_drops(),
            n,
            "t -> {port}: no other drop: {after:?}"
        );
        assert_eq!(
            after.tx_packets, before.tx_packets,
            "t -> {port}: nothing sent"
        );
        let got = echo_request_lens(&drain(cap), t.mac);
        assert!(
            got.is_empty(),
            "{port} captured echo requests of {got:?} bytes"
        );
        // Not wedged: the largest frame that fits passes.
        assert_exact_ping(
            &format!("t -> {port} at its MTU {mtu} after the oversize attempt"),
            &t.ns,
            t.mac,
            *dst,
            cap,
            mtu - 28,
            &dmn,
        );
    }
    let st_t = dmn.port_stats(BR, "t");
    assert_eq!(
        st_t.total_drops(),
        t_drops,
        "nothing counted at the sender's port: {st_t:?}"
    );
}

/// A tap port at the default MTU 1500 whose kernel side the user raised to 3000: frames
/// longer than the port can carry arrive from the tap. They must be dropped and counted
/// `mtu_exceeded` (on whichever port: the ingress port cannot carry them, the egress port
/// is at 1500 too), not lost silently, and the port keeps working.
#[test]
fn tap_ingress_frames_over_port_mtu_counted() {
    if !vswitch_tests::root_or_skip("tap_ingress_frames_over_port_mtu_counted") {
        return;
    }
    let net = 21;
    let a = Host::with_offloads("ia", ip(net, 1));
    let u = TapHost::new("iu", ip(net, 2));
    let dmn = Daemon::start(&config(1, 4096));
    let _wd = Watchdog::new(Duration::from_secs(60), "tap ingress MTU", dmn.pid());
    dmn.add_br(BR);
    dmn.add_port(BR, "a", a.switch_if(), &["--access", "100"]);
    dmn.add_tap_port(BR, "u", &u.ifname, &["--access", "100"]);
    u.attach();
    u.set_mtu(3000);
    let cap_a = a.capture();
    let r = ping_df(&u.ns, a.ip, 2, 56);
    assert_eq!(r.received, 2, "u -> a: {}", r.output);
    let before_total = mtu_exceeded_total(&dmn);
    let before_u = dmn.port_stats(BR, "u");
    drain(&cap_a);
    let r = ping_df(&u.ns, a.ip, 3, 2000);
    let n = u64::from(r.transmitted);
    assert!(n >= 3 && r.received == 0, "2042-byte frames: {}", r.output);
    let got = echo_request_lens(&drain(&cap_a), u.mac);
    assert!(got.is_empty(), "a captured echo requests of {got:?} bytes");
    let after_u = dmn.port_stats(BR, "u");
    assert_eq!(
        mtu_exceeded_total(&dmn) - before_total,
        n,
        "{n} frames too long for port u (MTU 1500), counted mtu_exceeded; \
         u now {after_u:?}, before {before_u:?}; all ports {:?}",
        dmn.all_port_stats(BR)
    );
    assert_exact_ping(
        "u -> a after the oversize attempt",
        &u.ns,
        u.mac,
        a.ip,
        &cap_a,
        1472,
        &dmn,
    );
}

/// The tap sender (MTU 9000) sends 40 pairs (a 5000-byte frame, then a 60-byte frame), all
/// unicast to host a behind an AF_XDP port configured `--mtu 9000` (multi-buffer). Every
/// frame arrives whole and in order of its kind: never truncated, never `tx_ring_full` or
/// `mtu_exceeded`, never taking the small frame behind it along.
#[test]
fn jumbo_to_afxdp_never_truncated_nor_collateral() {
    if !vswitch_tests::root_or_skip("jumbo_to_afxdp_never_truncated_nor_collateral") {
        return;
    }
    let net = 22;
    let a = Host::with_offloads("ja", ip(net, 1));
    let t = TapHost::new("jt", ip(net, 2));
    a.set_mtu(9000);
    let dmn = Daemon::start(&config(1, 4096));
    let _wd = Watchdog::new(Duration::from_secs(60), "jumbo to AF_XDP", dmn.pid());
    dmn.add_br(BR);
    dmn.add_tap_port(BR, "t", &t.ifname, &["--access", "100", "--mtu", "9000"]);
    assert!(
        add_afxdp_port_mtu(&dmn, "a", a.switch_if(), &["--access", "100"], 9000),
        "AF_XDP port at MTU 9000 refused"
    );
    t.attach();
    let cap_a = a.capture();
    let cap_t = t.capture();
    // a's and t's MACs learned.
    let r = ping_df(&t.ns, a.ip, 2, 56);
    assert_eq!(r.received, 2, "t -> a: {}", r.output);
    drain(&cap_a);
    const PAIRS: u32 = 40;
    let before = dmn.port_stats(BR, "a");
    let t_rx = dmn.port_stats(BR, "t").rx_packets;
    for i in 0..PAIRS {
        cap_t.send(&eth_frame(a.mac, t.mac, &[], 1000 + i, 5000));
        cap_t.send(&eth_frame(a.mac, t.mac, &[], 2000 + i, 60));
    }
    wait_until(Duration::from_secs(10), "switch received the pairs", || {
        dmn.port_stats(BR, "t").rx_packets >= t_rx + u64::from(2 * PAIRS)
    });
    let got: Vec<Vec<u8>> = {
        let mut g = cap_a.collect_test_frames(2 * PAIRS as usize, Duration::from_secs(3));
        g.extend(drain(&cap_a));
        g
    };
    let small = got
        .iter()
        .filter_map(|f| test_seq(f))
        .filter(|s| (2000..2000 + PAIRS).contains(s))
        .count() as u64;
    let big: Vec<(u32, usize)> = got
        .iter()
        .filter_map(|f| test_seq(f).map(|s| (s, f.len())))
        .filter(|(s, _)| (1000..1000 + PAIRS).contains(s))
        .collect();
    let after = dmn.port_stats(BR, "a");
    let d = |r: &str| after.drop(r) - before.drop(r);
    // Not wedged: checked before judging, so a failure reports it too.
    let later = ping_df(&t.ns, a.ip, 3, 1472);
    let pairs = u64::from(PAIRS);
    let truncated: Vec<&(u32, usize)> = big.iter().filter(|(_, len)| *len != 5000).collect();
    let whole = big.len() as u64 - truncated.len() as u64;
    assert!(
        truncated.is_empty()
            && whole == pairs
            && d("mtu_exceeded") == 0
            && d("tx_ring_full") == 0
            && small == pairs
            && later.received == 3,
        "of {pairs} pairs (5000-byte frame, 60-byte frame) to a: 5000-byte frames delivered \
         whole {whole}, truncated {truncated:?}, counted mtu_exceeded {}, tx_ring_full {}; \
         60-byte frames delivered {small}; a 1514-byte ping afterwards answered {}/{}; \
         port a {after:?}",
        d("mtu_exceeded"),
        d("tx_ring_full"),
        later.received,
        later.transmitted
    );
}

// ---------------------------------------------------------------------------------------
// set-port --mtu on running ports.

/// AF_XDP ports added at the default MTU, then hosts and ports raised to 2048 with
/// `set-port --mtu 2048`: 2062-byte frames cross; then `set-port --mtu 1500`: one byte
/// over 1500 is `mtu_exceeded` at the egress port.
#[test]
fn set_port_mtu_on_afxdp_ports_takes_effect() {
    if !vswitch_tests::root_or_skip("set_port_mtu_on_afxdp_ports_takes_effect") {
        return;
    }
    let net = 23;
    let a = Host::with_offloads("sa", ip(net, 1));
    let b = Host::with_offloads("sb", ip(net, 2));
    let dmn = Daemon::start(&config(1, 4096));
    let _wd = Watchdog::new(Duration::from_secs(60), "set-port --mtu", dmn.pid());
    dmn.add_br(BR);
    dmn.add_port(BR, "a", a.switch_if(), &["--access", "100"]);
    dmn.add_port(BR, "b", b.switch_if(), &["--access", "100"]);
    let cap_b = b.capture();
    assert_exact_ping("a -> b at 1500", &a.ns, a.mac, b.ip, &cap_b, 1472, &dmn);
    a.set_mtu(2048);
    b.set_mtu(2048);
    for p in ["a", "b"] {
        dmn.ctl_ok(&["set-port", BR, p, "--mtu", "2048"]);
        assert_eq!(dmn.port_view(BR, p)["mtu"], 2048);
    }
    wait_until(Duration::from_secs(10), "ports up after set-port", || {
        dmn.ports(BR).iter().all(|p| p["state"] == "up")
    });
    assert_exact_ping(
        "a -> b after set-port --mtu 2048",
        &a.ns,
        a.mac,
        b.ip,
        &cap_b,
        2020,
        &dmn,
    );
    for st in dmn.all_port_stats(BR) {
        assert_eq!(st.total_drops(), 0, "{st:?}");
    }
    // And back down: the switch enforces 1500 at egress again.
    dmn.ctl_ok(&["set-port", BR, "b", "--mtu", "1500"]);
    let before = dmn.port_stats(BR, "b").drop("mtu_exceeded");
    let r = ping_df(&a.ns, b.ip, 3, 1473);
    assert_eq!(r.received, 0, "{}", r.output);
    assert_eq!(
        dmn.port_stats(BR, "b").drop("mtu_exceeded") - before,
        u64::from(r.transmitted),
        "one mtu_exceeded per 1515-byte frame at b"
    );
}

/// A tap port moved into a namespace (with an address), then `set-port --mtu 2048`: the
/// device stays in its namespace with its address and gets MTU 2048; 2062-byte frames
/// cross to an AF_XDP host at 2048.
#[test]
fn set_port_mtu_on_tap_keeps_it_in_its_namespace() {
    if !vswitch_tests::root_or_skip("set_port_mtu_on_tap_keeps_it_in_its_namespace") {
        return;
    }
    let net = 24;
    let a = Host::with_offloads("ka", ip(net, 1));
    let t = TapHost::new("kt", ip(net, 2));
    a.set_mtu(2048);
    let dmn = Daemon::start(&config(1, 4096));
    let _wd = Watchdog::new(Duration::from_secs(60), "set-port --mtu tap", dmn.pid());
    dmn.add_br(BR);
    dmn.add_port(
        BR,
        "a",
        a.switch_if(),
        &["--access", "100", "--mtu", "2048"],
    );
    dmn.add_tap_port(BR, "t", &t.ifname, &["--access", "100"]);
    t.attach();
    let cap_a = a.capture();
    assert_exact_ping("t -> a at 1500", &t.ns, t.mac, a.ip, &cap_a, 1472, &dmn);
    dmn.ctl_ok(&["set-port", BR, "t", "--mtu", "2048"]);
    let o = vswitch_tests::run_timeout(
        "ip",
        &[
            "netns",
            "exec",
            t.ns.name(),
            "ip",
            "-o",
            "addr",
            "show",
            "dev",
            &t.ifname,
        ],
        Duration::from_secs(10),
    );
    assert!(
        o.success() && o.stdout.contains(&format!("{}/24", t.ip)),
        "after set-port --mtu the tap {} is no longer in its namespace with its address: \
         {}{}",
        t.ifname,
        o.stdout,
        o.stderr
    );
    assert_eq!(t.mtu(), 2048, "tap MTU after set-port --mtu 2048");
    assert_exact_ping("t -> a at 2048", &t.ns, t.mac, a.ip, &cap_a, 2020, &dmn);
}
