//! What the daemon reports without failing a change: ports kept down, a bridge without
//! its fast path, static MACs the workers refused, SR-IOV VFs that failed or drift.
//!
//! Each is a variant naming the object and the cause; callers (the log, a reload's
//! reply) classify problems by variant, never by their text. Errors kept with running
//! state are `Clone` (their I/O causes shared behind an `Arc`).

use std::sync::Arc;

use datapath::port::PortError;
use datapath::topology::TopologyError;
use datapath::wire::MacAddr;
use datapath::worker::DatapathError;

/// Start of the problem reported when a bridge runs without the XDP fast path it is
/// configured with (its program could not be loaded).
pub const FAST_PATH_UNAVAILABLE: &str = "XDP fast path unavailable";

/// Why a bridge's fast-path program could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot load the XDP program: {0}")]
pub struct FastPathError(#[source] pub Arc<std::io::Error>);

/// Why a port's I/O could not be opened.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpenError {
    /// `type = "auto"` found no backend for the interface.
    #[error("no backend for the interface")]
    NoBackend,
    #[error("packet ports have one queue ({0} asked); use --type afxdp for more")]
    PacketQueues(u32),
    /// The backend refused (no such interface, an XDP program in the way, ...).
    #[error(transparent)]
    Port(Arc<PortError>),
}

impl From<PortError> for OpenError {
    fn from(e: PortError) -> OpenError {
        OpenError::Port(Arc::new(e))
    }
}

/// Why a port of the configuration has no I/O: shown as its state ("down: ...").
#[derive(Debug, Clone, thiserror::Error)]
pub enum PortDown {
    #[error("port {port}: {cause}")]
    Open { port: String, cause: OpenError },
    /// Left without I/O by a change that did not open it.
    #[error("not opened")]
    NotOpened,
}

/// Something a start, reload or change could not do, reported while the rest applies.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Problem {
    #[error(
        "bridge {bridge}: {FAST_PATH_UNAVAILABLE} ({cause}); all frames go through the workers"
    )]
    FastPathUnavailable {
        bridge: String,
        cause: FastPathError,
    },
    /// A port could not be opened: it is kept, down, with this error as its state.
    #[error("bridge {bridge}: {down}")]
    PortDown { bridge: String, down: PortDown },
    /// A tap port's MTU could not be changed in place.
    #[error("bridge {bridge}: {source}")]
    TapMtu {
        bridge: String,
        #[source]
        source: Arc<PortError>,
    },
    #[error("bridge {bridge}: no free port id for {port}")]
    NoPortId { bridge: String, port: String },
    #[error("bridge {bridge}: {source}")]
    Topology {
        bridge: String,
        #[source]
        source: TopologyError,
    },
    /// The workers did not take a port's opened I/O.
    #[error("bridge {bridge} port {port}: {source}")]
    Attach {
        bridge: String,
        port: String,
        #[source]
        source: Arc<DatapathError>,
    },
    #[error("bridge {bridge}: poll mode: {source}")]
    PollMode {
        bridge: String,
        #[source]
        source: Arc<DatapathError>,
    },
    /// A static MAC that left the configuration could not be removed from the workers.
    #[error("bridge {bridge}: static MAC {mac}: {source}")]
    StaticRemove {
        bridge: String,
        mac: MacAddr,
        #[source]
        source: Arc<DatapathError>,
    },
    /// The workers refused a configured static MAC (e.g. FDB full).
    #[error("bridge {bridge}: static MAC {mac} vlan {vid}: {source}")]
    StaticRefused {
        bridge: String,
        mac: MacAddr,
        vid: u16,
        #[source]
        source: Arc<DatapathError>,
    },
    /// A VF could not be brought to its settings (the SR-IOV report's reason).
    #[error("vf {pf} {vf}: {reason}")]
    Vf { pf: String, vf: u32, reason: String },
    /// A VF's live setting differs from the configured one.
    #[error(
        "vf {} {}: drift: {} desired {} live {}",
        .0.pf, .0.vf, .0.setting, .0.desired, .0.live
    )]
    VfDrift(sriov::host::Drift),
    #[error("sr-iov: netlink: {0}")]
    SriovNetlink(Arc<sriov::netlink::NetlinkError>),
    #[error("sr-iov: {0}")]
    Sriov(Arc<sriov::VfError>),
}

impl Problem {
    /// Whether the problem left a port down (its I/O could not be opened).
    pub fn is_port_down(&self) -> bool {
        matches!(self, Problem::PortDown { .. })
    }
}

/// Problems as one line, `; ` between them (a reload's or a refused change's message).
pub fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts operators and tests already know, now rendered from variants.
    #[test]
    fn problems_render_as_before_and_classify_by_variant() {
        let enodev = || std::io::Error::from_raw_os_error(libc::ENODEV);
        let fast = Problem::FastPathUnavailable {
            bridge: "br0".into(),
            cause: FastPathError(Arc::new(std::io::Error::from_raw_os_error(libc::EPERM))),
        };
        assert_eq!(
            fast.to_string(),
            format!(
                "bridge br0: XDP fast path unavailable (cannot load the XDP program: {}); all \
                 frames go through the workers",
                std::io::Error::from_raw_os_error(libc::EPERM)
            )
        );
        assert!(!fast.is_port_down());
        let down = Problem::PortDown {
            bridge: "br0".into(),
            down: PortDown::Open {
                port: "x".into(),
                cause: PortError::NoSuchInterface {
                    ifname: "vr0".into(),
                }
                .into(),
            },
        };
        assert_eq!(
            down.to_string(),
            "bridge br0: port x: interface vr0 does not exist"
        );
        assert!(down.is_port_down());
        let queues = PortDown::Open {
            port: "p".into(),
            cause: OpenError::PacketQueues(2),
        };
        assert_eq!(
            queues.to_string(),
            "port p: packet ports have one queue (2 asked); use --type afxdp for more"
        );
        let tap = Problem::TapMtu {
            bridge: "br0".into(),
            source: Arc::new(PortError::Io {
                ifname: "t0".into(),
                op: "set MTU",
                source: enodev(),
            }),
        };
        assert!(!tap.is_port_down());
        assert_eq!(
            join(&[down, tap]),
            format!(
                "bridge br0: port x: interface vr0 does not exist; bridge br0: interface t0: \
                 set MTU failed: {}",
                enodev()
            )
        );
    }
}
