//! `packet` port: an existing netdev (a pod's veth host end, a VM's tap made by QEMU or
//! libvirt) served through an AF_PACKET socket with `PACKET_VNET_HDR`: the offload-capable
//! backend, what OVS's system ports with userspace TSO and VPP's host-interface with GSO
//! use.
//!
//! Why it exists: pods and VMs send with checksum offload and TSO on. Their frames reach
//! the host end as 64 KiB superframes with partial checksums, which AF_XDP cannot
//! describe (TCP then moves 0 bits/s through an AF_XDP port). Through this socket each
//! frame comes with its `virtio_net_hdr` ([`Offload`]); the switch carries it to the
//! egress port, and frames sent here take theirs along, so TCP runs at superframe rates
//! like through the Linux bridge.
//!
//! Cost model: one `recvmmsg` per receive burst and one `sendmmsg` per transmit burst of
//! up to [`BATCH`] frames; the kernel copies each frame once each way. Transmit writes
//! the edited frame straight from the source's memory (header, tag bytes and the frame's
//! pieces as an iovec): no copy in the switch.
//!
//! Invariants kept here:
//! - Buffers are allocated at open: [`RX_SLOTS`] receive slots of a superframe each
//!   (about 2 MiB), no allocation per burst.
//! - An outer tag the kernel reported out of band is put back into the bytes (the frame
//!   then starts 4 bytes earlier in its slot) and the offsets of its offload move with it.
//! - A frame cut short (longer than a slot) is dropped whole and counted `mtu_exceeded`;
//!   a header the switch cannot honour is counted `bad_offload`; frames the socket's queue
//!   had no room for are kernel drops (`rx_ring_full`), and so, on a veth, are frames its
//!   peer could not hand over. Frames the device could not hand on (a veth's peer ring
//!   full or the peer down: the kernel takes the frame, drops it and counts it in the
//!   device's `tx_dropped`) are `tx_ring_full`, read once a second, and in `tx_packets`
//!   too, as for AF_XDP ports; frames the socket had no room for are `tx_ring_full` at
//!   once.
//! - The port's own transmissions are never received back (`PACKET_IGNORE_OUTGOING`).

use std::sync::Arc;

use super::afxdp::SharedProgram;
use super::held::Held;
use super::veth::PeerDrops;
use super::{KernelDrops, PortError, RxPort, TxPort, XdpCounters};
use crate::fastpath::PacketAttachment;
use crate::offload::{Offload, MAX_SUPERFRAME, VNET_HDR_LEN};
use crate::pipeline::{TxDone, TxItem, MAX_BURST};
use crate::sys::afpacket::{RecvRing, VnetSocket, BATCH, RECV_GAP};
use crate::sys::netdev;
use crate::topology::PortId;
use crate::wire::{edited_pieces, Edit, TPID_8021Q, VLAN_TAG_LEN};

/// Receive slots: the most frames one receive burst holds.
pub const RX_SLOTS: usize = 32;

/// Configuration of a packet port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketConfig {
    /// The existing interface to serve.
    pub interface: String,
    /// The switch's program with the fast path on: known unicast from this port is
    /// forwarded by the kernel ([`XdpProgram::register_packet`]). `None`: every frame
    /// goes through the workers.
    pub program: Option<SharedProgram>,
}

impl PacketConfig {
    pub fn new(interface: impl Into<String>) -> PacketConfig {
        PacketConfig {
            interface: interface.into(),
            program: None,
        }
    }
}

/// What a packet port says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketInfo {
    pub ifname: String,
    pub ifindex: u32,
    pub driver: String,
    /// Bytes of one receive slot.
    pub slot: usize,
    /// Known unicast from this port is forwarded by the kernel (the fast path).
    pub fast_path: bool,
}

/// Receive half of a packet port.
#[derive(Debug)]
pub struct PacketRx {
    sock: Arc<VnetSocket>,
    name: String,
    ring: RecvRing,
    /// The frames of the burst in hand (spans of the ring's memory).
    held: Held,
    /// Frames longer than a slot, dropped (cumulative).
    oversize: u64,
    /// Frames whose header the switch cannot honour (cumulative).
    bad_offload: u64,
    /// Socket-queue drops so far (the kernel's counter resets on each read).
    queue_drops: u64,
    /// On a veth: what the device and its peer dropped on the way to and from the switch.
    peer: Option<PeerDrops>,
    /// On the fast path: known unicast from the port is forwarded by the kernel.
    fast: Option<PacketAttachment>,
}

/// Transmit half of a packet port.
#[derive(Debug)]
pub struct PacketTx {
    sock: Arc<VnetSocket>,
    /// Sends that failed with an error other than "no room" (device down, ...).
    errors: u64,
}

/// A packet port: both halves. Use [`PacketPort::split`] to hand them to a worker.
#[derive(Debug)]
pub struct PacketPort {
    info: PacketInfo,
    rx: PacketRx,
    tx: PacketTx,
}

impl PacketPort {
    /// Opens the socket on an existing interface and brings the interface up.
    pub fn open(cfg: &PacketConfig) -> Result<PacketPort, PortError> {
        let name = cfg.interface.clone();
        let ifindex = netdev::if_index(&name).ok_or_else(|| PortError::NoSuchInterface {
            ifname: name.clone(),
        })?;
        netdev::set_up(&name).map_err(|e| PortError::io(&name, "set up", e))?;
        let mtu = netdev::mtu(&name).map_err(|e| PortError::io(&name, "read MTU", e))?;
        let sock = VnetSocket::open(ifindex)
            .map_err(|e| PortError::io(&name, "open AF_PACKET socket (PACKET_VNET_HDR)", e))?;
        let driver = netdev::driver_name(&name).unwrap_or_default();
        let slot = (RECV_GAP + MAX_SUPERFRAME.max(mtu as usize + 22)).next_multiple_of(64);
        let fast = cfg
            .program
            .as_ref()
            .filter(|p| p.0.fast())
            .map(|p| p.0.register_packet(ifindex, &sock))
            .transpose()
            .map_err(|e| PortError::io(&name, "put the port on the fast path", e))?;
        let sock = Arc::new(sock);
        Ok(PacketPort {
            info: PacketInfo {
                ifname: name.clone(),
                ifindex,
                driver,
                slot,
                fast_path: fast.is_some(),
            },
            rx: PacketRx {
                sock: sock.clone(),
                name,
                ring: RecvRing::new(RX_SLOTS, slot),
                held: Held::new(),
                oversize: 0,
                bad_offload: 0,
                queue_drops: 0,
                peer: PeerDrops::find(&cfg.interface),
                fast,
            },
            tx: PacketTx { sock, errors: 0 },
        })
    }

    pub fn info(&self) -> &PacketInfo {
        &self.info
    }
    pub fn split(self) -> (PacketRx, PacketTx) {
        (self.rx, self.tx)
    }
    pub fn rx(&mut self) -> &mut PacketRx {
        &mut self.rx
    }
    pub fn tx(&mut self) -> &mut PacketTx {
        &mut self.tx
    }
}

impl PacketRx {
    /// Frames dropped at receive because they were longer than a slot.
    pub fn oversize(&self) -> u64 {
        self.oversize
    }
    /// Frames dropped at receive because the switch cannot honour their header.
    pub fn bad_offload(&self) -> u64 {
        self.bad_offload
    }

    /// Puts frame `i` of the last `recvmmsg` in shape: its tag back into the bytes and
    /// its header parsed. Returns its span and offload, or `None` if dropped (counted).
    fn take(&mut self, i: usize) -> Option<((usize, usize), Offload)> {
        let r = self.ring.got(i);
        let base = self.ring.offset(i);
        if r.truncated {
            self.oversize += 1;
            return None;
        }
        let Ok(mut o) = Offload::parse(self.ring.header(i)) else {
            self.bad_offload += 1;
            return None;
        };
        let Some((tpid, tci)) = r.tag else {
            return Some(((base + RECV_GAP, r.len), o));
        };
        if r.len < 12 {
            self.oversize += 1;
            return None;
        }
        // Move the MACs 4 bytes back into the gap and put the tag behind them.
        let s = &mut self.ring.slot_mut(i)[..RECV_GAP + r.len];
        s.copy_within(RECV_GAP..RECV_GAP + 12, 0);
        s[12..14].copy_from_slice(&tpid.to_be_bytes());
        s[14..16].copy_from_slice(&tci.to_be_bytes());
        if tpid == TPID_8021Q {
            // The kernel's offsets count from the frame without its tag.
            o = o.after_edit(Edit::Push(crate::wire::Tci(tci)));
        } else if !o.is_plain() {
            o.csum_start = o.csum_start.saturating_add(VLAN_TAG_LEN as u16);
            o.hdr_len = o.hdr_len.saturating_add(VLAN_TAG_LEN as u16);
        }
        Some(((base, r.len + VLAN_TAG_LEN), o))
    }
}

impl RxPort for PacketRx {
    fn rx_burst(&mut self, max: usize) -> Result<usize, PortError> {
        self.held.clear();
        let got = self
            .sock
            .recv_burst(&mut self.ring, max)
            .map_err(|e| PortError::io(&self.name, "recvmmsg", e))?;
        for i in 0..got {
            if let Some(((start, len), o)) = self.take(i) {
                self.held.push(start, len, o);
            }
        }
        Ok(self.held.len())
    }

    fn frames<'a>(&'a self, out: &mut [&'a [u8]; MAX_BURST]) -> usize {
        self.held.frames(self.ring.memory(), out)
    }

    fn offloads(&self, out: &mut [Offload; MAX_BURST]) -> usize {
        self.held.offloads(out)
    }

    fn release(&mut self) {
        self.held.clear();
    }

    fn health(&mut self) -> Result<(), PortError> {
        self.sock
            .pending_error()
            .map_err(|e| PortError::io(&self.name, "socket", e))
    }

    /// Frames the socket's queue had no room for and, on a veth, what the peer could not
    /// hand over (`rx`) and what the device could not hand to the peer (`tx`: the peer's
    /// ring full, or the peer down).
    fn kernel_drops(&mut self) -> KernelDrops {
        if let Ok(n) = self.sock.take_drops() {
            self.queue_drops += n;
        }
        let peer = self.peer.as_ref().map(PeerDrops::read).unwrap_or_default();
        KernelDrops {
            rx: self.queue_drops + peer.rx,
            tx: peer.tx,
        }
    }

    /// Frames dropped at receive: too long for a slot (`mtu_exceeded`), or with a header
    /// the switch cannot honour (`bad_offload`); and what the fast path forwarded.
    fn xdp_counters(&mut self) -> XdpCounters {
        let fwd = self.fast.as_ref().and_then(|f| f.stats().ok());
        XdpCounters {
            oversize: self.oversize,
            bad_offload: self.bad_offload,
            ..fwd.map(XdpCounters::from).unwrap_or_default()
        }
    }

    fn bind_port(&mut self, port: PortId) {
        if let Some(f) = &self.fast {
            f.bind(port);
        }
    }

    fn wait_fds(&self) -> Option<Vec<std::os::fd::RawFd>> {
        Some(vec![self.sock.raw_fd()])
    }
}

impl PacketTx {
    /// Sends that failed with an error other than "no room" (device down, ...).
    pub fn errors(&self) -> u64 {
        self.errors
    }
}

impl TxPort for PacketTx {
    fn tx_burst(&mut self, frames: &[&[u8]], offloads: &[Offload], items: &[TxItem]) -> TxDone {
        let mut done = TxDone::default();
        let mut hdrs = [[0u8; VNET_HDR_LEN]; BATCH];
        let mut tags = [[0u8; VLAN_TAG_LEN]; BATCH];
        let mut rest = items;
        while !rest.is_empty() {
            let chunk = &rest[..rest.len().min(BATCH)];
            // Headers and tags first, then the pieces that borrow them.
            for ((h, t), item) in hdrs.iter_mut().zip(tags.iter_mut()).zip(chunk) {
                let i = usize::from(item.frame);
                *h = Offload::of(offloads, i).after_edit(item.edit).emit();
                *t = [0; VLAN_TAG_LEN];
            }
            let mut pieces: [[&[u8]; 4]; BATCH] = [[&[]; 4]; BATCH];
            let mut lens = [0usize; BATCH];
            let mut n = 0;
            for ((h, t), item) in hdrs.iter().zip(tags.iter_mut()).zip(chunk) {
                let Some(src) = frames.get(usize::from(item.frame)) else {
                    break;
                };
                let Ok([a, b, c]) = edited_pieces(src, item.edit, t) else {
                    break;
                };
                pieces[n] = [h, a, b, c];
                lens[n] = a.len() + b.len() + c.len();
                n += 1;
            }
            let mut at = 0;
            while at < n {
                let (sent, err) = self.sock.send_burst(&pieces[at..n]);
                done.sent += sent;
                done.bytes += lens[at..at + sent].iter().map(|&l| l as u64).sum::<u64>();
                at += sent;
                let Some(e) = err else {
                    if sent == 0 {
                        return done; // nothing taken: the rest is tx_ring_full
                    }
                    continue;
                };
                match e.raw_os_error() {
                    // No room in the socket: the rest is tx_ring_full.
                    Some(libc::EAGAIN) => return done,
                    // The device layer took the frame and dropped it (no carrier: a veth
                    // whose peer is down; counted in the device's tx_dropped, which
                    // `kernel_drops` reports): sent, like the rest of the burst would be.
                    Some(libc::ENOBUFS) => {
                        done.sent += 1;
                        done.bytes += lens[at] as u64;
                        return done;
                    }
                    // The frame at `at` itself was refused: count it, go on.
                    Some(libc::EMSGSIZE) => done.too_big += 1,
                    Some(libc::EINVAL) => done.bad_offload += 1,
                    // The device is down or gone: so is every frame of this burst to it.
                    Some(libc::ENETDOWN | libc::ENXIO | libc::ENODEV) => {
                        done.port_down += rest.len() - at;
                        return done;
                    }
                    _ => {
                        self.errors += 1;
                        return done;
                    }
                }
                at += 1;
            }
            if n < chunk.len() {
                return done;
            }
            rest = &rest[chunk.len()..];
        }
        done
    }

    fn flush(&mut self) {}
}
