//! Poll-mode (PMD) workers: threads pinned to CPUs that poll their receive queues, run the
//! pipeline and transmit, and the [`Datapath`] handle the control plane drives them with.
//!
//! Threads and ownership:
//! - Each worker owns its [`Pipeline`] (FDB replica, counters, TX lists), its receive
//!   queues and the transmit halves of the ports it owns. Nothing on the packet path is
//!   shared: no lock, no allocation, no syscall per packet.
//! - A frame for a port owned by another worker is copied (with its VLAN edit and its
//!   offload metadata) into a preallocated buffer and handed over on a bounded lock-free
//!   queue (a *lane*, one per ordered worker pair); the owner transmits it. Buffers return
//!   on the lane's free queues: one of frame-sized buffers, one of fewer superframe-sized
//!   buffers for the 64 KiB superframes of ports with offloads.
//! - Learning reaches the other replicas as [`FdbUpdate`]s on the same lanes. A full queue
//!   drops the update (counted); that only costs a flood until the MAC is seen again.
//!   Replicas never forward to a stale port for long: a move is an update like a learn.
//!   Updates carry the entry's stamp (a late one never reverts a newer move, whatever
//!   lane it comes on) and the port's epoch (one made for a port that has since left the
//!   topology is dropped, even when a new port took its id).
//! - The control plane talks to a worker only through its command channel, read once per
//!   loop iteration (a burst boundary): configuration snapshots ([`Topology`]), port
//!   attach/detach, FDB operations and statistics requests.
//!
//! Time: the worker reads a monotonic clock once per loop iteration, shared epoch across
//! workers, and passes whole seconds to the FDB.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, Sender};
use crossbeam::queue::ArrayQueue;

use crate::counters::{DropReason, PortCounters};
use crate::fastpath::Mirror;
use crate::fdb::{FdbConfig, FdbCounters, FdbEntry, FdbError, FdbUpdate, Flush};
use crate::offload::{Offload, MAX_SUPERFRAME};
use crate::pipeline::{Pipeline, TxDone, TxItem, TxPorts, MAX_BURST};
use crate::port::{KernelDrops, PortTxTable, RxPort, SharedProgram, TxPort, XdpCounters};
use crate::sys::wait::{self, Doorbell, Woken};
use crate::topology::{PortId, Topology, MAX_PORTS};
use crate::wire::{write_edited, Edit, MacAddr};

pub mod poll;
use poll::{Idle, IdleClock};
pub use poll::{PollMode, PollPolicy};

/// Default of [`DatapathConfig::lane_wait_max`]. While a worker holds back, its frames
/// wait in its receive rings (AF_XDP: 8192 deep, 40 ms at 0.2 Mpps per port), so waiting
/// longer than the peer's usual absences costs latency, not frames. On this project's
/// 2-core VM a CPU is taken from a running thread for up to 8 ms at a time (non-preemptible
/// kernel threads, the hypervisor). With 5 ms the soak (`make soak`) lost 960-1,426
/// frames as `tx_ring_full` on the lane in 2 of 9 runs; with 20 ms, 0 in 8 of 8.
pub const LANE_WAIT_MAX: Duration = Duration::from_millis(20);

/// Most workers a datapath runs.
pub const MAX_WORKERS: usize = 64;
const NO_OWNER: u8 = u8::MAX;

/// Datapath parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatapathConfig {
    /// Number of PMD threads (1..=MAX_WORKERS).
    pub workers: usize,
    /// CPUs to pin workers to: worker i runs on `cpus[i % cpus.len()]`; empty: not pinned.
    pub cpus: Vec<usize>,
    /// Frames per receive burst (1..=MAX_BURST).
    pub burst: usize,
    pub fdb: FdbConfig,
    /// What an idle worker does: spin, spin for a window after traffic, or block (see
    /// [`PollMode`]); changed on running workers with [`Datapath::set_poll`].
    pub poll: PollPolicy,
    /// A worker that blocks waits in `poll` on its receive descriptors and its doorbell
    /// (rung by other workers handing it frames and by control commands), for at most
    /// `idle_wait_max`; when a port cannot be waited on, it sleeps `idle_sleep` instead.
    /// Syscalls only when idle. In `sleep` mode it blocks after `idle_polls` consecutive
    /// empty polls.
    pub idle_polls: u32,
    pub idle_sleep: Duration,
    /// Longest an idle worker blocks before it looks at its clock (FDB aging, port
    /// health checks); frames and commands wake it earlier.
    pub idle_wait_max: Duration,
    /// Buffers per lane for frames handed to another worker.
    pub lane_buffers: usize,
    /// Longest a worker holds back receiving while a lane to another worker is short of
    /// buffers; a peer stalled longer costs counted drops (`tx_ring_full`).
    pub lane_wait_max: Duration,
    /// Size of a lane buffer: the largest plain frame that can cross workers.
    pub max_frame: usize,
    /// Buffers per lane for superframes (up to [`MAX_SUPERFRAME`] bytes) of ports with
    /// offloads; 0: superframes cannot cross workers (counted `tx_ring_full`).
    pub lane_super_buffers: usize,
    /// Capacity of each lane's FDB update queue.
    pub lane_updates: usize,
    /// The switch's XDP program (shared by its AF_XDP ports). With its fast path on, the
    /// datapath keeps the program's FDB mirror and topology in step (see
    /// [`crate::fastpath`]).
    pub xdp: Option<SharedProgram>,
}

impl Default for DatapathConfig {
    fn default() -> Self {
        DatapathConfig {
            workers: 1,
            cpus: Vec::new(),
            burst: 32,
            fdb: FdbConfig::default(),
            poll: PollPolicy::default(),
            idle_polls: 1024,
            idle_sleep: Duration::from_micros(50),
            idle_wait_max: Duration::from_millis(100),
            lane_wait_max: LANE_WAIT_MAX,
            lane_buffers: 1024,
            max_frame: 9238,
            lane_super_buffers: 64,
            lane_updates: 4096,
            xdp: None,
        }
    }
}

/// Errors of the datapath control handle.
#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    #[error("invalid datapath configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Poll(#[from] poll::WindowTooLong),
    #[error("worker {0} does not exist (have {1})")]
    NoSuchWorker(usize, usize),
    #[error("port {0} is not in the current configuration")]
    NoSuchPort(PortId),
    #[error("cannot start worker thread {worker}: {source}")]
    Spawn {
        worker: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("worker {0} did not answer within {1:?}")]
    Timeout(usize, Duration),
    #[error("worker {0} has stopped")]
    WorkerGone(usize),
    #[error(transparent)]
    Fdb(#[from] FdbError),
}

/// One worker's activity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStats {
    pub id: usize,
    /// CPU the worker is pinned to, if pinning succeeded.
    pub cpu: Option<usize>,
    /// The poll mode the worker runs in now (filled in by the snapshot).
    pub poll_mode: PollMode,
    /// Kernel threads that feed this worker's queues run on its CPU (see
    /// [`crate::port::CpuShare`]): in `sleep` mode it blocks at its first empty pass.
    pub shares_cpu: bool,
    /// Frames received by this worker's queues.
    pub packets: u64,
    /// Non-empty receive bursts.
    pub bursts: u64,
    /// Loop time spent on iterations that did work, and on empty ones.
    pub busy_ns: u64,
    pub idle_ns: u64,
    /// Frames handed to other workers, and received from them for transmission.
    pub handoff_out: u64,
    pub handoff_in: u64,
    /// Frames that could not be handed over (lane full); counted `tx_ring_full` too.
    pub handoff_full: u64,
    pub fdb_updates_sent: u64,
    pub fdb_updates_applied: u64,
    pub fdb_updates_dropped: u64,
    /// Receive queues polled: (port, queue index).
    pub rx_queues: Vec<(PortId, u32)>,
    /// Ports whose transmit half this worker owns.
    pub tx_ports: Vec<PortId>,
    /// Receive queues this worker stopped polling because they failed (device deleted,
    /// read error): (port, queue, error). Cleared when the port's I/O is attached again.
    pub failed: Vec<(PortId, u32, String)>,
    /// Receive errors seen (each failure counts once).
    pub rx_errors: u64,
    /// FDB updates lost because the fast path's mirror queue was full (healed by the next
    /// refresh of the entry, at most a second later).
    pub mirror_dropped: u64,
    /// Times the idle worker blocked in `poll` until work arrived (see
    /// [`DatapathConfig::idle_polls`]), and waits ended by a descriptor error only.
    pub idle_waits: u64,
    pub idle_wait_errors: u64,
    /// Loop passes that held back receiving because a lane to another worker was short
    /// of free buffers (backpressure instead of drops, bounded by [`DatapathConfig::lane_wait_max`]).
    pub lane_waits: u64,
    /// What the operator should know about the queues this worker polls: things it could
    /// not set up as asked (e.g. threaded NAPI for a fast-path port), and what the ports
    /// say about how they are served now; for `pmd show` and the control plane's log.
    pub notes: Vec<PortNote>,
}

/// One of a worker's [`WorkerStats::notes`]: what the operator should know about how
/// `port` is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortNote {
    pub port: PortId,
    pub text: String,
}

impl std::fmt::Display for PortNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl WorkerStats {
    pub fn avg_burst(&self) -> f64 {
        if self.bursts == 0 {
            0.0
        } else {
            self.packets as f64 / self.bursts as f64
        }
    }
    /// Fraction of loop time spent on iterations that moved frames.
    pub fn busy_ratio(&self) -> f64 {
        let t = self.busy_ns + self.idle_ns;
        if t == 0 {
            0.0
        } else {
            self.busy_ns as f64 / t as f64
        }
    }
}

/// What a worker reports when asked.
#[derive(Debug, Clone)]
pub struct WorkerSnapshot {
    pub stats: WorkerStats,
    pub counters: Vec<(PortId, PortCounters)>,
    pub fdb: FdbCounters,
    pub fdb_entries: Vec<FdbEntry>,
    /// Generation of the topology the worker runs.
    pub generation: u64,
}

/// An FDB operation applied to every replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdbOp {
    AddStatic {
        vid: u16,
        mac: MacAddr,
        port: PortId,
    },
    Remove {
        vid: u16,
        mac: MacAddr,
    },
    Flush(Flush),
    SetAging(u64),
}

enum Command {
    SetTopology(Arc<Topology>, Vec<u8>),
    AddRx {
        port: PortId,
        queue: u32,
        rx: Box<dyn RxPort>,
    },
    AddTx {
        port: PortId,
        tx: Box<dyn TxPort>,
    },
    Detach(PortId),
    Fdb(FdbOp, Sender<Result<(), FdbError>>),
    Snapshot {
        entries: bool,
        reply: Sender<WorkerSnapshot>,
    },
    SetPoll(PollPolicy),
    Stop,
}

/// A frame buffer that travels between workers: the frame after its edit, and its
/// offload metadata after the edit.
struct LaneBuf {
    len: usize,
    offload: Offload,
    data: Box<[u8]>,
}

impl LaneBuf {
    fn new(size: usize) -> Box<LaneBuf> {
        Box::new(LaneBuf {
            len: 0,
            offload: Offload::NONE,
            data: vec![0u8; size].into_boxed_slice(),
        })
    }
}

struct Handoff {
    port: PortId,
    buf: Box<LaneBuf>,
}

/// Queues from one worker to another.
struct Lane {
    frames: ArrayQueue<Handoff>,
    free: ArrayQueue<Box<LaneBuf>>,
    /// Superframe buffers ([`DatapathConfig::lane_super_buffers`]).
    free_super: ArrayQueue<Box<LaneBuf>>,
    /// Size of the buffers in `free`; a longer buffer belongs to `free_super`.
    frame_size: usize,
    updates: ArrayQueue<FdbUpdate>,
    /// The receiving worker's doorbell (rung once per loop after pushing, if it sleeps).
    bell: Arc<Doorbell>,
}

impl Lane {
    fn new(c: &DatapathConfig, bell: Arc<Doorbell>) -> Lane {
        let buffers = c.lane_buffers.max(1);
        let free = ArrayQueue::new(buffers);
        for _ in 0..buffers {
            // Capacity is exactly `buffers`, so every push fits.
            let _ = free.push(LaneBuf::new(c.max_frame));
        }
        let supers = c.lane_super_buffers.max(1);
        let free_super = ArrayQueue::new(supers);
        for _ in 0..c.lane_super_buffers {
            let _ = free_super.push(LaneBuf::new(MAX_SUPERFRAME.max(c.max_frame)));
        }
        Lane {
            frames: ArrayQueue::new(buffers + supers),
            free,
            free_super,
            frame_size: c.max_frame,
            updates: ArrayQueue::new(c.lane_updates.max(1)),
            bell,
        }
    }

    /// A free buffer that holds `len` bytes, if any.
    #[inline]
    fn take_buf(&self, len: usize) -> Option<Box<LaneBuf>> {
        if len <= self.frame_size {
            self.free.pop()
        } else {
            self.free_super.pop()
        }
    }

    /// Returns a buffer to the free queue it came from.
    #[inline]
    fn give_buf(&self, buf: Box<LaneBuf>) {
        // Each queue holds every buffer it ever had; this always fits.
        let _ = if buf.data.len() > self.frame_size {
            self.free_super.push(buf)
        } else {
            self.free.push(buf)
        };
    }

    /// Fewer free buffers than one burst needs (of either kind).
    fn short(&self, burst: usize) -> bool {
        self.free.len() < burst || self.free_super.len() < burst.min(self.free_super.capacity() / 2)
    }
}

/// The control plane's handle on the running workers.
pub struct Datapath {
    config: DatapathConfig,
    topo: Arc<Topology>,
    owners: Vec<u8>,
    commands: Vec<Sender<Command>>,
    /// Each worker's doorbell: rung after a command so an idle worker sees it at once.
    bells: Vec<Arc<Doorbell>>,
    threads: Vec<JoinHandle<()>>,
    next_worker: usize,
    /// The fast path's FDB mirror thread (fast path on only).
    mirror: Option<Mirror>,
}

impl std::fmt::Debug for Datapath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datapath")
            .field("workers", &self.commands.len())
            .field("generation", &self.topo.generation())
            .finish()
    }
}

impl Datapath {
    /// Starts the workers with an initial configuration (ports get I/O with
    /// [`Datapath::attach_port`]).
    pub fn start(config: DatapathConfig, topo: Topology) -> Result<Datapath, DatapathError> {
        if config.workers == 0 || config.workers > MAX_WORKERS {
            return Err(DatapathError::Config(format!(
                "workers must be 1-{MAX_WORKERS}, not {}",
                config.workers
            )));
        }
        if config.burst == 0 || config.burst > MAX_BURST {
            return Err(DatapathError::Config(format!(
                "burst must be 1-{MAX_BURST}, not {}",
                config.burst
            )));
        }
        config.poll.validate()?;
        let n = config.workers;
        let epoch = Instant::now();
        let bells = (0..n)
            .map(|w| {
                Doorbell::new()
                    .map(Arc::new)
                    .map_err(|source| DatapathError::Spawn { worker: w, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // lanes[a][b]: from worker a to worker b.
        let lanes: Vec<Vec<Option<Arc<Lane>>>> = (0..n)
            .map(|a| {
                (0..n)
                    .map(|b| (a != b).then(|| Arc::new(Lane::new(&config, bells[b].clone()))))
                    .collect()
            })
            .collect();
        let topo = Arc::new(topo);
        let program = config.xdp.as_ref().map(|p| p.0.clone());
        let mirror = match &program {
            Some(p) if p.fast() => {
                p.fdb_op(&FdbOp::SetAging(config.fdb.aging_secs));
                p.sync_topology(topo.clone());
                Some(
                    Mirror::start(p.clone(), n)
                        .map_err(|source| DatapathError::Spawn { worker: n, source })?,
                )
            }
            _ => None,
        };
        let mut commands = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for (id, out) in lanes.iter().enumerate() {
            let (tx, rx) = channel::unbounded();
            let out = out.clone();
            let inbound: Vec<Arc<Lane>> = (0..n).filter_map(|a| lanes[a][id].clone()).collect();
            let cpu = (!config.cpus.is_empty()).then(|| config.cpus[id % config.cpus.len()]);
            let lanes = Lanes {
                out,
                inbound,
                bell: bells[id].clone(),
            };
            let mut w = Worker::new(id, cpu, &config, topo.clone(), lanes, rx, epoch);
            w.mirror = mirror.as_ref().map(|m| m.queue(id));
            let handle = std::thread::Builder::new()
                .name(format!("pmd{id}"))
                .spawn(move || w.run())
                .map_err(|source| DatapathError::Spawn { worker: id, source })?;
            commands.push(tx);
            threads.push(handle);
        }
        Ok(Datapath {
            config,
            topo,
            owners: vec![NO_OWNER; MAX_PORTS],
            commands,
            bells,
            threads,
            next_worker: 0,
            mirror,
        })
    }

    pub fn workers(&self) -> usize {
        self.commands.len()
    }
    pub fn config(&self) -> &DatapathConfig {
        &self.config
    }
    pub fn topology(&self) -> Arc<Topology> {
        self.topo.clone()
    }
    /// The worker that transmits on `port`.
    pub fn owner(&self, port: PortId) -> Option<usize> {
        let o = self.owners[port.index()];
        (o != NO_OWNER).then_some(usize::from(o))
    }

    fn send(&self, worker: usize, c: Command) -> Result<(), DatapathError> {
        self.commands
            .get(worker)
            .ok_or(DatapathError::NoSuchWorker(worker, self.commands.len()))?
            .send(c)
            .map_err(|_| DatapathError::WorkerGone(worker))?;
        self.bells[worker].ring();
        Ok(())
    }

    /// Changes the poll mode of every worker (each at its next burst boundary; nothing is
    /// dropped or reordered: queues and lanes stay as they are).
    pub fn set_poll(&mut self, poll: PollPolicy) -> Result<(), DatapathError> {
        poll.validate()?;
        for w in 0..self.commands.len() {
            self.send(w, Command::SetPoll(poll))?;
        }
        self.config.poll = poll;
        Ok(())
    }

    /// Installs a new configuration on every worker (each swaps at its next burst
    /// boundary; frames of unaffected ports keep flowing).
    pub fn set_topology(&mut self, topo: Topology) -> Result<(), DatapathError> {
        // Ports that left the configuration lose their I/O.
        let gone: Vec<PortId> = self
            .topo
            .iter()
            .map(|(p, _)| p)
            .filter(|p| topo.port(*p).is_none() && self.owners[p.index()] != NO_OWNER)
            .collect();
        for p in gone {
            self.detach_port(p)?;
        }
        self.topo = Arc::new(topo);
        self.sync_program();
        for w in 0..self.commands.len() {
            self.send(
                w,
                Command::SetTopology(self.topo.clone(), self.owners.clone()),
            )?;
        }
        Ok(())
    }

    /// Tells the XDP program (fast path on) about the current topology.
    fn sync_program(&self) {
        if let Some(p) = &self.config.xdp {
            if self.mirror.is_some() {
                p.0.sync_topology(self.topo.clone());
            }
        }
    }

    /// Gives a configured port its I/O: receive queues are spread over workers round-robin
    /// starting at `worker` (or the next worker in turn); that first worker also owns the
    /// transmit half.
    pub fn attach_port(
        &mut self,
        port: PortId,
        mut rx: Vec<Box<dyn RxPort>>,
        tx: Box<dyn TxPort>,
        worker: Option<usize>,
    ) -> Result<usize, DatapathError> {
        if self.topo.port(port).is_none() {
            return Err(DatapathError::NoSuchPort(port));
        }
        let n = self.commands.len();
        let first = match worker {
            Some(w) if w < n => w,
            Some(w) => return Err(DatapathError::NoSuchWorker(w, n)),
            None => {
                let w = self.next_worker % n;
                self.next_worker += 1;
                w
            }
        };
        self.owners[port.index()] = first as u8;
        for r in &mut rx {
            r.bind_port(port);
        }
        for w in 0..n {
            self.send(
                w,
                Command::SetTopology(self.topo.clone(), self.owners.clone()),
            )?;
        }
        self.sync_program();
        self.send(first, Command::AddTx { port, tx })?;
        for (q, r) in rx.into_iter().enumerate() {
            self.send(
                (first + q) % n,
                Command::AddRx {
                    port,
                    queue: q as u32,
                    rx: r,
                },
            )?;
        }
        Ok(first)
    }

    /// Removes a port's I/O from every worker (the port objects are dropped there, which
    /// detaches them from their interfaces).
    pub fn detach_port(&mut self, port: PortId) -> Result<(), DatapathError> {
        self.owners[port.index()] = NO_OWNER;
        for w in 0..self.commands.len() {
            self.send(w, Command::Detach(port))?;
            self.send(
                w,
                Command::SetTopology(self.topo.clone(), self.owners.clone()),
            )?;
        }
        Ok(())
    }

    /// Applies an FDB operation to every replica and waits for them.
    pub fn fdb(&self, op: FdbOp, timeout: Duration) -> Result<(), DatapathError> {
        let mut replies = Vec::with_capacity(self.commands.len());
        for w in 0..self.commands.len() {
            let (tx, rx) = channel::bounded(1);
            self.send(w, Command::Fdb(op, tx))?;
            replies.push(rx);
        }
        for (w, r) in replies.into_iter().enumerate() {
            r.recv_timeout(timeout)
                .map_err(|_| DatapathError::Timeout(w, timeout))??;
        }
        if let (Some(p), Some(_)) = (&self.config.xdp, &self.mirror) {
            p.0.fdb_op(&op);
        }
        Ok(())
    }

    /// Asks every worker for its statistics (and FDB entries when `entries`).
    pub fn snapshot(
        &self,
        entries: bool,
        timeout: Duration,
    ) -> Result<Vec<WorkerSnapshot>, DatapathError> {
        let mut replies = Vec::with_capacity(self.commands.len());
        for w in 0..self.commands.len() {
            let (tx, rx) = channel::bounded(1);
            self.send(w, Command::Snapshot { entries, reply: tx })?;
            replies.push(rx);
        }
        replies
            .into_iter()
            .enumerate()
            .map(|(w, r)| {
                r.recv_timeout(timeout)
                    .map_err(|_| DatapathError::Timeout(w, timeout))
            })
            .collect()
    }

    /// Waits until every worker has processed every command sent so far.
    pub fn sync(&self, timeout: Duration) -> Result<(), DatapathError> {
        self.snapshot(false, timeout).map(|_| ())
    }

    /// Per-port counters summed over workers.
    pub fn port_counters(
        &self,
        timeout: Duration,
    ) -> Result<Vec<(PortId, PortCounters)>, DatapathError> {
        let snaps = self.snapshot(false, timeout)?;
        Ok(sum_counters(&snaps))
    }

    /// Stops the workers and waits for them (ports are dropped and detached).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        for (c, bell) in self.commands.iter().zip(&self.bells) {
            let _ = c.send(Command::Stop);
            bell.ring();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Datapath {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Sums per-port counters of several workers.
pub fn sum_counters(snaps: &[WorkerSnapshot]) -> Vec<(PortId, PortCounters)> {
    let mut total: Vec<Option<PortCounters>> = vec![None; MAX_PORTS];
    for s in snaps {
        for (p, c) in &s.counters {
            total[p.index()]
                .get_or_insert_with(PortCounters::default)
                .accumulate(c);
        }
    }
    total
        .into_iter()
        .enumerate()
        .filter_map(|(i, c)| Some((PortId::new(i)?, c?)))
        .collect()
}

/// Merges the FDB replicas' entries: one per (VLAN, MAC), the most recently refreshed.
pub fn merge_fdb(snaps: &[WorkerSnapshot]) -> Vec<FdbEntry> {
    let mut all: Vec<FdbEntry> = snaps
        .iter()
        .flat_map(|s| s.fdb_entries.iter().copied())
        .collect();
    all.sort_by_key(|e| (e.vid, e.mac, e.age));
    all.dedup_by_key(|e| (e.vid, e.mac));
    all
}

struct RxQueue {
    port: PortId,
    queue: u32,
    rx: Box<dyn RxPort>,
    /// Kernel drops already counted (RxPort::kernel_drops is cumulative).
    kernel_drops: KernelDrops,
    /// XDP program counters already counted (cumulative too).
    xdp: XdpCounters,
    /// What to `poll` while idle (None: the port cannot be waited on).
    wait_fds: Option<Vec<std::os::fd::RawFd>>,
    /// What the worker noted when it took the queue (e.g. threaded NAPI could not be set
    /// up), and what the port says about itself ([`RxPort::notes`], kept current by
    /// [`RxPort::refresh`]); shown as the worker's notes while the queue is polled here.
    setup_notes: Vec<String>,
    port_notes: Vec<String>,
}

/// A worker's ends of the lanes, and its doorbell.
struct Lanes {
    out: Vec<Option<Arc<Lane>>>,
    inbound: Vec<Arc<Lane>>,
    bell: Arc<Doorbell>,
}

struct Worker {
    id: usize,
    cpu: Option<usize>,
    burst: usize,
    poll: PollPolicy,
    idle: IdleClock,
    idle_polls: u32,
    idle_sleep: Duration,
    idle_wait_max: Duration,
    lane_wait_max_ns: u64,
    pipeline: Pipeline,
    topo: Arc<Topology>,
    owners: Vec<u8>,
    rx: Vec<RxQueue>,
    tx: PortTxTable,
    out: Vec<Option<Arc<Lane>>>,
    inbound: Vec<Arc<Lane>>,
    commands: Receiver<Command>,
    epoch: Instant,
    stats: WorkerStats,
    last_age: u64,
    /// Handoffs taken from a lane, waiting to be transmitted (capacity MAX_BURST).
    pending: Vec<Handoff>,
    /// Offload metadata of the burst in hand (received, or handed over).
    offloads: Box<[Offload; MAX_BURST]>,
    /// Where learned/moved/refreshed entries go for the XDP fast path's FDB mirror.
    mirror: Option<Arc<ArrayQueue<FdbUpdate>>>,
    /// This worker's doorbell (see [`DatapathConfig::idle_polls`]).
    bell: Arc<Doorbell>,
    /// Receive descriptors and the doorbell, rebuilt when the queues change; empty when
    /// some queue cannot be waited on (idle then sleeps on a timer).
    pollfds: Vec<libc::pollfd>,
    /// After a wait woken by an error only (a device gone, not yet removed by the
    /// health check), idle sleeps on a timer until this second.
    timer_until: u64,
    /// Bit b: this loop pushed frames or updates on the lane to worker b.
    rung: u64,
    /// Since when (loop clock, ns) receiving has been held back because a lane to
    /// another worker is short of free buffers.
    lane_wait_since: Option<u64>,
}

impl Worker {
    fn new(
        id: usize,
        cpu: Option<usize>,
        c: &DatapathConfig,
        topo: Arc<Topology>,
        lanes: Lanes,
        commands: Receiver<Command>,
        epoch: Instant,
    ) -> Worker {
        let Lanes { out, inbound, bell } = lanes;
        Worker {
            id,
            cpu,
            burst: c.burst,
            poll: c.poll,
            idle: IdleClock::default(),
            idle_polls: c.idle_polls,
            idle_sleep: c.idle_sleep,
            idle_wait_max: c.idle_wait_max,
            lane_wait_max_ns: u64::try_from(c.lane_wait_max.as_nanos()).unwrap_or(u64::MAX),
            pipeline: Pipeline::new(c.fdb),
            topo,
            owners: vec![NO_OWNER; MAX_PORTS],
            rx: Vec::new(),
            tx: PortTxTable::new(),
            out,
            inbound,
            commands,
            epoch,
            stats: WorkerStats {
                id,
                ..WorkerStats::default()
            },
            last_age: 0,
            pending: Vec::with_capacity(MAX_BURST),
            offloads: Box::new([Offload::NONE; MAX_BURST]),
            mirror: None,
            bell,
            pollfds: Vec::new(),
            timer_until: 0,
            rung: 0,
            lane_wait_since: None,
        }
    }

    fn run(mut self) {
        if let Some(cpu) = self.cpu {
            let pinned = core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
            self.stats.cpu = pinned.then_some(cpu);
        }
        let mut t0 = Instant::now();
        loop {
            // Burst boundary: control commands first.
            while let Ok(c) = self.commands.try_recv() {
                if !self.apply(c) {
                    return;
                }
            }
            let since = t0.duration_since(self.epoch);
            let now = since.as_secs();
            let clock_ns = since.as_nanos() as u64;
            self.pipeline.set_clock_ns(clock_ns);
            let (work, held_back) = self.poll_once(now, clock_ns);
            if now != self.last_age {
                self.pipeline.fdb_mut().age(now);
                self.last_age = now;
                self.check_health();
            }
            let t1 = Instant::now();
            let dt = t1.duration_since(t0).as_nanos() as u64;
            if held_back {
                // Waiting for another worker to drain its lane: stay awake, but let a
                // thread sharing this CPU run.
                self.stats.busy_ns += dt;
                self.idle.work(clock_ns);
                std::thread::yield_now();
            } else if work > 0 {
                self.stats.busy_ns += dt;
                self.idle.work(clock_ns);
            } else {
                self.stats.idle_ns += dt;
                let next =
                    self.idle
                        .empty(&self.poll, self.idle_polls, self.stats.shares_cpu, clock_ns);
                match next {
                    Idle::Poll => {}
                    Idle::Yield => std::thread::yield_now(),
                    Idle::Block => self.idle_wait(now),
                }
            }
            t0 = t1;
        }
    }

    /// One pass over inbound lanes and receive queues; returns frames moved and whether
    /// receiving was held back (see [`Worker::lanes_short`]).
    fn poll_once(&mut self, now: u64, clock_ns: u64) -> (usize, bool) {
        let mut work = self.apply_updates();
        work += self.transmit_handoffs();
        let held_back = self.lanes_short(clock_ns);
        if held_back {
            self.stats.lane_waits += 1;
        } else {
            for i in 0..self.rx.len() {
                work += self.poll_queue(i, now);
            }
        }
        self.tx.flush_all();
        // Wake the workers this pass gave work to, if they sleep (once per loop).
        while self.rung != 0 {
            let b = self.rung.trailing_zeros() as usize;
            self.rung &= self.rung - 1;
            if let Some(Some(lane)) = self.out.get(b) {
                lane.bell.ring();
            }
        }
        (work, held_back)
    }

    /// Backpressure between workers: while a lane to another worker has fewer free
    /// buffers than one burst, frames are left in this worker's receive rings (AF_XDP:
    /// 8192 deep) rather than dropped for lack of a lane buffer, for at most
    /// `lane_wait_max`; a peer stalled longer costs counted drops as before.
    fn lanes_short(&mut self, clock_ns: u64) -> bool {
        let short = self.out.iter().flatten().any(|l| l.short(self.burst));
        if !short {
            self.lane_wait_since = None;
            return false;
        }
        let since = *self.lane_wait_since.get_or_insert(clock_ns);
        clock_ns.saturating_sub(since) < self.lane_wait_max_ns
    }

    /// Blocks until a receive queue has frames, another worker hands over frames or FDB
    /// updates, a command arrives, or `idle_wait_max` passes. Falls back to sleeping
    /// `idle_sleep` when a queue cannot be waited on or a device just failed.
    fn idle_wait(&mut self, now: u64) {
        if self.pollfds.is_empty() || now < self.timer_until {
            std::thread::sleep(self.idle_sleep);
            return;
        }
        self.bell.sleep_begin();
        // Work published before we said we sleep (its ringer saw us awake).
        let pending = !self.commands.is_empty()
            || !self.pending.is_empty()
            || self
                .inbound
                .iter()
                .any(|l| !l.frames.is_empty() || !l.updates.is_empty());
        let woken = if pending {
            Ok(Woken::Ready)
        } else {
            self.stats.idle_waits += 1;
            wait::wait(&mut self.pollfds, self.idle_wait_max)
        };
        self.bell.sleep_end();
        match woken {
            Ok(Woken::Ready | Woken::Timeout | Woken::Interrupted) => {}
            // Error/hang-up only: the health check (once a second) takes the queue out;
            // until then do not spin on it.
            Ok(Woken::Error) | Err(_) => {
                self.stats.idle_wait_errors += 1;
                self.timer_until = now + 2;
            }
        }
    }

    fn apply_updates(&mut self) -> usize {
        let mut n = 0;
        for lane in &self.inbound {
            while let Some(u) = lane.updates.pop() {
                self.pipeline.apply_update(&self.topo, u);
                n += 1;
            }
        }
        self.stats.fdb_updates_applied += n as u64;
        n
    }

    /// The worker's notes: those of the queues it polls, each said once (the queues of
    /// one port say the same things).
    fn refresh_notes(&mut self) {
        let mut notes: Vec<PortNote> = Vec::new();
        for q in &self.rx {
            for n in q.setup_notes.iter().chain(&q.port_notes) {
                if !notes.iter().any(|m| m.port == q.port && m.text == *n) {
                    notes.push(PortNote {
                        port: q.port,
                        text: n.clone(),
                    });
                }
            }
        }
        self.stats.notes = notes;
    }

    /// Once per second: asks every receive queue whether its device is still there and
    /// stops polling the ones that failed (recorded in the stats), and lets each port
    /// re-examine how it is served.
    fn check_health(&mut self) {
        let mut notes_changed = false;
        for q in &mut self.rx {
            if q.rx.refresh() {
                q.port_notes = q.rx.notes();
                notes_changed = true;
            }
        }
        if notes_changed {
            self.refresh_notes();
        }
        let mut i = 0;
        while i < self.rx.len() {
            let q = &mut self.rx[i];
            let total = q.rx.kernel_drops();
            let was = q.kernel_drops;
            q.kernel_drops = total;
            let port = q.port;
            for (reason, now, before) in [
                (DropReason::RxRingFull, total.rx, was.rx),
                (DropReason::TxRingFull, total.tx, was.tx),
            ] {
                if now > before {
                    self.pipeline.count_drops(port, reason, now - before);
                }
            }
            self.poll_xdp(i);
            match self.rx[i].rx.health() {
                Ok(()) => i += 1,
                Err(e) => self.fail_queue(i, e.to_string()),
            }
        }
    }

    /// Adds what the XDP program did for receive queue `i`'s port since the last call:
    /// fast-path frames to the port's rx/tx counters, oversize frames as `mtu_exceeded`,
    /// redirects its device refused as `redirect_refused`, frames on queues without a
    /// socket as `no_socket`.
    fn poll_xdp(&mut self, i: usize) {
        let q = &mut self.rx[i];
        let now = q.rx.xdp_counters();
        let was = q.xdp;
        q.xdp = now;
        let port = q.port;
        let d = |a: u64, b: u64| a.saturating_sub(b);
        self.pipeline.count_fast(
            port,
            (
                d(now.fwd_rx_packets, was.fwd_rx_packets),
                d(now.fwd_rx_bytes, was.fwd_rx_bytes),
            ),
            (
                d(now.fwd_tx_packets, was.fwd_tx_packets),
                d(now.fwd_tx_bytes, was.fwd_tx_bytes),
            ),
        );
        for (reason, n) in [
            (DropReason::MtuExceeded, d(now.oversize, was.oversize)),
            (DropReason::BadOffload, d(now.bad_offload, was.bad_offload)),
            (
                DropReason::RedirectRefused,
                d(now.fwd_tx_refused, was.fwd_tx_refused),
            ),
            (DropReason::NoSocket, d(now.no_socket, was.no_socket)),
        ] {
            if n > 0 {
                self.pipeline.count_drops(port, reason, n);
            }
        }
    }

    /// Stops polling receive queue `i` (its port object is dropped) and records why.
    fn fail_queue(&mut self, i: usize, error: String) {
        let q = self.rx.remove(i);
        self.stats.rx_errors += 1;
        self.stats.failed.push((q.port, q.queue, error));
        self.refresh_placement();
    }

    fn poll_queue(&mut self, i: usize, now: u64) -> usize {
        if i >= self.rx.len() {
            return 0; // a queue before it failed during this pass
        }
        let q = &mut self.rx[i];
        let n = match q.rx.rx_burst(self.burst) {
            Ok(n) => n,
            // A port whose device vanished keeps failing: stop polling it and report it;
            // the other ports go on.
            Err(e) => {
                self.fail_queue(i, e.to_string());
                return 0;
            }
        };
        if n == 0 {
            return 0;
        }
        let port = q.port;
        let mut refs: [&[u8]; MAX_BURST] = [&[]; MAX_BURST];
        let k = q.rx.frames(&mut refs);
        let m = q.rx.offloads(&mut self.offloads);
        let meta = &self.offloads[..m.min(k)];
        self.pipeline
            .process(&self.topo, port, &refs[..k], meta, now);
        let mut tx = WorkerTx {
            me: self.id as u8,
            own: &mut self.tx,
            owners: &self.owners,
            out: &self.out,
            stats: &mut self.stats,
            rung: &mut self.rung,
        };
        self.pipeline.flush(&refs[..k], meta, &mut tx);
        q.rx.release();
        self.stats.packets += k as u64;
        self.stats.bursts += 1;
        if !self.pipeline.updates().is_empty() {
            if let Some(m) = &self.mirror {
                for u in self.pipeline.updates() {
                    if m.push(*u).is_err() {
                        self.stats.mirror_dropped += 1;
                    }
                }
            }
            for (b, lane) in self.out.iter().enumerate() {
                let Some(lane) = lane else { continue };
                self.rung |= 1 << b;
                for u in self.pipeline.updates() {
                    if lane.updates.push(*u).is_ok() {
                        self.stats.fdb_updates_sent += 1;
                    } else {
                        self.stats.fdb_updates_dropped += 1;
                    }
                }
            }
        }
        k
    }

    /// Transmits frames other workers handed over, one burst per run of the same port.
    fn transmit_handoffs(&mut self) -> usize {
        let mut total = 0;
        for li in 0..self.inbound.len() {
            let lane = self.inbound[li].clone();
            while self.pending.len() < MAX_BURST {
                match lane.frames.pop() {
                    Some(h) => self.pending.push(h),
                    None => break,
                }
            }
            if self.pending.is_empty() {
                continue;
            }
            total += self.pending.len();
            self.stats.handoff_in += self.pending.len() as u64;
            let mut start = 0;
            while start < self.pending.len() {
                let port = self.pending[start].port;
                let mut end = start + 1;
                while end < self.pending.len() && self.pending[end].port == port {
                    end += 1;
                }
                let mut refs: [&[u8]; MAX_BURST] = [&[]; MAX_BURST];
                let mut items = [TxItem {
                    frame: 0,
                    edit: Edit::Keep,
                }; MAX_BURST];
                for (j, h) in self.pending[start..end].iter().enumerate() {
                    refs[j] = &h.buf.data[..h.buf.len];
                    self.offloads[j] = h.buf.offload;
                    items[j].frame = j as u16;
                }
                let count = end - start;
                let done = self.tx.tx_burst(
                    port,
                    &refs[..count],
                    &self.offloads[..count],
                    &items[..count],
                );
                self.pipeline.record_tx(port, count, done);
                start = end;
            }
            for h in self.pending.drain(..) {
                lane.give_buf(h.buf);
            }
        }
        total
    }

    /// Applies a control command; returns false on Stop.
    fn apply(&mut self, c: Command) -> bool {
        match c {
            Command::SetTopology(t, owners) => {
                self.pipeline.apply_topology_change(&self.topo, &t);
                self.topo = t;
                self.owners = owners;
            }
            Command::AddRx {
                port,
                queue,
                mut rx,
            } => {
                let mut setup_notes = Vec::new();
                if let Some(cpu) = self.stats.cpu {
                    match rx.serve_on_cpu(cpu) {
                        Ok(share) => {
                            // The kernel's fast-path threads run on this CPU too: stop
                            // spinning as soon as a poll finds nothing.
                            if share.kernel_threads {
                                self.stats.shares_cpu = true;
                            }
                            setup_notes.extend(share.note);
                        }
                        Err(e) => setup_notes.push(e.to_string()),
                    }
                }
                let port_notes = rx.notes();
                self.rx.retain(|q| !(q.port == port && q.queue == queue));
                self.stats.failed.retain(|f| !(f.0 == port && f.1 == queue));
                let wait_fds = rx.wait_fds();
                self.rx.push(RxQueue {
                    port,
                    queue,
                    rx,
                    kernel_drops: KernelDrops::default(),
                    xdp: XdpCounters::default(),
                    wait_fds,
                    setup_notes,
                    port_notes,
                });
                self.refresh_placement();
            }
            Command::AddTx { port, tx } => {
                self.tx.insert(port, tx);
                self.refresh_placement();
            }
            Command::Detach(port) => {
                self.rx.retain(|q| q.port != port);
                self.stats.failed.retain(|f| f.0 != port);
                self.tx.remove(port);
                self.refresh_placement();
            }
            Command::Fdb(op, reply) => {
                let now = self.epoch.elapsed().as_secs();
                let fdb = self.pipeline.fdb_mut();
                let r = match op {
                    FdbOp::AddStatic { vid, mac, port } => fdb.add_static(vid, mac, port),
                    FdbOp::Remove { vid, mac } => {
                        fdb.remove(vid, mac);
                        Ok(())
                    }
                    FdbOp::Flush(f) => {
                        fdb.flush(f);
                        Ok(())
                    }
                    FdbOp::SetAging(secs) => {
                        fdb.set_aging(secs);
                        fdb.age(now);
                        Ok(())
                    }
                };
                let _ = reply.send(r);
            }
            Command::Snapshot { entries, reply } => {
                for i in 0..self.rx.len() {
                    self.poll_xdp(i);
                }
                let now = self.epoch.elapsed().as_secs();
                let counters = self
                    .topo
                    .iter()
                    .map(|(p, _)| (p, self.pipeline.counters(p).clone()))
                    .collect();
                let fdb = self.pipeline.fdb();
                let snap = WorkerSnapshot {
                    stats: WorkerStats {
                        poll_mode: self.poll.mode,
                        ..self.stats.clone()
                    },
                    counters,
                    fdb: fdb.counters(),
                    fdb_entries: if entries {
                        fdb.entries(now).collect()
                    } else {
                        Vec::new()
                    },
                    generation: self.topo.generation(),
                };
                let _ = reply.send(snap);
            }
            Command::SetPoll(p) => {
                self.poll = p;
                // `adaptive` counts its window from the switch (as if a frame came now).
                self.idle.work(self.epoch.elapsed().as_nanos() as u64);
            }
            Command::Stop => return false,
        }
        true
    }

    fn refresh_placement(&mut self) {
        self.stats.rx_queues = self.rx.iter().map(|q| (q.port, q.queue)).collect();
        self.refresh_notes();
        self.pollfds.clear();
        if self.rx.iter().all(|q| q.wait_fds.is_some()) {
            self.pollfds.push(wait::readable(self.bell.fd()));
            for q in &self.rx {
                for fd in q.wait_fds.iter().flatten() {
                    self.pollfds.push(wait::readable(*fd));
                }
            }
        }
        self.stats.tx_ports = (0..MAX_PORTS)
            .filter_map(PortId::new)
            .filter(|p| self.tx.get_mut(*p).is_some())
            .collect();
    }
}

/// The egress side of one worker: its own ports directly, other workers' ports through
/// their lanes.
struct WorkerTx<'a> {
    me: u8,
    own: &'a mut PortTxTable,
    owners: &'a [u8],
    out: &'a [Option<Arc<Lane>>],
    stats: &'a mut WorkerStats,
    /// Lanes pushed to (see [`Worker::rung`]).
    rung: &'a mut u64,
}

impl TxPorts for WorkerTx<'_> {
    fn tx_burst(
        &mut self,
        port: PortId,
        frames: &[&[u8]],
        offloads: &[Offload],
        items: &[TxItem],
    ) -> TxDone {
        let owner = self.owners[port.index()];
        if owner == self.me {
            return self.own.tx_burst(port, frames, offloads, items);
        }
        let Some(Some(lane)) = self.out.get(usize::from(owner)) else {
            return TxDone::default(); // no owner: port has no I/O (tx_ring_full)
        };
        let mut handed = 0;
        let mut too_big = 0;
        for it in items {
            let src = frames[usize::from(it.frame)];
            let Some(mut buf) = lane.take_buf(it.edit.output_len(src.len())) else {
                self.stats.handoff_full += 1;
                break;
            };
            match write_edited(src, it.edit, &mut buf.data) {
                Ok(n) => {
                    buf.len = n;
                    buf.offload = Offload::of(offloads, usize::from(it.frame)).after_edit(it.edit);
                    if let Err(h) = lane.frames.push(Handoff { port, buf }) {
                        lane.give_buf(h.buf);
                        self.stats.handoff_full += 1;
                        break;
                    }
                    handed += 1;
                }
                Err(_) => {
                    // Longer than a lane buffer: counted mtu_exceeded, the rest goes on.
                    lane.give_buf(buf);
                    too_big += 1;
                }
            }
        }
        self.stats.handoff_out += handed as u64;
        if handed > 0 {
            *self.rung |= 1 << owner;
        }
        TxDone {
            handed_off: handed,
            too_big,
            ..TxDone::default()
        }
    }
}

#[cfg(test)]
mod tests;
