//! Offload metadata: what a frame's `virtio_net_hdr` says about it, carried beside the
//! frame from the port that received it to every port that sends it.
//!
//! Pods (veth) and VMs (tap, vhost-user) send with checksum offload and TSO on: a frame
//! may carry a *partial* checksum (the pseudo-header sum only; [`Offload::needs_csum`],
//! with where the sum starts and where it goes) and may be a *superframe* of up to 64 KiB
//! that stands for many wire segments of `gso_size` payload bytes each ([`Gso`]). Ports
//! that understand the header (tap with `IFF_VNET_HDR`, AF_PACKET with `PACKET_VNET_HDR`)
//! pass both through untouched, as the Linux bridge does; toward a port that does not
//! (AF_XDP), [`segment`] cuts superframes into wire frames and completes checksums in
//! software.
//!
//! Invariants kept here:
//! - [`Offload::NONE`] (all zero) is a plain frame: complete checksums, no segmentation.
//!   A port without offload metadata reports none, and every frame is then plain.
//! - Offsets ([`Offload::csum_start`], [`Offload::hdr_len`]) count from the first byte of
//!   the Ethernet header, as in `virtio_net_hdr`; a VLAN push or pop on egress moves them
//!   by 4 ([`Offload::after_edit`]).
//! - Parsing the 10-byte header never panics; a header this switch cannot honour (an
//!   unknown GSO type, a GSO frame without a partial checksum) is an [`OffloadError`],
//!   which ports count as a drop, never forward as if plain.

use crate::wire::Edit;
use crate::wire::VLAN_TAG_LEN;

/// Length of the `virtio_net_hdr` this switch reads and writes (no `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;

/// Largest superframe a port with offloads receives or sends: 64 KiB of IP packet (the
/// kernel's default `gso_max_size`), an Ethernet header and two VLAN tags.
pub const MAX_SUPERFRAME: usize = 65_536 + 14 + 8;

/// `virtio_net_hdr.flags` bits.
const F_NEEDS_CSUM: u8 = 1;
const F_DATA_VALID: u8 = 2;
/// `virtio_net_hdr.gso_type` values.
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_UDP: u8 = 3;
const GSO_TCPV6: u8 = 4;
const GSO_UDP_L4: u8 = 5;
const GSO_ECN: u8 = 0x80;

/// How a superframe is to be cut into wire frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Gso {
    /// Not a superframe.
    #[default]
    None,
    /// TCP over IPv4 (TSO4).
    TcpV4,
    /// TCP over IPv6 (TSO6).
    TcpV6,
    /// UDP segmentation (USO, IPv4 or IPv6): each segment its own datagram.
    UdpL4,
}

/// Why a `virtio_net_hdr` cannot be honoured, or a frame not segmented or checksummed as
/// its header asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    #[error("virtio-net header: unknown GSO type {0:#04x}")]
    UnknownGsoType(u8),
    #[error("virtio-net header: UDP fragmentation offload (UFO) is not supported")]
    Ufo,
    #[error("virtio-net header: GSO without a partial checksum (flags {0:#04x})")]
    GsoWithoutCsum(u8),
    #[error("virtio-net header: GSO segment size 0")]
    ZeroGsoSize,
    #[error("offload header shorter than {VNET_HDR_LEN} bytes")]
    ShortHeader,
    #[error("checksum offsets {start}+{offset} outside a frame of {len} bytes")]
    CsumOutOfBounds { start: u16, offset: u16, len: usize },
    #[error("superframe headers do not parse: {0}")]
    BadHeaders(&'static str),
    #[error("segment of {need} bytes does not fit a buffer of {have}")]
    NoRoom { need: usize, have: usize },
}

/// The meaning of one frame's `virtio_net_hdr`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Offload {
    /// The L4 checksum is partial: sum bytes `csum_start..` and store the folded result
    /// at `csum_start + csum_offset`.
    pub needs_csum: bool,
    /// The sender (or its NIC) verified the checksums already.
    pub data_valid: bool,
    pub gso: Gso,
    /// The sender set ECN CWR on the superframe (`VIRTIO_NET_HDR_GSO_ECN`).
    pub ecn: bool,
    /// Bytes of headers (Ethernet to L4, inclusive); a hint, as the kernel fills it.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl Offload {
    /// A plain frame.
    pub const NONE: Offload = Offload {
        needs_csum: false,
        data_valid: false,
        gso: Gso::None,
        ecn: false,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
    };

    /// Whether the frame is a superframe.
    #[inline]
    pub fn is_gso(&self) -> bool {
        self.gso != Gso::None
    }

    /// Whether the frame can be sent on a wire as it is (no partial checksum, not a
    /// superframe).
    #[inline]
    pub fn is_plain(&self) -> bool {
        !self.needs_csum && !self.is_gso()
    }

    /// The offload of entry `i` of a burst's offloads; a burst without metadata (an empty
    /// slice) is all plain.
    #[inline]
    pub fn of(offloads: &[Offload], i: usize) -> Offload {
        offloads.get(i).copied().unwrap_or(Offload::NONE)
    }

    /// Reads a `virtio_net_hdr` (native byte order, as tap and AF_PACKET use on this host).
    pub fn parse(b: &[u8]) -> Result<Offload, OffloadError> {
        let b: &[u8; VNET_HDR_LEN] = b.first_chunk().ok_or(OffloadError::ShortHeader)?;
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        let flags = b[0];
        let gso_raw = b[1];
        let gso = match gso_raw & !GSO_ECN {
            GSO_NONE => Gso::None,
            GSO_TCPV4 => Gso::TcpV4,
            GSO_TCPV6 => Gso::TcpV6,
            GSO_UDP_L4 => Gso::UdpL4,
            GSO_UDP => return Err(OffloadError::Ufo),
            other => return Err(OffloadError::UnknownGsoType(other)),
        };
        let o = Offload {
            needs_csum: flags & F_NEEDS_CSUM != 0,
            data_valid: flags & F_DATA_VALID != 0,
            gso,
            ecn: gso_raw & GSO_ECN != 0 && gso != Gso::None,
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        };
        if o.is_gso() {
            if !o.needs_csum {
                return Err(OffloadError::GsoWithoutCsum(flags));
            }
            if o.gso_size == 0 {
                return Err(OffloadError::ZeroGsoSize);
            }
        }
        Ok(o)
    }

    /// The `virtio_net_hdr` for this offload (native byte order).
    pub fn emit(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] =
            (u8::from(self.needs_csum) * F_NEEDS_CSUM) | (u8::from(self.data_valid) * F_DATA_VALID);
        b[1] = match self.gso {
            Gso::None => GSO_NONE,
            Gso::TcpV4 => GSO_TCPV4,
            Gso::TcpV6 => GSO_TCPV6,
            Gso::UdpL4 => GSO_UDP_L4,
        } | if self.ecn && self.is_gso() {
            GSO_ECN
        } else {
            0
        };
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    /// The offload of the frame after `edit`: a pushed tag moves the headers 4 bytes on,
    /// a popped one 4 bytes back. A plain frame stays plain.
    #[inline]
    pub fn after_edit(self, edit: Edit) -> Offload {
        const TAG: u16 = VLAN_TAG_LEN as u16;
        let shift = |v: u16, push: bool| {
            if v == 0 {
                0
            } else if push {
                v.saturating_add(TAG)
            } else {
                v.saturating_sub(TAG)
            }
        };
        match edit {
            Edit::Keep | Edit::SetTci(_) => self,
            Edit::Push(_) | Edit::Pop => {
                let push = matches!(edit, Edit::Push(_));
                Offload {
                    hdr_len: shift(self.hdr_len, push),
                    csum_start: if self.needs_csum {
                        shift(self.csum_start, push)
                    } else {
                        self.csum_start
                    },
                    ..self
                }
            }
        }
    }

    /// For a superframe: the L3 length of its wire segments (IP header, L4 header and
    /// `gso_size` payload bytes), which the egress MTU applies to; `None` for a plain
    /// frame or when the L4 header is not inside `frame` (the L3 length of the frame as it
    /// is applies then). `l2_len` is the Ethernet header's length (with its tag).
    #[inline]
    pub fn segment_l3_len(&self, frame: &[u8], l2_len: usize) -> Option<usize> {
        let start = usize::from(self.csum_start);
        let l4 = match self.gso {
            Gso::None => return None,
            Gso::TcpV4 | Gso::TcpV6 => usize::from(frame.get(start + 12)? >> 4) * 4,
            Gso::UdpL4 => 8,
        };
        let seg = start.checked_sub(l2_len)? + l4 + usize::from(self.gso_size);
        // A superframe shorter than one segment goes as it is.
        Some(seg.min(frame.len().saturating_sub(l2_len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Tci;

    #[test]
    fn header_round_trips_and_plain_is_all_zero() {
        assert_eq!(Offload::NONE.emit(), [0; VNET_HDR_LEN]);
        assert_eq!(Offload::parse(&[0; VNET_HDR_LEN]), Ok(Offload::NONE));
        let o = Offload {
            needs_csum: true,
            data_valid: false,
            gso: Gso::TcpV6,
            ecn: true,
            hdr_len: 86,
            gso_size: 1428,
            csum_start: 54,
            csum_offset: 16,
        };
        assert_eq!(Offload::parse(&o.emit()), Ok(o));
        assert_eq!(o.emit()[1], 0x84);
    }

    #[test]
    fn headers_the_switch_cannot_honour_are_errors() {
        let mut b = [0u8; VNET_HDR_LEN];
        b[1] = 3;
        assert_eq!(Offload::parse(&b), Err(OffloadError::Ufo));
        b[1] = 9;
        assert_eq!(Offload::parse(&b), Err(OffloadError::UnknownGsoType(9)));
        b[1] = 1;
        assert_eq!(Offload::parse(&b), Err(OffloadError::GsoWithoutCsum(0)));
        b[0] = 1;
        assert_eq!(Offload::parse(&b), Err(OffloadError::ZeroGsoSize));
        assert_eq!(Offload::parse(&b[..9]), Err(OffloadError::ShortHeader));
    }

    #[test]
    fn vlan_edits_move_the_offsets_by_a_tag() {
        let o = Offload {
            needs_csum: true,
            gso: Gso::TcpV4,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
            ..Offload::NONE
        };
        let pushed = o.after_edit(Edit::Push(Tci(100)));
        assert_eq!((pushed.csum_start, pushed.hdr_len), (38, 70));
        assert_eq!(pushed.after_edit(Edit::Pop), o);
        assert_eq!(o.after_edit(Edit::SetTci(Tci(5))), o);
        assert_eq!(Offload::NONE.after_edit(Edit::Push(Tci(1))), Offload::NONE);
    }

    #[test]
    fn the_mtu_applies_to_a_superframes_segments() {
        // Ethernet 14 + IPv4 20 + TCP 32 (data offset 8) + 20,000 payload bytes.
        let mut f = vec![0u8; 14 + 20 + 32 + 20_000];
        f[14 + 20 + 12] = 8 << 4;
        let o = Offload {
            needs_csum: true,
            gso: Gso::TcpV4,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
            ..Offload::NONE
        };
        assert_eq!(o.segment_l3_len(&f, 14), Some(20 + 32 + 1448));
        assert_eq!(Offload::NONE.segment_l3_len(&f, 14), None);
        // csum_start inside the Ethernet header: no segment length.
        let bad = Offload { csum_start: 4, ..o };
        assert_eq!(bad.segment_l3_len(&f, 14), None);
        // Shorter than one segment: the frame's own length.
        assert_eq!(o.segment_l3_len(&f[..100], 14), Some(86));
    }
}
