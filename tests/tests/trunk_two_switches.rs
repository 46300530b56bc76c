//! Scenario 3: two switch instances ("host A" and "host B", two datapaths in this process)
//! joined by one veth pair configured `trunk 100,200` on both sides. VLAN 100 hosts on A
//! and B reach each other, so do the VLAN 200 hosts, and VLAN 100 never reaches VLAN 200.
//!
//! Tags on the trunk: once both switches run, every frame arriving at a trunk end is taken
//! by the XDP program before AF_PACKET taps see it (and AF_XDP transmissions bypass the
//! taps), so a capture on an attached end sees nothing. The tags are therefore checked
//! while only one side is attached: the other end is then an ordinary interface and its
//! capture (with the auxdata tag re-inserted) shows exactly what the switch put on the wire.

use std::net::Ipv4Addr;

use vswitch_tests::testutil::{Capture, VethPair};
use vswitch_tests::{
    assert_ping_fails, assert_ping_ok, drain, outer_vlan, ping_from, src_mac, Host, PortSpec,
    Switch,
};

/// Asserts that `frames` hold at least one frame from `mac` and that every one of them is
/// tagged 802.1Q with `vid`.
fn assert_tagged_from(frames: &[Vec<u8>], mac: [u8; 6], vid: u16, what: &str) {
    let from: Vec<&Vec<u8>> = frames.iter().filter(|f| src_mac(f) == Some(mac)).collect();
    assert!(
        !from.is_empty(),
        "{what}: no frame from {mac:02x?} on the trunk ({} frames captured)",
        frames.len()
    );
    for f in from {
        assert_eq!(
            outer_vlan(f),
            (0x8100, Some(vid)),
            "{what}: frame from {mac:02x?} on the trunk carries VID {vid}: {f:02x?}"
        );
    }
}

fn two_switches(workers: usize) {
    let a100 = Host::with_offloads("ta", Ipv4Addr::new(10, 3, 0, 1));
    let a200 = Host::with_offloads("tb", Ipv4Addr::new(10, 3, 0, 2));
    let b100 = Host::with_offloads("tc", Ipv4Addr::new(10, 3, 0, 3));
    let b200 = Host::with_offloads("td", Ipv4Addr::new(10, 3, 0, 4));
    let trunk = VethPair::new("tk");
    // With 2 workers, access ports and the trunk sit on different workers on both sides.
    let a_ports = || {
        vec![
            PortSpec::afxdp(a100.switch_if(), "access 100", 0),
            PortSpec::afxdp(a200.switch_if(), "access 200", 0),
            PortSpec::afxdp(&trunk.a, "trunk 100,200", 1),
        ]
    };
    let b_ports = || {
        vec![
            PortSpec::afxdp(b100.switch_if(), "access 100", 1),
            PortSpec::afxdp(b200.switch_if(), "access 200", 1),
            PortSpec::afxdp(&trunk.b, "trunk 100,200", 0),
        ]
    };

    // Phase 1: only B runs; what B sends on the trunk arrives at A's (unattached) end.
    {
        let cap = Capture::open(&trunk.a);
        let sw_b = Switch::start(workers, b_ports());
        // Nobody answers on A's side yet: these pings only make B flood ARP requests.
        std::thread::scope(|s| {
            s.spawn(|| ping_from(&b100.ns, a100.ip, 2));
            s.spawn(|| ping_from(&b200.ns, a200.ip, 2));
        });
        let frames = drain(&cap);
        assert_tagged_from(&frames, b100.mac, 100, "B, VLAN 100");
        assert_tagged_from(&frames, b200.mac, 200, "B, VLAN 200");
        drop(sw_b);
    }
    // Phase 2: only A runs; what A sends arrives at B's end.
    {
        let cap = Capture::open(&trunk.b);
        let sw_a = Switch::start(workers, a_ports());
        std::thread::scope(|s| {
            s.spawn(|| ping_from(&a100.ns, b100.ip, 2));
            s.spawn(|| ping_from(&a200.ns, b200.ip, 2));
        });
        let frames = drain(&cap);
        assert_tagged_from(&frames, a100.mac, 100, "A, VLAN 100");
        assert_tagged_from(&frames, a200.mac, 200, "A, VLAN 200");
        drop(sw_a);
    }

    // Phase 3: both switches run, joined by the trunk.
    let sw_a = Switch::start(workers, a_ports());
    let sw_b = Switch::start(workers, b_ports());
    let cap_b200 = b200.capture();
    let cap_b100 = b100.capture();

    assert_ping_ok(&a100, b100.ip, 5);
    assert_ping_ok(&b100, a100.ip, 5);
    assert_ping_ok(&a200, b200.ip, 5);
    assert_ping_ok(&b200, a200.ip, 5);

    // Cross-VLAN pings wait out their deadline; run them side by side (a failed assertion
    // in one of them fails the test when the scope joins).
    std::thread::scope(|s| {
        s.spawn(|| assert_ping_fails(&a100, b200.ip, 3));
        s.spawn(|| assert_ping_fails(&b200, a100.ip, 3));
        s.spawn(|| assert_ping_fails(&a200, b100.ip, 3));
    });

    let at_b200 = drain(&cap_b200);
    assert!(
        !at_b200.iter().any(|f| src_mac(f) == Some(a100.mac)),
        "VLAN 200 host on B received a frame from the VLAN 100 host on A"
    );
    let at_b100 = drain(&cap_b100);
    assert!(
        !at_b100.iter().any(|f| src_mac(f) == Some(a200.mac)),
        "VLAN 100 host on B received a frame from the VLAN 200 host on A"
    );
    assert!(
        at_b100.iter().any(|f| src_mac(f) == Some(a100.mac)),
        "VLAN 100 host on B received nothing from the VLAN 100 host on A"
    );
    // Frames reach the hosts untagged (the trunk tag is popped at the access port).
    for f in at_b100.iter().chain(&at_b200) {
        assert_eq!(
            outer_vlan(f).1,
            None,
            "tagged frame at an access host: {f:02x?}"
        );
    }

    if workers == 2 {
        assert!(sw_a.handoffs() > 0, "switch A moved frames between workers");
        assert!(sw_b.handoffs() > 0, "switch B moved frames between workers");
    }
}

#[test]
fn trunk_between_two_switches_1_worker() {
    if !vswitch_tests::root_or_skip("trunk_between_two_switches_1_worker") {
        return;
    }
    two_switches(1);
}

#[test]
fn trunk_between_two_switches_2_workers() {
    if !vswitch_tests::root_or_skip("trunk_between_two_switches_2_workers") {
        return;
    }
    two_switches(2);
}
