//! The two hosts and what joins them.
//!
//! ```text
//!  h1 (10.77.0.1/24)                                   h2 (10.77.0.2/24)
//!  [a] ---------------------------------------------- [b]            direct
//!  [a] ---- [b  Linux bridge in namespace mid  b] ---- [a]           bridge
//!  [a] ---- [b  vswitchd / OVS, harness namespace  b] ---- [a]       vswitch, OVS
//!  [tap] ------- vswitchd (holds the tap fds) ------- [tap]          vswitch-tap
//! ```
//! The namespaces live for the whole run; links are made per case and measurement round,
//! so every case starts from fresh interfaces with the kernel's default offloads (nothing
//! but the offloads-off cases runs ethtool on them). Names are unique (process id +
//! counter); every piece is a guard that removes itself on drop, and deleting a
//! namespace destroys whatever is still inside it.

use anyhow::Context;
use datapath::testutil::{disable_ipv6, unique_name, Netns};
use vswitch_benches::harness::{built, disable_bridge_nf, sh};

/// Address of h1 and h2 (prefix length [`PREFIX_LEN`]).
pub const H1_ADDR: &str = "10.77.0.1";
pub const H2_ADDR: &str = "10.77.0.2";
pub const PREFIX_LEN: u8 = 24;

/// Name prefixes of everything this harness creates (for stale-run cleanup).
pub const PREFIXES: [&str; 6] = ["t1", "t2", "tm", "tv", "tb", "tt"];

/// The namespaces of one run: the two hosts and the one holding the Linux bridge.
#[derive(Debug)]
pub struct Hosts {
    pub h1: Netns,
    pub h2: Netns,
    pub mid: Netns,
    /// What was done about bridge netfilter in `mid`.
    pub bridge_nf: String,
}

impl Hosts {
    pub fn new() -> anyhow::Result<Hosts> {
        let h1 = built("create namespace h1", || Netns::new("t1"))?;
        let h2 = built("create namespace h2", || Netns::new("t2"))?;
        let mid = built("create the bridge namespace", || Netns::new("tm"))?;
        for ns in [&h1, &h2, &mid] {
            // Interfaces moved in later get IPv6 off too: the link carries only the test.
            sh(
                "ip",
                &[
                    "netns",
                    "exec",
                    ns.name(),
                    "sysctl",
                    "-q",
                    "-w",
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ],
            )?;
            sh("ip", &["-n", ns.name(), "link", "set", "lo", "up"])?;
        }
        let bridge_nf = disable_bridge_nf(mid.name());
        Ok(Hosts {
            h1,
            h2,
            mid,
            bridge_nf,
        })
    }
}

/// A veth pair; end `a` goes to a host, end `b` to whatever joins the hosts. Deleted on
/// drop wherever its ends went.
#[derive(Debug)]
pub struct Veth {
    a: String,
    b: String,
    a_ns: Option<String>,
    b_ns: Option<String>,
}

impl Veth {
    /// A pair in the harness's namespace, both ends up, IPv6 off, default offloads.
    pub fn new() -> anyhow::Result<Veth> {
        let mut a = unique_name("tv");
        a.truncate(14);
        let mut b = a.clone();
        a.push('a');
        b.push('b');
        sh(
            "ip",
            &["link", "add", &a, "type", "veth", "peer", "name", &b],
        )
        .context("create veth pair")?;
        let v = Veth {
            a,
            b,
            a_ns: None,
            b_ns: None,
        };
        for end in [&v.a, &v.b] {
            disable_ipv6(end);
            sh("ip", &["link", "set", end, "up"])?;
        }
        Ok(v)
    }

    pub fn a(&self) -> &str {
        &self.a
    }
    pub fn b(&self) -> &str {
        &self.b
    }

    /// Moves end `a` into `ns` (down there until [`host_addr`]).
    pub fn move_a(&mut self, ns: &Netns) -> anyhow::Result<()> {
        move_link(&self.a, ns)?;
        self.a_ns = Some(ns.name().to_owned());
        Ok(())
    }

    /// Moves end `b` into `ns` and sets it up.
    pub fn move_b(&mut self, ns: &Netns) -> anyhow::Result<()> {
        move_link(&self.b, ns)?;
        self.b_ns = Some(ns.name().to_owned());
        sh("ip", &["-n", ns.name(), "link", "set", &self.b, "up"])
    }
}

fn ip_in(ns: Option<&str>, args: &[&str]) -> anyhow::Result<()> {
    let mut all = Vec::new();
    if let Some(ns) = ns {
        all.extend(["-n", ns]);
    }
    all.extend_from_slice(args);
    sh("ip", &all)
}

impl Drop for Veth {
    fn drop(&mut self) {
        if ip_in(self.a_ns.as_deref(), &["link", "del", &self.a]).is_err() {
            let _ = ip_in(self.b_ns.as_deref(), &["link", "del", &self.b]);
        }
    }
}

/// Moves interface `ifname` of the harness's namespace into `ns`.
pub fn move_link(ifname: &str, ns: &Netns) -> anyhow::Result<()> {
    sh("ip", &["link", "set", ifname, "netns", ns.name()])
        .with_context(|| format!("move {ifname} into {}", ns.name()))
}

/// Gives host interface `ifname` (already in `ns`) its address and sets it up.
pub fn host_addr(ns: &Netns, ifname: &str, addr: &str) -> anyhow::Result<()> {
    let cidr = format!("{addr}/{PREFIX_LEN}");
    sh(
        "ip",
        &["-n", ns.name(), "addr", "add", &cidr, "dev", ifname],
    )?;
    sh("ip", &["-n", ns.name(), "link", "set", ifname, "up"])
}

/// Turns TX checksum offload off on host interface `ifname` (TSO follows it off): the
/// host then sends only complete checksums, which AF_XDP can carry.
pub fn offloads_off(ns: &Netns, ifname: &str) -> anyhow::Result<()> {
    sh(
        "ip",
        &[
            "netns",
            "exec",
            ns.name(),
            "ethtool",
            "-K",
            ifname,
            "tx",
            "off",
        ],
    )
    .with_context(|| format!("ethtool -K {ifname} tx off"))
}

/// A Linux bridge (VLAN-unaware) in namespace `ns`; deleted on drop.
#[derive(Debug)]
pub struct LinuxBridge {
    ns: String,
    pub name: String,
}

impl LinuxBridge {
    pub fn new(ns: &Netns) -> anyhow::Result<LinuxBridge> {
        let br = LinuxBridge {
            ns: ns.name().to_owned(),
            name: unique_name("tb"),
        };
        sh(
            "ip",
            &["-n", &br.ns, "link", "add", &br.name, "type", "bridge"],
        )?;
        sh("ip", &["-n", &br.ns, "link", "set", &br.name, "up"])?;
        Ok(br)
    }

    /// Enslaves `ifname` (in the bridge's namespace).
    pub fn attach(&self, ifname: &str) -> anyhow::Result<()> {
        sh(
            "ip",
            &["-n", &self.ns, "link", "set", ifname, "master", &self.name],
        )
    }
}

impl Drop for LinuxBridge {
    fn drop(&mut self) {
        let _ = sh("ip", &["-n", &self.ns, "link", "del", &self.name]);
    }
}
