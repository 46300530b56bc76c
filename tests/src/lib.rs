//! Fixtures for the namespace integration tests (root only).
//!
//! - [`Host`]: a network namespace with one veth pair; the namespace end carries an IPv4
//!   address and a fixed MAC; the other end stays in the test's namespace and becomes a
//!   switch port. [`Host::with_offloads`] keeps the kernel's default offloads (TX checksum
//!   offload and TSO on, as pods have them): the host for `packet` and tap ports, and for
//!   every test that moves TCP. [`Host::for_afxdp`] turns TX checksum offload off, because
//!   an AF_XDP port cannot see partial checksums (TCP through it would move 0 bits/s): only
//!   for hosts behind AF_XDP ports.
//! - [`TapHost`]: a namespace whose interface is a switch-owned tap device (default
//!   offloads: superframes pass through).
//! - [`Switch`]: a topology plus a running [`Datapath`] whose ports are AF_XDP sockets or
//!   `packet` sockets (AF_PACKET with `PACKET_VNET_HDR`) on interfaces of the test's
//!   namespace, or switch-owned tap devices, each placed on a chosen worker.
//! - [`run_timeout`], [`Host::ping`], [`tcp_transfer`] (IPv4 or IPv6): traffic with hard
//!   timeouts, judged by what the receiving namespace got.
//!
//! Cleanup: every object removes what it created when dropped (also while unwinding from a
//! failed assertion). Declare hosts and links before the switch that uses them, so the
//! switch (and its AF_XDP sockets) goes first. Names contain the process id and a counter,
//! so tests run in parallel safely.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use datapath::counters::PortCounters;
use datapath::port::{AfXdpConfig, AfXdpPort, PacketConfig, PacketPort, RxPort, TapPort, TxPort};
use datapath::testutil::{unique_name, Capture, Netns, VethPair};
use datapath::topology::{PortConfig, PortId, Topology};
use datapath::worker::{Datapath, DatapathConfig, WorkerSnapshot};

pub use datapath::testutil;

pub mod cni;
pub mod daemon;
pub mod inject;
pub mod lab;

/// Timeout for control-plane round trips to the workers.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// Output of a command run with [`run_timeout`].
#[derive(Debug)]
pub struct CmdOutput {
    /// `None` when the command was killed at the timeout.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }
}

/// Runs `cmd args`, killing it after `timeout` (the test then sees `status: None` instead
/// of hanging). Output is collected on helper threads so a chatty command cannot block.
pub fn run_timeout(cmd: &str, args: &[&str], timeout: Duration) -> CmdOutput {
    let start = Instant::now();
    let child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd} {args:?}: {e}"));
    collect_output(child, start, timeout)
}

/// Collects a spawned child's piped stdout and stderr (on helper threads, so a chatty
/// command cannot block) and waits for it, killing it at `start + timeout` (then
/// `status: None`).
pub fn collect_output(
    mut child: std::process::Child,
    start: Instant,
    timeout: Duration,
) -> CmdOutput {
    let mut out = child.stdout.take().expect("child stdout is piped");
    let mut err = child.stderr.take().expect("child stderr is piped");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = start + timeout;
    let status = loop {
        match child.try_wait().expect("wait for child") {
            Some(s) => break Some(s),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    CmdOutput {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
        elapsed: start.elapsed(),
    }
}

/// Runs `cmd args` with a 10 s timeout, panicking with its output unless it succeeds.
pub fn run_ok(cmd: &str, args: &[&str]) -> CmdOutput {
    let o = run_timeout(cmd, args, Duration::from_secs(10));
    assert!(
        o.success(),
        "{cmd} {args:?} failed (status {:?}): {}{}",
        o.status,
        o.stdout,
        o.stderr
    );
    o
}

/// Runs `cmd args` inside namespace `ns` (see [`run_ok`]).
pub fn ns_run_ok(ns: &Netns, cmd: &str, args: &[&str]) -> CmdOutput {
    let mut all = vec!["netns", "exec", ns.name(), cmd];
    all.extend_from_slice(args);
    run_ok("ip", &all)
}

/// A MAC unique to this process and call: locally administered, unicast.
pub fn unique_mac() -> [u8; 6] {
    static N: AtomicU32 = AtomicU32::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    [
        0x02,
        (pid >> 16) as u8,
        (pid >> 8) as u8,
        pid as u8,
        (n >> 8) as u8,
        n as u8,
    ]
}

pub fn mac_string(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What `ping` reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingResult {
    pub transmitted: u32,
    pub received: u32,
    /// Whole ping output, for assertion messages.
    pub output: String,
}

impl PingResult {
    pub fn all_received(&self) -> bool {
        self.transmitted > 0 && self.received == self.transmitted
    }
}

/// Parses the summary line `N packets transmitted, M received, ...`.
pub fn parse_ping(output: &str) -> Option<(u32, u32)> {
    let line = output.lines().find(|l| l.contains("packets transmitted"))?;
    let mut parts = line.split(',');
    let tx = parts.next()?.split_whitespace().next()?.parse().ok()?;
    let rx = parts.next()?.split_whitespace().next()?.parse().ok()?;
    Some((tx, rx))
}

/// A host: namespace `ns` with interface `ifname` (the namespace end of `veth`), address
/// `ip`/24 and MAC `mac`. `switch_if()` is the other end, in the test's namespace.
#[derive(Debug)]
pub struct Host {
    // Field order is drop order: the link goes before its namespace.
    veth: VethPair,
    pub ns: Netns,
    pub ifname: String,
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
}

impl Host {
    /// A host with the kernel's default offloads (TX checksum offload and TSO on, as a
    /// pod's veth has them): for `packet` and tap ports, and whenever the test moves TCP.
    pub fn with_offloads(prefix: &str, ip: Ipv4Addr) -> Host {
        Host::create(prefix, ip, Offloads::KernelDefault)
    }

    /// A host with TX checksum offload off on its interface, for the tests that move
    /// TCP or UDP from it through an AF_XDP port: an AF_XDP port cannot see partial
    /// checksums (the frames would reach the other side with wrong checksums: TCP moves
    /// 0 bits/s), so users must turn it off there, as vswitch warns (a test that asserts
    /// a port's exact notes uses it to leave that warning out). Every other test,
    /// AF_XDP ports included (ARP, ICMP and raw frames carry no partial checksums), uses
    /// [`Host::with_offloads`], the kernel's defaults.
    pub fn for_afxdp(prefix: &str, ip: Ipv4Addr) -> Host {
        Host::create(prefix, ip, Offloads::TxCsumOff)
    }

    /// Creates the namespace and veth pair and configures the namespace end.
    fn create(prefix: &str, ip: Ipv4Addr, offloads: Offloads) -> Host {
        let ns = Netns::new(prefix);
        let veth = VethPair::new(prefix);
        let mac = unique_mac();
        let host = Host {
            ifname: veth.b.clone(),
            veth,
            ns,
            ip,
            mac,
        };
        configure_ns_if(&host.ns, &host.ifname, ip, mac, offloads);
        host
    }

    /// Turns IPv6 on for the host's interface and adds `ip`/64 without duplicate address
    /// detection (usable at once).
    pub fn add_ipv6(&self, ip: Ipv6Addr) {
        add_ipv6(&self.ns, &self.ifname, ip);
    }

    /// The veth end in the test's namespace (where the switch attaches).
    pub fn switch_if(&self) -> &str {
        &self.veth.a
    }

    /// `ping -c count` from this host to `dst` (0.2 s apart, 2 s per reply, hard deadline).
    pub fn ping(&self, dst: Ipv4Addr, count: u32) -> PingResult {
        ping_from(&self.ns, dst, count)
    }

    /// An AF_PACKET capture on the host's interface (frames arriving at the host).
    pub fn capture(&self) -> Capture {
        Capture::open_in(&self.ns, &self.ifname)
    }

    /// Sets the MTU of both ends of the host's veth pair (the link carries frames up to
    /// `mtu` + 14 bytes in both directions).
    pub fn set_mtu(&self, mtu: u32) {
        let m = mtu.to_string();
        run_ok("ip", &["link", "set", "dev", self.switch_if(), "mtu", &m]);
        ns_run_ok(
            &self.ns,
            "ip",
            &["link", "set", "dev", &self.ifname, "mtu", &m],
        );
    }
}

/// A host whose interface is a switch-owned tap device: [`TapHost::new`] creates the
/// namespace and picks the device name; after vswitchd created the tap (`add-port
/// --type tap --interface NAME`), [`TapHost::attach`] moves it into the namespace and
/// configures it like a [`Host`]'s interface. Create it before the daemon, so the
/// namespace outlives the daemon and the device disappears with the daemon's descriptor.
#[derive(Debug)]
pub struct TapHost {
    pub ns: Netns,
    pub ifname: String,
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
}

impl TapHost {
    pub fn new(prefix: &str, ip: Ipv4Addr) -> TapHost {
        TapHost {
            ns: Netns::new(prefix),
            ifname: tap_name(),
            ip,
            mac: unique_mac(),
        }
    }

    /// Moves the (existing) tap device into the namespace and configures it (the
    /// kernel's default offloads).
    pub fn attach(&self) {
        configure_ns_if(
            &self.ns,
            &self.ifname,
            self.ip,
            self.mac,
            Offloads::KernelDefault,
        );
    }

    /// See [`Host::add_ipv6`].
    pub fn add_ipv6(&self, ip: Ipv6Addr) {
        add_ipv6(&self.ns, &self.ifname, ip);
    }

    /// Sets the tap's MTU on its kernel side (inside the namespace).
    pub fn set_mtu(&self, mtu: u32) {
        ns_run_ok(
            &self.ns,
            "ip",
            &["link", "set", "dev", &self.ifname, "mtu", &mtu.to_string()],
        );
    }

    /// The tap's interface index in its namespace (changes only if the device is
    /// replaced).
    pub fn ifindex(&self) -> u32 {
        let o = ns_run_ok(
            &self.ns,
            "cat",
            &[&format!("/sys/class/net/{}/ifindex", self.ifname)],
        );
        o.stdout
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("ifindex of {}: {e}: {:?}", self.ifname, o.stdout))
    }

    /// The tap's MTU as its namespace sees it.
    pub fn mtu(&self) -> u32 {
        let o = ns_run_ok(
            &self.ns,
            "cat",
            &[&format!("/sys/class/net/{}/mtu", self.ifname)],
        );
        o.stdout
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("MTU of {}: {e}: {:?}", self.ifname, o.stdout))
    }

    pub fn ping(&self, dst: Ipv4Addr, count: u32) -> PingResult {
        ping_from(&self.ns, dst, count)
    }

    /// An AF_PACKET capture on the tap's kernel side (frames the switch wrote to it).
    pub fn capture(&self) -> Capture {
        Capture::open_in(&self.ns, &self.ifname)
    }
}

/// The offloads a test host's interface sends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offloads {
    /// As the kernel sets them up: TX checksum offload and TSO on for veth and tap (pods
    /// and VMs send this way).
    KernelDefault,
    /// TX checksum offload off (and with it TSO): what a host behind an AF_XDP port needs,
    /// since AF_XDP cannot see partial checksums.
    TxCsumOff,
}

/// Moves interface `ifname` into `ns` (unless already there) and configures it with
/// `ip`/24 and `mac` (IPv6 off), brings it and `lo` up and sets its `offloads`.
pub fn configure_ns_if(ns: &Netns, ifname: &str, ip: Ipv4Addr, mac: [u8; 6], offloads: Offloads) {
    if !link_in_ns(ns, ifname) {
        run_ok("ip", &["link", "set", ifname, "netns", ns.name()]);
    }
    // Best effort: below MTU 1280 the interface has no IPv6 configuration at all.
    let _ = run_timeout(
        "ip",
        &[
            "netns",
            "exec",
            ns.name(),
            "sh",
            "-c",
            &format!("echo 1 > /proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"),
        ],
        Duration::from_secs(10),
    );
    ns_run_ok(
        ns,
        "ip",
        &["link", "set", "dev", ifname, "address", &mac_string(mac)],
    );
    ns_run_ok(
        ns,
        "ip",
        &["addr", "add", &format!("{ip}/24"), "dev", ifname],
    );
    ns_run_ok(ns, "ip", &["link", "set", "dev", ifname, "up"]);
    ns_run_ok(ns, "ip", &["link", "set", "dev", "lo", "up"]);
    if offloads == Offloads::TxCsumOff {
        ns_run_ok(ns, "ethtool", &["-K", ifname, "tx", "off"]);
    }
}

/// Turns IPv6 on for `ifname` in `ns` and adds `ip`/64 with `nodad` (usable at once).
pub fn add_ipv6(ns: &Netns, ifname: &str, ip: Ipv6Addr) {
    ns_run_ok(
        ns,
        "sh",
        &[
            "-c",
            &format!("echo 0 > /proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"),
        ],
    );
    ns_run_ok(
        ns,
        "ip",
        &[
            "-6",
            "addr",
            "add",
            &format!("{ip}/64"),
            "dev",
            ifname,
            "nodad",
        ],
    );
}

fn link_in_ns(ns: &Netns, ifname: &str) -> bool {
    run_timeout(
        "ip",
        &[
            "netns",
            "exec",
            ns.name(),
            "ip",
            "link",
            "show",
            "dev",
            ifname,
        ],
        Duration::from_secs(10),
    )
    .success()
}

/// `ping -c count` from namespace `ns` to `dst`, 0.2 s apart, waiting up to 2 s per reply,
/// with a hard deadline; the command is killed if it still runs after that.
pub fn ping_from(ns: &Netns, dst: Ipv4Addr, count: u32) -> PingResult {
    ping_with(ns, dst, count, &[])
}

/// [`ping_from`] with extra ping options, e.g. `["-M", "do", "-s", "1472"]` (DF set,
/// 1472 bytes of ICMP payload: a 1514-byte Ethernet frame).
pub fn ping_with(ns: &Netns, dst: Ipv4Addr, count: u32, extra: &[&str]) -> PingResult {
    let deadline_s = count / 5 + 4;
    let c = count.to_string();
    let w = deadline_s.to_string();
    let d = dst.to_string();
    let mut args = vec![
        "netns",
        "exec",
        ns.name(),
        "ping",
        "-n",
        "-c",
        &c,
        "-i",
        "0.2",
        "-W",
        "2",
        "-w",
        &w,
    ];
    args.extend_from_slice(extra);
    args.push(&d);
    let o = run_timeout("ip", &args, Duration::from_secs(u64::from(deadline_s) + 10));
    let output = format!("{}{}", o.stdout, o.stderr);
    assert!(!o.timed_out(), "ping outlived its own deadline: {output}");
    let (transmitted, received) = parse_ping(&o.stdout)
        .unwrap_or_else(|| panic!("no ping summary from {}: {output}", ns.name()));
    PingResult {
        transmitted,
        received,
        output,
    }
}

/// Asserts that every one of `count` pings from `from` to `to` was answered.
pub fn assert_ping_ok(from: &Host, to: Ipv4Addr, count: u32) {
    assert_ping_ok_from(&from.ns, to, count);
}

/// Asserts that none of `count` pings from `from` to `to` was answered.
pub fn assert_ping_fails(from: &Host, to: Ipv4Addr, count: u32) {
    assert_ping_fails_from(&from.ns, to, count);
}

/// [`assert_ping_ok`] from any namespace.
pub fn assert_ping_ok_from(from: &Netns, to: Ipv4Addr, count: u32) {
    let r = ping_from(from, to, count);
    assert!(
        r.transmitted == count && r.received == count,
        "ping {} -> {to}: expected {count}/{count} replies (0% loss), got {}/{}:\n{}",
        from.name(),
        r.received,
        r.transmitted,
        r.output
    );
}

/// [`assert_ping_fails`] from any namespace.
pub fn assert_ping_fails_from(from: &Netns, to: Ipv4Addr, count: u32) {
    let r = ping_from(from, to, count);
    assert!(
        r.transmitted >= 1 && r.received == 0,
        "ping {} -> {to}: expected 100% loss, got {}/{}:\n{}",
        from.name(),
        r.received,
        r.transmitted,
        r.output
    );
}

/// Byte `i` of the stream [`tcp_transfer`] sends (for checking captured payloads).
pub fn tcp_pattern(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

/// Result of [`tcp_transfer`] as the receiver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpResult {
    pub received: u64,
    /// Offset of the first byte that differed from what was sent.
    pub first_mismatch: Option<u64>,
    pub elapsed: Duration,
}

/// Sends `bytes` of a known pattern ([`tcp_pattern`]) over TCP from namespace `from` to
/// `to`:`port` (IPv4 or IPv6; a listener in namespace `to_ns`) and returns what the
/// receiver got. Every step has a timeout (`timeout` overall), so a broken path fails
/// instead of hanging.
pub fn tcp_transfer(
    from: &Netns,
    to_ns: &Netns,
    to: impl Into<IpAddr>,
    port: u16,
    bytes: u64,
    timeout: Duration,
) -> TcpResult {
    let start = Instant::now();
    let deadline = start + timeout;
    let addr = SocketAddr::new(to.into(), port);
    // Sockets keep the namespace of the thread that created them.
    let listener = datapath::sys::netns::run_in(&to_ns.path(), move || TcpListener::bind(addr))
        .expect("enter receiver namespace")
        .unwrap_or_else(|e| panic!("listen on {addr} in {}: {e}", to_ns.name()));
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let server = std::thread::spawn(move || -> std::io::Result<(u64, Option<u64>)> {
        let mut stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(std::io::Error::other("no connection before the deadline"));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            }
        };
        stream.set_nonblocking(false)?;
        let mut buf = vec![0u8; 65536];
        let mut got = 0u64;
        let mut mismatch = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::Error::other(format!(
                    "receive deadline passed after {got} bytes"
                )));
            }
            stream.set_read_timeout(Some(left))?;
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            if mismatch.is_none() {
                mismatch = buf[..n]
                    .iter()
                    .enumerate()
                    .find(|(i, b)| **b != tcp_pattern(got + *i as u64))
                    .map(|(i, _)| got + i as u64);
            }
            got += n as u64;
        }
        Ok((got, mismatch))
    });
    let client = datapath::sys::netns::run_in(&from.path(), move || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(5))
    })
    .expect("enter sender namespace");
    let send = client.and_then(|mut s| {
        let left = deadline.saturating_duration_since(Instant::now());
        s.set_write_timeout(Some(left.max(Duration::from_millis(1))))?;
        let mut chunk = vec![0u8; 65536];
        let mut sent = 0u64;
        while sent < bytes {
            let n = (bytes - sent).min(chunk.len() as u64) as usize;
            for (i, b) in chunk[..n].iter_mut().enumerate() {
                *b = tcp_pattern(sent + i as u64);
            }
            s.write_all(&chunk[..n])?;
            sent += n as u64;
        }
        s.shutdown(std::net::Shutdown::Write)
    });
    let received = server.join().expect("TCP receiver thread panicked");
    if let Err(e) = &send {
        panic!("TCP send {from:?} -> {addr} failed: {e}; receiver: {received:?}");
    }
    let (received, first_mismatch) =
        received.unwrap_or_else(|e| panic!("TCP receive at {addr} failed: {e}"));
    TcpResult {
        received,
        first_mismatch,
        elapsed: start.elapsed(),
    }
}

/// Drains `cap` until nothing arrived for ~100 ms (or 10 s passed) and returns the frames.
pub fn drain(cap: &Capture) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while Instant::now() < deadline {
        match cap.recv() {
            Some(f) => got.push(f),
            None => break,
        }
    }
    got
}

/// Source MAC of a frame.
pub fn src_mac(f: &[u8]) -> Option<[u8; 6]> {
    f.get(6..12)?.try_into().ok()
}

/// Outer EtherType and, for an 802.1Q frame, its VID.
pub fn outer_vlan(f: &[u8]) -> (u16, Option<u16>) {
    let et = f
        .get(12..14)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    if et == 0x8100 {
        let tci = f
            .get(14..16)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
        (et, Some(tci & 0x0fff))
    } else {
        (et, None)
    }
}

/// Whether `f` is an ARP request (tagged or not) whose sender is `mac`.
pub fn is_arp_from(f: &[u8], mac: [u8; 6]) -> bool {
    let off = match outer_vlan(f) {
        (0x8100, _) => 16,
        _ => 12,
    };
    f.get(off..off + 2) == Some(&[0x08, 0x06][..]) && src_mac(f) == Some(mac)
}

/// How a switch port gets its I/O.
#[derive(Debug)]
pub enum Backend {
    /// An AF_XDP socket on this interface of the test's namespace (queue 0).
    AfXdp(String),
    /// A tap device the switch owns.
    Tap(TapPort),
    /// An AF_PACKET socket with `PACKET_VNET_HDR` on this interface of the test's
    /// namespace (superframes and partial checksums pass through).
    Packet(String),
}

/// One port of a [`Switch`].
#[derive(Debug)]
pub struct PortSpec {
    pub name: String,
    /// VLAN configuration text, e.g. `access 100`, `trunk 100,200`.
    pub vlan: String,
    pub backend: Backend,
    /// Worker that owns the port (taken modulo the worker count).
    pub worker: usize,
}

impl PortSpec {
    pub fn afxdp(ifname: &str, vlan: &str, worker: usize) -> PortSpec {
        PortSpec {
            name: ifname.to_owned(),
            vlan: vlan.to_owned(),
            backend: Backend::AfXdp(ifname.to_owned()),
            worker,
        }
    }
    pub fn packet(ifname: &str, vlan: &str, worker: usize) -> PortSpec {
        PortSpec {
            name: ifname.to_owned(),
            vlan: vlan.to_owned(),
            backend: Backend::Packet(ifname.to_owned()),
            worker,
        }
    }
    pub fn tap(tap: TapPort, vlan: &str, worker: usize) -> PortSpec {
        PortSpec {
            name: tap.name().to_owned(),
            vlan: vlan.to_owned(),
            backend: Backend::Tap(tap),
            worker,
        }
    }
}

/// Worker settings for a machine shared with other tests: short spin, then sleep.
pub fn datapath_config(workers: usize) -> DatapathConfig {
    DatapathConfig {
        workers,
        idle_polls: 32,
        idle_sleep: Duration::from_micros(200),
        ..DatapathConfig::default()
    }
}

/// A running switch: port `i` of `ports` is `PortId` `i`. Dropping it stops the workers,
/// which drop the ports (AF_XDP sockets detach, tap devices disappear).
#[derive(Debug)]
pub struct Switch {
    dp: Datapath,
    names: Vec<String>,
}

impl Switch {
    pub fn start(workers: usize, ports: Vec<PortSpec>) -> Switch {
        Switch::start_with(datapath_config(workers), ports)
    }

    /// [`Switch::start`] with the datapath settings given (`config.workers` workers).
    pub fn start_with(config: DatapathConfig, ports: Vec<PortSpec>) -> Switch {
        let workers = config.workers;
        let mut b = Topology::builder();
        for (i, p) in ports.iter().enumerate() {
            let vlan = p
                .vlan
                .parse()
                .unwrap_or_else(|e| panic!("VLAN config {:?} of {}: {e}", p.vlan, p.name));
            b.add_port(i, PortConfig::new(p.name.clone(), vlan))
                .unwrap_or_else(|e| panic!("add port {i} ({}): {e}", p.name));
        }
        let mut dp = Datapath::start(config, b.build()).expect("start datapath");
        let mut names = Vec::new();
        for (i, p) in ports.into_iter().enumerate() {
            let (rx, tx): (Box<dyn RxPort>, Box<dyn TxPort>) = match p.backend {
                Backend::AfXdp(ifname) => {
                    let port = AfXdpPort::open(&AfXdpConfig::new(ifname.clone()))
                        .unwrap_or_else(|e| panic!("AF_XDP port on {ifname}: {e}"));
                    let (rx, tx) = port.split();
                    (Box::new(rx), Box::new(tx))
                }
                Backend::Tap(tap) => {
                    let (rx, tx) = tap.split();
                    (Box::new(rx), Box::new(tx))
                }
                Backend::Packet(ifname) => {
                    let port = PacketPort::open(&PacketConfig::new(ifname.clone()))
                        .unwrap_or_else(|e| panic!("packet port on {ifname}: {e}"));
                    let (rx, tx) = port.split();
                    (Box::new(rx), Box::new(tx))
                }
            };
            let worker = p.worker % workers;
            let got = dp
                .attach_port(port_id(i), vec![rx], tx, Some(worker))
                .unwrap_or_else(|e| panic!("attach port {i} ({}): {e}", p.name));
            assert_eq!(
                got, worker,
                "port {} placed on the requested worker",
                p.name
            );
            names.push(p.name);
        }
        dp.sync(CONTROL_TIMEOUT).expect("workers took the ports");
        Switch { dp, names }
    }

    pub fn datapath(&self) -> &Datapath {
        &self.dp
    }

    /// Changes the workers' poll mode while they run.
    pub fn set_poll(&mut self, poll: datapath::worker::PollPolicy) {
        self.dp.set_poll(poll).expect("set poll mode");
    }

    /// Port id of the port named `name`.
    pub fn port(&self, name: &str) -> PortId {
        let i = self
            .names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("no port {name}"));
        port_id(i)
    }

    /// The worker transmitting on port `name`.
    pub fn owner(&self, name: &str) -> usize {
        self.dp
            .owner(self.port(name))
            .unwrap_or_else(|| panic!("port {name} has no owner"))
    }

    pub fn snapshot(&self) -> Vec<WorkerSnapshot> {
        self.dp
            .snapshot(false, CONTROL_TIMEOUT)
            .expect("worker snapshot")
    }

    /// Counters of port `name`, summed over the workers.
    pub fn counters(&self, name: &str) -> PortCounters {
        let id = self.port(name);
        let mut c = PortCounters::default();
        for s in self.snapshot() {
            for (p, pc) in &s.counters {
                if *p == id {
                    c.accumulate(pc);
                }
            }
        }
        c
    }

    /// Frames handed from one worker to another so far (all workers).
    pub fn handoffs(&self) -> u64 {
        self.snapshot().iter().map(|s| s.stats.handoff_out).sum()
    }
}

pub fn port_id(i: usize) -> PortId {
    PortId::new(i).expect("port id in range")
}

/// A tap device name unique to this process and call.
pub fn tap_name() -> String {
    unique_name("tp")
}

/// An Ethernet frame: `dst`, `src`, the 802.1Q tags of `vids` (outer first, PCP 0),
/// EtherType [`testutil::TEST_ETHERTYPE`], sequence number `seq`, padded to `len` bytes.
pub fn eth_frame(dst: [u8; 6], src: [u8; 6], vids: &[u16], seq: u32, len: usize) -> Vec<u8> {
    let mut f = testutil::test_frame(dst, src, seq, len.saturating_sub(4 * vids.len()));
    for v in vids.iter().rev() {
        f = testutil::tagged(&f, *v);
    }
    f
}

/// Destination MAC of a frame.
pub fn dst_mac(f: &[u8]) -> Option<[u8; 6]> {
    f.get(0..6)?.try_into().ok()
}

/// The test frames ([`testutil::test_frame`]) among `frames` whose sequence number lies in
/// `range`.
pub fn test_frames_in(frames: &[Vec<u8>], range: std::ops::Range<u32>) -> Vec<&Vec<u8>> {
    frames
        .iter()
        .filter(|f| testutil::test_seq(f).is_some_and(|s| range.contains(&s)))
        .collect()
}

/// Whether the test runs as root; if not, prints why `test` is skipped. Tests that need
/// namespaces, veth pairs and raw sockets start with
/// `if !vswitch_tests::root_or_skip("name") { return; }`.
pub use datapath::testutil::root_or_skip;

/// Keeps a test from running past `limit`: when it is dropped late, or never, the
/// watchdog kills process `pid` (e.g. a vswitchd in a storm) and reports on stderr, so
/// every later step of the test fails fast instead of hanging.
#[derive(Debug)]
pub struct Watchdog {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Watchdog {
    pub fn new(limit: Duration, what: &'static str, pid: Option<u32>) -> Watchdog {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < limit {
                if d.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!("watchdog: {what} exceeded its hard limit of {limit:?}");
            if let Some(pid) = pid {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        });
        Watchdog { done }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

/// Sends test frames `frame(1..=n)` from `at_from` while `at_to` collects them, pausing
/// briefly every 32 frames (the AF_PACKET sender's buffer and the veth ring are not what
/// is tested); asserts that `at_to` got exactly `expect(seq)` for each, once, in order
/// (duplicates arriving within the drain included).
pub fn burst_exactly_once(
    at_from: &Capture,
    at_to: &Capture,
    n: u32,
    frame: impl Fn(u32) -> Vec<u8>,
    expect: impl Fn(u32) -> Vec<u8>,
    what: &str,
) {
    let mut got = std::thread::scope(|s| {
        let rx = s.spawn(|| at_to.collect_test_frames(n as usize, Duration::from_secs(5)));
        for seq in 1..=n {
            at_from.send(&frame(seq));
            if seq % 32 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        rx.join().expect("collector")
    });
    got.extend(
        drain(at_to)
            .into_iter()
            .filter(|f| testutil::test_seq(f).is_some()),
    );
    let seqs: Vec<u32> = got.iter().filter_map(|f| testutil::test_seq(f)).collect();
    assert_eq!(
        seqs,
        (1..=n).collect::<Vec<_>>(),
        "{what}: {} test frames received; want each of 1..={n} once, in order",
        seqs.len()
    );
    for f in &got {
        let seq = testutil::test_seq(f).expect("test frame");
        assert_eq!(f, &expect(seq), "{what}: frame {seq} arrived changed");
    }
}
