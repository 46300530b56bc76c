//! Scenario 1: two namespaces on access ports of VLAN 100 (AF_XDP on their veth ends)
//! reach each other: ping with 0% loss and a TCP transfer whose bytes all arrive intact.
//! With 2 workers the two ports sit on different workers, so every frame crosses a lane.

use std::net::Ipv4Addr;
use std::time::Duration;

use vswitch_tests::{assert_ping_ok, tcp_transfer, Host, PortSpec, Switch};

const TCP_BYTES: u64 = 16 << 20;

fn ping_and_tcp(workers: usize) {
    let a = Host::for_afxdp("sa", Ipv4Addr::new(10, 1, 0, 1));
    let b = Host::for_afxdp("sb", Ipv4Addr::new(10, 1, 0, 2));
    let sw = Switch::start(
        workers,
        vec![
            PortSpec::afxdp(a.switch_if(), "access 100", 0),
            PortSpec::afxdp(b.switch_if(), "access 100", 1),
        ],
    );
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
    ping_and_tcp(1);
}

#[test]
fn access_vlan100_ping_and_tcp_2_workers() {
    ping_and_tcp(2);
}
