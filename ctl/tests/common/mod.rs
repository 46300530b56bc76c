//! Shared fixture of the control-plane integration tests (root required).
//!
//! Every [`Vswitchd`] runs in a network namespace of its own (`ip netns exec`), with IPv6
//! off and loopback up, so the tap devices it creates are private to the test, the
//! kernel sends nothing on them (exact counters), and removing the namespace cleans up.
//! The daemon is killed and the namespace removed in `Drop`, also when a test panics;
//! a [`Watchdog`] bounds every test and, if it fires, kills every daemon of the
//! process, removes their namespaces and exits.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use datapath::testutil::{self, root_or_skip, Capture, Netns};

/// Daemons (pid, namespace) alive in this process, for the watchdog.
static LIVE: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());

/// Bounds a test: after `limit`, kills every daemon of this process, removes their
/// namespaces and exits the test process with a message. Dropping it disarms it.
#[derive(Debug)]
pub struct Watchdog {
    done: Option<mpsc::Sender<()>>,
}

impl Watchdog {
    pub fn new(test: &'static str, limit: Duration) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("WATCHDOG: test {test} exceeded {limit:?}; killing daemons");
                let live = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
                for (pid, ns) in live {
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
                }
                std::process::exit(101);
            }
        });
        Watchdog { done: Some(tx) }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(());
        }
    }
}

/// A unique tap/port name of at most 15 bytes.
pub fn name(prefix: &str) -> String {
    testutil::unique_name(prefix)
}

/// Output of one `vswitchctl` run.
#[derive(Debug)]
pub struct Ctl {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ctl {
    /// Asserts exit 0 and returns stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        assert_eq!(
            self.code, 0,
            "vswitchctl failed: stdout {:?} stderr {:?}",
            self.stdout, self.stderr
        );
        self.stdout
    }
    /// Parses stdout as JSON after asserting exit 0.
    #[track_caller]
    pub fn json(self) -> serde_json::Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("JSON {out:?}: {e}"))
    }
}

/// Runs a command with a hard deadline (killed and panicking on expiry).
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn command");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait for command"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("command {cmd:?} did not finish within {limit:?}");
        }
    }
}

/// Runs `vswitchctl ARGS` against `socket` (given as VSWITCH_SOCKET, so ARGS stay exact).
pub fn vswitchctl_at(socket: &Path, args: &[&str]) -> Ctl {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vswitchctl"));
    cmd.args(args).env("VSWITCH_SOCKET", socket);
    let out = run_bounded(cmd, Duration::from_secs(20));
    Ctl {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running `vswitchd` in its own network namespace.
#[derive(Debug)]
pub struct Vswitchd {
    pub ns: Netns,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    /// Extra environment for (re)starts.
    env: Vec<(String, String)>,
}

/// Prepares a fresh namespace: loopback up, IPv6 off for every interface created in it.
fn new_ns() -> Netns {
    let ns = Netns::new("vd");
    ns.exec(
        "sh",
        &[
            "-c",
            "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; \
             echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; ip link set lo up",
        ],
    );
    ns
}

impl Vswitchd {
    /// Starts a daemon with `config_text` as its configuration file (None: no file).
    pub fn start(config_text: Option<&str>) -> Vswitchd {
        Vswitchd::start_with_env(config_text, &[])
    }

    pub fn start_with_env(config_text: Option<&str>, env: &[(&str, &str)]) -> Vswitchd {
        let mut d = Vswitchd::prepare(config_text, env);
        d.spawn();
        d.wait_ready();
        d
    }

    /// Namespace, directory and config file, without starting the daemon.
    pub fn prepare(config_text: Option<&str>, env: &[(&str, &str)]) -> Vswitchd {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("vswitchd.toml");
        if let Some(t) = config_text {
            std::fs::write(&config, t).expect("write config");
        }
        Vswitchd {
            ns: new_ns(),
            socket: dir.path().join("vswitchd.sock"),
            log: dir.path().join("vswitchd.log"),
            config,
            dir,
            child: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// Spawns the daemon (stderr appended to `log`).
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "daemon already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open daemon log");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.ns.name()])
            .arg(env!("CARGO_BIN_EXE_vswitchd"))
            .arg("--config")
            .arg(&self.config)
            .arg("--socket")
            .arg(&self.socket)
            .env_remove("NOTIFY_SOCKET")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = cmd.spawn().expect("spawn vswitchd");
        if let Ok(mut l) = LIVE.lock() {
            l.push((child.id(), self.ns.name().to_string()));
        }
        self.child = Some(child);
    }

    /// Waits (at most 10 s) until the control socket answers.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("vswitchd exited early ({st}): {}", self.log_text());
                }
            }
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "vswitchd not ready within 10 s: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon running").id()
    }

    /// Sends a signal by name ("HUP", "TERM").
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args(["-s", sig, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -s {sig} failed");
    }

    /// Waits (bounded) for the daemon to exit and returns its status.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        let c = self.child.as_mut().expect("daemon running");
        loop {
            if let Some(st) = c.try_wait().expect("try_wait") {
                let pid = c.id();
                self.child = None;
                forget_pid(pid);
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "vswitchd did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            forget_pid(c.id());
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) until the daemon's log contains `needle`.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let t = self.log_text();
            if t.contains(needle) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "daemon log lacks {needle:?} after {limit:?}: {t}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `vswitchctl ARGS` against this daemon.
    pub fn ctl(&self, args: &[&str]) -> Ctl {
        vswitchctl_at(&self.socket, args)
    }

    /// AF_PACKET socket on a device in the daemon's namespace.
    pub fn capture(&self, ifname: &str) -> Capture {
        Capture::open_in(&self.ns, ifname)
    }

    /// One raw request line; returns the reply line (empty if the daemon closed).
    pub fn raw(&self, line: &[u8]) -> String {
        let mut s = UnixStream::connect(&self.socket).expect("connect control socket");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        s.set_write_timeout(Some(Duration::from_secs(10)))
            .expect("write timeout");
        s.write_all(line).expect("write request");
        let mut reply = String::new();
        let _ = BufReader::new(&s).read_line(&mut reply);
        reply
    }
}

fn forget_pid(pid: u32) {
    if let Ok(mut l) = LIVE.lock() {
        l.retain(|(p, _)| *p != pid);
    }
}

impl Drop for Vswitchd {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("--- vswitchd log ---\n{}", self.log_text());
        }
        // `ns` drops after this: the namespace (and any tap left) goes away.
    }
}

/// A request line of the control protocol.
pub fn req(json: &str) -> Vec<u8> {
    format!("{{\"version\":1,\"request\":{json}}}\n").into_bytes()
}

/// Test MACs.
pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
pub const BCAST: [u8; 6] = [0xff; 6];

/// Sends `frame` into `from`'s kernel side and returns the test frames `to` received
/// within `wait` (stops early once `want` arrived).
pub fn send_and_collect(
    from: &Capture,
    to: &Capture,
    frame: &[u8],
    want: usize,
    wait: Duration,
) -> Vec<Vec<u8>> {
    from.send(frame);
    to.collect_test_frames(want, wait)
}

/// Proves `a` -> `b` forwarding with `n` fresh frames (sequence numbers from `seq`):
/// every frame arrives unchanged. Retries nothing: a lost frame fails the test.
#[track_caller]
pub fn assert_forwards(a: &Capture, b: &Capture, src: [u8; 6], seq: u32, n: u32) {
    for i in 0..n {
        let f = testutil::test_frame(BCAST, src, seq + i, 60);
        a.send(&f);
        let got = b.collect_test_frames(1, Duration::from_secs(3));
        assert_eq!(got, vec![f], "frame {} not forwarded unchanged", seq + i);
    }
}

/// Drains whatever test frames are pending on a capture (for a clean slate).
pub fn drain(c: &Capture) {
    while c.recv().is_some() {}
}

/// GET `path` over HTTP/1.0 from `addr` inside namespace `ns`; returns (status line, body).
pub fn http_get(ns: &Netns, addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let stream = datapath::sys::netns::run_in(&ns.path(), move || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
    })
    .expect("enter namespace")
    .expect("connect metrics");
    let mut s = stream;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .expect("send GET");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read response");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP header end");
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// A free TCP port on 127.0.0.1 inside `ns`.
pub fn free_port_in(ns: &Netns) -> u16 {
    datapath::sys::netns::run_in(&ns.path(), || {
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr())
    })
    .expect("enter namespace")
    .expect("bind 127.0.0.1:0")
    .port()
}
