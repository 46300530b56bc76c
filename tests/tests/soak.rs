//! Soak (`make soak`, not part of `make test`): SOAK_SECONDS (default 60) of mixed traffic
//! through a vswitchd with 2 workers — two VLANs, unicast from several source MACs per
//! port, a broadcast every 100 frames, access and trunk ports, the two senders on
//! different workers — at half the maximum rate measured first on the same topology and
//! traffic (both senders as fast as they can for SOAK_CALIBRATE_SECONDS, default 5; the
//! smaller of the two delivered rates), or at SOAK_PPS per sender when given. Passes when
//! nothing is lost (receivers' kernel counters), the daemon's memory does not grow, and
//! the switch's counters balance: frames in = frames out + counted drops, per flow.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use vswitch_tests::daemon::{config, Daemon};
use vswitch_tests::inject::Injector;
use vswitch_tests::{eth_frame, ns_run_ok, Host, Watchdog};

const BR: &str = "br0";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rx_packets(h: &Host) -> u64 {
    let out = ns_run_ok(
        &h.ns,
        "cat",
        &[&format!(
            "/sys/class/net/{}/statistics/rx_packets",
            h.ifname
        )],
    );
    out.stdout.trim().parse().expect("rx_packets")
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("daemon status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

#[test]
#[ignore = "soak: run with `make soak`"]
fn soak_mixed_traffic_two_workers() {
    if !vswitch_tests::root_or_skip("soak_mixed_traffic_two_workers") {
        return;
    }
    let secs = env_u64("SOAK_SECONDS", 60);
    let calibrate = env_u64("SOAK_CALIBRATE_SECONDS", 5);
    let ip = |h| Ipv4Addr::new(10, 72, 0, h);
    // a -> b in VLAN 10 (access -> access); c (trunk 10,20) -> d (access 20), tagged 20.
    let a = Host::with_offloads("sa", ip(1));
    let b = Host::with_offloads("sb", ip(2));
    let c = Host::with_offloads("sc", ip(3));
    let d = Host::with_offloads("sd", ip(4));
    let dmn = Daemon::start(&config(2, 4096));
    let pid = dmn.pid().expect("daemon pid");
    let _wd = Watchdog::new(
        Duration::from_secs(secs + calibrate + 120),
        "soak",
        Some(pid),
    );
    dmn.add_br(BR);
    dmn.add_port(BR, "a", a.switch_if(), &["--access", "10"]);
    dmn.add_port(BR, "b", b.switch_if(), &["--access", "10"]);
    dmn.add_port(BR, "c", c.switch_if(), &["--trunk", "10,20"]);
    dmn.add_port(BR, "d", d.switch_if(), &["--access", "20"]);
    // Destinations known up front (static), so unicast is never flooded.
    let mac = |m: [u8; 6]| vswitch_tests::mac_string(m);
    dmn.ctl_ok(&[
        "fdb",
        "add",
        BR,
        "--vlan",
        "10",
        "--mac",
        &mac(b.mac),
        "--port",
        "b",
    ]);
    dmn.ctl_ok(&[
        "fdb",
        "add",
        BR,
        "--vlan",
        "20",
        "--mac",
        &mac(d.mac),
        "--port",
        "d",
    ]);
    let mut inj_a = Injector::open(&a.ns, &a.ifname);
    let mut inj_c = Injector::open(&c.ns, &c.ifname);
    // Several source MACs per port; every 100th frame a broadcast.
    let srcs = |base: [u8; 6], i: u64| {
        let mut m = base;
        m[5] = m[5].wrapping_add((i % 4) as u8);
        m
    };
    let frame_a = |i: u64| {
        let dst = if i % 100 == 99 { [0xff; 6] } else { b.mac };
        eth_frame(dst, srcs([0x02, 0x5a, 0, 0, 0, 0x10], i), &[], i as u32, 64)
    };
    let frame_c = |i: u64| {
        let dst = if i % 100 == 99 { [0xff; 6] } else { d.mac };
        eth_frame(
            dst,
            srcs([0x02, 0x5c, 0, 0, 0, 0x10], i),
            &[20],
            i as u32,
            64,
        )
    };
    let pps = match std::env::var("SOAK_PPS").ok().and_then(|v| v.parse().ok()) {
        Some(p) => p,
        None => {
            // The maximum: both senders flat out; what b and d receive per second.
            let (b0, d0) = (rx_packets(&b), rx_packets(&d));
            let dur = Duration::from_secs(calibrate);
            let (sent_a, sent_c) = std::thread::scope(|s| {
                let ta = s.spawn(|| inj_a.send_for(dur, 64, frame_a));
                let tc = s.spawn(|| inj_c.send_for(dur, 64, frame_c));
                (ta.join().expect("sender a"), tc.join().expect("sender c"))
            });
            std::thread::sleep(Duration::from_millis(1500));
            let rate_b = (rx_packets(&b) - b0) / calibrate;
            let rate_d = (rx_packets(&d) - d0) / calibrate;
            let pps = rate_b.min(rate_d) / 2;
            eprintln!(
                "soak: maximum over {calibrate} s: sent {} + {} pps, delivered {rate_b} + {rate_d} pps; soak at half: {pps} pps per sender",
                sent_a / calibrate,
                sent_c / calibrate
            );
            assert!(pps > 0, "nothing delivered while calibrating");
            pps
        }
    };
    let n = secs * pps;
    let (b0, d0, c0) = (rx_packets(&b), rx_packets(&d), rx_packets(&c));
    let (sa0, sb0, sc0, sd0) = (
        dmn.port_stats(BR, "a"),
        dmn.port_stats(BR, "b"),
        dmn.port_stats(BR, "c"),
        dmn.port_stats(BR, "d"),
    );
    let rss0 = rss_kib(pid);
    let mut rss_mid = 0;
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| inj_a.send_paced(n, pps, 64, frame_a));
        s.spawn(|| inj_c.send_paced(n, pps, 64, frame_c));
        std::thread::sleep(Duration::from_secs(secs / 2));
        rss_mid = rss_kib(pid);
    });
    let elapsed = start.elapsed();
    std::thread::sleep(Duration::from_millis(1500)); // let the last bursts and counters land
    let bcast = n / 100;
    let got_b = rx_packets(&b) - b0;
    let got_d = rx_packets(&d) - d0;
    let got_c = rx_packets(&c) - c0;
    let (sa, sb, sc, sd) = (
        dmn.port_stats(BR, "a"),
        dmn.port_stats(BR, "b"),
        dmn.port_stats(BR, "c"),
        dmn.port_stats(BR, "d"),
    );
    let pmd = dmn.ctl_ok(&["pmd", "show"]);
    let drops = format!(
        "a rx {} {:?} / b tx {} {:?} / c rx {} {:?} / d tx {} {:?}\n{pmd}",
        sa.rx_packets - sa0.rx_packets,
        sa.drops,
        sb.tx_packets - sb0.tx_packets,
        sb.drops,
        sc.rx_packets - sc0.rx_packets,
        sc.drops,
        sd.tx_packets - sd0.tx_packets,
        sd.drops
    );
    // b: a's unicast and broadcasts (VLAN 10); d: c's unicast and broadcasts (VLAN 20);
    // c (trunk 10,20): a's broadcasts, tagged 10.
    assert_eq!(
        got_b, n,
        "b received {got_b} of {n} in {elapsed:?}; drops {drops}"
    );
    assert_eq!(got_d, n, "d received {got_d} of {n}; drops {drops}");
    assert_eq!(got_c, bcast, "c received {got_c} broadcasts of {bcast}");
    // Counters balance: every frame in went out (b: n, c: bcast, d: n) with no drops.
    assert_eq!(sa.rx_packets - sa0.rx_packets, n);
    assert_eq!(sc.rx_packets - sc0.rx_packets, n);
    assert_eq!(sb.tx_packets - sb0.tx_packets, n);
    assert_eq!(sd.tx_packets - sd0.tx_packets, n);
    assert_eq!(sc.tx_packets - sc0.tx_packets, bcast);
    for (before, after) in [(&sa0, &sa), (&sb0, &sb), (&sc0, &sc), (&sd0, &sd)] {
        assert_eq!(
            after.total_drops(),
            before.total_drops(),
            "drops on {}: {:?}",
            after.port,
            after.drops
        );
    }
    let rss1 = rss_kib(pid);
    eprintln!(
        "soak: {secs} s at {pps} pps x 2 senders: {n} + {n} frames, 0 lost; RSS {rss0} -> {rss_mid} -> {rss1} KiB"
    );
    assert!(
        rss1 <= rss_mid + 1024,
        "daemon memory grew in the second half: {rss_mid} -> {rss1} KiB"
    );
}
