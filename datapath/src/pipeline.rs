//! The forwarding pipeline over one burst of frames received on one port.
//!
//! Stages per frame: parse (checked view) -> source checks -> ingress VLAN classify ->
//! learn (src, vid) -> lookup (dst, vid) -> egress set (unicast, or flood in the VLAN minus
//! the ingress port) -> per-egress VLAN edit -> per-port TX list. [`Pipeline::flush`] then
//! hands each port its list in one call, which copies each frame once into the port's
//! memory with the edit applied.
//!
//! Invariants kept here:
//! - Every frame gets exactly one [`Verdict`]; every dropped frame (or dropped copy) bumps
//!   exactly one named counter: ingress drops on the ingress port, `mtu_exceeded` and
//!   `tx_ring_full` on the egress port.
//! - A frame never leaves through its ingress port, and a flood never leaves its VLAN.
//! - Each egress port receives a frame at most once, so per-port TX lists never hold more
//!   than [`MAX_BURST`] items; all buffers are allocated in [`Pipeline::new`], so a burst
//!   never allocates.

use crate::counters::{DropReason, PortCounters};
use crate::fdb::{Fdb, FdbConfig, FdbUpdate, Learn};
use crate::offload::Offload;
use crate::topology::{FloodKind, PortId, PortSet, Topology, MAX_PORTS};
use crate::vlan::VID_RESERVED;
use crate::wire::{mac48, Edit, L2Header, MacAddr, ParseError, Tci};

/// Most frames one call to [`Pipeline::process`] handles.
pub const MAX_BURST: usize = 256;

/// What happened to one received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Known unicast, queued to exactly one port.
    Unicast(PortId),
    /// Flooded (broadcast, multicast or unknown unicast) to `copies` ports of its VLAN.
    Flood { copies: u16 },
    /// Dropped at ingress, or every copy dropped at egress (the reason of the last one).
    Drop(DropReason),
}

/// One frame queued to one egress port: an index into the burst and the edit to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxItem {
    pub frame: u16,
    pub edit: Edit,
}

/// A port that can transmit the frames of a burst. Implemented by port backends (and by
/// benches' sinks). Writes `items[..n]` for the largest `n` it has room for and reports it.
pub trait TxPorts {
    /// Transmits `items` (indices into `frames` plus edits) on `port`; returns how many
    /// were sent and their total bytes after editing. Items it cannot take are counted
    /// `tx_ring_full` by the pipeline. `offloads` is empty (every frame plain) or holds
    /// one [`Offload`] per frame, as received, before the item's edit.
    fn tx_burst(
        &mut self,
        port: PortId,
        frames: &[&[u8]],
        offloads: &[Offload],
        items: &[TxItem],
    ) -> TxDone;
}

/// Result of [`TxPorts::tx_burst`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxDone {
    /// Items transmitted (queued on the port's TX ring).
    pub sent: usize,
    /// Bytes of the sent items, after editing.
    pub bytes: u64,
    /// Items after the sent ones that were handed to another worker that owns the port;
    /// that worker counts them as sent or dropped ([`Pipeline::record_tx`]).
    pub handed_off: usize,
    /// Items skipped because the edited frame is longer than the port's buffers can hold
    /// (counted `mtu_exceeded`; the items after them were still tried).
    pub too_big: usize,
    /// Items skipped because their offload metadata could not be honoured (a superframe
    /// whose headers do not parse, a checksum offset outside the frame): counted
    /// `bad_offload`; the items after them were still tried.
    pub bad_offload: usize,
    /// Items not sent because the port's device is down (counted `port_down`).
    pub port_down: usize,
}

/// Items of `done` accounted for: sent, or skipped for a reason of their own.
fn unsent_known(done: &TxDone) -> usize {
    done.sent + done.too_big + done.bad_offload + done.port_down
}

/// Counts the items of `done` a port skipped as too big, with bad offload metadata, or
/// because its device is down.
fn count_unsendable(c: &mut PortCounters, done: &TxDone) {
    if done.too_big > 0 {
        c.drop_n(DropReason::MtuExceeded, done.too_big as u64);
    }
    if done.bad_offload > 0 {
        c.drop_n(DropReason::BadOffload, done.bad_offload as u64);
    }
    if done.port_down > 0 {
        c.drop_n(DropReason::PortDown, done.port_down as u64);
    }
}

/// A list with a fixed capacity allocated once; `push` past it is refused, never grows.
#[derive(Debug)]
struct BurstList<T> {
    items: Box<[T]>,
    len: usize,
}

impl<T: Copy> BurstList<T> {
    fn new(fill: T) -> BurstList<T> {
        BurstList {
            items: vec![fill; MAX_BURST].into_boxed_slice(),
            len: 0,
        }
    }
    #[inline(always)]
    fn push(&mut self, v: T) {
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = v;
            self.len += 1;
        }
    }
    #[inline]
    fn as_slice(&self) -> &[T] {
        &self.items[..self.len]
    }
    #[inline]
    fn clear(&mut self) {
        self.len = 0;
    }
}

/// A token bucket for storm control: `rate` frames per second, bursts of up to one
/// second's worth.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    tokens: u64,
    last_ns: u64,
}

impl Bucket {
    /// Takes a token at time `now_ns` for a limit of `rate` per second.
    #[inline]
    fn take(&mut self, rate: u32, now_ns: u64) -> bool {
        let rate = u64::from(rate);
        let elapsed = now_ns.saturating_sub(self.last_ns).min(1_000_000_000);
        let add = elapsed * rate / 1_000_000_000;
        if add > 0 {
            self.tokens = (self.tokens + add).min(rate);
            // Advance by the time those tokens represent, keeping the remainder.
            self.last_ns = if self.tokens == rate {
                now_ns
            } else {
                self.last_ns + add * 1_000_000_000 / rate
            };
        } else if self.last_ns == 0 {
            // First use: start full.
            self.tokens = rate;
            self.last_ns = now_ns.max(1);
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

/// Per-worker forwarding state: the FDB replica, counters and TX lists.
#[derive(Debug)]
pub struct Pipeline {
    fdb: Fdb,
    counters: Box<[PortCounters]>,
    tx: Box<[BurstList<TxItem>]>,
    touched: PortSet,
    verdicts: BurstList<Verdict>,
    updates: Vec<FdbUpdate>,
    /// Storm-control buckets per port: broadcast, multicast, unknown unicast.
    storm: Box<[[Bucket; 3]]>,
    /// Monotonic nanoseconds for storm control, set once per loop by the worker.
    clock_ns: u64,
    /// Per port id: how many times the port left the topology. Updates from other
    /// workers carry it, so those made for a removed port are dropped even when a new
    /// port took its id (every worker sees the same topology sequence).
    epochs: Box<[u32]>,
}

impl Pipeline {
    pub fn new(fdb: FdbConfig) -> Pipeline {
        Pipeline {
            fdb: Fdb::new(fdb),
            counters: vec![PortCounters::default(); MAX_PORTS].into_boxed_slice(),
            tx: (0..MAX_PORTS)
                .map(|_| {
                    BurstList::new(TxItem {
                        frame: 0,
                        edit: Edit::Keep,
                    })
                })
                .collect(),
            touched: PortSet::EMPTY,
            verdicts: BurstList::new(Verdict::Drop(DropReason::NoEgress)),
            updates: Vec::with_capacity(MAX_BURST),
            storm: vec![[Bucket::default(); 3]; MAX_PORTS].into_boxed_slice(),
            clock_ns: 0,
            epochs: vec![0; MAX_PORTS].into_boxed_slice(),
        }
    }

    /// Sets the fine clock storm control uses (monotonic nanoseconds); call once per
    /// burst or loop, not per frame.
    pub fn set_clock_ns(&mut self, ns: u64) {
        self.clock_ns = ns;
        self.fdb.set_clock_ns(ns);
    }

    /// Applies another worker's learning to this replica. Dropped ([`Learn::Stale`]) when
    /// the port is not in `topo` or left it since the update was made (its id may now
    /// belong to another port); otherwise [`Fdb::apply`].
    pub fn apply_update(&mut self, topo: &Topology, u: FdbUpdate) -> Learn {
        let FdbUpdate::Learned { port, epoch, .. } = u;
        match topo.port(port) {
            Some(c) if epoch == self.epochs[port.index()] => self.fdb.apply(u, c.learn_limit),
            _ => Learn::Stale,
        }
    }

    pub fn fdb(&self) -> &Fdb {
        &self.fdb
    }
    pub fn fdb_mut(&mut self) -> &mut Fdb {
        &mut self.fdb
    }
    pub fn counters(&self, p: PortId) -> &PortCounters {
        &self.counters[p.index()]
    }
    /// Counts drops that happened outside the pipeline (e.g. in the kernel, for a port).
    pub fn count_drops(&mut self, p: PortId, reason: DropReason, n: u64) {
        self.counters[p.index()].drop_n(reason, n);
    }

    /// Adds frames the XDP fast path forwarded: received on `rx_port`'s side (`rx_*`) or
    /// sent out of it (`tx_*`).
    pub fn count_fast(&mut self, p: PortId, rx: (u64, u64), tx: (u64, u64)) {
        let c = &mut self.counters[p.index()];
        c.rx_packets += rx.0;
        c.rx_bytes += rx.1;
        c.tx_packets += tx.0;
        c.tx_bytes += tx.1;
    }

    /// Resets one port's counters (port removed, id reused).
    pub fn reset_counters(&mut self, p: PortId) {
        self.counters[p.index()] = PortCounters::default();
    }
    /// Verdicts of the last [`Pipeline::process`] call, one per processed frame.
    pub fn verdicts(&self) -> &[Verdict] {
        self.verdicts.as_slice()
    }
    /// FDB changes of the last burst that other workers' replicas need.
    pub fn updates(&self) -> &[FdbUpdate] {
        &self.updates
    }
    /// Ports with queued frames and their lists.
    pub fn pending(&self) -> impl Iterator<Item = (PortId, &[TxItem])> + '_ {
        self.touched
            .iter()
            .map(|p| (p, self.tx[p.index()].as_slice()))
    }

    /// Runs the forwarding stages over `frames` received on `ingress` at time `now`
    /// (seconds). Processes at most [`MAX_BURST`] frames and returns how many it took.
    /// Queued frames stay pending until [`Pipeline::flush`]. `offloads` is empty (every
    /// frame plain) or holds each frame's [`Offload`]: the egress MTU applies to a
    /// superframe's segments, not to its length.
    pub fn process(
        &mut self,
        topo: &Topology,
        ingress: PortId,
        frames: &[&[u8]],
        offloads: &[Offload],
        now: u64,
    ) -> usize {
        let n = frames.len().min(MAX_BURST);
        self.verdicts.clear();
        self.updates.clear();
        let Some(port) = topo.port(ingress) else {
            // Unknown port: not configured in this snapshot (removed at a burst boundary).
            for _ in 0..n {
                self.verdicts.push(Verdict::Drop(DropReason::PortDown));
            }
            return n;
        };
        let up = topo.is_up(ingress);
        let learning = port.learning;
        let limit = port.learn_limit;
        let mut rx_bytes = 0u64;
        for (i, frame) in frames[..n].iter().enumerate() {
            rx_bytes += frame.len() as u64;
            let verdict = if up {
                let offload = Offload::of(offloads, i);
                self.forward_one(
                    topo, ingress, &port.vlan, learning, limit, i as u16, frame, offload, now,
                )
            } else {
                Verdict::Drop(DropReason::PortDown)
            };
            if let Verdict::Drop(r) = verdict {
                if r != DropReason::MtuExceeded {
                    self.counters[ingress.index()].drop(r);
                }
            }
            self.verdicts.push(verdict);
        }
        let c = &mut self.counters[ingress.index()];
        c.rx_packets += n as u64;
        c.rx_bytes += rx_bytes;
        n
    }

    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn forward_one(
        &mut self,
        topo: &Topology,
        ingress: PortId,
        vlan: &crate::vlan::PortVlan,
        learning: bool,
        limit: Option<u32>,
        index: u16,
        frame: &[u8],
        offload: Offload,
        now: u64,
    ) -> Verdict {
        let hdr = match L2Header::parse(frame) {
            Ok(h) => h,
            Err(ParseError::Runt) => return Verdict::Drop(DropReason::Runt),
            Err(ParseError::TruncatedTag) => return Verdict::Drop(DropReason::TruncatedTag),
        };
        if !mac48::is_learnable(hdr.src) {
            return Verdict::Drop(DropReason::InvalidSrc);
        }
        if mac48::is_link_local_reserved(hdr.dst) {
            return Verdict::Drop(DropReason::ReservedDst);
        }
        let cls = match vlan.classify(hdr.tag) {
            Ok(c) => c,
            Err(r) => return Verdict::Drop(r),
        };
        debug_assert!(cls.vid != 0 && cls.vid != VID_RESERVED);
        if learning {
            let r = self.fdb.learn_raw(cls.vid, hdr.src, ingress, now, limit);
            if r.changed() {
                self.updates.push(FdbUpdate::Learned {
                    vid: cls.vid,
                    mac: MacAddr::from_u64(hdr.src),
                    port: ingress,
                    now,
                    stamp: self.fdb.last_stamp(),
                    epoch: self.epochs[ingress.index()],
                });
            }
        }
        // L3 length: what the egress MTU is compared with (a superframe's segments').
        let l3_len = offload
            .segment_l3_len(frame, hdr.len())
            .unwrap_or(frame.len() - hdr.len());
        let tagged_in = hdr.tag.is_some();
        let out_tci = Tci(cls.priority | cls.vid);

        let kind = if mac48::is_broadcast(hdr.dst) {
            FloodKind::Broadcast
        } else if mac48::is_multicast(hdr.dst) {
            FloodKind::Multicast
        } else {
            match self.fdb.lookup_raw(cls.vid, hdr.dst, now) {
                Some(p) if p == ingress => return Verdict::Drop(DropReason::DstOnIngress),
                Some(p) if topo.members(cls.vid).contains(p) => {
                    if topo.is_isolated(ingress) && topo.is_isolated(p) {
                        return Verdict::Drop(DropReason::Isolated);
                    }
                    return match self.enqueue(topo, p, index, cls.vid, tagged_in, out_tci, l3_len) {
                        Ok(()) => Verdict::Unicast(p),
                        Err(r) => Verdict::Drop(r),
                    };
                }
                // Unknown, or learned on a port that has since left the VLAN: flood.
                _ => FloodKind::UnknownUnicast,
            }
        };
        if let Some(rate) = topo.port(ingress).and_then(|c| c.storm.limit(kind)) {
            let b = &mut self.storm[ingress.index()][kind as usize];
            if !b.take(rate, self.clock_ns) {
                return Verdict::Drop(DropReason::StormControl);
            }
        }
        self.counters[ingress.index()].rx_flooded += 1;
        let set = topo.flood_set(cls.vid, kind, ingress);
        if set.is_empty() {
            return Verdict::Drop(DropReason::NoEgress);
        }
        let mut copies = 0u16;
        let mut last_err = DropReason::NoEgress;
        for p in set.iter() {
            match self.enqueue(topo, p, index, cls.vid, tagged_in, out_tci, l3_len) {
                Ok(()) => copies += 1,
                Err(r) => last_err = r,
            }
        }
        if copies == 0 {
            Verdict::Drop(last_err)
        } else {
            Verdict::Flood { copies }
        }
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn enqueue(
        &mut self,
        topo: &Topology,
        p: PortId,
        index: u16,
        vid: u16,
        tagged_in: bool,
        tci: Tci,
        l3_len: usize,
    ) -> Result<(), DropReason> {
        let info = topo.egress_info(p);
        if l3_len > info.mtu as usize {
            self.counters[p.index()].drop(DropReason::MtuExceeded);
            return Err(DropReason::MtuExceeded);
        }
        let tagged_out = info.untagged_vid != vid;
        let edit = match (tagged_in, tagged_out) {
            (false, false) => Edit::Keep,
            (false, true) => Edit::Push(tci),
            (true, false) => Edit::Pop,
            (true, true) => Edit::SetTci(tci),
        };
        let list = &mut self.tx[p.index()];
        // A port gets each frame of a burst at most once, so the list (MAX_BURST long)
        // never fills up.
        debug_assert!(list.len < MAX_BURST);
        list.push(TxItem { frame: index, edit });
        self.touched.insert(p);
        Ok(())
    }

    /// Transmits every pending TX list through `ports` and clears them; items a port could
    /// not take are counted `tx_ring_full` on it. `frames` and `offloads` must be the
    /// slices given to the preceding [`Pipeline::process`].
    pub fn flush<P: TxPorts + ?Sized>(
        &mut self,
        frames: &[&[u8]],
        offloads: &[Offload],
        ports: &mut P,
    ) {
        for p in self.touched.iter() {
            let list = &mut self.tx[p.index()];
            let done = ports.tx_burst(p, frames, offloads, list.as_slice());
            let c = &mut self.counters[p.index()];
            c.tx_packets += done.sent as u64;
            c.tx_bytes += done.bytes;
            count_unsendable(c, &done);
            let unsent = list
                .len
                .saturating_sub(unsent_known(&done) + done.handed_off);
            if unsent > 0 {
                c.drop_n(DropReason::TxRingFull, unsent as u64);
            }
            list.clear();
        }
        self.touched = PortSet::EMPTY;
    }

    /// Counts a transmission done outside [`Pipeline::flush`] (frames another worker
    /// handed over): `done.sent` as sent, the rest of `attempted` as `tx_ring_full`.
    pub fn record_tx(&mut self, port: PortId, attempted: usize, done: TxDone) {
        let c = &mut self.counters[port.index()];
        c.tx_packets += done.sent as u64;
        c.tx_bytes += done.bytes;
        count_unsendable(c, &done);
        let unsent = attempted.saturating_sub(unsent_known(&done));
        if unsent > 0 {
            c.drop_n(DropReason::TxRingFull, unsent as u64);
        }
    }

    /// Brings the FDB and counters in line with a configuration change: ports that
    /// disappeared lose their entries (static ones too) and counters; ports whose VLAN
    /// mode changed or that went down lose their dynamic entries.
    pub fn apply_topology_change(&mut self, old: &Topology, new: &Topology) {
        use crate::fdb::Flush;
        for (p, o) in old.iter() {
            match new.port(p) {
                None => {
                    self.fdb.flush(Flush {
                        port: Some(p),
                        include_static: true,
                        ..Flush::default()
                    });
                    self.reset_counters(p);
                    self.epochs[p.index()] = self.epochs[p.index()].wrapping_add(1);
                }
                Some(n) if o.vlan != n.vlan || (o.up && !n.up) => {
                    self.fdb.flush(Flush {
                        port: Some(p),
                        ..Flush::default()
                    });
                }
                Some(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
