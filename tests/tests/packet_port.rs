//! Packet ports on veths lose nothing silently: frames to a veth whose peer is down (the
//! veth has no carrier) are the port's `tx_ring_full`, exactly once each: those the
//! kernel took and dropped from its `tx_dropped`, the rest of each burst at once.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use datapath::counters::DropReason;
use vswitch_tests::testutil::Capture;
use vswitch_tests::{eth_frame, ns_run_ok, root_or_skip, run_ok, Host, PortSpec, Switch};

const N: u32 = 200;

/// Polls `f` for up to 5 s.
fn wait_for(mut f: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "waited 5 s for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn frames_to_a_veth_whose_peer_is_down_are_counted_tx_ring_full() {
    if !root_or_skip("frames_to_a_veth_whose_peer_is_down_are_counted_tx_ring_full") {
        return;
    }
    let a = Host::with_offloads("kpa", Ipv4Addr::new(10, 6, 0, 1));
    let b = Host::with_offloads("kpb", Ipv4Addr::new(10, 6, 0, 2));
    // Only the test's frames: no IPv6 autoconfiguration or multicast listener reports
    // from the hosts' own stacks, which would be flooded to b's port too.
    // (The switch's ends too: what the host stack sends on them while the peer is down
    // is in the device's tx_dropped, which the port reports.)
    for h in [&a, &b] {
        run_ok(
            "sysctl",
            &[
                "-qw",
                &format!("net.ipv6.conf.{}.disable_ipv6=1", h.switch_if()),
            ],
        );
        ns_run_ok(
            &h.ns,
            "sysctl",
            &["-qw", "net.ipv6.conf.all.disable_ipv6=1"],
        );
        ns_run_ok(
            &h.ns,
            "sysctl",
            &["-qw", &format!("net.ipv6.conf.{}.disable_ipv6=1", h.ifname)],
        );
    }
    let sw = Switch::start(
        1,
        vec![
            PortSpec::packet(a.switch_if(), "access 10", 0),
            PortSpec::packet(b.switch_if(), "access 10", 0),
        ],
    );
    let ca = Capture::open_in(&a.ns, &a.ifname);
    // b speaks once, so its MAC is known unicast behind its port.
    let cb = Capture::open_in(&b.ns, &b.ifname);
    cb.send(&eth_frame(a.mac, b.mac, &[], 0, 100));
    let rx_b = |sw: &Switch| sw.counters(b.switch_if()).rx_packets;
    wait_for(|| rx_b(&sw) >= 1, "b's frame at the switch");
    drop(cb);

    let down = |sw: &Switch| sw.counters(b.switch_if()).drops(DropReason::PortDown);
    let full = |sw: &Switch| sw.counters(b.switch_if()).drops(DropReason::TxRingFull);
    let sent = |sw: &Switch| sw.counters(b.switch_if()).tx_packets;
    let (down0, full0, sent0) = (down(&sw), full(&sw), sent(&sw));
    ns_run_ok(&b.ns, "ip", &["link", "set", &b.ifname, "down"]);
    for seq in 1..=N {
        ca.send(&eth_frame(b.mac, a.mac, &[], seq, 100));
    }
    wait_for(
        || full(&sw) - full0 == u64::from(N),
        "every frame to b's down peer counted as tx_ring_full",
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(full(&sw) - full0, u64::from(N), "counted once each");
    assert_eq!(down(&sw) - down0, 0, "and under no other reason");
    // The kernel took (and dropped, counting it) the first frame of each burst.
    let taken = sent(&sw) - sent0;
    assert!(taken >= 1 && taken <= u64::from(N), "{taken} sent");

    // Up again: frames to b arrive.
    ns_run_ok(&b.ns, "ip", &["link", "set", &b.ifname, "up"]);
    let cb = Capture::open_in(&b.ns, &b.ifname);
    let f = eth_frame(b.mac, a.mac, &[], N + 1, 100);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while got.is_empty() && Instant::now() < deadline {
        ca.send(&f);
        got = cb.collect_test_frames(1, Duration::from_millis(300));
    }
    assert_eq!(got, vec![f], "delivered once b is up");
}
