//! Medians over repeats, the readable table and the JSON document.

use std::fmt::Write as _;

use super::run::{Case, Sample, ZeroLoss, MIN_SCHEDULE_HELD};

pub use vswitch_benches::harness::median;

/// Medians of one case over its repeats.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub case: Case,
    pub runs: usize,
    pub offered_mpps: f64,
    pub delivered_mpps: f64,
    pub delivered_mpps_min: f64,
    pub delivered_mpps_max: f64,
    pub loss_pct: f64,
    pub gen_cpu_ns_per_pkt: f64,
    pub machine_cpu_ns_per_pkt: f64,
    /// Switch cases only.
    pub worker_busy_ratio: Option<f64>,
    pub worker_busy_ns_per_pkt: Option<f64>,
    pub worker_cpu_ns_per_pkt: Option<f64>,
    pub worker_sys_share: Option<f64>,
    pub worker_avg_burst: Option<f64>,
}

pub fn summarize(samples: &[Sample], case: Case) -> Option<Summary> {
    let s: Vec<&Sample> = samples.iter().filter(|x| x.case == case).collect();
    if s.is_empty() {
        return None;
    }
    let m = |f: &dyn Fn(&Sample) -> f64| median(s.iter().map(|x| f(x)).collect());
    let w: Vec<_> = s.iter().filter_map(|x| x.worker.as_ref()).collect();
    let wm = |f: &dyn Fn(&super::run::WorkerSample) -> f64| {
        (!w.is_empty()).then(|| median(w.iter().map(|x| f(x)).collect()))
    };
    let d: Vec<f64> = s.iter().map(|x| x.delivered_pps / 1e6).collect();
    Some(Summary {
        case,
        runs: s.len(),
        offered_mpps: m(&|x| x.offered_pps / 1e6),
        delivered_mpps: median(d.clone()),
        delivered_mpps_min: d.iter().copied().fold(f64::INFINITY, f64::min),
        delivered_mpps_max: d.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        loss_pct: m(&|x| x.loss_pct),
        gen_cpu_ns_per_pkt: m(&|x| x.gen_cpu_ns_per_pkt),
        machine_cpu_ns_per_pkt: m(&|x| x.machine_cpu_ns_per_pkt),
        worker_busy_ratio: wm(&|x| x.busy_ratio),
        worker_busy_ns_per_pkt: wm(&|x| x.busy_ns_per_pkt),
        worker_cpu_ns_per_pkt: wm(&|x| x.cpu_ns_per_pkt),
        worker_sys_share: wm(&|x| x.thread.sys_share),
        worker_avg_burst: wm(&|x| x.avg_burst),
    })
}

/// Delivered-rate ratios of the switch cases against the baselines.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ratio {
    pub case: Case,
    /// Ratio of the medians.
    pub over_bridge: Option<f64>,
    pub over_direct: Option<f64>,
    /// Paired: the ratio within each round (a round measures every case back to back,
    /// so a machine that slows down for a while slows all cases of that round), the
    /// median over rounds.
    pub paired_over_bridge: Option<Spread>,
    pub paired_over_direct: Option<Spread>,
    /// The paired ratios of the rounds whose window of this case was near, and far
    /// ([`Distance`]).
    pub near: Pair,
    pub far: Pair,
}

/// Paired ratios over bridge and direct of a set of rounds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Pair {
    /// Rounds in the set (windows of the case measured near, or far).
    pub rounds: usize,
    pub over_bridge: Option<Spread>,
    pub over_direct: Option<Spread>,
}

/// How far apart the generator's CPU and the worker's were ([`super::xfer`]). Only the
/// switch cases hand frames from one CPU to the other (the baselines run on the
/// generator's CPU), so a paired ratio is near or far by its switch window: *far* when
/// either transfer measurement around it (before, after) is above `far_ns`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Distance {
    pub far_ns: f64,
    /// All transfer measurements (two per window).
    pub xfer_ns: Option<Spread>,
}

impl Distance {
    pub fn of(samples: &[Sample], far_ns: f64) -> Distance {
        Distance {
            far_ns,
            xfer_ns: Spread::of(samples.iter().flat_map(|s| s.xfer_ns).collect()),
        }
    }

    pub fn is_far(&self, s: &Sample) -> bool {
        s.xfer_ns.iter().any(|x| *x > self.far_ns)
    }
}

/// Median, minimum and maximum of a set of values.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    fn of(v: Vec<f64>) -> Option<Spread> {
        if v.is_empty() {
            return None;
        }
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Spread {
            median: median(v),
            min,
            max,
        })
    }
}

/// Per-round ratios of `case` over `base`: rounds where both were measured.
fn paired(samples: &[Sample], case: Case, base: Case) -> Option<Spread> {
    paired_in(samples, case, base, |_| true)
}

/// As [`paired`], over the rounds `keep` accepts.
fn paired_in(
    samples: &[Sample],
    case: Case,
    base: Case,
    keep: impl Fn(usize) -> bool,
) -> Option<Spread> {
    let rate = |c: Case, r: usize| {
        samples
            .iter()
            .find(|s| s.case == c && s.repeat == r)
            .map(|s| s.delivered_pps)
    };
    let rounds = samples.iter().map(|s| s.repeat).max().map_or(0, |m| m + 1);
    let v: Vec<f64> = (0..rounds)
        .filter(|r| keep(*r))
        .filter_map(|r| Some(rate(case, r)? / rate(base, r)?))
        .filter(|x| x.is_finite())
        .collect();
    Spread::of(v)
}

pub fn ratios(sums: &[Summary], samples: &[Sample], dist: &Distance) -> Vec<Ratio> {
    let get = |c: Case| sums.iter().find(|s| s.case == c).map(|s| s.delivered_mpps);
    let pair = |case: Case, far: bool| {
        let rounds: Vec<usize> = samples
            .iter()
            .filter(|s| s.case == case && dist.is_far(s) == far)
            .map(|s| s.repeat)
            .collect();
        Pair {
            rounds: rounds.len(),
            over_bridge: paired_in(samples, case, Case::Bridge, |r| rounds.contains(&r)),
            over_direct: paired_in(samples, case, Case::Direct, |r| rounds.contains(&r)),
        }
    };
    sums.iter()
        .filter(|s| s.case.is_switch())
        .map(|s| Ratio {
            case: s.case,
            over_bridge: get(Case::Bridge).map(|b| s.delivered_mpps / b),
            over_direct: get(Case::Direct).map(|d| s.delivered_mpps / d),
            paired_over_bridge: paired(samples, s.case, Case::Bridge),
            paired_over_direct: paired(samples, s.case, Case::Direct),
            near: pair(s.case, false),
            far: pair(s.case, true),
        })
        .collect()
}

fn opt(v: Option<f64>, prec: usize) -> String {
    match v {
        Some(x) => format!("{x:.prec$}"),
        None => "-".into(),
    }
}

pub fn table(
    samples: &[Sample],
    sums: &[Summary],
    rs: &[Ratio],
    dist: &Distance,
    zl: &[ZeroLoss],
) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "\nPer run:");
    let _ = writeln!(
        o,
        "{:<20} {:>3} {:>9} {:>9} {:>7} {:>6} {:>8} {:>8} {:>8} {:>9}  cpu busy (per CPU: usr/sys/si)",
        "case",
        "rep",
        "off Mpps",
        "dlv Mpps",
        "loss%",
        "busy",
        "wrk ns/p",
        "gen ns/p",
        "sys ns/p",
        "xfer ns"
    );
    for s in samples {
        let cpus: Vec<String> = s
            .cpus
            .iter()
            .map(|c| {
                format!(
                    "cpu{} {:.0}%={:.0}/{:.0}/{:.0}",
                    c.cpu,
                    c.busy * 100.0,
                    c.user * 100.0,
                    c.system * 100.0,
                    c.softirq * 100.0
                )
            })
            .collect();
        let _ = writeln!(
            o,
            "{:<20} {:>3} {:>9.3} {:>9.3} {:>7.2} {:>6} {:>8} {:>8.0} {:>8.0} {:>9}  {}",
            s.case.name(),
            s.repeat,
            s.offered_pps / 1e6,
            s.delivered_pps / 1e6,
            s.loss_pct,
            opt(s.worker.as_ref().map(|w| w.busy_ratio), 2),
            opt(s.worker.as_ref().map(|w| w.cpu_ns_per_pkt), 0),
            s.gen_cpu_ns_per_pkt,
            s.machine_cpu_ns_per_pkt,
            format!("{:.0}/{:.0}", s.xfer_ns[0], s.xfer_ns[1]),
            cpus.join(" ")
        );
    }
    let _ = writeln!(o, "\nMedians:");
    let _ = writeln!(
        o,
        "{:<20} {:>4} {:>9} {:>9} {:>15} {:>7} {:>6} {:>9} {:>9} {:>8} {:>9} {:>9}",
        "case",
        "runs",
        "off Mpps",
        "dlv Mpps",
        "(min-max)",
        "loss%",
        "busy",
        "busy ns/p",
        "wrk cpu/p",
        "wrk sys",
        "gen ns/p",
        "sys ns/p"
    );
    for s in sums {
        let _ = writeln!(
            o,
            "{:<20} {:>4} {:>9.3} {:>9.3} {:>15} {:>7.2} {:>6} {:>9} {:>9} {:>8} {:>9.0} {:>9.0}",
            s.case.name(),
            s.runs,
            s.offered_mpps,
            s.delivered_mpps,
            format!("{:.3}-{:.3}", s.delivered_mpps_min, s.delivered_mpps_max),
            s.loss_pct,
            opt(s.worker_busy_ratio, 2),
            opt(s.worker_busy_ns_per_pkt, 0),
            opt(s.worker_cpu_ns_per_pkt, 0),
            opt(s.worker_sys_share.map(|x| x * 100.0), 0) + "%",
            s.gen_cpu_ns_per_pkt,
            s.machine_cpu_ns_per_pkt
        );
    }
    if !rs.is_empty() {
        let _ = writeln!(
            o,
            "\nRatios (delivered, medians; targets: >= 1.5x bridge, >= 0.8x direct):"
        );
        for r in rs {
            let _ = writeln!(
                o,
                "  {:<20} switch/bridge = {}   switch/direct = {}",
                r.case.name(),
                opt(r.over_bridge, 2),
                opt(r.over_direct, 2)
            );
        }
        let _ = writeln!(
            o,
            "Paired ratios (per round, cases back to back; median (min-max) over rounds):"
        );
        let spread = |x: Option<Spread>| match x {
            Some(p) => format!("{:.2} ({:.2}-{:.2})", p.median, p.min, p.max),
            None => "-".into(),
        };
        for r in rs {
            let _ = writeln!(
                o,
                "  {:<20} switch/bridge = {}   switch/direct = {}",
                r.case.name(),
                spread(r.paired_over_bridge),
                spread(r.paired_over_direct)
            );
        }
        let _ = writeln!(
            o,
            "Cross-CPU cache-line transfer (generator's CPU <-> worker's, one way, before and \
             after each window): {} ns; a switch window is far when either is above {:.0} ns",
            dist.xfer_ns
                .map(|x| format!("median {:.0} ({:.0}-{:.0})", x.median, x.min, x.max))
                .unwrap_or_else(|| "-".into()),
            dist.far_ns,
        );
        for (what, pick) in [
            ("near", (|r: &Ratio| r.near) as fn(&Ratio) -> Pair),
            ("far", |r: &Ratio| r.far),
        ] {
            let _ = writeln!(
                o,
                "Paired ratios of the rounds whose switch window was {what}:"
            );
            for r in rs {
                let p = pick(r);
                let _ = writeln!(
                    o,
                    "  {:<20} {} rounds: switch/bridge = {}   switch/direct = {}",
                    r.case.name(),
                    p.rounds,
                    spread(p.over_bridge),
                    spread(p.over_direct)
                );
            }
        }
    }
    for z in zl {
        let _ = writeln!(
            o,
            "\nZero-loss check ({}, paced at {:.3} Mpps for {:.1} s): sent {}, delivered {}, lost {} ({}); \
             schedule held {:.2}% (skipped {}, pass needs >= {:.0}%); \
             generator veth drops {}, switch rx {} tx {} drops {} ({}), worker busy {:.2}",
            z.case.name(),
            z.target_pps / 1e6,
            z.seconds,
            z.sent,
            z.delivered,
            z.lost,
            if z.passed() { "PASS" } else { "FAIL" },
            z.schedule_held() * 100.0,
            z.skipped,
            MIN_SCHEDULE_HELD * 100.0,
            z.gen_if_tx_dropped,
            z.switch_rx,
            z.switch_tx,
            z.switch_drops,
            z.switch_drop_reasons,
            z.worker_busy_ratio
        );
    }
    let _ = writeln!(
        o,
        "\nColumns: off = generator frames/s, dlv = sink veth rx_packets/s; busy = worker loop busy ratio; \
         busy ns/p = worker busy loop time per packet; wrk cpu/p = worker thread on-CPU ns per packet \
         (schedstat); wrk sys = kernel share of the worker's CPU time; gen ns/p = generator thread \
         on-CPU ns per offered frame; sys ns/p = all CPUs' busy time per delivered frame (machine-wide); \
         xfer ns = one-way cache-line transfer time between the generator's CPU and the worker's, \
         before/after the window."
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(case: Case, repeat: usize, delivered_pps: f64) -> Sample {
        Sample {
            case,
            repeat,
            seconds: 1.0,
            offered_pps: delivered_pps,
            delivered_pps,
            loss_pct: 0.0,
            gen_if: Default::default(),
            sink_if: Default::default(),
            gen_cpu_ns_per_pkt: 0.0,
            gen_thread: Default::default(),
            machine_cpu_ns_per_pkt: 0.0,
            cpus: Vec::new(),
            worker: None,
            generator_mode: String::new(),
            xfer_ns: [50.0, 60.0],
        }
    }

    #[test]
    fn paired_ratios_divide_within_each_round() {
        // The machine slows down in round 1: medians of each case mix rounds, the paired
        // ratio does not.
        let samples = vec![
            sample(Case::Direct, 0, 800.0),
            sample(Case::Bridge, 0, 400.0),
            sample(Case::SwitchXdpAccessTrunk, 0, 700.0),
            sample(Case::Direct, 1, 500.0),
            sample(Case::Bridge, 1, 250.0),
            sample(Case::SwitchXdpAccessTrunk, 1, 450.0),
            sample(Case::Direct, 2, 900.0),
            sample(Case::Bridge, 2, 450.0),
            // round 2's switch sample is missing: that round is left out of the pairs
        ];
        let p = paired(&samples, Case::SwitchXdpAccessTrunk, Case::Bridge).expect("pairs");
        assert_eq!((p.min, p.max), (1.75, 1.8));
        assert_eq!(p.median, (1.75 + 1.8) / 2.0);
        let d = paired(&samples, Case::SwitchXdpAccessTrunk, Case::Direct).expect("pairs");
        assert_eq!((d.min, d.max), (0.875, 0.9));
        assert!(paired(&samples, Case::SwitchAccessTrunk, Case::Bridge).is_none());
    }

    #[test]
    fn rounds_are_split_by_how_far_apart_the_cpus_were_in_the_switch_window() {
        let at = |mut s: Sample, before: f64, after: f64| {
            s.xfer_ns = [before, after];
            s
        };
        let samples = vec![
            sample(Case::Direct, 0, 800.0),
            sample(Case::Bridge, 0, 400.0),
            sample(Case::SwitchXdpAccessTrunk, 0, 720.0),
            // round 1: the switch window ended far
            sample(Case::Direct, 1, 800.0),
            sample(Case::Bridge, 1, 400.0),
            at(sample(Case::SwitchXdpAccessTrunk, 1, 560.0), 40.0, 230.0),
            // round 2: only a baseline's window was far, which does not matter to it
            sample(Case::Direct, 2, 900.0),
            at(sample(Case::Bridge, 2, 500.0), 400.0, 30.0),
            sample(Case::SwitchXdpAccessTrunk, 2, 810.0),
        ];
        let d = Distance::of(&samples, 120.0);
        let x = d.xfer_ns.expect("measured");
        assert_eq!((x.min, x.max), (30.0, 400.0));
        let sums: Vec<Summary> = [Case::Direct, Case::Bridge, Case::SwitchXdpAccessTrunk]
            .iter()
            .filter_map(|c| summarize(&samples, *c))
            .collect();
        let rs = ratios(&sums, &samples, &d);
        assert_eq!(rs.len(), 1);
        assert_eq!((rs[0].near.rounds, rs[0].far.rounds), (2, 1));
        let near = rs[0].near.over_bridge.expect("near pairs");
        assert_eq!((near.min, near.max), (1.62, 1.8));
        let far_b = rs[0].far.over_bridge.expect("far pairs");
        assert_eq!((far_b.min, far_b.max), (1.4, 1.4));
        assert_eq!(rs[0].far.over_direct.expect("far pairs").median, 0.7);
        let all_near = ratios(&sums, &samples, &Distance::of(&samples, 1000.0));
        assert_eq!(all_near[0].far.rounds, 0);
        assert!(all_near[0].far.over_bridge.is_none());
    }
}
