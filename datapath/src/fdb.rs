//! The forwarding database: MAC learning keyed by (VLAN, MAC).
//!
//! One `Fdb` is owned by one worker (no locks, no atomics). Other workers' learning reaches
//! it as [`FdbUpdate`]s applied with [`Fdb::apply`].
//!
//! Invariants kept here:
//! - Time is a parameter (`now`, seconds on a monotonic clock); the table never reads a clock.
//! - `map` and `slots` agree: every map value indexes a live slot whose key is the map key.
//! - Every live dynamic entry is on exactly one per-port LRU list (its port's), ordered by
//!   the time it was last refreshed; static entries are on none. Refreshes have 1 s
//!   resolution: an entry moves to its list's tail at most once per second.
//! - `len() <= capacity` at all times. Storage is reserved up front (the hash map at twice
//!   the capacity, so deletions never force it to grow), so learning, moving, aging and
//!   evicting never allocate.
//! - Static entries never age, move or get evicted, and survive dynamic flushes.
//! - Every dynamic entry carries the stamp of the observation it was last changed by
//!   (monotonic nanoseconds, see [`Fdb::set_clock_ns`], kept above the stamps this
//!   replica already holds for the entry). Replicas apply another's update only when it is
//!   newer, (stamp, port) ordering ties, so a late update never reverts a newer move and
//!   all replicas settle on the same port whatever order the updates arrive in.

use hashbrown::HashMap;

use crate::topology::{PortId, MAX_PORTS};
use crate::wire::MacAddr;

/// Default aging time (seconds), as in the Linux bridge and Open vSwitch.
pub const DEFAULT_AGING_SECS: u64 = 300;
/// Default table capacity.
pub const DEFAULT_CAPACITY: usize = 65536;

const NIL: u32 = u32::MAX;

/// FDB parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdbConfig {
    /// Maximum number of entries (static and dynamic).
    pub capacity: usize,
    /// A dynamic entry not refreshed for this many seconds has expired.
    pub aging_secs: u64,
}

impl Default for FdbConfig {
    fn default() -> Self {
        FdbConfig {
            capacity: DEFAULT_CAPACITY,
            aging_secs: DEFAULT_AGING_SECS,
        }
    }
}

/// FDB counters (vlan-semantics.md: entries, static entries, learned, expired, evicted,
/// moved, learn_limit; plus static_move_blocked, table_full and static_removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FdbCounters {
    pub entries: u64,
    pub static_entries: u64,
    pub learned: u64,
    pub expired: u64,
    pub evicted: u64,
    pub moved: u64,
    pub learn_limit: u64,
    pub static_move_blocked: u64,
    /// Learning refused because the table is full of static entries.
    pub table_full: u64,
    /// Static entries removed from this replica (by the control plane: entry deletion,
    /// flushes including statics, port removal).
    pub static_removed: u64,
}

/// What learning a source address did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learn {
    /// A new dynamic entry.
    Learned,
    /// Already known on this port; its timestamp moved to a new second (other replicas
    /// and the XDP fast path's mirror hear about it, at most once a second per entry).
    Refreshed,
    /// Already known on this port and refreshed within this second (or static): nothing
    /// changed.
    Known,
    /// A dynamic entry moved from another port.
    Moved { from: PortId },
    /// Seen on another port than its static entry: not moved.
    StaticMoveBlocked,
    /// The port is at its learn limit; nothing learned (a dynamic entry on another port
    /// for this address is removed rather than left pointing at the old port).
    LimitReached,
    /// The table is full and holds no dynamic entry to evict.
    TableFull,
    /// Another replica's update older than what this replica knows: ignored.
    Stale,
}

impl Learn {
    /// Whether other replicas must hear about this (see [`FdbUpdate`]).
    pub fn changed(self) -> bool {
        matches!(
            self,
            Learn::Learned | Learn::Moved { .. } | Learn::Refreshed
        )
    }
}

/// A change learned by one worker, to be applied to other workers' replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdbUpdate {
    Learned {
        vid: u16,
        mac: MacAddr,
        port: PortId,
        now: u64,
        /// The entry's stamp at the learning replica (see [`Fdb`]'s invariants).
        stamp: u64,
        /// The port's epoch at the learning replica: it changes when the port leaves the
        /// topology, so an update for a removed port never lands on a port that reuses
        /// its id (see `Pipeline::apply_update`).
        epoch: u32,
    },
}

/// Error of a control-plane FDB operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FdbError {
    #[error("FDB full ({capacity} entries, none dynamic to evict)")]
    Full { capacity: usize },
    #[error("{mac} is not a unicast address; static entries must be unicast and non-zero")]
    NotUnicast { mac: MacAddr },
}

/// One entry as shown to the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdbEntry {
    pub vid: u16,
    pub mac: MacAddr,
    pub port: PortId,
    pub is_static: bool,
    /// Seconds since last refreshed (0 for static entries).
    pub age: u64,
}

/// Which entries a flush removes; `None` fields match everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flush {
    pub port: Option<PortId>,
    pub vid: Option<u16>,
    pub mac: Option<MacAddr>,
    /// Also remove static entries (port deletion); otherwise only dynamic ones.
    pub include_static: bool,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    key: u64,
    last_seen: u64,
    prev: u32,
    next: u32,
    port: u16,
    is_static: bool,
    /// Stamp of the observation that last changed the entry (dynamic entries).
    stamp: u64,
}

#[derive(Debug, Clone, Copy)]
struct PortList {
    head: u32,
    tail: u32,
    len: u32,
}

const EMPTY_LIST: PortList = PortList {
    head: NIL,
    tail: NIL,
    len: 0,
};

#[inline]
fn key(vid: u16, mac: u64) -> u64 {
    (u64::from(vid & 0x0fff) << 48) | (mac & 0xffff_ffff_ffff)
}

#[inline]
fn unkey(k: u64) -> (u16, MacAddr) {
    ((k >> 48) as u16, MacAddr::from_u64(k))
}

/// A per-worker MAC table.
#[derive(Debug)]
pub struct Fdb {
    config: FdbConfig,
    map: HashMap<u64, u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    lists: Box<[PortList]>,
    counters: FdbCounters,
    /// Monotonic nanoseconds of the current burst, shared epoch across replicas.
    clock_ns: u64,
    /// Stamp of the entry the last local learning changed.
    last_stamp: u64,
}

impl Fdb {
    pub fn new(config: FdbConfig) -> Fdb {
        let capacity = config.capacity.max(1);
        Fdb {
            config: FdbConfig { capacity, ..config },
            map: HashMap::with_capacity(capacity * 2),
            slots: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            lists: vec![EMPTY_LIST; MAX_PORTS].into_boxed_slice(),
            counters: FdbCounters::default(),
            clock_ns: 0,
            last_stamp: 0,
        }
    }

    /// Sets the clock local learning stamps entries with (monotonic nanoseconds on an
    /// epoch all replicas share); call once per burst, not per frame.
    pub fn set_clock_ns(&mut self, ns: u64) {
        self.clock_ns = ns;
    }

    /// The stamp of the entry the last local learning changed (for its [`FdbUpdate`]).
    pub fn last_stamp(&self) -> u64 {
        self.last_stamp
    }

    /// A stamp for a local observation of an entry stamped `after`: the clock, or just
    /// after `after` when this replica holds a newer stamp (another replica's clock read).
    #[inline]
    fn next_stamp(&mut self, after: u64) -> u64 {
        self.last_stamp = self.clock_ns.max(after.saturating_add(1));
        self.last_stamp
    }

    pub fn config(&self) -> FdbConfig {
        self.config
    }

    /// Changes the aging time; takes effect at the next lookup or [`Fdb::age`].
    pub fn set_aging(&mut self, secs: u64) {
        self.config.aging_secs = secs;
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Learned (dynamic) entries of one port.
    pub fn dynamic_count(&self, port: PortId) -> usize {
        self.lists[port.index()].len as usize
    }

    pub fn counters(&self) -> FdbCounters {
        FdbCounters {
            entries: self.map.len() as u64,
            ..self.counters
        }
    }

    #[inline]
    fn expired(&self, s: &Slot, now: u64) -> bool {
        !s.is_static && now.saturating_sub(s.last_seen) >= self.config.aging_secs
    }

    /// The port `mac` was learned on in VLAN `vid`, if known and not expired.
    #[inline]
    pub fn lookup(&self, vid: u16, mac: MacAddr, now: u64) -> Option<PortId> {
        self.lookup_raw(vid, mac.to_u64(), now)
    }

    /// [`Fdb::lookup`] with the MAC as the low 48 bits of a `u64` (the fast path's form).
    #[inline]
    pub fn lookup_raw(&self, vid: u16, mac: u64, now: u64) -> Option<PortId> {
        let idx = *self.map.get(&key(vid, mac))?;
        let s = &self.slots[idx as usize];
        if self.expired(s, now) {
            None
        } else {
            Some(PortId::from_raw(s.port))
        }
    }

    /// Learns that `mac` in VLAN `vid` is behind `port`. `limit` is the port's learn limit.
    #[inline]
    pub fn learn(
        &mut self,
        vid: u16,
        mac: MacAddr,
        port: PortId,
        now: u64,
        limit: Option<u32>,
    ) -> Learn {
        self.learn_raw(vid, mac.to_u64(), port, now, limit)
    }

    /// [`Fdb::learn`] with the MAC as the low 48 bits of a `u64` (the fast path's form).
    #[inline]
    pub fn learn_raw(
        &mut self,
        vid: u16,
        mac: u64,
        port: PortId,
        now: u64,
        limit: Option<u32>,
    ) -> Learn {
        let r = self.learn_uncounted(vid, mac, port, now, limit);
        self.count(r);
        r
    }

    /// Counts what local learning did (replica updates are not counted).
    #[inline]
    fn count(&mut self, r: Learn) {
        let c = &mut self.counters;
        match r {
            Learn::Refreshed | Learn::Known | Learn::Stale => {}
            Learn::Learned => c.learned += 1,
            Learn::Moved { .. } => c.moved += 1,
            Learn::StaticMoveBlocked => c.static_move_blocked += 1,
            Learn::LimitReached => c.learn_limit += 1,
            Learn::TableFull => c.table_full += 1,
        }
    }

    /// Learning without the outcome counters (evictions are still counted: they
    /// happen in this table).
    #[inline]
    fn learn_uncounted(
        &mut self,
        vid: u16,
        mac: u64,
        port: PortId,
        now: u64,
        limit: Option<u32>,
    ) -> Learn {
        let k = key(vid, mac);
        if let Some(&idx) = self.map.get(&k) {
            let s = &self.slots[idx as usize];
            if usize::from(s.port) == port.index() {
                // Hot path: a known source on its port, refreshed at most once a second.
                if !s.is_static && s.last_seen != now {
                    let stamp = self.next_stamp(s.stamp);
                    self.unlink(idx);
                    let slot = &mut self.slots[idx as usize];
                    slot.last_seen = now;
                    slot.stamp = stamp;
                    self.link_tail(idx);
                    return Learn::Refreshed;
                }
                return Learn::Known;
            }
            self.learn_other_port(k, idx, port, now, limit)
        } else {
            self.learn_new(k, port, now, limit)
        }
    }

    /// A known (vid, mac) seen on another port than its entry's.
    #[cold]
    fn learn_other_port(
        &mut self,
        k: u64,
        idx: u32,
        port: PortId,
        now: u64,
        limit: Option<u32>,
    ) -> Learn {
        let s = self.slots[idx as usize];
        if s.is_static {
            return Learn::StaticMoveBlocked;
        }
        let from = PortId::from_raw(s.port);
        if self.at_limit(port, limit) {
            self.remove_slot(k, idx);
            return Learn::LimitReached;
        }
        let stamp = self.next_stamp(s.stamp);
        self.unlink(idx);
        let slot = &mut self.slots[idx as usize];
        slot.port = port.index() as u16;
        slot.last_seen = now;
        slot.stamp = stamp;
        self.link_tail(idx);
        Learn::Moved { from }
    }

    /// An unknown (vid, mac).
    fn learn_new(&mut self, k: u64, port: PortId, now: u64, limit: Option<u32>) -> Learn {
        if self.at_limit(port, limit) {
            return Learn::LimitReached;
        }
        if self.map.len() >= self.config.capacity && !self.evict_one() {
            return Learn::TableFull;
        }
        let stamp = self.next_stamp(0);
        self.insert_new(k, port, now, Some(stamp));
        Learn::Learned
    }

    /// Applies another replica's learning. Never counts as local learning; respects static
    /// entries and capacity like local learning does. An update not newer (stamp, then
    /// port) than the dynamic entry it would change is [`Learn::Stale`] and ignored.
    pub fn apply(&mut self, update: FdbUpdate, limit: Option<u32>) -> Learn {
        let FdbUpdate::Learned {
            vid,
            mac,
            port,
            now,
            stamp,
            ..
        } = update;
        let k = key(vid, mac.to_u64());
        let newer = |s: &Slot| s.is_static || (stamp, port.index() as u16) > (s.stamp, s.port);
        if let Some(&idx) = self.map.get(&k) {
            if !newer(&self.slots[idx as usize]) {
                return Learn::Stale;
            }
        }
        let r = self.learn_uncounted(vid, mac.to_u64(), port, now, limit);
        if let Some(&idx) = self.map.get(&k) {
            let s = &mut self.slots[idx as usize];
            if !s.is_static && usize::from(s.port) == port.index() {
                s.stamp = stamp;
            }
        }
        r
    }

    #[inline]
    fn at_limit(&self, port: PortId, limit: Option<u32>) -> bool {
        limit.is_some_and(|l| self.lists[port.index()].len >= l)
    }

    /// Adds or replaces a static entry (an existing dynamic entry becomes static).
    pub fn add_static(&mut self, vid: u16, mac: MacAddr, port: PortId) -> Result<(), FdbError> {
        if !mac.is_learnable() {
            return Err(FdbError::NotUnicast { mac });
        }
        let k = key(vid, mac.to_u64());
        if let Some(&idx) = self.map.get(&k) {
            let s = self.slots[idx as usize];
            if !s.is_static {
                self.unlink(idx);
                self.counters.static_entries += 1;
            }
            let slot = &mut self.slots[idx as usize];
            slot.is_static = true;
            slot.port = port.index() as u16;
            return Ok(());
        }
        if self.map.len() >= self.config.capacity && !self.evict_one() {
            return Err(FdbError::Full {
                capacity: self.config.capacity,
            });
        }
        self.insert_new(k, port, 0, None);
        self.counters.static_entries += 1;
        Ok(())
    }

    /// Removes one entry (static or dynamic); returns whether it existed.
    pub fn remove(&mut self, vid: u16, mac: MacAddr) -> bool {
        let k = key(vid, mac.to_u64());
        match self.map.get(&k) {
            Some(&idx) => {
                self.remove_slot(k, idx);
                true
            }
            None => false,
        }
    }

    /// Removes expired dynamic entries; returns how many. Cost: O(ports + expired).
    pub fn age(&mut self, now: u64) -> usize {
        let mut n = 0;
        for p in 0..MAX_PORTS {
            loop {
                let head = self.lists[p].head;
                if head == NIL {
                    break;
                }
                let s = self.slots[head as usize];
                if !self.expired(&s, now) {
                    break;
                }
                self.remove_slot(s.key, head);
                n += 1;
            }
        }
        self.counters.expired += n as u64;
        n
    }

    /// Removes matching entries; returns how many.
    pub fn flush(&mut self, f: Flush) -> usize {
        let mut doomed = 0;
        let mut i = 0;
        // Walk the slot array (control-plane path): removal only frees slots, never moves
        // them, so indices stay valid during the walk.
        while i < self.slots.len() {
            let s = self.slots[i];
            i += 1;
            if s.key == u64::MAX {
                continue; // free slot
            }
            let (vid, mac) = unkey(s.key);
            let matches = (f.include_static || !s.is_static)
                && f.port.is_none_or(|p| p.index() == usize::from(s.port))
                && f.vid.is_none_or(|v| v == vid)
                && f.mac.is_none_or(|m| m == mac);
            if matches {
                self.remove_slot(s.key, (i - 1) as u32);
                doomed += 1;
            }
        }
        doomed
    }

    /// All entries, in no particular order.
    pub fn entries(&self, now: u64) -> impl Iterator<Item = FdbEntry> + '_ {
        self.map.iter().map(move |(&k, &idx)| {
            let s = &self.slots[idx as usize];
            let (vid, mac) = unkey(k);
            FdbEntry {
                vid,
                mac,
                port: PortId::from_raw(s.port),
                is_static: s.is_static,
                age: if s.is_static {
                    0
                } else {
                    now.saturating_sub(s.last_seen)
                },
            }
        })
    }

    /// Evicts the least recently used dynamic entry of the port holding the most dynamic
    /// entries (lowest port id on a tie). Returns false if there is no dynamic entry.
    fn evict_one(&mut self) -> bool {
        let mut best = NIL;
        let mut best_len = 0;
        for (p, l) in self.lists.iter().enumerate() {
            if l.len > best_len {
                best_len = l.len;
                best = p as u32;
            }
        }
        if best == NIL {
            return false;
        }
        let head = self.lists[best as usize].head;
        let k = self.slots[head as usize].key;
        self.remove_slot(k, head);
        self.counters.evicted += 1;
        true
    }

    /// Inserts a dynamic entry with its stamp, or a static one (`stamp` None).
    fn insert_new(&mut self, k: u64, port: PortId, now: u64, stamp: Option<u64>) {
        let is_static = stamp.is_none();
        let slot = Slot {
            key: k,
            last_seen: now,
            prev: NIL,
            next: NIL,
            port: port.index() as u16,
            is_static,
            stamp: stamp.unwrap_or(0),
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.map.insert(k, idx);
        if !is_static {
            self.link_tail(idx);
        }
    }

    fn remove_slot(&mut self, k: u64, idx: u32) {
        self.map.remove(&k);
        if self.slots[idx as usize].is_static {
            self.counters.static_entries -= 1;
            self.counters.static_removed += 1;
        } else {
            self.unlink(idx);
        }
        self.slots[idx as usize].key = u64::MAX;
        self.free.push(idx);
    }

    fn link_tail(&mut self, idx: u32) {
        let port = usize::from(self.slots[idx as usize].port);
        let tail = self.lists[port].tail;
        {
            let s = &mut self.slots[idx as usize];
            s.prev = tail;
            s.next = NIL;
        }
        if tail == NIL {
            self.lists[port].head = idx;
        } else {
            self.slots[tail as usize].next = idx;
        }
        self.lists[port].tail = idx;
        self.lists[port].len += 1;
    }

    fn unlink(&mut self, idx: u32) {
        let s = self.slots[idx as usize];
        let port = usize::from(s.port);
        if s.prev == NIL {
            self.lists[port].head = s.next;
        } else {
            self.slots[s.prev as usize].next = s.next;
        }
        if s.next == NIL {
            self.lists[port].tail = s.prev;
        } else {
            self.slots[s.next as usize].prev = s.prev;
        }
        self.lists[port].len -= 1;
    }
}

#[cfg(test)]
mod tests;
