//! The declarative configuration (TOML): the daemon's source of truth.
//!
//! Invariants kept here:
//! - Unknown keys are rejected (`deny_unknown_fields`); a file that does not parse or
//!   validate is rejected as a whole with the line and the reason, and nothing changes.
//! - [`Config::validate`] turns every field into datapath types ([`PortVlan`], [`Vid`],
//!   [`MacAddr`]) up front and returns them ([`ValidConfig`]), so nothing stringly-typed
//!   travels inward; what it refuses is a [`ConfigError`] variant naming the object and
//!   the cause, whose [`ConfigError::field`] locates it in the file.
//! - [`Config::save`] writes atomically: temporary file, fsync, rename, fsync of the
//!   directory. A crash leaves either the old or the new file, never a torn one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use datapath::topology::{FloodPolicy, PortConfig, StormPolicy, DEFAULT_MTU};
use datapath::vlan::{NativeEgress, PortVlan, Vid, VlanError, VlanSet};
use datapath::wire::MacAddr;
use datapath::worker::{PollMode, PollPolicy};
use serde::{Deserialize, Serialize};

/// Errors of loading or saving a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or not this schema (unknown key, wrong type): the parser's reason.
    #[error("{path}: line {line}: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// Well-formed, but [`Config::validate`] refused it. (The problem is in the message,
    /// not a `source`: a cause chain would say it twice.)
    #[error("{path}: line {line}: {problem}")]
    Invalid {
        path: PathBuf,
        line: usize,
        problem: Box<ConfigError>,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What [`Config::validate`] refuses: one variant per rule, each naming the object
/// (setting, bridge, port, static MAC, VF) and the cause. [`ConfigError::path`] is the
/// field it is about (`bridge[br0].port[p1].queues`); [`ConfigError::field`] says where
/// in the file that is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("datapath.workers: {value} is out of range (1-{max})")]
    Workers { value: usize, max: usize },
    #[error("datapath.burst: {value} is out of range (1-{max})")]
    Burst { value: usize, max: usize },
    #[error("datapath.adaptive_window_us: {0}")]
    AdaptiveWindow(#[source] datapath::worker::poll::WindowTooLong),
    #[error("datapath.cpus: CPU {cpu} does not exist (this machine has {ncpu})")]
    NoSuchCpu { cpu: usize, ncpu: usize },
    #[error("fdb.capacity: {0} is out of range (1-{FDB_MAX_CAPACITY})")]
    FdbCapacity(usize),
    #[error("fdb.aging_secs: must be at least 1")]
    FdbAging,
    #[error("metrics.listen: '{0}' is not an address:port")]
    MetricsAddress(String),
    #[error("metrics.listen: {0} is not a loopback address (metrics are served on loopback only)")]
    MetricsNotLoopback(SocketAddr),
    #[error(transparent)]
    Ifname(#[from] IfnameError),
    #[error("vf {pf} {vf}: defined twice")]
    VfTwice { pf: String, vf: u32 },
    #[error("vf {pf} {vf}: {source}")]
    Vf {
        pf: String,
        vf: u32,
        #[source]
        source: sriov::validate::ValidationError,
    },
    #[error("bridge {0}: defined twice")]
    BridgeTwice(String),
    #[error("bridge {bridge}: {count} ports (at most {max})")]
    TooManyPorts {
        bridge: String,
        count: usize,
        max: usize,
    },
    #[error("bridge {bridge}: port {port} defined twice")]
    PortTwice { bridge: String, port: String },
    /// One of a port's settings.
    #[error("port {port}: {problem}")]
    Port {
        bridge: String,
        port: String,
        problem: PortProblem,
    },
    #[error("static MAC {mac}: {source}")]
    StaticVlan {
        bridge: String,
        mac: MacAddr,
        #[source]
        source: VlanError,
    },
    #[error("static MAC {mac}: must be unicast and non-zero")]
    StaticNotUnicast { bridge: String, mac: MacAddr },
    #[error("static MAC {mac}: no port {port} in bridge {bridge}")]
    StaticNoPort {
        bridge: String,
        mac: MacAddr,
        port: String,
    },
    #[error("static MAC {mac}: port {port} does not carry VLAN {vid}")]
    StaticNotMember {
        bridge: String,
        mac: MacAddr,
        port: String,
        vid: Vid,
    },
}

/// What is wrong with one of a port's settings ([`ConfigError::Port`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortProblem {
    #[error("interface {0} is used by another port")]
    InterfaceShared(String),
    #[error("xdp_replace applies to afxdp ports only (this one is {0})")]
    XdpReplace(PortKind),
    #[error("queues {0} out of range (1-64)")]
    Queues(u32),
    #[error("{0} ports have one queue")]
    OneQueue(PortKind),
    #[error(transparent)]
    Vlan(PortVlanProblem),
    #[error("MTU {0} out of range (68-65535)")]
    Mtu(u32),
    #[error(
        "MTU {mtu} is too large for an AF_XDP port: at most {AFXDP_MAX_MTU} (frames of MTU \
         + 18 bytes cross workers in {buffer}-byte buffers)"
    )]
    AfxdpMtu { mtu: u32, buffer: usize },
}

impl PortProblem {
    /// The port's key the problem is about.
    pub fn key(&self) -> &'static str {
        match self {
            PortProblem::InterfaceShared(_) => "interface",
            PortProblem::XdpReplace(_) => "xdp_replace",
            PortProblem::Queues(_) | PortProblem::OneQueue(_) => "queues",
            PortProblem::Vlan(v) => v.key(),
            PortProblem::Mtu(_) | PortProblem::AfxdpMtu { .. } => "mtu",
        }
    }
}

/// Where in the file a [`ConfigError`] points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    /// `key` of the `[section]` table, e.g. `datapath.workers`.
    Key {
        section: &'static str,
        key: &'static str,
    },
    /// An entry of a `[[...]]` array, by the value of its name (a bridge, port or
    /// interface name, a VF's PF) as the file quotes it.
    Named(&'a str),
    /// A `[[bridge.static_mac]]` entry, by its MAC (the file may write it in any case).
    StaticMac(MacAddr),
}

impl ConfigError {
    /// The setting or the object the problem is about.
    pub fn field(&self) -> Field<'_> {
        let key = |section, key| Field::Key { section, key };
        match self {
            ConfigError::Workers { .. } => key("datapath", "workers"),
            ConfigError::Burst { .. } => key("datapath", "burst"),
            ConfigError::AdaptiveWindow(_) => key("datapath", "adaptive_window_us"),
            ConfigError::NoSuchCpu { .. } => key("datapath", "cpus"),
            ConfigError::FdbCapacity(_) => key("fdb", "capacity"),
            ConfigError::FdbAging => key("fdb", "aging_secs"),
            ConfigError::MetricsAddress(_) | ConfigError::MetricsNotLoopback(_) => {
                key("metrics", "listen")
            }
            ConfigError::Ifname(e) => Field::Named(&e.name),
            ConfigError::VfTwice { pf, .. } | ConfigError::Vf { pf, .. } => Field::Named(pf),
            ConfigError::BridgeTwice(bridge) | ConfigError::TooManyPorts { bridge, .. } => {
                Field::Named(bridge)
            }
            ConfigError::PortTwice { port, .. } | ConfigError::Port { port, .. } => {
                Field::Named(port)
            }
            ConfigError::StaticVlan { mac, .. }
            | ConfigError::StaticNotUnicast { mac, .. }
            | ConfigError::StaticNoPort { mac, .. }
            | ConfigError::StaticNotMember { mac, .. } => Field::StaticMac(*mac),
        }
    }

    /// The field the problem is about, as a path: `datapath.workers`,
    /// `bridge[br0].port[p1].queues`, `bridge[br0].static_mac[02:00:00:00:00:01].vlan`,
    /// `vf[eth0 0].settings`.
    pub fn path(&self) -> String {
        let static_mac = |bridge: &str, mac: &MacAddr, key: &str| {
            format!("bridge[{bridge}].static_mac[{mac}].{key}")
        };
        match self {
            ConfigError::Ifname(e) => e.path(),
            ConfigError::VfTwice { pf, vf } => format!("vf[{pf} {vf}]"),
            ConfigError::Vf { pf, vf, .. } => format!("vf[{pf} {vf}].settings"),
            ConfigError::BridgeTwice(bridge) => format!("bridge[{bridge}]"),
            ConfigError::TooManyPorts { bridge, .. } => format!("bridge[{bridge}].port"),
            ConfigError::PortTwice { bridge, port } => format!("bridge[{bridge}].port[{port}]"),
            ConfigError::Port {
                bridge,
                port,
                problem,
            } => format!("bridge[{bridge}].port[{port}].{}", problem.key()),
            ConfigError::StaticVlan { bridge, mac, .. }
            | ConfigError::StaticNotMember { bridge, mac, .. } => static_mac(bridge, mac, "vlan"),
            ConfigError::StaticNotUnicast { bridge, mac } => static_mac(bridge, mac, "mac"),
            ConfigError::StaticNoPort { bridge, mac, .. } => static_mac(bridge, mac, "port"),
            _ => match self.field() {
                Field::Key { section, key } => format!("{section}.{key}"),
                Field::Named(name) => name.to_owned(),
                Field::StaticMac(mac) => mac.to_string(),
            },
        }
    }
}

/// A port's VLAN settings that do not make a VLAN mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("port {port}: {kind}")]
pub struct PortVlanError {
    pub port: String,
    pub kind: PortVlanProblem,
}

/// What is wrong with a port's VLAN settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortVlanProblem {
    #[error("set either access or trunk, not both")]
    AccessAndTrunk,
    #[error("native VLAN applies to trunk ports only")]
    NativeWithoutTrunk,
    #[error("native_tagged needs a native VLAN")]
    NativeTaggedWithoutNative,
    #[error("access: {0}")]
    Access(#[source] VlanError),
    #[error("native: {0}")]
    Native(#[source] VlanError),
    #[error("trunk: {0}")]
    Trunk(#[source] VlanError),
}

impl PortVlanProblem {
    /// The port's key the problem is about.
    pub fn key(&self) -> &'static str {
        match self {
            PortVlanProblem::AccessAndTrunk | PortVlanProblem::Access(_) => "access",
            PortVlanProblem::NativeWithoutTrunk | PortVlanProblem::Native(_) => "native",
            PortVlanProblem::NativeTaggedWithoutNative => "native_tagged",
            PortVlanProblem::Trunk(_) => "trunk",
        }
    }
}

/// What an interface name names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameOf {
    Bridge,
    Port {
        bridge: String,
    },
    /// The netdev a port uses.
    Interface {
        bridge: String,
        port: String,
    },
    /// A VF's physical function.
    VfPf,
    /// A name given outside the configuration file (a CNI network's `bridge`, its
    /// `CNI_IFNAME`): the label says which.
    Given(&'static str),
}

impl fmt::Display for NameOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameOf::Bridge => f.write_str("bridge"),
            NameOf::Port { .. } => f.write_str("port"),
            NameOf::Interface { port, .. } => write!(f, "port {port}: interface"),
            NameOf::VfPf => f.write_str("vf pf"),
            NameOf::Given(label) => f.write_str(label),
        }
    }
}

/// An interface name Linux would refuse (IFNAMSIZ rules).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{of} '{name}': {problem}")]
pub struct IfnameError {
    pub of: NameOf,
    pub name: String,
    pub problem: IfnameProblem,
}

impl IfnameError {
    /// The field of the name, as in [`ConfigError::path`].
    pub fn path(&self) -> String {
        let name = &self.name;
        match &self.of {
            NameOf::Bridge => format!("bridge[{name}].name"),
            NameOf::Port { bridge } => format!("bridge[{bridge}].port[{name}].name"),
            NameOf::Interface { bridge, port } => {
                format!("bridge[{bridge}].port[{port}].interface")
            }
            NameOf::VfPf => format!("vf[{name}].pf"),
            NameOf::Given(label) => (*label).to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IfnameProblem {
    #[error("must be 1-15 characters")]
    Length,
    #[error("invalid interface name")]
    Invalid,
}

/// Largest `fdb.capacity`.
pub const FDB_MAX_CAPACITY: usize = 1 << 24;

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
    pub fn vlan(&self) -> Result<PortVlan, PortVlanError> {
        let err = |kind| PortVlanError {
            port: self.name.clone(),
            kind,
        };
        let vid = |v: u16, kind: fn(VlanError) -> PortVlanProblem| {
            Vid::new(u32::from(v)).map_err(|e| err(kind(e)))
        };
        match (&self.access, &self.trunk) {
            (Some(_), Some(_)) => Err(err(PortVlanProblem::AccessAndTrunk)),
            (Some(v), None) => {
                if self.native.is_some() || self.native_tagged {
                    return Err(err(PortVlanProblem::NativeWithoutTrunk));
                }
                Ok(PortVlan::Access(vid(*v, PortVlanProblem::Access)?))
            }
            (None, Some(list)) => {
                let allowed = if list.trim() == "all" {
                    VlanSet::EMPTY
                } else {
                    list.parse::<VlanSet>()
                        .map_err(|e| err(PortVlanProblem::Trunk(e)))?
                };
                let native = match self.native {
                    Some(n) => Some((
                        vid(n, PortVlanProblem::Native)?,
                        if self.native_tagged {
                            NativeEgress::Tagged
                        } else {
                            NativeEgress::Untagged
                        },
                    )),
                    None if self.native_tagged => {
                        return Err(err(PortVlanProblem::NativeTaggedWithoutNative))
                    }
                    None => None,
                };
                Ok(PortVlan::trunk(allowed, native))
            }
            (None, None) => {
                if self.native.is_some() || self.native_tagged {
                    return Err(err(PortVlanProblem::NativeWithoutTrunk));
                }
                Ok(PortVlan::Access(vid(1, PortVlanProblem::Access)?))
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
    pub fn check_afxdp_mtu(&self) -> Result<(), PortProblem> {
        if self.kind != PortKind::Afxdp {
            return Ok(());
        }
        let mtu = self.effective_mtu();
        if mtu <= AFXDP_MAX_MTU {
            return Ok(());
        }
        Err(PortProblem::AfxdpMtu {
            mtu,
            buffer: datapath::worker::DatapathConfig::default().max_frame,
        })
    }

    /// The datapath's view of this port.
    pub fn port_config(&self) -> Result<PortConfig, PortVlanError> {
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
    /// Written as six hex octets (`02:00:00:00:00:01`); read in either case, with `:` or
    /// `-`.
    #[serde(with = "mac_serde")]
    pub mac: MacAddr,
    pub port: String,
}

impl StaticMac {
    /// The entry's VLAN and MAC as the FDB takes them: a VLAN of 1-4094 and a unicast,
    /// non-zero MAC.
    pub fn parsed(&self, bridge: &str) -> Result<(Vid, MacAddr), ConfigError> {
        let vid = Vid::new(u32::from(self.vlan)).map_err(|source| ConfigError::StaticVlan {
            bridge: bridge.to_owned(),
            mac: self.mac,
            source,
        })?;
        if !self.mac.is_learnable() {
            return Err(ConfigError::StaticNotUnicast {
                bridge: bridge.to_owned(),
                mac: self.mac,
            });
        }
        Ok((vid, self.mac))
    }
}

/// A MAC address as its text (`"02:00:00:00:00:01"`) in the configuration file and the
/// control protocol.
pub mod mac_serde {
    use datapath::wire::MacAddr;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &MacAddr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(m)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MacAddr, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A valid interface name: 1-15 bytes, no '/', ':' or whitespace (Linux IFNAMSIZ rules).
pub fn check_ifname(of: NameOf, name: &str) -> Result<(), IfnameError> {
    let err = |problem| IfnameError {
        of: of.clone(),
        name: name.to_owned(),
        problem,
    };
    if name.is_empty() || name.len() > 15 {
        return Err(err(IfnameProblem::Length));
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(err(IfnameProblem::Invalid));
    }
    Ok(())
}

/// A configuration [`Config::validate`] accepted, in the datapath's types: what the
/// daemon runs from, without parsing any value again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidConfig {
    /// `metrics.listen`: a loopback address.
    pub metrics: Option<SocketAddr>,
    pub bridges: BTreeMap<String, ValidBridge>,
}

/// One bridge of a [`ValidConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidBridge {
    /// Each port's forwarding configuration (VLAN mode, MTU, policies), by port name.
    pub ports: BTreeMap<String, PortConfig>,
    /// Static FDB entries: (VLAN, MAC) -> port name (of a port that carries the VLAN).
    pub statics: BTreeMap<(Vid, MacAddr), String>,
}

impl BridgeConfig {
    /// Checks the bridge's ports (`interfaces`: those the ports of the bridges checked
    /// before use) and static MACs.
    fn validate(&self, interfaces: &mut BTreeSet<String>) -> Result<ValidBridge, ConfigError> {
        let max = datapath::topology::MAX_PORTS;
        if self.ports.len() > max {
            return Err(ConfigError::TooManyPorts {
                bridge: self.name.clone(),
                count: self.ports.len(),
                max,
            });
        }
        let bridge = || self.name.clone();
        let mut ports = BTreeMap::new();
        for p in &self.ports {
            check_ifname(NameOf::Port { bridge: bridge() }, &p.name)?;
            if ports.contains_key(&p.name) {
                return Err(ConfigError::PortTwice {
                    bridge: bridge(),
                    port: p.name.clone(),
                });
            }
            let of = NameOf::Interface {
                bridge: bridge(),
                port: p.name.clone(),
            };
            check_ifname(of, p.interface())?;
            let port_problem = |problem| ConfigError::Port {
                bridge: bridge(),
                port: p.name.clone(),
                problem,
            };
            if !interfaces.insert(p.interface().to_string()) {
                let shared = PortProblem::InterfaceShared(p.interface().to_string());
                return Err(port_problem(shared));
            }
            ports.insert(p.name.clone(), p.validate().map_err(port_problem)?);
        }
        let mut statics = BTreeMap::new();
        for s in &self.static_macs {
            let (vid, mac) = s.parsed(&self.name)?;
            let port = ports
                .get(&s.port)
                .ok_or_else(|| ConfigError::StaticNoPort {
                    bridge: bridge(),
                    mac,
                    port: s.port.clone(),
                })?;
            if !port.vlan.is_member(vid.get()) {
                return Err(ConfigError::StaticNotMember {
                    bridge: bridge(),
                    mac,
                    port: s.port.clone(),
                    vid,
                });
            }
            statics.insert((vid, mac), s.port.clone());
        }
        Ok(ValidBridge { ports, statics })
    }
}

impl PortSpec {
    /// Checks one port's settings; returns its forwarding configuration.
    fn validate(&self) -> Result<PortConfig, PortProblem> {
        if self.xdp_replace && matches!(self.kind, PortKind::Tap | PortKind::Packet) {
            return Err(PortProblem::XdpReplace(self.kind));
        }
        if self.queues == 0 || self.queues > 64 {
            return Err(PortProblem::Queues(self.queues));
        }
        if matches!(self.kind, PortKind::Tap | PortKind::Packet) && self.queues != 1 {
            return Err(PortProblem::OneQueue(self.kind));
        }
        let config = self.port_config().map_err(|e| PortProblem::Vlan(e.kind))?;
        if !(68..=65535).contains(&config.mtu) {
            return Err(PortProblem::Mtu(config.mtu));
        }
        self.check_afxdp_mtu()?;
        Ok(config)
    }
}

impl Config {
    /// Reads and validates a file. A missing file is an empty configuration only when
    /// `missing_ok`.
    pub fn load(path: &Path, missing_ok: bool) -> Result<Config, ConfigFileError> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if missing_ok && e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(ConfigFileError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        Config::parse(&text, path)
    }

    /// Parses and validates TOML text (`path` only names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigFileError> {
        let c: Config = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(0);
            ConfigFileError::Parse {
                path: path.to_path_buf(),
                line,
                reason: e.message().to_string(),
            }
        })?;
        c.validate().map_err(|problem| ConfigFileError::Invalid {
            path: path.to_path_buf(),
            // Point at the line that names the offending object when we can find it.
            line: find_line(text, problem.field()),
            problem: Box::new(problem),
        })?;
        Ok(c)
    }

    /// Checks everything the datapath will need, naming the object and the cause, and
    /// returns the values in the datapath's types.
    pub fn validate(&self) -> Result<ValidConfig, ConfigError> {
        self.validate_datapath()?;
        let metrics = self.validate_metrics()?;
        let mut vfs = BTreeSet::new();
        for v in &self.vfs {
            check_ifname(NameOf::VfPf, &v.pf)?;
            if !vfs.insert((v.pf.as_str(), v.vf)) {
                return Err(ConfigError::VfTwice {
                    pf: v.pf.clone(),
                    vf: v.vf,
                });
            }
            sriov::validate::check_config(&v.settings).map_err(|source| ConfigError::Vf {
                pf: v.pf.clone(),
                vf: v.vf,
                source,
            })?;
        }
        let mut bridges = BTreeMap::new();
        let mut interfaces = BTreeSet::new();
        for b in &self.bridges {
            check_ifname(NameOf::Bridge, &b.name)?;
            if bridges.contains_key(&b.name) {
                return Err(ConfigError::BridgeTwice(b.name.clone()));
            }
            let valid = b.validate(&mut interfaces)?;
            bridges.insert(b.name.clone(), valid);
        }
        Ok(ValidConfig { metrics, bridges })
    }

    /// The `[datapath]` and `[fdb]` sections.
    fn validate_datapath(&self) -> Result<(), ConfigError> {
        let d = &self.datapath;
        let max = datapath::worker::MAX_WORKERS;
        if d.workers == 0 || d.workers > max {
            return Err(ConfigError::Workers {
                value: d.workers,
                max,
            });
        }
        let max = datapath::pipeline::MAX_BURST;
        if d.burst == 0 || d.burst > max {
            return Err(ConfigError::Burst {
                value: d.burst,
                max,
            });
        }
        d.poll().validate().map_err(ConfigError::AdaptiveWindow)?;
        let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
        if let Some(&cpu) = d.cpus.iter().find(|c| **c >= ncpu) {
            return Err(ConfigError::NoSuchCpu { cpu, ncpu });
        }
        if self.fdb.capacity == 0 || self.fdb.capacity > FDB_MAX_CAPACITY {
            return Err(ConfigError::FdbCapacity(self.fdb.capacity));
        }
        if self.fdb.aging_secs == 0 {
            return Err(ConfigError::FdbAging);
        }
        Ok(())
    }

    /// `metrics.listen`: a loopback address, if set.
    fn validate_metrics(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let Some(l) = &self.metrics.listen else {
            return Ok(None);
        };
        let addr: SocketAddr = l
            .parse()
            .map_err(|_| ConfigError::MetricsAddress(l.clone()))?;
        if !addr.ip().is_loopback() {
            return Err(ConfigError::MetricsNotLoopback(addr));
        }
        Ok(Some(addr))
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
    pub fn save(&self, path: &Path) -> Result<(), ConfigFileError> {
        let err = |source| ConfigFileError::Write {
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

/// The 1-based line of `field` in `text` (0: not found): the first line that quotes a
/// named object, the line of a static MAC entry's `mac`, the line that sets a section's
/// key.
fn find_line(text: &str, field: Field<'_>) -> usize {
    let line_of = |pos: usize| text[..pos].matches('\n').count() + 1;
    match field {
        Field::Named(name) => text.find(&format!("\"{name}\"")).map_or(0, line_of),
        Field::StaticMac(mac) => text
            .lines()
            .position(|l| {
                l.trim()
                    .strip_prefix("mac")
                    .and_then(|rest| rest.trim_start().strip_prefix('='))
                    .and_then(|v| v.trim().strip_prefix('"')?.strip_suffix('"'))
                    .and_then(|v| v.parse::<MacAddr>().ok())
                    == Some(mac)
            })
            .map_or(0, |i| i + 1),
        Field::Key { section, key } => {
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
            0
        }
    }
}

#[cfg(test)]
mod tests;
