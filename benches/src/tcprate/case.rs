//! The measured paths and how each is built between h1 and h2 ([`Setup::up`]); a
//! [`Setup`] is a guard whose drop takes the path down again (daemon or OVS bridge first,
//! then the links).

use std::path::PathBuf;

use anyhow::Context;
use datapath::testutil::{disable_ipv6, unique_name};

use super::ovs::{Ovs, OvsBridge, OvsPort};
use super::topo::{host_addr, move_link, offloads_off, Hosts, LinuxBridge, Veth, H1_ADDR, H2_ADDR};
use super::vswitchd::Vswitchd;

/// VLAN of the vswitch ports (both access ports of it).
pub const VID: u16 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Case {
    /// One veth pair from h1 to h2.
    Direct,
    /// A Linux bridge in a middle namespace between two veth pairs.
    Bridge,
    /// The bridge with TX checksum offload (and so TSO) off on h1's and h2's interfaces:
    /// the reference of the offloads-off cases.
    BridgeOffloadsOff,
    /// vswitchd with `packet` ports (AF_PACKET + PACKET_VNET_HDR) on the host veth ends
    /// (what a plain `add-port` on a veth gives): known unicast takes the kernel fast path.
    VswitchPacket,
    /// The same with `packet_fast_path = false`: every frame through the worker.
    VswitchPacketWorkers,
    /// vswitchd with two tap ports; the taps are h1's and h2's interfaces.
    VswitchTap,
    /// vswitchd with `afxdp` ports on the host veth ends, offloads off on h1/h2.
    VswitchAfxdpOffloadsOff,
    /// OVS userspace datapath, system ports, userspace TSO on.
    OvsSystemTso,
    /// OVS userspace datapath, afxdp ports, offloads off on h1/h2.
    OvsAfxdp,
}

impl Case {
    pub const ALL: [Case; 9] = [
        Case::Direct,
        Case::Bridge,
        Case::BridgeOffloadsOff,
        Case::VswitchPacket,
        Case::VswitchPacketWorkers,
        Case::VswitchTap,
        Case::VswitchAfxdpOffloadsOff,
        Case::OvsSystemTso,
        Case::OvsAfxdp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Case::Direct => "direct",
            Case::Bridge => "bridge",
            Case::BridgeOffloadsOff => "bridge-offloads-off",
            Case::VswitchPacket => "vswitch-packet",
            Case::VswitchPacketWorkers => "vswitch-packet-workers",
            Case::VswitchTap => "vswitch-tap",
            Case::VswitchAfxdpOffloadsOff => "vswitch-afxdp-offloads-off",
            Case::OvsSystemTso => "ovs-system-tso",
            Case::OvsAfxdp => "ovs-afxdp",
        }
    }

    /// h1 and h2 send with TX checksum offload off (`ethtool -K IF tx off`).
    pub fn offloads_off(self) -> bool {
        matches!(
            self,
            Case::BridgeOffloadsOff | Case::VswitchAfxdpOffloadsOff | Case::OvsAfxdp
        )
    }

    pub fn is_vswitch(self) -> bool {
        matches!(
            self,
            Case::VswitchPacket
                | Case::VswitchPacketWorkers
                | Case::VswitchTap
                | Case::VswitchAfxdpOffloadsOff
        )
    }

    /// The cases of `tcprate --latency` when none are named.
    pub const LATENCY: [Case; 7] = [
        Case::Direct,
        Case::Bridge,
        Case::VswitchPacket,
        Case::VswitchPacketWorkers,
        Case::VswitchTap,
        Case::VswitchAfxdpOffloadsOff,
        Case::OvsAfxdp,
    ];

    pub fn is_ovs(self) -> bool {
        matches!(self, Case::OvsSystemTso | Case::OvsAfxdp)
    }

    /// The Linux bridge case with the same offloads (denominator of "ratio to bridge").
    pub fn bridge_reference(self) -> Case {
        if self.offloads_off() {
            Case::BridgeOffloadsOff
        } else {
            Case::Bridge
        }
    }
}

/// What the cases need besides the hosts.
#[derive(Debug)]
pub struct Env {
    /// Where vswitchd and vswitchctl are.
    pub bin_dir: PathBuf,
    /// CPU of the switch worker (vswitchd) and of OVS's PMD.
    pub cpu: usize,
    /// OVS, or why the OVS cases are unavailable.
    pub ovs: Result<Ovs, String>,
}

/// One built path; dropping it takes the path down. Field order is drop order.
#[derive(Debug)]
pub struct Setup {
    pub vswitchd: Option<Vswitchd>,
    ovs_bridge: Option<OvsBridge>,
    bridge: Option<LinuxBridge>,
    veths: Vec<Veth>,
    pub h1_if: String,
    pub h2_if: String,
}

impl Setup {
    /// Builds `case` between the hosts: links, the switch in the middle, host addresses,
    /// and for offloads-off cases `ethtool -K IF tx off` on the two host interfaces.
    pub fn up(case: Case, hosts: &Hosts, env: &Env) -> anyhow::Result<Setup> {
        let mut s = Setup {
            vswitchd: None,
            ovs_bridge: None,
            bridge: None,
            veths: Vec::new(),
            h1_if: String::new(),
            h2_if: String::new(),
        };
        match case {
            Case::Direct => {
                let mut v = Veth::new()?;
                v.move_a(&hosts.h1)?;
                v.move_b(&hosts.h2)?;
                s.h1_if = v.a().to_owned();
                s.h2_if = v.b().to_owned();
                s.veths.push(v);
            }
            Case::Bridge | Case::BridgeOffloadsOff => {
                let br = s.bridge.insert(LinuxBridge::new(&hosts.mid)?);
                for host in [&hosts.h1, &hosts.h2] {
                    let mut v = Veth::new()?;
                    v.move_a(host)?;
                    v.move_b(&hosts.mid)?;
                    br.attach(v.b())?;
                    s.veths.push(v);
                }
                s.h1_if = s.veths[0].a().to_owned();
                s.h2_if = s.veths[1].a().to_owned();
            }
            Case::VswitchPacket | Case::VswitchPacketWorkers | Case::VswitchAfxdpOffloadsOff => {
                let kind = if case == Case::VswitchAfxdpOffloadsOff {
                    "afxdp"
                } else {
                    "packet"
                };
                s.host_veths(hosts)?;
                let fast = case != Case::VswitchPacketWorkers;
                let d = s
                    .vswitchd
                    .insert(Vswitchd::start(&env.bin_dir, env.cpu, fast)?);
                d.ctl(&["add-br", "br0"])?;
                let vid = VID.to_string();
                for (i, v) in s.veths.iter().enumerate() {
                    let port = format!("p{}", i + 1);
                    d.ctl(&[
                        "add-port",
                        "br0",
                        &port,
                        "--type",
                        kind,
                        "--interface",
                        v.b(),
                        "--access",
                        &vid,
                    ])?;
                }
            }
            Case::VswitchTap => {
                let d = s
                    .vswitchd
                    .insert(Vswitchd::start(&env.bin_dir, env.cpu, true)?);
                d.ctl(&["add-br", "br0"])?;
                let vid = VID.to_string();
                let mut taps = Vec::new();
                for (i, host) in [&hosts.h1, &hosts.h2].into_iter().enumerate() {
                    // The switch creates the tap and holds its fd; its kernel side is the
                    // host's interface. It goes away with the daemon, wherever it is.
                    let tap = unique_name("tt");
                    let port = format!("t{}", i + 1);
                    d.ctl(&[
                        "add-port",
                        "br0",
                        &port,
                        "--type",
                        "tap",
                        "--interface",
                        &tap,
                        "--access",
                        &vid,
                    ])?;
                    disable_ipv6(&tap);
                    move_link(&tap, host)?;
                    taps.push(tap);
                }
                // While in this namespace the taps may have sent frames from their first
                // MACs: forget what was learned.
                d.ctl(&["fdb", "flush", "br0"])?;
                s.h1_if = taps[0].clone();
                s.h2_if = taps[1].clone();
            }
            Case::OvsSystemTso | Case::OvsAfxdp => {
                let ovs = env
                    .ovs
                    .as_ref()
                    .map_err(|why| anyhow::anyhow!("OVS unavailable: {why}"))?;
                s.host_veths(hosts)?;
                let kind = if case == Case::OvsAfxdp {
                    OvsPort::Afxdp
                } else {
                    OvsPort::System
                };
                let ports: Vec<&str> = s.veths.iter().map(|v| v.b()).collect();
                s.ovs_bridge = Some(ovs.bridge(&ports, kind)?);
            }
        }
        host_addr(&hosts.h1, &s.h1_if, H1_ADDR).context("h1 address")?;
        host_addr(&hosts.h2, &s.h2_if, H2_ADDR).context("h2 address")?;
        if case.offloads_off() {
            offloads_off(&hosts.h1, &s.h1_if)?;
            offloads_off(&hosts.h2, &s.h2_if)?;
        }
        Ok(s)
    }

    /// One veth pair per host: end `a` in the host, end `b` here for the switch.
    fn host_veths(&mut self, hosts: &Hosts) -> anyhow::Result<()> {
        for host in [&hosts.h1, &hosts.h2] {
            let mut v = Veth::new()?;
            v.move_a(host)?;
            self.veths.push(v);
        }
        self.h1_if = self.veths[0].a().to_owned();
        self.h2_if = self.veths[1].a().to_owned();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offloads_off_cases_compare_with_the_bridge_with_offloads_off() {
        for c in Case::ALL {
            let r = c.bridge_reference();
            assert_eq!(r.offloads_off(), c.offloads_off(), "{}", c.name());
        }
        assert_eq!(
            Case::VswitchAfxdpOffloadsOff.bridge_reference(),
            Case::BridgeOffloadsOff
        );
        assert_eq!(Case::VswitchTap.bridge_reference(), Case::Bridge);
    }

    #[test]
    fn names_match_the_command_line() {
        use clap::ValueEnum;
        for c in Case::ALL {
            let v = c.to_possible_value().expect("value");
            assert_eq!(v.get_name(), c.name());
        }
    }
}
