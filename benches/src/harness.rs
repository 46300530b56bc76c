//! Plumbing shared by the harnesses that drive real interfaces (`pktrate`, `tcprate`):
//! running commands with their stderr in the error, Ctrl-C that turns into an error at the
//! next wait (so guards clean up on the way out), medians, bridge netfilter in a namespace,
//! the root check and the removal of what a killed run left behind.
//!
//! Names the harnesses create are `PREFIX PID x N` ([`datapath::testutil::unique_name`]),
//! veth ends add `a`/`b`: [`remove_stale`] recognizes them by that shape and a PID that no
//! longer runs.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Set by the Ctrl-C handler; every wait checks it.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C handler of a harness: the first Ctrl-C sets [`INTERRUPTED`] (the
/// run stops at its next check and its guards clean up), a second one exits at once.
pub fn on_ctrl_c() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: cleaning up (Ctrl-C again to exit at once)");
    });
}

/// Fails with "interrupted" once Ctrl-C was pressed.
pub fn check_interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps `secs`, waking early (with an error) on Ctrl-C.
pub fn sleep_checked(secs: f64) -> anyhow::Result<()> {
    let end = Instant::now() + Duration::from_secs_f64(secs.max(0.0));
    while Instant::now() < end {
        check_interrupted()?;
        let left = end.saturating_duration_since(Instant::now());
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
    Ok(())
}

/// Runs `cmd args`; the error names the command and carries its stderr.
pub fn sh(cmd: &str, args: &[&str]) -> anyhow::Result<()> {
    sh_out(cmd, args).map(|_| ())
}

/// Runs `cmd args` and returns its stdout; the error names the command and carries its
/// stderr.
pub fn sh_out(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("spawn {cmd}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = if err.trim().is_empty() {
            String::from_utf8_lossy(&out.stdout)
        } else {
            err
        };
        bail!("{cmd} {}: {}", args.join(" "), err.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Median of `v`; NaN when empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Turns bridge netfilter calls off in namespace `ns` if br_netfilter is there (its
/// sysctls are per namespace, so the host's stay as they are); says what was done.
pub fn disable_bridge_nf(ns: &str) -> String {
    let keys = [
        "net.bridge.bridge-nf-call-iptables",
        "net.bridge.bridge-nf-call-ip6tables",
        "net.bridge.bridge-nf-call-arptables",
    ];
    let done: Vec<&str> = keys
        .into_iter()
        .filter(|k| {
            sh(
                "ip",
                &["netns", "exec", ns, "sysctl", "-q", "-w", &format!("{k}=0")],
            )
            .is_ok()
        })
        .collect();
    if done.is_empty() {
        "br_netfilter not present (nothing to disable)".to_owned()
    } else {
        format!("{} = 0 in namespace {ns}", done.join(", "))
    }
}

/// Runs a constructor of [`datapath::testutil`] (which panics with context on failure:
/// the message is already on stderr) and turns the panic into an error.
pub fn built<T>(what: &str, f: impl FnOnce() -> T) -> anyhow::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|_| anyhow::anyhow!("{what} failed (see above)"))
}

/// Whether this process runs with effective UID 0.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| effective_uid(&s))
        == Some(0)
}

/// The effective UID from the text of /proc/PID/status (`Uid: real effective saved fs`).
pub fn effective_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Whether `name` is one the harness using `prefixes` made in a process that is gone:
/// `PREFIX PID x N`, optionally followed by `a` or `b` (veth ends).
pub fn is_stale_name(name: &str, prefixes: &[&str], pid_alive: impl Fn(&str) -> bool) -> bool {
    let Some(rest) = prefixes.iter().find_map(|p| name.strip_prefix(p)) else {
        return false;
    };
    let Some((pid, tail)) = rest.split_once('x') else {
        return false;
    };
    let tail = tail.strip_suffix(['a', 'b']).unwrap_or(tail);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(pid) && digits(tail) && !pid_alive(pid)
}

/// Whether process `pid` (decimal) exists and has not exited (a zombie waiting for its
/// parent to reap it has).
pub fn pid_running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| process_state(&stat) != Some('Z'))
}

/// The state letter of a /proc/PID/stat line (`PID (COMM) STATE ...`; COMM may hold
/// spaces and parentheses, the state follows the last `)`).
pub fn process_state(stat: &str) -> Option<char> {
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Removes namespaces (killing the processes still in them) and links (in the current
/// namespace) left by earlier runs of a harness that died without cleaning up (SIGKILL),
/// recognized by [`is_stale_name`]. Returns what was removed.
pub fn remove_stale(prefixes: &[&str]) -> Vec<String> {
    let mut removed = Vec::new();
    if let Ok(out) = sh_out("ip", &["netns", "list"]) {
        for line in out.lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if !is_stale_name(name, prefixes, pid_running) {
                continue;
            }
            // Children of the killed run (traffic generators, iperf3, ping) outlive it
            // and would keep running, some spinning, once their interfaces are gone.
            if let Ok(pids) = sh_out("ip", &["netns", "pids", name]) {
                for pid in pids.split_whitespace() {
                    let _ = sh("kill", &["-KILL", pid]);
                    removed.push(format!("process {pid}"));
                }
            }
            if sh("ip", &["netns", "del", name]).is_ok() {
                removed.push(name.to_owned());
            }
        }
    }
    if let Ok(out) = sh_out("ip", &["-o", "link", "show"]) {
        for line in out.lines() {
            let name = line
                .split(':')
                .nth(1)
                .map(|s| s.trim().split('@').next().unwrap_or(""))
                .unwrap_or("");
            if is_stale_name(name, prefixes, pid_running)
                && sh("ip", &["link", "del", name]).is_ok()
            {
                removed.push(name.to_owned());
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }

    #[test]
    fn effective_uid_is_the_second_uid_field() {
        let status = "Name:\tcat\nUmask:\t0022\nState:\tR (running)\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(effective_uid("Uid:\t1000\t1000\t1000\t1000\n"), Some(1000));
        assert_eq!(effective_uid("Name:\tx\n"), None);
    }

    #[test]
    fn process_state_follows_the_last_parenthesis() {
        assert_eq!(process_state("20003 (tcprate) Z 1 20003 0 0"), Some('Z'));
        assert_eq!(process_state("77 (a) b (c)) S 1 77"), Some('S'));
        assert_eq!(process_state("garbage"), None);
    }

    #[test]
    fn stale_names_need_the_shape_and_a_dead_pid() {
        let p = ["tv", "t1"];
        let alive = |pid: &str| pid == "4242";
        assert!(is_stale_name("tv123x7a", &p, alive));
        assert!(is_stale_name("tv123x7b", &p, alive));
        assert!(is_stale_name("t1123x0", &p, alive));
        assert!(!is_stale_name("tv4242x7a", &p, alive), "pid still running");
        assert!(!is_stale_name("tv123x", &p, alive), "no counter");
        assert!(!is_stale_name("tvx7", &p, alive), "no pid");
        assert!(!is_stale_name("tv12ax7", &p, alive), "pid not numeric");
        assert!(!is_stale_name("eth0", &p, alive), "other prefix");
        assert!(!is_stale_name("pg123x1", &p, alive), "other harness");
    }
}
