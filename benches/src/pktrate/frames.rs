//! Valid 64-byte IPv4/UDP test frames (60 bytes untagged without FCS, 64 with a tag).

/// Destination MAC of generated frames: locally administered and nobody's own address,
/// so the sink's stack drops them as PACKET_OTHERHOST right after counting.
pub const DST_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x02];
/// Source MAC of generated frames.
pub const SRC_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x01];

fn ipv4_checksum(hdr: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in hdr.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet + IPv4 + UDP frame of 60 bytes (64 with `vid`), checksums valid
/// (UDP checksum 0 = none, which IPv4 allows).
pub fn udp_frame(dst: [u8; 6], src: [u8; 6], vid: Option<u16>) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    if let Some(v) = vid {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&(v & 0x0fff).to_be_bytes());
    }
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    // 46 bytes of L3: 20 IPv4 + 8 UDP + 18 payload.
    let total_len: u16 = 46;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total_len.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64; // TTL
    ip[9] = 17; // UDP
    ip[12..16].copy_from_slice(&[198, 18, 0, 1]);
    ip[16..20].copy_from_slice(&[198, 18, 0, 2]);
    let csum = ipv4_checksum(&ip);
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&9000u16.to_be_bytes());
    f.extend_from_slice(&9001u16.to_be_bytes());
    f.extend_from_slice(&(total_len - 20).to_be_bytes());
    f.extend_from_slice(&0u16.to_be_bytes());
    f.extend(std::iter::repeat_n(0xa5u8, 18));
    f
}

#[cfg(test)]
mod tests {
    #[allow(unused_imports)]
    use super::*;

    #[test]
    fn sizes_and_checksum() {
        let f = udp_frame(DST_MAC, SRC_MAC, None);
        assert_eq!(f.len(), 60);
        assert_eq!(ipv4_checksum(&f[14..34]), 0);
        let t = udp_frame(DST_MAC, SRC_MAC, Some(100));
        assert_eq!(t.len(), 64);
        assert_eq!(&t[12..16], &[0x81, 0x00, 0x00, 100]);
        assert_eq!(ipv4_checksum(&t[18..38]), 0);
    }
}
