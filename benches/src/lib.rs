//! Shared fixtures for vswitch's benchmarks: frame builders and a transmit sink that
//! copies frames into preallocated memory the way a port writes into its UMEM.

pub mod harness;

use datapath::pipeline::{TxDone, TxItem, TxPorts};
use datapath::topology::PortId;
use datapath::wire::{write_edited, EthernetRepr, MacAddr, Tci};

/// A locally administered unicast MAC numbered `i`.
pub fn mac(i: u64) -> MacAddr {
    MacAddr::from_u64(0x0200_0000_0000 | i)
}

/// A 64-byte frame on the wire without FCS: 60 bytes untagged, 64 tagged.
pub fn frame64(dst: MacAddr, src: MacAddr, vid: Option<u16>) -> Vec<u8> {
    let repr = EthernetRepr {
        dst,
        src,
        tag: vid.map(|v| Tci::new(0, false, v)),
        ethertype: 0x0800,
    };
    repr.to_frame(&[0x45; 46])
}

/// Transmit sink: every port writes into one preallocated slot array, reused per burst.
#[derive(Debug)]
pub struct CopySink {
    buf: Vec<u8>,
    slot: usize,
    pub frames: u64,
}

impl CopySink {
    /// `slots` must be at least the largest burst (datapath::pipeline::MAX_BURST).
    pub fn new(slots: usize, slot: usize) -> CopySink {
        CopySink {
            buf: vec![0; slots * slot],
            slot,
            frames: 0,
        }
    }
}

impl TxPorts for CopySink {
    fn tx_burst(
        &mut self,
        _port: PortId,
        frames: &[&[u8]],
        _offloads: &[datapath::offload::Offload],
        items: &[TxItem],
    ) -> TxDone {
        let mut done = TxDone::default();
        for (i, it) in items.iter().enumerate() {
            // Items never exceed MAX_BURST (256) per call: one slot each.
            let off = i * self.slot;
            let Some(dst) = self.buf.get_mut(off..off + self.slot) else {
                break;
            };
            if let Ok(n) = write_edited(frames[usize::from(it.frame)], it.edit, dst) {
                done.sent += 1;
                done.bytes += n as u64;
            }
        }
        self.frames += done.sent as u64;
        done
    }
}
