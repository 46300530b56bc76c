#![no_main]
//! cargo-fuzz target: datapath::fuzzing::offload (run with `make fuzz`).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    datapath::fuzzing::offload(data);
});
