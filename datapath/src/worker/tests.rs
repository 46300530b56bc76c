//! Worker tests over in-process queue ports: forwarding with 1 and 2 workers, cross-worker
//! handoff, learning convergence across replicas, and configuration changes while
//! traffic flows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::queue::ArrayQueue;

use super::*;
use crate::port::PortError;
use crate::topology::PortConfig;
use crate::wire::{EthernetFrame, EthernetRepr, Tci};

const T: Duration = Duration::from_secs(5);

/// A port backed by two queues: the test pushes to `wire_in`, reads `wire_out`.
#[derive(Clone)]
struct QueuePort {
    wire_in: Arc<ArrayQueue<Vec<u8>>>,
    wire_out: Arc<ArrayQueue<Vec<u8>>>,
    /// What the "kernel" dropped before the switch saw it, and after it sent it.
    drops: Arc<std::sync::atomic::AtomicU64>,
    tx_drops: Arc<std::sync::atomic::AtomicU64>,
    /// What the port's "XDP program" dropped for want of a socket (`no_socket`).
    no_socket: Arc<std::sync::atomic::AtomicU64>,
}

impl QueuePort {
    fn new() -> QueuePort {
        QueuePort {
            wire_in: Arc::new(ArrayQueue::new(65536)),
            wire_out: Arc::new(ArrayQueue::new(65536)),
            drops: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            tx_drops: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            no_socket: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }
    fn halves(&self) -> (Box<dyn RxPort>, Box<dyn TxPort>) {
        (
            Box::new(QueueRx {
                q: self.wire_in.clone(),
                held: Vec::new(),
                drops: self.drops.clone(),
                tx_drops: self.tx_drops.clone(),
                no_socket: self.no_socket.clone(),
            }),
            Box::new(QueueTx {
                q: self.wire_out.clone(),
            }),
        )
    }
    fn drain(&self) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.wire_out.pop()).collect()
    }
}

struct QueueRx {
    q: Arc<ArrayQueue<Vec<u8>>>,
    held: Vec<Vec<u8>>,
    drops: Arc<std::sync::atomic::AtomicU64>,
    tx_drops: Arc<std::sync::atomic::AtomicU64>,
    no_socket: Arc<std::sync::atomic::AtomicU64>,
}

impl RxPort for QueueRx {
    fn rx_burst(&mut self, max: usize) -> Result<usize, PortError> {
        self.held.clear();
        while self.held.len() < max {
            match self.q.pop() {
                Some(f) => self.held.push(f),
                None => break,
            }
        }
        Ok(self.held.len())
    }
    fn frames<'a>(&'a self, out: &mut [&'a [u8]; MAX_BURST]) -> usize {
        for (o, f) in out.iter_mut().zip(&self.held) {
            *o = f;
        }
        self.held.len()
    }
    fn release(&mut self) {
        self.held.clear();
    }
    fn kernel_drops(&mut self) -> crate::port::KernelDrops {
        crate::port::KernelDrops {
            rx: self.drops.load(std::sync::atomic::Ordering::Relaxed),
            tx: self.tx_drops.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
    fn xdp_counters(&mut self) -> crate::port::XdpCounters {
        crate::port::XdpCounters {
            no_socket: self.no_socket.load(std::sync::atomic::Ordering::Relaxed),
            ..crate::port::XdpCounters::default()
        }
    }
}

struct QueueTx {
    q: Arc<ArrayQueue<Vec<u8>>>,
}

impl TxPort for QueueTx {
    fn tx_burst(
        &mut self,
        frames: &[&[u8]],
        _offloads: &[crate::offload::Offload],
        items: &[TxItem],
    ) -> TxDone {
        let mut done = TxDone::default();
        for it in items {
            let mut buf = vec![0u8; 10000];
            let n = write_edited(frames[usize::from(it.frame)], it.edit, &mut buf).expect("edit");
            buf.truncate(n);
            if self.q.push(buf).is_err() {
                break;
            }
            done.sent += 1;
            done.bytes += n as u64;
        }
        done
    }
    fn flush(&mut self) {}
}

fn mac(i: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, i])
}

fn pid(i: usize) -> PortId {
    PortId::new(i).expect("port id")
}

fn frame(dst: MacAddr, src: MacAddr, vid: Option<u16>, seq: u32) -> Vec<u8> {
    let mut payload = vec![0u8; 46];
    payload[..4].copy_from_slice(&seq.to_be_bytes());
    EthernetRepr {
        dst,
        src,
        tag: vid.map(|v| Tci::new(0, false, v)),
        ethertype: 0x0800,
    }
    .to_frame(&payload)
}

/// p0, p1 access 100; p2 trunk 100,200; p3 access 200.
fn topo() -> Topology {
    let mut b = Topology::builder();
    for (i, v) in ["access 100", "access 100", "trunk 100,200", "access 200"]
        .iter()
        .enumerate()
    {
        b.add_port(
            i,
            PortConfig::new(format!("p{i}"), v.parse().expect("vlan")),
        )
        .expect("port");
    }
    b.build()
}

fn start(workers: usize) -> (Datapath, Vec<QueuePort>) {
    let cfg = DatapathConfig {
        workers,
        idle_sleep: Duration::from_micros(20),
        idle_polls: 64,
        ..DatapathConfig::default()
    };
    let mut dp = Datapath::start(cfg, topo()).expect("start");
    let ports: Vec<QueuePort> = (0..4).map(|_| QueuePort::new()).collect();
    for (i, p) in ports.iter().enumerate() {
        let (rx, tx) = p.halves();
        // Alternate owners so that with 2 workers, p0/p2 are on worker 0, p1/p3 on 1.
        dp.attach_port(pid(i), vec![rx], tx, Some(i % workers))
            .expect("attach");
    }
    dp.sync(T).expect("sync");
    (dp, ports)
}

/// Waits until `port` has transmitted `n` frames (or the deadline passes).
fn collect(port: &QueuePort, n: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + T;
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        got.extend(port.drain());
        if got.len() < n {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    got
}

fn forwards_between_vlans_and_tags(workers: usize) {
    let (dp, ports) = start(workers);
    // Broadcast from p0 (access 100): p1 untagged, p2 tagged 100, never p3.
    ports[0]
        .wire_in
        .push(frame(MacAddr::BROADCAST, mac(1), None, 1))
        .expect("push");
    let at1 = collect(&ports[1], 1);
    let at2 = collect(&ports[2], 1);
    assert_eq!(at1, vec![frame(MacAddr::BROADCAST, mac(1), None, 1)]);
    assert_eq!(at2, vec![frame(MacAddr::BROADCAST, mac(1), Some(100), 1)]);
    // Reply from the trunk to p0 (learned): exactly p0, popped.
    ports[2]
        .wire_in
        .push(frame(mac(1), mac(2), Some(100), 2))
        .expect("push");
    let at0 = collect(&ports[0], 1);
    assert_eq!(at0, vec![frame(mac(1), mac(2), None, 2)]);
    dp.sync(T).expect("sync");
    assert!(ports[1].drain().is_empty(), "known unicast leaked to p1");
    assert!(ports[3].drain().is_empty(), "leak into VLAN 200");
    let counters = dp.port_counters(T).expect("counters");
    let c = |p: usize| {
        counters
            .iter()
            .find(|(id, _)| id.index() == p)
            .map(|(_, c)| c.clone())
            .expect("port counters")
    };
    assert_eq!(c(0).rx_packets, 1);
    assert_eq!(c(0).tx_packets, 1);
    assert_eq!(c(2).tx_packets, 1);
    assert_eq!(c(3).tx_packets, 0);
    dp.stop();
}

#[test]
fn one_worker_forwards() {
    forwards_between_vlans_and_tags(1);
}

#[test]
fn two_workers_forward_across_owners() {
    forwards_between_vlans_and_tags(2);
}

/// After a MAC is learned on worker 1's port, worker 0 forwards to it as known unicast
/// (no flood) within a bounded number of bursts.
#[test]
fn learning_converges_across_workers() {
    let (dp, ports) = start(2);
    // Host B (mac 2) on p1 (worker 1) speaks once.
    ports[1]
        .wire_in
        .push(frame(MacAddr::BROADCAST, mac(2), None, 0))
        .expect("push");
    assert_eq!(collect(&ports[0], 1).len(), 1);
    collect(&ports[2], 1);
    // Worker 0 (p0) must learn it from worker 1's update within a few bursts.
    let deadline = Instant::now() + T;
    let mut converged_after = None;
    for seq in 1..=1000u32 {
        ports[0]
            .wire_in
            .push(frame(mac(2), mac(1), None, seq))
            .expect("push");
        let got = collect(&ports[1], 1);
        assert_eq!(got.len(), 1, "frame {seq} lost");
        dp.sync(T).expect("sync");
        let flooded = ports[2].drain();
        if flooded.is_empty() {
            converged_after = Some(seq);
            break;
        }
        assert!(Instant::now() < deadline);
    }
    let n = converged_after.expect("worker 0 never learned mac 2");
    assert!(n <= 3, "converged only after {n} frames");
    let snaps = dp.snapshot(true, T).expect("snapshot");
    for s in &snaps {
        assert!(
            s.fdb_entries
                .iter()
                .any(|e| e.mac == mac(2) && e.port == pid(1)),
            "worker {} replica lacks mac 2",
            s.stats.id
        );
    }
    assert!(snaps[1].stats.fdb_updates_sent >= 1);
    assert!(snaps[0].stats.fdb_updates_applied >= 1);
    dp.stop();
}

/// Changing one port's VLAN while two others exchange traffic loses none of their frames.
#[test]
fn config_change_while_forwarding_loses_nothing_elsewhere() {
    let (mut dp, ports) = start(2);
    // Learn both ends.
    ports[0]
        .wire_in
        .push(frame(MacAddr::BROADCAST, mac(1), None, 0))
        .expect("push");
    ports[1]
        .wire_in
        .push(frame(MacAddr::BROADCAST, mac(2), None, 0))
        .expect("push");
    collect(&ports[1], 1);
    collect(&ports[0], 1);
    dp.sync(T).expect("sync");
    for p in &ports {
        p.drain();
    }
    let total = 20_000u32;
    let mut sent = 0u32;
    let mut flips = 0;
    let mut received = Vec::new();
    while sent < total {
        for _ in 0..500 {
            if ports[0]
                .wire_in
                .push(frame(mac(2), mac(1), None, sent))
                .is_ok()
            {
                sent += 1;
            }
        }
        // Flip p3 between access 200 and access 300 (it carries no traffic here).
        let mut b = crate::topology::TopologyBuilder::from_topology(&dp.topology());
        let vlan = if flips % 2 == 0 {
            "access 300"
        } else {
            "access 200"
        };
        b.set_port(3, PortConfig::new("p3", vlan.parse().expect("vlan")))
            .expect("set");
        dp.set_topology(b.build()).expect("topology");
        flips += 1;
        // Pace the sender to the receiver (the lanes and rings are finite; this test is
        // about configuration changes, not overload).
        received.extend(collect(&ports[1], sent as usize - received.len()));
    }
    received.extend(collect(&ports[1], total as usize - received.len()));
    assert_eq!(
        received.len(),
        total as usize,
        "frames lost during {flips} config changes"
    );
    for (i, f) in received.iter().enumerate() {
        let v = EthernetFrame::new_checked(&f[..]).expect("frame");
        assert_eq!(
            &v.payload()[..4],
            &(i as u32).to_be_bytes(),
            "order/duplication at {i}"
        );
    }
    let snaps = dp.snapshot(false, T).expect("snapshot");
    let gen = dp.topology().generation();
    assert!(
        snaps.iter().all(|s| s.generation == gen),
        "a worker runs an old snapshot"
    );
    dp.stop();
}

#[test]
fn detach_and_bad_requests_are_specific_errors() {
    let (mut dp, ports) = start(1);
    let (rx, tx) = QueuePort::new().halves();
    assert!(matches!(
        dp.attach_port(pid(9), vec![rx], tx, None),
        Err(DatapathError::NoSuchPort(p)) if p == pid(9)
    ));
    let (rx, tx) = QueuePort::new().halves();
    assert!(matches!(
        dp.attach_port(pid(0), vec![rx], tx, Some(5)),
        Err(DatapathError::NoSuchWorker(5, 1))
    ));
    dp.detach_port(pid(1)).expect("detach");
    ports[0]
        .wire_in
        .push(frame(MacAddr::BROADCAST, mac(1), None, 0))
        .expect("push");
    assert_eq!(collect(&ports[2], 1).len(), 1);
    dp.sync(T).expect("sync");
    assert!(ports[1].drain().is_empty(), "detached port transmitted");
    let err = Datapath::start(
        DatapathConfig {
            workers: 0,
            ..DatapathConfig::default()
        },
        topo(),
    )
    .expect_err("zero workers");
    assert_eq!(
        err.to_string(),
        "invalid datapath configuration: workers must be 1-64, not 0"
    );
    dp.stop();
}

#[test]
fn fdb_operations_reach_every_replica() {
    let (dp, ports) = start(2);
    dp.fdb(
        FdbOp::AddStatic {
            vid: 100,
            mac: mac(9),
            port: pid(1),
        },
        T,
    )
    .expect("static");
    ports[0]
        .wire_in
        .push(frame(mac(9), mac(1), None, 1))
        .expect("push");
    assert_eq!(collect(&ports[1], 1).len(), 1);
    dp.sync(T).expect("sync");
    assert!(
        ports[2].drain().is_empty(),
        "static entry not used: flooded"
    );
    let snaps = dp.snapshot(true, T).expect("snapshot");
    for s in &snaps {
        assert_eq!(s.fdb.static_entries, 1);
    }
    let merged = merge_fdb(&snaps);
    assert!(merged.iter().any(|e| e.mac == mac(9) && e.is_static));
    assert_eq!(
        dp.fdb(
            FdbOp::AddStatic {
                vid: 100,
                mac: MacAddr::BROADCAST,
                port: pid(1)
            },
            T
        )
        .expect_err("group address")
        .to_string(),
        "ff:ff:ff:ff:ff:ff is not a unicast address; static entries must be unicast and non-zero"
    );
    dp.stop();
}

#[test]
fn kernel_drops_become_rx_and_tx_ring_full_counters() {
    let (dp, ports) = start(1);
    let drops = |reason: crate::counters::DropReason| {
        dp.port_counters(T)
            .expect("counters")
            .iter()
            .find(|(p, _)| *p == pid(0))
            .map(|(_, c)| c.drops(reason))
            .expect("port 0")
    };
    let rx = crate::counters::DropReason::RxRingFull;
    let tx = crate::counters::DropReason::TxRingFull;
    ports[0]
        .drops
        .store(1234, std::sync::atomic::Ordering::Relaxed);
    ports[0]
        .tx_drops
        .store(56, std::sync::atomic::Ordering::Relaxed);
    let deadline = Instant::now() + T;
    while (drops(rx), drops(tx)) != (1234, 56) {
        assert!(
            Instant::now() < deadline,
            "rx_ring_full {} and tx_ring_full {}, expected 1234 and 56",
            drops(rx),
            drops(tx)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Cumulative: only the increase is added.
    ports[0]
        .drops
        .store(1300, std::sync::atomic::Ordering::Relaxed);
    ports[0]
        .tx_drops
        .store(60, std::sync::atomic::Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!((drops(rx), drops(tx)), (1300, 60));
    dp.stop();
}

/// Frames the port's XDP program dropped because their queue has no socket become the
/// port's `no_socket` drops (only the increase of the program's running total).
#[test]
fn xdp_no_socket_drops_become_a_drop_reason() {
    let (dp, ports) = start(1);
    let no_socket = || {
        dp.port_counters(T)
            .expect("counters")
            .iter()
            .find(|(p, _)| *p == pid(1))
            .map(|(_, c)| c.drops(crate::counters::DropReason::NoSocket))
            .expect("port 1")
    };
    let set = |n| {
        ports[1]
            .no_socket
            .store(n, std::sync::atomic::Ordering::Relaxed)
    };
    set(7);
    let deadline = Instant::now() + T;
    while no_socket() != 7 {
        assert!(Instant::now() < deadline, "no_socket {}", no_socket());
        std::thread::sleep(Duration::from_millis(20));
    }
    set(10);
    while no_socket() != 10 {
        assert!(Instant::now() < deadline, "no_socket {}", no_socket());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(no_socket(), 10);
    dp.stop();
}

/// A transmit half that takes `delay` per burst (a slow device or a busy peer CPU).
struct SlowTx {
    inner: QueueTx,
    delay: Duration,
}

impl TxPort for SlowTx {
    fn tx_burst(
        &mut self,
        frames: &[&[u8]],
        _offloads: &[crate::offload::Offload],
        items: &[TxItem],
    ) -> TxDone {
        std::thread::sleep(self.delay);
        self.inner.tx_burst(frames, _offloads, items)
    }
    fn flush(&mut self) {}
}

/// A worker handing frames to a slower worker waits for lane buffers instead of dropping:
/// 5000 frames into a 64-buffer lane whose consumer drains at most 32 per 200 us all
/// arrive, in order, and no handoff meets a full lane. The wait bound is raised to 10 s
/// so that a test machine busy enough to stretch a 200 us sleep past the default 5 ms
/// does not turn backpressure into drops (what the bound is for).
#[test]
fn handoffs_wait_for_lane_buffers_instead_of_dropping() {
    let cfg = DatapathConfig {
        workers: 2,
        burst: 32,
        lane_buffers: 64,
        lane_wait_max: Duration::from_secs(10),
        idle_sleep: Duration::from_micros(20),
        idle_polls: 64,
        ..DatapathConfig::default()
    };
    let mut dp = Datapath::start(cfg, topo()).expect("start");
    let ports: Vec<QueuePort> = (0..2).map(|_| QueuePort::new()).collect();
    let (rx0, tx0) = ports[0].halves();
    dp.attach_port(pid(0), vec![rx0], tx0, Some(0))
        .expect("attach p0");
    let rx1 = ports[1].halves().0;
    let slow = SlowTx {
        inner: QueueTx {
            q: ports[1].wire_out.clone(),
        },
        delay: Duration::from_micros(200),
    };
    dp.attach_port(pid(1), vec![rx1], Box::new(slow), Some(1))
        .expect("attach p1");
    dp.sync(T).expect("sync");
    // Host 2 behind p1 speaks once, so frames to it are known unicast to worker 1's port.
    ports[1]
        .wire_in
        .push(frame(MacAddr::BROADCAST, mac(2), None, 0))
        .expect("push");
    assert_eq!(collect(&ports[0], 1).len(), 1);
    dp.sync(T).expect("sync");

    let n = 5000u32;
    for seq in 1..=n {
        ports[0]
            .wire_in
            .push(frame(mac(2), mac(1), None, seq))
            .expect("push");
    }
    let got = collect(&ports[1], n as usize);
    assert_eq!(
        got.len(),
        n as usize,
        "frames delivered behind the slow worker"
    );
    for (i, f) in got.iter().enumerate() {
        let seq = u32::from_be_bytes(f[14..18].try_into().expect("seq"));
        assert_eq!(seq, i as u32 + 1, "frame {i} out of order");
    }
    let snaps = dp.snapshot(false, T).expect("snapshot");
    assert_eq!(
        snaps[0].stats.handoff_full, 0,
        "handoffs that met a full lane"
    );
    assert_eq!(snaps[0].stats.handoff_out, u64::from(n));
    assert!(
        snaps[0].stats.lane_waits > 0,
        "worker 0 never had to wait (the test did not exercise backpressure)"
    );
    dp.stop();
}
