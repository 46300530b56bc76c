//! Fuzz entry points for the control plane's untrusted inputs, shared by the cargo-fuzz
//! targets (`ctl/fuzz/`) and the corpus replay test `make test` runs. Each must never
//! panic; decoded values must re-encode and decode to themselves.

use std::path::Path;

use crate::config::Config;
use crate::proto::{decode_request, encode_request};

/// A control-socket request line.
pub fn proto(data: &[u8]) {
    if let Ok(req) = decode_request(data) {
        let line = encode_request(&req);
        let again = decode_request(line.trim_end().as_bytes());
        assert_eq!(again.as_ref(), Ok(&req), "request does not round-trip");
    }
}

/// A configuration file.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Config::parse(text, Path::new("fuzz.toml")) {
        // What we write back must load to the same configuration.
        let back = Config::parse(&c.to_toml(), Path::new("fuzz.toml"));
        assert_eq!(
            back.as_ref().ok(),
            Some(&c),
            "config does not round-trip: {back:?}"
        );
    }
}
