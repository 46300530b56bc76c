//! The network configuration vswitch-cni accepts, checked once into typed settings.
//!
//! Keys (besides the spec's `cniVersion`, `name`, `type`, `ipam`, `dns`, `args`,
//! `runtimeConfig`, `capabilities`, `prevResult` and GC's `cni.dev/valid-attachments`):
//! `bridge`, `vlan` (access) or `trunk` ("10,20-30", "all", `[10, 20]` or ovs-cni's
//! `[{"id": 10}, {"minID": 20, "maxID": 30}]`) with `native`, `mtu`, `interfaceType`
//! ("veth" or "tap"), `mac`, `deviceID` (an SR-IOV VF's PCI address) with `spoofchk`,
//! `trust`, `linkState`, `minTxRate`, `maxTxRate`, and `socket`, `stateDir`,
//! `sriovStateDir`.
//!
//! Invariants: input that is not a JSON object is code 6; a key not listed above is
//! code 2 naming the key and its value; a value of the wrong type or out of range, or a
//! combination that does not apply (a VF option on a veth, `native` on an access port),
//! is code 7 naming the key. Nothing is created before this check passes.

use std::path::PathBuf;

use datapath::vlan::{NativeEgress, PortVlan, Vid, VlanSet};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::{invalid_config, CniError, Code};
use super::types::{CniResult, Dns, Version};
use crate::config::PortSpec;

/// Where attachment records are kept (per network, per container interface).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/vswitch/cni";

/// Every top-level key a configuration may have.
const KNOWN_KEYS: [&str; 28] = [
    "cniVersion",
    "cniVersions",
    "name",
    "type",
    "bridge",
    "vlan",
    "trunk",
    "native",
    "mtu",
    "interfaceType",
    "mac",
    "deviceID",
    "spoofchk",
    "trust",
    "linkState",
    "minTxRate",
    "maxTxRate",
    "socket",
    "stateDir",
    "sriovStateDir",
    "ipam",
    "dns",
    "args",
    "runtimeConfig",
    "capabilities",
    "prevResult",
    "cni.dev/valid-attachments",
    "cni.dev/attachments",
];

/// The configuration as JSON gives it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawConf {
    cni_version: String,
    #[serde(default)]
    cni_versions: Option<Vec<String>>,
    name: String,
    #[serde(rename = "type")]
    _kind: String,
    #[serde(default)]
    bridge: Option<String>,
    #[serde(default)]
    vlan: Option<u32>,
    #[serde(default)]
    trunk: Option<TrunkSpec>,
    #[serde(default)]
    native: Option<u32>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    interface_type: Option<InterfaceType>,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default, rename = "deviceID")]
    device_id: Option<String>,
    #[serde(default)]
    spoofchk: Option<OnOff>,
    #[serde(default)]
    trust: Option<OnOff>,
    #[serde(default)]
    link_state: Option<String>,
    #[serde(default)]
    min_tx_rate: Option<u32>,
    #[serde(default)]
    max_tx_rate: Option<u32>,
    #[serde(default)]
    socket: Option<PathBuf>,
    #[serde(default)]
    state_dir: Option<PathBuf>,
    #[serde(default)]
    sriov_state_dir: Option<PathBuf>,
    #[serde(default)]
    ipam: Option<Map<String, Value>>,
    #[serde(default)]
    dns: Option<Dns>,
    #[serde(default, rename = "args")]
    _args: Option<Value>,
    #[serde(default)]
    runtime_config: Option<RuntimeConfig>,
    #[serde(default, rename = "capabilities")]
    _capabilities: Option<Value>,
    #[serde(default)]
    prev_result: Option<Value>,
    #[serde(default, rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<GcAttachment>>,
    #[serde(default, rename = "cni.dev/attachments")]
    attachments: Option<Vec<GcAttachment>>,
}

/// The capability-based keys a runtime passes (`capabilities: {"mac": true}`).
#[derive(Debug, Default, Deserialize)]
struct RuntimeConfig {
    #[serde(default)]
    mac: Option<String>,
}

/// One entry of GC's valid attachments.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GcAttachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// `interfaceType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InterfaceType {
    /// A veth pair: the pod's end in its namespace, the host end a `packet` port.
    Veth,
    /// A tap the switch creates, moved into the pod's namespace (a `tap` port).
    Tap,
}

/// `spoofchk`/`trust`: a boolean, or sriov-cni's "on"/"off".
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OnOff {
    Bool(bool),
    Text(String),
}

impl OnOff {
    fn value(&self, key: &str) -> Result<bool, CniError> {
        match self {
            OnOff::Bool(b) => Ok(*b),
            OnOff::Text(t) if t == "on" => Ok(true),
            OnOff::Text(t) if t == "off" => Ok(false),
            OnOff::Text(t) => Err(invalid_config(format!(
                "{key}: '{t}' is not on, off, true or false"
            ))),
        }
    }
}

/// `trunk` in any of its spellings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum TrunkSpec {
    Text(String),
    List(Vec<TrunkItem>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum TrunkItem {
    Id(u32),
    Object(TrunkObject),
}

/// ovs-cni's trunk entries: `{"id": 10}` or `{"minID": 20, "maxID": 30}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrunkObject {
    #[serde(default)]
    id: Option<u32>,
    #[serde(default, rename = "minID")]
    min_id: Option<u32>,
    #[serde(default, rename = "maxID")]
    max_id: Option<u32>,
}

impl TrunkSpec {
    /// The list as text ("10,20-30", or "all").
    fn text(&self) -> Result<String, CniError> {
        let bad = |what: String| invalid_config(format!("trunk: {what}"));
        match self {
            TrunkSpec::Text(t) => Ok(t.trim().to_string()),
            TrunkSpec::List(items) => {
                let mut parts = Vec::new();
                for item in items {
                    parts.push(match item {
                        TrunkItem::Id(v) => v.to_string(),
                        TrunkItem::Object(TrunkObject {
                            id: Some(v),
                            min_id: None,
                            max_id: None,
                        }) => v.to_string(),
                        TrunkItem::Object(TrunkObject {
                            id: None,
                            min_id: Some(a),
                            max_id: Some(b),
                        }) => format!("{a}-{b}"),
                        TrunkItem::Object(o) => {
                            return Err(bad(format!(
                                "an entry needs either id or minID and maxID, not {o:?}"
                            )))
                        }
                    });
                }
                Ok(parts.join(","))
            }
        }
    }
}

/// What the pod's interface is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// A veth pair; the host end becomes a port of `bridge`.
    Veth { bridge: String },
    /// A tap port of `bridge`, moved into the pod.
    Tap { bridge: String },
    /// The SR-IOV VF at PCI address `device_id`, moved into the pod.
    Vf { device_id: String },
}

impl Mode {
    pub fn bridge(&self) -> Option<&str> {
        match self {
            Mode::Veth { bridge } | Mode::Tap { bridge } => Some(bridge),
            Mode::Vf { .. } => None,
        }
    }
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct NetConf {
    /// `cniVersion` as given, and as a number.
    pub version_text: String,
    pub version: Version,
    /// The network's `name`.
    pub name: String,
    pub mode: Mode,
    /// The switch port's VLAN mode (veth, tap); access VLAN 1 when neither `vlan` nor
    /// `trunk` is given.
    pub port_vlan: PortVlan,
    /// The VF's settings (deviceID); empty when none is asked.
    pub vf: sriov::VfConfig,
    pub mtu: Option<u32>,
    /// `mac` of the configuration or of `runtimeConfig` (CNI_ARGS `MAC` is applied by
    /// the caller, which has the environment).
    pub mac: Option<sriov::MacAddr>,
    /// The `ipam` section's `type`, when there is one.
    pub ipam: Option<String>,
    pub dns: Dns,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub sriov_state_dir: PathBuf,
    pub prev_result: Option<CniResult>,
    /// GC: the attachments the runtime still has.
    pub valid_attachments: Vec<GcAttachment>,
    /// The whole configuration, as given (delegated plugins get the same bytes).
    pub raw: Value,
}

/// The `cniVersion` of `input`, if it has a readable one (for error replies).
pub fn version_of(input: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(input).ok()?;
    v.get("cniVersion")?.as_str().map(str::to_string)
}

impl NetConf {
    /// Parses and checks a configuration; `default_socket` is used when it has no
    /// `socket` key.
    pub fn parse(input: &[u8], default_socket: PathBuf) -> Result<NetConf, CniError> {
        let raw: Value = serde_json::from_slice(input).map_err(|e| {
            CniError::new(
                Code::Decode,
                format!("network configuration is not valid JSON: {e}"),
            )
        })?;
        let Some(obj) = raw.as_object() else {
            return Err(CniError::new(
                Code::Decode,
                "network configuration is not a JSON object",
            ));
        };
        if let Some((k, v)) = obj.iter().find(|(k, _)| !KNOWN_KEYS.contains(&k.as_str())) {
            return Err(CniError::new(
                Code::UnsupportedField,
                format!("unsupported field \"{k}\": {v}"),
            )
            .with_details(format!("vswitch-cni knows: {}", KNOWN_KEYS.join(", "))));
        }
        let c: RawConf = serde_json::from_value(raw.clone())
            .map_err(|e| invalid_config(format!("network configuration: {e}")))?;
        let version = Version::supported(&c.cni_version).ok_or_else(|| {
            CniError::new(
                Code::IncompatibleVersion,
                format!(
                    "cniVersion {} is not supported (vswitch-cni speaks {})",
                    c.cni_version,
                    super::types::SUPPORTED_VERSIONS.join(", ")
                ),
            )
        })?;
        if let Some(list) = &c.cni_versions {
            if !list.iter().any(|v| Version::supported(v).is_some()) {
                return Err(CniError::new(
                    Code::IncompatibleVersion,
                    format!("cniVersions {list:?}: none is supported"),
                ));
            }
        }
        check_network_name(&c.name)?;
        let mode = mode(&c)?;
        let (port_vlan, vf) = vlans(&c, &mode)?;
        if let Some(mtu) = c.mtu {
            if !(68..=65535).contains(&mtu) {
                return Err(invalid_config(format!(
                    "mtu {mtu} is out of range (68-65535)"
                )));
            }
        }
        let mac = match c
            .runtime_config
            .as_ref()
            .and_then(|r| r.mac.clone())
            .or(c.mac.clone())
        {
            Some(m) => Some(parse_mac(&m)?),
            None => None,
        };
        let ipam = match &c.ipam {
            None => None,
            Some(m) if m.is_empty() => None,
            Some(m) => Some(
                m.get("type")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty() && !t.contains('/') && t != &"." && t != &"..")
                    .ok_or_else(|| {
                        invalid_config("ipam: needs a \"type\" naming a plugin in CNI_PATH")
                    })?
                    .to_string(),
            ),
        };
        let prev_result = match &c.prev_result {
            None => None,
            Some(v) => Some(
                serde_json::from_value::<CniResult>(v.clone())
                    .map_err(|e| invalid_config(format!("prevResult: {e}")))?,
            ),
        };
        let mut valid_attachments = c.valid_attachments.clone().unwrap_or_default();
        for a in c.attachments.clone().unwrap_or_default() {
            if !valid_attachments.contains(&a) {
                valid_attachments.push(a);
            }
        }
        Ok(NetConf {
            version_text: c.cni_version.clone(),
            version,
            name: c.name.clone(),
            mode,
            port_vlan,
            vf,
            mtu: c.mtu,
            mac,
            ipam,
            dns: c.dns.clone().unwrap_or_default(),
            socket: c.socket.clone().unwrap_or(default_socket),
            state_dir: c
                .state_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            sriov_state_dir: c
                .sriov_state_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(sriov::journal::DEFAULT_STATE_DIR)),
            prev_result,
            valid_attachments,
            raw,
        })
    }

    /// The switch port for an attachment: `name`, backed by `interface`, with this
    /// network's VLAN mode and MTU.
    pub fn port_spec(
        &self,
        name: &str,
        kind: crate::config::PortKind,
        interface: &str,
    ) -> PortSpec {
        let mut p = PortSpec::new(name, kind);
        p.interface = (interface != name).then(|| interface.to_string());
        p.set_vlan(&self.port_vlan);
        p.mtu = self.mtu;
        p
    }

    /// The MTU the pod's interface gets (the port's MTU).
    pub fn effective_mtu(&self) -> u32 {
        self.mtu.unwrap_or(datapath::topology::DEFAULT_MTU)
    }
}

fn mode(c: &RawConf) -> Result<Mode, CniError> {
    let vf_only = [
        ("spoofchk", c.spoofchk.is_some()),
        ("trust", c.trust.is_some()),
        ("linkState", c.link_state.is_some()),
        ("minTxRate", c.min_tx_rate.is_some()),
        ("maxTxRate", c.max_tx_rate.is_some()),
    ];
    match &c.device_id {
        Some(dev) => {
            if c.interface_type.is_some() {
                return Err(invalid_config(
                    "interfaceType applies to switch ports; with deviceID the pod gets the VF's \
                     own netdev",
                ));
            }
            if c.bridge.is_some() {
                return Err(invalid_config(
                    "bridge applies to switch ports; a VF (deviceID) is switched by its NIC",
                ));
            }
            check_pci(dev)?;
            Ok(Mode::Vf {
                device_id: dev.clone(),
            })
        }
        None => {
            if let Some((k, _)) = vf_only.iter().find(|(_, set)| *set) {
                return Err(invalid_config(format!(
                    "{k} applies to SR-IOV VFs (deviceID) only"
                )));
            }
            let bridge = c.bridge.clone().ok_or_else(|| {
                invalid_config("bridge: required (the vswitch bridge to attach pods to)")
            })?;
            crate::config::check_ifname(crate::config::NameOf::Given("bridge"), &bridge)
                .map_err(|e| invalid_config(e.to_string()))?;
            Ok(match c.interface_type.unwrap_or(InterfaceType::Veth) {
                InterfaceType::Veth => Mode::Veth { bridge },
                InterfaceType::Tap => Mode::Tap { bridge },
            })
        }
    }
}

/// The port VLAN (veth, tap) or the VF settings (deviceID) the configuration asks for.
fn vlans(c: &RawConf, mode: &Mode) -> Result<(PortVlan, sriov::VfConfig), CniError> {
    let vid = |key: &str, v: u32| Vid::new(v).map_err(|e| invalid_config(format!("{key}: {e}")));
    if c.vlan.is_some() && c.trunk.is_some() {
        return Err(invalid_config(
            "set either vlan (access) or trunk, not both",
        ));
    }
    if c.native.is_some() && c.trunk.is_none() {
        return Err(invalid_config("native applies to trunk ports only"));
    }
    let trunk = c.trunk.as_ref().map(TrunkSpec::text).transpose()?;
    if trunk.as_deref() == Some("") {
        return Err(invalid_config(
            "trunk: empty list (name VLANs, or \"all\" for every VLAN)",
        ));
    }
    if let Mode::Vf { .. } = mode {
        if c.native.is_some() {
            return Err(invalid_config(
                "native: a VF trunk has no native VLAN (the pod tags its frames)",
            ));
        }
        let vlan = match (c.vlan, &trunk) {
            (Some(v), _) => Some(sriov::VlanMode::Access {
                vid: vid("vlan", v)?.get(),
                qos: 0,
                proto: sriov::VlanProto::Dot1Q,
            }),
            (None, Some(list)) if list == "all" => Some(sriov::VlanMode::Trunk { allowed: None }),
            (None, Some(list)) => Some(sriov::VlanMode::Trunk {
                allowed: Some(
                    list.parse::<sriov::VlanSet>()
                        .map_err(|e| invalid_config(format!("trunk: {e}")))?,
                ),
            }),
            (None, None) => None,
        };
        let link_state = c
            .link_state
            .as_deref()
            .map(|s| {
                s.parse::<sriov::LinkState>()
                    .map_err(|e| invalid_config(format!("linkState: {e}")))
            })
            .transpose()?;
        let vf = sriov::VfConfig {
            vlan,
            mac: None,
            spoofchk: c
                .spoofchk
                .as_ref()
                .map(|v| v.value("spoofchk"))
                .transpose()?,
            trust: c.trust.as_ref().map(|v| v.value("trust")).transpose()?,
            link_state,
            min_tx_rate: c.min_tx_rate,
            max_tx_rate: c.max_tx_rate,
        };
        if !vf.is_empty() {
            sriov::validate::check_config(&vf).map_err(|e| invalid_config(e.to_string()))?;
        }
        return Ok((PortVlan::Access(vid("vlan", 1)?), vf));
    }
    let port_vlan = match (c.vlan, trunk) {
        (Some(v), _) => PortVlan::Access(vid("vlan", v)?),
        (None, Some(list)) => {
            let allowed = if list == "all" {
                VlanSet::EMPTY
            } else {
                list.parse::<VlanSet>()
                    .map_err(|e| invalid_config(format!("trunk: {e}")))?
            };
            let native = c
                .native
                .map(|n| vid("native", n).map(|n| (n, NativeEgress::Untagged)))
                .transpose()?;
            PortVlan::trunk(allowed, native)
        }
        (None, None) => PortVlan::Access(vid("vlan", 1)?),
    };
    Ok((port_vlan, sriov::VfConfig::default()))
}

fn parse_mac(s: &str) -> Result<sriov::MacAddr, CniError> {
    let mac: sriov::MacAddr = s.parse().map_err(|e| invalid_config(format!("mac: {e}")))?;
    sriov::validate::check_mac(mac).map_err(|e| invalid_config(format!("mac: {e}")))
}

/// A MAC from `CNI_ARGS` (`MAC=...`), checked like the configuration's.
pub fn mac_arg(s: &str) -> Result<sriov::MacAddr, CniError> {
    parse_mac(s).map_err(|e| CniError::new(Code::InvalidEnvironment, format!("CNI_ARGS {}", e.msg)))
}

/// A network name as the spec allows it (it also names a state directory).
fn check_network_name(name: &str) -> Result<(), CniError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(invalid_config(format!(
            "name '{name}': must start with a letter or digit and hold only letters, digits, \
             '_', '.', '-'"
        )))
    }
}

/// A PCI address "DDDD:BB:DD.F" (the domain may be omitted).
fn check_pci(dev: &str) -> Result<(), CniError> {
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    let parts: Vec<&str> = dev.split(':').collect();
    let (bus, slot_fn) = match parts.as_slice() {
        [dom, bus, rest] if hex(dom, 4) => (*bus, *rest),
        [bus, rest] => (*bus, *rest),
        _ => ("", ""),
    };
    let ok = hex(bus, 2)
        && slot_fn
            .split_once('.')
            .is_some_and(|(s, f)| hex(s, 2) && f.len() == 1 && f.chars().all(|c| c.is_digit(8)));
    if ok {
        Ok(())
    } else {
        Err(invalid_config(format!(
            "deviceID '{dev}' is not a PCI address (e.g. 0000:03:02.0)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<NetConf, CniError> {
        NetConf::parse(json.as_bytes(), PathBuf::from("/run/vswitch/vswitchd.sock"))
    }

    fn err(json: &str) -> (u32, String) {
        let e = parse(json).expect_err("invalid");
        (e.code.number(), e.msg)
    }

    const BASE: &str = r#""cniVersion":"1.0.0","name":"net1","type":"vswitch-cni""#;

    #[test]
    fn access_trunk_and_defaults() {
        let c = parse(&format!(
            r#"{{{BASE},"bridge":"br0","vlan":100,"mtu":9000,"ipam":{{"type":"host-local"}}}}"#
        ))
        .expect("access");
        assert_eq!(
            c.mode,
            Mode::Veth {
                bridge: "br0".into()
            }
        );
        assert_eq!(c.port_vlan.to_string(), "access 100");
        assert_eq!(c.ipam.as_deref(), Some("host-local"));
        assert_eq!(c.effective_mtu(), 9000);
        assert_eq!(c.socket, PathBuf::from("/run/vswitch/vswitchd.sock"));
        let p = c.port_spec("abc-eth0", crate::config::PortKind::Packet, "abc-eth0");
        assert_eq!(
            (p.access, p.mtu, p.interface),
            (Some(100), Some(9000), None)
        );

        for (trunk, want) in [
            (r#""10,20-22""#, "trunk 10,20-22"),
            ("[10, 20]", "trunk 10,20"),
            (
                r#"[{"id": 10}, {"minID": 20, "maxID": 22}]"#,
                "trunk 10,20-22",
            ),
            (r#""all""#, "trunk all"),
        ] {
            let c = parse(&format!(
                r#"{{{BASE},"bridge":"br0","trunk":{trunk},"interfaceType":"tap"}}"#
            ))
            .expect(trunk);
            assert_eq!(c.port_vlan.to_string(), want, "{trunk}");
            assert_eq!(
                c.mode,
                Mode::Tap {
                    bridge: "br0".into()
                }
            );
        }
        let c = parse(&format!(
            r#"{{{BASE},"bridge":"br0","trunk":"10,20","native":5}}"#
        ))
        .expect("native");
        assert_eq!(c.port_vlan.to_string(), "trunk 10,20 native 5");
        let c = parse(&format!(r#"{{{BASE},"bridge":"br0"}}"#)).expect("default");
        assert_eq!(c.port_vlan.to_string(), "access 1");
        assert_eq!(c.ipam, None);
    }

    #[test]
    fn vf_settings() {
        let c = parse(&format!(
            r#"{{{BASE},"deviceID":"0000:03:02.1","vlan":10,"spoofchk":"off","trust":true,"mac":"02:00:00:00:00:21"}}"#
        ))
        .expect("vf");
        assert_eq!(
            c.mode,
            Mode::Vf {
                device_id: "0000:03:02.1".into()
            }
        );
        assert_eq!(
            c.vf.vlan,
            Some(sriov::VlanMode::Access {
                vid: 10,
                qos: 0,
                proto: sriov::VlanProto::Dot1Q
            })
        );
        assert_eq!((c.vf.spoofchk, c.vf.trust), (Some(false), Some(true)));
        assert_eq!(
            c.mac.map(|m| m.to_string()).as_deref(),
            Some("02:00:00:00:00:21")
        );
        let c = parse(&format!(
            r#"{{{BASE},"deviceID":"03:02.1","trunk":"10,20-21"}}"#
        ))
        .expect("vf trunk");
        assert_eq!(
            c.vf.vlan,
            Some(sriov::VlanMode::Trunk {
                allowed: Some("10,20-21".parse().expect("set"))
            })
        );
    }

    #[test]
    fn bad_input_gets_the_spec_codes_and_names_the_key() {
        for (json, code, msg) in [
            (
                "{not json".to_string(),
                6,
                "network configuration is not valid JSON",
            ),
            (
                "[1,2]".to_string(),
                6,
                "network configuration is not a JSON object",
            ),
            (
                format!(r#"{{{BASE},"bridge":"br0","vlna":100}}"#),
                2,
                "unsupported field \"vlna\": 100",
            ),
            (
                r#"{"cniVersion":"0.2.0","name":"n","type":"vswitch-cni","bridge":"b"}"#
                    .to_string(),
                1,
                "cniVersion 0.2.0 is not supported",
            ),
            (format!(r#"{{{BASE}}}"#), 7, "bridge: required"),
            (
                format!(r#"{{{BASE},"bridge":"br0","vlan":5000}}"#),
                7,
                "vlan: VLAN 5000 is out of range; use 1-4094",
            ),
            (
                format!(r#"{{{BASE},"bridge":"br0","vlan":"100"}}"#),
                7,
                "network configuration: invalid type: string \"100\", expected u32",
            ),
            (
                format!(r#"{{{BASE},"bridge":"br0","vlan":10,"trunk":"20"}}"#),
                7,
                "set either vlan (access) or trunk, not both",
            ),
            (
                format!(r#"{{{BASE},"bridge":"br0","vlan":10,"native":5}}"#),
                7,
                "native applies to trunk ports only",
            ),
            (
                format!(r#"{{{BASE},"bridge":"br0","trunk":"10,5000"}}"#),
                7,
                "trunk: ",
            ),
            (
                format!(r#"{{{BASE},"bridge":"br0","trunk":[]}}"#),
                7,
                "trunk: empty list",
            ),
            (
                format!(r#"{{{BASE},"bridge":"br0","mtu":40}}"#),
                7,
                "mtu 40 is out of range (68-65535)",
            ),
            (
                format!(r#"{{{BASE},"bridge":"br0","spoofchk":"off"}}"#),
                7,
                "spoofchk applies to SR-IOV VFs (deviceID) only",
            ),
            (
                format!(r#"{{{BASE},"bridge":"br0","mac":"01:00:5e:00:00:01"}}"#),
                7,
                "mac: ",
            ),
            (
                format!(r#"{{{BASE},"deviceID":"eth0"}}"#),
                7,
                "deviceID 'eth0' is not a PCI address",
            ),
            (
                format!(r#"{{{BASE},"deviceID":"0000:03:02.1","bridge":"br0"}}"#),
                7,
                "bridge applies to switch ports",
            ),
            (
                format!(r#"{{{BASE},"bridge":"br0","ipam":{{"type":"../x"}}}}"#),
                7,
                "ipam: needs a \"type\"",
            ),
            (
                format!(r#"{{{BASE},"bridge":"br0","interfaceType":"macvlan"}}"#),
                7,
                "network configuration: unknown variant `macvlan`",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"../x","type":"vswitch-cni","bridge":"b"}"#
                    .to_string(),
                7,
                "name '../x'",
            ),
        ] {
            let (c, m) = err(&json);
            assert_eq!(c, code, "{json}: {m}");
            assert!(m.starts_with(msg), "{json}: {m}");
        }
    }
}
