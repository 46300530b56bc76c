//! A bridge of a few hundred pod-style ports (issue 23): 250 veth ports added one by one
//! with a plain `add-port` (packet ports) beside two hosts on VLAN 10, then removed.
//! Checks the daemon's memory and open files per port (from /proc), that `show` lists
//! every port, and that the two hosts' ping and TCP (default offloads) work the same with
//! all ports configured and after they are gone.

use std::net::Ipv4Addr;
use std::time::Duration;

use vswitch_tests::daemon::Daemon;
use vswitch_tests::testutil::VethPair;
use vswitch_tests::{assert_ping_ok, root_or_skip, tcp_transfer, Host, Watchdog};

const BR: &str = "br0";
const FILLERS: usize = 250;

/// `VmRSS` in KiB and the number of open descriptors of `pid`.
fn rss_kib_and_fds(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd directory")
        .count() as u64;
    (rss, fds)
}

/// Ping and a 4 MiB TCP transfer a -> b, every byte as sent.
fn assert_forwards(a: &Host, b: &Host, port: u16) {
    assert_ping_ok(a, b.ip, 3);
    let bytes = 4 << 20;
    let r = tcp_transfer(&a.ns, &b.ns, b.ip, port, bytes, Duration::from_secs(30));
    assert_eq!(r.received, bytes, "TCP a -> b: {r:?}");
    assert_eq!(r.first_mismatch, None, "TCP a -> b: bytes differ: {r:?}");
}

#[test]
fn hundreds_of_ports_cost_little_and_leave_forwarding_alone() {
    if !root_or_skip("hundreds_of_ports_cost_little_and_leave_forwarding_alone") {
        return;
    }
    let a = Host::with_offloads("sca", Ipv4Addr::new(10, 86, 0, 1));
    let b = Host::with_offloads("scb", Ipv4Addr::new(10, 86, 0, 2));
    let fillers: Vec<VethPair> = (0..FILLERS).map(|_| VethPair::new("scf")).collect();
    let dmn = Daemon::start("[datapath]\nworkers = 1\n");
    let _wd = Watchdog::new(Duration::from_secs(240), "scale", dmn.pid());
    let pid = dmn.pid().expect("daemon pid");
    dmn.add_br(BR);
    for h in [&a, &b] {
        dmn.ctl_ok(&["add-port", BR, h.switch_if(), "--access", "10"]);
    }
    assert_forwards(&a, &b, 5301);
    let (rss0, fds0) = rss_kib_and_fds(pid);
    for (i, f) in fillers.iter().enumerate() {
        let vlan = (i % 50 + 100).to_string();
        dmn.ctl_ok(&["add-port", BR, &f.a, "--access", &vlan]);
    }
    let (rss1, fds1) = rss_kib_and_fds(pid);
    let show = dmn.ctl_ok(&["show"]);
    assert_eq!(show.matches("    Port ").count(), FILLERS + 2, "{show}");
    let n = FILLERS as u64;
    let rss_per_port = (rss1.saturating_sub(rss0)) / n;
    // Issue 23's budget is 4 MiB per pod-style port (RSS + UMEM); packet ports have no UMEM.
    assert!(
        rss_per_port <= 4096,
        "RSS {rss0} -> {rss1} KiB for {FILLERS} ports: {rss_per_port} KiB per port"
    );
    // A packet port holds its AF_PACKET socket and the fast path's filter/tcx link.
    assert!(
        fds1 - fds0 <= 4 * n,
        "open files {fds0} -> {fds1} for {FILLERS} ports"
    );
    assert_forwards(&a, &b, 5302);
    for f in &fillers {
        dmn.ctl_ok(&["del-port", BR, &f.a]);
    }
    let show = dmn.ctl_ok(&["show"]);
    assert_eq!(show.matches("    Port ").count(), 2, "{show}");
    let (_, fds2) = rss_kib_and_fds(pid);
    assert!(
        fds2 <= fds0,
        "open files {fds0} before the fillers, {fds2} after removing them"
    );
    assert_forwards(&a, &b, 5303);
}
