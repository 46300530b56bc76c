//! Tap port: a tap device the switch creates (`TUNSETIFF`, IFF_TAP | IFF_NO_PI) and
//! services through its nonblocking fd. Its kernel side is an ordinary netdev: move it
//! into a namespace, give it an address, or attach a VM to it.
//!
//! Cost model: a tap fd moves one frame per `read`/`write` syscall, so this backend costs
//! one syscall per frame — inherent to the tap interface. For speed, open an AF_XDP port on
//! the tap netdev instead (or on the VM's own tap created by QEMU/libvirt).
//!
//! Invariants kept here:
//! - Buffers are allocated at create: RX holds up to [`MAX_BURST`] frames in an arena of
//!   fixed slots, TX edits each frame into one scratch slot and writes it; no allocation
//!   per burst.
//! - The device is up (IFF_UP) with the configured MTU once `create` returns; it
//!   disappears when both halves are dropped (the fd is closed), unless made persistent
//!   elsewhere.

use std::sync::Arc;

use super::{PortError, RxPort, TxPort, XdpCounters};
use crate::pipeline::{TxDone, TxItem, MAX_BURST};
use crate::sys::netdev;
use crate::sys::tun::TapFd;
use crate::wire::write_edited;

/// Room for the Ethernet header and two VLAN tags beyond the MTU.
const L2_OVERHEAD: usize = 14 + 8;

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

/// Receive half of a tap port.
#[derive(Debug)]
pub struct TapRx {
    fd: Arc<TapFd>,
    buf: Box<[u8]>,
    lens: Box<[usize]>,
    slot: usize,
    n: usize,
    /// Frames longer than a slot, dropped whole at read (cumulative).
    oversize: u64,
}

/// Transmit half of a tap port.
#[derive(Debug)]
pub struct TapTx {
    fd: Arc<TapFd>,
    scratch: Box<[u8]>,
    errors: u64,
}

/// A tap port: both halves. Use [`TapPort::split`] to hand them to a worker.
#[derive(Debug)]
pub struct TapPort {
    name: String,
    ifindex: u32,
    mtu: u32,
    rx: TapRx,
    tx: TapTx,
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
        let slot = mtu as usize + L2_OVERHEAD;
        let fd = Arc::new(fd);
        Ok(TapPort {
            name,
            ifindex,
            mtu,
            rx: TapRx {
                fd: fd.clone(),
                // One spare byte so the last slot can detect truncation too.
                buf: vec![0u8; MAX_BURST * slot + 1].into_boxed_slice(),
                lens: vec![0; MAX_BURST].into_boxed_slice(),
                slot,
                n: 0,
                oversize: 0,
            },
            tx: TapTx {
                fd,
                scratch: vec![0u8; slot].into_boxed_slice(),
                errors: 0,
            },
        })
    }

    /// The device's name (the kernel's choice if the configured name was empty).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Index at creation (it changes if the device is moved to another namespace).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
    pub fn mtu(&self) -> u32 {
        self.mtu
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

impl TapRx {
    /// Frames longer than a slot (MTU + 22 bytes), dropped whole at read: never passed on
    /// cut short. The worker counts them `mtu_exceeded` on this port (through
    /// [`RxPort::xdp_counters`]).
    pub fn oversize(&self) -> u64 {
        self.oversize
    }
}

impl RxPort for TapRx {
    fn rx_burst(&mut self, max: usize) -> Result<usize, PortError> {
        self.n = 0;
        let max = max.min(MAX_BURST);
        while self.n < max {
            let off = self.n * self.slot;
            // One byte more than a slot: a read that fills it was truncated.
            let end = off + self.slot + 1;
            match self.fd.read(&mut self.buf[off..end]) {
                Ok(None) => break,
                Ok(Some(len)) if len > self.slot => self.oversize += 1,
                Ok(Some(len)) => {
                    self.lens[self.n] = len;
                    self.n += 1;
                }
                Err(e) => {
                    if self.n > 0 {
                        break;
                    }
                    return Err(PortError::io(self.fd.name(), "read tap", e));
                }
            }
        }
        Ok(self.n)
    }

    fn frames<'a>(&'a self, out: &mut [&'a [u8]; MAX_BURST]) -> usize {
        for (i, slot) in out.iter_mut().enumerate().take(self.n) {
            let off = i * self.slot;
            *slot = &self.buf[off..off + self.lens[i]];
        }
        self.n
    }

    fn release(&mut self) {
        self.n = 0;
    }

    /// A tap has no XDP program; its only counter here is the frames too long for the
    /// receive slots ([`TapRx::oversize`]), which the worker counts `mtu_exceeded` like
    /// the oversize drops of an AF_XDP port's program.
    fn xdp_counters(&mut self) -> XdpCounters {
        XdpCounters {
            oversize: self.oversize,
            ..XdpCounters::default()
        }
    }
}

impl TapTx {
    /// Writes that failed with an error other than EAGAIN (device down, ...).
    pub fn errors(&self) -> u64 {
        self.errors
    }
}

impl TxPort for TapTx {
    fn tx_burst(&mut self, frames: &[&[u8]], items: &[TxItem]) -> TxDone {
        let mut done = TxDone::default();
        for item in items {
            let Some(src) = frames.get(usize::from(item.frame)) else {
                break;
            };
            let Ok(len) = write_edited(src, item.edit, &mut self.scratch) else {
                break;
            };
            match self.fd.write(&self.scratch[..len]) {
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
    fn release(&mut self) {
        self.rx.release()
    }
    fn xdp_counters(&mut self) -> XdpCounters {
        self.rx.xdp_counters()
    }
}

impl TxPort for TapPort {
    fn tx_burst(&mut self, frames: &[&[u8]], items: &[TxItem]) -> TxDone {
        self.tx.tx_burst(frames, items)
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

    #[test]
    fn frames_longer_than_a_slot_are_dropped_whole_and_counted_oversize() {
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
