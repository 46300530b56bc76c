//! SR-IOV VF management for vswitch.
//!
//! - [`sysfs`]: discovery of PFs/VFs and the sysfs knobs (`sriov_numvfs`, vendor trunk
//!   files), under an injectable root;
//! - [`netlink`]: VF settings over rtnetlink with `netlink-packet-route` types;
//! - [`validate`]: the rules a request must pass before anything is sent;
//! - [`trunk`]: vendor allow-list backends for trunk VFs;
//! - [`caps`]: what a PF's driver can do;
//! - [`journal`]: crash-safe record of original and desired VF state;
//! - [`host`]: the operations (`list`, `show`, `set`, `restore`, `diff`, `apply`, `drift`).
//!
//! This crate has no `unsafe` code: sockets come from `netlink-sys`.
#![deny(unsafe_code)]

pub mod caps;
pub mod host;
pub mod journal;
pub mod model;
pub mod netlink;
pub mod sysfs;
pub mod trunk;
pub mod validate;

pub use host::{Drift, Host, PfView, Report, Rtnl, VfDesired, VfError, VfReport, VfView};
pub use model::{LinkState, MacAddr, VfConfig, VfState, VlanMode, VlanProto, VlanSet};
pub use netlink::VfSetting;
