//! `trace`: explains what the pipeline does with one frame, by running the real pipeline
//! on a scratch copy of the switch state (topology and FDB entries), so the explanation
//! and what real frames do cannot disagree.

use crate::fdb::{FdbConfig, FdbEntry};
use crate::pipeline::{Pipeline, TxDone, TxItem, TxPorts, Verdict};
use crate::topology::{PortId, Topology};
use crate::wire::{mac48, Edit, L2Header, MacAddr};

/// The explanation of one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// One line per stage.
    pub steps: Vec<String>,
    /// Egress ports with the edit each copy gets.
    pub egress: Vec<(PortId, Edit)>,
    pub verdict: Verdict,
}

struct Collect(Vec<(PortId, Edit)>);

impl TxPorts for Collect {
    fn tx_burst(
        &mut self,
        port: PortId,
        _frames: &[&[u8]],
        _offloads: &[crate::offload::Offload],
        items: &[TxItem],
    ) -> TxDone {
        self.0.extend(items.iter().map(|i| (port, i.edit)));
        TxDone {
            sent: items.len(),
            ..TxDone::default()
        }
    }
}

fn port_name(topo: &Topology, p: PortId) -> String {
    topo.port(p)
        .map(|c| c.name.clone())
        .unwrap_or_else(|| format!("#{p}"))
}

/// Traces `frame` arriving on `ingress`, with the FDB holding `entries`.
pub fn trace(
    topo: &Topology,
    entries: &[FdbEntry],
    fdb: FdbConfig,
    ingress: PortId,
    frame: &[u8],
    now: u64,
) -> Trace {
    let mut p = Pipeline::new(FdbConfig {
        capacity: fdb.capacity.max(entries.len() + 1),
        ..fdb
    });
    for e in entries {
        if e.is_static {
            let _ = p.fdb_mut().add_static(e.vid, e.mac, e.port);
        } else {
            p.fdb_mut()
                .learn(e.vid, e.mac, e.port, now.saturating_sub(e.age), None);
        }
    }
    let mut steps = Vec::new();
    let iname = port_name(topo, ingress);
    match L2Header::parse(frame) {
        Err(e) => steps.push(format!("parse: {} bytes: {e}", frame.len())),
        Ok(h) => {
            let tag = match h.tag {
                Some(t) => format!("802.1Q vid {} pcp {}", t.vid(), t.pcp()),
                None => "untagged".into(),
            };
            steps.push(format!(
                "parse: {} bytes, dst {} src {}, {tag}",
                frame.len(),
                h.dst_mac(),
                h.src_mac()
            ));
            if let Some(cfg) = topo.port(ingress) {
                match cfg.vlan.classify(h.tag) {
                    Ok(c) => {
                        steps.push(format!(
                            "classify: port {iname} ({}) -> VLAN {}",
                            cfg.vlan, c.vid
                        ));
                        let src = MacAddr::from_u64(h.src);
                        let known = entries.iter().find(|e| e.vid == c.vid && e.mac == src);
                        if !mac48::is_learnable(h.src) {
                            steps.push("learn: source is not a unicast address".into());
                        } else if !cfg.learning {
                            steps.push(format!("learn: off on port {iname}"));
                        } else {
                            let what = match known {
                                None => "new entry".to_string(),
                                Some(e) if e.port == ingress => "refresh".to_string(),
                                Some(e) if e.is_static => {
                                    format!("static on {}: not moved", port_name(topo, e.port))
                                }
                                Some(e) => format!("move from {}", port_name(topo, e.port)),
                            };
                            steps.push(format!("learn: {src} vlan {} on {iname}: {what}", c.vid));
                        }
                        if mac48::is_multicast(h.dst) {
                            steps.push("lookup: group address: flood in VLAN".into());
                        } else {
                            let dst = MacAddr::from_u64(h.dst);
                            match entries.iter().find(|e| e.vid == c.vid && e.mac == dst) {
                                Some(e) => steps.push(format!(
                                    "lookup: {dst} vlan {} -> {}",
                                    c.vid,
                                    port_name(topo, e.port)
                                )),
                                None => steps.push(format!(
                                    "lookup: {dst} vlan {} unknown: flood in VLAN",
                                    c.vid
                                )),
                            }
                        }
                    }
                    Err(r) => steps.push(format!(
                        "classify: port {iname} ({}): {}",
                        cfg.vlan,
                        r.description()
                    )),
                }
            }
        }
    }
    let frames = [frame];
    p.process(topo, ingress, &frames, &[], now);
    let verdict = p
        .verdicts()
        .first()
        .copied()
        .unwrap_or(Verdict::Drop(crate::counters::DropReason::PortDown));
    let mut sink = Collect(Vec::new());
    p.flush(&frames, &[], &mut sink);
    // Egress drops (MTU) show up as counters on the egress ports.
    for (port, c) in topo.iter() {
        let n = p
            .counters(port)
            .drops(crate::counters::DropReason::MtuExceeded);
        if n > 0 {
            steps.push(format!(
                "egress: {}: dropped, frame exceeds MTU {}",
                c.name, c.mtu
            ));
        }
    }
    match verdict {
        Verdict::Drop(r) => steps.push(format!("verdict: drop {} ({})", r.name(), r.description())),
        Verdict::Unicast(q) => steps.push(format!("verdict: unicast to {}", port_name(topo, q))),
        Verdict::Flood { copies } => steps.push(format!("verdict: flood, {copies} copies")),
    }
    Trace {
        steps,
        egress: sink.0,
        verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdb::FdbConfig;
    use crate::mem::{MemPortConfig, MemSwitch};
    use crate::topology::PortConfig;
    use crate::wire::{EthernetRepr, Tci};

    fn pid(i: usize) -> PortId {
        PortId::new(i).expect("port")
    }

    #[test]
    fn trace_agrees_with_forwarding() {
        let mut b = Topology::builder();
        for (i, v) in ["access 10", "access 10", "trunk 10,20"].iter().enumerate() {
            b.add_port(
                i,
                PortConfig::new(format!("p{i}"), v.parse().expect("vlan")),
            )
            .expect("port");
        }
        let topo = b.build();
        let mut sw = MemSwitch::new(
            Topology::builder().build(),
            FdbConfig::default(),
            MemPortConfig::default(),
            32,
        );
        sw.set_topology(topo);
        let a = MacAddr([2, 0, 0, 0, 0, 1]);
        let z = MacAddr([2, 0, 0, 0, 0, 2]);
        let hello = EthernetRepr {
            dst: MacAddr::BROADCAST,
            src: z,
            tag: Some(Tci::new(0, false, 10)),
            ethertype: 0x0800,
        }
        .to_frame(&[0; 46]);
        sw.inject(pid(2), &hello).expect("inject");
        sw.run();
        let f = EthernetRepr {
            dst: z,
            src: a,
            tag: None,
            ethertype: 0x0800,
        }
        .to_frame(&[0; 46]);
        let entries: Vec<_> = sw.pipeline().fdb().entries(0).collect();
        let t = trace(sw.topology(), &entries, FdbConfig::default(), pid(0), &f, 0);
        assert_eq!(t.verdict, Verdict::Unicast(pid(2)));
        assert_eq!(t.egress, vec![(pid(2), Edit::Push(Tci::new(0, false, 10)))]);
        assert!(
            t.steps
                .iter()
                .any(|s| s == "classify: port p0 (access 10) -> VLAN 10"),
            "{:?}",
            t.steps
        );
        assert!(
            t.steps
                .iter()
                .any(|s| s == "lookup: 02:00:00:00:00:02 vlan 10 -> p2"),
            "{:?}",
            t.steps
        );
        // The real switch does the same.
        for p in 0..3 {
            sw.take_tx(pid(p));
        }
        sw.inject(pid(0), &f).expect("inject");
        sw.run();
        assert_eq!(sw.pipeline().verdicts(), &[t.verdict]);
        // A tagged frame on the access port: explained drop.
        let bad = EthernetRepr {
            dst: z,
            src: a,
            tag: Some(Tci::new(0, false, 20)),
            ethertype: 0x0800,
        }
        .to_frame(&[0; 46]);
        let t = trace(
            sw.topology(),
            &entries,
            FdbConfig::default(),
            pid(0),
            &bad,
            0,
        );
        assert_eq!(
            t.verdict,
            Verdict::Drop(crate::counters::DropReason::TaggedOnAccess)
        );
        assert!(t.egress.is_empty());
        assert_eq!(
            t.steps.last().map(String::as_str),
            Some("verdict: drop tagged_on_access (Tagged frame (VID != 0) on an access port.)")
        );
    }
}
