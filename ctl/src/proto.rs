//! The control protocol between `vswitchctl` and `vswitchd`: one JSON object per line
//! over a unix stream socket, typed on both ends and versioned.
//!
//! Invariants kept here:
//! - Every message carries `version`; a peer speaking another version gets a `version`
//!   error, never a misparse.
//! - Unknown fields are rejected (`deny_unknown_fields`) on requests.
//! - A request is at most [`MAX_REQUEST`] bytes; larger ones are refused with an error
//!   reply and the connection is closed.

use serde::{Deserialize, Serialize};

use datapath::vlan::{Vid, VlanError};
use datapath::wire::MacAddr;

use crate::config::{PortOwner, PortSpec};
use datapath::worker::PollMode;

pub const PROTOCOL_VERSION: u32 = 1;
/// Largest accepted request line, in bytes.
pub const MAX_REQUEST: usize = 1 << 20;

/// A request as sent on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestMsg {
    pub version: u32,
    pub request: Request,
}

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    AddBr {
        bridge: String,
        #[serde(default)]
        may_exist: bool,
    },
    DelBr {
        bridge: String,
        #[serde(default)]
        if_exists: bool,
    },
    AddPort {
        bridge: String,
        port: PortSpec,
        #[serde(default)]
        may_exist: bool,
    },
    DelPort {
        bridge: String,
        port: String,
        #[serde(default)]
        if_exists: bool,
    },
    /// Changes a port's VLAN mode (`vlan`: "access 100", "trunk 10,20 native 5 tagged").
    SetPort {
        bridge: String,
        port: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vlan: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mtu: Option<u32>,
        /// Isolated port on/off.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        isolated: Option<bool>,
        /// Flood policy: does the port receive unknown unicast / multicast / broadcast.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flood_unknown: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flood_multicast: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flood_broadcast: Option<bool>,
    },
    Show {},
    PortStats {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bridge: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<String>,
    },
    FdbShow {
        bridge: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vlan: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mac: Option<String>,
    },
    FdbAdd {
        bridge: String,
        vlan: u16,
        mac: String,
        port: String,
    },
    FdbDel {
        bridge: String,
        vlan: u16,
        mac: String,
    },
    FdbFlush {
        bridge: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vlan: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mac: Option<String>,
    },
    FdbStats {
        bridge: String,
    },
    PmdShow {},
    PmdSetCpus {
        cpus: Vec<usize>,
    },
    /// Turns the XDP fast path on or off (`datapath.xdp_fast_path`), persisted; restarts
    /// the bridges.
    PmdSetFastPath {
        enabled: bool,
    },
    /// Sets the workers' poll mode (`datapath.poll_mode`, and with `adaptive_window_us`
    /// the adaptive window), persisted; running workers switch at their next burst.
    PmdSetPollMode {
        #[serde(with = "crate::config::poll_mode_serde")]
        mode: PollMode,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        adaptive_window_us: Option<u64>,
    },
    /// Explains what the switch would do with `frame` (hex) arriving on `port`.
    Trace {
        bridge: String,
        port: String,
        frame: String,
    },
    /// Re-reads the configuration file and applies the difference (like SIGHUP).
    Reload {},
}

impl Request {
    /// The request's `op` as it travels ("add_br", "fdb_show", ...), for logs and errors.
    pub fn op(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| Some(v.get("op")?.as_str()?.to_owned()))
            .unwrap_or_else(|| "request".to_owned())
    }

    /// Checks the VLAN of an FDB removal (`fdb del`, `fdb flush --vlan`): 1-4094, the
    /// rule `fdb add` applies to the entries it creates. The workers key their tables by
    /// the VLAN's low 12 bits and the XDP fast path's mirror by the whole value, so an
    /// unchecked `fdb del --vlan 4106` removed VLAN 10's entry from the workers only.
    pub fn check_fdb_vlan(&self) -> Result<(), FdbVlanError> {
        let (what, vlan) = match self {
            Request::FdbDel { vlan, .. } => ("fdb del", *vlan),
            Request::FdbFlush {
                vlan: Some(vlan), ..
            } => ("fdb flush", *vlan),
            _ => return Ok(()),
        };
        Vid::new(u32::from(vlan))
            .map(|_| ())
            .map_err(|source| FdbVlanError { op: what, source })
    }
}

/// The VLAN of an FDB removal outside 1-4094.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {source}")]
pub struct FdbVlanError {
    /// The command: "fdb del" or "fdb flush".
    pub op: &'static str,
    #[source]
    pub source: VlanError,
}

/// A reply as sent on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseMsg {
    pub version: u32,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok(Response),
    Error(ErrorReply),
}

/// Error classes; `vswitchctl` maps them to exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed or invalid request (exit 2).
    Usage,
    /// A named bridge, port or entry does not exist (exit 3).
    NotFound,
    /// It already exists (without --may-exist).
    Exists,
    /// The request was valid but applying it failed (exit 1).
    Failed,
    /// The peer is not allowed to use the socket.
    Unauthorized,
    /// Request larger than MAX_REQUEST.
    TooLarge,
    /// The client did not send a whole request in time.
    Timeout,
    /// Protocol version mismatch.
    Version,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub code: ErrorCode,
    pub message: String,
}

impl ErrorReply {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorReply {
        ErrorReply {
            code,
            message: message.into(),
        }
    }
}

/// Successful replies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    Done {
        message: String,
    },
    Show {
        bridges: Vec<BridgeView>,
    },
    PortStats {
        ports: Vec<PortStatsView>,
    },
    Fdb {
        entries: Vec<FdbEntryView>,
    },
    FdbStats {
        stats: FdbStatsView,
    },
    Pmd {
        workers: Vec<PmdView>,
        /// `datapath.xdp_fast_path` as configured.
        #[serde(default)]
        xdp_fast_path: bool,
        /// `datapath.poll_mode` and `datapath.adaptive_window_us` as configured.
        #[serde(default, with = "crate::config::poll_mode_serde")]
        poll_mode: PollMode,
        #[serde(default)]
        adaptive_window_us: u64,
    },
    Trace {
        trace: TraceView,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeView {
    pub name: String,
    pub ports: Vec<PortView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortView {
    pub name: String,
    pub id: usize,
    #[serde(rename = "type")]
    pub kind: String,
    /// The backend serving the port: "afxdp", "packet" or "tap" (for type "auto", the one
    /// it chose); empty while the port is down.
    #[serde(default)]
    pub backend: String,
    pub interface: String,
    /// OVS-style VLAN text: "access 100", "trunk 10,20 native 5".
    pub vlan: String,
    pub mtu: u32,
    pub queues: u32,
    /// XDP mode in use for afxdp ports ("native", "generic"), empty for tap.
    pub xdp_mode: String,
    /// An afxdp port whose known unicast the bridge's XDP fast path forwards in the kernel
    /// (omitted when false, so output without the fast path is as before).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fast_path: bool,
    /// Worker that transmits on this port.
    pub worker: Option<usize>,
    /// "up", or the error that keeps the port down.
    pub state: String,
    /// Isolated port (omitted when false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub isolated: bool,
    /// Flood kinds the port does not receive: "unknown", "multicast", "broadcast"
    /// (omitted when it receives all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_flood: Vec<String>,
    /// Who the port was created for (a pod, by the CNI plugin); omitted when nobody.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<PortOwner>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatsView {
    pub bridge: String,
    pub port: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_flooded: u64,
    /// Non-zero drop counters by reason name.
    pub drops: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdbEntryView {
    pub vlan: u16,
    /// On the wire as its text, `"02:00:00:00:00:01"`.
    #[serde(with = "crate::config::mac_serde")]
    pub mac: MacAddr,
    pub port: String,
    #[serde(rename = "static")]
    pub is_static: bool,
    pub age: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdbStatsView {
    pub entries: u64,
    pub static_entries: u64,
    pub learned: u64,
    pub expired: u64,
    pub evicted: u64,
    pub moved: u64,
    pub learn_limit: u64,
    pub static_move_blocked: u64,
    /// Static entries removed from the workers' FDBs (entry deleted, port removed), the
    /// most any replica removed: a configuration change leaves other statics alone.
    #[serde(default)]
    pub static_removed: u64,
    pub capacity: usize,
    pub aging_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PmdView {
    pub bridge: String,
    pub worker: usize,
    pub cpu: Option<usize>,
    pub packets: u64,
    pub bursts: u64,
    pub avg_burst: f64,
    pub busy_ratio: f64,
    pub rx_queues: Vec<String>,
    pub tx_ports: Vec<String>,
    pub handoff_out: u64,
    pub handoff_in: u64,
    pub fdb_updates_sent: u64,
    pub fdb_updates_dropped: u64,
    /// Frames that could not be handed to another worker (its lane stayed full longer
    /// than the worker may hold back receiving); counted `tx_ring_full` on the port too.
    #[serde(default)]
    pub handoff_full: u64,
    /// Loop passes that held back receiving while a lane to another worker was short of
    /// buffers (backpressure instead of drops).
    #[serde(default)]
    pub lane_waits: u64,
    /// Times the idle worker blocked until frames, handoffs or a command arrived.
    #[serde(default)]
    pub idle_waits: u64,
    /// The poll mode the worker runs in.
    #[serde(default, with = "crate::config::poll_mode_serde")]
    pub poll_mode: PollMode,
    /// Kernel threads feeding the worker share its CPU (in `sleep` mode it blocks at its
    /// first empty pass).
    #[serde(default)]
    pub shares_cpu: bool,
    /// The worker's bridge runs the XDP fast path (bridge-wide, repeated per worker).
    #[serde(default)]
    pub xdp_fast_path: bool,
    /// Why the bridge runs without the fast path it is configured with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xdp_fast_path_error: Option<String>,
    /// The bridge's packet ports forward known unicast in the kernel.
    #[serde(default)]
    pub packet_fast_path: bool,
    /// Entries in the bridge's fast-path FDB (the program's mirror of the workers' tables).
    #[serde(default)]
    pub xdp_fdb_entries: u64,
    /// Failed writes to the fast-path program's maps (those frames use the workers).
    #[serde(default)]
    pub xdp_map_errors: u64,
    /// FDB updates this worker could not hand to the fast-path mirror (queue full).
    #[serde(default)]
    pub xdp_mirror_dropped: u64,
    /// What the worker could not set up as asked (e.g. threaded NAPI of a fast-path port).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceView {
    pub bridge: String,
    pub ingress: String,
    /// One line per stage: parse, classify, learn, lookup, egress.
    pub steps: Vec<String>,
    /// Ports the frame leaves by, with the tag each gets ("untagged" or "vlan N pcp P").
    pub egress: Vec<TraceEgress>,
    /// The drop reason, if the frame goes nowhere.
    pub drop: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEgress {
    pub port: String,
    pub tag: String,
}

/// Encodes a request line (with the trailing newline).
pub fn encode_request(r: &Request) -> String {
    let mut s = serde_json::to_string(&RequestMsg {
        version: PROTOCOL_VERSION,
        request: r.clone(),
    })
    .unwrap_or_default();
    s.push('\n');
    s
}

/// Encodes a reply line (with the trailing newline).
pub fn encode_response(o: &Outcome) -> String {
    let mut s = serde_json::to_string(&ResponseMsg {
        version: PROTOCOL_VERSION,
        outcome: o.clone(),
    })
    .unwrap_or_default();
    s.push('\n');
    s
}

/// Decodes a request line, classifying what is wrong with a bad one.
pub fn decode_request(line: &[u8]) -> Result<Request, ErrorReply> {
    if line.len() > MAX_REQUEST {
        return Err(ErrorReply::new(
            ErrorCode::TooLarge,
            format!("request of {} bytes exceeds {MAX_REQUEST}", line.len()),
        ));
    }
    // Check the version before the body so an old client gets a clear answer.
    #[derive(Deserialize)]
    struct VersionOnly {
        version: Option<u32>,
    }
    let v: VersionOnly = serde_json::from_slice(line)
        .map_err(|e| ErrorReply::new(ErrorCode::Usage, format!("malformed request: {e}")))?;
    match v.version {
        Some(PROTOCOL_VERSION) => {}
        Some(other) => {
            return Err(ErrorReply::new(
                ErrorCode::Version,
                format!(
                "protocol version {other} not supported (this daemon speaks {PROTOCOL_VERSION})"
            ),
            ))
        }
        None => {
            return Err(ErrorReply::new(
                ErrorCode::Usage,
                "malformed request: missing field `version`",
            ))
        }
    }
    serde_json::from_slice::<RequestMsg>(line)
        .map(|m| m.request)
        .map_err(|e| ErrorReply::new(ErrorCode::Usage, format!("malformed request: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PortKind;

    #[test]
    fn op_names_the_request_as_on_the_wire() {
        assert_eq!(Request::Show {}.op(), "show");
        assert_eq!(Request::PmdShow {}.op(), "pmd_show");
        let add = Request::AddBr {
            bridge: "br0".into(),
            may_exist: false,
        };
        assert_eq!(add.op(), "add_br");
    }

    #[test]
    fn requests_round_trip() {
        let reqs = vec![
            Request::AddBr {
                bridge: "br0".into(),
                may_exist: true,
            },
            Request::AddPort {
                bridge: "br0".into(),
                port: PortSpec::new("vm1", PortKind::Tap),
                may_exist: false,
            },
            Request::SetPort {
                bridge: "br0".into(),
                port: "vm1".into(),
                vlan: Some("trunk 10,20 native 5 tagged".into()),
                mtu: None,
                isolated: None,
                flood_unknown: Some(false),
                flood_multicast: None,
                flood_broadcast: None,
            },
            Request::FdbShow {
                bridge: "br0".into(),
                port: None,
                vlan: Some(10),
                mac: None,
            },
            Request::Trace {
                bridge: "br0".into(),
                port: "vm1".into(),
                frame: "ffffffffffff020000000001".into(),
            },
            Request::Show {},
            Request::Reload {},
            Request::PmdSetFastPath { enabled: true },
        ];
        for r in reqs {
            let line = encode_request(&r);
            assert!(line.ends_with('\n'));
            assert_eq!(decode_request(line.trim_end().as_bytes()), Ok(r));
        }
    }

    #[test]
    fn fdb_removals_name_a_vlan_outside_1_to_4094() {
        let del = |vlan| Request::FdbDel {
            bridge: "br0".into(),
            vlan,
            mac: "02:00:00:00:00:01".into(),
        };
        let flush = |vlan| Request::FdbFlush {
            bridge: "br0".into(),
            port: None,
            vlan,
            mac: None,
        };
        // 4106 and 65535 have low 12 bits 10 and 4095: what the workers' table keys on.
        for (req, want) in [
            (
                del(4106),
                Err("fdb del: VLAN 4106 is out of range; use 1-4094"),
            ),
            (
                del(65535),
                Err("fdb del: VLAN 65535 is out of range; use 1-4094"),
            ),
            (
                del(0),
                Err(
                    "fdb del: VLAN 0 is not a VLAN (VID 0 marks priority-tagged frames); \
                     use 1-4094",
                ),
            ),
            (
                del(4095),
                Err("fdb del: VLAN 4095 is reserved by 802.1Q; use 1-4094"),
            ),
            (
                flush(Some(5000)),
                Err("fdb flush: VLAN 5000 is out of range; use 1-4094"),
            ),
            (del(1), Ok(())),
            (del(4094), Ok(())),
            (flush(Some(10)), Ok(())),
            (flush(None), Ok(())),
            (Request::Show {}, Ok(())),
        ] {
            assert_eq!(
                req.check_fdb_vlan().map_err(|e| e.to_string()),
                want.map_err(str::to_string),
                "{req:?}"
            );
        }
    }

    #[test]
    fn wire_format_is_stable() {
        assert_eq!(
            encode_request(&Request::PmdSetFastPath { enabled: false }),
            "{\"version\":1,\"request\":{\"op\":\"pmd_set_fast_path\",\"enabled\":false}}\n"
        );
        assert_eq!(
            encode_request(&Request::DelPort {
                bridge: "br0".into(),
                port: "p1".into(),
                if_exists: true
            }),
            "{\"version\":1,\"request\":{\"op\":\"del_port\",\"bridge\":\"br0\",\"port\":\"p1\",\"if_exists\":true}}\n"
        );
        assert_eq!(
            encode_response(&Outcome::Error(ErrorReply::new(
                ErrorCode::NotFound,
                "no bridge br9"
            ))),
            "{\"version\":1,\"error\":{\"code\":\"not_found\",\"message\":\"no bridge br9\"}}\n"
        );
        assert_eq!(
            encode_response(&Outcome::Ok(Response::Done {
                message: "ok".into()
            })),
            "{\"version\":1,\"ok\":{\"kind\":\"done\",\"message\":\"ok\"}}\n"
        );
    }

    /// A typed MAC travels as the text it always did, and a malformed one is refused.
    #[test]
    fn fdb_entries_carry_the_mac_as_text() {
        let reply = Outcome::Ok(Response::Fdb {
            entries: vec![FdbEntryView {
                vlan: 10,
                mac: "02:00:00:00:00:5E".parse().expect("mac"),
                port: "p2".into(),
                is_static: true,
                age: 0,
            }],
        });
        let line = encode_response(&reply);
        assert_eq!(
            line,
            "{\"version\":1,\"ok\":{\"kind\":\"fdb\",\"entries\":[{\"vlan\":10,\
             \"mac\":\"02:00:00:00:00:5e\",\"port\":\"p2\",\"static\":true,\"age\":0}]}}\n"
        );
        let back: ResponseMsg = serde_json::from_str(&line).expect("decode");
        assert_eq!(back.outcome, reply);
        let bad = line.replace("02:00:00:00:00:5e", "02:00:00:00:00");
        let e = serde_json::from_str::<ResponseMsg>(&bad).expect_err("short MAC");
        assert!(
            e.to_string()
                .contains("invalid MAC address '02:00:00:00:00'"),
            "{e}"
        );
    }

    #[test]
    fn bad_requests_are_classified() {
        let code = |s: &str| decode_request(s.as_bytes()).map_err(|e| e.code);
        assert_eq!(code("not json"), Err(ErrorCode::Usage));
        assert_eq!(code("{}"), Err(ErrorCode::Usage));
        assert_eq!(
            code("{\"version\":2,\"request\":{\"op\":\"show\"}}"),
            Err(ErrorCode::Version)
        );
        assert_eq!(
            code("{\"version\":1,\"request\":{\"op\":\"show\",\"extra\":1}}"),
            Err(ErrorCode::Usage)
        );
        assert_eq!(
            code("{\"version\":1,\"request\":{\"op\":\"explode\"}}"),
            Err(ErrorCode::Usage)
        );
        assert_eq!(
            code("{\"version\":1,\"request\":{\"op\":\"show\"},\"x\":0}"),
            Err(ErrorCode::Usage)
        );
        let big = vec![b' '; MAX_REQUEST + 1];
        assert_eq!(
            decode_request(&big).map_err(|e| e.code),
            Err(ErrorCode::TooLarge)
        );
        assert_eq!(
            decode_request(b"{\"version\":1,\"request\":{\"op\":\"show\"}}"),
            Ok(Request::Show {})
        );
    }
}
