//! The traffic generator: an AF_XDP socket transmitting one 64-byte frame over and over,
//! as fast as it can or paced to a rate, in a child process inside the generator
//! namespace.
//!
//! Why a child process: AF_XDP setup reads /sys/class/net/IF, and sysfs shows the
//! namespace it was mounted in, so a thread that only joined the namespace (setns) cannot
//! open a port there. `ip netns exec` gives the child its own sysfs mount. The child is the
//! harness binary itself in its hidden generator role ([`run_child`]); it prints `ready`
//! once its socket is open, stops when its stdin closes, drains its TX ring and prints a
//! summary line.
//!
//! AF_XDP on veth runs in copy mode: each `sendto` makes the kernel build skbs for up to
//! 32 queued descriptors and hand them to the veth peer (0.94 Mpps on one core measured
//! here by datapath's `afxdp_tx_rate_on_veth`, faster than AF_PACKET).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::Context;
use datapath::pipeline::TxItem;
use datapath::port::{AfXdpConfig, AfXdpPort, TxPort};
use datapath::wire::Edit;

/// Frames handed to `tx_burst` per call.
const BATCH: usize = 64;
/// Paced mode sends once at least this many frames are due (keeps syscalls per frame low).
const PACE_CHUNK: u64 = 16;

/// How to start a generator.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// The harness binary (it has the hidden generator role).
    pub exe: std::path::PathBuf,
    /// Name of the generator namespace.
    pub netns: String,
    pub ifname: String,
    /// Tag frames with this VID.
    pub vid: Option<u16>,
    pub cpu: Option<usize>,
    /// Frames per second; `None`: as fast as possible.
    pub rate_pps: Option<f64>,
}

/// What a stopped generator reports.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct GenSummary {
    /// Frames the kernel took from the TX ring.
    pub sent: u64,
    /// Frames still in the TX ring after the drain timeout (0 normally).
    pub undrained: u64,
    /// Paced mode: frames of the schedule that were never sent because the generator fell
    /// more than 1 ms behind it (its thread was not running, or the path pushed back for
    /// longer than its TX ring could hold).
    pub skipped: u64,
}

/// A running generator process; stopped (stdin closed, then killed if needed) on drop.
#[derive(Debug)]
pub struct Generator {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// XDP attach mode of the generator socket, for the report.
    pub mode: String,
}

impl Generator {
    /// Starts the generator and waits until its socket is open.
    pub fn start(cfg: &GenConfig) -> anyhow::Result<Generator> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &cfg.netns])
            .arg(&cfg.exe)
            .args(["--generate-on", &cfg.ifname]);
        if let Some(v) = cfg.vid {
            cmd.args(["--gen-vid", &v.to_string()]);
        }
        if let Some(c) = cfg.cpu {
            cmd.args(["--gen-cpu", &c.to_string()]);
        }
        if let Some(r) = cfg.rate_pps {
            cmd.args(["--rate", &r.to_string()]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawn generator (ip netns exec)")?;
        let stdin = child.stdin.take();
        let stdout: ChildStdout = child.stdout.take().context("generator stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut g = Generator {
            child,
            stdin,
            lines,
            mode: String::new(),
        };
        match g.lines.recv_timeout(Duration::from_secs(30)) {
            Ok(l) if l.starts_with("ready ") => {
                g.mode = l["ready ".len()..].to_owned();
                Ok(g)
            }
            Ok(l) => anyhow::bail!("generator said: {l}"),
            Err(_) => anyhow::bail!("generator did not start (see its error above)"),
        }
    }

    /// Process id of the generator (its main thread does the sending).
    pub fn pid(&self) -> u64 {
        u64::from(self.child.id())
    }

    /// Stops, lets it drain its TX ring and returns its totals.
    pub fn stop(mut self) -> anyhow::Result<GenSummary> {
        drop(self.stdin.take());
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(10))
            .context("generator summary")?;
        let s: GenSummary = serde_json::from_str(&line).context("parse generator summary")?;
        let _ = self.child.wait();
        Ok(s)
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The generator role: runs in the generator namespace until stdin closes.
pub fn run_child(
    ifname: &str,
    frame: Vec<u8>,
    cpu: Option<usize>,
    rate: Option<f64>,
) -> anyhow::Result<()> {
    if let Some(cpu) = cpu {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    }
    let mut port = AfXdpPort::open(&AfXdpConfig::new(ifname.to_owned()))
        .with_context(|| format!("open AF_XDP on {ifname}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        s2.store(true, Ordering::Relaxed);
    });
    let mut out = std::io::stdout();
    writeln!(
        out,
        "ready AF_XDP {} mode, zero_copy={}",
        port.mode(),
        port.info().zero_copy
    )
    .context("stdout")?;
    out.flush().context("stdout")?;

    let tx = port.tx();
    let full = tx.free_frames();
    let refs: Vec<&[u8]> = vec![frame.as_slice(); BATCH];
    let items: Vec<TxItem> = (0..BATCH)
        .map(|i| TxItem {
            frame: i as u16,
            edit: Edit::Keep,
        })
        .collect();
    let start = Instant::now();
    let mut sent = 0u64;
    // Paced: a constant-rate source. When this thread was descheduled it does not catch
    // up at full speed (a burst far above the rate, which measures the generator's
    // scheduling rather than the switch): at most 1 ms worth of frames is made up, the
    // rest of the schedule is skipped (never counted as sent).
    let mut skipped = 0u64;
    let max_deficit = rate.map_or(0, |r| ((r / 1000.0) as u64).max(PACE_CHUNK));
    let mut n = 0u32;
    loop {
        n = n.wrapping_add(1);
        if n % 64 == 0 && stop.load(Ordering::Relaxed) {
            break;
        }
        let want = match rate {
            None => BATCH,
            Some(r) => {
                let due = ((start.elapsed().as_secs_f64() * r) as u64).saturating_sub(skipped);
                let mut deficit = due.saturating_sub(sent);
                if deficit > max_deficit {
                    skipped += deficit - max_deficit;
                    deficit = max_deficit;
                }
                if deficit < PACE_CHUNK {
                    tx.flush();
                    std::hint::spin_loop();
                    continue;
                }
                deficit.min(BATCH as u64) as usize
            }
        };
        let done = tx.tx_burst(&refs[..want], &[], &items[..want]);
        tx.flush();
        sent += done.sent as u64;
    }
    // Let the kernel take everything still in the ring, so `sent` is what left.
    let deadline = Instant::now() + Duration::from_millis(500);
    while tx.free_frames() < full && Instant::now() < deadline {
        tx.flush();
        std::thread::yield_now();
    }
    let undrained = full.saturating_sub(tx.free_frames()) as u64;
    let s = GenSummary {
        sent: sent.saturating_sub(undrained),
        undrained,
        skipped,
    };
    writeln!(out, "{}", serde_json::to_string(&s).context("summary")?).context("stdout")?;
    out.flush().context("stdout")?;
    Ok(())
}
