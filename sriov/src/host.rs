//! VF operations on one host: discovery, set (journaled), restore, diff, and the
//! reconciliation entry points [`Host::apply`] and [`Host::drift`] a daemon calls.
//!
//! Invariants:
//! - a request is validated, the PF and VF are checked to exist and a trunk allow-list
//!   is checked to be enforceable *before* anything is journaled or sent;
//! - the VF's original state is journaled before the first change to it; the desired
//!   settings journaled are the ones that took effect (a refused setting is not desired);
//! - every kernel or driver error names the PF, the VF and the setting;
//! - a restore is verified by reading the VF back; the journal entry is removed only
//!   when every journaled field matches the original again;
//! - a journal entry is used (restored, or extended by a change) only on the PCI device
//!   it was recorded for: after interface renames the name may be another NIC's;
//! - [`Host::restore_all`] restores every readable entry; an unreadable one is an error
//!   for its VF alone.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::caps::{self, Caps};
use crate::journal::{Journal, JournalEntry, JournalError};
use crate::model::{VfConfig, VfState, VlanMode, VlanSet};
use crate::netlink::{parse_vf_states, NetlinkError, RouteSocket, VfSetting};
use crate::sysfs::{PfDevice, Sysfs, SysfsError};
use crate::trunk::{commands, parse_trunk, TrunkFormat};
use crate::validate::{check_config, ValidationError};

/// Access to the kernel's link configuration (rtnetlink on a real host, a fake in tests).
pub trait Rtnl {
    /// Interface index of `pf` and the live settings of its VFs (without trunk lists).
    fn vf_states(&mut self, pf: &str) -> Result<(u32, Vec<VfState>), NetlinkError>;
    /// Applies one VF setting on the PF with index `ifindex`.
    fn set_vf(&mut self, ifindex: u32, vf: u32, setting: &VfSetting) -> Result<(), NetlinkError>;
}

impl Rtnl for RouteSocket {
    fn vf_states(&mut self, pf: &str) -> Result<(u32, Vec<VfState>), NetlinkError> {
        let link = self.get_link(pf)?;
        Ok((link.header.index, parse_vf_states(&link)))
    }

    fn set_vf(&mut self, ifindex: u32, vf: u32, setting: &VfSetting) -> Result<(), NetlinkError> {
        RouteSocket::set_vf(self, ifindex, vf, setting)
    }
}

/// A VF operation that failed; the message names PF, VF and setting.
#[derive(Debug, Error)]
pub enum VfError {
    /// Discovery failed (no such PF, no SR-IOV, unreadable sysfs).
    #[error(transparent)]
    Sysfs(#[from] SysfsError),
    /// VF index beyond `sriov_numvfs`.
    #[error("pf {pf} vf {vf}: no such VF ({pf} has {num_vfs} VFs)")]
    NoSuchVf {
        /// PF name.
        pf: String,
        /// VF index.
        vf: u32,
        /// VFs the PF has.
        num_vfs: u32,
    },
    /// The request breaks a validation rule; nothing was sent.
    #[error("pf {pf} vf {vf}: {source}")]
    Invalid {
        /// PF name.
        pf: String,
        /// VF index.
        vf: u32,
        /// The rule.
        source: ValidationError,
    },
    /// The kernel or the driver refused one setting.
    #[error("pf {pf} vf {vf}: set {setting}: {reason}")]
    Setting {
        /// PF name.
        pf: String,
        /// VF index.
        vf: u32,
        /// Setting name ("vlan", "trust", ...).
        setting: &'static str,
        /// errno, when the kernel gave one.
        errno: Option<i32>,
        /// Translated cause.
        reason: String,
    },
    /// A trunk allow-list was asked for and the driver cannot enforce one.
    #[error(
        "pf {pf} vf {vf}: set trunk allow-list {list}: driver {driver} has no trunk backend \
         (no device/sriov/{vf}/trunk); refusing to leave the VF unfiltered"
    )]
    TrunkUnsupported {
        /// PF name.
        pf: String,
        /// VF index.
        vf: u32,
        /// Driver name.
        driver: String,
        /// The requested list.
        list: VlanSet,
    },
    /// Reading the PF over netlink failed.
    #[error("pf {pf}: {source}")]
    Netlink {
        /// PF name.
        pf: String,
        /// Cause.
        source: NetlinkError,
    },
    /// The journal could not be read or written.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// `restore` of a VF that has no journal entry.
    #[error("pf {pf} vf {vf}: nothing to restore (no journal entry in {dir})")]
    NotJournaled {
        /// PF name.
        pf: String,
        /// VF index.
        vf: u32,
        /// State directory.
        dir: String,
    },
    /// The journal entry was recorded for the PF at another PCI address: the name now
    /// belongs to another device (interfaces renamed), whose VFs it must not touch.
    #[error(
        "pf {pf} vf {vf}: journal entry was recorded for the PF at PCI {journaled}, \
         but {pf} is now the device at PCI {current} (interface renamed?); not using it"
    )]
    PciMismatch {
        /// PF name.
        pf: String,
        /// VF index.
        vf: u32,
        /// PCI address in the journal entry.
        journaled: String,
        /// PCI address of the device called `pf` now.
        current: String,
    },
    /// After a restore the VF still differs from its original state.
    #[error("pf {pf} vf {vf}: restore incomplete, still different: {fields}")]
    RestoreMismatch {
        /// PF name.
        pf: String,
        /// VF index.
        vf: u32,
        /// Differing fields.
        fields: String,
    },
}

impl VfError {
    /// True when the error means "no such PF/VF/journal entry" (CLI exit code 3).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            VfError::Sysfs(SysfsError::NoSuchInterface(_))
                | VfError::NoSuchVf { .. }
                | VfError::NotJournaled { .. }
                | VfError::Netlink {
                    source: NetlinkError::NoSuchDevice(_),
                    ..
                }
        )
    }
}

/// One VF and its live settings, as `list`/`show` present them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VfView {
    /// Live settings (`vf`, `mac`, `vlan`, ...).
    #[serde(flatten)]
    pub state: VfState,
    /// PCI address of the VF.
    pub pci: String,
    /// VF netdevs when a VF driver is bound.
    pub netdevs: Vec<String>,
    /// True when the journal holds an original state for this VF.
    pub journaled: bool,
}

/// One PF and its VFs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PfView {
    /// Interface name.
    pub pf: String,
    /// PCI address.
    pub pci: String,
    /// Driver.
    pub driver: Option<String>,
    /// `sriov_totalvfs`.
    pub total_vfs: u32,
    /// `sriov_numvfs`.
    pub num_vfs: u32,
    /// VFs with live settings.
    pub vfs: Vec<VfView>,
}

/// One managed setting: what we want and what the VF has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// PF name.
    pub pf: String,
    /// VF index.
    pub vf: u32,
    /// Setting ("vlan", "trunk", "mac", "spoofchk", "trust", "state", "min_tx_rate",
    /// "max_tx_rate").
    pub setting: &'static str,
    /// Desired value.
    pub desired: String,
    /// Live value.
    pub live: String,
    /// True when live equals desired.
    pub in_sync: bool,
}

/// What a daemon wants on one VF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VfDesired {
    /// PF name.
    pub pf: String,
    /// VF index.
    pub vf: u32,
    /// Settings.
    pub config: VfConfig,
}

/// Outcome of [`Host::apply`] for one VF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VfReport {
    /// PF name.
    pub pf: String,
    /// VF index.
    pub vf: u32,
    /// Settings that were out of sync and were changed.
    pub changed: Vec<&'static str>,
    /// The error that stopped this VF, if any.
    pub error: Option<String>,
}

/// Outcome of [`Host::apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// One entry per desired VF, in input order.
    pub vfs: Vec<VfReport>,
}

impl Report {
    /// True when every VF was brought in sync.
    pub fn is_ok(&self) -> bool {
        self.vfs.iter().all(|v| v.error.is_none())
    }
}

/// Outcome of [`Host::set_num_vfs`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NumVfsChange {
    /// PF name.
    pub pf: String,
    /// VFs before.
    pub previous: u32,
    /// VFs now.
    pub num_vfs: u32,
    /// Journal entries dropped because their VFs were destroyed.
    pub journal_dropped: Vec<u32>,
}

/// Result of restoring one VF: its index and the settings changed, or why it failed.
pub type RestoreOutcome = (u32, Result<Vec<&'static str>, VfError>);

/// One change to a VF.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Netlink(VfSetting),
    TrunkList(VlanSet),
}

impl Action {
    fn name(&self) -> &'static str {
        match self {
            Action::Netlink(s) => s.name(),
            Action::TrunkList(_) => "trunk",
        }
    }
}

/// A PF's VF as read right now.
struct LiveVf {
    pf: PfDevice,
    ifindex: u32,
    state: VfState,
}

/// VF management on one host.
#[derive(Debug)]
pub struct Host<R: Rtnl = RouteSocket> {
    sysfs: Sysfs,
    journal: Journal,
    rtnl: R,
}

impl Host<RouteSocket> {
    /// The real host: `/sys`, rtnetlink, and the journal in `state_dir`.
    pub fn system(state_dir: impl Into<std::path::PathBuf>) -> Result<Self, VfError> {
        let rtnl = RouteSocket::open().map_err(|source| VfError::Netlink {
            pf: "-".into(),
            source,
        })?;
        Ok(Host::new(Sysfs::default(), Journal::new(state_dir), rtnl))
    }
}

impl<R: Rtnl> Host<R> {
    /// A host made of the given parts.
    pub fn new(sysfs: Sysfs, journal: Journal, rtnl: R) -> Self {
        Host {
            sysfs,
            journal,
            rtnl,
        }
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The rtnetlink backend.
    pub fn rtnl(&mut self) -> &mut R {
        &mut self.rtnl
    }

    fn driver_name(&self, pf: &str) -> String {
        self.sysfs
            .driver(pf)
            .unwrap_or_else(|| "(none)".to_string())
    }

    fn netlink_err(pf: &str) -> impl FnOnce(NetlinkError) -> VfError + '_ {
        move |source| VfError::Netlink {
            pf: pf.to_string(),
            source,
        }
    }

    /// Live state of every VF of `pf`, with trunk lists where the driver has them.
    fn read_pf(&mut self, pf: &str) -> Result<(PfDevice, u32, Vec<VfState>), VfError> {
        let dev = self.sysfs.pf(pf)?;
        let (ifindex, mut states) = self.rtnl.vf_states(pf).map_err(Self::netlink_err(pf))?;
        for st in &mut states {
            st.trunk = self.read_trunk(pf, st.vf)?;
        }
        Ok((dev, ifindex, states))
    }

    fn read_trunk(&self, pf: &str, vf: u32) -> Result<Option<VlanSet>, VfError> {
        if !self.sysfs.has_trunk(pf, vf) {
            return Ok(None);
        }
        let text = self.sysfs.read_trunk(pf, vf)?;
        parse_trunk(&text).map(Some).map_err(|e| VfError::Setting {
            pf: pf.to_string(),
            vf,
            setting: "trunk",
            errno: None,
            reason: e.to_string(),
        })
    }

    fn read_vf(&mut self, pf: &str, vf: u32) -> Result<LiveVf, VfError> {
        let (dev, ifindex, states) = self.read_pf(pf)?;
        let num_vfs = dev.num_vfs;
        let state = states
            .into_iter()
            .find(|s| s.vf == vf)
            .ok_or_else(|| VfError::NoSuchVf {
                pf: pf.to_string(),
                vf,
                num_vfs,
            })?;
        Ok(LiveVf {
            pf: dev,
            ifindex,
            state,
        })
    }

    fn view(&self, dev: PfDevice, states: Vec<VfState>) -> Result<PfView, VfError> {
        // A VF with an entry file is journaled, even when the entry cannot be read.
        let journaled: Vec<u32> = self
            .journal
            .scan(&dev.name)?
            .iter()
            .map(|(vf, _)| *vf)
            .collect();
        let vfs = states
            .into_iter()
            .map(|state| {
                let sys = dev.vfs.iter().find(|v| v.vf == state.vf);
                VfView {
                    pci: sys.map(|v| v.pci.clone()).unwrap_or_default(),
                    netdevs: sys.map(|v| v.netdevs.clone()).unwrap_or_default(),
                    journaled: journaled.contains(&state.vf),
                    state,
                }
            })
            .collect();
        Ok(PfView {
            pf: dev.name,
            pci: dev.pci,
            driver: dev.driver,
            total_vfs: dev.total_vfs,
            num_vfs: dev.num_vfs,
            vfs,
        })
    }

    /// All SR-IOV PFs with their VFs.
    pub fn list(&mut self) -> Result<Vec<PfView>, VfError> {
        let names = self.sysfs.pf_names()?;
        names.iter().map(|pf| self.show(pf)).collect()
    }

    /// One PF with its VFs.
    pub fn show(&mut self, pf: &str) -> Result<PfView, VfError> {
        let (dev, _, states) = self.read_pf(pf)?;
        self.view(dev, states)
    }

    /// One VF of a PF (the PF view holds only that VF).
    pub fn show_vf(&mut self, pf: &str, vf: u32) -> Result<PfView, VfError> {
        let live = self.read_vf(pf, vf)?;
        self.view(live.pf, vec![live.state])
    }

    /// Capabilities of `pf`.
    pub fn caps(&self, pf: &str) -> Result<Caps, VfError> {
        Ok(caps::probe(&self.sysfs, pf)?)
    }

    /// Sets `sriov_numvfs`; journal entries of destroyed VFs are dropped (their VFs come
    /// back, if at all, with driver defaults).
    pub fn set_num_vfs(&mut self, pf: &str, n: u32) -> Result<NumVfsChange, VfError> {
        let previous = self.sysfs.set_num_vfs(pf, n)?;
        let mut dropped = Vec::new();
        if previous != n {
            // Unreadable entries go too: their VFs are gone as well.
            for (vf, _) in self.journal.scan(pf)? {
                self.journal.remove(pf, vf)?;
                dropped.push(vf);
            }
        }
        Ok(NumVfsChange {
            pf: pf.to_string(),
            previous,
            num_vfs: n,
            journal_dropped: dropped,
        })
    }

    /// Validates `cfg`, journals the original state of VF `vf` of `pf` before its first
    /// change, applies every setting `cfg` manages (stopping at the first refusal) and
    /// records the settings that took effect as desired.
    /// Returns the names of the settings sent.
    pub fn set(&mut self, pf: &str, vf: u32, cfg: &VfConfig) -> Result<Vec<&'static str>, VfError> {
        check_config(cfg).map_err(|source| VfError::Invalid {
            pf: pf.to_string(),
            vf,
            source,
        })?;
        let live = self.read_vf(pf, vf)?;
        self.check_trunk_backend(pf, vf, cfg)?;
        self.journal_before_change(&live)?;
        let actions = plan(cfg, &live.state);
        let outcome = self.execute(&live, &actions);
        self.finish(&live, cfg, outcome)
    }

    fn check_trunk_backend(&self, pf: &str, vf: u32, cfg: &VfConfig) -> Result<(), VfError> {
        if let Some(VlanMode::Trunk {
            allowed: Some(list),
        }) = &cfg.vlan
        {
            if !self.sysfs.has_trunk(pf, vf) {
                return Err(VfError::TrunkUnsupported {
                    pf: pf.to_string(),
                    vf,
                    driver: self.driver_name(pf),
                    list: list.clone(),
                });
            }
        }
        Ok(())
    }

    /// Makes sure the journal holds the original state of `live`'s VF (written before
    /// the first change) and returns the entry.
    fn journal_before_change(&self, live: &LiveVf) -> Result<JournalEntry, VfError> {
        let pf = &live.pf.name;
        if let Some(e) = self.journal.load(pf, live.state.vf)? {
            check_pci(&e, &live.pf)?;
            return Ok(e);
        }
        let entry = JournalEntry {
            pf: pf.clone(),
            pf_pci: live.pf.pci.clone(),
            vf: live.state.vf,
            original: live.state.clone(),
            desired: VfConfig::default(),
        };
        self.journal.save(&entry)?;
        Ok(entry)
    }

    /// Runs `actions` in order, stopping at the first failure. Returns the names of the
    /// actions that took effect, and the failure if there was one.
    fn execute(
        &mut self,
        live: &LiveVf,
        actions: &[Action],
    ) -> (Vec<&'static str>, Result<(), VfError>) {
        let pf = live.pf.name.as_str();
        let vf = live.state.vf;
        let mut done = Vec::new();
        for action in actions {
            let result = match action {
                Action::Netlink(setting) => self
                    .rtnl
                    .set_vf(live.ifindex, vf, setting)
                    .map_err(|e| self.setting_error(pf, vf, setting.name(), e)),
                Action::TrunkList(want) => self.write_trunk(live, want),
            };
            if let Err(e) = result {
                return (done, Err(e));
            }
            done.push(action.name());
        }
        (done, Ok(()))
    }

    /// Journals `cfg` restricted to the settings in `done` as desired, then returns
    /// `done` or the execution error.
    fn finish(
        &self,
        live: &LiveVf,
        cfg: &VfConfig,
        (done, result): (Vec<&'static str>, Result<(), VfError>),
    ) -> Result<Vec<&'static str>, VfError> {
        if !done.is_empty() {
            let mut entry = self.journal_before_change(live)?;
            entry.desired = entry.desired.overlay(&applied_part(cfg, &done));
            self.journal.save(&entry)?;
        }
        result.map(|()| done)
    }

    fn write_trunk(&self, live: &LiveVf, want: &VlanSet) -> Result<(), VfError> {
        let pf = live.pf.name.as_str();
        let vf = live.state.vf;
        let current = self.read_trunk(pf, vf)?.unwrap_or_default();
        let format = TrunkFormat::for_driver(live.pf.driver.as_deref());
        for line in commands(&current, want, format) {
            self.sysfs
                .write_trunk(pf, vf, &line)
                .map_err(|e| VfError::Setting {
                    pf: pf.to_string(),
                    vf,
                    setting: "trunk",
                    errno: None,
                    reason: format!("writing '{line}': {e}"),
                })?;
        }
        Ok(())
    }

    /// Turns a kernel answer into a message naming the driver and the cause.
    fn setting_error(&self, pf: &str, vf: u32, setting: &'static str, e: NetlinkError) -> VfError {
        let driver = self.driver_name(pf);
        let (errno, reason) = match e {
            NetlinkError::Kernel { errno } => (Some(errno), self.kernel_reason(pf, &driver, errno)),
            other => (None, other.to_string()),
        };
        VfError::Setting {
            pf: pf.to_string(),
            vf,
            setting,
            errno,
            reason,
        }
    }

    fn kernel_reason(&self, pf: &str, driver: &str, errno: i32) -> String {
        if errno == libc::EOPNOTSUPP {
            if let Some(why) = self.sysfs.no_sriov_reason(pf) {
                return format!("no SR-IOV on {pf} ({why}): operation not supported");
            }
            return format!("operation not supported by driver {driver}");
        }
        match errno {
            libc::EPROTONOSUPPORT => format!("VLAN protocol not supported by driver {driver}"),
            libc::EINVAL => format!("driver {driver} rejected the value (invalid argument)"),
            libc::EPERM | libc::EACCES => {
                "permission denied (needs root / CAP_NET_ADMIN)".to_string()
            }
            libc::EAGAIN | libc::EBUSY => {
                format!("driver {driver} is busy or the link is not ready, try again")
            }
            libc::ENODEV => format!("{pf} disappeared"),
            _ => format!(
                "{} (driver {driver})",
                std::io::Error::from_raw_os_error(errno)
            ),
        }
    }

    /// Sends one setting without validation or journal: for tests and callers that
    /// journal themselves. Errors are translated like [`Host::set`]'s.
    pub fn send_unjournaled(
        &mut self,
        pf: &str,
        vf: u32,
        setting: &VfSetting,
    ) -> Result<(), VfError> {
        let (ifindex, _) = self.rtnl.vf_states(pf).map_err(Self::netlink_err(pf))?;
        self.rtnl
            .set_vf(ifindex, vf, setting)
            .map_err(|e| self.setting_error(pf, vf, setting.name(), e))
    }

    /// Returns VF `vf` of `pf` to its journaled original state, checks it by reading
    /// the VF back, then removes the journal entry. Returns the settings changed.
    /// Refused, with nothing sent, when the entry was recorded for another PCI device.
    pub fn restore(&mut self, pf: &str, vf: u32) -> Result<Vec<&'static str>, VfError> {
        let entry = self
            .journal
            .load(pf, vf)?
            .ok_or_else(|| VfError::NotJournaled {
                pf: pf.to_string(),
                vf,
                dir: self.journal.dir().display().to_string(),
            })?;
        self.restore_entry(&entry)
    }

    fn restore_entry(&mut self, entry: &JournalEntry) -> Result<Vec<&'static str>, VfError> {
        let (pf, vf) = (entry.pf.as_str(), entry.vf);
        // Before reading the VF: another device may not even have this VF.
        check_pci(entry, &self.sysfs.pf(pf)?)?;
        let live = self.read_vf(pf, vf)?;
        let actions = restore_plan(&entry.original, &live.state);
        let (done, result) = self.execute(&live, &actions);
        result?;
        let after = self.read_vf(pf, vf)?;
        let differing = differing_fields(&entry.original, &after.state);
        if !differing.is_empty() {
            return Err(VfError::RestoreMismatch {
                pf: pf.to_string(),
                vf,
                fields: differing.join(", "),
            });
        }
        self.journal.remove(pf, vf)?;
        Ok(done)
    }

    /// Restores every journaled VF of `pf`; one result per VF, in VF order. An entry
    /// that cannot be read is that VF's error (the entry stays for inspection); the
    /// others are restored all the same.
    pub fn restore_all(&mut self, pf: &str) -> Result<Vec<RestoreOutcome>, VfError> {
        self.sysfs.check_pf(pf)?;
        let entries = self.journal.scan(pf)?;
        Ok(entries
            .into_iter()
            .map(|(vf, entry)| match entry {
                Ok(e) => (vf, self.restore_entry(&e)),
                Err(e) => (vf, Err(e.into())),
            })
            .collect())
    }

    /// Desired (journaled) versus live, for every managed setting of every journaled VF
    /// of `pf`.
    pub fn diff(&mut self, pf: &str) -> Result<Vec<Drift>, VfError> {
        let (_, _, states) = self.read_pf(pf)?;
        let mut out = Vec::new();
        for entry in self.journal.entries(pf)? {
            match states.iter().find(|s| s.vf == entry.vf) {
                Some(live) => out.extend(compare(pf, &entry.desired, live)),
                None => out.push(missing(pf, entry.vf)),
            }
        }
        Ok(out)
    }

    /// Settings of `desired` that the VFs do not have right now.
    pub fn drift(&mut self, desired: &[VfDesired]) -> Result<Vec<Drift>, VfError> {
        let mut out = Vec::new();
        for d in desired {
            let (_, _, states) = self.read_pf(&d.pf)?;
            match states.iter().find(|s| s.vf == d.vf) {
                Some(live) => out.extend(
                    compare(&d.pf, &d.config, live)
                        .into_iter()
                        .filter(|c| !c.in_sync),
                ),
                None => out.push(missing(&d.pf, d.vf)),
            }
        }
        Ok(out)
    }

    /// Brings every VF of `desired` in sync, changing only drifted settings (journaled
    /// like [`Host::set`]). A failing VF does not stop the others.
    pub fn apply(&mut self, desired: &[VfDesired]) -> Report {
        let vfs = desired
            .iter()
            .map(|d| {
                let (changed, error) = match self.apply_one(d) {
                    Ok(changed) => (changed, None),
                    Err(e) => (Vec::new(), Some(e.to_string())),
                };
                VfReport {
                    pf: d.pf.clone(),
                    vf: d.vf,
                    changed,
                    error,
                }
            })
            .collect();
        Report { vfs }
    }

    fn apply_one(&mut self, d: &VfDesired) -> Result<Vec<&'static str>, VfError> {
        check_config(&d.config).map_err(|source| VfError::Invalid {
            pf: d.pf.clone(),
            vf: d.vf,
            source,
        })?;
        let live = self.read_vf(&d.pf, d.vf)?;
        self.check_trunk_backend(&d.pf, d.vf, &d.config)?;
        let todo = out_of_sync(&d.config, &live.state);
        if todo.is_empty() {
            return Ok(Vec::new());
        }
        self.journal_before_change(&live)?;
        let actions = plan(&todo, &live.state);
        let outcome = self.execute(&live, &actions);
        self.finish(&live, &d.config, outcome)
    }
}

/// The entry was recorded for the device `dev` (same PCI address).
fn check_pci(entry: &JournalEntry, dev: &PfDevice) -> Result<(), VfError> {
    if entry.pf_pci == dev.pci {
        return Ok(());
    }
    let shown = |pci: &str| {
        if pci.is_empty() {
            "(unknown)".to_string()
        } else {
            pci.to_string()
        }
    };
    Err(VfError::PciMismatch {
        pf: entry.pf.clone(),
        vf: entry.vf,
        journaled: shown(&entry.pf_pci),
        current: shown(&dev.pci),
    })
}

fn missing(pf: &str, vf: u32) -> Drift {
    Drift {
        pf: pf.to_string(),
        vf,
        setting: "vf",
        desired: "present".into(),
        live: "missing".into(),
        in_sync: false,
    }
}

/// The changes that put `cfg` on a VF whose live state is `live`, in a fixed order:
/// VLAN, trunk list, MAC, spoofchk, trust, link state, rate.
fn plan(cfg: &VfConfig, live: &VfState) -> Vec<Action> {
    let mut out = Vec::new();
    match &cfg.vlan {
        Some(VlanMode::Access { vid, qos, proto }) => out.push(Action::Netlink(VfSetting::Vlan {
            vid: *vid,
            qos: *qos,
            proto: *proto,
        })),
        Some(VlanMode::Trunk { allowed }) => {
            out.push(Action::Netlink(VfSetting::Vlan {
                vid: 0,
                qos: 0,
                proto: Default::default(),
            }));
            if let Some(list) = allowed {
                out.push(Action::TrunkList(list.clone()));
            }
        }
        None => {}
    }
    if let Some(mac) = cfg.mac {
        out.push(Action::Netlink(VfSetting::Mac(mac)));
    }
    if let Some(on) = cfg.spoofchk {
        out.push(Action::Netlink(VfSetting::SpoofChk(on)));
    }
    if let Some(on) = cfg.trust {
        out.push(Action::Netlink(VfSetting::Trust(on)));
    }
    if let Some(state) = cfg.link_state {
        out.push(Action::Netlink(VfSetting::LinkState(state)));
    }
    if cfg.min_tx_rate.is_some() || cfg.max_tx_rate.is_some() {
        out.push(Action::Netlink(VfSetting::Rate {
            min: cfg.min_tx_rate.unwrap_or(live.min_tx_rate),
            max: cfg.max_tx_rate.unwrap_or(live.max_tx_rate),
        }));
    }
    out
}

/// The part of `cfg` that the actions named in `done` put in place.
fn applied_part(cfg: &VfConfig, done: &[&str]) -> VfConfig {
    let has = |name: &str| done.contains(&name);
    let vlan = match &cfg.vlan {
        Some(VlanMode::Trunk { allowed }) if has("vlan") => Some(VlanMode::Trunk {
            allowed: allowed.clone().filter(|_| has("trunk")),
        }),
        other => other.clone().filter(|_| has("vlan")),
    };
    VfConfig {
        vlan,
        mac: cfg.mac.filter(|_| has("mac")),
        spoofchk: cfg.spoofchk.filter(|_| has("spoofchk")),
        trust: cfg.trust.filter(|_| has("trust")),
        link_state: cfg.link_state.filter(|_| has("state")),
        min_tx_rate: cfg.min_tx_rate.filter(|_| has("rate")),
        max_tx_rate: cfg.max_tx_rate.filter(|_| has("rate")),
    }
}

/// The changes that return a VF from `live` to `original` (only differing settings).
fn restore_plan(original: &VfState, live: &VfState) -> Vec<Action> {
    let mut out = Vec::new();
    if (original.vlan, original.qos, original.proto) != (live.vlan, live.qos, live.proto) {
        out.push(Action::Netlink(VfSetting::Vlan {
            vid: original.vlan,
            qos: original.qos,
            proto: original.proto,
        }));
    }
    if let Some(list) = &original.trunk {
        if live.trunk.as_ref() != Some(list) {
            out.push(Action::TrunkList(list.clone()));
        }
    }
    if original.mac != live.mac {
        out.push(Action::Netlink(VfSetting::Mac(original.mac)));
    }
    if let Some(on) = original
        .spoofchk
        .filter(|_| original.spoofchk != live.spoofchk)
    {
        out.push(Action::Netlink(VfSetting::SpoofChk(on)));
    }
    if let Some(on) = original.trust.filter(|_| original.trust != live.trust) {
        out.push(Action::Netlink(VfSetting::Trust(on)));
    }
    if let Some(state) = original
        .link_state
        .filter(|_| original.link_state != live.link_state)
    {
        out.push(Action::Netlink(VfSetting::LinkState(state)));
    }
    if (original.min_tx_rate, original.max_tx_rate) != (live.min_tx_rate, live.max_tx_rate) {
        out.push(Action::Netlink(VfSetting::Rate {
            min: original.min_tx_rate,
            max: original.max_tx_rate,
        }));
    }
    out
}

/// Fields of `original` (those the kernel reported) that `now` does not match.
fn differing_fields(original: &VfState, now: &VfState) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |name, differs: bool| {
        if differs {
            out.push(name);
        }
    };
    check("mac", original.mac != now.mac);
    check("vlan", original.vlan != now.vlan);
    check("qos", original.qos != now.qos);
    check("proto", original.proto != now.proto);
    check(
        "spoofchk",
        original.spoofchk.is_some() && original.spoofchk != now.spoofchk,
    );
    check(
        "trust",
        original.trust.is_some() && original.trust != now.trust,
    );
    check(
        "state",
        original.link_state.is_some() && original.link_state != now.link_state,
    );
    check("min_tx_rate", original.min_tx_rate != now.min_tx_rate);
    check("max_tx_rate", original.max_tx_rate != now.max_tx_rate);
    check(
        "trunk",
        original.trunk.is_some() && original.trunk != now.trunk,
    );
    out
}

fn vlan_text(live: &VfState) -> String {
    if live.vlan == 0 {
        "trunk".into()
    } else {
        format!("access {} qos {} {}", live.vlan, live.qos, live.proto)
    }
}

fn opt_text<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string())
        .unwrap_or_else(|| "unreported".into())
}

fn on_off(v: bool) -> String {
    if v { "on" } else { "off" }.to_string()
}

/// Every setting `cfg` manages, compared with `live`.
fn compare(pf: &str, cfg: &VfConfig, live: &VfState) -> Vec<Drift> {
    let mut out = Vec::new();
    let mut row = |setting, desired: String, live_v: String, in_sync| {
        out.push(Drift {
            pf: pf.to_string(),
            vf: live.vf,
            setting,
            desired,
            live: live_v,
            in_sync,
        })
    };
    match &cfg.vlan {
        Some(VlanMode::Access { vid, qos, proto }) => row(
            "vlan",
            format!("access {vid} qos {qos} {proto}"),
            vlan_text(live),
            (live.vlan, live.qos, live.proto) == (*vid, *qos, *proto),
        ),
        Some(VlanMode::Trunk { allowed }) => {
            row("vlan", "trunk".into(), vlan_text(live), live.vlan == 0);
            if let Some(list) = allowed {
                row(
                    "trunk",
                    list.to_string(),
                    live.trunk
                        .as_ref()
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "no backend".into()),
                    live.trunk.as_ref() == Some(list),
                );
            }
        }
        None => {}
    }
    if let Some(mac) = cfg.mac {
        row(
            "mac",
            mac.to_string(),
            live.mac.to_string(),
            mac == live.mac,
        );
    }
    if let Some(on) = cfg.spoofchk {
        row(
            "spoofchk",
            on_off(on),
            opt_text(live.spoofchk.map(on_off)),
            live.spoofchk == Some(on),
        );
    }
    if let Some(on) = cfg.trust {
        row(
            "trust",
            on_off(on),
            opt_text(live.trust.map(on_off)),
            live.trust == Some(on),
        );
    }
    if let Some(state) = cfg.link_state {
        row(
            "state",
            state.to_string(),
            opt_text(live.link_state),
            live.link_state == Some(state),
        );
    }
    if let Some(min) = cfg.min_tx_rate {
        row(
            "min_tx_rate",
            min.to_string(),
            live.min_tx_rate.to_string(),
            live.min_tx_rate == min,
        );
    }
    if let Some(max) = cfg.max_tx_rate {
        row(
            "max_tx_rate",
            max.to_string(),
            live.max_tx_rate.to_string(),
            live.max_tx_rate == max,
        );
    }
    out
}

/// The part of `cfg` that `live` does not match.
fn out_of_sync(cfg: &VfConfig, live: &VfState) -> VfConfig {
    let mut todo = VfConfig::default();
    for d in compare("", cfg, live).into_iter().filter(|d| !d.in_sync) {
        match d.setting {
            "vlan" | "trunk" => todo.vlan = cfg.vlan.clone(),
            "mac" => todo.mac = cfg.mac,
            "spoofchk" => todo.spoofchk = cfg.spoofchk,
            "trust" => todo.trust = cfg.trust,
            "state" => todo.link_state = cfg.link_state,
            "min_tx_rate" => todo.min_tx_rate = cfg.min_tx_rate,
            "max_tx_rate" => todo.max_tx_rate = cfg.max_tx_rate,
            _ => {}
        }
    }
    todo
}
