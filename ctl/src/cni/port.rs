//! Attachments through a switch port: a veth pair whose host end is a `packet` port, or
//! a tap port the switch creates and the plugin moves into the pod.
//!
//! Invariants: the port and the host-side interface are named by
//! [`names::attachment_name`]; the port carries the attachment as its owner; ADD checks
//! that the bridge exists and the name is free before creating anything; DEL removes the
//! port only if the attachment owns it, and the host end only by that derived name, and
//! succeeds when either is already gone.

use std::fs::File;

use super::conf::{Mode, NetConf};
use super::env::Env;
use super::error::{internal, CniError};
use super::names::attachment_name;
use super::rtnl::{Rtnl, VethEnd};
use super::sandbox::{self, nl};
use super::switch::{cni_owner, owned_by, Switch};
use super::types::Interface;
use crate::config::{CniAttachment, PortKind, PortOwner};

/// The owner annotation of the attachment's port.
fn owner(env: &Env, conf: &NetConf) -> PortOwner {
    PortOwner::Cni(CniAttachment {
        container_id: env.container_id.clone(),
        ifname: env.ifname.clone(),
        netns: env.netns.clone(),
        network: conf.name.clone(),
        pod: env.pod(),
    })
}

/// Checks that vswitchd is up, the bridge exists and the port name is free.
pub fn check_ready(env: &Env, conf: &NetConf, bridge: &str) -> Result<Switch, CniError> {
    let sw = Switch::new(&conf.socket);
    let b = sw.bridge(bridge)?;
    let name = attachment_name(&env.container_id, &env.ifname);
    if let Some(p) = b.ports.iter().find(|p| p.name == name) {
        return Err(if owned_by(p, &env.container_id, &env.ifname) {
            internal(format!(
                "container {} already has {} on bridge {bridge} (port {name}); DEL it first",
                env.container_id, env.ifname
            ))
        } else {
            internal(format!(
                "bridge {bridge}: port {name} exists and belongs to {}",
                cni_owner(p).map_or("no CNI attachment".to_string(), |a| format!(
                    "container {} {}",
                    a.container_id, a.ifname
                ))
            ))
        });
    }
    Ok(sw)
}

/// Creates the pod's interface and its port; returns the result's interfaces and the
/// index of the pod's one among them.
pub fn add(
    env: &Env,
    conf: &NetConf,
    sw: &Switch,
    mac: Option<sriov::MacAddr>,
    ns: &File,
) -> Result<(Vec<Interface>, usize), CniError> {
    let name = attachment_name(&env.container_id, &env.ifname);
    let mtu = conf.effective_mtu();
    let mut host = Rtnl::open().map_err(nl)?;
    let mut pod = Rtnl::open_in(&env.netns).map_err(nl)?;
    if pod.link(&env.ifname).map_err(nl)?.is_some() {
        return Err(internal(format!(
            "interface {} already exists in {}",
            env.ifname, env.netns
        )));
    }
    match &conf.mode {
        Mode::Veth { bridge } => {
            // The host end of an ADD that died half-way has this derived name too; any
            // other device of that name is not ours to remove.
            if let Some(stale) = host.link(&name).map_err(nl)? {
                if stale.kind.as_deref() != Some("veth") {
                    return Err(internal(format!(
                        "{name} exists in the host namespace and is no veth ({})",
                        stale.kind.as_deref().unwrap_or("a device")
                    )));
                }
                host.delete(stale.index).map_err(nl)?;
            }
            host.create_veth(
                &VethEnd {
                    name: &name,
                    mtu,
                    mac: None,
                },
                &VethEnd {
                    name: &env.ifname,
                    mtu,
                    mac: mac.map(|m| m.0),
                },
                ns,
            )
            .map_err(nl)?;
            let h = sandbox::link(&mut host, &name, "the host namespace")?;
            no_ipv6(&name)?;
            host.set_up(h.index, true).map_err(nl)?;
            let p = sandbox::link(&mut pod, &env.ifname, &env.netns)?;
            pod.set_up(p.index, true).map_err(nl)?;
            let mut spec = conf.port_spec(&name, PortKind::Packet, &name);
            spec.owner = Some(owner(env, conf));
            sw.add_port(bridge, spec)?;
            Ok((
                vec![
                    Interface {
                        name: name.clone(),
                        mac: h.mac_text(),
                        mtu: Some(mtu),
                        sandbox: None,
                        pci_id: None,
                    },
                    Interface {
                        name: env.ifname.clone(),
                        mac: p.mac_text(),
                        mtu: Some(mtu),
                        sandbox: Some(env.netns.clone()),
                        pci_id: None,
                    },
                ],
                1,
            ))
        }
        Mode::Tap { bridge } => {
            let mut spec = conf.port_spec(&name, PortKind::Tap, &name);
            spec.owner = Some(owner(env, conf));
            sw.add_port(bridge, spec)?;
            let t = sandbox::link(&mut host, &name, "the host namespace")?;
            host.move_to(t.index, ns, &env.ifname).map_err(nl)?;
            let p = sandbox::link(&mut pod, &env.ifname, &env.netns)?;
            if let Some(m) = mac {
                pod.set_link(p.index, None, Some(m.0), None).map_err(nl)?;
            }
            pod.set_up(p.index, true).map_err(nl)?;
            let p = sandbox::link(&mut pod, &env.ifname, &env.netns)?;
            Ok((
                vec![Interface {
                    name: env.ifname.clone(),
                    mac: p.mac_text(),
                    mtu: Some(p.mtu),
                    sandbox: Some(env.netns.clone()),
                    pci_id: None,
                }],
                0,
            ))
        }
        Mode::Vf { .. } => Err(internal("a VF attachment has no switch port")),
    }
}

/// Turns IPv6 off on the host end (a switch port has no addresses: the host would
/// otherwise solicit routers and join groups on the pod's link). Without IPv6 in the
/// kernel there is nothing to turn off.
fn no_ipv6(ifname: &str) -> Result<(), CniError> {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
    match std::fs::write(&path, "1") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CniError::new(
            super::error::Code::Io,
            format!("{path}: {e}"),
        )),
    }
}

/// Removes the attachment's port and host end; every step runs, the first error is
/// returned.
pub fn del(env: &Env, conf: &NetConf, bridge: &str) -> Result<(), CniError> {
    remove(
        &Switch::new(&conf.socket),
        bridge,
        &env.container_id,
        &env.ifname,
    )
}

/// Removes the port of attachment (`container_id`, `ifname`) from `bridge` if the
/// attachment owns it, and the veth host end of that name; both when already gone too.
pub fn remove(sw: &Switch, bridge: &str, container_id: &str, ifname: &str) -> Result<(), CniError> {
    let name = attachment_name(container_id, ifname);
    let port = sw
        .del_owned_port(bridge, &name, container_id, ifname)
        .map(|_| ());
    let link = (|| {
        let mut host = Rtnl::open().map_err(nl)?;
        if let Some(h) = host.link(&name).map_err(nl)? {
            // Only a veth: a device of another kind with this name is not ours (a tap
            // goes with its port).
            if h.kind.as_deref() == Some("veth") {
                host.delete(h.index).map_err(nl)?;
            }
        }
        Ok(())
    })();
    port.and(link)
}

/// Checks the port (owner, state, VLAN, MTU) and the interfaces (up, MTU, MAC).
pub fn check(
    env: &Env,
    conf: &NetConf,
    bridge: &str,
    want_mac: Option<&str>,
) -> Result<(), CniError> {
    let name = attachment_name(&env.container_id, &env.ifname);
    let sw = Switch::new(&conf.socket);
    let b = sw.bridge(bridge)?;
    let p = b
        .ports
        .iter()
        .find(|p| p.name == name && owned_by(p, &env.container_id, &env.ifname))
        .ok_or_else(|| {
            internal(format!(
                "bridge {bridge} has no port {name} of container {} {}",
                env.container_id, env.ifname
            ))
        })?;
    if p.state != "up" {
        return Err(internal(format!("port {name} is {}", p.state)));
    }
    let want_vlan = conf.port_vlan.to_string();
    if p.vlan != want_vlan {
        return Err(internal(format!(
            "port {name}: VLAN {}, the network says {want_vlan}",
            p.vlan
        )));
    }
    let mtu = conf.effective_mtu();
    if p.mtu != mtu {
        return Err(internal(format!(
            "port {name}: MTU {}, the network says {mtu}",
            p.mtu
        )));
    }
    if let Mode::Veth { .. } = conf.mode {
        let mut host = Rtnl::open().map_err(nl)?;
        let h = sandbox::link(&mut host, &name, "the host namespace")?;
        if !h.up {
            return Err(internal(format!("host interface {name} is down")));
        }
    }
    let mut pod = Rtnl::open_in(&env.netns).map_err(nl)?;
    let l = sandbox::link(&mut pod, &env.ifname, &env.netns)?;
    if !l.up {
        return Err(internal(format!("{} in {} is down", env.ifname, env.netns)));
    }
    if l.mtu != mtu {
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
    Ok(())
}
