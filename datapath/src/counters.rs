//! Drop reasons and per-port counters.
//!
//! One list (the `drop_reasons!` macro) produces the enum, the stable counter names used by stats,
//! metrics and JSON, and their documentation, so the three can never disagree. Counters are
//! plain integers owned by one worker (no atomics, no sharing); the control plane sums
//! per-worker copies when it reads them.

macro_rules! drop_reasons {
    ($( $(#[doc = $doc:literal])* $variant:ident => $name:literal, )*) => {
        /// Why a frame (or one copy of it, at one egress port) was dropped.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum DropReason {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[ $( DropReason::$variant, )* ];
            /// Number of reasons (length of a counter array).
            pub const COUNT: usize = DropReason::ALL.len();

            /// The stable snake_case counter name (`tagged_on_access`, ...).
            pub const fn name(self) -> &'static str {
                match self { $( DropReason::$variant => $name, )* }
            }

            /// One-line description, from the variant's documentation.
            pub fn description(self) -> &'static str {
                match self { $( DropReason::$variant => concat!($($doc),*).trim(), )* }
            }

            /// Looks a reason up by its counter name.
            pub fn from_name(name: &str) -> Option<DropReason> {
                DropReason::ALL.iter().copied().find(|r| r.name() == name)
            }
        }
    };
}

drop_reasons! {
    /// Frame shorter than an Ethernet header (14 bytes).
    Runt => "runt",
    /// Outer ethertype 0x8100 but shorter than 18 bytes.
    TruncatedTag => "truncated_tag",
    /// Source MAC is multicast, broadcast or zero.
    InvalidSrc => "invalid_src",
    /// Destination is an IEEE 802.1D link-local group address (01:80:c2:00:00:0x).
    ReservedDst => "reserved_dst",
    /// Tagged frame (VID != 0) on an access port.
    TaggedOnAccess => "tagged_on_access",
    /// Untagged or priority-tagged frame on a trunk without a native VLAN.
    UntaggedOnTrunk => "untagged_on_trunk",
    /// VID not in the trunk's allowed list.
    VlanNotAllowed => "vlan_not_allowed",
    /// VID 4095 on the wire.
    InvalidVid => "invalid_vid",
    /// Frame longer than the egress port's MTU plus the L2 header (counted at egress).
    MtuExceeded => "mtu_exceeded",
    /// Egress port's transmit ring had no room (counted at egress); on a veth port, also
    /// frames the device could not hand to its peer (the peer's ring full, or the peer
    /// down), read about once per second. Such frames are in tx_packets too: the switch
    /// did send them.
    TxRingFull => "tx_ring_full",
    /// Flood or unicast with no port to go to (the VLAN has no other member port).
    NoEgress => "no_egress",
    /// Destination MAC was learned on the ingress port: the frame is already on its segment.
    DstOnIngress => "dst_on_ingress",
    /// Known unicast between two isolated ports.
    Isolated => "isolated",
    /// Ingress or egress port is administratively or operationally down.
    PortDown => "port_down",
    /// Flooded frame over the ingress port's broadcast/multicast/unknown-unicast rate limit.
    StormControl => "storm_control",
    /// Dropped by the kernel before the switch saw it: AF_XDP receive ring full or no free
    /// buffer; on a veth port, frames its peer could not hand over (the veth's ring
    /// full, or the port's interface down); on a tap port, frames the device's queue to
    /// the switch had no room for. Not included in rx_packets. Read about once per second.
    RxRingFull => "rx_ring_full",
    /// Known unicast the XDP fast path redirected to this port that the kernel refused to
    /// hand to the port's device: a veth whose peer has neither GRO nor an XDP program
    /// (one that just turned GRO off, until the port's next check of its peer, about a
    /// second later; then frames to it go through the workers), or a device that is down.
    /// Such frames are in tx_packets too. Read about once per second.
    RedirectRefused => "redirect_refused",
    /// Offload metadata (the frame's virtio-net header) the switch cannot honour: an
    /// unknown GSO type, UDP fragmentation offload, a GSO frame without a partial
    /// checksum, or (counted at egress, where a superframe is segmented or a checksum
    /// completed for a port without offloads) headers that do not parse or checksum
    /// offsets outside the frame.
    BadOffload => "bad_offload",
    /// Received on an AF_XDP port's device queue that has no socket of the switch: a queue
    /// beyond the port's `queues` (the device spreads frames over more queues than the port
    /// binds), or the moment between the port's XDP program being attached and its socket
    /// bound. Dropped by the port's XDP program instead of reaching the host's network
    /// stack. Not included in rx_packets. Read about once per second.
    NoSocket => "no_socket",
}

/// Counters of one port as seen by one worker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Frames flooded from this port (broadcast, multicast, unknown unicast).
    pub rx_flooded: u64,
    drops: [u64; DropReason::COUNT],
}

impl PortCounters {
    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }
    #[inline]
    pub fn drop_n(&mut self, reason: DropReason, n: u64) {
        self.drops[reason as usize] += n;
    }
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
    /// Non-zero drop counters with their names.
    pub fn drop_counts(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.drops[*r as usize]))
            .filter(|(_, n)| *n != 0)
    }
    /// Adds `other` into `self` (aggregation across workers).
    pub fn accumulate(&mut self, other: &PortCounters) {
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        self.tx_packets += other.tx_packets;
        self.tx_bytes += other.tx_bytes;
        self.rx_flooded += other.rx_flooded;
        for (a, b) in self.drops.iter_mut().zip(other.drops.iter()) {
            *a += *b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_roundtrip() {
        for r in DropReason::ALL {
            assert_eq!(DropReason::from_name(r.name()), Some(*r));
            assert!(!r.description().is_empty());
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        // Every reason named by vlan-semantics.md exists under its documented name.
        for n in [
            "runt",
            "truncated_tag",
            "invalid_src",
            "reserved_dst",
            "tagged_on_access",
            "untagged_on_trunk",
            "vlan_not_allowed",
            "invalid_vid",
            "mtu_exceeded",
            "tx_ring_full",
            "no_egress",
        ] {
            assert!(DropReason::from_name(n).is_some(), "{n}");
        }
    }

    #[test]
    fn accumulate_sums_everything() {
        let mut a = PortCounters {
            rx_packets: 2,
            ..PortCounters::default()
        };
        a.drop(DropReason::Runt);
        let mut b = PortCounters {
            rx_packets: 3,
            tx_bytes: 100,
            ..PortCounters::default()
        };
        b.drop_n(DropReason::Runt, 4);
        b.drop(DropReason::NoEgress);
        a.accumulate(&b);
        assert_eq!(a.rx_packets, 5);
        assert_eq!(a.tx_bytes, 100);
        assert_eq!(a.drops(DropReason::Runt), 5);
        assert_eq!(a.total_drops(), 6);
        assert_eq!(
            a.drop_counts().collect::<Vec<_>>(),
            vec![(DropReason::Runt, 5), (DropReason::NoEgress, 1)]
        );
    }
}
