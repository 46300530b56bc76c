//! The pod's side: its network namespace, and the addresses and routes an IPAM result
//! puts on its interface.

use std::fs::File;
use std::io;
use std::net::IpAddr;

use super::error::{internal, invalid_env, CniError, Code};
use super::rtnl::{Link, Rtnl, RtnlError};
use super::types::{CniResult, IpNet};

/// A netlink failure as a CNI error (the kernel refused: 999; no socket: I/O).
pub fn nl(e: RtnlError) -> CniError {
    match e.errno() {
        Some(libc::EPERM) | Some(libc::EACCES) => CniError::new(
            Code::Internal,
            format!("{e} (vswitch-cni needs root / CAP_NET_ADMIN)"),
        ),
        _ => internal(e.to_string()),
    }
}

/// Opens the namespace file `CNI_NETNS` names.
pub fn open(netns: &str) -> Result<File, CniError> {
    File::open(netns).map_err(|e| invalid_env(format!("CNI_NETNS {netns}: {e}")))
}

/// Whether `netns` still is a network namespace. Only a path that does not exist, or
/// that is no namespace (the runtime unmounted it), counts as gone; anything else that
/// prevents entering it (permissions) counts as alive, so nothing is removed on doubt.
pub fn alive(netns: &str) -> bool {
    if netns.is_empty() {
        return false;
    }
    match datapath::sys::netns::run_in(netns, || ()) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => e.raw_os_error() != Some(libc::EINVAL),
    }
}

/// The interface `ifname` in the pod, which must exist.
pub fn link(pod: &mut Rtnl, ifname: &str, netns: &str) -> Result<Link, CniError> {
    pod.link(ifname)
        .map_err(nl)?
        .ok_or_else(|| internal(format!("no interface {ifname} in {netns}")))
}

/// Puts the addresses and routes of `ipam` on the pod's interface `index` (which is up).
/// A route that exists already (the kernel's own for a connected subnet) is fine.
pub fn configure(pod: &mut Rtnl, index: u32, ipam: &CniResult) -> Result<(), CniError> {
    for ip in &ipam.ips {
        pod.add_addr(index, &ip.address).map_err(nl)?;
    }
    for r in &ipam.routes {
        let gw = r.gw.or_else(|| default_gateway(ipam, r.dst.addr));
        match pod.add_route(index, &r.dst, gw) {
            Ok(()) => {}
            Err(e) if e.errno() == Some(libc::EEXIST) => {}
            Err(e) => return Err(nl(e)),
        }
    }
    Ok(())
}

/// The first gateway of an address of the same family as `dst`.
fn default_gateway(ipam: &CniResult, dst: IpAddr) -> Option<IpAddr> {
    ipam.ips
        .iter()
        .filter(|ip| ip.address.is_v4() == dst.is_ipv4())
        .find_map(|ip| ip.gateway)
}

/// Checks that every address of `want` is on interface `index`.
pub fn check_addresses(
    pod: &mut Rtnl,
    index: u32,
    ifname: &str,
    want: &[IpNet],
) -> Result<(), CniError> {
    let have = pod.addrs(index).map_err(nl)?;
    let missing: Vec<String> = want
        .iter()
        .filter(|w| !have.contains(w))
        .map(ToString::to_string)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(internal(format!(
            "{ifname} lacks address {} (has {})",
            missing.join(", "),
            have.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}
