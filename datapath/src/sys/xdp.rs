//! The XDP program attached to an interface: what it is, whether vswitch loaded it, and
//! how to remove it (libxdp's `xdp_multiprog`, which understands both single programs and
//! libxdp's dispatcher and unpins the dispatcher's bpffs state on detach).
//!
//! Ownership: a program is vswitch's only if the kernel reports it under vswitch's program
//! name ([`crate::sys::bpf::PROG_NAME`]) *and* one of the maps bound to it (the object's
//! `.rodata`, which libbpf binds to every program it loads) holds [`OWNER_MARK`], the
//! value of `bpf_metadata_vswitch_owner` in `datapath/bpf/vswitch_xdp.c`. A name alone
//! is what any program could be called; the mark is program metadata no other loader
//! writes by accident.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// How an XDP program is attached to an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// In the generic skb path (`XDP_FLAGS_SKB_MODE`).
    Generic,
    /// Offloaded to the NIC.
    Offload,
    /// Reported without a mode.
    Unknown,
}

impl std::fmt::Display for AttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
            AttachMode::Offload => "offload",
            AttachMode::Unknown => "unknown",
        })
    }
}

/// The XDP program(s) attached to an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// Id of the attached program (the dispatcher when `dispatcher`).
    pub prog_id: u32,
    /// Name of the attached program, or of the first program behind the dispatcher.
    pub name: String,
    pub mode: AttachMode,
    /// libxdp's multi-program dispatcher is attached (component programs behind it).
    pub dispatcher: bool,
}

/// Owns an `xdp_multiprog` handle and closes it on drop.
struct Multiprog(*mut libxdp_sys::xdp_multiprog);

impl Multiprog {
    /// `Ok(None)` when no program is attached.
    fn get(ifindex: u32) -> io::Result<Option<Multiprog>> {
        let ifindex =
            i32::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: plain libxdp call; the result is a pointer, NULL or an ERR_PTR, checked
        // below with libxdp_get_error before any use.
        let mp = unsafe { libxdp_sys::xdp_multiprog__get_from_ifindex(ifindex) };
        // SAFETY: libxdp_get_error only inspects the pointer value.
        let err = unsafe { libxdp_sys::libxdp_get_error(mp.cast_const().cast()) };
        if err == -(libc::ENOENT as libc::c_long) {
            return Ok(None);
        }
        if err != 0 {
            return Err(io::Error::from_raw_os_error((-err) as i32));
        }
        if mp.is_null() {
            return Ok(None);
        }
        Ok(Some(Multiprog(mp)))
    }
}

impl Drop for Multiprog {
    fn drop(&mut self) {
        // SAFETY: self.0 is a valid multiprog handle owned by this value, closed once.
        unsafe { libxdp_sys::xdp_multiprog__close(self.0) };
    }
}

fn prog_name(prog: *const libxdp_sys::xdp_program) -> String {
    if prog.is_null() {
        return String::new();
    }
    // SAFETY: `prog` is a non-NULL program owned by a live multiprog handle.
    let name = unsafe { libxdp_sys::xdp_program__name(prog) };
    if name.is_null() {
        return String::new();
    }
    // SAFETY: libxdp returns a NUL-terminated name owned by the program, which outlives
    // this copy.
    unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned()
}

/// The program attached to `ifindex` (driver or generic hook), if any.
pub fn attached(ifindex: u32) -> io::Result<Option<Attached>> {
    let Some(mp) = Multiprog::get(ifindex)? else {
        return Ok(None);
    };
    // SAFETY: mp.0 is a valid multiprog handle for all calls below; returned program
    // pointers are owned by it and only used while it lives.
    let (mode, legacy, main, first) = unsafe {
        (
            libxdp_sys::xdp_multiprog__attach_mode(mp.0),
            libxdp_sys::xdp_multiprog__is_legacy(mp.0),
            libxdp_sys::xdp_multiprog__main_prog(mp.0),
            libxdp_sys::xdp_multiprog__next_prog(std::ptr::null(), mp.0),
        )
    };
    if main.is_null() {
        // Only an offloaded program, which this switch never uses.
        return Ok(None);
    }
    // SAFETY: `main` is non-NULL and owned by `mp`.
    let prog_id = unsafe { libxdp_sys::xdp_program__id(main) };
    let mode = match mode {
        libxdp_sys::xdp_attach_mode_XDP_MODE_NATIVE => AttachMode::Native,
        libxdp_sys::xdp_attach_mode_XDP_MODE_SKB => AttachMode::Generic,
        libxdp_sys::xdp_attach_mode_XDP_MODE_HW => AttachMode::Offload,
        _ => AttachMode::Unknown,
    };
    let name = if legacy || first.is_null() {
        prog_name(main)
    } else {
        prog_name(first)
    };
    Ok(Some(Attached {
        prog_id,
        name,
        mode,
        dispatcher: !legacy,
    }))
}

/// Detaches whatever XDP program is attached to `ifindex` (a single program or libxdp's
/// dispatcher with all its components). `Ok(false)` when nothing was attached.
pub fn detach(ifindex: u32) -> io::Result<bool> {
    let Some(mp) = Multiprog::get(ifindex)? else {
        return Ok(false);
    };
    // SAFETY: mp.0 is a valid, loaded multiprog handle.
    let r = unsafe { libxdp_sys::xdp_multiprog__detach(mp.0) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r.saturating_neg()));
    }
    Ok(true)
}

/// Detaches the program attached to `ifindex` only if it is still program `prog_id`.
pub fn detach_if(ifindex: u32, prog_id: u32) -> io::Result<bool> {
    match attached(ifindex)? {
        Some(a) if a.prog_id == prog_id => detach(ifindex),
        _ => Ok(false),
    }
}

/// The value of `bpf_metadata_vswitch_owner` in vswitch's XDP object (NUL-terminated in
/// the object's `.rodata`).
pub const OWNER_MARK: &[u8] = b"vswitch-xdp-port-owner-v1\0";

/// Largest `.rodata`-like map value read when looking for [`OWNER_MARK`] (bounded work
/// per map of a foreign program).
const MARK_SCAN_MAX: u32 = 64 * 1024;

/// What the kernel reports about a loaded program: enough to tell whether vswitch loaded
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgIdentity {
    pub prog_id: u32,
    /// The kernel's name for it (at most 15 bytes).
    pub name: String,
    /// One of the maps bound to it holds [`OWNER_MARK`].
    pub marked: bool,
}

impl ProgIdentity {
    /// vswitch's own XDP program (loaded by this or an earlier vswitch process).
    pub fn is_vswitch(&self) -> bool {
        self.name == crate::sys::bpf::PROG_NAME && self.marked
    }
}

fn fd_or_error(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        // libbpf returns -errno (and sets errno).
        return Err(io::Error::from_raw_os_error(fd.saturating_neg()));
    }
    // SAFETY: a non-negative return of the get_fd_by_id calls is a new descriptor that
    // nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether the map `map_id` is a one-element array (as libbpf's `.rodata` is) whose value
/// contains [`OWNER_MARK`]. Maps that vanished or cannot be read do not carry it.
fn map_has_mark(map_id: u32) -> bool {
    // SAFETY: plain syscall wrapper; the result is checked by fd_or_error.
    let Ok(fd) = fd_or_error(unsafe { libxdp_sys::bpf_map_get_fd_by_id(map_id) }) else {
        return false;
    };
    let Ok(info) = crate::sys::bpf::map_info(fd.as_raw_fd()) else {
        return false;
    };
    if info.type_ != libxdp_sys::bpf_map_type_BPF_MAP_TYPE_ARRAY
        || info.key_size != 4
        || info.max_entries != 1
        || info.value_size < OWNER_MARK.len() as u32
        || info.value_size > MARK_SCAN_MAX
    {
        return false;
    }
    let mut value = vec![0u8; info.value_size as usize];
    let key = 0u32;
    // SAFETY: the map is a plain array (type checked above): the kernel reads key_size
    // (4) bytes from `key` and writes value_size bytes into `value`, which holds exactly
    // that many and is ours for the call.
    let r = unsafe {
        libxdp_sys::bpf_map_lookup_elem(
            fd.as_raw_fd(),
            (&key as *const u32).cast(),
            value.as_mut_ptr().cast(),
        )
    };
    r == 0 && value.windows(OWNER_MARK.len()).any(|w| w == OWNER_MARK)
}

/// What the kernel says about program `prog_id` ([`ProgIdentity`]).
pub fn identify(prog_id: u32) -> io::Result<ProgIdentity> {
    // SAFETY: plain syscall wrapper; the result is checked by fd_or_error.
    let fd = fd_or_error(unsafe { libxdp_sys::bpf_prog_get_fd_by_id(prog_id) })?;
    // First call: the name and the number of maps.
    // SAFETY: bpf_prog_info is a plain C struct for which zero bytes are valid.
    let mut info: libxdp_sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libxdp_sys::bpf_prog_info>() as u32;
    // SAFETY: info is a zeroed bpf_prog_info of `len` bytes owned by us; with nr_map_ids
    // 0 the kernel writes no map ids anywhere.
    let r = unsafe { libxdp_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r.saturating_neg()));
    }
    let name: Vec<u8> = info
        .name
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    let name = String::from_utf8_lossy(&name).into_owned();
    // Second call: the map ids (a program's maps are fixed once it is loaded, but a map
    // bound later could add one: the kernel writes at most nr_map_ids and reports the
    // total, so a longer list is only cut short).
    let mut ids = vec![0u32; info.nr_map_ids as usize];
    // SAFETY: as above.
    let mut info2: libxdp_sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    info2.nr_map_ids = ids.len() as u32;
    info2.map_ids = ids.as_mut_ptr() as u64;
    let mut len = std::mem::size_of::<libxdp_sys::bpf_prog_info>() as u32;
    // SAFETY: info2 is ours; the kernel writes at most nr_map_ids u32 map ids to
    // map_ids, which points at `ids`, a live buffer of exactly that many.
    let r = unsafe { libxdp_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info2, &mut len) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r.saturating_neg()));
    }
    ids.truncate((info2.nr_map_ids as usize).min(ids.len()));
    let marked = ids.iter().any(|id| map_has_mark(*id));
    Ok(ProgIdentity {
        prog_id,
        name,
        marked,
    })
}

/// Processes other than this one that hold a descriptor of program `prog_id` and keep
/// holding it, as (pid, command name): those found by [`holders_now`] in three scans 20 ms
/// apart. A process forked by this one (or by the holder) has the descriptor only until it
/// executes its program (bpf descriptors are close-on-exec), so it drops out.
pub fn holders(prog_id: u32) -> io::Result<Vec<(u32, String)>> {
    let mut held = holders_now(prog_id)?;
    for _ in 0..2 {
        if held.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        let again = holders_now(prog_id)?;
        held.retain(|h| again.contains(h));
    }
    Ok(held)
}

/// Processes other than this one that hold a descriptor of program `prog_id` now, as
/// (pid, command name), from `/proc/*/fd` and their fdinfo. A vswitch program found on an
/// interface is stale (its process was killed) only if nobody holds it: a running
/// vswitchd keeps its program's descriptor open. Processes that vanish or cannot be read
/// while scanning are skipped.
pub fn holders_now(prog_id: u32) -> io::Result<Vec<(u32, String)>> {
    let me = std::process::id();
    let want = format!("prog_id:\t{prog_id}");
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == "anon_inode:bpf-prog")
                && std::fs::read_to_string(entry.path().join("fdinfo").join(fd.file_name()))
                    .is_ok_and(|info| info.lines().any(|l| l == want))
        });
        if holds {
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            out.push((pid, comm.trim().to_owned()));
        }
    }
    Ok(out)
}

/// Test helper: loads a minimal XDP program named `name` that passes every frame
/// (`r0 = XDP_PASS; exit`), standing in for another tool's program (a firewall, a libxdp
/// component), and attaches it to `ifindex` with `XDP_FLAGS_*` `flags`. Returns its id;
/// the attachment keeps it loaded until it is detached.
#[cfg(any(test, feature = "testutil"))]
pub fn attach_foreign_test_program(ifindex: u32, name: &str, flags: u32) -> io::Result<u32> {
    use libxdp_sys as lx;
    let insn = |code: u8, imm: i32| lx::bpf_insn {
        code,
        _bitfield_align_1: [],
        _bitfield_1: lx::bpf_insn::new_bitfield_1(0, 0),
        off: 0,
        imm,
    };
    // BPF_ALU64 | BPF_MOV | BPF_K into r0; BPF_JMP | BPF_EXIT.
    let prog = [insn(0xb7, 2), insn(0x95, 0)];
    let cname = std::ffi::CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    let license = c"GPL";
    // SAFETY: the name and license are valid C strings and `prog` holds insn_cnt
    // instructions, all only read for the call; NULL opts means defaults.
    let fd = unsafe {
        lx::bpf_prog_load(
            lx::bpf_prog_type_BPF_PROG_TYPE_XDP,
            cname.as_ptr(),
            license.as_ptr(),
            prog.as_ptr(),
            prog.len(),
            std::ptr::null_mut(),
        )
    };
    let fd = fd_or_error(fd)?;
    let ifindex = libc::c_int::try_from(ifindex).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: plain syscall wrapper; NULL opts means defaults.
    let r = unsafe { lx::bpf_xdp_attach(ifindex, fd.as_raw_fd(), flags, std::ptr::null()) };
    if r < 0 {
        return Err(io::Error::from_raw_os_error(r.saturating_neg()));
    }
    // SAFETY: bpf_prog_info is a plain C struct for which zero bytes are valid.
    let mut info: lx::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<lx::bpf_prog_info>() as u32;
    // SAFETY: info is a zeroed bpf_prog_info of `len` bytes owned by us.
    let r = unsafe { lx::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r.saturating_neg()));
    }
    Ok(info.id)
}
