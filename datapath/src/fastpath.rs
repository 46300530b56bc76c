//! vswitch's XDP program as the ports and the workers see it, and the XDP fast path.
//!
//! Every AF_XDP port runs vswitch's own XDP program (`datapath/bpf/vswitch_xdp.c`): it
//! drops frames longer than the port's AF_XDP frames (counted, reported `mtu_exceeded`)
//! and hands the rest to the port's sockets; a frame on a queue without one is dropped
//! (counted, reported `no_socket`), never passed to the host stack. One [`XdpProgram`] is shared by all AF_XDP
//! ports of a switch; a port opened without one gets a private instance.
//!
//! With the fast path on ([`XdpProgram::new`] with `fast = true`), the program also
//! forwards *known unicast between AF_XDP ports* in the kernel (XDP_REDIRECT through a
//! devmap), pushing or popping the 802.1Q tag exactly as the pipeline does, so such frames
//! never cross into userspace: no copy into the UMEM, no AF_XDP transmit. It does so only
//! when the source is already learned on the ingress port and the destination is learned
//! on another fast-path port of the same VLAN, up, not both isolated, within the egress
//! MTU; everything else (floods, new or moved sources, drops of any kind) still goes to
//! the workers, which apply every rule and count every drop. So the forwarding decisions
//! are the pipeline's; the program only caches the unicast ones.
//!
//! **Packet ports** ([`XdpProgram::register_packet`]) have a fast path of their own in
//! the same object, sharing its port table, FDB mirror and counters: frames of a packet
//! port are skbs (a pod's 64 KiB TSO superframes with partial checksums), so instead of
//! XDP the port's AF_PACKET socket gets an eBPF socket filter (`vswitch_filter`) that
//! decides exactly as the XDP program does, and the device's tcx ingress gets
//! `vswitch_ingress`, which applies the decision: the tag pushed or popped
//! (`bpf_skb_vlan_push/pop`) and the skb redirected to the egress device whole, in the
//! sender's softirq, as the Linux bridge forwards; a frame the filter gave the socket is
//! dropped there (the switch owns its ports' frames, as a bridge does). The filter runs
//! when the kernel delivers the frame to its packet taps, right before ingress, on the
//! same CPU, so the decision is handed over in a per-CPU slot that names the device and
//! length it is for and is cleared when used: each frame is decided once, never both
//! forwarded and queued to the socket. The XDP program never redirects into a packet
//! port (a veth's peer would need GRO for XDP frames); the tc path may redirect to any
//! fast-path port, AF_XDP ports included, since an skb needs nothing of the egress
//! device.
//!
//! The program's FDB is a *mirror* of the workers' tables, written only here:
//! - workers publish what they learn, move or refresh (at most once a second per entry)
//!   on lock-free queues ([`Mirror::queue`]); a mirror thread applies them every
//!   millisecond while updates flow (every 10 ms when idle), writing only entries whose
//!   port changed;
//! - static entries and flushes from the control plane are applied synchronously
//!   ([`XdpProgram::fdb_op`]); topology changes rewrite the port table and drop the
//!   entries of ports whose configuration changed ([`XdpProgram::sync_topology`]);
//! - aging: an entry expires when neither the program (a fast-path frame from it) nor a
//!   worker (a published refresh) has seen its source for the aging time. So that the
//!   workers' own tables keep fast-path sources alive, the program sends one frame per
//!   source to userspace every quarter of the aging time.
//!
//! A missed or late mirror update never misforwards for longer than the update takes: a
//! source not (yet) in the mirror, or seen on another port than its mirrored one, goes
//! to userspace, and userspace's learning reaches the mirror within 10 ms.
//!
//! Requirements of XDP_REDIRECT on the egress device: a NIC driver with `ndo_xdp_xmit`; a
//! tap device; or a veth whose peer is up and has an XDP program or GRO enabled
//! (`ethtool -K PEER gro on`). The kernel refuses frames redirected to a veth whose peer
//! has neither, and counts them nowhere, so each AF_XDP veth port watches its peer about
//! once a second (`port::afxdp`'s egress watch) and tells the program
//! ([`XdpProgram::set_redirect_ok`]): frames to a port whose peer does not qualify go to
//! the workers instead, with a worker note saying why. The ones refused before the watch
//! noticed are counted as the port's `redirect_refused` by a tracing program in the same
//! object (`vswitch_redirect_refused`, attached with the fast path). Known limitation: a frame sent to userspace to
//! refresh its source (once per source per quarter aging time) can be overtaken by the
//! next frame of the same flow, which takes the fast path.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::queue::ArrayQueue;

use crate::fdb::{FdbUpdate, Flush};
use crate::sys::afpacket::VnetSocket;
use crate::sys::bpf::{
    self, Conf, FdbKey, FdbVal, PortCfg, PortStats, TcxLink, XdpObject, FDB_STATIC, PORT_FAST,
    PORT_ISOLATED, PORT_NO_REDIRECT, PORT_SKB, PORT_UP,
};
use crate::topology::{PortId, Topology};
use crate::wire::{MacAddr, Tci};
use crate::worker::FdbOp;

/// Default aging time of the mirror until the datapath sets its own.
const DEFAULT_AGING_SECS: u64 = 300;

#[derive(Debug, Clone)]
struct Reg {
    /// The program's slot for this port (its counters and socket keys).
    slot: u16,
    /// The switch port it serves, once the datapath attached it ([`XdpProgram::bind`]).
    port: Option<PortId>,
    max_rx: u32,
    queues: Vec<u32>,
    /// Frames redirected into the port's device arrive (see `register`).
    redirect_ok: bool,
    /// A packet port (AF_PACKET socket), forwarded by the socket filter and tcx ingress
    /// programs instead of XDP ([`XdpProgram::register_packet`]).
    packet: bool,
}

#[derive(Debug, Clone, Copy)]
struct Mirrored {
    ifindex: u32,
    port: u16,
    is_static: bool,
    /// Last time a worker published this entry (monotonic ns).
    heard_ns: u64,
}

#[derive(Debug, Default)]
struct State {
    /// Registered AF_XDP ports by ifindex.
    ports: HashMap<u32, Reg>,
    topo: Option<Arc<Topology>>,
    entries: HashMap<FdbKey, Mirrored>,
    aging_ns: u64,
    /// Counters of errors writing the program's maps (kept, reported by `stats`).
    map_errors: u64,
    dump: Vec<(FdbKey, FdbVal)>,
}

/// A packet port on the fast path ([`XdpProgram::register_packet`]); dropping it takes
/// the port off.
#[derive(Debug)]
pub struct PacketAttachment {
    program: Arc<XdpProgram>,
    ifindex: u32,
    slot: u16,
    link: Option<TcxLink>,
}

impl PacketAttachment {
    /// What the fast path forwarded from and to the port.
    pub fn stats(&self) -> io::Result<PortStats> {
        self.program.port_stats(self.slot)
    }

    /// The port serves switch port `port` (see [`XdpProgram::bind`]).
    pub fn bind(&self, port: PortId) {
        self.program.bind(self.ifindex, port);
    }
}

impl Drop for PacketAttachment {
    fn drop(&mut self) {
        // The ingress program first (a frame the filter decided is then left to the
        // kernel, never applied to a later frame), then the port's configuration.
        drop(self.link.take());
        self.program.unregister(self.ifindex);
    }
}

/// What the mirror did, for the control plane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MirrorStats {
    /// Entries in the program's FDB.
    pub entries: usize,
    /// Registered AF_XDP ports.
    pub ports: usize,
    /// Map writes that failed (the affected frames keep going through userspace).
    pub map_errors: u64,
}

/// vswitch's XDP program shared by the AF_XDP ports of one switch.
#[derive(Debug)]
pub struct XdpProgram {
    obj: XdpObject,
    fast: bool,
    state: Mutex<State>,
}

fn now_ns() -> u64 {
    bpf::monotonic_ns()
}

/// The program's FDB key: the VLAN's low 12 bits, as the workers' [`crate::fdb::Fdb`] keys
/// it, so that an operation names the same entry in both (a VID above 4095 from the
/// control plane must not remove one entry from the workers and another, or none, here).
fn key(vid: u16, mac: MacAddr) -> FdbKey {
    FdbKey {
        mac: mac.0,
        vid: vid & 0x0fff,
    }
}

fn set_bit(set: &mut [u64; 64], vid: u16) {
    set[usize::from(vid >> 6)] |= 1u64 << (vid & 63);
}

impl XdpProgram {
    /// Loads the program; `fast` enables the fast path; `fdb_capacity` sizes its FDB.
    pub fn new(fast: bool, fdb_capacity: usize) -> io::Result<Arc<XdpProgram>> {
        let entries = if fast {
            u32::try_from(fdb_capacity.max(1)).unwrap_or(u32::MAX)
        } else {
            1
        };
        let obj = XdpObject::load(entries, fast)?;
        let p = XdpProgram {
            obj,
            fast,
            state: Mutex::new(State {
                aging_ns: DEFAULT_AGING_SECS * 1_000_000_000,
                ..State::default()
            }),
        };
        p.write_conf(&p.lock())?;
        Ok(Arc::new(p))
    }

    /// Whether the fast path is on.
    pub fn fast(&self) -> bool {
        self.fast
    }

    /// Kernel id of the program.
    pub fn prog_id(&self) -> u32 {
        self.obj.prog_id()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data; keep going with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write_conf(&self, st: &State) -> io::Result<()> {
        let refresh_ns = if self.fast { st.aging_ns / 4 } else { 0 };
        self.obj.set_conf(&Conf { refresh_ns })
    }

    fn port_cfg(&self, st: &State, reg: &Reg) -> PortCfg {
        let mut c = PortCfg {
            index: reg.slot,
            max_rx: reg.max_rx,
            ..PortCfg::default()
        };
        let Some(topo) = &st.topo else { return c };
        let Some(id) = reg.port else { return c };
        let Some(pc) = topo.port(id) else { return c };
        if self.fast {
            c.flags |= PORT_FAST;
        }
        if pc.up {
            c.flags |= PORT_UP;
        }
        if pc.isolated {
            c.flags |= PORT_ISOLATED;
        }
        if !reg.redirect_ok {
            c.flags |= PORT_NO_REDIRECT;
        }
        if reg.packet {
            c.flags |= PORT_SKB;
        }
        c.mtu = pc.mtu;
        c.in_vid = pc.vlan.classify(None).map(|k| k.vid).unwrap_or(0);
        c.out_untagged_vid = pc.vlan.untagged_vid().map(|v| v.get()).unwrap_or(0);
        for vid in 1..4095u16 {
            if pc.vlan.classify(Some(Tci(vid))).is_ok() {
                set_bit(&mut c.in_tagged, vid);
            }
            if pc.vlan.is_member(vid) {
                set_bit(&mut c.members, vid);
            }
        }
        c
    }

    /// Registers the AF_XDP port on `ifindex` whose frames hold `max_rx` bytes, before
    /// the program is attached to it; returns the port's slot in the program. Without
    /// `redirect_ok` (the kernel would drop frames redirected into the device, e.g. a veth
    /// whose peer has no NAPI) the fast path forwards from the port but never to it:
    /// those frames go to the workers, which transmit them through the AF_XDP socket.
    pub fn register(&self, ifindex: u32, max_rx: u32, redirect_ok: bool) -> io::Result<u16> {
        self.add_port(ifindex, max_rx, redirect_ok, false)
    }

    /// Puts the packet port on `ifindex`, served by the AF_PACKET socket `sock`, on the
    /// fast path (which must be on): its frames that are known unicast to another
    /// fast-path port are forwarded by the kernel (the socket filter decides, the tcx
    /// ingress program redirects, see `bpf/vswitch_xdp.c`), GSO superframes whole; the
    /// rest reach the socket as before. Dropping the returned attachment takes the port
    /// off again.
    pub fn register_packet(
        self: &Arc<Self>,
        ifindex: u32,
        sock: &VnetSocket,
    ) -> io::Result<PacketAttachment> {
        let filter = self
            .obj
            .filter_fd()
            .ok_or_else(|| io::Error::other("the fast path is off"))?;
        let slot = self.add_port(ifindex, u32::MAX, true, true)?;
        let mut att = PacketAttachment {
            program: self.clone(),
            ifindex,
            slot,
            link: None,
        };
        // The ingress program first: until the filter runs it finds no verdict and leaves
        // frames alone, so no frame is lost in between. On error `att` undoes it all.
        att.link = Some(self.obj.attach_ingress(ifindex)?);
        sock.attach_filter(filter)?;
        Ok(att)
    }

    fn add_port(
        &self,
        ifindex: u32,
        max_rx: u32,
        redirect_ok: bool,
        packet: bool,
    ) -> io::Result<u16> {
        let mut st = self.lock();
        if st.ports.contains_key(&ifindex) {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        let slot = (0..bpf::MAX_PORTS)
            .find(|s| !st.ports.values().any(|r| u32::from(r.slot) == *s))
            .ok_or_else(|| io::Error::other("XDP program has no free port slot"))?
            as u16;
        let reg = Reg {
            slot,
            port: None,
            max_rx,
            queues: Vec::new(),
            redirect_ok,
            packet,
        };
        let cfg = self.port_cfg(&st, &reg);
        self.obj.reset_port_stats(slot)?;
        self.obj.set_port(slot, ifindex, &cfg)?;
        if self.fast && !packet {
            self.obj.set_dev(slot, ifindex)?;
        }
        st.ports.insert(ifindex, reg);
        Ok(slot)
    }

    /// Records that the port on `ifindex` serves switch port `port` (when the datapath
    /// attaches it); from then on the fast path forwards from and to it.
    pub fn bind(&self, ifindex: u32, port: PortId) {
        let mut st = self.lock();
        let Some(reg) = st.ports.get_mut(&ifindex) else {
            return;
        };
        reg.port = Some(port);
        let reg = reg.clone();
        let cfg = self.port_cfg(&st, &reg);
        if self.obj.set_port(reg.slot, ifindex, &cfg).is_err() {
            st.map_errors += 1;
        }
    }

    /// Changes whether the fast path may redirect frames into the port on `ifindex` (see
    /// [`XdpProgram::register`]), e.g. after its veth peer turned GRO on or off. Frames in
    /// flight are unaffected: the program reads the flag per frame.
    pub fn set_redirect_ok(&self, ifindex: u32, ok: bool) -> io::Result<()> {
        let mut st = self.lock();
        let Some(reg) = st.ports.get_mut(&ifindex) else {
            return Err(io::Error::other("port not registered with the XDP program"));
        };
        if reg.redirect_ok == ok {
            return Ok(());
        }
        reg.redirect_ok = ok;
        let reg = reg.clone();
        let cfg = self.port_cfg(&st, &reg);
        self.obj.set_port(reg.slot, ifindex, &cfg)
    }

    /// Attaches the program to `ifindex` (`XDP_FLAGS_*`; 0: native if available).
    pub fn attach(&self, ifindex: u32, flags: u32) -> io::Result<()> {
        self.obj.attach(ifindex, flags)
    }

    /// Points (port on `ifindex`, `queue`) at the AF_XDP socket `fd`.
    pub fn set_socket(&self, ifindex: u32, queue: u32, fd: i32) -> io::Result<()> {
        let mut st = self.lock();
        let Some(reg) = st.ports.get_mut(&ifindex) else {
            return Err(io::Error::other("port not registered with the XDP program"));
        };
        if queue >= bpf::MAX_QUEUES {
            return Err(io::Error::other(format!(
                "queue {queue} is above the XDP program's limit of {}",
                bpf::MAX_QUEUES
            )));
        }
        self.obj
            .set_xsk(u32::from(reg.slot) * bpf::MAX_QUEUES + queue, fd)?;
        reg.queues.push(queue);
        Ok(())
    }

    /// Forgets the port on `ifindex` (its sockets, redirect target, configuration and
    /// mirrored FDB entries). Best effort: used on close.
    pub fn unregister(&self, ifindex: u32) {
        let mut st = self.lock();
        let Some(reg) = st.ports.remove(&ifindex) else {
            return;
        };
        for q in &reg.queues {
            let _ = self.obj.del_xsk(u32::from(reg.slot) * bpf::MAX_QUEUES + q);
        }
        let _ = self.obj.del_dev(reg.slot);
        let _ = self.obj.del_port(reg.slot, ifindex);
        self.purge(&mut st, |_, m| m.ifindex == ifindex);
    }

    /// The program's counters for the port in `slot`.
    pub fn port_stats(&self, slot: u16) -> io::Result<PortStats> {
        self.obj.port_stats(slot)
    }

    /// Applies a new topology: the program's configuration of each registered port whose
    /// configuration changed is rewritten (the others are what they were: one port added
    /// to a bridge of 1,000 costs one map write, not 1,000), and mirrored entries of ports
    /// whose configuration changed (or that left) are dropped (the workers' learning puts
    /// back the ones still valid).
    pub fn sync_topology(&self, topo: Arc<Topology>) {
        let mut st = self.lock();
        let old = st.topo.replace(topo.clone());
        let changed = |port: PortId| -> bool {
            let a = old.as_ref().and_then(|t| t.port(port));
            let b = topo.port(port);
            a != b || b.is_none()
        };
        let regs: Vec<(u32, Reg)> = st
            .ports
            .iter()
            .filter(|(_, r)| old.is_none() || r.port.is_some_and(changed))
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        for (ifindex, reg) in &regs {
            let cfg = self.port_cfg(&st, reg);
            if self.obj.set_port(reg.slot, *ifindex, &cfg).is_err() {
                st.map_errors += 1;
            }
        }
        self.purge(&mut st, |_, m| {
            PortId::new(usize::from(m.port)).is_none_or(changed)
        });
    }

    /// Removes the mirrored entries matching `f` from the program and the mirror.
    fn purge(&self, st: &mut State, f: impl Fn(&FdbKey, &Mirrored) -> bool) {
        let doomed: Vec<FdbKey> = st
            .entries
            .iter()
            .filter(|(k, m)| f(k, m))
            .map(|(k, _)| *k)
            .collect();
        for k in doomed {
            st.entries.remove(&k);
            if self.obj.fdb_del(&k).is_err() {
                st.map_errors += 1;
            }
        }
    }

    /// Whether an entry for `port` in `vid` can be used by the fast path: the port's
    /// (ifindex, slot).
    fn eligible(st: &State, port: u16, vid: u16) -> Option<(u32, u16)> {
        let topo = st.topo.as_ref()?;
        let pc = topo.port(PortId::new(usize::from(port))?)?;
        if !pc.vlan.is_member(vid) {
            return None;
        }
        st.ports
            .iter()
            .find(|(_, r)| r.port.is_some_and(|p| p.index() == usize::from(port)))
            .map(|(ifindex, r)| (*ifindex, r.slot))
    }

    fn upsert(&self, st: &mut State, k: FdbKey, port: u16, is_static: bool, now: u64) {
        let Some((ifindex, slot)) = Self::eligible(st, port, k.vid) else {
            // Not (or no longer) on a fast-path port: make sure the program forgets it.
            if st.entries.remove(&k).is_some() && self.obj.fdb_del(&k).is_err() {
                st.map_errors += 1;
            }
            return;
        };
        if let Some(m) = st.entries.get_mut(&k) {
            if m.is_static && !is_static {
                return; // static entries never move
            }
            m.heard_ns = now;
            if m.ifindex == ifindex && m.port == port && m.is_static == is_static {
                return;
            }
        }
        let v = FdbVal {
            ifindex,
            port,
            flags: if is_static { FDB_STATIC } else { 0 },
            slot,
            seen_ns: now,
            refresh_ns: now,
            ..FdbVal::default()
        };
        if self.obj.fdb_set(&k, &v).is_err() {
            st.map_errors += 1;
            st.entries.remove(&k);
            return;
        }
        st.entries.insert(
            k,
            Mirrored {
                ifindex,
                port,
                is_static,
                heard_ns: now,
            },
        );
    }

    /// Applies what workers learned, moved or refreshed.
    pub fn learned(&self, updates: &[FdbUpdate]) {
        if !self.fast || updates.is_empty() {
            return;
        }
        let now = now_ns();
        let mut st = self.lock();
        for u in updates {
            let FdbUpdate::Learned { vid, mac, port, .. } = *u;
            self.upsert(&mut st, key(vid, mac), port.index() as u16, false, now);
        }
    }

    /// Applies a control-plane FDB operation (after the workers did).
    pub fn fdb_op(&self, op: &FdbOp) {
        if !self.fast {
            return;
        }
        let mut st = self.lock();
        match *op {
            FdbOp::AddStatic { vid, mac, port } => {
                let k = key(vid, mac);
                // A static entry replaces whatever was there.
                st.entries.remove(&k);
                self.upsert(&mut st, k, port.index() as u16, true, now_ns());
            }
            FdbOp::Remove { vid, mac } => {
                let k = key(vid, mac);
                st.entries.remove(&k);
                if self.obj.fdb_del(&k).is_err() {
                    st.map_errors += 1;
                }
            }
            FdbOp::Flush(f) => self.purge(&mut st, |k, m| flush_matches(&f, k, m)),
            FdbOp::SetAging(secs) => {
                st.aging_ns = secs.saturating_mul(1_000_000_000);
                if self.write_conf(&st).is_err() {
                    st.map_errors += 1;
                }
            }
        }
    }

    /// Expires dynamic entries nobody has seen for the aging time. Called once a second.
    pub fn age(&self) {
        if !self.fast {
            return;
        }
        let now = now_ns();
        let mut st = self.lock();
        if st.entries.is_empty() {
            return;
        }
        let mut dump = std::mem::take(&mut st.dump);
        if self.obj.fdb_dump(&mut dump).is_err() {
            st.map_errors += 1;
            st.dump = dump;
            return;
        }
        let aging = st.aging_ns;
        let mut doomed = Vec::new();
        for (k, v) in &dump {
            match st.entries.get(k) {
                Some(m) if m.is_static => {}
                Some(m) => {
                    let last = v.seen_ns.max(m.heard_ns);
                    if aging > 0 && now.saturating_sub(last) >= aging {
                        doomed.push(*k);
                    }
                }
                // In the program but not in the mirror: a leftover; remove it.
                None => doomed.push(*k),
            }
        }
        for k in doomed {
            st.entries.remove(&k);
            if self.obj.fdb_del(&k).is_err() {
                st.map_errors += 1;
            }
        }
        st.dump = dump;
    }

    /// Mirror figures.
    pub fn stats(&self) -> MirrorStats {
        let st = self.lock();
        MirrorStats {
            entries: st.entries.len(),
            ports: st.ports.len(),
            map_errors: st.map_errors,
        }
    }

    /// Runs the program on `frame` as received on `ifindex`, `repeat` times, without
    /// transmitting anything ([`XdpObject::test_run`]): its verdict, the frame as it
    /// left it, and the kernel's mean time per run.
    pub fn test_run(&self, ifindex: u32, frame: &[u8], repeat: u32) -> io::Result<bpf::TestRun> {
        self.obj.test_run(ifindex, frame, repeat)
    }

    /// [`XdpProgram::test_run`] on receive queue `queue` of `ifindex`.
    pub fn test_run_on_queue(
        &self,
        ifindex: u32,
        queue: u32,
        frame: &[u8],
        repeat: u32,
    ) -> io::Result<bpf::TestRun> {
        self.obj.test_run_on_queue(ifindex, queue, frame, repeat)
    }

    /// The entry the program holds for (`vid`, `mac`): (ifindex, is_static).
    pub fn lookup(&self, vid: u16, mac: MacAddr) -> io::Result<Option<(u32, bool)>> {
        Ok(self
            .obj
            .fdb_get(&key(vid, mac))?
            .map(|v| (v.ifindex, v.flags & FDB_STATIC != 0)))
    }
}

/// The same predicate as [`crate::fdb::Fdb::flush`].
fn flush_matches(f: &Flush, k: &FdbKey, m: &Mirrored) -> bool {
    (f.include_static || !m.is_static)
        && f.port.is_none_or(|p| p.index() == usize::from(m.port))
        && f.vid.is_none_or(|v| v == k.vid)
        && f.mac.is_none_or(|mac| mac.0 == k.mac)
}

/// The mirror thread: drains the workers' update queues every millisecond (10 ms when
/// idle) into the program, and ages the program's FDB once a second.
#[derive(Debug)]
pub struct Mirror {
    queues: Vec<Arc<ArrayQueue<FdbUpdate>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// Capacity of each worker's mirror queue.
const MIRROR_QUEUE: usize = 8192;
/// Mirror thread period after a pass that moved updates, and after an empty one.
const MIRROR_BUSY: Duration = Duration::from_millis(1);
const MIRROR_IDLE: Duration = Duration::from_millis(10);

impl Mirror {
    /// Starts the mirror thread for `workers` workers.
    pub fn start(program: Arc<XdpProgram>, workers: usize) -> io::Result<Mirror> {
        let queues: Vec<Arc<ArrayQueue<FdbUpdate>>> = (0..workers)
            .map(|_| Arc::new(ArrayQueue::new(MIRROR_QUEUE)))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let (q, s) = (queues.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("vswitch-mirror".into())
            .spawn(move || {
                let mut batch = Vec::with_capacity(1024);
                let mut last_age = Instant::now();
                while !s.load(Ordering::Relaxed) {
                    let mut moved = 0;
                    for queue in &q {
                        while batch.len() < batch.capacity() {
                            match queue.pop() {
                                Some(u) => batch.push(u),
                                None => break,
                            }
                        }
                        moved += batch.len();
                        program.learned(&batch);
                        batch.clear();
                    }
                    if last_age.elapsed() >= Duration::from_secs(1) {
                        program.age();
                        last_age = Instant::now();
                    }
                    // Busy: every millisecond; idle: every 10 (a mirror lagging costs
                    // only slow-path frames, and the thread shares CPUs with workers).
                    std::thread::sleep(if moved > 0 { MIRROR_BUSY } else { MIRROR_IDLE });
                }
            })?;
        Ok(Mirror {
            queues,
            stop,
            handle: Some(handle),
        })
    }

    /// The queue worker `w` publishes its FDB updates on.
    pub fn queue(&self, w: usize) -> Arc<ArrayQueue<FdbUpdate>> {
        self.queues[w].clone()
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::FastPathPair;

    const A: MacAddr = MacAddr([2, 0, 0x5e, 0, 0, 1]);
    const B: MacAddr = MacAddr([2, 0, 0x5e, 0, 0, 2]);

    fn frame(dst: MacAddr, src: MacAddr, vid: Option<u16>) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst.0);
        f.extend_from_slice(&src.0);
        if let Some(v) = vid {
            f.extend_from_slice(&[0x81, 0x00]);
            f.extend_from_slice(&v.to_be_bytes());
        }
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend((0..46u8).map(|i| i.wrapping_mul(7)));
        f
    }

    /// The program's decisions, exactly: a trunk (port 0) and an access-100 port (port 1)
    /// on two real interfaces (the kernel checks the ingress ifindex and the redirect
    /// target), A learned on the trunk and B on the access port.
    #[test]
    fn program_pushes_pops_and_hands_the_rest_to_userspace() {
        if !crate::testutil::root_or_skip("program_pushes_pops_and_hands_the_rest_to_userspace") {
            return;
        }
        let f = FastPathPair::new("fp", A, B);
        let (p, ia, ib) = (&f.program, f.trunk, f.access);

        // trunk -> access: the tag is popped, then redirected.
        let r = p.test_run(ia, &frame(B, A, Some(100)), 1).expect("run");
        assert_eq!(r.action, bpf::XDP_REDIRECT);
        assert_eq!(r.frame, frame(B, A, None));
        // access -> trunk: the tag is pushed.
        let r = p.test_run(ib, &frame(A, B, None), 1).expect("run");
        assert_eq!(r.action, bpf::XDP_REDIRECT);
        assert_eq!(r.frame, frame(A, B, Some(100)));
        // Broadcast, another VLAN, an unknown destination: userspace (no socket in
        // the XSKMAP here, so dropped and counted `no_socket`), frame untouched.
        for (ing, f) in [
            (ia, frame(MacAddr::BROADCAST, A, Some(100))),
            (ia, frame(B, A, Some(200))),
            (ib, frame(MacAddr([2, 0, 0x5e, 0, 0, 9]), B, None)),
            // A source learned on another port (moved): userspace learns it.
            (ib, frame(A, MacAddr([2, 0, 0x5e, 0, 0, 1]), None)),
        ] {
            let r = p.test_run(ing, &f, 1).expect("run");
            assert_eq!(r.action, bpf::XDP_DROP, "frame {f:02x?}");
            assert_eq!(r.frame, f);
        }
        let no_socket = |slot| p.port_stats(slot).expect("stats").no_socket;
        assert_eq!((no_socket(0), no_socket(1)), (2, 2));
        // Not a port of this program: passed to the kernel's stack.
        let r = p
            .test_run(1, &frame(B, A, Some(100)), 1)
            .expect("run on lo");
        assert_eq!(r.action, bpf::XDP_PASS);
        // After the access port leaves, its ifindex is no longer a port and the fdb entry
        // pointing at it no longer forwards.
        p.unregister(ib);
        let r = p.test_run(ia, &frame(B, A, Some(100)), 1).expect("run");
        assert_eq!(r.action, bpf::XDP_DROP);
        assert_eq!(r.frame, frame(B, A, Some(100)));
    }

    /// A frame for userspace on a queue without a socket of the switch (a device queue
    /// beyond the port's `queues`, one above the program's 64, the port before its
    /// socket is inserted or after its process died) is dropped and counted per port,
    /// never passed to the host stack (before: `XDP_PASS`, the fallback of the XSKMAP
    /// redirect). Another interface's frames still pass.
    #[test]
    fn frames_on_queues_without_a_socket_are_dropped_and_counted() {
        if !crate::testutil::root_or_skip(
            "frames_on_queues_without_a_socket_are_dropped_and_counted",
        ) {
            return;
        }
        let pair = crate::testutil::VethPair::with_queues("nq", bpf::MAX_QUEUES + 2);
        let ia = crate::sys::netdev::if_index(&pair.a).expect("ifindex");
        let ib = crate::sys::netdev::if_index(&pair.b).expect("ifindex");
        let p = XdpProgram::new(false, 1).expect("load XDP program (root, BPF)");
        let slot = p.register(ia, 4096, true).expect("register");
        let no_socket = || p.port_stats(slot).expect("stats").no_socket;
        assert_eq!(no_socket(), 0);
        let f = frame(B, A, None);
        for (n, queue) in [
            0,
            1,
            bpf::MAX_QUEUES - 1,
            bpf::MAX_QUEUES,
            bpf::MAX_QUEUES + 1,
        ]
        .into_iter()
        .enumerate()
        {
            let r = p.test_run_on_queue(ia, queue, &f, 1).expect("run");
            assert_eq!(r.action, bpf::XDP_DROP, "queue {queue}");
            assert_eq!(no_socket(), n as u64 + 1, "queue {queue} counted");
        }
        // Repeated runs count each frame.
        p.test_run_on_queue(ia, 1, &f, 10).expect("run");
        assert_eq!(no_socket(), 15);
        // Not a port of this program: the host stack's, uncounted.
        let r = p.test_run_on_queue(ib, 1, &f, 1).expect("run");
        assert_eq!(r.action, bpf::XDP_PASS);
        assert_eq!(no_socket(), 15);
        // A port registered again starts from zero.
        p.unregister(ia);
        let slot = p.register(ia, 4096, true).expect("register again");
        assert_eq!(p.port_stats(slot).expect("stats").no_socket, 0);
    }

    /// A control-plane operation names the same entry in the mirror as in the workers'
    /// tables, whose keys hold the VLAN's low 12 bits: `Remove` with VLAN 4196 removes
    /// VLAN 100's entry from both, and a static added with VLAN 4196 is VLAN 100's.
    #[test]
    fn fdb_ops_key_the_vlan_like_the_workers() {
        if !crate::testutil::root_or_skip("fdb_ops_key_the_vlan_like_the_workers") {
            return;
        }
        use crate::fdb::{Fdb, FdbConfig};
        use crate::topology::PortId;
        let f = FastPathPair::new("fk", A, B);
        let p = &f.program;
        let at = |mac: MacAddr, vid: u16| {
            p.obj
                .fdb_get(&FdbKey { mac: mac.0, vid })
                .expect("lookup")
                .map(|v| v.port)
        };
        assert_eq!((at(A, 100), at(B, 100)), (Some(0), Some(1)));
        let mut workers = Fdb::new(FdbConfig::default());
        let (trunk, access) = (PortId::new(0).expect("id"), PortId::new(1).expect("id"));
        workers.add_static(100, A, trunk).expect("static A");
        workers.add_static(100, B, access).expect("static B");

        let remove = FdbOp::Remove {
            vid: 100 + 4096,
            mac: A,
        };
        p.fdb_op(&remove);
        assert!(
            workers.remove(100 + 4096, A),
            "workers key VLAN 4196 as 100"
        );
        assert_eq!((at(A, 100), at(B, 100)), (None, Some(1)));
        assert_eq!(p.stats().entries, 1);

        p.fdb_op(&FdbOp::AddStatic {
            vid: 100 + 4096,
            mac: A,
            port: trunk,
        });
        assert_eq!((at(A, 100), at(A, 100 + 4096)), (Some(0), None));
        assert_eq!(p.stats().entries, 2);
    }

    /// Frames the program redirected to a veth whose peer has no NAPI context (GRO off) are
    /// counted at the egress port, exactly, by the tracing program: none while the peer
    /// takes them, none that the device counts itself (its peer down). No egress watch
    /// runs here (no AF_XDP port), so the program keeps redirecting.
    #[test]
    fn redirects_the_egress_device_refused_are_counted() {
        if !crate::testutil::root_or_skip("redirects_the_egress_device_refused_are_counted") {
            return;
        }
        use crate::testutil::{test_frame, test_seq, Capture, Netns, VethPair};
        use crate::topology::{PortConfig, PortId, Topology};
        let (na, nb) = (Netns::new("rfa"), Netns::new("rfb"));
        let (pa, pb) = (VethPair::new("rfa"), VethPair::new("rfb"));
        na.adopt(&pa.b);
        nb.adopt(&pb.b);
        let ia = crate::sys::netdev::if_index(&pa.a).expect("ifindex");
        let ib = crate::sys::netdev::if_index(&pb.a).expect("ifindex");
        let p = XdpProgram::new(true, 64).expect("load XDP program (root, BPF)");
        assert!(p.obj.counts_refused());
        let mut tb = Topology::builder();
        let access = || "access 100".parse().expect("vlan");
        tb.add_port(0, PortConfig::new("a", access()))
            .expect("port");
        tb.add_port(1, PortConfig::new("b", access()))
            .expect("port");
        let ids = [PortId::new(0).expect("id"), PortId::new(1).expect("id")];
        let mut slots = Vec::new();
        for (ifindex, id) in [(ia, ids[0]), (ib, ids[1])] {
            slots.push(p.register(ifindex, 4096, true).expect("register"));
            p.bind(ifindex, id);
        }
        p.sync_topology(Arc::new(tb.build()));
        for (mac, port) in [(A, ids[0]), (B, ids[1])] {
            p.fdb_op(&crate::worker::FdbOp::AddStatic {
                vid: 100,
                mac,
                port,
            });
        }
        for i in [ia, ib] {
            p.attach(i, crate::sys::xsk::XDP_FLAGS_DRV_MODE)
                .expect("attach natively");
        }
        let from_a = Capture::open_in(&na, &pa.b);
        let refused = || p.port_stats(slots[1]).expect("stats").fwd_tx_refused;
        let send = |seqs: std::ops::Range<u32>| {
            for seq in seqs {
                from_a.send(&test_frame(B.0, A.0, seq, 60));
            }
        };
        // Waits up to 3 s for `done`, then 100 ms more for anything late.
        let settle = |done: &dyn Fn() -> bool| {
            let t0 = std::time::Instant::now();
            while !done() && t0.elapsed() < std::time::Duration::from_secs(3) {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        let wait_refused = |want: u64| {
            settle(&|| refused() == want);
            assert_eq!(refused(), want, "refused redirects counted at b");
        };

        // b's peer has GRO off and no XDP program (the veth default): no NAPI, so the
        // veth refuses every redirected frame.
        send(1..11);
        wait_refused(10);
        assert_eq!(p.port_stats(slots[1]).expect("stats").fwd_tx_packets, 10);

        // GRO on: the frames arrive, nothing more is refused.
        nb.exec("ethtool", &["-K", &pb.b, "gro", "on"]);
        let at_b = Capture::open_in(&nb, &pb.b);
        send(11..31);
        let got: Vec<u32> = at_b
            .collect_test_frames(20, std::time::Duration::from_secs(3))
            .iter()
            .filter_map(|f| test_seq(f))
            .collect();
        assert_eq!(got, (11..31).collect::<Vec<_>>());
        wait_refused(10);

        // The peer goes down (its GRO still on): the device takes the redirect and fails
        // to hand the frames over, and counts them in its own tx_dropped (which the port
        // reports as tx_ring_full), not here.
        let rtnl =
            std::cell::RefCell::new(crate::sys::rtnl::RouteSocket::open().expect("rtnetlink"));
        let tx_dropped = || {
            rtnl.borrow_mut()
                .link(ib, None)
                .expect("b's link")
                .tx_dropped
        };
        let dropped0 = tx_dropped();
        nb.exec("ip", &["link", "set", &pb.b, "down"]);
        send(31..38);
        settle(&|| tx_dropped() - dropped0 >= 7);
        assert_eq!(tx_dropped() - dropped0, 7, "b's device counts them");
        wait_refused(10);
        assert_eq!(p.port_stats(slots[0]).expect("stats").fwd_tx_refused, 0);
        assert_eq!(p.port_stats(slots[1]).expect("stats").fwd_tx_packets, 37);
    }
}
