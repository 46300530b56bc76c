//! Frames for `vswitchctl trace`: raw hex (`ffffffffffff0200...`, separators `: -` and
//! spaces allowed) or a short spec of comma-separated `key=value` pairs:
//! `dst=MAC,src=MAC[,vlan=V][,pcp=P][,type=0x0800][,len=N]` (len: total frame length,
//! default 60; `vlan=0` makes a priority tag).

use datapath::wire::{EthernetRepr, MacAddr, Tci};

/// Parses a hex string or a spec into frame bytes.
pub fn parse(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    if s.contains('=') {
        return parse_spec(s);
    }
    let hex: String = s
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | ' ' | '\n' | '\t'))
        .collect();
    if hex.len() % 2 != 0 {
        return Err(format!("frame: odd number of hex digits ({})", hex.len()));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&hex[i..i + 2], 16)
                .map_err(|_| format!("frame: '{}' is not a hex byte", &hex[i..i + 2]))
        })
        .collect()
}

fn parse_spec(s: &str) -> Result<Vec<u8>, String> {
    let mut dst = None;
    let mut src = None;
    let mut vlan: Option<u16> = None;
    let mut pcp = 0u8;
    let mut ethertype = 0x0800u16;
    let mut len = 60usize;
    for kv in s.split(',') {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("frame spec: '{kv}' is not key=value"))?;
        let (k, v) = (k.trim(), v.trim());
        let num = |v: &str| -> Result<u64, String> {
            let r = match v.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => v.parse(),
            };
            r.map_err(|_| format!("frame spec: {k}: '{v}' is not a number"))
        };
        match k {
            "dst" => {
                dst = Some(
                    v.parse::<MacAddr>()
                        .map_err(|e| format!("frame spec: dst: {e}"))?,
                )
            }
            "src" => {
                src = Some(
                    v.parse::<MacAddr>()
                        .map_err(|e| format!("frame spec: src: {e}"))?,
                )
            }
            "vlan" => {
                let n = num(v)?;
                if n > 4095 {
                    return Err(format!("frame spec: vlan {n} does not fit 12 bits"));
                }
                vlan = Some(n as u16);
            }
            "pcp" => {
                let n = num(v)?;
                if n > 7 {
                    return Err(format!("frame spec: pcp {n} out of range (0-7)"));
                }
                pcp = n as u8;
            }
            "type" => {
                ethertype = u16::try_from(num(v)?)
                    .map_err(|_| format!("frame spec: type {v} does not fit 16 bits"))?
            }
            "len" => {
                len = num(v)? as usize;
                if len > 65535 {
                    return Err(format!("frame spec: len {len} too large"));
                }
            }
            other => {
                return Err(format!(
                    "frame spec: unknown key '{other}' (dst, src, vlan, pcp, type, len)"
                ))
            }
        }
    }
    let repr = EthernetRepr {
        dst: dst.ok_or("frame spec: dst= is required")?,
        src: src.ok_or("frame spec: src= is required")?,
        tag: vlan.map(|v| Tci::new(pcp, false, v)),
        ethertype,
    };
    let payload = len.saturating_sub(repr.header_len());
    Ok(repr.to_frame(&vec![0u8; payload]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_spec() {
        assert_eq!(
            parse("ff:ff 00-01 02").expect("hex"),
            vec![0xff, 0xff, 0, 1, 2]
        );
        assert!(parse("abc").is_err());
        assert!(parse("zz").is_err());
        let f = parse("dst=ff:ff:ff:ff:ff:ff,src=02:00:00:00:00:01,vlan=100,pcp=3").expect("spec");
        assert_eq!(f.len(), 60);
        assert_eq!(&f[12..16], &[0x81, 0x00, 0x60, 0x64]);
        let g = parse("dst=02:00:00:00:00:02, src=02:00:00:00:00:01, len=1514").expect("spec");
        assert_eq!(g.len(), 1514);
        assert_eq!(&g[12..14], &[0x08, 0x00]);
        assert_eq!(
            parse("dst=02:00:00:00:00:02").expect_err("src missing"),
            "frame spec: src= is required"
        );
        assert!(parse("dst=1,src=2").is_err());
        assert!(parse("dst=02:00:00:00:00:02,src=02:00:00:00:00:01,vlan=5000").is_err());
        assert!(parse("dst=02:00:00:00:00:02,src=02:00:00:00:00:01,color=red").is_err());
    }
}
