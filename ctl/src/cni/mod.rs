//! `vswitch-cni`: a CNI plugin (spec 1.0.0, and 1.1.0's STATUS and GC) that attaches
//! pods to vswitch. Each attachment is a container's interface (`CNI_IFNAME` in
//! `CNI_NETNS`) on one CNI network:
//!
//! - `interfaceType: "veth"` (default): a veth pair; the pod's end gets the requested
//!   name, MAC and MTU; the host end becomes a `packet` port of `bridge` with the
//!   network's VLAN mode (checksum offload and TSO pass through);
//! - `interfaceType: "tap"`: a tap port the switch creates, moved into the pod;
//! - `deviceID`: an SR-IOV VF's netdev moved into the pod, its settings journaled and
//!   restored exactly on DEL (no switch port: the NIC switches it).
//!
//! Ports carry their attachment as owner (`vswitchctl show` says which pod) and live in
//! vswitchd's configuration, so they survive its restarts; GC (spec 1.1) and `vswitchctl
//! cni-gc` remove attachments whose pods are gone. Addresses come from the `ipam` plugin,
//! delegated the standard way.
//!
//! Invariants: the configuration and environment are checked before anything is created;
//! a failed ADD is undone by the same code as DEL; DEL succeeds when the namespace, the
//! interface or the port is already gone, and removes only what the attachment owns;
//! every error is a CNI error with a spec code (11 when vswitchd is unreachable).

pub mod conf;
pub mod env;
pub mod error;
pub mod gc;
pub mod ipam;
pub mod names;
pub mod port;
pub mod rtnl;
pub mod sandbox;
pub mod state;
pub mod switch;
pub mod types;
pub mod vf;

use std::path::PathBuf;

use sriov::sysfs::Sysfs;

use self::conf::{Mode, NetConf};
use self::env::{Command, Env};
use self::error::{internal, invalid_config, CniError, Code};
use self::rtnl::Rtnl;
use self::sandbox::nl;
use self::state::Record;
use self::types::{CniResult, Version, VersionInfo, LATEST_VERSION, SUPPORTED_VERSIONS};

/// What the plugin's host provides besides the CNI environment.
pub struct Node {
    /// The control socket when the configuration names none.
    pub default_socket: PathBuf,
    /// Root of the sysfs tree (`/sys`; a fake tree in tests).
    pub sysfs_root: PathBuf,
    /// Opens the rtnetlink backend of VF settings.
    pub vf_rtnl: Box<dyn Fn() -> Result<vf::DynRtnl, CniError>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("default_socket", &self.default_socket)
            .field("sysfs_root", &self.sysfs_root)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// This host: `/sys` and a netlink socket for VF settings.
    pub fn system(default_socket: PathBuf) -> Node {
        Node {
            default_socket,
            sysfs_root: PathBuf::from("/sys"),
            vf_rtnl: Box::new(|| {
                sriov::netlink::RouteSocket::open()
                    .map(|s| vf::DynRtnl(Box::new(s)))
                    .map_err(|e| CniError::new(Code::Io, format!("netlink socket: {e}")))
            }),
        }
    }

    fn sysfs(&self) -> Sysfs {
        Sysfs::new(&self.sysfs_root)
    }

    fn vf_host(&self, conf: &NetConf) -> Result<sriov::Host<vf::DynRtnl>, CniError> {
        Ok(vf::host(&self.sysfs_root, conf, (self.vf_rtnl)()?))
    }
}

/// Runs one CNI command; what to print on stdout on success.
pub fn run(env: &Env, node: &Node, stdin: &[u8]) -> Result<Option<String>, CniError> {
    let conf = match env.command {
        Command::Version => return Ok(Some(version(stdin))),
        _ => NetConf::parse(stdin, node.default_socket.clone())?,
    };
    let need = match env.command {
        Command::Check => Version::V0_4_0,
        Command::Status | Command::Gc => Version::V1_1_0,
        _ => Version(0, 3, 0),
    };
    if conf.version < need {
        return Err(CniError::new(
            Code::IncompatibleVersion,
            format!(
                "{} needs cniVersion {}.{}.{} or later; the configuration says {}",
                env.command.name(),
                need.0,
                need.1,
                need.2,
                conf.version_text
            ),
        ));
    }
    match env.command {
        Command::Add => {
            let r = add(env, node, &conf, stdin)?.for_version(conf.version, &conf.version_text);
            serde_json::to_string(&r)
                .map(Some)
                .map_err(|e| internal(format!("encode result: {e}")))
        }
        Command::Del => del(env, node, &conf, stdin).map(|()| None),
        Command::Check => check(env, node, &conf, stdin).map(|()| None),
        Command::Status => status(env, node, &conf, stdin).map(|()| None),
        Command::Gc => gc::gc(env, node, &conf, stdin).map(|()| None),
        Command::Version => Ok(Some(version(stdin))),
    }
}

/// VERSION: the versions this plugin speaks.
fn version(stdin: &[u8]) -> String {
    let info = VersionInfo {
        cni_version: conf::version_of(stdin).unwrap_or_else(|| LATEST_VERSION.to_string()),
        supported_versions: SUPPORTED_VERSIONS.iter().map(|v| v.to_string()).collect(),
    };
    serde_json::to_string(&info).unwrap_or_default()
}

/// The MAC the pod's interface gets: `CNI_ARGS` `MAC`, else the configuration's.
fn requested_mac(env: &Env, conf: &NetConf) -> Result<Option<sriov::MacAddr>, CniError> {
    match env.arg("MAC") {
        Some(m) => conf::mac_arg(m).map(Some),
        None => Ok(conf.mac),
    }
}

/// The configuration as a record keeps it (without what only one call needs).
fn stored_config(conf: &NetConf) -> serde_json::Value {
    let mut v = conf.raw.clone();
    if let Some(o) = v.as_object_mut() {
        for k in [
            "prevResult",
            "cni.dev/valid-attachments",
            "cni.dev/attachments",
        ] {
            o.remove(k);
        }
    }
    v
}

fn add(env: &Env, node: &Node, conf: &NetConf, stdin: &[u8]) -> Result<CniResult, CniError> {
    let mac = requested_mac(env, conf)?;
    let ns = sandbox::open(&env.netns)?;
    // Everything that can be checked is, before anything is created.
    let (sw, vf_rec) = match &conf.mode {
        Mode::Veth { bridge } | Mode::Tap { bridge } => {
            (Some(port::check_ready(env, conf, bridge)?), None)
        }
        Mode::Vf { device_id } => (None, Some(vf::prepare(&node.sysfs(), device_id)?)),
    };
    let rec = Record {
        network: conf.name.clone(),
        container_id: env.container_id.clone(),
        ifname: env.ifname.clone(),
        netns: env.netns.clone(),
        args: env.args.clone(),
        cni_path: env.path.clone(),
        config: stored_config(conf),
        vf: vf_rec,
    };
    rec.save(&conf.state_dir)?;
    let mut rec = rec;
    let created = (|| {
        let (interfaces, index) = if let Some(sw) = &sw {
            port::add(env, conf, sw, mac, &ns)?
        } else if let Some(v) = rec.vf.clone() {
            // Recorded as soon as it is in the pod, so that DEL brings it back.
            let mut moved = |pod_ifindex: u32| {
                rec.vf = Some(state::VfRecord {
                    pod_ifindex: Some(pod_ifindex),
                    ..v.clone()
                });
                rec.save(&conf.state_dir)
            };
            vf::add(
                &mut node.vf_host(conf)?,
                env,
                conf,
                &v,
                mac,
                &ns,
                &mut moved,
            )?
        } else {
            return Err(internal("attachment without a port or a VF"));
        };
        let mut result = conf.prev_result.clone().unwrap_or_default();
        let index = result.interfaces.len() + index;
        result.interfaces.extend(interfaces);
        if let Some(kind) = &conf.ipam {
            let ip = ipam::add(kind, env, stdin)?;
            let mut pod = Rtnl::open_in(&env.netns).map_err(nl)?;
            let l = sandbox::link(&mut pod, &env.ifname, &env.netns)?;
            sandbox::configure(&mut pod, l.index, &ip)?;
            for mut i in ip.ips {
                i.interface = Some(index);
                result.ips.push(i);
            }
            result.routes.extend(ip.routes);
            if !ip.dns.is_empty() {
                result.dns = ip.dns;
            }
        }
        if result.dns.is_empty() {
            result.dns = conf.dns.clone();
        }
        Ok(result)
    })();
    created.inspect_err(|_| {
        // Undo what was made, as DEL does (the runtime will DEL too; both are harmless).
        if let Err(u) = del(env, node, conf, stdin) {
            eprintln!("vswitch-cni: undoing the failed ADD: {u}");
        }
    })
}

/// DEL: every step runs whatever the others did; the first error is returned and the
/// record kept, so a retry (or GC) finishes the job.
pub(crate) fn del(env: &Env, node: &Node, conf: &NetConf, stdin: &[u8]) -> Result<(), CniError> {
    let mut results = Vec::new();
    match &conf.mode {
        Mode::Veth { bridge } | Mode::Tap { bridge } => results.push(port::del(env, conf, bridge)),
        Mode::Vf { .. } => {
            match state::load(&conf.state_dir, &conf.name, &env.container_id, &env.ifname) {
                Ok(Some(Record { vf: Some(v), .. })) => results.push(
                    node.vf_host(conf)
                        .and_then(|mut h| vf::del(&mut h, &node.sysfs(), env, &v)),
                ),
                Ok(_) => {}
                Err(e) => results.push(Err(e)),
            }
        }
    }
    if let Some(kind) = &conf.ipam {
        results.push(ipam::run(kind, Command::Del, env, stdin));
    }
    if let Some(e) = results.into_iter().find_map(Result::err) {
        return Err(e);
    }
    state::remove(&conf.state_dir, &conf.name, &env.container_id, &env.ifname)
}

fn check(env: &Env, node: &Node, conf: &NetConf, stdin: &[u8]) -> Result<(), CniError> {
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| invalid_config("CHECK needs prevResult (the result of ADD)"))?;
    let index = prev.sandbox_interface(&env.ifname).ok_or_else(|| {
        invalid_config(format!(
            "prevResult has no interface {} in a sandbox",
            env.ifname
        ))
    })?;
    let prev_mac = prev.interfaces[index].mac.as_deref();
    match &conf.mode {
        Mode::Veth { bridge } | Mode::Tap { bridge } => port::check(env, conf, bridge, prev_mac)?,
        Mode::Vf { .. } => {
            let rec = state::load(&conf.state_dir, &conf.name, &env.container_id, &env.ifname)?
                .and_then(|r| r.vf)
                .ok_or_else(|| {
                    internal(format!(
                        "no record of container {} {} in {}",
                        env.container_id,
                        env.ifname,
                        conf.state_dir.display()
                    ))
                })?;
            let mac = requested_mac(env, conf)?;
            vf::check(&mut node.vf_host(conf)?, env, conf, &rec, mac, prev_mac)?;
        }
    }
    let mut pod = Rtnl::open_in(&env.netns).map_err(nl)?;
    let l = sandbox::link(&mut pod, &env.ifname, &env.netns)?;
    sandbox::check_addresses(&mut pod, l.index, &env.ifname, &prev.addresses_of(index))?;
    if let Some(kind) = &conf.ipam {
        ipam::run(kind, Command::Check, env, stdin)?;
    }
    Ok(())
}

/// STATUS: can an ADD succeed now (vswitchd up with the bridge, or the VF present; the
/// IPAM plugin ready)?
fn status(env: &Env, node: &Node, conf: &NetConf, stdin: &[u8]) -> Result<(), CniError> {
    let unavailable = |e: CniError| CniError::new(Code::NotAvailable, e.msg);
    match &conf.mode {
        Mode::Veth { bridge } | Mode::Tap { bridge } => {
            switch::Switch::new(&conf.socket)
                .bridge(bridge)
                .map_err(unavailable)?;
        }
        Mode::Vf { device_id } => {
            vf::locate(&node.sysfs(), device_id).map_err(unavailable)?;
        }
    }
    if let Some(kind) = &conf.ipam {
        match ipam::run(kind, Command::Status, env, stdin) {
            Err(e) if !ipam::unsupported_verb(&e) => return Err(unavailable(e)),
            _ => {}
        }
    }
    Ok(())
}
