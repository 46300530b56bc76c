//! AF_PACKET sockets with `PACKET_VNET_HDR` for the switch's `packet` ports: every frame
//! received or sent is preceded by a `virtio_net_hdr`, so superframes (GSO) and partial
//! checksums cross the socket as they are, like through the Linux bridge. Frames move in
//! bursts: one `recvmmsg` or `sendmmsg` per burst, never a syscall per frame.
//!
//! The outer 802.1Q tag of a received frame arrives out of band (`PACKET_AUXDATA`), not
//! in the bytes; [`VnetSocket::recv_burst`] leaves a 4-byte gap before the frame so the
//! caller can put it back without moving the frame (see [`RecvSlot`]).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::check;
use crate::offload::VNET_HDR_LEN;

pub(crate) const PACKET_AUXDATA: libc::c_int = 8;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_QDISC_BYPASS: libc::c_int = 20;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
pub(crate) const TP_STATUS_VLAN_VALID: u32 = 0x10;
pub(crate) const TP_STATUS_VLAN_TPID_VALID: u32 = 0x40;
pub(crate) const ETH_P_ALL: u16 = 0x0003;
const ETH_P_8021Q: u16 = 0x8100;
/// Bytes the kernel may queue on the socket: 64 superframes. SO_RCVBUFFORCE (root).
const SOCKET_BUFFER: libc::c_int = 4 << 20;
/// Messages per `recvmmsg`/`sendmmsg` call (the stack holds their headers).
pub const BATCH: usize = 64;

/// `struct tpacket_auxdata` from linux/if_packet.h.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct TpacketAuxdata {
    pub(crate) tp_status: u32,
    pub(crate) tp_len: u32,
    pub(crate) tp_snaplen: u32,
    pub(crate) tp_mac: u16,
    pub(crate) tp_net: u16,
    pub(crate) tp_vlan_tci: u16,
    pub(crate) tp_vlan_tpid: u16,
}

/// `struct tpacket_stats` from linux/if_packet.h.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct TpacketStats {
    tp_packets: u32,
    tp_drops: u32,
}

/// Where one received frame landed in its slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecvSlot {
    /// Bytes of the frame (without the header and without an out-of-band tag), starting
    /// at byte [`RECV_GAP`] of the slot.
    pub len: usize,
    /// The outer tag the kernel reported out of band: (TPID, TCI).
    pub tag: Option<(u16, u16)>,
    /// The frame was longer than the slot and was cut short.
    pub truncated: bool,
}

/// Bytes left free at the start of each receive slot for an out-of-band tag.
pub const RECV_GAP: usize = 4;

/// Bytes of control data room per received message (a `tpacket_auxdata` cmsg).
const CTRL_BYTES: usize = 64;

/// Receive memory for [`VnetSocket::recv_burst`], set up once: `slots` frame slots of
/// `slot` bytes (each frame lands at byte [`RECV_GAP`] of its slot), their headers,
/// control buffers, and the `recvmmsg` message headers and iovecs that point at them, so
/// that a burst costs no set-up beyond resetting each message's lengths.
pub struct RecvRing {
    slot: usize,
    buf: Box<[u8]>,
    hdrs: Box<[[u8; VNET_HDR_LEN]]>,
    ctrl: Box<[[u64; CTRL_BYTES / 8]]>,
    iov: Box<[[libc::iovec; 2]]>,
    msgs: Box<[libc::mmsghdr]>,
    got: Box<[RecvSlot]>,
}

// SAFETY: the raw pointers in `iov` and `msgs` point only into the heap allocations of
// the same `RecvRing` (`buf`, `hdrs`, `ctrl`, `iov`), which move with it and are never
// shared; sending the ring to another thread moves all of them together.
unsafe impl Send for RecvRing {}

impl std::fmt::Debug for RecvRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvRing")
            .field("slots", &self.msgs.len())
            .field("slot", &self.slot)
            .finish()
    }
}

impl RecvRing {
    /// `slots` slots of `slot` bytes each (`slot` > [`RECV_GAP`]; `slots` at most
    /// [`BATCH`]).
    pub fn new(slots: usize, slot: usize) -> RecvRing {
        let slots = slots.clamp(1, BATCH);
        let slot = slot.max(RECV_GAP + 1);
        let empty = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        let mut r = RecvRing {
            slot,
            buf: vec![0u8; slots * slot].into_boxed_slice(),
            hdrs: vec![[0u8; VNET_HDR_LEN]; slots].into_boxed_slice(),
            ctrl: vec![[0u64; CTRL_BYTES / 8]; slots].into_boxed_slice(),
            iov: vec![[empty; 2]; slots].into_boxed_slice(),
            // SAFETY: mmsghdr is plain data (integers and pointers); all-zero is valid.
            msgs: (0..slots)
                .map(|_| unsafe { std::mem::zeroed::<libc::mmsghdr>() })
                .collect(),
            got: vec![RecvSlot::default(); slots].into_boxed_slice(),
        };
        for i in 0..slots {
            let data = &mut r.buf[i * slot + RECV_GAP..(i + 1) * slot];
            r.iov[i] = [
                libc::iovec {
                    iov_base: r.hdrs[i].as_mut_ptr().cast(),
                    iov_len: VNET_HDR_LEN,
                },
                libc::iovec {
                    iov_base: data.as_mut_ptr().cast(),
                    iov_len: data.len(),
                },
            ];
            let h = &mut r.msgs[i].msg_hdr;
            h.msg_iov = r.iov[i].as_mut_ptr();
            h.msg_iovlen = 2;
            h.msg_control = r.ctrl[i].as_mut_ptr().cast();
            h.msg_controllen = CTRL_BYTES;
        }
        r
    }

    /// Number of slots (the most frames one burst receives).
    pub fn slots(&self) -> usize {
        self.msgs.len()
    }

    /// What the last burst said about frame `i`.
    pub fn got(&self, i: usize) -> RecvSlot {
        self.got.get(i).copied().unwrap_or_default()
    }

    /// The `virtio_net_hdr` of frame `i` of the last burst.
    pub fn header(&self, i: usize) -> &[u8; VNET_HDR_LEN] {
        &self.hdrs[i.min(self.hdrs.len() - 1)]
    }

    /// Slot `i`, whole (its gap, then the frame as received).
    pub fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        let i = i.min(self.msgs.len() - 1);
        &mut self.buf[i * self.slot..(i + 1) * self.slot]
    }

    /// The ring's memory: every slot (frames are found with [`RecvRing::offset`]).
    pub fn memory(&self) -> &[u8] {
        &self.buf
    }

    /// Where slot `i` starts in the ring's memory.
    pub fn offset(&self, i: usize) -> usize {
        i * self.slot
    }

    /// Size of one slot.
    pub fn slot_len(&self) -> usize {
        self.slot
    }

    /// Reads message `i` after `recvmmsg` filled it.
    fn parse(&self, i: usize) -> RecvSlot {
        let m = &self.msgs[i];
        let h = &m.msg_hdr;
        let mut tag = None;
        // SAFETY: `h` was filled by recvmmsg; CMSG_FIRSTHDR/NXTHDR walk only within
        // msg_control/msg_controllen, and the auxdata payload is read unaligned.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(h);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == PACKET_AUXDATA {
                    let a = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<TpacketAuxdata>());
                    if a.tp_status & TP_STATUS_VLAN_VALID != 0 {
                        let tpid = if a.tp_status & TP_STATUS_VLAN_TPID_VALID != 0 {
                            a.tp_vlan_tpid
                        } else {
                            ETH_P_8021Q
                        };
                        tag = Some((tpid, a.tp_vlan_tci));
                    }
                }
                c = libc::CMSG_NXTHDR(h, c);
            }
        }
        let len = (m.msg_len as usize).saturating_sub(VNET_HDR_LEN);
        RecvSlot {
            len: len.min(self.slot - RECV_GAP),
            tag,
            truncated: h.msg_flags & libc::MSG_TRUNC != 0,
        }
    }
}

/// A nonblocking AF_PACKET socket bound to one interface, with `PACKET_VNET_HDR`,
/// `PACKET_AUXDATA`, `PACKET_IGNORE_OUTGOING` (its own transmissions are not received) and
/// `PACKET_QDISC_BYPASS` (sends go straight to the driver, as AF_XDP does).
#[derive(Debug)]
pub struct VnetSocket {
    fd: OwnedFd,
}

impl VnetSocket {
    /// Opens a socket on interface `ifindex` of the caller's network namespace.
    pub fn open(ifindex: u32) -> io::Result<VnetSocket> {
        let proto = ETH_P_ALL.to_be();
        // Protocol 0: the socket receives nothing until `bind` below hooks it to this one
        // interface. Created with ETH_P_ALL it would queue every interface's frames until
        // then, and the rebind would wait for an RCU grace period (synchronize_net,
        // ~15 ms of every add-port).
        // SAFETY: plain socket(2) call.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        check(fd)?;
        // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let sock = VnetSocket { fd };
        for opt in [
            PACKET_VNET_HDR,
            PACKET_AUXDATA,
            PACKET_IGNORE_OUTGOING,
            PACKET_QDISC_BYPASS,
        ] {
            sock.set_int(libc::SOL_PACKET, opt, 1)?;
        }
        for (force, plain) in [
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        ] {
            if sock
                .set_int(libc::SOL_SOCKET, force, SOCKET_BUFFER)
                .is_err()
            {
                sock.set_int(libc::SOL_SOCKET, plain, SOCKET_BUFFER)?;
            }
        }
        let ifindex =
            i32::try_from(ifindex).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex;
        // SAFETY: `sll` is a valid sockaddr_ll for the length passed.
        check(unsafe {
            libc::bind(
                sock.fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        Ok(sock)
    }

    fn set_int(&self, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
        // SAFETY: `v` is a valid c_int option value for the length passed.
        check(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                opt,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })
    }

    /// Attaches the eBPF socket filter `prog_fd` (`SO_ATTACH_BPF`): from then on a frame
    /// is queued to the socket only when the program returns non-zero.
    pub fn attach_filter(&self, prog_fd: RawFd) -> io::Result<()> {
        self.set_int(libc::SOL_SOCKET, libc::SO_ATTACH_BPF, prog_fd)
    }

    /// The descriptor, for `poll` (readable when a frame is queued).
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Frames the kernel dropped because the socket's queue was full since the last call
    /// (`PACKET_STATISTICS`, which resets on read).
    pub fn take_drops(&self) -> io::Result<u64> {
        let mut st = TpacketStats::default();
        let mut len = std::mem::size_of::<TpacketStats>() as libc::socklen_t;
        // SAFETY: `st` and `len` are valid for writes of the sizes passed.
        check(unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_STATISTICS,
                (&mut st as *mut TpacketStats).cast(),
                &mut len,
            )
        })?;
        Ok(u64::from(st.tp_drops))
    }

    /// The socket's pending error (`SO_ERROR`, cleared by reading): ENETDOWN once its
    /// interface was removed.
    pub fn pending_error(&self) -> io::Result<()> {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `v` and `len` are valid for writes of the sizes passed.
        check(unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        })?;
        if v != 0 {
            return Err(io::Error::from_raw_os_error(v));
        }
        Ok(())
    }

    /// Receives up to `max` (at most [`RecvRing::slots`]) frames into `ring` in one
    /// `recvmmsg`; returns how many arrived (0: none queued). Frame `i` is then
    /// [`RecvRing::frame`]`(i)`.
    pub fn recv_burst(&self, ring: &mut RecvRing, max: usize) -> io::Result<usize> {
        let n = max.min(ring.msgs.len());
        if n == 0 {
            return Ok(0);
        }
        for m in &mut ring.msgs[..n] {
            // The kernel shortens these to what it wrote; give each message its room back.
            m.msg_hdr.msg_controllen = CTRL_BYTES;
            m.msg_hdr.msg_flags = 0;
            m.msg_len = 0;
        }
        // SAFETY: the first `n` headers point at buffers `ring` owns (header, slot past
        // its gap, control; see `RecvRing::new`), disjoint and of the lengths given, which
        // outlive the call. The raw syscall skips libc's cancellation-point wrapper.
        let r = unsafe {
            libc::syscall(
                libc::SYS_recvmmsg,
                self.fd.as_raw_fd(),
                ring.msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut::<libc::timespec>(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => Ok(0),
                _ => Err(e),
            };
        }
        let got = (r as usize).min(n);
        for i in 0..got {
            ring.got[i] = ring.parse(i);
        }
        Ok(got)
    }

    /// Sends frames given as consecutive pieces each (header first; empty pieces are
    /// skipped), at most [`BATCH`], in one `sendmmsg`. Returns how many were sent, and
    /// the error of the first that was not: EAGAIN when the socket has no room, ENOBUFS
    /// when the device layer dropped it, else the frame's own error (EMSGSIZE, EINVAL for
    /// a header the kernel refuses, ENETDOWN, ...).
    pub fn send_burst(&self, frames: &[[&[u8]; 4]]) -> (usize, Option<io::Error>) {
        let n = frames.len().min(BATCH);
        if n == 0 {
            return (0, None);
        }
        let empty = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        let mut iov = [[empty; 4]; BATCH];
        // SAFETY: mmsghdr is plain data; all-zero is valid.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, (pieces, v)) in frames.iter().zip(iov.iter_mut()).take(n).enumerate() {
            let mut k = 0;
            for p in pieces.iter().filter(|p| !p.is_empty()) {
                v[k] = libc::iovec {
                    iov_base: p.as_ptr().cast_mut().cast(),
                    iov_len: p.len(),
                };
                k += 1;
            }
            msgs[i].msg_hdr.msg_iov = v.as_mut_ptr();
            msgs[i].msg_hdr.msg_iovlen = k;
        }
        // SAFETY: the first `n` headers point at iovecs over live slices valid for reads
        // of their lengths for the call; sendmmsg only reads through them.
        // (The raw syscall skips libc's cancellation-point wrapper.)
        let r = unsafe {
            libc::syscall(
                libc::SYS_sendmmsg,
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            return (0, Some(io::Error::last_os_error()));
        }
        (r as usize, None)
    }
}
