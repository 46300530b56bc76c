//! AF_XDP port on any netdev (veth end, tap netdev, NIC), over xsk-rs/libxdp.
//!
//! One UMEM per port, one socket per configured queue. The UMEM's frames are split once
//! at open: each queue gets `frame_count / (2 * queues)` frames for its fill ring, and the
//! TX half gets the other half of the UMEM for the first configured queue's TX ring
//! (transmission goes through that queue).
//!
//! Invariants kept here:
//! - Fast path (`rx_burst`/`frames`/`release`/`tx_burst`/`flush`): no heap allocation (all
//!   stacks have fixed capacity from open), no lock, no per-packet syscall. RX wakes the
//!   kernel only when it sets need_wakeup on a fill ring; TX issues at most one `sendto`
//!   per burst and only when the kernel sets need_wakeup on the TX ring (copy mode always
//!   does: the kernel transmits inside `sendto`, up to 32 frames per call, so the worker's
//!   per-loop [`TxPort::flush`] kicks again while descriptors are pending).
//! - The completion ring is reaped and the fill ring refilled once per burst; every frame
//!   token is in exactly one place (see [`crate::sys::xsk`]).
//! - Each frame is copied exactly once on TX, from the source slice into a free UMEM frame,
//!   with the VLAN edit applied (`write_edited`).
//! - On open, an XDP program already on the interface is detached first only when it is
//!   provably vswitch's own ([`xdp::identify`]: its name and the owner mark its object
//!   carries) and `replace_stale` is set: after a kill -9 the program stays attached with
//!   a reference count that never drops to zero again, so reusing it would leave it
//!   attached forever. Anyone else's program (a libxdp dispatcher, a firewall) is an error
//!   naming it ([`PortError::ForeignXdpProgram`]) unless `replace_foreign` says to detach
//!   it; a stale vswitch program without `replace_stale` is
//!   [`PortError::XdpProgramAttached`]. On drop (of both halves),
//!   the sockets are deleted and the program this port attached is detached if still there.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use super::veth::{PeerDrops, PeerNow, VethPeer};
use super::{CpuShare, KernelDrops, NapiPinError, PortError, RxPort, TxPort, XdpCounters};
use crate::fastpath::XdpProgram;
use crate::offload::{complete_csum, Offload, Segments};
use crate::pipeline::{TxDone, TxItem, MAX_BURST};
use crate::sys::xdp::{self, AttachMode, Attached};
use crate::sys::xsk::{self, FrameStack, SocketParams, UmemParams, XskRx, XskStats, XskTx};
use crate::sys::{netdev, rtnl};
use crate::wire::{write_edited, Edit};

/// Requested XDP attach mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// In the driver; fails with [`PortError::UnsupportedMode`] if the driver lacks it.
    Native,
    /// In the generic skb path (works on every netdev, slower).
    Generic,
    /// Native if the driver supports it, else generic (the kernel decides).
    #[default]
    Auto,
}

impl std::fmt::Display for XdpMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
            XdpMode::Auto => "auto",
        })
    }
}

/// Configuration of an AF_XDP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfXdpConfig {
    pub ifname: String,
    /// Queues to bind, one socket each (distinct, each below the device's queue count).
    pub queues: Vec<u32>,
    pub mode: XdpMode,
    /// UMEM frames for the whole port (half for RX fill, half for TX).
    pub frame_count: u32,
    /// Bytes per UMEM frame: a power of two >= 2048. Frames longer than the frame size
    /// minus the kernel's 256-byte headroom are not received/sent.
    pub frame_size: u32,
    pub rx_ring: u32,
    pub tx_ring: u32,
    pub fill_ring: u32,
    pub comp_ring: u32,
    /// Detach vswitch's own XDP program found attached to the interface (left by a
    /// process killed with SIGKILL) instead of failing with
    /// [`PortError::XdpProgramAttached`].
    pub replace_stale: bool,
    /// Detach any XDP program found attached, also one that is not vswitch's (a libxdp
    /// dispatcher with its programs, a firewall), instead of failing with
    /// [`PortError::ForeignXdpProgram`]. The port option `xdp_replace`.
    pub replace_foreign: bool,
    /// The switch's XDP program shared by its AF_XDP ports (needed for the fast path);
    /// `None`: a private instance with the fast path off.
    pub program: Option<SharedProgram>,
    /// Longest frame the port receives and sends, in bytes; 0: what one UMEM frame holds.
    /// Longer than that (jumbo frames), the sockets run AF_XDP multi-buffer
    /// (`XDP_USE_SG`): a frame is a chain of UMEM frames, linearized on receive (one copy)
    /// and split on transmit. At most [`MAX_CHAIN`] UMEM frames.
    pub max_frame: u32,
}

/// Most UMEM frames one multi-buffer frame may span (the kernel's limit for a transmitted
/// chain is MAX_SKB_FRAGS + 1 = 18).
pub const MAX_CHAIN: usize = 17;
/// Descriptors a multi-buffer port takes from its RX rings per burst (bounds the
/// linearization arena).
const SG_BURST_DESCS: usize = 64;
/// The kernel's headroom in every UMEM frame (XDP_PACKET_HEADROOM).
const XDP_PACKET_HEADROOM: u32 = 256;

/// An [`XdpProgram`] handle in a port configuration (equal when it is the same program).
#[derive(Debug, Clone)]
pub struct SharedProgram(pub Arc<XdpProgram>);

impl PartialEq for SharedProgram {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for SharedProgram {}

impl AfXdpConfig {
    /// Defaults: queue 0, auto mode, 16384 frames of 2048 bytes (32 MiB: half for
    /// receiving, half for transmitting), receive and fill rings of 8192, transmit and
    /// completion rings of 4096, replace vswitch's own stale program (never another
    /// one). 8192 receive buffers ride out a
    /// worker stall of ~27 ms at 0.3 Mpps. The 30 s zero-loss check at half the maximum
    /// rate (`pktrate --zero-loss-check`) lost frames (`rx_ring_full`):
    /// - with 2048 buffers, in one run of two;
    /// - with 4096, in none of three at 0.26 Mpps, but in two of three at 0.301 Mpps
    ///   (374 and 3,352 frames) on a faster day;
    /// - with 8192, in none of four at 0.301 Mpps.
    pub fn new(ifname: impl Into<String>) -> AfXdpConfig {
        AfXdpConfig {
            ifname: ifname.into(),
            queues: vec![0],
            mode: XdpMode::Auto,
            frame_count: 16384,
            frame_size: 2048,
            rx_ring: 8192,
            tx_ring: 4096,
            fill_ring: 8192,
            comp_ring: 4096,
            replace_stale: true,
            replace_foreign: false,
            program: None,
            max_frame: 0,
        }
    }

    fn invalid(&self, reason: impl Into<String>) -> PortError {
        PortError::InvalidConfig {
            ifname: self.ifname.clone(),
            reason: reason.into(),
        }
    }

    fn validate(&self) -> Result<(), PortError> {
        if self.queues.is_empty() {
            return Err(self.invalid("no queues"));
        }
        if self.queues.len() > 64 {
            return Err(self.invalid("more than 64 queues"));
        }
        if let Some(q) = self
            .queues
            .iter()
            .find(|&&q| q >= crate::sys::bpf::MAX_QUEUES)
        {
            return Err(self.invalid(format!(
                "queue {q} is above the highest supported queue ({})",
                crate::sys::bpf::MAX_QUEUES - 1
            )));
        }
        for (i, q) in self.queues.iter().enumerate() {
            if self.queues[..i].contains(q) {
                return Err(self.invalid(format!("queue {q} listed twice")));
            }
        }
        let room = self.frame_size.saturating_sub(XDP_PACKET_HEADROOM) as usize;
        if self.max_frame as usize > room * MAX_CHAIN {
            return Err(self.invalid(format!(
                "max frame {} is more than {MAX_CHAIN} UMEM frames of {} bytes",
                self.max_frame, self.frame_size
            )));
        }
        if self.frame_size < 2048 || !self.frame_size.is_power_of_two() {
            return Err(self.invalid(format!(
                "frame size {} is not a power of two >= 2048",
                self.frame_size
            )));
        }
        for (name, v) in [
            ("rx ring", self.rx_ring),
            ("tx ring", self.tx_ring),
            ("fill ring", self.fill_ring),
            ("completion ring", self.comp_ring),
        ] {
            if v == 0 || !v.is_power_of_two() {
                return Err(self.invalid(format!("{name} size {v} is not a power of two")));
            }
        }
        let per_queue = self.frame_count / (2 * self.queues.len() as u32);
        if per_queue == 0 {
            return Err(self.invalid(format!(
                "{} frames cannot serve {} queues",
                self.frame_count,
                self.queues.len()
            )));
        }
        Ok(())
    }
}

/// What an open AF_XDP port is running with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfXdpInfo {
    pub ifname: String,
    pub ifindex: u32,
    pub driver: String,
    /// The XDP mode actually in use (read back from the interface after attach).
    pub mode: AttachMode,
    /// Whether the kernel runs the sockets zero-copy (`XDP_OPTIONS_ZEROCOPY`).
    pub zero_copy: bool,
    pub queues: Vec<u32>,
    /// The XDP program (or libxdp dispatcher) serving the sockets.
    pub prog_id: u32,
    /// The program found attached at open and detached: vswitch's own (`replace_stale`)
    /// or, with `replace_foreign`, any other.
    pub replaced: Option<Attached>,
    /// Longest frame (bytes) the port receives and sends: what one UMEM frame holds, or
    /// more with multi-buffer ([`AfXdpConfig::max_frame`]).
    pub max_frame_len: usize,
    /// Bytes of frame data one UMEM frame holds (a chain's link).
    pub chain_room: usize,
    /// The sockets run AF_XDP multi-buffer (`XDP_USE_SG`).
    pub multi_buffer: bool,
    /// The port's slot in the XDP program (its counters and socket keys).
    pub xdp_slot: u16,
    /// The XDP fast path forwards known unicast from/to this port in the kernel.
    pub fast_path: bool,
}

/// Detaches the XDP program from the interface and unregisters the port from it once
/// both halves are gone. Declared as the last field of each half, so it drops after that
/// half's sockets.
#[derive(Debug)]
struct AttachGuard {
    ifindex: u32,
    program: Arc<XdpProgram>,
}

impl Drop for AttachGuard {
    fn drop(&mut self) {
        // Only our own program is detached (another one may have replaced it). Best effort.
        let _ = xdp::detach_if(self.ifindex, self.program.prog_id());
        self.program.unregister(self.ifindex);
    }
}

#[derive(Debug)]
struct RxQueueState {
    xsk: XskRx,
    /// Frames of this queue waiting to go back on its fill ring.
    stash: FrameStack,
}

/// Where a received frame of a multi-buffer port is.
#[derive(Debug, Clone, Copy)]
enum Span {
    /// Frame `i` of `held` (a frame in one descriptor).
    Held(usize),
    /// `arena[start..end]` (a chain, copied).
    Arena(usize, usize),
}

#[derive(Debug)]
struct Multi {
    arena: Box<[u8]>,
    spans: Vec<Span>,
    /// Chains whose end was not in the ring (cannot happen: the kernel publishes a
    /// packet's descriptors together); dropped whole, counted as `oversize`.
    broken: u64,
}

impl Multi {
    /// Builds the frame list of `held` (from `xsk`'s UMEM), copying chains into the arena.
    fn index(&mut self, held: &FrameStack, xsk: &xsk::XskRx) {
        self.spans.clear();
        let mut off = 0;
        let mut i = 0;
        while i < held.len() {
            let mut j = i;
            while held.continues(j) && j + 1 < held.len() {
                j += 1;
            }
            if held.continues(j) {
                self.broken += 1; // the chain's end is missing: drop it whole
                break;
            }
            if j == i {
                self.spans.push(Span::Held(i));
            } else {
                let total: usize = (i..=j).map(|k| xsk.data(held, k).len()).sum();
                if off + total > self.arena.len() {
                    self.broken += 1; // cannot happen: the arena holds a whole burst
                } else {
                    let start = off;
                    for k in i..=j {
                        let d = xsk.data(held, k);
                        self.arena[off..off + d.len()].copy_from_slice(d);
                        off += d.len();
                    }
                    self.spans.push(Span::Arena(start, off));
                }
            }
            i = j + 1;
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Seg {
    queue: usize,
    start: usize,
    end: usize,
}

/// Receive half of an AF_XDP port (all its queues).
#[derive(Debug)]
pub struct AfXdpRx {
    queues: Vec<RxQueueState>,
    held: FrameStack,
    /// Multi-buffer ports: the frames of `held` (chains linearized).
    multi: Option<Multi>,
    /// Which queue each run of `held` came from (frames of one queue are contiguous).
    segs: Vec<Seg>,
    next: usize,
    info: Arc<AfXdpInfo>,
    /// Threaded NAPI was switched on by [`RxPort::serve_on_cpu`] (undone on drop).
    napi_threaded: bool,
    /// On a veth: the peer's transmit drops, which include frames this port's veth ring
    /// had no room for (before any XDP program or socket saw them).
    peer: Option<PeerDrops>,
    /// Fast path on a veth: whether frames may be redirected into it (see [`EgressWatch`]).
    egress: Option<EgressWatch>,
    _guard: Arc<AttachGuard>,
}

impl Drop for AfXdpRx {
    fn drop(&mut self) {
        if self.napi_threaded {
            let _ = netdev::unthread_napi(&self.info.ifname);
        }
    }
}

/// Whether frames the XDP fast path redirects into a port's device reach the other side,
/// checked when the port opens and then about once a second while it is open. A veth
/// hands XDP-redirected frames to its peer only when the peer has a NAPI context (GRO on,
/// or a native XDP program); otherwise the kernel refuses them (counted only by vswitch's
/// tracing program, as `redirect_refused`). A peer that is down takes nothing either (the
/// device counts those in its `tx_dropped`). Other devices are not watched (they take
/// redirects).
///
/// The peer may be in another namespace, and may move. rtnetlink tells its name, XDP state
/// and namespace from here; GRO is an ethtool setting, read through a socket opened in
/// the peer's namespace (found by asking which of the named namespaces and processes'
/// namespaces has the peer's namespace id) and kept for the next checks.
#[derive(Debug)]
struct EgressWatch {
    ifname: String,
    /// `None` until rtnetlink could be opened.
    peer: Option<VethPeer>,
    /// An ioctl socket in the peer's namespace (keyed by that namespace's id as numbered
    /// from here; `None`: this one), or why there is none.
    ethtool: Option<(Option<i32>, Result<OwnedFd, EthtoolError>)>,
    /// Checks left before a failed namespace search is tried again (it reads /proc).
    retry_in: u32,
    /// `None`: the fast path may redirect into the port. `Some`: why not, for the operator.
    note: Option<Bypass>,
    /// Whether the port serves the fast path (else only the offload check runs).
    fast: bool,
    /// `Some` while the peer sends with TX checksum offload: its partial checksums cannot
    /// cross AF_XDP, so TCP from it fails; what to do about it.
    csum_note: Option<String>,
}

/// Checks between two searches for a peer namespace that was not found.
const NETNS_RETRY_CHECKS: u32 = 10;

/// Why known unicast to an AF_XDP port on a veth goes through the workers instead of
/// the XDP fast path (the [`EgressWatch`] verdict, shown to the operator).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{ifname}: known unicast to this port goes through the workers, not the XDP fast path: \
     {reason}"
)]
struct Bypass {
    ifname: String,
    reason: BypassReason,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum BypassReason {
    /// A veth that is down has no NAPI context either; the workers' transmit to it is
    /// dropped too, but counted (tx_ring_full).
    #[error("its veth peer {0} is down (checked every second)")]
    PeerDown(String),
    #[error(
        "its veth peer {name} has GRO off and no XDP program, so the kernel would drop \
         redirected frames; `ethtool -K {name} gro on`{where_} enables it (checked every \
         second)"
    )]
    GroOff { name: String, where_: &'static str },
    #[error("cannot tell whether its veth peer receives redirected frames ({0})")]
    Unknown(PeerUnknown),
}

/// Why the peer's state could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum PeerUnknown {
    #[error("rtnetlink: {0}")]
    Rtnetlink(SysError),
    #[error("peer has no name")]
    NoName,
    #[error("peer {name}: {source}")]
    Gro { name: String, source: EthtoolError },
}

/// Why the peer's ethtool settings could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum EthtoolError {
    #[error("socket: {0}")]
    Socket(SysError),
    #[error("its namespace not found")]
    NamespaceNotFound,
    #[error("socket in its namespace: {0}")]
    SocketInNamespace(SysError),
    #[error("GRO: {0}")]
    Gro(SysError),
    #[error("no socket")]
    NoSocket,
}

/// A failed system call's error, kept (and compared, by kind and errno) with a verdict
/// that is re-checked every second.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
struct SysError(Arc<std::io::Error>);

impl From<std::io::Error> for SysError {
    fn from(e: std::io::Error) -> SysError {
        SysError(Arc::new(e))
    }
}

impl PartialEq for SysError {
    fn eq(&self, other: &SysError) -> bool {
        self.0.kind() == other.0.kind() && self.0.raw_os_error() == other.0.raw_os_error()
    }
}

impl Eq for SysError {}

impl EgressWatch {
    /// Watches `ifname` if it is a veth, with its first verdict in `note` (`fast`: the
    /// port serves the XDP fast path) and `csum_note`.
    fn new(ifname: &str, fast: bool) -> Option<EgressWatch> {
        if !VethPeer::is_veth(ifname) {
            return None;
        }
        let mut w = EgressWatch {
            ifname: ifname.to_owned(),
            peer: None,
            ethtool: None,
            retry_in: 0,
            note: None,
            fast,
            csum_note: None,
        };
        w.note = w.check().err();
        Some(w)
    }

    /// Checks again; returns the new fast-path verdict if it or the offload note changed
    /// (and records it).
    fn recheck(&mut self) -> Option<Option<Bypass>> {
        let csum_was = self.csum_note.clone();
        let now = self.check().err();
        if now == self.note && self.csum_note == csum_was {
            return None;
        }
        self.note = now.clone();
        Some(now)
    }

    /// Notes for the operator: the offload problem, then the fast-path verdict.
    fn notes(&self) -> impl Iterator<Item = String> + '_ {
        self.csum_note
            .iter()
            .cloned()
            .chain(self.note.as_ref().map(ToString::to_string))
    }

    /// Reads whether the peer `name` sends with TX checksum offload and records the note.
    fn check_tx_csum(&mut self, peer: &PeerNow, name: &str) {
        let ifname = self.ifname.clone();
        let on = self
            .ethtool_socket(peer.netnsid)
            .ok()
            .and_then(|fd| netdev::tx_csum_enabled_on(fd, name).ok());
        self.csum_note = (on == Some(true)).then(|| {
            format!(
                "{ifname}: its veth peer {name} sends with TX checksum offload, whose partial \
                 checksums AF_XDP cannot carry: TCP from it fails. Use a packet port \
                 (`vswitchctl del-port BRIDGE PORT`, then `vswitchctl add-port BRIDGE PORT \
                 --type packet --interface {ifname}`) or turn the offload off: \
                 `ethtool -K {name} tx off`{}",
                peer.where_()
            )
        });
    }

    fn check(&mut self) -> Result<(), Bypass> {
        let ifname = self.ifname.clone();
        let bypass = |reason| Bypass {
            ifname: ifname.clone(),
            reason,
        };
        let unknown = |why| bypass(BypassReason::Unknown(why));
        let rtnetlink = |e: std::io::Error| unknown(PeerUnknown::Rtnetlink(e.into()));
        let vp = match &mut self.peer {
            Some(vp) => vp,
            None => self
                .peer
                .insert(VethPeer::open(&ifname).map_err(rtnetlink)?),
        };
        let peer = vp.now().map_err(rtnetlink)?;
        if let Some(name) = peer.link.name.clone() {
            self.check_tx_csum(&peer, &name);
        }
        if !self.fast {
            return Ok(());
        }
        if !peer.link.up {
            return Err(bypass(BypassReason::PeerDown(peer.name())));
        }
        if peer.link.native_xdp {
            return Ok(());
        }
        let name = peer
            .link
            .name
            .clone()
            .ok_or_else(|| unknown(PeerUnknown::NoName))?;
        let gro = self
            .ethtool_socket(peer.netnsid)
            .and_then(|fd| {
                netdev::gro_enabled_on(fd, &name).map_err(|e| EthtoolError::Gro(e.into()))
            })
            .map_err(|source| {
                unknown(PeerUnknown::Gro {
                    name: name.clone(),
                    source,
                })
            })?;
        if gro {
            return Ok(());
        }
        Err(bypass(BypassReason::GroOff {
            name,
            where_: peer.where_(),
        }))
    }

    /// The ioctl socket for the namespace `nsid` numbers (opened when the peer is first
    /// seen there).
    fn ethtool_socket(&mut self, nsid: Option<i32>) -> Result<&OwnedFd, EthtoolError> {
        let stale = match &self.ethtool {
            Some((id, _)) if *id != nsid => true,
            Some((_, Err(_))) => self.retry_in == 0,
            Some((_, Ok(_))) => false,
            None => true,
        };
        if stale {
            let fd = match nsid {
                None => netdev::ioctl_socket().map_err(|e| EthtoolError::Socket(e.into())),
                Some(id) => match self
                    .peer
                    .as_mut()
                    .and_then(|p| netns_path_of(&mut p.sock, id))
                {
                    None => Err(EthtoolError::NamespaceNotFound),
                    Some(path) => crate::sys::netns::run_in(&path, netdev::ioctl_socket)
                        .and_then(|r| r)
                        .map_err(|e| EthtoolError::SocketInNamespace(e.into())),
                },
            };
            self.retry_in = NETNS_RETRY_CHECKS;
            self.ethtool = Some((nsid, fd));
        }
        self.retry_in = self.retry_in.saturating_sub(1);
        match &self.ethtool {
            Some((_, Ok(fd))) => Ok(fd),
            Some((_, Err(e))) => Err(e.clone()),
            None => Err(EthtoolError::NoSocket),
        }
    }
}

/// A path (`/run/netns/NAME` or `/proc/PID/ns/net`) of the network namespace this one
/// numbers `nsid`.
fn netns_path_of(sock: &mut rtnl::RouteSocket, nsid: i32) -> Option<String> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let named = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().to_string_lossy().into_owned());
    let procs = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .map(|e| format!("{}/ns/net", e.path().to_string_lossy()));
    let mut seen = std::collections::HashSet::new();
    for path in named.chain(procs) {
        let Ok(f) = std::fs::File::open(&path) else {
            continue;
        };
        let Ok(meta) = f.metadata() else { continue };
        if !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        if sock.nsid_of(f.as_fd()).ok().flatten() == Some(nsid) {
            return Some(path);
        }
    }
    None
}

/// Transmit half of an AF_XDP port.
#[derive(Debug)]
pub struct AfXdpTx {
    xsk: XskTx,
    /// TX halves of the other queues' sockets: unused, kept so the sockets stay whole.
    _other: Vec<XskTx>,
    free: FrameStack,
    ready: FrameStack,
    /// Multi-buffer ports: where a frame longer than a UMEM frame is edited before it is
    /// split into a chain.
    scratch: Option<Box<[u8]>>,
    kick_errors: u64,
    info: Arc<AfXdpInfo>,
    _guard: Arc<AttachGuard>,
}

/// An AF_XDP port: both halves. Use [`AfXdpPort::split`] to hand them to a worker.
#[derive(Debug)]
pub struct AfXdpPort {
    rx: AfXdpRx,
    tx: AfXdpTx,
}

/// How long a bind keeps retrying while the queue is busy. A socket of a process that
/// just died (kill -9) releases its queue in deferred kernel work, shortly after exit.
const BUSY_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(1);
const BUSY_RETRY_STEP: std::time::Duration = std::time::Duration::from_millis(20);

fn bind_retrying_busy(
    umem: &xsk::Umem,
    ifname: &str,
    queue: u32,
    params: SocketParams,
) -> std::io::Result<(XskRx, XskTx)> {
    let deadline = std::time::Instant::now() + BUSY_RETRY_FOR;
    loop {
        match xsk::bind(umem, ifname, queue, params) {
            Err(e) if errno(&e) == libc::EBUSY && std::time::Instant::now() < deadline => {
                std::thread::sleep(BUSY_RETRY_STEP);
            }
            r => return r,
        }
    }
}

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

impl AfXdpPort {
    /// Opens the port: checks the interface and queues, handles an attached XDP program,
    /// registers the UMEM (after raising RLIMIT_MEMLOCK), binds one socket per queue
    /// (libxdp attaches its XDP program in the requested mode), reads back the mode in
    /// use and fills the fill rings.
    pub fn open(cfg: &AfXdpConfig) -> Result<AfXdpPort, PortError> {
        let ifname = cfg.ifname.as_str();
        let ifindex = netdev::if_index(ifname).ok_or_else(|| PortError::NoSuchInterface {
            ifname: ifname.to_owned(),
        })?;
        cfg.validate()?;
        let driver = netdev::driver_name(ifname).unwrap_or_else(|_| "unknown".to_owned());
        let count = netdev::rx_queue_count(ifname)
            .map_err(|e| PortError::io(ifname, "read rx queue count", e))?;
        if let Some(&queue) = cfg.queues.iter().find(|&&q| q >= count) {
            return Err(PortError::QueueOutOfRange {
                ifname: ifname.to_owned(),
                queue,
                count,
            });
        }
        // Both are allowed to fail: as non-root the registration error below says why.
        let _ = netdev::raise_memlock();
        let _ = netdev::ensure_bpffs();

        let attached =
            xdp::attached(ifindex).map_err(|e| PortError::io(ifname, "query XDP program", e))?;
        let replaced = match attached {
            None => None,
            Some(a) => {
                let ours = xdp::identify(a.prog_id)
                    .map_err(|e| PortError::io(ifname, "identify the attached XDP program", e))?
                    .is_vswitch();
                // vswitch's program is stale only when no other process holds it (a running
                // vswitchd keeps its descriptor): another daemon's port is not taken over.
                if ours && !cfg.replace_foreign {
                    let held = xdp::holders(a.prog_id)
                        .map_err(|e| PortError::io(ifname, "find the XDP program's holders", e))?;
                    if let Some((pid, comm)) = held.into_iter().next() {
                        return Err(PortError::XdpProgramInUse {
                            ifname: ifname.to_owned(),
                            prog_id: a.prog_id,
                            pid,
                            comm,
                        });
                    }
                }
                if !(cfg.replace_foreign || (ours && cfg.replace_stale)) {
                    return Err(if ours {
                        PortError::XdpProgramAttached {
                            ifname: ifname.to_owned(),
                            driver,
                            program: a.name,
                            prog_id: a.prog_id,
                            mode: a.mode,
                        }
                    } else {
                        PortError::ForeignXdpProgram {
                            ifname: ifname.to_owned(),
                            program: a.name,
                            prog_id: a.prog_id,
                            mode: a.mode,
                            dispatcher: a.dispatcher,
                        }
                    });
                }
                // Only the program identified above: one attached since is not touched
                // (the attach below then fails with a specific error).
                xdp::detach_if(ifindex, a.prog_id)
                    .map_err(|e| PortError::io(ifname, "detach the attached XDP program", e))?;
                Some(a)
            }
        };

        let (umem, mut all) = xsk::Umem::new(UmemParams {
            frame_count: cfg.frame_count,
            frame_size: cfg.frame_size,
            fill_size: cfg.fill_ring,
            comp_size: cfg.comp_ring,
        })
        .map_err(|e| match errno(&e) {
            libc::ENOBUFS | libc::ENOMEM | libc::EPERM | libc::EAGAIN => {
                PortError::UmemRegistration {
                    ifname: ifname.to_owned(),
                    bytes: u64::from(cfg.frame_count) * u64::from(cfg.frame_size),
                    source: e,
                }
            }
            _ => PortError::io(ifname, "create UMEM", e),
        })?;

        let xdp_flags = match cfg.mode {
            XdpMode::Native => xsk::XDP_FLAGS_DRV_MODE,
            XdpMode::Generic => xsk::XDP_FLAGS_SKB_MODE,
            XdpMode::Auto => 0,
        };
        let program = match &cfg.program {
            Some(p) => p.0.clone(),
            None => XdpProgram::new(false, 1)
                .map_err(|e| PortError::io(ifname, "load XDP program", e))?,
        };
        let sg = cfg.max_frame as usize > umem.data_room();
        let max_frame = if sg {
            cfg.max_frame as usize
        } else {
            umem.data_room()
        };
        let max_rx = u32::try_from(max_frame).unwrap_or(u32::MAX);
        // The fast path redirects into this port's device only if the kernel delivers
        // such frames; otherwise frames to this port keep going through the workers.
        // The veth peer is watched for TX checksum offload (AF_XDP cannot carry partial
        // checksums) and, with the fast path, for what redirects need.
        let egress = EgressWatch::new(ifname, program.fast());
        let redirect_ok = egress.as_ref().is_none_or(|w| w.note.is_none());
        let xdp_slot = program
            .register(ifindex, max_rx, redirect_ok)
            .map_err(|e| PortError::io(ifname, "configure XDP program", e))?;
        let guard = Arc::new(AttachGuard {
            ifindex,
            program: program.clone(),
        });
        program
            .attach(ifindex, xdp_flags)
            .map_err(|e| match errno(&e) {
                libc::EOPNOTSUPP | libc::EINVAL if cfg.mode != XdpMode::Auto => {
                    PortError::UnsupportedMode {
                        ifname: ifname.to_owned(),
                        mode: cfg.mode,
                        driver: driver.clone(),
                    }
                }
                libc::EEXIST | libc::EBUSY => match xdp::attached(ifindex) {
                    Ok(Some(a)) => PortError::XdpProgramAttached {
                        ifname: ifname.to_owned(),
                        driver: driver.clone(),
                        program: a.name,
                        prog_id: a.prog_id,
                        mode: a.mode,
                    },
                    _ => PortError::io(ifname, "attach XDP program", e),
                },
                _ => PortError::io(ifname, "attach XDP program", e),
            })?;
        let params = SocketParams {
            rx_size: cfg.rx_ring,
            tx_size: cfg.tx_ring,
            xdp_flags,
            sg,
        };
        let mut rxs = Vec::with_capacity(cfg.queues.len());
        let mut txs = Vec::with_capacity(cfg.queues.len());
        for &queue in &cfg.queues {
            let (rx, tx) =
                bind_retrying_busy(&umem, ifname, queue, params).map_err(|e| match errno(&e) {
                    libc::EBUSY => PortError::QueueBusy {
                        ifname: ifname.to_owned(),
                        queue,
                    },
                    libc::EOPNOTSUPP if cfg.mode != XdpMode::Auto => PortError::UnsupportedMode {
                        ifname: ifname.to_owned(),
                        mode: cfg.mode,
                        driver: driver.clone(),
                    },
                    libc::EEXIST => match xdp::attached(ifindex) {
                        Ok(Some(a)) => PortError::XdpProgramAttached {
                            ifname: ifname.to_owned(),
                            driver: driver.clone(),
                            program: a.name,
                            prog_id: a.prog_id,
                            mode: a.mode,
                        },
                        _ => PortError::io(ifname, "create AF_XDP socket", e),
                    },
                    libc::ENOBUFS | libc::ENOMEM => PortError::UmemRegistration {
                        ifname: ifname.to_owned(),
                        bytes: u64::from(cfg.frame_count) * u64::from(cfg.frame_size),
                        source: e,
                    },
                    _ => PortError::io(ifname, "create AF_XDP socket", e),
                })?;
            program
                .set_socket(ifindex, queue, rx.fd())
                .map_err(|e| PortError::io(ifname, "insert socket into XSKMAP", e))?;
            rxs.push(rx);
            txs.push(tx);
        }

        let now = xdp::attached(ifindex)
            .map_err(|e| PortError::io(ifname, "query XDP program", e))?
            .ok_or_else(|| {
                PortError::io(
                    ifname,
                    "attach XDP program",
                    std::io::Error::other("no XDP program attached after socket creation"),
                )
            })?;
        let mode_ok = match cfg.mode {
            XdpMode::Native => now.mode == AttachMode::Native,
            XdpMode::Generic => now.mode == AttachMode::Generic,
            XdpMode::Auto => true,
        };
        if !mode_ok {
            return Err(PortError::UnsupportedMode {
                ifname: ifname.to_owned(),
                mode: cfg.mode,
                driver,
            });
        }
        let zero_copy = rxs[0]
            .zero_copy()
            .map_err(|e| PortError::io(ifname, "read XDP_OPTIONS", e))?;
        let info = Arc::new(AfXdpInfo {
            ifname: ifname.to_owned(),
            ifindex,
            driver,
            mode: now.mode,
            zero_copy,
            queues: cfg.queues.clone(),
            prog_id: now.prog_id,
            replaced,
            max_frame_len: max_frame,
            chain_room: umem.data_room(),
            multi_buffer: sg,
            xdp_slot,
            fast_path: program.fast(),
        });

        let per_queue = (cfg.frame_count / (2 * cfg.queues.len() as u32)) as usize;
        let mut queues = Vec::with_capacity(rxs.len());
        for mut xsk in rxs {
            let mut stash = all.sibling(per_queue);
            stash.take_from(&mut all, per_queue);
            xsk.fill(&mut stash);
            queues.push(RxQueueState { xsk, stash });
        }
        let held = all.sibling(MAX_BURST + MAX_CHAIN);
        // Room for a whole burst of the longest frames (a chain each on multi-buffer
        // ports: a burst of 257 jumbo frames handed over by another worker needs 3
        // descriptors per frame).
        let chain = if sg {
            max_frame.div_ceil(umem.data_room().max(1))
        } else {
            1
        };
        let ready = all.sibling(MAX_BURST * chain);
        // Multi-buffer: chains are linearized into `arena` (a burst takes at most
        // SG_BURST_DESCS descriptors, each at most one UMEM frame of data, plus the rest of
        // a chain that straddles that limit).
        let multi = sg.then(|| Multi {
            arena: vec![0u8; (SG_BURST_DESCS + MAX_CHAIN) * umem.data_room()].into_boxed_slice(),
            spans: Vec::with_capacity(SG_BURST_DESCS + MAX_CHAIN),
            broken: 0,
        });
        let scratch = sg.then(|| vec![0u8; max_frame].into_boxed_slice());
        let mut txs = txs.into_iter();
        let tx_xsk = txs.next().expect("validated: at least one queue");
        Ok(AfXdpPort {
            rx: AfXdpRx {
                segs: Vec::with_capacity(queues.len()),
                queues,
                held,
                multi,
                next: 0,
                napi_threaded: false,
                peer: PeerDrops::find(&info.ifname),
                egress,
                info: info.clone(),
                _guard: guard.clone(),
            },
            tx: AfXdpTx {
                xsk: tx_xsk,
                _other: txs.collect(),
                // The rest of the UMEM: the TX share.
                free: all,
                ready,
                scratch,
                kick_errors: 0,
                info,
                _guard: guard,
            },
        })
    }

    pub fn info(&self) -> &AfXdpInfo {
        &self.rx.info
    }
    /// The XDP mode in use.
    pub fn mode(&self) -> AttachMode {
        self.rx.info.mode
    }
    pub fn split(self) -> (AfXdpRx, AfXdpTx) {
        (self.rx, self.tx)
    }
    pub fn rx(&mut self) -> &mut AfXdpRx {
        &mut self.rx
    }
    pub fn tx(&mut self) -> &mut AfXdpTx {
        &mut self.tx
    }
}

impl AfXdpRx {
    /// Reads the veth peer's drops now instead of waiting for the background reader.
    #[cfg(test)]
    pub(crate) fn read_peer_now(&mut self) {
        if let Some(p) = &self.peer {
            p.refresh_now();
        }
    }

    pub fn info(&self) -> &AfXdpInfo {
        &self.info
    }
    /// The XDP mode in use.
    pub fn mode(&self) -> AttachMode {
        self.info.mode
    }
    /// The kernel's drop counters, summed over the port's sockets.
    pub fn kernel_stats(&self) -> std::io::Result<XskStats> {
        let mut sum = XskStats::default();
        for q in &self.queues {
            let s = q.xsk.stats()?;
            sum.rx_dropped += s.rx_dropped;
            sum.rx_invalid_descs += s.rx_invalid_descs;
            sum.rx_ring_full += s.rx_ring_full;
            sum.rx_fill_ring_empty += s.rx_fill_ring_empty;
            sum.tx_invalid_descs += s.tx_invalid_descs;
            sum.tx_ring_empty += s.tx_ring_empty;
        }
        Ok(sum)
    }
}

impl RxPort for AfXdpRx {
    fn rx_burst(&mut self, max: usize) -> Result<usize, PortError> {
        if !self.held.is_empty() {
            self.release();
        }
        let max = if self.multi.is_some() {
            max.min(SG_BURST_DESCS)
        } else {
            max.min(MAX_BURST)
        };
        self.segs.clear();
        let nq = self.queues.len();
        for k in 0..nq {
            let room = max.saturating_sub(self.held.len());
            if room == 0 {
                break;
            }
            let queue = (self.next + k) % nq;
            let q = &mut self.queues[queue];
            let start = self.held.len();
            let mut n = q.xsk.consume(&mut self.held, room);
            // Multi-buffer: take the rest of a chain the limit cut (the kernel publishes
            // a packet's descriptors together, so they are there).
            if self.multi.is_some() {
                let mut extra = 0;
                while n > 0 && self.held.continues(start + n - 1) && extra < MAX_CHAIN {
                    let m = q.xsk.consume(&mut self.held, 1);
                    if m == 0 {
                        break;
                    }
                    n += m;
                    extra += 1;
                }
            }
            if n > 0 {
                self.segs.push(Seg {
                    queue,
                    start,
                    end: start + n,
                });
            } else if q.xsk.fill_needs_wakeup() {
                q.xsk.wakeup();
            }
        }
        self.next = (self.next + 1) % nq;
        match &mut self.multi {
            Some(m) => {
                m.index(&self.held, &self.queues[0].xsk);
                Ok(m.spans.len())
            }
            None => Ok(self.held.len()),
        }
    }

    fn xdp_counters(&mut self) -> XdpCounters {
        let g = &self._guard;
        match g.program.port_stats(self.info.xdp_slot) {
            Ok(s) => XdpCounters {
                oversize: s.oversize + self.multi.as_ref().map_or(0, |m| m.broken),
                ..XdpCounters::from(s)
            },
            Err(_) => XdpCounters::default(),
        }
    }

    fn bind_port(&mut self, port: crate::topology::PortId) {
        self._guard.program.bind(self.info.ifindex, port);
    }

    fn wait_fds(&self) -> Option<Vec<std::os::fd::RawFd>> {
        Some(self.queues.iter().map(|q| q.xsk.fd()).collect())
    }

    fn notes(&self) -> Vec<String> {
        self.egress.iter().flat_map(|w| w.notes()).collect()
    }

    fn refresh(&mut self) -> bool {
        let Some(w) = self.egress.as_mut() else {
            return false;
        };
        let was = w.note.clone();
        let Some(now) = w.recheck() else {
            return false;
        };
        let g = &self._guard;
        if w.fast && g.program.set_redirect_ok(g.ifindex, now.is_none()).is_err() {
            // The program still has the old setting: keep saying so, try again next time.
            w.note = was;
            return false;
        }
        true
    }

    fn serve_on_cpu(&mut self, cpu: usize) -> Result<CpuShare, NapiPinError> {
        if !self.info.fast_path || self.info.mode != AttachMode::Native {
            return Ok(CpuShare::default());
        }
        match netdev::pin_napi_threads(&self.info.ifname, cpu) {
            Ok(_) => {
                self.napi_threaded = true;
                let note = self
                    .peer
                    .as_mut()
                    .and_then(|p| p.without_queue_advice(&self.info.ifname));
                Ok(CpuShare {
                    kernel_threads: true,
                    note,
                })
            }
            Err(source) => Err(NapiPinError {
                ifname: self.info.ifname.clone(),
                source,
            }),
        }
    }

    fn kernel_drops(&mut self) -> KernelDrops {
        // rx_dropped: no fill-ring buffer (and other kernel drops); rx_ring_full: the RX
        // ring had no room. Fill-ring-empty events are already in rx_dropped. On a veth,
        // plus what its peer could not hand over (the veth's own ring full).
        let xsk = self
            .kernel_stats()
            .map(|s| s.rx_dropped + s.rx_ring_full)
            .unwrap_or(0);
        let peer = self.peer.as_ref().map(PeerDrops::read).unwrap_or_default();
        KernelDrops {
            rx: xsk + peer.rx,
            tx: peer.tx,
        }
    }

    fn health(&mut self) -> Result<(), PortError> {
        for q in &self.queues {
            let e = match q.xsk.take_error() {
                Ok(None) => continue,
                Ok(Some(e)) | Err(e) => e,
            };
            return Err(PortError::io(&self.info.ifname, "receive", e));
        }
        Ok(())
    }

    fn frames<'a>(&'a self, out: &mut [&'a [u8]; MAX_BURST]) -> usize {
        let xsk = &self.queues[0].xsk;
        if let Some(m) = &self.multi {
            for (slot, span) in out.iter_mut().zip(&m.spans) {
                *slot = match *span {
                    Span::Held(i) => xsk.data(&self.held, i),
                    Span::Arena(a, b) => &m.arena[a..b],
                };
            }
            return m.spans.len().min(MAX_BURST);
        }
        let n = self.held.len();
        for (i, slot) in out.iter_mut().enumerate().take(n) {
            *slot = xsk.data(&self.held, i);
        }
        n
    }

    fn release(&mut self) {
        if let Some(m) = &mut self.multi {
            m.spans.clear();
        }
        // Later runs first, so earlier indices stay valid while draining.
        for seg in self.segs.iter().rev() {
            let q = &mut self.queues[seg.queue];
            q.stash.take_range(&mut self.held, seg.start..seg.end);
        }
        self.segs.clear();
        debug_assert!(self.held.is_empty(), "every held frame belongs to a run");
        for q in &mut self.queues {
            if !q.stash.is_empty() {
                q.xsk.fill(&mut q.stash);
            }
        }
    }
}

impl AfXdpTx {
    pub fn info(&self) -> &AfXdpInfo {
        &self.info
    }
    /// `sendto` wakeups that failed with an unexpected error (device gone, ...).
    pub fn kick_errors(&self) -> u64 {
        self.kick_errors
    }
    /// UMEM frames currently free for transmission.
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    fn kick(&mut self) {
        if self.xsk.kick().is_err() {
            self.kick_errors += 1;
        }
    }

    /// One `sendto`, then completed frames back to `free` and waiting ones onto the ring.
    fn kick_and_reap(&mut self) {
        self.kick();
        self.xsk.reap(&mut self.free);
        if !self.ready.is_empty() {
            self.xsk.produce(&mut self.ready);
        }
    }
}

/// What [`AfXdpTx::tx_segments`] did with one superframe.
enum Segmented {
    /// All its segments are queued.
    Sent { descriptors: usize, bytes: u64 },
    /// Not enough descriptors left in this burst: nothing queued.
    NoRoom,
    /// A segment is longer than the port carries (`mtu_exceeded`).
    TooBig,
    /// Its headers do not parse as its offload says (`bad_offload`).
    Bad,
}

impl AfXdpTx {
    /// Queues the wire segments of superframe `src` (after `edit`): each written straight
    /// into its own UMEM frame with its headers fixed up and its checksums complete, or
    /// through the scratch buffer as a chain on a multi-buffer port when one segment is
    /// longer than a UMEM frame. All or nothing within `budget` descriptors.
    fn tx_segments(&mut self, src: &[u8], edit: Edit, o: &Offload, budget: usize) -> Segmented {
        let Ok(segs) = Segments::new(src, edit, o) else {
            return Segmented::Bad;
        };
        let room = self.info.chain_room.max(1);
        let per = segs.max_len().div_ceil(room);
        if per > 1 && (self.scratch.is_none() || segs.max_len() > self.info.max_frame_len) {
            return Segmented::TooBig;
        }
        if segs.count() * per > budget {
            return Segmented::NoRoom;
        }
        let (mut descriptors, mut bytes) = (0, 0u64);
        for i in 0..segs.count() {
            let queued = match (&mut self.scratch, per) {
                (_, 1) => self
                    .xsk
                    .write_one(&mut self.free, &mut self.ready, |buf| {
                        segs.write(i, buf).ok()
                    })
                    .map(|n| (1, n)),
                (Some(buf), _) => segs.write(i, buf).ok().and_then(|n| {
                    self.xsk
                        .write_chain(&mut self.free, &mut self.ready, &buf[..n])
                        .map(|k| (k, n))
                }),
                (None, _) => None,
            };
            match queued {
                Some((k, n)) => {
                    descriptors += k;
                    bytes += n as u64;
                }
                // Room was checked above; a segment that still does not go out ends the
                // superframe here (what was queued goes out).
                None => break,
            }
        }
        Segmented::Sent { descriptors, bytes }
    }
}

impl TxPort for AfXdpTx {
    fn tx_burst(&mut self, frames: &[&[u8]], offloads: &[Offload], items: &[TxItem]) -> TxDone {
        self.xsk.reap(&mut self.free);
        if !self.ready.is_empty() {
            self.xsk.produce(&mut self.ready);
        }
        // Descriptors the burst wants: one per frame, one per segment of a superframe.
        let want = if offloads.is_empty() {
            items.len()
        } else {
            items
                .iter()
                .map(|it| {
                    let i = usize::from(it.frame);
                    let o = Offload::of(offloads, i);
                    match (o.is_gso(), frames.get(i)) {
                        (true, Some(f)) => f.len().div_ceil(usize::from(o.gso_size).max(1)),
                        _ => 1,
                    }
                })
                .sum()
        };
        let mut room = self.xsk.ring_room(want).saturating_sub(self.ready.len());
        // Backpressure instead of loss: when the ring cannot take the whole burst, make
        // the kernel transmit what is pending (copy mode sends up to 32 frames per
        // `sendto`) and reclaim completed frames, a bounded number of times. Still one
        // syscall per up to 32 frames, never per frame.
        let mut kicks = 0;
        while (room < want || self.free.len() < want)
            && kicks < MAX_KICKS_PER_FLUSH
            && self.xsk.needs_wakeup()
            && self.xsk.pending()
        {
            self.kick_and_reap();
            kicks += 1;
            room = self.xsk.ring_room(want).saturating_sub(self.ready.len());
        }
        // Superframes may kick more: each kick moves up to 32 segments.
        let max_kicks = MAX_KICKS_PER_FLUSH.max(want.div_ceil(32) + MAX_KICKS_PER_FLUSH);
        // Descriptors this burst may use: ring slots, free frames, room in `ready`.
        let mut budget = room
            .min(self.free.len())
            .min(self.ready.capacity() - self.ready.len());
        let mut done = TxDone::default();
        for item in items {
            if budget == 0 {
                break; // ring or frames exhausted: the rest is tx_ring_full
            }
            let Some(src) = frames.get(usize::from(item.frame)) else {
                break;
            };
            let edit = item.edit;
            let offload = Offload::of(offloads, usize::from(item.frame));
            if offload.is_gso() {
                // AF_XDP carries no offload metadata: cut the superframe into wire frames.
                let mut result = self.tx_segments(src, edit, &offload, budget);
                // A superframe needs tens of descriptors: hand what is queued to the
                // kernel and reclaim completed frames, a bounded number of times (one
                // syscall per up to 32 segments, never per segment).
                while matches!(result, Segmented::NoRoom) && kicks < max_kicks {
                    self.xsk.produce(&mut self.ready);
                    self.kick_and_reap();
                    kicks += 1;
                    budget = self
                        .xsk
                        .ring_room(want)
                        .saturating_sub(self.ready.len())
                        .min(self.free.len())
                        .min(self.ready.capacity() - self.ready.len());
                    result = self.tx_segments(src, edit, &offload, budget);
                }
                match result {
                    Segmented::Sent { descriptors, bytes } => {
                        budget -= descriptors;
                        done.sent += 1;
                        done.bytes += bytes;
                    }
                    Segmented::NoRoom => break,
                    Segmented::TooBig => done.too_big += 1,
                    Segmented::Bad => done.bad_offload += 1,
                }
                continue;
            }
            // A partial checksum is completed in the copy (after the edit moved it).
            let after = offload.after_edit(edit);
            let mut csum_failed = false;
            // The budget covers one frame, so the only way for this to fail is a frame
            // longer than a UMEM frame holds (or a checksum offset outside the frame).
            let written = self.xsk.write_one(&mut self.free, &mut self.ready, |buf| {
                let n = write_edited(src, edit, buf).ok()?;
                if complete_csum(&mut buf[..n], &after).is_err() {
                    csum_failed = true;
                    return None;
                }
                Some(n)
            });
            if csum_failed {
                done.bad_offload += 1;
                continue;
            }
            if let Some(len) = written {
                budget -= 1;
                done.sent += 1;
                done.bytes += len as u64;
                continue;
            }
            // Multi-buffer port: edit into the scratch buffer, send it as a chain.
            let chained = match &mut self.scratch {
                Some(buf) => match write_edited(src, edit, buf) {
                    Ok(len) if complete_csum(&mut buf[..len], &after).is_err() => {
                        done.bad_offload += 1;
                        continue;
                    }
                    Ok(len) if len.div_ceil(self.info.chain_room.max(1)) <= budget => self
                        .xsk
                        .write_chain(&mut self.free, &mut self.ready, &buf[..len])
                        .map(|k| (k, len)),
                    Ok(_) => break, // the chain does not fit this burst: tx_ring_full
                    Err(_) => None,
                },
                None => None,
            };
            match chained {
                Some((k, len)) => {
                    budget -= k;
                    done.sent += 1;
                    done.bytes += len as u64;
                }
                // Longer than the port carries: skip it (the pipeline counts it
                // `mtu_exceeded`) and go on with the rest of the burst.
                None => done.too_big += 1,
            }
        }
        if !self.ready.is_empty() {
            self.xsk.produce(&mut self.ready);
        }
        if done.sent > 0 && self.xsk.needs_wakeup() {
            self.kick();
        }
        done
    }

    fn flush(&mut self) {
        self.xsk.reap(&mut self.free);
        if !self.ready.is_empty() {
            self.xsk.produce(&mut self.ready);
        }
        // In copy mode one sendto moves at most 32 frames (the kernel's TX budget): keep
        // kicking while frames remain, bounded, so a loop that queued more than 32 frames
        // for this port (its own bursts plus other workers' handoffs) does not leave a
        // backlog that fills the ring. Syscalls stay per 32 frames, never per frame.
        for _ in 0..MAX_KICKS_PER_FLUSH {
            if !(self.xsk.needs_wakeup() && self.xsk.pending()) {
                break;
            }
            self.kick_and_reap();
        }
    }
}

/// Most `sendto` kicks one flush makes (8 x 32 = 256 frames, a full burst list).
const MAX_KICKS_PER_FLUSH: usize = 8;

impl RxPort for AfXdpPort {
    fn rx_burst(&mut self, max: usize) -> Result<usize, PortError> {
        self.rx.rx_burst(max)
    }
    fn frames<'a>(&'a self, out: &mut [&'a [u8]; MAX_BURST]) -> usize {
        self.rx.frames(out)
    }
    fn release(&mut self) {
        self.rx.release()
    }
    fn health(&mut self) -> Result<(), PortError> {
        self.rx.health()
    }
    fn kernel_drops(&mut self) -> KernelDrops {
        self.rx.kernel_drops()
    }
    fn wait_fds(&self) -> Option<Vec<std::os::fd::RawFd>> {
        self.rx.wait_fds()
    }
}

impl TxPort for AfXdpPort {
    fn tx_burst(&mut self, frames: &[&[u8]], offloads: &[Offload], items: &[TxItem]) -> TxDone {
        self.tx.tx_burst(frames, offloads, items)
    }
    fn flush(&mut self) {
        self.tx.flush()
    }
}

#[cfg(test)]
mod verdict_tests {
    use super::*;

    /// The egress verdicts read as the operator's notes always did, and compare by cause
    /// (a verdict re-checked every second is reported again only when it changes).
    #[test]
    fn bypass_verdicts_name_the_port_the_peer_and_the_fix() {
        let bypass = |reason| Bypass {
            ifname: "ve0".into(),
            reason,
        };
        let head = "ve0: known unicast to this port goes through the workers, not the XDP \
                    fast path: ";
        assert_eq!(
            bypass(BypassReason::PeerDown("ve1".into())).to_string(),
            format!("{head}its veth peer ve1 is down (checked every second)")
        );
        assert_eq!(
            bypass(BypassReason::GroOff {
                name: "ve1".into(),
                where_: " (in its namespace)",
            })
            .to_string(),
            format!(
                "{head}its veth peer ve1 has GRO off and no XDP program, so the kernel would \
                 drop redirected frames; `ethtool -K ve1 gro on` (in its namespace) enables \
                 it (checked every second)"
            )
        );
        let enodev = || SysError::from(std::io::Error::from_raw_os_error(libc::ENODEV));
        let unknown = bypass(BypassReason::Unknown(PeerUnknown::Gro {
            name: "ve1".into(),
            source: EthtoolError::Gro(enodev()),
        }));
        assert_eq!(
            unknown.to_string(),
            format!(
                "{head}cannot tell whether its veth peer receives redirected frames (peer ve1: \
                 GRO: {})",
                std::io::Error::from_raw_os_error(libc::ENODEV)
            )
        );
        assert_eq!(
            unknown,
            bypass(BypassReason::Unknown(PeerUnknown::Gro {
                name: "ve1".into(),
                source: EthtoolError::Gro(enodev()),
            }))
        );
        assert_ne!(
            EthtoolError::Gro(enodev()),
            EthtoolError::Gro(SysError::from(std::io::Error::from_raw_os_error(
                libc::EPERM
            )))
        );
    }
}
