//! Frames for `vswitchctl trace`: raw hex (`ffffffffffff0200...`, separators `: -` and
//! spaces allowed) or a short spec of comma-separated `key=value` pairs:
//! `dst=MAC,src=MAC[,vlan=V][,pcp=P][,type=0x0800][,len=N]` (len: total frame length,
//! default 60; `vlan=0` makes a priority tag).
//!
//! The text comes from a client and is parsed inside vswitchd: every input, however
//! malformed (non-ASCII, odd length, huge numbers), is an `Err` naming the offending
//! part, never a panic. Frames are at most [`MAX_FRAME`] bytes.

use datapath::wire::{EthernetRepr, MacAddr, MacParseError, Tci};

/// Longest frame either form may describe.
pub const MAX_FRAME: usize = 65535;

/// What is wrong with a frame's text, naming the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameSpecError {
    #[error("frame: '{}' (character {pos}) is not a hex digit", .c.escape_debug())]
    NotHex { c: char, pos: usize },
    #[error("frame: more than {MAX_FRAME} bytes")]
    TooLong,
    #[error("frame: odd number of hex digits ({0})")]
    OddDigits(usize),
    #[error("frame: empty (give hex bytes or dst=MAC,src=MAC[,...])")]
    Empty,
    #[error("frame spec: '{0}' is not key=value")]
    NotKeyValue(String),
    #[error("frame spec: unknown key '{0}' (dst, src, vlan, pcp, type, len)")]
    UnknownKey(String),
    #[error("frame spec: {0}= given twice")]
    Twice(String),
    #[error("frame spec: {0}= is required")]
    Missing(&'static str),
    #[error("frame spec: {key}: {source}")]
    Mac {
        key: &'static str,
        #[source]
        source: MacParseError,
    },
    #[error("frame spec: {key}: '{value}' is not a number")]
    NotANumber { key: String, value: String },
    #[error("frame spec: {key}: {value} is too large")]
    NumberTooLarge { key: String, value: String },
    #[error("frame spec: vlan {0} does not fit 12 bits")]
    Vlan(u64),
    #[error("frame spec: pcp {0} out of range (0-7)")]
    Pcp(u64),
    #[error("frame spec: type {0} does not fit 16 bits")]
    Type(String),
    #[error("frame spec: len {0} too large (at most {MAX_FRAME})")]
    Len(u64),
}

/// Parses a hex string or a spec into frame bytes.
pub fn parse(s: &str) -> Result<Vec<u8>, FrameSpecError> {
    let s = s.trim();
    if s.contains('=') {
        return parse_spec(s);
    }
    parse_hex(s)
}

/// Hex digits, two per byte, with `: -`, tab and newline ignored anywhere. Works on
/// `char`s, never on byte offsets of the text.
fn parse_hex(s: &str) -> Result<Vec<u8>, FrameSpecError> {
    let mut out = Vec::with_capacity(s.len() / 2);
    let mut high: Option<u8> = None;
    for (i, c) in s.chars().enumerate() {
        if matches!(c, ':' | '-' | ' ' | '\n' | '\t') {
            continue;
        }
        let Some(d) = c.to_digit(16) else {
            return Err(FrameSpecError::NotHex { c, pos: i + 1 });
        };
        // to_digit(16) is below 16, so the nibble fits a u8.
        let d = d as u8;
        match high.take() {
            None => high = Some(d),
            Some(h) => {
                if out.len() == MAX_FRAME {
                    return Err(FrameSpecError::TooLong);
                }
                out.push(h << 4 | d);
            }
        }
    }
    if high.is_some() {
        return Err(FrameSpecError::OddDigits(out.len() * 2 + 1));
    }
    if out.is_empty() {
        return Err(FrameSpecError::Empty);
    }
    Ok(out)
}

/// A decimal or `0x` hexadecimal number: digits only (no sign, no spaces inside).
fn number(key: &str, v: &str) -> Result<u64, FrameSpecError> {
    let (digits, radix) = match v.strip_prefix("0x") {
        Some(h) => (h, 16),
        None => (v, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(FrameSpecError::NotANumber {
            key: key.to_owned(),
            value: v.to_owned(),
        });
    }
    u64::from_str_radix(digits, radix).map_err(|_| FrameSpecError::NumberTooLarge {
        key: key.to_owned(),
        value: v.to_owned(),
    })
}

fn parse_spec(s: &str) -> Result<Vec<u8>, FrameSpecError> {
    let mut dst = None;
    let mut src = None;
    let mut vlan: Option<u16> = None;
    let mut pcp = None;
    let mut ethertype = None;
    let mut len = None;
    for kv in s.split(',') {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| FrameSpecError::NotKeyValue(kv.to_owned()))?;
        let (k, v) = (k.trim(), v.trim());
        let once = |seen: bool| {
            if seen {
                Err(FrameSpecError::Twice(k.to_owned()))
            } else {
                Ok(())
            }
        };
        match k {
            "dst" => {
                once(dst.is_some())?;
                dst = Some(
                    v.parse::<MacAddr>()
                        .map_err(|source| FrameSpecError::Mac { key: "dst", source })?,
                )
            }
            "src" => {
                once(src.is_some())?;
                src = Some(
                    v.parse::<MacAddr>()
                        .map_err(|source| FrameSpecError::Mac { key: "src", source })?,
                )
            }
            "vlan" => {
                once(vlan.is_some())?;
                let n = number(k, v)?;
                vlan = Some(
                    u16::try_from(n)
                        .ok()
                        .filter(|n| *n <= 4095)
                        .ok_or(FrameSpecError::Vlan(n))?,
                );
            }
            "pcp" => {
                once(pcp.is_some())?;
                let n = number(k, v)?;
                pcp = Some(
                    u8::try_from(n)
                        .ok()
                        .filter(|n| *n <= 7)
                        .ok_or(FrameSpecError::Pcp(n))?,
                );
            }
            "type" => {
                once(ethertype.is_some())?;
                ethertype = Some(
                    u16::try_from(number(k, v)?).map_err(|_| FrameSpecError::Type(v.to_owned()))?,
                )
            }
            "len" => {
                once(len.is_some())?;
                let n = number(k, v)?;
                len = Some(
                    usize::try_from(n)
                        .ok()
                        .filter(|n| *n <= MAX_FRAME)
                        .ok_or(FrameSpecError::Len(n))?,
                );
            }
            other => return Err(FrameSpecError::UnknownKey(other.to_owned())),
        }
    }
    let repr = EthernetRepr {
        dst: dst.ok_or(FrameSpecError::Missing("dst"))?,
        src: src.ok_or(FrameSpecError::Missing("src"))?,
        tag: vlan.map(|v| Tci::new(pcp.unwrap_or(0), false, v)),
        ethertype: ethertype.unwrap_or(0x0800),
    };
    let payload = len.unwrap_or(60).saturating_sub(repr.header_len());
    Ok(repr.to_frame(&vec![0u8; payload]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
            parse("dst=02:00:00:00:00:02")
                .expect_err("src missing")
                .to_string(),
            "frame spec: src= is required"
        );
        assert!(parse("dst=1,src=2").is_err());
        assert!(parse("dst=02:00:00:00:00:02,src=02:00:00:00:00:01,vlan=5000").is_err());
        assert!(parse("dst=02:00:00:00:00:02,src=02:00:00:00:00:01,color=red").is_err());
    }

    /// Text that once panicked (byte-offset slicing through a multi-byte character) or
    /// that a lax number parser accepted: each is a specific error now.
    #[test]
    fn malformed_hex_and_specs_are_specific_errors() {
        const SPEC: &str = "dst=02:00:00:00:00:02,src=02:00:00:00:00:01";
        for (input, want) in [
            // Non-ASCII: 'é' is two bytes, so byte pairs split it.
            ("aéa", "frame: 'é' (character 2) is not a hex digit"),
            ("aé", "frame: 'é' (character 2) is not a hex digit"),
            ("ffé0", "frame: 'é' (character 3) is not a hex digit"),
            ("€€", "frame: '€' (character 1) is not a hex digit"),
            (
                "ff:ff:00:0🦀",
                "frame: '🦀' (character 11) is not a hex digit",
            ),
            ("zz", "frame: 'z' (character 1) is not a hex digit"),
            ("0x00", "frame: 'x' (character 2) is not a hex digit"),
            ("+f+f", "frame: '+' (character 1) is not a hex digit"),
            ("ff\u{0}", "frame: '\\0' (character 3) is not a hex digit"),
            // Odd length, counted in digits, separators anywhere.
            ("abc", "frame: odd number of hex digits (3)"),
            ("f", "frame: odd number of hex digits (1)"),
            ("ff:ff:f", "frame: odd number of hex digits (5)"),
            ("", "frame: empty (give hex bytes or dst=MAC,src=MAC[,...])"),
            (
                " :- ",
                "frame: empty (give hex bytes or dst=MAC,src=MAC[,...])",
            ),
            // Specs: mixed and non-ASCII values, signs, overflow, repeats.
            (
                "dst=é",
                "frame spec: dst: invalid MAC address 'é' (expected six hex octets like \
                 02:00:00:00:00:01)",
            ),
            (
                "é=1",
                "frame spec: unknown key 'é' (dst, src, vlan, pcp, type, len)",
            ),
            (
                "dst=02:00:00:00:00:02,src",
                "frame spec: 'src' is not key=value",
            ),
            ("dst=02:00:00:00:00:02,", "frame spec: '' is not key=value"),
            ("vlan=+5", "frame spec: vlan: '+5' is not a number"),
            ("vlan=0x+5", "frame spec: vlan: '0x+5' is not a number"),
            ("vlan=0x", "frame spec: vlan: '0x' is not a number"),
            ("vlan=1é", "frame spec: vlan: '1é' is not a number"),
            ("vlan=٣", "frame spec: vlan: '٣' is not a number"),
            ("vlan=4096", "frame spec: vlan 4096 does not fit 12 bits"),
            ("vlan=65536", "frame spec: vlan 65536 does not fit 12 bits"),
            ("pcp=256", "frame spec: pcp 256 out of range (0-7)"),
            (
                "type=0x10000",
                "frame spec: type 0x10000 does not fit 16 bits",
            ),
            (
                "len=18446744073709551615",
                "frame spec: len 18446744073709551615 too large (at most 65535)",
            ),
            (
                "len=18446744073709551616",
                "frame spec: len: 18446744073709551616 is too large",
            ),
            (
                "len=65536",
                "frame spec: len 65536 too large (at most 65535)",
            ),
            ("vlan=1,vlan=2", "frame spec: vlan= given twice"),
        ] {
            assert_eq!(
                parse(input).expect_err(input).to_string(),
                want,
                "input {input:?}"
            );
        }
        assert_eq!(
            parse(&format!("{SPEC},dst=02:00:00:00:00:03"))
                .expect_err("twice")
                .to_string(),
            "frame spec: dst= given twice"
        );
        assert_eq!(
            parse(&"00".repeat(MAX_FRAME + 1))
                .expect_err("too long")
                .to_string(),
            "frame: more than 65535 bytes"
        );
        // The edges that are still frames.
        assert_eq!(
            parse(&"00".repeat(MAX_FRAME)).expect("max").len(),
            MAX_FRAME
        );
        assert_eq!(parse("0A\tbC\n").expect("mixed case"), vec![0x0a, 0xbc]);
        assert_eq!(
            parse(&format!("{SPEC},len=65535")).expect("max len").len(),
            MAX_FRAME
        );
        let f = parse(&format!("{SPEC},vlan=0x0fff,pcp=7,type=0x88b5")).expect("hex numbers");
        assert_eq!(&f[12..18], &[0x81, 0x00, 0xef, 0xff, 0x88, 0xb5]);
    }

    /// Characters the parsers treat specially, plus non-ASCII ones of 2, 3 and 4 bytes.
    fn tricky() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop::sample::select(vec![
                "0",
                "7",
                "f",
                "F",
                "x",
                "0x",
                ":",
                "-",
                " ",
                "\t",
                ",",
                "=",
                "+",
                "é",
                "€",
                "🦀",
                "dst",
                "src",
                "vlan",
                "pcp",
                "type",
                "len",
                "02:00:00:00:00:01",
                "99999999999",
            ]),
            0..24,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// No text panics the parser; what it accepts is a frame of 1..=MAX_FRAME bytes.
        #[test]
        fn arbitrary_text_never_panics(s in prop_oneof![any::<String>(), tricky()]) {
            if let Ok(f) = parse(&s) {
                prop_assert!(!f.is_empty() && f.len() <= MAX_FRAME, "{} bytes", f.len());
            }
        }

        /// Hex written out with any separators parses back to the same bytes.
        #[test]
        fn hex_round_trips(bytes in proptest::collection::vec(any::<u8>(), 1..64),
                           sep in prop::sample::select(vec!["", ":", "-", " ", "\t"])) {
            let text: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
            prop_assert_eq!(parse(&text.join(sep)), Ok(bytes));
        }
    }
}
