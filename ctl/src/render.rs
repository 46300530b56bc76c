//! Text renderings of replies, in the shapes ovs-vsctl / ovs-appctl users know. `--json`
//! prints the reply structures themselves (serde field names are the stable schema).

use std::fmt::Write;

use crate::proto::*;
use datapath::worker::PollMode;

/// `show`: an indented tree like `ovs-vsctl show`.
pub fn show(bridges: &[BridgeView]) -> String {
    let mut s = String::new();
    if bridges.is_empty() {
        s.push_str("(no bridges)\n");
    }
    for b in bridges {
        let _ = writeln!(s, "Bridge {}", b.name);
        for p in &b.ports {
            let _ = writeln!(s, "    Port {}", p.name);
            if let Some(o) = &p.owner {
                let _ = writeln!(s, "        owner: {o}");
            }
            let _ = writeln!(s, "        vlan: {}", p.vlan);
            if p.mtu != 1500 {
                let _ = writeln!(s, "        mtu: {}", p.mtu);
            }
            if p.isolated {
                let _ = writeln!(s, "        isolated");
            }
            if !p.no_flood.is_empty() {
                let _ = writeln!(s, "        no flood: {}", p.no_flood.join(" "));
            }
            let mut detail = vec![if p.backend.is_empty() || p.backend == p.kind {
                p.kind.clone()
            } else {
                format!("{} ({})", p.backend, p.kind)
            }];
            if !p.xdp_mode.is_empty() {
                detail.push(format!("xdp {}", p.xdp_mode));
            }
            if p.fast_path {
                detail.push("fast path".into());
            }
            if p.queues != 1 {
                detail.push(format!("{} queues", p.queues));
            }
            if let Some(w) = p.worker {
                detail.push(format!("pmd {w}"));
            }
            let _ = writeln!(
                s,
                "        Interface {} ({}): {}",
                p.interface,
                detail.join(", "),
                p.state
            );
        }
    }
    s
}

/// `port stats`: one row per port, then non-zero drop reasons.
pub fn port_stats(ports: &[PortStatsView]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<10} {:<12} {:>12} {:>14} {:>12} {:>14} {:>10} {:>10}",
        "BRIDGE", "PORT", "RX_PACKETS", "RX_BYTES", "TX_PACKETS", "TX_BYTES", "FLOODED", "DROPS"
    );
    for p in ports {
        let drops: u64 = p.drops.values().sum();
        let _ = writeln!(
            s,
            "{:<10} {:<12} {:>12} {:>14} {:>12} {:>14} {:>10} {:>10}",
            p.bridge,
            p.port,
            p.rx_packets,
            p.rx_bytes,
            p.tx_packets,
            p.tx_bytes,
            p.rx_flooded,
            drops
        );
        if !p.drops.is_empty() {
            let list: Vec<String> = p.drops.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(s, "{:<10} {:<12} drops: {}", "", "", list.join(" "));
        }
    }
    s
}

/// `fdb show`: like `ovs-appctl fdb/show`.
pub fn fdb(entries: &[FdbEntryView]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        " {:<12} {:>4}  {:<17}  {:>5}",
        "port", "VLAN", "MAC", "Age"
    );
    for e in entries {
        let age = if e.is_static {
            "static".to_string()
        } else {
            e.age.to_string()
        };
        let _ = writeln!(
            s,
            " {:<12} {:>4}  {:<17}  {:>5}",
            e.port, e.vlan, e.mac, age
        );
    }
    s
}

pub fn fdb_stats(st: &FdbStatsView) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "entries:             {} (static {})",
        st.entries, st.static_entries
    );
    let _ = writeln!(s, "capacity:            {}", st.capacity);
    let _ = writeln!(s, "aging time:          {} s", st.aging_secs);
    let _ = writeln!(s, "learned:             {}", st.learned);
    let _ = writeln!(s, "expired:             {}", st.expired);
    let _ = writeln!(s, "evicted:             {}", st.evicted);
    let _ = writeln!(s, "moved:               {}", st.moved);
    let _ = writeln!(s, "learn limit hits:    {}", st.learn_limit);
    let _ = writeln!(s, "static move blocked: {}", st.static_move_blocked);
    let _ = writeln!(s, "static removed:      {}", st.static_removed);
    s
}

/// `pmd show`: per-worker placement and load, like `ovs-appctl dpif-netdev/pmd-rxq-show`.
/// With the XDP fast path configured, a first line says so and each worker says whether
/// its bridge runs it; without, the output is as before the fast path existed.
pub fn pmd(
    workers: &[PmdView],
    xdp_fast_path: bool,
    poll_mode: PollMode,
    adaptive_window_us: u64,
) -> String {
    let mut s = String::new();
    match poll_mode {
        PollMode::Adaptive => {
            let _ = writeln!(s, "poll mode: adaptive (window {adaptive_window_us} us)");
        }
        m => {
            let _ = writeln!(s, "poll mode: {m}");
        }
    }
    if xdp_fast_path {
        let _ = writeln!(s, "xdp fast path: on");
    }
    for w in workers {
        let cpu = w
            .cpu
            .map_or("unpinned".to_string(), |c| format!("core_id {c}"));
        let _ = writeln!(s, "pmd thread {} of bridge {} ({cpu}):", w.worker, w.bridge);
        let _ = writeln!(
            s,
            "  packets: {}  bursts: {}  avg burst: {:.1}  busy: {:.1}%",
            w.packets,
            w.bursts,
            w.avg_burst,
            w.busy_ratio * 100.0
        );
        let _ = writeln!(
            s,
            "  rx queues: {}",
            if w.rx_queues.is_empty() {
                "(none)".into()
            } else {
                w.rx_queues.join(" ")
            }
        );
        let _ = writeln!(
            s,
            "  tx ports:  {}",
            if w.tx_ports.is_empty() {
                "(none)".into()
            } else {
                w.tx_ports.join(" ")
            }
        );
        let _ = writeln!(
            s,
            "  handoff out/in: {}/{}  lane full: {}  lane waits: {}  fdb updates sent: {} dropped: {}",
            w.handoff_out,
            w.handoff_in,
            w.handoff_full,
            w.lane_waits,
            w.fdb_updates_sent,
            w.fdb_updates_dropped
        );
        let _ = writeln!(
            s,
            "  poll mode: {}{}  idle waits: {}",
            w.poll_mode,
            if w.shares_cpu {
                " (kernel threads share its CPU)"
            } else {
                ""
            },
            w.idle_waits
        );
        match (&w.xdp_fast_path_error, w.xdp_fast_path) {
            (Some(e), _) => {
                let _ = writeln!(s, "  xdp fast path: unavailable: {e}");
            }
            (None, true) => {
                let _ = writeln!(
                    s,
                    "  xdp fast path: on  fdb entries: {}  map errors: {}  mirror updates dropped: {}",
                    w.xdp_fdb_entries, w.xdp_map_errors, w.xdp_mirror_dropped
                );
            }
            (None, false) if xdp_fast_path => {
                let _ = writeln!(s, "  xdp fast path: off");
            }
            (None, false) => {}
        }
        if w.packet_fast_path {
            let _ = writeln!(
                s,
                "  packet fast path: on  fdb entries: {}  map errors: {}",
                w.xdp_fdb_entries, w.xdp_map_errors
            );
        }
        for n in &w.notes {
            let _ = writeln!(s, "  note: {n}");
        }
    }
    s
}

pub fn trace(t: &TraceView) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "bridge {}, ingress port {}", t.bridge, t.ingress);
    for step in &t.steps {
        let _ = writeln!(s, "  {step}");
    }
    if t.egress.is_empty() {
        let _ = writeln!(
            s,
            "egress: none{}",
            t.drop
                .as_ref()
                .map(|d| format!(" (drop: {d})"))
                .unwrap_or_default()
        );
    } else {
        for e in &t.egress {
            let _ = writeln!(s, "egress: {} {}", e.port, e.tag);
        }
    }
    s
}
