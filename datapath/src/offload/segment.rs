//! Software offloads for ports that take only wire frames (AF_XDP): completing a partial
//! checksum ([`complete_csum`]) and cutting a superframe into wire segments
//! ([`Segments`]), as Linux's `skb_checksum_help` and `tcp_gso_segment` /
//! `__udp_gso_segment` do.
//!
//! Invariants kept here:
//! - Nothing panics on any input: every offset read from a frame or an [`Offload`] is
//!   checked before use, and a frame that does not parse is an [`OffloadError`].
//! - The headers are parsed from the frame itself (Ethernet, one optional 802.1Q tag, IPv4
//!   or IPv6, TCP or UDP); `hdr_len` is never trusted, and the L4 header must start at
//!   `csum_start`. The IP length field bounds the payload (trailing bytes are not data);
//!   a zero length (a jumbo superframe) means "to the end of the frame".
//! - Segment `i` carries payload bytes `i * gso_size ..` of the superframe, its own IP
//!   length, IPv4 ID + `i`, TCP sequence + `i * gso_size`, FIN and PSH only on the last
//!   segment and CWR only on the first; every L4 checksum is computed from scratch
//!   (pseudo-header, header, payload), never from the partial value in the field.
//! - No allocation: [`Segments`] borrows the superframe and writes into the caller's
//!   buffer, one segment at a time, with the egress VLAN edit applied.

use super::{Gso, Offload, OffloadError};
use crate::wire::{write_edited, Edit, L2Header};

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const IPV4_MIN_HDR: usize = 20;
const IPV6_HDR: usize = 40;
const TCP_MIN_HDR: usize = 20;
const UDP_HDR: usize = 8;
/// Offsets of the checksum fields inside the L4 headers.
const TCP_CSUM: usize = 16;
const UDP_CSUM: usize = 6;
/// TCP flag bits (byte 13 of the header).
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;
/// Largest value of a 16-bit IP or UDP length field.
const MAX_LEN16: usize = 0xffff;

/// Completes a partial checksum in place: when `o.needs_csum`, sums `frame[csum_start..]`
/// (the checksum field holds the pseudo-header sum, as Linux leaves it for
/// `CHECKSUM_PARTIAL`) and stores the complemented result at `csum_start + csum_offset`.
/// A UDP checksum (USO, or the field at the UDP checksum offset) that computes to 0 is
/// sent as 0xffff. A frame without a partial checksum is left as it is.
pub fn complete_csum(frame: &mut [u8], o: &Offload) -> Result<(), OffloadError> {
    if !o.needs_csum {
        return Ok(());
    }
    let start = usize::from(o.csum_start);
    let at = start + usize::from(o.csum_offset);
    let out_of_bounds = OffloadError::CsumOutOfBounds {
        start: o.csum_start,
        offset: o.csum_offset,
        len: frame.len(),
    };
    let covered = frame.get(start..).ok_or(out_of_bounds)?;
    if covered.len() < usize::from(o.csum_offset) + 2 {
        return Err(out_of_bounds);
    }
    let mut csum = !fold(sum(covered));
    if csum == 0 && (o.gso == Gso::UdpL4 || usize::from(o.csum_offset) == UDP_CSUM) {
        csum = 0xffff;
    }
    put16(frame, at, csum).ok_or(out_of_bounds)
}

/// The IP version of a superframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ip {
    V4,
    V6,
}

/// The L4 protocol of a superframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L4 {
    Tcp,
    Udp,
}

/// A superframe parsed for segmentation: its headers, its payload, and how to cut it.
/// Borrowed from the received frame; each [`Segments::write`] writes one wire frame.
#[derive(Debug, Clone, Copy)]
pub struct Segments<'a> {
    /// Ethernet to the end of the L4 header, as received (before the edit).
    headers: &'a [u8],
    /// The bytes to cut: after the L4 header, up to the end of the IP packet.
    payload: &'a [u8],
    edit: Edit,
    /// Offsets in `headers` of the IP and the L4 header.
    l3: usize,
    l4: usize,
    ip: Ip,
    proto: L4,
    gso_size: usize,
    count: usize,
    /// Unfolded ones' complement sum of the pseudo-header's addresses and protocol.
    pseudo: u64,
}

impl<'a> Segments<'a> {
    /// Parses superframe `src` (as received, before the egress `edit`) whose offload is `o`
    /// (also before the edit).
    pub fn new(src: &'a [u8], edit: Edit, o: &Offload) -> Result<Segments<'a>, OffloadError> {
        let (ip, proto) = match o.gso {
            Gso::None => return Err(bad("not a superframe (GSO type none)")),
            Gso::TcpV4 => (Some(Ip::V4), L4::Tcp),
            Gso::TcpV6 => (Some(Ip::V6), L4::Tcp),
            Gso::UdpL4 => (None, L4::Udp),
        };
        if o.gso_size == 0 {
            return Err(OffloadError::ZeroGsoSize);
        }
        let gso_size = usize::from(o.gso_size);

        let l2 = L2Header::parse(src).map_err(|_| bad("Ethernet header truncated"))?;
        if l2.tag.is_none() && matches!(edit, Edit::Pop | Edit::SetTci(_)) {
            return Err(bad("VLAN pop or retag of an untagged frame"));
        }
        let l3 = l2.len();
        let ethertype = be16(src, l3 - 2).ok_or(bad("Ethernet header truncated"))?;
        let l4 = usize::from(o.csum_start);
        let (csum_offset, l4_proto) = match proto {
            L4::Tcp => (TCP_CSUM, PROTO_TCP),
            L4::Udp => (UDP_CSUM, PROTO_UDP),
        };
        if usize::from(o.csum_offset) != csum_offset {
            return Err(bad("checksum offset is not the L4 checksum field"));
        }

        // IP: its version, where the L4 header must start, and where the packet ends.
        let (ip, end, pseudo) = match (ethertype, ip) {
            (ETHERTYPE_IPV4, None | Some(Ip::V4)) => {
                let h = src
                    .get(l3..l3 + IPV4_MIN_HDR)
                    .ok_or(bad("IPv4 header truncated"))?;
                if h[0] >> 4 != 4 {
                    return Err(bad("IPv4 ethertype without an IPv4 header"));
                }
                let ihl = usize::from(h[0] & 0x0f) * 4;
                if ihl < IPV4_MIN_HDR || l3 + ihl > src.len() {
                    return Err(bad("IPv4 header length outside the frame"));
                }
                if l4 != l3 + ihl {
                    return Err(bad("checksum start is not after the IPv4 header"));
                }
                if h[9] != l4_proto {
                    return Err(bad("IPv4 protocol does not match the GSO type"));
                }
                if u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 {
                    return Err(bad("IPv4 fragment"));
                }
                let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
                let end = ip_end(src.len(), l3, total, "IPv4 total length beyond the frame")?;
                (Ip::V4, end, sum(&h[12..20]) + u64::from(l4_proto))
            }
            (ETHERTYPE_IPV6, None | Some(Ip::V6)) => {
                let h = src
                    .get(l3..l3 + IPV6_HDR)
                    .ok_or(bad("IPv6 header truncated"))?;
                if h[0] >> 4 != 6 {
                    return Err(bad("IPv6 ethertype without an IPv6 header"));
                }
                if l4 < l3 + IPV6_HDR || l4 > src.len() {
                    return Err(bad("checksum start is not after the IPv6 header"));
                }
                let ext = l4 > l3 + IPV6_HDR;
                if !ext && h[6] != l4_proto {
                    return Err(bad("IPv6 next header does not match the GSO type"));
                }
                let payload_len = usize::from(u16::from_be_bytes([h[4], h[5]]));
                if payload_len == 0 && ext {
                    return Err(bad("IPv6 jumbogram with extension headers"));
                }
                let total = if payload_len == 0 {
                    0
                } else {
                    IPV6_HDR + payload_len
                };
                let end = ip_end(src.len(), l3, total, "IPv6 payload length beyond the frame")?;
                (Ip::V6, end, sum(&h[8..40]) + u64::from(l4_proto))
            }
            (ETHERTYPE_IPV4 | ETHERTYPE_IPV6, Some(_)) => {
                return Err(bad("IP version does not match the GSO type"))
            }
            _ => return Err(bad("not IPv4 or IPv6")),
        };

        let l4_len = match proto {
            L4::Tcp => {
                let offset = src
                    .get(l4 + 12)
                    .filter(|_| l4 + TCP_MIN_HDR <= end)
                    .ok_or(bad("TCP header truncated"))?;
                let len = usize::from(offset >> 4) * 4;
                if len < TCP_MIN_HDR {
                    return Err(bad("TCP data offset below 5"));
                }
                len
            }
            L4::Udp => UDP_HDR,
        };
        let data = l4 + l4_len;
        let headers = src.get(..data).ok_or(bad("L4 header truncated"))?;
        let payload = src.get(data..end).ok_or(bad("L4 header truncated"))?;

        // Every segment's lengths must fit their 16-bit fields.
        let longest = gso_size.min(payload.len());
        let l3_len = data - l3 + longest;
        let too_long = match ip {
            Ip::V4 => l3_len > MAX_LEN16,
            Ip::V6 => l3_len - IPV6_HDR > MAX_LEN16,
        } || (proto == L4::Udp && UDP_HDR + longest > MAX_LEN16);
        if too_long {
            return Err(bad("segment longer than 64 KiB"));
        }
        Ok(Segments {
            headers,
            payload,
            edit,
            l3,
            l4,
            ip,
            proto,
            gso_size,
            count: payload.len().div_ceil(gso_size).max(1),
            pseudo,
        })
    }

    /// Number of wire segments (at least 1).
    #[inline]
    pub fn count(&self) -> usize {
        self.count
    }

    /// Length of the longest segment (the first), with the edit applied.
    #[inline]
    pub fn max_len(&self) -> usize {
        self.edit.output_len(self.headers.len()) + self.gso_size.min(self.payload.len())
    }

    /// Writes segment `i` (from 0) with the edit applied into the start of `out`; returns
    /// its length.
    pub fn write(&self, i: usize, out: &mut [u8]) -> Result<usize, OffloadError> {
        if i >= self.count {
            return Err(OffloadError::NoSegment {
                index: i,
                count: self.count,
            });
        }
        // i < count, so i * gso_size <= payload length: no overflow.
        let from = i * self.gso_size;
        let to = (from + self.gso_size).min(self.payload.len());
        let chunk = self.payload.get(from..to).ok_or(INTERNAL)?;
        let hdr_len = self.edit.output_len(self.headers.len());
        let need = hdr_len + chunk.len();
        let have = out.len();
        let out = out
            .get_mut(..need)
            .ok_or(OffloadError::NoRoom { need, have })?;
        let (hdr, data) = out.split_at_mut(hdr_len);
        write_edited(self.headers, self.edit, hdr).map_err(|_| INTERNAL)?;
        data.copy_from_slice(chunk);
        let data_sum = sum(data);

        // The edit only changes bytes before the IP header.
        let ip = hdr
            .get_mut(hdr_len - (self.headers.len() - self.l3)..)
            .ok_or(INTERNAL)?;
        let l4_at = self.l4 - self.l3;
        let l4_len = self.headers.len() - self.l4 + chunk.len();
        match self.ip {
            Ip::V4 => {
                let total = ip.len() + chunk.len();
                let id = be16(ip, 4).ok_or(INTERNAL)?.wrapping_add(i as u16);
                put16(ip, 2, total as u16).ok_or(INTERNAL)?;
                put16(ip, 4, id).ok_or(INTERNAL)?;
                put16(ip, 10, 0).ok_or(INTERNAL)?;
                let csum = !fold(sum(ip.get(..l4_at).ok_or(INTERNAL)?));
                put16(ip, 10, csum).ok_or(INTERNAL)?;
            }
            Ip::V6 => {
                let payload_len = ip.len() - IPV6_HDR + chunk.len();
                put16(ip, 4, payload_len as u16).ok_or(INTERNAL)?;
            }
        }
        let l4 = ip.get_mut(l4_at..).ok_or(INTERNAL)?;
        let csum_at = match self.proto {
            L4::Tcp => {
                let seq = be32(l4, 4).ok_or(INTERNAL)?.wrapping_add(from as u32);
                l4.get_mut(4..8)
                    .ok_or(INTERNAL)?
                    .copy_from_slice(&seq.to_be_bytes());
                let flags = l4.get_mut(13).ok_or(INTERNAL)?;
                if i + 1 < self.count {
                    *flags &= !(TCP_FIN | TCP_PSH);
                }
                if i > 0 {
                    *flags &= !TCP_CWR;
                }
                TCP_CSUM
            }
            L4::Udp => {
                put16(l4, 4, l4_len as u16).ok_or(INTERNAL)?;
                UDP_CSUM
            }
        };
        put16(l4, csum_at, 0).ok_or(INTERNAL)?;
        let mut csum = !fold(self.pseudo + l4_len as u64 + sum(l4) + data_sum);
        if csum == 0 && self.proto == L4::Udp {
            csum = 0xffff;
        }
        put16(l4, csum_at, csum).ok_or(INTERNAL)?;
        Ok(need)
    }
}

/// A check `new` made already failed in `write` (unreachable; an error, not a panic).
const INTERNAL: OffloadError = OffloadError::BadHeaders("headers changed after parsing");

fn bad(why: &'static str) -> OffloadError {
    OffloadError::BadHeaders(why)
}

/// Where an IP packet of `total` bytes (0: to the end of the frame) starting at `l3` ends.
fn ip_end(
    frame_len: usize,
    l3: usize,
    total: usize,
    beyond: &'static str,
) -> Result<usize, OffloadError> {
    match total {
        0 => Ok(frame_len),
        t if l3 + t <= frame_len => Ok(l3 + t),
        _ => Err(bad(beyond)),
    }
}

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..)?.first_chunk().map(|w| u16::from_be_bytes(*w))
}

#[inline]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..)?.first_chunk().map(|w| u32::from_be_bytes(*w))
}

#[inline]
fn put16(b: &mut [u8], at: usize, v: u16) -> Option<()> {
    b.get_mut(at..)?
        .first_chunk_mut::<2>()
        .map(|w| *w = v.to_be_bytes())
}

/// Bytes summed before the accumulator is folded to 33 bits: each 8-byte word adds less
/// than 2^33, so a block adds less than 2^50 and the total cannot overflow for any slice
/// that fits in memory.
const SUM_BLOCK: usize = 1 << 20;

/// The ones' complement sum of `data` read as big-endian 16-bit words (an odd last byte
/// is the high byte of a word), unfolded. `data` must start at an even offset of the
/// checksummed bytes. Reads 8 bytes at a time and adds their two 32-bit halves: no carry
/// chain, so the compiler may vectorise it.
#[inline]
fn sum(data: &[u8]) -> u64 {
    let mut total = 0u64;
    for block in data.chunks(SUM_BLOCK) {
        let mut acc = 0u64;
        let mut words = block.chunks_exact(8);
        for w in &mut words {
            if let Some(w) = w.first_chunk::<8>() {
                let w = u64::from_be_bytes(*w);
                acc += (w >> 32) + (w & 0xffff_ffff);
            }
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            if let Some(dst) = last.get_mut(..rest.len()) {
                dst.copy_from_slice(rest);
            }
            let w = u64::from_be_bytes(last);
            acc += (w >> 32) + (w & 0xffff_ffff);
        }
        total += (acc >> 32) + (acc & 0xffff_ffff);
    }
    total
}

/// Folds an unfolded ones' complement sum to 16 bits (2^16 = 1 modulo 0xffff).
#[inline]
fn fold(mut s: u64) -> u16 {
    while s > 0xffff {
        s = (s >> 16) + (s & 0xffff);
    }
    s as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Tci;
    use proptest::prelude::*;

    const SRC4: [u8; 4] = [10, 0, 0, 1];
    const DST4: [u8; 4] = [10, 0, 0, 2];
    const SRC6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DST6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    /// Near the top of their ranges, so the per-segment increments wrap.
    const SEQ: u32 = 0xffff_f000;
    const ID: u16 = 0xfffa;
    const ACK: u32 = 0x0102_0304;
    /// CWR, ACK, PSH, FIN.
    const FLAGS: u8 = 0x99;
    const TCP_HDR: usize = 32;

    /// The ones' complement sum, folded, computed byte by byte (independent of `sum`).
    fn simple_sum(bytes: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for (i, b) in bytes.iter().enumerate() {
            s += if i % 2 == 0 {
                u32::from(*b) << 8
            } else {
                u32::from(*b)
            };
            s = (s & 0xffff) + (s >> 16);
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    /// The pseudo-header of an L4 checksum; `ip_hdr` starts at the IP header.
    fn pseudo(ip_hdr: &[u8], ip: Ip, proto: u8, l4_len: usize) -> Vec<u8> {
        let mut p = Vec::new();
        match ip {
            Ip::V4 => {
                p.extend_from_slice(&ip_hdr[12..20]);
                p.extend_from_slice(&[0, proto]);
                p.extend_from_slice(&(l4_len as u16).to_be_bytes());
            }
            Ip::V6 => {
                p.extend_from_slice(&ip_hdr[8..40]);
                p.extend_from_slice(&(l4_len as u32).to_be_bytes());
                p.extend_from_slice(&[0, 0, 0, proto]);
            }
        }
        p
    }

    /// Whether the L4 checksum of the packet at `ip_pkt` (IP header onwards, the L4 header
    /// at `l4`) verifies.
    fn l4_verifies(ip_pkt: &[u8], l4: usize, ip: Ip, proto: u8) -> bool {
        let mut all = pseudo(ip_pkt, ip, proto, ip_pkt.len() - l4);
        all.extend_from_slice(&ip_pkt[l4..]);
        simple_sum(&all) == 0xffff
    }

    fn payload_byte(i: usize) -> u8 {
        (i * 31 + i / 251) as u8
    }

    fn tag() -> Tci {
        Tci::new(3, false, 100)
    }

    /// A superframe as a Linux sender hands it over, with offsets into it.
    struct Frame {
        bytes: Vec<u8>,
        o: Offload,
        l3: usize,
        l4: usize,
        data: usize,
    }

    /// Builds a superframe: Ethernet (tagged or not), IPv4 (correct header checksum) or
    /// IPv6, TCP with timestamps (data offset 8) or UDP, `payload` patterned bytes, and
    /// the pseudo-header partial sum in the L4 checksum field. Lengths that do not fit
    /// their field are 0.
    fn superframe(ip: Ip, tagged: bool, proto: L4, payload: usize, gso_size: u16) -> Frame {
        let mut b = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        if tagged {
            b.extend_from_slice(&0x8100u16.to_be_bytes());
            b.extend_from_slice(&tag().0.to_be_bytes());
        }
        let ethertype = match ip {
            Ip::V4 => ETHERTYPE_IPV4,
            Ip::V6 => ETHERTYPE_IPV6,
        };
        b.extend_from_slice(&ethertype.to_be_bytes());
        let l3 = b.len();
        let (l4_len, proto_num, csum_offset) = match proto {
            L4::Tcp => (TCP_HDR, PROTO_TCP, TCP_CSUM),
            L4::Udp => (UDP_HDR, PROTO_UDP, UDP_CSUM),
        };
        let len16 = |n: usize| u16::try_from(n).unwrap_or(0).to_be_bytes();
        match ip {
            Ip::V4 => {
                b.extend_from_slice(&[0x45, 0]);
                b.extend_from_slice(&len16(20 + l4_len + payload));
                b.extend_from_slice(&ID.to_be_bytes());
                b.extend_from_slice(&[0x40, 0, 64, proto_num, 0, 0]);
                b.extend_from_slice(&SRC4);
                b.extend_from_slice(&DST4);
                let c = !simple_sum(&b[l3..]);
                b[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
            }
            Ip::V6 => {
                b.extend_from_slice(&[0x60, 0x0a, 0xbc, 0xde]);
                b.extend_from_slice(&len16(l4_len + payload));
                b.extend_from_slice(&[proto_num, 64]);
                b.extend_from_slice(&SRC6);
                b.extend_from_slice(&DST6);
            }
        }
        let l4 = b.len();
        b.extend_from_slice(&40000u16.to_be_bytes());
        b.extend_from_slice(&5201u16.to_be_bytes());
        match proto {
            L4::Tcp => {
                b.extend_from_slice(&SEQ.to_be_bytes());
                b.extend_from_slice(&ACK.to_be_bytes());
                b.extend_from_slice(&[8 << 4, FLAGS, 0xfe, 0x00, 0, 0, 0, 0]);
                // NOP, NOP, timestamps.
                b.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78]);
            }
            L4::Udp => {
                b.extend_from_slice(&len16(UDP_HDR + payload));
                b.extend_from_slice(&[0, 0]);
            }
        }
        let data = b.len();
        b.extend((0..payload).map(payload_byte));
        let partial = simple_sum(&pseudo(&b[l3..], ip, proto_num, b.len() - l4));
        b[l4 + csum_offset..l4 + csum_offset + 2].copy_from_slice(&partial.to_be_bytes());
        let gso = match (ip, proto) {
            (Ip::V4, L4::Tcp) => Gso::TcpV4,
            (Ip::V6, L4::Tcp) => Gso::TcpV6,
            (_, L4::Udp) => Gso::UdpL4,
        };
        let o = Offload {
            needs_csum: true,
            gso,
            hdr_len: data as u16,
            gso_size,
            csum_start: l4 as u16,
            csum_offset: csum_offset as u16,
            ..Offload::NONE
        };
        Frame {
            bytes: b,
            o,
            l3,
            l4,
            data,
        }
    }

    fn edits(tagged: bool) -> Vec<Edit> {
        let other = Tci::new(1, true, 300);
        if tagged {
            vec![
                Edit::Keep,
                Edit::Pop,
                Edit::SetTci(other),
                Edit::Push(other),
            ]
        } else {
            vec![Edit::Keep, Edit::Push(other)]
        }
    }

    /// Cuts `f` with `edit` and checks every segment against the superframe; returns the
    /// segments' lengths.
    fn check_segments(f: &Frame, ip: Ip, proto: L4, edit: Edit, count: usize) -> Vec<usize> {
        let segs = Segments::new(&f.bytes, edit, &f.o).expect("superframe parses");
        assert_eq!(segs.count(), count);
        let mut l2 = [0u8; 32];
        let l2_len = write_edited(&f.bytes[..f.l3], edit, &mut l2).expect("L2 edit");
        let ip_len = f.l4 - f.l3;
        let l4_len = f.data - f.l4;
        let gso = usize::from(f.o.gso_size);
        let total = f.bytes.len() - f.data;
        assert_eq!(segs.max_len(), l2_len + ip_len + l4_len + gso.min(total));
        let proto_num = match proto {
            L4::Tcp => PROTO_TCP,
            L4::Udp => PROTO_UDP,
        };
        let orig_ip = &f.bytes[f.l3..f.l4];
        let orig_l4 = &f.bytes[f.l4..f.data];
        let mut out = vec![0u8; segs.max_len()];
        let mut payload = Vec::new();
        let mut lens = Vec::new();
        for i in 0..count {
            let n = segs.write(i, &mut out).expect("segment fits max_len");
            let chunk = gso.min(total - i * gso);
            assert_eq!(n, l2_len + ip_len + l4_len + chunk, "segment {i} length");
            lens.push(n);
            let seg = &out[..n];
            assert_eq!(seg[..l2_len], l2[..l2_len], "segment {i} L2 header");
            let ip_pkt = &seg[l2_len..];
            match ip {
                Ip::V4 => {
                    assert_eq!(ip_pkt[..2], orig_ip[..2]);
                    assert_eq!(
                        ip_pkt[2..4],
                        ((ip_len + l4_len + chunk) as u16).to_be_bytes()
                    );
                    assert_eq!(ip_pkt[4..6], ID.wrapping_add(i as u16).to_be_bytes());
                    assert_eq!(ip_pkt[6..10], orig_ip[6..10]);
                    assert_eq!(ip_pkt[12..20], orig_ip[12..20]);
                    assert_eq!(ip_pkt[20..ip_len], orig_ip[20..], "IPv4 options");
                    let csum = simple_sum(&ip_pkt[..ip_len]);
                    assert_eq!(csum, 0xffff, "segment {i} IPv4 header checksum");
                }
                Ip::V6 => {
                    assert_eq!(ip_pkt[..4], orig_ip[..4]);
                    let payload_len = ip_len - 40 + l4_len + chunk;
                    assert_eq!(ip_pkt[4..6], (payload_len as u16).to_be_bytes());
                    assert_eq!(ip_pkt[6..ip_len], orig_ip[6..], "extension headers");
                }
            }
            let l4 = &ip_pkt[ip_len..];
            assert_eq!(l4[..4], orig_l4[..4], "ports");
            match proto {
                L4::Tcp => {
                    let seq = SEQ.wrapping_add((i * gso) as u32);
                    assert_eq!(l4[4..8], seq.to_be_bytes(), "segment {i} seq");
                    assert_eq!(l4[8..13], orig_l4[8..13]);
                    let mut flags = FLAGS & !(TCP_FIN | TCP_PSH | TCP_CWR);
                    if i == 0 {
                        flags |= TCP_CWR;
                    }
                    if i + 1 == count {
                        flags |= TCP_FIN | TCP_PSH;
                    }
                    assert_eq!(l4[13], flags, "segment {i} flags");
                    assert_eq!(l4[14..16], orig_l4[14..16]);
                    assert_eq!(l4[18..TCP_HDR], orig_l4[18..TCP_HDR], "options");
                }
                L4::Udp => {
                    assert_eq!(l4[4..6], ((UDP_HDR + chunk) as u16).to_be_bytes());
                    assert_ne!(l4[6..8], [0, 0], "a computed UDP checksum is never 0");
                }
            }
            assert!(
                l4_verifies(ip_pkt, ip_len, ip, proto_num),
                "segment {i} L4 checksum"
            );
            payload.extend_from_slice(&l4[l4_len..]);
        }
        assert_eq!(
            payload,
            f.bytes[f.data..],
            "payloads concatenate to the original"
        );
        assert_eq!(
            segs.write(count, &mut out),
            Err(OffloadError::NoSegment {
                index: count,
                count
            })
        );
        lens
    }

    #[test]
    fn tcp_v4_superframes_cut_into_verifying_segments_for_every_edit() {
        for tagged in [false, true] {
            let f = superframe(Ip::V4, tagged, L4::Tcp, 20_000, 1448);
            for edit in edits(tagged) {
                // 13 full segments of 1448 and 1176 bytes.
                let lens = check_segments(&f, Ip::V4, L4::Tcp, edit, 14);
                let l2 = edit.output_len(f.l3);
                assert_eq!(lens[0], l2 + 20 + 32 + 1448);
                assert_eq!(lens[13], l2 + 20 + 32 + 1176);
            }
        }
        let f = superframe(Ip::V4, false, L4::Tcp, 20_000, 1448);
        let segs = Segments::new(&f.bytes, Edit::Keep, &f.o).expect("parses");
        assert_eq!(segs.max_len(), 1514);
    }

    #[test]
    fn tcp_v6_superframes_cut_into_verifying_segments_for_every_edit() {
        for tagged in [false, true] {
            let f = superframe(Ip::V6, tagged, L4::Tcp, 20_000, 1428);
            for edit in edits(tagged) {
                // 14 full segments of 1428 and one of 8 bytes.
                let lens = check_segments(&f, Ip::V6, L4::Tcp, edit, 15);
                let l2 = edit.output_len(f.l3);
                assert_eq!(lens[0], l2 + 40 + 32 + 1428);
                assert_eq!(lens[14], l2 + 40 + 32 + 8);
            }
        }
        let f = superframe(Ip::V6, true, L4::Tcp, 20_000, 1428);
        let segs = Segments::new(&f.bytes, Edit::Pop, &f.o).expect("parses");
        assert_eq!(segs.max_len(), 1514);
    }

    #[test]
    fn udp_l4_superframes_cut_into_datagrams_v4_and_v6() {
        for (ip, tagged) in [
            (Ip::V4, false),
            (Ip::V4, true),
            (Ip::V6, false),
            (Ip::V6, true),
        ] {
            // 7 datagrams of 1400 bytes and one of 199 (9,999 = 7 * 1400 + 199).
            let f = superframe(ip, tagged, L4::Udp, 9_999, 1400);
            for edit in edits(tagged) {
                let lens = check_segments(&f, ip, L4::Udp, edit, 8);
                let hdrs = edit.output_len(f.l3) + (f.l4 - f.l3) + 8;
                assert_eq!(lens[0], hdrs + 1400);
                assert_eq!(lens[7], hdrs + 199);
            }
        }
    }

    /// `f` with 4 bytes of IPv4 options (NOP, NOP, NOP, end) or an 8-byte IPv6
    /// destination options header between the IP and the L4 header.
    fn with_ip_options(mut f: Frame, ip: Ip) -> Frame {
        let (extra, ip_hdr): (&[u8], usize) = match ip {
            Ip::V4 => (&[1, 1, 1, 0], 20),
            Ip::V6 => (&[f.bytes[f.l3 + 6], 0, 1, 4, 0, 0, 0, 0], 40),
        };
        f.bytes.splice(f.l4..f.l4, extra.iter().copied());
        let h = f.l3;
        let len_at = match ip {
            Ip::V4 => {
                f.bytes[h] = 0x46;
                h + 2
            }
            Ip::V6 => {
                f.bytes[h + 6] = 60;
                h + 4
            }
        };
        let len = u16::from_be_bytes([f.bytes[len_at], f.bytes[len_at + 1]]) + extra.len() as u16;
        f.bytes[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
        if ip == Ip::V4 {
            f.bytes[h + 10..h + 12].fill(0);
            let c = !simple_sum(&f.bytes[h..h + ip_hdr + extra.len()]);
            f.bytes[h + 10..h + 12].copy_from_slice(&c.to_be_bytes());
        }
        f.l4 += extra.len();
        f.data += extra.len();
        f.o.csum_start += extra.len() as u16;
        f.o.hdr_len += extra.len() as u16;
        f
    }

    #[test]
    fn ipv4_options_and_ipv6_extension_headers_are_copied_into_every_segment() {
        for (ip, proto, gso, count) in [
            (Ip::V4, L4::Tcp, 1448, 14),
            (Ip::V6, L4::Tcp, 1428, 15),
            (Ip::V4, L4::Udp, 1400, 15),
            (Ip::V6, L4::Udp, 1400, 15),
        ] {
            for tagged in [false, true] {
                let f = with_ip_options(superframe(ip, tagged, proto, 20_000, gso), ip);
                for edit in edits(tagged) {
                    check_segments(&f, ip, proto, edit, count);
                }
            }
        }
    }

    #[test]
    fn a_superframe_within_one_segment_is_the_frame_with_its_checksum_completed() {
        for (ip, proto, payload) in [
            (Ip::V4, L4::Tcp, 1000),
            (Ip::V6, L4::Tcp, 1001),
            (Ip::V4, L4::Udp, 1448),
            (Ip::V6, L4::Udp, 7),
            (Ip::V4, L4::Tcp, 0),
        ] {
            for tagged in [false, true] {
                let f = superframe(ip, tagged, proto, payload, 1448);
                let mut completed = f.bytes.clone();
                complete_csum(&mut completed, &f.o).expect("offsets in the frame");
                for edit in edits(tagged) {
                    let segs = Segments::new(&f.bytes, edit, &f.o).expect("parses");
                    assert_eq!(segs.count(), 1);
                    let mut want = vec![0u8; f.bytes.len() + 4];
                    let n = write_edited(&completed, edit, &mut want).expect("edit");
                    assert_eq!(segs.max_len(), n);
                    let mut out = vec![0u8; n];
                    assert_eq!(segs.write(0, &mut out), Ok(n));
                    assert_eq!(out, want[..n], "{ip:?} {proto:?} {payload} {edit:?}");
                }
            }
        }
    }

    /// Completes `f`'s partial checksum and returns the stored value, after checking it
    /// against a from-scratch computation.
    fn complete_and_compare(f: &Frame, ip: Ip, proto_num: u8) -> u16 {
        let mut done = f.bytes.clone();
        complete_csum(&mut done, &f.o).expect("offsets in the frame");
        let at = usize::from(f.o.csum_start + f.o.csum_offset);
        let mut scratch = f.bytes.clone();
        scratch[at..at + 2].fill(0);
        let l4 = &scratch[f.l4..];
        let mut all = pseudo(&scratch[f.l3..], ip, proto_num, l4.len());
        all.extend_from_slice(l4);
        let mut want = !simple_sum(&all);
        if want == 0 && proto_num == PROTO_UDP {
            want = 0xffff;
        }
        let got = u16::from_be_bytes([done[at], done[at + 1]]);
        assert_eq!(got, want, "{ip:?} proto {proto_num} {} bytes", l4.len());
        scratch[at..at + 2].copy_from_slice(&want.to_be_bytes());
        assert_eq!(done, scratch, "only the checksum field changes");
        got
    }

    #[test]
    fn complete_csum_matches_a_from_scratch_checksum() {
        for payload in [0, 1, 3, 1001, 1448] {
            for tagged in [false, true] {
                for (ip, proto, num) in [
                    (Ip::V4, L4::Tcp, PROTO_TCP),
                    (Ip::V6, L4::Tcp, PROTO_TCP),
                    (Ip::V4, L4::Udp, PROTO_UDP),
                    (Ip::V6, L4::Udp, PROTO_UDP),
                ] {
                    let mut f = superframe(ip, tagged, proto, payload, 1448);
                    f.o.gso = Gso::None;
                    f.o.gso_size = 0;
                    complete_and_compare(&f, ip, num);
                }
            }
        }
    }

    #[test]
    fn a_udp_checksum_of_zero_is_sent_as_ffff_a_tcp_one_as_zero() {
        for (proto, num) in [(L4::Udp, PROTO_UDP), (L4::Tcp, PROTO_TCP)] {
            let mut f = superframe(Ip::V4, false, proto, 100, 1448);
            f.o.gso = Gso::None;
            // The last payload word makes the sum 0xffff, so the checksum computes to 0.
            let end = f.bytes.len();
            f.bytes[end - 2..].fill(0);
            let sum = simple_sum(&f.bytes[f.l4..]);
            f.bytes[end - 2..].copy_from_slice(&(!sum).to_be_bytes());
            let got = complete_and_compare(&f, Ip::V4, num);
            assert_eq!(got, if num == PROTO_UDP { 0xffff } else { 0 });
        }
        // The same through segmentation: the one datagram carries 0xffff.
        let mut f = superframe(Ip::V6, false, L4::Udp, 100, 1448);
        let end = f.bytes.len();
        f.bytes[end - 2..].fill(0);
        let ip_pkt = &f.bytes[f.l3..];
        let mut all = pseudo(ip_pkt, Ip::V6, PROTO_UDP, end - f.l4);
        all.extend_from_slice(&f.bytes[f.l4..]);
        all[40 + 6..40 + 8].fill(0);
        let fix = !simple_sum(&all);
        f.bytes[end - 2..].copy_from_slice(&fix.to_be_bytes());
        let segs = Segments::new(&f.bytes, Edit::Keep, &f.o).expect("parses");
        let mut out = vec![0u8; segs.max_len()];
        let n = segs.write(0, &mut out).expect("fits");
        assert_eq!(out[f.l4 + 6..f.l4 + 8], [0xff, 0xff]);
        assert!(l4_verifies(&out[f.l3..n], 40, Ip::V6, PROTO_UDP));
    }

    #[test]
    fn complete_csum_leaves_plain_frames_and_refuses_offsets_outside() {
        let f = superframe(Ip::V4, false, L4::Tcp, 10, 1448);
        let mut b = f.bytes.clone();
        let plain = Offload {
            needs_csum: false,
            ..f.o
        };
        assert_eq!(complete_csum(&mut b, &plain), Ok(()));
        assert_eq!(b, f.bytes);
        let len = b.len();
        for (start, offset) in [
            (len as u16 - 1, 0),
            (len as u16, 0),
            (34, len as u16),
            (u16::MAX, u16::MAX),
        ] {
            let o = Offload {
                csum_start: start,
                csum_offset: offset,
                ..f.o
            };
            assert_eq!(
                complete_csum(&mut b, &o),
                Err(OffloadError::CsumOutOfBounds { start, offset, len })
            );
            assert_eq!(b, f.bytes);
        }
        // The field's last byte is the frame's last byte.
        let o = Offload {
            csum_start: len as u16 - 2,
            csum_offset: 0,
            ..f.o
        };
        assert_eq!(complete_csum(&mut b, &o), Ok(()));
    }

    #[test]
    fn sum_and_fold_match_rfc_1071_and_a_known_ipv4_header() {
        // RFC 1071, section 3: the sum of these words is 0xddf2 (folded).
        let words = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&words)), 0xddf2);
        // Without the last byte, the last word is 0xf600: 0xf7 less.
        assert_eq!(fold(sum(&words[..7])), 0xdcfb);
        // An IPv4 header whose checksum is 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(!fold(sum(&h)), 0xb861);
        h[10..12].copy_from_slice(&[0xb8, 0x61]);
        assert_eq!(fold(sum(&h)), 0xffff);
        // Every length and alignment of the tail agrees with the byte-by-byte sum.
        let data: Vec<u8> = (0..300).map(|i| payload_byte(i) ^ 0x5a).collect();
        for n in 0..data.len() {
            assert_eq!(fold(sum(&data[..n])), simple_sum(&data[..n]), "{n} bytes");
        }
        assert_eq!(fold(0), 0);
        assert_eq!(fold(u64::MAX), 0xffff);
    }

    #[test]
    fn malformed_superframes_are_errors() {
        let f = superframe(Ip::V4, false, L4::Tcp, 2000, 1448);
        let new = |b: &[u8], o: Offload| Segments::new(b, Edit::Keep, &o).map(|s| s.count());
        let bad = |why| Err(OffloadError::BadHeaders(why));
        let o = f.o;
        assert_eq!(new(&f.bytes, o), Ok(2));
        assert_eq!(new(&f.bytes[..10], o), bad("Ethernet header truncated"));
        assert_eq!(new(&f.bytes[..f.l3 + 10], o), bad("IPv4 header truncated"));
        assert_eq!(
            new(&f.bytes[..f.l4 + 10], o),
            bad("IPv4 total length beyond the frame")
        );
        assert_eq!(
            new(&f.bytes[..f.bytes.len() - 1], o),
            bad("IPv4 total length beyond the frame")
        );
        let mut b = f.bytes.clone();
        b[f.l3 + 2..f.l3 + 4].fill(0); // total length 0: to the end of the frame
        assert_eq!(new(&b[..f.l4 + 10], o), bad("TCP header truncated"));
        assert_eq!(new(&b[..f.l4 + 30], o), bad("L4 header truncated"));
        for start in [f.l4 + 4, f.l3, 0, u16::MAX.into()] {
            let o = Offload {
                csum_start: start as u16,
                ..f.o
            };
            assert_eq!(
                new(&f.bytes, o),
                bad("checksum start is not after the IPv4 header")
            );
        }
        let mut b = f.bytes.clone();
        b[f.l3] = 0x4f;
        assert_eq!(
            new(&b[..f.l3 + 40], o),
            bad("IPv4 header length outside the frame")
        );
        b[f.l3] = 0x44;
        assert_eq!(new(&b, o), bad("IPv4 header length outside the frame"));
        b[f.l3] = 0x65;
        assert_eq!(new(&b, o), bad("IPv4 ethertype without an IPv4 header"));
        let mut b = f.bytes.clone();
        b[f.l3 + 9] = PROTO_UDP;
        assert_eq!(new(&b, o), bad("IPv4 protocol does not match the GSO type"));
        let mut b = f.bytes.clone();
        b[f.l3 + 6] = 0x20; // more fragments
        assert_eq!(new(&b, o), bad("IPv4 fragment"));
        let mut b = f.bytes.clone();
        b[f.l4 + 12] = 4 << 4;
        assert_eq!(new(&b, o), bad("TCP data offset below 5"));
        let mut b = f.bytes.clone();
        b[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(new(&b, o), bad("not IPv4 or IPv6"));

        let tcp6 = Offload {
            gso: Gso::TcpV6,
            ..o
        };
        assert_eq!(
            new(&f.bytes, tcp6),
            bad("IP version does not match the GSO type")
        );
        let udp = Offload {
            gso: Gso::UdpL4,
            csum_offset: 6,
            ..o
        };
        assert_eq!(
            new(&f.bytes, udp),
            bad("IPv4 protocol does not match the GSO type")
        );
        let wrong_field = Offload {
            csum_offset: 6,
            ..o
        };
        assert_eq!(
            new(&f.bytes, wrong_field),
            bad("checksum offset is not the L4 checksum field")
        );
        let zero = Offload { gso_size: 0, ..o };
        assert_eq!(new(&f.bytes, zero), Err(OffloadError::ZeroGsoSize));
        let plain = Offload {
            gso: Gso::None,
            ..o
        };
        assert_eq!(
            new(&f.bytes, plain),
            bad("not a superframe (GSO type none)")
        );
        for edit in [Edit::Pop, Edit::SetTci(tag())] {
            assert_eq!(
                Segments::new(&f.bytes, edit, &o).map(|s| s.count()),
                bad("VLAN pop or retag of an untagged frame")
            );
        }

        let f6 = superframe(Ip::V6, true, L4::Tcp, 2000, 1428);
        let o6 = f6.o;
        assert_eq!(new(&f6.bytes, o6), Ok(2));
        let tcp4 = Offload {
            gso: Gso::TcpV4,
            ..o6
        };
        assert_eq!(
            new(&f6.bytes, tcp4),
            bad("IP version does not match the GSO type")
        );
        assert_eq!(
            new(&f6.bytes[..f6.l3 + 39], o6),
            bad("IPv6 header truncated")
        );
        let inside = Offload {
            csum_start: (f6.l3 + 20) as u16,
            ..o6
        };
        assert_eq!(
            new(&f6.bytes, inside),
            bad("checksum start is not after the IPv6 header")
        );
        let mut b = f6.bytes.clone();
        b[f6.l3 + 6] = PROTO_UDP;
        assert_eq!(
            new(&b, o6),
            bad("IPv6 next header does not match the GSO type")
        );
        assert_eq!(
            new(&f6.bytes[..f6.bytes.len() - 1], o6),
            bad("IPv6 payload length beyond the frame")
        );
        // Bytes after the IPv6 payload are not data.
        let mut b = f6.bytes.clone();
        b.extend_from_slice(&[0xee; 5]);
        assert_eq!(new(&b, o6), Ok(2));

        // A segment's IP length must fit 16 bits.
        let big = superframe(Ip::V4, false, L4::Tcp, 70_000, 65_535);
        assert_eq!(big.bytes[big.l3 + 2..big.l3 + 4], [0, 0]);
        assert_eq!(
            Segments::new(&big.bytes, Edit::Keep, &big.o).map(|s| s.count()),
            bad("segment longer than 64 KiB")
        );
        let ok = Offload {
            gso_size: 65_000,
            ..big.o
        };
        assert_eq!(
            Segments::new(&big.bytes, Edit::Keep, &ok).map(|s| s.count()),
            Ok(2)
        );
    }

    #[test]
    fn write_refuses_short_buffers_and_missing_segments() {
        let f = superframe(Ip::V4, true, L4::Tcp, 2000, 1448);
        let segs = Segments::new(&f.bytes, Edit::Pop, &f.o).expect("parses");
        assert_eq!(segs.count(), 2);
        assert_eq!(segs.max_len(), 14 + 20 + 32 + 1448);
        let mut out = vec![0u8; 2000];
        assert_eq!(
            segs.write(0, &mut out[..1513]),
            Err(OffloadError::NoRoom {
                need: 1514,
                have: 1513
            })
        );
        assert_eq!(segs.write(1, &mut out[..66 + 552]), Ok(66 + 552));
        assert_eq!(
            segs.write(2, &mut out),
            Err(OffloadError::NoSegment { index: 2, count: 2 })
        );
        assert_eq!(
            segs.write(usize::MAX, &mut out),
            Err(OffloadError::NoSegment {
                index: usize::MAX,
                count: 2
            })
        );
    }

    fn any_offload() -> impl Strategy<Value = Offload> {
        (
            (
                any::<bool>(),
                any::<bool>(),
                0u8..4,
                any::<bool>(),
                any::<u16>(),
            ),
            prop_oneof![any::<u16>(), 0u16..64],
            prop_oneof![any::<u16>(), 0u16..80],
            prop_oneof![any::<u16>(), Just(6u16), Just(16u16)],
        )
            .prop_map(
                |(
                    (needs_csum, data_valid, gso, ecn, hdr_len),
                    gso_size,
                    csum_start,
                    csum_offset,
                )| {
                    Offload {
                        needs_csum,
                        data_valid,
                        gso: match gso {
                            0 => Gso::None,
                            1 => Gso::TcpV4,
                            2 => Gso::TcpV6,
                            _ => Gso::UdpL4,
                        },
                        ecn,
                        hdr_len,
                        gso_size,
                        csum_start,
                        csum_offset,
                    }
                },
            )
    }

    #[test]
    fn the_offload_fuzz_entry_point_holds_on_superframes_with_their_vnet_header() {
        for (ip, proto, gso) in [
            (Ip::V4, L4::Tcp, 1448),
            (Ip::V6, L4::Tcp, 1428),
            (Ip::V4, L4::Udp, 1400),
            (Ip::V6, L4::Udp, 1),
        ] {
            for tagged in [false, true] {
                let f = superframe(ip, tagged, proto, 3000, gso);
                let data = [&f.o.emit()[..], &f.bytes].concat();
                crate::fuzzing::offload(&data);
                let f = with_ip_options(f, ip);
                crate::fuzzing::offload(&[&f.o.emit()[..], &f.bytes].concat());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn nothing_panics_on_arbitrary_bytes_and_offloads(
            frame in proptest::collection::vec(any::<u8>(), 0..160),
            tci in any::<u16>(),
            o in any_offload(),
        ) {
            crate::fuzzing::offload_frame(&frame, &o, Tci(tci));
        }

        #[test]
        fn nothing_panics_on_mutated_superframes(
            (v6, tagged, udp) in (any::<bool>(), any::<bool>(), any::<bool>()),
            payload in 0usize..3000,
            gso_size in prop_oneof![1u16..8, 500u16..2000, Just(u16::MAX)],
            tci in any::<u16>(),
            cut in proptest::option::of(0usize..3200),
            flips in proptest::collection::vec((0usize..120, any::<u8>()), 0..4),
        ) {
            let ip = if v6 { Ip::V6 } else { Ip::V4 };
            let proto = if udp { L4::Udp } else { L4::Tcp };
            let f = superframe(ip, tagged, proto, payload, gso_size);
            crate::fuzzing::offload_frame(&f.bytes, &f.o, Tci(tci));
            let mut b = f.bytes.clone();
            for (at, v) in flips {
                if let Some(x) = b.get_mut(at) {
                    *x = v;
                }
            }
            if let Some(cut) = cut {
                b.truncate(cut);
            }
            crate::fuzzing::offload_frame(&b, &f.o, Tci(tci));
        }
    }
}
