//! One vswitchd per vswitch case, driven through vswitchctl as a user would: a temporary
//! configuration (one worker pinned to the chosen CPU) and control socket, stopped with
//! SIGTERM (workers drained, XDP programs detached, taps closed) when the guard drops.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use vswitch_benches::harness::{check_interrupted, pid_running};

/// Prefix of the temporary directory of a run's daemons: `tcprate-PID-`.
const DIR_PREFIX: &str = "tcprate-";

/// The daemon's configuration: one worker, pinned to `cpu`; `packet_fast_path` as given
/// (the default is on).
pub fn config_toml(cpu: usize, packet_fast_path: bool) -> String {
    format!("[datapath]\nworkers = 1\ncpus = [{cpu}]\npacket_fast_path = {packet_fast_path}\n")
}

/// A running vswitchd with its own configuration and socket.
#[derive(Debug)]
pub struct Vswitchd {
    child: Option<Child>,
    ctl: PathBuf,
    sock: PathBuf,
    log: PathBuf,
    // Last: removed after the daemon stopped.
    _dir: tempfile::TempDir,
}

impl Vswitchd {
    /// Starts `BIN_DIR/vswitchd` with one worker on `cpu` (and the packet ports' fast path
    /// on or off) and waits until its control socket answers.
    pub fn start(bin_dir: &Path, cpu: usize, packet_fast_path: bool) -> anyhow::Result<Vswitchd> {
        Vswitchd::start_with(bin_dir, &config_toml(cpu, packet_fast_path))
    }

    /// Starts `BIN_DIR/vswitchd` with the configuration `toml` and waits until its
    /// control socket answers.
    pub fn start_with(bin_dir: &Path, toml: &str) -> anyhow::Result<Vswitchd> {
        let daemon = bin_dir.join("vswitchd");
        let ctl = bin_dir.join("vswitchctl");
        for b in [&daemon, &ctl] {
            if !b.exists() {
                bail!(
                    "{} not found (cargo build --release -p vswitch-ctl, or --bin-dir)",
                    b.display()
                );
            }
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
            .tempdir()
            .context("temporary directory")?;
        let config = dir.path().join("vswitchd.toml");
        let sock = dir.path().join("vswitchd.sock");
        let log = dir.path().join("vswitchd.log");
        std::fs::write(&config, toml).context("write vswitchd config")?;
        let log_file = File::create(&log).context("vswitchd log")?;
        let child = Command::new(&daemon)
            .arg("--config")
            .arg(&config)
            .arg("--socket")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("vswitchd log")?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("spawn {}", daemon.display()))?;
        let mut d = Vswitchd {
            child: Some(child),
            ctl,
            sock,
            log,
            _dir: dir,
        };
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            check_interrupted()?;
            if let Some(c) = d.child.as_mut() {
                if let Ok(Some(s)) = c.try_wait() {
                    bail!("vswitchd exited at start ({s}): {}", d.log_tail(5));
                }
            }
            if d.sock.exists() && d.ctl(&["show"]).is_ok() {
                return Ok(d);
            }
            if Instant::now() >= end {
                bail!(
                    "vswitchd did not answer on {} within 10 s: {}",
                    d.sock.display(),
                    d.log_tail(5)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `vswitchctl --socket SOCK ARGS` and returns its stdout; the error carries
    /// the command and what vswitchctl printed.
    pub fn ctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(&self.ctl)
            .arg("--socket")
            .arg(&self.sock)
            .args(["--timeout", "10"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("spawn {}", self.ctl.display()))?;
        if !out.status.success() {
            // clap's usage errors end with a pointer to --help: not a reason.
            let err = String::from_utf8_lossy(&out.stderr);
            let err: Vec<&str> = err
                .lines()
                .filter(|l| !l.starts_with("For more information"))
                .collect();
            bail!("vswitchctl {}: {}", args.join(" "), err.join(" ").trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The daemon's process id (None once stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The last `n` lines of the daemon's log, joined with " | ".
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = &lines[lines.len().saturating_sub(n)..];
        if tail.is_empty() {
            "(log empty)".to_owned()
        } else {
            tail.join(" | ")
        }
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGTERM is the daemon's clean stop; SIGKILL if it does not exit in 5 s.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Vswitchd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The harness PID in a path holding `tcprate-PID-`, if any.
fn owner_pid(path: &str) -> Option<&str> {
    let rest = &path[path.find(DIR_PREFIX)? + DIR_PREFIX.len()..];
    let (pid, _) = rest.split_once('-')?;
    (!pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())).then_some(pid)
}

/// The harness PID of a vswitchd command line (`/proc/PID/cmdline`, NUL-separated)
/// started by this harness (its `--config` is in a `tcprate-PID-` directory).
pub fn daemon_owner(cmdline: &str) -> Option<&str> {
    let mut args = cmdline.split('\0');
    if !args.next()?.ends_with("vswitchd") {
        return None;
    }
    args.find_map(owner_pid)
}

/// Stops daemons, and removes temporary directories, of runs killed without cleaning up
/// (their harness PID is gone). Returns what was stopped or removed.
pub fn remove_stale() -> Vec<String> {
    let mut done = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmdline) = std::fs::read_to_string(entry.path().join("cmdline")) else {
            continue;
        };
        if daemon_owner(&cmdline).is_some_and(|o| !pid_running(o)) {
            let pid = entry.file_name().to_string_lossy().into_owned();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            done.push(format!("vswitchd {pid}"));
        }
    }
    for entry in std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(DIR_PREFIX) && owner_pid(&name).is_some_and(|o| !pid_running(o)) {
            let _ = std::fs::remove_dir_all(entry.path());
            done.push(entry.path().display().to_string());
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_pins_one_worker() {
        assert_eq!(
            config_toml(1, true),
            "[datapath]\nworkers = 1\ncpus = [1]\npacket_fast_path = true\n"
        );
        assert!(config_toml(0, false).ends_with("packet_fast_path = false\n"));
    }

    #[test]
    fn daemons_of_this_harness_are_told_by_their_config_path() {
        let ours = "/work/wt-bench/target/release/vswitchd\0--config\0/tmp/tcprate-19251-pR9F5S/vswitchd.toml\0--socket\0/tmp/tcprate-19251-pR9F5S/vswitchd.sock\0";
        assert_eq!(daemon_owner(ours), Some("19251"));
        let theirs = "/work/main/target/release/vswitchd\0--config\0/tmp/tmp.SAxVcRo3dP/c.toml\0";
        assert_eq!(daemon_owner(theirs), None);
        let not_a_daemon = "vim\0/tmp/tcprate-19251-x/vswitchd.toml\0";
        assert_eq!(daemon_owner(not_a_daemon), None);
        assert_eq!(owner_pid("tcprate-12-abc"), Some("12"));
        assert_eq!(owner_pid("tcprate--abc"), None);
        assert_eq!(owner_pid("tcprate-try.json"), None);
    }
}
