//! TCP throughput from h1 to h2 with iperf3: a one-off server in h2 per test, the client
//! in h1 with `-J`; the result is what the receiver counted (`end.sum_received`), after
//! `-O` omitted the warm-up.
//!
//! A test that moves nothing is a result, not an error: an iperf3 that cannot connect,
//! stalls or reports an error gives 0 bits/s with the reason as a note.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use datapath::testutil::Netns;
use vswitch_benches::harness::check_interrupted;

use super::child::{in_netns, Running};
use super::topo::H2_ADDR;

/// Port of the one-off server.
pub const PORT: u16 = 5201;

/// What one iperf3 run reported.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IperfReport {
    /// Streams that connected (`start.connected`).
    pub streams: usize,
    /// Receiver's rate over the measured seconds (`end.sum_received.bits_per_second`).
    pub bits_per_second: f64,
    pub seconds: f64,
    pub bytes: u64,
    /// Sender's TCP retransmissions (`end.sum_sent.retransmits`).
    pub retransmits: Option<u64>,
}

/// Why an iperf3 output has no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IperfError {
    /// iperf3 itself reported an error (`"error"`), e.g. it could not connect.
    Reported(String),
    /// Not iperf3 JSON, or without the fields used here.
    Malformed(String),
}

impl std::fmt::Display for IperfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IperfError::Reported(e) => write!(f, "iperf3: {e}"),
            IperfError::Malformed(e) => write!(f, "iperf3 output: {e}"),
        }
    }
}

/// Parses the output of `iperf3 -c ... -J`.
pub fn parse_iperf3_json(text: &str) -> Result<IperfReport, IperfError> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| IperfError::Malformed(format!("not JSON: {e}")))?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return Err(IperfError::Reported(e.to_owned()));
    }
    let recv = v
        .pointer("/end/sum_received")
        .ok_or_else(|| IperfError::Malformed("no end.sum_received".to_owned()))?;
    let num = |key: &str| {
        recv.get(key)
            .and_then(|x| x.as_f64())
            .ok_or_else(|| IperfError::Malformed(format!("no end.sum_received.{key}")))
    };
    Ok(IperfReport {
        streams: v
            .pointer("/start/connected")
            .and_then(|c| c.as_array())
            .map_or(0, |c| c.len()),
        bits_per_second: num("bits_per_second")?,
        seconds: num("seconds")?,
        bytes: recv.get("bytes").and_then(|b| b.as_u64()).unwrap_or(0),
        retransmits: v
            .pointer("/end/sum_sent/retransmits")
            .and_then(|r| r.as_u64()),
    })
}

/// Whether `/proc/net/tcp` text shows a socket listening on `port`.
pub fn tcp_listening(proc_net_tcp: &str, port: u16) -> bool {
    let want = format!("{port:04X}");
    proc_net_tcp.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // sl local_address rem_address st ...; LISTEN is 0A.
        f.len() > 3 && f[1].rsplit(':').next() == Some(want.as_str()) && f[3] == "0A"
    })
}

/// One TCP measurement: the rate (0 when nothing moved) and why it is 0 if it is.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TcpRun {
    pub streams: u32,
    pub gbps: f64,
    pub retransmits: Option<u64>,
    /// Set when the run moved nothing: iperf3's error, a timeout.
    pub note: Option<String>,
}

/// Test parameters.
#[derive(Debug, Clone, Copy)]
pub struct TcpParams {
    pub seconds: u32,
    pub warmup: u32,
}

fn wait_listening(h2: &Netns, port: u16, server: &mut Running) -> anyhow::Result<()> {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        check_interrupted()?;
        let text = datapath::sys::netns::run_in(&h2.path(), || {
            std::fs::read_to_string("/proc/thread-self/net/tcp")
        })
        .context("enter h2")?
        .context("read /proc/net/tcp in h2")?;
        if tcp_listening(&text, port) {
            return Ok(());
        }
        if server.exited() {
            bail!("iperf3 server in h2 exited before listening");
        }
        if Instant::now() >= end {
            bail!("iperf3 server in h2 not listening on {port} after 5 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A one-off iperf3 server in h2 on [`PORT`] (it serves one test, TCP or UDP, then
/// exits), listening for its control connection when this returns.
pub fn start_server(h2: &Netns) -> anyhow::Result<Running> {
    let port = PORT.to_string();
    let mut server = Running::spawn(
        "iperf3 server",
        in_netns(h2.name(), "iperf3").args(["-s", "-1", "-B", H2_ADDR, "-p", &port]),
    )?;
    wait_listening(h2, PORT, &mut server)?;
    Ok(server)
}

/// An iperf3 client in h1 against the server of [`start_server`], reporting JSON, with
/// the test's own options `args`.
pub fn start_client(h1: &Netns, args: &[&str]) -> anyhow::Result<Running> {
    let port = PORT.to_string();
    Running::spawn(
        "iperf3 client",
        in_netns(h1.name(), "iperf3")
            .args([
                "-c",
                H2_ADDR,
                "-p",
                &port,
                "-J",
                "--connect-timeout",
                "3000",
            ])
            .args(args),
    )
}

/// Runs `streams` TCP streams from h1 to h2 for `p.seconds` after `p.warmup` seconds.
/// Errors are the harness's (the server did not start); a path that does not carry TCP
/// gives a [`TcpRun`] of 0 with a note.
pub fn run_tcp(h1: &Netns, h2: &Netns, streams: u32, p: TcpParams) -> anyhow::Result<TcpRun> {
    let server = start_server(h2)?;
    let (secs, omit, n) = (
        p.seconds.to_string(),
        p.warmup.to_string(),
        streams.to_string(),
    );
    let client = start_client(h1, &["-t", &secs, "-O", &omit, "-P", &n])?;
    let limit = Duration::from_secs(u64::from(p.seconds + p.warmup) + 20);
    let done = client.wait(limit)?;
    // The one-off server exits after its test; give it a moment, then it is killed.
    let _ = server.wait(Duration::from_secs(3));
    let zero = |note: String| TcpRun {
        streams,
        gbps: 0.0,
        retransmits: None,
        note: Some(note),
    };
    if done.timed_out {
        return Ok(zero(format!(
            "iperf3 did not finish within {} s (killed)",
            limit.as_secs()
        )));
    }
    match parse_iperf3_json(&done.stdout) {
        Ok(r) => Ok(TcpRun {
            streams,
            gbps: r.bits_per_second / 1e9,
            retransmits: r.retransmits,
            note: (r.bits_per_second == 0.0).then(|| "no data received".to_owned()),
        }),
        Err(e @ IperfError::Reported(_)) => Ok(zero(e.to_string())),
        Err(e) => bail!("{e} (stderr: {})", done.stderr.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured on this machine: iperf3 3.12 over a veth pair between two namespaces
    // (`-t 2 -O 1 -J`, `-t 1 -O 1 -P 4 -J`, and against an address without a server).
    const ONE: &str = include_str!("testdata/iperf3-1stream.json");
    const FOUR: &str = include_str!("testdata/iperf3-4streams.json");
    const REFUSED: &str = include_str!("testdata/iperf3-refused.json");

    #[test]
    fn one_stream_is_the_receivers_sum() {
        let r = parse_iperf3_json(ONE).expect("result");
        assert_eq!(
            r,
            IperfReport {
                streams: 1,
                bits_per_second: 17167870647.547268,
                seconds: 1.999993,
                bytes: 4291952640,
                retransmits: Some(13049),
            }
        );
    }

    #[test]
    fn four_streams_sum_up() {
        let r = parse_iperf3_json(FOUR).expect("result");
        assert_eq!(r.streams, 4);
        assert_eq!(r.bits_per_second, 25473412333.234154);
        assert_eq!(r.seconds, 1.001554);
        assert_eq!(r.bytes, 3189124752);
        assert_eq!(r.retransmits, Some(6656));
    }

    #[test]
    fn reported_errors_and_garbage_are_told_apart() {
        assert_eq!(
            parse_iperf3_json(REFUSED),
            Err(IperfError::Reported(
                "unable to connect to server: Connection refused".to_owned()
            ))
        );
        assert!(matches!(
            parse_iperf3_json("iperf3: error - bad"),
            Err(IperfError::Malformed(_))
        ));
        assert_eq!(
            parse_iperf3_json("{\"end\": {}}"),
            Err(IperfError::Malformed("no end.sum_received".to_owned()))
        );
    }

    #[test]
    fn listening_socket_is_found_by_port_and_state() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 02004D0A:1451 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n   1: 02004D0A:1451 01004D0A:B2C4 01 00000000:00000000 00:00000000 00000000     0        0 12346 1 0000000000000000 20 4 30 10 -1\n";
        assert!(tcp_listening(t, 5201));
        assert!(!tcp_listening(t, 5202));
        let established_only = t
            .lines()
            .take(1)
            .chain(t.lines().skip(2))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!tcp_listening(&established_only, 5201));
    }
}
