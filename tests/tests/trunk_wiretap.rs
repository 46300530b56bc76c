//! Scenario 3, tags on the wire while both switches run: switch A's and switch B's trunk
//! ports (`trunk 100,200`) are joined through a wiretap, a VLAN-unaware Linux bridge in
//! its own namespace between two veth pairs. AF_PACKET captures on the bridge's veth ends
//! (outer tag re-inserted from auxdata) see every frame each switch puts on its trunk link:
//! all of them are 802.1Q tagged, VLAN 100 traffic (ARP and the ICMP echoes themselves)
//! with VID 100 and VLAN 200 traffic with VID 200.
//!
//! (A capture on a trunk end the switch itself has attached sees nothing: XDP redirects
//! every received frame to the AF_XDP socket before the AF_PACKET taps, and AF_XDP
//! transmissions bypass the taps.)

use std::net::Ipv4Addr;

use vswitch_tests::testutil::{Capture, Netns, VethPair};
use vswitch_tests::{
    assert_ping_ok, drain, ns_run_ok, outer_vlan, src_mac, Host, PortSpec, Switch,
};

/// Whether `f` is an 802.1Q-tagged IPv4 ICMP echo request or reply.
fn is_tagged_icmp_echo(f: &[u8]) -> bool {
    // 12: 0x8100, 14: TCI, 16: 0x0800, 18: IPv4 header (IHL in the low nibble), 27: proto.
    if f.len() < 18 + 20 + 1 || f[16..18] != [0x08, 0x00] {
        return false;
    }
    let ihl = usize::from(f[18] & 0x0f) * 4;
    f[18 + 9] == 1 && f.get(18 + ihl).is_some_and(|t| *t == 8 || *t == 0)
}

/// Checks what switch `who` transmitted on its trunk: every frame tagged with VID 100 or
/// 200; frames of `h100`/`h200` with 100/200; ICMP echoes of both hosts among them.
fn check_trunk(frames: &[Vec<u8>], who: &str, h100: &Host, h200: &Host) {
    assert!(!frames.is_empty(), "{who}: nothing captured on its trunk");
    for f in frames {
        let (et, vid) = outer_vlan(f);
        assert!(
            et == 0x8100 && matches!(vid, Some(100) | Some(200)),
            "{who}: frame on the trunk not tagged 100/200: {f:02x?}"
        );
        if src_mac(f) == Some(h100.mac) {
            assert_eq!(vid, Some(100), "{who}: VLAN 100 host's frame: {f:02x?}");
        }
        if src_mac(f) == Some(h200.mac) {
            assert_eq!(vid, Some(200), "{who}: VLAN 200 host's frame: {f:02x?}");
        }
    }
    for (h, vid) in [(h100, 100), (h200, 200)] {
        assert!(
            frames.iter().any(|f| src_mac(f) == Some(h.mac)
                && outer_vlan(f).1 == Some(vid)
                && is_tagged_icmp_echo(f)),
            "{who}: no ICMP echo from {} tagged {vid} on the trunk ({} frames)",
            h.ip,
            frames.len()
        );
    }
}

fn wiretap(workers: usize) {
    let a100 = Host::with_offloads("wa", Ipv4Addr::new(10, 5, 0, 1));
    let a200 = Host::with_offloads("wb", Ipv4Addr::new(10, 5, 0, 2));
    let b100 = Host::with_offloads("wc", Ipv4Addr::new(10, 5, 0, 3));
    let b200 = Host::with_offloads("wd", Ipv4Addr::new(10, 5, 0, 4));
    let to_a = VethPair::new("wx");
    let to_b = VethPair::new("wy");
    let wire = Netns::new("ww");
    ns_run_ok(
        &wire,
        "sysctl",
        &["-qw", "net.ipv6.conf.default.disable_ipv6=1"],
    );
    ns_run_ok(&wire, "ip", &["link", "add", "br0", "type", "bridge"]);
    for end in [&to_a.b, &to_b.b] {
        wire.adopt(end);
        ns_run_ok(&wire, "ip", &["link", "set", end, "master", "br0"]);
        // The bridge must hand frames to the switch with the tag in the bytes (AF_XDP
        // sees no out-of-band tag).
        ns_run_ok(&wire, "ethtool", &["-K", end, "txvlan", "off"]);
    }
    ns_run_ok(&wire, "ip", &["link", "set", "br0", "up"]);
    let from_a = Capture::open_in(&wire, &to_a.b);
    let from_b = Capture::open_in(&wire, &to_b.b);

    let _sw_a = Switch::start(
        workers,
        vec![
            PortSpec::afxdp(a100.switch_if(), "access 100", 0),
            PortSpec::afxdp(a200.switch_if(), "access 200", 0),
            PortSpec::afxdp(&to_a.a, "trunk 100,200", 1),
        ],
    );
    let _sw_b = Switch::start(
        workers,
        vec![
            PortSpec::afxdp(b100.switch_if(), "access 100", 1),
            PortSpec::afxdp(b200.switch_if(), "access 200", 1),
            PortSpec::afxdp(&to_b.a, "trunk 100,200", 0),
        ],
    );

    assert_ping_ok(&a100, b100.ip, 4);
    assert_ping_ok(&a200, b200.ip, 4);

    check_trunk(&drain(&from_a), "switch A", &a100, &a200);
    check_trunk(&drain(&from_b), "switch B", &b100, &b200);
}

#[test]
fn trunk_tags_on_the_wire_1_worker() {
    if !vswitch_tests::root_or_skip("trunk_tags_on_the_wire_1_worker") {
        return;
    }
    wiretap(1);
}

#[test]
fn trunk_tags_on_the_wire_2_workers() {
    if !vswitch_tests::root_or_skip("trunk_tags_on_the_wire_2_workers") {
        return;
    }
    wiretap(2);
}
