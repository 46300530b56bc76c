//! Checked zero-copy views over Ethernet II frames with an optional outer 802.1Q tag.
//!
//! Invariants kept here:
//! - [`EthernetFrame::new_checked`] never panics and guarantees that every accessor of the
//!   returned view is in bounds: the frame has at least [`ETH_HDR_LEN`] bytes, and at least
//!   [`ETH_HDR_LEN`] + [`VLAN_TAG_LEN`] bytes when its outer ethertype is [`TPID_8021Q`].
//! - Only TPID 0x8100 is a VLAN tag. 0x88a8 / 0x9100 are ordinary ethertypes (payload).
//! - Only the outer tag is ever read; an inner tag is payload.
//! - [`write_edited`] is the one place where frames are rewritten on egress (push, pop,
//!   retag or copy); it checks its bounds and returns an error instead of panicking.

use core::fmt;
use core::str::FromStr;

/// Length of an Ethernet II header: destination, source, ethertype.
pub const ETH_HDR_LEN: usize = 14;
/// Length of an 802.1Q tag: TPID + TCI.
pub const VLAN_TAG_LEN: usize = 4;
/// The only TPID this switch treats as a VLAN tag.
pub const TPID_8021Q: u16 = 0x8100;

mod field {
    pub const DST: core::ops::Range<usize> = 0..6;
    pub const SRC: core::ops::Range<usize> = 6..12;
    pub const ETHERTYPE: core::ops::Range<usize> = 12..14;
    pub const TCI: core::ops::Range<usize> = 14..16;
    pub const INNER_ETHERTYPE: core::ops::Range<usize> = 16..18;
}

/// Why a byte string is not a frame the switch can classify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than an Ethernet header (14 bytes).
    #[error("frame shorter than 14 bytes")]
    Runt,
    /// Outer ethertype is 0x8100 but the frame is shorter than 18 bytes.
    #[error("802.1Q tag truncated (frame shorter than 18 bytes)")]
    TruncatedTag,
}

/// A 48-bit IEEE MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Group (multicast or broadcast) address: I/G bit set.
    #[inline]
    pub fn is_multicast(&self) -> bool {
        mac48::is_multicast(self.to_u64())
    }
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        mac48::is_broadcast(self.to_u64())
    }
    #[inline]
    pub fn is_zero(&self) -> bool {
        self.to_u64() == 0
    }
    /// A source address the switch may learn: unicast and non-zero.
    #[inline]
    pub fn is_learnable(&self) -> bool {
        mac48::is_learnable(self.to_u64())
    }
    /// IEEE 802.1D reserved link-local group 01:80:c2:00:00:00 to :0f (STP, pause, LACP,
    /// 802.1X, LLDP): never forwarded by a bridge.
    #[inline]
    pub fn is_link_local_reserved(&self) -> bool {
        mac48::is_link_local_reserved(self.to_u64())
    }
    /// The address as the low 48 bits of a `u64` (big-endian order).
    #[inline]
    pub fn to_u64(self) -> u64 {
        let b = self.0;
        u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
    }
    /// Inverse of [`MacAddr::to_u64`]; the high 16 bits are ignored.
    #[inline]
    pub fn from_u64(v: u64) -> MacAddr {
        let b = v.to_be_bytes();
        MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
    }
    #[inline]
    fn from_slice(s: &[u8]) -> MacAddr {
        let mut m = [0u8; 6];
        m.copy_from_slice(s);
        MacAddr(m)
    }
}

/// Predicates on a MAC held as the low 48 bits of a `u64` (the fast path's form: one
/// load, no byte shuffling). [`MacAddr`]'s predicates are defined by these.
pub mod mac48 {
    const BROADCAST: u64 = 0xffff_ffff_ffff;
    /// I/G bit: the least significant bit of the first octet.
    const GROUP_BIT: u64 = 1 << 40;

    #[inline]
    pub fn is_multicast(mac: u64) -> bool {
        mac & GROUP_BIT != 0
    }
    #[inline]
    pub fn is_broadcast(mac: u64) -> bool {
        mac == BROADCAST
    }
    #[inline]
    pub fn is_learnable(mac: u64) -> bool {
        mac & GROUP_BIT == 0 && mac != 0
    }
    /// 01:80:c2:00:00:00 to 01:80:c2:00:00:0f.
    #[inline]
    pub fn is_link_local_reserved(mac: u64) -> bool {
        mac & !0x0f == 0x0180_c200_0000
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Error parsing a textual MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address '{0}' (expected six hex octets like 02:00:00:00:00:01)")]
pub struct MacParseError(pub String);

impl FromStr for MacAddr {
    type Err = MacParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in out.iter_mut() {
            let p = parts.next().ok_or_else(err)?;
            if p.is_empty() || p.len() > 2 {
                return Err(err());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

/// Ethertypes the switch names; anything else is kept as `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtherType {
    Ipv4,
    Arp,
    Vlan,
    Ipv6,
    /// 802.1ad S-tag: payload for this switch.
    ServiceTag,
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x8100 => EtherType::Vlan,
            0x86dd => EtherType::Ipv6,
            0x88a8 => EtherType::ServiceTag,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(v: EtherType) -> u16 {
        match v {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Vlan => 0x8100,
            EtherType::Ipv6 => 0x86dd,
            EtherType::ServiceTag => 0x88a8,
            EtherType::Unknown(o) => o,
        }
    }
}

/// 802.1Q Tag Control Information: PCP (3 bits), DEI (1 bit), VID (12 bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tci(pub u16);

impl Tci {
    /// Builds a TCI; `pcp` is masked to 3 bits and `vid` to 12 bits.
    #[inline]
    pub fn new(pcp: u8, dei: bool, vid: u16) -> Tci {
        Tci((u16::from(pcp & 7) << 13) | (u16::from(dei) << 12) | (vid & 0x0fff))
    }
    #[inline]
    pub fn pcp(self) -> u8 {
        (self.0 >> 13) as u8
    }
    #[inline]
    pub fn dei(self) -> bool {
        self.0 & 0x1000 != 0
    }
    #[inline]
    pub fn vid(self) -> u16 {
        self.0 & 0x0fff
    }
    /// PCP and DEI bits only (VID cleared): the frame's priority, carried across a retag.
    #[inline]
    pub fn priority_bits(self) -> u16 {
        self.0 & 0xf000
    }
}

impl fmt::Debug for Tci {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tci(vid={} pcp={} dei={})",
            self.vid(),
            self.pcp(),
            self.dei() as u8
        )
    }
}

/// A read (and, for mutable buffers, write) view of an Ethernet II frame.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` after checking it is long enough for every accessor: 14 bytes, or 18
    /// when the outer ethertype is 0x8100.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let b = buffer.as_ref();
        if b.len() < ETH_HDR_LEN {
            return Err(ParseError::Runt);
        }
        if u16::from_be_bytes([b[12], b[13]]) == TPID_8021Q && b.len() < ETH_HDR_LEN + VLAN_TAG_LEN
        {
            return Err(ParseError::TruncatedTag);
        }
        Ok(EthernetFrame { buffer })
    }

    #[inline]
    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    #[inline]
    pub fn dst(&self) -> MacAddr {
        MacAddr::from_slice(&self.bytes()[field::DST])
    }
    #[inline]
    pub fn src(&self) -> MacAddr {
        MacAddr::from_slice(&self.bytes()[field::SRC])
    }
    /// The outer ethertype field (the TPID when the frame is tagged).
    #[inline]
    pub fn outer_ethertype(&self) -> u16 {
        let b = &self.bytes()[field::ETHERTYPE];
        u16::from_be_bytes([b[0], b[1]])
    }
    /// The outer 802.1Q tag, when the outer ethertype is 0x8100.
    #[inline]
    pub fn tag(&self) -> Option<Tci> {
        if self.outer_ethertype() == TPID_8021Q {
            let b = &self.bytes()[field::TCI];
            Some(Tci(u16::from_be_bytes([b[0], b[1]])))
        } else {
            None
        }
    }
    /// The ethertype of the payload: after the outer tag if there is one.
    pub fn ethertype(&self) -> EtherType {
        if self.tag().is_some() {
            let b = &self.bytes()[field::INNER_ETHERTYPE];
            EtherType::from(u16::from_be_bytes([b[0], b[1]]))
        } else {
            EtherType::from(self.outer_ethertype())
        }
    }
    /// 14, or 18 with an outer tag.
    #[inline]
    pub fn header_len(&self) -> usize {
        if self.tag().is_some() {
            ETH_HDR_LEN + VLAN_TAG_LEN
        } else {
            ETH_HDR_LEN
        }
    }
    /// Bytes after the (outer-tagged) Ethernet header.
    pub fn payload(&self) -> &[u8] {
        &self.bytes()[self.header_len()..]
    }
    pub fn len(&self) -> usize {
        self.bytes().len()
    }
    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&mac.0);
    }
    pub fn set_src(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&mac.0);
    }
    /// Rewrites the outer TCI; returns false (and changes nothing) on an untagged frame.
    pub fn set_tci(&mut self, tci: Tci) -> bool {
        if self.tag().is_none() {
            return false;
        }
        self.buffer.as_mut()[field::TCI].copy_from_slice(&tci.0.to_be_bytes());
        true
    }
}

/// The parsed summary of a frame's L2 header: what the fast path reads, parsed once.
/// MACs are held as the low 48 bits of a `u64` (see [`mac48`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2Header {
    pub dst: u64,
    pub src: u64,
    /// Outer 802.1Q tag (VID 0 included: a priority tag).
    pub tag: Option<Tci>,
}

impl L2Header {
    /// Parses the header of an untrusted byte string; never panics. Two 8-byte loads
    /// (bytes 0..8 and 6..14) give both MACs and the outer ethertype.
    #[inline]
    pub fn parse(frame: &[u8]) -> Result<L2Header, ParseError> {
        let Some(h) = frame.first_chunk::<ETH_HDR_LEN>() else {
            return Err(ParseError::Runt);
        };
        // Two unaligned 8-byte loads (the lengths are constant, so the fallbacks are dead
        // code the compiler removes).
        let w0 = u64::from_be_bytes(h[0..8].try_into().unwrap_or([0; 8]));
        let w1 = u64::from_be_bytes(h[6..14].try_into().unwrap_or([0; 8]));
        let tag = if w1 as u16 == TPID_8021Q {
            match frame.get(14..16) {
                Some(t) if frame.len() >= ETH_HDR_LEN + VLAN_TAG_LEN => {
                    Some(Tci(u16::from_be_bytes([t[0], t[1]])))
                }
                _ => return Err(ParseError::TruncatedTag),
            }
        } else {
            None
        };
        Ok(L2Header {
            dst: w0 >> 16,
            src: w1 >> 16,
            tag,
        })
    }
    pub fn dst_mac(&self) -> MacAddr {
        MacAddr::from_u64(self.dst)
    }
    pub fn src_mac(&self) -> MacAddr {
        MacAddr::from_u64(self.src)
    }
    /// Length of the header including the outer tag.
    #[inline]
    pub fn len(&self) -> usize {
        if self.tag.is_some() {
            ETH_HDR_LEN + VLAN_TAG_LEN
        } else {
            ETH_HDR_LEN
        }
    }
    /// Always false: a header has at least 14 bytes (for clippy's len/is_empty pairing).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// High-level description of an Ethernet header, for building frames (tests, generators,
/// `trace`). `emit` is the inverse of `parse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub tag: Option<Tci>,
    pub ethertype: u16,
}

impl EthernetRepr {
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> EthernetRepr {
        let ethertype = frame.ethertype().into();
        EthernetRepr {
            dst: frame.dst(),
            src: frame.src(),
            tag: frame.tag(),
            ethertype,
        }
    }
    pub fn header_len(&self) -> usize {
        ETH_HDR_LEN + if self.tag.is_some() { VLAN_TAG_LEN } else { 0 }
    }
    /// Writes the header into the start of `buf`, returning its length, or `None` if `buf`
    /// is too short.
    pub fn emit(&self, buf: &mut [u8]) -> Option<usize> {
        let n = self.header_len();
        let hdr = buf.get_mut(..n)?;
        hdr[field::DST].copy_from_slice(&self.dst.0);
        hdr[field::SRC].copy_from_slice(&self.src.0);
        match self.tag {
            Some(tci) => {
                hdr[field::ETHERTYPE].copy_from_slice(&TPID_8021Q.to_be_bytes());
                hdr[field::TCI].copy_from_slice(&tci.0.to_be_bytes());
                hdr[field::INNER_ETHERTYPE].copy_from_slice(&self.ethertype.to_be_bytes());
            }
            None => hdr[field::ETHERTYPE].copy_from_slice(&self.ethertype.to_be_bytes()),
        }
        Some(n)
    }
    /// Convenience: a whole frame (header + payload) as a new vector.
    pub fn to_frame(&self, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; self.header_len() + payload.len()];
        let n = self.emit(&mut v).unwrap_or(0);
        v[n..].copy_from_slice(payload);
        v
    }
}

/// The rewrite a frame gets on its way out of one egress port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Edit {
    /// Copy unchanged (untagged in, untagged out).
    Keep,
    /// Insert an 802.1Q tag after the source MAC (untagged in, tagged out).
    Push(Tci),
    /// Remove the outer tag (tagged in, untagged out).
    Pop,
    /// Rewrite the outer TCI (tagged in, tagged out; e.g. a priority tag into VLAN N).
    SetTci(Tci),
}

impl Edit {
    /// Length of the frame after the edit, given the length before.
    #[inline]
    pub fn output_len(self, input_len: usize) -> usize {
        match self {
            Edit::Keep | Edit::SetTci(_) => input_len,
            Edit::Push(_) => input_len + VLAN_TAG_LEN,
            Edit::Pop => input_len.saturating_sub(VLAN_TAG_LEN),
        }
    }
}

/// Why an egress rewrite could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("output buffer too small ({need} bytes needed, {have} available)")]
    NoRoom { need: usize, have: usize },
    #[error("frame has no 802.1Q tag to pop or rewrite")]
    NotTagged,
    #[error("frame shorter than an Ethernet header")]
    Runt,
}

/// Copies `src` into `dst` applying `edit`; returns the number of bytes written.
///
/// This fuses the one copy every egress needs (into the egress port's memory) with the VLAN
/// transform, so push/pop cost no extra pass over the frame.
#[inline]
pub fn write_edited(src: &[u8], edit: Edit, dst: &mut [u8]) -> Result<usize, EditError> {
    if src.len() < ETH_HDR_LEN {
        return Err(EditError::Runt);
    }
    let need = edit.output_len(src.len());
    let have = dst.len();
    let out = dst
        .get_mut(..need)
        .ok_or(EditError::NoRoom { need, have })?;
    match edit {
        Edit::Keep => out.copy_from_slice(src),
        Edit::Push(tci) => {
            out[..12].copy_from_slice(&src[..12]);
            out[12..14].copy_from_slice(&TPID_8021Q.to_be_bytes());
            out[14..16].copy_from_slice(&tci.0.to_be_bytes());
            out[16..].copy_from_slice(&src[12..]);
        }
        Edit::Pop | Edit::SetTci(_) => {
            let f = EthernetFrame::new_checked(src).map_err(|_| EditError::NotTagged)?;
            if f.tag().is_none() {
                return Err(EditError::NotTagged);
            }
            match edit {
                Edit::Pop => {
                    out[..12].copy_from_slice(&src[..12]);
                    out[12..].copy_from_slice(&src[16..]);
                }
                Edit::SetTci(tci) => {
                    out.copy_from_slice(src);
                    out[14..16].copy_from_slice(&tci.0.to_be_bytes());
                }
                Edit::Keep | Edit::Push(_) => unreachable!("matched above"),
            }
        }
    }
    Ok(need)
}

/// The frame `src` after `edit` as up to three pieces to write one after the other (a
/// gather write: tap `writev`, AF_PACKET `sendmmsg`), without copying the frame: the
/// edited tag bytes go to `tag`. Unused pieces are empty. Errors as [`write_edited`].
#[inline]
pub fn edited_pieces<'a>(
    src: &'a [u8],
    edit: Edit,
    tag: &'a mut [u8; VLAN_TAG_LEN],
) -> Result<[&'a [u8]; 3], EditError> {
    if src.len() < ETH_HDR_LEN {
        return Err(EditError::Runt);
    }
    let tagged = || match EthernetFrame::new_checked(src) {
        Ok(f) if f.tag().is_some() => Ok(()),
        _ => Err(EditError::NotTagged),
    };
    match edit {
        Edit::Keep => Ok([src, &[], &[]]),
        Edit::Push(tci) => {
            tag[..2].copy_from_slice(&TPID_8021Q.to_be_bytes());
            tag[2..].copy_from_slice(&tci.0.to_be_bytes());
            let tag: &'a [u8; VLAN_TAG_LEN] = tag;
            Ok([&src[..12], tag, &src[12..]])
        }
        Edit::Pop => {
            tagged()?;
            Ok([&src[..12], &src[16..], &[]])
        }
        Edit::SetTci(tci) => {
            tagged()?;
            tag[..2].copy_from_slice(&TPID_8021Q.to_be_bytes());
            tag[2..].copy_from_slice(&tci.0.to_be_bytes());
            let tag: &'a [u8; VLAN_TAG_LEN] = tag;
            Ok([&src[..12], tag, &src[16..]])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edited_pieces_concatenate_to_what_write_edited_writes() {
        let mut tagged = vec![0u8; 80];
        tagged[..12].copy_from_slice(&[1, 2, 3, 4, 5, 6, 2, 0, 0, 0, 0, 9]);
        tagged[12..14].copy_from_slice(&TPID_8021Q.to_be_bytes());
        tagged[14..16].copy_from_slice(&[0x20, 0x0a]);
        tagged[16..18].copy_from_slice(&[0x08, 0x00]);
        for (i, b) in tagged[18..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let mut untagged = tagged.clone();
        untagged.drain(12..16);
        for (src, edit) in [
            (&untagged, Edit::Keep),
            (&untagged, Edit::Push(Tci(0x3064))),
            (&tagged, Edit::Pop),
            (&tagged, Edit::SetTci(Tci(7))),
            (&tagged, Edit::Keep),
        ] {
            let mut want = vec![0u8; 100];
            let n = write_edited(src, edit, &mut want).expect("edit");
            let mut tag = [0u8; VLAN_TAG_LEN];
            let got = edited_pieces(src, edit, &mut tag).expect("pieces").concat();
            assert_eq!(got, want[..n], "{edit:?}");
        }
        let mut tag = [0u8; VLAN_TAG_LEN];
        assert_eq!(
            edited_pieces(&untagged, Edit::Pop, &mut tag),
            Err(EditError::NotTagged)
        );
        assert_eq!(
            edited_pieces(&untagged[..13], Edit::Keep, &mut tag),
            Err(EditError::Runt)
        );
    }

    fn mac(s: &str) -> MacAddr {
        s.parse().expect("test MAC")
    }

    #[test]
    fn parse_untagged() {
        let mut f = [0u8; 60];
        f[..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let v = EthernetFrame::new_checked(&f[..]).expect("valid");
        assert_eq!(v.dst(), MacAddr::BROADCAST);
        assert_eq!(v.src(), mac("02:00:00:00:00:01"));
        assert_eq!(v.tag(), None);
        assert_eq!(v.ethertype(), EtherType::Ipv4);
        assert_eq!(v.header_len(), 14);
        assert_eq!(v.payload().len(), 46);
    }

    #[test]
    fn parse_tagged_and_fields() {
        let repr = EthernetRepr {
            dst: mac("02:00:00:00:00:02"),
            src: mac("02:00:00:00:00:01"),
            tag: Some(Tci::new(5, true, 100)),
            ethertype: 0x86dd,
        };
        let f = repr.to_frame(&[0xaa; 10]);
        assert_eq!(f.len(), 28);
        assert_eq!(&f[12..16], &[0x81, 0x00, 0xb0, 0x64]);
        let v = EthernetFrame::new_checked(&f[..]).expect("valid");
        let t = v.tag().expect("tagged");
        assert_eq!((t.pcp(), t.dei(), t.vid()), (5, true, 100));
        assert_eq!(v.ethertype(), EtherType::Ipv6);
        assert_eq!(EthernetRepr::parse(&v), repr);
        assert_eq!(v.payload(), &[0xaa; 10]);
    }

    #[test]
    fn runt_and_truncated_tag() {
        assert_eq!(
            EthernetFrame::new_checked(&[0u8; 13][..]).err(),
            Some(ParseError::Runt)
        );
        assert_eq!(
            EthernetFrame::new_checked(&[][..]).err(),
            Some(ParseError::Runt)
        );
        let mut f = [0u8; 17];
        f[12] = 0x81;
        assert_eq!(
            EthernetFrame::new_checked(&f[..]).err(),
            Some(ParseError::TruncatedTag)
        );
        // 14 bytes with ethertype 0x8100 is a truncated tag too.
        assert_eq!(
            EthernetFrame::new_checked(&f[..14]).err(),
            Some(ParseError::TruncatedTag)
        );
        let mut g = [0u8; 18];
        g[12] = 0x81;
        assert!(EthernetFrame::new_checked(&g[..]).expect("18 ok").tag() == Some(Tci(0)));
    }

    #[test]
    fn other_tpids_are_not_tags() {
        for tpid in [0x88a8u16, 0x9100] {
            let mut f = [0u8; 64];
            f[12..14].copy_from_slice(&tpid.to_be_bytes());
            let v = EthernetFrame::new_checked(&f[..]).expect("valid");
            assert_eq!(v.tag(), None, "tpid {tpid:#x}");
            assert_eq!(v.header_len(), 14);
        }
    }

    #[test]
    fn mac_classes() {
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(!MacAddr::ZERO.is_learnable());
        assert!(!mac("01:00:5e:00:00:01").is_learnable());
        assert!(mac("02:00:5e:00:00:01").is_learnable());
        for last in 0..=0x0fu8 {
            assert!(MacAddr([1, 0x80, 0xc2, 0, 0, last]).is_link_local_reserved());
        }
        assert!(!mac("01:80:c2:00:00:10").is_link_local_reserved());
        assert!(!mac("01:80:c2:00:01:00").is_link_local_reserved());
        let m = mac("12:34:56:78:9a:bc");
        assert_eq!(m.to_u64(), 0x1234_5678_9abc);
        assert_eq!(MacAddr::from_u64(m.to_u64()), m);
        assert_eq!(m.to_string(), "12:34:56:78:9a:bc");
    }

    #[test]
    fn mac_parse_errors() {
        for bad in [
            "",
            "1:2:3:4:5",
            "01:02:03:04:05:06:07",
            "0g:00:00:00:00:00",
            "001:0:0:0:0:0",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        assert_eq!(
            "1-2-3-a-b-c".parse::<MacAddr>().expect("dash form"),
            MacAddr([1, 2, 3, 0xa, 0xb, 0xc])
        );
    }

    #[test]
    fn push_pop_retag_roundtrip() {
        let untagged = EthernetRepr {
            dst: mac("02:00:00:00:00:02"),
            src: mac("02:00:00:00:00:01"),
            tag: None,
            ethertype: 0x0800,
        }
        .to_frame(&[7u8; 46]);
        let mut out = [0u8; 128];
        let n =
            write_edited(&untagged, Edit::Push(Tci::new(3, false, 200)), &mut out).expect("push");
        assert_eq!(n, 64);
        let v = EthernetFrame::new_checked(&out[..n]).expect("tagged");
        assert_eq!(v.tag(), Some(Tci::new(3, false, 200)));
        assert_eq!(v.ethertype(), EtherType::Ipv4);
        assert_eq!(v.payload(), &[7u8; 46]);

        let tagged = out[..n].to_vec();
        let mut back = [0u8; 128];
        let m = write_edited(&tagged, Edit::Pop, &mut back).expect("pop");
        assert_eq!(&back[..m], &untagged[..]);

        let k =
            write_edited(&tagged, Edit::SetTci(Tci::new(1, true, 7)), &mut back).expect("retag");
        assert_eq!(k, 64);
        assert_eq!(&back[14..16], &Tci::new(1, true, 7).0.to_be_bytes());
        assert_eq!(&back[16..k], &tagged[16..]);

        let c = write_edited(&untagged, Edit::Keep, &mut back).expect("keep");
        assert_eq!(&back[..c], &untagged[..]);
    }

    #[test]
    fn edit_errors() {
        let untagged = [0u8; 60];
        let mut out = [0u8; 63];
        assert_eq!(
            write_edited(&untagged, Edit::Push(Tci(1)), &mut out),
            Err(EditError::NoRoom { need: 64, have: 63 })
        );
        assert_eq!(
            write_edited(&untagged, Edit::Pop, &mut out),
            Err(EditError::NotTagged)
        );
        assert_eq!(
            write_edited(&untagged[..5], Edit::Keep, &mut out),
            Err(EditError::Runt)
        );
        let mut short_tag = [0u8; 16];
        short_tag[12] = 0x81;
        assert_eq!(
            write_edited(&short_tag, Edit::Pop, &mut out),
            Err(EditError::NotTagged)
        );
    }
}
