//! vswitch control plane: the configuration store, the typed control protocol, the
//! daemon state that drives the datapath, the control-socket server and the client.
//! Binaries: `vswitchd` (src/bin/vswitchd.rs), `vswitchctl` (src/main.rs) and the CNI
//! plugin `vswitch-cni` (src/bin/vswitch-cni.rs, module [`cni`]).
#![deny(unsafe_code)]

pub mod client;
pub mod cni;
pub mod config;
pub mod daemon;
pub mod frame_spec;
pub mod fuzzing;
pub mod metrics;
pub mod proto;
pub mod render;
pub mod server;
pub mod sys;

/// Default control socket.
pub const DEFAULT_SOCKET: &str = "/run/vswitch/vswitchd.sock";
/// Default configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/vswitch/vswitchd.toml";
