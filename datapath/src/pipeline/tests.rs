//! Pipeline tests: the VLAN decision matrix (every row of vlan-semantics.md plus Open
//! vSwitch "VLAN handling" style rows), forwarding rules, and bursts of many sizes, all
//! judged by the frames each in-memory port actually transmitted.

use crate::counters::DropReason;
use crate::fdb::{FdbConfig, Learn};
use crate::mem::{MemPortConfig, MemSwitch};
use crate::pipeline::{Pipeline, TxDone, TxItem, TxPorts, Verdict};
use crate::topology::{PortConfig, PortId, Topology};
use crate::wire::{EthernetFrame, EthernetRepr, MacAddr, Tci, TPID_8021Q};

fn pid(i: usize) -> PortId {
    PortId::new(i).expect("valid port")
}

fn mac(i: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, i])
}

/// The matrix topology:
/// p0 access 10, p1 access 10, p2 access 20, p3 trunk 10,20, p4 trunk 10,20,30 native 30,
/// p5 trunk 10,20 native 40 tagged, p6 trunk all.
fn matrix_switch() -> MemSwitch {
    let ports = [
        "access 10",
        "access 10",
        "access 20",
        "trunk 10,20",
        "trunk 10,20,30 native 30",
        "trunk 10,20 native 40 tagged",
        "trunk all",
    ];
    let mut b = Topology::builder();
    for (i, v) in ports.iter().enumerate() {
        b.add_port(
            i,
            PortConfig::new(format!("p{i}"), v.parse().expect("vlan")),
        )
        .expect("port");
    }
    MemSwitch::new(
        b.build(),
        FdbConfig::default(),
        MemPortConfig::default(),
        32,
    )
}

/// How a test frame's header looks.
#[derive(Debug, Clone, Copy)]
enum Hdr {
    Untagged,
    /// Outer 0x8100 tag with (pcp, vid).
    Tag(u8, u16),
    /// Outer 0x8100 (pcp, vid), inner 0x8100 vid.
    Double(u8, u16, u16),
    /// Other TPID (0x88a8 / 0x9100) with a VID: payload to this switch.
    OtherTpid(u16, u16),
}

fn frame(dst: MacAddr, src: MacAddr, h: Hdr, payload_len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..payload_len).map(|i| (i * 7 + 3) as u8).collect();
    let mut inner = Vec::new();
    let (tag, ethertype) = match h {
        Hdr::Untagged => (None, 0x0800),
        Hdr::Tag(pcp, vid) => (Some(Tci::new(pcp, false, vid)), 0x0800),
        Hdr::Double(pcp, vid, inner_vid) => {
            inner.extend_from_slice(&Tci::new(0, false, inner_vid).0.to_be_bytes());
            inner.extend_from_slice(&0x0800u16.to_be_bytes());
            (Some(Tci::new(pcp, false, vid)), TPID_8021Q)
        }
        Hdr::OtherTpid(tpid, vid) => {
            inner.extend_from_slice(&Tci::new(0, false, vid).0.to_be_bytes());
            inner.extend_from_slice(&0x0800u16.to_be_bytes());
            (None, tpid)
        }
    };
    inner.extend_from_slice(&payload);
    EthernetRepr {
        dst,
        src,
        tag,
        ethertype,
    }
    .to_frame(&inner)
}

/// The frame with its outer 802.1Q tag (if any) removed: what must survive forwarding.
fn untag(f: &[u8]) -> Vec<u8> {
    let v = EthernetFrame::new_checked(f).expect("valid frame");
    if v.tag().is_some() {
        let mut out = f[..12].to_vec();
        out.extend_from_slice(&f[16..]);
        out
    } else {
        f.to_vec()
    }
}

/// Expected delivery at one port: `None` untagged, `Some((pcp, vid))` tagged.
type Delivery = (usize, Option<(u8, u16)>);

struct Row {
    name: &'static str,
    ingress: usize,
    hdr: Hdr,
    expect: Result<Vec<Delivery>, DropReason>,
}

fn row(
    name: &'static str,
    ingress: usize,
    hdr: Hdr,
    expect: Result<Vec<Delivery>, DropReason>,
) -> Row {
    Row {
        name,
        ingress,
        hdr,
        expect,
    }
}

fn check_row(r: &Row) {
    let mut sw = matrix_switch();
    let f = frame(MacAddr::BROADCAST, mac(0x10 + r.ingress as u8), r.hdr, 46);
    sw.inject(pid(r.ingress), &f).expect("inject");
    assert_eq!(sw.run(), 1, "{}", r.name);
    let verdict = sw.pipeline().verdicts()[0];
    let mut got: Vec<Delivery> = Vec::new();
    for p in 0..7 {
        for out in sw.take_tx(pid(p)) {
            // Only the outer tag may change: a delivery "untagged by the switch" is exactly
            // the frame without its ingress outer tag (an inner tag stays); a tagged one is
            // that plus a new outer tag.
            let tag = if out == untag(&f) {
                None
            } else {
                assert_eq!(
                    untag(&out),
                    untag(&f),
                    "{}: payload changed at p{p}",
                    r.name
                );
                let v = EthernetFrame::new_checked(&out[..]).expect("transmitted frame parses");
                v.tag().map(|t| (t.pcp(), t.vid()))
            };
            got.push((p, tag));
        }
    }
    match &r.expect {
        Ok(want) => {
            assert_eq!(&got, want, "{}: deliveries", r.name);
            assert_eq!(
                verdict,
                Verdict::Flood {
                    copies: want.len() as u16
                },
                "{}",
                r.name
            );
        }
        Err(reason) => {
            assert!(got.is_empty(), "{}: expected drop, got {got:?}", r.name);
            assert_eq!(verdict, Verdict::Drop(*reason), "{}", r.name);
            assert_eq!(
                sw.pipeline().counters(pid(r.ingress)).drops(*reason),
                1,
                "{}: counter",
                r.name
            );
            // A frame refused at ingress is never learned; one accepted into a VLAN that
            // has no other member port was learned before it found no egress.
            let learned = usize::from(*reason == DropReason::NoEgress);
            assert_eq!(sw.pipeline().fdb().len(), learned, "{}: learning", r.name);
        }
    }
}

#[test]
fn vlan_decision_matrix() {
    use DropReason::*;
    use Hdr::*;
    let rows = [
        // access 10 (p0)
        row(
            "access untagged -> VLAN 10",
            0,
            Untagged,
            Ok(vec![
                (1, None),
                (3, Some((0, 10))),
                (4, Some((0, 10))),
                (5, Some((0, 10))),
                (6, Some((0, 10))),
            ]),
        ),
        row(
            "access VID0 pcp5 -> VLAN 10, PCP kept",
            0,
            Tag(5, 0),
            Ok(vec![
                (1, None),
                (3, Some((5, 10))),
                (4, Some((5, 10))),
                (5, Some((5, 10))),
                (6, Some((5, 10))),
            ]),
        ),
        row(
            "access tagged own VID dropped",
            0,
            Tag(0, 10),
            Err(TaggedOnAccess),
        ),
        row(
            "access tagged other VID dropped",
            0,
            Tag(0, 20),
            Err(TaggedOnAccess),
        ),
        row("access VID 4095 invalid", 0, Tag(0, 4095), Err(InvalidVid)),
        row(
            "access 0x88a8 is untagged payload",
            0,
            OtherTpid(0x88a8, 20),
            Ok(vec![
                (1, None),
                (3, Some((0, 10))),
                (4, Some((0, 10))),
                (5, Some((0, 10))),
                (6, Some((0, 10))),
            ]),
        ),
        row(
            "access 0x9100 is untagged payload",
            0,
            OtherTpid(0x9100, 20),
            Ok(vec![
                (1, None),
                (3, Some((0, 10))),
                (4, Some((0, 10))),
                (5, Some((0, 10))),
                (6, Some((0, 10))),
            ]),
        ),
        row(
            "access double tag outer 20 dropped (no hopping)",
            0,
            Double(0, 20, 10),
            Err(TaggedOnAccess),
        ),
        row(
            "access double tag outer 0: classified by outer only",
            0,
            Double(3, 0, 20),
            Ok(vec![
                (1, None),
                (3, Some((3, 10))),
                (4, Some((3, 10))),
                (5, Some((3, 10))),
                (6, Some((3, 10))),
            ]),
        ),
        // access 20 (p2): never reaches VLAN 10 ports
        row(
            "access 20 untagged stays in 20",
            2,
            Untagged,
            Ok(vec![
                (3, Some((0, 20))),
                (4, Some((0, 20))),
                (5, Some((0, 20))),
                (6, Some((0, 20))),
            ]),
        ),
        // trunk 10,20 (p3)
        row("trunk untagged dropped", 3, Untagged, Err(UntaggedOnTrunk)),
        row("trunk VID0 dropped", 3, Tag(4, 0), Err(UntaggedOnTrunk)),
        row(
            "trunk 0x88a8 is untagged -> dropped",
            3,
            OtherTpid(0x88a8, 10),
            Err(UntaggedOnTrunk),
        ),
        row(
            "trunk allowed VID pcp kept",
            3,
            Tag(3, 10),
            Ok(vec![
                (0, None),
                (1, None),
                (4, Some((3, 10))),
                (5, Some((3, 10))),
                (6, Some((3, 10))),
            ]),
        ),
        row(
            "trunk VID 20",
            3,
            Tag(0, 20),
            Ok(vec![
                (2, None),
                (4, Some((0, 20))),
                (5, Some((0, 20))),
                (6, Some((0, 20))),
            ]),
        ),
        row("trunk disallowed VID", 3, Tag(0, 30), Err(VlanNotAllowed)),
        row("trunk VID 4095", 3, Tag(0, 4095), Err(InvalidVid)),
        row(
            "trunk double tag: outer classifies, inner is payload",
            3,
            Double(1, 20, 10),
            Ok(vec![
                (2, None),
                (4, Some((1, 20))),
                (5, Some((1, 20))),
                (6, Some((1, 20))),
            ]),
        ),
        // trunk 10,20,30 native 30 untagged (p4)
        row(
            "native-untagged: untagged -> native",
            4,
            Untagged,
            Ok(vec![(6, Some((0, 30)))]),
        ),
        row(
            "native-untagged: VID0 pcp6 -> native, PCP kept",
            4,
            Tag(6, 0),
            Ok(vec![(6, Some((6, 30)))]),
        ),
        row(
            "native-untagged: tagged native VID accepted",
            4,
            Tag(0, 30),
            Ok(vec![(6, Some((0, 30)))]),
        ),
        row(
            "native-untagged: tagged allowed VID",
            4,
            Tag(0, 10),
            Ok(vec![
                (0, None),
                (1, None),
                (3, Some((0, 10))),
                (5, Some((0, 10))),
                (6, Some((0, 10))),
            ]),
        ),
        row(
            "native-untagged: disallowed VID",
            4,
            Tag(0, 40),
            Err(VlanNotAllowed),
        ),
        // trunk 10,20 native 40 tagged (p5)
        row(
            "native-tagged: untagged -> native",
            5,
            Untagged,
            Ok(vec![(6, Some((0, 40)))]),
        ),
        row(
            "native-tagged: VID0 pcp2 -> native",
            5,
            Tag(2, 0),
            Ok(vec![(6, Some((2, 40)))]),
        ),
        row(
            "native-tagged: disallowed VID",
            5,
            Tag(0, 30),
            Err(VlanNotAllowed),
        ),
        // trunk all (p6): egress transforms of the native ports
        row(
            "egress native-untagged pops, native-tagged keeps tag",
            6,
            Tag(7, 30),
            Ok(vec![(4, None)]),
        ),
        row(
            "egress native-tagged is tagged",
            6,
            Tag(7, 40),
            Ok(vec![(5, Some((7, 40)))]),
        ),
        row(
            "trunk all: VLAN with no other member",
            6,
            Tag(0, 4094),
            Err(NoEgress),
        ),
        row(
            "trunk all: VID 1 no other member",
            6,
            Tag(0, 1),
            Err(NoEgress),
        ),
        row(
            "trunk all: untagged dropped",
            6,
            Untagged,
            Err(UntaggedOnTrunk),
        ),
    ];
    for r in &rows {
        check_row(r);
    }
}

#[test]
fn invalid_sources_and_reserved_destinations() {
    let mut sw = matrix_switch();
    let bad_src = [
        MacAddr::BROADCAST,
        MacAddr::ZERO,
        MacAddr([0x01, 0, 0x5e, 0, 0, 1]),
    ];
    for s in bad_src {
        sw.inject(pid(0), &frame(mac(1), s, Hdr::Untagged, 46))
            .expect("inject");
    }
    for last in [0u8, 1, 2, 3, 0x0e, 0x0f] {
        let dst = MacAddr([0x01, 0x80, 0xc2, 0, 0, last]);
        sw.inject(pid(0), &frame(dst, mac(1), Hdr::Untagged, 46))
            .expect("inject");
    }
    // 01:80:c2:00:00:10 is not reserved: flooded.
    sw.inject(
        pid(0),
        &frame(
            MacAddr([1, 0x80, 0xc2, 0, 0, 0x10]),
            mac(1),
            Hdr::Untagged,
            46,
        ),
    )
    .expect("inject");
    sw.run();
    let c = sw.pipeline().counters(pid(0));
    assert_eq!(c.drops(DropReason::InvalidSrc), 3);
    assert_eq!(c.drops(DropReason::ReservedDst), 6);
    assert_eq!(c.rx_packets, 10);
    assert_eq!(sw.take_tx(pid(1)).len(), 1);
    assert_eq!(
        sw.pipeline().fdb().len(),
        1,
        "only the valid source was learned"
    );
}

#[test]
fn runts_and_truncated_tags_are_counted() {
    let mut sw = matrix_switch();
    sw.inject(pid(0), &[0u8; 0]).expect("inject");
    sw.inject(pid(0), &[0u8; 13]).expect("inject");
    let mut t = vec![0u8; 17];
    t[12] = 0x81;
    sw.inject(pid(3), &t).expect("inject");
    sw.run();
    assert_eq!(sw.pipeline().counters(pid(0)).drops(DropReason::Runt), 2);
    assert_eq!(
        sw.pipeline()
            .counters(pid(3))
            .drops(DropReason::TruncatedTag),
        1
    );
}

#[test]
fn learned_unicast_goes_to_exactly_one_port_with_its_transform() {
    let mut sw = matrix_switch();
    // Host B (mac 2) behind trunk p3 in VLAN 10 announces itself.
    sw.inject(
        pid(3),
        &frame(MacAddr::BROADCAST, mac(2), Hdr::Tag(0, 10), 46),
    )
    .expect("inject");
    sw.run();
    for p in 0..7 {
        sw.take_tx(pid(p));
    }
    // Host A on access p0 sends to B: pushed tag 10, only p3.
    let f = frame(mac(2), mac(1), Hdr::Untagged, 46);
    sw.inject(pid(0), &f).expect("inject");
    sw.run();
    assert_eq!(sw.pipeline().verdicts(), &[Verdict::Unicast(pid(3))]);
    let out = sw.take_tx(pid(3));
    assert_eq!(out.len(), 1);
    let v = EthernetFrame::new_checked(&out[0][..]).expect("frame");
    assert_eq!(v.tag().map(|t| t.vid()), Some(10));
    for p in [1, 2, 4, 5, 6] {
        assert!(sw.take_tx(pid(p)).is_empty(), "p{p} got a known unicast");
    }
    // B answers A: popped on the access port, only p0.
    sw.inject(pid(3), &frame(mac(1), mac(2), Hdr::Tag(2, 10), 46))
        .expect("inject");
    sw.run();
    let out = sw.take_tx(pid(0));
    assert_eq!(out.len(), 1);
    assert_eq!(
        EthernetFrame::new_checked(&out[0][..])
            .expect("frame")
            .tag(),
        None
    );
    assert_eq!(out[0], untag(&frame(mac(1), mac(2), Hdr::Tag(2, 10), 46)));
    // Same MAC in VLAN 20 is unknown: flooded in 20 only.
    sw.inject(pid(3), &frame(mac(1), mac(2), Hdr::Tag(0, 20), 46))
        .expect("inject");
    sw.run();
    assert_eq!(sw.pipeline().verdicts(), &[Verdict::Flood { copies: 4 }]);
    assert!(sw.take_tx(pid(0)).is_empty());
    assert_eq!(sw.take_tx(pid(2)).len(), 1);
}

#[test]
fn no_hairpin_and_dst_on_ingress() {
    let mut sw = matrix_switch();
    sw.inject(
        pid(0),
        &frame(MacAddr::BROADCAST, mac(1), Hdr::Untagged, 46),
    )
    .expect("inject");
    sw.inject(
        pid(0),
        &frame(MacAddr::BROADCAST, mac(3), Hdr::Untagged, 46),
    )
    .expect("inject");
    sw.run();
    assert!(
        sw.take_tx(pid(0)).is_empty(),
        "flood never returns to its ingress"
    );
    sw.inject(pid(0), &frame(mac(3), mac(1), Hdr::Untagged, 46))
        .expect("inject");
    sw.run();
    assert_eq!(
        sw.pipeline().verdicts(),
        &[Verdict::Drop(DropReason::DstOnIngress)]
    );
    assert!(sw.take_tx(pid(0)).is_empty());
}

#[test]
fn flood_policies_and_isolation() {
    let mk = |n: &str| PortConfig::new(n, "access 5".parse().expect("vlan"));
    let mut b = Topology::builder();
    b.add_port(0, mk("a")).expect("p");
    let mut iso1 = mk("iso1");
    iso1.isolated = true;
    b.add_port(1, iso1).expect("p");
    let mut iso2 = mk("iso2");
    iso2.isolated = true;
    b.add_port(2, iso2).expect("p");
    let mut no_uc = mk("no_uc");
    no_uc.flood.unknown_unicast = false;
    b.add_port(3, no_uc).expect("p");
    let mut sw = MemSwitch::new(
        b.build(),
        FdbConfig::default(),
        MemPortConfig::default(),
        32,
    );
    // Unknown unicast from a: not to no_uc.
    sw.inject(pid(0), &frame(mac(99), mac(10), Hdr::Untagged, 46))
        .expect("inject");
    // Broadcast from iso1: a and no_uc only.
    sw.inject(
        pid(1),
        &frame(MacAddr::BROADCAST, mac(11), Hdr::Untagged, 46),
    )
    .expect("inject");
    // Broadcast from iso2 to learn it.
    sw.inject(
        pid(2),
        &frame(MacAddr::BROADCAST, mac(12), Hdr::Untagged, 46),
    )
    .expect("inject");
    sw.run();
    assert_eq!(
        sw.take_tx(pid(3)).len(),
        2,
        "no_uc gets the broadcasts, not unknown unicast"
    );
    assert_eq!(sw.take_tx(pid(0)).len(), 2);
    assert_eq!(
        sw.take_tx(pid(1)).len(),
        1,
        "iso1 got a's unknown unicast only"
    );
    assert_eq!(
        sw.take_tx(pid(2)).len(),
        1,
        "iso2 got a's unknown unicast only"
    );
    // Known unicast iso1 -> iso2 is refused; iso1 -> a works.
    sw.inject(pid(1), &frame(mac(12), mac(11), Hdr::Untagged, 46))
        .expect("inject");
    sw.inject(pid(1), &frame(mac(10), mac(11), Hdr::Untagged, 46))
        .expect("inject");
    sw.run();
    assert_eq!(
        sw.pipeline().verdicts(),
        &[
            Verdict::Drop(DropReason::Isolated),
            Verdict::Unicast(pid(0))
        ]
    );
    assert!(sw.take_tx(pid(2)).is_empty());
    assert_eq!(sw.take_tx(pid(0)).len(), 1);
}

#[test]
fn flood_in_two_port_vlan_reaches_exactly_one_port() {
    let mut b = Topology::builder();
    b.add_port(0, PortConfig::new("a", "access 7".parse().expect("vlan")))
        .expect("p");
    b.add_port(1, PortConfig::new("b", "access 7".parse().expect("vlan")))
        .expect("p");
    b.add_port(2, PortConfig::new("c", "access 8".parse().expect("vlan")))
        .expect("p");
    let mut sw = MemSwitch::new(
        b.build(),
        FdbConfig::default(),
        MemPortConfig::default(),
        32,
    );
    sw.inject(
        pid(0),
        &frame(MacAddr::BROADCAST, mac(1), Hdr::Untagged, 46),
    )
    .expect("inject");
    sw.run();
    assert_eq!(sw.pipeline().verdicts(), &[Verdict::Flood { copies: 1 }]);
    assert_eq!(sw.take_tx(pid(1)).len(), 1);
    assert!(sw.take_tx(pid(2)).is_empty());
}

#[test]
fn mtu_exceeded_is_counted_at_egress_and_never_truncated() {
    let mut b = Topology::builder();
    b.add_port(0, PortConfig::new("in", "access 7".parse().expect("vlan")))
        .expect("p");
    let mut small = PortConfig::new("small", "trunk 7".parse().expect("vlan"));
    small.mtu = 512;
    b.add_port(1, small).expect("p");
    b.add_port(2, PortConfig::new("big", "access 7".parse().expect("vlan")))
        .expect("p");
    let mut sw = MemSwitch::new(
        b.build(),
        FdbConfig::default(),
        MemPortConfig::default(),
        32,
    );
    // L3 512 fits; 513 does not fit the small port but fits the big one.
    sw.inject(
        pid(0),
        &frame(MacAddr::BROADCAST, mac(1), Hdr::Untagged, 512),
    )
    .expect("inject");
    sw.inject(
        pid(0),
        &frame(MacAddr::BROADCAST, mac(1), Hdr::Untagged, 513),
    )
    .expect("inject");
    sw.run();
    let small_out = sw.take_tx(pid(1));
    assert_eq!(small_out.len(), 1);
    assert_eq!(
        small_out[0].len(),
        14 + 4 + 512,
        "tag pushed, nothing truncated"
    );
    assert_eq!(sw.take_tx(pid(2)).len(), 2);
    assert_eq!(
        sw.pipeline()
            .counters(pid(1))
            .drops(DropReason::MtuExceeded),
        1
    );
    assert_eq!(sw.pipeline().counters(pid(0)).total_drops(), 0);
}

#[test]
fn tx_ring_full_is_counted() {
    let mut b = Topology::builder();
    b.add_port(0, PortConfig::new("in", "access 7".parse().expect("vlan")))
        .expect("p");
    b.add_port(1, PortConfig::new("out", "access 7".parse().expect("vlan")))
        .expect("p");
    let cfg = MemPortConfig {
        rx_slots: 64,
        tx_slots: 10,
        slot_size: 2048,
    };
    let mut sw = MemSwitch::new(b.build(), FdbConfig::default(), cfg, 32);
    for _ in 0..25 {
        sw.inject(
            pid(0),
            &frame(MacAddr::BROADCAST, mac(1), Hdr::Untagged, 46),
        )
        .expect("inject");
    }
    sw.run();
    let c = sw.pipeline().counters(pid(1));
    assert_eq!(c.tx_packets, 10);
    assert_eq!(c.drops(DropReason::TxRingFull), 15);
}

#[test]
fn port_down_and_removal_flush_fdb() {
    let mut sw = matrix_switch();
    sw.inject(
        pid(1),
        &frame(MacAddr::BROADCAST, mac(5), Hdr::Untagged, 46),
    )
    .expect("inject");
    sw.run();
    assert_eq!(sw.pipeline().fdb().len(), 1);
    let mut b = crate::topology::TopologyBuilder::from_topology(sw.topology());
    let mut c = sw.topology().port(pid(1)).expect("p1").clone();
    c.up = false;
    b.set_port(1, c).expect("set");
    sw.set_topology(b.build());
    assert_eq!(
        sw.pipeline().fdb().len(),
        0,
        "port down flushes its entries"
    );
    // Frames to the down port flood elsewhere, never to it.
    sw.inject(pid(0), &frame(mac(5), mac(6), Hdr::Untagged, 46))
        .expect("inject");
    sw.inject(pid(1), &frame(mac(6), mac(5), Hdr::Untagged, 46))
        .expect("inject");
    sw.run();
    assert!(sw.take_tx(pid(1)).is_empty());
    assert_eq!(
        sw.pipeline().counters(pid(1)).drops(DropReason::PortDown),
        1
    );
}

/// Ports 1 and (if `with_p3`) 3, access 10.
fn two_ports(with_p3: bool) -> Topology {
    let mut b = Topology::builder();
    for i in [1, 3].into_iter().filter(|&i| i == 1 || with_p3) {
        let c = PortConfig::new(format!("p{i}"), "access 10".parse().expect("vlan"));
        b.add_port(i, c).expect("port");
    }
    b.build()
}

#[test]
fn updates_for_a_removed_port_do_not_land_on_its_successor() {
    let (t1, t2, t3) = (two_ports(true), two_ports(false), two_ports(true));
    let mut a = Pipeline::new(FdbConfig::default());
    let mut c = Pipeline::new(FdbConfig::default());
    // Worker A learns mac(5) on port 3 before it hears of the port's removal.
    let f = frame(MacAddr::BROADCAST, mac(5), Hdr::Untagged, 46);
    a.process(&t1, pid(3), &[&f], &[], 0);
    let late = a.updates()[0];
    // Worker C removed port 3 and gave its id to a new port before A's update arrives.
    c.apply_topology_change(&t1, &t2);
    c.apply_topology_change(&t2, &t3);
    assert_eq!(c.apply_update(&t3, late), Learn::Stale);
    assert_eq!(
        c.fdb().lookup(10, mac(5), 0),
        None,
        "nothing behind the new port 3"
    );
    // Learning on the new port (A past the same changes) reaches C.
    a.apply_topology_change(&t1, &t2);
    a.apply_topology_change(&t2, &t3);
    a.process(&t3, pid(3), &[&f], &[], 1);
    assert_eq!(c.apply_update(&t3, a.updates()[0]), Learn::Learned);
    assert_eq!(c.fdb().lookup(10, mac(5), 1), Some(pid(3)));
    // A port not in the receiver's topology takes nothing either.
    assert_eq!(c.apply_update(&t2, a.updates()[0]), Learn::Stale);
}

/// Bursts of 1, B-1, B, B+1 and 257 frames x sizes (64/512/1518/1522 with FCS, so
/// 60/508/1514 untagged and 1518 tagged on a wire without FCS), push and pop directions:
/// every frame delivered exactly once, in order, with the right tag; no leaks.
#[test]
fn bursts_deliver_each_frame_once_with_the_right_tag() {
    const B: usize = 32;
    for count in [1, B - 1, B, B + 1, 257] {
        for untagged_len in [60usize, 508, 1514] {
            let mut b = Topology::builder();
            b.add_port(
                0,
                PortConfig::new("vm", "access 100".parse().expect("vlan")),
            )
            .expect("p");
            b.add_port(
                1,
                PortConfig::new("vm2", "access 100".parse().expect("vlan")),
            )
            .expect("p");
            b.add_port(
                2,
                PortConfig::new("up", "trunk 100,200".parse().expect("vlan")),
            )
            .expect("p");
            b.add_port(
                3,
                PortConfig::new("other", "access 200".parse().expect("vlan")),
            )
            .expect("p");
            let mut sw =
                MemSwitch::new(b.build(), FdbConfig::default(), MemPortConfig::default(), B);
            // Learn both ends.
            sw.inject(
                pid(0),
                &frame(MacAddr::BROADCAST, mac(1), Hdr::Untagged, 46),
            )
            .expect("inject");
            sw.inject(
                pid(2),
                &frame(MacAddr::BROADCAST, mac(2), Hdr::Tag(0, 100), 46),
            )
            .expect("inject");
            sw.run();
            for p in 0..4 {
                sw.take_tx(pid(p));
            }
            let payload = untagged_len - 14;
            let mut sent_push = Vec::new();
            let mut sent_pop = Vec::new();
            for seq in 0..count {
                let mut f = frame(mac(2), mac(1), Hdr::Untagged, payload);
                f[14..18].copy_from_slice(&(seq as u32).to_be_bytes());
                sw.inject(pid(0), &f).expect("inject push");
                sent_push.push(f);
                let mut g = frame(mac(1), mac(2), Hdr::Tag(5, 100), payload);
                g[18..22].copy_from_slice(&(seq as u32).to_be_bytes());
                sw.inject(pid(2), &g).expect("inject pop");
                sent_pop.push(g);
            }
            let tx_before = sw.pipeline().counters(pid(2)).tx_packets as usize;
            assert_eq!(sw.run(), 2 * count);
            let got_push = sw.take_tx(pid(2));
            let got_pop = sw.take_tx(pid(0));
            assert_eq!(
                got_push.len(),
                count,
                "push count={count} len={untagged_len}"
            );
            assert_eq!(got_pop.len(), count, "pop count={count} len={untagged_len}");
            for (g, s) in got_push.iter().zip(&sent_push) {
                assert_eq!(g.len(), s.len() + 4);
                let v = EthernetFrame::new_checked(&g[..]).expect("frame");
                assert_eq!(v.tag(), Some(Tci::new(0, false, 100)));
                assert_eq!(untag(g), *s);
            }
            for (g, s) in got_pop.iter().zip(&sent_pop) {
                assert_eq!(*g, untag(s));
            }
            assert!(sw.take_tx(pid(1)).is_empty(), "known unicast leaked to vm2");
            assert!(sw.take_tx(pid(3)).is_empty(), "leak into VLAN 200");
            let c = sw.pipeline().counters(pid(2));
            assert_eq!(c.tx_packets as usize - tx_before, count);
            assert_eq!(c.total_drops(), 0);
        }
    }
}

#[test]
fn storm_control_limits_floods_per_kind() {
    let mut b = Topology::builder();
    let mut noisy = PortConfig::new("noisy", "access 5".parse().expect("vlan"));
    noisy.storm.broadcast_pps = Some(10);
    noisy.storm.unknown_unicast_pps = Some(1000);
    b.add_port(0, noisy).expect("p");
    b.add_port(
        1,
        PortConfig::new("quiet", "access 5".parse().expect("vlan")),
    )
    .expect("p");
    let mut sw = MemSwitch::new(
        b.build(),
        FdbConfig::default(),
        MemPortConfig::default(),
        32,
    );
    sw.set_time_ns(5_000_000_000);
    for _ in 0..100 {
        sw.inject(
            pid(0),
            &frame(MacAddr::BROADCAST, mac(1), Hdr::Untagged, 46),
        )
        .expect("inject");
    }
    sw.run();
    assert_eq!(sw.take_tx(pid(1)).len(), 10, "one second's worth passes");
    let c = sw.pipeline().counters(pid(0));
    assert_eq!(c.drops(DropReason::StormControl), 90);
    // Half a second later: five more tokens.
    sw.set_time_ns(5_500_000_000);
    for _ in 0..20 {
        sw.inject(
            pid(0),
            &frame(MacAddr::BROADCAST, mac(1), Hdr::Untagged, 46),
        )
        .expect("inject");
    }
    // Unknown unicast has its own (larger) budget; multicast is unlimited.
    for _ in 0..20 {
        sw.inject(pid(0), &frame(mac(99), mac(1), Hdr::Untagged, 46))
            .expect("inject");
        sw.inject(
            pid(0),
            &frame(MacAddr([1, 0, 0x5e, 0, 0, 1]), mac(1), Hdr::Untagged, 46),
        )
        .expect("inject");
    }
    sw.run();
    assert_eq!(sw.take_tx(pid(1)).len(), 5 + 20 + 20);
    assert_eq!(
        sw.pipeline()
            .counters(pid(0))
            .drops(DropReason::StormControl),
        90 + 15
    );
    // Known unicast is never limited.
    sw.inject(pid(1), &frame(mac(1), mac(2), Hdr::Untagged, 46))
        .expect("inject");
    for _ in 0..50 {
        sw.inject(pid(0), &frame(mac(2), mac(1), Hdr::Untagged, 46))
            .expect("inject");
    }
    sw.run();
    assert_eq!(sw.take_tx(pid(1)).len(), 50);
}

/// A port whose buffers hold `room` bytes: longer frames are skipped (`too_big`).
struct SmallBuffers {
    room: usize,
    sent: Vec<usize>,
}

impl TxPorts for SmallBuffers {
    fn tx_burst(
        &mut self,
        _port: PortId,
        frames: &[&[u8]],
        _offloads: &[crate::offload::Offload],
        items: &[TxItem],
    ) -> TxDone {
        let mut done = TxDone::default();
        for it in items {
            let len = frames[usize::from(it.frame)].len();
            if len > self.room {
                done.too_big += 1;
            } else {
                self.sent.push(len);
                done.sent += 1;
                done.bytes += len as u64;
            }
        }
        done
    }
}

#[test]
fn frames_a_port_cannot_hold_are_mtu_exceeded_and_the_rest_still_go() {
    let mut b = Topology::builder();
    let mut big = PortConfig::new("out", "access 7".parse().expect("vlan"));
    big.mtu = 9000;
    b.add_port(0, PortConfig::new("in", "access 7".parse().expect("vlan")))
        .expect("p");
    b.add_port(1, big).expect("p");
    let topo = b.build();
    let mut p = Pipeline::new(FdbConfig::default());
    let frames: Vec<Vec<u8>> = [46, 500, 46, 600, 46]
        .iter()
        .map(|&n| frame(MacAddr::BROADCAST, mac(1), Hdr::Untagged, n))
        .collect();
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    p.process(&topo, pid(0), &refs, &[], 0);
    let mut tx = SmallBuffers {
        room: 200,
        sent: Vec::new(),
    };
    p.flush(&refs, &[], &mut tx);
    assert_eq!(tx.sent, vec![60, 60, 60]);
    let c = p.counters(pid(1));
    assert_eq!(c.tx_packets, 3);
    assert_eq!(c.drops(DropReason::MtuExceeded), 2);
    assert_eq!(c.drops(DropReason::TxRingFull), 0);
}
