//! Real port backends and the burst API the PMD worker drives.
//!
//! A port is split into an RX half ([`RxPort`]) and a TX half ([`TxPort`]) so a worker can
//! hold port A's received frames (slices into A's memory) while writing copies into port
//! B's memory. The TX halves of all ports sit in a [`PortTxTable`], which implements
//! [`TxPorts`] for [`crate::pipeline::Pipeline::flush`].
//!
//! Worker loop per port and burst:
//! ```text
//! n = rx.rx_burst(MAX_BURST)?;            // AF_XDP: RX ring -> held tokens
//! k = rx.frames(&mut refs);               // slices into the port's memory
//! m = rx.offloads(&mut meta);             // tap, AF_PACKET: virtio-net headers; else 0
//! pipeline.process(&topo, id, &refs[..k], &meta[..m], now);
//! pipeline.flush(&refs[..k], &meta[..m], &mut table); // one tx_burst per egress port
//! rx.release();                           // AF_XDP: held frames -> fill ring
//! table.flush_all();                      // once per loop: kick TX rings still pending
//! ```
//!
//! Invariants kept here:
//! - No heap allocation, lock or per-packet syscall on the fast path of the AF_XDP
//!   backend (syscalls: at most one TX `sendto` per burst and only when the kernel sets
//!   need_wakeup, one RX wakeup only when it asks). The tap backend costs one read or
//!   write syscall per frame, which is inherent to a tap fd.
//! - A received frame's slice is valid until [`RxPort::release`]; the borrow checker
//!   enforces it (`frames` borrows `&self`, `release` takes `&mut self`).

pub mod afxdp;
mod held;
pub mod packet;
mod probe;
pub mod tap;
mod veth;

use crate::offload::Offload;
use crate::pipeline::{TxDone, TxItem, TxPorts, MAX_BURST};
use crate::topology::{PortId, MAX_PORTS};

pub use afxdp::{AfXdpConfig, AfXdpPort, AfXdpRx, AfXdpTx, SharedProgram, XdpMode};
pub use packet::{PacketConfig, PacketInfo, PacketPort, PacketRx, PacketTx};
pub use tap::{TapConfig, TapPort, TapRx, TapTx};

/// Why a port could not be opened or serviced. Messages name the interface and the cause.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("interface {ifname} does not exist")]
    NoSuchInterface { ifname: String },
    #[error(
        "interface {ifname}: XDP program already attached (driver {driver}, program {program} id {prog_id}, {mode} mode)"
    )]
    XdpProgramAttached {
        ifname: String,
        driver: String,
        program: String,
        prog_id: u32,
        mode: crate::sys::xdp::AttachMode,
    },
    /// Someone else's XDP program (not provably vswitch's) is attached; it is detached
    /// only when the port asks for it (`xdp_replace`).
    #[error(
        "interface {ifname}: XDP program {program} (id {prog_id}, {mode} mode{}) is attached and is not vswitch's; not replacing it: set the port's xdp_replace option (vswitchctl add-port --xdp-replace, or xdp_replace = true in its config) to detach it",
        if *.dispatcher { ", behind libxdp's dispatcher" } else { "" }
    )]
    ForeignXdpProgram {
        ifname: String,
        /// Its name (behind libxdp's dispatcher: the first component's).
        program: String,
        /// The attached program's id (the dispatcher's, behind one).
        prog_id: u32,
        mode: crate::sys::xdp::AttachMode,
        dispatcher: bool,
    },
    /// vswitch's XDP program is attached and a running process (another vswitchd) holds
    /// it: the interface is in use, not left behind by a killed daemon.
    #[error(
        "interface {ifname}: vswitch's XDP program (id {prog_id}) is attached and in use by process {pid} ({comm}); not replacing it: another vswitchd serves this interface (xdp_replace / --xdp-replace detaches it anyway)"
    )]
    XdpProgramInUse {
        ifname: String,
        prog_id: u32,
        pid: u32,
        comm: String,
    },
    #[error(
        "interface {ifname}: cannot register UMEM of {bytes} bytes ({source}); locked memory or kernel memory exhausted"
    )]
    UmemRegistration {
        ifname: String,
        bytes: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("interface {ifname}: XDP {mode} mode not supported (driver {driver})")]
    UnsupportedMode {
        ifname: String,
        mode: XdpMode,
        driver: String,
    },
    #[error("interface {ifname}: queue {queue} out of range (device has {count} rx queues)")]
    QueueOutOfRange {
        ifname: String,
        queue: u32,
        count: u32,
    },
    #[error("interface {ifname}: queue {queue} already bound by another AF_XDP socket")]
    QueueBusy { ifname: String, queue: u32 },
    #[error("interface {ifname}: invalid configuration: {reason}")]
    InvalidConfig { ifname: String, reason: String },
    #[error("interface {ifname}: {op} failed: {source}")]
    Io {
        ifname: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl PortError {
    pub(crate) fn io(ifname: &str, op: &'static str, source: std::io::Error) -> PortError {
        PortError::Io {
            ifname: ifname.to_owned(),
            op,
            source,
        }
    }
}

/// The receive half of a port.
/// Running totals the XDP program keeps for one port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpCounters {
    /// Frames (and bytes) received on this port and forwarded by the fast path.
    pub fwd_rx_packets: u64,
    pub fwd_rx_bytes: u64,
    /// Frames (and bytes, as sent) the fast path forwarded out of this port.
    pub fwd_tx_packets: u64,
    pub fwd_tx_bytes: u64,
    /// Frames longer than the port's AF_XDP frames, dropped (`mtu_exceeded`).
    pub oversize: u64,
    /// Frames whose offload metadata (virtio-net header) the port could not honour,
    /// dropped at receive (`bad_offload`).
    pub bad_offload: u64,
    /// Frames the fast path redirected to this port that its device refused
    /// (`redirect_refused`).
    pub fwd_tx_refused: u64,
    /// Frames that arrived on a device queue without a socket of the port, dropped by the
    /// XDP program (`no_socket`).
    pub no_socket: u64,
}

impl From<crate::sys::bpf::PortStats> for XdpCounters {
    /// The program's counters of one port (nothing a port adds itself).
    fn from(s: crate::sys::bpf::PortStats) -> XdpCounters {
        XdpCounters {
            fwd_rx_packets: s.fwd_rx_packets,
            fwd_rx_bytes: s.fwd_rx_bytes,
            fwd_tx_packets: s.fwd_tx_packets,
            fwd_tx_bytes: s.fwd_tx_bytes,
            oversize: s.oversize,
            bad_offload: 0,
            fwd_tx_refused: s.fwd_tx_refused,
            no_socket: s.no_socket,
        }
    }
}

pub trait RxPort: Send {
    /// Receives up to `max` frames (at most [`MAX_BURST`]); returns how many are held.
    /// Frames still held from the previous burst are released first.
    fn rx_burst(&mut self, max: usize) -> Result<usize, PortError>;
    /// The held frames as slices (valid until [`RxPort::release`]).
    fn frames<'a>(&'a self, out: &mut [&'a [u8]; MAX_BURST]) -> usize;
    /// The held frames' offload metadata, in the order of [`RxPort::frames`]; returns how
    /// many it wrote: that count, or 0 when the port has none (every frame is plain, as on
    /// AF_XDP).
    fn offloads(&self, _out: &mut [Offload; MAX_BURST]) -> usize {
        0
    }
    /// Returns the held frames' buffers to the port (AF_XDP: fill ring); once per burst.
    fn release(&mut self);
    /// Whether the port can still receive: an error once its device is gone (AF_XDP: the
    /// socket's pending error, ENETDOWN after the interface was deleted). A syscall at
    /// most: the worker calls it about once per second, never per burst.
    fn health(&mut self) -> Result<(), PortError> {
        Ok(())
    }
    /// Frames the kernel dropped at this port's device, cumulative: before the switch
    /// could see them (AF_XDP: receive ring full, no free buffer) and, on a veth, after
    /// the switch sent them (see [`KernelDrops`]). A few syscalls at most: the worker
    /// that polls the port's receive side reads it about once per second, so each
    /// port's drops are read by one worker.
    fn kernel_drops(&mut self) -> KernelDrops {
        KernelDrops::default()
    }
    /// Running totals kept outside the pipeline for this port: the XDP program's
    /// fast-path forwarding and oversize drops (AF_XDP), frames too long for the receive
    /// slots (tap); zero where there are none. Read once a second and for snapshots.
    fn xdp_counters(&mut self) -> XdpCounters {
        XdpCounters::default()
    }
    /// Called by the worker that polls this port, with the CPU it is pinned to: a port
    /// whose frames are (also) forwarded in the kernel by the XDP fast path moves that
    /// kernel work onto the same CPU (threaded NAPI). `Err`: why it could not.
    fn serve_on_cpu(&mut self, _cpu: usize) -> Result<CpuShare, NapiPinError> {
        Ok(CpuShare::default())
    }
    /// What the operator should know about how this port is served now (e.g. frames to
    /// it bypass the XDP fast path, and why); asked when the queue is added to a worker
    /// and whenever [`RxPort::refresh`] says it changed, shown with the worker's notes.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
    /// Re-examines how the port is served (AF_XDP on a veth: whether its peer can receive
    /// frames the fast path redirects, and tells the XDP program). A few syscalls at
    /// most: the worker calls it about once per second, never per burst. Returns true
    /// when [`RxPort::notes`] changed.
    fn refresh(&mut self) -> bool {
        false
    }
    /// Called by the datapath when the port is attached as switch port `port` (the XDP
    /// program learns which switch port the interface serves).
    fn bind_port(&mut self, _port: PortId) {}
    /// Descriptors that turn readable when this receive half has frames (AF_XDP sockets,
    /// the tap fd), for a worker that blocks in `poll` while idle instead of sleeping on a
    /// timer. `None`: the port cannot be waited on (its worker then wakes on a timer).
    /// Asked once when the queue is added, never per burst.
    fn wait_fds(&self) -> Option<Vec<std::os::fd::RawFd>> {
        None
    }
}

/// Frames the kernel dropped at a port's device since the port opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelDrops {
    /// Before the switch saw them (counted as `rx_ring_full`): receive ring full, no
    /// buffer; on a veth, frames its peer could not hand over.
    pub rx: u64,
    /// After the switch sent them (counted as `tx_ring_full`): on a veth, frames the
    /// device could not hand to its peer (the peer's ring full, the peer down), from the
    /// workers' AF_XDP transmit and from the XDP fast path alike.
    pub tx: u64,
}

/// What [`RxPort::serve_on_cpu`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CpuShare {
    /// Kernel threads (the port's threaded NAPI) now share the worker's CPU: a spinning
    /// worker yields it at every empty pass, a sleeping one blocks at the first.
    pub kernel_threads: bool,
    /// Advice for the operator about this arrangement (shown with the worker's notes).
    pub note: Option<String>,
}

/// Why [`RxPort::serve_on_cpu`] could not move a port's fast-path kernel work onto the
/// worker's CPU (threaded NAPI); the port still works, its fast path in softirq context.
#[derive(Debug, thiserror::Error)]
#[error("{ifname}: fast path stays in softirq context: {source}")]
pub struct NapiPinError {
    pub ifname: String,
    #[source]
    pub source: std::io::Error,
}

/// The transmit half of a port.
pub trait TxPort: Send {
    /// Copies `items` (indices into `frames` with their VLAN edits) into the port's memory
    /// and queues them; returns how many of `items`, in order, were taken. `offloads` is
    /// empty (every frame plain) or holds each frame's [`Offload`] as received (before
    /// the item's edit): a port that takes offloads passes them on, one that does not
    /// segments superframes and completes partial checksums.
    fn tx_burst(&mut self, frames: &[&[u8]], offloads: &[Offload], items: &[TxItem]) -> TxDone;
    /// Pushes out anything still queued (AF_XDP: reap completions, kick the TX ring if the
    /// kernel has not taken all of it). Call once per worker loop, not per frame.
    fn flush(&mut self);
}

/// The TX halves of all ports of one worker, indexed by [`PortId`].
pub struct PortTxTable {
    ports: Vec<Option<Box<dyn TxPort>>>,
}

impl std::fmt::Debug for PortTxTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let present: Vec<usize> = self
            .ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|_| i))
            .collect();
        f.debug_struct("PortTxTable")
            .field("ports", &present)
            .finish()
    }
}

impl Default for PortTxTable {
    fn default() -> Self {
        PortTxTable::new()
    }
}

impl PortTxTable {
    pub fn new() -> PortTxTable {
        PortTxTable {
            ports: (0..MAX_PORTS).map(|_| None).collect(),
        }
    }
    /// Installs `port` as the TX half of `id`; returns the previous one.
    pub fn insert(&mut self, id: PortId, port: Box<dyn TxPort>) -> Option<Box<dyn TxPort>> {
        self.ports[id.index()].replace(port)
    }
    pub fn remove(&mut self, id: PortId) -> Option<Box<dyn TxPort>> {
        self.ports[id.index()].take()
    }
    pub fn get_mut(&mut self, id: PortId) -> Option<&mut (dyn TxPort + 'static)> {
        self.ports[id.index()].as_deref_mut()
    }
    /// [`TxPort::flush`] on every port.
    pub fn flush_all(&mut self) {
        for p in self.ports.iter_mut().flatten() {
            p.flush();
        }
    }
}

impl TxPorts for PortTxTable {
    fn tx_burst(
        &mut self,
        port: PortId,
        frames: &[&[u8]],
        offloads: &[Offload],
        items: &[TxItem],
    ) -> TxDone {
        match self.ports[port.index()].as_deref_mut() {
            Some(p) => p.tx_burst(frames, offloads, items),
            None => TxDone::default(),
        }
    }
}

#[cfg(test)]
mod tests;
