//! Scenario 1: two namespaces on access ports of VLAN 100 reach each other: ping with 0%
//! loss and a TCP transfer each way whose bytes all arrive intact. With 2 workers the two
//! ports sit on different workers, so every frame crosses a lane.
//!
//! The hosts send with the kernel's default offloads (TX checksum offload and TSO on, as
//! pods do) through `packet` ports. One case keeps AF_XDP ports, whose hosts must turn TX
//! checksum offload off (AF_XDP cannot see partial checksums): the offloads-off case.

use std::net::Ipv4Addr;
use std::time::Duration;

use vswitch_tests::{assert_ping_ok, tcp_transfer, Host, PortSpec, Switch};

const TCP_BYTES: u64 = 16 << 20;

/// The ports the two hosts sit behind.
#[derive(Debug, Clone, Copy)]
enum Ports {
    /// `packet` ports; hosts with the kernel's default offloads.
    Packet,
    /// AF_XDP ports; hosts with TX checksum offload off.
    AfXdp,
}

fn ping_and_tcp(workers: usize, ports: Ports, net: u8) {
    let ip = |h| Ipv4Addr::new(10, 1, net, h);
    let (a, b) = match ports {
        Ports::Packet => (
            Host::with_offloads("sa", ip(1)),
            Host::with_offloads("sb", ip(2)),
        ),
        Ports::AfXdp => (Host::for_afxdp("sa", ip(1)), Host::for_afxdp("sb", ip(2))),
    };
    let spec = |h: &Host, worker| match ports {
        Ports::Packet => PortSpec::packet(h.switch_if(), "access 100", worker),
        Ports::AfXdp => PortSpec::afxdp(h.switch_if(), "access 100", worker),
    };
    let sw = Switch::start(workers, vec![spec(&a, 0), spec(&b, 1)]);
    if workers == 2 {
        assert_ne!(
            sw.owner(a.switch_if()),
            sw.owner(b.switch_if()),
            "the two hosts' ports are on different workers"
        );
    }

    assert_ping_ok(&a, b.ip, 5);
    assert_ping_ok(&b, a.ip, 5);

    let r = tcp_transfer(&a.ns, &b.ns, b.ip, 5201, TCP_BYTES, Duration::from_secs(30));
    assert_eq!(r.received, TCP_BYTES, "bytes received by {}", b.ip);
    assert_eq!(r.first_mismatch, None, "received bytes equal the sent ones");
    // And the other direction.
    let r = tcp_transfer(&b.ns, &a.ns, a.ip, 5202, TCP_BYTES, Duration::from_secs(30));
    assert_eq!(r.received, TCP_BYTES, "bytes received by {}", a.ip);
    assert_eq!(r.first_mismatch, None, "received bytes equal the sent ones");

    if workers == 2 {
        assert!(
            sw.handoffs() > 0,
            "traffic between ports on different workers went through the lanes"
        );
    }
}

#[test]
fn access_vlan100_ping_and_tcp_1_worker() {
    if !vswitch_tests::root_or_skip("access_vlan100_ping_and_tcp_1_worker") {
        return;
    }
    ping_and_tcp(1, Ports::Packet, 0);
}

#[test]
fn access_vlan100_ping_and_tcp_2_workers() {
    if !vswitch_tests::root_or_skip("access_vlan100_ping_and_tcp_2_workers") {
        return;
    }
    ping_and_tcp(2, Ports::Packet, 1);
}

/// The offloads-off case: AF_XDP ports, hosts with TX checksum offload off.
#[test]
fn access_vlan100_ping_and_tcp_afxdp_tx_csum_off_2_workers() {
    if !vswitch_tests::root_or_skip("access_vlan100_ping_and_tcp_afxdp_tx_csum_off_2_workers") {
        return;
    }
    ping_and_tcp(2, Ports::AfXdp, 2);
}
