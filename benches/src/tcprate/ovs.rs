//! Open vSwitch 3.1 with its userspace datapath (`datapath_type=netdev`) as the reference
//! switch, driven with ovs-vsctl as its users do.
//!
//! [`Ovs::ensure`] starts OVS if it is not running (and stops it again at the end of the
//! run), pins its PMD threads to the harness's `--cpu` (`pmd-cpu-mask`) and turns
//! userspace TSO on; the previous values of those two keys are put back on drop. One
//! bridge per case and round ([`OvsBridge`]), deleted on drop, which releases its ports.
//! Anything that keeps OVS from running becomes a reason the OVS cases are reported
//! unavailable, never an error of the run.
//!
//! Userspace TSO must be on when ovs-vswitchd starts. Measured with 3.1 here: turned on
//! at run time it is logged as enabled, but the first bridge made afterwards drops every
//! TCP packet with a partial checksum ("xb2: Packet dropped: No TCP checksum support"),
//! so TCP from a host with default offloads never connects. So ovsdb-server starts
//! first, the keys are set, then ovs-vswitchd starts (or restarts, if it ran without
//! TSO).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use datapath::testutil::unique_name;
use vswitch_benches::harness::{is_stale_name, pid_running, sh, sh_out};

/// Debian's init script for ovsdb-server and ovs-vswitchd.
pub const OVS_CTL: &str = "/usr/share/openvswitch/scripts/ovs-ctl";
/// ovs-vswitchd's log (where it reports TSO and dropped packets).
pub const LOG: &str = "/var/log/openvswitch/ovs-vswitchd.log";
/// Name prefix of the harness's OVS bridges.
pub const BRIDGE_PREFIX: &str = "to";
/// `other_config` keys the harness sets (and restores).
const KEYS: [&str; 2] = ["pmd-cpu-mask", "userspace-tso-enable"];
/// What ovs-vswitchd logs once userspace TSO is on.
const TSO_ON: &str = "Userspace TCP Segmentation Offloading support enabled";
/// The sequence number of ovs-vswitchd's first log line after it starts (it counts
/// per process).
const FIRST_LINE: &str = "|00001|";

/// Port type of an OVS case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OvsPort {
    /// `type=system` (AF_PACKET; with userspace TSO, with PACKET_VNET_HDR).
    System,
    /// `type=afxdp options:xdp-mode=native` (copy mode on veth).
    Afxdp,
}

/// OVS running for this run; restores its settings (and stops it if it was started here)
/// on drop.
#[derive(Debug)]
pub struct Ovs {
    started_here: bool,
    saved: Vec<(&'static str, Option<String>)>,
    pub version: String,
    pub pmd_cpu_mask: String,
    /// Whether the log shows userspace TSO on since ovs-vswitchd last started.
    pub tso_logged: bool,
}

fn vsctl(args: &[&str]) -> anyhow::Result<String> {
    let mut all = vec!["--timeout=20"];
    all.extend_from_slice(args);
    sh_out("ovs-vsctl", &all)
}

fn quiet(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ovsdb_running() -> bool {
    quiet(
        "ovs-appctl",
        &["--timeout=3", "-t", "ovsdb-server", "version"],
    )
}

fn vswitchd_running() -> bool {
    quiet(
        "ovs-appctl",
        &["--timeout=3", "-t", "ovs-vswitchd", "version"],
    )
}

fn ovs_ctl(args: &[&str]) -> Result<(), String> {
    sh(OVS_CTL, args).map_err(|e| format!("ovs-ctl {}: {e:#}", args.join(" ")))
}

fn tso_logged() -> bool {
    std::fs::read_to_string(LOG)
        .map(|l| tso_on_since_start(&l))
        .unwrap_or(false)
}

impl Ovs {
    /// OVS ready for the OVS cases, or why it is not.
    pub fn ensure(cpu: usize) -> Result<Ovs, String> {
        let version = sh_out("ovs-vswitchd", &["--version"])
            .map_err(|_| {
                "ovs-vswitchd not installed (scripts/setup.sh bench installs \
                 openvswitch-switch-dpdk)"
                    .to_owned()
            })?
            .lines()
            .next()
            .unwrap_or("")
            .to_owned();
        let start = ["start", "--system-id=random", "--no-monitor"];
        let started_here = !(ovsdb_running() && vswitchd_running());
        if !ovsdb_running() {
            ovs_ctl(&[&start[..], &["--no-ovs-vswitchd"]].concat())?;
        }
        let mut ovs = Ovs {
            started_here,
            saved: Vec::new(),
            version,
            pmd_cpu_mask: format!("0x{:x}", 1u64 << cpu),
            tso_logged: false,
        };
        for k in KEYS {
            let v = vsctl(&[
                "--if-exists",
                "get",
                "Open_vSwitch",
                ".",
                &format!("other_config:{k}"),
            ])
            .map_err(|e| format!("{e:#}"))?;
            let v = v.trim().trim_matches('"').to_owned();
            ovs.saved.push((k, (!v.is_empty()).then_some(v)));
        }
        vsctl(&[
            "--no-wait",
            "set",
            "Open_vSwitch",
            ".",
            &format!("other_config:pmd-cpu-mask={}", ovs.pmd_cpu_mask),
            "other_config:userspace-tso-enable=true",
        ])
        .map_err(|e| format!("{e:#}"))?;
        if vswitchd_running() && !tso_logged() {
            // Running without TSO since its start: restart it with TSO on.
            let _ = sh("ovs-appctl", &["-t", "ovs-vswitchd", "exit"]);
            let end = Instant::now() + Duration::from_secs(10);
            while vswitchd_running() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if !vswitchd_running() {
            ovs_ctl(&start)?;
        }
        if !vswitchd_running() {
            return Err("ovs-ctl start returned but ovs-vswitchd does not answer".to_owned());
        }
        ovs.tso_logged = tso_logged();
        ovs.remove_stale_bridges();
        Ok(ovs)
    }

    /// Deletes bridges of earlier runs that died without cleaning up.
    fn remove_stale_bridges(&self) {
        if let Ok(list) = vsctl(&["list-br"]) {
            for br in list.lines() {
                if is_stale_name(br.trim(), &[BRIDGE_PREFIX], pid_running) {
                    let _ = vsctl(&["--if-exists", "del-br", br.trim()]);
                }
            }
        }
    }

    /// A userspace-datapath bridge with `ports` (netdevs of this namespace) of type `kind`.
    pub fn bridge(&self, ports: &[&str], kind: OvsPort) -> anyhow::Result<OvsBridge> {
        let br = OvsBridge {
            name: unique_name(BRIDGE_PREFIX),
        };
        let mut args: Vec<String> = vec![
            "add-br".into(),
            br.name.clone(),
            "--".into(),
            "set".into(),
            "bridge".into(),
            br.name.clone(),
            "datapath_type=netdev".into(),
        ];
        for p in ports {
            args.extend([
                "--".into(),
                "add-port".into(),
                br.name.clone(),
                p.to_string(),
            ]);
            if kind == OvsPort::Afxdp {
                args.extend([
                    "--".into(),
                    "set".into(),
                    "interface".into(),
                    p.to_string(),
                    "type=afxdp".into(),
                    "options:xdp-mode=native".into(),
                ]);
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        vsctl(&args).context("ovs-vsctl add-br")?;
        for p in ports {
            let err = vsctl(&["get", "interface", p, "error"])?;
            let err = err.trim();
            if err != "[]" && !err.is_empty() {
                bail!("OVS port {p}: {}", err.trim_matches('"'));
            }
            let ofport = vsctl(&["get", "interface", p, "ofport"])?;
            if ofport.trim() == "-1" {
                bail!("OVS port {p}: ofport -1 (not attached)");
            }
        }
        Ok(br)
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        for (k, v) in &self.saved {
            let _ = match v {
                Some(v) => vsctl(&["set", "Open_vSwitch", ".", &format!("other_config:{k}={v}")]),
                None => vsctl(&["remove", "Open_vSwitch", ".", "other_config", k]),
            };
        }
        if self.started_here {
            let _ = sh(OVS_CTL, &["stop"]);
        }
    }
}

/// A bridge of the harness; deleted (ports released) on drop.
#[derive(Debug)]
pub struct OvsBridge {
    pub name: String,
}

impl Drop for OvsBridge {
    fn drop(&mut self) {
        let _ = vsctl(&["--if-exists", "del-br", &self.name]);
    }
}

/// Current length of ovs-vswitchd's log (where a case's new lines start).
pub fn log_len() -> u64 {
    std::fs::metadata(LOG).map(|m| m.len()).unwrap_or(0)
}

/// The warnings and errors ovs-vswitchd logged after byte `from` of its log.
pub fn log_warnings_since(from: u64) -> Vec<String> {
    let Ok(bytes) = std::fs::read(LOG) else {
        return Vec::new();
    };
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
    warnings(&String::from_utf8_lossy(&bytes[from..]))
}

/// Distinct WARN/ERR messages of ovs-vswitchd log lines (`TIME|SEQ|MODULE|LEVEL|TEXT`), in
/// order of first appearance, as `MODULE: TEXT` with ` (xN)` when repeated.
pub fn warnings(log: &str) -> Vec<String> {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for line in log.lines() {
        let f: Vec<&str> = line.splitn(5, '|').collect();
        let [_, _, module, level, text] = f[..] else {
            continue;
        };
        if level != "WARN" && level != "ERR" {
            continue;
        }
        let msg = format!("{module}: {text}");
        match seen.iter_mut().find(|(m, _)| *m == msg) {
            Some((_, n)) => *n += 1,
            None => seen.push((msg, 1)),
        }
    }
    seen.into_iter()
        .map(|(m, n)| if n > 1 { format!("{m} (x{n})") } else { m })
        .collect()
}

/// Whether the log shows userspace TSO turned on after ovs-vswitchd's last start.
pub fn tso_on_since_start(log: &str) -> bool {
    let start = log.rfind(FIRST_LINE).unwrap_or(0);
    log[start..].contains(TSO_ON)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG_SAMPLE: &str = "\
2026-12-03T16:49:20.650Z|00001|vlog|INFO|opened log file /var/log/openvswitch/ovs-vswitchd.log
2026-12-03T16:49:20.661Z|00006|userspace_tso|INFO|Userspace TCP Segmentation Offloading support enabled
2026-12-03T16:49:20.661Z|00008|bridge|INFO|ovs-vswitchd (Open vSwitch) 3.1.0
2026-12-03T16:35:02.649Z|00056|netdev|ERR|No TCP checksum support
2026-12-03T16:35:02.649Z|00057|netdev|WARN|xb2: Packet dropped: No TCP checksum support
2026-12-03T16:35:03.673Z|00058|netdev|ERR|No TCP checksum support
2026-12-03T16:35:03.673Z|00059|netdev|WARN|xb2: Packet dropped: No TCP checksum support
2026-12-03T16:37:26.878Z|00076|dpif|WARN|failed to enumerate system datapaths: No such file or directory
";

    #[test]
    fn warnings_are_distinct_and_counted() {
        assert_eq!(
            warnings(LOG_SAMPLE),
            vec![
                "netdev: No TCP checksum support (x2)",
                "netdev: xb2: Packet dropped: No TCP checksum support (x2)",
                "dpif: failed to enumerate system datapaths: No such file or directory",
            ]
        );
        assert!(warnings("garbage\n|||\n").is_empty());
    }

    #[test]
    fn tso_counts_only_after_the_last_start() {
        assert!(tso_on_since_start(LOG_SAMPLE));
        let restarted = format!(
            "{LOG_SAMPLE}2026-12-03T17:00:00.000Z|00001|vlog|INFO|opened log file /var/log/openvswitch/ovs-vswitchd.log\n"
        );
        assert!(!tso_on_since_start(&restarted));
        assert!(!tso_on_since_start(""));
    }
}
