//! Attachments of SR-IOV VFs (`deviceID`): the VF's own netdev moves into the pod; its
//! VLAN, MAC, spoofchk, trust, link state and rates are set through the `sriov` library,
//! which journals the VF's original state first; DEL puts the netdev back (name, MAC,
//! MTU, up or down as it was) and restores the VF from the journal, exactly.
//!
//! The VF is switched by its NIC, not by vswitchd: it gets no switch port.
//!
//! Invariants: the attachment's record (with the netdev's original name, MAC, MTU) is
//! written before the VF is touched, so DEL (also the rollback of a failed ADD) knows
//! what to put back; once the netdev is in the pod its index there is recorded, and DEL
//! moves back only that device (and, where the kernel names a parent device, only if it
//! is the VF's PCI address), never an interface of the pod's that merely has the name.

use std::fs::File;

use sriov::host::Rtnl as VfRtnl;
use sriov::journal::Journal;
use sriov::netlink::{NetlinkError, VfSetting};
use sriov::sysfs::Sysfs;
use sriov::{Host, VfDesired, VfError, VfState};

use super::conf::NetConf;
use super::env::Env;
use super::error::{internal, invalid_config, CniError, Code};
use super::rtnl::Rtnl;
use super::sandbox::{self, nl};
use super::state::VfRecord;
use super::types::Interface;

/// The rtnetlink backend of VF settings, boxed (a netlink socket, or a fake PF driver in
/// tests).
pub struct DynRtnl(pub Box<dyn VfRtnl + Send>);

impl std::fmt::Debug for DynRtnl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DynRtnl")
    }
}

impl VfRtnl for DynRtnl {
    fn vf_states(&mut self, pf: &str) -> Result<(u32, Vec<VfState>), NetlinkError> {
        self.0.vf_states(pf)
    }
    fn set_vf(&mut self, ifindex: u32, vf: u32, setting: &VfSetting) -> Result<(), NetlinkError> {
        self.0.set_vf(ifindex, vf, setting)
    }
}

/// Where a VF is: its PF, index, PCI address and (host) netdev.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfLocation {
    pub pf: String,
    pub vf: u32,
    pub pci: String,
    /// The netdev's name in the host namespace, when it is there.
    pub netdev: Option<String>,
}

/// "03:02.1" -> "0000:03:02.1".
fn full_pci(dev: &str) -> String {
    if dev.matches(':').count() == 1 {
        format!("0000:{dev}")
    } else {
        dev.to_string()
    }
}

/// Finds the VF at PCI address `device_id` among the SR-IOV PFs of `sysfs`.
pub fn locate(sysfs: &Sysfs, device_id: &str) -> Result<VfLocation, CniError> {
    let pci = full_pci(device_id);
    let pfs = sysfs
        .pfs()
        .map_err(|e| CniError::new(Code::Io, format!("deviceID {device_id}: {e}")))?;
    for pf in pfs {
        if let Some(v) = pf.vfs.iter().find(|v| v.pci.eq_ignore_ascii_case(&pci)) {
            return Ok(VfLocation {
                pf: pf.name.clone(),
                vf: v.vf,
                pci: v.pci.clone(),
                netdev: v.netdevs.first().cloned(),
            });
        }
    }
    Err(invalid_config(format!(
        "deviceID {device_id}: not a VF of any SR-IOV PF on this host"
    )))
}

fn vf_err(e: VfError) -> CniError {
    match e {
        e @ (VfError::Invalid { .. } | VfError::TrunkUnsupported { .. }) => {
            invalid_config(e.to_string())
        }
        e => internal(e.to_string()),
    }
}

/// The VF's host netdev as it is before ADD (what DEL puts back).
pub fn prepare(sysfs: &Sysfs, device_id: &str) -> Result<VfRecord, CniError> {
    let loc = locate(sysfs, device_id)?;
    let netdev = loc.netdev.clone().ok_or_else(|| {
        invalid_config(format!(
            "deviceID {device_id}: VF {} of {} has no netdev in this namespace (bound to \
             vfio-pci or another userspace driver, or in use by another pod)",
            loc.vf, loc.pf
        ))
    })?;
    let mut host = Rtnl::open().map_err(nl)?;
    let l = sandbox::link(&mut host, &netdev, "the host namespace")?;
    Ok(VfRecord {
        pf: loc.pf,
        vf: loc.vf,
        pci: loc.pci,
        netdev,
        mac: l.mac_text(),
        mtu: l.mtu,
        up: l.up,
        pod_ifindex: None,
    })
}

/// Sets the VF up (journaled) and moves its netdev into the pod as `CNI_IFNAME`; tells
/// `moved` the netdev's index in the pod as soon as it is there (for the record); returns
/// the result's interfaces and the pod interface's position among them.
pub fn add<R: VfRtnl>(
    vfs: &mut Host<R>,
    env: &Env,
    conf: &NetConf,
    rec: &VfRecord,
    mac: Option<sriov::MacAddr>,
    ns: &File,
    moved: &mut dyn FnMut(u32) -> Result<(), CniError>,
) -> Result<(Vec<Interface>, usize), CniError> {
    let mut pod = Rtnl::open_in(&env.netns).map_err(nl)?;
    if pod.link(&env.ifname).map_err(nl)?.is_some() {
        return Err(internal(format!(
            "interface {} already exists in {}",
            env.ifname, env.netns
        )));
    }
    let mut cfg = conf.vf.clone();
    cfg.mac = mac;
    if !cfg.is_empty() {
        vfs.set(&rec.pf, rec.vf, &cfg).map_err(vf_err)?;
    }
    let mut host = Rtnl::open().map_err(nl)?;
    let l = sandbox::link(&mut host, &rec.netdev, "the host namespace")?;
    host.set_up(l.index, false).map_err(nl)?;
    host.move_to(l.index, ns, &env.ifname).map_err(nl)?;
    let p = sandbox::link(&mut pod, &env.ifname, &env.netns)?;
    moved(p.index)?;
    if mac.is_some() || conf.mtu.is_some() {
        pod.set_link(p.index, None, mac.map(|m| m.0), conf.mtu)
            .map_err(nl)?;
    }
    pod.set_up(p.index, true).map_err(nl)?;
    let p = sandbox::link(&mut pod, &env.ifname, &env.netns)?;
    Ok((
        vec![Interface {
            name: env.ifname.clone(),
            mac: p.mac_text(),
            mtu: Some(p.mtu),
            sandbox: Some(env.netns.clone()),
            pci_id: Some(rec.pci.clone()),
        }],
        0,
    ))
}

/// Whether `l` (seen in the pod) is the VF's netdev that ADD moved there: the index
/// recorded then, and the VF's PCI address as parent where the kernel reports one.
fn is_the_vf(l: &super::rtnl::Link, rec: &VfRecord) -> bool {
    rec.pod_ifindex == Some(l.index)
        && l.parent
            .as_deref()
            .is_none_or(|p| p.eq_ignore_ascii_case(&rec.pci))
}

/// Restores the VF's settings from the journal and puts its netdev back in the host
/// namespace as it was. Every step runs; the first error is returned.
///
/// Order matters on real PF drivers: while an administrative MAC is set, igb refuses a
/// VF's own MAC change, and a VF driver adopts the administrative MAC when it resets
/// (igbvf does when its interface goes down). So the settings (with the original MAC)
/// come back first, then the netdev goes down and home.
pub fn del<R: VfRtnl>(
    vfs: &mut Host<R>,
    sysfs: &Sysfs,
    env: &Env,
    rec: &VfRecord,
) -> Result<(), CniError> {
    let settings = match vfs.restore(&rec.pf, rec.vf) {
        Ok(_) | Err(VfError::NotJournaled { .. }) => Ok(()),
        Err(e) => Err(vf_err(e)),
    };
    let moved = move_back(env, rec);
    let netdev = restore_netdev(sysfs, rec);
    settings.and(moved).and(netdev)
}

/// Moves the VF's netdev out of the pod (if it is still there) under its original name.
fn move_back(env: &Env, rec: &VfRecord) -> Result<(), CniError> {
    if !sandbox::alive(&env.netns) {
        // Gone with its namespace: the kernel has returned the VF's netdev to the host.
        return Ok(());
    }
    let mut pod = Rtnl::open_in(&env.netns).map_err(nl)?;
    let Some(l) = pod.link(&env.ifname).map_err(nl)? else {
        return Ok(());
    };
    if !is_the_vf(&l, rec) {
        return Ok(());
    }
    let host_ns = File::open("/proc/self/ns/net")
        .map_err(|e| CniError::new(Code::Io, format!("/proc/self/ns/net: {e}")))?;
    pod.set_up(l.index, false).map_err(nl)?;
    pod.move_to(l.index, &host_ns, &rec.netdev).map_err(nl)
}

/// Gives the VF's netdev, back in the host namespace (moved by [`move_back`], or by the
/// kernel when the pod's namespace went away, then perhaps renamed devN), its original
/// name, MTU, MAC and up/down state; found by the VF's PCI address. Each setting is its
/// own request, so one refusal does not hide another.
fn restore_netdev(sysfs: &Sysfs, rec: &VfRecord) -> Result<(), CniError> {
    let Some(name) = locate(sysfs, &rec.pci).ok().and_then(|l| l.netdev) else {
        return Ok(());
    };
    let mut host = Rtnl::open().map_err(nl)?;
    let Some(l) = host.link(&name).map_err(nl)? else {
        return Ok(());
    };
    host.set_up(l.index, false).map_err(nl)?;
    if name != rec.netdev {
        host.set_link(l.index, Some(&rec.netdev), None, None)
            .map_err(nl)?;
    }
    if l.mtu != rec.mtu {
        host.set_link(l.index, None, None, Some(rec.mtu))
            .map_err(nl)?;
    }
    let want = rec
        .mac
        .as_deref()
        .and_then(|m| m.parse::<sriov::MacAddr>().ok())
        .map(|m| m.0);
    let have = |host: &mut Rtnl| -> Result<Option<[u8; 6]>, CniError> {
        Ok(host.link(&rec.netdev).map_err(nl)?.and_then(|l| l.mac))
    };
    if let Some(mac) = want.filter(|m| Some(*m) != l.mac) {
        match host.set_link(l.index, None, Some(mac), None) {
            Ok(()) => {}
            // The PF refuses the VF's own change while an administrative MAC is set (the
            // journal restored the original one): a VF driver reset adopts it.
            Err(e) if e.errno() == Some(libc::EADDRNOTAVAIL) => {
                host.set_up(l.index, true).map_err(nl)?;
                host.set_up(l.index, false).map_err(nl)?;
                if have(&mut host)? != Some(mac) {
                    return Err(nl(e));
                }
            }
            Err(e) => return Err(nl(e)),
        }
    }
    host.set_up(l.index, rec.up).map_err(nl)
}

/// Checks the VF's netdev in the pod (up, MTU, MAC) and its settings against the
/// configuration (the journal's desired state).
pub fn check<R: VfRtnl>(
    vfs: &mut Host<R>,
    env: &Env,
    conf: &NetConf,
    rec: &VfRecord,
    requested_mac: Option<sriov::MacAddr>,
    want_mac: Option<&str>,
) -> Result<(), CniError> {
    let mut pod = Rtnl::open_in(&env.netns).map_err(nl)?;
    let l = sandbox::link(&mut pod, &env.ifname, &env.netns)?;
    if !is_the_vf(&l, rec) {
        return Err(internal(format!(
            "{} in {} is not the VF at {}",
            env.ifname, env.netns, rec.pci
        )));
    }
    if !l.up {
        return Err(internal(format!("{} in {} is down", env.ifname, env.netns)));
    }
    if let Some(mtu) = conf.mtu.filter(|m| *m != l.mtu) {
        return Err(internal(format!(
            "{}: MTU {}, the network says {mtu}",
            env.ifname, l.mtu
        )));
    }
    if let Some(m) = want_mac {
        let have = l.mac_text().unwrap_or_default();
        if !have.eq_ignore_ascii_case(m) {
            return Err(internal(format!(
                "{}: MAC {have}, the previous result says {m}",
                env.ifname
            )));
        }
    }
    let mut cfg = conf.vf.clone();
    cfg.mac = requested_mac;
    if cfg.is_empty() {
        return Ok(());
    }
    let drift = vfs
        .drift(&[VfDesired {
            pf: rec.pf.clone(),
            vf: rec.vf,
            config: cfg,
        }])
        .map_err(vf_err)?;
    match drift.first() {
        None => Ok(()),
        Some(d) => Err(internal(format!(
            "pf {} vf {}: {} is {}, the network says {}",
            rec.pf, rec.vf, d.setting, d.live, d.desired
        ))),
    }
}

/// The VF settings host for `conf`: sysfs at `sysfs_root`, the journal in the
/// configuration's `sriovStateDir`.
pub fn host(sysfs_root: &std::path::Path, conf: &NetConf, rtnl: DynRtnl) -> Host<DynRtnl> {
    Host::new(
        Sysfs::new(sysfs_root),
        Journal::new(&conf.sriov_state_dir),
        rtnl,
    )
}
