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

use super::{PortError, RxPort, TxPort};
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
    truncated: u64,
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
                truncated: 0,
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
    /// Frames longer than a slot (MTU + 22 bytes), dropped at read.
    pub fn truncated(&self) -> u64 {
        self.truncated
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
                Ok(Some(len)) if len > self.slot => self.truncated += 1,
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
}

impl TxPort for TapPort {
    fn tx_burst(&mut self, frames: &[&[u8]], items: &[TxItem]) -> TxDone {
        self.tx.tx_burst(frames, items)
    }
    fn flush(&mut self) {
        self.tx.flush()
    }
}
