//! rtnetlink for VFs: building RTM_NEWLINK requests that carry one VF setting, reading a
//! PF's VF list (RTM_GETLINK + IFLA_EXT_MASK=RTEXT_FILTER_VF), over a synchronous
//! NETLINK_ROUTE socket.
//!
//! Invariants: every wire layout comes from `netlink-packet-route` (no hand-written byte
//! offsets); one request carries exactly one VF setting, so a kernel error always names
//! the setting that failed; request building is pure ([`set_vf_request`]) so tests can
//! compare it with what iproute2 sends.

use std::io;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST,
};
use netlink_packet_route::link::{
    LinkAttribute, LinkExtentMask, LinkMessage, LinkVfInfo, VfInfo, VfInfoLinkState, VfInfoMac,
    VfInfoRate, VfInfoSpoofCheck, VfInfoTrust, VfLinkState, VfVlan, VfVlanInfo, VlanProtocol,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use thiserror::Error;

use crate::model::{LinkState, MacAddr, VfState, VlanProto};

/// Failure of a netlink exchange.
#[derive(Debug, Error)]
pub enum NetlinkError {
    /// A socket call failed.
    #[error("netlink {call}: {source}")]
    Io {
        /// The failing call.
        call: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The kernel answered with an error code (positive errno).
    #[error("{}", io::Error::from_raw_os_error(*errno))]
    Kernel {
        /// errno, e.g. `libc::EOPNOTSUPP`.
        errno: i32,
    },
    /// No interface of that name.
    #[error("no network interface named {0}")]
    NoSuchDevice(String),
    /// The kernel's answer could not be decoded.
    #[error("cannot decode netlink answer: {0}")]
    Decode(String),
    /// The kernel answered something we did not ask for.
    #[error("unexpected netlink answer: {0}")]
    Unexpected(String),
}

/// One VF setting, sent as one IFLA_VF_INFO attribute in one RTM_NEWLINK request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VfSetting {
    /// Port VLAN (`vid` 0 = none) with priority and TPID, as IFLA_VF_VLAN_LIST.
    Vlan {
        /// VLAN ID, 0 = no port VLAN.
        vid: u16,
        /// 802.1p priority.
        qos: u8,
        /// TPID.
        proto: VlanProto,
    },
    /// Administrative MAC, IFLA_VF_MAC.
    Mac(MacAddr),
    /// IFLA_VF_SPOOFCHK.
    SpoofChk(bool),
    /// IFLA_VF_TRUST.
    Trust(bool),
    /// IFLA_VF_LINK_STATE.
    LinkState(LinkState),
    /// IFLA_VF_RATE, Mbit/s (both bounds are always sent together).
    Rate {
        /// Minimum TX rate.
        min: u32,
        /// Maximum TX rate (0 = unlimited).
        max: u32,
    },
}

impl VfSetting {
    /// Short name used in messages and reports ("vlan", "mac", ...).
    pub fn name(&self) -> &'static str {
        match self {
            VfSetting::Vlan { .. } => "vlan",
            VfSetting::Mac(_) => "mac",
            VfSetting::SpoofChk(_) => "spoofchk",
            VfSetting::Trust(_) => "trust",
            VfSetting::LinkState(_) => "state",
            VfSetting::Rate { .. } => "rate",
        }
    }

    /// The IFLA_VF_* attribute for VF `vf`.
    pub fn to_vf_info(&self, vf: u32) -> VfInfo {
        match *self {
            VfSetting::Vlan { vid, qos, proto } => {
                VfInfo::VlanList(vec![VfVlan::Info(VfVlanInfo::new(
                    vf,
                    u32::from(vid),
                    u32::from(qos),
                    match proto {
                        VlanProto::Dot1Q => VlanProtocol::Ieee8021Q,
                        VlanProto::Dot1Ad => VlanProtocol::Ieee8021Ad,
                    },
                ))])
            }
            VfSetting::Mac(mac) => VfInfo::Mac(VfInfoMac::new(vf, &mac.0)),
            VfSetting::SpoofChk(on) => VfInfo::SpoofCheck(VfInfoSpoofCheck::new(vf, on)),
            VfSetting::Trust(on) => VfInfo::Trust(VfInfoTrust::new(vf, on)),
            VfSetting::LinkState(state) => VfInfo::LinkState(VfInfoLinkState::new(
                vf,
                match state {
                    LinkState::Auto => VfLinkState::Auto,
                    LinkState::Enable => VfLinkState::Enable,
                    LinkState::Disable => VfLinkState::Disable,
                },
            )),
            VfSetting::Rate { min, max } => VfInfo::Rate(VfInfoRate::new(vf, min, max)),
        }
    }
}

/// The RTM_NEWLINK message iproute2's `ip link set dev PF vf N ...` sends for `setting`.
pub fn set_vf_request(ifindex: u32, vf: u32, setting: &VfSetting) -> RouteNetlinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    msg.attributes
        .push(LinkAttribute::VfInfoList(vec![LinkVfInfo(vec![
            setting.to_vf_info(vf)
        ])]));
    RouteNetlinkMessage::NewLink(msg)
}

/// The RTM_GETLINK request for `name` with the VF list and without statistics.
pub fn get_link_request(name: &str) -> RouteNetlinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::ExtMask(vec![
        LinkExtentMask::Vf,
        LinkExtentMask::SkipStats,
    ]));
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    RouteNetlinkMessage::GetLink(msg)
}

/// Serializes `msg` with the given flags and sequence number (port id 0 = the kernel).
pub fn encode(msg: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut nl = NetlinkMessage::new(header, NetlinkPayload::from(msg));
    nl.finalize();
    let mut buf = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut buf);
    buf
}

/// Live VF settings from a RTM_NEWLINK answer, in VF order. Settings a VF entry lacks
/// keep their kernel defaults (VLAN 0, 802.1Q, rates 0) or `None`.
pub fn parse_vf_states(link: &LinkMessage) -> Vec<VfState> {
    let mut out = Vec::new();
    for attr in &link.attributes {
        let LinkAttribute::VfInfoList(list) = attr else {
            continue;
        };
        for LinkVfInfo(infos) in list {
            out.push(vf_state(infos));
        }
    }
    out.sort_by_key(|s| s.vf);
    out
}

fn vf_state(infos: &[VfInfo]) -> VfState {
    let mut st = VfState {
        vf: 0,
        mac: MacAddr::ZERO,
        vlan: 0,
        qos: 0,
        proto: VlanProto::Dot1Q,
        spoofchk: None,
        trust: None,
        link_state: None,
        min_tx_rate: 0,
        max_tx_rate: 0,
        trunk: None,
    };
    for info in infos {
        match info {
            VfInfo::Mac(m) => {
                st.vf = m.vf_id;
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&m.mac[..6]);
                st.mac = MacAddr(mac);
            }
            VfInfo::Vlan(v) => {
                st.vf = v.vf_id;
                st.vlan = u16::try_from(v.vlan_id).unwrap_or(u16::MAX);
                st.qos = u8::try_from(v.qos).unwrap_or(u8::MAX);
            }
            VfInfo::VlanList(list) => {
                // The kernel reports the same VLAN here with its protocol.
                if let Some(VfVlan::Info(first)) = list.first() {
                    st.proto = match first.protocol {
                        VlanProtocol::Ieee8021Ad => VlanProto::Dot1Ad,
                        _ => VlanProto::Dot1Q,
                    };
                }
            }
            VfInfo::SpoofCheck(s) => st.spoofchk = Some(s.enabled),
            VfInfo::Trust(t) => st.trust = Some(t.enabled),
            VfInfo::LinkState(l) => {
                st.link_state = match l.state {
                    VfLinkState::Auto => Some(LinkState::Auto),
                    VfLinkState::Enable => Some(LinkState::Enable),
                    VfLinkState::Disable => Some(LinkState::Disable),
                    _ => None,
                }
            }
            VfInfo::Rate(r) => {
                st.min_tx_rate = r.min_tx_rate;
                st.max_tx_rate = r.max_tx_rate;
            }
            _ => {}
        }
    }
    st
}

/// A synchronous NETLINK_ROUTE socket that sends one request and waits for its answer.
#[derive(Debug)]
pub struct RouteSocket {
    sock: Socket,
    seq: u32,
}

impl RouteSocket {
    /// Opens and connects a NETLINK_ROUTE socket.
    pub fn open() -> Result<Self, NetlinkError> {
        let io = |call| move |source| NetlinkError::Io { call, source };
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(io("socket"))?;
        sock.bind_auto().map_err(io("bind"))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(io("connect"))?;
        Ok(RouteSocket { sock, seq: 1 })
    }

    /// The link `name` with its VF list.
    pub fn get_link(&mut self, name: &str) -> Result<LinkMessage, NetlinkError> {
        match self.request(get_link_request(name), NLM_F_REQUEST) {
            Ok(Some(RouteNetlinkMessage::NewLink(link))) => Ok(link),
            Ok(Some(other)) => Err(NetlinkError::Unexpected(format!(
                "message type {}",
                other.message_type()
            ))),
            Ok(None) => Err(NetlinkError::Unexpected("ack without link".into())),
            Err(NetlinkError::Kernel { errno }) if errno == libc::ENODEV => {
                Err(NetlinkError::NoSuchDevice(name.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// Sends one VF setting to the PF with index `ifindex` and waits for the ack.
    pub fn set_vf(
        &mut self,
        ifindex: u32,
        vf: u32,
        setting: &VfSetting,
    ) -> Result<(), NetlinkError> {
        self.request(
            set_vf_request(ifindex, vf, setting),
            NLM_F_REQUEST | NLM_F_ACK,
        )
        .map(|_| ())
    }

    /// Sends `msg`, returns the first answer message of the same sequence number (or
    /// `None` for a plain ack); a kernel error becomes [`NetlinkError::Kernel`].
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Option<RouteNetlinkMessage>, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let buf = encode(msg, flags, seq);
        self.sock.send(&buf, 0).map_err(|source| NetlinkError::Io {
            call: "send",
            source,
        })?;
        loop {
            let (data, _) = self
                .sock
                .recv_from_full()
                .map_err(|source| NetlinkError::Io {
                    call: "recv",
                    source,
                })?;
            let mut offset = 0;
            while offset < data.len() {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                    .map_err(|e| NetlinkError::Decode(e.to_string()))?;
                let len = msg.header.length as usize;
                if len == 0 {
                    return Err(NetlinkError::Decode("zero-length message".into()));
                }
                offset += (len + 3) & !3;
                if msg.header.sequence_number != seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Error(err) => {
                        return match err.code {
                            None => Ok(None),
                            Some(code) => Err(NetlinkError::Kernel {
                                errno: code.get().saturating_neg(),
                            }),
                        };
                    }
                    NetlinkPayload::InnerMessage(inner) => return Ok(Some(inner)),
                    NetlinkPayload::Done(_) => return Ok(None),
                    NetlinkPayload::Noop | NetlinkPayload::Overrun(_) => continue,
                    _ => continue,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::link::VfInfoVlan;

    #[test]
    fn setting_names_are_stable() {
        let names: Vec<_> = [
            VfSetting::Vlan {
                vid: 1,
                qos: 0,
                proto: VlanProto::Dot1Q,
            },
            VfSetting::Mac(MacAddr::ZERO),
            VfSetting::SpoofChk(true),
            VfSetting::Trust(true),
            VfSetting::LinkState(LinkState::Auto),
            VfSetting::Rate { min: 0, max: 0 },
        ]
        .iter()
        .map(VfSetting::name)
        .collect();
        assert_eq!(names, ["vlan", "mac", "spoofchk", "trust", "state", "rate"]);
    }

    #[test]
    fn encoded_request_round_trips() {
        let bytes = encode(
            set_vf_request(
                7,
                2,
                &VfSetting::Vlan {
                    vid: 10,
                    qos: 3,
                    proto: VlanProto::Dot1Ad,
                },
            ),
            NLM_F_REQUEST | NLM_F_ACK,
            42,
        );
        let back = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).expect("parse");
        assert_eq!(back.header.sequence_number, 42);
        assert_eq!(back.header.flags, NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(back.header.length as usize, bytes.len());
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) = back.payload else {
            panic!("not a NEWLINK: {:?}", back.payload);
        };
        assert_eq!(link.header.index, 7);
        assert_eq!(
            link.attributes,
            vec![LinkAttribute::VfInfoList(vec![LinkVfInfo(vec![
                VfInfo::VlanList(vec![VfVlan::Info(VfVlanInfo::new(
                    2,
                    10,
                    3,
                    VlanProtocol::Ieee8021Ad
                ))])
            ])])]
        );
    }

    #[test]
    fn parses_vf_list_into_states() {
        let mut link = LinkMessage::default();
        link.attributes.push(LinkAttribute::VfInfoList(vec![
            LinkVfInfo(vec![
                VfInfo::Mac(VfInfoMac::new(1, &[2, 0, 0, 0, 0, 9])),
                VfInfo::Vlan(VfInfoVlan::new(1, 20, 5)),
                VfInfo::VlanList(vec![VfVlan::Info(VfVlanInfo::new(
                    1,
                    20,
                    5,
                    VlanProtocol::Ieee8021Ad,
                ))]),
                VfInfo::SpoofCheck(VfInfoSpoofCheck::new(1, false)),
                VfInfo::Trust(VfInfoTrust::new(1, true)),
                VfInfo::LinkState(VfInfoLinkState::new(1, VfLinkState::Disable)),
                VfInfo::Rate(VfInfoRate::new(1, 10, 500)),
            ]),
            LinkVfInfo(vec![VfInfo::Mac(VfInfoMac::new(0, &[0; 6]))]),
        ]));
        let states = parse_vf_states(&link);
        assert_eq!(states.len(), 2);
        assert_eq!(states[0].vf, 0);
        assert_eq!(states[0].mac, MacAddr::ZERO);
        assert_eq!(states[0].spoofchk, None);
        assert_eq!(
            states[1],
            VfState {
                vf: 1,
                mac: "02:00:00:00:00:09".parse().expect("mac"),
                vlan: 20,
                qos: 5,
                proto: VlanProto::Dot1Ad,
                spoofchk: Some(false),
                trust: Some(true),
                link_state: Some(LinkState::Disable),
                min_tx_rate: 10,
                max_tx_rate: 500,
                trunk: None,
            }
        );
    }
}
