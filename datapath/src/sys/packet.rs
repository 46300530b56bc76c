//! AF_PACKET sockets for test helpers: send raw frames on an interface and capture what
//! arrives, with the 802.1Q tag the kernel moves into `PACKET_AUXDATA` put back into the
//! bytes (on veth the outer tag is stripped from the frame and reported out of band).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::afpacket::{
    TpacketAuxdata, ETH_P_ALL, PACKET_AUXDATA, TP_STATUS_VLAN_TPID_VALID, TP_STATUS_VLAN_VALID,
};
use super::check;

/// A raw AF_PACKET socket bound to one interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
}

impl PacketSocket {
    /// Opens a socket bound to `ifindex` (of the caller thread's namespace) receiving
    /// every protocol, with PACKET_AUXDATA on and a receive timeout of `timeout`.
    pub fn bind(ifindex: u32, timeout: Duration) -> io::Result<PacketSocket> {
        let proto = ETH_P_ALL.to_be();
        // SAFETY: plain socket(2) call.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::c_int::from(proto),
            )
        };
        check(fd)?;
        // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let ifindex =
            i32::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex;
        // SAFETY: `sll` is a valid sockaddr_ll for the length passed.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        let one: libc::c_int = 1;
        // SAFETY: `one` is a valid c_int option value for the length passed.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_AUXDATA,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
        // Room for bursts of jumbo frames (the default ~212 KiB holds ~16 frames of 5000
        // bytes); SO_RCVBUFFORCE as root, else whatever SO_RCVBUF allows.
        let rcvbuf: libc::c_int = 8 << 20;
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            // SAFETY: `rcvbuf` is a valid c_int option value for the length passed.
            let r = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&rcvbuf as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if r == 0 {
                break;
            }
        }
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: `tv` is a valid timeval for the length passed.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        })?;
        Ok(PacketSocket { fd, ifindex })
    }

    /// Sends one frame out of the bound interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        // SAFETY: `frame` and `sll` are valid for the lengths passed.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        if r as usize != frame.len() {
            return Err(io::Error::other(format!(
                "short send: {r} of {} bytes",
                frame.len()
            )));
        }
        Ok(())
    }

    /// Receives one frame (`Ok(None)` on timeout) with an outer 802.1Q tag reported in
    /// auxdata re-inserted after the source MAC. Only frames arriving on the interface
    /// (not our own transmissions) are returned.
    pub fn recv(&self) -> io::Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; 65536];
        loop {
            // u64 storage keeps the control buffer aligned for cmsghdr.
            let mut ctrl = [0u64; 32];
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // SAFETY: sockaddr_ll and msghdr are plain data; all-zero is valid.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = (&mut from as *mut libc::sockaddr_ll).cast();
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = ctrl.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&ctrl);
            // SAFETY: every pointer in `msg` refers to live buffers of the given sizes.
            let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.raw_os_error() {
                    Some(libc::EAGAIN) => Ok(None),
                    Some(libc::EINTR) => continue,
                    _ => Err(e),
                };
            }
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let mut frame = buf[..n as usize].to_vec();
            let mut aux: Option<TpacketAuxdata> = None;
            // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR/NXTHDR walk only within
            // msg_control/msg_controllen, and the auxdata payload is read unaligned.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&msg);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == PACKET_AUXDATA {
                        aux = Some(std::ptr::read_unaligned(
                            libc::CMSG_DATA(c).cast::<TpacketAuxdata>(),
                        ));
                    }
                    c = libc::CMSG_NXTHDR(&msg, c);
                }
            }
            if let Some(a) = aux {
                if a.tp_status & TP_STATUS_VLAN_VALID != 0 && frame.len() >= 12 {
                    let tpid = if a.tp_status & TP_STATUS_VLAN_TPID_VALID != 0 {
                        a.tp_vlan_tpid
                    } else {
                        0x8100
                    };
                    let mut tag = [0u8; 4];
                    tag[..2].copy_from_slice(&tpid.to_be_bytes());
                    tag[2..].copy_from_slice(&a.tp_vlan_tci.to_be_bytes());
                    frame.splice(12..12, tag);
                }
            }
            return Ok(Some(frame));
        }
    }
}
