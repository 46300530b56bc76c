//! vswitch's XDP program (`datapath/bpf/vswitch_xdp.c`, compiled by build.rs and embedded
//! here) and its maps, through libbpf (the copy libxdp-sys bundles).
//!
//! One [`XdpObject`] is one loaded program with its own maps; it is attached to the
//! interfaces of the ports that share it. The map value layouts below are `#[repr(C)]`
//! mirrors of the C structs (no padding: every field is naturally aligned), which is what
//! makes their byte views sound ([`Plain`]).
//!
//! The map syscalls take bare pointers: the kernel copies the map's `key_size` bytes from
//! the key and `value_size` bytes (per-CPU maps: rounded up to 8, once per possible CPU)
//! from or to the value, knowing nothing of the buffers behind them. So every map access
//! first checks the Rust types against the sizes the kernel reported for that map when
//! the object was loaded ([`Map`]); a mismatch is an error, never a short buffer.

use std::ffi::CString;
use std::io;
use std::os::raw::{c_int, c_void};

use libxdp_sys as lx;

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vswitch_xdp.o"));

/// Name of the program inside the object (also what `ip link` shows).
pub const PROG_NAME: &str = "vswitch_port";
/// The tracing program counting redirects the kernel refused (a raw tracepoint, attached
/// only when asked for: [`XdpObject::load`]).
const REFUSED_PROG: &str = "vswitch_redirect_refused";
/// The packet ports' fast path: the socket filter that decides and the tcx ingress program
/// that applies its decision (loaded with the fast path only: [`XdpObject::load`]).
const FILTER_PROG: &str = "vswitch_filter";
const INGRESS_PROG: &str = "vswitch_ingress";

/// `port_cfg.flags`.
pub const PORT_FAST: u32 = 1;
pub const PORT_UP: u32 = 2;
pub const PORT_ISOLATED: u32 = 4;
/// Frames redirected into this port's device would be dropped by the kernel: the fast
/// path does not forward to it (`vswitch_xdp.c`).
pub const PORT_NO_REDIRECT: u32 = 8;
/// A packet port, forwarded by the socket filter and tcx ingress programs, never by XDP.
pub const PORT_SKB: u32 = 16;
/// `fdb_val.flags`.
pub const FDB_STATIC: u16 = 1;
/// Queues per port in the XSKMAP key (`index * MAX_QUEUES + queue`).
pub const MAX_QUEUES: u32 = 64;
/// Port slots of one program (`MAX_PORTS` in the C program).
pub const MAX_PORTS: u32 = 1024;
/// Interfaces with an ifindex below this are found through an array (`IFSLOT_DIRECT`);
/// others through a hash map.
pub const IFSLOT_DIRECT: u32 = 65536;

/// Types whose every byte pattern is a valid value and that have no padding, so they can
/// be handed to the kernel and read back as raw bytes.
///
/// # Safety
/// Implement only for `#[repr(C)]` structs of integers (and arrays of them) without padding.
pub unsafe trait Plain: Copy {}

// SAFETY: integers have no padding and no invalid bit patterns.
unsafe impl Plain for u32 {}
// SAFETY: as above.
unsafe impl Plain for u64 {}

/// `struct port_cfg`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortCfg {
    pub index: u16,
    pub in_vid: u16,
    pub out_untagged_vid: u16,
    pub pad: u16,
    pub flags: u32,
    pub mtu: u32,
    pub max_rx: u32,
    /// The port's interface (set by [`XdpObject::set_port`]); 0: the slot is free.
    pub ifindex: u32,
    pub in_tagged: [u64; 64],
    pub members: [u64; 64],
}
// SAFETY: repr(C), fields 2+2+2+2+4+4+4+4 bytes then u64 arrays at offset 24: no padding.
unsafe impl Plain for PortCfg {}

impl Default for PortCfg {
    fn default() -> Self {
        PortCfg {
            index: 0,
            in_vid: 0,
            out_untagged_vid: 0,
            pad: 0,
            flags: 0,
            mtu: 0,
            max_rx: 0,
            ifindex: 0,
            in_tagged: [0; 64],
            members: [0; 64],
        }
    }
}

/// `struct fdb_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FdbKey {
    pub mac: [u8; 6],
    pub vid: u16,
}
// SAFETY: repr(C), 6 bytes then a u16 at offset 6: no padding.
unsafe impl Plain for FdbKey {}

/// `struct fdb_val`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FdbVal {
    pub ifindex: u32,
    /// The switch's port id.
    pub port: u16,
    pub flags: u16,
    /// The port's slot in the program (its `ports`, `devs` and `stats` entries).
    pub slot: u16,
    pub pad: u16,
    pub pad2: u32,
    pub seen_ns: u64,
    pub refresh_ns: u64,
}
// SAFETY: repr(C), 4+2+2+2+2+4 then two u64 at offsets 16 and 24: no padding.
unsafe impl Plain for FdbVal {}

/// `struct port_stats` (summed over CPUs by [`XdpObject::port_stats`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    pub fwd_rx_packets: u64,
    pub fwd_rx_bytes: u64,
    pub fwd_tx_packets: u64,
    pub fwd_tx_bytes: u64,
    pub oversize: u64,
    /// Frames redirected to this port that its device refused (a veth whose peer has no
    /// NAPI context), counted by the tracing program.
    pub fwd_tx_refused: u64,
    /// Frames for userspace that arrived on a queue without an AF_XDP socket in the
    /// XSKMAP (a device queue the port does not bind, the window between attach and socket
    /// insert, a killed process's program): dropped by the program, never passed to the
    /// host stack.
    pub no_socket: u64,
}
// SAFETY: repr(C), seven u64: no padding.
unsafe impl Plain for PortStats {}

/// `struct conf`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conf {
    pub refresh_ns: u64,
}
// SAFETY: repr(C), one u64.
unsafe impl Plain for Conf {}

/// XDP verdicts (`enum xdp_action`) the tests and benches check for.
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_REDIRECT: u32 = 4;

/// One [`XdpObject::test_run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRun {
    /// The program's verdict (`XDP_*`).
    pub action: u32,
    /// The frame as the program left it (tag pushed or popped).
    pub frame: Vec<u8>,
    /// Mean time of one run, measured by the kernel.
    pub ns_per_run: u32,
}

/// CLOCK_MONOTONIC_COARSE in nanoseconds: the clock of the program's
/// `bpf_ktime_get_coarse_ns` (the FDB's `seen`/`refresh` timestamps).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`, which we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

fn bytes_of<T: Plain>(v: &T) -> *const c_void {
    (v as *const T).cast()
}

fn last_os_error_or(code: c_int) -> io::Error {
    // libbpf returns -errno and also sets errno; prefer the return value.
    if code < 0 {
        io::Error::from_raw_os_error(-code)
    } else {
        io::Error::last_os_error()
    }
}

/// Number of possible CPUs (the per-CPU map value count), from sysfs.
fn possible_cpus() -> io::Result<usize> {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/possible")?;
    let mut n = 0usize;
    for part in s.trim().split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: usize = a.parse().map_err(|_| io::Error::other("bad cpu list"))?;
        let b: usize = b.parse().map_err(|_| io::Error::other("bad cpu list"))?;
        n = n.max(b + 1).max(a + 1);
    }
    Ok(n.max(1))
}

/// One map of the loaded object: its descriptor and the sizes the kernel copies for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Map {
    name: &'static str,
    fd: c_int,
    key_size: usize,
    value_size: usize,
    /// Lookups and updates move one value per possible CPU, each `value_size` rounded up
    /// to 8 bytes.
    per_cpu: bool,
}

impl Map {
    /// Before loading: no descriptor, nothing fits.
    const UNSET: Map = Map {
        name: "",
        fd: -1,
        key_size: 0,
        value_size: 0,
        per_cpu: false,
    };

    /// The map `name` with descriptor `fd`, as the kernel describes it.
    fn from_fd(name: &'static str, fd: c_int) -> io::Result<Map> {
        let info = map_info(fd)?;
        Ok(Map {
            name,
            fd,
            key_size: info.key_size as usize,
            value_size: info.value_size as usize,
            per_cpu: matches!(
                info.type_,
                lx::bpf_map_type_BPF_MAP_TYPE_PERCPU_HASH
                    | lx::bpf_map_type_BPF_MAP_TYPE_PERCPU_ARRAY
                    | lx::bpf_map_type_BPF_MAP_TYPE_LRU_PERCPU_HASH
                    | lx::bpf_map_type_BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE
            ),
        })
    }

    fn mismatch(&self, what: String) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("BPF map {}: {what}", self.name),
        )
    }

    /// `K` is exactly the map's key: the kernel reads `key_size` bytes from a key and
    /// writes that many into a next-key buffer.
    fn check_key<K>(&self) -> io::Result<()> {
        let got = std::mem::size_of::<K>();
        if got != self.key_size {
            return Err(self.mismatch(format!(
                "key of {got} bytes, the map's key_size is {}",
                self.key_size
            )));
        }
        Ok(())
    }

    /// `V` is exactly one of the map's values: `value_size` bytes for a plain map; for a
    /// per-CPU map (`per_cpu`: the caller passes one `V` per possible CPU) `value_size`
    /// rounded up to 8, the kernel's stride between the CPUs' values.
    fn check_value<V>(&self, per_cpu: bool) -> io::Result<()> {
        if per_cpu != self.per_cpu {
            return Err(self.mismatch(if self.per_cpu {
                "per-CPU map accessed with a single value".to_string()
            } else {
                "not a per-CPU map".to_string()
            }));
        }
        let got = std::mem::size_of::<V>();
        let want = if per_cpu {
            self.value_size.next_multiple_of(8)
        } else {
            self.value_size
        };
        if got != want {
            return Err(self.mismatch(format!(
                "value of {got} bytes, the map's value_size is {}",
                self.value_size
            )));
        }
        Ok(())
    }
}

/// What the kernel says about the map behind `fd`.
pub(crate) fn map_info(fd: c_int) -> io::Result<lx::bpf_map_info> {
    // SAFETY: bpf_map_info is a plain C struct for which zero bytes are valid.
    let mut info: lx::bpf_map_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<lx::bpf_map_info>() as u32;
    // SAFETY: info is a zeroed bpf_map_info of `len` bytes owned by us; the kernel writes
    // at most `len` bytes into it.
    let r = unsafe { lx::bpf_map_get_info_by_fd(fd, &mut info, &mut len) };
    if r != 0 {
        return Err(last_os_error_or(r));
    }
    Ok(info)
}

/// The loaded program and the descriptors of its maps. Closing it (drop) releases the
/// maps and the program once no interface holds the program any more.
#[derive(Debug)]
pub struct XdpObject {
    obj: *mut lx::bpf_object,
    prog_fd: c_int,
    prog_id: u32,
    ports: Map,
    ifslots: Map,
    ifslots_far: Map,
    fdb: Map,
    xsks: Map,
    devs: Map,
    stats: Map,
    config: Map,
    /// Possible CPUs: at least the kernel's count of per-CPU values.
    ncpus: usize,
    /// The attached tracing program counting refused redirects (null: not attached).
    refused: *mut lx::bpf_link,
    /// The packet ports' socket filter (-1: not loaded).
    filter_fd: c_int,
    /// The packet ports' tcx ingress program (null: not loaded).
    ingress: *mut lx::bpf_program,
}

// SAFETY: the object and link pointers are only used by `load` and `drop` (with &mut
// self); everything else goes through map/program file descriptors, which the kernel
// lets any thread use concurrently.
unsafe impl Send for XdpObject {}
// SAFETY: as above: shared use is only through fds (syscalls), never the libbpf object.
unsafe impl Sync for XdpObject {}

impl XdpObject {
    /// Loads the embedded program with an FDB map of `fdb_entries` entries. With
    /// `count_refused`, also loads and attaches the tracing program that counts frames
    /// the program redirected and the egress device then refused
    /// ([`PortStats::fwd_tx_refused`]).
    pub fn load(fdb_entries: u32, count_refused: bool) -> io::Result<XdpObject> {
        let ncpus = possible_cpus()?;
        // SAFETY: OBJECT is a 'static byte slice, so any pointer libbpf keeps into it stays
        // valid; NULL opts means defaults.
        let obj = unsafe {
            lx::bpf_object__open_mem(OBJECT.as_ptr().cast(), OBJECT.len(), std::ptr::null())
        };
        if obj.is_null() {
            return Err(io::Error::last_os_error());
        }
        let mut me = XdpObject {
            obj,
            prog_fd: -1,
            prog_id: 0,
            ports: Map::UNSET,
            ifslots: Map::UNSET,
            ifslots_far: Map::UNSET,
            fdb: Map::UNSET,
            xsks: Map::UNSET,
            devs: Map::UNSET,
            stats: Map::UNSET,
            config: Map::UNSET,
            ncpus,
            refused: std::ptr::null_mut(),
            filter_fd: -1,
            ingress: std::ptr::null_mut(),
        };
        let fdb_name = CString::new("fdb").expect("no NUL");
        // SAFETY: obj is a valid, not yet loaded object; the name is a valid C string.
        let map = unsafe { lx::bpf_object__find_map_by_name(me.obj, fdb_name.as_ptr()) };
        if map.is_null() {
            return Err(io::Error::other("XDP object has no fdb map"));
        }
        // SAFETY: map belongs to obj, which is not loaded yet (resizing is allowed).
        let r = unsafe { lx::bpf_map__set_max_entries(map, fdb_entries.max(1)) };
        if r != 0 {
            return Err(last_os_error_or(r));
        }
        let rname = CString::new(REFUSED_PROG).expect("no NUL");
        // SAFETY: obj is a valid, not yet loaded object; the name is a valid C string.
        let refused = unsafe { lx::bpf_object__find_program_by_name(me.obj, rname.as_ptr()) };
        if refused.is_null() {
            return Err(io::Error::other(format!(
                "XDP object has no program {REFUSED_PROG}"
            )));
        }
        let mut packet = [std::ptr::null_mut(); 2];
        for (name, slot) in [FILTER_PROG, INGRESS_PROG].into_iter().zip(&mut packet) {
            let c = CString::new(name).expect("no NUL");
            // SAFETY: obj is a valid, not yet loaded object; the name is a valid C string.
            *slot = unsafe { lx::bpf_object__find_program_by_name(me.obj, c.as_ptr()) };
            if slot.is_null() {
                return Err(io::Error::other(format!(
                    "XDP object has no program {name}"
                )));
            }
        }
        if !count_refused {
            for p in [refused, packet[0], packet[1]] {
                // SAFETY: p belongs to obj, which is not loaded yet.
                let r = unsafe { lx::bpf_program__set_autoload(p, false) };
                if r != 0 {
                    return Err(last_os_error_or(r));
                }
            }
        }
        // SAFETY: obj is a valid opened object.
        let r = unsafe { lx::bpf_object__load(me.obj) };
        if r != 0 {
            return Err(last_os_error_or(r));
        }
        let mut ident = Map::UNSET;
        let pname = CString::new(PROG_NAME).expect("no NUL");
        // SAFETY: obj is loaded; the name is a valid C string.
        let prog = unsafe { lx::bpf_object__find_program_by_name(me.obj, pname.as_ptr()) };
        if prog.is_null() {
            return Err(io::Error::other("XDP object has no program vswitch_port"));
        }
        // SAFETY: prog belongs to the loaded obj.
        me.prog_fd = unsafe { lx::bpf_program__fd(prog) };
        if me.prog_fd < 0 {
            return Err(last_os_error_or(me.prog_fd));
        }
        for (name, slot) in [
            ("ports", &mut me.ports),
            ("ifslots", &mut me.ifslots),
            ("ifslots_far", &mut me.ifslots_far),
            ("fdb", &mut me.fdb),
            ("xsks", &mut me.xsks),
            ("devs", &mut me.devs),
            ("stats", &mut me.stats),
            ("config", &mut me.config),
            ("ident", &mut ident),
        ] {
            let c = CString::new(name).expect("no NUL");
            // SAFETY: obj is loaded; the name is a valid C string.
            let fd = unsafe { lx::bpf_object__find_map_fd_by_name(me.obj, c.as_ptr()) };
            if fd < 0 {
                return Err(io::Error::other(format!("XDP object has no {name} map")));
            }
            *slot = Map::from_fd(name, fd)?;
        }
        // SAFETY: bpf_prog_info is a plain C struct for which zero bytes are valid.
        let mut info: lx::bpf_prog_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<lx::bpf_prog_info>() as u32;
        // SAFETY: info is a zeroed bpf_prog_info of `len` bytes owned by us.
        let r = unsafe { lx::bpf_prog_get_info_by_fd(me.prog_fd, &mut info, &mut len) };
        if r != 0 {
            return Err(last_os_error_or(r));
        }
        me.prog_id = info.id;
        let devs_id = map_info(me.devs.fd)?.id;
        me.update(&ident, &0u32, &u64::from(devs_id))?;
        if count_refused {
            // SAFETY: packet[0] belongs to the loaded obj.
            me.filter_fd = unsafe { lx::bpf_program__fd(packet[0]) };
            if me.filter_fd < 0 {
                return Err(last_os_error_or(me.filter_fd));
            }
            me.ingress = packet[1];
            // SAFETY: refused belongs to the loaded obj.
            let link = unsafe { lx::bpf_program__attach(refused) };
            if link.is_null() {
                // libbpf 1.x returns NULL and sets errno.
                let e = io::Error::last_os_error();
                return Err(io::Error::new(
                    e.kind(),
                    format!("attach {REFUSED_PROG} to the xdp_redirect_err tracepoint: {e}"),
                ));
            }
            me.refused = link;
        }
        Ok(me)
    }

    /// Whether frames the egress device refused are counted
    /// ([`PortStats::fwd_tx_refused`]).
    pub fn counts_refused(&self) -> bool {
        !self.refused.is_null()
    }

    /// The packet ports' socket filter, when loaded (with the fast path).
    pub fn filter_fd(&self) -> Option<c_int> {
        (self.filter_fd >= 0).then_some(self.filter_fd)
    }

    /// Attaches the packet ports' ingress program to `ifindex` (tcx, after any program
    /// already there); it stays attached until the returned link is dropped.
    pub fn attach_ingress(&self, ifindex: u32) -> io::Result<TcxLink> {
        if self.ingress.is_null() {
            return Err(io::Error::other(format!(
                "{INGRESS_PROG} is loaded only with the fast path"
            )));
        }
        let ifindex = c_int::try_from(ifindex).map_err(|_| io::Error::other("bad ifindex"))?;
        // SAFETY: ingress belongs to the loaded object, which outlives this call; NULL opts
        // means defaults (append).
        let link = unsafe { lx::bpf_program__attach_tcx(self.ingress, ifindex, std::ptr::null()) };
        if link.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(TcxLink(link))
    }

    /// Kernel id of the loaded program.
    pub fn prog_id(&self) -> u32 {
        self.prog_id
    }

    /// Attaches the program to `ifindex` with `XDP_FLAGS_*` `flags` (0: the kernel picks
    /// native if the driver has it, else generic). Fails with EEXIST if a program is
    /// already attached.
    pub fn attach(&self, ifindex: u32, flags: u32) -> io::Result<()> {
        const XDP_FLAGS_UPDATE_IF_NOEXIST: u32 = 1;
        let ifindex = c_int::try_from(ifindex).map_err(|_| io::Error::other("bad ifindex"))?;
        // SAFETY: plain syscall wrapper; NULL opts means defaults.
        let r = unsafe {
            lx::bpf_xdp_attach(
                ifindex,
                self.prog_fd,
                flags | XDP_FLAGS_UPDATE_IF_NOEXIST,
                std::ptr::null(),
            )
        };
        if r < 0 {
            return Err(last_os_error_or(r));
        }
        Ok(())
    }

    fn update<K: Plain, V: Plain>(&self, m: &Map, k: &K, v: &V) -> io::Result<()> {
        m.check_key::<K>()?;
        m.check_value::<V>(false)?;
        // SAFETY: the kernel reads key_size bytes from k and value_size bytes from v, and
        // K and V are exactly those sizes (checked above against what the kernel reported
        // for this map); Plain values have no padding, so every byte read is initialized.
        let r = unsafe { lx::bpf_map_update_elem(m.fd, bytes_of(k), bytes_of(v), 0) };
        if r < 0 {
            return Err(last_os_error_or(r));
        }
        Ok(())
    }

    fn delete<K: Plain>(&self, m: &Map, k: &K) -> io::Result<bool> {
        m.check_key::<K>()?;
        // SAFETY: the kernel reads key_size bytes from k, and K is exactly that size
        // (checked above); Plain values have no padding.
        let r = unsafe { lx::bpf_map_delete_elem(m.fd, bytes_of(k)) };
        if r < 0 {
            let e = last_os_error_or(r);
            if e.raw_os_error() == Some(libc::ENOENT) {
                return Ok(false);
            }
            return Err(e);
        }
        Ok(true)
    }

    fn lookup<K: Plain, V: Plain + Default>(&self, m: &Map, k: &K) -> io::Result<Option<V>> {
        m.check_key::<K>()?;
        m.check_value::<V>(false)?;
        let mut v = V::default();
        // SAFETY: the kernel reads key_size bytes from k and writes value_size bytes into
        // v, which we own exclusively for the call; K and V are exactly those sizes
        // (checked above), and any bytes written are a valid V (Plain).
        let r = unsafe { lx::bpf_map_lookup_elem(m.fd, bytes_of(k), (&mut v as *mut V).cast()) };
        if r < 0 {
            let e = last_os_error_or(r);
            if e.raw_os_error() == Some(libc::ENOENT) {
                return Ok(None);
            }
            return Err(e);
        }
        Ok(Some(v))
    }

    /// Sets the configuration of the port in `slot`, on interface `ifindex`. The port's
    /// entry is written before the ifindex points at it.
    pub fn set_port(&self, slot: u16, ifindex: u32, cfg: &PortCfg) -> io::Result<()> {
        if ifindex == 0 || u32::from(slot) >= MAX_PORTS {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let mut c = *cfg;
        c.ifindex = ifindex;
        self.update(&self.ports, &u32::from(slot), &c)?;
        let v = u32::from(slot) + 1;
        if ifindex < IFSLOT_DIRECT {
            self.update(&self.ifslots, &ifindex, &v)
        } else {
            self.update(&self.ifslots_far, &ifindex, &v)
        }
    }

    /// The configuration of the port on `ifindex`, if any (looked up as the program does).
    pub fn port(&self, ifindex: u32) -> io::Result<Option<PortCfg>> {
        let slot: Option<u32> = if ifindex < IFSLOT_DIRECT {
            self.lookup(&self.ifslots, &ifindex)?
        } else {
            self.lookup(&self.ifslots_far, &ifindex)?
        };
        let Some(slot) = slot.filter(|s| *s != 0).map(|s| s - 1) else {
            return Ok(None);
        };
        let c: Option<PortCfg> = self.lookup(&self.ports, &slot)?;
        Ok(c.filter(|c| c.ifindex == ifindex))
    }

    /// Removes the port in `slot` on `ifindex`: the ifindex stops pointing at it first.
    /// Whether it was there.
    pub fn del_port(&self, slot: u16, ifindex: u32) -> io::Result<bool> {
        let was = self.port(ifindex)?.is_some();
        if ifindex < IFSLOT_DIRECT {
            self.update(&self.ifslots, &ifindex, &0u32)?;
        } else {
            self.delete(&self.ifslots_far, &ifindex)?;
        }
        self.update(&self.ports, &u32::from(slot), &PortCfg::default())?;
        Ok(was)
    }

    /// Points XSKMAP slot `key` at the AF_XDP socket `fd`.
    pub fn set_xsk(&self, key: u32, fd: i32) -> io::Result<()> {
        let fd = fd as u32;
        self.update(&self.xsks, &key, &fd)
    }

    pub fn del_xsk(&self, key: u32) -> io::Result<bool> {
        self.delete(&self.xsks, &key)
    }

    /// Makes `ifindex`, the port in `slot`, a redirect target of the fast path.
    pub fn set_dev(&self, slot: u16, ifindex: u32) -> io::Result<()> {
        self.update(&self.devs, &u32::from(slot), &ifindex)
    }

    pub fn del_dev(&self, slot: u16) -> io::Result<bool> {
        self.delete(&self.devs, &u32::from(slot))
    }

    pub fn fdb_set(&self, k: &FdbKey, v: &FdbVal) -> io::Result<()> {
        self.update(&self.fdb, k, v)
    }

    pub fn fdb_get(&self, k: &FdbKey) -> io::Result<Option<FdbVal>> {
        self.lookup(&self.fdb, k)
    }

    pub fn fdb_del(&self, k: &FdbKey) -> io::Result<bool> {
        self.delete(&self.fdb, k)
    }

    /// Every FDB entry (key by key: `get_next_key` then lookup). Entries added or removed
    /// concurrently may or may not be seen.
    pub fn fdb_dump(&self, out: &mut Vec<(FdbKey, FdbVal)>) -> io::Result<()> {
        out.clear();
        self.fdb.check_key::<FdbKey>()?;
        let mut prev: Option<FdbKey> = None;
        loop {
            let mut next = FdbKey::default();
            let pk: *const c_void = match &prev {
                Some(k) => bytes_of(k),
                None => std::ptr::null(),
            };
            // SAFETY: pk is NULL (first key) or a live FdbKey the kernel reads key_size
            // bytes from; next is an FdbKey we own that it writes key_size bytes into;
            // FdbKey is exactly key_size bytes (checked above).
            let r = unsafe {
                lx::bpf_map_get_next_key(self.fdb.fd, pk, (&mut next as *mut FdbKey).cast())
            };
            if r < 0 {
                let e = last_os_error_or(r);
                if e.raw_os_error() == Some(libc::ENOENT) {
                    return Ok(());
                }
                return Err(e);
            }
            if let Some(v) = self.lookup::<FdbKey, FdbVal>(&self.fdb, &next)? {
                out.push((next, v));
            }
            prev = Some(next);
        }
    }

    /// Runs the program `repeat` times on `frame` as if it had arrived on `ifindex`, queue
    /// 0 (`BPF_PROG_TEST_RUN`; nothing is transmitted). For benchmarks and tests of the
    /// program's decisions.
    pub fn test_run(&self, ifindex: u32, frame: &[u8], repeat: u32) -> io::Result<TestRun> {
        self.test_run_on_queue(ifindex, 0, frame, repeat)
    }

    /// [`XdpObject::test_run`] on receive queue `queue` of `ifindex` (the kernel refuses a
    /// queue the device does not have).
    pub fn test_run_on_queue(
        &self,
        ifindex: u32,
        queue: u32,
        frame: &[u8],
        repeat: u32,
    ) -> io::Result<TestRun> {
        let mut out = vec![0u8; frame.len() + 256];
        let ctx = lx::xdp_md {
            data: 0,
            data_end: u32::try_from(frame.len()).map_err(|_| io::Error::other("frame too long"))?,
            data_meta: 0,
            ingress_ifindex: ifindex,
            rx_queue_index: queue,
            egress_ifindex: 0,
        };
        // SAFETY: bpf_test_run_opts is a plain C struct for which zero bytes are valid.
        let mut o: lx::bpf_test_run_opts = unsafe { std::mem::zeroed() };
        o.sz = std::mem::size_of::<lx::bpf_test_run_opts>();
        o.data_in = frame.as_ptr().cast();
        o.data_size_in = ctx.data_end;
        o.data_out = out.as_mut_ptr().cast();
        o.data_size_out = out.len() as u32;
        o.ctx_in = (&ctx as *const lx::xdp_md).cast();
        o.ctx_size_in = std::mem::size_of::<lx::xdp_md>() as u32;
        o.repeat = c_int::try_from(repeat.max(1)).unwrap_or(c_int::MAX);
        // SAFETY: every pointer in `o` points at a live buffer of the stated size (frame,
        // out, ctx), which the kernel only reads (data_in, ctx_in) or writes within
        // data_size_out (out).
        let r = unsafe { lx::bpf_prog_test_run_opts(self.prog_fd, &mut o) };
        if r < 0 {
            return Err(last_os_error_or(r));
        }
        out.truncate((o.data_size_out as usize).min(out.len()));
        Ok(TestRun {
            action: o.retval,
            frame: out,
            ns_per_run: o.duration,
        })
    }

    /// Sets the program's global configuration.
    pub fn set_conf(&self, c: &Conf) -> io::Result<()> {
        self.update(&self.config, &0u32, c)
    }

    /// Counters of port `index`, summed over CPUs.
    pub fn port_stats(&self, index: u16) -> io::Result<PortStats> {
        self.stats.check_key::<u32>()?;
        self.stats.check_value::<PortStats>(true)?;
        let mut per_cpu = vec![PortStats::default(); self.ncpus];
        let k = u32::from(index);
        // SAFETY: a per-CPU lookup reads key_size bytes from k and writes, for each of the
        // kernel's possible CPUs, value_size bytes at a stride of value_size rounded up to
        // 8. u32 is key_size and PortStats is that stride (checked above), and per_cpu
        // holds self.ncpus of them (the highest possible CPU + 1, not fewer than the
        // kernel's count); the buffer is ours for the call.
        let r = unsafe {
            lx::bpf_map_lookup_elem(self.stats.fd, bytes_of(&k), per_cpu.as_mut_ptr().cast())
        };
        if r < 0 {
            return Err(last_os_error_or(r));
        }
        let mut s = PortStats::default();
        for c in &per_cpu {
            s.fwd_rx_packets += c.fwd_rx_packets;
            s.fwd_rx_bytes += c.fwd_rx_bytes;
            s.fwd_tx_packets += c.fwd_tx_packets;
            s.fwd_tx_bytes += c.fwd_tx_bytes;
            s.oversize += c.oversize;
            s.fwd_tx_refused += c.fwd_tx_refused;
            s.no_socket += c.no_socket;
        }
        Ok(s)
    }

    /// Zeroes the counters of port `index` (a port id reused by a new port).
    pub fn reset_port_stats(&self, index: u16) -> io::Result<()> {
        self.stats.check_key::<u32>()?;
        self.stats.check_value::<PortStats>(true)?;
        let zero = vec![PortStats::default(); self.ncpus];
        let k = u32::from(index);
        // SAFETY: as in port_stats, but the kernel reads the per-CPU values from `zero`,
        // which holds at least as many PortStats (each exactly the stride) as it reads.
        let r = unsafe {
            lx::bpf_map_update_elem(self.stats.fd, bytes_of(&k), zero.as_ptr().cast(), 0)
        };
        if r < 0 {
            return Err(last_os_error_or(r));
        }
        Ok(())
    }
}

/// A tcx attachment of the packet ports' ingress program; dropping it detaches it.
#[derive(Debug)]
pub struct TcxLink(*mut lx::bpf_link);

// SAFETY: the link is only destroyed, once, in drop (&mut self); libbpf links are heap
// objects with no thread affinity.
unsafe impl Send for TcxLink {}
// SAFETY: no method reads the link through a shared reference.
unsafe impl Sync for TcxLink {}

impl Drop for TcxLink {
    fn drop(&mut self) {
        // SAFETY: the link came from bpf_program__attach_tcx and is destroyed exactly
        // once, here; the kernel keeps the program alive while attached, so this is
        // valid even after the object was closed.
        unsafe { lx::bpf_link__destroy(self.0) };
    }
}

impl Drop for XdpObject {
    fn drop(&mut self) {
        if !self.refused.is_null() {
            // SAFETY: the link came from bpf_program__attach and is destroyed exactly
            // once, here, before its object; this detaches the tracing program.
            unsafe { lx::bpf_link__destroy(self.refused) };
        }
        // SAFETY: obj came from bpf_object__open_mem and is closed exactly once, here;
        // closing it closes the program and map fds (interfaces keep their own reference).
        unsafe { lx::bpf_object__close(self.obj) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_c_structs() {
        assert_eq!(std::mem::size_of::<PortCfg>(), 24 + 2 * 512);
        assert_eq!(std::mem::size_of::<FdbKey>(), 8);
        assert_eq!(std::mem::size_of::<FdbVal>(), 32);
        assert_eq!(std::mem::size_of::<PortStats>(), 56);
        assert_eq!(std::mem::size_of::<Conf>(), 8);
    }

    fn message(r: io::Result<()>) -> String {
        match r {
            Ok(()) => "ok".into(),
            Err(e) => format!("{:?}: {e}", e.kind()),
        }
    }

    /// The Rust types of a map access against the sizes the kernel gave for the map
    /// (no BPF needed: the maps are described by hand).
    #[test]
    fn map_accesses_must_match_the_maps_sizes() {
        let fdb = Map {
            name: "fdb",
            fd: -1,
            key_size: 8,
            value_size: 32,
            per_cpu: false,
        };
        assert_eq!(message(fdb.check_key::<FdbKey>()), "ok");
        assert_eq!(message(fdb.check_value::<FdbVal>(false)), "ok");
        assert_eq!(
            message(fdb.check_key::<u32>()),
            "InvalidInput: BPF map fdb: key of 4 bytes, the map's key_size is 8"
        );
        assert_eq!(
            message(fdb.check_value::<u64>(false)),
            "InvalidInput: BPF map fdb: value of 8 bytes, the map's value_size is 32"
        );
        assert_eq!(
            message(fdb.check_value::<PortCfg>(false)),
            "InvalidInput: BPF map fdb: value of 1048 bytes, the map's value_size is 32"
        );
        assert_eq!(
            message(fdb.check_value::<FdbVal>(true)),
            "InvalidInput: BPF map fdb: not a per-CPU map"
        );
        // Per-CPU values sit value_size rounded up to 8 apart.
        let stats = |value_size| Map {
            name: "stats",
            fd: -1,
            key_size: 4,
            value_size,
            per_cpu: true,
        };
        assert_eq!(message(stats(56).check_value::<PortStats>(true)), "ok");
        assert_eq!(message(stats(49).check_value::<PortStats>(true)), "ok");
        assert_eq!(
            message(stats(60).check_value::<PortStats>(true)),
            "InvalidInput: BPF map stats: value of 56 bytes, the map's value_size is 60"
        );
        assert_eq!(
            message(stats(56).check_value::<PortStats>(false)),
            "InvalidInput: BPF map stats: per-CPU map accessed with a single value"
        );
    }

    /// The loaded maps carry the kernel's sizes, and a mismatched access is refused
    /// before the syscall (which would read or write past the Rust value). Needs BPF:
    /// skipped, saying so, where the kernel does not allow it.
    #[test]
    fn mismatched_map_accesses_are_refused() {
        let o = match XdpObject::load(64, false) {
            Ok(o) => o,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                eprintln!("skipped: loading BPF is not permitted here ({e}); run as root");
                return;
            }
            Err(e) => panic!("load XDP object: {e}"),
        };
        let sizes = |m: &Map| (m.name, m.key_size, m.value_size, m.per_cpu);
        assert_eq!(sizes(&o.fdb), ("fdb", 8, 32, false));
        assert_eq!(sizes(&o.ports), ("ports", 4, 1048, false));
        assert_eq!(sizes(&o.stats), ("stats", 4, 56, true));
        assert_eq!(sizes(&o.config), ("config", 4, 8, false));
        let k = FdbKey {
            mac: [2, 0, 0, 0, 0, 1],
            vid: 100,
        };
        let v = FdbVal {
            ifindex: 7,
            ..FdbVal::default()
        };
        assert_eq!(
            message(o.update(&o.fdb, &1u32, &v)),
            "InvalidInput: BPF map fdb: key of 4 bytes, the map's key_size is 8"
        );
        assert_eq!(
            message(o.update(&o.fdb, &k, &0u64)),
            "InvalidInput: BPF map fdb: value of 8 bytes, the map's value_size is 32"
        );
        assert_eq!(
            message(o.lookup::<FdbKey, u32>(&o.fdb, &k).map(|_| ())),
            "InvalidInput: BPF map fdb: value of 4 bytes, the map's value_size is 32"
        );
        assert_eq!(
            message(o.delete(&o.fdb, &1u32).map(|_| ())),
            "InvalidInput: BPF map fdb: key of 4 bytes, the map's key_size is 8"
        );
        assert_eq!(
            message(o.update(&o.stats, &0u32, &PortStats::default())),
            "InvalidInput: BPF map stats: per-CPU map accessed with a single value"
        );
        // Nothing reached the map; the right types still work.
        let mut all = Vec::new();
        o.fdb_dump(&mut all).expect("dump");
        assert_eq!(all, vec![]);
        o.fdb_set(&k, &v).expect("update");
        assert_eq!(o.fdb_get(&k).expect("lookup"), Some(v));
        assert_eq!(o.port_stats(1).expect("stats"), PortStats::default());
    }

    #[test]
    fn program_loads_and_maps_round_trip() {
        if !crate::testutil::root_or_skip("program_loads_and_maps_round_trip") {
            return;
        }
        {
            // Needs root (BPF), like the rest of the datapath's port tests.
            let o = XdpObject::load(1024, true).expect("load XDP object (root, BPF)");
            assert!(o.prog_id() > 0);
            assert!(o.counts_refused());
            assert!(!XdpObject::load(1, false).expect("load").counts_refused());
            let k = FdbKey {
                mac: [2, 0, 0, 0, 0, 1],
                vid: 100,
            };
            let v = FdbVal {
                ifindex: 7,
                port: 3,
                flags: FDB_STATIC,
                slot: 2,
                seen_ns: 11,
                refresh_ns: 12,
                ..FdbVal::default()
            };
            o.fdb_set(&k, &v).expect("update");
            assert_eq!(o.fdb_get(&k).expect("lookup"), Some(v));
            let mut all = Vec::new();
            o.fdb_dump(&mut all).expect("dump");
            assert_eq!(all, vec![(k, v)]);
            assert!(o.fdb_del(&k).expect("delete"));
            assert!(!o.fdb_del(&k).expect("delete again"));
            assert_eq!(o.port_stats(5).expect("stats"), PortStats::default());
            // Ports are found by ifindex through the array (small ifindexes) or the hash
            // map (large ones), and only while the slot still belongs to that ifindex.
            for (slot, ifindex) in [(4u16, 9u32), (5, IFSLOT_DIRECT + 3)] {
                let c = PortCfg {
                    index: slot,
                    mtu: 1500,
                    ..PortCfg::default()
                };
                assert_eq!(o.port(ifindex).expect("lookup"), None);
                o.set_port(slot, ifindex, &c).expect("set port");
                let got = o.port(ifindex).expect("lookup").expect("port");
                assert_eq!((got.index, got.mtu, got.ifindex), (slot, 1500, ifindex));
                o.set_dev(slot, 1).expect("set dev (lo)");
                assert!(o.del_dev(slot).expect("del dev"));
                assert!(o.del_port(slot, ifindex).expect("del port"));
                assert_eq!(o.port(ifindex).expect("lookup"), None);
                assert!(!o.del_port(slot, ifindex).expect("del port again"));
            }
            // A slot taken over by another interface no longer answers for the old one.
            o.set_port(6, 20, &PortCfg::default()).expect("set");
            o.set_port(6, 21, &PortCfg::default()).expect("set");
            assert_eq!(o.port(20).expect("lookup"), None);
            assert_eq!(o.port(21).expect("lookup").map(|c| c.ifindex), Some(21));
            assert!(o
                .set_port(MAX_PORTS as u16, 22, &PortCfg::default())
                .is_err());
        }
    }
}
