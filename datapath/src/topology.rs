//! The switch's port configuration, compiled into an immutable snapshot the fast path reads.
//!
//! Invariants kept here:
//! - A [`Topology`] never changes after [`TopologyBuilder::build`]; the control plane makes
//!   a new one and workers swap it in at a burst boundary.
//! - `members[v]` holds exactly the ports `p` with `ports[p].vlan.is_member(v)`, so a flood
//!   is one bitmap AND and a membership test is one bit test.
//! - Port ids are dense small integers below [`MAX_PORTS`].

use core::fmt;

use crate::vlan::PortVlan;

/// Maximum number of ports of one switch.
pub const MAX_PORTS: usize = 1024;
const WORDS: usize = MAX_PORTS / 64;

/// Index of a port within a switch, below [`MAX_PORTS`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(u16);

impl PortId {
    pub fn new(id: usize) -> Option<PortId> {
        (id < MAX_PORTS).then_some(PortId(id as u16))
    }
    /// From a value known to be below [`MAX_PORTS`] (stored by this crate).
    #[inline]
    pub(crate) fn from_raw(id: u16) -> PortId {
        debug_assert!(usize::from(id) < MAX_PORTS);
        PortId(id)
    }
    #[inline]
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Debug for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}
impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A set of ports as a bitmap.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct PortSet([u64; WORDS]);

impl PortSet {
    pub const EMPTY: PortSet = PortSet([0; WORDS]);

    #[inline]
    pub fn insert(&mut self, p: PortId) {
        self.0[p.index() >> 6] |= 1 << (p.index() & 63);
    }
    #[inline]
    pub fn remove(&mut self, p: PortId) {
        self.0[p.index() >> 6] &= !(1 << (p.index() & 63));
    }
    #[inline]
    pub fn contains(&self, p: PortId) -> bool {
        self.0[p.index() >> 6] & (1 << (p.index() & 63)) != 0
    }
    #[inline]
    pub fn and(&self, o: &PortSet) -> PortSet {
        let mut r = *self;
        for (a, b) in r.0.iter_mut().zip(o.0.iter()) {
            *a &= *b;
        }
        r
    }
    #[inline]
    pub fn and_not(&self, o: &PortSet) -> PortSet {
        let mut r = *self;
        for (a, b) in r.0.iter_mut().zip(o.0.iter()) {
            *a &= !*b;
        }
        r
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    /// Members in ascending order.
    #[inline]
    pub fn iter(&self) -> PortSetIter {
        PortSetIter {
            words: self.0,
            word: 0,
        }
    }
}

impl fmt::Debug for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromIterator<PortId> for PortSet {
    fn from_iter<I: IntoIterator<Item = PortId>>(iter: I) -> Self {
        let mut s = PortSet::EMPTY;
        for p in iter {
            s.insert(p);
        }
        s
    }
}

/// Iterator over a [`PortSet`]'s members, ascending.
#[derive(Debug, Clone)]
pub struct PortSetIter {
    words: [u64; WORDS],
    word: usize,
}

impl Iterator for PortSetIter {
    type Item = PortId;
    #[inline]
    fn next(&mut self) -> Option<PortId> {
        while self.word < WORDS {
            let w = self.words[self.word];
            if w != 0 {
                let bit = w.trailing_zeros() as usize;
                self.words[self.word] = w & (w - 1);
                return Some(PortId((self.word * 64 + bit) as u16));
            }
            self.word += 1;
        }
        None
    }
}

/// Which floods a port receives (Linux bridge `flood`, `mcast_flood`, `bcast_flood`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodPolicy {
    pub unknown_unicast: bool,
    pub multicast: bool,
    pub broadcast: bool,
}

impl Default for FloodPolicy {
    fn default() -> Self {
        FloodPolicy {
            unknown_unicast: true,
            multicast: true,
            broadcast: true,
        }
    }
}

/// Storm control: most flooded frames per second a port may send into the switch, per
/// kind (`None`: unlimited). Excess frames are dropped `storm_control` at ingress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StormPolicy {
    pub broadcast_pps: Option<u32>,
    pub multicast_pps: Option<u32>,
    pub unknown_unicast_pps: Option<u32>,
}

impl StormPolicy {
    #[inline]
    pub fn limit(&self, kind: FloodKind) -> Option<u32> {
        match kind {
            FloodKind::Broadcast => self.broadcast_pps,
            FloodKind::Multicast => self.multicast_pps,
            FloodKind::UnknownUnicast => self.unknown_unicast_pps,
        }
    }
    pub fn is_unlimited(&self) -> bool {
        *self == StormPolicy::default()
    }
}

/// Default port MTU (L3 payload bytes, excluding the Ethernet header and tags).
pub const DEFAULT_MTU: u32 = 1500;

/// One port's forwarding configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    pub name: String,
    pub vlan: PortVlan,
    /// L3 MTU: frames whose payload after the Ethernet header (and outer tag) is longer
    /// are dropped `mtu_exceeded` at this port's egress.
    pub mtu: u32,
    pub flood: FloodPolicy,
    /// Isolated ports never exchange frames with each other (floods included).
    pub isolated: bool,
    /// Learn source MACs of frames received here.
    pub learning: bool,
    /// At most this many learned (dynamic) FDB entries for this port.
    pub learn_limit: Option<u32>,
    /// Operational/admin state: a down port neither receives nor transmits.
    pub up: bool,
    pub storm: StormPolicy,
}

impl PortConfig {
    pub fn new(name: impl Into<String>, vlan: PortVlan) -> PortConfig {
        PortConfig {
            name: name.into(),
            vlan,
            mtu: DEFAULT_MTU,
            flood: FloodPolicy::default(),
            isolated: false,
            learning: true,
            learn_limit: None,
            up: true,
            storm: StormPolicy::default(),
        }
    }
}

/// Error building a topology.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("port id {0} is out of range (at most {MAX_PORTS} ports)")]
    PortOutOfRange(usize),
    #[error("port {id} ('{name}') is already configured")]
    DuplicatePort { id: usize, name: String },
    #[error("port name '{0}' is used twice")]
    DuplicateName(String),
    #[error("port '{name}': MTU {mtu} is out of range (68-65535)")]
    BadMtu { name: String, mtu: u32 },
}

/// Per-port data the egress stage reads, packed for cache locality.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EgressInfo {
    /// The VLAN that leaves untagged (0: none).
    pub untagged_vid: u16,
    pub mtu: u32,
}

/// Immutable compiled switch configuration.
pub struct Topology {
    ports: Box<[Option<PortConfig>]>,
    egress: Box<[EgressInfo]>,
    members: Box<[PortSet]>,
    present: PortSet,
    up: PortSet,
    flood_unknown: PortSet,
    flood_multicast: PortSet,
    flood_broadcast: PortSet,
    isolated: PortSet,
    generation: u64,
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topology")
            .field("generation", &self.generation)
            .field("ports", &self.iter().collect::<Vec<_>>())
            .finish()
    }
}

/// Kind of a flooded frame, selecting the per-port flood policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodKind {
    UnknownUnicast,
    Multicast,
    Broadcast,
}

impl Topology {
    pub fn builder() -> TopologyBuilder {
        TopologyBuilder {
            ports: (0..MAX_PORTS).map(|_| None).collect(),
            names: std::collections::HashMap::new(),
            generation: 0,
        }
    }

    #[inline]
    pub fn port(&self, p: PortId) -> Option<&PortConfig> {
        self.ports[p.index()].as_ref()
    }
    pub fn port_by_name(&self, name: &str) -> Option<PortId> {
        self.iter().find(|(_, c)| c.name == name).map(|(p, _)| p)
    }
    /// Configured ports in id order.
    pub fn iter(&self) -> impl Iterator<Item = (PortId, &PortConfig)> + '_ {
        self.present
            .iter()
            .filter_map(move |p| self.port(p).map(|c| (p, c)))
    }
    #[inline]
    pub fn is_up(&self, p: PortId) -> bool {
        self.up.contains(p)
    }
    #[inline]
    pub fn is_isolated(&self, p: PortId) -> bool {
        self.isolated.contains(p)
    }
    /// Up ports that are members of VLAN `vid`.
    #[inline]
    pub fn members(&self, vid: u16) -> &PortSet {
        &self.members[usize::from(vid & 0x0fff)]
    }
    /// Ports a frame of `kind` in VLAN `vid` from `ingress` floods to.
    #[inline]
    pub fn flood_set(&self, vid: u16, kind: FloodKind, ingress: PortId) -> PortSet {
        let policy = match kind {
            FloodKind::UnknownUnicast => &self.flood_unknown,
            FloodKind::Multicast => &self.flood_multicast,
            FloodKind::Broadcast => &self.flood_broadcast,
        };
        let mut set = self.members(vid).and(policy);
        set.remove(ingress);
        if self.isolated.contains(ingress) {
            set = set.and_not(&self.isolated);
        }
        set
    }
    #[inline]
    pub(crate) fn egress_info(&self, p: PortId) -> EgressInfo {
        self.egress[p.index()]
    }
    /// Incremented by the control plane for each new snapshot.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// Builds a [`Topology`], validating it.
#[derive(Debug, Clone)]
pub struct TopologyBuilder {
    ports: Vec<Option<PortConfig>>,
    /// The ports' names -> ids, so that adding a port is O(1) (bridges of 1,000 ports).
    names: std::collections::HashMap<String, usize>,
    generation: u64,
}

impl TopologyBuilder {
    /// Starts from an existing snapshot (to apply a change).
    pub fn from_topology(t: &Topology) -> TopologyBuilder {
        let ports = t.ports.to_vec();
        let names = ports
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((c.as_ref()?.name.clone(), i)))
            .collect();
        TopologyBuilder {
            ports,
            names,
            generation: t.generation + 1,
        }
    }

    /// Makes the topology built next the successor of `prev` (generations increase
    /// across snapshots that were built from scratch).
    pub fn succeeding(mut self, prev: &Topology) -> Self {
        self.generation = prev.generation + 1;
        self
    }

    pub fn port(mut self, id: usize, config: PortConfig) -> Result<Self, TopologyError> {
        self.add_port(id, config)?;
        Ok(self)
    }

    pub fn add_port(&mut self, id: usize, config: PortConfig) -> Result<PortId, TopologyError> {
        let pid = PortId::new(id).ok_or(TopologyError::PortOutOfRange(id))?;
        if let Some(existing) = &self.ports[id] {
            return Err(TopologyError::DuplicatePort {
                id,
                name: existing.name.clone(),
            });
        }
        if self.names.contains_key(&config.name) {
            return Err(TopologyError::DuplicateName(config.name));
        }
        if !(68..=65535).contains(&config.mtu) {
            return Err(TopologyError::BadMtu {
                name: config.name,
                mtu: config.mtu,
            });
        }
        self.names.insert(config.name.clone(), id);
        self.ports[id] = Some(config);
        Ok(pid)
    }

    /// Replaces (or adds) a port's configuration.
    pub fn set_port(&mut self, id: usize, config: PortConfig) -> Result<PortId, TopologyError> {
        PortId::new(id).ok_or(TopologyError::PortOutOfRange(id))?;
        self.remove_port(id);
        self.add_port(id, config)
    }

    pub fn remove_port(&mut self, id: usize) -> Option<PortConfig> {
        let old = self.ports.get_mut(id).and_then(Option::take)?;
        self.names.remove(&old.name);
        Some(old)
    }

    /// The lowest free port id.
    pub fn free_id(&self) -> Option<usize> {
        self.ports.iter().position(Option::is_none)
    }

    pub fn build(self) -> Topology {
        let mut members = vec![PortSet::EMPTY; 4096].into_boxed_slice();
        let mut egress = vec![EgressInfo::default(); MAX_PORTS].into_boxed_slice();
        let mut t = Topology {
            ports: Box::new([]),
            egress: Box::new([]),
            members: Box::new([]),
            present: PortSet::EMPTY,
            up: PortSet::EMPTY,
            flood_unknown: PortSet::EMPTY,
            flood_multicast: PortSet::EMPTY,
            flood_broadcast: PortSet::EMPTY,
            isolated: PortSet::EMPTY,
            generation: self.generation,
        };
        for (i, c) in self.ports.iter().enumerate() {
            let Some(c) = c else { continue };
            let p = PortId(i as u16);
            t.present.insert(p);
            egress[i] = EgressInfo {
                untagged_vid: c.vlan.untagged_vid().map_or(0, |v| v.get()),
                mtu: c.mtu,
            };
            if !c.up {
                continue;
            }
            t.up.insert(p);
            if c.flood.unknown_unicast {
                t.flood_unknown.insert(p);
            }
            if c.flood.multicast {
                t.flood_multicast.insert(p);
            }
            if c.flood.broadcast {
                t.flood_broadcast.insert(p);
            }
            if c.isolated {
                t.isolated.insert(p);
            }
            for v in c.vlan.members().iter() {
                members[usize::from(v.get())].insert(p);
            }
        }
        t.ports = self.ports.into_boxed_slice();
        t.egress = egress;
        t.members = members;
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(i: usize) -> PortId {
        PortId::new(i).expect("valid port")
    }

    #[test]
    fn port_set_ops() {
        let s: PortSet = [pid(0), pid(63), pid(64), pid(255)].into_iter().collect();
        assert_eq!(s.len(), 4);
        assert_eq!(
            s.iter().map(PortId::index).collect::<Vec<_>>(),
            vec![0, 63, 64, 255]
        );
        let t: PortSet = [pid(63), pid(1)].into_iter().collect();
        assert_eq!(s.and(&t).iter().collect::<Vec<_>>(), vec![pid(63)]);
        assert_eq!(s.and_not(&t).len(), 3);
        assert!(PortId::new(MAX_PORTS).is_none());
        assert!(PortId::new(MAX_PORTS - 1).is_some());
    }

    #[test]
    fn builder_validates() {
        let b = Topology::builder()
            .port(0, PortConfig::new("a", "access 10".parse().expect("vlan")))
            .expect("first");
        let err = b
            .clone()
            .port(0, PortConfig::new("b", "access 10".parse().expect("vlan")))
            .expect_err("dup id");
        assert_eq!(err.to_string(), "port 0 ('a') is already configured");
        let err = b
            .clone()
            .port(1, PortConfig::new("a", "access 10".parse().expect("vlan")))
            .expect_err("dup name");
        assert_eq!(err, TopologyError::DuplicateName("a".into()));
        let mut c = PortConfig::new("c", "access 10".parse().expect("vlan"));
        c.mtu = 10;
        assert!(matches!(
            b.clone().port(2, c),
            Err(TopologyError::BadMtu { mtu: 10, .. })
        ));
        assert_eq!(
            b.port(
                MAX_PORTS,
                PortConfig::new("d", "access 1".parse().expect("vlan"))
            )
            .expect_err("range"),
            TopologyError::PortOutOfRange(MAX_PORTS)
        );
    }

    /// The builder's name index follows removals and replacements: a removed port's
    /// name is free again, a replaced port's old name too, and a snapshot's builder knows
    /// the names it holds.
    #[test]
    fn builder_names_follow_changes() {
        let mk = |n: &str| PortConfig::new(n, "access 10".parse().expect("vlan"));
        let mut b = Topology::builder();
        b.add_port(0, mk("a")).expect("a");
        b.add_port(1, mk("b")).expect("b");
        assert_eq!(b.remove_port(0).map(|c| c.name), Some("a".to_string()));
        b.add_port(2, mk("a")).expect("a again after removal");
        b.set_port(1, mk("c")).expect("b renamed c");
        b.add_port(3, mk("b")).expect("b is free after the rename");
        assert_eq!(
            b.add_port(4, mk("c")),
            Err(TopologyError::DuplicateName("c".into()))
        );
        let t = b.build();
        let mut next = TopologyBuilder::from_topology(&t);
        assert_eq!(
            next.add_port(5, mk("a")),
            Err(TopologyError::DuplicateName("a".into()))
        );
        assert_eq!(next.build().generation(), t.generation() + 1);
        let fresh = Topology::builder().succeeding(&t).build();
        assert_eq!(fresh.generation(), t.generation() + 1);
    }

    #[test]
    fn flood_sets_respect_vlan_policy_isolation_and_state() {
        let mut b = Topology::builder();
        let mk = |n: &str, v: &str| PortConfig::new(n, v.parse().expect("vlan"));
        b.add_port(0, mk("trunk", "trunk 10,20")).expect("p0");
        b.add_port(1, mk("a10", "access 10")).expect("p1");
        let mut iso1 = mk("iso1", "access 10");
        iso1.isolated = true;
        b.add_port(2, iso1).expect("p2");
        let mut iso2 = mk("iso2", "access 10");
        iso2.isolated = true;
        b.add_port(3, iso2).expect("p3");
        let mut nobc = mk("nobc", "access 10");
        nobc.flood.broadcast = false;
        b.add_port(4, nobc).expect("p4");
        let mut down = mk("down", "access 10");
        down.up = false;
        b.add_port(5, down).expect("p5");
        b.add_port(6, mk("a20", "access 20")).expect("p6");
        let t = b.build();
        let ids = |s: PortSet| s.iter().map(PortId::index).collect::<Vec<_>>();
        assert_eq!(
            ids(t.flood_set(10, FloodKind::Broadcast, pid(1))),
            vec![0, 2, 3]
        );
        assert_eq!(
            ids(t.flood_set(10, FloodKind::Multicast, pid(1))),
            vec![0, 2, 3, 4]
        );
        assert_eq!(
            ids(t.flood_set(10, FloodKind::Broadcast, pid(2))),
            vec![0, 1]
        );
        assert_eq!(
            ids(t.flood_set(20, FloodKind::UnknownUnicast, pid(0))),
            vec![6]
        );
        assert_eq!(
            ids(t.flood_set(30, FloodKind::Broadcast, pid(0))),
            Vec::<usize>::new()
        );
        assert_eq!(t.port_by_name("a20"), Some(pid(6)));
        assert!(!t.is_up(pid(5)));
    }
}
