//! The CNI result (what ADD prints and what CHECK and DEL get back as `prevResult`), the
//! spec versions this plugin speaks, and the address-with-prefix type results carry.
//!
//! Invariants: a result is printed in the shape of the configuration's `cniVersion`
//! ([`CniResult::for_version`]): `ips[].version` only before 1.0.0, interface `mtu` and
//! `pciID` only from 1.1.0 on. Parsing is lenient about fields it does not use, because
//! results also come from delegated plugins of other versions.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Spec versions this plugin speaks, oldest first.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
/// The newest of [`SUPPORTED_VERSIONS`].
pub const LATEST_VERSION: &str = "1.1.0";

/// A spec version, compared numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    pub const V0_4_0: Version = Version(0, 4, 0);
    pub const V1_0_0: Version = Version(1, 0, 0);
    pub const V1_1_0: Version = Version(1, 1, 0);

    /// A version this plugin speaks, or `None`.
    pub fn supported(s: &str) -> Option<Version> {
        if !SUPPORTED_VERSIONS.contains(&s) {
            return None;
        }
        let mut it = s.split('.').map(|p| p.parse::<u32>().ok());
        Some(Version(it.next()??, it.next()??, it.next()??))
    }
}

/// An interface address with its prefix length, "10.1.0.5/24" (host bits kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn is_v4(&self) -> bool {
        self.addr.is_ipv4()
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<IpNet, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}' is not ADDRESS/PREFIX"))?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("'{s}': '{a}' is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("'{s}': prefix '{p}' is not 0-{max}"))?;
        Ok(IpNet { addr, prefix })
    }
}

impl Serialize for IpNet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One interface of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// 1.1.0 and later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The namespace path, for interfaces inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// 1.1.0 and later: the PCI address of an SR-IOV VF.
    #[serde(default, rename = "pciID", skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<String>,
}

/// One address of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// "4" or "6", before 1.0.0 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// One route of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// DNS settings of a result (or of a network configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        *self == Dns::default()
    }
}

/// A result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    #[serde(default)]
    pub cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub dns: Dns,
}

impl CniResult {
    /// The result in the shape of spec version `v` (`text` is its spelling).
    pub fn for_version(mut self, v: Version, text: &str) -> CniResult {
        self.cni_version = text.to_string();
        for ip in &mut self.ips {
            ip.version = (v < Version::V1_0_0).then(|| {
                if ip.address.is_v4() {
                    "4".to_string()
                } else {
                    "6".to_string()
                }
            });
        }
        if v < Version::V1_1_0 {
            for i in &mut self.interfaces {
                i.mtu = None;
                i.pci_id = None;
            }
        }
        self
    }

    /// The index of the interface named `name` inside the sandbox `netns`.
    pub fn sandbox_interface(&self, name: &str) -> Option<usize> {
        self.interfaces
            .iter()
            .position(|i| i.name == name && i.sandbox.is_some())
    }

    /// The addresses of interface `index`.
    pub fn addresses_of(&self, index: usize) -> Vec<IpNet> {
        self.ips
            .iter()
            .filter(|ip| ip.interface == Some(index))
            .map(|ip| ip.address)
            .collect()
    }
}

/// What VERSION prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    pub cni_version: String,
    pub supported_versions: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipnet_parses_prints_and_refuses_bad_input() {
        let n: IpNet = "10.1.0.5/24".parse().expect("v4");
        assert_eq!(n.to_string(), "10.1.0.5/24");
        let n6: IpNet = "fd00::5/64".parse().expect("v6");
        assert_eq!(n6.prefix, 64);
        assert!(!n6.is_v4());
        for bad in [
            "10.1.0.5",
            "10.1.0.5/33",
            "fd00::1/129",
            "x/24",
            "10.1.0.5/-1",
            "",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn result_takes_the_shape_of_its_version() {
        let r = CniResult {
            cni_version: String::new(),
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: Some("02:00:00:00:00:01".into()),
                mtu: Some(1500),
                sandbox: Some("/run/netns/x".into()),
                pci_id: None,
            }],
            ips: vec![IpConfig {
                version: None,
                address: "10.1.0.5/24".parse().expect("ip"),
                gateway: Some("10.1.0.1".parse().expect("gw")),
                interface: Some(0),
            }],
            routes: vec![],
            dns: Dns::default(),
        };
        let v1 =
            serde_json::to_string(&r.clone().for_version(Version::V1_0_0, "1.0.0")).expect("json");
        assert_eq!(
            v1,
            r#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":"02:00:00:00:00:01","sandbox":"/run/netns/x"}],"ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1","interface":0}],"dns":{}}"#
        );
        let v11 =
            serde_json::to_string(&r.clone().for_version(Version::V1_1_0, "1.1.0")).expect("json");
        assert!(v11.contains(r#""mtu":1500"#), "{v11}");
        let v04 = serde_json::to_string(&r.for_version(Version::V0_4_0, "0.4.0")).expect("json");
        assert!(
            v04.contains(r#""ips":[{"version":"4","address":"10.1.0.5/24""#),
            "{v04}"
        );
    }

    #[test]
    fn versions_are_the_supported_ones() {
        assert_eq!(Version::supported("1.0.0"), Some(Version::V1_0_0));
        assert_eq!(Version::supported("0.3.1"), Some(Version(0, 3, 1)));
        assert_eq!(Version::supported("0.2.0"), None);
        assert_eq!(Version::supported("2.0.0"), None);
        assert_eq!(Version::supported("1.0"), None);
        assert!(Version::V0_4_0 < Version::V1_0_0);
    }

    #[test]
    fn results_of_older_plugins_parse() {
        // host-local 1.1.1 answering a 0.4.0 configuration.
        let text = r#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.77.0.10/24","gateway":"10.77.0.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}"#;
        let r: CniResult = serde_json::from_str(text).expect("parse");
        assert_eq!(r.ips[0].address.to_string(), "10.77.0.10/24");
        assert_eq!(r.routes[0].dst.to_string(), "0.0.0.0/0");
        assert_eq!(r.routes[0].gw, None);
    }
}
