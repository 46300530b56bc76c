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

use crate::offload::VNET_HDR_LEN;

const PACKET_AUXDATA: libc::c_int = 8;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_QDISC_BYPASS: libc::c_int = 20;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const TP_STATUS_VLAN_VALID: u32 = 0x10;
const TP_STATUS_VLAN_TPID_VALID: u32 = 0x40;
const ETH_P_ALL: u16 = 0x0003;
const ETH_P_8021Q: u16 = 0x8100;
/// Bytes the kernel may queue on the socket: 64 superframes. SO_RCVBUFFORCE (root).
const SOCKET_BUFFER: libc::c_int = 4 << 20;
/// Messages per `recvmmsg`/`sendmmsg` call (the stack holds their headers).
pub const BATCH: usize = 64;

/// `struct tpacket_auxdata` from linux/if_packet.h.
#[repr(C)]
#[derive(Clone, Copy)]
struct TpacketAuxdata {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
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

/// A nonblocking AF_PACKET socket bound to one interface, with `PACKET_VNET_HDR`,
/// `PACKET_AUXDATA`, `PACKET_IGNORE_OUTGOING` (its own transmissions are not received) and
/// `PACKET_QDISC_BYPASS` (sends go straight to the driver, as AF_XDP does).
#[derive(Debug)]
pub struct VnetSocket {
    fd: OwnedFd,
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl VnetSocket {
    /// Opens a socket on interface `ifindex` of the caller's network namespace.
    pub fn open(ifindex: u32) -> io::Result<VnetSocket> {
        let proto = ETH_P_ALL.to_be();
        // SAFETY: plain socket(2) call.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::c_int::from(proto),
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

    /// Receives up to `out.len()` (at most [`BATCH`]) frames in one `recvmmsg`: frame `i`
    /// goes into `slots[i * slot ..][.. slot]` at byte [`RECV_GAP`], its header into
    /// `hdrs[i]`, what is known of it into `out[i]`. Returns how many arrived (0: none
    /// queued).
    pub fn recv_burst(
        &self,
        slots: &mut [u8],
        slot: usize,
        hdrs: &mut [[u8; VNET_HDR_LEN]],
        out: &mut [RecvSlot],
    ) -> io::Result<usize> {
        let n = out
            .len()
            .min(hdrs.len())
            .min(BATCH)
            .min(slots.len() / slot.max(1));
        if n == 0 || slot <= RECV_GAP {
            return Ok(0);
        }
        let empty = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        let mut iov = [[empty; 2]; BATCH];
        // u64 storage keeps each control buffer aligned for cmsghdr (room for auxdata).
        let mut ctrl = [[0u64; 8]; BATCH];
        // SAFETY: mmsghdr is plain data; all-zero is valid.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, ((hdr, chunk), (v, c))) in hdrs
            .iter_mut()
            .zip(slots.chunks_exact_mut(slot))
            .zip(iov.iter_mut().zip(ctrl.iter_mut()))
            .take(n)
            .enumerate()
        {
            v[0] = libc::iovec {
                iov_base: hdr.as_mut_ptr().cast(),
                iov_len: VNET_HDR_LEN,
            };
            let data = &mut chunk[RECV_GAP..];
            v[1] = libc::iovec {
                iov_base: data.as_mut_ptr().cast(),
                iov_len: data.len(),
            };
            let h = &mut msgs[i].msg_hdr;
            h.msg_iov = v.as_mut_ptr();
            h.msg_iovlen = 2;
            h.msg_control = c.as_mut_ptr().cast();
            h.msg_controllen = std::mem::size_of_val(c);
        }
        // SAFETY: the first `n` headers point at live, disjoint buffers (header, slot
        // past its gap, control) of the lengths given, which outlive the call.
        let r = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => Ok(0),
                _ => Err(e),
            };
        }
        let got = r as usize;
        for (m, o) in msgs.iter().zip(out.iter_mut()).take(got) {
            let h = &m.msg_hdr;
            let mut tag = None;
            // SAFETY: `h` was filled by recvmmsg; CMSG_FIRSTHDR/NXTHDR walk only within
            // msg_control/msg_controllen, and the auxdata payload is read unaligned.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(h);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == PACKET_AUXDATA {
                        let a =
                            std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<TpacketAuxdata>());
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
            *o = RecvSlot {
                len: len.min(slot - RECV_GAP),
                tag,
                truncated: h.msg_flags & libc::MSG_TRUNC != 0,
            };
        }
        Ok(got)
    }

    /// Sends frames given as consecutive pieces each (header first; empty pieces are
    /// skipped), at most [`BATCH`], in one `sendmmsg`. Returns how many were sent, and
    /// the error of the first that was not: `WouldBlock` when the socket or the device
    /// has no room (EAGAIN, ENOBUFS), else the frame's own error (EMSGSIZE, EINVAL for a
    /// header the kernel refuses, ENETDOWN, ...).
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
        let r = unsafe {
            libc::sendmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN | libc::ENOBUFS) => {
                    (0, Some(io::Error::from(io::ErrorKind::WouldBlock)))
                }
                _ => (0, Some(e)),
            };
        }
        (r as usize, None)
    }
}
