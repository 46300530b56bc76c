//! Tap devices: `TUNSETIFF` on /dev/net/tun and nonblocking read/write of whole frames;
//! the device's MTU read and set wherever the device lives now (the user may have moved
//! it into another network namespace after creation: `TUNGETIFF` names it,
//! `TUNGETDEVNETNS` opens its namespace); its counters read there through rtnetlink.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{c_chars_to_string, ifreq_for, netdev};

/// `_IO('T', 227)` from linux/if_tun.h (Linux 5.1+): a new fd of the tap device's network
/// namespace. Not in the libc crate.
const TUNGETDEVNETNS: libc::Ioctl = 0x54e3;

/// Offloads a tap's reader takes (`TUNSETOFFLOAD`): partial checksums, TSO for IPv4 and
/// IPv6 with ECN, and UDP segmentation where the kernel has it (Linux 6.2+).
const TAP_OFFLOADS: libc::c_uint =
    libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;
const TAP_OFFLOADS_USO: libc::c_uint = libc::TUN_F_USO4 | libc::TUN_F_USO6;

/// An open tap device (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, nonblocking): every frame read
/// or written is preceded by a 10-byte `virtio_net_hdr`, and the device hands over
/// superframes with partial checksums ([`TapFd::offloads`] says which). Closing it
/// removes the device unless it was made persistent.
#[derive(Debug)]
pub struct TapFd {
    fd: OwnedFd,
    name: String,
    /// Whether UDP segmentation offload (USO) is on besides checksum and TSO.
    uso: bool,
}

impl TapFd {
    /// The descriptor, for `poll` (non-blocking; readable when a frame is queued).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    /// Creates (or attaches to) tap device `name`; an empty name lets the kernel pick
    /// `tapN`. Returns the device with its actual name.
    pub fn create(name: &str) -> io::Result<TapFd> {
        // SAFETY: NUL-terminated static path; flags are constants.
        let fd = unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by open(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut ifr = if name.is_empty() {
            // SAFETY: ifreq is plain data; all-zero is valid (empty name).
            unsafe { std::mem::zeroed::<libc::ifreq>() }
        } else {
            ifreq_for(name)?
        };
        ifr.ifr_ifru.ifru_flags =
            (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes the ifreq we pass, which outlives the call.
        let r = unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                libc::TUNSETIFF,
                &mut ifr as *mut libc::ifreq,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let name = c_chars_to_string(&ifr.ifr_name);
        let hdr_len = crate::offload::VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads the int we pass, which outlives the call.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETVNETHDRSZ, &hdr_len) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let set_offload = |flags: libc::c_uint| {
            // SAFETY: TUNSETOFFLOAD takes its flags by value.
            let r = unsafe {
                libc::ioctl(
                    fd.as_raw_fd(),
                    libc::TUNSETOFFLOAD,
                    libc::c_ulong::from(flags),
                )
            };
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        // USO where the kernel knows it (EINVAL before Linux 6.2).
        let uso = set_offload(TAP_OFFLOADS | TAP_OFFLOADS_USO).is_ok();
        if !uso {
            set_offload(TAP_OFFLOADS)?;
        }
        Ok(TapFd { fd, name, uso })
    }

    /// The offloads the device hands to the switch and takes from it, for messages.
    pub fn offloads(&self) -> &'static str {
        if self.uso {
            "csum,tso4,tso6,ecn,uso"
        } else {
            "csum,tso4,tso6,ecn"
        }
    }

    /// The name given at creation.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device's current name (`TUNGETIFF`; follows renames).
    pub fn current_name(&self) -> io::Result<String> {
        // SAFETY: ifreq is plain data; all-zero is valid.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        // SAFETY: TUNGETIFF writes the attached device's name and flags into the ifreq we
        // pass, which outlives the call.
        let r = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::TUNGETIFF,
                &mut ifr as *mut libc::ifreq,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(c_chars_to_string(&ifr.ifr_name))
    }

    /// The network namespace the device is in now, as an fd (`TUNGETDEVNETNS`).
    pub fn netns(&self) -> io::Result<OwnedFd> {
        // SAFETY: TUNGETDEVNETNS takes no argument and returns a new fd or -1.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), TUNGETDEVNETNS) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `r` is a fresh fd the kernel just opened for us; nobody else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(r) })
    }

    /// Runs `f` with the device's current name on a short-lived thread that joined the
    /// device's network namespace (the calling thread and the process stay where they
    /// are). Interface ioctls made there (sockets created in `f`) address the device.
    fn in_device_netns<T: Send>(
        &self,
        f: impl FnOnce(&str) -> io::Result<T> + Send,
    ) -> io::Result<T> {
        let name = self.current_name()?;
        let ns = self.netns()?;
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: `ns` is an open network namespace fd; setns only moves this
                // fresh, single-purpose thread, which ends when `f` returns.
                let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                if r != 0 {
                    return Err(io::Error::last_os_error());
                }
                f(&name)
            })
            .join()
            .map_err(|_| io::Error::other("tap namespace thread panicked"))?
        })
    }

    /// Which network namespace the device is in now (the inode of its namespace file;
    /// two values are equal exactly when the namespace is the same).
    pub fn netns_id(&self) -> io::Result<u64> {
        let ns = self.netns()?;
        // SAFETY: an all-zero `stat` is valid plain data; fstat fills it for the open fd.
        let mut st = unsafe { std::mem::zeroed::<libc::stat>() };
        // SAFETY: `ns` is an open fd and `st` outlives the call.
        if unsafe { libc::fstat(ns.as_raw_fd(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(st.st_ino)
    }

    /// A NETLINK_ROUTE socket in the device's current network namespace (a socket keeps
    /// the namespace it was opened in), for reading the device's counters by name.
    pub fn route_socket(&self) -> io::Result<super::rtnl::RouteSocket> {
        self.in_device_netns(|_| super::rtnl::RouteSocket::open())
    }

    /// Sets the device's MTU in whatever network namespace it is now.
    pub fn set_mtu(&self, mtu: u32) -> io::Result<()> {
        self.in_device_netns(|name| netdev::set_mtu(name, mtu))
    }

    /// The device's MTU, read in whatever network namespace it is now.
    pub fn mtu(&self) -> io::Result<u32> {
        self.in_device_netns(netdev::mtu)
    }

    /// Reads one frame into `buf`; `Ok(None)` when none is queued (EAGAIN).
    #[inline]
    pub fn read(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the call.
        let r = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(r as usize))
    }

    /// Writes one frame given as consecutive pieces (its `virtio_net_hdr` first) in one
    /// `writev`; `Ok(false)` when the device would block (EAGAIN).
    #[inline]
    pub fn write(&self, pieces: &[&[u8]]) -> io::Result<bool> {
        const MAX_PIECES: usize = 4;
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_PIECES];
        let n = pieces.len().min(MAX_PIECES);
        for (v, p) in iov.iter_mut().zip(&pieces[..n]) {
            v.iov_base = p.as_ptr().cast_mut().cast();
            v.iov_len = p.len();
        }
        // SAFETY: the first `n` iovecs point at live slices valid for reads of their
        // lengths for the call; writev only reads through them.
        let r = unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), n as libc::c_int) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) => Ok(false),
                _ => Err(e),
            };
        }
        Ok(true)
    }
}
