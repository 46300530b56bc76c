//! Veth peers: a veth port's other end, found and read through rtnetlink wherever it
//! is (another namespace, after moves), and what the two devices dropped on the way to
//! and from the switch. Used by the AF_XDP ports (drop counters, the fast path's egress
//! watch, offload notes) and the packet ports (drop counters).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{probe, KernelDrops};
use crate::sys::{netdev, rtnl};

/// A veth port's peer, looked up afresh on every call through rtnetlink: while the port
/// is open the peer may be moved to another namespace, where its ifindex may change.
#[derive(Debug)]
pub(crate) struct VethPeer {
    pub(crate) sock: rtnl::RouteSocket,
    /// The port's own interface.
    pub(crate) own: u32,
}

/// What rtnetlink says about a veth's peer now.
#[derive(Debug, Clone)]
pub(crate) struct PeerNow {
    pub(crate) ifindex: u32,
    /// The peer's namespace as numbered from this one; `None`: this one.
    pub(crate) netnsid: Option<i32>,
    pub(crate) link: rtnl::Link,
    /// The port's own device's `tx_dropped`: frames it could not hand to the peer.
    pub(crate) own_tx_dropped: u64,
}

impl PeerNow {
    /// The peer's name, for messages.
    pub(crate) fn name(&self) -> String {
        self.link
            .name
            .clone()
            .unwrap_or_else(|| format!("ifindex {}", self.ifindex))
    }

    /// How to say where a command for the peer is run.
    pub(crate) fn where_(&self) -> &'static str {
        if self.netnsid.is_some() {
            " (in its namespace)"
        } else {
            ""
        }
    }
}

impl VethPeer {
    /// Whether `ifname` is a veth.
    pub(crate) fn is_veth(ifname: &str) -> bool {
        netdev::driver_name(ifname).ok().as_deref() == Some("veth")
    }

    /// The peer of the veth `ifname` (see [`VethPeer::is_veth`]).
    pub(crate) fn open(ifname: &str) -> std::io::Result<VethPeer> {
        let own = netdev::if_index(ifname)
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENODEV))?;
        Ok(VethPeer {
            sock: rtnl::RouteSocket::open()?,
            own,
        })
    }

    /// The peer as it is now: two rtnetlink queries (this port's link, then the peer's).
    pub(crate) fn now(&mut self) -> std::io::Result<PeerNow> {
        let me = self.sock.link(self.own, None)?;
        let ifindex = me
            .link
            .filter(|i| *i != 0)
            .ok_or_else(|| std::io::Error::other("it has no peer"))?;
        let link = self.sock.link(ifindex, me.link_netnsid)?;
        Ok(PeerNow {
            ifindex,
            netnsid: me.link_netnsid,
            link,
            own_tx_dropped: me.tx_dropped,
        })
    }
}

/// What a veth port's device and its peer dropped since the port opened, in both
/// directions, read through rtnetlink (also when the peer is in another namespace, and
/// after it moved) about once a second by the ports' background thread
/// ([`super::probe`]), never by a worker, which loads the last values (two atomics).
/// - Towards the switch: a veth hands frames to its peer's ring (256 frames) when the peer
///   has an XDP program or GRO; when that ring is full the *sending* side (the peer)
///   drops the frame and counts it in its own `tx_dropped`, which the receiving port
///   cannot see in its own counters.
/// - From the switch: frames this device could not hand to the peer (its ring full, or
///   the peer down) are in this device's `tx_dropped`: the workers' AF_XDP transmit
///   (the kernel completes the descriptor and drops the skb) and the XDP fast path's
///   redirects (the veth counts those it could not queue) alike.
#[derive(Debug)]
pub(crate) struct PeerDrops {
    probe: Arc<Probe>,
}

/// One port's peer and the last drops read, shared with the background reader.
#[derive(Debug)]
struct Probe {
    state: Mutex<ProbeState>,
    rx: AtomicU64,
    tx: AtomicU64,
}

#[derive(Debug)]
struct ProbeState {
    peer: VethPeer,
    base: KernelDrops,
}

impl probe::Probe for Probe {
    /// Reads the peer now (a failed read keeps the last values, e.g. while the peer is
    /// gone). Counters only grow.
    fn refresh(&self) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if let Ok(p) = st.peer.now() {
            let rx = p.link.tx_dropped.saturating_sub(st.base.rx);
            let tx = p.own_tx_dropped.saturating_sub(st.base.tx);
            self.rx.fetch_max(rx, Ordering::Relaxed);
            self.tx.fetch_max(tx, Ordering::Relaxed);
        }
    }
}

impl PeerDrops {
    /// The peer of `ifname` if it is a veth whose peer can be read; `None` otherwise.
    /// Its drops are read in the background from now on.
    pub(crate) fn find(ifname: &str) -> Option<PeerDrops> {
        if !VethPeer::is_veth(ifname) {
            return None;
        }
        let mut peer = VethPeer::open(ifname).ok()?;
        let now = peer.now().ok()?;
        let probe = Arc::new(Probe {
            state: Mutex::new(ProbeState {
                peer,
                base: KernelDrops {
                    rx: now.link.tx_dropped,
                    tx: now.own_tx_dropped,
                },
            }),
            rx: AtomicU64::new(0),
            tx: AtomicU64::new(0),
        });
        let shared: Arc<dyn probe::Probe> = probe.clone();
        probe::register(&shared);
        Some(PeerDrops { probe })
    }

    /// When the peer transmits without a queueing discipline (`noqueue`, the veth
    /// default), what to do about it. Once this port's NAPI runs as a thread, the peer
    /// and the thread run on different CPUs, and the thread may start late by a
    /// millisecond or more (a non-preemptible kernel thread, the hypervisor): frames
    /// beyond the 256 the ring holds are then dropped by the peer. With a qdisc on the
    /// peer, Linux 6.16 and later stop the peer's queue instead and the sender waits.
    pub(crate) fn without_queue_advice(&self, ifname: &str) -> Option<String> {
        let peer = self.probe.state.lock().ok()?.peer.now().ok()?;
        if peer.link.qdisc.as_deref() != Some("noqueue") {
            return None;
        }
        let (name, where_) = (peer.name(), peer.where_());
        Some(format!(
            "{ifname}: its veth peer {name} has no qdisc, so frames its 256-frame ring \
             cannot hold while the fast path's NAPI thread is late are dropped (counted as \
             rx_ring_full); `tc qdisc replace dev {name} root pfifo`{where_} makes Linux 6.16+ \
             hold them instead"
        ))
    }

    /// The drops so far as the background reader last read them (no syscall).
    pub(crate) fn read(&self) -> KernelDrops {
        KernelDrops {
            rx: self.probe.rx.load(Ordering::Relaxed),
            tx: self.probe.tx.load(Ordering::Relaxed),
        }
    }

    /// Reads the peer now, as the background reader does (tests).
    #[cfg(test)]
    pub(crate) fn refresh_now(&self) {
        probe::Probe::refresh(&*self.probe);
    }
}
