//! Scale harness (issue 23): N veth ports (pod-style, plain `add-port`, access VLANs
//! spread over 2-51) added one by one to one bridge of a fresh vswitchd through
//! vswitchctl, as a CNI plugin would. Prints the time per add-port and del-port (first
//! and last 100), the daemon's RSS and open files per port, and the time of `show`,
//! `port stats --json` and a metrics scrape with every port configured. Needs root.

// tcprate's daemon guard; scale uses part of it.
#[allow(dead_code)]
#[path = "../tcprate/vswitchd.rs"]
mod vswitchd;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use vswitch_benches::harness::{check_interrupted, is_root, on_ctrl_c, sh};

#[derive(Parser, Debug)]
#[command(about = "Ports per bridge: memory, descriptors and control-operation times (root)")]
struct Args {
    /// Ports to add.
    #[arg(long, default_value_t = 1000)]
    ports: usize,
    /// CPU of the daemon's worker.
    #[arg(long, default_value_t = 1)]
    cpu: usize,
    /// Directory holding vswitchd and vswitchctl (default: this binary's directory).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

/// The veth pairs of a run, deleted when dropped (also on failure).
struct Veths {
    names: Vec<String>,
}

impl Drop for Veths {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = sh("ip", &["link", "del", n]);
        }
    }
}

/// `VmRSS` and open descriptors of `pid`.
fn rss_kib_and_fds(pid: u32) -> anyhow::Result<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("status")?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS")?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .context("fd directory")?
        .count();
    Ok((rss, fds))
}

/// Median, 90th percentile and maximum, in ms.
fn summary(ms: &[f64]) -> String {
    if ms.is_empty() {
        return "-".into();
    }
    let mut v = ms.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!("{:.1} / {:.1} / {:.1} ms", at(0.5), at(0.9), v[v.len() - 1])
}

fn timed(f: impl FnOnce() -> anyhow::Result<String>) -> anyhow::Result<(f64, String)> {
    let t = Instant::now();
    let out = f()?;
    Ok((t.elapsed().as_secs_f64() * 1e3, out))
}

/// One HTTP GET of the metrics page; returns the body's length.
fn scrape(addr: &str) -> anyhow::Result<String> {
    let mut s = std::net::TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    if !body.starts_with("HTTP/1.") || !body.contains(" 200 ") {
        bail!("metrics answered {:?}", body.lines().next());
    }
    Ok(body)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !is_root() {
        bail!("scale needs root (veth pairs, AF_PACKET sockets, eBPF)");
    }
    on_ctrl_c();
    let bin_dir = match args.bin_dir {
        Some(d) => d,
        None => std::env::current_exe()?
            .parent()
            .context("binary directory")?
            .to_path_buf(),
    };
    let tag = std::process::id() % 100_000;
    let mut veths = Veths { names: Vec::new() };
    for i in 0..args.ports {
        check_interrupted()?;
        let (a, b) = (format!("sc{tag}x{i}"), format!("sp{tag}x{i}"));
        sh(
            "ip",
            &["link", "add", &a, "type", "veth", "peer", "name", &b],
        )?;
        veths.names.push(a.clone());
        sh("ip", &["link", "set", &a, "up"])?;
        sh("ip", &["link", "set", &b, "up"])?;
    }
    // Metrics on a free loopback port.
    let metrics_addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let toml = format!(
        "{}\n[metrics]\nlisten = \"{metrics_addr}\"\n",
        vswitchd::config_toml(args.cpu, true)
    );
    let d = vswitchd::Vswitchd::start_with(&bin_dir, &toml)?;
    let pid = d.pid().context("daemon pid")?;
    d.ctl(&["add-br", "br0"])?;
    let (rss0, fds0) = rss_kib_and_fds(pid)?;
    let mut add_ms = Vec::with_capacity(args.ports);
    for (i, name) in veths.names.iter().enumerate() {
        check_interrupted()?;
        let vlan = (i % 50 + 2).to_string();
        let (ms, _) = timed(|| d.ctl(&["add-port", "br0", name, "--access", &vlan]))?;
        add_ms.push(ms);
    }
    let (rss1, fds1) = rss_kib_and_fds(pid)?;
    let (show_ms, show) = timed(|| d.ctl(&["show"]))?;
    let shown = show.matches("    Port ").count();
    if shown != args.ports {
        bail!("show lists {shown} ports, {} added", args.ports);
    }
    let (stats_ms, _) = timed(|| d.ctl(&["port", "stats", "--json"]))?;
    let metrics = timed(|| scrape(&metrics_addr.to_string()));
    let n = args.ports;
    let first = &add_ms[..n.min(100)];
    let last = &add_ms[n.saturating_sub(100)..];
    let mut del_ms = Vec::new();
    for name in veths.names.iter().rev().take(100) {
        check_interrupted()?;
        let (ms, _) = timed(|| d.ctl(&["del-port", "br0", name]))?;
        del_ms.push(ms);
    }
    let per_port = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / n as f64;
    println!(
        "scale: {n} veth ports (packet ports, fast path on) on one bridge, one worker on CPU {}",
        args.cpu
    );
    println!("| measure | value |");
    println!("|---|---:|");
    println!(
        "| add-port, ports 1-100 (median / p90 / max) | {} |",
        summary(first)
    );
    println!(
        "| add-port, ports {}-{n} | {} |",
        n.saturating_sub(100) + 1,
        summary(last)
    );
    println!("| del-port, the last 100 ports | {} |", summary(&del_ms));
    println!(
        "| daemon RSS with 0 / {n} ports | {:.1} / {:.1} MiB ({:.1} KiB per port) |",
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        per_port(rss0, rss1)
    );
    println!(
        "| open files with 0 / {n} ports | {fds0} / {fds1} ({:.1} per port) |",
        per_port(fds0 as u64, fds1 as u64)
    );
    println!("| `show` | {show_ms:.1} ms |");
    println!("| `port stats --json` | {stats_ms:.1} ms |");
    match metrics {
        Ok((ms, body)) => println!(
            "| metrics scrape ({} KiB) | {ms:.1} ms |",
            body.len() / 1024
        ),
        Err(e) => println!("| metrics scrape | failed: {e} |"),
    }
    println!("(vswitchctl times include starting the vswitchctl process, as a user or CNI plugin sees them)");
    Ok(())
}
