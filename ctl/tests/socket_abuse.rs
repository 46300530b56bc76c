//! Control-socket abuse (root): each case is followed by proof that the daemon still
//! answers `show` and still forwards frames between two tap ports. Also: the metrics
//! listener cannot lock out or stall the control socket, and group access.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::*;

const TWO_PORTS: &str = r#"
[[bridge]]
name = "br0"

[[bridge.port]]
name = "p1"
type = "tap"
access = 10

[[bridge.port]]
name = "p2"
type = "tap"
access = 10
"#;

const SHOW_TEXT: &str = "Bridge br0\n\
    \x20   Port p1\n\
    \x20       vlan: access 10\n\
    \x20       Interface p1 (tap, pmd 0): up\n\
    \x20   Port p2\n\
    \x20       vlan: access 10\n\
    \x20       Interface p2 (tap, pmd 0): up\n";

struct Rig {
    d: Vswitchd,
    p1: Capture,
    p2: Capture,
    seq: u32,
    /// What `show` answers.
    show: String,
}

impl Rig {
    fn new() -> Rig {
        let d = Vswitchd::start(Some(TWO_PORTS));
        let p1 = d.capture("p1");
        let p2 = d.capture("p2");
        Rig {
            d,
            p1,
            p2,
            seq: 0,
            show: SHOW_TEXT.to_string(),
        }
    }
    /// `show` answers with the unchanged tree, and p1 -> p2 forwards.
    #[track_caller]
    fn assert_alive(&mut self) {
        assert_eq!(self.d.ctl(&["show"]).ok(), self.show);
        assert_forwards(&self.p1, &self.p2, MAC_A, self.seq, 2);
        self.seq += 2;
    }
}

fn connect(d: &Vswitchd) -> UnixStream {
    let s = UnixStream::connect(&d.socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    s.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("write timeout");
    s
}

fn read_reply(r: &mut BufReader<&UnixStream>) -> serde_json::Value {
    let mut line = String::new();
    r.read_line(&mut line).expect("read reply");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("reply {line:?}: {e}"))
}

/// Reads until EOF (bounded by the read timeout); true if the peer closed.
fn closed(s: &UnixStream) -> bool {
    read_to_close(s)
}

/// Reads and discards until EOF or a read error (a timeout); true if the peer closed.
fn read_to_close(mut r: impl Read) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn non_root_peer_is_refused() {
    if !root_or_skip("non_root_peer_is_refused") {
        return;
    }
    let _w = Watchdog::new("non_root_peer_is_refused", Duration::from_secs(60));
    let mut rig = Rig::new();
    let as_nobody = |socket: &std::path::Path| {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_vswitchctl"),
            "show",
        ])
        .env("VSWITCH_SOCKET", socket);
        run_bounded(cmd, Duration::from_secs(15))
    };
    // The socket (0660, root's directory) keeps the file system shut: refused.
    let out = as_nobody(&rig.d.socket);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}"
    );
    rig.assert_alive();
    // Opened up on the file system, the daemon's own peer check answers `unauthorized`.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(rig.d.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod dir");
    std::fs::set_permissions(&rig.d.socket, std::fs::Permissions::from_mode(0o666))
        .expect("chmod socket");
    let out = as_nobody(&rig.d.socket);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "vswitchctl: permission denied: only root, the daemon's user or the socket's group may connect\n"
    );
    assert_eq!(out.stdout, b"");
    rig.assert_alive();
}

#[test]
fn ten_megabyte_request_is_too_large() {
    if !root_or_skip("ten_megabyte_request_is_too_large") {
        return;
    }
    let _w = Watchdog::new("ten_megabyte_request_is_too_large", Duration::from_secs(60));
    let mut rig = Rig::new();
    let s = connect(&rig.d);
    let writer = s.try_clone().expect("clone");
    let t = std::thread::spawn(move || {
        let mut w = writer;
        let mut big = vec![b'x'; 10 << 20];
        big.push(b'\n');
        // The daemon stops reading and closes: a short write (EPIPE) is expected.
        w.write_all(&big).is_ok()
    });
    let mut r = BufReader::new(&s);
    let reply = read_reply(&mut r);
    assert_eq!(
        reply,
        serde_json::json!({"version": 1, "error": {"code": "too_large",
            "message": "request exceeds 1048576 bytes"}})
    );
    assert!(closed(&s), "connection not closed after too_large");
    assert!(!t.join().expect("writer thread"), "all 10 MB were accepted");
    rig.assert_alive();
}

#[test]
fn malformed_json_then_valid_request_on_same_connection() {
    if !root_or_skip("malformed_json_then_valid_request_on_same_connection") {
        return;
    }
    let _w = Watchdog::new("malformed_json", Duration::from_secs(60));
    let mut rig = Rig::new();
    let s = connect(&rig.d);
    (&s).write_all(b"{this is not json\n").expect("write");
    let mut r = BufReader::new(&s);
    let reply = read_reply(&mut r);
    assert_eq!(reply["version"], 1);
    assert_eq!(reply["error"]["code"], "usage");
    let msg = reply["error"]["message"].as_str().expect("message");
    assert!(
        msg.starts_with("malformed request: key must be a string"),
        "{msg}"
    );
    // Unknown op, wrong version, unknown field: classified, connection kept.
    (&s).write_all(&req(r#"{"op":"explode"}"#)).expect("write");
    assert_eq!(read_reply(&mut r)["error"]["code"], "usage");
    (&s).write_all(b"{\"version\":2,\"request\":{\"op\":\"show\"}}\n")
        .expect("write");
    assert_eq!(read_reply(&mut r)["error"]["code"], "version");
    (&s).write_all(&req(r#"{"op":"show","x":1}"#))
        .expect("write");
    assert_eq!(read_reply(&mut r)["error"]["code"], "usage");
    (&s).write_all(&req(r#"{"op":"show"}"#)).expect("write");
    let ok = read_reply(&mut r);
    assert_eq!(ok["ok"]["kind"], "show");
    assert_eq!(ok["ok"]["bridges"][0]["name"], "br0");
    assert_eq!(ok["ok"]["bridges"][0]["ports"][1]["name"], "p2");
    drop(r);
    drop(s);
    rig.assert_alive();
}

#[test]
fn half_open_client_is_closed_after_timeout() {
    if !root_or_skip("half_open_client_is_closed_after_timeout") {
        return;
    }
    let _w = Watchdog::new("half_open_client", Duration::from_secs(60));
    let mut rig = Rig::new();
    let s = connect(&rig.d);
    let start = Instant::now();
    (&s).write_all(br#"{"version":1,"request":{"op":"sh"#)
        .expect("write half a line");
    // Others are served meanwhile, at once.
    for _ in 0..3 {
        let t = Instant::now();
        rig.assert_alive();
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "served late: {:?}",
            t.elapsed()
        );
    }
    let mut r = BufReader::new(&s);
    let reply = read_reply(&mut r);
    let after = start.elapsed();
    assert_eq!(
        reply,
        serde_json::json!({"version": 1, "error": {"code": "timeout",
            "message": "no complete request within 5s"}})
    );
    assert!(
        after >= Duration::from_millis(4900) && after < Duration::from_secs(7),
        "closed after {after:?}"
    );
    assert!(closed(&s), "half-open client not closed");
    rig.assert_alive();
}

/// A stopped and continued daemon (SIGSTOP/SIGCONT, as a debugger or `strace -p` attaching
/// does) keeps serving: the control loop's wait returns EINTR then (signal(7)), which
/// used to end vswitchd with "control loop: Interrupted system call".
#[test]
fn stop_and_continue_keeps_the_daemon_serving() {
    if !root_or_skip("stop_and_continue_keeps_the_daemon_serving") {
        return;
    }
    let _w = Watchdog::new(
        "stop_and_continue_keeps_the_daemon_serving",
        Duration::from_secs(60),
    );
    let mut rig = Rig::new();
    for _ in 0..5 {
        rig.d.signal("STOP");
        std::thread::sleep(Duration::from_millis(100));
        rig.d.signal("CONT");
        std::thread::sleep(Duration::from_millis(100));
        rig.assert_alive();
    }
}

#[test]
fn hundred_concurrent_connections() {
    if !root_or_skip("hundred_concurrent_connections") {
        return;
    }
    let _w = Watchdog::new("hundred_concurrent_connections", Duration::from_secs(60));
    let mut rig = Rig::new();
    // 100 connections open at once, then each sends `show`.
    let conns: Vec<UnixStream> = (0..100).map(|_| connect(&rig.d)).collect();
    let start = Instant::now();
    let handles: Vec<_> = conns
        .into_iter()
        .map(|s| {
            std::thread::spawn(move || {
                if (&s).write_all(&req(r#"{"op":"show"}"#)).is_err() {
                    return None;
                }
                let mut line = String::new();
                match BufReader::new(&s).read_line(&mut line) {
                    Ok(0) | Err(_) => None,
                    Ok(_) => Some(line),
                }
            })
        })
        .collect();
    let replies: Vec<Option<String>> = handles
        .into_iter()
        .map(|h| h.join().expect("client thread"))
        .collect();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let answered: Vec<&String> = replies.iter().flatten().collect();
    // The daemon holds at most MAX_CLIENTS (64) connections; the rest are closed at
    // accept, without a reply and without disturbing the others.
    assert_eq!(answered.len(), ctl::server::MAX_CLIENTS, "answered");
    for line in answered {
        let v: serde_json::Value = serde_json::from_str(line).expect("reply JSON");
        assert_eq!(v["ok"]["kind"], "show");
        assert_eq!(v["ok"]["bridges"][0]["ports"][0]["name"], "p1");
    }
    rig.assert_alive();
    // Closed clients free their slots: 100 sequential clients are all served.
    for _ in 0..100 {
        let reply = rig.d.raw(&req(r#"{"op":"show"}"#));
        assert!(reply.contains(r#""kind":"show""#), "{reply}");
    }
    rig.assert_alive();
}

// ---- Metrics listener abuse: it must never lock out or stall the control socket. ----

/// How many metrics connections the daemon holds at once (apart from control's 64).
const METRICS_CAP: usize = ctl::server::MAX_METRICS_CLIENTS;

/// A two-port rig (plus bridge br1 with `extra` tap ports q01.., for a larger metrics
/// response) with the metrics listener on 127.0.0.1 in the daemon's namespace;
/// `ns_setup` (shell) runs in the namespace before the daemon starts.
fn metrics_rig(ns_setup: &str, extra: usize) -> (Rig, std::net::SocketAddr) {
    let mut d = Vswitchd::prepare(None, &[]);
    if !ns_setup.is_empty() {
        d.ns.exec("sh", &["-c", ns_setup]);
    }
    let port_no = free_port_in(&d.ns);
    let mut config = format!("[metrics]\nlisten = \"127.0.0.1:{port_no}\"\n{TWO_PORTS}");
    let mut show = SHOW_TEXT.to_string();
    if extra > 0 {
        config.push_str("\n[[bridge]]\nname = \"br1\"\n");
        show.push_str("Bridge br1\n");
        for i in 1..=extra {
            config.push_str(&format!(
                "\n[[bridge.port]]\nname = \"q{i:02}\"\ntype = \"tap\"\naccess = 10\n"
            ));
            show.push_str(&format!(
                "    Port q{i:02}\n        vlan: access 10\n        Interface q{i:02} (tap, pmd 0): up\n"
            ));
        }
    }
    std::fs::write(&d.config, config).expect("write config");
    d.spawn();
    d.wait_ready();
    let p1 = d.capture("p1");
    let p2 = d.capture("p2");
    let addr = format!("127.0.0.1:{port_no}").parse().expect("addr");
    (
        Rig {
            d,
            p1,
            p2,
            seq: 0,
            show,
        },
        addr,
    )
}

/// A TCP connection to `addr` made from inside `ns`.
fn tcp_connect(ns: &Netns, addr: std::net::SocketAddr) -> std::net::TcpStream {
    datapath::sys::netns::run_in(&ns.path(), move || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
    })
    .expect("enter namespace")
    .expect("connect metrics")
}

/// Reads until EOF within `limit`; true if the daemon closed the connection.
fn tcp_closed(s: &std::net::TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).expect("read timeout");
    read_to_close(s)
}

/// One scrape: the whole response text ("" if the daemon closed without answering).
fn scrape(ns: &Netns, addr: std::net::SocketAddr) -> String {
    let mut s = tcp_connect(ns, addr);
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    // A refused connection may be closed before the request is written.
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut raw = Vec::new();
    match s.read_to_end(&mut raw) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("read scrape: {e}"),
    }
    String::from_utf8(raw).expect("UTF-8 response")
}

fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn seventy_idle_metrics_connections_do_not_lock_out_control() {
    if !root_or_skip("seventy_idle_metrics_connections_do_not_lock_out_control") {
        return;
    }
    let _w = Watchdog::new("seventy_idle_metrics", Duration::from_secs(60));
    assert_eq!(METRICS_CAP, 16);
    let (mut rig, addr) = metrics_rig("", 0);
    // 70 connections that never send a request (any local user can open them).
    let idle: Vec<std::net::TcpStream> = (0..70).map(|_| tcp_connect(&rig.d.ns, addr)).collect();
    // The first 16 are held (accepted in order); the other 54 are closed at once.
    for (i, s) in idle.iter().enumerate().skip(METRICS_CAP) {
        assert!(
            tcp_closed(s, Duration::from_secs(3)),
            "metrics connection {i} over the cap not closed"
        );
    }
    for (i, s) in idle.iter().enumerate().take(METRICS_CAP) {
        s.set_nonblocking(true).expect("nonblocking");
        let mut b = [0u8; 1];
        let r = (&*s).read(&mut b);
        assert_eq!(
            r.map_err(|e| e.kind()).err(),
            Some(std::io::ErrorKind::WouldBlock),
            "held metrics connection {i}"
        );
    }
    // At the cap a further scrape is closed without an answer ...
    assert_eq!(scrape(&rig.d.ns, addr), "");
    // ... while the control socket serves as usual: exact `show`, exit 0, forwarding.
    let out = rig.d.ctl(&["show"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, SHOW_TEXT, "")
    );
    rig.assert_alive();
    // Once the idle connections close, a fresh scrape is answered with exact counters.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(3);
    let text = loop {
        let t = scrape(&rig.d.ns, addr);
        if !t.is_empty() || Instant::now() > deadline {
            break t;
        }
    };
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
    assert_eq!(
        metric(
            &text,
            r#"vswitch_port_rx_packets_total{bridge="br0",port="p1"}"#
        ),
        Some(2)
    );
    assert_eq!(
        metric(
            &text,
            r#"vswitch_port_tx_packets_total{bridge="br0",port="p2"}"#
        ),
        Some(2)
    );
    assert_eq!(
        metric(&text, r#"vswitch_fdb_entries{bridge="br0"}"#),
        Some(1)
    );
    assert_eq!(metric(&text, "vswitch_scrape_errors"), Some(0));
    rig.assert_alive();
}

#[test]
fn metrics_reader_that_never_reads_does_not_stall_control() {
    if !root_or_skip("metrics_reader_that_never_reads_does_not_stall_control") {
        return;
    }
    let _w = Watchdog::new("metrics_never_reads", Duration::from_secs(60));
    // Small TCP buffers in the daemon's namespace (per-namespace sysctls): a response
    // larger than them cannot be written at once.
    let (mut rig, addr) = metrics_rig(
        "echo '4096 4096 4096' > /proc/sys/net/ipv4/tcp_wmem; \
         echo '4096 4096 4096' > /proc/sys/net/ipv4/tcp_rmem",
        12,
    );
    let full = scrape(&rig.d.ns, addr);
    assert!(full.starts_with("HTTP/1.0 200 OK\r\n"), "{full}");
    assert!(full.len() > 16 << 10, "response of {} bytes", full.len());
    // Four scrapes whose clients never read.
    let stalled: Vec<std::net::TcpStream> = (0..4)
        .map(|_| {
            let s = tcp_connect(&rig.d.ns, addr);
            (&s).write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
                .expect("send GET");
            s
        })
        .collect();
    // The daemon has started to answer once the first bytes arrive.
    stalled[0]
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let mut b = [0u8; 1];
    assert_eq!(stalled[0].peek(&mut b).expect("first response bytes"), 1);
    let start = Instant::now();
    for _ in 0..3 {
        let t = Instant::now();
        let out = rig.d.ctl(&["show"]);
        assert_eq!((out.code, out.stdout.as_str()), (0, rig.show.as_str()));
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "show took {:?} beside stalled metrics readers",
            t.elapsed()
        );
    }
    rig.assert_alive();
    // A reader that does read is served meanwhile, whole.
    let again = scrape(&rig.d.ns, addr);
    assert!(again.starts_with("HTTP/1.0 200 OK\r\n"), "{again}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // Past the write deadline (5 s) the stalled readers are dropped: reading now yields a
    // truncated response and EOF. (The daemon's deadline is wall-clock time: wait it out.)
    let past = ctl::server::WRITE_TIMEOUT + Duration::from_secs(2);
    std::thread::sleep(past.saturating_sub(start.elapsed()));
    for s in &stalled {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        let mut got = Vec::new();
        let r = (&*s).read_to_end(&mut got);
        assert!(
            r.is_ok()
                || r.as_ref().map_err(|e| e.kind()).err()
                    == Some(std::io::ErrorKind::ConnectionReset),
            "{r:?}"
        );
        assert!(
            got.len() < full.len(),
            "stalled reader got {} of {} bytes",
            got.len(),
            full.len()
        );
    }
    rig.assert_alive();
}

// ---- Group access: `--socket-group` / VSWITCH_SOCKET_GROUP. ----

/// A gid no test account uses (it needs no name: setpriv takes numbers).
const SOCKET_GID: u32 = 64_123;

/// `vswitchctl show` as uid 65534 with the given setpriv group options.
fn show_as(socket: &std::path::Path, groups: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new("setpriv");
    cmd.arg("--reuid=65534")
        .args(groups)
        .args([env!("CARGO_BIN_EXE_vswitchctl"), "show"])
        .env("VSWITCH_SOCKET", socket);
    run_bounded(cmd, Duration::from_secs(15))
}

#[test]
fn socket_group_members_are_served() {
    if !root_or_skip("socket_group_members_are_served") {
        return;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let _w = Watchdog::new("socket_group_members_are_served", Duration::from_secs(60));
    let gid = SOCKET_GID.to_string();
    let mut d = Vswitchd::prepare(Some(TWO_PORTS), &[("VSWITCH_SOCKET_GROUP", &gid)]);
    // A directory closed to others (like systemd's RuntimeDirectoryMode=0750).
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o700))
        .expect("chmod dir");
    d.spawn();
    d.wait_ready();
    let p1 = d.capture("p1");
    let p2 = d.capture("p2");
    let mut rig = Rig {
        d,
        p1,
        p2,
        seq: 0,
        show: SHOW_TEXT.to_string(),
    };
    let meta = std::fs::metadata(&rig.d.socket).expect("stat socket");
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (0, SOCKET_GID, 0o660)
    );
    // The directory keeps the group out, and the daemon says so.
    rig.d.wait_log(
        &format!(
            "vswitchd: socket group {SOCKET_GID}: directory {} (mode 0700, group 0) is not searchable by the group, whose members cannot reach the socket\n",
            rig.d.dir.path().display()
        ),
        Duration::from_secs(5),
    );
    // Let others reach the socket file; the socket itself stays 0660.
    std::fs::set_permissions(rig.d.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod dir");
    let served = |out: std::process::Output| {
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned()
            ),
            (Some(0), SHOW_TEXT.to_string(), String::new())
        );
    };
    // The group as a supplementary group (primary group nogroup): served.
    let group_opt = format!("--groups={gid}");
    served(show_as(&rig.d.socket, &["--regid=65534", &group_opt]));
    // The group as the primary group: served.
    let regid_opt = format!("--regid={gid}");
    served(show_as(&rig.d.socket, &[&regid_opt, "--clear-groups"]));
    rig.assert_alive();
    // Without the group the file system refuses (exit 4) ...
    let out = show_as(&rig.d.socket, &["--regid=65534", "--clear-groups"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}"
    );
    // ... and with the socket opened up, the daemon's own check does (exit 1).
    std::fs::set_permissions(&rig.d.socket, std::fs::Permissions::from_mode(0o666))
        .expect("chmod socket");
    let out = show_as(&rig.d.socket, &["--regid=65534", "--groups=65533"]);
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned()
        ),
        (
            Some(1),
            String::new(),
            "vswitchctl: permission denied: only root, the daemon's user or the socket's group may connect\n"
                .to_string()
        )
    );
    rig.assert_alive();
}

#[test]
fn unknown_socket_group_is_refused_at_start() {
    if !root_or_skip("unknown_socket_group_is_refused_at_start") {
        return;
    }
    let _w = Watchdog::new("unknown_socket_group", Duration::from_secs(30));
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("vswitchd.sock");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vswitchd"));
    cmd.arg("--config")
        .arg(dir.path().join("vswitchd.toml"))
        .arg("--socket")
        .arg(&socket)
        .args(["--socket-group", "no-such-grp-h20"])
        .env_remove("NOTIFY_SOCKET")
        .env_remove("VSWITCH_SOCKET_GROUP")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    let out = run_bounded(cmd, Duration::from_secs(15));
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned()
        ),
        (
            Some(1),
            "Error: --socket-group no-such-grp-h20: no such group\n".to_string()
        )
    );
    assert!(!socket.exists(), "socket created");
}
