//! Driving `vswitch-cni` the way a container runtime does: the `CNI_*` environment, the
//! network configuration on stdin, the result or the error object on stdout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::daemon::binaries;
use crate::testutil::unique_name;

/// Where the standard plugins (host-local, static) are (Debian's
/// containernetworking-plugins).
pub const CNI_PLUGINS: &str = "/usr/lib/cni";

/// The `vswitch-cni` binary next to vswitchd (built with it).
pub fn plugin() -> PathBuf {
    binaries().1.with_file_name("vswitch-cni")
}

/// Panics with the fix when host-local is missing (scripts/setup.sh installs it).
pub fn require_plugins() {
    let p = Path::new(CNI_PLUGINS).join("host-local");
    assert!(
        p.exists(),
        "{} missing: install containernetworking-plugins (bash scripts/setup.sh test)",
        p.display()
    );
}

/// One plugin run.
#[derive(Debug)]
pub struct Call {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Call {
    /// stdout as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "vswitch-cni stdout is not JSON ({e}): {:?} (stderr {:?})",
                self.stdout, self.stderr
            )
        })
    }

    /// Asserts success; returns the result JSON (or Null for no output).
    #[track_caller]
    pub fn ok(&self) -> Value {
        assert_eq!(
            self.code,
            Some(0),
            "vswitch-cni failed: {} {}",
            self.stdout,
            self.stderr
        );
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts failure with CNI error `code`; returns the error's `msg`.
    #[track_caller]
    pub fn err(&self, code: u64) -> String {
        assert_ne!(self.code, Some(0), "vswitch-cni succeeded: {}", self.stdout);
        let j = self.json();
        assert_eq!(j["code"].as_u64(), Some(code), "error object {j}");
        assert!(j["cniVersion"].is_string(), "error object {j}");
        j["msg"].as_str().expect("msg").to_string()
    }
}

/// Longest a plugin run may take (vswitchd's own answer is bounded by 30 s).
const CNI_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

/// Runs the plugin for `command` with the attachment variables and `conf` on stdin;
/// killed (and the test failed) after [`CNI_TIMEOUT`].
pub fn cni(command: &str, cid: &str, netns: &str, ifname: &str, args: &str, conf: &str) -> Call {
    let mut child = Command::new(plugin())
        .env_remove("VSWITCH_SOCKET")
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", cid)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", ifname)
        .env("CNI_ARGS", args)
        .env("CNI_PATH", CNI_PLUGINS)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vswitch-cni");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(conf.as_bytes())
        .expect("write the configuration");
    let o = crate::collect_output(child, std::time::Instant::now(), CNI_TIMEOUT);
    let Some(status) = o.status else {
        panic!("vswitch-cni {command} did not finish within {CNI_TIMEOUT:?}");
    };
    Call {
        code: status.code(),
        stdout: o.stdout,
        stderr: o.stderr,
    }
}

/// A directory removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique_name(prefix));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, p: &str) -> String {
        self.0.join(p).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The port of `bridge` owned by attachment (`cid`, `ifname`) in `show --json` output.
pub fn port_of(show: &Value, bridge: &str, cid: &str, ifname: &str) -> Option<Value> {
    show.as_array()?.iter().find(|b| b["name"] == bridge)?["ports"]
        .as_array()?
        .iter()
        .find(|p| p["owner"]["container_id"] == cid && p["owner"]["ifname"] == ifname)
        .cloned()
}

/// `ip -j ...` (in `netns` when given), parsed.
pub fn ip_json(netns: Option<&str>, args: &[&str]) -> Value {
    let mut all: Vec<&str> = Vec::new();
    if let Some(ns) = netns {
        all.extend_from_slice(&["-n", ns]);
    }
    all.push("-j");
    all.extend_from_slice(args);
    let o = crate::run_ok("ip", &all);
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("ip {all:?}: {e}: {}", o.stdout))
}

/// Whether interface `ifname` exists (in `netns` when given).
pub fn link_exists(netns: Option<&str>, ifname: &str) -> bool {
    let mut all: Vec<&str> = Vec::new();
    if let Some(ns) = netns {
        all.extend_from_slice(&["-n", ns]);
    }
    all.extend_from_slice(&["link", "show", "dev", ifname]);
    crate::run_timeout("ip", &all, std::time::Duration::from_secs(10)).success()
}
