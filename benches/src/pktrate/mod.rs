//! Packet-rate harness (issue 4): generator namespace -> veth -> {direct | Linux bridge |
//! vswitch} -> veth -> sink namespace, measured in one run with medians over repeats.
//!
//! Shared by the `pktrate` binary and the `pktrate` criterion bench (both include this
//! directory with `#[path]`, so the library crate stays untouched).

pub mod cpu;
pub mod frames;
pub mod gen;
pub mod lab;
pub mod report;
pub mod run;
pub mod xfer;
