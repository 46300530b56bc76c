//! Control-socket abuse (root): each case is followed by proof that the daemon still
//! answers `show` and still forwards frames between two tap ports.

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
}

impl Rig {
    fn new() -> Rig {
        let d = Vswitchd::start(Some(TWO_PORTS));
        let p1 = d.capture("p1");
        let p2 = d.capture("p2");
        Rig { d, p1, p2, seq: 0 }
    }
    /// `show` answers with the unchanged tree, and p1 -> p2 forwards.
    #[track_caller]
    fn assert_alive(&mut self) {
        assert_eq!(self.d.ctl(&["show"]).ok(), SHOW_TEXT);
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
    let mut buf = [0u8; 4096];
    let mut r = s;
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

#[test]
fn hundred_concurrent_connections() {
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
