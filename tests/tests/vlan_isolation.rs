//! Scenario 2: VLAN 100 and VLAN 200 access ports on one switch share an IP subnet but no
//! link: pings across fail 100% and the VLAN 200 host captures none of the VLAN 100 host's
//! frames (its ARP broadcasts included), while a second VLAN 100 host does see them
//! (the positive control that shows the capture and the broadcasts work).

use std::net::Ipv4Addr;

use vswitch_tests::{
    assert_ping_fails, assert_ping_ok, drain, is_arp_from, mac_string, src_mac, Host, PortSpec,
    Switch,
};

fn vlans_stay_apart(workers: usize) {
    let a100 = Host::with_offloads("ia", Ipv4Addr::new(10, 2, 0, 1));
    let b200 = Host::with_offloads("ib", Ipv4Addr::new(10, 2, 0, 2));
    let c100 = Host::with_offloads("ic", Ipv4Addr::new(10, 2, 0, 3));
    let sw = Switch::start(
        workers,
        vec![
            PortSpec::afxdp(a100.switch_if(), "access 100", 0),
            PortSpec::afxdp(b200.switch_if(), "access 200", 1),
            PortSpec::afxdp(c100.switch_if(), "access 100", 1),
        ],
    );
    if workers == 2 {
        assert_ne!(sw.owner(a100.switch_if()), sw.owner(b200.switch_if()));
    }

    let cap200 = b200.capture();
    let cap100 = c100.capture();

    // a100 asks for b200's address: ARP broadcasts in VLAN 100 that must not reach VLAN 200;
    // and the other way round. Both wait out their deadline, so side by side.
    std::thread::scope(|s| {
        s.spawn(|| assert_ping_fails(&a100, b200.ip, 4));
        s.spawn(|| assert_ping_fails(&b200, a100.ip, 4));
    });

    let at200 = drain(&cap200);
    let leaked: Vec<&Vec<u8>> = at200
        .iter()
        .filter(|f| src_mac(f) == Some(a100.mac) || src_mac(f) == Some(c100.mac))
        .collect();
    assert!(
        leaked.is_empty(),
        "VLAN 200 host received {} frame(s) from VLAN 100 hosts (first: {:02x?})",
        leaked.len(),
        leaked.first()
    );

    // Positive control: the other VLAN 100 host saw a100's ARP requests (flooded), and none
    // of b200's.
    let at100 = drain(&cap100);
    let arps = at100.iter().filter(|f| is_arp_from(f, a100.mac)).count();
    assert!(
        arps >= 1,
        "VLAN 100 host saw no ARP request from {} ({} frames captured)",
        mac_string(a100.mac),
        at100.len()
    );
    assert!(
        !at100.iter().any(|f| src_mac(f) == Some(b200.mac)),
        "VLAN 100 host received a frame from the VLAN 200 host"
    );

    // The switch itself still forwards inside VLAN 100.
    assert_ping_ok(&a100, c100.ip, 3);
}

#[test]
fn vlan100_and_vlan200_isolated_1_worker() {
    if !vswitch_tests::root_or_skip("vlan100_and_vlan200_isolated_1_worker") {
        return;
    }
    vlans_stay_apart(1);
}

#[test]
fn vlan100_and_vlan200_isolated_2_workers() {
    if !vswitch_tests::root_or_skip("vlan100_and_vlan200_isolated_2_workers") {
        return;
    }
    vlans_stay_apart(2);
}
