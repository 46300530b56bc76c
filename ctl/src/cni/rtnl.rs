//! The rtnetlink requests an attachment makes (RTM_NEWLINK/DELLINK/GETLINK, NEWADDR/
//! GETADDR, NEWROUTE), over a synchronous NETLINK_ROUTE socket opened in the host's or in
//! a pod's network namespace; wire layouts from `netlink-packet-route`.
//!
//! Invariants: a socket acts in the namespace it was opened in, whatever thread uses it
//! ([`Rtnl::open_in`] opens it on a thread that joined the pod's namespace); every
//! request that changes something asks for an ack, so a refusal is an error naming the
//! request and the interface; no request is sent twice.

use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::types::IpNet;

/// A failed request: what was asked, about which interface, and the kernel's answer.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct RtnlError {
    pub what: String,
    #[source]
    pub source: io::Error,
}

impl RtnlError {
    /// The kernel's errno, if it answered with one.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

type Result<T> = std::result::Result<T, RtnlError>;

/// What RTM_GETLINK says about an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
    pub up: bool,
    /// `IFLA_INFO_KIND` ("veth", "tun", ...), for virtual devices.
    pub kind: Option<String>,
    /// `IFLA_PARENT_DEV_NAME`: the bus device (a PCI address), where the kernel says.
    pub parent: Option<String>,
}

impl Link {
    /// The MAC as text ("02:00:00:00:00:01").
    pub fn mac_text(&self) -> Option<String> {
        self.mac.map(|m| sriov::MacAddr(m).to_string())
    }
}

/// One end of a veth pair to create.
#[derive(Debug, Clone)]
pub struct VethEnd<'a> {
    pub name: &'a str,
    pub mtu: u32,
    pub mac: Option<[u8; 6]>,
}

/// A NETLINK_ROUTE socket in one network namespace.
#[derive(Debug)]
pub struct Rtnl {
    sock: Socket,
    seq: u32,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> RtnlError {
    let what = what.into();
    move |source| RtnlError { what, source }
}

fn decode(what: &str, e: impl std::fmt::Display) -> RtnlError {
    RtnlError {
        what: what.to_string(),
        source: io::Error::new(io::ErrorKind::InvalidData, format!("netlink answer: {e}")),
    }
}

fn open_socket() -> io::Result<Socket> {
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    Ok(sock)
}

impl Rtnl {
    /// A socket in the caller's namespace.
    pub fn open() -> Result<Rtnl> {
        let sock = open_socket().map_err(io_err("netlink socket"))?;
        Ok(Rtnl { sock, seq: 0 })
    }

    /// A socket in the network namespace at `netns` (a path like /run/netns/NAME or
    /// /proc/PID/ns/net).
    pub fn open_in(netns: &str) -> Result<Rtnl> {
        let what = format!("netlink socket in {netns}");
        let sock = datapath::sys::netns::run_in(netns, open_socket)
            .and_then(|r| r)
            .map_err(io_err(what))?;
        Ok(Rtnl { sock, seq: 0 })
    }

    /// The interface named `name`, or `None` when there is none.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST) {
            Ok(Some(RouteNetlinkMessage::NewLink(l))) => Ok(Some(parse_link(&l))),
            Ok(_) => Err(decode(&format!("get link {name}"), "no link in the answer")),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(io_err(format!("get link {name}"))(e)),
        }
    }

    /// Creates a veth pair: `host` here, `peer` in the namespace open as `peer_ns`.
    pub fn create_veth(&mut self, host: &VethEnd, peer: &VethEnd, peer_ns: &File) -> Result<()> {
        let mut p = LinkMessage::default();
        p.attributes
            .push(LinkAttribute::IfName(peer.name.to_string()));
        p.attributes.push(LinkAttribute::Mtu(peer.mtu));
        if let Some(mac) = peer.mac {
            p.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        p.attributes
            .push(LinkAttribute::NetNsFd(peer_ns.as_raw_fd()));
        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::IfName(host.name.to_string()));
        msg.attributes.push(LinkAttribute::Mtu(host.mtu));
        if let Some(mac) = host.mac {
            msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
        ]));
        self.ack(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            format!("create veth {} (peer {})", host.name, peer.name),
        )
    }

    /// Sets the interface with index `index` up or down.
    pub fn set_up(&mut self, index: u32, up: bool) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.change_mask = LinkFlags::Up;
        if up {
            msg.header.flags = LinkFlags::Up;
        }
        let what = format!("set link {index} {}", if up { "up" } else { "down" });
        self.ack(RouteNetlinkMessage::SetLink(msg), 0, what)
    }

    /// Changes name, MAC and/or MTU of interface `index` (a rename needs it down).
    pub fn set_link(
        &mut self,
        index: u32,
        name: Option<&str>,
        mac: Option<[u8; 6]>,
        mtu: Option<u32>,
    ) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        if let Some(n) = name {
            msg.attributes.push(LinkAttribute::IfName(n.to_string()));
        }
        if let Some(m) = mac {
            msg.attributes.push(LinkAttribute::Address(m.to_vec()));
        }
        if let Some(m) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(m));
        }
        let what = format!(
            "set link {index}{}{}{}",
            name.map(|n| format!(" name {n}")).unwrap_or_default(),
            mac.map(|m| format!(" address {}", sriov::MacAddr(m)))
                .unwrap_or_default(),
            mtu.map(|m| format!(" mtu {m}")).unwrap_or_default()
        );
        self.ack(RouteNetlinkMessage::SetLink(msg), 0, what)
    }

    /// Moves interface `index` into the namespace open as `ns`, named `name` there.
    pub fn move_to(&mut self, index: u32, ns: &File, name: &str) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let what = format!("move link {index} to another namespace as {name}");
        self.ack(RouteNetlinkMessage::SetLink(msg), 0, what)
    }

    /// Deletes interface `index` (a veth takes its peer with it).
    pub fn delete(&mut self, index: u32) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        let what = format!("delete link {index}");
        self.ack(RouteNetlinkMessage::DelLink(msg), 0, what)
    }

    /// Adds `net` to interface `index` (IPv6 without duplicate address detection, so the
    /// address is usable at once, as for the bridge plugin after its settle wait).
    pub fn add_addr(&mut self, index: u32, net: &IpNet) -> Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.index = index;
        msg.header.prefix_len = net.prefix;
        msg.header.scope = AddressScope::Universe;
        match net.addr {
            IpAddr::V4(a) => {
                msg.header.family = AddressFamily::Inet;
                msg.attributes.push(AddressAttribute::Local(net.addr));
                msg.attributes.push(AddressAttribute::Address(net.addr));
                if net.prefix < 31 {
                    let host_bits = u32::MAX >> net.prefix;
                    msg.attributes.push(AddressAttribute::Broadcast(
                        (u32::from(a) | host_bits).into(),
                    ));
                }
            }
            IpAddr::V6(_) => {
                msg.header.family = AddressFamily::Inet6;
                msg.attributes.push(AddressAttribute::Address(net.addr));
                msg.attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
        }
        self.ack(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            format!("add address {net} to link {index}"),
        )
    }

    /// The addresses of interface `index` (IPv4 and IPv6, link-local included).
    pub fn addrs(&mut self, index: u32) -> Result<Vec<IpNet>> {
        let msgs = self
            .dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))
            .map_err(io_err(format!("list addresses of link {index}")))?;
        let mut out = Vec::new();
        for m in msgs {
            let RouteNetlinkMessage::NewAddress(a) = m else {
                continue;
            };
            if a.header.index != index {
                continue;
            }
            let local = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let addr = local.or_else(|| {
                a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            if let Some(addr) = addr {
                out.push(IpNet {
                    addr,
                    prefix: a.header.prefix_len,
                });
            }
        }
        Ok(out)
    }

    /// Adds a route to `dst` through `gw` (or on-link) via interface `oif`.
    pub fn add_route(&mut self, oif: u32, dst: &IpNet, gw: Option<IpAddr>) -> Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = if dst.is_v4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        msg.header.destination_prefix_length = dst.prefix;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = if gw.is_some() {
            RouteScope::Universe
        } else {
            RouteScope::Link
        };
        msg.header.kind = RouteType::Unicast;
        if dst.prefix > 0 {
            msg.attributes
                .push(RouteAttribute::Destination(RouteAddress::from(dst.addr)));
        }
        if let Some(g) = gw {
            msg.attributes
                .push(RouteAttribute::Gateway(RouteAddress::from(g)));
        }
        msg.attributes.push(RouteAttribute::Oif(oif));
        let what = format!(
            "add route {dst}{} dev {oif}",
            gw.map(|g| format!(" via {g}")).unwrap_or_default()
        );
        self.ack(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            what,
        )
    }

    fn ack(&mut self, msg: RouteNetlinkMessage, flags: u16, what: String) -> Result<()> {
        self.request(msg, NLM_F_REQUEST | NLM_F_ACK | flags)
            .map(|_| ())
            .map_err(io_err(what))
    }

    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        Ok(self.seq)
    }

    /// Sends one request; the answer's first message (`None` for an ack). A kernel error
    /// becomes its errno.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Option<RouteNetlinkMessage>> {
        let seq = self.send(msg, flags)?;
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            for m in split(&data)? {
                if m.header.sequence_number != seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Error(err) => {
                        return match err.code {
                            None => Ok(None),
                            Some(code) => {
                                Err(io::Error::from_raw_os_error(code.get().saturating_neg()))
                            }
                        }
                    }
                    NetlinkPayload::InnerMessage(inner) => return Ok(Some(inner)),
                    NetlinkPayload::Done(_) => return Ok(None),
                    _ => continue,
                }
            }
        }
    }

    /// Sends a dump request and collects every answer message until NLMSG_DONE.
    fn dump(&mut self, msg: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_DUMP)?;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            for m in split(&data)? {
                if m.header.sequence_number != seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(err) => {
                        if let Some(code) = err.code {
                            return Err(io::Error::from_raw_os_error(code.get().saturating_neg()));
                        }
                    }
                    NetlinkPayload::InnerMessage(inner) => out.push(inner),
                    _ => {}
                }
            }
        }
    }
}

/// The netlink messages in one datagram.
fn split(data: &[u8]) -> io::Result<Vec<NetlinkMessage<RouteNetlinkMessage>>> {
    let bad =
        |e: String| io::Error::new(io::ErrorKind::InvalidData, format!("netlink answer: {e}"));
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < data.len() {
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
            .map_err(|e| bad(e.to_string()))?;
        let len = msg.header.length as usize;
        if len == 0 {
            return Err(bad("zero-length message".into()));
        }
        offset += (len + 3) & !3;
        out.push(msg);
    }
    Ok(out)
}

fn parse_link(l: &LinkMessage) -> Link {
    let mut out = Link {
        index: l.header.index,
        name: String::new(),
        mac: None,
        mtu: 0,
        up: l.header.flags.contains(LinkFlags::Up),
        kind: None,
        parent: None,
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => out.name = n.clone(),
            LinkAttribute::Mtu(m) => out.mtu = *m,
            LinkAttribute::ParentDevName(p) => out.parent = Some(p.clone()),
            LinkAttribute::Address(a) => out.mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        out.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    out
}
