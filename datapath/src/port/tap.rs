//! Tap port: a tap device the switch creates (`TUNSETIFF`, IFF_TAP | IFF_NO_PI) and
//! services through its nonblocking fd. Its kernel side is an ordinary netdev: move it
//! into a namespace, give it an address, or attach a VM to it.
//!
//! Offloads: the device is created with `IFF_VNET_HDR` and `TUNSETOFFLOAD` (checksum,
//! TSO4/6 with ECN, USO where the kernel has it), so whatever sits on its kernel side (a
//! namespace's stack, a VM) sends and receives 64 KiB superframes with partial checksums,
//! as through the Linux bridge. Each frame's `virtio_net_hdr` becomes its [`Offload`],
//! which travels with it through the switch; frames sent to the tap carry theirs.
//!
//! Cost model: a tap fd moves one frame per `read`/`writev` syscall, so this backend costs
//! one syscall per frame — inherent to the tap interface; with offloads a frame is often a
//! 64 KiB superframe, so that is one syscall per up to 44 segments.
//!
//! Invariants kept here:
//! - Buffers are allocated at create: RX packs up to [`MAX_BURST`] frames into one arena
//!   (each read may take a whole superframe, so a burst holds at least
//!   [`ARENA_FRAMES`] superframes); TX writes the edited frame straight from the source's
//!   memory with `writev` (the header, the tag bytes and the frame's pieces), no copy.
//!   The arena is reallocated only when the MTU changes beyond a superframe
//!   ([`TapControl::set_mtu`]), by the receive half's own thread at its next burst.
//! - The device is up (IFF_UP) with the configured MTU once `create` returns; it
//!   disappears when both halves are dropped (the fd is closed), unless made persistent
//!   elsewhere. A [`TapControl`] does not keep it alive.
//! - A plain frame longer than MTU + 22 bytes is dropped whole and counted (`mtu_exceeded`),
//!   never cut short; a superframe may be up to [`MAX_SUPERFRAME`] bytes (its segments
//!   are what the egress MTU applies to). A header the switch cannot honour is counted
//!   `bad_offload`.
//! - Frames the device's kernel side could not queue for the switch (its queue full) are
//!   counted as the port's kernel drops (`rx_ring_full`), wherever the device was moved.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::held::Held;
use super::{PortError, RxPort, TxPort, XdpCounters};
use crate::offload::{Offload, MAX_SUPERFRAME, VNET_HDR_LEN};
use crate::pipeline::{TxDone, TxItem, MAX_BURST};
use crate::sys::tun::TapFd;
use crate::sys::{netdev, rtnl};
use crate::wire::{edited_pieces, VLAN_TAG_LEN};

/// Room for the Ethernet header and two VLAN tags beyond the MTU.
const L2_OVERHEAD: usize = 14 + 8;
/// Superframes one receive burst holds at least (the arena is this many of the largest
/// reads); smaller frames pack tighter, up to [`MAX_BURST`].
pub const ARENA_FRAMES: usize = 16;

/// Configuration of a tap port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapConfig {
    /// Device name (at most 15 bytes); empty lets the kernel pick `tapN`.
    pub name: String,
    /// MTU to set; `None` keeps the kernel default (1500).
    pub mtu: Option<u32>,
}

impl TapConfig {
    pub fn new(name: impl Into<String>) -> TapConfig {
        TapConfig {
            name: name.into(),
            mtu: None,
        }
    }
}

/// What both halves (and, weakly, a [`TapControl`]) share.
#[derive(Debug)]
struct Shared {
    fd: TapFd,
    /// The MTU the halves size their buffers for (slots of MTU + [`L2_OVERHEAD`]).
    mtu: AtomicU32,
}

/// Receive half of a tap port.
#[derive(Debug)]
pub struct TapRx {
    shared: Arc<Shared>,
    /// The MTU `buf` is sized for.
    mtu: u32,
    /// The arena: frames of a burst one after the other, each after its header.
    buf: Box<[u8]>,
    /// The frames of the burst in hand (spans of `buf`).
    held: Held,
    /// Plain frames longer than MTU + 22 bytes, dropped whole at read (cumulative).
    oversize: u64,
    /// Frames whose `virtio_net_hdr` the switch cannot honour (cumulative).
    bad_offload: u64,
    drops: Arc<TapDrops>,
}

/// Frames the tap's kernel side dropped before the switch read them: the device's
/// `tx_dropped`, which the kernel counts when the device's queue to this fd (its
/// `txqueuelen`, 1000 frames by default) is full. Read through rtnetlink in whatever
/// namespace the device is now, about once a second by the ports' background thread
/// ([`super::probe`]; the worker loads the last value): one `TUNGETDEVNETNS` + `fstat` to
/// notice a move, one RTM_GETLINK; a new socket in the device's namespace (a short-lived
/// thread) only after the device moved.
#[derive(Debug)]
struct TapDrops {
    /// Weak: the probe must not keep the device's fd open after the port is gone.
    shared: Weak<Shared>,
    state: Mutex<QueueDrops>,
    value: AtomicU64,
}

impl super::probe::Probe for TapDrops {
    fn refresh(&self) {
        let (Some(shared), Ok(mut st)) = (self.shared.upgrade(), self.state.lock()) else {
            return;
        };
        let n = st.read(&shared.fd);
        self.value.fetch_max(n, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct QueueDrops {
    /// The device's namespace (inode) and a socket in it.
    sock: Option<(u64, rtnl::RouteSocket)>,
    /// `tx_dropped` when the port was made; what it counted before is not this port's.
    base: Option<u64>,
    /// Last value read (kept when a read fails).
    last: u64,
}

impl QueueDrops {
    fn read(&mut self, fd: &TapFd) -> u64 {
        let Ok(ns) = fd.netns_id() else {
            return self.last;
        };
        if self.sock.as_ref().map(|(id, _)| *id) != Some(ns) {
            self.sock = fd.route_socket().ok().map(|s| (ns, s));
        }
        let (Some((_, sock)), Ok(name)) = (self.sock.as_mut(), fd.current_name()) else {
            return self.last;
        };
        if let Ok(link) = sock.link_by_name(&name) {
            let base = *self.base.get_or_insert(link.tx_dropped);
            self.last = self.last.max(link.tx_dropped.saturating_sub(base));
        }
        self.last
    }
}

/// Transmit half of a tap port.
#[derive(Debug)]
pub struct TapTx {
    shared: Arc<Shared>,
    errors: u64,
}

/// A tap port: both halves. Use [`TapPort::split`] to hand them to a worker.
#[derive(Debug)]
pub struct TapPort {
    name: String,
    ifindex: u32,
    rx: TapRx,
    tx: TapTx,
}

/// Keeps a tap device (its fd) open while its port's halves are dropped, e.g. across a
/// datapath restart, so a device the user moved into another namespace or handed to a VM
/// is not destroyed and recreated in the daemon's namespace. [`TapPort::resume`] makes a
/// port of it again.
#[derive(Debug)]
pub struct TapKeep {
    name: String,
    shared: Arc<Shared>,
}

/// Changes a running tap port's MTU in place: the device keeps its fd, namespace,
/// addresses and name, and both halves resize their buffers at their next burst, wherever
/// they run. Holds no reference that keeps the device alive.
#[derive(Debug, Clone)]
pub struct TapControl {
    name: String,
    shared: Weak<Shared>,
}

impl TapPort {
    /// Creates the tap device, sets its MTU and brings it up.
    pub fn create(cfg: &TapConfig) -> Result<TapPort, PortError> {
        let label = if cfg.name.is_empty() {
            "tap"
        } else {
            &cfg.name
        };
        if cfg.name.len() >= libc::IFNAMSIZ {
            return Err(PortError::InvalidConfig {
                ifname: cfg.name.clone(),
                reason: format!("name longer than {} bytes", libc::IFNAMSIZ - 1),
            });
        }
        let fd = TapFd::create(&cfg.name)
            .map_err(|e| PortError::io(label, "create tap (TUNSETIFF)", e))?;
        let name = fd.name().to_owned();
        if let Some(mtu) = cfg.mtu {
            netdev::set_mtu(&name, mtu).map_err(|e| PortError::io(&name, "set MTU", e))?;
        }
        netdev::set_up(&name).map_err(|e| PortError::io(&name, "set up", e))?;
        let mtu = netdev::mtu(&name).map_err(|e| PortError::io(&name, "read MTU", e))?;
        let ifindex = netdev::if_index(&name).ok_or_else(|| PortError::NoSuchInterface {
            ifname: name.clone(),
        })?;
        let shared = Arc::new(Shared {
            fd,
            mtu: AtomicU32::new(mtu),
        });
        Ok(TapPort::from_shared(name, ifindex, shared))
    }

    /// A port over a device kept open by `keep` (see [`TapControl::keep`]): the same
    /// device, wherever it is now, with its addresses and MTU; new halves.
    pub fn resume(keep: TapKeep) -> TapPort {
        let ifindex = netdev::if_index(&keep.name).unwrap_or(0);
        TapPort::from_shared(keep.name, ifindex, keep.shared)
    }

    fn from_shared(name: String, ifindex: u32, shared: Arc<Shared>) -> TapPort {
        let mtu = shared.mtu.load(Ordering::Acquire);
        let port = TapPort {
            name,
            ifindex,
            rx: TapRx {
                shared: shared.clone(),
                mtu,
                buf: TapRx::arena(mtu),
                held: Held::new(),
                oversize: 0,
                bad_offload: 0,
                drops: Arc::new(TapDrops {
                    shared: Arc::downgrade(&shared),
                    state: Mutex::new(QueueDrops::default()),
                    value: AtomicU64::new(0),
                }),
            },
            tx: TapTx { shared, errors: 0 },
        };
        // The drop counter's starting point: the port counts from here.
        super::probe::Probe::refresh(&*port.rx.drops);
        let probe: Arc<dyn super::probe::Probe> = port.rx.drops.clone();
        super::probe::register(&probe);
        port
    }

    /// A handle to change the MTU later, also after [`TapPort::split`].
    pub fn control(&self) -> TapControl {
        TapControl {
            name: self.name.clone(),
            shared: Arc::downgrade(&self.rx.shared),
        }
    }

    /// The device's name (the kernel's choice if the configured name was empty).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Index at creation or resumption in the daemon's namespace (it changes if the device
    /// is moved to another namespace; 0 when resumed while elsewhere).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
    /// The MTU the port's buffers are sized for (the device's, unless changed behind
    /// the switch's back).
    pub fn mtu(&self) -> u32 {
        self.rx.shared.mtu.load(Ordering::Acquire)
    }
    pub fn split(self) -> (TapRx, TapTx) {
        (self.rx, self.tx)
    }
    pub fn rx(&mut self) -> &mut TapRx {
        &mut self.rx
    }
    pub fn tx(&mut self) -> &mut TapTx {
        &mut self.tx
    }
}

/// Longest plain frame for `mtu`.
fn slot_len(mtu: u32) -> usize {
    mtu as usize + L2_OVERHEAD
}

/// Longest read for `mtu`: a header and a superframe (or a plain frame, if longer).
fn read_len(mtu: u32) -> usize {
    VNET_HDR_LEN + slot_len(mtu).max(MAX_SUPERFRAME)
}

impl TapControl {
    /// The port's device name at creation (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Holds the device open beyond its halves; `None` when they are gone already.
    pub fn keep(&self) -> Option<TapKeep> {
        Some(TapKeep {
            name: self.name.clone(),
            shared: self.shared.upgrade()?,
        })
    }

    fn shared(&self, op: &'static str) -> Result<Arc<Shared>, PortError> {
        self.shared.upgrade().ok_or_else(|| {
            PortError::io(
                &self.name,
                op,
                std::io::Error::from_raw_os_error(libc::ENODEV),
            )
        })
    }

    /// Sets the device's MTU where it is now (it may have been moved into another network
    /// namespace) and has the halves resize their buffers. Buffers grow before the device
    /// does and shrink after it, so every frame of the device's MTU fits at any moment;
    /// on failure nothing changes.
    pub fn set_mtu(&self, mtu: u32) -> Result<(), PortError> {
        let shared = self.shared("set MTU")?;
        let old = shared.mtu.load(Ordering::Acquire);
        if mtu > old {
            shared.mtu.store(mtu, Ordering::Release);
        }
        if let Err(e) = shared.fd.set_mtu(mtu) {
            shared.mtu.store(old, Ordering::Release);
            return Err(PortError::io(&self.name, "set MTU", e));
        }
        shared.mtu.store(mtu, Ordering::Release);
        Ok(())
    }

    /// The device's MTU, read where the device is now.
    pub fn device_mtu(&self) -> Result<u32, PortError> {
        self.shared("read MTU")?
            .fd
            .mtu()
            .map_err(|e| PortError::io(&self.name, "read MTU", e))
    }
}

impl TapRx {
    /// An arena of [`ARENA_FRAMES`] of the longest reads for `mtu`, plus one spare byte
    /// so a read that fills its room is known to be truncated.
    fn arena(mtu: u32) -> Box<[u8]> {
        vec![0u8; ARENA_FRAMES * read_len(mtu) + 1].into_boxed_slice()
    }

    /// Follows an MTU change (no frames are held when called).
    #[inline]
    fn follow_mtu(&mut self) {
        let mtu = self.shared.mtu.load(Ordering::Acquire);
        if mtu != self.mtu {
            if read_len(mtu) != read_len(self.mtu) {
                self.buf = TapRx::arena(mtu);
            }
            self.mtu = mtu;
        }
    }

    /// Plain frames longer than MTU + 22 bytes, dropped whole at read: never passed on cut
    /// short. The worker counts them `mtu_exceeded` on this port (through
    /// [`RxPort::xdp_counters`]).
    pub fn oversize(&self) -> u64 {
        self.oversize
    }

    /// Frames dropped at read because the switch cannot honour their `virtio_net_hdr`.
    pub fn bad_offload(&self) -> u64 {
        self.bad_offload
    }
}

impl RxPort for TapRx {
    fn rx_burst(&mut self, max: usize) -> Result<usize, PortError> {
        self.held.clear();
        self.follow_mtu();
        let max = max.min(MAX_BURST);
        let room = read_len(self.mtu);
        let plain_max = slot_len(self.mtu);
        let mut off = 0;
        // One byte more than the longest read: a read that fills it was truncated.
        while self.held.len() < max && off + room < self.buf.len() {
            match self.shared.fd.read(&mut self.buf[off..=off + room]) {
                Ok(None) => break,
                Ok(Some(len)) if len > room => self.oversize += 1,
                Ok(Some(len)) => {
                    let frame_len = len.saturating_sub(VNET_HDR_LEN);
                    match Offload::parse(&self.buf[off..off + len]) {
                        Ok(o) if !o.is_gso() && frame_len > plain_max => self.oversize += 1,
                        Ok(o) => {
                            self.held.push(off + VNET_HDR_LEN, frame_len, o);
                            // The next frame starts cache-line aligned.
                            off = (off + len).next_multiple_of(64);
                        }
                        Err(_) => self.bad_offload += 1,
                    }
                }
                Err(e) => {
                    if self.held.len() > 0 {
                        break;
                    }
                    return Err(PortError::io(self.shared.fd.name(), "read tap", e));
                }
            }
        }
        Ok(self.held.len())
    }

    fn frames<'a>(&'a self, out: &mut [&'a [u8]; MAX_BURST]) -> usize {
        self.held.frames(&self.buf, out)
    }

    fn offloads(&self, out: &mut [Offload; MAX_BURST]) -> usize {
        self.held.offloads(out)
    }

    fn release(&mut self) {
        self.held.clear();
    }

    /// A tap has no XDP program; its only counter here is the frames too long for the
    /// receive slots ([`TapRx::oversize`]), which the worker counts `mtu_exceeded` like
    /// the oversize drops of an AF_XDP port's program.
    fn wait_fds(&self) -> Option<Vec<std::os::fd::RawFd>> {
        Some(vec![self.shared.fd.raw_fd()])
    }
    fn xdp_counters(&mut self) -> XdpCounters {
        XdpCounters {
            oversize: self.oversize,
            bad_offload: self.bad_offload,
            ..XdpCounters::default()
        }
    }
    /// Frames the device's queue to this fd had no room for (see `QueueDrops`).
    fn kernel_drops(&mut self) -> super::KernelDrops {
        super::KernelDrops {
            rx: self.drops.value.load(Ordering::Relaxed),
            tx: 0,
        }
    }
}

impl TapRx {
    /// The drop counter after reading the device now (the background thread does it once
    /// a second).
    #[cfg(test)]
    fn drops_now(&mut self) -> u64 {
        super::probe::Probe::refresh(&*self.drops);
        self.kernel_drops().rx
    }
}

impl TapTx {
    /// Writes that failed with an error other than EAGAIN (device down, ...).
    pub fn errors(&self) -> u64 {
        self.errors
    }
}

impl TxPort for TapTx {
    fn tx_burst(&mut self, frames: &[&[u8]], offloads: &[Offload], items: &[TxItem]) -> TxDone {
        let mut done = TxDone::default();
        for item in items {
            let i = usize::from(item.frame);
            let Some(src) = frames.get(i) else {
                break;
            };
            let hdr = Offload::of(offloads, i).after_edit(item.edit).emit();
            let mut tag = [0u8; VLAN_TAG_LEN];
            let Ok([a, b, c]) = edited_pieces(src, item.edit, &mut tag) else {
                break;
            };
            let len = a.len() + b.len() + c.len();
            match self.shared.fd.write(&[&hdr, a, b, c]) {
                Ok(true) => {
                    done.sent += 1;
                    done.bytes += len as u64;
                }
                Ok(false) => break,
                Err(_) => {
                    self.errors += 1;
                    break;
                }
            }
        }
        done
    }

    fn flush(&mut self) {}
}

impl RxPort for TapPort {
    fn rx_burst(&mut self, max: usize) -> Result<usize, PortError> {
        self.rx.rx_burst(max)
    }
    fn frames<'a>(&'a self, out: &mut [&'a [u8]; MAX_BURST]) -> usize {
        self.rx.frames(out)
    }
    fn offloads(&self, out: &mut [Offload; MAX_BURST]) -> usize {
        self.rx.offloads(out)
    }
    fn release(&mut self) {
        self.rx.release()
    }
    fn xdp_counters(&mut self) -> XdpCounters {
        self.rx.xdp_counters()
    }
    fn wait_fds(&self) -> Option<Vec<std::os::fd::RawFd>> {
        self.rx.wait_fds()
    }
}

impl TxPort for TapPort {
    fn tx_burst(&mut self, frames: &[&[u8]], offloads: &[Offload], items: &[TxItem]) -> TxDone {
        self.tx.tx_burst(frames, offloads, items)
    }
    fn flush(&mut self) {
        self.tx.flush()
    }
}

#[cfg(test)]
mod tests {
    //! Tap specifics the shared port tests do not cover (root: namespaces, taps).

    use std::time::{Duration, Instant};

    use super::*;
    use crate::testutil::{test_frame, test_seq, unique_name, Capture, Netns};

    const DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0xbb];
    const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];

    /// Polls `rx` for up to 3 s until `want` test frames arrived; returns their sequence
    /// numbers and lengths.
    fn rx_seqs(rx: &mut TapRx, want: usize) -> Vec<(u32, usize)> {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut got = Vec::new();
        while got.len() < want && Instant::now() < deadline {
            if rx.rx_burst(MAX_BURST).expect("rx_burst") == 0 {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            let mut refs: [&[u8]; MAX_BURST] = [&[]; MAX_BURST];
            let k = rx.frames(&mut refs);
            got.extend(
                refs[..k]
                    .iter()
                    .filter_map(|f| test_seq(f).map(|s| (s, f.len()))),
            );
            rx.release();
        }
        got
    }

    /// The MTU of `ifname` in `ns`, read with `ip`.
    fn mtu_in(ns: &Netns, ifname: &str) -> u32 {
        let out = std::process::Command::new("ip")
            .args(["-n", ns.name(), "-o", "link", "show", "dev", ifname])
            .output()
            .expect("run ip");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.split_whitespace();
        words.find(|w| *w == "mtu");
        words
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("no MTU for {ifname} in {}: {text}", ns.name()))
    }

    #[test]
    fn set_mtu_in_place_follows_the_device_into_its_namespace() {
        if !crate::testutil::root_or_skip("set_mtu_in_place_follows_the_device_into_its_namespace")
        {
            return;
        }
        let ns = Netns::new("tm");
        let name = unique_name("tm");
        let port = TapPort::create(&TapConfig::new(name.clone())).expect("create tap");
        let ctl = port.control();
        let (mut rx, mut tx) = port.split();
        ns.adopt(&name);
        ns.exec("ip", &["addr", "add", "10.99.0.1/24", "dev", &name]);
        assert_eq!(
            crate::sys::netdev::if_index(&name),
            None,
            "moved away from here"
        );

        // Grow: the device (in its namespace, address kept) and both halves follow.
        ctl.set_mtu(2048).expect("set MTU 2048");
        assert_eq!(mtu_in(&ns, &name), 2048);
        assert_eq!(ctl.device_mtu().expect("read MTU"), 2048);
        let out = std::process::Command::new("ip")
            .args(["-n", ns.name(), "-o", "addr", "show", "dev", &name])
            .output()
            .expect("run ip");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("10.99.0.1/24"),
            "address kept"
        );
        let host = Capture::open_in(&ns, &name);
        // (Over the old 1522-byte slots; AF_PACKET sends at most MTU + 14.)
        host.send(&test_frame(DST, SRC, 1, 2048 + 14));
        assert_eq!(rx_seqs(&mut rx, 1), vec![(1, 2062)]);
        let big = test_frame(DST, SRC, 2, 2062);
        let refs: [&[u8]; 1] = [&big];
        let items = [TxItem {
            frame: 0,
            edit: crate::wire::Edit::Keep,
        }];
        assert_eq!(tx.tx_burst(&refs, &[], &items).sent, 1);
        assert_eq!(
            host.collect_test_frames(1, Duration::from_secs(3)),
            vec![big]
        );

        // Shrink: frames over the new slot are dropped whole and counted.
        ctl.set_mtu(1000).expect("set MTU 1000");
        assert_eq!(mtu_in(&ns, &name), 1000);
        // The kernel side only sends what its MTU allows: raise it behind our back.
        ns.exec("ip", &["link", "set", &name, "mtu", "3000"]);
        host.send(&test_frame(DST, SRC, 3, 1023));
        host.send(&test_frame(DST, SRC, 4, 1022));
        assert_eq!(rx_seqs(&mut rx, 1), vec![(4, 1022)]);
        assert_eq!(rx.oversize(), 1);

        // An invalid MTU is refused by the kernel and changes nothing.
        assert!(ctl.set_mtu(10).is_err());
        assert_eq!(mtu_in(&ns, &name), 3000);

        drop((rx, tx));
        let e = ctl.set_mtu(1500).expect_err("device gone");
        assert!(e.to_string().contains(&name), "{e}");
    }

    /// Reads until nothing more arrives for 200 ms; returns how many test frames came.
    fn drain(rx: &mut TapRx) -> usize {
        let mut got = 0;
        let mut quiet = Instant::now();
        while quiet.elapsed() < Duration::from_millis(200) {
            if rx.rx_burst(MAX_BURST).expect("rx_burst") == 0 {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            let mut refs: [&[u8]; MAX_BURST] = [&[]; MAX_BURST];
            let k = rx.frames(&mut refs);
            got += refs[..k].iter().filter(|f| test_seq(f).is_some()).count();
            rx.release();
            quiet = Instant::now();
        }
        got
    }

    /// Sends `n` frames from the device's kernel side in `ns` while nobody reads the fd.
    fn flood(ns: &Netns, name: &str, n: u32) {
        let host = Capture::open_in(ns, name);
        for seq in 1..=n {
            // The device drops what its queue cannot take; the sender may be told.
            let _ = host.try_send(&test_frame(DST, SRC, seq, 60));
        }
    }

    #[test]
    fn frames_the_device_queue_had_no_room_for_are_kernel_drops_wherever_it_moved() {
        if !crate::testutil::root_or_skip(
            "frames_the_device_queue_had_no_room_for_are_kernel_drops_wherever_it_moved",
        ) {
            return;
        }
        let ns = Netns::new("tq");
        let ns2 = Netns::new("tq");
        let name = unique_name("tq");
        let port = TapPort::create(&TapConfig::new(name.clone())).expect("create tap");
        let (mut rx, _tx) = port.split();
        assert_eq!(rx.kernel_drops().rx, 0);
        // IPv6 off: only the test's frames cross the device.
        ns.adopt(&name);
        // Three times what the device's queue to the fd holds, with nobody reading.
        ns.exec("ip", &["link", "set", &name, "txqueuelen", "100"]);
        flood(&ns, &name, 300);
        let got = drain(&mut rx);
        let drops = rx.drops_now();
        // (The queue may also hold a frame the kernel sent itself, not counted in `got`.)
        assert!(got > 0 && drops > 0, "got {got}, drops {drops}");
        assert_eq!(got as u64 + drops, 300, "got {got}, drops {drops}");
        // Moved on (new namespace, new socket there): counted on top.
        ns.exec("ip", &["link", "set", &name, "down"]);
        ns.exec("ip", &["link", "set", &name, "netns", ns2.name()]);
        ns2.exec(
            "sh",
            &[
                "-c",
                &format!("echo 1 > /proc/sys/net/ipv6/conf/{name}/disable_ipv6"),
            ],
        );
        ns2.exec("ip", &["link", "set", &name, "up"]);
        flood(&ns2, &name, 300);
        let got2 = drain(&mut rx);
        let drops2 = rx.drops_now();
        assert!(drops2 > drops, "drops {drops} then {drops2}");
        assert_eq!(
            got2 as u64 + (drops2 - drops),
            300,
            "got {got2}, drops {drops} then {drops2}"
        );
    }

    #[test]
    fn frames_longer_than_a_slot_are_dropped_whole_and_counted_oversize() {
        if !crate::testutil::root_or_skip(
            "frames_longer_than_a_slot_are_dropped_whole_and_counted_oversize",
        ) {
            return;
        }
        let ns = Netns::new("to");
        let name = unique_name("to");
        let port = TapPort::create(&TapConfig::new(name.clone())).expect("create tap");
        assert_eq!(port.mtu(), 1500);
        let (mut rx, _tx) = port.split();
        ns.adopt(&name);
        // The user raises the kernel side's MTU above the port's.
        ns.exec("ip", &["link", "set", &name, "mtu", "3000"]);
        let host = Capture::open_in(&ns, &name);
        // Slots hold MTU + 22 = 1522 bytes.
        host.send(&test_frame(DST, SRC, 1, 1523));
        host.send(&test_frame(DST, SRC, 2, 2042));
        host.send(&test_frame(DST, SRC, 3, 1522));
        assert_eq!(rx_seqs(&mut rx, 1), vec![(3, 1522)]);
        assert_eq!(rx.oversize(), 2);
        assert_eq!(
            rx.xdp_counters(),
            XdpCounters {
                oversize: 2,
                ..XdpCounters::default()
            }
        );
    }
}
