//! Typed values of VF settings: what the kernel reports ([`VfState`]) and what a user asks
//! for ([`VfConfig`]).
//!
//! Invariants: a [`MacAddr`] is always 6 bytes; a [`VlanSet`] only holds VIDs 1..=4094 and
//! is kept sorted and deduplicated; a [`VfConfig`] field that is `None` means "leave this
//! setting alone", never "reset it".

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// Why a textual value could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// Not six colon-separated hex octets.
    #[error("invalid MAC address '{0}' (expected six hex octets like 02:00:00:00:00:01)")]
    Mac(String),
    /// Not `802.1q` or `802.1ad`.
    #[error("invalid VLAN protocol '{0}' (expected 802.1q or 802.1ad)")]
    VlanProto(String),
    /// Not `auto`, `enable` or `disable`.
    #[error("invalid link state '{0}' (expected auto, enable or disable)")]
    LinkState(String),
    /// Not a comma-separated list of VIDs and ranges within 1..=4094.
    #[error("invalid VLAN list '{0}' (expected VIDs 1-4094 and ranges, like 10,20,100-199)")]
    VlanList(String),
}

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The all-zero address (drivers report it for a VF whose MAC the PF never set).
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// True for 00:00:00:00:00:00.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// True when the group bit (least significant bit of the first octet) is set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseError::Mac(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(err)?;
            if part.is_empty() || part.len() > 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The TPID a VF inserts for its port VLAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum VlanProto {
    /// 0x8100, the default.
    #[default]
    #[serde(rename = "802.1Q")]
    Dot1Q,
    /// 0x88a8 (QinQ service tag).
    #[serde(rename = "802.1ad")]
    Dot1Ad,
}

impl fmt::Display for VlanProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VlanProto::Dot1Q => "802.1Q",
            VlanProto::Dot1Ad => "802.1ad",
        })
    }
}

impl FromStr for VlanProto {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("802.1q") {
            Ok(VlanProto::Dot1Q)
        } else if s.eq_ignore_ascii_case("802.1ad") {
            Ok(VlanProto::Dot1Ad)
        } else {
            Err(ParseError::VlanProto(s.to_string()))
        }
    }
}

/// Administrative link state of a VF as the PF reports it to the VF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// Follow the PF's link (kernel default).
    #[default]
    Auto,
    /// Always up.
    Enable,
    /// Always down.
    Disable,
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkState::Auto => "auto",
            LinkState::Enable => "enable",
            LinkState::Disable => "disable",
        })
    }
}

impl FromStr for LinkState {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(LinkState::Auto),
            "enable" => Ok(LinkState::Enable),
            "disable" => Ok(LinkState::Disable),
            _ => Err(ParseError::LinkState(s.to_string())),
        }
    }
}

/// A set of VLAN IDs (1..=4094), kept sorted. Text form: `10,20,100-199`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct VlanSet(BTreeSet<u16>);

impl VlanSet {
    /// Lowest and highest VID a set may hold.
    pub const MIN: u16 = 1;
    /// Highest VID a set may hold (4095 is reserved).
    pub const MAX: u16 = 4094;

    /// Builds a set; VIDs outside 1..=4094 are rejected.
    pub fn from_vids<I: IntoIterator<Item = u16>>(vids: I) -> Result<Self, ParseError> {
        let mut set = BTreeSet::new();
        for v in vids {
            if !(Self::MIN..=Self::MAX).contains(&v) {
                return Err(ParseError::VlanList(v.to_string()));
            }
            set.insert(v);
        }
        Ok(VlanSet(set))
    }

    /// True when no VID is in the set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of VIDs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// VIDs in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().copied()
    }

    /// True when `vid` is in the set.
    pub fn contains(&self, vid: u16) -> bool {
        self.0.contains(&vid)
    }

    /// Maximal runs of consecutive VIDs as inclusive `(first, last)` pairs.
    pub fn ranges(&self) -> Vec<(u16, u16)> {
        let mut out: Vec<(u16, u16)> = Vec::new();
        for v in self.iter() {
            match out.last_mut() {
                Some((_, last)) if last.checked_add(1) == Some(v) => *last = v,
                _ => out.push((v, v)),
            }
        }
        out
    }

    /// VIDs in `self` and not in `other`.
    pub fn difference(&self, other: &VlanSet) -> VlanSet {
        VlanSet(self.0.difference(&other.0).copied().collect())
    }
}

impl fmt::Display for VlanSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (a, b) in self.ranges() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if a == b {
                write!(f, "{a}")?;
            } else {
                write!(f, "{a}-{b}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for VlanSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VlanSet({self})")
    }
}

impl FromStr for VlanSet {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseError::VlanList(s.to_string());
        let mut set = BTreeSet::new();
        for item in s.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(err());
            }
            let (a, b) = match item.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (item, item),
            };
            let a: u16 = a.parse().map_err(|_| err())?;
            let b: u16 = b.parse().map_err(|_| err())?;
            if a < Self::MIN || b > Self::MAX || a > b {
                return Err(err());
            }
            set.extend(a..=b);
        }
        Ok(VlanSet(set))
    }
}

impl Serialize for VlanSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for VlanSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Ok(VlanSet::default());
        }
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How a VF treats VLAN tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum VlanMode {
    /// The VF inserts/strips `vid` (port VLAN, "VST"); the guest sends untagged frames.
    Access {
        /// VLAN ID, 1..=4094.
        vid: u16,
        /// 802.1p priority inserted with the tag, 0..=7.
        qos: u8,
        /// TPID of the inserted tag.
        proto: VlanProto,
    },
    /// No VLAN enforced by the VF (`vlan 0`): the guest tags ("VGT"). `allowed` is an
    /// allow-list enforced by a vendor backend; `None` leaves the driver's list alone.
    Trunk {
        /// VLANs the guest may use, enforced by the driver's trunk backend.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        allowed: Option<VlanSet>,
    },
}

/// Settings a user wants on one VF. `None` = not managed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VfConfig {
    /// Access VLAN or trunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<VlanMode>,
    /// Administrative MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// Source MAC/VLAN anti-spoofing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spoofchk: Option<bool>,
    /// Trusted VF (may enable promiscuous mode, change its MAC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<bool>,
    /// Link state the VF sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_state: Option<LinkState>,
    /// Minimum TX rate in Mbit/s (0 = no guarantee).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_tx_rate: Option<u32>,
    /// Maximum TX rate in Mbit/s (0 = unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tx_rate: Option<u32>,
}

impl VfConfig {
    /// True when no setting is managed.
    pub fn is_empty(&self) -> bool {
        *self == VfConfig::default()
    }

    /// `self` with every setting `newer` manages replaced by `newer`'s value.
    pub fn overlay(&self, newer: &VfConfig) -> VfConfig {
        VfConfig {
            vlan: newer.vlan.clone().or_else(|| self.vlan.clone()),
            mac: newer.mac.or(self.mac),
            spoofchk: newer.spoofchk.or(self.spoofchk),
            trust: newer.trust.or(self.trust),
            link_state: newer.link_state.or(self.link_state),
            min_tx_rate: newer.min_tx_rate.or(self.min_tx_rate),
            max_tx_rate: newer.max_tx_rate.or(self.max_tx_rate),
        }
    }
}

/// The live configuration of one VF as the kernel reports it (RTM_GETLINK with
/// RTEXT_FILTER_VF), plus the vendor trunk allow-list where the driver has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VfState {
    /// VF index on its PF.
    pub vf: u32,
    /// Administrative MAC (zero when the PF never set one).
    pub mac: MacAddr,
    /// Port VLAN, 0 = none (trunk).
    pub vlan: u16,
    /// 802.1p priority of the port VLAN.
    pub qos: u8,
    /// TPID of the port VLAN.
    pub proto: VlanProto,
    /// Anti-spoofing (`None` when the kernel did not report it).
    pub spoofchk: Option<bool>,
    /// Trusted (`None` when the kernel did not report it).
    pub trust: Option<bool>,
    /// Link state (`None` when not reported or a value this tool does not know).
    pub link_state: Option<LinkState>,
    /// Minimum TX rate, Mbit/s.
    pub min_tx_rate: u32,
    /// Maximum TX rate, Mbit/s.
    pub max_tx_rate: u32,
    /// Vendor trunk allow-list (`None` when the driver has no trunk backend).
    #[serde(default)]
    pub trunk: Option<VlanSet>,
}

impl VfState {
    /// The VLAN mode these values amount to.
    pub fn vlan_mode(&self) -> VlanMode {
        if self.vlan == 0 {
            VlanMode::Trunk {
                allowed: self.trunk.clone(),
            }
        } else {
            VlanMode::Access {
                vid: self.vlan,
                qos: self.qos,
                proto: self.proto,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parses_and_prints() {
        let m: MacAddr = "02:AA:0b:00:00:01".parse().expect("valid mac");
        assert_eq!(m.0, [0x02, 0xaa, 0x0b, 0, 0, 1]);
        assert_eq!(m.to_string(), "02:aa:0b:00:00:01");
        assert!("02:aa:0b:00:00".parse::<MacAddr>().is_err());
        assert!("02:aa:0b:00:00:01:02".parse::<MacAddr>().is_err());
        assert!("02:aa:0b:00:00:1g".parse::<MacAddr>().is_err());
        assert!("02:aa:0b:00:00:100".parse::<MacAddr>().is_err());
        assert!("01:00:5e:00:00:01"
            .parse::<MacAddr>()
            .expect("valid")
            .is_multicast());
    }

    #[test]
    fn vlan_set_parses_ranges_and_prints_compactly() {
        let s: VlanSet = "20, 10,100-103,102".parse().expect("valid list");
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![10, 20, 100, 101, 102, 103]
        );
        assert_eq!(s.ranges(), vec![(10, 10), (20, 20), (100, 103)]);
        assert_eq!(s.to_string(), "10,20,100-103");
        assert_eq!(
            "0".parse::<VlanSet>(),
            Err(ParseError::VlanList("0".into()))
        );
        assert!("4095".parse::<VlanSet>().is_err());
        assert!("10-5".parse::<VlanSet>().is_err());
        assert!("10,,20".parse::<VlanSet>().is_err());
        assert!("x".parse::<VlanSet>().is_err());
        assert_eq!("4094".parse::<VlanSet>().expect("max").len(), 1);
    }

    #[test]
    fn enums_parse_case_insensitively() {
        assert_eq!("802.1Q".parse(), Ok(VlanProto::Dot1Q));
        assert_eq!("802.1AD".parse(), Ok(VlanProto::Dot1Ad));
        assert!("802.1x".parse::<VlanProto>().is_err());
        assert_eq!("Disable".parse(), Ok(LinkState::Disable));
        assert!("down".parse::<LinkState>().is_err());
    }

    #[test]
    fn config_serde_round_trip_has_stable_names() {
        let cfg = VfConfig {
            vlan: Some(VlanMode::Access {
                vid: 10,
                qos: 3,
                proto: VlanProto::Dot1Ad,
            }),
            mac: Some("02:00:00:00:00:01".parse().expect("mac")),
            spoofchk: Some(false),
            trust: None,
            link_state: Some(LinkState::Enable),
            min_tx_rate: None,
            max_tx_rate: Some(100),
        };
        let json = serde_json::to_string(&cfg).expect("serialize");
        assert_eq!(
            json,
            r#"{"vlan":{"mode":"access","vid":10,"qos":3,"proto":"802.1ad"},"mac":"02:00:00:00:00:01","spoofchk":false,"link_state":"enable","max_tx_rate":100}"#
        );
        let back: VfConfig = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, cfg);
        let trunk = VfConfig {
            vlan: Some(VlanMode::Trunk {
                allowed: Some("10,20".parse().expect("list")),
            }),
            ..VfConfig::default()
        };
        let json = serde_json::to_string(&trunk).expect("serialize");
        assert_eq!(json, r#"{"vlan":{"mode":"trunk","allowed":"10,20"}}"#);
        assert!(serde_json::from_str::<VfConfig>(r#"{"bogus":1}"#).is_err());
    }

    #[test]
    fn overlay_prefers_newer_fields() {
        let old = VfConfig {
            trust: Some(true),
            max_tx_rate: Some(10),
            ..VfConfig::default()
        };
        let new = VfConfig {
            max_tx_rate: Some(20),
            spoofchk: Some(false),
            ..VfConfig::default()
        };
        let merged = old.overlay(&new);
        assert_eq!(merged.trust, Some(true));
        assert_eq!(merged.max_tx_rate, Some(20));
        assert_eq!(merged.spoofchk, Some(false));
        assert_eq!(merged.vlan, None);
    }
}
