//! vswitch-cni with `deviceID` (an SR-IOV VF), run in-process against a fake sysfs tree
//! and a fake PF driver (no SR-IOV hardware here): the "VF netdev" is a real veth end the
//! tree names as VF 0's netdev, so moving it into the pod and back, its MAC, MTU and
//! state, the addresses, and the VF settings journaled and restored are all real. The
//! settings' wire format against a real PF driver (igb under QEMU) is sriov's own test.
//! Root only (namespaces, veth).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use ctl::cni::env::{Command as CniCommand, Env};
use ctl::cni::vf::DynRtnl;
use ctl::cni::{run, Node};
use datapath::testutil::Netns;
use serde_json::{json, Value};
use sriov::host::Rtnl;
use sriov::netlink::{NetlinkError, VfSetting};
use sriov::sysfs::fake;
use sriov::{LinkState, MacAddr, VfState, VlanProto};

fn root() -> bool {
    let uid = Command::new("id").arg("-u").output().ok().map(|o| o.stdout);
    if uid.as_deref().map(<[u8]>::trim_ascii) == Some(b"0".as_slice()) {
        return true;
    }
    eprintln!("SKIPPED cni_vf: needs root (network namespaces, veth)");
    false
}

fn ip(args: &[&str]) -> String {
    let o = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        o.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ip_json(args: &[&str]) -> Value {
    let mut all = vec!["-j"];
    all.extend_from_slice(args);
    serde_json::from_str(&ip(&all)).expect("ip -j output")
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

/// PF name -> (ifindex, its VFs).
type Pfs = HashMap<String, (u32, Vec<VfState>)>;

/// A PF driver in memory, shared between the plugin and the test.
#[derive(Debug, Clone)]
struct FakePf(Arc<Mutex<Pfs>>);

impl FakePf {
    fn vf(&self, pf: &str, vf: usize) -> VfState {
        self.0.lock().expect("lock")[pf].1[vf].clone()
    }
    fn set_vlan(&self, pf: &str, vf: usize, vlan: u16) {
        self.0.lock().expect("lock").get_mut(pf).expect("pf").1[vf].vlan = vlan;
    }
}

impl Rtnl for FakePf {
    fn vf_states(&mut self, pf: &str) -> Result<(u32, Vec<VfState>), NetlinkError> {
        self.0
            .lock()
            .expect("lock")
            .get(pf)
            .cloned()
            .ok_or_else(|| NetlinkError::NoSuchDevice(pf.to_string()))
    }

    fn set_vf(&mut self, ifindex: u32, vf: u32, setting: &VfSetting) -> Result<(), NetlinkError> {
        let mut m = self.0.lock().expect("lock");
        let (_, vfs) = m
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
        Ok(())
    }
}

/// Removes the veth (if it is in this namespace) and the temporary tree on drop.
struct Cleanup {
    veth: String,
    dir: tempfile::TempDir,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .output();
        let _ = &self.dir;
    }
}

fn env(command: CniCommand, cid: &str, netns: &str) -> Env {
    Env {
        command,
        container_id: cid.to_string(),
        netns: netns.to_string(),
        ifname: "net1".to_string(),
        args: vec![],
        path: vec![PathBuf::from("/usr/lib/cni")],
    }
}

#[test]
fn vf_moves_into_the_pod_with_its_settings_and_comes_back_exactly() {
    if !root() {
        return;
    }
    assert!(
        std::path::Path::new("/usr/lib/cni/static").exists(),
        "/usr/lib/cni/static missing: install containernetworking-plugins (scripts/setup.sh)"
    );
    let pf = format!("vf{}", std::process::id() % 100_000);
    let vf_dev = format!("{pf}v0");
    let peer = format!("{pf}p0");
    let dir = tempfile::tempdir().expect("tempdir");
    let sysroot = dir.path().join("sys");
    fake::add_nic(&sysroot, &pf, "0000:3b:00.0", "igb", Some(7), 2, true).expect("fake PF");
    ip(&[
        "link", "add", &vf_dev, "type", "veth", "peer", "name", &peer,
    ]);
    let _cleanup = Cleanup {
        veth: vf_dev.clone(),
        dir,
    };
    ip(&[
        "link",
        "set",
        &vf_dev,
        "address",
        "02:00:00:ee:00:01",
        "mtu",
        "1500",
        "up",
    ]);
    let ns = Netns::new("cvf");
    let driver = FakePf(Arc::new(Mutex::new(HashMap::from([(
        pf.clone(),
        (77, vec![default_vf(0), default_vf(1)]),
    )]))));
    let handle = driver.clone();
    let node = Node {
        default_socket: PathBuf::from("/nonexistent.sock"),
        sysfs_root: sysroot,
        vf_rtnl: Box::new(move || Ok(DynRtnl(Box::new(handle.clone())))),
    };
    let state = _cleanup.dir.path().join("state");
    let journal = _cleanup.dir.path().join("journal");
    let conf = json!({
        "cniVersion": "1.1.0",
        "name": "sriov-net",
        "type": "vswitch-cni",
        "deviceID": "0000:3b:10.0",
        "vlan": 10,
        "spoofchk": "off",
        "trust": "on",
        "mac": "02:00:00:ee:00:99",
        "mtu": 1400,
        "stateDir": state,
        "sriovStateDir": journal,
        "ipam": {"type": "static", "addresses": [{"address": "10.232.0.5/24"}]},
    });
    let text = conf.to_string();
    let cid = "vfpod0123456789";
    let netns = ns.path();

    let out = run(&env(CniCommand::Add, cid, &netns), &node, text.as_bytes())
        .expect("ADD")
        .expect("a result");
    let r: Value = serde_json::from_str(&out).expect("result JSON");
    assert_eq!(
        r,
        json!({"cniVersion": "1.1.0",
               "interfaces": [{"name": "net1", "mac": "02:00:00:ee:00:99", "mtu": 1400,
                               "sandbox": netns, "pciID": "0000:3b:10.0"}],
               "ips": [{"address": "10.232.0.5/24", "interface": 0}],
               "dns": {}})
    );
    // The netdev left the host and is the pod's net1, configured.
    assert!(!Command::new("ip")
        .args(["link", "show", "dev", &vf_dev])
        .output()
        .expect("ip")
        .status
        .success());
    let l = ip_json(&["-n", ns.name(), "addr", "show", "dev", "net1"]);
    assert_eq!(l[0]["address"], "02:00:00:ee:00:99");
    assert_eq!(l[0]["mtu"], 1400);
    assert!(l[0]["flags"]
        .as_array()
        .expect("flags")
        .contains(&json!("UP")));
    assert!(l[0]["addr_info"]
        .as_array()
        .expect("addrs")
        .iter()
        .any(|a| a["local"] == "10.232.0.5" && a["prefixlen"] == 24));
    // The VF's settings, journaled first.
    let st = driver.vf(&pf, 0);
    assert_eq!(
        (st.vlan, st.spoofchk, st.trust, st.mac.to_string()),
        (10, Some(false), Some(true), "02:00:00:ee:00:99".to_string())
    );
    assert_eq!(driver.vf(&pf, 1), default_vf(1), "VF 1 untouched");
    assert!(journal.join(&pf).join("vf0.json").exists());

    // CHECK: passes; fails when the VF's VLAN drifted.
    let mut check = conf.clone();
    check["prevResult"] = r.clone();
    let check_text = check.to_string();
    run(
        &env(CniCommand::Check, cid, &netns),
        &node,
        check_text.as_bytes(),
    )
    .expect("CHECK");
    driver.set_vlan(&pf, 0, 20);
    let e = run(
        &env(CniCommand::Check, cid, &netns),
        &node,
        check_text.as_bytes(),
    )
    .expect_err("CHECK after drift");
    assert_eq!(e.code.number(), 999);
    assert!(
        e.msg.starts_with(&format!("pf {pf} vf 0: vlan is ")),
        "{}",
        e.msg
    );
    driver.set_vlan(&pf, 0, 10);

    // DEL: the netdev is back with its name, MAC, MTU and state; the VF as it was.
    assert_eq!(
        run(&env(CniCommand::Del, cid, &netns), &node, text.as_bytes()).expect("DEL"),
        None
    );
    let h = ip_json(&["link", "show", "dev", &vf_dev]);
    assert_eq!(h[0]["address"], "02:00:00:ee:00:01");
    assert_eq!(h[0]["mtu"], 1500);
    assert!(h[0]["flags"]
        .as_array()
        .expect("flags")
        .contains(&json!("UP")));
    assert!(!Command::new("ip")
        .args(["-n", ns.name(), "link", "show", "dev", "net1"])
        .output()
        .expect("ip")
        .status
        .success());
    assert_eq!(driver.vf(&pf, 0), default_vf(0));
    assert!(!journal.join(&pf).join("vf0.json").exists());
    assert!(!state
        .join("sriov-net")
        .join(format!("{cid}-net1.json"))
        .exists());
    run(&env(CniCommand::Del, cid, &netns), &node, text.as_bytes()).expect("DEL again");

    // A pod interface of the same name that ADD did not move is never taken.
    ip(&[
        "-n",
        ns.name(),
        "link",
        "add",
        "net1",
        "type",
        "veth",
        "peer",
        "name",
        "other",
    ]);
    let e = run(&env(CniCommand::Add, cid, &netns), &node, text.as_bytes())
        .expect_err("ADD over an existing net1");
    assert_eq!(e.msg, format!("interface net1 already exists in {netns}"));
    assert!(Command::new("ip")
        .args(["-n", ns.name(), "link", "show", "dev", "net1"])
        .output()
        .expect("ip")
        .status
        .success());
    assert_eq!(
        driver.vf(&pf, 0),
        default_vf(0),
        "VF untouched by the failed ADD"
    );
    let h = ip_json(&["link", "show", "dev", &vf_dev]);
    assert_eq!(h[0]["address"], "02:00:00:ee:00:01");

    // An unknown deviceID is an invalid configuration.
    let mut bad = conf.clone();
    bad["deviceID"] = json!("0000:3b:1f.7");
    let e = run(
        &env(CniCommand::Add, cid, &netns),
        &node,
        bad.to_string().as_bytes(),
    )
    .expect_err("unknown VF");
    assert_eq!(e.code.number(), 7);
    assert_eq!(
        e.msg,
        "deviceID 0000:3b:1f.7: not a VF of any SR-IOV PF on this host"
    );
}
