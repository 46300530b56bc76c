//! systemd integration: sd_notify READY=1 / STOPPING=1 over $NOTIFY_SOCKET, a clean
//! SIGTERM stop, and the shipped unit file (ctl/vswitchd.service).

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::*;

const ONE_TAP: &str = r#"
[[bridge]]
name = "br0"

[[bridge.port]]
name = "p1"
type = "tap"
access = 10
"#;

/// Kills (SIGKILL) and reaps a child still running when dropped, also on panic.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("notify datagram within 10 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn sd_notify_ready_then_stopping() {
    if !root_or_skip("sd_notify_ready_then_stopping") {
        return;
    }
    let _w = Watchdog::new("sd_notify_ready_then_stopping", Duration::from_secs(60));
    let notify_dir = tempfile::tempdir().expect("tempdir");
    let notify_path = notify_dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut d = Vswitchd::prepare(
        Some(ONE_TAP),
        &[("NOTIFY_SOCKET", notify_path.to_str().expect("utf8"))],
    );
    d.spawn();
    assert_eq!(recv(&sock), "READY=1");
    // READY means serving: no retry needed.
    let show = d.ctl(&["show", "--json"]).json();
    assert_eq!(show[0]["ports"][0]["state"], "up");
    let before = Instant::now();
    d.signal("TERM");
    assert_eq!(recv(&sock), "STOPPING=1");
    let status = d.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "clean stop exits 0");
    assert!(
        before.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        before.elapsed()
    );
    assert!(!d.socket.exists(), "control socket removed on stop");
    let log = d.log_text();
    assert!(log.contains("vswitchd: ready: 1 bridge(s)"), "{log}");
    assert!(log.contains("stopping"), "{log}");
    // The tap went with the daemon.
    let out = run_bounded(
        {
            let mut c = std::process::Command::new("ip");
            c.args(["netns", "exec", d.ns.name(), "ip", "link", "show", "p1"]);
            c
        },
        Duration::from_secs(5),
    );
    assert!(!out.status.success(), "tap p1 left behind");
    // No further datagram (nothing after STOPPING=1).
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    assert!(sock.recv(&mut buf).is_err(), "unexpected datagram");
}

#[test]
fn sd_notify_abstract_socket() {
    let _w = Watchdog::new("sd_notify_abstract_socket", Duration::from_secs(30));
    use std::os::linux::net::SocketAddrExt;
    let name = format!("vswitch-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .expect("abstract address");
    let sock = UnixDatagram::bind_addr(&addr).expect("bind abstract");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // An abstract socket is per network namespace: run the daemon in the test's own
    // namespace by giving it an empty configuration (no taps created).
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("s.sock");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vswitchd"));
    cmd.arg("--config")
        .arg(dir.path().join("none.toml"))
        .arg("--socket")
        .arg(&socket)
        .env("NOTIFY_SOCKET", format!("@{name}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut guard = KillOnDrop(Some(cmd.spawn().expect("spawn vswitchd")));
    let child = guard.0.as_mut().expect("child");
    let ready = {
        let mut buf = [0u8; 64];
        sock.recv(&mut buf)
            .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    let killed = std::process::Command::new("kill")
        .args(["-s", "TERM", &child.id().to_string()])
        .status()
        .map(|s| s.success());
    let stopping = recv(&sock);
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let status = status.expect("vswitchd exits within 5 s of SIGTERM");
    assert_eq!(ready.expect("READY=1 within 10 s"), "READY=1");
    assert_eq!(killed.ok(), Some(true));
    assert_eq!(stopping, "STOPPING=1");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn unit_file_is_complete_and_verifies() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/vswitchd.service");
    let text = std::fs::read_to_string(path).expect("ctl/vswitchd.service");
    let value = |key: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(value("Type"), ["notify"]);
    assert_eq!(
        value("ExecStart"),
        ["/usr/local/bin/vswitchd --config /etc/vswitch/vswitchd.toml"]
    );
    assert_eq!(value("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    assert_eq!(value("Restart"), ["on-failure"]);
    assert_eq!(value("RuntimeDirectory"), ["vswitch"]);
    assert_eq!(value("LimitMEMLOCK"), ["infinity"]);
    let caps = value("CapabilityBoundingSet").join(" ");
    for cap in ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_BPF", "CAP_SYS_ADMIN"] {
        assert!(caps.split_whitespace().any(|c| c == cap), "{cap} missing");
        assert!(
            value("AmbientCapabilities")
                .join(" ")
                .split_whitespace()
                .any(|c| c == cap),
            "{cap} not ambient"
        );
    }
    let families = value("RestrictAddressFamilies").join(" ");
    for fam in ["AF_UNIX", "AF_XDP", "AF_NETLINK", "AF_PACKET", "AF_INET"] {
        assert!(
            families.split_whitespace().any(|f| f == fam),
            "{fam} blocked"
        );
    }
    // Hardening that would break AF_XDP or tap ports must stay off.
    for bad in [
        "PrivateNetwork=yes",
        "PrivateDevices=yes",
        "PrivateUsers=yes",
        "MemoryDenyWriteExecute=yes",
        "ProtectKernelTunables=yes",
    ] {
        assert!(!text.lines().any(|l| l == bad), "{bad} breaks the datapath");
    }
    // systemd's own parser, when present, with ExecStart pointed at the built binary.
    if std::path::Path::new("/usr/bin/systemd-analyze").exists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let unit = dir.path().join("vswitchd.service");
        std::fs::write(
            &unit,
            text.replace("/usr/local/bin/vswitchd", env!("CARGO_BIN_EXE_vswitchd")),
        )
        .expect("write unit");
        let mut cmd = std::process::Command::new("systemd-analyze");
        cmd.arg("verify").arg(&unit);
        let out = run_bounded(cmd, Duration::from_secs(30));
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
