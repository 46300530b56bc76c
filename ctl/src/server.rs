//! The control thread: one mio event loop over the control socket, its clients, the
//! optional Prometheus listener and the signalfd.
//!
//! Invariants kept here:
//! - A client is served only if its peer credentials pass [`authorized`]; others get an
//!   `unauthorized` reply and are closed.
//! - A request line is at most [`MAX_REQUEST`] bytes and must arrive within
//!   [`REQUEST_TIMEOUT`] of the connection's last reply; half-open or slow clients are
//!   closed, never waited on. At most [`MAX_CLIENTS`] are open at once.
//! - Replies are written with a bounded write timeout; nothing a client does blocks the
//!   loop for longer than that, and the datapath never waits on the loop at all.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::daemon::Daemon;
use crate::proto::*;

pub const MAX_CLIENTS: usize = 64;
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
const METRICS: Token = Token(2);
const FIRST_CLIENT: usize = 16;
/// How often the control loop looks for failed ports to report.
const HEALTH_INTERVAL: Duration = Duration::from_secs(2);

/// Who may use the socket: root, the daemon's own user, or members of the socket's group
/// (the socket is mode 0660, so the file system agrees).
pub fn authorized(peer: crate::sys::PeerCred, socket_gid: u32) -> bool {
    peer.uid == 0 || peer.uid == crate::sys::euid() || peer.gid == socket_gid
}

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
    /// Writes all of `data` with a bounded timeout, then returns to nonblocking mode.
    fn write_reply(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Stream::Unix(s) => {
                s.set_nonblocking(false)?;
                s.set_write_timeout(Some(WRITE_TIMEOUT))?;
                let r = s.write_all(data);
                s.set_nonblocking(true)?;
                r
            }
            Stream::Tcp(s) => {
                s.set_nonblocking(false)?;
                s.set_write_timeout(Some(WRITE_TIMEOUT))?;
                let r = s.write_all(data);
                s.set_nonblocking(true)?;
                r
            }
        }
    }
}

struct Client {
    kind: Kind,
    stream: Stream,
    buf: Vec<u8>,
    deadline: Instant,
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
    /// to steal a live one) and the metrics listener.
    pub fn bind(
        socket_path: &Path,
        metrics: Option<&str>,
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
            self.poll
                .poll(&mut events, Some(Duration::from_millis(500)))?;
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_control(),
                    METRICS => self.accept_metrics(),
                    SIGNALS => {
                        while let Some(sig) = crate::sys::read_signal(self.signals.as_raw_fd())? {
                            if sig == libc::SIGHUP {
                                match daemon.reload() {
                                    Ok(p) if p.is_empty() => {
                                        tracing::info!("vswitchd: configuration reloaded")
                                    }
                                    Ok(p) => tracing::warn!(
                                        "vswitchd: configuration reloaded; {}",
                                        p.join("; ")
                                    ),
                                    Err(e) => tracing::warn!("vswitchd: {}", e.message),
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
                    if matches!(c.kind, Kind::Control) && !c.buf.is_empty() {
                        let _ = c.stream.write_reply(
                            encode_response(&Outcome::Error(ErrorReply::new(
                                ErrorCode::Timeout,
                                format!("no complete request within {REQUEST_TIMEOUT:?}"),
                            )))
                            .as_bytes(),
                        );
                    }
                    self.deregister(&c);
                }
            }
        }
    }

    fn add_client(&mut self, kind: Kind, stream: Stream) {
        if self.clients.len() >= MAX_CLIENTS {
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
        self.clients.insert(
            token,
            Client {
                kind,
                stream,
                buf: Vec::new(),
                deadline: Instant::now() + REQUEST_TIMEOUT,
            },
        );
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
                    let ok = crate::sys::peer_cred(&s)
                        .map(|p| authorized(p, self.socket_gid))
                        .unwrap_or(false);
                    let mut stream = Stream::Unix(s);
                    if !ok {
                        let _ = stream.write_reply(
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

    fn service(&mut self, token: Token, daemon: &mut Daemon) {
        let Some(mut c) = self.clients.remove(&token) else {
            return;
        };
        let mut chunk = [0u8; 65536];
        let mut closed = false;
        loop {
            match c.stream.read(&mut chunk) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    c.buf.extend_from_slice(&chunk[..n]);
                    if c.buf.len() > MAX_REQUEST + 1 {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        let keep = match c.kind {
            Kind::Control => serve_control(&mut c, daemon),
            Kind::Metrics => serve_metrics(&mut c, daemon),
        };
        if keep && !closed {
            self.clients.insert(token, c);
        } else {
            self.deregister(&c);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket_path);
    }
}

/// Answers every complete request line in the buffer; false closes the connection.
fn serve_control(c: &mut Client, daemon: &mut Daemon) -> bool {
    loop {
        let Some(nl) = c.buf.iter().position(|b| *b == b'\n') else {
            if c.buf.len() > MAX_REQUEST {
                let _ = c.stream.write_reply(
                    encode_response(&Outcome::Error(ErrorReply::new(
                        ErrorCode::TooLarge,
                        format!("request exceeds {MAX_REQUEST} bytes"),
                    )))
                    .as_bytes(),
                );
                return false;
            }
            return true;
        };
        let line: Vec<u8> = c.buf.drain(..=nl).collect();
        let line = &line[..line.len() - 1];
        let outcome = match decode_request(line) {
            Ok(req) => match daemon.handle(req) {
                Ok(r) => Outcome::Ok(r),
                Err(e) => Outcome::Error(e),
            },
            Err(e) => Outcome::Error(e),
        };
        if c.stream
            .write_reply(encode_response(&outcome).as_bytes())
            .is_err()
        {
            return false;
        }
        c.deadline = Instant::now() + REQUEST_TIMEOUT;
    }
}

/// Answers one HTTP GET /metrics, then closes.
fn serve_metrics(c: &mut Client, daemon: &Daemon) -> bool {
    let Some(end) = c.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return c.buf.len() < 8192;
    };
    let head = String::from_utf8_lossy(&c.buf[..end]).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = if head.starts_with("GET ") && path == "/metrics" {
        ("200 OK", crate::metrics::render(daemon))
    } else {
        ("404 Not Found", "only GET /metrics is served\n".to_string())
    };
    let resp = format!(
        "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = c.stream.write_reply(resp.as_bytes());
    false
}
