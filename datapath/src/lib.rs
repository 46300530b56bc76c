//! vswitch fast path.
//!
//! Pure core first: [`wire`] (checked frame views), [`vlan`] (port VLAN model), [`fdb`] (MAC
//! learning), [`topology`] (compiled port configuration) and [`pipeline`] (the per-burst
//! forwarding stages) are plain types testable without root. Port backends are thin shells
//! around them: [`mem`] for tests, benches and the in-memory demo.
#![deny(unsafe_code)]

pub mod counters;
pub mod fastpath;
pub mod fdb;
pub mod fuzzing;
pub mod mem;
pub mod offload;
pub mod pipeline;
pub mod port;
#[allow(unsafe_code)]
pub mod sys;
#[cfg(any(test, feature = "testutil"))]
pub mod testutil;
pub mod topology;
pub mod trace;
pub mod vlan;
pub mod wire;
pub mod worker;

pub use counters::{DropReason, PortCounters};
pub use topology::{PortConfig, PortId, PortSet, Topology};
pub use vlan::{PortVlan, Vid, VlanSet};
pub use wire::{Edit, MacAddr, Tci};
