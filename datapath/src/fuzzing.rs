//! Fuzz entry points, shared by the cargo-fuzz targets (`datapath/fuzz/`) and the corpus
//! replay tests that `make test` runs. Each takes arbitrary bytes, must never panic, and
//! checks invariants of the code under test with `assert!` (a violated invariant is a
//! crash the fuzzer reports).

use crate::fdb::FdbConfig;
use crate::mem::{MemPortConfig, MemSwitch};
use crate::offload::{complete_csum, Offload, OffloadError, Segments, VNET_HDR_LEN};
use crate::pipeline::Verdict;
use crate::topology::{PortConfig, PortId, Topology};
use crate::vlan::{NativeEgress, PortVlan, Vid, VlanSet};
use crate::wire::{write_edited, Edit, EthernetFrame, L2Header, Tci, ETH_HDR_LEN};

/// The parser and the egress editor on one untrusted byte string.
pub fn parse(data: &[u8]) {
    let hdr = L2Header::parse(data);
    let view = EthernetFrame::new_checked(data);
    assert_eq!(hdr.is_ok(), view.is_ok());
    let Ok(view) = view else {
        return;
    };
    let Ok(hdr) = hdr else { return };
    assert!(hdr.len() <= data.len());
    assert_eq!(hdr.tag, view.tag());
    assert_eq!(hdr.dst_mac(), view.dst());
    assert_eq!(hdr.src_mac(), view.src());
    assert_eq!(view.payload().len(), data.len() - view.header_len());
    let _ = view.ethertype();
    let mut out = [0u8; 4096];
    let tci = Tci(u16::from_be_bytes([
        data.first().copied().unwrap_or(0),
        data.get(1).copied().unwrap_or(0),
    ]));
    for edit in [Edit::Keep, Edit::Push(tci), Edit::Pop, Edit::SetTci(tci)] {
        match write_edited(data, edit, &mut out) {
            Ok(n) => {
                assert_eq!(n, edit.output_len(data.len()));
                let w = EthernetFrame::new_checked(&out[..n]);
                match edit {
                    Edit::Push(t) => {
                        assert_eq!(w.map(|w| w.tag()), Ok(Some(t)));
                    }
                    Edit::SetTci(t) => assert_eq!(w.map(|w| w.tag()), Ok(Some(t))),
                    Edit::Keep => assert_eq!(&out[..n], data),
                    Edit::Pop => assert_eq!(&out[12..n], &data[16..]),
                }
            }
            Err(_) => {
                assert!(data.len() + 4 > out.len() || matches!(edit, Edit::Pop | Edit::SetTci(_)))
            }
        }
    }
}

/// A `virtio_net_hdr` (the first 10 bytes) and a frame (the rest) through the software
/// offloads an egress without them applies; see [`offload_frame`].
pub fn offload(data: &[u8]) {
    let Some((hdr, frame)) = data.split_first_chunk::<VNET_HDR_LEN>() else {
        return;
    };
    let Ok(o) = Offload::parse(hdr) else {
        return;
    };
    let tci = Tci(u16::from_be_bytes([hdr[2], hdr[3]]));
    offload_frame(frame, &o, tci);
}

/// [`complete_csum`] and [`Segments`] (for every VLAN edit, `tci` the one pushed or set) on
/// one frame with any offload. Checks that a completed checksum verifies against the
/// partial sum it replaced and only the field changed; that every segment fits
/// [`Segments::max_len`], a shorter buffer is refused, and there is no segment past
/// [`Segments::count`]; and that a written segment (with at most one tag) is a one-segment
/// superframe that segments to itself, so its lengths and checksums are consistent.
pub fn offload_frame(frame: &[u8], o: &Offload, tci: Tci) {
    let mut done = frame.to_vec();
    let completed = complete_csum(&mut done, o);
    let start = usize::from(o.csum_start);
    let at = start + usize::from(o.csum_offset);
    match (completed, frame.get(at..at + 2)) {
        (Ok(()), Some(&[hi, lo])) if o.needs_csum => {
            assert_eq!(done.get(..at), frame.get(..at), "only the field changes");
            assert_eq!(
                done.get(at + 2..),
                frame.get(at + 2..),
                "only the field changes"
            );
            // A field at an even offset from the start is one 16-bit word of the sum.
            if o.csum_offset % 2 == 0 {
                let covered = done.get(start..).unwrap_or_default();
                let partial = u16::from_be_bytes([hi, lo]);
                assert_eq!(ones_sum(covered, partial), 0xffff, "the checksum verifies");
            }
        }
        (Ok(()), _) => assert!(!o.needs_csum && done == frame),
        (Err(_), _) => assert_eq!(done, frame, "a refused frame is unchanged"),
    }

    let tagged = L2Header::parse(frame).is_ok_and(|h| h.tag.is_some());
    for edit in [Edit::Keep, Edit::Push(tci), Edit::Pop, Edit::SetTci(tci)] {
        let Ok(segs) = Segments::new(frame, edit, o) else {
            continue;
        };
        let count = segs.count();
        let max = segs.max_len();
        assert!(count >= 1);
        let mut out = vec![0u8; max];
        let mut again = vec![0u8; max];
        for i in 0..count {
            let n = segs.write(i, &mut out).expect("every segment fits max_len");
            assert!(n <= max);
            if tagged && matches!(edit, Edit::Push(_)) {
                continue; // two tags: not a frame Segments parses
            }
            let seg = out.get(..n).expect("n <= max");
            let one = Segments::new(seg, Edit::Keep, &o.after_edit(edit)).expect("segment parses");
            assert_eq!(one.count(), 1);
            assert_eq!(one.write(0, &mut again), Ok(n));
            assert_eq!(again.get(..n), Some(seg), "segment {i} segments to itself");
        }
        assert_eq!(
            segs.write(count, &mut out),
            Err(OffloadError::NoSegment {
                index: count,
                count
            })
        );
        let short = out.get_mut(..max - 1).expect("max >= 1");
        assert_eq!(
            segs.write(0, short),
            Err(OffloadError::NoRoom {
                need: max,
                have: max - 1
            })
        );
    }
}

/// `start` plus the ones' complement sum of `bytes`, folded, one byte at a time
/// (independent of the offload code's word-at-a-time sum).
fn ones_sum(bytes: &[u8], start: u16) -> u16 {
    let mut s = u32::from(start);
    for (i, b) in bytes.iter().enumerate() {
        s += u32::from(*b) << if i % 2 == 0 { 8 } else { 0 };
        s = (s & 0xffff) + (s >> 16);
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// A tiny cursor over fuzz input; reads zeros once exhausted.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

/// A VID from a small set, so random configs and frames meet.
fn small_vid(b: u8) -> Vid {
    Vid::new(u32::from(b % 5) + 1).expect("1..=5 is a valid VID")
}

fn port_vlan(b: &mut Bytes) -> PortVlan {
    let mode = b.u8();
    let v = small_vid(b.u8());
    match mode % 4 {
        0 => PortVlan::Access(v),
        m => {
            let mask = b.u8();
            let allowed: VlanSet = (0..5u8)
                .filter(|i| mask & (1 << i) != 0)
                .map(small_vid)
                .collect();
            let native = match m {
                1 => None,
                2 => Some((v, NativeEgress::Untagged)),
                _ => Some((v, NativeEgress::Tagged)),
            };
            PortVlan::trunk(allowed, native)
        }
    }
}

/// The whole pipeline with a random configuration (2-6 ports, random VLAN modes, MTUs,
/// flood/isolation flags, learn limits, tiny FDB) and random frames; checks that every
/// frame got one verdict, that frames and counters balance, and that every transmitted
/// frame is in a VLAN its port carries, tagged exactly as the port's mode says.
pub fn pipeline(data: &[u8]) {
    let mut b = Bytes(data);
    let nports = 2 + usize::from(b.u8() % 5);
    let mut builder = Topology::builder();
    for i in 0..nports {
        let mut c = PortConfig::new(format!("p{i}"), port_vlan(&mut b));
        let flags = b.u8();
        c.isolated = flags & 1 != 0;
        c.flood.unknown_unicast = flags & 2 == 0;
        c.flood.multicast = flags & 4 == 0;
        c.flood.broadcast = flags & 8 == 0;
        c.learning = flags & 16 == 0;
        c.up = flags & 32 == 0;
        c.learn_limit = (flags & 64 != 0).then_some(u32::from(b.u8() % 4));
        c.mtu = if flags & 128 != 0 {
            68 + u32::from(b.u8())
        } else {
            1500
        };
        builder.add_port(i, c).expect("distinct ids and names");
    }
    let topo = builder.build();
    let fdb = FdbConfig {
        capacity: 1 + usize::from(b.u8() % 8),
        aging_secs: 1 + u64::from(b.u8() % 4),
    };
    let ports = MemPortConfig {
        rx_slots: 64,
        tx_slots: 512,
        slot_size: 1600,
    };
    let mut sw = MemSwitch::new(topo, fdb, ports, 1 + usize::from(b.u8() % 40));
    let mut now = 0;
    let mut injected = 0u64;
    while !b.0.is_empty() && injected < 64 {
        let ingress = usize::from(b.u8()) % nports;
        now += u64::from(b.u8() % 3);
        let len = usize::from(b.u16() % 200);
        // Frames: fuzz bytes, with addresses drawn from a small pool so learning and
        // lookups hit, and an optional tag with a small VID.
        let kind = b.u8();
        let mut f = [0u8; 1600];
        let body = b.take(len);
        f[..body.len()].copy_from_slice(body);
        let mut flen = body.len();
        if kind & 1 != 0 && flen >= ETH_HDR_LEN {
            f[..6].copy_from_slice(&[2, 0, 0, 0, 0, kind >> 5]);
            f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, (kind >> 2) & 7]);
        }
        if kind & 2 != 0 && flen >= 18 {
            f[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
            f[15] = kind % 6;
            f[14] &= 0xf0;
        }
        if kind & 0x80 != 0 {
            flen += 1200; // oversize for small MTUs
        }
        sw.set_time(now);
        let pid = PortId::new(ingress).expect("small id");
        if sw.inject(pid, &f[..flen]).is_ok() {
            injected += 1;
        }
        if b.u8() & 3 == 0 {
            check_burst(&mut sw, nports);
        }
        if b.u8() & 15 == 0 {
            sw.pipeline_mut().fdb_mut().age(now);
        }
    }
    check_burst(&mut sw, nports);
    let rx: u64 = (0..nports)
        .map(|i| {
            sw.pipeline()
                .counters(PortId::new(i).expect("id"))
                .rx_packets
        })
        .sum();
    assert_eq!(rx, injected, "every injected frame was received once");
    assert!(sw.pipeline().fdb().len() <= fdb.capacity);
}

fn check_burst(sw: &mut MemSwitch, nports: usize) {
    let ids: Vec<PortId> = (0..nports).map(|i| PortId::new(i).expect("id")).collect();
    let tx_before: u64 = ids
        .iter()
        .map(|p| sw.pipeline().counters(*p).tx_packets)
        .sum();
    let mut copies = 0u64;
    loop {
        let mut any = 0;
        for p in &ids {
            let n = sw.poll_port(*p);
            if n == 0 {
                continue;
            }
            any += n;
            assert_eq!(sw.pipeline().verdicts().len(), n, "one verdict per frame");
            for v in sw.pipeline().verdicts() {
                copies += match v {
                    Verdict::Unicast(_) => 1,
                    Verdict::Flood { copies } => u64::from(*copies),
                    Verdict::Drop(_) => 0,
                };
            }
        }
        if any == 0 {
            break;
        }
    }
    let tx_after: u64 = ids
        .iter()
        .map(|p| sw.pipeline().counters(*p).tx_packets)
        .sum();
    assert_eq!(
        tx_after - tx_before,
        copies,
        "every queued copy was transmitted"
    );
    for p in ids {
        let cfg = sw.topology().port(p).expect("configured").clone();
        for out in sw.take_tx(p) {
            let v = EthernetFrame::new_checked(&out[..]).expect("a transmitted frame parses");
            assert!(cfg.up, "down port transmitted");
            match v.tag() {
                Some(t) if cfg.vlan.egress_tagged(t.vid()) && cfg.vlan.is_member(t.vid()) => {}
                Some(_) | None => {
                    // Untagged egress: the port must have an untagged VLAN. (A frame whose
                    // inner tag became outer after a pop is fine too: it left untagged.)
                    assert!(
                        cfg.vlan.untagged_vid().is_some(),
                        "port {p} ({}) sent a frame with no valid VLAN",
                        cfg.vlan
                    );
                }
            }
        }
    }
}
