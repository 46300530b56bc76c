//! Every `unsafe` block of the datapath lives under this module.
//!
//! Each submodule wraps one kernel or C interface behind a safe API:
//! - [`xsk`]: AF_XDP UMEM and rings (xsk-rs/libxdp), with frames as move-only tokens;
//! - [`bpf`]: vswitch's own XDP program (fast path, slow-path redirect) and its maps;
//! - [`xdp`]: querying and detaching the XDP program of an interface (libxdp);
//! - [`netdev`]: interface index, driver name, flags, MTU, memlock limit, bpffs mount;
//! - [`afpacket`]: AF_PACKET sockets with `PACKET_VNET_HDR` for `packet` ports
//!   (`recvmmsg`/`sendmmsg` bursts, offloads and out-of-band tags);
//! - [`tun`]: creating a tap device (`TUNSETIFF`) and reading/writing it;
//! - [`netns`]: running a closure in another network namespace (test helpers);
//! - `packet`: AF_PACKET sockets with `PACKET_AUXDATA` (test helpers);
//! - [`wait`]: a worker's eventfd doorbell and `poll` over its receive descriptors;
//! - [`rtnl`]: RTM_GETLINK queries (a veth's peer, an interface's counters in any
//!   namespace); no `unsafe` (netlink-sys and netlink-packet-route).
//!
//! Invariants: every `unsafe` block carries a `// SAFETY:` comment; no function here is
//! `unsafe fn` for callers; errors are `std::io::Error` with the OS error preserved so
//! callers can map specific causes (ENOBUFS, EBUSY, ...) to their own error enums.

pub mod afpacket;
pub mod bpf;
pub mod netdev;
pub mod netns;
#[cfg(any(test, feature = "testutil"))]
pub mod packet;
pub mod rtnl;
pub mod tun;
pub mod wait;
pub mod xdp;
pub mod xsk;

use std::ffi::CString;
use std::io;

/// `Ok` for a syscall's non-negative return, else the OS error it set.
pub(crate) fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// An interface name as a C string, checked for length and interior NULs.
pub(crate) fn ifname_cstr(name: &str) -> io::Result<CString> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// An `ifreq` with its name field set.
pub(crate) fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    let c = ifname_cstr(name)?;
    // SAFETY: `ifreq` is a plain C struct (arrays and a union of integers and pointers);
    // all-zero bytes are a valid value for it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(c.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    Ok(req)
}

/// Reads a NUL-terminated C char array into a String.
pub(crate) fn c_chars_to_string(chars: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
