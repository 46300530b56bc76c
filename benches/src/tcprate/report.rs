//! Medians over rounds, ratios to the references, the Markdown table and the per-round
//! lines. Pure: everything here works on [`Round`]s already measured.
//!
//! A TCP run that moved nothing counts as 0 in the median (it is a finding); a round that
//! failed has no numbers and is left out of the medians, and a case with no measured
//! round shows its reason instead of numbers.

use std::fmt::Write as _;

use vswitch_benches::harness::median;

use super::case::Case;
use super::run::{Outcome, Round};

/// One line of the table: a case's medians over its measured rounds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    pub case: Case,
    pub rounds: usize,
    pub measured: usize,
    /// `failed: ...` or `unavailable: ...` when no round was measured.
    pub status: Option<String>,
    pub gbps_1: Option<f64>,
    pub gbps_4: Option<f64>,
    /// The Linux bridge case with the same offloads.
    pub bridge_reference: Case,
    /// Over the bridge reference, 1 stream and 4 streams.
    pub over_bridge: [Option<f64>; 2],
    /// Over ovs-system-tso, 1 stream and 4 streams.
    pub over_ovs_system_tso: [Option<f64>; 2],
    pub rtt_p50_us: Option<f64>,
    pub rtt_p99_us: Option<f64>,
    /// Distinct notes over the rounds: why a TCP run moved nothing, OVS warnings, rounds
    /// that failed while others did not.
    pub notes: Vec<String>,
}

fn med(v: Vec<f64>) -> Option<f64> {
    (!v.is_empty()).then(|| median(v))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn push_once(notes: &mut Vec<String>, n: String) {
    if !notes.contains(&n) {
        notes.push(n);
    }
}

/// Rows for `cases` (in that order) from all rounds.
pub fn summarize(cases: &[Case], rounds: &[Round]) -> Vec<Row> {
    let mut rows: Vec<Row> = cases
        .iter()
        .map(|&case| {
            let mine: Vec<&Round> = rounds.iter().filter(|r| r.case == case).collect();
            let mut notes = Vec::new();
            let mut first_problem = None;
            let (mut g1, mut g4, mut p50, mut p99) = (vec![], vec![], vec![], vec![]);
            for r in &mine {
                match &r.outcome {
                    Outcome::Measured(m) => {
                        g1.push(m.one_stream.gbps);
                        g4.push(m.four_streams.gbps);
                        p50.extend(m.rtt.p50_us);
                        p99.extend(m.rtt.p99_us);
                        for t in [&m.one_stream, &m.four_streams] {
                            if let Some(n) = &t.note {
                                let s = if t.streams == 1 { "" } else { "s" };
                                push_once(&mut notes, format!("{} stream{s}: {n}", t.streams));
                            }
                        }
                        if m.rtt.received < m.rtt.sent {
                            push_once(
                                &mut notes,
                                format!(
                                    "ping: {} of {} replies (round {})",
                                    m.rtt.received, m.rtt.sent, r.round
                                ),
                            );
                        }
                        for n in &m.notes {
                            push_once(&mut notes, n.clone());
                        }
                    }
                    Outcome::Failed { reason } => {
                        first_problem.get_or_insert_with(|| format!("failed: {reason}"));
                    }
                    Outcome::Unavailable { reason } => {
                        first_problem.get_or_insert_with(|| format!("unavailable: {reason}"));
                    }
                }
            }
            let measured = g1.len();
            let status = if measured == 0 {
                Some(first_problem.take().unwrap_or_else(|| "not run".to_owned()))
            } else {
                None
            };
            if let Some(p) = first_problem {
                notes.push(format!(
                    "{} of {} rounds not measured; first: {p}",
                    mine.len() - measured,
                    mine.len()
                ));
            }
            Row {
                case,
                rounds: mine.len(),
                measured,
                status,
                gbps_1: med(g1),
                gbps_4: med(g4),
                bridge_reference: case.bridge_reference(),
                over_bridge: [None, None],
                over_ovs_system_tso: [None, None],
                rtt_p50_us: med(p50),
                rtt_p99_us: med(p99),
                notes,
            }
        })
        .collect();
    let get = |rows: &[Row], c: Case| {
        rows.iter()
            .find(|r| r.case == c)
            .map(|r| (r.gbps_1, r.gbps_4))
            .unwrap_or((None, None))
    };
    let refs: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                get(&rows, r.bridge_reference),
                get(&rows, Case::OvsSystemTso),
            )
        })
        .collect();
    for (r, ((b1, b4), (o1, o4))) in rows.iter_mut().zip(refs) {
        r.over_bridge = [ratio(r.gbps_1, b1), ratio(r.gbps_4, b4)];
        r.over_ovs_system_tso = [ratio(r.gbps_1, o1), ratio(r.gbps_4, o4)];
    }
    rows
}

/// Table-cell text: one line, no `|`, at most `max` characters.
pub fn cell(s: &str, max: usize) -> String {
    let one: String = s
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "/");
    if one.chars().count() <= max {
        one
    } else {
        let mut t: String = one.chars().take(max.saturating_sub(3)).collect();
        t.push_str("...");
        t
    }
}

fn num(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.prec$}"))
}

fn pair(v: [Option<f64>; 2], prec: usize) -> String {
    format!("{} / {}", num(v[0], prec), num(v[1], prec))
}

/// The Markdown table of `rows`.
pub fn markdown_table(rows: &[Row]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "| case | Gbps 1 stream | Gbps 4 streams | ratio to bridge (1 / 4) | ratio to OVS system+TSO (1 / 4) | RTT p50 / p99 us |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|");
    for r in rows {
        match &r.status {
            Some(s) => {
                let _ = writeln!(
                    o,
                    "| {} | {} | - | - | - | - |",
                    r.case.name(),
                    cell(s, 200)
                );
            }
            None => {
                let marker = if r.bridge_reference == Case::Bridge {
                    ""
                } else {
                    " (a)"
                };
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {}{marker} | {} | {} / {} |",
                    r.case.name(),
                    num(r.gbps_1, 2),
                    num(r.gbps_4, 2),
                    pair(r.over_bridge, 2),
                    pair(r.over_ovs_system_tso, 2),
                    num(r.rtt_p50_us, 1),
                    num(r.rtt_p99_us, 1),
                );
            }
        }
    }
    o
}

/// The notes under the table: the footnote of the ratio, then each case's notes.
pub fn notes(rows: &[Row]) -> String {
    let mut o = String::new();
    if rows
        .iter()
        .any(|r| r.status.is_none() && r.bridge_reference != Case::Bridge)
    {
        let _ = writeln!(
            o,
            "(a) offloads-off case: ratio to bridge-offloads-off (the bridge with the same \
             ethtool settings on h1/h2)."
        );
    }
    for r in rows {
        for n in &r.notes {
            let _ = writeln!(o, "- {}: {}", r.case.name(), cell(n, 300));
        }
    }
    o
}

/// One line per case and round, as measured.
pub fn round_line(r: &Round) -> String {
    let head = format!("round {} {:<27}", r.round, r.case.name());
    match &r.outcome {
        Outcome::Measured(m) => {
            let tcp = |t: &super::iperf::TcpRun| {
                let retr = t
                    .retransmits
                    .map(|x| format!(" ({x} retr)"))
                    .unwrap_or_default();
                let note = t
                    .note
                    .as_ref()
                    .map(|n| format!(" [{}]", cell(n, 120)))
                    .unwrap_or_default();
                format!("{:.2} Gbps{retr}{note}", t.gbps)
            };
            format!(
                "{head} 1 stream {}, 4 streams {}, RTT p50/p99 {}/{} us ({}/{} replies)",
                tcp(&m.one_stream),
                tcp(&m.four_streams),
                num(m.rtt.p50_us, 1),
                num(m.rtt.p99_us, 1),
                m.rtt.received,
                m.rtt.sent
            )
        }
        Outcome::Failed { reason } => format!("{head} failed: {}", cell(reason, 300)),
        Outcome::Unavailable { reason } => format!("{head} unavailable: {}", cell(reason, 300)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::iperf::TcpRun;
    use super::super::ping::Rtt;
    use super::super::run::Measured;
    use super::*;

    fn tcp(streams: u32, gbps: f64) -> TcpRun {
        TcpRun {
            streams,
            gbps,
            retransmits: Some(7),
            note: (gbps == 0.0).then(|| "iperf3: unable to connect to server".to_owned()),
        }
    }

    fn measured(case: Case, round: usize, g1: f64, g4: f64, p50: f64, p99: f64) -> Round {
        Round {
            case,
            round,
            outcome: Outcome::Measured(Box::new(Measured {
                rtt: Rtt {
                    sent: 100,
                    received: 100,
                    p50_us: Some(p50),
                    p99_us: Some(p99),
                    p999_us: Some(p99),
                    min_us: Some(p50),
                    max_us: Some(p99),
                },
                one_stream: tcp(1, g1),
                four_streams: tcp(4, g4),
                notes: Vec::new(),
            })),
        }
    }

    fn failed(case: Case, round: usize, reason: &str) -> Round {
        Round {
            case,
            round,
            outcome: Outcome::Failed {
                reason: reason.to_owned(),
            },
        }
    }

    fn sample() -> (Vec<Case>, Vec<Round>) {
        let cases = vec![
            Case::Bridge,
            Case::BridgeOffloadsOff,
            Case::VswitchPacket,
            Case::VswitchTap,
            Case::VswitchAfxdpOffloadsOff,
            Case::OvsSystemTso,
            Case::OvsAfxdp,
        ];
        let unavailable = |case, round| Round {
            case,
            round,
            outcome: Outcome::Unavailable {
                reason: "ovs-vswitchd not installed".to_owned(),
            },
        };
        let rounds = vec![
            measured(Case::Bridge, 0, 16.0, 24.0, 10.0, 20.0),
            measured(Case::BridgeOffloadsOff, 0, 4.0, 6.0, 10.0, 20.0),
            failed(
                Case::VswitchPacket,
                0,
                "vswitchctl add-port br0 p1 --type packet: error: invalid value 'packet' for '--type <KIND>'\n  [possible values: afxdp, tap]",
            ),
            measured(Case::VswitchTap, 0, 2.0, 3.0, 30.0, 60.0),
            measured(Case::VswitchAfxdpOffloadsOff, 0, 2.0, 2.0, 25.0, 50.0),
            measured(Case::OvsSystemTso, 0, 0.0, 0.0, 40.0, 80.0),
            unavailable(Case::OvsAfxdp, 0),
            measured(Case::Bridge, 1, 18.0, 26.0, 12.0, 30.0),
            measured(Case::BridgeOffloadsOff, 1, 4.4, 6.6, 10.0, 22.0),
            failed(Case::VswitchPacket, 1, "same"),
            failed(Case::VswitchTap, 1, "vswitchd did not answer"),
            measured(Case::VswitchAfxdpOffloadsOff, 1, 2.4, 3.0, 27.0, 52.0),
            measured(Case::OvsSystemTso, 1, 0.0, 0.0, 42.0, 84.0),
            unavailable(Case::OvsAfxdp, 1),
        ];
        (cases, rounds)
    }

    #[test]
    fn medians_ratios_and_missing_rounds() {
        let (cases, rounds) = sample();
        let rows = summarize(&cases, &rounds);
        let row = |c: Case| rows.iter().find(|r| r.case == c).expect("row").clone();
        let b = row(Case::Bridge);
        assert_eq!((b.gbps_1, b.gbps_4), (Some(17.0), Some(25.0)));
        assert_eq!((b.rtt_p50_us, b.rtt_p99_us), (Some(11.0), Some(25.0)));
        assert_eq!(b.over_bridge, [Some(1.0), Some(1.0)]);
        assert_eq!(b.over_ovs_system_tso, [None, None], "OVS moved nothing");
        let t = row(Case::VswitchTap);
        assert_eq!((t.measured, t.rounds), (1, 2));
        assert_eq!(t.over_bridge, [Some(2.0 / 17.0), Some(3.0 / 25.0)]);
        assert_eq!(
            t.notes,
            vec!["1 of 2 rounds not measured; first: failed: vswitchd did not answer"]
        );
        let x = row(Case::VswitchAfxdpOffloadsOff);
        assert_eq!(x.bridge_reference, Case::BridgeOffloadsOff);
        assert_eq!((x.gbps_1, x.gbps_4), (Some(2.2), Some(2.5)));
        assert_eq!(x.over_bridge, [Some(2.2 / 4.2), Some(2.5 / 6.3)]);
        let o = row(Case::OvsSystemTso);
        assert_eq!((o.gbps_1, o.gbps_4), (Some(0.0), Some(0.0)), "0 is kept");
        assert_eq!(
            o.notes,
            vec![
                "1 stream: iperf3: unable to connect to server",
                "4 streams: iperf3: unable to connect to server"
            ]
        );
        let p = row(Case::VswitchPacket);
        assert_eq!(p.measured, 0);
        assert!(p
            .status
            .as_deref()
            .expect("status")
            .starts_with("failed: vswitchctl"));
        assert_eq!(
            row(Case::OvsAfxdp).status.as_deref(),
            Some("unavailable: ovs-vswitchd not installed")
        );
    }

    #[test]
    fn table_renders_exactly() {
        let (cases, rounds) = sample();
        let rows = summarize(&cases, &rounds);
        let expected = "\
| case | Gbps 1 stream | Gbps 4 streams | ratio to bridge (1 / 4) | ratio to OVS system+TSO (1 / 4) | RTT p50 / p99 us |
|---|---:|---:|---:|---:|---:|
| bridge | 17.00 | 25.00 | 1.00 / 1.00 | - / - | 11.0 / 25.0 |
| bridge-offloads-off | 4.20 | 6.30 | 1.00 / 1.00 (a) | - / - | 10.0 / 21.0 |
| vswitch-packet | failed: vswitchctl add-port br0 p1 --type packet: error: invalid value 'packet' for '--type <KIND>' [possible values: afxdp, tap] | - | - | - | - |
| vswitch-tap | 2.00 | 3.00 | 0.12 / 0.12 | - / - | 30.0 / 60.0 |
| vswitch-afxdp-offloads-off | 2.20 | 2.50 | 0.52 / 0.40 (a) | - / - | 26.0 / 51.0 |
| ovs-system-tso | 0.00 | 0.00 | 0.00 / 0.00 | - / - | 41.0 / 82.0 |
| ovs-afxdp | unavailable: ovs-vswitchd not installed | - | - | - | - |
";
        assert_eq!(markdown_table(&rows), expected);
        let n = notes(&rows);
        assert!(n.starts_with("(a) offloads-off case: ratio to bridge-offloads-off"));
        assert!(n.contains("- ovs-system-tso: 1 stream: iperf3: unable to connect to server\n"));
    }

    #[test]
    fn cells_are_one_short_line() {
        assert_eq!(cell("a |b\n  c", 100), "a /b c");
        assert_eq!(cell("abcdefghij", 8), "abcde...");
    }

    #[test]
    fn round_lines() {
        let (_, rounds) = sample();
        assert_eq!(
            round_line(&rounds[0]),
            "round 0 bridge                      1 stream 16.00 Gbps (7 retr), 4 streams 24.00 Gbps (7 retr), RTT p50/p99 10.0/20.0 us (100/100 replies)"
        );
        assert_eq!(
            round_line(&rounds[10]),
            "round 1 vswitch-tap                 failed: vswitchd did not answer"
        );
    }
}
