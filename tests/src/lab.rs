//! Shared pieces of the vswitchd scenario tests (`ctl_acceptance`, `ctl_scenarios_*`): the
//! 1-and-2-worker test generator, a bridge of quiet hosts with captures, and frame
//! collection by sequence number.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::daemon::{wait_until, Daemon};
use crate::testutil::{test_seq, Capture};
use crate::{drain, mac_string, Host, Watchdog};

/// The bridge every lab creates.
pub const BR: &str = "br0";

/// Generates tests `NAME::one_worker` and `NAME::two_workers` calling `NAME(workers, net)`;
/// `net` differs per test (+100 for two workers) so every test has its own subnet.
#[macro_export]
macro_rules! per_workers {
    ($body:ident, $net:expr) => {
        mod $body {
            #[test]
            fn one_worker() {
                if !$crate::root_or_skip(concat!(stringify!($body), "::one_worker")) {
                    return;
                }
                super::$body(1, $net);
            }
            #[test]
            fn two_workers() {
                if !$crate::root_or_skip(concat!(stringify!($body), "::two_workers")) {
                    return;
                }
                super::$body(2, $net + 100);
            }
        }
    };
}

/// An FDB entry as the daemon reports it: (vlan, mac, port, static).
pub type FdbRow = (u64, String, String, bool);

/// A bridge with hosts on AF_XDP ports, each with a capture on its interface (which also
/// sends raw frames). Hosts never send anything by themselves (IPv6 is off, no pings).
#[derive(Debug)]
pub struct Lab {
    pub hosts: Vec<(&'static str, Host, Capture)>,
    pub dmn: Daemon,
    _wd: Watchdog,
}

impl Lab {
    /// Starts vswitchd with config file text `cfg`, bridge [`BR`], and one host per entry
    /// of `ports` (port name, add-port options), host `i` at address `ip(i + 1)`. Ports
    /// are added in order (round-robin over the workers).
    pub fn new(cfg: &str, ip: impl Fn(u8) -> Ipv4Addr, ports: &[(&'static str, &[&str])]) -> Lab {
        let hosts: Vec<(&'static str, Host)> = ports
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (*name, Host::with_offloads("cl", ip(i as u8 + 1))))
            .collect();
        let dmn = Daemon::start(cfg);
        let wd = Watchdog::new(Duration::from_secs(60), "scenario lab", dmn.pid());
        dmn.add_br(BR);
        for ((name, h), (_, opts)) in hosts.iter().zip(ports) {
            dmn.add_port(BR, name, h.switch_if(), opts);
        }
        let hosts = hosts
            .into_iter()
            .map(|(n, h)| {
                let c = h.capture();
                (n, h, c)
            })
            .collect();
        Lab {
            hosts,
            dmn,
            _wd: wd,
        }
    }
    pub fn host(&self, name: &str) -> &Host {
        &self.entry(name).1
    }
    pub fn cap(&self, name: &str) -> &Capture {
        &self.entry(name).2
    }
    fn entry(&self, name: &str) -> &(&'static str, Host, Capture) {
        self.hosts
            .iter()
            .find(|h| h.0 == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }
    /// Sends `frames` from host `name` and waits until the switch counted them received.
    pub fn send(&self, name: &str, frames: &[Vec<u8>]) {
        send_counted(&self.dmn, name, self.cap(name), frames);
    }
    /// FDB entries for `mac`.
    pub fn fdb_for(&self, mac: [u8; 6]) -> Vec<FdbRow> {
        self.fdb_of(&[mac])
    }
    /// FDB entries whose MAC is one of `macs`, sorted.
    pub fn fdb_of(&self, macs: &[[u8; 6]]) -> Vec<FdbRow> {
        let ms: Vec<String> = macs.iter().map(|m| mac_string(*m)).collect();
        let mut v: Vec<_> = self
            .dmn
            .fdb_entries(BR)
            .into_iter()
            .filter(|e| ms.contains(&e.1))
            .collect();
        v.sort();
        v
    }
    /// Empties every host's capture.
    pub fn drain_all(&self) {
        for (_, _, c) in &self.hosts {
            drain(c);
        }
    }
    /// tx_packets of every host's port, in host order.
    pub fn tx(&self) -> Vec<u64> {
        self.hosts
            .iter()
            .map(|(n, _, _)| self.dmn.port_stats(BR, n).tx_packets)
            .collect()
    }
}

/// Sends `frames` through `cap` (the host behind port `port` of [`BR`]) and waits until
/// the switch counted them received on that port.
pub fn send_counted(dmn: &Daemon, port: &str, cap: &Capture, frames: &[Vec<u8>]) {
    let before = dmn.port_stats(BR, port).rx_packets;
    for f in frames {
        cap.send(f);
    }
    let n = frames.len() as u64;
    wait_until(
        Duration::from_secs(10),
        &format!("switch received {n} frames from {port}"),
        || dmn.port_stats(BR, port).rx_packets >= before + n,
    );
}

/// Test frames with a sequence number in `range` captured by `cap` (waits up to 3 s for
/// `want` of them, then drains what else arrives).
pub fn collect(cap: &Capture, want: usize, range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    let mut got = cap.collect_test_frames(want, Duration::from_secs(3));
    got.extend(drain(cap));
    got.into_iter()
        .filter(|f| test_seq(f).is_some_and(|s| range.contains(&s)))
        .collect()
}

/// Sequence numbers of `frames`, sorted.
pub fn seqs(frames: &[Vec<u8>]) -> Vec<u32> {
    let mut s: Vec<u32> = frames.iter().filter_map(|f| test_seq(f)).collect();
    s.sort_unstable();
    s
}
