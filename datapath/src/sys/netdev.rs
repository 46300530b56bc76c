//! Network interface queries and settings through ioctls on a throwaway socket, plus the
//! process-wide preparations AF_XDP needs (locked-memory limit, bpffs).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{ifname_cstr, ifreq_for};

/// Index of the interface called `name` in the caller's network namespace.
pub fn if_index(name: &str) -> Option<u32> {
    let c = ifname_cstr(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// A socket for interface ioctls. It stays in the network namespace it was opened in:
/// ioctls on it name interfaces of that namespace, whichever namespace the caller is in.
pub fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The interface ioctls that carry their argument inside the `ifreq` itself (no pointer
/// in it for the kernel to follow).
#[derive(Debug, Clone, Copy)]
enum IfreqRequest {
    GetFlags,
    SetFlags,
    GetMtu,
    SetMtu,
}

fn ifreq_ioctl(req: IfreqRequest, ifr: &mut libc::ifreq) -> io::Result<()> {
    let req = match req {
        IfreqRequest::GetFlags => libc::SIOCGIFFLAGS,
        IfreqRequest::SetFlags => libc::SIOCSIFFLAGS,
        IfreqRequest::GetMtu => libc::SIOCGIFMTU,
        IfreqRequest::SetMtu => libc::SIOCSIFMTU,
    };
    let sock = ioctl_socket()?;
    // SAFETY: `ifr` is a valid, exclusively borrowed ifreq for the duration of the call;
    // these four requests read and write only the ifreq itself (name, flags or MTU), so
    // whatever pointer its union might hold is never followed.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), req as _, ifr as *mut libc::ifreq) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `SIOCETHTOOL`, the one ioctl here whose `ifreq` carries a pointer (`ifr_data`): the
/// kernel reads the `u32` command at that address, then copies the command's own struct
/// in and out there, sized by the command alone. So the command structs are built only in
/// this module, each constructor setting only commands whose struct it is, and
/// [`ethtool::run`] takes the struct itself (never a raw pointer) and points `ifr_data`
/// at it.
mod ethtool {
    use std::io;
    use std::os::fd::{AsRawFd, OwnedFd};

    use crate::sys::{c_chars_to_string, ifreq_for};

    /// A command struct of linux/ethtool.h.
    ///
    /// # Safety
    /// Implement only for `#[repr(C)]` structs that start with the `u32` command, set
    /// only by their own constructors, to commands for which the kernel reads and writes
    /// at most `size_of::<Self>()` bytes at `ifr_data`.
    pub(super) unsafe trait Command {}

    const GDRVINFO: u32 = 0x0000_0003;
    const GTXCSUM: u32 = 0x0000_0016;
    const GGRO: u32 = 0x0000_002b;

    /// `struct ethtool_drvinfo`, for `ETHTOOL_GDRVINFO`.
    #[repr(C)]
    pub(super) struct Drvinfo {
        cmd: u32,
        driver: [libc::c_char; 32],
        version: [libc::c_char; 32],
        fw_version: [libc::c_char; 32],
        bus_info: [libc::c_char; 32],
        erom_version: [libc::c_char; 32],
        reserved2: [libc::c_char; 12],
        n_priv_flags: u32,
        n_stats: u32,
        testinfo_len: u32,
        eedump_len: u32,
        regdump_len: u32,
    }

    impl Drvinfo {
        pub(super) fn new() -> Drvinfo {
            Drvinfo {
                cmd: GDRVINFO,
                driver: [0; 32],
                version: [0; 32],
                fw_version: [0; 32],
                bus_info: [0; 32],
                erom_version: [0; 32],
                reserved2: [0; 12],
                n_priv_flags: 0,
                n_stats: 0,
                testinfo_len: 0,
                eedump_len: 0,
                regdump_len: 0,
            }
        }

        pub(super) fn driver(&self) -> String {
            c_chars_to_string(&self.driver)
        }
    }

    // SAFETY: repr(C), starts with `cmd`, which only `new` sets, to ETHTOOL_GDRVINFO: the
    // kernel reads the 4-byte command and writes one struct ethtool_drvinfo (196 bytes,
    // this struct's size: see the layout test).
    unsafe impl Command for Drvinfo {}

    /// The settings read through `struct ethtool_value`.
    #[derive(Debug, Clone, Copy)]
    pub(super) enum Flag {
        /// `ETHTOOL_GGRO`: generic receive offload.
        Gro,
        /// `ETHTOOL_GTXCSUM`: TX checksum offload.
        TxCsum,
    }

    /// `struct ethtool_value`, for the `ETHTOOL_G*` commands of [`Flag`].
    #[repr(C)]
    pub(super) struct Value {
        cmd: u32,
        data: u32,
    }

    impl Value {
        pub(super) fn get(flag: Flag) -> Value {
            let cmd = match flag {
                Flag::Gro => GGRO,
                Flag::TxCsum => GTXCSUM,
            };
            Value { cmd, data: 0 }
        }

        pub(super) fn data(&self) -> u32 {
            self.data
        }
    }

    // SAFETY: repr(C), starts with `cmd`, which only `get` sets, to ETHTOOL_GGRO or
    // ETHTOOL_GTXCSUM: for both the kernel reads the 4-byte command and writes one struct
    // ethtool_value (8 bytes, this struct's size).
    unsafe impl Command for Value {}

    /// Runs the ethtool command `c` on interface `name` of the namespace `sock` (an
    /// [`super::ioctl_socket`]) was opened in; the kernel's answer is in `c`.
    pub(super) fn run<C: Command>(sock: &OwnedFd, name: &str, c: &mut C) -> io::Result<()> {
        let mut ifr = ifreq_for(name)?;
        ifr.ifr_ifru.ifru_data = (c as *mut C).cast();
        // SAFETY: `ifr` is a valid ifreq owned here; its `ifr_data` points at `c`, which
        // is exclusively borrowed for the whole call, so the kernel's reads and writes
        // there cannot alias anything else; by `Command`'s contract they stay within
        // size_of::<C>() bytes. Nothing keeps the pointer after the call.
        let r = unsafe {
            libc::ioctl(
                sock.as_raw_fd(),
                libc::SIOCETHTOOL as _,
                &mut ifr as *mut libc::ifreq,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    #[cfg(test)]
    pub(super) const fn sizes() -> (usize, usize) {
        (std::mem::size_of::<Drvinfo>(), std::mem::size_of::<Value>())
    }
}

/// Kernel driver of an interface (`veth`, `tun`, `igb`, ...), via `ETHTOOL_GDRVINFO`.
pub fn driver_name(name: &str) -> io::Result<String> {
    let mut info = ethtool::Drvinfo::new();
    ethtool::run(&ioctl_socket()?, name, &mut info)?;
    Ok(info.driver())
}

/// Whether generic receive offload is on (`ETHTOOL_GGRO`) for interface `name` of the
/// namespace `sock` (an [`ioctl_socket`]) was opened in.
pub fn gro_enabled_on(sock: &OwnedFd, name: &str) -> io::Result<bool> {
    let mut v = ethtool::Value::get(ethtool::Flag::Gro);
    ethtool::run(sock, name, &mut v)?;
    Ok(v.data() != 0)
}

/// Whether TX checksum offload is on (`ETHTOOL_GTXCSUM`) for interface `name` of the
/// namespace `sock` (an [`ioctl_socket`]) was opened in.
pub fn tx_csum_enabled_on(sock: &OwnedFd, name: &str) -> io::Result<bool> {
    let mut v = ethtool::Value::get(ethtool::Flag::TxCsum);
    ethtool::run(sock, name, &mut v)?;
    Ok(v.data() != 0)
}

/// Sets IFF_UP on an interface.
pub fn set_up(name: &str) -> io::Result<()> {
    let mut ifr = ifreq_for(name)?;
    ifreq_ioctl(IfreqRequest::GetFlags, &mut ifr)?;
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    ifr.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    ifreq_ioctl(IfreqRequest::SetFlags, &mut ifr)
}

/// Sets the MTU of an interface.
pub fn set_mtu(name: &str, mtu: u32) -> io::Result<()> {
    let mut ifr = ifreq_for(name)?;
    ifr.ifr_ifru.ifru_mtu =
        i32::try_from(mtu).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    ifreq_ioctl(IfreqRequest::SetMtu, &mut ifr)
}

/// MTU of an interface.
pub fn mtu(name: &str) -> io::Result<u32> {
    let mut ifr = ifreq_for(name)?;
    ifreq_ioctl(IfreqRequest::GetMtu, &mut ifr)?;
    // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member of the union.
    let mtu = unsafe { ifr.ifr_ifru.ifru_mtu };
    Ok(mtu.max(0) as u32)
}

/// Number of receive queues the interface exposes (sysfs `queues/rx-N`).
pub fn rx_queue_count(name: &str) -> io::Result<u32> {
    let dir = std::fs::read_dir(format!("/sys/class/net/{name}/queues"))?;
    let mut n = 0;
    for e in dir {
        if e?.file_name().to_string_lossy().starts_with("rx-") {
            n += 1;
        }
    }
    Ok(n)
}

/// Raises RLIMIT_MEMLOCK to infinity (UMEM registration pins memory; older kernels charge
/// it against this limit).
pub fn raise_memlock() -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `lim` is a valid rlimit that outlives the call.
    let r = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Mounts bpffs at /sys/fs/bpf unless it is mounted there already. libxdp pins its
/// dispatcher there; without it libxdp loads a single program. Failure is returned for the
/// caller to ignore or log.
pub fn ensure_bpffs() -> io::Result<()> {
    const PATH: &std::ffi::CStr = c"/sys/fs/bpf";
    // SAFETY: `statfs` is plain data; all-zero is valid.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: PATH is NUL-terminated and `st` is a valid out pointer for the call.
    let r = unsafe { libc::statfs(PATH.as_ptr(), &mut st) };
    if r == 0 && st.f_type as u64 == libc::BPF_FS_MAGIC as u64 {
        return Ok(());
    }
    // SAFETY: all pointers are NUL-terminated static strings; data may be NULL.
    let r = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            PATH.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Switches the interface's NAPI processing to kernel threads (`threaded` in sysfs) and
/// pins every NAPI thread of it to `cpu`; returns the pinned thread ids. Fails when the
/// device has no NAPI instance (e.g. a veth without a native XDP program).
pub fn pin_napi_threads(name: &str, cpu: usize) -> io::Result<Vec<i32>> {
    let path = format!("/sys/class/net/{name}/threaded");
    std::fs::write(&path, "1")?;
    pin_existing_napi_threads(name, cpu)
}

/// Pins the NAPI kernel threads of interface `name` (already threaded, possibly in another
/// namespace: thread names are global) to `cpu`; returns their ids, an error if none.
pub fn pin_existing_napi_threads(name: &str, cpu: usize) -> io::Result<Vec<i32>> {
    let want = format!("napi/{name}-");
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(e.path().join("comm")) else {
            continue;
        };
        let comm = comm.trim_end();
        // Older kernels truncate thread names to 15 bytes.
        let matches = comm.starts_with(&want) || (comm.len() == 15 && want.starts_with(comm));
        if !matches {
            continue;
        }
        set_affinity(pid, cpu)?;
        pids.push(pid);
    }
    if pids.is_empty() {
        return Err(io::Error::other(format!(
            "{name} has no NAPI thread (threaded NAPI needs a NAPI instance)"
        )));
    }
    Ok(pids)
}

/// Returns the interface's NAPI processing to softirq context.
pub fn unthread_napi(name: &str) -> io::Result<()> {
    std::fs::write(format!("/sys/class/net/{name}/threaded"), "0")
}

/// Pins thread `pid` to `cpu`.
pub fn set_affinity(pid: i32, cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: cpu_set_t is a plain bit array; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: cpu is below CPU_SETSIZE (checked above), so CPU_SET stays inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: passes a valid cpu_set_t of the size given; the kernel only reads it.
    let r = unsafe { libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command structs are the kernel's sizes: `ethtool_drvinfo` 196 bytes (4 + 5 *
    /// 32 + 12 + 5 * 4), `ethtool_value` 8.
    #[test]
    fn ethtool_structs_have_the_kernels_sizes() {
        assert_eq!(ethtool::sizes(), (196, 8));
    }

    /// The ethtool reads on a veth pair (root: creates the pair).
    #[test]
    fn ethtool_reads_driver_gro_and_tx_csum_of_a_veth() {
        if !crate::testutil::root_or_skip("ethtool_reads_driver_gro_and_tx_csum_of_a_veth") {
            return;
        }
        let v = crate::testutil::VethPair::new("et");
        assert_eq!(driver_name(&v.a).expect("driver"), "veth");
        let sock = ioctl_socket().expect("socket");
        for (state, want) in [("off", false), ("on", true)] {
            crate::testutil::run("ethtool", &["-K", &v.a, "gro", state, "tx", state]);
            assert_eq!(
                gro_enabled_on(&sock, &v.a).expect("gro"),
                want,
                "gro {state}"
            );
            assert_eq!(
                tx_csum_enabled_on(&sock, &v.a).expect("tx csum"),
                want,
                "tx {state}"
            );
        }
        let e = driver_name("nosuchdev0").expect_err("no such device");
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV));
    }
}
