//! The daemon's state: the configuration (source of truth) and, per bridge, a running
//! [`Datapath`] with the ports' I/O. Every change goes through [`Daemon::apply`]: the new
//! configuration is validated, the difference is applied, and only then (for CLI
//! changes) persisted; a change that fails leaves the running state as it was.
//!
//! Invariants kept here:
//! - `bridges` has exactly the bridges of `config`, each with exactly its ports; a port
//!   whose I/O could not be opened at start/reload is present, down, with its error.
//! - Port ids are stable while a port exists (they key the FDB); new ports take the
//!   lowest free id.
//! - `valid` is `config` as [`Config::validate`] returned it: ports run from their
//!   validated `PortConfig`, static MACs from their validated (VLAN, MAC); nothing here
//!   parses a configuration value again.
//! - What a change could not do is a [`Problem`] variant, classified by variant (a port
//!   kept down, a bridge without its fast path, a refused static MAC), never by its text.

mod problem;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datapath::fastpath::XdpProgram;
use datapath::fdb::{FdbConfig, Flush};
use datapath::port::afxdp::{AfXdpConfig, AfXdpPort, SharedProgram, XdpMode};
use datapath::port::packet::{PacketConfig, PacketPort};
use datapath::port::tap::{TapConfig, TapControl, TapKeep, TapPort};
use datapath::port::{RxPort, TxPort};
use datapath::topology::{PortConfig, PortId, Topology, TopologyBuilder, MAX_PORTS};
use datapath::vlan::{PortVlan, Vid};
use datapath::wire::MacAddr;
use datapath::worker::{
    merge_fdb, sum_counters, Datapath, DatapathConfig, DatapathError, FdbOp, PollMode,
};

use crate::config::{
    BridgeConfig, Config, ConfigFileError, DatapathSection, PortKind, PortSpec, StaticMac,
    ValidBridge, ValidConfig, XdpModeSpec,
};
use crate::proto::*;

pub use problem::{
    join as join_problems, FastPathError, OpenError, PortDown, Problem, FAST_PATH_UNAVAILABLE,
};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigFileError),
    /// The configuration is valid but could not be applied (a bridge's workers did not
    /// start).
    #[error("{}", .0.message)]
    Apply(ErrorReply),
}

/// How long the control thread waits for a worker to answer.
pub const WORKER_TIMEOUT: Duration = Duration::from_secs(5);

/// What one request did wrong.
pub type Reply = Result<Response, ErrorReply>;

fn not_found(msg: impl Into<String>) -> ErrorReply {
    ErrorReply::new(ErrorCode::NotFound, msg)
}
fn usage(msg: impl Into<String>) -> ErrorReply {
    ErrorReply::new(ErrorCode::Usage, msg)
}
fn failed(msg: impl Into<String>) -> ErrorReply {
    ErrorReply::new(ErrorCode::Failed, msg)
}
fn done(msg: impl Into<String>) -> Reply {
    Ok(Response::Done {
        message: msg.into(),
    })
}

/// A port's I/O as opened.
#[derive(Debug, Clone)]
struct PortIo {
    /// The backend serving the port ("afxdp", "packet", "tap").
    backend: PortKind,
    xdp_mode: String,
    /// An AF_XDP port served by its bridge's fast-path XDP program.
    fast_path: bool,
    /// A tap port's handle to change its MTU in place.
    tap: Option<TapControl>,
}

#[derive(Debug)]
struct PortState {
    id: PortId,
    spec: PortSpec,
    /// The datapath's view of the port, as validated.
    config: PortConfig,
    io: Result<PortIo, PortDown>,
}

#[derive(Debug)]
struct Bridge {
    dp: Datapath,
    ports: BTreeMap<String, PortState>,
    /// The static MACs installed in the workers' FDBs: (VLAN, MAC) -> port.
    statics: BTreeMap<(u16, MacAddr), PortId>,
    /// The configured static MACs the workers refused at the last sync, with the reason.
    static_errors: Vec<Problem>,
    /// The bridge's XDP program with the fast path on (`datapath.xdp_fast_path`), shared
    /// by the datapath and every AF_XDP port opened for the bridge. `None`: fast path off,
    /// each AF_XDP port runs a private program.
    xdp: Option<SharedProgram>,
    /// Why the bridge runs without the fast path it is configured with.
    xdp_error: Option<FastPathError>,
}

impl Bridge {
    /// Brings the workers' static MACs to `want` by difference: entries that left the
    /// configuration are removed, new or moved ones added (a move replaces the entry in
    /// place); the others are not touched, so they never go missing for a moment in which
    /// a spoofed source could be learned. `reset` lists the ids of ports that left the
    /// topology in this sync: the workers dropped their entries with them.
    fn sync_statics(
        &mut self,
        bridge: &str,
        want: &BTreeMap<(Vid, MacAddr), String>,
        reset: &[PortId],
    ) -> Vec<Problem> {
        self.statics.retain(|_, p| !reset.contains(p));
        let wanted = self.wanted_statics(want);
        let mut problems = Vec::new();
        let stale: Vec<(u16, MacAddr)> = self
            .statics
            .keys()
            .filter(|k| !wanted.contains_key(k))
            .copied()
            .collect();
        for (vid, mac) in stale {
            match self.dp.fdb(FdbOp::Remove { vid, mac }, WORKER_TIMEOUT) {
                Ok(()) => {
                    self.statics.remove(&(vid, mac));
                }
                Err(e) => problems.push(Problem::StaticRemove {
                    bridge: bridge.to_owned(),
                    mac,
                    source: Arc::new(e),
                }),
            }
        }
        self.static_errors.clear();
        for (&(vid, mac), &port) in &wanted {
            if self.statics.get(&(vid, mac)) == Some(&port) {
                continue;
            }
            if let Err(e) = self.add_static(vid, mac, port) {
                let problem = Problem::StaticRefused {
                    bridge: bridge.to_owned(),
                    mac,
                    vid,
                    source: Arc::new(e),
                };
                problems.push(problem.clone());
                self.static_errors.push(problem);
            }
        }
        problems
    }

    /// The configured static MACs of ports that have an id: (VLAN, MAC) -> port.
    fn wanted_statics(
        &self,
        want: &BTreeMap<(Vid, MacAddr), String>,
    ) -> BTreeMap<(u16, MacAddr), PortId> {
        want.iter()
            .filter_map(|(&(vid, mac), port)| Some(((vid.get(), mac), self.ports.get(port)?.id)))
            .collect()
    }

    /// Installs one static MAC in every replica. On failure no replica keeps it (some
    /// may have taken it before another refused).
    fn add_static(&mut self, vid: u16, mac: MacAddr, port: PortId) -> Result<(), DatapathError> {
        match self
            .dp
            .fdb(FdbOp::AddStatic { vid, mac, port }, WORKER_TIMEOUT)
        {
            Ok(()) => {
                self.statics.insert((vid, mac), port);
                Ok(())
            }
            Err(e) => {
                self.statics.remove(&(vid, mac));
                let _ = self.dp.fdb(FdbOp::Remove { vid, mac }, WORKER_TIMEOUT);
                Err(e)
            }
        }
    }
}

/// The fast-path program of a bridge about to start: `Ok(None)` with both fast paths
/// (XDP for AF_XDP ports, packet ports') off.
fn load_fast_path(c: &Config) -> Result<Option<SharedProgram>, FastPathError> {
    if !c.datapath.xdp_fast_path && !c.datapath.packet_fast_path {
        return Ok(None);
    }
    XdpProgram::new(true, c.fdb.capacity)
        .map(|p| Some(SharedProgram(p)))
        .map_err(|e| FastPathError(Arc::new(e)))
}

/// The running daemon.
#[derive(Debug)]
pub struct Daemon {
    config: Config,
    /// `config` as validated: the values in the datapath's types.
    valid: ValidConfig,
    config_path: PathBuf,
    bridges: BTreeMap<String, Bridge>,
}

/// Opened halves of a port.
type Halves = (Vec<Box<dyn RxPort>>, Box<dyn TxPort>, PortIo);

/// The fast paths a port joins: its bridge's program, if loaded, for the kinds of port
/// whose fast path is on.
#[derive(Debug, Clone, Copy)]
struct FastPaths<'a> {
    program: Option<&'a SharedProgram>,
    xdp: bool,
    packet: bool,
}

impl<'a> FastPaths<'a> {
    fn new(program: Option<&'a SharedProgram>, dp: &DatapathSection) -> FastPaths<'a> {
        FastPaths {
            program,
            xdp: dp.xdp_fast_path,
            packet: dp.packet_fast_path,
        }
    }
}

/// Opens a port's I/O; an AF_XDP port joins its bridge's program with the XDP fast path
/// on (else it runs a private one), a packet port with the packet fast path on.
fn open_port(spec: &PortSpec, fast: FastPaths) -> Result<Halves, PortDown> {
    open_port_io(spec, fast).map_err(|cause| PortDown::Open {
        port: spec.name.clone(),
        cause,
    })
}

fn open_port_io(spec: &PortSpec, fast: FastPaths) -> Result<Halves, OpenError> {
    match spec.kind.resolve(spec.interface()) {
        PortKind::Auto => Err(OpenError::NoBackend),
        PortKind::Packet => {
            if spec.queues != 1 {
                return Err(OpenError::PacketQueues(spec.queues));
            }
            let mut c = PacketConfig::new(spec.interface());
            c.program = fast.program.filter(|_| fast.packet).cloned();
            let port = PacketPort::open(&c)?;
            let fast_path = port.info().fast_path;
            let (rx, tx) = port.split();
            Ok((
                vec![Box::new(rx)],
                Box::new(tx),
                PortIo {
                    backend: PortKind::Packet,
                    xdp_mode: String::new(),
                    fast_path,
                    tap: None,
                },
            ))
        }
        PortKind::Afxdp => {
            let mut c = AfXdpConfig::new(spec.interface());
            c.program = fast.program.filter(|_| fast.xdp).cloned();
            c.queues = (0..spec.queues).collect();
            c.mode = match spec.xdp_mode {
                XdpModeSpec::Auto => XdpMode::Auto,
                XdpModeSpec::Native => XdpMode::Native,
                XdpModeSpec::Generic => XdpMode::Generic,
            };
            c.replace_foreign = spec.xdp_replace;
            c.frame_size = spec.afxdp_frame_size();
            c.max_frame = spec.afxdp_max_frame().unwrap_or(0);
            let port = AfXdpPort::open(&c)?;
            let mode = port.info().mode.to_string();
            let fast_path = port.info().fast_path;
            let (rx, tx) = port.split();
            Ok((
                vec![Box::new(rx)],
                Box::new(tx),
                PortIo {
                    backend: PortKind::Afxdp,
                    xdp_mode: mode,
                    fast_path,
                    tap: None,
                },
            ))
        }
        PortKind::Tap => {
            let mut c = TapConfig::new(spec.interface());
            c.mtu = spec.mtu;
            let port = TapPort::create(&c)?;
            Ok(tap_halves(port))
        }
    }
}

fn tap_halves(port: TapPort) -> Halves {
    let control = port.control();
    let (rx, tx) = port.split();
    (
        vec![Box::new(rx)],
        Box::new(tx),
        PortIo {
            backend: PortKind::Tap,
            xdp_mode: String::new(),
            fast_path: false,
            tap: Some(control),
        },
    )
}

/// A tap port of a restarting bridge made again over its kept device; the MTU follows
/// `spec` if it changed in the same step.
fn resume_tap(keep: TapKeep, spec: &PortSpec) -> Result<Halves, PortDown> {
    let port = TapPort::resume(keep);
    let control = port.control();
    let want = spec.effective_mtu();
    if port.mtu() != want {
        control.set_mtu(want).map_err(|e| PortDown::Open {
            port: spec.name.clone(),
            cause: e.into(),
        })?;
    }
    Ok(tap_halves(port))
}

/// Whether two specs need the port's I/O reopened (anything but forwarding policy). An
/// AF_XDP port is reopened when its MTU needs another UMEM frame size or another
/// multi-buffer frame length; a tap port changes
/// its MTU in place instead (the device stays where the user put it, see
/// [`Daemon::apply`]).
fn io_changed(a: &PortSpec, b: &PortSpec) -> bool {
    a.kind != b.kind
        || a.interface() != b.interface()
        || a.queues != b.queues
        || a.xdp_mode != b.xdp_mode
        || (a.kind == PortKind::Afxdp
            && (a.afxdp_frame_size() != b.afxdp_frame_size()
                || a.afxdp_max_frame() != b.afxdp_max_frame()))
}

fn datapath_config(c: &Config, xdp: Option<SharedProgram>) -> DatapathConfig {
    DatapathConfig {
        workers: c.datapath.workers,
        cpus: c.datapath.cpus.clone(),
        burst: c.datapath.burst,
        poll: c.datapath.poll(),
        fdb: FdbConfig {
            capacity: c.fdb.capacity,
            aging_secs: c.fdb.aging_secs,
        },
        xdp,
        ..DatapathConfig::default()
    }
}

impl Daemon {
    /// Loads `config_path` (missing: empty config) and starts every bridge. Ports that
    /// cannot be opened are reported in the returned list and stay down.
    pub fn start(config_path: &Path) -> Result<(Daemon, Vec<Problem>), StartError> {
        let config = Config::load(config_path, true)?;
        let mut d = Daemon {
            config: Config::default(),
            valid: ValidConfig::default(),
            config_path: config_path.to_path_buf(),
            bridges: BTreeMap::new(),
        };
        let mut problems = d.apply(config, false).map_err(StartError::Apply)?;
        problems.extend(d.apply_vfs());
        Ok((d, problems))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }
    /// The running configuration as validated (datapath types).
    pub fn valid_config(&self) -> &ValidConfig {
        &self.valid
    }
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Re-reads the file and applies the difference; on error the running state stays.
    pub fn reload(&mut self) -> Result<Vec<Problem>, ErrorReply> {
        let new = Config::load(&self.config_path, true)
            .map_err(|e| failed(format!("reload rejected, running configuration kept: {e}")))?;
        let mut problems = self.apply(new, false)?;
        problems.extend(self.apply_vfs());
        Ok(problems)
    }

    /// Brings the SR-IOV VFs declared in the configuration to their settings (original
    /// states are journaled first) and reports what changed, failed or still drifts.
    pub fn apply_vfs(&mut self) -> Vec<Problem> {
        if self.config.vfs.is_empty() {
            return Vec::new();
        }
        let rtnl = match sriov::netlink::RouteSocket::open() {
            Ok(r) => r,
            Err(e) => return vec![Problem::SriovNetlink(Arc::new(e))],
        };
        let mut host = sriov::Host::new(
            sriov::sysfs::Sysfs::new("/sys"),
            sriov::journal::Journal::new(sriov::journal::DEFAULT_STATE_DIR),
            rtnl,
        );
        let desired: Vec<sriov::VfDesired> = self
            .config
            .vfs
            .iter()
            .map(|v| sriov::VfDesired {
                pf: v.pf.clone(),
                vf: v.vf,
                config: v.settings.clone(),
            })
            .collect();
        let mut out = Vec::new();
        for r in host.apply(&desired).vfs {
            match r.error {
                Some(reason) => out.push(Problem::Vf {
                    pf: r.pf,
                    vf: r.vf,
                    reason,
                }),
                None if !r.changed.is_empty() => {
                    tracing::info!(
                        "vswitchd: vf {} {}: set {}",
                        r.pf,
                        r.vf,
                        r.changed.join(", ")
                    )
                }
                None => {}
            }
        }
        match host.drift(&desired) {
            Ok(d) => out.extend(d.into_iter().map(Problem::VfDrift)),
            Err(e) => out.push(Problem::Sriov(Arc::new(e))),
        }
        out
    }

    /// Applies `new`. With `strict`, any port that fails to open fails the whole change
    /// (nothing changes); otherwise such ports stay down and are listed in the result.
    pub fn apply(&mut self, new: Config, strict: bool) -> Result<Vec<Problem>, ErrorReply> {
        let valid = new.validate().map_err(|e| usage(e.to_string()))?;
        let mut problems = Vec::new();
        let global_changed =
            !new.datapath.same_workers(&self.config.datapath) || new.fdb != self.config.fdb;
        // Bridges that go away (or all of them when worker/FDB parameters change).
        let doomed: Vec<String> = self
            .bridges
            .keys()
            .filter(|n| global_changed || new.bridge(n).is_none())
            .cloned()
            .collect();
        // The XDP programs of the bridges that start now (fast path on), loaded before
        // anything changes: a strict change fails here without effect; otherwise a bridge
        // whose program cannot be loaded runs without the fast path, reported.
        let mut starting: BTreeMap<String, (Option<SharedProgram>, Option<FastPathError>)> =
            BTreeMap::new();
        for b in &new.bridges {
            if self.bridges.contains_key(&b.name) && !doomed.contains(&b.name) {
                continue;
            }
            let entry = match load_fast_path(&new) {
                Ok(p) => (p, None),
                Err(e) if strict && new.datapath.xdp_fast_path => {
                    return Err(failed(format!("bridge {}: XDP fast path: {e}", b.name)));
                }
                Err(e) if !new.datapath.xdp_fast_path => {
                    // The packet fast path is a default, not a request: without it the
                    // bridge works, its packet ports through the workers.
                    tracing::warn!(
                        "bridge {}: packet fast path unavailable ({e}); all frames go \
                         through the workers",
                        b.name
                    );
                    (None, Some(e))
                }
                Err(e) => {
                    problems.push(Problem::FastPathUnavailable {
                        bridge: b.name.clone(),
                        cause: e.clone(),
                    });
                    (None, Some(e))
                }
            };
            starting.insert(b.name.clone(), entry);
        }
        // With `strict`, open new ports first so a failure changes nothing.
        // Opened (or failed to open: reported once, not retried below).
        let mut opened: BTreeMap<(String, String), Result<Halves, PortDown>> = BTreeMap::new();
        for b in &new.bridges {
            let running = self.bridges.get(&b.name).filter(|_| !global_changed);
            let xdp = match running {
                Some(r) => r.xdp.as_ref(),
                None => starting.get(&b.name).and_then(|s| s.0.as_ref()),
            };
            let fast = FastPaths::new(xdp, &new.datapath);
            for p in &b.ports {
                let needs_open = match running.and_then(|r| r.ports.get(&p.name)) {
                    Some(st) => io_changed(&st.spec, p) || (st.io.is_err() && !strict),
                    None => true,
                };
                if !needs_open {
                    continue;
                }
                // A running port on the same interface must release it before reopening.
                let reopen_same = running
                    .and_then(|r| r.ports.get(&p.name))
                    .is_some_and(|st| st.spec.interface() == p.interface() && st.io.is_ok());
                if reopen_same || doomed.contains(&b.name) {
                    continue; // opened after the old one is closed, below
                }
                match open_port(p, fast) {
                    Ok(h) => {
                        opened.insert((b.name.clone(), p.name.clone()), Ok(h));
                    }
                    Err(e) if strict => {
                        return Err(failed(format!("bridge {}: {e}", b.name)));
                    }
                    Err(down) => {
                        problems.push(Problem::PortDown {
                            bridge: b.name.clone(),
                            down: down.clone(),
                        });
                        opened.insert((b.name.clone(), p.name.clone()), Err(down));
                    }
                }
            }
        }
        // Tap ports change their MTU in place: the device keeps its fd, its namespace and
        // its addresses (a reopened tap would be a new device in the daemon's namespace).
        // Last step that can fail a strict change, so only these need undoing.
        let mut mtu_set: Vec<(TapControl, u32)> = Vec::new();
        for b in &new.bridges {
            let Some(running) = self.bridges.get(&b.name).filter(|_| !global_changed) else {
                continue;
            };
            for p in &b.ports {
                let Some(st) = running.ports.get(&p.name) else {
                    continue;
                };
                let (old_mtu, new_mtu) = (st.spec.effective_mtu(), p.effective_mtu());
                if p.kind != PortKind::Tap || io_changed(&st.spec, p) || old_mtu == new_mtu {
                    continue;
                }
                let Ok(PortIo { tap: Some(tap), .. }) = &st.io else {
                    continue; // down: opened with the new MTU when it is reopened
                };
                match tap.set_mtu(new_mtu) {
                    Ok(()) => mtu_set.push((tap.clone(), old_mtu)),
                    Err(e) if strict => {
                        for (tap, old) in mtu_set.iter().rev() {
                            let _ = tap.set_mtu(*old);
                        }
                        return Err(failed(format!("bridge {}: {e}", b.name)));
                    }
                    Err(e) => problems.push(Problem::TapMtu {
                        bridge: b.name.clone(),
                        source: Arc::new(e),
                    }),
                }
            }
        }
        // Tap ports of restarting bridges keep their devices (they may live in another
        // namespace or belong to a VM): held open across the stop, resumed after it.
        let mut kept: Vec<((String, String), TapKeep, PortSpec)> = Vec::new();
        for name in &doomed {
            let (Some(old), Some(want)) = (self.bridges.get(name), new.bridge(name)) else {
                continue;
            };
            for p in &want.ports {
                let Some(st) = old.ports.get(&p.name) else {
                    continue;
                };
                if p.kind != PortKind::Tap || st.spec.kind != PortKind::Tap {
                    continue;
                }
                if st.spec.interface() != p.interface() {
                    continue;
                }
                if let Ok(PortIo { tap: Some(tap), .. }) = &st.io {
                    if let Some(k) = tap.keep() {
                        kept.push(((name.clone(), p.name.clone()), k, p.clone()));
                    }
                }
            }
        }
        for name in doomed {
            if let Some(b) = self.bridges.remove(&name) {
                b.dp.stop();
            }
        }
        for (key, keep, spec) in kept {
            let h = resume_tap(keep, &spec);
            if let Err(down) = &h {
                problems.push(Problem::PortDown {
                    bridge: key.0.clone(),
                    down: down.clone(),
                });
            }
            opened.insert(key, h);
        }
        for b in &new.bridges {
            if !self.bridges.contains_key(&b.name) {
                let (xdp, xdp_error) = starting.remove(&b.name).unwrap_or_default();
                let dp = Datapath::start(
                    datapath_config(&new, xdp.clone()),
                    Topology::builder().build(),
                )
                .map_err(|e| failed(format!("bridge {}: {e}", b.name)))?;
                self.bridges.insert(
                    b.name.clone(),
                    Bridge {
                        dp,
                        ports: BTreeMap::new(),
                        statics: BTreeMap::new(),
                        static_errors: Vec::new(),
                        xdp,
                        xdp_error,
                    },
                );
            }
            let want = valid.bridges.get(&b.name).cloned().unwrap_or_default();
            let mut problems_b = self.sync_bridge(b, &want, &new.datapath, &mut opened);
            problems.append(&mut problems_b);
        }
        // Running workers take a new poll policy at their next burst (no restart).
        let poll = new.datapath.poll();
        for (name, b) in &mut self.bridges {
            if b.dp.config().poll != poll {
                if let Err(e) = b.dp.set_poll(poll) {
                    problems.push(Problem::PollMode {
                        bridge: name.clone(),
                        source: Arc::new(e),
                    });
                }
            }
        }
        self.config = new;
        self.valid = valid;
        Ok(problems)
    }

    /// Brings a running bridge to `want` (under the `[datapath]` settings being applied):
    /// detaches removed/changed ports, installs the topology, attaches opened ports, syncs
    /// static MACs.
    fn sync_bridge(
        &mut self,
        want: &BridgeConfig,
        valid: &ValidBridge,
        settings: &DatapathSection,
        opened: &mut BTreeMap<(String, String), Result<Halves, PortDown>>,
    ) -> Vec<Problem> {
        let mut problems = Vec::new();
        let Some(br) = self.bridges.get_mut(&want.name) else {
            return problems;
        };
        // Remove ports that left or whose I/O changes.
        let leaving: Vec<String> = br
            .ports
            .iter()
            .filter(|(n, st)| {
                want.ports.iter().find(|p| &p.name == *n).is_none_or(|p| {
                    io_changed(&st.spec, p)
                        || opened.contains_key(&(want.name.clone(), p.name.clone()))
                })
            })
            .map(|(n, _)| n.clone())
            .collect();
        let mut free_ids: Vec<PortId> = Vec::new();
        for n in &leaving {
            if let Some(st) = br.ports.remove(n) {
                let _ = br.dp.detach_port(st.id);
                free_ids.push(st.id);
            }
        }
        // Topology without the leaving ports first, so their I/O is released now.
        let mut b = Topology::builder();
        for st in br.ports.values() {
            let mut c = st.config.clone();
            c.up = st.io.is_ok();
            let _ = b.add_port(st.id.index(), c);
        }
        let _ = br.dp.set_topology(rebuild_generation(b, &br.dp));
        let _ = br.dp.sync(WORKER_TIMEOUT);
        // Ports to (re)open now: changed ones whose old I/O is gone.
        let mut new_io: BTreeMap<String, Result<Halves, PortDown>> = BTreeMap::new();
        for p in &want.ports {
            if br.ports.contains_key(&p.name) {
                continue;
            }
            let key = (want.name.clone(), p.name.clone());
            let h = match opened.remove(&key) {
                Some(h) => h,
                None => {
                    open_port(p, FastPaths::new(br.xdp.as_ref(), settings)).inspect_err(|down| {
                        problems.push(Problem::PortDown {
                            bridge: want.name.clone(),
                            down: down.clone(),
                        });
                    })
                }
            };
            new_io.insert(p.name.clone(), h);
        }
        // Assign ids and build the full topology.
        let used: std::collections::BTreeSet<PortId> = br.ports.values().map(|s| s.id).collect();
        let mut next_free = (0..MAX_PORTS)
            .filter_map(PortId::new)
            .filter(move |p| !used.contains(p));
        for p in &want.ports {
            let Some(config) = valid.ports.get(&p.name).cloned() else {
                continue; // not in a validated configuration: cannot happen
            };
            match br.ports.get_mut(&p.name) {
                Some(st) => {
                    st.spec = p.clone();
                    st.config = config;
                }
                None => {
                    let Some(id) = next_free.next() else {
                        problems.push(Problem::NoPortId {
                            bridge: want.name.clone(),
                            port: p.name.clone(),
                        });
                        continue;
                    };
                    let io = match new_io.get(&p.name) {
                        Some(Ok((_, _, io))) => Ok(io.clone()),
                        Some(Err(e)) => Err(e.clone()),
                        None => Err(PortDown::NotOpened),
                    };
                    br.ports.insert(
                        p.name.clone(),
                        PortState {
                            id,
                            spec: p.clone(),
                            config,
                            io,
                        },
                    );
                }
            }
        }
        let mut b = Topology::builder();
        for st in br.ports.values() {
            let mut c = st.config.clone();
            c.up = st.io.is_ok();
            if let Err(source) = b.add_port(st.id.index(), c) {
                problems.push(Problem::Topology {
                    bridge: want.name.clone(),
                    source,
                });
            }
        }
        let _ = br.dp.set_topology(rebuild_generation(b, &br.dp));
        for (name, h) in new_io {
            if let (Ok((rx, tx, _)), Some(st)) = (h, br.ports.get(&name)) {
                if let Err(e) = br.dp.attach_port(st.id, rx, tx, None) {
                    problems.push(Problem::Attach {
                        bridge: want.name.clone(),
                        port: name.clone(),
                        source: Arc::new(e),
                    });
                }
            }
        }
        // Static MACs: only the changed ones (those of ports that left went with them).
        let mut p = br.sync_statics(&want.name, &valid.statics, &free_ids);
        problems.append(&mut p);
        let _ = br.dp.sync(WORKER_TIMEOUT);
        problems
    }

    /// Applies a CLI change: strict, then persisted atomically. On any failure the
    /// running state and the file are unchanged.
    fn change(&mut self, new: Config, message: String) -> Reply {
        let old = self.config.clone();
        let up_before = self.up_ports();
        let refused_before = self.refused_statics();
        let problems = self.apply(new, true)?;
        if let Some(why) = self.strict_failure(&up_before, &refused_before, &problems) {
            let restored = match self.apply(old, false) {
                Ok(p) if p.is_empty() => "previous configuration restored".to_string(),
                Ok(p) => format!(
                    "previous configuration restored with: {}",
                    join_problems(&p)
                ),
                Err(e) => format!("restoring the previous configuration failed: {}", e.message),
            };
            return Err(failed(format!("{why}; {restored}")));
        }
        if let Err(e) = self.config.save(&self.config_path) {
            // Roll back the running state to match the file.
            let _ = self.apply(old, false);
            return Err(failed(e.to_string()));
        }
        done(message)
    }

    /// Why a strict change that `apply` went through must be undone, if it must:
    /// - a port reopened on its own interface (e.g. an AF_XDP port whose MTU needs other
    ///   UMEM frames) releases it before opening again, so `strict` cannot open it first,
    ///   and it is down now (`up_before`: the ports up before the change);
    /// - the workers refused a static MAC that was not refused before (e.g. FDB full).
    fn strict_failure(
        &self,
        up_before: &[(String, String)],
        refused_before: &[StaticKey],
        problems: &[Problem],
    ) -> Option<String> {
        let broken = up_before.iter().any(|(b, p)| {
            self.bridges
                .get(b)
                .and_then(|br| br.ports.get(p))
                .is_some_and(|st| st.io.is_err())
        });
        if broken {
            return Some(join_problems(problems));
        }
        let refused: Vec<Problem> = self
            .static_errors()
            .filter(|e| static_key(e).is_none_or(|k| !refused_before.contains(&k)))
            .cloned()
            .collect();
        (!refused.is_empty()).then(|| join_problems(&refused))
    }

    /// The configured static MACs the workers refused, with the reason.
    fn static_errors(&self) -> impl Iterator<Item = &Problem> {
        self.bridges.values().flat_map(|b| &b.static_errors)
    }

    /// The static MACs the workers refused.
    fn refused_statics(&self) -> Vec<StaticKey> {
        self.static_errors().filter_map(static_key).collect()
    }

    /// The notes the workers of `bridge` keep about its port `port`.
    fn port_notes(&self, bridge: &str, port: &str) -> Vec<String> {
        let (Some(b), Ok(id)) = (self.bridges.get(bridge), self.port_id(bridge, port)) else {
            return Vec::new();
        };
        let mut notes: Vec<String> =
            b.dp.snapshot(false, WORKER_TIMEOUT)
                .unwrap_or_default()
                .into_iter()
                .flat_map(|w| w.stats.notes)
                .filter(|n| n.port == id)
                .map(|n| n.text)
                .collect();
        notes.dedup();
        notes
    }

    /// (bridge, port) of every port whose I/O is open.
    fn up_ports(&self) -> Vec<(String, String)> {
        self.bridges
            .iter()
            .flat_map(|(b, br)| {
                br.ports
                    .iter()
                    .filter(|(_, st)| st.io.is_ok())
                    .map(move |(p, _)| (b.clone(), p.clone()))
            })
            .collect()
    }

    fn bridge(&self, name: &str) -> Result<&Bridge, ErrorReply> {
        self.bridges
            .get(name)
            .ok_or_else(|| not_found(format!("no bridge {name}")))
    }

    fn port_id(&self, bridge: &str, port: &str) -> Result<PortId, ErrorReply> {
        self.bridge(bridge)?
            .ports
            .get(port)
            .map(|s| s.id)
            .ok_or_else(|| not_found(format!("bridge {bridge}: no port {port}")))
    }

    /// Resolves the optional port and MAC of an FDB filter.
    fn fdb_filter(
        &self,
        bridge: &str,
        port: Option<&str>,
        mac: Option<&str>,
    ) -> Result<(Option<PortId>, Option<MacAddr>), ErrorReply> {
        let port_id = port.map(|p| self.port_id(bridge, p)).transpose()?;
        let mac = mac.map(parse_mac).transpose()?;
        Ok((port_id, mac))
    }

    fn port_name(&self, bridge: &str, id: PortId) -> String {
        self.bridges
            .get(bridge)
            .and_then(|b| {
                b.ports
                    .iter()
                    .find(|(_, s)| s.id == id)
                    .map(|(n, _)| n.clone())
            })
            .unwrap_or_else(|| format!("#{id}"))
    }

    /// Handles one request.
    pub fn handle(&mut self, req: Request) -> Reply {
        req.check_fdb_vlan().map_err(|e| usage(e.to_string()))?;
        match req {
            Request::AddBr { bridge, may_exist } => {
                if self.config.bridge(&bridge).is_some() {
                    return if may_exist {
                        done(format!("bridge {bridge} exists"))
                    } else {
                        Err(ErrorReply::new(
                            ErrorCode::Exists,
                            format!("bridge {bridge} already exists"),
                        ))
                    };
                }
                let mut c = self.config.clone();
                c.bridges.push(BridgeConfig {
                    name: bridge.clone(),
                    ports: Vec::new(),
                    static_macs: Vec::new(),
                });
                self.change(c, format!("bridge {bridge} added"))
            }
            Request::DelBr { bridge, if_exists } => {
                if self.config.bridge(&bridge).is_none() {
                    return if if_exists {
                        done(format!("no bridge {bridge}"))
                    } else {
                        Err(not_found(format!("no bridge {bridge}")))
                    };
                }
                let mut c = self.config.clone();
                c.bridges.retain(|b| b.name != bridge);
                self.change(c, format!("bridge {bridge} deleted"))
            }
            Request::AddPort {
                bridge,
                port,
                may_exist,
            } => {
                let Some(b) = self.config.bridge(&bridge) else {
                    return Err(not_found(format!("no bridge {bridge}")));
                };
                if b.ports.iter().any(|p| p.name == port.name) {
                    return if may_exist {
                        done(format!("port {} exists", port.name))
                    } else {
                        Err(ErrorReply::new(
                            ErrorCode::Exists,
                            format!("bridge {bridge}: port {} already exists", port.name),
                        ))
                    };
                }
                let name = port.name.clone();
                let mut c = self.config.clone();
                if let Some(b) = c.bridge_mut(&bridge) {
                    b.ports.push(port);
                }
                self.change(c, format!("port {name} added to {bridge}"))?;
                // What the port's worker noted about it at once (e.g. an AF_XDP port whose
                // veth peer sends partial checksums) is said here, not only in `pmd show`.
                let mut message = format!("port {name} added to {bridge}");
                for n in self.port_notes(&bridge, &name) {
                    message.push_str("\nwarning: ");
                    message.push_str(&n);
                }
                done(message)
            }
            Request::DelPort {
                bridge,
                port,
                if_exists,
            } => {
                let Some(b) = self.config.bridge(&bridge) else {
                    return Err(not_found(format!("no bridge {bridge}")));
                };
                if !b.ports.iter().any(|p| p.name == port) {
                    return if if_exists {
                        done(format!("no port {port}"))
                    } else {
                        Err(not_found(format!("bridge {bridge}: no port {port}")))
                    };
                }
                let mut c = self.config.clone();
                if let Some(b) = c.bridge_mut(&bridge) {
                    b.ports.retain(|p| p.name != port);
                    b.static_macs.retain(|s| s.port != port);
                }
                self.change(c, format!("port {port} deleted from {bridge}"))
            }
            Request::SetPort {
                bridge,
                port,
                vlan,
                mtu,
                isolated,
                flood_unknown,
                flood_multicast,
                flood_broadcast,
            } => {
                let mut c = self.config.clone();
                let Some(b) = c.bridge_mut(&bridge) else {
                    return Err(not_found(format!("no bridge {bridge}")));
                };
                let Some(p) = b.ports.iter_mut().find(|p| p.name == port) else {
                    return Err(not_found(format!("bridge {bridge}: no port {port}")));
                };
                if let Some(v) = vlan {
                    let mode: PortVlan =
                        v.parse().map_err(|e| usage(format!("port {port}: {e}")))?;
                    p.set_vlan(&mode);
                }
                if let Some(m) = mtu {
                    p.mtu = Some(m);
                }
                if let Some(v) = isolated {
                    p.isolated = v;
                }
                if let Some(v) = flood_unknown {
                    p.flood_unknown = v;
                }
                if let Some(v) = flood_multicast {
                    p.flood_multicast = v;
                }
                if let Some(v) = flood_broadcast {
                    p.flood_broadcast = v;
                }
                self.change(c, String::new())?;
                // The mode as validated and running now.
                let shown = self
                    .valid
                    .bridges
                    .get(&bridge)
                    .and_then(|b| b.ports.get(&port))
                    .map(|c| c.vlan.to_string())
                    .unwrap_or_default();
                done(format!("port {port}: {shown}"))
            }
            Request::Show {} => Ok(Response::Show {
                bridges: self.show(),
            }),
            Request::PortStats { bridge, port } => self.port_stats(bridge, port),
            Request::FdbShow {
                bridge,
                port,
                vlan,
                mac,
            } => {
                let (port_id, mac) = self.fdb_filter(&bridge, port.as_deref(), mac.as_deref())?;
                let b = self.bridge(&bridge)?;
                let snaps =
                    b.dp.snapshot(true, WORKER_TIMEOUT)
                        .map_err(|e| failed(e.to_string()))?;
                let entries = merge_fdb(&snaps)
                    .into_iter()
                    .filter(|e| port_id.is_none_or(|p| p == e.port))
                    .filter(|e| vlan.is_none_or(|v| v == e.vid))
                    .filter(|e| mac.is_none_or(|m| m == e.mac))
                    .map(|e| FdbEntryView {
                        vlan: e.vid,
                        mac: e.mac,
                        port: self.port_name(&bridge, e.port),
                        is_static: e.is_static,
                        age: e.age,
                    })
                    .collect();
                Ok(Response::Fdb { entries })
            }
            Request::FdbAdd {
                bridge,
                vlan,
                mac,
                port,
            } => {
                self.port_id(&bridge, &port)?;
                let mac: MacAddr = mac.parse().map_err(|e| usage(format!("static MAC: {e}")))?;
                let s = StaticMac { vlan, mac, port };
                let (vid, m) = s.parsed(&bridge).map_err(|e| usage(e.to_string()))?;
                let mut c = self.config.clone();
                if let Some(b) = c.bridge_mut(&bridge) {
                    b.static_macs
                        .retain(|x| !(x.vlan == vid.get() && x.mac == m));
                    b.static_macs.push(s);
                }
                self.change(c, format!("static {m} vlan {vid} added"))
            }
            Request::FdbDel { bridge, vlan, mac } => {
                let b = self.bridge(&bridge)?;
                let m = parse_mac(&mac)?;
                let in_config = self
                    .config
                    .bridge(&bridge)
                    .is_some_and(|b| b.static_macs.iter().any(|s| s.vlan == vlan && s.mac == m));
                if in_config {
                    let mut c = self.config.clone();
                    if let Some(b) = c.bridge_mut(&bridge) {
                        b.static_macs.retain(|s| !(s.vlan == vlan && s.mac == m));
                    }
                    self.change(c, format!("static {m} vlan {vlan} deleted"))
                } else {
                    b.dp.fdb(FdbOp::Remove { vid: vlan, mac: m }, WORKER_TIMEOUT)
                        .map_err(|e| failed(e.to_string()))?;
                    done(format!("{m} vlan {vlan} deleted"))
                }
            }
            Request::FdbFlush {
                bridge,
                port,
                vlan,
                mac,
            } => {
                let (port_id, mac) = self.fdb_filter(&bridge, port.as_deref(), mac.as_deref())?;
                let b = self.bridge(&bridge)?;
                b.dp.fdb(
                    FdbOp::Flush(Flush {
                        port: port_id,
                        vid: vlan,
                        mac,
                        include_static: false,
                    }),
                    WORKER_TIMEOUT,
                )
                .map_err(|e| failed(e.to_string()))?;
                done("dynamic entries flushed")
            }
            Request::FdbStats { bridge } => {
                let b = self.bridge(&bridge)?;
                let snaps =
                    b.dp.snapshot(true, WORKER_TIMEOUT)
                        .map_err(|e| failed(e.to_string()))?;
                let merged = merge_fdb(&snaps);
                let mut s = FdbStatsView {
                    entries: merged.len() as u64,
                    static_entries: merged.iter().filter(|e| e.is_static).count() as u64,
                    learned: 0,
                    expired: 0,
                    evicted: 0,
                    moved: 0,
                    learn_limit: 0,
                    static_move_blocked: 0,
                    static_removed: 0,
                    capacity: self.config.fdb.capacity,
                    aging_secs: self.config.fdb.aging_secs,
                };
                for w in &snaps {
                    s.learned += w.fdb.learned;
                    s.expired += w.fdb.expired;
                    s.evicted += w.fdb.evicted;
                    s.moved += w.fdb.moved;
                    s.learn_limit += w.fdb.learn_limit;
                    s.static_move_blocked += w.fdb.static_move_blocked;
                    s.static_removed = s.static_removed.max(w.fdb.static_removed);
                }
                Ok(Response::FdbStats { stats: s })
            }
            Request::PmdShow {} => self.pmd_show(),
            Request::PmdSetCpus { cpus } => {
                let mut c = self.config.clone();
                c.datapath.cpus = cpus;
                self.change(c, "PMD CPUs set".into())
            }
            Request::PmdSetPollMode {
                mode,
                adaptive_window_us,
            } => {
                let mut c = self.config.clone();
                c.datapath.poll_mode = mode;
                if let Some(w) = adaptive_window_us {
                    c.datapath.adaptive_window_us = w;
                }
                let p = c.datapath.poll();
                let what = match mode {
                    PollMode::Adaptive => format!(
                        "poll mode {mode} (window {} us)",
                        p.adaptive_window.as_micros()
                    ),
                    _ => format!("poll mode {mode}"),
                };
                if c.datapath == self.config.datapath {
                    return done(format!("{what} already set"));
                }
                self.change(c, format!("{what} set"))
            }
            Request::PmdSetFastPath { enabled } => {
                let state = if enabled { "on" } else { "off" };
                if self.config.datapath.xdp_fast_path == enabled {
                    let unavailable: Vec<String> = self
                        .bridges
                        .iter()
                        .filter_map(|(n, b)| {
                            b.xdp_error.as_ref().map(|e| format!("bridge {n}: {e}"))
                        })
                        .collect();
                    if enabled && !unavailable.is_empty() {
                        return Err(failed(format!(
                            "XDP fast path is on but unavailable on {}; set it off and on \
                             again to retry",
                            unavailable.join(", ")
                        )));
                    }
                    return done(format!("XDP fast path already {state}"));
                }
                let mut c = self.config.clone();
                c.datapath.xdp_fast_path = enabled;
                let n = c.bridges.len();
                self.change(
                    c,
                    format!("XDP fast path {state} ({n} bridge(s) restarted)"),
                )
            }
            Request::Trace {
                bridge,
                port,
                frame,
            } => self.trace(&bridge, &port, &frame),
            Request::Reload {} => {
                let problems = self.reload()?;
                if problems.is_empty() {
                    done("configuration reloaded")
                } else {
                    done(format!(
                        "configuration reloaded; {}",
                        join_problems(&problems)
                    ))
                }
            }
        }
    }

    fn show(&self) -> Vec<BridgeView> {
        self.bridges
            .iter()
            .map(|(name, b)| {
                // Receive queues the workers gave up on (device deleted underneath).
                let failed: Vec<(PortId, u32, String)> =
                    b.dp.snapshot(false, WORKER_TIMEOUT)
                        .map(|snaps| snaps.into_iter().flat_map(|w| w.stats.failed).collect())
                        .unwrap_or_default();
                (name, b, failed)
            })
            .map(|(name, b, failed)| BridgeView {
                name: name.clone(),
                ports: b
                    .ports
                    .iter()
                    .map(|(pname, st)| PortView {
                        name: pname.clone(),
                        id: st.id.index(),
                        kind: st.spec.kind.to_string(),
                        backend: st
                            .io
                            .as_ref()
                            .map(|i| i.backend.to_string())
                            .unwrap_or_default(),
                        interface: st.spec.interface().to_string(),
                        vlan: st.config.vlan.to_string(),
                        mtu: st.spec.mtu.unwrap_or(datapath::topology::DEFAULT_MTU),
                        queues: st.spec.queues,
                        xdp_mode: st
                            .io
                            .as_ref()
                            .map(|i| i.xdp_mode.clone())
                            .unwrap_or_default(),
                        fast_path: st.io.as_ref().is_ok_and(|i| i.fast_path),
                        worker: b.dp.owner(st.id),
                        state: match (&st.io, failed.iter().find(|f| f.0 == st.id)) {
                            (Err(e), _) => format!("down: {e}"),
                            (Ok(_), Some((_, q, e))) => format!("down: queue {q}: {e}"),
                            (Ok(_), None) => "up".into(),
                        },
                        isolated: st.spec.isolated,
                        no_flood: [
                            ("unknown", st.spec.flood_unknown),
                            ("multicast", st.spec.flood_multicast),
                            ("broadcast", st.spec.flood_broadcast),
                        ]
                        .into_iter()
                        .filter(|(_, on)| !on)
                        .map(|(k, _)| k.to_string())
                        .collect(),
                        owner: st.spec.owner.clone(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// Per-port counters, summed over workers, for one or all bridges.
    pub fn port_stats(&self, bridge: Option<String>, port: Option<String>) -> Reply {
        let mut out = Vec::new();
        let names: Vec<String> = match &bridge {
            Some(b) => {
                self.bridge(b)?;
                vec![b.clone()]
            }
            None => self.bridges.keys().cloned().collect(),
        };
        for bname in names {
            let b = self.bridge(&bname)?;
            if let Some(p) = &port {
                self.port_id(&bname, p)?;
            }
            let snaps =
                b.dp.snapshot(false, WORKER_TIMEOUT)
                    .map_err(|e| failed(e.to_string()))?;
            for (id, c) in sum_counters(&snaps) {
                let pname = self.port_name(&bname, id);
                if port.as_ref().is_some_and(|p| *p != pname) {
                    continue;
                }
                out.push(PortStatsView {
                    bridge: bname.clone(),
                    port: pname,
                    rx_packets: c.rx_packets,
                    rx_bytes: c.rx_bytes,
                    tx_packets: c.tx_packets,
                    tx_bytes: c.tx_bytes,
                    rx_flooded: c.rx_flooded,
                    drops: c
                        .drop_counts()
                        .map(|(r, n)| (r.name().to_string(), n))
                        .collect(),
                });
            }
        }
        Ok(Response::PortStats { ports: out })
    }

    fn pmd_show(&self) -> Reply {
        let mut workers = Vec::new();
        for (bname, b) in &self.bridges {
            let snaps =
                b.dp.snapshot(false, WORKER_TIMEOUT)
                    .map_err(|e| failed(e.to_string()))?;
            let mirror = b.xdp.as_ref().map(|p| p.0.stats()).unwrap_or_default();
            for s in snaps {
                let st = &s.stats;
                workers.push(PmdView {
                    bridge: bname.clone(),
                    worker: st.id,
                    cpu: st.cpu,
                    packets: st.packets,
                    bursts: st.bursts,
                    avg_burst: st.avg_burst(),
                    busy_ratio: st.busy_ratio(),
                    rx_queues: st
                        .rx_queues
                        .iter()
                        .map(|(p, q)| format!("{}:{q}", self.port_name(bname, *p)))
                        .collect(),
                    tx_ports: st
                        .tx_ports
                        .iter()
                        .map(|p| self.port_name(bname, *p))
                        .collect(),
                    handoff_out: st.handoff_out,
                    handoff_in: st.handoff_in,
                    fdb_updates_sent: st.fdb_updates_sent,
                    fdb_updates_dropped: st.fdb_updates_dropped,
                    handoff_full: st.handoff_full,
                    lane_waits: st.lane_waits,
                    idle_waits: st.idle_waits,
                    poll_mode: st.poll_mode,
                    shares_cpu: st.shares_cpu,
                    xdp_fast_path: b.xdp.is_some() && self.config.datapath.xdp_fast_path,
                    xdp_fast_path_error: b
                        .xdp_error
                        .as_ref()
                        .map(ToString::to_string)
                        .filter(|_| self.config.datapath.xdp_fast_path),
                    packet_fast_path: b.xdp.is_some() && self.config.datapath.packet_fast_path,
                    xdp_fdb_entries: mirror.entries as u64,
                    xdp_map_errors: mirror.map_errors,
                    xdp_mirror_dropped: st.mirror_dropped,
                    notes: st.notes.iter().map(|n| n.text.clone()).collect(),
                });
            }
        }
        Ok(Response::Pmd {
            workers,
            xdp_fast_path: self.config.datapath.xdp_fast_path,
            poll_mode: self.config.datapath.poll_mode,
            adaptive_window_us: self.config.datapath.adaptive_window_us,
        })
    }

    fn trace(&self, bridge: &str, port: &str, frame: &str) -> Reply {
        let id = self.port_id(bridge, port)?;
        let bytes = crate::frame_spec::parse(frame).map_err(|e| usage(e.to_string()))?;
        let b = self.bridge(bridge)?;
        let snaps =
            b.dp.snapshot(true, WORKER_TIMEOUT)
                .map_err(|e| failed(e.to_string()))?;
        let entries = merge_fdb(&snaps);
        let topo = b.dp.topology();
        let fdb = FdbConfig {
            capacity: self.config.fdb.capacity,
            aging_secs: self.config.fdb.aging_secs,
        };
        let t = datapath::trace::trace(&topo, &entries, fdb, id, &bytes, 0);
        let drop = match t.verdict {
            datapath::pipeline::Verdict::Drop(r) => Some(r.name().to_string()),
            _ => None,
        };
        Ok(Response::Trace {
            trace: TraceView {
                bridge: bridge.to_string(),
                ingress: port.to_string(),
                steps: t.steps,
                egress: t
                    .egress
                    .iter()
                    .map(|(p, e)| TraceEgress {
                        port: self.port_name(bridge, *p),
                        tag: match e {
                            datapath::wire::Edit::Keep | datapath::wire::Edit::Pop => {
                                "untagged".into()
                            }
                            datapath::wire::Edit::Push(t) | datapath::wire::Edit::SetTci(t) => {
                                format!("vlan {} pcp {}", t.vid(), t.pcp())
                            }
                        },
                    })
                    .collect(),
                drop,
            },
        })
    }

    /// Stops every bridge (workers drained, XDP programs detached).
    pub fn shutdown(&mut self) {
        for (_, b) in std::mem::take(&mut self.bridges) {
            b.dp.stop();
        }
    }

    /// Receive queues the workers stopped polling because their port failed:
    /// (bridge, port, error).
    pub fn failed_ports(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for (bname, b) in &self.bridges {
            let Ok(snaps) = b.dp.snapshot(false, WORKER_TIMEOUT) else {
                continue;
            };
            for s in snaps {
                for (p, q, e) in s.stats.failed {
                    out.push((
                        bname.clone(),
                        self.port_name(bname, p),
                        format!("queue {q}: {e}"),
                    ));
                }
            }
        }
        out
    }

    /// The workers' notes in effect now (e.g. threaded NAPI could not be set up for a
    /// fast-path port, frames to a veth whose peer has GRO off go through the workers),
    /// per bridge; `None` for a bridge whose workers did not answer in time.
    pub fn worker_notes(&self) -> Vec<(String, Option<Vec<String>>)> {
        self.bridges
            .iter()
            .map(|(bname, b)| {
                let notes = b.dp.snapshot(false, WORKER_TIMEOUT).ok().map(|snaps| {
                    snaps
                        .into_iter()
                        .flat_map(|s| s.stats.notes)
                        .map(|n| n.text)
                        .collect()
                });
                (bname.clone(), notes)
            })
            .collect()
    }

    /// Datapath handles for metrics.
    pub fn bridges(&self) -> impl Iterator<Item = (&str, &Datapath)> {
        self.bridges.iter().map(|(n, b)| (n.as_str(), &b.dp))
    }

    /// Port name of `id` in `bridge` (for metrics labels).
    pub fn port_label(&self, bridge: &str, id: PortId) -> String {
        self.port_name(bridge, id)
    }
}

/// A static MAC by bridge, VLAN and MAC.
type StaticKey = (String, u16, MacAddr);

/// The static MAC a [`Problem::StaticRefused`] is about.
fn static_key(p: &Problem) -> Option<StaticKey> {
    match p {
        Problem::StaticRefused {
            bridge, mac, vid, ..
        } => Some((bridge.clone(), *vid, *mac)),
        _ => None,
    }
}

fn parse_mac(m: &str) -> Result<MacAddr, ErrorReply> {
    m.parse()
        .map_err(|e: datapath::wire::MacParseError| usage(e.to_string()))
}

/// Keeps generations increasing across rebuilt topologies.
fn rebuild_generation(b: TopologyBuilder, dp: &Datapath) -> Topology {
    b.succeeding(&dp.topology()).build()
}
