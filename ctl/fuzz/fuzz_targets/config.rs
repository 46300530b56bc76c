#![no_main]
//! cargo-fuzz target: ctl::fuzzing::config (run with `make fuzz`).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ctl::fuzzing::config(data);
});
