//! Raw frame injection through an AF_XDP socket bound to an interface inside a namespace
//! (usually a host's end of the veth whose other end is a switch port). Unlike AF_PACKET,
//! this sends any bytes, including runts (< 14 bytes) and truncated 802.1Q tags, exactly
//! as given: nothing is padded, tagged or checked.
//!
//! The socket is created and dropped on a thread inside the namespace (interface names
//! and the XDP program attach resolve there); in between it is used from the test thread.

use std::time::{Duration, Instant};

use datapath::sys::xsk::{self, FrameStack, SocketParams, Umem, UmemParams, XskRx, XskTx};

use crate::testutil::Netns;

const FRAMES: u32 = 4096;
const RING: u32 = 2048;

struct Inner {
    tx: XskTx,
    // Kept open so the socket stays whole; frames the peer sends here are dropped (no fill).
    _rx: XskRx,
    free: FrameStack,
    ready: FrameStack,
    _umem: Umem,
}

/// A transmit-only AF_XDP socket on `ifname` in a namespace.
pub struct Injector {
    inner: Option<Inner>,
    ns_path: String,
    ifname: String,
    /// Frames handed to the kernel so far.
    pub sent: u64,
}

impl std::fmt::Debug for Injector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injector")
            .field("ifname", &self.ifname)
            .field("sent", &self.sent)
            .finish()
    }
}

impl Injector {
    /// Binds queue 0 of `ifname` in `ns` (the interface's XDP program is libxdp's).
    pub fn open(ns: &Netns, ifname: &str) -> Injector {
        let name = ifname.to_owned();
        let inner = datapath::sys::netns::run_in(&ns.path(), move || -> std::io::Result<Inner> {
            let (umem, all) = Umem::new(UmemParams {
                frame_count: FRAMES,
                frame_size: 2048,
                fill_size: RING,
                comp_size: RING,
            })?;
            let (rx, tx) = xsk::bind(
                &umem,
                &name,
                0,
                SocketParams {
                    rx_size: RING,
                    tx_size: RING,
                    xdp_flags: 0,
                    sg: false,
                },
            )?;
            let ready = all.sibling(64);
            Ok(Inner {
                tx,
                _rx: rx,
                free: all,
                ready,
                _umem: umem,
            })
        })
        .expect("enter injector namespace")
        .unwrap_or_else(|e| panic!("AF_XDP injector on {ifname} in {}: {e}", ns.name()));
        Injector {
            inner: Some(inner),
            ns_path: ns.path(),
            ifname: ifname.to_owned(),
            sent: 0,
        }
    }

    /// Transmits every frame of `frames` (any length 1..=1792, bytes as given), waiting for
    /// ring room as needed; panics if the kernel takes nothing for 5 s.
    pub fn send_all<F: AsRef<[u8]>>(&mut self, frames: &[F]) {
        let inner = self.inner.as_mut().expect("injector open");
        let mut i = 0;
        let mut stalled_since = Instant::now();
        while i < frames.len() {
            inner.tx.reap(&mut inner.free);
            let room = inner.tx.ring_room(64).min(64);
            let mut n = 0;
            while n < room && i < frames.len() {
                let f = frames[i].as_ref();
                let w = inner
                    .tx
                    .write_one(&mut inner.free, &mut inner.ready, |buf| {
                        let d = buf.get_mut(..f.len())?;
                        d.copy_from_slice(f);
                        Some(f.len())
                    });
                match w {
                    Some(_) => {
                        i += 1;
                        n += 1;
                    }
                    None => break,
                }
            }
            if !inner.ready.is_empty() {
                inner.tx.produce(&mut inner.ready);
            }
            // Copy-mode TX only moves on a sendto.
            let _ = inner.tx.kick();
            if n > 0 {
                self.sent += n as u64;
                stalled_since = Instant::now();
            } else {
                assert!(
                    stalled_since.elapsed() < Duration::from_secs(5),
                    "AF_XDP injector on {}: no progress for 5 s ({} of {} sent)",
                    self.ifname,
                    i,
                    frames.len()
                );
                std::thread::yield_now();
            }
        }
        // Let the kernel finish the ring.
        let deadline = Instant::now() + Duration::from_secs(5);
        while inner.tx.pending() && Instant::now() < deadline {
            let _ = inner.tx.kick();
            inner.tx.reap(&mut inner.free);
            std::thread::sleep(Duration::from_micros(100));
        }
        inner.tx.reap(&mut inner.free);
    }

    /// Sends frames made by `make(i)` as fast as the socket takes them (chunks of `chunk`)
    /// until `dur` has passed; returns how many were sent. For measuring a maximum rate.
    pub fn send_for(
        &mut self,
        dur: Duration,
        chunk: usize,
        mut make: impl FnMut(u64) -> Vec<u8>,
    ) -> u64 {
        let end = Instant::now() + dur;
        let mut done = 0u64;
        let mut buf: Vec<Vec<u8>> = Vec::with_capacity(chunk);
        while Instant::now() < end {
            buf.clear();
            for k in 0..chunk as u64 {
                buf.push(make(done + k));
            }
            self.send_all(&buf);
            done += chunk as u64;
        }
        done
    }

    /// Sends `count` frames made by `make(i)` at about `pps` frames per second (in chunks
    /// of `chunk`), so a receiver polling at a fraction of the line rate keeps up.
    pub fn send_paced(
        &mut self,
        count: u64,
        pps: u64,
        chunk: usize,
        mut make: impl FnMut(u64) -> Vec<u8>,
    ) {
        let mut start = Instant::now();
        let mut done = 0u64;
        let mut buf: Vec<Vec<u8>> = Vec::with_capacity(chunk);
        // A constant-rate source: after this thread was descheduled it makes up at most
        // 1 ms of its schedule instead of bursting at full speed (which would measure the
        // test machine's scheduler, not the switch); every frame is still sent.
        let slack = Duration::from_millis(1);
        while done < count {
            buf.clear();
            let n = (count - done).min(chunk as u64);
            for k in 0..n {
                buf.push(make(done + k));
            }
            self.send_all(&buf);
            done += n;
            let due = start + Duration::from_secs_f64(done as f64 / pps as f64);
            let now = Instant::now();
            match due.checked_duration_since(now) {
                Some(wait) => std::thread::sleep(wait),
                None => {
                    let late = now - due;
                    if late > slack {
                        start += late - slack;
                    }
                }
            }
        }
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        // Close the socket inside its namespace so its XDP program is detached there.
        if let Some(inner) = self.inner.take() {
            let _ = datapath::sys::netns::run_in(&self.ns_path, move || drop(inner));
        }
    }
}
