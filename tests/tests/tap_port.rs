//! Scenario 4: a switch-owned tap port whose kernel side lives in a namespace with an
//! address is reachable from a namespace behind a `packet` veth port of the same VLAN
//! (ping both ways, a TCP transfer each way), and not from a host in another VLAN.
//!
//! Every host keeps the kernel's default offloads (TX checksum offload and TSO on): both
//! the tap and the packet port carry superframes and partial checksums through. (Tap to
//! AF_XDP, where the switch segments, is in `offloads.rs` and `ctl_acceptance.rs`.)

use std::net::Ipv4Addr;
use std::time::Duration;

use datapath::port::{TapConfig, TapPort};
use vswitch_tests::testutil::Netns;
use vswitch_tests::{
    assert_ping_fails, assert_ping_fails_from, assert_ping_ok, assert_ping_ok_from,
    configure_ns_if, drain, src_mac, tap_name, tcp_transfer, unique_mac, Host, Offloads, PortSpec,
    Switch,
};

fn tap_reachable(workers: usize) {
    let veth100 = Host::with_offloads("pa", Ipv4Addr::new(10, 4, 0, 1));
    let veth200 = Host::with_offloads("pb", Ipv4Addr::new(10, 4, 0, 3));
    // The namespace outlives the switch (declared first), so the tap device disappears
    // with the switch's fd, not with the namespace.
    let tap_ns = Netns::new("pt");
    let tap_ip = Ipv4Addr::new(10, 4, 0, 2);
    let tap_mac = unique_mac();
    let tap = TapPort::create(&TapConfig::new(tap_name())).expect("create tap port");
    let tap_if = tap.name().to_owned();
    configure_ns_if(&tap_ns, &tap_if, tap_ip, tap_mac, Offloads::KernelDefault);

    let sw = Switch::start(
        workers,
        vec![
            PortSpec::packet(veth100.switch_if(), "access 100", 0),
            PortSpec::tap(tap, "access 100", 1),
            PortSpec::packet(veth200.switch_if(), "access 200", 0),
        ],
    );
    if workers == 2 {
        assert_ne!(sw.owner(veth100.switch_if()), sw.owner(&tap_if));
    }
    let cap200 = veth200.capture();

    assert_ping_ok(&veth100, tap_ip, 5);
    assert_ping_ok_from(&tap_ns, veth100.ip, 5);

    let bytes = 4 << 20;
    let r = tcp_transfer(
        &veth100.ns,
        &tap_ns,
        tap_ip,
        5301,
        bytes,
        Duration::from_secs(30),
    );
    assert_eq!(r.received, bytes, "bytes received behind the tap");
    assert_eq!(r.first_mismatch, None, "received bytes equal the sent ones");
    let r = tcp_transfer(
        &tap_ns,
        &veth100.ns,
        veth100.ip,
        5302,
        bytes,
        Duration::from_secs(30),
    );
    assert_eq!(r.received, bytes, "bytes the tap host sent received");
    assert_eq!(r.first_mismatch, None, "received bytes equal the sent ones");

    // Another VLAN does not reach the tap host, nor does the tap host's traffic leak there.
    std::thread::scope(|s| {
        s.spawn(|| assert_ping_fails(&veth200, tap_ip, 3));
        s.spawn(|| assert_ping_fails_from(&tap_ns, veth200.ip, 3));
    });
    assert!(
        !drain(&cap200)
            .iter()
            .any(|f| src_mac(f) == Some(tap_mac) || src_mac(f) == Some(veth100.mac)),
        "VLAN 200 host received a frame from VLAN 100"
    );

    if workers == 2 {
        assert!(sw.handoffs() > 0, "frames crossed between the workers");
    }
}

#[test]
fn tap_port_in_namespace_reachable_1_worker() {
    if !vswitch_tests::root_or_skip("tap_port_in_namespace_reachable_1_worker") {
        return;
    }
    tap_reachable(1);
}

#[test]
fn tap_port_in_namespace_reachable_2_workers() {
    if !vswitch_tests::root_or_skip("tap_port_in_namespace_reachable_2_workers") {
        return;
    }
    tap_reachable(2);
}
