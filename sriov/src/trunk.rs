//! Vendor trunk allow-list backends (`device/sriov/N/trunk`).
//!
//! `trunk` on a VF means "no port VLAN" (`vlan 0`): the guest tags its own frames. Which
//! VLANs the guest may use can only be enforced by a driver that offers an allow-list:
//! - Mellanox VGT+ (mlx5_core/mlx4_core, OFED): `add START END` / `rem START END` lines,
//!   reads back as `Allowed 802.1Q VLANs: 10 11 12`;
//! - Intel out-of-tree i40e (and ice/iavf builds with the same sysfs): `add 2,4-7` /
//!   `rem 2,4-7`, reads back as `2,4-7`.
//!
//! Invariants: the backend is chosen from the driver name only when the trunk file
//! exists; an allow-list the driver cannot enforce is an error, never a silent downgrade
//! (the caller checks [`crate::sysfs::Sysfs::has_trunk`] before changing anything).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::VlanSet;

/// A trunk file that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("cannot parse trunk allow-list '{0}'")]
pub struct TrunkParseError(pub String);

/// How a driver's trunk file wants its commands written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrunkFormat {
    /// One `add START END` line per range (Mellanox VGT+).
    StartEnd,
    /// One `add 10,20-30` line (Intel out-of-tree drivers).
    CommaRanges,
}

impl TrunkFormat {
    /// The format a driver's trunk file uses (Intel drivers: comma ranges; others,
    /// Mellanox first among them: start/end lines).
    pub fn for_driver(driver: Option<&str>) -> TrunkFormat {
        match driver {
            Some("i40e" | "ice" | "iavf") => TrunkFormat::CommaRanges,
            _ => TrunkFormat::StartEnd,
        }
    }
}

/// Parses what a trunk file reads back: an optional `label:` prefix per line, then VIDs
/// and `a-b` ranges separated by spaces or commas.
pub fn parse_trunk(content: &str) -> Result<VlanSet, TrunkParseError> {
    let err = || TrunkParseError(content.trim().to_string());
    let mut vids = Vec::new();
    for line in content.lines() {
        let list = match line.rsplit_once(':') {
            Some((_, rest)) => rest,
            None => line,
        };
        for tok in list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
        {
            let (a, b) = match tok.split_once('-') {
                Some((a, b)) => (a, b),
                None => (tok, tok),
            };
            let a: u16 = a.parse().map_err(|_| err())?;
            let b: u16 = b.parse().map_err(|_| err())?;
            if a > b {
                return Err(err());
            }
            vids.extend(a..=b);
        }
    }
    VlanSet::from_vids(vids).map_err(|_| err())
}

/// The lines to write so that a trunk file holding `current` ends up holding `desired`:
/// removals first, then additions.
pub fn commands(current: &VlanSet, desired: &VlanSet, format: TrunkFormat) -> Vec<String> {
    let mut out = lines("rem", &current.difference(desired), format);
    out.extend(lines("add", &desired.difference(current), format));
    out
}

fn lines(op: &str, set: &VlanSet, format: TrunkFormat) -> Vec<String> {
    if set.is_empty() {
        return Vec::new();
    }
    match format {
        TrunkFormat::StartEnd => set
            .ranges()
            .into_iter()
            .map(|(a, b)| format!("{op} {a} {b}"))
            .collect(),
        TrunkFormat::CommaRanges => vec![format!("{op} {set}")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> VlanSet {
        s.parse().expect("vlan list")
    }

    #[test]
    fn parses_mellanox_and_intel_read_back() {
        assert_eq!(
            parse_trunk("Allowed 802.1Q VLANs: 10 11 12 20\n").expect("mlx"),
            set("10-12,20")
        );
        assert_eq!(parse_trunk("2,4-7\n").expect("intel"), set("2,4-7"));
        assert_eq!(parse_trunk("").expect("empty"), VlanSet::default());
        assert_eq!(
            parse_trunk("Allowed 802.1Q VLANs:\n").expect("none"),
            VlanSet::default()
        );
        assert!(parse_trunk("garbage").is_err());
        assert!(parse_trunk("4095").is_err());
        assert!(parse_trunk("7-3").is_err());
    }

    #[test]
    fn commands_remove_then_add_minimal_ranges() {
        let cur = set("10-12,30");
        let want = set("11-14,40");
        assert_eq!(
            commands(&cur, &want, TrunkFormat::StartEnd),
            vec!["rem 10 10", "rem 30 30", "add 13 14", "add 40 40"]
        );
        assert_eq!(
            commands(&cur, &want, TrunkFormat::CommaRanges),
            vec!["rem 10,30", "add 13-14,40"]
        );
        assert!(commands(&want, &want, TrunkFormat::StartEnd).is_empty());
    }

    #[test]
    fn format_follows_driver() {
        assert_eq!(
            TrunkFormat::for_driver(Some("i40e")),
            TrunkFormat::CommaRanges
        );
        assert_eq!(
            TrunkFormat::for_driver(Some("mlx5_core")),
            TrunkFormat::StartEnd
        );
        assert_eq!(TrunkFormat::for_driver(None), TrunkFormat::StartEnd);
    }
}
