//! `pktrate`: packet rate of vswitch against a direct veth pair and the Linux bridge,
//! measured in one run (issue 4). Needs root. See `--help`.
//!
//! Topology: generator namespace -> veth -> {nothing | Linux bridge | vswitch} -> veth ->
//! sink namespace. The generator is an AF_XDP socket sending valid 64-byte IPv4/UDP
//! frames to a MAC that is not the sink's, so the sink's stack counts and drops them
//! early; delivered = the sink veth's rx_packets. Every namespace and link is named
//! uniquely (process id + counter) and removed on exit, also on error, panic or Ctrl-C.

#[path = "../pktrate/mod.rs"]
mod pktrate;

use std::sync::atomic::Ordering;

use anyhow::Context;
use clap::Parser;
use datapath::port::XdpMode;

use pktrate::lab::Lab;
use pktrate::report;
use pktrate::run::{self, Case, Params, INTERRUPTED};

#[derive(Debug, Parser)]
#[command(
    name = "pktrate",
    about = "Packet rate of vswitch vs a direct veth pair and the Linux bridge (root)"
)]
struct Args {
    /// Measured seconds per case and repeat (after a warm-up).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Repeats per case (cases are interleaved; medians are reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Warm-up seconds before each measured window.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// CPU the switch worker is pinned to.
    #[arg(long, default_value_t = 1)]
    cpu: usize,
    /// CPU the generator is pinned to (default: CPU 0, or 1 if --cpu is 0).
    #[arg(long)]
    gen_cpu: Option<usize>,
    /// Where the sink veths' receive processing runs. `none` (default): in softirq context
    /// on the CPU that delivers to them, as the kernel does by default: the generator's CPU
    /// for the direct pair and the bridge, the switch's CPU for the switch (so the sink's
    /// stack is charged to the switch's core). A CPU number, or `gen` for the generator's
    /// CPU: their NAPI runs as kernel threads pinned there. That only changes where frames
    /// redirected by the XDP fast path are received (skbs from the generator, the bridge
    /// and AF_XDP transmit never use the sink's NAPI), and on a CPU shared with the
    /// busy-polling generator the thread waits for its turn while its 256-frame ring
    /// overflows, so it measures the scheduler more than the switch.
    #[arg(long, default_value = "none")]
    sink_cpu: String,
    /// Transmit queue of the generator's veths, the same for every case. `pfifo`
    /// (default): when the receiving veth's 256-frame ring is full the kernel (6.16 and
    /// later) stops the queue and the generator waits, as a sender on a NIC with a full
    /// descriptor ring does; frames are not lost to a consumer that is late by a few
    /// milliseconds. `none`: the veth default (noqueue), where a full ring drops the frame.
    #[arg(long, default_value = "pfifo", value_parser = ["pfifo", "none"])]
    gen_queue: String,
    /// Pace the generator to this many frames per second (default: as fast as it can).
    #[arg(long)]
    rate: Option<f64>,
    /// Cases to run (default: all), comma separated.
    #[arg(long, value_enum, value_delimiter = ',')]
    cases: Vec<Case>,
    /// Worker receive burst size.
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// Worker in `spin` poll mode (pure PMD) instead of the default (`adaptive`).
    #[arg(long)]
    spin: bool,
    /// XDP attach mode of the switch's ports: native, generic or auto.
    #[arg(long, default_value = "auto", value_parser = parse_mode)]
    xdp_mode: XdpMode,
    /// Also run switch-access-trunk at half the measured maximum switch rate and count
    /// lost frames (target 0).
    #[arg(long)]
    zero_loss_check: bool,
    /// Duration of the zero-loss run (default: --seconds; the target is 30).
    #[arg(long)]
    zero_loss_seconds: Option<f64>,
    /// Rate of the zero-loss run in frames/s (default: half the measured switch median;
    /// given, the switch cases need not be measured first).
    #[arg(long)]
    zero_loss_rate: Option<f64>,
    /// One-way cache-line transfer time between the generator's CPU and the worker's above
    /// which a switch case's window counts as *far* (measured before and after every
    /// window; paired ratios of near and far windows are reported apart). On this 2-vCPU VM transfers take 40-65 ns when the hypervisor runs
    /// the vCPUs close together and 200-250 ns when it does not.
    #[arg(long, default_value_t = 120.0)]
    far_ns: f64,
    /// Print machine-readable JSON on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// Internal: run as the traffic generator on this interface (the harness starts it
    /// with `ip netns exec` in the generator namespace).
    #[arg(long, hide = true)]
    generate_on: Option<String>,
    /// Internal: VLAN tag of the generated frames.
    #[arg(long, hide = true)]
    gen_vid: Option<u16>,
}

/// Removes namespaces and links left by earlier runs of this harness that died without
/// cleaning up (SIGKILL).
fn remove_stale() {
    vswitch_benches::harness::remove_stale(&["pg", "pm", "ps", "pd"]);
}

fn main() {
    let args = Args::parse();
    if let Some(ifname) = &args.generate_on {
        let frame = pktrate::frames::udp_frame(
            pktrate::frames::DST_MAC,
            pktrate::frames::SRC_MAC,
            args.gen_vid,
        );
        if let Err(e) = pktrate::gen::run_child(ifname, frame, args.gen_cpu, args.rate) {
            println!("error {e:#}");
            std::process::exit(1);
        }
        return;
    }
    // First Ctrl-C: stop at the next check and clean up; second: leave at once.
    vswitch_benches::harness::on_ctrl_c();
    match real_main(&args) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("pktrate: {e:#}");
            std::process::exit(if INTERRUPTED.load(Ordering::Relaxed) {
                130
            } else {
                1
            });
        }
    }
}

fn real_main(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.seconds > 0.0, "--seconds must be positive");
    anyhow::ensure!(args.repeat > 0, "--repeat must be at least 1");
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    anyhow::ensure!(args.cpu < ncpu, "--cpu {} but only {ncpu} CPUs", args.cpu);
    let gen_cpu = args
        .gen_cpu
        .unwrap_or(if args.cpu == 0 { 1.min(ncpu - 1) } else { 0 });
    let params = Params {
        exe: std::env::current_exe().context("path of this binary")?,
        seconds: args.seconds,
        warmup: args.warmup,
        cpu: args.cpu,
        gen_cpu,
        rate: args.rate,
        burst: args.burst,
        spin: args.spin,
        xdp_mode: args.xdp_mode,
    };
    let cases: Vec<Case> = if args.cases.is_empty() {
        Case::ALL.to_vec()
    } else {
        args.cases.clone()
    };
    let sink_cpu = match args.sink_cpu.as_str() {
        "gen" => Some(gen_cpu),
        "none" => None,
        n => {
            let c: usize = n.parse().map_err(|_| {
                anyhow::anyhow!("--sink-cpu {n}: expected a CPU number, gen or none")
            })?;
            anyhow::ensure!(c < ncpu, "--sink-cpu {c} but only {ncpu} CPUs");
            Some(c)
        }
    };
    remove_stale();
    let lab = Lab::new().context("build namespaces and veths")?;
    let sink_where = match sink_cpu {
        Some(c) => {
            lab.pin_sink_napi(c)
                .context("pin the sink's NAPI threads")?;
            format!("sink NAPI threads on CPU {c}")
        }
        None => "sink in softirq of the sender".to_owned(),
    };
    let gen_queue = match args.gen_queue.as_str() {
        "pfifo" => lab
            .give_generator_a_queue()
            .context("generator transmit queue")?,
        _ => "no qdisc on the generator's veths (a full receive ring drops)".to_owned(),
    };
    eprintln!(
        "pktrate: namespaces gen={} mid={} sink={}; switch worker on CPU {}, generator on CPU {}, {}; \
         {}; {} s x {} repeats per case; bridge netfilter: {}",
        lab.gen.name(),
        lab.mid.name(),
        lab.sink.name(),
        params.cpu,
        params.gen_cpu,
        sink_where,
        gen_queue,
        params.seconds,
        args.repeat,
        lab.bridge_nf
    );
    let mut samples = Vec::new();
    for r in 0..args.repeat {
        for &case in &cases {
            let s = run::measure(&lab, case, r, &params)
                .with_context(|| format!("case {} repeat {r}", case.name()))?;
            eprintln!(
                "  {:<20} rep {r}: offered {:.3} Mpps, delivered {:.3} Mpps, loss {:.2}%, \
                 line transfer {:.0}/{:.0} ns{}",
                case.name(),
                s.offered_pps / 1e6,
                s.delivered_pps / 1e6,
                s.loss_pct,
                s.xfer_ns[0],
                s.xfer_ns[1],
                s.worker
                    .as_ref()
                    .map(|w| format!(
                        ", worker busy {:.2}, {:.0} CPU ns/pkt ({:.0}% kernel)",
                        w.busy_ratio,
                        w.cpu_ns_per_pkt,
                        w.thread.sys_share * 100.0
                    ))
                    .unwrap_or_default()
            );
            samples.push(s);
        }
    }
    let sums: Vec<_> = cases
        .iter()
        .filter_map(|c| report::summarize(&samples, *c))
        .collect();
    let dist = report::Distance::of(&samples, args.far_ns);
    let rs = report::ratios(&sums, &samples, &dist);

    // One zero-loss run per path measured (the workers; the XDP fast path), each paced at
    // half of that path's own maximum (the lower median of its two directions).
    let mut zl = Vec::new();
    if args.zero_loss_check {
        let paths = [
            (Case::SwitchAccessTrunk, false),
            (Case::SwitchXdpAccessTrunk, true),
        ];
        let mut planned = Vec::new();
        for (case, fast) in paths {
            let max = sums
                .iter()
                .filter(|s| s.case.is_switch() && s.case.is_fast() == fast)
                .map(|s| s.delivered_mpps * 1e6)
                .fold(f64::NAN, f64::min);
            match (args.zero_loss_rate, max.is_nan()) {
                (Some(r), false) => planned.push((case, r)),
                (None, false) => planned.push((case, max / 2.0)),
                _ => {}
            }
        }
        if planned.is_empty() {
            match args.zero_loss_rate {
                Some(r) => planned.push((Case::SwitchAccessTrunk, r)),
                None => anyhow::bail!(
                    "--zero-loss-check needs a switch case measured first or --zero-loss-rate"
                ),
            }
        }
        let secs = args.zero_loss_seconds.unwrap_or(args.seconds);
        for (case, rate) in planned {
            eprintln!(
                "  zero-loss check: {} paced at {:.3} Mpps for {secs} s ...",
                case.name(),
                rate / 1e6
            );
            zl.push(
                run::zero_loss(&lab, case, rate, secs, &params)
                    .with_context(|| format!("zero-loss check of {}", case.name()))?,
            );
        }
    }

    let table = report::table(&samples, &sums, &rs, &dist, &zl);
    if args.json {
        eprint!("{table}");
        let doc = serde_json::json!({
            "params": {
                "seconds": params.seconds,
                "repeat": args.repeat,
                "warmup": params.warmup,
                "cpu": params.cpu,
                "gen_cpu": params.gen_cpu,
                "sink_cpu": sink_cpu,
                "rate": params.rate,
                "burst": params.burst,
                "spin": params.spin,
                "xdp_mode": params.xdp_mode.to_string(),
                "bridge_nf": lab.bridge_nf,
                "gen_queue": args.gen_queue,
                "frame_bytes": 60,
                "far_ns": args.far_ns,
            },
            "samples": samples,
            "summary": sums,
            "ratios": rs,
            "distance": dist,
            "zero_loss": zl,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).context("serialize JSON")?
        );
    } else {
        print!("{table}");
    }
    drop(lab);
    Ok(())
}

fn parse_mode(s: &str) -> Result<XdpMode, String> {
    match s {
        "native" => Ok(XdpMode::Native),
        "generic" => Ok(XdpMode::Generic),
        "auto" => Ok(XdpMode::Auto),
        _ => Err(format!("XDP mode {s:?}: expected native, generic or auto")),
    }
}
