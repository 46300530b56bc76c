//! A `vswitchd` process driven through `vswitchctl`, for acceptance tests that exercise
//! the daemon (restart, logs, port state) rather than an in-process datapath.
//!
//! The binaries are looked up next to the test executable (`target/<profile>/vswitchd`;
//! `VSWITCHD` / `VSWITCHCTL` override) and brought up to date once per test process with
//! `cargo build -p vswitch-ctl --bins` (a no-op when they are fresh; `cargo test` builds
//! only the test's own crate, so a vswitchd built before a datapath change would otherwise
//! run stale code). Explicit paths are used as they are. Each [`Daemon`] gets its own directory (config file, control socket) and
//! kills its process and removes the directory on drop. Its stderr is collected so tests
//! can bound the log volume.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::testutil::unique_name;
use crate::{run_timeout, CmdOutput};

/// How long a vswitchctl call may take before the test calls the daemon unresponsive.
pub const CTL_TIMEOUT: Duration = Duration::from_secs(10);

fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf()
}

/// Paths of `vswitchd` and `vswitchctl`, built (brought up to date) once per process
/// unless both were given explicitly.
pub fn binaries() -> &'static (PathBuf, PathBuf) {
    static BINS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BINS.get_or_init(|| {
        let dir = profile_dir();
        let explicit =
            std::env::var_os("VSWITCHD").is_some() && std::env::var_os("VSWITCHCTL").is_some();
        let d = std::env::var_os("VSWITCHD").map_or_else(|| dir.join("vswitchd"), PathBuf::from);
        let c =
            std::env::var_os("VSWITCHCTL").map_or_else(|| dir.join("vswitchctl"), PathBuf::from);
        if !explicit || !d.exists() || !c.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let target = dir.parent().expect("target directory");
            let mut args = vec!["build", "-p", "vswitch-ctl", "--bins"];
            if dir.file_name().is_some_and(|n| n == "release") {
                args.push("--release");
            }
            let o = Command::new(&cargo)
                .args(&args)
                .env("CARGO_TARGET_DIR", target)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .expect("run cargo build for vswitchd");
            assert!(
                o.status.success(),
                "cargo build -p vswitch-ctl --bins failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        assert!(d.exists(), "no vswitchd at {}", d.display());
        assert!(c.exists(), "no vswitchctl at {}", c.display());
        (d, c)
    })
}

/// A running (or killed) vswitchd with its own config file and socket.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    /// Every stderr line of every incarnation, in order.
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Writes `config_toml` to a fresh config file and starts vswitchd on it.
    pub fn start(config_toml: &str) -> Daemon {
        let dir = std::env::temp_dir().join(unique_name("vsd"));
        std::fs::create_dir_all(&dir).expect("create daemon directory");
        let config = dir.join("vswitchd.toml");
        std::fs::write(&config, config_toml).expect("write daemon config");
        let mut d = Daemon {
            child: None,
            socket: dir.join("ctl.sock"),
            config,
            dir,
            log: Arc::new(Mutex::new(Vec::new())),
        };
        d.spawn();
        d
    }

    /// Starts vswitchd (again) on the same config file and socket and waits until it
    /// answers `show`.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "vswitchd already running");
        let (vswitchd, _) = binaries();
        let _ = std::fs::remove_file(&self.socket);
        let mut child = Command::new(vswitchd)
            .arg("--config")
            .arg(&self.config)
            .arg("--socket")
            .arg(&self.socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vswitchd");
        let err = child.stderr.take().expect("vswitchd stderr is piped");
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                log.lock().expect("log lock").push(line);
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("vswitchd exited at start-up ({st}): {:?}", self.log_lines());
            }
            if self.socket.exists() && self.ctl(&["show"]).success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "vswitchd did not answer within 20 s: {:?}",
                self.log_lines()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL, no cleanup (XDP programs stay attached, the socket file stays).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (up to 10 s, then SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = run_timeout(
                "kill",
                &["-TERM", &c.id().to_string()],
                Duration::from_secs(5),
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// stderr lines so far (all incarnations).
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    /// `vswitchctl --socket S args...` with [`CTL_TIMEOUT`].
    pub fn ctl(&self, args: &[&str]) -> CmdOutput {
        let (_, ctl) = binaries();
        let sock = self.socket.to_string_lossy().into_owned();
        // `--socket` belongs to the subcommand: it goes after it.
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&["--socket", &sock]);
        run_timeout(&ctl.to_string_lossy(), &all, CTL_TIMEOUT)
    }

    /// [`Daemon::ctl`], panicking with the output unless it succeeds; returns stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let o = self.ctl(args);
        assert!(
            o.success(),
            "vswitchctl {args:?} failed ({:?}, {:?}): {}{}\nvswitchd log: {:?}",
            o.status,
            o.elapsed,
            o.stdout,
            o.stderr,
            self.log_lines()
        );
        o.stdout
    }

    /// [`Daemon::ctl_ok`] with `--json` appended, parsed.
    pub fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.ctl_ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("vswitchctl {args:?}: {e}: {out}"))
    }

    /// `port stats --json` of one port.
    pub fn port_stats(&self, bridge: &str, port: &str) -> PortStats {
        let v = self.ctl_json(&["port", "stats", bridge, port]);
        let p = v
            .as_array()
            .and_then(|a| a.iter().find(|p| p["port"] == port))
            .unwrap_or_else(|| panic!("no stats for port {port}: {v}"));
        PortStats::from_json(p)
    }

    /// `port stats --json` of every port of `bridge`.
    pub fn all_port_stats(&self, bridge: &str) -> Vec<PortStats> {
        let v = self.ctl_json(&["port", "stats", bridge]);
        v.as_array()
            .unwrap_or_else(|| panic!("port stats is not a list: {v}"))
            .iter()
            .map(PortStats::from_json)
            .collect()
    }

    /// `fdb stats --json`.
    pub fn fdb_stats(&self, bridge: &str) -> serde_json::Value {
        self.ctl_json(&["fdb", "stats", bridge])
    }

    /// `fdb show --json`: (vlan, mac, port, static).
    pub fn fdb_entries(&self, bridge: &str) -> Vec<(u64, String, String, bool)> {
        let v = self.ctl_json(&["fdb", "show", bridge]);
        v.as_array()
            .unwrap_or_else(|| panic!("fdb show is not a list: {v}"))
            .iter()
            .map(|e| {
                (
                    e["vlan"].as_u64().expect("fdb entry vlan"),
                    e["mac"].as_str().expect("fdb entry mac").to_owned(),
                    e["port"].as_str().expect("fdb entry port").to_owned(),
                    e["static"].as_bool().expect("fdb entry static"),
                )
            })
            .collect()
    }

    /// `show --json`: the port views of `bridge`.
    pub fn ports(&self, bridge: &str) -> Vec<serde_json::Value> {
        let v = self.ctl_json(&["show"]);
        v.as_array()
            .and_then(|a| a.iter().find(|b| b["name"] == bridge))
            .and_then(|b| b["ports"].as_array())
            .unwrap_or_else(|| panic!("no bridge {bridge} in show: {v}"))
            .clone()
    }
}

/// A config file with `workers` PMD threads and an FDB of `fdb_capacity` entries.
pub fn config(workers: usize, fdb_capacity: usize) -> String {
    format!("[datapath]\nworkers = {workers}\n\n[fdb]\ncapacity = {fdb_capacity}\n")
}

impl Daemon {
    /// `add-br bridge`.
    pub fn add_br(&self, bridge: &str) {
        self.ctl_ok(&["add-br", bridge]);
    }

    /// `add-port bridge port --type afxdp --interface ifname opts...` (a host behind
    /// `ifname` that sends TCP/UDP needs TX checksum offload off: see
    /// [`crate::Host::for_afxdp`]).
    pub fn add_port(&self, bridge: &str, port: &str, ifname: &str, opts: &[&str]) {
        let mut args = vec![
            "add-port",
            bridge,
            port,
            "--type",
            "afxdp",
            "--interface",
            ifname,
        ];
        args.extend_from_slice(opts);
        self.ctl_ok(&args);
    }
}

impl Daemon {
    /// `add-port bridge port --type packet --interface ifname opts...` (AF_PACKET with
    /// `PACKET_VNET_HDR` on the existing interface `ifname`: superframes and partial
    /// checksums pass through, so its peer keeps the kernel's default offloads).
    pub fn add_packet_port(&self, bridge: &str, port: &str, ifname: &str, opts: &[&str]) {
        let mut args = vec![
            "add-port",
            bridge,
            port,
            "--type",
            "packet",
            "--interface",
            ifname,
        ];
        args.extend_from_slice(opts);
        self.ctl_ok(&args);
    }

    /// `add-port bridge port --type tap --interface ifname opts...` (vswitchd creates the
    /// tap device `ifname` in its own namespace).
    pub fn add_tap_port(&self, bridge: &str, port: &str, ifname: &str, opts: &[&str]) {
        let mut args = vec![
            "add-port",
            bridge,
            port,
            "--type",
            "tap",
            "--interface",
            ifname,
        ];
        args.extend_from_slice(opts);
        self.ctl_ok(&args);
    }

    /// The `show --json` view of one port.
    pub fn port_view(&self, bridge: &str, port: &str) -> serde_json::Value {
        self.ports(bridge)
            .into_iter()
            .find(|p| p["name"] == port)
            .unwrap_or_else(|| panic!("no port {port} on {bridge}"))
    }

    /// The worker a port's frames are received and transmitted on (`show --json`).
    pub fn port_worker(&self, bridge: &str, port: &str) -> u64 {
        let v = self.port_view(bridge, port);
        v["worker"]
            .as_u64()
            .unwrap_or_else(|| panic!("port {port} has no worker: {v}"))
    }

    /// The worker objects of `bridge` in `pmd show --json` (at least one).
    pub fn pmd_workers(&self, bridge: &str) -> Vec<serde_json::Value> {
        let v = self.ctl_json(&["pmd", "show"]);
        let w: Vec<serde_json::Value> = v
            .as_array()
            .unwrap_or_else(|| panic!("pmd show is not a list: {v}"))
            .iter()
            .filter(|w| w["bridge"] == bridge)
            .cloned()
            .collect();
        assert!(!w.is_empty(), "no workers of {bridge} in pmd show: {v}");
        w
    }

    /// A counter of `pmd show --json` summed over the workers of `bridge`.
    pub fn pmd_sum(&self, bridge: &str, field: &str) -> u64 {
        self.pmd_workers(bridge)
            .iter()
            .map(|w| {
                w[field]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{field} in {w}"))
            })
            .sum()
    }

    /// Frames handed from one worker to another so far (`pmd show --json`, one bridge).
    pub fn handoffs(&self, bridge: &str) -> u64 {
        self.pmd_sum(bridge, "handoff_out")
    }

    /// One counter of `fdb stats --json`.
    pub fn fdb_counter(&self, bridge: &str, name: &str) -> u64 {
        let v = self.fdb_stats(bridge);
        v[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no FDB counter {name}: {v}"))
    }
}

/// Polls `cond` every 50 ms until it holds; panics with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One port's counters as `port stats --json` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortStats {
    pub port: String,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_flooded: u64,
    pub drops: std::collections::BTreeMap<String, u64>,
}

impl PortStats {
    fn from_json(p: &serde_json::Value) -> PortStats {
        let n = |k: &str| p[k].as_u64().unwrap_or_else(|| panic!("{k} in {p}"));
        PortStats {
            port: p["port"].as_str().expect("port name").to_owned(),
            rx_packets: n("rx_packets"),
            tx_packets: n("tx_packets"),
            rx_flooded: n("rx_flooded"),
            drops: p["drops"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
    /// Drops counted for `reason` (0 when absent).
    pub fn drop(&self, reason: &str) -> u64 {
        self.drops.get(reason).copied().unwrap_or(0)
    }
    pub fn total_drops(&self) -> u64 {
        self.drops.values().sum()
    }
}
