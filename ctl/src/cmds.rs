//! `vswitchctl` commands that talk to vswitchd over the control socket, plus `doctor`
//! (local pre-flight checks) and `completions`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use ctl::client::{self, ClientError};
use ctl::config::{
    afxdp_single_frame_mtu, PortKind, PortSpec, XdpModeSpec, AFXDP_MAX_FRAME_SIZE, AFXDP_MAX_MTU,
};
use ctl::proto::*;
use ctl::render;
use datapath::worker::PollMode;

/// Exit codes (documented in the README).
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_NOT_FOUND: u8 = 3;
pub const EXIT_UNREACHABLE: u8 = 4;

/// Options shared by the daemon commands.
#[derive(Debug, Args)]
pub struct Conn {
    /// vswitchd control socket.
    #[arg(long, global = true, env = "VSWITCH_SOCKET", default_value = ctl::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Seconds to wait for the daemon's reply.
    #[arg(long, global = true, default_value_t = 10)]
    pub timeout: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// packet on a virtual device (veth, a VM's tap), afxdp on a NIC.
    Auto,
    /// AF_XDP (NICs; veths only with the peer's TX checksum offload off).
    Afxdp,
    /// AF_PACKET with offloads (veth, a VM's tap): TSO and checksum offload end to end.
    Packet,
    /// A tap device the switch creates.
    Tap,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum XdpArg {
    Auto,
    Native,
    Generic,
}

#[derive(Debug, Args)]
pub struct AddPortArgs {
    pub bridge: String,
    pub port: String,
    /// Port backend.
    #[arg(long = "type", value_enum, default_value = "auto")]
    pub kind: KindArg,
    /// Existing netdev (auto, afxdp, packet) or tap device to create (tap); default: the
    /// port name.
    #[arg(long)]
    pub interface: Option<String>,
    #[arg(long, default_value_t = 1)]
    pub queues: u32,
    #[arg(long, value_enum, default_value = "auto")]
    pub xdp_mode: XdpArg,
    /// AF_XDP: detach an XDP program already on the interface even if it is not vswitch's
    /// (a libxdp dispatcher, a firewall); kept in the config as `xdp_replace = true`.
    #[arg(long)]
    pub xdp_replace: bool,
    #[command(flatten)]
    pub vlan: VlanArgs,
    #[arg(long)]
    pub mtu: Option<u32>,
    /// Never exchange frames with other isolated ports.
    #[arg(long)]
    pub isolated: bool,
    /// At most this many learned MACs on the port.
    #[arg(long)]
    pub learn_limit: Option<u32>,
    /// Storm control: broadcast frames per second this port may flood.
    #[arg(long, value_name = "PPS")]
    pub storm_broadcast: Option<u32>,
    /// Storm control: multicast frames per second this port may flood.
    #[arg(long, value_name = "PPS")]
    pub storm_multicast: Option<u32>,
    /// Storm control: unknown-unicast frames per second this port may flood.
    #[arg(long, value_name = "PPS")]
    pub storm_unknown: Option<u32>,
    #[command(flatten)]
    pub flood: FloodArgs,
    /// No error if the port exists.
    #[arg(long)]
    pub may_exist: bool,
}

#[derive(Debug, Args)]
pub struct SetPortArgs {
    pub bridge: String,
    pub port: String,
    #[command(flatten)]
    pub vlan: VlanArgs,
    #[arg(long)]
    pub mtu: Option<u32>,
    /// Isolated port: never exchanges frames with other isolated ports.
    #[arg(long, value_enum, value_name = "on|off")]
    pub isolated: Option<OnOff>,
    #[command(flatten)]
    pub flood: FloodArgs,
}

/// Which floods a port receives (add-port, set-port); default on.
#[derive(Debug, Args)]
pub struct FloodArgs {
    /// Receive unknown-unicast floods.
    #[arg(long, value_enum, value_name = "on|off")]
    pub flood_unknown: Option<OnOff>,
    /// Receive multicast floods.
    #[arg(long, value_enum, value_name = "on|off")]
    pub flood_multicast: Option<OnOff>,
    /// Receive broadcasts.
    #[arg(long, value_enum, value_name = "on|off")]
    pub flood_broadcast: Option<OnOff>,
}

impl OnOff {
    pub fn on(self) -> bool {
        self == OnOff::On
    }
}

/// A port's VLAN mode as flags (add-port, set-port).
#[derive(Debug, Args)]
pub struct VlanArgs {
    /// Access VLAN.
    #[arg(long, conflicts_with = "trunk")]
    pub access: Option<u16>,
    /// Trunk allowed VLANs ("10,20-30", "all").
    #[arg(long)]
    pub trunk: Option<String>,
    /// Native VLAN of a trunk.
    #[arg(long, requires = "trunk")]
    pub native: Option<u16>,
    /// The native VLAN leaves tagged.
    #[arg(long, requires = "native")]
    pub tagged: bool,
}

impl VlanArgs {
    /// The mode as text ("access 100", "trunk 10,20 native 5 tagged"), if a flag was given.
    pub fn text(&self) -> Option<String> {
        if let Some(v) = self.access {
            return Some(format!("access {v}"));
        }
        let list = self.trunk.as_ref()?;
        let list = if list.trim().is_empty() {
            "all"
        } else {
            list.as_str()
        };
        let mut s = format!("trunk {list}");
        if let Some(n) = self.native {
            s.push_str(&format!(" native {n}"));
            if self.tagged {
                s.push_str(" tagged");
            }
        }
        Some(s)
    }
}

#[derive(Debug, Subcommand)]
pub enum PortCmd {
    /// Per-port counters and drops by reason.
    Stats {
        /// Bridge (default: all).
        bridge: Option<String>,
        port: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct FdbFilter {
    pub bridge: String,
    #[arg(long)]
    pub port: Option<String>,
    #[arg(long)]
    pub vlan: Option<u16>,
    #[arg(long)]
    pub mac: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum FdbCmd {
    /// MAC table entries (filter by --port/--vlan/--mac).
    Show {
        #[command(flatten)]
        filter: FdbFilter,
        #[arg(long)]
        json: bool,
    },
    /// Add a static entry (persisted).
    Add {
        bridge: String,
        #[arg(long)]
        vlan: u16,
        #[arg(long)]
        mac: String,
        #[arg(long)]
        port: String,
    },
    /// Delete an entry (a static one is removed from the configuration too).
    Del {
        bridge: String,
        #[arg(long)]
        vlan: u16,
        #[arg(long)]
        mac: String,
    },
    /// Flush dynamic entries (all, or by --port/--vlan/--mac).
    Flush {
        #[command(flatten)]
        filter: FdbFilter,
    },
    /// Table counters.
    Stats {
        bridge: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PmdCmd {
    /// Workers: CPU, load, burst size, receive queue placement.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Pin workers to CPUs (comma-separated list), persisted; restarts the workers.
    SetCpus { cpus: String },
    /// Turn the XDP fast path on or off (known unicast between AF_XDP ports forwarded in
    /// the kernel), persisted; restarts the bridges.
    SetFastPath {
        #[arg(value_enum)]
        state: OnOff,
    },
    /// What idle workers do: spin (lowest latency, a busy CPU per worker), adaptive (spin
    /// while traffic flows, block after --window-us without any) or sleep (least CPU);
    /// persisted; applies at once without a restart or a lost frame.
    SetPollMode {
        /// spin, adaptive or sleep.
        mode: PollMode,
        /// adaptive: microseconds to keep polling after the last frame (at most 1000000).
        #[arg(long)]
        window_us: Option<u64>,
    },
}

/// A switch's state on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// Sends `req` and prints the reply; returns the exit code.
pub fn call(conn: &Conn, req: Request, json: bool) -> Result<u8> {
    let outcome = match client::request(&conn.socket, &req, Duration::from_secs(conn.timeout)) {
        Ok(o) => o,
        Err(e @ ClientError::Unreachable { .. }) => {
            eprintln!("vswitchctl: {e}");
            return Ok(EXIT_UNREACHABLE);
        }
        Err(e) => {
            eprintln!("vswitchctl: {e}");
            return Ok(EXIT_FAILED);
        }
    };
    match outcome {
        Outcome::Error(e) => {
            eprintln!("vswitchctl: {}", e.message);
            Ok(match e.code {
                ErrorCode::NotFound => EXIT_NOT_FOUND,
                ErrorCode::Usage => EXIT_USAGE,
                _ => EXIT_FAILED,
            })
        }
        Outcome::Ok(r) => {
            if json {
                match &r {
                    Response::Show { bridges } => print_json(bridges)?,
                    Response::PortStats { ports } => print_json(ports)?,
                    Response::Fdb { entries } => print_json(entries)?,
                    Response::FdbStats { stats } => print_json(stats)?,
                    Response::Pmd { workers, .. } => print_json(workers)?,
                    Response::Trace { trace } => print_json(trace)?,
                    Response::Done { .. } => print_json(&r)?,
                }
                return Ok(EXIT_OK);
            }
            let text = match &r {
                Response::Done { message } => format!("{message}\n"),
                Response::Show { bridges } => render::show(bridges),
                Response::PortStats { ports } => render::port_stats(ports),
                Response::Fdb { entries } => render::fdb(entries),
                Response::FdbStats { stats } => render::fdb_stats(stats),
                Response::Pmd {
                    workers,
                    xdp_fast_path,
                    poll_mode,
                    adaptive_window_us,
                } => render::pmd(workers, *xdp_fast_path, *poll_mode, *adaptive_window_us),
                Response::Trace { trace } => render::trace(trace),
            };
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            Ok(EXIT_OK)
        }
    }
}

/// `cni-gc`: removes attachments of vswitch-cni whose network namespace is gone.
pub fn cni_gc(conn: &Conn, state_dir: &Path, dry_run: bool, json: bool) -> Result<u8> {
    let node = ctl::cni::Node::system(conn.socket.clone());
    let (swept, errors) = ctl::cni::gc::sweep(&node, state_dir, &conn.socket, dry_run);
    if json {
        print_json(&swept)?;
    } else {
        let mut out = std::io::stdout().lock();
        if swept.is_empty() && errors.is_empty() {
            writeln!(out, "nothing to remove")?;
        }
        for s in &swept {
            writeln!(
                out,
                "{} container {} {} (network {}{}): netns {} is gone",
                if dry_run { "would remove" } else { "removed" },
                s.container_id,
                s.ifname,
                s.network,
                s.port
                    .as_ref()
                    .map(|p| format!(", port {p}"))
                    .unwrap_or_default(),
                s.netns
            )?;
        }
    }
    for e in &errors {
        eprintln!("vswitchctl: cni-gc: {e}");
    }
    Ok(if errors.is_empty() {
        EXIT_OK
    } else if errors
        .iter()
        .any(|e| e.code == ctl::cni::error::Code::TryAgainLater)
    {
        EXIT_UNREACHABLE
    } else {
        EXIT_FAILED
    })
}

/// Builds a port spec from CLI flags.
pub fn port_spec(a: &AddPortArgs) -> PortSpec {
    let mut p = PortSpec::new(
        &a.port,
        match a.kind {
            KindArg::Auto => PortKind::Auto,
            KindArg::Afxdp => PortKind::Afxdp,
            KindArg::Packet => PortKind::Packet,
            KindArg::Tap => PortKind::Tap,
        },
    );
    p.interface = a.interface.clone();
    p.queues = a.queues;
    p.xdp_mode = match a.xdp_mode {
        XdpArg::Auto => XdpModeSpec::Auto,
        XdpArg::Native => XdpModeSpec::Native,
        XdpArg::Generic => XdpModeSpec::Generic,
    };
    p.xdp_replace = a.xdp_replace;
    p.access = a.vlan.access;
    p.trunk = a.vlan.trunk.clone();
    p.native = a.vlan.native;
    p.native_tagged = a.vlan.tagged;
    p.mtu = a.mtu;
    p.isolated = a.isolated;
    p.learn_limit = a.learn_limit;
    p.storm_broadcast_pps = a.storm_broadcast;
    p.storm_multicast_pps = a.storm_multicast;
    p.storm_unknown_pps = a.storm_unknown;
    p.flood_unknown = a.flood.flood_unknown.is_none_or(OnOff::on);
    p.flood_multicast = a.flood.flood_multicast.is_none_or(OnOff::on);
    p.flood_broadcast = a.flood.flood_broadcast.is_none_or(OnOff::on);
    p
}

/// A CPU list item that is not a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a CPU number")]
pub struct NotACpu(String);

/// Parses "1,3" into CPU ids.
pub fn parse_cpus(s: &str) -> Result<Vec<usize>, NotACpu> {
    s.split(',')
        .filter(|t| !t.trim().is_empty())
        .map(|t| t.trim().parse::<usize>().map_err(|_| NotACpu(t.to_owned())))
        .collect()
}

/// For a veth: whether an AF_XDP port on it could carry TCP, i.e. whether its peer sends
/// with TX checksum offload (partial checksums AF_XDP cannot describe). The peer is looked
/// up by index in this namespace; in another namespace the check says how to look.
fn veth_peer_tx_csum(ifname: &str, read: &dyn Fn(&str) -> String) -> Option<Check> {
    use datapath::sys::netdev;
    if netdev::driver_name(ifname).ok()? != "veth" {
        return None;
    }
    let peer_index = read("iflink");
    let peer = std::fs::read_dir("/sys/class/net")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| {
            n != ifname
                && std::fs::read_to_string(format!("/sys/class/net/{n}/ifindex"))
                    .is_ok_and(|i| i.trim() == peer_index)
        });
    let Some(peer) = peer else {
        return Some(Check {
            ok: true,
            what: format!(
                "interface {ifname}: veth whose peer (ifindex {peer_index}) is in another namespace; for an AF_XDP port on it, `ethtool -k PEER` there must show tx-checksumming off (a packet port needs nothing)"
            ),
        });
    };
    let on = netdev::ioctl_socket()
        .ok()
        .and_then(|fd| netdev::tx_csum_enabled_on(&fd, &peer).ok())?;
    Some(Check {
        ok: true,
        what: if on {
            format!(
                "interface {ifname}: its veth peer {peer} sends with TX checksum offload: serve it with a packet port (the default); an AF_XDP port would break TCP unless `ethtool -K {peer} tx off`"
            )
        } else {
            format!(
                "interface {ifname}: its veth peer {peer} has TX checksum offload off: AF_XDP or packet ports both carry TCP"
            )
        },
    })
}

/// One pre-flight check.
struct Check {
    ok: bool,
    what: String,
}

/// `doctor`: checks this host can run the datapath, and each named interface.
pub fn doctor(interfaces: &[String], json: bool) -> Result<u8> {
    let mut checks = Vec::new();
    // AF_XDP socket family.
    let xsk = std::process::Command::new("sh")
        .args([
            "-c",
            "grep -qw xsk /proc/net/protocols 2>/dev/null || test -e /proc/net/xdp 2>/dev/null",
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    checks.push(Check {
        ok: kernel_has("CONFIG_XDP_SOCKETS")
            || xsk
            || Path::new("/sys/kernel/btf/vmlinux").exists(),
        what: "kernel: AF_XDP sockets (CONFIG_XDP_SOCKETS)".into(),
    });
    checks.push(Check {
        ok: Path::new("/proc/sys/net/core/bpf_jit_enable").exists(),
        what: "kernel: BPF JIT available (/proc/sys/net/core/bpf_jit_enable)".into(),
    });
    let bpffs = std::fs::read_to_string("/proc/mounts")
        .map(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(2) == Some("bpf"))
        })
        .unwrap_or(false);
    checks.push(Check {
        ok: bpffs,
        what: "bpffs mounted at /sys/fs/bpf (vswitchd mounts it when missing)".into(),
    });
    let memlock = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|x| x.starts_with("Max locked memory"))
                .map(|x| x.to_string())
        })
        .unwrap_or_default();
    let root = ctl::sys::euid() == 0;
    checks.push(Check {
        ok: root || memlock.contains("unlimited"),
        what: format!(
            "locked memory for UMEM: {} (vswitchd raises it when root)",
            memlock
                .split_whitespace()
                .skip(3)
                .take(2)
                .collect::<Vec<_>>()
                .join(" soft/hard ")
        ),
    });
    checks.push(Check {
        ok: root,
        what: "running as root (AF_XDP and tap need CAP_NET_ADMIN/CAP_BPF)".into(),
    });
    for ifname in interfaces {
        let base = PathBuf::from("/sys/class/net").join(ifname);
        if !base.exists() {
            checks.push(Check {
                ok: false,
                what: format!("interface {ifname}: does not exist"),
            });
            continue;
        }
        let read = |f: &str| {
            std::fs::read_to_string(base.join(f))
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let backend = PortKind::Auto.resolve(ifname);
        checks.push(Check {
            ok: true,
            what: format!(
                "interface {ifname}: `add-port` (type auto) serves it with {backend}{}",
                if backend == PortKind::Packet {
                    " (a virtual device: checksum offload and TSO end to end; `--type afxdp` \
                     only works for TCP when its peer has TX checksum offload off)"
                } else {
                    " (a NIC: AF_XDP, the packet-rate path; superframes toward it are \
                     segmented in software)"
                }
            ),
        });
        if let Some(c) = veth_peer_tx_csum(ifname, &read) {
            checks.push(c);
        }
        let oper = read("operstate");
        checks.push(Check {
            ok: oper == "up" || oper == "unknown",
            what: format!("interface {ifname}: operstate {oper}"),
        });
        // The XDP program is multi-buffer aware (xdp.frags), so attaching works at any MTU;
        // above one UMEM frame the port runs AF_XDP multi-buffer, up to AFXDP_MAX_MTU.
        let mtu = read("mtu");
        checks.push(Check {
            ok: mtu.parse::<u32>().is_ok_and(|m| m <= AFXDP_MAX_MTU),
            what: format!(
                "interface {ifname}: MTU {mtu} (an AF_XDP port carries at most MTU \
                 {AFXDP_MAX_MTU}; above {} ({} when it sends tagged frames) its frames span \
                 several {AFXDP_MAX_FRAME_SIZE}-byte UMEM frames (AF_XDP multi-buffer); \
                 longer frames are dropped as mtu_exceeded)",
                afxdp_single_frame_mtu(false),
                afxdp_single_frame_mtu(true),
            ),
        });
        let queues = std::fs::read_dir(base.join("queues"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                    .count()
            })
            .unwrap_or(0);
        checks.push(Check {
            ok: queues > 0,
            what: format!("interface {ifname}: {queues} rx queue(s)"),
        });
        let xdp = std::process::Command::new("ip")
            .args(["-d", "-j", "link", "show", "dev", ifname])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("\"xdp\""))
            .unwrap_or(false);
        checks.push(Check {
            ok: !xdp,
            what: format!(
                "interface {ifname}: {}",
                if xdp {
                    "an XDP program is attached (vswitchd replaces only its own stale program; another needs add-port --xdp-replace)"
                } else {
                    "no XDP program attached"
                }
            ),
        });
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if json {
        let v: Vec<serde_json::Value> = checks
            .iter()
            .map(|c| serde_json::json!({"ok": c.ok, "check": c.what}))
            .collect();
        print_json(&v)?;
    } else {
        for c in &checks {
            println!("[{}] {}", if c.ok { " ok " } else { "FAIL" }, c.what);
        }
        println!("{} checks, {failed} failed", checks.len());
    }
    Ok(if failed == 0 { EXIT_OK } else { EXIT_FAILED })
}

fn kernel_has(opt: &str) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    std::fs::read_to_string(format!("/boot/config-{}", release.trim()))
        .map(|c| c.lines().any(|l| l == format!("{opt}=y")))
        .unwrap_or(false)
}
