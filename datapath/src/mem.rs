//! In-memory ports: fixed-size frame rings standing in for a NIC's RX/TX queues, and a
//! single-threaded switch over them. Used by unit tests, benches and the in-memory demo.
//!
//! Invariants kept here:
//! - Rings allocate their slots once; pushing and popping frames never allocates.
//! - [`MemSwitch::poll`] processes bursts of at most the configured burst size per port,
//!   copying each received frame once into a worker-owned arena (the "DMA"), and each
//!   transmitted frame once into the egress ring with its VLAN edit applied.

use crate::fdb::FdbConfig;
use crate::pipeline::{Pipeline, TxDone, TxItem, TxPorts, MAX_BURST};
use crate::topology::{PortId, Topology, MAX_PORTS};
use crate::wire::write_edited;

/// A ring of fixed-size frame slots.
#[derive(Debug)]
pub struct FrameRing {
    buf: Box<[u8]>,
    lens: Box<[u32]>,
    slot: usize,
    head: usize,
    len: usize,
}

/// Why a frame could not be queued on a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    #[error("ring full")]
    Full,
    #[error("frame of {len} bytes exceeds the {slot}-byte slot")]
    TooLong { len: usize, slot: usize },
}

impl FrameRing {
    pub fn new(slots: usize, slot_size: usize) -> FrameRing {
        let slots = slots.max(1);
        FrameRing {
            buf: vec![0u8; slots * slot_size].into_boxed_slice(),
            lens: vec![0u32; slots].into_boxed_slice(),
            slot: slot_size,
            head: 0,
            len: 0,
        }
    }
    pub fn capacity(&self) -> usize {
        self.lens.len()
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn is_full(&self) -> bool {
        self.len == self.capacity()
    }
    fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        let s = self.slot;
        &mut self.buf[i * s..(i + 1) * s]
    }
    /// Copies a frame in.
    pub fn push(&mut self, frame: &[u8]) -> Result<(), RingError> {
        self.push_with(|slot| {
            let n = frame.len();
            slot.get_mut(..n)?.copy_from_slice(frame);
            Some(n)
        })
        .map_err(|e| match e {
            RingError::TooLong { slot, .. } => RingError::TooLong {
                len: frame.len(),
                slot,
            },
            other => other,
        })
    }
    /// Fills the next free slot with `fill`, which returns the frame length or `None` if
    /// the frame does not fit.
    pub fn push_with(
        &mut self,
        fill: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> Result<(), RingError> {
        if self.is_full() {
            return Err(RingError::Full);
        }
        let i = (self.head + self.len) % self.capacity();
        let slot = self.slot;
        let n = fill(self.slot_mut(i)).ok_or(RingError::TooLong { len: 0, slot })?;
        self.lens[i] = n as u32;
        self.len += 1;
        Ok(())
    }
    /// The oldest frame.
    pub fn front(&self) -> Option<&[u8]> {
        (self.len > 0).then(|| {
            let s = self.slot;
            &self.buf[self.head * s..self.head * s + self.lens[self.head] as usize]
        })
    }
    /// Drops the oldest frame.
    pub fn pop(&mut self) -> bool {
        if self.len == 0 {
            return false;
        }
        self.head = (self.head + 1) % self.capacity();
        self.len -= 1;
        true
    }
    /// Removes and returns every frame (test/demo convenience; allocates).
    pub fn drain_to_vec(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len);
        while let Some(f) = self.front() {
            out.push(f.to_vec());
            self.pop();
        }
        out
    }
}

/// Ring sizes of a [`MemPort`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemPortConfig {
    pub rx_slots: usize,
    pub tx_slots: usize,
    pub slot_size: usize,
}

impl Default for MemPortConfig {
    fn default() -> Self {
        MemPortConfig {
            rx_slots: 1024,
            tx_slots: 1024,
            slot_size: 2048,
        }
    }
}

/// An in-memory port: what a test injects arrives on `rx`; what the switch sends is on `tx`.
#[derive(Debug)]
pub struct MemPort {
    pub rx: FrameRing,
    pub tx: FrameRing,
}

impl MemPort {
    pub fn new(c: MemPortConfig) -> MemPort {
        MemPort {
            rx: FrameRing::new(c.rx_slots, c.slot_size),
            tx: FrameRing::new(c.tx_slots, c.slot_size),
        }
    }
}

/// The egress side of a set of mem ports, for [`Pipeline::flush`].
#[derive(Debug)]
pub struct MemTx<'a>(pub &'a mut [Option<MemPort>]);

impl TxPorts for MemTx<'_> {
    fn tx_burst(
        &mut self,
        port: PortId,
        frames: &[&[u8]],
        _offloads: &[crate::offload::Offload],
        items: &[TxItem],
    ) -> TxDone {
        let mut done = TxDone::default();
        let Some(Some(p)) = self.0.get_mut(port.index()) else {
            return done;
        };
        for it in items {
            let src = frames[usize::from(it.frame)];
            let mut written = 0;
            let r = p.tx.push_with(|slot| {
                written = write_edited(src, it.edit, slot).ok()?;
                Some(written)
            });
            if r.is_err() {
                break;
            }
            done.sent += 1;
            done.bytes += written as u64;
        }
        done
    }
}

/// Frames received on one port, copied into worker-owned memory for one burst.
#[derive(Debug)]
pub struct RxArena {
    buf: Box<[u8]>,
    lens: Box<[usize]>,
    slot: usize,
    n: usize,
}

impl RxArena {
    pub fn new(slot_size: usize) -> RxArena {
        RxArena {
            buf: vec![0u8; MAX_BURST * slot_size].into_boxed_slice(),
            lens: vec![0; MAX_BURST].into_boxed_slice(),
            slot: slot_size,
            n: 0,
        }
    }
    /// Moves up to `max` frames from `ring` into the arena; returns how many.
    pub fn fill_from(&mut self, ring: &mut FrameRing, max: usize) -> usize {
        self.n = 0;
        let max = max.min(MAX_BURST);
        while self.n < max {
            let Some(f) = ring.front() else { break };
            let len = f.len().min(self.slot);
            let off = self.n * self.slot;
            self.buf[off..off + len].copy_from_slice(&f[..len]);
            self.lens[self.n] = len;
            self.n += 1;
            ring.pop();
        }
        self.n
    }
    /// The frames of the current burst, as slices written into `refs`.
    pub fn frames<'a>(&'a self, refs: &mut [&'a [u8]; MAX_BURST]) -> usize {
        for (i, r) in refs.iter_mut().enumerate().take(self.n) {
            let off = i * self.slot;
            *r = &self.buf[off..off + self.lens[i]];
        }
        self.n
    }
}

/// A single-threaded switch over mem ports: the pure pipeline plus rings.
#[derive(Debug)]
pub struct MemSwitch {
    topo: Topology,
    pipeline: Pipeline,
    ports: Vec<Option<MemPort>>,
    arena: RxArena,
    burst: usize,
    port_config: MemPortConfig,
    now: u64,
}

impl MemSwitch {
    /// A switch whose configured ports each get a mem port; `burst` frames per poll.
    pub fn new(topo: Topology, fdb: FdbConfig, ports: MemPortConfig, burst: usize) -> MemSwitch {
        let mut s = MemSwitch {
            topo: Topology::builder().build(),
            pipeline: Pipeline::new(fdb),
            ports: (0..MAX_PORTS).map(|_| None).collect(),
            arena: RxArena::new(ports.slot_size),
            burst: burst.clamp(1, MAX_BURST),
            port_config: ports,
            now: 0,
        };
        s.set_topology(topo);
        s
    }

    pub fn topology(&self) -> &Topology {
        &self.topo
    }
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }
    pub fn pipeline_mut(&mut self) -> &mut Pipeline {
        &mut self.pipeline
    }
    /// Sets the clock (seconds) the FDB sees.
    pub fn set_time(&mut self, now: u64) {
        self.now = now;
        self.pipeline
            .set_clock_ns(now.saturating_mul(1_000_000_000));
    }

    /// Sets the clock in nanoseconds (storm control resolution); the FDB sees seconds.
    pub fn set_time_ns(&mut self, ns: u64) {
        self.now = ns / 1_000_000_000;
        self.pipeline.set_clock_ns(ns);
    }

    /// Swaps in a new configuration between bursts. Ports that disappeared lose their rings,
    /// FDB entries (static ones too) and counters; ports whose VLAN mode changed or that
    /// went down lose their dynamic entries.
    pub fn set_topology(&mut self, topo: Topology) {
        self.pipeline.apply_topology_change(&self.topo, &topo);
        for i in 0..MAX_PORTS {
            let Some(p) = PortId::new(i) else { continue };
            match topo.port(p) {
                None => self.ports[i] = None,
                Some(_) if self.ports[i].is_none() => {
                    self.ports[i] = Some(MemPort::new(self.port_config));
                }
                Some(_) => {}
            }
        }
        self.topo = topo;
    }

    pub fn port(&mut self, p: PortId) -> Option<&mut MemPort> {
        self.ports.get_mut(p.index()).and_then(Option::as_mut)
    }

    /// Queues a frame on a port's receive ring.
    pub fn inject(&mut self, p: PortId, frame: &[u8]) -> Result<(), RingError> {
        self.port(p).ok_or(RingError::Full)?.rx.push(frame)
    }

    /// One burst from every port with pending frames; returns frames processed.
    pub fn poll(&mut self) -> usize {
        (0..MAX_PORTS)
            .filter_map(PortId::new)
            .map(|p| self.poll_port(p))
            .sum()
    }

    /// One burst from one port; returns frames processed. The burst's verdicts are then in
    /// [`Pipeline::verdicts`].
    pub fn poll_port(&mut self, ingress: PortId) -> usize {
        let Some(port) = self.ports[ingress.index()].as_mut() else {
            return 0;
        };
        if port.rx.is_empty() {
            return 0;
        }
        let n = self.arena.fill_from(&mut port.rx, self.burst);
        let mut refs: [&[u8]; MAX_BURST] = [&[]; MAX_BURST];
        let n = self.arena.frames(&mut refs).min(n);
        self.pipeline
            .process(&self.topo, ingress, &refs[..n], &[], self.now);
        self.pipeline
            .flush(&refs[..n], &[], &mut MemTx(&mut self.ports));
        n
    }

    /// Polls until every receive ring is empty; returns frames processed.
    pub fn run(&mut self) -> usize {
        let mut total = 0;
        loop {
            let n = self.poll();
            if n == 0 {
                return total;
            }
            total += n;
        }
    }

    /// Takes everything a port transmitted.
    pub fn take_tx(&mut self, p: PortId) -> Vec<Vec<u8>> {
        self.port(p)
            .map(|m| m.tx.drain_to_vec())
            .unwrap_or_default()
    }
}
