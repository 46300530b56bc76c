//! The frames a receive half holds from `rx_burst` until `release`: where each lies in the
//! port's own memory, and its offload metadata. Shared by the ports whose frames come with
//! a `virtio_net_hdr` (tap, packet); allocated once, at most [`MAX_BURST`] frames.

use crate::offload::Offload;
use crate::pipeline::MAX_BURST;

#[derive(Debug)]
pub(crate) struct Held {
    /// (start, length) of each frame in the port's memory.
    spans: Box<[(usize, usize)]>,
    offloads: Box<[Offload; MAX_BURST]>,
    n: usize,
}

impl Held {
    pub(crate) fn new() -> Held {
        Held {
            spans: vec![(0, 0); MAX_BURST].into_boxed_slice(),
            offloads: Box::new([Offload::NONE; MAX_BURST]),
            n: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.n
    }

    pub(crate) fn clear(&mut self) {
        self.n = 0;
    }

    /// Holds one more frame; false when [`MAX_BURST`] are held already.
    pub(crate) fn push(&mut self, start: usize, len: usize, offload: Offload) -> bool {
        if self.n == MAX_BURST {
            return false;
        }
        self.spans[self.n] = (start, len);
        self.offloads[self.n] = offload;
        self.n += 1;
        true
    }

    /// The held frames as slices of `mem` (the port's memory); a span outside it (never
    /// the case for spans the port pushed) gives an empty frame, which the pipeline drops
    /// as a runt.
    pub(crate) fn frames<'a>(&self, mem: &'a [u8], out: &mut [&'a [u8]; MAX_BURST]) -> usize {
        for (slot, &(off, len)) in out.iter_mut().zip(&self.spans[..self.n]) {
            *slot = mem.get(off..off + len).unwrap_or(&[]);
        }
        self.n
    }

    pub(crate) fn offloads(&self, out: &mut [Offload; MAX_BURST]) -> usize {
        out[..self.n].copy_from_slice(&self.offloads[..self.n]);
        self.n
    }
}
