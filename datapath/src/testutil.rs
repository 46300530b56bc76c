//! Helpers for tests that need real interfaces (root): namespaces and veth pairs that
//! remove themselves on drop, raw frame builders, and AF_PACKET capture/injection that
//! re-inserts the 802.1Q tag veth reports in `PACKET_AUXDATA`.
//!
//! Names are unique per process and call (they contain the process id and a counter) and
//! fit the 15-byte interface name limit, so tests can run in parallel. Helpers panic with
//! context on failure: they are for tests only.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::sys::netdev;
use crate::sys::packet::PacketSocket;

/// EtherType of test frames (IEEE local experimental 1).
pub const TEST_ETHERTYPE: u16 = 0x88b5;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name like `{prefix}{pid}x{n}` of at most 15 bytes; `prefix` should be 1-3 bytes.
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut s = format!("{prefix}{}x{n}", std::process::id());
    s.truncate(15);
    s
}

/// Whether the test runs as root; if not, prints why `test` is skipped. Tests that need
/// namespaces, veth pairs, raw sockets or BPF start with
/// `if !root_or_skip("name") { return; }`, so `cargo test` passes for a contributor who
/// is not root and says which tests it skipped. The message goes to the process's
/// stderr directly, past the test harness's capture, so a passing run shows it too.
pub fn root_or_skip(test: &str) -> bool {
    use std::io::Write;
    let euid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
        })
        .and_then(|u| u.parse::<u32>().ok());
    if euid == Some(0) {
        return true;
    }
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED {test}: needs root (network namespaces, veth, AF_XDP, AF_PACKET, BPF)"
    );
    false
}

/// Runs a command, panicking with its stderr if it fails.
pub fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_quiet(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Disables IPv6 on an interface of the current namespace so the kernel sends no router
/// solicitations or DAD probes that would disturb exact-count tests.
pub fn disable_ipv6(ifname: &str) {
    let _ = std::fs::write(
        format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"),
        "1",
    );
}

/// A network namespace removed on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        let name = unique_name(prefix);
        run("ip", &["netns", "add", &name]);
        Netns { name }
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Path of the namespace file (for `setns`).
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
    /// Runs `cmd args` inside the namespace, panicking on failure.
    pub fn exec(&self, cmd: &str, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name, cmd];
        all.extend_from_slice(args);
        run("ip", &all);
    }
    /// Moves interface `ifname` of the current namespace into this one, disables IPv6 on
    /// it and sets it up.
    pub fn adopt(&self, ifname: &str) {
        run("ip", &["link", "set", ifname, "netns", &self.name]);
        self.exec(
            "sh",
            &[
                "-c",
                &format!("echo 1 > /proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"),
            ],
        );
        self.exec("ip", &["link", "set", ifname, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        run_quiet("ip", &["netns", "del", &self.name]);
    }
}

/// A veth pair in the current namespace, both ends up with IPv6 off; deleted on drop
/// (deleting one end removes both, wherever the peer went).
#[derive(Debug)]
pub struct VethPair {
    pub a: String,
    pub b: String,
}

impl VethPair {
    pub fn new(prefix: &str) -> VethPair {
        VethPair::with_queues(prefix, 1)
    }
    /// A pair whose ends have `queues` rx and tx queues each.
    pub fn with_queues(prefix: &str, queues: u32) -> VethPair {
        let base = unique_name(prefix);
        let mut a = base.clone();
        a.truncate(14);
        let mut b = a.clone();
        a.push('a');
        b.push('b');
        let q = queues.to_string();
        run(
            "ip",
            &[
                "link",
                "add",
                &a,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
                "type",
                "veth",
                "peer",
                "name",
                &b,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
            ],
        );
        let pair = VethPair { a, b };
        for end in [&pair.a, &pair.b] {
            disable_ipv6(end);
            run("ip", &["link", "set", end, "up"]);
        }
        pair
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        if !run_quiet("ip", &["link", "del", &self.a]) {
            run_quiet("ip", &["link", "del", &self.b]);
        }
    }
}

/// vswitch's XDP program with the fast path on, over a veth pair: end `a` is a trunk
/// (switch port 0), end `b` an access port of VLAN 100 (port 1), and in VLAN 100 MAC
/// `on_trunk` is a static entry on the trunk, `on_access` on the access port. For running
/// the program's decisions with [`crate::fastpath::XdpProgram::test_run`] (the kernel
/// checks that the ingress interface and the redirect target exist).
#[derive(Debug)]
pub struct FastPathPair {
    pub program: std::sync::Arc<crate::fastpath::XdpProgram>,
    /// ifindex of the trunk end and of the access end.
    pub trunk: u32,
    pub access: u32,
    pub veth: VethPair,
}

impl FastPathPair {
    pub fn new(
        prefix: &str,
        on_trunk: crate::wire::MacAddr,
        on_access: crate::wire::MacAddr,
    ) -> FastPathPair {
        use crate::topology::{PortConfig, PortId, Topology};
        let veth = VethPair::new(prefix);
        let trunk = netdev::if_index(&veth.a).expect("ifindex of the trunk end");
        let access = netdev::if_index(&veth.b).expect("ifindex of the access end");
        let program =
            crate::fastpath::XdpProgram::new(true, 4096).expect("load XDP program (root, BPF)");
        let mut tb = Topology::builder();
        tb.add_port(0, PortConfig::new("t", "trunk".parse().expect("vlan")))
            .expect("trunk port");
        tb.add_port(1, PortConfig::new("a", "access 100".parse().expect("vlan")))
            .expect("access port");
        let ids = [PortId::new(0).expect("id"), PortId::new(1).expect("id")];
        for (ifindex, id) in [(trunk, ids[0]), (access, ids[1])] {
            program
                .register(ifindex, 4096, true)
                .expect("register port");
            program.bind(ifindex, id);
        }
        program.sync_topology(std::sync::Arc::new(tb.build()));
        for (mac, port) in [(on_trunk, ids[0]), (on_access, ids[1])] {
            program.fdb_op(&crate::worker::FdbOp::AddStatic {
                vid: 100,
                mac,
                port,
            });
        }
        FastPathPair {
            program,
            trunk,
            access,
            veth,
        }
    }
}

/// An AF_PACKET socket on one interface for injecting and capturing frames.
#[derive(Debug)]
pub struct Capture {
    sock: PacketSocket,
}

impl Capture {
    /// Opens a capture on `ifname` in the current namespace.
    pub fn open(ifname: &str) -> Capture {
        let idx = netdev::if_index(ifname).unwrap_or_else(|| panic!("no interface {ifname}"));
        Capture {
            sock: PacketSocket::bind(idx, Duration::from_millis(100))
                .unwrap_or_else(|e| panic!("AF_PACKET socket on {ifname}: {e}")),
        }
    }
    /// Opens a capture on `ifname` inside namespace `ns`.
    pub fn open_in(ns: &Netns, ifname: &str) -> Capture {
        let name = ifname.to_owned();
        let sock = crate::sys::netns::run_in(&ns.path(), move || {
            let idx = netdev::if_index(&name).ok_or_else(|| {
                std::io::Error::other(format!("no interface {name} in namespace"))
            })?;
            PacketSocket::bind(idx, Duration::from_millis(100))
        })
        .and_then(|r| r)
        .unwrap_or_else(|e| panic!("AF_PACKET socket on {ifname} in {}: {e}", ns.name()));
        Capture { sock }
    }
    /// Sends one frame out of the interface.
    pub fn send(&self, frame: &[u8]) {
        self.try_send(frame)
            .unwrap_or_else(|e| panic!("AF_PACKET send of {} bytes: {e}", frame.len()));
    }
    /// Sends one frame; the kernel's answer as is (a frame the device dropped on
    /// transmit can be reported as ENOBUFS).
    pub fn try_send(&self, frame: &[u8]) -> std::io::Result<()> {
        self.sock.send(frame)
    }
    /// The next received frame (outer tag re-inserted), or `None` after ~100 ms.
    pub fn recv(&self) -> Option<Vec<u8>> {
        self.sock.recv().expect("AF_PACKET recv")
    }
    /// Every test frame ([`TEST_ETHERTYPE`], tagged or not) received until `want` of them
    /// arrived or `timeout` passed, in arrival order; other traffic is skipped.
    pub fn collect_test_frames(&self, want: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        while got.len() < want && Instant::now() < deadline {
            if let Some(f) = self.recv() {
                if is_test_frame(&f) {
                    got.push(f);
                }
            }
        }
        got
    }
}

/// Whether `frame` carries [`TEST_ETHERTYPE`], directly or behind one 802.1Q/802.1ad tag.
pub fn is_test_frame(frame: &[u8]) -> bool {
    test_payload(frame).is_some()
}

fn test_payload(frame: &[u8]) -> Option<&[u8]> {
    let et = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if et == TEST_ETHERTYPE {
        return frame.get(14..);
    }
    if et == 0x8100 || et == 0x88a8 {
        let inner = u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]);
        if inner == TEST_ETHERTYPE {
            return frame.get(18..);
        }
    }
    None
}

/// Sequence number of a frame built by [`test_frame`].
pub fn test_seq(frame: &[u8]) -> Option<u32> {
    let p = test_payload(frame)?;
    Some(u32::from_be_bytes(p.get(..4)?.try_into().ok()?))
}

/// An untagged test frame of `len` bytes (at least 60): `dst`, `src`, [`TEST_ETHERTYPE`],
/// a big-endian sequence number, then a byte pattern derived from `seq`.
pub fn test_frame(dst: [u8; 6], src: [u8; 6], seq: u32, len: usize) -> Vec<u8> {
    let len = len.max(60);
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&TEST_ETHERTYPE.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    let mut i = 0u32;
    while f.len() < len {
        f.push((seq.wrapping_mul(31).wrapping_add(i) & 0xff) as u8);
        i += 1;
    }
    f
}

/// The same frame with an 802.1Q tag (TPID 0x8100, `tci`) inserted after the source MAC.
pub fn tagged(frame: &[u8], tci: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(frame.len() + 4);
    f.extend_from_slice(&frame[..12]);
    f.extend_from_slice(&0x8100u16.to_be_bytes());
    f.extend_from_slice(&tci.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}
