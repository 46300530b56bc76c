//! `tcprate --latency`: round-trip time from h1 to h2 on the idle link and while 64-byte
//! UDP (iperf3, 18-byte payload) flows from h1 to h2 at half the rate the path carried
//! when flooded, for each path and, for vswitch, each poll mode; plus the switch
//! daemon's CPU while nothing flows.
//!
//! Per (case, poll mode) and round: build the path, set the mode, ping (every
//! `interval`), wait until the switch has been idle for `idle_settle`, measure the
//! daemon's CPU time (every thread's on-CPU nanoseconds from `/proc`) over `idle_window`,
//! flood for 2 s to find the maximum, then ping again while the load runs at 50% of it.

use std::time::Duration;

use anyhow::{bail, Context};
use datapath::testutil::Netns;
use datapath::worker::PollMode;
use vswitch_benches::harness::{check_interrupted, median, sleep_checked};

use super::case::{Case, Env, Setup};
use super::child::Running;
use super::iperf::{start_client, start_server};
use super::ping::{reachable, run_ping, Rtt};
use super::topo::Hosts;

/// UDP payload of a 64-byte frame: 64 - 4 (FCS) - 14 - 20 - 8.
pub const PAYLOAD: usize = 18;

#[derive(Debug, Clone, Copy)]
pub struct LatencyParams {
    pub pings: u32,
    pub interval: Duration,
    pub idle_settle: Duration,
    pub idle_window: Duration,
    pub probe_secs: u32,
    pub reach_secs: u32,
}

/// What one (case, mode) measured in one round.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LatencyRun {
    pub idle: Rtt,
    pub loaded: Rtt,
    /// 64-byte frames per second h2 received when h1 flooded (iperf3 `-b 0`).
    pub max_pps: f64,
    /// What h2 received during the loaded ping (target: half of `max_pps`).
    pub load_pps: f64,
    /// The switch daemon's CPU while idle, percent of one CPU (None: kernel paths).
    pub idle_cpu_pct: Option<f64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LatencyRound {
    pub case: Case,
    /// vswitch cases only.
    pub poll_mode: Option<String>,
    pub round: usize,
    pub result: Result<LatencyRun, String>,
}

/// Packets h2 received per second: `end.sum_received` of `iperf3 -u -J`.
pub fn udp_received_pps(text: &str) -> anyhow::Result<f64> {
    let v: serde_json::Value = serde_json::from_str(text).context("iperf3 output not JSON")?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        bail!("iperf3: {e}");
    }
    let r = v
        .pointer("/end/sum_received")
        .context("iperf3 output without end.sum_received")?;
    let field = |k: &str| {
        r.get(k)
            .and_then(|x| x.as_f64())
            .with_context(|| format!("iperf3 output without end.sum_received.{k}"))
    };
    let (packets, lost, secs) = (field("packets")?, field("lost_packets")?, field("seconds")?);
    if secs <= 0.0 {
        bail!("iperf3 measured for {secs} s");
    }
    Ok((packets - lost).max(0.0) / secs)
}

/// Sum of the on-CPU nanoseconds of every thread of `pid` (first field of
/// `/proc/PID/task/TID/schedstat`).
pub fn process_cpu_ns(pid: u32) -> anyhow::Result<u64> {
    let dir = format!("/proc/{pid}/task");
    let mut total = 0u64;
    for e in std::fs::read_dir(&dir).with_context(|| format!("read {dir}"))? {
        let path = e?.path().join("schedstat");
        // A thread that exited meanwhile has no schedstat: it ran no more.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        total += text
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .with_context(|| format!("{}: {text:?}", path.display()))?;
    }
    Ok(total)
}

/// 64-byte UDP from h1 to h2 at `pps` (0: as fast as iperf3 sends) for `secs`.
fn udp_load(h1: &Netns, h2: &Netns, pps: f64, secs: u32) -> anyhow::Result<(Running, Running)> {
    let server = start_server(h2)?;
    let bps = format!("{}", (pps * (PAYLOAD * 8) as f64) as u64);
    let len = PAYLOAD.to_string();
    let secs = secs.to_string();
    let client = start_client(h1, &["-u", "-l", &len, "-b", &bps, "-t", &secs])?;
    Ok((server, client))
}

fn finish_load(load: (Running, Running), secs: u32) -> anyhow::Result<f64> {
    let (server, client) = load;
    let done = client.wait(Duration::from_secs(u64::from(secs) + 15))?;
    let _ = server.wait(Duration::from_secs(3));
    if done.timed_out {
        bail!("iperf3 UDP load did not finish");
    }
    udp_received_pps(&done.stdout)
}

/// The daemon whose idle CPU is measured: vswitchd, or OVS's ovs-vswitchd.
fn daemon_pid(case: Case, setup: &Setup) -> Option<u32> {
    if let Some(d) = &setup.vswitchd {
        return d.pid();
    }
    if case.is_ovs() {
        let out = std::process::Command::new("pidof")
            .arg("ovs-vswitchd")
            .output()
            .ok()?;
        return String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()?
            .parse()
            .ok();
    }
    None
}

/// One (case, mode) once.
pub fn measure(
    case: Case,
    mode: Option<PollMode>,
    hosts: &Hosts,
    env: &Env,
    p: &LatencyParams,
) -> anyhow::Result<LatencyRun> {
    let setup = Setup::up(case, hosts, env)?;
    if let (Some(d), Some(m)) = (&setup.vswitchd, mode) {
        d.ctl(&["pmd", "set-poll-mode", m.name()])?;
    }
    if !reachable(&hosts.h1, p.reach_secs)? {
        bail!("no forwarding: no ping reply within {} s", p.reach_secs);
    }
    let idle = run_ping(&hosts.h1, p.pings, p.interval)?;
    check_interrupted()?;
    let idle_cpu_pct = match daemon_pid(case, &setup) {
        Some(pid) => {
            sleep_checked(p.idle_settle.as_secs_f64())?;
            let t0 = std::time::Instant::now();
            let c0 = process_cpu_ns(pid)?;
            sleep_checked(p.idle_window.as_secs_f64())?;
            let c1 = process_cpu_ns(pid)?;
            let wall = t0.elapsed().as_nanos() as f64;
            Some(100.0 * c1.saturating_sub(c0) as f64 / wall)
        }
        None => None,
    };
    let max_pps = finish_load(
        udp_load(&hosts.h1, &hosts.h2, 0.0, p.probe_secs)?,
        p.probe_secs,
    )?;
    if max_pps <= 0.0 {
        bail!("the UDP flood delivered nothing");
    }
    let ping_secs = (p.interval * p.pings).as_secs() as u32 + 1;
    let load_secs = ping_secs + 3;
    let load = udp_load(&hosts.h1, &hosts.h2, max_pps / 2.0, load_secs)?;
    sleep_checked(1.0)?;
    let loaded = run_ping(&hosts.h1, p.pings, p.interval)?;
    let load_pps = finish_load(load, load_secs)?;
    drop(setup);
    Ok(LatencyRun {
        idle,
        loaded,
        max_pps,
        load_pps,
        idle_cpu_pct,
    })
}

/// Medians over the rounds of one (case, mode).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LatencyRow {
    pub case: Case,
    pub poll_mode: Option<String>,
    pub rounds: usize,
    pub failed: Vec<String>,
    /// p50, p99, p99.9 in microseconds.
    pub idle_us: [Option<f64>; 3],
    pub loaded_us: [Option<f64>; 3],
    pub load_kpps: Option<f64>,
    pub max_kpps: Option<f64>,
    pub idle_cpu_pct: Option<f64>,
    /// Ping replies lost (idle + loaded), all rounds.
    pub lost: u64,
}

fn med(v: Vec<f64>) -> Option<f64> {
    (!v.is_empty()).then(|| median(v))
}

pub fn summarize(rounds: &[LatencyRound]) -> Vec<LatencyRow> {
    let mut rows: Vec<LatencyRow> = Vec::new();
    for r in rounds {
        let key = (r.case, r.poll_mode.clone());
        if rows.iter().any(|x| (x.case, x.poll_mode.clone()) == key) {
            continue;
        }
        let same: Vec<&LatencyRound> = rounds
            .iter()
            .filter(|x| (x.case, x.poll_mode.clone()) == key)
            .collect();
        let ok: Vec<&LatencyRun> = same.iter().filter_map(|x| x.result.as_ref().ok()).collect();
        let pick =
            |f: &dyn Fn(&LatencyRun) -> Option<f64>| med(ok.iter().filter_map(|x| f(x)).collect());
        rows.push(LatencyRow {
            case: r.case,
            poll_mode: r.poll_mode.clone(),
            rounds: same.len(),
            failed: same
                .iter()
                .filter_map(|x| x.result.as_ref().err().cloned())
                .collect(),
            idle_us: [
                pick(&|x| x.idle.p50_us),
                pick(&|x| x.idle.p99_us),
                pick(&|x| x.idle.p999_us),
            ],
            loaded_us: [
                pick(&|x| x.loaded.p50_us),
                pick(&|x| x.loaded.p99_us),
                pick(&|x| x.loaded.p999_us),
            ],
            load_kpps: pick(&|x| Some(x.load_pps / 1e3)),
            max_kpps: pick(&|x| Some(x.max_pps / 1e3)),
            idle_cpu_pct: pick(&|x| x.idle_cpu_pct),
            lost: ok
                .iter()
                .map(|x| {
                    x.idle.sent.saturating_sub(x.idle.received)
                        + x.loaded.sent.saturating_sub(x.loaded.received)
                })
                .sum(),
        });
    }
    rows
}

fn triple(v: &[Option<f64>; 3]) -> String {
    let f = |x: Option<f64>| x.map_or("-".to_owned(), |x| format!("{x:.0}"));
    format!("{} / {} / {}", f(v[0]), f(v[1]), f(v[2]))
}

/// The table: one row per (case, mode), p50 ratios to the bridge's.
pub fn markdown_table(rows: &[LatencyRow]) -> String {
    let bridge = rows.iter().find(|r| r.case == Case::Bridge);
    let ratio = |x: Option<f64>, b: Option<f64>| match (x, b) {
        (Some(x), Some(b)) if b > 0.0 => format!("{:.1}", x / b),
        _ => "-".to_owned(),
    };
    let mut s = String::from(
        "| case | poll mode | idle RTT p50 / p99 / p99.9 us | RTT at 50% load p50 / p99 / p99.9 us \
         | load kpps (max) | p50 / bridge (idle / load) | idle CPU % |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        if !r.failed.is_empty() && r.idle_us[0].is_none() {
            s.push_str(&format!(
                "| {} | {} | failed: {} | | | | |\n",
                r.case.name(),
                r.poll_mode.as_deref().unwrap_or("-"),
                super::report::cell(&r.failed[0], 80)
            ));
            continue;
        }
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} ({}) | {} / {} | {} |\n",
            r.case.name(),
            r.poll_mode.as_deref().unwrap_or("-"),
            triple(&r.idle_us),
            triple(&r.loaded_us),
            r.load_kpps.map_or("-".into(), |x| format!("{x:.0}")),
            r.max_kpps.map_or("-".into(), |x| format!("{x:.0}")),
            ratio(r.idle_us[0], bridge.and_then(|b| b.idle_us[0])),
            ratio(r.loaded_us[0], bridge.and_then(|b| b.loaded_us[0])),
            r.idle_cpu_pct.map_or("-".into(), |x| format!("{x:.1}")),
        ));
    }
    s
}

pub fn round_line(r: &LatencyRound) -> String {
    let name = match &r.poll_mode {
        Some(m) => format!("{} ({m})", r.case.name()),
        None => r.case.name().to_owned(),
    };
    match &r.result {
        Ok(x) => format!(
            "round {} {name:<34} idle p50/p99/p99.9 {} us, loaded {} us at {:.0} of {:.0} kpps, idle CPU {}",
            r.round,
            triple(&[x.idle.p50_us, x.idle.p99_us, x.idle.p999_us]),
            triple(&[x.loaded.p50_us, x.loaded.p99_us, x.loaded.p999_us]),
            x.load_pps / 1e3,
            x.max_pps / 1e3,
            x.idle_cpu_pct.map_or("-".into(), |c| format!("{c:.1}%")),
        ),
        Err(e) => format!("round {} {name:<34} failed: {e}", r.round),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UDP: &str = include_str!("testdata/iperf3-udp-64b.json");

    #[test]
    fn received_rate_is_what_h2_counted() {
        // Captured on this machine: 555355 sent, 1636 lost, over 2.000234 s.
        let pps = udp_received_pps(UDP).expect("parse");
        assert!((pps - 553_719.0 / 2.000234).abs() < 1e-6, "{pps}");
        let e = udp_received_pps(r#"{"error": "unable to connect"}"#).expect_err("error");
        assert_eq!(e.to_string(), "iperf3: unable to connect");
        assert!(udp_received_pps("{}").is_err());
    }

    #[test]
    fn this_process_has_cpu_time() {
        let a = process_cpu_ns(std::process::id()).expect("own schedstat");
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = process_cpu_ns(std::process::id()).expect("own schedstat");
        assert!(b > a, "{a} -> {b}");
    }

    fn run(p50: f64) -> LatencyRun {
        let rtt = Rtt {
            sent: 10,
            received: 9,
            p50_us: Some(p50),
            p99_us: Some(p50 * 2.0),
            p999_us: Some(p50 * 3.0),
            min_us: Some(1.0),
            max_us: Some(99.0),
        };
        LatencyRun {
            idle: rtt.clone(),
            loaded: rtt,
            max_pps: 200_000.0,
            load_pps: 100_000.0,
            idle_cpu_pct: Some(0.5),
        }
    }

    #[test]
    fn rows_are_medians_per_case_and_mode_with_bridge_ratios() {
        let mk = |case, mode: Option<&str>, round, r| LatencyRound {
            case,
            poll_mode: mode.map(str::to_owned),
            round,
            result: r,
        };
        let rounds = vec![
            mk(Case::Bridge, None, 0, Ok(run(10.0))),
            mk(Case::VswitchPacket, Some("spin"), 0, Ok(run(20.0))),
            mk(Case::VswitchPacket, Some("sleep"), 0, Ok(run(80.0))),
            mk(Case::Bridge, None, 1, Ok(run(12.0))),
            mk(Case::VswitchPacket, Some("spin"), 1, Ok(run(24.0))),
            mk(Case::VswitchPacket, Some("sleep"), 1, Err("boom".into())),
        ];
        let rows = summarize(&rounds);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].idle_us[0], Some(11.0));
        assert_eq!(rows[1].idle_us, [Some(22.0), Some(44.0), Some(66.0)]);
        assert_eq!(rows[1].lost, 4);
        assert_eq!(rows[2].failed, vec!["boom".to_string()]);
        assert_eq!(rows[2].idle_us[0], Some(80.0));
        let t = markdown_table(&rows);
        assert!(
            t.contains("| vswitch-packet | spin | 22 / 44 / 66 | 22 / 44 / 66 | 100 (200) | 2.0 / 2.0 | 0.5 |"),
            "{t}"
        );
    }
}
