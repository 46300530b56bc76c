//! VLAN leakage sweep (the kernel bridge selftests' "no leakage" scenario), through a
//! vswitchd-run switch: frames with outer VIDs 0 1 2 5 10 20 50 100 200 500 1000 2000 4000
//! 4094, each as unknown unicast, multicast and broadcast, injected raw (AF_XDP) on a
//! `trunk all` port. Every receiving namespace must capture exactly the frames of the VLANs
//! its port carries, tagged as its mode says, and nothing else.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use vswitch_tests::daemon::{config, Daemon};
use vswitch_tests::inject::Injector;
use vswitch_tests::testutil::test_seq;
use vswitch_tests::{drain, eth_frame, outer_vlan, Host, Watchdog};

const BR: &str = "br0";
const VIDS: [u16; 14] = [
    0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 4000, 4094,
];
const KINDS: [(&str, [u8; 6]); 3] = [
    ("unknown unicast", [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]),
    ("multicast", [0x01, 0x00, 0x5e, 0x00, 0x00, 0x42]),
    ("broadcast", [0xff; 6]),
];

/// The tag a receiver must see for a frame of VLAN `vid`: `None` = not delivered,
/// `Some(None)` = untagged, `Some(Some(v))` = tagged v.
type Expect = fn(u16) -> Option<Option<u16>>;

fn access_100(v: u16) -> Option<Option<u16>> {
    (v == 100).then_some(None)
}
fn trunk_2_20_200_2000(v: u16) -> Option<Option<u16>> {
    [2, 20, 200, 2000].contains(&v).then_some(Some(v))
}
fn trunk_50_500_4094_native_1(v: u16) -> Option<Option<u16>> {
    match v {
        1 => Some(None),
        50 | 500 | 4094 => Some(Some(v)),
        _ => None,
    }
}

#[test]
fn no_leakage_across_vids_and_frame_kinds() {
    if !vswitch_tests::root_or_skip("no_leakage_across_vids_and_frame_kinds") {
        return;
    }
    let ip = |h| Ipv4Addr::new(10, 71, 0, h);
    let s = Host::with_offloads("ls", ip(1));
    let r1 = Host::with_offloads("l1", ip(2));
    let r2 = Host::with_offloads("l2", ip(3));
    let r3 = Host::with_offloads("l3", ip(4));
    let dmn = Daemon::start(&config(1, 4096));
    let _wd = Watchdog::new(Duration::from_secs(90), "vlan leakage sweep", dmn.pid());
    dmn.add_br(BR);
    dmn.add_port(BR, "s", s.switch_if(), &["--trunk", "all"]);
    dmn.add_port(BR, "r1", r1.switch_if(), &["--access", "100"]);
    dmn.add_port(BR, "r2", r2.switch_if(), &["--trunk", "2,20,200,2000"]);
    dmn.add_port(
        BR,
        "r3",
        r3.switch_if(),
        &["--trunk", "50,500,4094", "--native", "1"],
    );
    let receivers: [(&str, &Host, Expect); 3] = [
        ("r1 access 100", &r1, access_100),
        ("r2 trunk 2,20,200,2000", &r2, trunk_2_20_200_2000),
        (
            "r3 trunk 50,500,4094 native 1",
            &r3,
            trunk_50_500_4094_native_1,
        ),
    ];
    let caps: Vec<_> = receivers.iter().map(|(_, h, _)| h.capture()).collect();
    let mut inj = Injector::open(&s.ns, &s.ifname);
    // seq = 1000 * kind + index of the VID.
    let mut frames = Vec::new();
    let mut what = BTreeMap::new();
    for (k, (kind, dst)) in KINDS.iter().enumerate() {
        for (i, vid) in VIDS.iter().enumerate() {
            let seq = (1000 * k + i) as u32;
            frames.push(eth_frame(*dst, s.mac, &[*vid], seq, 64));
            what.insert(seq, (*kind, *vid));
        }
    }
    inj.send_all(&frames);
    for (cap, (name, _, expect)) in caps.iter().zip(receivers.iter()) {
        let want: usize = VIDS.iter().filter(|v| expect(**v).is_some()).count() * KINDS.len();
        let mut got = cap.collect_test_frames(want, Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(300));
        got.extend(drain(cap).into_iter().filter(|f| test_seq(f).is_some()));
        let mut seen: BTreeMap<u32, Option<u16>> = BTreeMap::new();
        for f in &got {
            let Some(seq) = test_seq(f) else { continue };
            let Some((kind, vid)) = what.get(&seq).copied() else {
                continue;
            };
            let tag = outer_vlan(f).1;
            assert!(
                seen.insert(seq, tag).is_none(),
                "{name}: {kind} of VLAN {vid} delivered twice"
            );
            match expect(vid) {
                None => panic!("{name}: LEAK: {kind} of VLAN {vid} delivered (tag {tag:?})"),
                Some(t) => assert_eq!(tag, t, "{name}: {kind} of VLAN {vid}: wrong tag"),
            }
        }
        for (seq, (kind, vid)) in &what {
            if expect(*vid).is_some() {
                assert!(
                    seen.contains_key(seq),
                    "{name}: {kind} of VLAN {vid} not delivered"
                );
            }
        }
        assert_eq!(seen.len(), want, "{name}: deliveries");
    }
    // The priority-tagged frames (VID 0) entered a trunk without a native VLAN: counted.
    let st = dmn.port_stats(BR, "s");
    assert_eq!(st.drop("untagged_on_trunk"), KINDS.len() as u64, "{st:?}");
    // VIDs nobody else carries (5, 10, 1000, 4000) had no egress.
    assert_eq!(st.drop("no_egress"), 4 * KINDS.len() as u64, "{st:?}");
}
