//! AF_XDP UMEM and rings over xsk-rs, behind a safe API.
//!
//! Ownership model (what makes the unsafe xsk-rs calls sound):
//! - A UMEM's frames are created once, by [`Umem::new`], as descriptors inside a
//!   [`FrameStack`]. A descriptor is a move-only token: it lives in exactly one place at a
//!   time — one of this process's stacks, or the kernel (fill/RX ring or TX/completion
//!   ring). Tokens are never copied out of a stack; producing to a ring removes them from
//!   the stack, consuming from a ring adds them to one. So a frame is never accessed by the
//!   kernel and by us at once, and two tokens never name the same frame.
//! - Every stack and ring half carries the id of the UMEM it belongs to; every operation
//!   that moves tokens or touches frame memory checks that the ids match (one integer
//!   comparison per call, not per frame), so one UMEM's descriptor never indexes another.
//! - Frame memory is only borrowed through `&self`/`&mut self` of the owning half and a
//!   stack borrow, so slices cannot outlive the frames being returned to the kernel.

use std::io;
use std::num::NonZeroU32;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig, XdpFlags,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue};

static NEXT_UMEM_ID: AtomicU32 = AtomicU32::new(1);

/// Descriptor option of AF_XDP multi-buffer: the frame continues in the next descriptor.
pub const XDP_PKT_CONTD: u32 = 1;

/// One UMEM frame descriptor: a move-only token (no `Clone`/`Copy`).
#[repr(transparent)]
#[derive(Debug)]
struct Frame(FrameDesc);

/// A bounded set of frame tokens of one UMEM. Allocated once with a fixed capacity;
/// pushing and popping never allocates.
#[derive(Debug)]
pub struct FrameStack {
    umem: u32,
    frames: Vec<Frame>,
}

impl FrameStack {
    fn with_capacity(umem: u32, cap: usize) -> FrameStack {
        FrameStack {
            umem,
            frames: Vec::with_capacity(cap),
        }
    }
    /// An empty stack for frames of the same UMEM as `self`, holding up to `cap` frames.
    pub fn sibling(&self, cap: usize) -> FrameStack {
        FrameStack::with_capacity(self.umem, cap)
    }
    pub fn len(&self) -> usize {
        self.frames.len()
    }
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
    pub fn capacity(&self) -> usize {
        self.frames.capacity()
    }
    /// Moves up to `n` frames from the top of `from` onto `self`; returns how many.
    /// Never grows `self` beyond its capacity.
    pub fn take_from(&mut self, from: &mut FrameStack, n: usize) -> usize {
        assert_eq!(self.umem, from.umem, "frames moved between UMEMs");
        let n = n
            .min(from.len())
            .min(self.frames.capacity() - self.frames.len());
        let start = from.frames.len() - n;
        self.frames.extend(from.frames.drain(start..));
        n
    }
    /// Moves the frames at `range` of `from` onto `self`; returns how many moved (all of
    /// them unless `self` is full).
    pub fn take_range(&mut self, from: &mut FrameStack, range: std::ops::Range<usize>) -> usize {
        assert_eq!(self.umem, from.umem, "frames moved between UMEMs");
        let room = self.frames.capacity() - self.frames.len();
        let end = range.end.min(from.len()).min(range.start + room);
        let start = range.start.min(end);
        self.frames.extend(from.frames.drain(start..end));
        end - start
    }
    fn descs(&self) -> &[FrameDesc] {
        // SAFETY: Frame is repr(transparent) over FrameDesc, so a slice of Frames has the
        // layout of a slice of FrameDescs of the same length.
        unsafe {
            std::slice::from_raw_parts(self.frames.as_ptr().cast::<FrameDesc>(), self.frames.len())
        }
    }
    /// Whether frame `i` continues in frame `i + 1` (a multi-buffer chain from the RX ring).
    pub fn continues(&self, i: usize) -> bool {
        self.frames[i].0.options() & XDP_PKT_CONTD != 0
    }
    /// Forgets the first `n` tokens: the kernel owns those frames now.
    fn gave_first(&mut self, n: usize) {
        self.frames.drain(..n);
    }
}

/// Sizes of a UMEM.
#[derive(Debug, Clone, Copy)]
pub struct UmemParams {
    pub frame_count: u32,
    /// Bytes per frame: a power of two, at least 2048.
    pub frame_size: u32,
    pub fill_size: u32,
    pub comp_size: u32,
}

/// A registered UMEM region.
#[derive(Debug, Clone)]
pub struct Umem {
    id: u32,
    inner: xsk_rs::Umem,
    /// Largest frame (bytes) one UMEM frame holds after the kernel's headroom.
    data_room: usize,
}

fn io_from<E: std::error::Error + 'static>(e: &E) -> io::Error {
    let mut src: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            if let Some(code) = io.raw_os_error() {
                return io::Error::from_raw_os_error(code);
            }
            return io::Error::new(io.kind(), io.to_string());
        }
        src = s.source();
    }
    io::Error::other(e.to_string())
}

fn queue_size(n: u32) -> io::Result<QueueSize> {
    QueueSize::new(n).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

impl Umem {
    /// Maps and registers a UMEM; returns it and all its frames.
    pub fn new(p: UmemParams) -> io::Result<(Umem, FrameStack)> {
        let count =
            NonZeroU32::new(p.frame_count).ok_or(io::Error::from_raw_os_error(libc::EINVAL))?;
        let frame_size =
            FrameSize::new(p.frame_size).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        if !p.frame_size.is_power_of_two() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let cfg = UmemConfig::builder()
            .frame_size(frame_size)
            .fill_queue_size(queue_size(p.fill_size)?)
            .comp_queue_size(queue_size(p.comp_size)?)
            .build()
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let data_room = cfg.mtu() as usize;
        let (inner, descs) = xsk_rs::Umem::new(cfg, count, false).map_err(|e| io_from(&e))?;
        let id = NEXT_UMEM_ID.fetch_add(1, Ordering::Relaxed);
        let mut stack = FrameStack::with_capacity(id, descs.len());
        // The only place tokens are created: one per frame of the fresh UMEM.
        stack.frames.extend(descs.into_iter().map(Frame));
        Ok((
            Umem {
                id,
                inner,
                data_room,
            },
            stack,
        ))
    }

    /// Bytes available for one frame's data.
    pub fn data_room(&self) -> usize {
        self.data_room
    }

    fn data<'a>(&'a self, f: &'a Frame) -> &'a [u8] {
        // SAFETY: `f` is a token of this UMEM (callers check stack ids) held by us, so the
        // kernel does not write the frame while the returned borrow of the token lives, and
        // its address and length were produced by the kernel for this UMEM.
        unsafe { self.inner.data(&f.0) }.contents()
    }

    fn write(&self, f: &mut Frame, fill: impl FnOnce(&mut [u8]) -> Option<usize>) -> Option<usize> {
        // SAFETY: `f` is a token of this UMEM held exclusively by us (`&mut`), so no other
        // borrow of the frame exists in this process and the kernel does not own it.
        let mut data = unsafe { self.inner.data_mut(&mut f.0) };
        let mut cur = data.cursor();
        let cap = cur.buf_len();
        cur.set_pos(cap);
        let n = fill(data.contents_mut());
        data.cursor().set_pos(n.unwrap_or(0));
        n
    }
}

/// Socket options.
#[derive(Debug, Clone, Copy)]
pub struct SocketParams {
    pub rx_size: u32,
    pub tx_size: u32,
    /// `XDP_FLAGS_DRV_MODE`, `XDP_FLAGS_SKB_MODE` or 0 (let the kernel choose).
    pub xdp_flags: u32,
    /// Multi-buffer (`XDP_USE_SG`): frames longer than a UMEM frame arrive and leave as
    /// chains of descriptors.
    pub sg: bool,
}

/// XDP flag values for [`SocketParams::xdp_flags`].
pub const XDP_FLAGS_SKB_MODE: u32 = 2;
pub const XDP_FLAGS_DRV_MODE: u32 = 4;

/// Creates an AF_XDP socket on `(ifname, queue)` over `umem` with need_wakeup on, and
/// returns its receive and transmit halves. No XDP program is loaded here (libxdp's is
/// inhibited): the port attaches vswitch's own program ([`super::bpf`]) and inserts
/// [`XskRx::fd`] into that program's XSKMAP.
///
/// Each `(ifname, queue)` pair must be bound at most once per UMEM (the caller's port
/// binds distinct queues); a second bind of a pair fails in the kernel with EBUSY.
pub fn bind(umem: &Umem, ifname: &str, queue: u32, p: SocketParams) -> io::Result<(XskRx, XskTx)> {
    let iface: Interface = ifname
        .parse()
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let cfg = SocketConfig::builder()
        .rx_queue_size(queue_size(p.rx_size)?)
        .tx_queue_size(queue_size(p.tx_size)?)
        .xdp_flags(XdpFlags::from_bits_truncate(p.xdp_flags))
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(if p.sg {
            BindFlags::XDP_USE_NEED_WAKEUP | BindFlags::XDP_USE_SG
        } else {
            BindFlags::XDP_USE_NEED_WAKEUP
        })
        .build();
    // SAFETY: xsk-rs requires XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD when this UMEM is shared
    // and the (ifname, queue) pair is already bound to; it is always set here (no libxdp
    // program state exists to be freed twice).
    let (tx, rx, fq_cq) =
        unsafe { Socket::new(cfg, &umem.inner, &iface, queue) }.map_err(|e| io_from(&e))?;
    let (fill, comp) = fq_cq.ok_or(io::Error::from_raw_os_error(libc::EBUSY))?;
    let fd = rx.fd().as_raw_fd();
    // Copy-mode transmit (veth, tap, generic XDP) builds an skb per frame charged to this
    // socket's send buffer until the receiver consumes it; the default buffer (~212 KiB)
    // holds only a few hundred small skbs, so a receiver a few milliseconds late stalls the
    // TX ring long before it is full. Let the whole ring be in flight.
    let _ = set_sndbuf(fd, p.tx_size.saturating_mul(4096).min(64 << 20));
    Ok((
        XskRx {
            umem: umem.clone(),
            rx,
            fill,
            fd,
            scratch: vec![FrameDesc::default(); crate::pipeline::MAX_BURST].into_boxed_slice(),
        },
        XskTx {
            umem: umem.clone(),
            tx,
            comp,
            tx_size: p.tx_size,
            scratch: vec![FrameDesc::default(); crate::pipeline::MAX_BURST].into_boxed_slice(),
        },
    ))
}

/// Sets the socket's send buffer to `bytes` (SO_SNDBUFFORCE, which root may use beyond
/// `net.core.wmem_max`; else SO_SNDBUF, capped by it). Returns the size the kernel reports
/// afterwards (it doubles the value asked for, for bookkeeping).
pub fn set_sndbuf(fd: i32, bytes: u32) -> io::Result<u32> {
    let v = bytes.min(i32::MAX as u32 / 2) as libc::c_int;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    for opt in [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF] {
        // SAFETY: passes a valid c_int and its size; the kernel only reads it.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                len,
            )
        };
        if r == 0 {
            break;
        }
        if opt == libc::SO_SNDBUF {
            return Err(io::Error::last_os_error());
        }
    }
    let mut got: libc::c_int = 0;
    let mut got_len = len;
    // SAFETY: `got` and `got_len` are valid out pointers of the sizes given.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&mut got as *mut libc::c_int).cast(),
            &mut got_len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(got.max(0) as u32)
}

/// Receive half of one socket: its RX ring and the fill ring of its queue.
#[derive(Debug)]
pub struct XskRx {
    umem: Umem,
    rx: RxQueue,
    fill: FillQueue,
    fd: i32,
    scratch: Box<[FrameDesc]>,
}

impl XskRx {
    /// Moves up to `max` received frames (at most `MAX_BURST`) from the RX ring onto
    /// `held`; returns how many.
    pub fn consume(&mut self, held: &mut FrameStack, max: usize) -> usize {
        assert_eq!(held.umem, self.umem.id, "frames of another UMEM");
        let max = max
            .min(self.scratch.len())
            .min(held.capacity() - held.len());
        // SAFETY: the descriptors written into `scratch` come from this socket's RX ring,
        // which only carries frames of this UMEM (the fill ring only gets its tokens).
        let n = unsafe { self.rx.consume(&mut self.scratch[..max]) };
        held.frames
            .extend(self.scratch[..n].iter().map(|d| Frame(*d)));
        n
    }

    /// Gives the frames of `free` to the kernel through the fill ring, as many as fit;
    /// returns how many.
    pub fn fill(&mut self, free: &mut FrameStack) -> usize {
        assert_eq!(free.umem, self.umem.id, "frames of another UMEM");
        // SAFETY: the tokens in `free` are frames of this UMEM held by us and not in use;
        // the ones produced are removed from `free` right after, so they are not used
        // again until the RX ring returns them.
        let n = unsafe { self.fill.produce(free.descs()) };
        free.gave_first(n);
        n
    }

    /// The socket's file descriptor (what an XSKMAP entry points at).
    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// The kernel asks for a wakeup before it uses the fill ring again.
    pub fn fill_needs_wakeup(&self) -> bool {
        self.fill.needs_wakeup()
    }

    /// Wakes the kernel's receive path (one `recvfrom`, nonblocking).
    pub fn wakeup(&self) {
        // SAFETY: a zero-length nonblocking recvfrom on our own socket fd with NULL buffers
        // is the documented AF_XDP RX wakeup; it reads no memory.
        unsafe {
            libc::recvfrom(
                self.fd,
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
    }

    /// The socket's pending error (`SO_ERROR`, cleared by reading it): the kernel sets
    /// ENETDOWN when the socket's device is unregistered.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let mut err: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `err` and `len` are valid out pointers sized for SO_ERROR (an int).
        let r = unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((err != 0).then(|| io::Error::from_raw_os_error(err)))
    }

    /// Data of frame `i` of `held`.
    pub fn data<'a>(&'a self, held: &'a FrameStack, i: usize) -> &'a [u8] {
        assert_eq!(held.umem, self.umem.id, "frames of another UMEM");
        self.umem.data(&held.frames[i])
    }

    /// Whether the socket runs in zero-copy mode (`XDP_OPTIONS`).
    pub fn zero_copy(&self) -> io::Result<bool> {
        let mut opts = libc::xdp_options { flags: 0 };
        let mut len = std::mem::size_of::<libc::xdp_options>() as libc::socklen_t;
        // SAFETY: `opts` and `len` are valid out pointers sized for XDP_OPTIONS.
        let r = unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_XDP,
                libc::XDP_OPTIONS,
                (&mut opts as *mut libc::xdp_options).cast(),
                &mut len,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0)
    }

    /// Kernel drop counters of this socket.
    pub fn stats(&self) -> io::Result<XskStats> {
        let s = self.rx.fd().xdp_statistics()?;
        Ok(XskStats {
            rx_dropped: s.rx_dropped(),
            rx_invalid_descs: s.rx_invalid_descs(),
            rx_ring_full: s.rx_ring_full(),
            rx_fill_ring_empty: s.rx_fill_ring_empty_descs(),
            tx_invalid_descs: s.tx_invalid_descs(),
            tx_ring_empty: s.tx_ring_empty_descs(),
        })
    }
}

/// The kernel's per-socket AF_XDP counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskStats {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty: u64,
    pub tx_invalid_descs: u64,
    pub tx_ring_empty: u64,
}

/// Transmit half of one socket: its TX ring and the completion ring of its queue.
#[derive(Debug)]
pub struct XskTx {
    umem: Umem,
    tx: TxQueue,
    comp: CompQueue,
    tx_size: u32,
    scratch: Box<[FrameDesc]>,
}

impl XskTx {
    /// Moves completed TX frames back onto `free`; returns how many.
    pub fn reap(&mut self, free: &mut FrameStack) -> usize {
        assert_eq!(free.umem, self.umem.id, "frames of another UMEM");
        let mut total = 0;
        loop {
            let room = (free.capacity() - free.len()).min(self.scratch.len());
            if room == 0 {
                return total;
            }
            // SAFETY: the completion ring only returns frames of this UMEM that were
            // produced to this socket's TX ring; the kernel is done with them.
            let n = unsafe { self.comp.consume(&mut self.scratch[..room]) };
            free.frames
                .extend(self.scratch[..n].iter().map(|d| Frame(*d)));
            total += n;
            if n < room {
                return total;
            }
        }
    }

    /// Free slots in the TX ring (at least `want` are checked for).
    pub fn ring_room(&mut self, want: usize) -> usize {
        self.tx.nb_free(want.min(u32::MAX as usize) as u32) as usize
    }

    /// Moves one frame from `free` to `ready` after `fill` wrote its contents (returning
    /// the length, or `None` to give the frame back to `free`).
    pub fn write_one(
        &self,
        free: &mut FrameStack,
        ready: &mut FrameStack,
        fill: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> Option<usize> {
        assert_eq!(free.umem, self.umem.id, "frames of another UMEM");
        assert_eq!(ready.umem, self.umem.id, "frames of another UMEM");
        if ready.len() == ready.capacity() {
            return None;
        }
        let mut f = free.frames.pop()?;
        match self.umem.write(&mut f, fill) {
            Some(n) => {
                f.0.set_options(0); // a reaped token may still carry a chain's flag
                ready.frames.push(f);
                Some(n)
            }
            None => {
                free.frames.push(f);
                None
            }
        }
    }

    /// Moves `data` onto `ready` as a chain of frames from `free` (multi-buffer: every
    /// frame but the last flagged [`XDP_PKT_CONTD`]); returns the descriptors used, or
    /// `None` (nothing moved) when `free` or `ready` lacks room for the whole chain.
    pub fn write_chain(
        &self,
        free: &mut FrameStack,
        ready: &mut FrameStack,
        data: &[u8],
    ) -> Option<usize> {
        assert_eq!(free.umem, self.umem.id, "frames of another UMEM");
        assert_eq!(ready.umem, self.umem.id, "frames of another UMEM");
        if data.is_empty() {
            return None;
        }
        let room = self.umem.data_room.max(1);
        let k = data.len().div_ceil(room);
        if free.len() < k || ready.capacity() - ready.len() < k {
            return None;
        }
        for (j, chunk) in data.chunks(room).enumerate() {
            let mut f = free.frames.pop()?;
            let n = self.umem.write(&mut f, |buf| {
                let d = buf.get_mut(..chunk.len())?;
                d.copy_from_slice(chunk);
                Some(chunk.len())
            });
            // Every chunk fits: it is at most `data_room` long.
            debug_assert_eq!(n, Some(chunk.len()));
            f.0.set_options(if j + 1 < k { XDP_PKT_CONTD } else { 0 });
            ready.frames.push(f);
        }
        Some(k)
    }

    /// Puts the frames of `ready` on the TX ring in order, as many as fit; returns how many.
    pub fn produce(&mut self, ready: &mut FrameStack) -> usize {
        assert_eq!(ready.umem, self.umem.id, "frames of another UMEM");
        // SAFETY: the tokens in `ready` are frames of this UMEM held by us with their
        // lengths set; the ones produced are removed from `ready` right after, so they are
        // not touched again until the completion ring returns them.
        let n = unsafe { self.tx.produce(ready.descs()) };
        ready.gave_first(n);
        n
    }

    /// The kernel asks for a `sendto` to process the TX ring.
    pub fn needs_wakeup(&self) -> bool {
        self.tx.needs_wakeup()
    }

    /// Descriptors still on the TX ring, not yet taken by the kernel.
    pub fn pending(&mut self) -> bool {
        (self.tx.nb_free_exact() as u64) < u64::from(self.tx_size)
    }

    /// One nonblocking `sendto` (EAGAIN/EBUSY/ENOBUFS/ENETDOWN are not errors: the kernel
    /// keeps the rest for the next kick).
    pub fn kick(&self) -> io::Result<()> {
        self.tx.wakeup()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn send_buffer_is_raised_beyond_the_default() {
        if !crate::testutil::root_or_skip("send_buffer_is_raised_beyond_the_default") {
            return;
        }
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp socket");
        let fd = s.as_raw_fd();
        // 8 MiB is above net.core.wmem_max's usual default (208 KiB - 4 MiB); as root
        // SO_SNDBUFFORCE gets it anyway. The kernel reports twice the value set.
        let got = set_sndbuf(fd, 8 << 20).expect("set sndbuf");
        assert_eq!(got, 16 << 20);
    }
}
