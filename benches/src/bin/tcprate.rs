//! `tcprate`: TCP throughput (iperf3, 1 and 4 streams) and ping RTT between two
//! namespaces through a direct veth pair, the Linux bridge, vswitch and Open vSwitch's
//! userspace datapath, measured in one run (docs/tcprate.md). Needs root. See `--help`.
//!
//! Every namespace, link, daemon and OVS bridge is named uniquely (process id + counter)
//! and removed on exit, also on error, panic or Ctrl-C; what a killed run left behind is
//! removed at the next start.

#[path = "../tcprate/mod.rs"]
mod tcprate;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use vswitch_benches::harness;

use datapath::worker::PollMode;
use tcprate::case::{Case, Env};
use tcprate::iperf::TcpParams;
use tcprate::latency::{self, LatencyParams, LatencyRound};
use tcprate::ovs::Ovs;
use tcprate::report;
use tcprate::run::{self, Params};
use tcprate::topo::{Hosts, PREFIXES};

#[derive(Debug, Parser)]
#[command(
    name = "tcprate",
    about = "TCP throughput and RTT between two namespaces through a veth pair, the Linux \
             bridge, vswitch and OVS (root)"
)]
struct Args {
    /// Measured seconds of each iperf3 test (after --warmup).
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// Warm-up seconds of each iperf3 test, left out of the result (iperf3 -O).
    #[arg(long, default_value_t = 1)]
    warmup: u32,
    /// Rounds; each round measures every case once, in order (medians are reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Cases to run, comma separated (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    cases: Vec<Case>,
    /// CPU of the switch's worker (vswitchd's one worker, OVS's PMD threads).
    #[arg(long, default_value_t = 1)]
    cpu: usize,
    /// Pings per case and round (every 5 ms, on the otherwise idle link).
    #[arg(long, default_value_t = 1000)]
    pings: u32,
    /// Directory holding vswitchd and vswitchctl (default: this binary's directory).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Measure latency instead of TCP: ping RTT p50/p99/p99.9 on the idle link and under
    /// 64-byte UDP load at 50% of the path's maximum, vswitch in each of --poll-modes,
    /// and the switch daemon's idle CPU (docs/tcprate.md).
    #[arg(long)]
    latency: bool,
    /// Poll modes of the vswitch cases with --latency.
    #[arg(long, value_delimiter = ',', default_value = "spin,adaptive,sleep")]
    poll_modes: Vec<PollMode>,
    /// Also write everything measured as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !harness::is_root() {
        eprintln!(
            "tcprate: needs root (network namespaces, veths, AF_XDP, Open vSwitch); \
             run it as root, e.g. sudo make tcprate"
        );
        return ExitCode::from(2);
    }
    // First Ctrl-C: stop at the next check and clean up; second: leave at once.
    harness::on_ctrl_c();
    match real_main(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcprate: {e:#}");
            ExitCode::from(if run::interrupted() { 130 } else { 1 })
        }
    }
}

/// First line of `cmd args`' output (stdout, else stderr), or why there is none.
fn version_of(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("{cmd} not found (scripts/setup.sh bench installs it)"))?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_owned())
}

fn real_main(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.seconds > 0, "--seconds must be at least 1");
    anyhow::ensure!(args.repeat > 0, "--repeat must be at least 1");
    anyhow::ensure!(args.pings > 0, "--pings must be at least 1");
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    anyhow::ensure!(args.cpu < ncpu, "--cpu {} but only {ncpu} CPUs", args.cpu);
    let cases: Vec<Case> = if args.cases.is_empty() && args.latency {
        Case::LATENCY.to_vec()
    } else if args.cases.is_empty() {
        Case::ALL.to_vec()
    } else {
        args.cases.clone()
    };
    let iperf3 = version_of("iperf3", &["--version"])?;
    version_of("ping", &["-V"])?;
    version_of("ethtool", &["--version"])?;
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()
            .context("path of this binary")?
            .parent()
            .context("directory of this binary")?
            .to_path_buf(),
    };
    let mut stale = tcprate::vswitchd::remove_stale();
    stale.extend(harness::remove_stale(&PREFIXES));
    if !stale.is_empty() {
        eprintln!(
            "tcprate: removed leftovers of killed runs: {}",
            stale.join(" ")
        );
    }
    let hosts = Hosts::new().context("build namespaces")?;
    let ovs = if cases.iter().any(|c| c.is_ovs()) {
        eprintln!("tcprate: preparing Open vSwitch ...");
        Ovs::ensure(args.cpu)
    } else {
        Err("no OVS case selected".to_owned())
    };
    let env = Env {
        bin_dir,
        cpu: args.cpu,
        ovs,
    };
    let congestion = harness::sh_out(
        "ip",
        &[
            "netns",
            "exec",
            hosts.h1.name(),
            "sysctl",
            "-n",
            "net.ipv4.tcp_congestion_control",
        ],
    )
    .map(|s| s.trim().to_owned())
    .unwrap_or_default();
    // Other work on the machine skews the numbers: the load average before and after says
    // whether there was any.
    let load_before = loadavg();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let ovs_desc = match &env.ovs {
        Ok(o) => format!(
            "{}, pmd-cpu-mask={}, userspace TSO {}",
            o.version,
            o.pmd_cpu_mask,
            if o.tso_logged {
                "on (logged)"
            } else {
                "set (not confirmed in the log)"
            }
        ),
        Err(why) => format!("unavailable: {why}"),
    };
    if args.latency {
        return latency_main(args, &cases, &hosts, &env, &load_before);
    }
    let p = Params {
        tcp: TcpParams {
            seconds: args.seconds,
            warmup: args.warmup,
        },
        pings: args.pings,
        ping_interval: Duration::from_millis(5),
        reach_secs: 10,
    };
    eprintln!(
        "tcprate: hosts {} ({}) and {} ({}), bridge namespace {} ({}); switch worker on CPU {}; \
         {} round(s) of {} case(s); kernel {kernel}, {iperf3}, TCP congestion control \
         {congestion}; OVS: {ovs_desc}",
        hosts.h1.name(),
        tcprate::topo::H1_ADDR,
        hosts.h2.name(),
        tcprate::topo::H2_ADDR,
        hosts.mid.name(),
        hosts.bridge_nf,
        args.cpu,
        args.repeat,
        cases.len(),
    );

    let mut rounds = Vec::new();
    for r in 0..args.repeat {
        for &case in &cases {
            let round = run::measure(case, r, &hosts, &env, &p)
                .with_context(|| format!("case {} round {r}", case.name()))?;
            eprintln!("  {}", report::round_line(&round));
            rounds.push(round);
        }
    }

    let load_after = loadavg();
    let rows = report::summarize(&cases, &rounds);
    let mut out = String::new();
    out.push_str(&format!(
        "\nTCP h1 -> h2 (iperf3, receiver's rate over {} s after {} s warm-up; median of {} \
         round(s)); RTT: {} pings every 5 ms on the idle link (median of the rounds' \
         percentiles); switch worker / OVS PMD on CPU {}; load average before {load_before}, \
         after {load_after}.\n\n",
        args.seconds, args.warmup, args.repeat, args.pings, args.cpu
    ));
    out.push_str(&report::markdown_table(&rows));
    out.push('\n');
    out.push_str(&report::notes(&rows));
    out.push_str("\nPer round:\n");
    for r in &rounds {
        out.push_str(&report::round_line(r));
        out.push('\n');
    }
    print!("{out}");

    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "params": {
                "seconds": args.seconds,
                "warmup": args.warmup,
                "repeat": args.repeat,
                "cases": cases,
                "cpu": args.cpu,
                "pings": args.pings,
                "ping_interval_ms": 5,
                "h1": tcprate::topo::H1_ADDR,
                "h2": tcprate::topo::H2_ADDR,
            },
            "environment": {
                "kernel": kernel,
                "iperf3": iperf3,
                "tcp_congestion_control": congestion,
                "bridge_nf": hosts.bridge_nf,
                "ovs": ovs_desc,
                "loadavg_before": load_before,
                "loadavg_after": load_after,
            },
            "summary": rows,
            "rounds": rounds,
        });
        write_json(path, &doc)?;
    }
    drop(env);
    drop(hosts);
    Ok(())
}

fn write_json(path: &std::path::Path, doc: &serde_json::Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(doc).context("serialize JSON")?;
    std::fs::write(path, text + "\n").with_context(|| format!("write {}", path.display()))?;
    eprintln!("tcprate: JSON written to {}", path.display());
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `--latency`: every case (vswitch cases once per poll mode) in each round.
fn latency_main(
    args: &Args,
    cases: &[Case],
    hosts: &Hosts,
    env: &Env,
    load_before: &str,
) -> anyhow::Result<()> {
    let p = LatencyParams {
        pings: args.pings,
        interval: Duration::from_millis(5),
        idle_settle: Duration::from_millis(1500),
        idle_window: Duration::from_secs(3),
        probe_secs: 2,
        reach_secs: 10,
    };
    eprintln!(
        "tcprate --latency: {} round(s); {} pings every 5 ms idle and under 64-byte UDP at 50% \
         of each path's flood rate; poll modes {:?}; switch worker / OVS PMD on CPU {}",
        args.repeat, args.pings, args.poll_modes, args.cpu
    );
    let mut rounds: Vec<LatencyRound> = Vec::new();
    for r in 0..args.repeat {
        for &case in cases {
            let modes: Vec<Option<PollMode>> = if case.is_vswitch() {
                args.poll_modes.iter().copied().map(Some).collect()
            } else {
                vec![None]
            };
            for mode in modes {
                let result = match (&env.ovs, case.is_ovs()) {
                    (Err(why), true) => Err(format!("unavailable: {why}")),
                    _ => latency::measure(case, mode, hosts, env, &p).map_err(|e| format!("{e:#}")),
                };
                harness::check_interrupted()?;
                let round = LatencyRound {
                    case,
                    poll_mode: mode.map(|m| m.name().to_owned()),
                    round: r,
                    result,
                };
                eprintln!("  {}", latency::round_line(&round));
                rounds.push(round);
            }
        }
    }
    let rows = latency::summarize(&rounds);
    let mut out = format!(
        "\nRTT h1 -> h2 (ping, {} every 5 ms; medians of {} round(s)): idle, and while iperf3 \
         sends 64-byte UDP h1 -> h2 at 50% of what the path delivered when flooded; idle CPU: \
         the switch daemon's CPU time over 3 s starting 1.5 s after the last frame, percent of \
         one CPU; switch worker / OVS PMD on CPU {}; load average before {load_before}, after \
         {}.\n\n",
        args.pings,
        args.repeat,
        args.cpu,
        loadavg()
    );
    out.push_str(&latency::markdown_table(&rows));
    out.push_str("\nPer round:\n");
    for r in &rounds {
        out.push_str(&latency::round_line(r));
        out.push('\n');
    }
    print!("{out}");
    if let Some(path) = &args.json {
        let doc = serde_json::json!({"summary": rows, "rounds": rounds});
        write_json(path, &doc)?;
    }
    Ok(())
}
