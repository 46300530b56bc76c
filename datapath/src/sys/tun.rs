//! Tap devices: `TUNSETIFF` on /dev/net/tun and nonblocking read/write of whole frames.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{c_chars_to_string, ifreq_for};

/// An open tap device (IFF_TAP | IFF_NO_PI, nonblocking). Closing it removes the device
/// unless it was made persistent.
#[derive(Debug)]
pub struct TapFd {
    fd: OwnedFd,
    name: String,
}

impl TapFd {
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
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
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
        Ok(TapFd { fd, name })
    }

    pub fn name(&self) -> &str {
        &self.name
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

    /// Writes one frame; `Ok(false)` when the device would block (EAGAIN).
    #[inline]
    pub fn write(&self, frame: &[u8]) -> io::Result<bool> {
        // SAFETY: `frame` is valid for reads of `frame.len()` bytes for the call.
        let r = unsafe { libc::write(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
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
