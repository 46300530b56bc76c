//! VLAN acceptance scenarios (kernel bridge selftests / OVS testsuite style) run against
//! vswitchd configured only through vswitchctl, hosts in network namespaces behind AF_XDP
//! veth ports. Verdicts: exactly which frames each receiving namespace captured (byte for
//! byte, outer tag re-inserted from PACKET_AUXDATA) and exact `port stats --json`
//! counters. The rules are those of `vlan-semantics.md`:
//!
//! 1. `vlan_matrix`: access 10, access 20, trunk 10,20, trunk 10,20 native 10 (untagged),
//!    trunk 10,20 native 10 tagged; each sends an untagged, a VID 10 and a VID 20 broadcast;
//!    every receiver gets exactly the frames of its VLANs with its egress tagging, and the
//!    ingress drops are counted by reason;
//! 2. `other_tpid_and_priority_tags`: 0x88a8/0x9100 frames on an access port are untagged
//!    payload of the access VLAN (kept byte for byte); priority-tagged (VID 0) frames join
//!    the access VLAN and keep their PCP when a trunk tags them;
//! 3. `double_tags`: on an access port an outer VID != 0 is dropped (no hopping into the
//!    inner VLAN); on a trunk the outer tag selects the VLAN and the inner tag is payload;
//! 4. `bursts`: access 100 <-> trunk 100 at MTU 9000, bursts of 1/31/32/33/257 frames of
//!    64/512/1514/9014 bytes (+4 tagged; sizes without FCS) both ways: each frame exactly
//!    once, in order, byte for byte, tag pushed/popped.
//!
//! Each runs with 1 and 2 workers (ports added round-robin, so with 2 workers a frame's
//! ingress and egress ports are on different workers where the scenario has two ports).
//! Frames are sent raw through the AF_PACKET socket of the sending host's capture (the
//! socket does not capture its own transmissions); hosts have IPv6 off and send nothing by
//! themselves, and have TX VLAN offload off.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use vswitch_tests::daemon::{config, wait_until, Daemon, PortStats};
use vswitch_tests::per_workers;
use vswitch_tests::testutil::{tagged, Capture, TEST_ETHERTYPE};
use vswitch_tests::{eth_frame, ns_run_ok, src_mac, Host, Watchdog};

const BR: &str = "br0";
const BCAST: [u8; 6] = [0xff; 6];

fn ip(net: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 83, net, host)
}

// ---------------------------------------------------------------------------------------
// Frame helpers.

/// Sequence number of a test frame behind any number of 0x8100/0x88a8/0x9100 tags.
fn frame_seq(f: &[u8]) -> Option<u32> {
    let mut off = 12;
    loop {
        let et = u16::from_be_bytes([*f.get(off)?, *f.get(off + 1)?]);
        match et {
            0x8100 | 0x88a8 | 0x9100 => off += 4,
            TEST_ETHERTYPE => {
                return Some(u32::from_be_bytes(
                    f.get(off + 2..off + 6)?.try_into().ok()?,
                ))
            }
            _ => return None,
        }
    }
}

/// Outer 802.1Q TCI (TPID 0x8100 only), `None` for anything else.
fn outer_tci(f: &[u8]) -> Option<u16> {
    (f.get(12..14)? == [0x81, 0x00]).then(|| u16::from_be_bytes([f[14], f[15]]))
}

/// `f` with its outer TPID replaced by `tpid` (f must carry a tag).
fn with_tpid(mut f: Vec<u8>, tpid: u16) -> Vec<u8> {
    f[12..14].copy_from_slice(&tpid.to_be_bytes());
    f
}

/// `f` with the PCP of its outer tag set to `pcp`.
fn with_pcp(mut f: Vec<u8>, pcp: u8) -> Vec<u8> {
    f[14] = (f[14] & 0x1f) | (pcp << 5);
    f
}

/// Short description of a frame: seq and the outer tag as the capture saw it.
fn describe(f: &[u8]) -> String {
    let seq = frame_seq(f).map_or("?".into(), |s| s.to_string());
    match outer_tci(f) {
        Some(t) => format!("#{seq} vid {} pcp {} len {}", t & 0xfff, t >> 13, f.len()),
        None => format!(
            "#{seq} untagged (ethertype {:02x}{:02x}) len {}",
            f[12],
            f[13],
            f.len()
        ),
    }
}

/// Test frames from one of `srcs` with a sequence number in `range` captured by `cap`:
/// waits for `want` of them (up to 3 s), then keeps receiving until 100 ms pass without a
/// frame.
fn collect(
    cap: &Capture,
    srcs: &[[u8; 6]],
    want: usize,
    range: std::ops::Range<u32>,
) -> Vec<Vec<u8>> {
    let keep = |f: &Vec<u8>| {
        src_mac(f).is_some_and(|m| srcs.contains(&m))
            && frame_seq(f).is_some_and(|s| range.contains(&s))
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        if let Some(f) = cap.recv() {
            if keep(&f) {
                got.push(f);
            }
        }
    }
    let quiet_deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < quiet_deadline {
        match cap.recv() {
            Some(f) if keep(&f) => got.push(f),
            Some(_) => {}
            None => break,
        }
    }
    got
}

/// Every test frame (any source) captured until 100 ms pass without a frame.
fn drain_test_frames(cap: &Capture) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while Instant::now() < deadline {
        match cap.recv() {
            Some(f) if frame_seq(&f).is_some() => got.push(f),
            Some(_) => {}
            None => break,
        }
    }
    got
}

/// Asserts that `got` holds exactly the frames of `want` (each once, any order across
/// senders), byte for byte.
fn assert_frames(what: &str, mut got: Vec<Vec<u8>>, mut want: Vec<Vec<u8>>) {
    got.sort_by_key(|f| frame_seq(f));
    want.sort_by_key(|f| frame_seq(f));
    let g: Vec<String> = got.iter().map(|f| describe(f)).collect();
    let w: Vec<String> = want.iter().map(|f| describe(f)).collect();
    assert_eq!(g, w, "{what}: frames captured (left) vs expected (right)");
    for (g, w) in got.iter().zip(&want) {
        assert!(
            g == w,
            "{what}: frame {} differs from the expected bytes:\n got  {g:02x?}\n want {w:02x?}",
            describe(w)
        );
    }
}

// ---------------------------------------------------------------------------------------
// The rules of vlan-semantics.md as a small model (tags: TPID 0x8100 only).

#[derive(Debug, Clone, Copy)]
enum Mode {
    Access(u16),
    /// allowed VLANs, native VLAN, native leaves tagged
    Trunk(&'static [u16], Option<u16>, bool),
}

impl Mode {
    fn opts(self) -> Vec<String> {
        match self {
            Mode::Access(v) => vec!["--access".into(), v.to_string()],
            Mode::Trunk(allowed, native, tagged) => {
                let list: Vec<String> = allowed.iter().map(u16::to_string).collect();
                let mut o = vec!["--trunk".into(), list.join(",")];
                if let Some(n) = native {
                    o.extend(["--native".into(), n.to_string()]);
                }
                if tagged {
                    o.push("--tagged".into());
                }
                o
            }
        }
    }

    /// Classification of a received frame: (VLAN, PCP, frame without the outer 802.1Q
    /// tag), or the drop reason.
    fn ingress(self, f: &[u8]) -> Result<(u16, u8, Vec<u8>), &'static str> {
        let (vid, pcp, inner) = match outer_tci(f) {
            Some(tci) => {
                let mut inner = f[..12].to_vec();
                inner.extend_from_slice(&f[16..]);
                (tci & 0xfff, (tci >> 13) as u8, inner)
            }
            None => (0, 0, f.to_vec()),
        };
        let priority_or_untagged = vid == 0;
        match self {
            Mode::Access(v) if priority_or_untagged => Ok((v, pcp, inner)),
            Mode::Access(_) => Err("tagged_on_access"),
            Mode::Trunk(_, Some(n), _) if priority_or_untagged => Ok((n, pcp, inner)),
            Mode::Trunk(_, None, _) if priority_or_untagged => Err("untagged_on_trunk"),
            Mode::Trunk(allowed, _, _) if allowed.contains(&vid) => Ok((vid, pcp, inner)),
            Mode::Trunk(..) => Err("vlan_not_allowed"),
        }
    }

    /// The frame this port transmits for a frame of `vlan` (`inner` untagged), if any.
    fn egress(self, vlan: u16, pcp: u8, inner: &[u8]) -> Option<Vec<u8>> {
        let tag = || tagged(inner, (u16::from(pcp) << 13) | vlan);
        match self {
            Mode::Access(v) => (v == vlan).then(|| inner.to_vec()),
            Mode::Trunk(_, Some(n), false) if n == vlan => Some(inner.to_vec()),
            Mode::Trunk(allowed, native, _) => {
                (allowed.contains(&vlan) || native == Some(vlan)).then(tag)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Lab: quiet hosts on one bridge.

struct Lab {
    hosts: Vec<(&'static str, Mode, Host, Capture)>,
    dmn: Daemon,
    _wd: Watchdog,
}

impl Lab {
    /// Ports are added in order (round-robin over the workers); each host's interface gets
    /// MTU `mtu` and the switch port `--mtu mtu` when `mtu` is given.
    fn new(
        workers: usize,
        net: u8,
        ports: &[(&'static str, Mode)],
        mtu: Option<u32>,
        what: &'static str,
    ) -> Lab {
        let hosts: Vec<(&'static str, Mode, Host)> = ports
            .iter()
            .enumerate()
            .map(|(i, (name, mode))| {
                (
                    *name,
                    *mode,
                    Host::with_offloads("vl", ip(net, i as u8 + 1)),
                )
            })
            .collect();
        for (_, _, h) in &hosts {
            // Tags the test sends are in the frame bytes; keep the kernel from moving any
            // tag into metadata the AF_XDP port would not see.
            ns_run_ok(&h.ns, "ethtool", &["-K", &h.ifname, "txvlan", "off"]);
            if let Some(m) = mtu {
                h.set_mtu(m);
            }
        }
        let dmn = Daemon::start(&config(workers, 4096));
        let wd = Watchdog::new(Duration::from_secs(60), what, dmn.pid());
        dmn.add_br(BR);
        let m = mtu.map(|m| m.to_string());
        for (name, mode, h) in &hosts {
            let mut opts = mode.opts();
            if let Some(m) = &m {
                opts.extend(["--mtu".into(), m.clone()]);
            }
            let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
            dmn.add_port(BR, name, h.switch_if(), &opts);
        }
        if workers == 2 && ports.len() >= 2 {
            assert_ne!(
                dmn.port_worker(BR, ports[0].0),
                dmn.port_worker(BR, ports[1].0),
                "the first two ports sit on different workers"
            );
        }
        let hosts = hosts
            .into_iter()
            .map(|(n, m, h)| {
                let c = h.capture();
                (n, m, h, c)
            })
            .collect();
        Lab {
            hosts,
            dmn,
            _wd: wd,
        }
    }
    fn entry(&self, name: &str) -> &(&'static str, Mode, Host, Capture) {
        self.hosts
            .iter()
            .find(|h| h.0 == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }
    fn mac(&self, name: &str) -> [u8; 6] {
        self.entry(name).2.mac
    }
    fn cap(&self, name: &str) -> &Capture {
        &self.entry(name).3
    }
    fn stats(&self) -> Vec<PortStats> {
        self.hosts
            .iter()
            .map(|h| self.dmn.port_stats(BR, h.0))
            .collect()
    }
    /// Sends `frames` from host `name` and waits until the switch counted them received.
    fn send(&self, name: &str, frames: &[Vec<u8>]) {
        vswitch_tests::lab::send_counted(&self.dmn, name, self.cap(name), frames);
    }

    /// Sends `sent` (per port) and checks, against the model: every host captured exactly
    /// the expected frames byte for byte, and each port's counters moved by exactly the
    /// expected amounts (rx, tx, each drop reason).
    fn run_and_check(&self, sent: &[(&str, Vec<Vec<u8>>)], range: std::ops::Range<u32>) {
        let before = self.stats();
        for (p, frames) in sent {
            self.send(p, frames);
        }
        let mut want: Vec<Vec<Vec<u8>>> = vec![Vec::new(); self.hosts.len()];
        let mut want_drops: Vec<std::collections::BTreeMap<String, u64>> =
            vec![Default::default(); self.hosts.len()];
        for (p, frames) in sent {
            let pi = self.hosts.iter().position(|h| h.0 == *p).expect("port");
            let mode = self.hosts[pi].1;
            for f in frames {
                match mode.ingress(f) {
                    Ok((vlan, pcp, inner)) => {
                        for (qi, q) in self.hosts.iter().enumerate() {
                            if qi != pi {
                                if let Some(out) = q.1.egress(vlan, pcp, &inner) {
                                    want[qi].push(out);
                                }
                            }
                        }
                    }
                    Err(reason) => *want_drops[pi].entry(reason.into()).or_default() += 1,
                }
            }
        }
        for (qi, (name, _, _, cap)) in self.hosts.iter().enumerate() {
            let srcs: Vec<[u8; 6]> = sent.iter().map(|(p, _)| self.mac(p)).collect();
            let got = collect(cap, &srcs, want[qi].len(), range.clone());
            assert_frames(&format!("at port {name}"), got, want[qi].clone());
        }
        let after = self.stats();
        for (i, (name, ..)) in self.hosts.iter().enumerate() {
            let (b, a) = (&before[i], &after[i]);
            let n_sent = sent
                .iter()
                .filter(|s| s.0 == *name)
                .map(|s| s.1.len() as u64)
                .sum::<u64>();
            assert_eq!(a.rx_packets - b.rx_packets, n_sent, "rx of {name}: {a:?}");
            assert_eq!(
                a.tx_packets - b.tx_packets,
                want[i].len() as u64,
                "tx of {name}: {a:?}"
            );
            let drops: std::collections::BTreeMap<String, u64> = a
                .drops
                .iter()
                .map(|(k, v)| (k.clone(), v - b.drop(k)))
                .filter(|(_, v)| *v > 0)
                .collect();
            assert_eq!(drops, want_drops[i], "drops by reason at {name}: {a:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 1. The VLAN matrix.

/// (sequence number, outer VID or `None` for untagged) of a delivered frame.
type SeqTag = (u32, Option<u16>);

const A10: Mode = Mode::Access(10);
const A20: Mode = Mode::Access(20);
const T1020: Mode = Mode::Trunk(&[10, 20], None, false);
const NU: Mode = Mode::Trunk(&[10, 20], Some(10), false);
const NT: Mode = Mode::Trunk(&[10, 20], Some(10), true);

fn vlan_matrix(workers: usize, net: u8) {
    let ports = [
        ("a10", A10),
        ("a20", A20),
        ("t", T1020),
        ("nu", NU),
        ("nt", NT),
    ];
    let l = Lab::new(workers, net, &ports, None, "VLAN matrix");
    // Port i sends seq 1000+10i (untagged), 1000+10i+1 (VID 10), 1000+10i+2 (VID 20).
    let sent: Vec<(&str, Vec<Vec<u8>>)> = ports
        .iter()
        .enumerate()
        .map(|(i, (p, _))| {
            let base = 1000 + 10 * i as u32;
            let src = l.mac(p);
            (
                *p,
                vec![
                    eth_frame(BCAST, src, &[], base, 64),
                    eth_frame(BCAST, src, &[10], base + 1, 68),
                    eth_frame(BCAST, src, &[20], base + 2, 68),
                ],
            )
        })
        .collect();
    // The model's expectations, spelled out (so the model itself is held to the spec):
    // (receiver, [(seq, outer VID or None)]).
    let u = None;
    let t10 = Some(10u16);
    let t20 = Some(20u16);
    let expect: [(&str, Vec<SeqTag>); 5] = [
        // VLAN 10 frames from t (VID 10), nu, nt (untagged + VID 10), untagged here.
        (
            "a10",
            vec![(1021, u), (1030, u), (1031, u), (1040, u), (1041, u)],
        ),
        // VLAN 20 frames from t, nu, nt.
        ("a20", vec![(1022, u), (1032, u), (1042, u)]),
        (
            "t",
            vec![
                (1000, t10),
                (1010, t20),
                (1030, t10),
                (1031, t10),
                (1032, t20),
                (1040, t10),
                (1041, t10),
                (1042, t20),
            ],
        ),
        (
            "nu",
            vec![
                (1000, u),
                (1010, t20),
                (1021, u),
                (1022, t20),
                (1040, u),
                (1041, u),
                (1042, t20),
            ],
        ),
        (
            "nt",
            vec![
                (1000, t10),
                (1010, t20),
                (1021, t10),
                (1022, t20),
                (1030, t10),
                (1031, t10),
                (1032, t20),
            ],
        ),
    ];
    for (q, rows) in &expect {
        let qm = ports.iter().find(|p| p.0 == *q).expect("receiver").1;
        let mut model: Vec<SeqTag> = Vec::new();
        for (p, frames) in &sent {
            let pm = ports.iter().find(|x| x.0 == *p).expect("sender").1;
            if p == q {
                continue;
            }
            for f in frames {
                if let Ok((v, pcp, inner)) = pm.ingress(f) {
                    if let Some(out) = qm.egress(v, pcp, &inner) {
                        model.push((
                            frame_seq(&out).expect("test frame"),
                            outer_tci(&out).map(|t| t & 0xfff),
                        ));
                    }
                }
            }
        }
        model.sort_unstable();
        assert_eq!(&model, rows, "model vs spelled-out expectation at {q}");
    }
    l.run_and_check(&sent, 1000..1100);
    // The same, as exact totals from the counters.
    let st = l.stats();
    let by = |n: &str| st.iter().find(|s| s.port == n).expect("port stats");
    assert_eq!(by("a10").drop("tagged_on_access"), 2, "{:?}", by("a10"));
    assert_eq!(by("a20").drop("tagged_on_access"), 2, "{:?}", by("a20"));
    assert_eq!(by("t").drop("untagged_on_trunk"), 1, "{:?}", by("t"));
    for p in ["a10", "a20", "t", "nu", "nt"] {
        assert_eq!(by(p).rx_packets, 3, "{:?}", by(p));
    }
    let tx: Vec<u64> = st.iter().map(|s| s.tx_packets).collect();
    assert_eq!(tx, vec![5, 3, 8, 7, 7], "tx a10 a20 t nu nt");
    let total_drops: Vec<u64> = st.iter().map(PortStats::total_drops).collect();
    assert_eq!(total_drops, vec![2, 2, 1, 0, 0], "drops a10 a20 t nu nt");
    let flooded: Vec<u64> = st.iter().map(|s| s.rx_flooded).collect();
    assert_eq!(flooded, vec![1, 1, 2, 3, 3], "rx_flooded a10 a20 t nu nt");
}
per_workers!(vlan_matrix, 1);

// ---------------------------------------------------------------------------------------
// 2. Other TPIDs and priority tags.

fn other_tpid_and_priority_tags(workers: usize, net: u8) {
    const A30: Mode = Mode::Access(30);
    const T30: Mode = Mode::Trunk(&[30, 40], None, false);
    let ports = [("a", A30), ("t", T30), ("b", A30), ("x", Mode::Access(40))];
    let l = Lab::new(workers, net, &ports, None, "other TPID / priority tags");
    let (a, t) = (l.mac("a"), l.mac("t"));
    let from_a = vec![
        // 2000: untagged (control).
        eth_frame(BCAST, a, &[], 2000, 64),
        // 2001: an 802.1ad S-tag VID 40 (x's VLAN): untagged payload of VLAN 30.
        with_tpid(eth_frame(BCAST, a, &[40], 2001, 68), 0x88a8),
        // 2002: 0x9100 "tag" VID 40 with PCP 6.
        with_pcp(with_tpid(eth_frame(BCAST, a, &[40], 2002, 68), 0x9100), 6),
        // 2003: priority tag, PCP 0; 2004: priority tag, PCP 5.
        eth_frame(BCAST, a, &[0], 2003, 68),
        with_pcp(eth_frame(BCAST, a, &[0], 2004, 68), 5),
        // 2005: 0x88a8 VID 30, PCP 7 (the access VID itself, still just payload).
        with_pcp(with_tpid(eth_frame(BCAST, a, &[30], 2005, 68), 0x88a8), 7),
    ];
    let from_t = vec![
        // 2010: VID 30 PCP 3: untagged at both access ports.
        with_pcp(eth_frame(BCAST, t, &[30], 2010, 68), 3),
        // 2011: 0x88a8 VID 30 only: untagged on a trunk without native VLAN.
        with_tpid(eth_frame(BCAST, t, &[30], 2011, 68), 0x88a8),
        // 2012: priority tag PCP 4: untagged_on_trunk as well.
        with_pcp(eth_frame(BCAST, t, &[0], 2012, 68), 4),
    ];
    // Spelled-out expectations for the rows the scenario is about.
    let at_t: Vec<Vec<u8>> = vec![
        tagged(&from_a[0], 30),
        tagged(&from_a[1], 30),
        tagged(&from_a[2], 30),
        tagged(&eth_frame(BCAST, a, &[], 2003, 64), 30),
        tagged(&eth_frame(BCAST, a, &[], 2004, 64), (5 << 13) | 30),
        tagged(&from_a[5], 30),
    ];
    let at_b: Vec<Vec<u8>> = vec![
        from_a[0].clone(),
        from_a[1].clone(),
        from_a[2].clone(),
        eth_frame(BCAST, a, &[], 2003, 64),
        eth_frame(BCAST, a, &[], 2004, 64),
        from_a[5].clone(),
    ];
    for (name, want) in [("t", &at_t), ("b", &at_b)] {
        let m = ports.iter().find(|p| p.0 == name).expect("receiver").1;
        let model: Vec<Vec<u8>> = from_a
            .iter()
            .map(|f| {
                let (v, pcp, inner) = A30.ingress(f).expect("accepted on a");
                m.egress(v, pcp, &inner).expect("delivered")
            })
            .collect();
        assert_eq!(&model, want, "model vs spelled-out expectation at {name}");
    }
    l.run_and_check(&[("a", from_a), ("t", from_t)], 2000..2100);
    let st = l.stats();
    let tx: Vec<u64> = st.iter().map(|s| s.tx_packets).collect();
    assert_eq!(tx, vec![1, 6, 7, 0], "tx a t b x");
    let drops: Vec<u64> = st.iter().map(PortStats::total_drops).collect();
    assert_eq!(drops, vec![0, 2, 0, 0], "drops a t b x");
    assert_eq!(st[1].drop("untagged_on_trunk"), 2, "{:?}", st[1]);
}
per_workers!(other_tpid_and_priority_tags, 2);

// ---------------------------------------------------------------------------------------
// 3. Double tags.

fn double_tags(workers: usize, net: u8) {
    let ports = [("a10", A10), ("t", T1020), ("b10", A10), ("a20", A20)];
    let l = Lab::new(workers, net, &ports, None, "double tags");
    let (a, t) = (l.mac("a10"), l.mac("t"));
    let from_a = vec![
        // 3000: outer 10 inner 20 -> tagged_on_access (even though 10 is a's VLAN).
        eth_frame(BCAST, a, &[10, 20], 3000, 72),
        // 3001: outer 20 inner 10 -> tagged_on_access (no hop into VLAN 20).
        eth_frame(BCAST, a, &[20, 10], 3001, 72),
        // 3002: outer priority tag, inner 20: VLAN 10, the inner tag is payload.
        eth_frame(BCAST, a, &[0, 20], 3002, 72),
        // 3003: untagged control.
        eth_frame(BCAST, a, &[], 3003, 64),
    ];
    let from_t = vec![
        // 3010: outer 10 inner 20 -> VLAN 10, delivered with the inner 20 tag intact.
        eth_frame(BCAST, t, &[10, 20], 3010, 72),
        // 3011: outer 20 inner 10 -> VLAN 20.
        eth_frame(BCAST, t, &[20, 10], 3011, 72),
        // 3012: outer 10 inner 10.
        eth_frame(BCAST, t, &[10, 10], 3012, 72),
    ];
    // Spelled out: b10 gets 3002 (priority tag stripped: inner 20 tag first), 3003, and
    // from t 3010 (inner 20), 3012 (inner 10); a20 gets only 3011 (inner 10 tag).
    let strip = |f: &[u8]| -> Vec<u8> {
        let mut g = f[..12].to_vec();
        g.extend_from_slice(&f[16..]);
        g
    };
    let want_a20 = vec![strip(&from_t[1])];
    assert_eq!(outer_tci(&want_a20[0]), Some(10));
    let want_b10 = vec![
        strip(&from_a[2]),
        from_a[3].clone(),
        strip(&from_t[0]),
        strip(&from_t[2]),
    ];
    assert_eq!(outer_tci(&want_b10[0]), Some(20));
    assert_eq!(outer_tci(&want_b10[2]), Some(20));
    let model = |q: Mode| -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (pm, frames) in [(A10, &from_a), (T1020, &from_t)] {
            for f in frames {
                if let Ok((v, pcp, inner)) = pm.ingress(f) {
                    out.extend(q.egress(v, pcp, &inner));
                }
            }
        }
        out
    };
    assert_eq!(model(A20), want_a20, "model vs expectation at a20");
    assert_eq!(model(A10), want_b10, "model vs expectation at b10");
    // Nothing a10 sent reaches VLAN 20: checked in run_and_check (a20 expects none of
    // 3000..3004) and again below.
    l.run_and_check(&[("a10", from_a), ("t", from_t)], 3000..3100);
    let st = l.stats();
    assert_eq!(st[0].drop("tagged_on_access"), 2, "{:?}", st[0]);
    let tx: Vec<u64> = st.iter().map(|s| s.tx_packets).collect();
    // a10: 3010, 3012; t: 3002, 3003; b10: 3002, 3003, 3010, 3012; a20: 3011.
    assert_eq!(tx, vec![2, 2, 4, 1], "tx a10 t b10 a20");
    assert!(
        drain_test_frames(l.cap("a20")).is_empty(),
        "late frames at the VLAN 20 host"
    );
}
per_workers!(double_tags, 3);

// ---------------------------------------------------------------------------------------
// 4. Bursts between access 100 and trunk 100 at MTU 9000.

const BURSTS: [usize; 5] = [1, 31, 32, 33, 257];
/// Untagged frame sizes (no FCS): minimum-ish, medium, 1500-byte MTU maximum, jumbo 9000.
const SIZES: [usize; 4] = [64, 512, 1514, 9014];

fn bursts(workers: usize, net: u8, sizes: &[usize]) {
    let ports = [
        ("a", Mode::Access(100)),
        ("t", Mode::Trunk(&[100], None, false)),
    ];
    let l = Lab::new(workers, net, &ports, Some(9000), "bursts");
    let (a, t) = (l.mac("a"), l.mac("t"));
    for &size in sizes {
        let si = SIZES
            .iter()
            .position(|s| *s == size)
            .expect("a size of SIZES");
        for (bi, &n) in BURSTS.iter().enumerate() {
            for (from, to) in [("a", "t"), ("t", "a")] {
                let dir = u32::from(from == "t");
                let base = 100_000 * (dir + 1) + 10_000 * si as u32 + 1_000 * bi as u32;
                let (src, dst) = if from == "a" { (a, t) } else { (t, a) };
                let frames: Vec<Vec<u8>> = (0..n as u32)
                    .map(|i| {
                        if from == "a" {
                            eth_frame(dst, src, &[], base + i, size)
                        } else {
                            eth_frame(dst, src, &[100], base + i, size + 4)
                        }
                    })
                    .collect();
                let want: Vec<Vec<u8>> = frames
                    .iter()
                    .map(|f| {
                        if from == "a" {
                            tagged(f, 100)
                        } else {
                            let mut g = f[..12].to_vec();
                            g.extend_from_slice(&f[16..]);
                            g
                        }
                    })
                    .collect();
                assert!(want
                    .iter()
                    .all(|f| f.len() == size + 4 * (1 - dir as usize)));
                let b_from = l.dmn.port_stats(BR, from);
                let b_to = l.dmn.port_stats(BR, to);
                let cap = l.cap(from);
                for f in &frames {
                    cap.send(f);
                }
                let what = format!("burst of {n} x {size} bytes {from} -> {to}");
                wait_until(Duration::from_secs(10), &what, || {
                    l.dmn.port_stats(BR, from).rx_packets >= b_from.rx_packets + n as u64
                });
                let got = collect(l.cap(to), &[src], n, base..base + n as u32);
                let got_seqs: Vec<u32> = got.iter().filter_map(|f| frame_seq(f)).collect();
                let want_seqs: Vec<u32> = (base..base + n as u32).collect();
                if got_seqs != want_seqs {
                    let a_from = l.dmn.port_stats(BR, from);
                    let a_to = l.dmn.port_stats(BR, to);
                    panic!(
                        "{what}: {} of {n} frames captured, in order exactly once: {}; \
                         missing {:?}; {from} {a_from:?} (before {b_from:?}), {to} {a_to:?} \
                         (before {b_to:?}); pmd show: {}",
                        got_seqs.len(),
                        got_seqs == want_seqs,
                        want_seqs
                            .iter()
                            .filter(|s| !got_seqs.contains(s))
                            .take(20)
                            .collect::<Vec<_>>(),
                        l.dmn.ctl_json(&["pmd", "show"])
                    );
                }
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        g == w,
                        "{what}: frame {} not byte for byte (got {} bytes, outer {:?}; want \
                         {} bytes, outer {:?})",
                        describe(w),
                        g.len(),
                        outer_tci(g),
                        w.len(),
                        outer_tci(w)
                    );
                }
                let a_from = l.dmn.port_stats(BR, from);
                let a_to = l.dmn.port_stats(BR, to);
                assert_eq!(a_from.rx_packets - b_from.rx_packets, n as u64, "{what}");
                assert_eq!(a_to.tx_packets - b_to.tx_packets, n as u64, "{what}");
                assert_eq!(
                    (a_from.total_drops(), a_to.total_drops()),
                    (b_from.total_drops(), b_to.total_drops()),
                    "{what}: drops {a_from:?} {a_to:?}"
                );
            }
        }
    }
    // No hairpin: neither host ever got one of its own frames back.
    for p in ["a", "t"] {
        let own: Vec<String> = drain_test_frames(l.cap(p))
            .iter()
            .filter(|f| src_mac(f) == Some(l.mac(p)))
            .map(|f| describe(f))
            .collect();
        assert!(own.is_empty(), "{p} got its own frames back: {own:?}");
    }
    let total: u64 = BURSTS.iter().sum::<usize>() as u64 * sizes.len() as u64;
    for p in ["a", "t"] {
        let s = l.dmn.port_stats(BR, p);
        assert_eq!((s.rx_packets, s.tx_packets), (total, total), "{p}: {s:?}");
        assert_eq!(s.total_drops(), 0, "{p}: {s:?}");
    }
}
mod bursts {
    use super::{bursts, SIZES};

    #[test]
    fn one_worker() {
        if !vswitch_tests::root_or_skip("one_worker") {
            return;
        }
        bursts(1, 4, &SIZES);
    }

    /// Ports `a` and `t` on different workers: every frame is handed over between them.
    #[test]
    fn two_workers() {
        if !vswitch_tests::root_or_skip("two_workers") {
            return;
        }
        bursts(2, 104, &SIZES[..3]);
    }

    /// The jumbo rows of `two_workers` (every frame handed over as a 3-descriptor chain;
    /// this found the transmit half's queue sized for one descriptor per frame).
    #[test]
    fn two_workers_jumbo() {
        if !vswitch_tests::root_or_skip("two_workers_jumbo") {
            return;
        }
        bursts(2, 154, &SIZES[3..]);
    }
}
