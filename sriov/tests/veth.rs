//! Against the real kernel, on a veth (no VFs): requests are well formed (the kernel
//! answers EOPNOTSUPP, not EINVAL) and the error says "no SR-IOV". Needs root
//! (CAP_NET_ADMIN); each test makes its own uniquely named veth and deletes it in Drop.

use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use sriov::journal::Journal;
use sriov::netlink::{NetlinkError, RouteSocket, VfSetting};
use sriov::sysfs::Sysfs;
use sriov::{Host, LinkState, VfConfig, VfError, VlanProto};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A veth pair that exists for the life of the value.
struct Veth {
    name: String,
}

impl Veth {
    fn new() -> Veth {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("vfv{}x{n}", std::process::id());
        let peer = format!("{name}p");
        let st = Command::new("ip")
            .args(["link", "add", &name, "type", "veth", "peer", "name", &peer])
            .status()
            .expect("run ip link add");
        assert!(st.success(), "ip link add {name} failed");
        Veth { name }
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .status();
    }
}

fn is_root() -> bool {
    // /proc/self is owned by the effective uid.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Returns from the test unless it runs as root, saying so on stderr (written past the
/// test harness's capture, so a passing run shows it too).
macro_rules! require_root {
    ($test:literal) => {
        if !is_root() {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED {}: needs root (CAP_NET_ADMIN) to create a veth",
                $test
            );
            return;
        }
    };
}

fn host(state: &std::path::Path) -> Host<RouteSocket> {
    Host::new(
        Sysfs::default(),
        Journal::new(state),
        RouteSocket::open().expect("netlink socket"),
    )
}

#[test]
fn every_setting_is_well_formed_and_reports_no_sriov() {
    require_root!("every_setting_is_well_formed_and_reports_no_sriov");
    let veth = Veth::new();
    let state = tempfile::tempdir().expect("tempdir");
    let mut host = host(state.path());
    let settings = [
        VfSetting::Vlan {
            vid: 10,
            qos: 3,
            proto: VlanProto::Dot1Q,
        },
        VfSetting::Vlan {
            vid: 10,
            qos: 3,
            proto: VlanProto::Dot1Ad,
        },
        VfSetting::Mac("02:00:00:00:00:01".parse().expect("mac")),
        VfSetting::SpoofChk(false),
        VfSetting::Trust(true),
        VfSetting::LinkState(LinkState::Disable),
        VfSetting::Rate { min: 10, max: 100 },
    ];
    for setting in settings {
        let err = host
            .send_unjournaled(&veth.name, 0, &setting)
            .expect_err("a veth has no VFs");
        match &err {
            VfError::Setting {
                errno, setting: s, ..
            } => {
                assert_eq!(*errno, Some(libc::EOPNOTSUPP), "{setting:?}: errno");
                assert_eq!(*s, setting.name());
            }
            other => panic!("{setting:?}: unexpected error {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            format!(
                "pf {0} vf 0: set {1}: no SR-IOV on {0} (virtual interface without a PCI \
                 device): operation not supported",
                veth.name,
                setting.name()
            )
        );
    }
}

#[test]
fn get_link_reads_the_veth_and_finds_no_vfs() {
    require_root!("get_link_reads_the_veth_and_finds_no_vfs");
    let veth = Veth::new();
    let mut sock = RouteSocket::open().expect("netlink socket");
    let link = sock.get_link(&veth.name).expect("get_link");
    let ifindex: u32 = std::fs::read_to_string(format!("/sys/class/net/{}/ifindex", veth.name))
        .expect("ifindex file")
        .trim()
        .parse()
        .expect("ifindex number");
    assert_eq!(link.header.index, ifindex);
    assert!(sriov::netlink::parse_vf_states(&link).is_empty());
    match sock.get_link("vfnonexist0") {
        Err(NetlinkError::NoSuchDevice(n)) => assert_eq!(n, "vfnonexist0"),
        other => panic!("expected NoSuchDevice, got {other:?}"),
    }
}

#[test]
fn set_on_a_veth_is_refused_before_journaling() {
    require_root!("set_on_a_veth_is_refused_before_journaling");
    let veth = Veth::new();
    let state = tempfile::tempdir().expect("tempdir");
    let mut host = host(state.path());
    let cfg = VfConfig {
        trust: Some(true),
        ..VfConfig::default()
    };
    let err = host.set(&veth.name, 0, &cfg).expect_err("no SR-IOV");
    assert_eq!(
        err.to_string(),
        format!(
            "pf {}: no SR-IOV (virtual interface without a PCI device)",
            veth.name
        )
    );
    assert!(!err.is_not_found());
    assert_eq!(
        std::fs::read_dir(state.path()).expect("state dir").count(),
        0,
        "nothing journaled"
    );
    let err = host.set("vfnonexist0", 0, &cfg).expect_err("no such pf");
    assert!(err.is_not_found());
    assert_eq!(err.to_string(), "pf vfnonexist0: no such network interface");
}
