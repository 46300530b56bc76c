//! The control thread: one mio event loop over the control socket, its clients, the
//! optional Prometheus listener and the signalfd.
//!
//! Invariants kept here:
//! - A client is served only if its peer credentials pass [`authorized`]; others get an
//!   `unauthorized` reply and are closed.
//! - A request line is at most [`MAX_REQUEST`] bytes and must arrive within
//!   [`REQUEST_TIMEOUT`] of the connection's last reply; half-open or slow clients are
//!   closed, never waited on.
//! - Control and metrics clients are counted apart: at most [`MAX_CLIENTS`] control and
//!   [`MAX_METRICS_CLIENTS`] metrics connections are held; a connection over its cap is
//!   closed at accept, so scrapers (any local user) can never take the control slots.
//! - The loop never blocks on a client: replies are buffered and written as the socket
//!   takes them (WRITABLE interest); a client that has not taken its whole reply within
//!   [`WRITE_TIMEOUT`] is dropped. While a reply is pending nothing more is read from
//!   that client, so it cannot make the daemon buffer more than one reply. The datapath
//!   never waits on the loop at all.
//! - A panic in a request's handler (or a scrape, or a reload) is caught at its call
//!   ([`isolate`]): the request gets a `failed` reply naming it, the loop keeps serving
//!   and the workers keep forwarding.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::daemon::{Daemon, Reply};
use crate::proto::*;

/// Control clients held at once.
pub const MAX_CLIENTS: usize = 64;
/// Metrics (HTTP) clients held at once, apart from the control clients.
pub const MAX_METRICS_CLIENTS: usize = 16;
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A reply must be taken whole within this; a client that stalls longer is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest HTTP request head read from a scraper.
const MAX_HTTP_HEAD: usize = 8192;
const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
const METRICS: Token = Token(2);
const FIRST_CLIENT: usize = 16;
/// How often the control loop looks for failed ports to report.
const HEALTH_INTERVAL: Duration = Duration::from_secs(2);

/// Who may use the socket: root, the daemon's own user (`own_uid`), or a member of the
/// socket's group, as primary or supplementary group (`groups`); the socket is mode
/// 0660, so the file system agrees. Credentials are the peer's at connect time
/// (SO_PEERCRED, SO_PEERGROUPS).
pub fn authorized(
    peer: crate::sys::PeerCred,
    groups: &[u32],
    own_uid: u32,
    socket_gid: u32,
) -> bool {
    peer.uid == 0 || peer.uid == own_uid || peer.gid == socket_gid || groups.contains(&socket_gid)
}

/// What the loop serves: [`Daemon`] in vswitchd; tests use fakes (a handler that
/// panics, a large scrape).
pub trait Service {
    /// Handles one request.
    fn handle(&mut self, req: Request) -> Reply;
    /// The Prometheus exposition.
    fn metrics(&mut self) -> String;
}

impl Service for Daemon {
    fn handle(&mut self, req: Request) -> Reply {
        Daemon::handle(self, req)
    }
    fn metrics(&mut self) -> String {
        crate::metrics::render(self)
    }
}

/// A handler that panicked, with the panic's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Panic(pub String);

/// Runs `f`, turning a panic into `Err(Panic(message))`. Whatever state `f` changed
/// before it panicked stays as it was left (a panic is a bug, never a verdict on input).
pub fn isolate<T>(f: impl FnOnce() -> T) -> Result<T, Panic> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        Panic(if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "panic without a message".to_owned()
        })
    })
}

/// Answers one request: the handler's reply, or, if it panicked, a `failed` reply
/// "internal error handling OP: MESSAGE" (also logged).
pub fn answer(service: &mut impl Service, req: Request) -> Reply {
    let op = req.op();
    isolate(|| service.handle(req)).unwrap_or_else(|msg| {
        tracing::error!("vswitchd: request {op}: handler panicked: {msg}");
        Err(ErrorReply::new(
            ErrorCode::Failed,
            format!("internal error handling {op}: {msg}"),
        ))
    })
}

/// Why members of group `gid` cannot reach the socket even though it is theirs: a
/// directory on the way (e.g. systemd's RuntimeDirectoryMode=0750) they may not search.
pub fn group_reach_problem(socket_path: &Path, gid: u32) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mut dir = socket_path.parent();
    while let Some(d) = dir {
        let m = std::fs::metadata(d).ok()?;
        let searchable = m.mode() & 0o001 != 0 || (m.gid() == gid && m.mode() & 0o010 != 0);
        if !searchable {
            return Some(format!(
                "socket group {gid}: directory {} (mode {:04o}, group {}) is not searchable by the group, whose members cannot reach the socket",
                d.display(),
                m.mode() & 0o7777,
                m.gid()
            ));
        }
        dir = d.parent();
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Control,
    Metrics,
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn raw_fd(&self) -> i32 {
        match self {
            Stream::Unix(s) => s.as_raw_fd(),
            Stream::Tcp(s) => s.as_raw_fd(),
        }
    }
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
    /// One nonblocking write.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(data),
            Stream::Tcp(s) => s.write(data),
        }
    }
}

/// One connection. Its socket is nonblocking and registered READABLE, or WRITABLE
/// while a reply is pending.
struct Client {
    kind: Kind,
    stream: Stream,
    /// Bytes received and not yet answered.
    buf: Vec<u8>,
    /// The reply being written; `out[sent..]` is still to go.
    out: Vec<u8>,
    sent: usize,
    /// Close once `out` is written (a scrape's response, a refusal).
    close_after: bool,
    /// The peer shut down its sending side.
    eof: bool,
    /// A reply is stalled on a full socket: `deadline` is its write deadline.
    stalled: bool,
    /// Registered for WRITABLE (else READABLE).
    writable: bool,
    /// Request deadline, or write deadline while `stalled`.
    deadline: Instant,
}

impl Client {
    fn new(kind: Kind, stream: Stream, now: Instant) -> Client {
        Client {
            kind,
            stream,
            buf: Vec::new(),
            out: Vec::new(),
            sent: 0,
            close_after: false,
            eof: false,
            stalled: false,
            writable: false,
            deadline: now + REQUEST_TIMEOUT,
        }
    }

    fn pending(&self) -> bool {
        self.sent < self.out.len()
    }

    /// Queues a reply (written by the next [`Client::flush`]).
    fn queue(&mut self, reply: &[u8]) {
        if !self.pending() {
            self.out.clear();
            self.sent = 0;
        }
        self.out.extend_from_slice(reply);
    }

    /// Writes what the socket takes without blocking; Ok(true) once nothing is pending.
    fn flush(&mut self) -> io::Result<bool> {
        while self.pending() {
            match self.stream.write(&self.out[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out = Vec::new();
        self.sent = 0;
        Ok(true)
    }

    /// Reads what has arrived, until the socket is drained or `buf` holds more than
    /// `limit` bytes; returns how many bytes were read (0 with `eof` at end of stream).
    fn fill(&mut self, limit: usize) -> io::Result<usize> {
        let mut chunk = [0u8; 65536];
        let mut total = 0;
        while self.buf.len() <= limit {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }
}

/// Serves one client as far as it can go without blocking: writes its pending reply,
/// answers its buffered requests one at a time, reads more. Returns false when the
/// connection is to be closed.
fn drive(c: &mut Client, service: &mut impl Service, now: Instant) -> bool {
    let limit = match c.kind {
        Kind::Control => MAX_REQUEST + 1,
        Kind::Metrics => MAX_HTTP_HEAD,
    };
    loop {
        match c.flush() {
            Err(_) => return false,
            Ok(false) => {
                if !c.stalled {
                    c.stalled = true;
                    c.deadline = now + WRITE_TIMEOUT;
                }
                return true;
            }
            Ok(true) => {
                if c.close_after {
                    return false;
                }
                if c.stalled {
                    c.stalled = false;
                    c.deadline = now + REQUEST_TIMEOUT;
                }
            }
        }
        match c.kind {
            Kind::Control => serve_control(c, service, now),
            Kind::Metrics => serve_metrics(c, service),
        }
        if c.pending() || c.close_after {
            continue;
        }
        if c.eof {
            return false;
        }
        match c.fill(limit) {
            Err(_) => return false,
            Ok(0) if !c.eof => return true,
            Ok(_) => {}
        }
    }
}

/// What ended the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// SIGTERM or SIGINT.
    Signal(i32),
}

/// The control socket server.
pub struct Server {
    poll: Poll,
    listener: UnixListener,
    socket_path: PathBuf,
    socket_gid: u32,
    metrics: Option<TcpListener>,
    signals: std::os::fd::OwnedFd,
    clients: HashMap<Token, Client>,
    next: usize,
    next_health: Instant,
    /// Port failures already logged (each is logged once).
    reported: std::collections::HashSet<(String, String, String)>,
    /// Worker notes currently in effect, as last logged: (bridge, note).
    notes_shown: std::collections::HashSet<(String, String)>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("socket", &self.socket_path)
            .field("clients", &self.clients.len())
            .finish()
    }
}

impl Server {
    /// Binds the control socket (replacing a stale one left by a killed daemon, refusing
    /// to steal a live one), gives it to `group` if set (mode 0660 either way), and binds
    /// the metrics listener.
    pub fn bind(
        socket_path: &Path,
        group: Option<u32>,
        metrics: Option<std::net::SocketAddr>,
        signals: std::os::fd::OwnedFd,
    ) -> io::Result<Server> {
        if let Some(dir) = socket_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if socket_path.exists() {
            if UnixStream::connect(socket_path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{}: another vswitchd is listening", socket_path.display()),
                ));
            }
            std::fs::remove_file(socket_path)?;
        }
        let listener = UnixListener::bind(socket_path)?;
        if let Some(gid) = group {
            std::os::unix::fs::chown(socket_path, None, Some(gid))
                .map_err(|e| io::Error::new(e.kind(), format!("giving it to group {gid}: {e}")))?;
        }
        std::fs::set_permissions(socket_path, std::fs::Permissions::from_mode(0o660))?;
        listener.set_nonblocking(true)?;
        let socket_gid = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(socket_path)?.gid()
        };
        let poll = Poll::new()?;
        poll.registry().register(
            &mut SourceFd(&listener.as_raw_fd()),
            LISTENER,
            Interest::READABLE,
        )?;
        poll.registry().register(
            &mut SourceFd(&signals.as_raw_fd()),
            SIGNALS,
            Interest::READABLE,
        )?;
        let metrics = match metrics {
            Some(addr) => {
                let l = TcpListener::bind(addr)?;
                l.set_nonblocking(true)?;
                poll.registry().register(
                    &mut SourceFd(&l.as_raw_fd()),
                    METRICS,
                    Interest::READABLE,
                )?;
                Some(l)
            }
            None => None,
        };
        Ok(Server {
            poll,
            listener,
            socket_path: socket_path.to_path_buf(),
            socket_gid,
            metrics,
            signals,
            clients: HashMap::new(),
            next: FIRST_CLIENT,
            next_health: Instant::now() + HEALTH_INTERVAL,
            reported: std::collections::HashSet::new(),
            notes_shown: std::collections::HashSet::new(),
        })
    }

    /// The metrics listener's address, if any.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until SIGTERM/SIGINT. SIGHUP reloads the configuration.
    pub fn run(&mut self, daemon: &mut Daemon) -> io::Result<Exit> {
        let mut events = Events::with_capacity(128);
        loop {
            // A signal that is not ours (a debugger or strace attaching, SIGSTOP/SIGCONT)
            // interrupts the wait; it is not a reason to stop serving.
            match self
                .poll
                .poll(&mut events, Some(Duration::from_millis(500)))
            {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => r?,
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_control(),
                    METRICS => self.accept_metrics(),
                    SIGNALS => {
                        while let Some(sig) = crate::sys::read_signal(self.signals.as_raw_fd())? {
                            if sig == libc::SIGHUP {
                                match isolate(|| daemon.reload()) {
                                    Ok(Ok(p)) if p.is_empty() => {
                                        tracing::info!("vswitchd: configuration reloaded")
                                    }
                                    Ok(Ok(p)) => tracing::warn!(
                                        "vswitchd: configuration reloaded; {}",
                                        crate::daemon::join_problems(&p)
                                    ),
                                    Ok(Err(e)) => tracing::warn!("vswitchd: {}", e.message),
                                    Err(msg) => tracing::error!(
                                        "vswitchd: reload panicked: {msg}; running state kept as it was left"
                                    ),
                                }
                            } else {
                                return Ok(Exit::Signal(sig));
                            }
                        }
                    }
                    t => self.service(t, daemon),
                }
            }
            // Report ports that failed since the last look, once each (never per packet).
            let now = Instant::now();
            if now >= self.next_health {
                self.next_health = now + HEALTH_INTERVAL;
                for (bridge, port, error) in daemon.failed_ports() {
                    if self
                        .reported
                        .insert((bridge.clone(), port.clone(), error.clone()))
                    {
                        tracing::warn!("vswitchd: bridge {bridge} port {port}: down: {error}");
                    }
                }
                // Notes come and go with the ports' state (e.g. a veth peer's GRO):
                // each is logged when it appears and when it stops applying. A bridge
                // whose workers did not answer keeps the notes it had.
                let mut notes = std::collections::HashSet::new();
                for (bridge, answer) in daemon.worker_notes() {
                    match answer {
                        Some(now) => notes.extend(now.into_iter().map(|n| (bridge.clone(), n))),
                        None => notes.extend(
                            self.notes_shown
                                .iter()
                                .filter(|(b, _)| *b == bridge)
                                .cloned(),
                        ),
                    }
                }
                for (bridge, note) in notes.difference(&self.notes_shown) {
                    tracing::warn!("vswitchd: bridge {bridge}: {note}");
                }
                for (bridge, note) in self.notes_shown.difference(&notes) {
                    tracing::info!("vswitchd: bridge {bridge}: no longer applies: {note}");
                }
                self.notes_shown = notes;
            }
            // Close clients that stalled mid-request.
            let stale: Vec<Token> = self
                .clients
                .iter()
                .filter(|(_, c)| now > c.deadline)
                .map(|(t, _)| *t)
                .collect();
            for t in stale {
                if let Some(mut c) = self.clients.remove(&t) {
                    // A stalled reader is dropped as it is; a half-sent request gets
                    // one nonblocking try at a `timeout` reply.
                    if c.kind == Kind::Control && !c.pending() && !c.buf.is_empty() {
                        c.queue(
                            encode_response(&Outcome::Error(ErrorReply::new(
                                ErrorCode::Timeout,
                                format!("no complete request within {REQUEST_TIMEOUT:?}"),
                            )))
                            .as_bytes(),
                        );
                        let _ = c.flush();
                    }
                    self.deregister(&c);
                }
            }
        }
    }

    fn add_client(&mut self, kind: Kind, stream: Stream) {
        let cap = match kind {
            Kind::Control => MAX_CLIENTS,
            Kind::Metrics => MAX_METRICS_CLIENTS,
        };
        if self.clients.values().filter(|c| c.kind == kind).count() >= cap {
            return; // dropped: closed at once
        }
        let token = Token(self.next);
        self.next = self.next.wrapping_add(1).max(FIRST_CLIENT);
        if self
            .poll
            .registry()
            .register(&mut SourceFd(&stream.raw_fd()), token, Interest::READABLE)
            .is_err()
        {
            return;
        }
        self.clients
            .insert(token, Client::new(kind, stream, Instant::now()));
    }

    fn deregister(&self, c: &Client) {
        let _ = self
            .poll
            .registry()
            .deregister(&mut SourceFd(&c.stream.raw_fd()));
    }

    fn accept_control(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    if s.set_nonblocking(true).is_err() {
                        continue;
                    }
                    // Without SO_PEERGROUPS (Linux < 4.13) only the primary group counts.
                    let groups = crate::sys::peer_groups(&s).unwrap_or_default();
                    let ok = crate::sys::peer_cred(&s)
                        .map(|p| authorized(p, &groups, crate::sys::euid(), self.socket_gid))
                        .unwrap_or(false);
                    let mut stream = Stream::Unix(s);
                    if !ok {
                        // One nonblocking write: a fresh socket's buffer takes it whole.
                        let _ = stream.write(
                            encode_response(&Outcome::Error(ErrorReply::new(
                                ErrorCode::Unauthorized,
                                "permission denied: only root, the daemon's user or the socket's group may connect",
                            )))
                            .as_bytes(),
                        );
                        continue;
                    }
                    self.add_client(Kind::Control, stream);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return,
            }
        }
    }

    fn accept_metrics(&mut self) {
        loop {
            let Some(l) = &self.metrics else { return };
            match l.accept() {
                Ok((s, _)) => {
                    if s.set_nonblocking(true).is_ok() {
                        self.add_client(Kind::Metrics, Stream::Tcp(s));
                    }
                }
                Err(_) => return,
            }
        }
    }

    fn service(&mut self, token: Token, service: &mut impl Service) {
        let Some(mut c) = self.clients.remove(&token) else {
            return;
        };
        if !drive(&mut c, service, Instant::now()) {
            self.deregister(&c);
            return;
        }
        let writable = c.pending();
        if writable != c.writable {
            let interest = if writable {
                Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut SourceFd(&c.stream.raw_fd()), token, interest)
                .is_err()
            {
                self.deregister(&c);
                return;
            }
            c.writable = writable;
        }
        self.clients.insert(token, c);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket_path);
    }
}

/// Answers the first complete request line in the buffer (queues its reply). A buffer
/// over [`MAX_REQUEST`] without a newline gets `too_large` and the connection closes.
fn serve_control(c: &mut Client, service: &mut impl Service, now: Instant) {
    let Some(nl) = c.buf.iter().position(|b| *b == b'\n') else {
        if c.buf.len() > MAX_REQUEST {
            c.queue(
                encode_response(&Outcome::Error(ErrorReply::new(
                    ErrorCode::TooLarge,
                    format!("request exceeds {MAX_REQUEST} bytes"),
                )))
                .as_bytes(),
            );
            c.close_after = true;
        }
        return;
    };
    let line: Vec<u8> = c.buf.drain(..=nl).collect();
    let line = &line[..line.len() - 1];
    let outcome = match decode_request(line) {
        Ok(req) => match answer(service, req) {
            Ok(r) => Outcome::Ok(r),
            Err(e) => Outcome::Error(e),
        },
        Err(e) => Outcome::Error(e),
    };
    c.queue(encode_response(&outcome).as_bytes());
    c.deadline = now + REQUEST_TIMEOUT;
}

/// Answers one HTTP GET /metrics (queues the response and closes after it); a head over
/// [`MAX_HTTP_HEAD`] bytes closes without an answer.
fn serve_metrics(c: &mut Client, service: &mut impl Service) {
    let Some(end) = c.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if c.buf.len() >= MAX_HTTP_HEAD {
            c.close_after = true;
        }
        return;
    };
    let head = String::from_utf8_lossy(&c.buf[..end]).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = if head.starts_with("GET ") && path == "/metrics" {
        match isolate(|| service.metrics()) {
            Ok(body) => ("200 OK", body),
            Err(msg) => {
                tracing::error!("vswitchd: metrics scrape panicked: {msg}");
                (
                    "500 Internal Server Error",
                    format!("internal error rendering metrics: {msg}\n"),
                )
            }
        }
    } else {
        ("404 Not Found", "only GET /metrics is served\n".to_string())
    };
    let resp = format!(
        "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    c.queue(resp.as_bytes());
    c.close_after = true;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    /// A service whose handler panics on its first call only.
    struct Flaky {
        calls: usize,
    }

    impl Service for Flaky {
        fn handle(&mut self, req: Request) -> Reply {
            self.calls += 1;
            if self.calls == 1 {
                panic!("index out of range: the len is 3 but the index is 7");
            }
            Ok(Response::Done {
                message: format!("{} answered", req.op()),
            })
        }
        fn metrics(&mut self) -> String {
            panic!("scrape exploded")
        }
    }

    /// A service whose replies and scrapes are `len` bytes of text.
    struct Big {
        calls: usize,
        len: usize,
    }

    impl Service for Big {
        fn handle(&mut self, _req: Request) -> Reply {
            self.calls += 1;
            Ok(Response::Done {
                message: "x".repeat(self.len),
            })
        }
        fn metrics(&mut self) -> String {
            "m".repeat(self.len)
        }
    }

    fn line(json: &str) -> Vec<u8> {
        format!("{{\"version\":1,\"request\":{json}}}\n").into_bytes()
    }

    fn client(kind: Kind, stream: UnixStream, buf: &[u8]) -> Client {
        stream.set_nonblocking(true).expect("nonblocking");
        let mut c = Client::new(kind, Stream::Unix(stream), Instant::now());
        c.buf = buf.to_vec();
        c
    }

    /// Appends whatever the peer end has received to `got` (nonblocking).
    fn take(peer: &UnixStream, got: &mut Vec<u8>) {
        peer.set_nonblocking(true).expect("nonblocking");
        let mut chunk = [0u8; 65536];
        loop {
            match (&*peer).read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    #[test]
    fn authorized_admits_root_own_user_and_the_socket_group() {
        use crate::sys::PeerCred;
        let peer = |uid, gid| PeerCred { pid: 1, uid, gid };
        let own = 1000;
        let sock = 64_123;
        // Root and the daemon's own user, whatever their groups.
        assert!(authorized(peer(0, 5), &[], own, sock));
        assert!(authorized(peer(own, 5), &[], own, sock));
        // The socket's group as primary or as one of the supplementary groups.
        assert!(authorized(peer(65534, sock), &[], own, sock));
        assert!(authorized(peer(65534, 65534), &[10, sock, 20], own, sock));
        // Anyone else.
        assert!(!authorized(peer(65534, 65534), &[], own, sock));
        assert!(!authorized(peer(65534, 65534), &[10, 20], own, sock));
        assert!(!authorized(peer(1001, sock + 1), &[sock - 1], own, sock));
    }

    #[test]
    fn group_reach_problem_names_the_closed_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("run").join("vswitchd.sock");
        let run = dir.path().join("run");
        std::fs::create_dir(&run).expect("mkdir");
        let set = |p: &Path, mode| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod")
        };
        set(dir.path(), 0o755);
        set(&run, 0o755);
        assert_eq!(group_reach_problem(&sock, 64_123), None);
        set(&run, 0o750);
        let gid = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(&run).expect("stat").gid()
        };
        // Searchable by its own group only.
        assert_eq!(group_reach_problem(&sock, gid), None);
        assert_eq!(
            group_reach_problem(&sock, 64_123),
            Some(format!(
                "socket group 64123: directory {} (mode 0750, group {gid}) is not searchable by the group, whose members cannot reach the socket",
                run.display()
            ))
        );
    }

    #[test]
    fn isolate_returns_the_panic_message() {
        assert_eq!(isolate(|| 7), Ok(7));
        assert_eq!(
            isolate(|| -> u8 { panic!("static text") }),
            Err(Panic("static text".to_owned()))
        );
        let n = 3;
        assert_eq!(
            isolate(|| -> u8 { panic!("formatted {n}") }),
            Err(Panic("formatted 3".to_owned()))
        );
        assert_eq!(
            isolate(|| -> u8 { std::panic::panic_any(42u32) }),
            Err(Panic("panic without a message".to_owned()))
        );
    }

    #[test]
    fn panicking_handler_gets_failed_reply_and_next_request_is_served() {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let mut buf = line(r#"{"op":"show"}"#);
        buf.extend(line(r#"{"op":"pmd_show"}"#));
        let mut c = client(Kind::Control, ours, &buf);
        let mut svc = Flaky { calls: 0 };
        assert!(drive(&mut c, &mut svc, Instant::now()), "connection kept");
        assert_eq!(svc.calls, 2);
        let mut r = BufReader::new(&theirs);
        let mut first = String::new();
        r.read_line(&mut first).expect("first reply");
        assert_eq!(
            first,
            "{\"version\":1,\"error\":{\"code\":\"failed\",\"message\":\"internal error handling show: index out of range: the len is 3 but the index is 7\"}}\n"
        );
        let mut second = String::new();
        r.read_line(&mut second).expect("second reply");
        assert_eq!(
            second,
            "{\"version\":1,\"ok\":{\"kind\":\"done\",\"message\":\"pmd_show answered\"}}\n"
        );
        // The connection stays usable: a third request on it is answered too.
        (&theirs)
            .write_all(&line(r#"{"op":"show"}"#))
            .expect("write");
        assert!(drive(&mut c, &mut svc, Instant::now()));
        let mut third = String::new();
        r.read_line(&mut third).expect("third reply");
        assert_eq!(
            third,
            "{\"version\":1,\"ok\":{\"kind\":\"done\",\"message\":\"show answered\"}}\n"
        );
    }

    #[test]
    fn panicking_scrape_gets_500() {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let mut c = client(
            Kind::Metrics,
            ours,
            b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n",
        );
        assert!(
            !drive(&mut c, &mut Flaky { calls: 0 }, Instant::now()),
            "closed"
        );
        drop(c);
        let mut text = String::new();
        (&theirs).read_to_string(&mut text).expect("response");
        assert_eq!(
            text,
            "HTTP/1.0 500 Internal Server Error\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: 50\r\nConnection: close\r\n\r\ninternal error rendering metrics: scrape exploded\n"
        );
    }

    #[test]
    fn large_scrape_to_a_slow_reader_never_blocks() {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let mut c = client(
            Kind::Metrics,
            ours,
            b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n",
        );
        let mut svc = Big {
            calls: 0,
            len: 4 << 20,
        };
        let t0 = Instant::now();
        // 4 MiB do not fit the socket: drive returns at once with the rest pending.
        assert!(drive(&mut c, &mut svc, t0), "kept until written");
        assert!(c.pending() && c.stalled);
        assert_eq!(c.deadline, t0 + WRITE_TIMEOUT);
        // A later event with nothing read moves nothing and keeps the deadline.
        let sent = c.sent;
        assert!(drive(&mut c, &mut svc, t0 + Duration::from_secs(1)));
        assert_eq!((c.sent, c.deadline), (sent, t0 + WRITE_TIMEOUT));
        // As the reader takes it, each writable event writes more; all of it arrives.
        let mut got = Vec::new();
        loop {
            take(&theirs, &mut got);
            if !drive(&mut c, &mut svc, t0) {
                break;
            }
        }
        drop(c);
        take(&theirs, &mut got);
        let head = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            4 << 20
        );
        assert_eq!(got.len(), head.len() + (4 << 20));
        assert_eq!(&got[..head.len()], head.as_bytes());
        assert!(got[head.len()..].iter().all(|b| *b == b'm'));
    }

    #[test]
    fn pipelined_requests_wait_for_the_pending_reply() {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let req = line(r#"{"op":"show"}"#);
        let mut c = client(Kind::Control, ours, &req.repeat(3));
        let mut svc = Big {
            calls: 0,
            len: 1 << 20,
        };
        let t0 = Instant::now();
        // The first 1 MiB reply does not fit: the other two requests are not handled
        // (the daemon holds one reply per client, however many requests are queued).
        assert!(drive(&mut c, &mut svc, t0));
        assert_eq!((svc.calls, c.buf.len()), (1, 2 * req.len()));
        assert!(c.pending());
        let one = format!(
            "{{\"version\":1,\"ok\":{{\"kind\":\"done\",\"message\":\"{}\"}}}}\n",
            "x".repeat(1 << 20)
        );
        assert_eq!(c.out.len(), one.len());
        let mut got = Vec::new();
        while got.iter().filter(|b| **b == b'\n').count() < 3 {
            take(&theirs, &mut got);
            assert!(drive(&mut c, &mut svc, t0));
            assert!(c.out.len() <= one.len(), "{} bytes buffered", c.out.len());
        }
        assert_eq!((svc.calls, c.buf.len(), c.pending()), (3, 0, false));
        assert_eq!(c.deadline, t0 + REQUEST_TIMEOUT);
        assert_eq!(got, one.repeat(3).into_bytes());
    }

    #[test]
    fn half_close_after_requests_gets_every_reply() {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let mut c = client(Kind::Control, ours, b"");
        (&theirs)
            .write_all(&line(r#"{"op":"show"}"#).repeat(2))
            .expect("write");
        theirs
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
        let mut svc = Flaky { calls: 1 };
        assert!(!drive(&mut c, &mut svc, Instant::now()), "closed at EOF");
        drop(c);
        let mut text = String::new();
        (&theirs).read_to_string(&mut text).expect("replies");
        assert_eq!(
            text,
            "{\"version\":1,\"ok\":{\"kind\":\"done\",\"message\":\"show answered\"}}\n".repeat(2)
        );
    }
}
