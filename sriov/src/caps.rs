//! What a PF's driver can do with its VFs: settings (from a table of drivers whose VF
//! ndo callbacks are known) and trunk enforcement (probed in sysfs).
//!
//! Invariants: the table only says `yes`/`no` for drivers listed in it, `unknown`
//! otherwise (the kernel is then asked and its answer reported); trunk allow-list support
//! is never guessed, it exists only when the VF's `device/sriov/N/trunk` file exists.

use serde::Serialize;

use crate::sysfs::{PfDevice, Sysfs, SysfsError};
use crate::trunk::TrunkFormat;

/// Whether a driver implements a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Support {
    /// Implemented.
    Yes,
    /// Not implemented: the kernel answers EOPNOTSUPP/EPROTONOSUPPORT/EINVAL.
    No,
    /// Driver not in the table: the request is sent and the kernel's answer reported.
    Unknown,
}

/// Per-setting support of a driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SettingCaps {
    /// Port VLAN (access) and `vlan 0` (trunk).
    pub vlan: Support,
    /// 802.1p priority with the port VLAN.
    pub qos: Support,
    /// 802.1ad port VLAN.
    pub proto_8021ad: Support,
    /// Administrative MAC.
    pub mac: Support,
    /// Anti-spoofing.
    pub spoofchk: Support,
    /// Trusted VF.
    pub trust: Support,
    /// Link state auto/enable/disable.
    pub link_state: Support,
    /// Minimum TX rate.
    pub min_tx_rate: Support,
    /// Maximum TX rate.
    pub max_tx_rate: Support,
}

impl SettingCaps {
    const UNKNOWN: SettingCaps = SettingCaps {
        vlan: Support::Unknown,
        qos: Support::Unknown,
        proto_8021ad: Support::Unknown,
        mac: Support::Unknown,
        spoofchk: Support::Unknown,
        trust: Support::Unknown,
        link_state: Support::Unknown,
        min_tx_rate: Support::Unknown,
        max_tx_rate: Support::Unknown,
    };

    /// The table entry for `driver` (mainline kernel VF callbacks), if listed.
    pub fn for_driver(driver: &str) -> Option<SettingCaps> {
        use Support::{No, Yes};
        let row = |ad, link_state, min_tx_rate| SettingCaps {
            vlan: Yes,
            qos: Yes,
            proto_8021ad: ad,
            mac: Yes,
            spoofchk: Yes,
            trust: Yes,
            link_state,
            min_tx_rate,
            max_tx_rate: Yes,
        };
        match driver {
            // igb: no ndo_set_vf_link_state; 802.1Q only; min rate must be 0.
            // Verified under QEMU's igb (82576) model, see sriov/README.md.
            "igb" => Some(row(No, No, No)),
            // ixgbe and i40e: 802.1Q only; min rate must be 0.
            "ixgbe" | "i40e" => Some(row(No, Yes, No)),
            // mlx5_core: everything, 802.1ad included.
            "mlx5_core" => Some(row(Yes, Yes, Yes)),
            _ => None,
        }
    }
}

/// How trunk VFs can be restricted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrunkCaps {
    /// `trunk` as "no port VLAN" (`vlan 0`), available wherever port VLANs are.
    pub untagged_passthrough: Support,
    /// Allow-list enforcement: `"vendor-sysfs"` or `"none"`.
    pub allow_list: &'static str,
    /// Command format of the vendor trunk file, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_list_format: Option<TrunkFormat>,
    /// VFs that have a trunk file.
    pub vfs_with_trunk_file: Vec<u32>,
}

/// Capabilities of one PF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caps {
    /// Interface name.
    pub pf: String,
    /// Driver bound to the PF.
    pub driver: Option<String>,
    /// `sriov_totalvfs`.
    pub total_vfs: u32,
    /// `sriov_numvfs`.
    pub num_vfs: u32,
    /// True when the driver is in the settings table.
    pub driver_known: bool,
    /// Per-setting support.
    pub settings: SettingCaps,
    /// Trunk enforcement.
    pub trunk: TrunkCaps,
}

/// Probes the capabilities of `pf`.
pub fn probe(sysfs: &Sysfs, pf: &str) -> Result<Caps, SysfsError> {
    let dev: PfDevice = sysfs.pf(pf)?;
    let known = dev.driver.as_deref().and_then(SettingCaps::for_driver);
    let settings = known.unwrap_or(SettingCaps::UNKNOWN);
    let with_file: Vec<u32> = dev
        .vfs
        .iter()
        .map(|v| v.vf)
        .filter(|&vf| sysfs.has_trunk(pf, vf))
        .collect();
    let trunk = TrunkCaps {
        untagged_passthrough: settings.vlan,
        allow_list: if with_file.is_empty() {
            "none"
        } else {
            "vendor-sysfs"
        },
        allow_list_format: (!with_file.is_empty())
            .then(|| TrunkFormat::for_driver(dev.driver.as_deref())),
        vfs_with_trunk_file: with_file,
    };
    Ok(Caps {
        pf: dev.name,
        driver: dev.driver,
        total_vfs: dev.total_vfs,
        num_vfs: dev.num_vfs,
        driver_known: known.is_some(),
        settings,
        trunk,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::fake;

    #[test]
    fn igb_without_trunk_file_has_no_allow_list() {
        let dir = tempfile::tempdir().expect("tempdir");
        fake::add_nic(dir.path(), "eth0", "0000:01:00.0", "igb", Some(7), 2, false).expect("nic");
        let caps = probe(&Sysfs::new(dir.path()), "eth0").expect("caps");
        assert_eq!(caps.driver.as_deref(), Some("igb"));
        assert!(caps.driver_known);
        assert_eq!(caps.settings.trust, Support::Yes);
        assert_eq!(caps.settings.link_state, Support::No);
        assert_eq!(caps.settings.proto_8021ad, Support::No);
        assert_eq!(caps.settings.min_tx_rate, Support::No);
        assert_eq!(caps.trunk.allow_list, "none");
        assert_eq!(caps.trunk.allow_list_format, None);
        let json = serde_json::to_value(&caps).expect("json");
        assert_eq!(json["settings"]["link_state"], "no");
        assert_eq!(json["trunk"]["allow_list"], "none");
        assert_eq!(json["trunk"]["untagged_passthrough"], "yes");
    }

    #[test]
    fn trunk_file_enables_vendor_allow_list() {
        let dir = tempfile::tempdir().expect("tempdir");
        fake::add_nic(
            dir.path(),
            "p0",
            "0000:05:00.0",
            "mlx5_core",
            Some(8),
            2,
            true,
        )
        .expect("nic");
        fake::add_trunk_file(dir.path(), "0000:05:00.0", 0, "").expect("t0");
        fake::add_trunk_file(dir.path(), "0000:05:00.0", 1, "").expect("t1");
        let caps = probe(&Sysfs::new(dir.path()), "p0").expect("caps");
        assert_eq!(caps.trunk.allow_list, "vendor-sysfs");
        assert_eq!(caps.trunk.allow_list_format, Some(TrunkFormat::StartEnd));
        assert_eq!(caps.trunk.vfs_with_trunk_file, vec![0, 1]);
        assert_eq!(caps.settings.proto_8021ad, Support::Yes);
    }

    #[test]
    fn unknown_driver_is_unknown_not_guessed() {
        let dir = tempfile::tempdir().expect("tempdir");
        fake::add_nic(dir.path(), "q0", "0000:06:00.0", "qede", Some(4), 0, false).expect("nic");
        let caps = probe(&Sysfs::new(dir.path()), "q0").expect("caps");
        assert!(!caps.driver_known);
        assert_eq!(caps.settings, SettingCaps::UNKNOWN);
        assert_eq!(caps.trunk.untagged_passthrough, Support::Unknown);
    }
}
