//! A forwarding loop plus one broadcast (TESTING.md "Threats"): two veth pairs each join
//! two ports of the switch (VLAN 30, storm control 200 pps per kind), so every flooded
//! copy comes back amplified three times. One broadcast from a VLAN 30 host starts the
//! storm. Storm control must keep it bounded: each loop port forwards at most about its
//! configured rate plus one burst (the rest counted `storm_control`; a storm whose
//! copies are all dropped dies, so the broadcast is repeated four times a second), the daemon stays alive and
//! answers, its log stays quiet, and two VLAN 10 hosts keep pinging with 0% loss.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use vswitch_tests::daemon::{config, Daemon, PortStats};
use vswitch_tests::testutil::VethPair;
use vswitch_tests::{eth_frame, Host, Watchdog};

const BR: &str = "br0";
const PPS: u64 = 200;
const LOOP_PORTS: [&str; 4] = ["l1a", "l1b", "l2a", "l2b"];

fn loop_stats(d: &Daemon) -> Vec<PortStats> {
    LOOP_PORTS.iter().map(|p| d.port_stats(BR, p)).collect()
}

#[test]
fn loop_with_one_broadcast_is_bounded_by_storm_control() {
    if !vswitch_tests::root_or_skip("loop_with_one_broadcast_is_bounded_by_storm_control") {
        return;
    }
    let a = Host::with_offloads("sa", Ipv4Addr::new(10, 72, 0, 1));
    let b = Host::with_offloads("sb", Ipv4Addr::new(10, 72, 0, 2));
    let h = Host::with_offloads("sh", Ipv4Addr::new(10, 72, 1, 3));
    let l1 = VethPair::new("sl");
    let l2 = VethPair::new("sm");
    let dmn = Daemon::start(&config(1, 4096));
    let _wd = Watchdog::new(Duration::from_secs(90), "storm test", dmn.pid());
    dmn.add_br(BR);
    dmn.add_port(BR, "a", a.switch_if(), &["--access", "10"]);
    dmn.add_port(BR, "b", b.switch_if(), &["--access", "10"]);
    dmn.add_port(BR, "h", h.switch_if(), &["--access", "30"]);
    let pps = PPS.to_string();
    let storm = [
        "--access",
        "30",
        "--storm-broadcast",
        &pps,
        "--storm-multicast",
        &pps,
        "--storm-unknown",
        &pps,
    ];
    for (name, ifname) in LOOP_PORTS.iter().zip([&l1.a, &l1.b, &l2.a, &l2.b]) {
        dmn.add_port(BR, name, ifname, &storm);
    }
    let log0 = dmn.log_lines().len();

    // A broadcast into VLAN 30 starts a storm: copies circulate at the speed of the
    // switch, three for each one forwarded, until storm control has dropped them all.
    // Then another broadcast restarts it, four times a second, while VLAN 10 pings.
    let inject = h.capture();
    let s0 = loop_stats(&dmn);
    let t0 = Instant::now();
    let mut seq = 0;
    let mut slowest = Duration::ZERO;
    std::thread::scope(|s| {
        let pinger = s.spawn(|| a.ping(b.ip, 20));
        // The control socket stays responsive during the storm.
        while !pinger.is_finished() {
            seq += 1;
            inject.send(&eth_frame([0xff; 6], h.mac, &[], seq, 60));
            let o = dmn.ctl(&["show"]);
            assert!(o.success(), "show failed during the storm: {}", o.stderr);
            slowest = slowest.max(o.elapsed);
            std::thread::sleep(Duration::from_millis(250));
        }
        let r = pinger.join().expect("ping thread");
        assert!(
            r.all_received() && r.transmitted == 20,
            "VLAN 10 pings lost during the storm: {}",
            r.output
        );
    });
    let s1 = loop_stats(&dmn);
    let window = t0.elapsed().as_secs_f64();
    let mut storm_drops = 0;
    for (p0, p1) in s0.iter().zip(&s1) {
        let rx = p1.rx_packets - p0.rx_packets;
        let dropped = p1.total_drops() - p0.total_drops();
        let forwarded = rx - dropped;
        storm_drops += p1.drop("storm_control") - p0.drop("storm_control");
        let bound = (PPS as f64 * window * 1.25) as u64 + PPS;
        assert!(
            forwarded <= bound,
            "{} forwarded {forwarded} frames in {window:.1} s, limit {PPS} pps (bound {bound}): {p1:?}",
            p1.port
        );
    }
    assert!(
        storm_drops > 0,
        "no storm_control drops: the loop did not storm or was not limited: {s1:?}"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "show took {slowest:?} during the storm"
    );
    let mut dmn = dmn;
    assert!(dmn.alive(), "vswitchd died in the storm");
    let logs = dmn.log_lines();
    assert!(
        logs.len() - log0 < 10,
        "storm produced log lines: {:?}",
        &logs[log0..]
    );
    eprintln!(
        "storm: {storm_drops} storm_control drops in {window:.1} s, slowest show {slowest:?}"
    );
}
