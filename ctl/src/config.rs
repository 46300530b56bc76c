//! The declarative configuration (TOML): the daemon's source of truth.
//!
//! Invariants kept here:
//! - Unknown keys are rejected (`deny_unknown_fields`); a file that does not parse or
//!   validate is rejected as a whole with the line and the reason, and nothing changes.
//! - [`Config::validate`] turns every field into datapath types ([`PortVlan`], [`Vid`],
//!   [`MacAddr`]) up front, so nothing stringly-typed travels inward.
//! - [`Config::save`] writes atomically: temporary file, fsync, rename, fsync of the
//!   directory. A crash leaves either the old or the new file, never a torn one.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use datapath::topology::{FloodPolicy, PortConfig, StormPolicy, DEFAULT_MTU};
use datapath::vlan::{NativeEgress, PortVlan, Vid, VlanSet};
use datapath::wire::MacAddr;
use datapath::worker::{PollMode, PollPolicy};
use serde::{Deserialize, Serialize};

/// Errors of loading, validating or saving a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}

/// Whole-daemon configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub datapath: DatapathSection,
    #[serde(default)]
    pub fdb: FdbSection,
    #[serde(default)]
    pub metrics: MetricsSection,
    #[serde(default, rename = "bridge", skip_serializing_if = "Vec::is_empty")]
    pub bridges: Vec<BridgeConfig>,
    /// SR-IOV VFs the daemon configures at start-up and on reload (drift is reported).
    #[serde(default, rename = "vf", skip_serializing_if = "Vec::is_empty")]
    pub vfs: Vec<VfSpec>,
}

/// Desired settings of one SR-IOV VF, e.g.
/// `[[vf]] pf = "eth0"  vf = 0  settings = { vlan = { mode = "access", vid = 10, qos = 3, proto = "802.1Q" } }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VfSpec {
    pub pf: String,
    pub vf: u32,
    #[serde(default)]
    pub settings: sriov::VfConfig,
}

/// PMD worker placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatapathSection {
    /// PMD threads per bridge.
    #[serde(default = "DatapathSection::default_workers")]
    pub workers: usize,
    /// CPUs to pin workers to (worker i on cpus[i % len]); empty: not pinned.
    #[serde(default)]
    pub cpus: Vec<usize>,
    /// Frames per receive burst.
    #[serde(default = "DatapathSection::default_burst")]
    pub burst: usize,
    /// The XDP fast path: known unicast between AF_XDP ports of a bridge is forwarded in
    /// the kernel by the bridge's XDP program (one per bridge, its FDB sized by
    /// `fdb.capacity`); everything else still goes through the workers. Tap ports are
    /// unaffected. Egress devices must accept XDP-redirected frames (NIC drivers with
    /// `ndo_xdp_xmit`, taps, veths whose peer has GRO on or an XDP program); see
    /// `datapath::fastpath`. Changing it restarts the bridges.
    #[serde(default)]
    pub xdp_fast_path: bool,
    /// The packet ports' fast path (on by default): known unicast from a packet port (a
    /// pod's veth, a VM's tap) to another fast-path port of the bridge is forwarded by the
    /// kernel (an eBPF socket filter decides, a tcx ingress program redirects), GSO
    /// superframes whole, in the sender's softirq; everything else still goes through the
    /// workers. Off: every frame goes through the workers. Changing it restarts the
    /// bridges.
    #[serde(default = "DatapathSection::default_packet_fast_path")]
    pub packet_fast_path: bool,
    /// What an idle worker does: `spin` (never blocks; lowest latency, a busy CPU per
    /// worker), `adaptive` (spins for `adaptive_window_us` after the last frame, then
    /// blocks), `sleep` (blocks almost at once; least CPU). Changing it does not restart
    /// anything: the workers switch at their next burst.
    #[serde(default, with = "poll_mode_serde")]
    pub poll_mode: PollMode,
    /// `adaptive`: microseconds a worker keeps polling after the last frame it moved
    /// (at most 1 s).
    #[serde(default = "DatapathSection::default_adaptive_window_us")]
    pub adaptive_window_us: u64,
}

impl DatapathSection {
    fn default_workers() -> usize {
        1
    }
    fn default_burst() -> usize {
        32
    }
    fn default_packet_fast_path() -> bool {
        true
    }
    fn default_adaptive_window_us() -> u64 {
        datapath::worker::poll::ADAPTIVE_WINDOW.as_micros() as u64
    }

    /// The workers' poll policy.
    pub fn poll(&self) -> PollPolicy {
        PollPolicy {
            mode: self.poll_mode,
            adaptive_window: Duration::from_micros(self.adaptive_window_us),
        }
    }

    /// Equal but for what running workers change without a restart (the poll policy).
    pub fn same_workers(&self, other: &DatapathSection) -> bool {
        let mut o = other.clone();
        o.poll_mode = self.poll_mode;
        o.adaptive_window_us = self.adaptive_window_us;
        *self == o
    }
}

/// `poll_mode` as its name (`"spin"`, `"adaptive"`, `"sleep"`) in the config file and
/// the control protocol.
pub mod poll_mode_serde {
    use datapath::worker::PollMode;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &PollMode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(m.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PollMode, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl Default for DatapathSection {
    fn default() -> Self {
        DatapathSection {
            workers: 1,
            cpus: Vec::new(),
            burst: 32,
            xdp_fast_path: false,
            packet_fast_path: true,
            poll_mode: PollMode::default(),
            adaptive_window_us: DatapathSection::default_adaptive_window_us(),
        }
    }
}

/// MAC learning table parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FdbSection {
    #[serde(default = "FdbSection::default_aging")]
    pub aging_secs: u64,
    #[serde(default = "FdbSection::default_capacity")]
    pub capacity: usize,
}

impl FdbSection {
    fn default_aging() -> u64 {
        datapath::fdb::DEFAULT_AGING_SECS
    }
    fn default_capacity() -> usize {
        datapath::fdb::DEFAULT_CAPACITY
    }
}

impl Default for FdbSection {
    fn default() -> Self {
        FdbSection {
            aging_secs: FdbSection::default_aging(),
            capacity: FdbSection::default_capacity(),
        }
    }
}

/// Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Loopback address to serve `/metrics` on, e.g. "127.0.0.1:9464"; unset: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

/// One switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    pub name: String,
    #[serde(default, rename = "port", skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
    #[serde(default, rename = "static_mac", skip_serializing_if = "Vec::is_empty")]
    pub static_macs: Vec<StaticMac>,
}

/// Port backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortKind {
    /// An existing netdev with the backend that suits it ([`PortKind::resolve`]): `packet`
    /// for virtual devices (veth, a VM's tap), whose senders use checksum offload and TSO;
    /// `afxdp` for a NIC (a device with a bus), the packet-rate path.
    Auto,
    /// AF_XDP on an existing netdev (uplink NIC; a veth end only when its peer sends
    /// without TX checksum offload).
    Afxdp,
    /// AF_PACKET with `PACKET_VNET_HDR` on an existing netdev (a pod's veth host end, a
    /// VM's tap): superframes and partial checksums end to end.
    Packet,
    /// A tap device the switch creates.
    Tap,
}

impl PortKind {
    /// The backend a port of this kind uses on `interface`: `Auto` becomes `Packet` for a
    /// virtual device (no bus device in sysfs: veth, tun/tap, macvlan, ...) and `Afxdp`
    /// for a NIC; the others stay as they are.
    pub fn resolve(self, interface: &str) -> PortKind {
        match self {
            PortKind::Auto => {
                let nic = std::path::Path::new("/sys/class/net")
                    .join(interface)
                    .join("device")
                    .exists();
                if nic {
                    PortKind::Afxdp
                } else {
                    PortKind::Packet
                }
            }
            k => k,
        }
    }
}

impl fmt::Display for PortKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortKind::Auto => "auto",
            PortKind::Afxdp => "afxdp",
            PortKind::Packet => "packet",
            PortKind::Tap => "tap",
        })
    }
}

/// XDP attach mode for afxdp ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeSpec {
    #[default]
    Auto,
    Native,
    Generic,
}

impl fmt::Display for XdpModeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XdpModeSpec::Auto => "auto",
            XdpModeSpec::Native => "native",
            XdpModeSpec::Generic => "generic",
        })
    }
}

/// Bytes the kernel keeps free at the start of every AF_XDP UMEM frame
/// (`XDP_PACKET_HEADROOM`); the frame's data follows.
pub const AFXDP_HEADROOM: u32 = 256;
/// UMEM frame sizes an AF_XDP port can use: the kernel takes power-of-two chunks of 2048
/// bytes up to a page. A longer Ethernet frame spans several UMEM frames (AF_XDP
/// multi-buffer).
pub const AFXDP_FRAME_SIZES: [u32; 2] = [2048, AFXDP_MAX_FRAME_SIZE];
/// The largest of [`AFXDP_FRAME_SIZES`].
pub const AFXDP_MAX_FRAME_SIZE: u32 = 4096;
/// Ethernet header without and with one 802.1Q tag.
const ETH_HLEN: u32 = 14;
const VLAN_HLEN: u32 = 4;

/// Longest Ethernet frame (bytes) one UMEM frame of `frame_size` bytes holds.
pub fn afxdp_frame_capacity(frame_size: u32) -> u32 {
    frame_size - AFXDP_HEADROOM
}

/// Largest MTU an AF_XDP port carries: a frame of MTU + 18 bytes (Ethernet header and a
/// tag) must fit the 9238-byte buffers frames cross workers in (9216, the usual jumbo
/// maximum); above one UMEM frame the port runs AF_XDP multi-buffer.
pub const AFXDP_MAX_MTU: u32 = 9216;

/// Largest MTU one UMEM frame carries without multi-buffer: the largest UMEM frame's
/// capacity minus the Ethernet header, and minus a tag when the port sends tagged frames
/// (3826 untagged, 3822 tagged with 4096-byte frames).
pub fn afxdp_single_frame_mtu(tagged: bool) -> u32 {
    afxdp_frame_capacity(AFXDP_MAX_FRAME_SIZE) - ETH_HLEN - if tagged { VLAN_HLEN } else { 0 }
}

/// One port: its I/O and its forwarding policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: PortKind,
    /// The netdev (afxdp) or the tap device to create (tap); default: the port name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(default = "one")]
    pub queues: u32,
    #[serde(default)]
    pub xdp_mode: XdpModeSpec,
    /// AF_XDP: detach an XDP program found on the interface even when it is not
    /// vswitch's (a libxdp dispatcher, a firewall). Without it only vswitch's own stale
    /// program (after a kill -9) is replaced, and any other is an error naming it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub xdp_replace: bool,
    /// Access VLAN (exclusive with `trunk`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<u16>,
    /// Trunk allowed VLANs, e.g. "10,20-30"; "" or "all" for 1-4094.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunk: Option<String>,
    /// Native VLAN of a trunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<u16>,
    /// Native VLAN leaves tagged (OVS native-tagged) instead of untagged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub native_tagged: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub isolated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learn_limit: Option<u32>,
    #[serde(default = "yes")]
    pub flood_unknown: bool,
    #[serde(default = "yes")]
    pub flood_multicast: bool,
    #[serde(default = "yes")]
    pub flood_broadcast: bool,
    /// Storm control: most broadcast / multicast / unknown-unicast frames per second this
    /// port may flood into the switch (unset: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_broadcast_pps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_multicast_pps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_unknown_pps: Option<u32>,
    /// Who created the port on whose behalf (a pod's interface, by the CNI plugin); shown
    /// by `show`. The datapath ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<PortOwner>,
}

/// Who a port was created for, when a tool created it on someone's behalf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "lowercase", deny_unknown_fields)]
pub enum PortOwner {
    /// A pod's interface attached by `vswitch-cni` (see docs/cni.md).
    Cni(CniAttachment),
}

/// One CNI attachment: a container's interface on a CNI network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CniAttachment {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`: the interface's name inside the pod.
    pub ifname: String,
    /// `CNI_NETNS`: the pod's network namespace (`vswitchctl cni-gc` removes the port
    /// once it is gone).
    pub netns: String,
    /// The CNI network's `name`.
    pub network: String,
    /// "namespace/name" of the Kubernetes pod (`K8S_POD_NAMESPACE`/`K8S_POD_NAME` in
    /// `CNI_ARGS`), when the runtime says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
}

impl fmt::Display for PortOwner {
    /// "cni pod default/web container 3f2a9c1b07e4 eth0 network vlan100".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortOwner::Cni(a) => {
                f.write_str("cni")?;
                if let Some(pod) = &a.pod {
                    write!(f, " pod {pod}")?;
                }
                let short: String = a.container_id.chars().take(12).collect();
                write!(f, " container {short} {} network {}", a.ifname, a.network)
            }
        }
    }
}

impl PortSpec {
    /// A port with defaults: access VLAN 1 unless set otherwise.
    pub fn new(name: &str, kind: PortKind) -> PortSpec {
        PortSpec {
            name: name.to_string(),
            kind,
            interface: None,
            queues: 1,
            xdp_mode: XdpModeSpec::Auto,
            xdp_replace: false,
            access: None,
            trunk: None,
            native: None,
            native_tagged: false,
            mtu: None,
            isolated: false,
            learn_limit: None,
            flood_unknown: true,
            flood_multicast: true,
            flood_broadcast: true,
            storm_broadcast_pps: None,
            storm_multicast_pps: None,
            storm_unknown_pps: None,
            owner: None,
        }
    }

    /// The netdev this port uses.
    pub fn interface(&self) -> &str {
        self.interface.as_deref().unwrap_or(&self.name)
    }

    /// The port's VLAN mode; no VLAN setting means access VLAN 1 (as OVS and the Linux
    /// bridge default).
    pub fn vlan(&self) -> Result<PortVlan, String> {
        let vid = |v: u16, what: &str| {
            Vid::new(u32::from(v)).map_err(|e| format!("port {}: {what}: {e}", self.name))
        };
        match (&self.access, &self.trunk) {
            (Some(_), Some(_)) => Err(format!(
                "port {}: set either access or trunk, not both",
                self.name
            )),
            (Some(v), None) => {
                if self.native.is_some() || self.native_tagged {
                    return Err(format!(
                        "port {}: native VLAN applies to trunk ports only",
                        self.name
                    ));
                }
                Ok(PortVlan::Access(vid(*v, "access")?))
            }
            (None, Some(list)) => {
                let allowed = if list.trim() == "all" {
                    VlanSet::EMPTY
                } else {
                    list.parse::<VlanSet>()
                        .map_err(|e| format!("port {}: trunk: {e}", self.name))?
                };
                let native = match self.native {
                    Some(n) => Some((
                        vid(n, "native")?,
                        if self.native_tagged {
                            NativeEgress::Tagged
                        } else {
                            NativeEgress::Untagged
                        },
                    )),
                    None if self.native_tagged => {
                        return Err(format!(
                            "port {}: native_tagged needs a native VLAN",
                            self.name
                        ))
                    }
                    None => None,
                };
                Ok(PortVlan::trunk(allowed, native))
            }
            (None, None) => {
                if self.native.is_some() || self.native_tagged {
                    return Err(format!(
                        "port {}: native VLAN applies to trunk ports only",
                        self.name
                    ));
                }
                Ok(PortVlan::Access(vid(1, "access")?))
            }
        }
    }

    /// Sets the VLAN fields from a mode.
    pub fn set_vlan(&mut self, vlan: &PortVlan) {
        self.access = None;
        self.trunk = None;
        self.native = None;
        self.native_tagged = false;
        match vlan {
            PortVlan::Access(v) => self.access = Some(v.get()),
            PortVlan::Trunk { allowed, native } => {
                let mut shown = (**allowed).clone();
                if let Some((n, _)) = native {
                    shown.remove(*n);
                }
                // The native VLAN is implied (allowed anyway) and not repeated; a trunk
                // carrying only its native VLAN keeps that one VID (an empty list would
                // read back as "all").
                self.trunk = Some(if shown.is_all() {
                    "all".to_string()
                } else if shown.is_empty() {
                    allowed.to_string()
                } else {
                    shown.to_string()
                });
                if let Some((n, egress)) = native {
                    self.native = Some(n.get());
                    self.native_tagged = *egress == NativeEgress::Tagged;
                }
            }
        }
    }

    /// The MTU the datapath enforces on this port (the default when unset).
    pub fn effective_mtu(&self) -> u32 {
        self.mtu.unwrap_or(DEFAULT_MTU)
    }

    /// UMEM frame size (bytes) an AF_XDP port needs for its MTU: the smallest of
    /// [`AFXDP_FRAME_SIZES`] that holds a frame of MTU + 18 bytes (Ethernet header and a
    /// tag, sent or received), else the largest. The daemon reopens the port when this
    /// changes.
    pub fn afxdp_frame_size(&self) -> u32 {
        let need = self.effective_mtu().saturating_add(ETH_HLEN + VLAN_HLEN);
        AFXDP_FRAME_SIZES
            .into_iter()
            .find(|&f| afxdp_frame_capacity(f) >= need)
            .unwrap_or(AFXDP_MAX_FRAME_SIZE)
    }

    /// The longest frame an AF_XDP port must receive and send when one UMEM frame does
    /// not hold it (MTU + 18 bytes: Ethernet header and a tag): the port then runs AF_XDP
    /// multi-buffer. `None`: one UMEM frame holds every frame of the MTU.
    pub fn afxdp_max_frame(&self) -> Option<u32> {
        let need = self.effective_mtu().saturating_add(ETH_HLEN + VLAN_HLEN);
        (need > afxdp_frame_capacity(self.afxdp_frame_size())).then_some(need)
    }

    /// Refuses an AF_XDP port whose MTU is above [`AFXDP_MAX_MTU`]. Other ports: `Ok`.
    pub fn check_afxdp_mtu(&self) -> Result<(), String> {
        if self.kind != PortKind::Afxdp {
            return Ok(());
        }
        let mtu = self.effective_mtu();
        if mtu <= AFXDP_MAX_MTU {
            return Ok(());
        }
        Err(format!(
            "port {}: MTU {mtu} is too large for an AF_XDP port: at most {AFXDP_MAX_MTU} \
             (frames of MTU + 18 bytes cross workers in {}-byte buffers)",
            self.name,
            datapath::worker::DatapathConfig::default().max_frame,
        ))
    }

    /// The datapath's view of this port.
    pub fn port_config(&self) -> Result<PortConfig, String> {
        let mut c = PortConfig::new(self.name.clone(), self.vlan()?);
        c.mtu = self.mtu.unwrap_or(DEFAULT_MTU);
        c.isolated = self.isolated;
        c.learn_limit = self.learn_limit;
        c.flood = FloodPolicy {
            unknown_unicast: self.flood_unknown,
            multicast: self.flood_multicast,
            broadcast: self.flood_broadcast,
        };
        c.storm = StormPolicy {
            broadcast_pps: self.storm_broadcast_pps,
            multicast_pps: self.storm_multicast_pps,
            unknown_unicast_pps: self.storm_unknown_pps,
        };
        Ok(c)
    }
}

/// A static FDB entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticMac {
    pub vlan: u16,
    pub mac: String,
    pub port: String,
}

impl StaticMac {
    pub fn parsed(&self) -> Result<(Vid, MacAddr), String> {
        let vid =
            Vid::new(u32::from(self.vlan)).map_err(|e| format!("static MAC {}: {e}", self.mac))?;
        let mac: MacAddr = self.mac.parse().map_err(|e| format!("static MAC: {e}"))?;
        if !mac.is_learnable() {
            return Err(format!("static MAC {mac}: must be unicast and non-zero"));
        }
        Ok((vid, mac))
    }
}

/// A valid interface name: 1-15 bytes, no '/', ':' or whitespace (Linux IFNAMSIZ rules).
pub fn check_ifname(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!("{what} '{name}': must be 1-15 characters"));
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(format!("{what} '{name}': invalid interface name"));
    }
    Ok(())
}

impl Config {
    /// Reads and validates a file. A missing file is an empty configuration only when
    /// `missing_ok`.
    pub fn load(path: &Path, missing_ok: bool) -> Result<Config, ConfigError> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if missing_ok && e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        Config::parse(&text, path)
    }

    /// Parses and validates TOML text (`path` only names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let c: Config = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(0);
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                reason: e.message().to_string(),
            }
        })?;
        c.validate().map_err(|reason| {
            // Point at the line that names the offending object when we can find it.
            let line = find_line(text, &reason);
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                reason,
            }
        })?;
        Ok(c)
    }

    /// Checks everything the datapath will need, naming the object and the cause.
    pub fn validate(&self) -> Result<(), String> {
        let d = &self.datapath;
        if d.workers == 0 || d.workers > datapath::worker::MAX_WORKERS {
            return Err(format!(
                "datapath.workers: {} is out of range (1-{})",
                d.workers,
                datapath::worker::MAX_WORKERS
            ));
        }
        if d.burst == 0 || d.burst > datapath::pipeline::MAX_BURST {
            return Err(format!(
                "datapath.burst: {} is out of range (1-{})",
                d.burst,
                datapath::pipeline::MAX_BURST
            ));
        }
        if let Err(e) = d.poll().validate() {
            return Err(format!("datapath.adaptive_window_us: {e}"));
        }
        let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
        if let Some(c) = d.cpus.iter().find(|c| **c >= ncpu) {
            return Err(format!(
                "datapath.cpus: CPU {c} does not exist (this machine has {ncpu})"
            ));
        }
        if self.fdb.capacity == 0 || self.fdb.capacity > 1 << 24 {
            return Err(format!(
                "fdb.capacity: {} is out of range (1-16777216)",
                self.fdb.capacity
            ));
        }
        if self.fdb.aging_secs == 0 {
            return Err("fdb.aging_secs: must be at least 1".into());
        }
        if let Some(l) = &self.metrics.listen {
            let addr: SocketAddr = l
                .parse()
                .map_err(|_| format!("metrics.listen: '{l}' is not an address:port"))?;
            if !addr.ip().is_loopback() {
                return Err(format!(
                    "metrics.listen: {addr} is not a loopback address (metrics are served on loopback only)"
                ));
            }
        }
        let mut vfs = BTreeSet::new();
        for v in &self.vfs {
            check_ifname("vf pf", &v.pf)?;
            if !vfs.insert((v.pf.as_str(), v.vf)) {
                return Err(format!("vf {} {}: defined twice", v.pf, v.vf));
            }
            sriov::validate::check_config(&v.settings)
                .map_err(|e| format!("vf {} {}: {e}", v.pf, v.vf))?;
        }
        let mut bridges = BTreeSet::new();
        let mut interfaces = BTreeSet::new();
        for b in &self.bridges {
            check_ifname("bridge", &b.name)?;
            if !bridges.insert(b.name.as_str()) {
                return Err(format!("bridge {}: defined twice", b.name));
            }
            if b.ports.len() > datapath::topology::MAX_PORTS {
                return Err(format!(
                    "bridge {}: {} ports (at most {})",
                    b.name,
                    b.ports.len(),
                    datapath::topology::MAX_PORTS
                ));
            }
            let mut names = BTreeSet::new();
            for p in &b.ports {
                check_ifname("port", &p.name)?;
                if !names.insert(p.name.as_str()) {
                    return Err(format!("bridge {}: port {} defined twice", b.name, p.name));
                }
                check_ifname(&format!("port {}: interface", p.name), p.interface())?;
                if !interfaces.insert(p.interface().to_string()) {
                    return Err(format!(
                        "port {}: interface {} is used by another port",
                        p.name,
                        p.interface()
                    ));
                }
                if p.xdp_replace && matches!(p.kind, PortKind::Tap | PortKind::Packet) {
                    return Err(format!(
                        "port {}: xdp_replace applies to afxdp ports only (this one is {})",
                        p.name, p.kind
                    ));
                }
                if p.queues == 0 || p.queues > 64 {
                    return Err(format!(
                        "port {}: queues {} out of range (1-64)",
                        p.name, p.queues
                    ));
                }
                if matches!(p.kind, PortKind::Tap | PortKind::Packet) && p.queues != 1 {
                    return Err(format!("port {}: {} ports have one queue", p.name, p.kind));
                }
                p.port_config()?;
                let mtu = p.mtu.unwrap_or(DEFAULT_MTU);
                if !(68..=65535).contains(&mtu) {
                    return Err(format!(
                        "port {}: MTU {mtu} out of range (68-65535)",
                        p.name
                    ));
                }
                p.check_afxdp_mtu()?;
            }
            for s in &b.static_macs {
                let (vid, _) = s.parsed()?;
                let p = b.ports.iter().find(|p| p.name == s.port).ok_or_else(|| {
                    format!(
                        "static MAC {}: no port {} in bridge {}",
                        s.mac, s.port, b.name
                    )
                })?;
                if !p.vlan()?.is_member(vid.get()) {
                    return Err(format!(
                        "static MAC {}: port {} does not carry VLAN {}",
                        s.mac, s.port, vid
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn bridge(&self, name: &str) -> Option<&BridgeConfig> {
        self.bridges.iter().find(|b| b.name == name)
    }
    pub fn bridge_mut(&mut self, name: &str) -> Option<&mut BridgeConfig> {
        self.bridges.iter_mut().find(|b| b.name == name)
    }

    /// The TOML text of this configuration.
    pub fn to_toml(&self) -> String {
        let mut s =
            String::from("# vswitchd configuration (written by vswitchd; edits are kept)\n");
        s.push_str(&toml::to_string(self).unwrap_or_default());
        s
    }

    /// Writes atomically: tmp file in the same directory, fsync, rename, fsync directory.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let err = |source| ConfigError::Write {
            path: path.to_path_buf(),
            source,
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(err)?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "vswitchd.toml".into());
        let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
        let text = self.to_toml();
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            err(e)
        })
    }
}

/// The 1-based line of the first quoted name in `reason` that appears in `text`.
fn find_line(text: &str, reason: &str) -> usize {
    for word in reason.split_whitespace() {
        let w =
            word.trim_matches(|c: char| !c.is_alphanumeric() && c != '-' && c != '_' && c != '.');
        if w.len() < 2 {
            continue;
        }
        let quoted = format!("\"{w}\"");
        if let Some(pos) = text.find(&quoted) {
            return text[..pos].matches('\n').count() + 1;
        }
    }
    // A section key named as `section.key` (datapath.workers, fdb.capacity, ...): the
    // line that sets `key` after the `[section]` header.
    if let Some((section, key)) = reason
        .split_whitespace()
        .next()
        .map(|w| w.trim_end_matches(':'))
        .and_then(|w| w.split_once('.'))
    {
        let header = format!("[{section}]");
        let mut in_section = false;
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.starts_with('[') {
                in_section = l == header;
            } else if in_section
                && l.strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            {
                return i + 1;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests;
