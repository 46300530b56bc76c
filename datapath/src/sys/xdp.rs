//! The XDP program attached to an interface: what it is and how to remove it (libxdp's
//! `xdp_multiprog`, which understands both single programs and libxdp's dispatcher and
//! unpins the dispatcher's bpffs state on detach).

use std::ffi::CStr;
use std::io;

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
