//! Garbage collection of attachments whose pods are gone.
//!
//! Two entry points, one mechanism (a DEL replayed from the attachment's record, or the
//! port's removal when there is no record):
//! - GC (spec 1.1): the runtime lists the attachments it still has on a network; every
//!   other attachment of that network is removed, then the IPAM plugin gets its GC;
//! - [`sweep`] (`vswitchctl cni-gc`): for runtimes without GC (podman 4, containerd
//!   before 2.0), every attachment whose network namespace no longer exists is removed.
//!
//! Invariants: only attachments of the plugin are touched (records in the state
//! directory, ports whose owner is a CNI attachment); an attachment is removed only when
//! the runtime no longer lists it (GC) or its namespace is certainly gone (sweep: the path
//! is missing or no namespace); one failure does not stop the others.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use super::conf::{Mode, NetConf};
use super::env::{Command, Env};
use super::error::{CniError, Code};
use super::state::{self, Record};
use super::switch::{cni_owner, Switch};
use super::{ipam, port, sandbox, Node};

/// An attachment a collection removed (or, dry, would remove).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Swept {
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    /// The port removed, for attachments through a switch port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
}

/// Replays the DEL of a recorded attachment.
fn replay_del(rec: &Record, node: &Node) -> Result<(), CniError> {
    let env = Env {
        command: Command::Del,
        container_id: rec.container_id.clone(),
        netns: rec.netns.clone(),
        ifname: rec.ifname.clone(),
        args: rec.args.clone(),
        path: rec.cni_path.clone(),
    };
    let stdin = serde_json::to_vec(&rec.config)
        .map_err(|e| CniError::new(Code::Internal, format!("encode record: {e}")))?;
    let conf = NetConf::parse(&stdin, node.default_socket.clone())?;
    super::del(&env, node, &conf, &stdin)
}

fn port_of(rec: &Record, node: &Node) -> Option<String> {
    let stdin = serde_json::to_vec(&rec.config).ok()?;
    let conf = NetConf::parse(&stdin, node.default_socket.clone()).ok()?;
    conf.mode
        .bridge()
        .map(|_| super::names::attachment_name(&rec.container_id, &rec.ifname))
}

/// One error standing for all of `errors` (the first, with the rest as details).
fn combine(errors: Vec<CniError>) -> Result<(), CniError> {
    let mut it = errors.into_iter();
    let Some(first) = it.next() else {
        return Ok(());
    };
    let rest: Vec<String> = it.map(|e| e.to_string()).collect();
    if rest.is_empty() {
        return Err(first);
    }
    let details = match &first.details {
        Some(d) => format!("{d}; also: {}", rest.join("; ")),
        None => format!("also: {}", rest.join("; ")),
    };
    Err(first.with_details(details))
}

/// GC: removes the attachments of `conf`'s network that the runtime does not list.
pub fn gc(env: &Env, node: &Node, conf: &NetConf, stdin: &[u8]) -> Result<(), CniError> {
    let valid: BTreeSet<(&str, &str)> = conf
        .valid_attachments
        .iter()
        .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
        .collect();
    let mut errors = Vec::new();
    let mut done = BTreeSet::new();
    for (path, rec) in state::list(&conf.state_dir, Some(&conf.name)) {
        match rec {
            Err(e) => errors.push(e),
            Ok(r) if valid.contains(&(r.container_id.as_str(), r.ifname.as_str())) => {}
            Ok(r) => match replay_del(&r, node) {
                Ok(()) => {
                    done.insert((r.container_id.clone(), r.ifname.clone()));
                }
                Err(e) => errors.push(CniError::new(
                    e.code,
                    format!("{}: {}", path.display(), e.msg),
                )),
            },
        }
    }
    // Ports without a record (a wiped state directory).
    if let Mode::Veth { bridge } | Mode::Tap { bridge } = &conf.mode {
        let sw = Switch::new(&conf.socket);
        match sw.show() {
            Err(e) => errors.push(e),
            Ok(bridges) => {
                for p in bridges
                    .iter()
                    .filter(|b| &b.name == bridge)
                    .flat_map(|b| &b.ports)
                {
                    let Some(a) = cni_owner(p) else { continue };
                    let key = (a.container_id.as_str(), a.ifname.as_str());
                    if a.network != conf.name
                        || valid.contains(&key)
                        || done.contains(&(a.container_id.clone(), a.ifname.clone()))
                    {
                        continue;
                    }
                    if let Err(e) = port::remove(&sw, bridge, &a.container_id, &a.ifname) {
                        errors.push(e);
                    }
                }
            }
        }
    }
    if let Some(kind) = &conf.ipam {
        match ipam::run(kind, Command::Gc, env, stdin) {
            Err(e) if !ipam::unsupported_verb(&e) => errors.push(e),
            _ => {}
        }
    }
    combine(errors)
}

/// Removes every attachment whose network namespace is gone: recorded ones (in
/// `state_dir`, all networks) by replaying their DEL, and ports of vswitchd at `socket`
/// owned by a CNI attachment. With `dry_run`, only says which.
pub fn sweep(
    node: &Node,
    state_dir: &Path,
    socket: &Path,
    dry_run: bool,
) -> (Vec<Swept>, Vec<CniError>) {
    let mut swept = Vec::new();
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for (path, rec) in state::list(state_dir, None) {
        let r = match rec {
            Ok(r) => r,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if sandbox::alive(&r.netns) {
            continue;
        }
        seen.insert((r.container_id.clone(), r.ifname.clone()));
        let item = Swept {
            network: r.network.clone(),
            container_id: r.container_id.clone(),
            ifname: r.ifname.clone(),
            netns: r.netns.clone(),
            port: port_of(&r, node),
        };
        if dry_run {
            swept.push(item);
            continue;
        }
        match replay_del(&r, node) {
            Ok(()) => swept.push(item),
            Err(e) => errors.push(CniError::new(
                e.code,
                format!("{}: {}", path.display(), e.msg),
            )),
        }
    }
    let sw = Switch::new(socket);
    match sw.show() {
        Err(e) => errors.push(e),
        Ok(bridges) => {
            for b in &bridges {
                for p in &b.ports {
                    let Some(a) = cni_owner(p) else { continue };
                    if seen.contains(&(a.container_id.clone(), a.ifname.clone()))
                        || sandbox::alive(&a.netns)
                    {
                        continue;
                    }
                    let item = Swept {
                        network: a.network.clone(),
                        container_id: a.container_id.clone(),
                        ifname: a.ifname.clone(),
                        netns: a.netns.clone(),
                        port: Some(p.name.clone()),
                    };
                    if dry_run {
                        swept.push(item);
                        continue;
                    }
                    match port::remove(&sw, &b.name, &a.container_id, &a.ifname) {
                        Ok(()) => swept.push(item),
                        Err(e) => errors.push(e),
                    }
                }
            }
        }
    }
    (swept, errors)
}
