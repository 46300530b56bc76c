//! The test topology: three namespaces (generator, middle, sink) and three veth pairs,
//! all uniquely named (process id + counter) and removed on drop.
//!
//! ```text
//!  gen ns              harness ns / middle ns              sink ns
//!  dir_g  ------------------------------------------------ dir_s     (direct)
//!  gen_g  ---- gen_m  [bridge | vswitch]  sink_m  -------- sink_s    (bridge, switch)
//! ```
//! The middle ends live in the harness's own namespace, where the in-process switch opens
//! its AF_XDP ports (port setup reads sysfs, which only shows the namespace it was mounted
//! in). For the bridge case they move into the middle namespace, which holds the bridge
//! (so bridge netfilter can be turned off there without touching the host's sysctls),
//! and back afterwards.
//! Deleting a namespace destroys the veth ends inside it and therefore their peers; the
//! [`VethPair`] guards cover a failure before the ends were moved.

use anyhow::Context;
use datapath::testutil::{unique_name, Netns, VethPair};
use vswitch_benches::harness::sh;

/// Kernel counters of one interface (from /proc/net/dev of its namespace).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct DevStats {
    pub rx_packets: u64,
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_dropped: u64,
}

impl DevStats {
    pub fn since(&self, b: &DevStats) -> DevStats {
        DevStats {
            rx_packets: self.rx_packets.saturating_sub(b.rx_packets),
            rx_dropped: self.rx_dropped.saturating_sub(b.rx_dropped),
            tx_packets: self.tx_packets.saturating_sub(b.tx_packets),
            tx_dropped: self.tx_dropped.saturating_sub(b.tx_dropped),
        }
    }
}

/// Reads the counters of `ifname` inside namespace `ns` (a thread joins the namespace and
/// reads /proc/thread-self/net/dev: no process spawn, so it can bracket a window).
pub fn dev_stats(ns: &Netns, ifname: &str) -> anyhow::Result<DevStats> {
    let name = ifname.to_owned();
    let text = datapath::sys::netns::run_in(&ns.path(), move || {
        std::fs::read_to_string("/proc/thread-self/net/dev")
    })
    .with_context(|| format!("enter namespace {}", ns.name()))?
    .context("read /proc/thread-self/net/dev")?;
    parse_net_dev(&text, &name)
        .with_context(|| format!("no interface {ifname} in namespace {}", ns.name()))
}

fn parse_net_dev(text: &str, ifname: &str) -> Option<DevStats> {
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if name.trim() != ifname {
            continue;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets errs drop ...
        return Some(DevStats {
            rx_packets: *v.get(1)?,
            rx_dropped: *v.get(3)?,
            tx_packets: *v.get(9)?,
            tx_dropped: *v.get(11)?,
        });
    }
    None
}

/// The namespaces and links of one harness run.
#[derive(Debug)]
pub struct Lab {
    // Field order is drop order: namespaces first (destroying their veths), then the
    // guards (which find nothing left to delete, or clean up a half-built lab).
    pub gen: Netns,
    pub mid: Netns,
    pub sink: Netns,
    pair_direct: VethPair,
    pair_gen: VethPair,
    pair_sink: VethPair,
    pub bridge: String,
    /// What was done about bridge netfilter in the middle namespace.
    pub bridge_nf: String,
}

impl Lab {
    /// Builds the namespaces and links (all up, IPv6 off, no addresses).
    pub fn new() -> anyhow::Result<Lab> {
        // Netns/VethPair panic with context on failure; turn that into an error here.
        let built = std::panic::catch_unwind(|| {
            let gen = Netns::new("pg");
            let mid = Netns::new("pm");
            let sink = Netns::new("ps");
            let pair_direct = VethPair::new("pd");
            let pair_gen = VethPair::new("pg");
            let pair_sink = VethPair::new("ps");
            gen.adopt(&pair_direct.a);
            sink.adopt(&pair_direct.b);
            gen.adopt(&pair_gen.a);
            sink.adopt(&pair_sink.b);
            (gen, mid, sink, pair_direct, pair_gen, pair_sink)
        });
        let (gen, mid, sink, pair_direct, pair_gen, pair_sink) =
            built.map_err(|_| anyhow::anyhow!("creating namespaces/veths failed (see above)"))?;
        let mut lab = Lab {
            gen,
            mid,
            sink,
            pair_direct,
            pair_gen,
            pair_sink,
            bridge: unique_name("pb"),
            bridge_nf: String::new(),
        };
        let m = lab.mid.name().to_owned();
        sh(
            "ip",
            &["-n", &m, "link", "add", &lab.bridge, "type", "bridge"],
        )?;
        sh(
            "ip",
            &[
                "netns",
                "exec",
                &m,
                "sh",
                "-c",
                &format!(
                    "echo 1 > /proc/sys/net/ipv6/conf/{}/disable_ipv6",
                    lab.bridge
                ),
            ],
        )?;
        sh("ip", &["-n", &m, "link", "set", &lab.bridge, "up"])?;
        lab.bridge_nf = lab.disable_bridge_nf();
        // GRO on the sink's veth gives it a NAPI context, which is what lets the switch's
        // XDP fast path redirect frames to its peer (veth_xdp_xmit). Frames forwarded as
        // skbs (direct, bridge, AF_XDP transmit) do not use it: all cases see the same sink.
        let s = lab.sink.name().to_owned();
        for ifname in [lab.pair_sink.b.clone(), lab.pair_direct.b.clone()] {
            sh(
                "ip",
                &["netns", "exec", &s, "ethtool", "-K", &ifname, "gro", "on"],
            )?;
        }
        Ok(lab)
    }

    /// Runs the sink veths' receive processing (their NAPI, which exists because GRO is on)
    /// as kernel threads pinned to `cpu`, so that in every case the sink's stack works on
    /// the same CPU: for the direct pair and the bridge, the softirq of the sender already
    /// runs there (the generator's CPU); for the switch, without this the sink's skb
    /// building and stack would be charged to the switch worker's core, as if a VM's
    /// receive cost belonged to the switch. Returns the number of threads pinned.
    pub fn pin_sink_napi(&self, cpu: usize) -> anyhow::Result<usize> {
        let s = self.sink.name().to_owned();
        let mut pinned = 0;
        for ifname in [self.pair_sink.b.clone(), self.pair_direct.b.clone()] {
            sh(
                "ip",
                &[
                    "netns",
                    "exec",
                    &s,
                    "sh",
                    "-c",
                    &format!("echo 1 > /sys/class/net/{ifname}/threaded"),
                ],
            )?;
            let n = datapath::sys::netdev::pin_existing_napi_threads(&ifname, cpu)
                .with_context(|| format!("pin the NAPI threads of {ifname} to CPU {cpu}"))?
                .len();
            pinned += n;
        }
        Ok(pinned)
    }

    /// Gives the generator's two veth ends (direct and switched) a transmit queue
    /// discipline (`pfifo`), the same for every case. A veth whose peer receives through
    /// NAPI (XDP attached, or GRO on) has a fixed 256-frame ring. Without a qdisc a full
    /// ring drops the frame; with one (Linux 6.16 and later) the veth stops its queue and
    /// the sender waits until the receiver has drained it, as a NIC's descriptor ring
    /// does. The generator's AF_XDP socket transmits past the qdisc itself
    /// (`dev_direct_xmit`), so the queue costs it nothing per frame: a full ring makes its
    /// `sendto` return EAGAIN and the frames stay in its TX ring. Older kernels drop as
    /// before. Returns what was set, for the report.
    pub fn give_generator_a_queue(&self) -> anyhow::Result<String> {
        let g = self.gen.name().to_owned();
        for ifname in [self.pair_direct.a.clone(), self.pair_gen.a.clone()] {
            sh(
                "ip",
                &[
                    "netns", "exec", &g, "tc", "qdisc", "replace", "dev", &ifname, "root", "pfifo",
                    "limit", "1000",
                ],
            )
            .with_context(|| format!("give {ifname} a pfifo qdisc"))?;
        }
        Ok("pfifo on the generator's veths (a full receive ring pushes back)".to_owned())
    }

    /// Turns bridge netfilter calls off in the middle namespace if br_netfilter is there.
    fn disable_bridge_nf(&self) -> String {
        vswitch_benches::harness::disable_bridge_nf(self.mid.name())
    }

    /// Generator end of the direct pair (in `gen`) and its peer (in `sink`).
    pub fn direct_gen(&self) -> &str {
        &self.pair_direct.a
    }
    pub fn direct_sink(&self) -> &str {
        &self.pair_direct.b
    }
    /// Generator end of the switched path (in `gen`) and its middle peer.
    pub fn gen_if(&self) -> &str {
        &self.pair_gen.a
    }
    pub fn gen_mid(&self) -> &str {
        &self.pair_gen.b
    }
    /// Middle end of the sink pair and the sink end (in `sink`).
    pub fn sink_mid(&self) -> &str {
        &self.pair_sink.a
    }
    pub fn sink_if(&self) -> &str {
        &self.pair_sink.b
    }

    /// Moves the two middle ends into the middle namespace and enslaves them to the
    /// bridge, with a static FDB entry for `dst` on the sink side (known unicast, like the
    /// switch).
    pub fn bridge_up(&self, dst: [u8; 6]) -> anyhow::Result<()> {
        let m = self.mid.name();
        for ifname in [self.gen_mid(), self.sink_mid()] {
            let name = ifname.to_owned();
            let mid = &self.mid;
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| mid.adopt(&name)))
                .map_err(|_| anyhow::anyhow!("move {name} into {m}"))?;
            sh(
                "ip",
                &["-n", m, "link", "set", ifname, "master", &self.bridge],
            )?;
        }
        let mac = mac_str(dst);
        sh(
            "bridge",
            &[
                "-n",
                m,
                "fdb",
                "replace",
                &mac,
                "dev",
                self.sink_mid(),
                "master",
                "static",
            ],
        )?;
        Ok(())
    }

    /// Takes the middle ends off the bridge and back into the harness's namespace.
    pub fn bridge_down(&self) -> anyhow::Result<()> {
        let m = self.mid.name();
        let me = std::process::id().to_string();
        for ifname in [self.gen_mid(), self.sink_mid()] {
            sh("ip", &["-n", m, "link", "set", ifname, "nomaster"])?;
            sh("ip", &["-n", m, "link", "set", ifname, "netns", &me])?;
            datapath::testutil::disable_ipv6(ifname);
            sh("ip", &["link", "set", ifname, "up"])?;
        }
        Ok(())
    }
}

pub fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    #[allow(unused_imports)]
    use super::*;

    #[test]
    fn parses_proc_net_dev() {
        let t = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n  pd1x2b: 600 10 0 3 0 0 0 0 1200 20 0 4 0 0 0 0\n";
        let s = parse_net_dev(t, "pd1x2b").expect("found");
        assert_eq!(
            (s.rx_packets, s.rx_dropped, s.tx_packets, s.tx_dropped),
            (10, 3, 20, 4)
        );
        assert!(parse_net_dev(t, "nope").is_none());
    }
}
