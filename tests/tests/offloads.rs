//! Offloads end to end: hosts send TCP with the kernel's default offloads (TX checksum
//! offload and TSO on, as pods and VMs do), and the receiving host's capture shows what
//! the switch did with the superframes and partial checksums.
//!
//! - Tap to tap: superframes pass through (the receiving tap's kernel side captures TCP
//!   frames longer than the MTU, and the switch sent it fewer frames than the wire segments
//!   the data would take); the bytes arrive intact. With 2 workers the lanes carry them.
//! - `packet` ports (AF_PACKET with `PACKET_VNET_HDR` on veth host ends): the same through
//!   access ports, and across a trunk between two switches, where the capture on the trunk
//!   shows superframes tagged with the VLAN.
//! - Tap to AF_XDP: the switch cuts superframes into wire segments. The AF_XDP port's
//!   receiver accepts them (transfer intact), and its capture shows, for every data
//!   segment: frame no longer than the MTU allows (and the largest exactly that: segments
//!   fill the MTU), IPv4 header checksum and TCP checksum correct, payload equal to the
//!   bytes sent at that sequence number, no gaps. Untagged (AF_XDP access port) and tagged
//!   (AF_XDP trunk port toward a second switch, captured on the trunk), IPv4 and IPv6.
//!
//! Not covered here: bad offload metadata from a real peer. The kernel refuses to send
//! what the switch would count `bad_offload` (measured through AF_PACKET with
//! `PACKET_VNET_HDR` on a veth: an unknown GSO type, GSO without a partial checksum and
//! GSO size 0 fail with EINVAL at `sendto`; UFO is fragmented into plain IP fragments
//! before the peer sees it), and a tap's kernel side never writes such headers. The parser
//! tests in `datapath::offload` cover those headers.
//!
//! The only hosts with TX checksum offload off are the ones behind AF_XDP ports (their
//! partial checksums would reach the other side unfinished) and the trunk end whose peer
//! is an AF_XDP port, for the same reason.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use datapath::counters::DropReason;
use datapath::port::{TapConfig, TapPort};
use vswitch_tests::testutil::{Capture, VethPair};
use vswitch_tests::{
    outer_vlan, root_or_skip, run_ok, src_mac, tcp_pattern, tcp_transfer, Host, PortSpec, Switch,
    TapHost, TcpResult,
};

/// Every interface here keeps the default MTU.
const MTU: usize = 1500;
const ETH: usize = 14;
const TAG: usize = 4;
/// TCP payload bytes per wire segment at MTU 1500 with timestamps over IPv4 (the most any
/// wire segment carries; IPv6 carries 20 fewer).
const MSS_V4: u64 = 1448;
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(30);

fn v4(net: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 20, net, host)
}

fn v6(net: u8, host: u8) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x20, u16::from(net), 0, 0, 0, 0, u16::from(host))
}

/// Runs `f` while a thread per capture drains it, so no socket buffer fills and drops
/// frames; returns `f`'s result and, per capture, every frame it got until ~100 ms after
/// `f` ended.
fn capture_while<T>(caps: &[&Capture], f: impl FnOnce() -> T) -> (T, Vec<Vec<Vec<u8>>>) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let threads: Vec<_> = caps
            .iter()
            .map(|cap| {
                let stop = &stop;
                s.spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        match cap.recv() {
                            Some(fr) => got.push(fr),
                            None if stop.load(Ordering::Relaxed) => return got,
                            None => {}
                        }
                    }
                })
            })
            .collect();
        let out = f();
        stop.store(true, Ordering::Relaxed);
        let frames = threads
            .into_iter()
            .map(|t| t.join().expect("capture thread"))
            .collect();
        (out, frames)
    })
}

/// [`capture_while`] with one capture.
fn capture_one<T>(cap: &Capture, f: impl FnOnce() -> T) -> (T, Vec<Vec<u8>>) {
    let (out, mut frames) = capture_while(&[cap], f);
    (out, frames.pop().unwrap_or_default())
}

fn assert_intact(r: &TcpResult, bytes: u64, what: &str) {
    assert_eq!(r.received, bytes, "{what}: bytes received: {r:?}");
    assert_eq!(r.first_mismatch, None, "{what}: content: {r:?}");
}

// ---------------------------------------------------------------------------------------
// Frame parsing and checksums (independent of the datapath's own code).

/// One captured TCP frame, parsed.
#[derive(Debug)]
struct TcpFrame<'a> {
    /// Captured length of the whole frame.
    len: usize,
    vid: Option<u16>,
    /// The IP header and TCP segment as the IP length field bounds them (or to the end of
    /// the capture when the frame was longer than the capture buffer).
    ip: &'a [u8],
    v6: bool,
    /// Offset of the TCP header in `ip`.
    l4: usize,
    /// The IP length field says the packet ends beyond the captured bytes.
    cut: bool,
    seq: u32,
    flags: u8,
    payload: &'a [u8],
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn tcp_frame(f: &[u8]) -> Option<TcpFrame<'_>> {
    let (vid, l3) = match be16(f, 12)? {
        0x8100 => (Some(be16(f, 14)? & 0x0fff), ETH + TAG),
        _ => (None, ETH),
    };
    let et = be16(f, l3 - 2)?;
    let rest = f.get(l3..)?;
    let (v6, l4, ip_len) = match et {
        0x0800 => {
            let ihl = usize::from(rest.first()? & 0x0f) * 4;
            if *rest.get(9)? != 6 || ihl < 20 {
                return None;
            }
            (false, ihl, usize::from(be16(rest, 2)?))
        }
        0x86dd => {
            if *rest.get(6)? != 6 {
                return None;
            }
            (true, 40, 40 + usize::from(be16(rest, 4)?))
        }
        _ => return None,
    };
    let cut = ip_len > rest.len();
    let ip = &rest[..ip_len.min(rest.len())];
    let tcp = ip.get(l4..)?;
    let doff = usize::from(tcp.get(12)? >> 4) * 4;
    Some(TcpFrame {
        len: f.len(),
        vid,
        ip,
        v6,
        l4,
        cut,
        seq: u32::from_be_bytes(tcp.get(4..8)?.try_into().ok()?),
        flags: *tcp.get(13)?,
        payload: tcp.get(doff..)?,
    })
}

fn sum16(b: &[u8]) -> u64 {
    let mut s: u64 = b
        .chunks_exact(2)
        .map(|c| u64::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    if b.len() % 2 == 1 {
        s += u64::from(b[b.len() - 1]) << 8;
    }
    s
}

fn fold(mut s: u64) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

impl TcpFrame<'_> {
    /// IPv4: the header checksum verifies (IPv6 has none).
    fn ip_csum_ok(&self) -> bool {
        self.v6 || fold(sum16(&self.ip[..self.l4])) == 0xffff
    }
    /// The TCP checksum verifies over the pseudo-header, header and payload.
    fn tcp_csum_ok(&self) -> bool {
        let seg = &self.ip[self.l4..];
        let addrs = if self.v6 {
            &self.ip[8..40]
        } else {
            &self.ip[12..20]
        };
        fold(sum16(addrs) + 6 + seg.len() as u64 + sum16(seg)) == 0xffff
    }
}

/// TCP frames among `frames` sent by `mac`, parsed.
fn tcp_from(frames: &[Vec<u8>], mac: [u8; 6]) -> Vec<TcpFrame<'_>> {
    frames
        .iter()
        .filter(|f| src_mac(f) == Some(mac))
        .filter_map(|f| tcp_frame(f))
        .collect()
}

/// What a capture on the receiving side says about one TCP flow's data.
#[derive(Debug, Default)]
struct FlowCheck {
    /// Data segments (payload not empty).
    segments: usize,
    longest: usize,
    /// Bytes of the stream `0..bytes` some captured segment carried.
    covered: u64,
    /// A segment started beyond every byte seen before it (bytes missing in between).
    gaps: usize,
    /// A segment started before the end of what was seen (a retransmission).
    repeats: usize,
    /// Problems found, the first few described.
    problems: usize,
    described: Vec<String>,
}

impl FlowCheck {
    fn problem(&mut self, what: String) {
        self.problems += 1;
        if self.described.len() < 8 {
            self.described.push(what);
        }
    }
}

/// Checks every TCP frame from `mac` in `frames` (capture order) as a wire frame of a flow
/// carrying [`tcp_pattern`] bytes `0..bytes`: its length at most `max_len`, its VLAN
/// `vid`, checksums correct, the payload equal to the pattern at its sequence number.
fn check_flow(
    frames: &[Vec<u8>],
    mac: [u8; 6],
    bytes: u64,
    max_len: usize,
    vid: Option<u16>,
) -> FlowCheck {
    let segs = tcp_from(frames, mac);
    let mut c = FlowCheck::default();
    let Some(syn) = segs
        .iter()
        .find(|s| s.flags & SYN != 0 && s.flags & ACK == 0)
    else {
        c.problem(format!(
            "no SYN from {mac:02x?} among {} TCP frames",
            segs.len()
        ));
        return c;
    };
    let base = syn.seq.wrapping_add(1);
    let mut seen: Vec<(u64, u64)> = Vec::new();
    let mut next = 0u64;
    for (i, s) in segs.iter().enumerate() {
        if s.vid != vid {
            c.problem(format!("frame {i}: VLAN {:?}, expected {vid:?}", s.vid));
        }
        if s.len > max_len || s.cut {
            c.problem(format!(
                "frame {i}: {} bytes (IP length beyond the frame: {}), at most {max_len}",
                s.len, s.cut
            ));
            continue;
        }
        if !s.ip_csum_ok() {
            c.problem(format!("frame {i}: IPv4 header checksum wrong"));
        }
        if !s.tcp_csum_ok() {
            c.problem(format!(
                "frame {i}: TCP checksum wrong (seq {}, {} payload bytes)",
                s.seq,
                s.payload.len()
            ));
        }
        if s.payload.is_empty() {
            continue;
        }
        c.segments += 1;
        c.longest = c.longest.max(s.len);
        let off = u64::from(s.seq.wrapping_sub(base));
        let end = off + s.payload.len() as u64;
        if end > bytes {
            c.problem(format!(
                "frame {i}: stream bytes {off}..{end} beyond {bytes}"
            ));
            continue;
        }
        if let Some(k) = s
            .payload
            .iter()
            .enumerate()
            .position(|(k, b)| *b != tcp_pattern(off + k as u64))
        {
            c.problem(format!(
                "frame {i}: payload differs from the stream at byte {}",
                off + k as u64
            ));
        }
        match off.cmp(&next) {
            std::cmp::Ordering::Greater => c.gaps += 1,
            std::cmp::Ordering::Less => c.repeats += 1,
            std::cmp::Ordering::Equal => {}
        }
        next = next.max(end);
        seen.push((off, end));
    }
    seen.sort_unstable();
    let mut reach = 0u64;
    for (a, b) in seen {
        if b > reach {
            c.covered += b - a.max(reach);
            reach = b;
        }
    }
    c
}

/// Asserts that `check` describes a complete flow of `bytes` in correct wire segments whose
/// largest frame is exactly `max_len` (segments fill the MTU).
fn assert_wire_segments(check: &FlowCheck, bytes: u64, max_len: usize, what: &str) {
    assert_eq!(
        check.problems, 0,
        "{what}: {} bad frame(s): {:#?}",
        check.problems, check.described
    );
    assert_eq!(
        check.covered, bytes,
        "{what}: the captured segments carry the whole stream: {check:?}"
    );
    assert_eq!(
        check.gaps, 0,
        "{what}: segments follow each other without gaps: {check:?}"
    );
    assert_eq!(
        check.longest, max_len,
        "{what}: the largest segment fills the MTU: {check:?}"
    );
}

/// Asserts that `frames` hold TCP superframes from `mac` (longer than the MTU allows on a
/// wire: `wire_max`), all of VLAN `vid`; returns the longest TCP frame length.
fn assert_superframes(
    frames: &[Vec<u8>],
    mac: [u8; 6],
    wire_max: usize,
    vid: Option<u16>,
    what: &str,
) -> usize {
    let tcp = tcp_from(frames, mac);
    assert!(
        !tcp.is_empty(),
        "{what}: no TCP frame captured from the sender"
    );
    let bad_vid: Vec<_> = tcp.iter().filter(|t| t.vid != vid).collect();
    assert!(
        bad_vid.is_empty(),
        "{what}: {} TCP frame(s) not of VLAN {vid:?}, first {:?}",
        bad_vid.len(),
        bad_vid.first()
    );
    let longest = tcp.iter().map(|t| t.len).max().unwrap_or(0);
    let supers = tcp.iter().filter(|t| t.len > wire_max).count();
    assert!(
        supers > 0,
        "{what}: no superframe among {} TCP frames (longest {longest} bytes, wire frames \
         at most {wire_max})",
        tcp.len()
    );
    longest
}

/// Asserts that port `port` of `sw` sent at most a quarter as many frames as the wire
/// segments a transfer of `bytes` takes: superframes went out whole. (Measured here: about
/// 30 segments per frame; the kernel sizes superframes down only at low rates, and never
/// below 2 segments.)
fn assert_fewer_than_segments(sw: &Switch, port: &str, bytes: u64, what: &str) {
    let c = sw.counters(port);
    let segments = bytes.div_ceil(MSS_V4);
    assert!(
        c.tx_packets * 4 <= segments,
        "{what}: port {port} sent {} frames ({} bytes) for {bytes} bytes of TCP, which take \
         {segments} wire segments: superframes were cut or never formed",
        c.tx_packets,
        c.tx_bytes
    );
}

fn assert_no_offload_drops(sw: &Switch, ports: &[&str], what: &str) {
    for p in ports {
        let c = sw.counters(p);
        assert_eq!(
            c.drops(DropReason::BadOffload),
            0,
            "{what}: bad_offload drops on port {p}: {c:?}"
        );
        assert_eq!(
            c.drops(DropReason::MtuExceeded),
            0,
            "{what}: mtu_exceeded drops on port {p}: {c:?}"
        );
    }
}

/// A tap host whose tap the switch owns: the namespace (declare it before the switch)
/// and the port to hand to [`PortSpec::tap`].
fn tap_host(prefix: &str, ip: Ipv4Addr) -> (TapHost, TapPort) {
    let t = TapHost::new(prefix, ip);
    let port = TapPort::create(&TapConfig::new(t.ifname.clone())).expect("create tap port");
    t.attach();
    (t, port)
}

/// Control for [`check_flow`]: on a copy of good `frames`, one flipped payload byte, one
/// flipped checksum byte and one missing segment are each reported.
fn assert_checker_catches_damage(frames: &[Vec<u8>], mac: [u8; 6], bytes: u64) {
    let data: Vec<usize> = frames
        .iter()
        .enumerate()
        .filter(|(_, f)| src_mac(f) == Some(mac))
        .filter(|(_, f)| tcp_frame(f).is_some_and(|t| t.payload.len() > 100))
        .map(|(i, _)| i)
        .collect();
    let i = data[data.len() / 2];
    let mut flipped = frames.to_vec();
    let last = flipped[i].len() - 1;
    flipped[i][last] ^= 0x40;
    let c = check_flow(&flipped, mac, bytes, MTU + ETH + TAG, None);
    assert!(
        c.problems >= 1,
        "checker missed a flipped payload byte: {c:?}"
    );
    let mut flipped = frames.to_vec();
    // IPv4 TTL (the header checksum notices) or IPv6 source (the TCP checksum does).
    flipped[i][ETH + 8] ^= 0x01;
    let c = check_flow(&flipped, mac, bytes, MTU + ETH + TAG, None);
    assert!(
        c.problems >= 1,
        "checker missed a flipped header byte: {c:?}"
    );
    let mut missing = frames.to_vec();
    missing.remove(i);
    let c = check_flow(&missing, mac, bytes, MTU + ETH + TAG, None);
    assert!(
        c.gaps == 1 && c.covered < bytes,
        "checker missed a lost segment: {c:?}"
    );
}

// ---------------------------------------------------------------------------------------
// (a) Tap to tap: superframes pass through.

fn tap_to_tap(workers: usize, net: u8) {
    let (t1, p1) = tap_host("oa", v4(net, 1));
    let (t2, p2) = tap_host("ob", v4(net, 2));
    let sw = Switch::start(
        workers,
        vec![
            PortSpec::tap(p1, "access 100", 0),
            PortSpec::tap(p2, "access 100", 1),
        ],
    );
    let cap = t2.capture();
    let bytes = 8 << 20;
    let (r, frames) = capture_one(&cap, || {
        tcp_transfer(&t1.ns, &t2.ns, t2.ip, 5601, bytes, TRANSFER_TIMEOUT)
    });
    assert_intact(&r, bytes, "tap -> tap");
    assert_superframes(
        &frames,
        t1.mac,
        MTU + ETH,
        None,
        "tap -> tap, at the receiving tap",
    );
    assert_fewer_than_segments(&sw, &t2.ifname, bytes, "tap -> tap");
    assert_no_offload_drops(&sw, &[&t1.ifname, &t2.ifname], "tap -> tap");
    if workers == 2 {
        assert_crossed_workers(&sw, &t1.ifname, &t2.ifname);
    }
}

/// The two ports sit on different workers and superframes crossed the lanes between them.
fn assert_crossed_workers(sw: &Switch, p1: &str, p2: &str) {
    assert_ne!(sw.owner(p1), sw.owner(p2));
    assert!(sw.handoffs() > 0, "superframes crossed between the workers");
}

#[test]
fn tap_superframes_reach_a_tap_whole_1_worker() {
    if root_or_skip("tap_superframes_reach_a_tap_whole_1_worker") {
        tap_to_tap(1, 1);
    }
}

#[test]
fn tap_superframes_reach_a_tap_whole_2_workers() {
    if root_or_skip("tap_superframes_reach_a_tap_whole_2_workers") {
        tap_to_tap(2, 2);
    }
}

// ---------------------------------------------------------------------------------------
// (b) packet ports: access, and a trunk between two switches.

fn packet_access(workers: usize, net: u8) {
    let a = Host::with_offloads("pa", v4(net, 1));
    let b = Host::with_offloads("pb", v4(net, 2));
    let sw = Switch::start(
        workers,
        vec![
            PortSpec::packet(a.switch_if(), "access 100", 0),
            PortSpec::packet(b.switch_if(), "access 100", 1),
        ],
    );
    let bytes = 16 << 20;
    let cap_b = b.capture();
    let (r, frames) = capture_one(&cap_b, || {
        tcp_transfer(&a.ns, &b.ns, b.ip, 5602, bytes, TRANSFER_TIMEOUT)
    });
    assert_intact(&r, bytes, "a -> b over packet ports");
    assert_superframes(&frames, a.mac, MTU + ETH, None, "a -> b, at b");
    assert_fewer_than_segments(&sw, b.switch_if(), bytes, "a -> b");
    drop(cap_b);
    let r = tcp_transfer(&b.ns, &a.ns, a.ip, 5603, bytes, TRANSFER_TIMEOUT);
    assert_intact(&r, bytes, "b -> a over packet ports");
    assert_no_offload_drops(&sw, &[a.switch_if(), b.switch_if()], "packet access");
    if workers == 2 {
        assert_crossed_workers(&sw, a.switch_if(), b.switch_if());
    }
}

#[test]
fn packet_ports_carry_superframes_1_worker() {
    if root_or_skip("packet_ports_carry_superframes_1_worker") {
        packet_access(1, 11);
    }
}

#[test]
fn packet_ports_carry_superframes_2_workers() {
    if root_or_skip("packet_ports_carry_superframes_2_workers") {
        packet_access(2, 12);
    }
}

fn packet_trunk(workers: usize, net: u8) {
    let a = Host::with_offloads("ta", v4(net, 1));
    let b = Host::with_offloads("tb", v4(net, 2));
    let trunk = VethPair::new("tk");
    // With 2 workers the access port and the trunk sit on different workers on both sides.
    let sw_a = Switch::start(
        workers,
        vec![
            PortSpec::packet(a.switch_if(), "access 100", 0),
            PortSpec::packet(&trunk.a, "trunk 100,200", 1),
        ],
    );
    let sw_b = Switch::start(
        workers,
        vec![
            PortSpec::packet(&trunk.b, "trunk 100,200", 0),
            PortSpec::packet(b.switch_if(), "access 100", 1),
        ],
    );
    // B's end of the trunk receives what A sent (the tag re-inserted from auxdata).
    let cap = Capture::open(&trunk.b);
    let cap_b = b.capture();
    let bytes = 16 << 20;
    let (r, mut frames) = capture_while(&[&cap, &cap_b], || {
        tcp_transfer(&a.ns, &b.ns, b.ip, 5604, bytes, TRANSFER_TIMEOUT)
    });
    drop((cap, cap_b));
    let at_b = frames.pop().expect("frames at b");
    let on_trunk = frames.pop().expect("frames on the trunk");
    assert_intact(&r, bytes, "a -> b across the trunk");
    assert_superframes(
        &on_trunk,
        a.mac,
        MTU + ETH + TAG,
        Some(100),
        "a -> b, on the trunk",
    );
    // Every frame from a on the trunk carries VLAN 100, not only the TCP ones.
    let untagged = on_trunk
        .iter()
        .filter(|f| src_mac(f) == Some(a.mac))
        .filter(|f| outer_vlan(f) != (0x8100, Some(100)))
        .count();
    assert_eq!(untagged, 0, "frames from a on the trunk without VLAN 100");
    assert_superframes(&at_b, a.mac, MTU + ETH, None, "a -> b, at b (tag popped)");
    let r = tcp_transfer(&b.ns, &a.ns, a.ip, 5606, bytes, TRANSFER_TIMEOUT);
    assert_intact(&r, bytes, "b -> a across the trunk");
    assert_no_offload_drops(&sw_a, &[a.switch_if(), &trunk.a], "switch A");
    assert_no_offload_drops(&sw_b, &[&trunk.b, b.switch_if()], "switch B");
    if workers == 2 {
        assert!(
            sw_a.handoffs() > 0,
            "switch A moved superframes between workers"
        );
        assert!(
            sw_b.handoffs() > 0,
            "switch B moved superframes between workers"
        );
    }
}

#[test]
fn packet_trunk_between_two_switches_tcp_1_worker() {
    if root_or_skip("packet_trunk_between_two_switches_tcp_1_worker") {
        packet_trunk(1, 21);
    }
}

#[test]
fn packet_trunk_between_two_switches_tcp_2_workers() {
    if root_or_skip("packet_trunk_between_two_switches_tcp_2_workers") {
        packet_trunk(2, 22);
    }
}

// ---------------------------------------------------------------------------------------
// (c) Tap to AF_XDP: the switch segments superframes in software.

/// The addresses a TCP flow of the IP version under test uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ip {
    V4,
    V6,
}

impl Ip {
    /// Adds the IPv6 addresses (IPv6 runs) and returns the receiver's address.
    fn setup(self, net: u8, sender: &TapHost, receiver: &Host) -> IpAddr {
        match self {
            Ip::V4 => IpAddr::V4(receiver.ip),
            Ip::V6 => {
                sender.add_ipv6(v6(net, 1));
                receiver.add_ipv6(v6(net, 2));
                IpAddr::V6(v6(net, 2))
            }
        }
    }
}

/// Untagged: tap host -> switch -> AF_XDP access port -> host (TX checksum offload off:
/// it sends through an AF_XDP port). Its capture is checked segment by segment.
fn tap_to_afxdp_untagged(ip: Ip, net: u8) {
    let (t, tp) = tap_host("xa", v4(net, 1));
    let r = Host::for_afxdp("xb", v4(net, 2));
    let dst = ip.setup(net, &t, &r);
    let sw = Switch::start(
        1,
        vec![
            PortSpec::tap(tp, "access 100", 0),
            PortSpec::afxdp(r.switch_if(), "access 100", 0),
        ],
    );
    let cap = r.capture();
    let bytes = 4 << 20;
    let (res, frames) = capture_one(&cap, || {
        tcp_transfer(&t.ns, &r.ns, dst, 5611, bytes, TRANSFER_TIMEOUT)
    });
    let what = format!("tap -> AF_XDP, {ip:?}, untagged");
    assert_intact(&res, bytes, &what);
    let check = check_flow(&frames, t.mac, bytes, MTU + ETH, None);
    assert_wire_segments(&check, bytes, MTU + ETH, &what);
    assert_checker_catches_damage(&frames, t.mac, bytes);
    let from_tap = sw.counters(&t.ifname);
    assert!(
        from_tap.rx_packets < check.segments as u64,
        "{what}: the switch received superframes ({} frames from the tap) and sent {} wire \
         segments",
        from_tap.rx_packets,
        check.segments
    );
    assert_no_offload_drops(&sw, &[&t.ifname, r.switch_if()], &what);
}

/// Tagged: tap host -> switch A -> AF_XDP trunk port (VLAN 100) -> veth -> switch B's
/// `packet` trunk port -> access port -> host with default offloads. The capture on B's end
/// of the trunk (an ordinary veth: B's port is a packet socket) shows exactly the tagged
/// segments A put on the wire. B's end keeps TX checksum offload off: its peer is an AF_XDP
/// port. Two workers on A: superframes cross a lane to the AF_XDP port's worker.
fn tap_to_afxdp_tagged(ip: Ip, net: u8) {
    let (t, tp) = tap_host("ya", v4(net, 1));
    let r = Host::with_offloads("yb", v4(net, 2));
    let trunk = VethPair::new("yk");
    run_ok("ethtool", &["-K", &trunk.b, "tx", "off"]);
    let dst = ip.setup(net, &t, &r);
    let sw_a = Switch::start(
        2,
        vec![
            PortSpec::tap(tp, "access 100", 0),
            PortSpec::afxdp(&trunk.a, "trunk 100", 1),
        ],
    );
    let sw_b = Switch::start(
        1,
        vec![
            PortSpec::packet(&trunk.b, "trunk 100", 0),
            PortSpec::packet(r.switch_if(), "access 100", 0),
        ],
    );
    assert_ne!(sw_a.owner(&t.ifname), sw_a.owner(&trunk.a));
    let cap = Capture::open(&trunk.b);
    let bytes = 4 << 20;
    let (res, frames) = capture_one(&cap, || {
        tcp_transfer(&t.ns, &r.ns, dst, 5612, bytes, TRANSFER_TIMEOUT)
    });
    let what = format!("tap -> AF_XDP trunk, {ip:?}, VLAN 100");
    assert_intact(&res, bytes, &what);
    let check = check_flow(&frames, t.mac, bytes, MTU + ETH + TAG, Some(100));
    assert_wire_segments(&check, bytes, MTU + ETH + TAG, &what);
    let from_tap = sw_a.counters(&t.ifname);
    assert!(
        from_tap.rx_packets < check.segments as u64,
        "{what}: the switch received superframes ({} frames from the tap) and sent {} wire \
         segments",
        from_tap.rx_packets,
        check.segments
    );
    assert!(sw_a.handoffs() > 0, "{what}: superframes crossed a lane");
    assert_no_offload_drops(&sw_a, &[&t.ifname, &trunk.a], &what);
    assert_no_offload_drops(&sw_b, &[&trunk.b, r.switch_if()], &what);
}

#[test]
fn tap_to_afxdp_segments_ipv4_untagged() {
    if root_or_skip("tap_to_afxdp_segments_ipv4_untagged") {
        tap_to_afxdp_untagged(Ip::V4, 31);
    }
}

#[test]
fn tap_to_afxdp_segments_ipv6_untagged() {
    if root_or_skip("tap_to_afxdp_segments_ipv6_untagged") {
        tap_to_afxdp_untagged(Ip::V6, 32);
    }
}

#[test]
fn tap_to_afxdp_segments_ipv4_tagged() {
    if root_or_skip("tap_to_afxdp_segments_ipv4_tagged") {
        tap_to_afxdp_tagged(Ip::V4, 33);
    }
}

#[test]
fn tap_to_afxdp_segments_ipv6_tagged() {
    if root_or_skip("tap_to_afxdp_segments_ipv6_tagged") {
        tap_to_afxdp_tagged(Ip::V6, 34);
    }
}
