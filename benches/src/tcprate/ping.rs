//! Round-trip time from h1 to h2 with ping (iputils): one reply line per packet, parsed
//! for the time, so percentiles come from every packet rather than ping's summary.
//! Times are kept in nanoseconds as integers (ping prints milliseconds with up to three
//! decimals), so nothing is lost to floating point before the percentile.

use std::time::Duration;

use anyhow::bail;
use datapath::testutil::Netns;

use super::child::{in_netns, Running};
use super::topo::H2_ADDR;

/// RTT of one reply line (`64 bytes from 10.77.0.2: icmp_seq=1 ttl=64 time=0.045 ms`) in
/// nanoseconds; `None` for any other line, and for duplicates (`DUP!`).
pub fn reply_rtt_ns(line: &str) -> Option<u64> {
    if !line.contains(" bytes from ") || line.contains("DUP!") {
        return None;
    }
    let t = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("time="))?;
    ms_to_ns(t)
}

/// "0.045" (milliseconds, decimal) -> 45000 ns, exactly.
fn ms_to_ns(ms: &str) -> Option<u64> {
    let (int, frac) = ms.split_once('.').unwrap_or((ms, ""));
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int: u64 = int.parse().ok()?;
    let frac_ns: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().ok()?
    };
    int.checked_mul(1_000_000)?.checked_add(frac_ns)
}

/// `(transmitted, received)` from ping's summary line
/// (`20 packets transmitted, 20 received, 0% packet loss, time 95ms`).
pub fn summary(text: &str) -> Option<(u64, u64)> {
    let line = text
        .lines()
        .find(|l| l.contains(" packets transmitted, "))?;
    let mut nums = line
        .split(", ")
        .map(|part| part.split_whitespace().next().and_then(|n| n.parse().ok()));
    Some((nums.next()??, nums.next()??))
}

/// Nearest-rank percentile of `sorted` (ascending): the smallest value with at least
/// `p` percent of the values at or below it. `None` when empty.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// RTTs of one ping run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Rtt {
    pub sent: u64,
    pub received: u64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
    pub min_us: Option<f64>,
    pub max_us: Option<f64>,
}

/// Parses the whole output of `ping` (without `-q`).
pub fn parse_ping(text: &str) -> Rtt {
    let mut rtts: Vec<u64> = text.lines().filter_map(reply_rtt_ns).collect();
    rtts.sort_unstable();
    let us = |ns: Option<u64>| ns.map(|n| n as f64 / 1000.0);
    let (sent, _) = summary(text).unwrap_or((rtts.len() as u64, 0));
    Rtt {
        sent,
        received: rtts.len() as u64,
        p50_us: us(percentile(&rtts, 50.0)),
        p99_us: us(percentile(&rtts, 99.0)),
        p999_us: us(percentile(&rtts, 99.9)),
        min_us: us(rtts.first().copied()),
        max_us: us(rtts.last().copied()),
    }
}

/// Pings h2 from h1 `count` times every `interval`.
pub fn run_ping(h1: &Netns, count: u32, interval: Duration) -> anyhow::Result<Rtt> {
    let (n, i) = (count.to_string(), format!("{:.3}", interval.as_secs_f64()));
    let ping = Running::spawn(
        "ping",
        in_netns(h1.name(), "ping").args(["-n", "-i", &i, "-c", &n, "-W", "1", H2_ADDR]),
    )?;
    let limit = interval * count + Duration::from_secs(10);
    let done = ping.wait(limit)?;
    if done.timed_out {
        bail!("ping did not finish within {} s", limit.as_secs());
    }
    Ok(parse_ping(&done.stdout))
}

/// Whether h2 answers h1 within `secs` seconds (one ping per second).
pub fn reachable(h1: &Netns, secs: u32) -> anyhow::Result<bool> {
    for _ in 0..secs.max(1) {
        let ping = Running::spawn(
            "ping",
            in_netns(h1.name(), "ping").args(["-n", "-c", "1", "-W", "1", H2_ADDR]),
        )?;
        if ping.wait(Duration::from_secs(5))?.success() {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured on this machine (iputils 20221126): `ping -n -i 0.005 -c 20 -W 1` over a
    // veth pair, and 2 pings to an address nobody has.
    const TWENTY: &str = include_str!("testdata/ping-20.txt");
    const LOST: &str = include_str!("testdata/ping-lost.txt");

    #[test]
    fn reply_lines_give_exact_nanoseconds() {
        assert_eq!(
            reply_rtt_ns("64 bytes from 10.77.0.2: icmp_seq=1 ttl=64 time=0.155 ms"),
            Some(155_000)
        );
        assert_eq!(
            reply_rtt_ns("64 bytes from 10.77.0.2: icmp_seq=9 ttl=64 time=12.3 ms"),
            Some(12_300_000)
        );
        assert_eq!(
            reply_rtt_ns("64 bytes from 10.77.0.2: icmp_seq=9 ttl=64 time=123 ms"),
            Some(123_000_000)
        );
        assert_eq!(
            reply_rtt_ns("64 bytes from 10.77.0.2: icmp_seq=3 ttl=64 time=0.050 ms (DUP!)"),
            None
        );
        assert_eq!(
            reply_rtt_ns("PING 10.77.0.2 (10.77.0.2) 56(84) bytes of data."),
            None
        );
        assert_eq!(
            reply_rtt_ns("rtt min/avg/max/mdev = 0.005/0.014/0.155/0.032 ms"),
            None
        );
        assert_eq!(reply_rtt_ns("64 bytes from x: time=1.2.3 ms"), None);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[1, 2, 3], 50.0), Some(2));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn captured_run_percentiles() {
        // 20 replies: sorted 5 5 5 6 6 6 6 7 7 7 7 7 8 8 8 9 9 9 11 155 us.
        assert_eq!(
            parse_ping(TWENTY),
            Rtt {
                sent: 20,
                received: 20,
                p50_us: Some(7.0),
                p99_us: Some(155.0),
                p999_us: Some(155.0),
                min_us: Some(5.0),
                max_us: Some(155.0),
            }
        );
    }

    #[test]
    fn all_lost_has_no_percentiles() {
        assert_eq!(summary(LOST), Some((2, 0)));
        let r = parse_ping(LOST);
        assert_eq!((r.sent, r.received, r.p50_us, r.p99_us), (2, 0, None, None));
    }
}
