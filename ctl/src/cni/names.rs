//! Names of what an attachment creates, derived from the container id and the pod's
//! interface name alone, so DEL finds them without any record.
//!
//! The switch port and the host end of the veth (or the tap, before it moves into the
//! pod) share one name of at most 15 characters: the container id's first 4 characters,
//! 6 hex digits of a hash of the whole (container id, interface) pair, `-`, and the
//! interface name's first 4 characters, e.g. `3f2a971ec0-eth0`. Two attachments share a
//! name only when their ids share the first 4 characters, their interface names the first
//! 4, and the 24-bit hashes collide; an ADD that meets a port of another attachment fails
//! instead of touching it, and DEL removes only a port whose owner is its attachment.

/// The port and host-interface name of attachment (`container_id`, `ifname`).
pub fn attachment_name(container_id: &str, ifname: &str) -> String {
    let hash = fnv1a(container_id.as_bytes(), ifname.as_bytes()) & 0xff_ffff;
    let head: String = container_id.chars().take(4).collect();
    let tail: String = ifname.chars().take(4).collect();
    format!("{head}{hash:06x}-{tail}")
}

/// FNV-1a (64-bit) over `a`, a zero byte, and `b`: stable across versions and hosts.
fn fnv1a(a: &[u8], b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in a.iter().chain(&[0u8]).chain(b) {
        h ^= u64::from(*byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_short_and_distinct() {
        // Fixed values (computed by an independent FNV-1a): a name must never change
        // between versions, or DEL after an upgrade would miss the port.
        assert_eq!(
            attachment_name(
                "3f2a9c1b07e4d5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0",
                "eth0"
            ),
            "3f2a971ec0-eth0"
        );
        assert_eq!(fnv1a(b"", b""), 0xaf63_bd4c_8601_b7df);
        let a = attachment_name("test-container-1", "eth0");
        let b = attachment_name("test-container-2", "eth0");
        let c = attachment_name("test-container-1", "net1");
        let d = attachment_name("test-container-1", "eth0-long-name");
        let e = attachment_name("test-container-1", "eth0-other");
        for n in [&a, &b, &c, &d, &e] {
            assert!(n.len() <= 15, "{n}");
            crate::config::check_ifname(crate::config::NameOf::Given("name"), n)
                .expect("a valid interface name");
        }
        assert!(a.starts_with("test") && a.ends_with("-eth0"), "{a}");
        let all = [&a, &b, &c, &d, &e];
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x, y);
            }
        }
        assert_eq!(a, attachment_name("test-container-1", "eth0"));
    }
}
