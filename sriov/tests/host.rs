//! `Host` operations on a fake sysfs tree and a fake rtnetlink that behaves like a PF
//! driver (applies settings, or refuses the ones it does not implement).

use std::collections::HashMap;
use std::fs;

use sriov::host::Rtnl;
use sriov::journal::Journal;
use sriov::netlink::{NetlinkError, VfSetting};
use sriov::sysfs::{fake, Sysfs};
use sriov::{
    Host, LinkState, MacAddr, VfConfig, VfDesired, VfError, VfState, VlanMode, VlanProto, VlanSet,
};

/// A PF driver in memory.
#[derive(Debug, Default)]
struct FakeDriver {
    pfs: HashMap<String, (u32, Vec<VfState>)>,
    /// setting name -> errno the driver answers.
    refuse: HashMap<&'static str, i32>,
    sent: Vec<(u32, VfSetting)>,
}

fn default_vf(vf: u32) -> VfState {
    VfState {
        vf,
        mac: MacAddr::ZERO,
        vlan: 0,
        qos: 0,
        proto: VlanProto::Dot1Q,
        spoofchk: Some(true),
        trust: Some(false),
        link_state: Some(LinkState::Auto),
        min_tx_rate: 0,
        max_tx_rate: 0,
        trunk: None,
    }
}

impl FakeDriver {
    fn with_pf(mut self, pf: &str, ifindex: u32, vfs: u32) -> Self {
        self.pfs.insert(
            pf.to_string(),
            (ifindex, (0..vfs).map(default_vf).collect()),
        );
        self
    }

    fn vf(&self, pf: &str, vf: u32) -> VfState {
        self.pfs[pf].1[vf as usize].clone()
    }
}

impl Rtnl for FakeDriver {
    fn vf_states(&mut self, pf: &str) -> Result<(u32, Vec<VfState>), NetlinkError> {
        self.pfs
            .get(pf)
            .cloned()
            .ok_or_else(|| NetlinkError::NoSuchDevice(pf.to_string()))
    }

    fn set_vf(&mut self, ifindex: u32, vf: u32, setting: &VfSetting) -> Result<(), NetlinkError> {
        if let Some(&errno) = self.refuse.get(setting.name()) {
            return Err(NetlinkError::Kernel { errno });
        }
        let (_, vfs) =
            self.pfs
                .values_mut()
                .find(|(i, _)| *i == ifindex)
                .ok_or(NetlinkError::Kernel {
                    errno: libc::ENODEV,
                })?;
        let st = vfs.get_mut(vf as usize).ok_or(NetlinkError::Kernel {
            errno: libc::EINVAL,
        })?;
        match *setting {
            VfSetting::Vlan { vid, qos, proto } => {
                st.vlan = vid;
                st.qos = qos;
                st.proto = proto;
            }
            VfSetting::Mac(m) => st.mac = m,
            VfSetting::SpoofChk(on) => st.spoofchk = Some(on),
            VfSetting::Trust(on) => st.trust = Some(on),
            VfSetting::LinkState(s) => st.link_state = Some(s),
            VfSetting::Rate { min, max } => {
                st.min_tx_rate = min;
                st.max_tx_rate = max;
            }
        }
        self.sent.push((vf, *setting));
        Ok(())
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    state: std::path::PathBuf,
    host: Host<FakeDriver>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("sys");
    let state = dir.path().join("state");
    fake::add_nic(&root, "eth0", "0000:01:00.0", "igb", Some(7), 3, false).expect("igb");
    fake::add_nic(&root, "p1", "0000:05:00.0", "mlx5_core", Some(8), 2, true).expect("mlx");
    fake::add_trunk_file(&root, "0000:05:00.0", 0, "Allowed 802.1Q VLANs:\n").expect("trunk");
    let driver = FakeDriver::default()
        .with_pf("eth0", 4, 3)
        .with_pf("p1", 9, 2);
    let host = Host::new(Sysfs::new(&root), Journal::new(&state), driver);
    Fixture {
        _dir: dir,
        root,
        state,
        host,
    }
}

fn access(vid: u16, qos: u8) -> Option<VlanMode> {
    Some(VlanMode::Access {
        vid,
        qos,
        proto: VlanProto::Dot1Q,
    })
}

fn mac(s: &str) -> MacAddr {
    s.parse().expect("mac")
}

#[test]
fn set_journals_original_then_applies_in_order() {
    let mut f = fixture();
    let cfg = VfConfig {
        vlan: access(20, 0),
        mac: Some(mac("02:00:00:00:00:20")),
        spoofchk: Some(false),
        trust: Some(true),
        ..VfConfig::default()
    };
    let done = f.host.set("eth0", 1, &cfg).expect("set");
    assert_eq!(done, vec!["vlan", "mac", "spoofchk", "trust"]);
    let live = f.host.rtnl().vf("eth0", 1);
    assert_eq!(
        (live.vlan, live.mac, live.spoofchk, live.trust),
        (20, mac("02:00:00:00:00:20"), Some(false), Some(true))
    );
    let entry = f
        .host
        .journal()
        .load("eth0", 1)
        .expect("load")
        .expect("journaled");
    assert_eq!(entry.original, default_vf(1));
    assert_eq!(entry.desired, cfg);
    assert_eq!(entry.pf_pci, "0000:01:00.0");
    // On disk as JSON with stable names.
    let text = fs::read_to_string(f.state.join("eth0/vf1.json")).expect("journal file");
    assert!(text.contains("\"original\""), "{text}");
    assert!(text.contains("\"mac\": \"02:00:00:00:00:20\""), "{text}");

    // A second change keeps the original and merges the desired settings.
    let more = VfConfig {
        vlan: access(30, 5),
        ..VfConfig::default()
    };
    f.host.set("eth0", 1, &more).expect("set again");
    let entry = f
        .host
        .journal()
        .load("eth0", 1)
        .expect("load")
        .expect("journaled");
    assert_eq!(entry.original, default_vf(1));
    assert_eq!(entry.desired.vlan, access(30, 5));
    assert_eq!(entry.desired.trust, Some(true));
}

#[test]
fn restore_returns_the_original_exactly_and_drops_the_entry() {
    let mut f = fixture();
    let cfg = VfConfig {
        vlan: access(10, 3),
        mac: Some(mac("02:00:00:00:00:10")),
        trust: Some(true),
        link_state: Some(LinkState::Disable),
        max_tx_rate: Some(500),
        ..VfConfig::default()
    };
    f.host.set("eth0", 0, &cfg).expect("set");
    assert_ne!(f.host.rtnl().vf("eth0", 0), default_vf(0));
    f.host.rtnl().sent.clear();
    let done = f.host.restore("eth0", 0).expect("restore");
    assert_eq!(done, vec!["vlan", "mac", "trust", "state", "rate"]);
    assert_eq!(f.host.rtnl().vf("eth0", 0), default_vf(0));
    assert_eq!(
        f.host.rtnl().sent[0],
        (
            0,
            VfSetting::Vlan {
                vid: 0,
                qos: 0,
                proto: VlanProto::Dot1Q
            }
        )
    );
    assert_eq!(f.host.journal().load("eth0", 0).expect("load"), None);
    let err = f.host.restore("eth0", 0).expect_err("nothing left");
    assert!(err.is_not_found());
    assert!(err
        .to_string()
        .starts_with("pf eth0 vf 0: nothing to restore"));
}

/// VFs 0, 1, 2 of eth0 set to access VLANs 10, 11, 12 (journaled).
fn set_access_on_three_vfs(f: &mut Fixture) {
    for vf in 0..3 {
        let cfg = VfConfig {
            vlan: access(10 + vf as u16, 0),
            ..VfConfig::default()
        };
        f.host.set("eth0", vf, &cfg).expect("set");
    }
}

#[test]
fn restore_all_restores_every_journaled_vf() {
    let mut f = fixture();
    set_access_on_three_vfs(&mut f);
    let results = f.host.restore_all("eth0").expect("restore all");
    assert_eq!(results.len(), 3);
    for (vf, res) in results {
        assert_eq!(res.expect("restored"), vec!["vlan"], "vf {vf}");
        assert_eq!(f.host.rtnl().vf("eth0", vf), default_vf(vf));
    }
    assert!(f
        .host
        .journal()
        .entries("eth0")
        .expect("entries")
        .is_empty());
}

#[test]
fn a_failed_restore_keeps_the_journal() {
    let mut f = fixture();
    let cfg = VfConfig {
        trust: Some(true),
        ..VfConfig::default()
    };
    f.host.set("eth0", 2, &cfg).expect("set");
    f.host.rtnl().refuse.insert("trust", libc::EBUSY);
    let err = f.host.restore("eth0", 2).expect_err("driver busy");
    assert_eq!(
        err.to_string(),
        "pf eth0 vf 2: set trust: driver igb is busy or the link is not ready, try again"
    );
    assert!(f.host.journal().load("eth0", 2).expect("load").is_some());
}

/// Two `ip link set name`: the interfaces `a` and `b` swap names, in sysfs and in the
/// driver (each keeps its PCI address, ifindex and VFs).
fn swap_names(f: &mut Fixture, a: &str, b: &str) {
    let class = f.root.join("class/net");
    let (ta, tb) = (
        fs::read_link(class.join(a)).expect("link a"),
        fs::read_link(class.join(b)).expect("link b"),
    );
    for (name, target) in [(a, tb), (b, ta)] {
        fs::remove_file(class.join(name)).expect("unlink");
        std::os::unix::fs::symlink(target, class.join(name)).expect("symlink");
    }
    let pfs = &mut f.host.rtnl().pfs;
    let (da, db) = (pfs.remove(a).expect("a"), pfs.remove(b).expect("b"));
    pfs.insert(a.to_string(), db);
    pfs.insert(b.to_string(), da);
}

/// Results of `restore_all` with errors as their messages.
fn outcomes(
    results: Vec<(u32, Result<Vec<&'static str>, VfError>)>,
) -> Vec<(u32, Result<Vec<&'static str>, String>)> {
    results
        .into_iter()
        .map(|(vf, r)| (vf, r.map_err(|e| e.to_string())))
        .collect()
}

#[test]
fn an_entry_recorded_for_another_pci_device_is_not_used() {
    let mut f = fixture();
    let cfg = VfConfig {
        vlan: access(10, 3),
        ..VfConfig::default()
    };
    f.host.set("eth0", 1, &cfg).expect("set");
    // eth0 (igb, 0000:01:00.0) and p1 (mlx5, 0000:05:00.0) swap names: the journal's
    // eth0 entries are now about p1, and eth0 is a device they must not touch.
    swap_names(&mut f, "eth0", "p1");
    f.host.rtnl().sent.clear();
    let refused = "pf eth0 vf 1: journal entry was recorded for the PF at PCI 0000:01:00.0, \
                   but eth0 is now the device at PCI 0000:05:00.0 (interface renamed?); \
                   not using it";
    let err = f.host.restore("eth0", 1).expect_err("another device");
    assert!(matches!(err, VfError::PciMismatch { .. }), "{err:?}");
    assert_eq!(err.to_string(), refused);
    assert_eq!(
        outcomes(f.host.restore_all("eth0").expect("restore all")),
        vec![(1, Err(refused.to_string()))]
    );
    // A change through the stale entry is refused as well (its original is not this
    // device's).
    let err = f.host.set("eth0", 1, &cfg).expect_err("another device");
    assert_eq!(err.to_string(), refused);
    assert!(f.host.rtnl().sent.is_empty(), "{:?}", f.host.rtnl().sent);
    assert_eq!(f.host.rtnl().vf("eth0", 1), default_vf(1));
    assert_eq!(
        f.host.rtnl().vf("p1", 1).vlan,
        10,
        "the igb VF is untouched"
    );
    let entry = f
        .host
        .journal()
        .load("eth0", 1)
        .expect("load")
        .expect("kept");
    assert_eq!(entry.pf_pci, "0000:01:00.0");

    // Named back, the entry restores its own device.
    swap_names(&mut f, "eth0", "p1");
    assert_eq!(f.host.restore("eth0", 1).expect("restore"), vec!["vlan"]);
    assert_eq!(f.host.rtnl().vf("eth0", 1), default_vf(1));
    assert_eq!(f.host.journal().load("eth0", 1).expect("load"), None);
}

#[test]
fn restore_all_reports_a_corrupt_entry_and_restores_the_others() {
    let mut f = fixture();
    set_access_on_three_vfs(&mut f);
    let corrupt = f.state.join("eth0/vf1.json");
    fs::write(&corrupt, b"{not json").expect("corrupt");
    assert_eq!(
        outcomes(f.host.restore_all("eth0").expect("restore all")),
        vec![
            (0, Ok(vec!["vlan"])),
            (
                1,
                Err(format!(
                    "journal {}: corrupt entry: key must be a string at line 1 column 2",
                    corrupt.display()
                ))
            ),
            (2, Ok(vec!["vlan"])),
        ]
    );
    assert_eq!(f.host.rtnl().vf("eth0", 0), default_vf(0));
    assert_eq!(f.host.rtnl().vf("eth0", 1).vlan, 11, "left as it is");
    assert_eq!(f.host.rtnl().vf("eth0", 2), default_vf(2));
    // The corrupt entry stays for inspection and still marks its VF as journaled.
    assert_eq!(fs::read(&corrupt).expect("kept"), b"{not json");
    let view = f.host.show("eth0").expect("show");
    assert_eq!(
        view.vfs.iter().map(|v| v.journaled).collect::<Vec<_>>(),
        vec![false, true, false]
    );
}

#[test]
fn driver_errors_name_pf_vf_setting_and_driver() {
    let mut f = fixture();
    f.host.rtnl().refuse.insert("state", libc::EOPNOTSUPP);
    f.host.rtnl().refuse.insert("vlan", libc::EPROTONOSUPPORT);
    let err = f
        .host
        .set(
            "eth0",
            1,
            &VfConfig {
                link_state: Some(LinkState::Enable),
                ..VfConfig::default()
            },
        )
        .expect_err("igb has no link state");
    assert_eq!(
        err.to_string(),
        "pf eth0 vf 1: set state: operation not supported by driver igb"
    );
    // The original was journaled before the attempt; the refused setting is not desired.
    let entry = f
        .host
        .journal()
        .load("eth0", 1)
        .expect("load")
        .expect("journaled");
    assert_eq!(entry.original, default_vf(1));
    assert_eq!(entry.desired, VfConfig::default());
    let err = f
        .host
        .set(
            "eth0",
            1,
            &VfConfig {
                vlan: Some(VlanMode::Access {
                    vid: 10,
                    qos: 0,
                    proto: VlanProto::Dot1Ad,
                }),
                ..VfConfig::default()
            },
        )
        .expect_err("igb has no 802.1ad");
    assert_eq!(
        err.to_string(),
        "pf eth0 vf 1: set vlan: VLAN protocol not supported by driver igb"
    );
    // A partly refused request records what did take effect.
    let err = f
        .host
        .set(
            "eth0",
            1,
            &VfConfig {
                trust: Some(true),
                link_state: Some(LinkState::Disable),
                ..VfConfig::default()
            },
        )
        .expect_err("state refused");
    assert!(err.to_string().starts_with("pf eth0 vf 1: set state: "));
    let entry = f
        .host
        .journal()
        .load("eth0", 1)
        .expect("load")
        .expect("journaled");
    assert_eq!(
        entry.desired,
        VfConfig {
            trust: Some(true),
            ..VfConfig::default()
        }
    );
    assert_eq!(f.host.rtnl().vf("eth0", 1).trust, Some(true));
}

#[test]
fn invalid_requests_and_missing_vfs_change_nothing() {
    let mut f = fixture();
    let bad = VfConfig {
        vlan: Some(VlanMode::Access {
            vid: 4095,
            qos: 0,
            proto: VlanProto::Dot1Q,
        }),
        ..VfConfig::default()
    };
    let err = f.host.set("eth0", 0, &bad).expect_err("invalid");
    assert!(matches!(err, VfError::Invalid { .. }));
    assert_eq!(
        err.to_string(),
        "pf eth0 vf 0: access VLAN 4095 out of range (1-4094; use trunk for no VLAN)"
    );
    let ok = VfConfig {
        trust: Some(true),
        ..VfConfig::default()
    };
    let err = f.host.set("eth0", 3, &ok).expect_err("no vf 3");
    assert!(err.is_not_found());
    assert_eq!(err.to_string(), "pf eth0 vf 3: no such VF (eth0 has 3 VFs)");
    let err = f.host.set("nope", 0, &ok).expect_err("no pf");
    assert!(err.is_not_found());
    assert!(f.host.rtnl().sent.is_empty());
    assert!(!f.state.exists(), "nothing journaled");
}

#[test]
fn trunk_allow_list_needs_a_backend() {
    let mut f = fixture();
    let cfg = VfConfig {
        vlan: Some(VlanMode::Trunk {
            allowed: Some("10-20".parse().expect("list")),
        }),
        ..VfConfig::default()
    };
    let err = f
        .host
        .set("eth0", 0, &cfg)
        .expect_err("igb has no trunk file");
    assert_eq!(
        err.to_string(),
        "pf eth0 vf 0: set trunk allow-list 10-20: driver igb has no trunk backend \
         (no device/sriov/0/trunk); refusing to leave the VF unfiltered"
    );
    assert!(f.host.rtnl().sent.is_empty());
    assert!(!f.state.exists());

    // Plain trunk (no list) works everywhere: it is vlan 0.
    let plain = VfConfig {
        vlan: Some(VlanMode::Trunk { allowed: None }),
        ..VfConfig::default()
    };
    assert_eq!(f.host.set("eth0", 0, &plain).expect("trunk"), vec!["vlan"]);

    // mlx5 VF 0 has a trunk file: vlan 0, then the allow-list lines.
    let done = f.host.set("p1", 0, &cfg).expect("mlx trunk");
    assert_eq!(done, vec!["vlan", "trunk"]);
    let trunk_file = f.root.join("devices/pci0000:00/0000:05:00.0/sriov/0/trunk");
    assert_eq!(fs::read_to_string(&trunk_file).expect("trunk"), "add 10 20");
    // The driver shows the list; diff then reads it back as in sync.
    fs::write(
        &trunk_file,
        "Allowed 802.1Q VLANs: 10 11 12 13 14 15 16 17 18 19 20\n",
    )
    .expect("driver view");
    let rows = f.host.diff("p1").expect("diff");
    let trunk_row = rows
        .iter()
        .find(|r| r.setting == "trunk")
        .expect("trunk row");
    assert_eq!(
        (
            trunk_row.desired.as_str(),
            trunk_row.live.as_str(),
            trunk_row.in_sync
        ),
        ("10-20", "10-20", true)
    );
}

#[test]
fn min_rate_alone_keeps_the_live_max() {
    let mut f = fixture();
    f.host
        .set(
            "eth0",
            0,
            &VfConfig {
                max_tx_rate: Some(300),
                ..VfConfig::default()
            },
        )
        .expect("max");
    f.host
        .set(
            "eth0",
            0,
            &VfConfig {
                min_tx_rate: Some(50),
                ..VfConfig::default()
            },
        )
        .expect("min");
    assert_eq!(
        f.host.rtnl().sent.last(),
        Some(&(0, VfSetting::Rate { min: 50, max: 300 }))
    );
}

#[test]
fn drift_and_apply_change_only_what_drifted() {
    let mut f = fixture();
    let desired = vec![
        VfDesired {
            pf: "eth0".into(),
            vf: 0,
            config: VfConfig {
                vlan: access(10, 3),
                spoofchk: Some(true),
                ..VfConfig::default()
            },
        },
        VfDesired {
            pf: "eth0".into(),
            vf: 1,
            config: VfConfig {
                trust: Some(true),
                ..VfConfig::default()
            },
        },
        VfDesired {
            pf: "eth0".into(),
            vf: 5,
            config: VfConfig {
                trust: Some(true),
                ..VfConfig::default()
            },
        },
    ];
    let drift = f.host.drift(&desired).expect("drift");
    let summary: Vec<(u32, &str, &str, &str)> = drift
        .iter()
        .map(|d| (d.vf, d.setting, d.desired.as_str(), d.live.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, "vlan", "access 10 qos 3 802.1Q", "trunk"),
            (1, "trust", "on", "off"),
            (5, "vf", "present", "missing"),
        ]
    );
    let report = f.host.apply(&desired);
    assert!(!report.is_ok());
    assert_eq!(report.vfs[0].changed, vec!["vlan"], "spoofchk was in sync");
    assert_eq!(report.vfs[1].changed, vec!["trust"]);
    assert_eq!(
        report.vfs[2].error.as_deref(),
        Some("pf eth0 vf 5: no such VF (eth0 has 3 VFs)")
    );
    let drift = f.host.drift(&desired[..2]).expect("drift");
    assert!(drift.is_empty(), "{drift:?}");
    // In sync: apply sends nothing and journals nothing new.
    f.host.rtnl().sent.clear();
    let report = f.host.apply(&desired[..2]);
    assert!(report.is_ok());
    assert!(f.host.rtnl().sent.is_empty());
    // Journaled, so restore works after apply.
    f.host.restore("eth0", 0).expect("restore");
    assert_eq!(f.host.rtnl().vf("eth0", 0), default_vf(0));
}

#[test]
fn diff_shows_desired_against_live() {
    let mut f = fixture();
    f.host
        .set(
            "eth0",
            2,
            &VfConfig {
                vlan: Some(VlanMode::Trunk { allowed: None }),
                mac: Some(mac("02:00:00:00:00:02")),
                ..VfConfig::default()
            },
        )
        .expect("set");
    // Somebody else changes the MAC behind our back.
    f.host
        .rtnl()
        .set_vf(4, 2, &VfSetting::Mac(mac("02:00:00:00:00:99")))
        .expect("side change");
    let rows = f.host.diff("eth0").expect("diff");
    let rows: Vec<(u32, &str, &str, &str, bool)> = rows
        .iter()
        .map(|d| {
            (
                d.vf,
                d.setting,
                d.desired.as_str(),
                d.live.as_str(),
                d.in_sync,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (2, "vlan", "trunk", "trunk", true),
            (2, "mac", "02:00:00:00:00:02", "02:00:00:00:00:99", false),
        ]
    );
}

#[test]
fn numvfs_change_drops_journal_of_destroyed_vfs() {
    let mut f = fixture();
    f.host
        .set(
            "eth0",
            1,
            &VfConfig {
                trust: Some(true),
                ..VfConfig::default()
            },
        )
        .expect("set");
    let change = f.host.set_num_vfs("eth0", 5).expect("numvfs");
    assert_eq!((change.previous, change.num_vfs), (3, 5));
    assert_eq!(change.journal_dropped, vec![1]);
    assert!(f
        .host
        .journal()
        .entries("eth0")
        .expect("entries")
        .is_empty());
    let same = f.host.set_num_vfs("eth0", 5).expect("same");
    assert!(same.journal_dropped.is_empty());
    assert_eq!(same.previous, 5);
}

#[test]
fn show_merges_sysfs_and_netlink() {
    let mut f = fixture();
    f.host
        .set(
            "p1",
            1,
            &VfConfig {
                spoofchk: Some(false),
                ..VfConfig::default()
            },
        )
        .expect("set");
    let view = f.host.show("p1").expect("show");
    assert_eq!(view.driver.as_deref(), Some("mlx5_core"));
    assert_eq!((view.num_vfs, view.total_vfs), (2, 8));
    assert_eq!(view.vfs.len(), 2);
    assert_eq!(view.vfs[1].pci, "0000:05:10.1");
    assert_eq!(view.vfs[1].netdevs, vec!["p1v1"]);
    assert!(view.vfs[1].journaled);
    assert!(!view.vfs[0].journaled);
    assert_eq!(view.vfs[0].state.trunk, Some(VlanSet::default()));
    assert_eq!(view.vfs[1].state.trunk, None);
    let json = serde_json::to_value(&view).expect("json");
    assert_eq!(json["vfs"][1]["spoofchk"], false);
    assert_eq!(json["vfs"][1]["vf"], 1);
    assert_eq!(json["vfs"][1]["vlan"], 0);
    assert_eq!(json["vfs"][1]["proto"], "802.1Q");
    assert_eq!(json["vfs"][1]["link_state"], "auto");
    let pfs = f.host.list().expect("list");
    assert_eq!(
        pfs.iter().map(|p| p.pf.as_str()).collect::<Vec<_>>(),
        vec!["eth0", "p1"]
    );
}
