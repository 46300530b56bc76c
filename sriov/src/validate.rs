//! Validation of requested VF settings, before anything is sent to the kernel.
//!
//! Rules (each one a unit test below):
//! - access VLAN: VID 1..=4094 (0 is "trunk", 4095 is reserved);
//! - QoS (802.1p priority) 0..=7, and only together with an access VLAN;
//! - 802.1ad only together with an access VLAN;
//! - access and trunk are exclusive; a trunk allow-list is not empty;
//! - MAC: unicast and non-zero;
//! - rates: min <= max unless max is 0 (unlimited).

use thiserror::Error;

use crate::model::{MacAddr, VfConfig, VlanMode, VlanProto, VlanSet};

/// A request that breaks one of the rules above.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValidationError {
    /// VID outside 1..=4094.
    #[error("access VLAN {0} out of range (1-4094; use trunk for no VLAN)")]
    VlanRange(u32),
    /// QoS outside 0..=7.
    #[error("qos {0} out of range (0-7)")]
    QosRange(u32),
    /// QoS given without an access VLAN.
    #[error("qos needs an access VLAN")]
    QosWithoutVlan,
    /// A protocol given without an access VLAN.
    #[error("VLAN protocol {0} needs an access VLAN")]
    ProtoWithoutVlan(VlanProto),
    /// Both access and trunk requested.
    #[error("access and trunk are exclusive")]
    AccessAndTrunk,
    /// `trunk` with an empty allow-list.
    #[error("trunk allow-list is empty")]
    EmptyTrunkList,
    /// Multicast/broadcast MAC.
    #[error("MAC {0} is multicast (a VF needs a unicast MAC)")]
    MacMulticast(MacAddr),
    /// All-zero MAC.
    #[error("MAC 00:00:00:00:00:00 is not a usable VF MAC")]
    MacZero,
    /// min > max with max limiting.
    #[error("min rate {min} Mbit/s is above max rate {max} Mbit/s")]
    RateOrder {
        /// Requested minimum.
        min: u32,
        /// Requested maximum.
        max: u32,
    },
    /// Nothing to change.
    #[error("no setting given")]
    Empty,
}

/// VLAN options as a user gives them (CLI flags, config keys), before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VlanRequest {
    /// `--access V`.
    pub access: Option<u32>,
    /// `--qos Q`.
    pub qos: Option<u32>,
    /// `--proto P`.
    pub proto: Option<VlanProto>,
    /// `--trunk [LIST]`: `Some(None)` = trunk without allow-list.
    pub trunk: Option<Option<VlanSet>>,
}

/// Turns VLAN options into a [`VlanMode`] (or `None` when no VLAN option was given).
pub fn vlan_mode(req: &VlanRequest) -> Result<Option<VlanMode>, ValidationError> {
    match (&req.access, &req.trunk) {
        (Some(_), Some(_)) => Err(ValidationError::AccessAndTrunk),
        (Some(vid), None) => {
            let mode = VlanMode::Access {
                vid: check_vid(*vid)?,
                qos: check_qos(req.qos.unwrap_or(0))?,
                proto: req.proto.unwrap_or_default(),
            };
            Ok(Some(mode))
        }
        (None, trunk) => {
            if req.qos.is_some() {
                return Err(ValidationError::QosWithoutVlan);
            }
            if let Some(proto) = req.proto {
                return Err(ValidationError::ProtoWithoutVlan(proto));
            }
            match trunk {
                None => Ok(None),
                Some(allowed) => {
                    if allowed.as_ref().is_some_and(VlanSet::is_empty) {
                        return Err(ValidationError::EmptyTrunkList);
                    }
                    Ok(Some(VlanMode::Trunk {
                        allowed: allowed.clone(),
                    }))
                }
            }
        }
    }
}

/// Checks a MAC a user wants to give a VF.
pub fn check_mac(mac: MacAddr) -> Result<MacAddr, ValidationError> {
    if mac.is_zero() {
        Err(ValidationError::MacZero)
    } else if mac.is_multicast() {
        Err(ValidationError::MacMulticast(mac))
    } else {
        Ok(mac)
    }
}

fn check_vid(vid: u32) -> Result<u16, ValidationError> {
    match u16::try_from(vid) {
        Ok(v) if (VlanSet::MIN..=VlanSet::MAX).contains(&v) => Ok(v),
        _ => Err(ValidationError::VlanRange(vid)),
    }
}

fn check_qos(qos: u32) -> Result<u8, ValidationError> {
    match u8::try_from(qos) {
        Ok(q) if q <= 7 => Ok(q),
        _ => Err(ValidationError::QosRange(qos)),
    }
}

/// Checks a whole config (as a daemon's config file or the journal holds it).
pub fn check_config(cfg: &VfConfig) -> Result<(), ValidationError> {
    if cfg.is_empty() {
        return Err(ValidationError::Empty);
    }
    match &cfg.vlan {
        Some(VlanMode::Access { vid, qos, .. }) => {
            check_vid(u32::from(*vid))?;
            check_qos(u32::from(*qos))?;
        }
        Some(VlanMode::Trunk { allowed: Some(set) }) if set.is_empty() => {
            return Err(ValidationError::EmptyTrunkList)
        }
        _ => {}
    }
    if let Some(mac) = cfg.mac {
        check_mac(mac)?;
    }
    if let (Some(min), Some(max)) = (cfg.min_tx_rate, cfg.max_tx_rate) {
        if max != 0 && min > max {
            return Err(ValidationError::RateOrder { min, max });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(vid: u32) -> VlanRequest {
        VlanRequest {
            access: Some(vid),
            ..VlanRequest::default()
        }
    }

    #[test]
    fn access_vlan_range_is_1_to_4094() {
        assert_eq!(
            vlan_mode(&access(1)),
            Ok(Some(VlanMode::Access {
                vid: 1,
                qos: 0,
                proto: VlanProto::Dot1Q
            }))
        );
        assert_eq!(
            vlan_mode(&access(4094)),
            Ok(Some(VlanMode::Access {
                vid: 4094,
                qos: 0,
                proto: VlanProto::Dot1Q
            }))
        );
        assert_eq!(vlan_mode(&access(0)), Err(ValidationError::VlanRange(0)));
        assert_eq!(
            vlan_mode(&access(4095)),
            Err(ValidationError::VlanRange(4095))
        );
        assert_eq!(
            vlan_mode(&access(70000)),
            Err(ValidationError::VlanRange(70000))
        );
    }

    #[test]
    fn qos_is_0_to_7_and_needs_a_vlan() {
        let mut req = access(10);
        req.qos = Some(7);
        req.proto = Some(VlanProto::Dot1Ad);
        assert_eq!(
            vlan_mode(&req),
            Ok(Some(VlanMode::Access {
                vid: 10,
                qos: 7,
                proto: VlanProto::Dot1Ad
            }))
        );
        req.qos = Some(8);
        assert_eq!(vlan_mode(&req), Err(ValidationError::QosRange(8)));
        let no_vlan = VlanRequest {
            qos: Some(3),
            ..VlanRequest::default()
        };
        assert_eq!(vlan_mode(&no_vlan), Err(ValidationError::QosWithoutVlan));
        let on_trunk = VlanRequest {
            qos: Some(0),
            trunk: Some(None),
            ..VlanRequest::default()
        };
        assert_eq!(vlan_mode(&on_trunk), Err(ValidationError::QosWithoutVlan));
    }

    #[test]
    fn dot1ad_needs_a_vlan() {
        let req = VlanRequest {
            proto: Some(VlanProto::Dot1Ad),
            ..VlanRequest::default()
        };
        assert_eq!(
            vlan_mode(&req),
            Err(ValidationError::ProtoWithoutVlan(VlanProto::Dot1Ad))
        );
        let trunk = VlanRequest {
            proto: Some(VlanProto::Dot1Ad),
            trunk: Some(None),
            ..VlanRequest::default()
        };
        assert_eq!(
            vlan_mode(&trunk),
            Err(ValidationError::ProtoWithoutVlan(VlanProto::Dot1Ad))
        );
    }

    #[test]
    fn access_and_trunk_are_exclusive_and_lists_not_empty() {
        let both = VlanRequest {
            access: Some(10),
            trunk: Some(None),
            ..VlanRequest::default()
        };
        assert_eq!(vlan_mode(&both), Err(ValidationError::AccessAndTrunk));
        let empty = VlanRequest {
            trunk: Some(Some(VlanSet::default())),
            ..VlanRequest::default()
        };
        assert_eq!(vlan_mode(&empty), Err(ValidationError::EmptyTrunkList));
        let list = VlanRequest {
            trunk: Some(Some("10,20".parse().expect("list"))),
            ..VlanRequest::default()
        };
        assert_eq!(
            vlan_mode(&list),
            Ok(Some(VlanMode::Trunk {
                allowed: Some("10,20".parse().expect("list"))
            }))
        );
        assert_eq!(vlan_mode(&VlanRequest::default()), Ok(None));
    }

    #[test]
    fn mac_must_be_unicast_and_non_zero() {
        let ok: MacAddr = "02:00:00:00:00:01".parse().expect("mac");
        assert_eq!(check_mac(ok), Ok(ok));
        assert_eq!(check_mac(MacAddr::ZERO), Err(ValidationError::MacZero));
        let mc: MacAddr = "01:00:5e:00:00:01".parse().expect("mac");
        assert_eq!(check_mac(mc), Err(ValidationError::MacMulticast(mc)));
        let bc: MacAddr = "ff:ff:ff:ff:ff:ff".parse().expect("mac");
        assert_eq!(check_mac(bc), Err(ValidationError::MacMulticast(bc)));
    }

    #[test]
    fn config_rules() {
        assert_eq!(
            check_config(&VfConfig::default()),
            Err(ValidationError::Empty)
        );
        let rates = VfConfig {
            min_tx_rate: Some(200),
            max_tx_rate: Some(100),
            ..VfConfig::default()
        };
        assert_eq!(
            check_config(&rates),
            Err(ValidationError::RateOrder { min: 200, max: 100 })
        );
        let unlimited = VfConfig {
            min_tx_rate: Some(200),
            max_tx_rate: Some(0),
            ..VfConfig::default()
        };
        assert_eq!(check_config(&unlimited), Ok(()));
        let bad_vid = VfConfig {
            vlan: Some(VlanMode::Access {
                vid: 4095,
                qos: 0,
                proto: VlanProto::Dot1Q,
            }),
            ..VfConfig::default()
        };
        assert_eq!(
            check_config(&bad_vid),
            Err(ValidationError::VlanRange(4095))
        );
        let bad_qos = VfConfig {
            vlan: Some(VlanMode::Access {
                vid: 5,
                qos: 9,
                proto: VlanProto::Dot1Q,
            }),
            ..VfConfig::default()
        };
        assert_eq!(check_config(&bad_qos), Err(ValidationError::QosRange(9)));
        let zero_mac = VfConfig {
            mac: Some(MacAddr::ZERO),
            ..VfConfig::default()
        };
        assert_eq!(check_config(&zero_mac), Err(ValidationError::MacZero));
    }

    #[test]
    fn messages_are_one_clear_line() {
        assert_eq!(
            ValidationError::VlanRange(4095).to_string(),
            "access VLAN 4095 out of range (1-4094; use trunk for no VLAN)"
        );
        assert_eq!(
            ValidationError::QosWithoutVlan.to_string(),
            "qos needs an access VLAN"
        );
    }
}
