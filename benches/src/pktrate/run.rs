//! One measured case: set up the path (direct, bridge, switch), run the generator, read
//! the counters over a steady-state window, tear the path down.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use datapath::fastpath::XdpProgram;
use datapath::port::{AfXdpConfig, AfXdpPort, SharedProgram, XdpMode};
use datapath::topology::{PortConfig, PortId, Topology};
use datapath::vlan::PortVlan;
use datapath::wire::MacAddr;
use datapath::worker::{Datapath, DatapathConfig, FdbOp, PollMode, WorkerSnapshot};

use super::cpu::{CpuShare, CpuStat, ThreadDelta, ThreadTimes};
use super::frames::DST_MAC;
use super::gen::{GenConfig, Generator};
use super::lab::{DevStats, Lab};

pub use vswitch_benches::harness::{sleep_checked, INTERRUPTED};

/// The VLAN of the switch cases.
pub const VID: u16 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Case {
    /// Generator veth peer directly in the sink namespace (the generator's ceiling).
    Direct,
    /// Linux bridge (VLAN-unaware) between the generator-side and sink-side veths.
    Bridge,
    /// vswitch: generator on an access 100 port, sink on a trunk 100 port (push).
    SwitchAccessTrunk,
    /// vswitch: tagged VID 100 into the trunk port, sink on the access port (pop).
    SwitchTrunkAccess,
    /// As `switch-access-trunk` with the XDP fast path on (known unicast forwarded in
    /// the kernel by vswitch's XDP program; the worker sees only the first frames).
    SwitchXdpAccessTrunk,
    /// As `switch-trunk-access` with the XDP fast path on.
    SwitchXdpTrunkAccess,
}

impl Case {
    pub const ALL: [Case; 6] = [
        Case::Direct,
        Case::Bridge,
        Case::SwitchAccessTrunk,
        Case::SwitchTrunkAccess,
        Case::SwitchXdpAccessTrunk,
        Case::SwitchXdpTrunkAccess,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Case::Direct => "direct",
            Case::Bridge => "bridge",
            Case::SwitchAccessTrunk => "switch-access-trunk",
            Case::SwitchTrunkAccess => "switch-trunk-access",
            Case::SwitchXdpAccessTrunk => "switch-xdp-access-trunk",
            Case::SwitchXdpTrunkAccess => "switch-xdp-trunk-access",
        }
    }
    pub fn is_switch(self) -> bool {
        !matches!(self, Case::Direct | Case::Bridge)
    }
    /// A switch case with the XDP fast path on.
    pub fn is_fast(self) -> bool {
        matches!(
            self,
            Case::SwitchXdpAccessTrunk | Case::SwitchXdpTrunkAccess
        )
    }
    /// VLAN tag of the frames the generator sends in this case.
    fn gen_vid(self) -> Option<u16> {
        matches!(self, Case::SwitchTrunkAccess | Case::SwitchXdpTrunkAccess).then_some(VID)
    }
}

/// Measurement parameters.
#[derive(Debug, Clone)]
pub struct Params {
    /// The harness binary (runs the generator role in the generator namespace).
    pub exe: std::path::PathBuf,
    pub seconds: f64,
    pub warmup: f64,
    /// CPU of the switch worker.
    pub cpu: usize,
    /// CPU of the generator thread.
    pub gen_cpu: usize,
    /// Generator pacing (frames/s); `None`: flat out.
    pub rate: Option<f64>,
    pub burst: usize,
    /// Worker never sleeps when idle (pure PMD) instead of the default idle back-off.
    pub spin: bool,
    /// XDP attach mode of the switch ports.
    pub xdp_mode: XdpMode,
}

/// The switch worker's share of one window.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WorkerSample {
    pub packets: u64,
    pub avg_burst: f64,
    /// busy_ns / (busy_ns + idle_ns) of the worker loop.
    pub busy_ratio: f64,
    /// Loop time of busy iterations per packet (wall clock, includes syscalls).
    pub busy_ns_per_pkt: f64,
    /// On-CPU time of the worker thread (schedstat, user + kernel) per packet.
    pub cpu_ns_per_pkt: f64,
    pub thread: ThreadDelta,
    /// Switch port counters over the window.
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub drops: u64,
}

/// One measured window.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sample {
    pub case: Case,
    pub repeat: usize,
    pub seconds: f64,
    /// Frames per second the generator's veth transmitted or dropped (kernel counters).
    pub offered_pps: f64,
    /// Frames counted by the sink veth per second.
    pub delivered_pps: f64,
    pub loss_pct: f64,
    /// Generator veth: frames the veth could not hand to its peer (peer ring/backlog full).
    pub gen_if: DevStats,
    pub sink_if: DevStats,
    /// Generator thread on-CPU time per offered frame (user + kernel, incl. softirq work
    /// the kernel does in its sendto).
    pub gen_cpu_ns_per_pkt: f64,
    pub gen_thread: ThreadDelta,
    /// All CPUs' busy time (user+sys+irq+softirq, jiffies) per delivered frame: whole
    /// machine, including other tenants' load.
    pub machine_cpu_ns_per_pkt: f64,
    pub cpus: Vec<CpuShare>,
    pub worker: Option<WorkerSample>,
    pub generator_mode: String,
    /// One-way cache-line transfer time between the generator's CPU and the worker's, in
    /// ns, measured just before the generator started and just after it stopped
    /// ([`super::xfer`]).
    pub xfer_ns: [f64; 2],
}

/// A running vswitch between the two middle veth ends.
#[derive(Debug)]
pub struct Switch {
    pub dp: Datapath,
    pub tid: Option<u64>,
    pub gen_port: PortId,
    pub sink_port: PortId,
}

fn vlan(s: &str) -> anyhow::Result<PortVlan> {
    s.parse::<PortVlan>()
        .map_err(|e| anyhow::anyhow!("port vlan '{s}': {e:?}"))
}

impl Switch {
    /// Starts one pinned worker with the generator-side port (id 0) and the sink-side port
    /// (id 1), both AF_XDP, and a static FDB entry for the destination MAC.
    pub fn start(lab: &Lab, case: Case, p: &Params) -> anyhow::Result<Switch> {
        let (gv, sv) = match case {
            Case::SwitchTrunkAccess | Case::SwitchXdpTrunkAccess => ("trunk 100", "access 100"),
            _ => ("access 100", "trunk 100"),
        };
        let topo = Topology::builder()
            .port(0, PortConfig::new(lab.gen_mid(), vlan(gv)?))
            .context("topology")?
            .port(1, PortConfig::new(lab.sink_mid(), vlan(sv)?))
            .context("topology")?
            .build();
        let gen_port = PortId::new(0).context("port id")?;
        let sink_port = PortId::new(1).context("port id")?;
        let mut cfg = DatapathConfig {
            workers: 1,
            cpus: vec![p.cpu],
            burst: p.burst,
            ..DatapathConfig::default()
        };
        if p.spin {
            cfg.poll.mode = PollMode::Spin;
        }
        let program = if case.is_fast() {
            Some(SharedProgram(
                XdpProgram::new(true, cfg.fdb.capacity).context("load XDP program")?,
            ))
        } else {
            None
        };
        cfg.xdp = program.clone();
        let mut dp = Datapath::start(cfg, topo).context("start datapath")?;
        let port_cfg = |ifname: &str| {
            let mut c = AfXdpConfig::new(ifname);
            c.program = program.clone();
            c.mode = p.xdp_mode;
            c
        };
        let g = AfXdpPort::open(&port_cfg(lab.gen_mid()))
            .context("open switch port (generator side)")?;
        let s =
            AfXdpPort::open(&port_cfg(lab.sink_mid())).context("open switch port (sink side)")?;
        for (id, port) in [(gen_port, g), (sink_port, s)] {
            let (rx, tx) = port.split();
            dp.attach_port(id, vec![Box::new(rx)], Box::new(tx), Some(0))
                .context("attach port")?;
        }
        dp.fdb(
            FdbOp::AddStatic {
                vid: VID,
                mac: MacAddr(DST_MAC),
                port: sink_port,
            },
            Duration::from_secs(2),
        )
        .context("static FDB entry")?;
        dp.sync(Duration::from_secs(2)).context("sync")?;
        Ok(Switch {
            dp,
            tid: super::cpu::find_thread("pmd0"),
            gen_port,
            sink_port,
        })
    }

    fn snapshot(&self) -> anyhow::Result<WorkerSnapshot> {
        self.dp
            .snapshot(false, Duration::from_secs(2))
            .context("worker snapshot")?
            .into_iter()
            .next()
            .context("no worker")
    }
}

/// Counters read at one instant.
struct Point {
    at: Instant,
    gen_if: DevStats,
    sink_if: DevStats,
    gen_thread: Option<ThreadTimes>,
    worker: Option<(WorkerSnapshot, Option<ThreadTimes>)>,
    cpu: CpuStat,
}

/// The path of one case: where the generator transmits and where the sink counts.
pub struct Path<'a> {
    lab: &'a Lab,
    case: Case,
    pub switch: Option<Switch>,
}

impl std::fmt::Debug for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Path").field("case", &self.case).finish()
    }
}

impl<'a> Path<'a> {
    pub fn up(lab: &'a Lab, case: Case, p: &Params) -> anyhow::Result<Path<'a>> {
        let mut path = Path {
            lab,
            case,
            switch: None,
        };
        match case {
            Case::Direct => {}
            Case::Bridge => lab.bridge_up(DST_MAC)?,
            _ => {
                path.switch = Some(Switch::start(lab, case, p)?);
            }
        }
        Ok(path)
    }
    pub fn gen_if(&self) -> &str {
        match self.case {
            Case::Direct => self.lab.direct_gen(),
            _ => self.lab.gen_if(),
        }
    }
    pub fn sink_if(&self) -> &str {
        match self.case {
            Case::Direct => self.lab.direct_sink(),
            _ => self.lab.sink_if(),
        }
    }
    pub fn sink_stats(&self) -> anyhow::Result<DevStats> {
        super::lab::dev_stats(&self.lab.sink, self.sink_if())
    }
    pub fn gen_stats(&self) -> anyhow::Result<DevStats> {
        super::lab::dev_stats(&self.lab.gen, self.gen_if())
    }
    pub fn generator(&self, p: &Params, rate: Option<f64>) -> anyhow::Result<Generator> {
        Generator::start(&GenConfig {
            exe: p.exe.clone(),
            netns: self.lab.gen.name().to_owned(),
            ifname: self.gen_if().to_owned(),
            vid: self.case.gen_vid(),
            cpu: Some(p.gen_cpu),
            rate_pps: rate,
        })
    }

    fn point(&self, gen: &Generator) -> anyhow::Result<Point> {
        let worker = match &self.switch {
            Some(s) => Some((s.snapshot()?, s.tid.and_then(|t| ThreadTimes::read(t).ok()))),
            None => None,
        };
        let cpu = CpuStat::read()?;
        let at = Instant::now();
        let sink_if = self.sink_stats()?;
        let gen_if = self.gen_stats()?;
        Ok(Point {
            at,
            gen_if,
            sink_if,
            gen_thread: ThreadTimes::read_task(gen.pid(), gen.pid()).ok(),
            worker,
            cpu,
        })
    }

    /// Tears the path down (bridge: ports leave it; switch: stops the worker, which
    /// detaches the AF_XDP sockets).
    pub fn down(mut self) -> anyhow::Result<()> {
        if let Some(s) = self.switch.take() {
            s.dp.stop();
        }
        if self.case == Case::Bridge {
            self.lab.bridge_down()?;
        }
        Ok(())
    }
}

/// Drops between two snapshots, by reason, over all ports: `reason=n` joined by spaces.
fn drop_reasons(a: &WorkerSnapshot, b: &WorkerSnapshot) -> String {
    let mut out = Vec::new();
    for r in datapath::counters::DropReason::ALL {
        let sum = |s: &WorkerSnapshot| -> u64 { s.counters.iter().map(|(_, c)| c.drops(*r)).sum() };
        let n = sum(b).saturating_sub(sum(a));
        if n > 0 {
            out.push(format!("{}={n}", r.name()));
        }
    }
    if out.is_empty() {
        "none".to_owned()
    } else {
        out.join(" ")
    }
}

fn port_totals(s: &WorkerSnapshot, port: PortId) -> (u64, u64, u64) {
    s.counters
        .iter()
        .find(|(p, _)| *p == port)
        .map(|(_, c)| (c.rx_packets, c.tx_packets, c.total_drops()))
        .unwrap_or_default()
}

/// Measures one case once.
pub fn measure(lab: &Lab, case: Case, repeat: usize, p: &Params) -> anyhow::Result<Sample> {
    let path = Path::up(lab, case, p)?;
    let result = measure_on(&path, case, repeat, p);
    let down = path.down();
    let sample = result?;
    down?;
    Ok(sample)
}

fn measure_on(path: &Path, case: Case, repeat: usize, p: &Params) -> anyhow::Result<Sample> {
    let xfer = || super::xfer::line_transfer_ns(p.gen_cpu, p.cpu, super::xfer::ROUND_TRIPS);
    let xfer_before = xfer().context("cross-CPU line transfer before the window")?;
    let gen = path.generator(p, p.rate)?;
    sleep_checked(p.warmup)?;
    let a = path.point(&gen)?;
    sleep_checked(p.seconds)?;
    let b = path.point(&gen)?;
    let mode = gen.mode.clone();
    gen.stop()?;
    let xfer_after = xfer().context("cross-CPU line transfer after the window")?;

    let secs = b.at.duration_since(a.at).as_secs_f64();
    let gen_if = b.gen_if.since(&a.gen_if);
    // What left the generator's veth: handed to the peer, or dropped because the peer's
    // ring/backlog was full (that loss is the path's, not the generator's).
    let offered = gen_if.tx_packets + gen_if.tx_dropped;
    let sink_if = b.sink_if.since(&a.sink_if);
    let delivered = sink_if.rx_packets;
    let loss_pct = if offered == 0 {
        0.0
    } else {
        (offered as f64 - delivered as f64) / offered as f64 * 100.0
    };
    let cpus = b.cpu.since(&a.cpu);
    let machine_ns: f64 = cpus.iter().map(|c| c.busy_ns).sum();
    let gen_thread = match (&a.gen_thread, &b.gen_thread) {
        (Some(x), Some(y)) => y.since(x),
        _ => ThreadDelta::default(),
    };
    let worker = match (&a.worker, &b.worker, &path.switch) {
        (Some((wa, ta)), Some((wb, tb)), Some(sw)) => {
            let packets = wb.stats.packets.saturating_sub(wa.stats.packets);
            let bursts = wb.stats.bursts.saturating_sub(wa.stats.bursts);
            let busy = wb.stats.busy_ns.saturating_sub(wa.stats.busy_ns);
            let idle = wb.stats.idle_ns.saturating_sub(wa.stats.idle_ns);
            let thread = match (ta, tb) {
                (Some(x), Some(y)) => y.since(x),
                _ => ThreadDelta::default(),
            };
            let (rx0, _, d0) = port_totals(wa, sw.gen_port);
            let (rx1, _, d1) = port_totals(wb, sw.gen_port);
            let (_, tx0, e0) = port_totals(wa, sw.sink_port);
            let (_, tx1, e1) = port_totals(wb, sw.sink_port);
            Some(WorkerSample {
                packets,
                avg_burst: per(packets, bursts),
                busy_ratio: per(busy, busy + idle),
                busy_ns_per_pkt: per(busy, packets),
                cpu_ns_per_pkt: per(thread.run_ns, packets),
                thread,
                rx_packets: rx1.saturating_sub(rx0),
                tx_packets: tx1.saturating_sub(tx0),
                drops: (d1 + e1).saturating_sub(d0 + e0),
            })
        }
        _ => None,
    };
    Ok(Sample {
        case,
        repeat,
        seconds: secs,
        offered_pps: offered as f64 / secs,
        delivered_pps: delivered as f64 / secs,
        loss_pct,
        gen_if,
        sink_if,
        gen_cpu_ns_per_pkt: per(gen_thread.run_ns, offered),
        gen_thread,
        machine_cpu_ns_per_pkt: if delivered == 0 {
            0.0
        } else {
            machine_ns / delivered as f64
        },
        cpus,
        worker,
        generator_mode: mode,
        xfer_ns: [xfer_before, xfer_after],
    })
}

fn per(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Result of the zero-loss check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ZeroLoss {
    pub case: Case,
    pub target_pps: f64,
    pub seconds: f64,
    /// Frames the generator's kernel took.
    pub sent: u64,
    /// Frames left in the generator's TX ring at the end (not counted as sent).
    pub undrained: u64,
    /// Frames counted by the sink veth.
    pub delivered: u64,
    pub lost: u64,
    /// Frames of the generator's schedule it never sent (it fell more than 1 ms behind).
    /// With the generator's veth queue a path that cannot keep up pushes back instead of
    /// dropping, so the check also requires the schedule to have been held.
    pub skipped: u64,
    pub achieved_pps: f64,
    /// Where frames went missing: dropped by the generator veth (peer ring full), received
    /// by the switch port, transmitted by the switch port, switch drops.
    pub gen_if_tx_dropped: u64,
    pub switch_rx: u64,
    pub switch_tx: u64,
    pub switch_drops: u64,
    /// The switch's drops over the run by reason (both ports), e.g. `tx_ring_full=12`.
    pub switch_drop_reasons: String,
    pub worker_busy_ratio: f64,
}

/// Share of its schedule the generator must have sent for a zero-loss run to pass.
pub const MIN_SCHEDULE_HELD: f64 = 0.99;

impl ZeroLoss {
    /// Sent frames over the frames the schedule asked for.
    pub fn schedule_held(&self) -> f64 {
        let due = self.sent + self.skipped;
        if due == 0 {
            0.0
        } else {
            self.sent as f64 / due as f64
        }
    }
    /// No frame lost, and the path took the offered rate (did not throttle the generator
    /// by pushing back).
    pub fn passed(&self) -> bool {
        self.sent > 0 && self.lost == 0 && self.schedule_held() >= MIN_SCHEDULE_HELD
    }
}

/// Runs the switch case paced at `rate` for `seconds` and counts every frame.
pub fn zero_loss(
    lab: &Lab,
    case: Case,
    rate: f64,
    seconds: f64,
    p: &Params,
) -> anyhow::Result<ZeroLoss> {
    let path = Path::up(lab, case, p)?;
    let r = zero_loss_on(&path, case, rate, seconds, p);
    let down = path.down();
    let z = r?;
    down?;
    Ok(z)
}

fn zero_loss_on(
    path: &Path,
    case: Case,
    rate: f64,
    seconds: f64,
    p: &Params,
) -> anyhow::Result<ZeroLoss> {
    let sw = path
        .switch
        .as_ref()
        .context("zero-loss check needs a switch case")?;
    let sink0 = path.sink_stats()?;
    let gen0 = path.gen_stats()?;
    let w0 = sw.snapshot()?;
    let t0 = Instant::now();
    let gen = path.generator(p, Some(rate))?;
    if INTERRUPTED.load(Ordering::Relaxed) {
        anyhow::bail!("interrupted");
    }
    let slept = sleep_checked(seconds);
    let summary = gen.stop()?;
    let elapsed = t0.elapsed().as_secs_f64();
    slept?;
    // Let the last frames cross (switch RX ring -> TX ring -> sink).
    std::thread::sleep(Duration::from_millis(500));
    let w1 = sw.snapshot()?;
    let sink = path.sink_stats()?.since(&sink0);
    let gen_if = path.gen_stats()?.since(&gen0);
    let (rx0, _, d0) = port_totals(&w0, sw.gen_port);
    let (rx1, _, d1) = port_totals(&w1, sw.gen_port);
    let (_, tx0, e0) = port_totals(&w0, sw.sink_port);
    let (_, tx1, e1) = port_totals(&w1, sw.sink_port);
    let busy = w1.stats.busy_ns.saturating_sub(w0.stats.busy_ns);
    let idle = w1.stats.idle_ns.saturating_sub(w0.stats.idle_ns);
    Ok(ZeroLoss {
        case,
        target_pps: rate,
        seconds: elapsed,
        sent: summary.sent,
        undrained: summary.undrained,
        delivered: sink.rx_packets,
        lost: summary.sent.saturating_sub(sink.rx_packets),
        skipped: summary.skipped,
        achieved_pps: sink.rx_packets as f64 / elapsed,
        gen_if_tx_dropped: gen_if.tx_dropped,
        switch_rx: rx1.saturating_sub(rx0),
        switch_tx: tx1.saturating_sub(tx0),
        switch_drops: (d1 + e1).saturating_sub(d0 + e0),
        switch_drop_reasons: drop_reasons(&w0, &w1),
        worker_busy_ratio: per(busy, busy + idle),
    })
}
