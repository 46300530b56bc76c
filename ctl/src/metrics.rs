//! Prometheus text exposition (format 0.0.4) of per-port counters, drops by reason, FDB
//! counters and per-worker load, gathered from worker snapshots at scrape time.
//!
//! A scrape is bounded work whatever the tables hold: it asks the workers for counters
//! only (never for FDB entries), so its cost grows with ports and workers, not MACs.

use std::fmt::Write;

use datapath::counters::DropReason;
use datapath::worker::sum_counters;

use crate::daemon::{Daemon, WORKER_TIMEOUT};

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole exposition.
pub fn render(d: &Daemon) -> String {
    let mut drops = String::new();
    let mut fdb = String::new();
    let mut pmd = String::new();
    let mut errors = 0u64;
    let mut port_lines: Vec<(String, String, [u64; 5])> = Vec::new();
    for (bname, dp) in d.bridges() {
        let snaps = match dp.snapshot(false, WORKER_TIMEOUT) {
            Ok(s) => s,
            Err(_) => {
                errors += 1;
                continue;
            }
        };
        let b = esc(bname);
        for (id, c) in sum_counters(&snaps) {
            let p = esc(&d.port_label(bname, id));
            port_lines.push((
                b.clone(),
                p.clone(),
                [
                    c.rx_packets,
                    c.rx_bytes,
                    c.tx_packets,
                    c.tx_bytes,
                    c.rx_flooded,
                ],
            ));
            for r in DropReason::ALL {
                let _ = writeln!(
                    drops,
                    "vswitch_port_drops_total{{bridge=\"{b}\",port=\"{p}\",reason=\"{}\"}} {}",
                    r.name(),
                    c.drops(*r)
                );
            }
        }
        // Every worker holds a replica of the bridge's table, kept in step by learning
        // updates: the largest replica is the table's size (a scrape racing a learn, or
        // an update dropped on a full lane, may count fewer than `fdb show` merges).
        let entries = snaps.iter().map(|s| s.fdb.entries).max().unwrap_or(0);
        let _ = writeln!(fdb, "vswitch_fdb_entries{{bridge=\"{b}\"}} {entries}");
        let sum = |f: fn(&datapath::fdb::FdbCounters) -> u64| -> u64 {
            snaps.iter().map(|s| f(&s.fdb)).sum()
        };
        for (name, v) in [
            ("learned", sum(|c| c.learned)),
            ("expired", sum(|c| c.expired)),
            ("evicted", sum(|c| c.evicted)),
            ("moved", sum(|c| c.moved)),
            ("learn_limit", sum(|c| c.learn_limit)),
            ("static_move_blocked", sum(|c| c.static_move_blocked)),
        ] {
            let _ = writeln!(
                fdb,
                "vswitch_fdb_events_total{{bridge=\"{b}\",event=\"{name}\"}} {v}"
            );
        }
        for s in &snaps {
            let st = &s.stats;
            let _ = writeln!(
                pmd,
                "vswitch_pmd_busy_ratio{{bridge=\"{b}\",worker=\"{}\"}} {:.6}",
                st.id,
                st.busy_ratio()
            );
            let _ = writeln!(
                pmd,
                "vswitch_pmd_packets_total{{bridge=\"{b}\",worker=\"{}\"}} {}",
                st.id, st.packets
            );
        }
    }
    let mut out = String::new();
    let names = [
        (
            "vswitch_port_rx_packets_total",
            "Frames received on the port.",
        ),
        ("vswitch_port_rx_bytes_total", "Bytes received on the port."),
        (
            "vswitch_port_tx_packets_total",
            "Frames transmitted on the port.",
        ),
        (
            "vswitch_port_tx_bytes_total",
            "Bytes transmitted on the port.",
        ),
        (
            "vswitch_port_rx_flooded_total",
            "Frames from the port that were flooded.",
        ),
    ];
    for (i, (name, help)) in names.iter().enumerate() {
        header(&mut out, name, "counter", help);
        for (b, p, v) in &port_lines {
            let _ = writeln!(out, "{name}{{bridge=\"{b}\",port=\"{p}\"}} {}", v[i]);
        }
    }
    header(
        &mut out,
        "vswitch_port_drops_total",
        "counter",
        "Frames dropped, by port and reason.",
    );
    out.push_str(&drops);
    header(
        &mut out,
        "vswitch_fdb_entries",
        "gauge",
        "MAC table entries.",
    );
    out.push_str(
        &fdb.lines()
            .filter(|l| l.starts_with("vswitch_fdb_entries"))
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    );
    header(
        &mut out,
        "vswitch_fdb_events_total",
        "counter",
        "MAC learning events.",
    );
    out.push_str(
        &fdb.lines()
            .filter(|l| l.starts_with("vswitch_fdb_events_total"))
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    );
    header(
        &mut out,
        "vswitch_pmd_busy_ratio",
        "gauge",
        "Fraction of PMD loop time spent moving frames.",
    );
    out.push_str(
        &pmd.lines()
            .filter(|l| l.starts_with("vswitch_pmd_busy_ratio"))
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    );
    header(
        &mut out,
        "vswitch_pmd_packets_total",
        "counter",
        "Frames received by the PMD worker.",
    );
    out.push_str(
        &pmd.lines()
            .filter(|l| l.starts_with("vswitch_pmd_packets_total"))
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    );
    header(
        &mut out,
        "vswitch_scrape_errors",
        "gauge",
        "Bridges whose workers did not answer this scrape.",
    );
    let _ = writeln!(out, "vswitch_scrape_errors {errors}");
    out
}
