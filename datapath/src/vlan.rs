//! The 802.1Q port VLAN model: access, trunk, trunk with a native VLAN (untagged or tagged
//! egress), as specified in `vlan-semantics.md`.
//!
//! Invariants kept here:
//! - A [`Vid`] is always 1..=4094; configuration can never name VID 0 or 4095.
//! - [`PortVlan::classify`] and [`PortVlan::egress_tagged`] are pure functions of the port
//!   mode and the frame's outer tag; the ingress set of a port equals its egress set
//!   ([`PortVlan::is_member`]), so a MAC learned on a port in VLAN v can always egress there.
//! - For native modes the native VLAN is implicitly allowed (as in Open vSwitch): a frame
//!   tagged with the native VID is accepted and the native VLAN egresses the port.

use core::fmt;
use core::str::FromStr;

use crate::counters::DropReason;
use crate::wire::Tci;

/// Wire VID reserved by 802.1Q ("no VLAN"/implementation use): always dropped.
pub const VID_RESERVED: u16 = 4095;

/// A configurable VLAN id, 1..=4094.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vid(u16);

/// A VLAN configuration error, naming the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VlanError {
    #[error("VLAN 0 is not a VLAN (VID 0 marks priority-tagged frames); use 1-4094")]
    Zero,
    #[error("VLAN 4095 is reserved by 802.1Q; use 1-4094")]
    Reserved,
    #[error("VLAN {0} is out of range; use 1-4094")]
    OutOfRange(u32),
    #[error("invalid VLAN list '{list}': {reason}")]
    BadList { list: String, reason: String },
}

impl Vid {
    pub const MIN: u16 = 1;
    pub const MAX: u16 = 4094;

    pub fn new(v: u32) -> Result<Vid, VlanError> {
        match v {
            0 => Err(VlanError::Zero),
            4095 => Err(VlanError::Reserved),
            1..=4094 => Ok(Vid(v as u16)),
            _ => Err(VlanError::OutOfRange(v)),
        }
    }
    #[inline]
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Vid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl fmt::Debug for Vid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Vid({})", self.0)
    }
}

impl FromStr for Vid {
    type Err = VlanError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let v: u32 = s.trim().parse().map_err(|_| VlanError::BadList {
            list: s.to_string(),
            reason: "not a number".into(),
        })?;
        Vid::new(v)
    }
}

/// A set of VLANs as a 4096-bit bitmap (bits 0 and 4095 are never set).
#[derive(Clone, PartialEq, Eq)]
pub struct VlanSet {
    bits: [u64; 64],
}

impl Default for VlanSet {
    fn default() -> Self {
        VlanSet::EMPTY
    }
}

impl VlanSet {
    pub const EMPTY: VlanSet = VlanSet { bits: [0; 64] };

    /// Every configurable VLAN, 1-4094.
    pub fn all() -> VlanSet {
        let mut s = VlanSet { bits: [!0; 64] };
        s.bits[0] &= !1; // VID 0
        s.bits[63] &= !(1 << 63); // VID 4095
        s
    }
    #[inline]
    pub fn contains(&self, vid: u16) -> bool {
        let v = usize::from(vid & 0x0fff);
        self.bits[v >> 6] & (1u64 << (v & 63)) != 0
    }
    pub fn insert(&mut self, vid: Vid) {
        let v = usize::from(vid.get());
        self.bits[v >> 6] |= 1u64 << (v & 63);
    }
    pub fn remove(&mut self, vid: Vid) {
        let v = usize::from(vid.get());
        self.bits[v >> 6] &= !(1u64 << (v & 63));
    }
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }
    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }
    pub fn is_all(&self) -> bool {
        *self == VlanSet::all()
    }
    /// Members in ascending order, word by word (an access port's set costs 64 word
    /// tests, not 4,094 bit tests).
    pub fn iter(&self) -> impl Iterator<Item = Vid> + '_ {
        self.bits.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                while w != 0 {
                    let b = w.trailing_zeros() as u16;
                    w &= w - 1;
                    let v = (i as u16) * 64 + b;
                    if (Vid::MIN..=Vid::MAX).contains(&v) {
                        return Some(Vid(v));
                    }
                }
                None
            })
        })
    }
    /// Inclusive ranges of consecutive members, ascending.
    pub fn ranges(&self) -> Vec<(Vid, Vid)> {
        let mut out: Vec<(Vid, Vid)> = Vec::new();
        for v in self.iter() {
            match out.last_mut() {
                Some((_, hi)) if hi.0 + 1 == v.0 => *hi = v,
                _ => out.push((v, v)),
            }
        }
        out
    }
}

impl FromIterator<Vid> for VlanSet {
    fn from_iter<I: IntoIterator<Item = Vid>>(iter: I) -> Self {
        let mut s = VlanSet::EMPTY;
        for v in iter {
            s.insert(v);
        }
        s
    }
}

/// Compact text form: `10,20-30,100`; `1-4094` for all.
impl fmt::Display for VlanSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (lo, hi) in self.ranges() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for VlanSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VlanSet[{self}]")
    }
}

/// Parses `10,20-30, 100`. An empty string is the empty set (the caller decides whether
/// that means "all", as a trunk does).
impl FromStr for VlanSet {
    type Err = VlanError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| VlanError::BadList {
            list: s.to_string(),
            reason,
        };
        let mut set = VlanSet::EMPTY;
        if s.trim().is_empty() {
            return Ok(set);
        }
        for item in s.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return Err(bad("empty item".into()));
            }
            let (lo, hi) = match item.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (item, item),
            };
            let num = |t: &str| -> Result<Vid, VlanError> {
                let n: u32 = t
                    .parse()
                    .map_err(|_| bad(format!("'{t}' is not a number")))?;
                Vid::new(n)
            };
            let (lo, hi) = (num(lo)?, num(hi)?);
            if lo > hi {
                return Err(bad(format!("range {lo}-{hi} is descending")));
            }
            for v in lo.0..=hi.0 {
                set.insert(Vid(v));
            }
        }
        Ok(set)
    }
}

/// How the native VLAN of a trunk leaves the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NativeEgress {
    /// OVS `native-untagged`: native VLAN frames leave untagged.
    Untagged,
    /// OVS `native-tagged`: native VLAN frames leave tagged like any other.
    Tagged,
}

/// A port's VLAN mode.
#[derive(Clone, PartialEq, Eq)]
pub enum PortVlan {
    /// `access V`: untagged (or priority-tagged) frames belong to V; tagged frames are dropped.
    Access(Vid),
    /// `trunk A [native N [tagged]]`.
    Trunk {
        /// Allowed VLANs (A; the native VLAN is added by [`PortVlan::trunk`]).
        allowed: Box<VlanSet>,
        native: Option<(Vid, NativeEgress)>,
    },
}

/// The VLAN a frame was classified into at ingress, with the priority bits it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    pub vid: u16,
    /// PCP and DEI bits (TCI with VID cleared) of the ingress tag, 0 when untagged.
    pub priority: u16,
}

impl PortVlan {
    /// A trunk. An empty `allowed` set means every VLAN (1-4094). The native VLAN, if any,
    /// is always allowed.
    pub fn trunk(allowed: VlanSet, native: Option<(Vid, NativeEgress)>) -> PortVlan {
        let mut allowed = if allowed.is_empty() {
            VlanSet::all()
        } else {
            allowed
        };
        if let Some((n, _)) = native {
            allowed.insert(n);
        }
        PortVlan::Trunk {
            allowed: Box::new(allowed),
            native,
        }
    }

    /// Ingress classification of a frame by its outer tag (vlan-semantics.md, table rows).
    #[inline]
    pub fn classify(&self, tag: Option<Tci>) -> Result<Classified, DropReason> {
        let (vid, priority) = match tag {
            None => (0, 0),
            Some(t) => (t.vid(), t.priority_bits()),
        };
        if vid == VID_RESERVED {
            return Err(DropReason::InvalidVid);
        }
        match self {
            PortVlan::Access(v) => {
                if vid != 0 {
                    Err(DropReason::TaggedOnAccess)
                } else {
                    Ok(Classified { vid: v.0, priority })
                }
            }
            PortVlan::Trunk { allowed, native } => {
                if vid == 0 {
                    match native {
                        Some((n, _)) => Ok(Classified { vid: n.0, priority }),
                        None => Err(DropReason::UntaggedOnTrunk),
                    }
                } else if allowed.contains(vid) {
                    Ok(Classified { vid, priority })
                } else {
                    Err(DropReason::VlanNotAllowed)
                }
            }
        }
    }

    /// Whether frames of VLAN `vid` may enter and leave this port.
    #[inline]
    pub fn is_member(&self, vid: u16) -> bool {
        match self {
            PortVlan::Access(v) => v.0 == vid,
            PortVlan::Trunk { allowed, .. } => allowed.contains(vid),
        }
    }

    /// The VID that leaves this port untagged, if any (access VLAN or native-untagged).
    #[inline]
    pub fn untagged_vid(&self) -> Option<Vid> {
        match self {
            PortVlan::Access(v) => Some(*v),
            PortVlan::Trunk {
                native: Some((n, NativeEgress::Untagged)),
                ..
            } => Some(*n),
            PortVlan::Trunk { .. } => None,
        }
    }

    /// Whether a frame of VLAN `vid` (a member) leaves this port tagged.
    #[inline]
    pub fn egress_tagged(&self, vid: u16) -> bool {
        self.untagged_vid().map(Vid::get) != Some(vid)
    }

    /// Every VLAN this port is a member of.
    pub fn members(&self) -> VlanSet {
        match self {
            PortVlan::Access(v) => [*v].into_iter().collect(),
            PortVlan::Trunk { allowed, .. } => (**allowed).clone(),
        }
    }
}

/// OVS-style text: `access 100`, `trunk 10,20-30`, `trunk all native 1 tagged`.
impl fmt::Display for PortVlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortVlan::Access(v) => write!(f, "access {v}"),
            PortVlan::Trunk { allowed, native } => {
                let mut shown = (**allowed).clone();
                if let Some((n, _)) = native {
                    shown.remove(*n);
                }
                if shown.is_all() || (native.is_some() && allowed.is_all()) {
                    write!(f, "trunk all")?;
                } else if shown.is_empty() {
                    // Only the native VLAN: name it rather than print an empty list.
                    write!(f, "trunk {allowed}")?;
                } else {
                    write!(f, "trunk {shown}")?;
                }
                match native {
                    Some((n, NativeEgress::Untagged)) => write!(f, " native {n}"),
                    Some((n, NativeEgress::Tagged)) => write!(f, " native {n} tagged"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl fmt::Debug for PortVlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PortVlan({self})")
    }
}

/// Parses the text form of [`fmt::Display`]: `access V` | `trunk [LIST|all] [native N
/// [tagged|untagged]]`.
impl FromStr for PortVlan {
    type Err = VlanError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| VlanError::BadList {
            list: s.to_string(),
            reason: reason.to_string(),
        };
        let mut words = s.split_whitespace();
        match words.next() {
            Some("access") => {
                let v = words.next().ok_or_else(|| bad("access needs a VLAN"))?;
                if words.next().is_some() {
                    return Err(bad("unexpected words after access VLAN"));
                }
                v.parse().map(PortVlan::Access)
            }
            Some("trunk") => {
                let mut allowed = VlanSet::EMPTY;
                let mut native = None;
                let mut next = words.next();
                if let Some(list) = next {
                    if list != "native" {
                        if list != "all" {
                            allowed = list.parse()?;
                        }
                        next = words.next();
                    }
                }
                if let Some(w) = next {
                    if w != "native" {
                        return Err(bad("expected 'native'"));
                    }
                    let n: Vid = words
                        .next()
                        .ok_or_else(|| bad("native needs a VLAN"))?
                        .parse()?;
                    let egress = match words.next() {
                        None | Some("untagged") => NativeEgress::Untagged,
                        Some("tagged") => NativeEgress::Tagged,
                        Some(_) => return Err(bad("expected 'tagged' or 'untagged'")),
                    };
                    native = Some((n, egress));
                }
                if words.next().is_some() {
                    return Err(bad("unexpected trailing words"));
                }
                Ok(PortVlan::trunk(allowed, native))
            }
            _ => Err(bad(
                "expected 'access V' or 'trunk [LIST] [native N [tagged]]'",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vid(v: u32) -> Vid {
        Vid::new(v).expect("valid test VID")
    }

    proptest::proptest! {
        /// `iter` yields exactly the members, ascending, for any set (VIDs 0 and 4095
        /// are never members).
        #[test]
        fn vlan_set_iter_yields_exactly_the_members(vids in proptest::collection::vec(1u16..=4094, 0..300)) {
            let mut s = VlanSet::EMPTY;
            for v in &vids {
                s.insert(Vid(*v));
            }
            let mut want: Vec<u16> = vids.clone();
            want.sort_unstable();
            want.dedup();
            let got: Vec<u16> = s.iter().map(Vid::get).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn vlan_set_iter_of_all() {
        let all: Vec<u16> = VlanSet::all().iter().map(Vid::get).collect();
        assert_eq!(all.len(), 4094);
        assert_eq!((all[0], all[4093]), (1, 4094));
        assert!(VlanSet::EMPTY.iter().next().is_none());
    }

    #[test]
    fn vid_range() {
        assert_eq!(Vid::new(0), Err(VlanError::Zero));
        assert_eq!(Vid::new(4095), Err(VlanError::Reserved));
        assert_eq!(Vid::new(4096), Err(VlanError::OutOfRange(4096)));
        assert_eq!(Vid::new(70000), Err(VlanError::OutOfRange(70000)));
        assert_eq!(Vid::new(1).map(Vid::get), Ok(1));
        assert_eq!(Vid::new(4094).map(Vid::get), Ok(4094));
    }

    #[test]
    fn vlan_set_parse_and_display() {
        let s: VlanSet = "10, 20-22,4094".parse().expect("list");
        assert_eq!(s.len(), 5);
        assert!(s.contains(21) && s.contains(4094) && !s.contains(23));
        assert_eq!(s.to_string(), "10,20-22,4094");
        assert_eq!(VlanSet::all().len(), 4094);
        assert!(!VlanSet::all().contains(0));
        assert!(!VlanSet::all().contains(4095));
        assert_eq!(VlanSet::all().to_string(), "1-4094");
        for bad in ["0", "4095", "1-4095", "x", "5-3", "1,,2", "-"] {
            assert!(bad.parse::<VlanSet>().is_err(), "{bad}");
        }
        assert!("".parse::<VlanSet>().expect("empty").is_empty());
    }

    #[test]
    fn port_vlan_text_roundtrip() {
        for text in [
            "access 100",
            "trunk all",
            "trunk 10,20-30",
            "trunk 10,20 native 5",
            "trunk all native 1 tagged",
        ] {
            let p: PortVlan = text.parse().expect(text);
            assert_eq!(p.to_string(), text);
        }
        assert_eq!(
            "trunk native 7"
                .parse::<PortVlan>()
                .expect("native only")
                .to_string(),
            "trunk all native 7"
        );
        for bad in [
            "",
            "access",
            "access 0",
            "access 4095",
            "access 5 6",
            "trunk 10 native",
            "trunk 10 native 4095",
            "trunk 10 native 5 sideways",
            "hybrid 5",
        ] {
            assert!(bad.parse::<PortVlan>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn native_vlan_is_member_even_if_not_listed() {
        let p = PortVlan::trunk(
            "10".parse().expect("list"),
            Some((vid(5), NativeEgress::Untagged)),
        );
        assert!(p.is_member(5) && p.is_member(10) && !p.is_member(11));
        assert!(!p.egress_tagged(5));
        assert!(p.egress_tagged(10));
        assert_eq!(
            p.classify(Some(Tci::new(0, false, 5))),
            Ok(Classified {
                vid: 5,
                priority: 0
            })
        );
    }
}
