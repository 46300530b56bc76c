//! The two rtnetlink link queries the datapath makes (RTM_GETLINK over a synchronous
//! NETLINK_ROUTE socket, wire layouts from `netlink-packet-route`): which interface is a
//! veth's peer and in which namespace, and an interface's kernel counters and queueing
//! discipline, also in another namespace (`IFLA_TARGET_NETNSID`).
//!
//! Used about once a second per veth or tap port and when a fast-path port is attached,
//! never per frame.

use std::io;

use netlink_packet_core::{
    DefaultNla, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, LinkXdp};
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// `IFLA_TARGET_NETNSID` (linux/if_link.h): run the query in the namespace with this id.
const IFLA_TARGET_NETNSID: u16 = 46;

/// What RTM_GETLINK says about one interface.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Link {
    /// `IFLA_LINK`: for a veth, its peer's ifindex (in the peer's namespace).
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`: the namespace of that peer, when it is not this one.
    pub link_netnsid: Option<i32>,
    /// `IFLA_STATS64` tx_dropped: frames the interface dropped on transmit. For a veth,
    /// this includes frames its peer's receive ring had no room for.
    pub tx_dropped: u64,
    /// `IFLA_IFNAME`.
    pub name: Option<String>,
    /// `IFLA_QDISC`: the root queueing discipline (`noqueue` for a veth by default).
    pub qdisc: Option<String>,
    /// `IFLA_XDP`: an XDP program is attached in native (driver) mode.
    pub native_xdp: bool,
    /// `IFF_UP` in the link's flags: administratively up.
    pub up: bool,
}

/// A NETLINK_ROUTE socket for [`RouteSocket::link`] queries.
#[derive(Debug)]
pub struct RouteSocket {
    sock: Socket,
    seq: u32,
}

fn decode_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("netlink answer: {e}"))
}

impl RouteSocket {
    pub fn open() -> io::Result<RouteSocket> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(RouteSocket { sock, seq: 0 })
    }

    /// The interface with index `ifindex`, in the namespace `netnsid` (as numbered from
    /// this one) or this one.
    pub fn link(&mut self, ifindex: u32, netnsid: Option<i32>) -> io::Result<Link> {
        let mut msg = LinkMessage::default();
        msg.header.index = ifindex;
        self.get_link(msg, netnsid)
    }

    /// The interface named `name` in this socket's namespace (the one it was opened in).
    pub fn link_by_name(&mut self, name: &str) -> io::Result<Link> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        self.get_link(msg, None)
    }

    fn get_link(&mut self, mut msg: LinkMessage, netnsid: Option<i32>) -> io::Result<Link> {
        if let Some(id) = netnsid {
            msg.attributes.push(LinkAttribute::Other(DefaultNla::new(
                IFLA_TARGET_NETNSID,
                id.to_ne_bytes().to_vec(),
            )));
        }
        match self.request(RouteNetlinkMessage::GetLink(msg))? {
            RouteNetlinkMessage::NewLink(l) => Ok(parse(&l)),
            _ => Err(decode_err("no link in the answer")),
        }
    }

    /// The id this namespace gives the network namespace open as `fd` (`RTM_GETNSID`);
    /// `None` when it has none (it never referred to that namespace).
    pub fn nsid_of(&mut self, fd: std::os::fd::BorrowedFd<'_>) -> io::Result<Option<i32>> {
        use std::os::fd::AsRawFd;
        let mut msg = NsidMessage::default();
        let fd = u32::try_from(fd.as_raw_fd()).map_err(|_| decode_err("negative fd"))?;
        msg.attributes.push(NsidAttribute::Fd(fd));
        match self.request(RouteNetlinkMessage::GetNsId(msg))? {
            RouteNetlinkMessage::NewNsId(m) => Ok(m.attributes.iter().find_map(|a| match a {
                NsidAttribute::Id(id) if *id >= 0 => Some(*id),
                _ => None,
            })),
            _ => Err(decode_err("no namespace id in the answer")),
        }
    }

    /// Sends one request and returns the answer with its sequence number.
    fn request(&mut self, payload: RouteNetlinkMessage) -> io::Result<RouteNetlinkMessage> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST;
        header.sequence_number = seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::from(payload));
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            let mut offset = 0;
            while offset < data.len() {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                    .map_err(decode_err)?;
                let len = msg.header.length as usize;
                if len == 0 {
                    return Err(decode_err("zero-length message"));
                }
                offset += (len + 3) & !3;
                if msg.header.sequence_number != seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Error(err) => {
                        let errno = err.code.map(|c| c.get().saturating_neg()).unwrap_or(0);
                        return Err(io::Error::from_raw_os_error(errno));
                    }
                    NetlinkPayload::InnerMessage(m) => return Ok(m),
                    NetlinkPayload::Done(_) => return Err(decode_err("empty answer")),
                    _ => continue,
                }
            }
        }
    }
}

fn parse(l: &LinkMessage) -> Link {
    let mut out = Link {
        up: l.header.flags.contains(LinkFlags::Up),
        ..Link::default()
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::Link(i) => out.link = Some(*i),
            LinkAttribute::LinkNetNsId(n) => out.link_netnsid = Some(*n),
            LinkAttribute::Stats64(s) => out.tx_dropped = s.tx_dropped,
            LinkAttribute::Qdisc(q) => out.qdisc = Some(q.clone()),
            LinkAttribute::IfName(n) => out.name = Some(n.clone()),
            LinkAttribute::Xdp(x) => {
                out.native_xdp = x
                    .iter()
                    .any(|a| matches!(a, LinkXdp::DrvProgId(id) if *id != 0));
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::netdev;
    use crate::testutil::{Netns, VethPair};

    /// A veth end reports its peer, in another namespace, and that peer's counters can
    /// be read from here.
    #[test]
    fn veth_peer_and_its_counters_across_namespaces() {
        if !crate::testutil::root_or_skip("veth_peer_and_its_counters_across_namespaces") {
            return;
        }
        let veth = VethPair::new("rt");
        let ns = Netns::new("rt");
        let ia = netdev::if_index(&veth.a).expect("ifindex");
        ns.adopt(&veth.b);
        let mut s = RouteSocket::open().expect("netlink socket");
        let a = s.link(ia, None).expect("link a");
        let peer = a.link.expect("a veth has a peer");
        let nsid = a.link_netnsid.expect("the peer is in another namespace");
        // Frames the peer sends while this end is down are dropped by the peer.
        ns.exec("ip", &["link", "set", &veth.b, "up"]);
        crate::testutil::run("ip", &["link", "set", &veth.a, "down"]);
        let before = s.link(peer, Some(nsid)).expect("peer").tx_dropped;
        let sock = crate::testutil::Capture::open_in(&ns, &veth.b);
        for _ in 0..5 {
            let f = crate::testutil::test_frame([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1], 1, 60);
            // The veth drops it: the sender may be told (ENOBUFS) or not.
            let _ = sock.try_send(&f);
        }
        let after = s.link(peer, Some(nsid)).expect("peer").tx_dropped;
        assert_eq!(after - before, 5);
        assert_eq!(
            s.link(peer, Some(nsid)).expect("peer").name.as_deref(),
            Some(veth.b.as_str())
        );
        // The peer's queueing discipline, as `tc` set it in its namespace.
        assert_eq!(
            s.link(peer, Some(nsid)).expect("peer").qdisc.as_deref(),
            Some("noqueue")
        );
        ns.exec(
            "tc",
            &[
                "qdisc", "replace", "dev", &veth.b, "root", "pfifo", "limit", "100",
            ],
        );
        assert_eq!(
            s.link(peer, Some(nsid)).expect("peer").qdisc.as_deref(),
            Some("pfifo")
        );
        assert!(s.link(999_999, None).is_err());
        // By name, here: this end, and no such interface.
        assert_eq!(s.link_by_name(&veth.a).expect("by name").link, Some(peer));
        assert!(s.link_by_name("vsw-no-such-if").is_err());
    }
}
