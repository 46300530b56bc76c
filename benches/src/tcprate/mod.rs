//! TCP throughput and round-trip time between two hosts (namespaces h1 and h2) through a
//! direct veth pair, the Linux bridge, vswitch (packet, tap and AF_XDP ports) and Open
//! vSwitch's userspace datapath, measured in one run: cases interleaved over rounds,
//! medians and ratios reported (docs/tcprate.md).
//!
//! Hosts keep the kernel's default offloads (TX checksum offload, TSO), as pods and VMs
//! do; only the cases named `offloads-off` turn TX checksum offload off on h1 and h2.
//! Every case is checked to forward (a ping answered) before it is measured; a case that
//! cannot be built or does not forward is reported with its reason and the run goes on.
//!
//! Included by the `tcprate` binary with `#[path]`, like `pktrate`.

pub mod case;
pub mod child;
pub mod iperf;
pub mod latency;
pub mod ovs;
pub mod ping;
pub mod report;
pub mod run;
pub mod topo;
pub mod vswitchd;
