//! `vswitchctl vf ...` as a user runs it: exit codes (0 ok, 1 failed, 2 usage, 3 not
//! found), one-line errors, JSON field names.

use std::process::{Command, Output};

use sriov::sysfs::fake;

fn vswitchctl(args: &[&str], sysfs_root: Option<&std::path::Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vswitchctl"));
    cmd.args(args);
    match sysfs_root {
        Some(root) => cmd.env("VSWITCH_SYSFS_ROOT", root),
        None => cmd.env_remove("VSWITCH_SYSFS_ROOT"),
    };
    cmd.output().expect("run vswitchctl")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fake_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    fake::add_nic(
        dir.path(),
        "fakepf0",
        "0000:01:00.0",
        "igb",
        Some(7),
        3,
        false,
    )
    .expect("igb");
    fake::add_nic(
        dir.path(),
        "fakepf1",
        "0000:02:00.0",
        "mlx5_core",
        Some(8),
        1,
        true,
    )
    .expect("mlx");
    fake::add_trunk_file(dir.path(), "0000:02:00.0", 0, "").expect("trunk");
    dir
}

#[test]
fn usage_errors_exit_2() {
    let cases: &[&[&str]] = &[
        &["vf"],
        &["vf", "set", "eth0"],
        &["vf", "set", "eth0", "0", "--access", "10", "--trunk"],
        &["vf", "set", "eth0", "0", "--spoofchk", "maybe"],
        &["vf", "set", "eth0", "0", "--mac", "02:00:00:00:00"],
        &[
            "vf", "set", "eth0", "0", "--proto", "802.1x", "--access", "5",
        ],
        &["vf", "restore", "eth0"],
        &["vf", "numvfs", "eth0", "-1"],
    ];
    for args in cases {
        let o = vswitchctl(args, None);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn invalid_values_exit_2_with_one_clear_line() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["vf", "set", "eth0", "0", "--access", "4095"],
            "vswitchctl: pf eth0 vf 0: access VLAN 4095 out of range (1-4094; use trunk for no VLAN)\n",
        ),
        (
            &["vf", "set", "eth0", "1", "--qos", "3"],
            "vswitchctl: pf eth0 vf 1: qos needs an access VLAN\n",
        ),
        (
            &["vf", "set", "eth0", "1", "--access", "10", "--qos", "8"],
            "vswitchctl: pf eth0 vf 1: qos 8 out of range (0-7)\n",
        ),
        (
            &["vf", "set", "eth0", "1", "--trunk", "--proto", "802.1ad"],
            "vswitchctl: pf eth0 vf 1: VLAN protocol 802.1ad needs an access VLAN\n",
        ),
        (
            &["vf", "set", "eth0", "1", "--mac", "01:00:5e:00:00:01"],
            "vswitchctl: pf eth0 vf 1: MAC 01:00:5e:00:00:01 is multicast (a VF needs a unicast MAC)\n",
        ),
        (
            &["vf", "set", "eth0", "1", "--mac", "00:00:00:00:00:00"],
            "vswitchctl: pf eth0 vf 1: MAC 00:00:00:00:00:00 is not a usable VF MAC\n",
        ),
    ];
    for (args, want) in cases {
        let o = vswitchctl(args, None);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert_eq!(stderr(&o), *want, "{args:?}");
    }
}

#[test]
fn unknown_interface_exits_3() {
    let o = vswitchctl(&["vf", "show", "nosuchpf0"], None);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        stderr(&o),
        "vswitchctl: pf nosuchpf0: no such network interface\n"
    );
    let o = vswitchctl(&["vf", "caps", "nosuchpf0", "--json"], None);
    assert_eq!(o.status.code(), Some(3));
}

#[test]
fn restore_without_journal_exits_3() {
    let tree = fake_tree();
    let state = tempfile::tempdir().expect("state");
    let state_dir = state.path().to_str().expect("utf-8 path");
    let o = vswitchctl(
        &["vf", "restore", "fakepf0", "1", "--state-dir", state_dir],
        Some(tree.path()),
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "vswitchctl: pf fakepf0 vf 1: nothing to restore (no journal entry in {state_dir})\n"
        )
    );
    let o = vswitchctl(
        &[
            "vf",
            "restore",
            "fakepf0",
            "--all",
            "--state-dir",
            state_dir,
        ],
        Some(tree.path()),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "pf fakepf0: nothing to restore\n"
    );
}

#[test]
fn caps_json_has_stable_fields() {
    let tree = fake_tree();
    let o = vswitchctl(&["vf", "caps", "fakepf0", "--json"], Some(tree.path()));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["pf"], "fakepf0");
    assert_eq!(v["driver"], "igb");
    assert_eq!(v["total_vfs"], 7);
    assert_eq!(v["num_vfs"], 3);
    assert_eq!(v["driver_known"], true);
    assert_eq!(v["settings"]["trust"], "yes");
    assert_eq!(v["settings"]["link_state"], "no");
    assert_eq!(v["trunk"]["allow_list"], "none");

    let o = vswitchctl(&["vf", "caps", "fakepf1", "--json"], Some(tree.path()));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["trunk"]["allow_list"], "vendor-sysfs");
    assert_eq!(v["trunk"]["allow_list_format"], "start-end");
    assert_eq!(v["trunk"]["vfs_with_trunk_file"], serde_json::json!([0]));

    let o = vswitchctl(&["vf", "caps", "fakepf0"], Some(tree.path()));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.starts_with("pf fakepf0 driver igb vfs 3/7\n"),
        "{text}"
    );
    assert!(text.contains("  state           no\n"), "{text}");
    assert!(
        text.contains("  trunk allow-list none (no device/sriov/N/trunk)\n"),
        "{text}"
    );
}

#[test]
fn numvfs_beyond_total_fails_with_exit_1() {
    let tree = fake_tree();
    let state = tempfile::tempdir().expect("state");
    let o = vswitchctl(
        &[
            "vf",
            "numvfs",
            "fakepf0",
            "9",
            "--state-dir",
            state.path().to_str().expect("utf-8"),
        ],
        Some(tree.path()),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "vswitchctl: pf fakepf0: cannot create 9 VFs, the device supports at most 7\n"
    );
}

#[test]
fn a_pf_without_sriov_exits_1() {
    // `lo` exists everywhere and has no PCI device.
    let o = vswitchctl(&["vf", "show", "lo", "--json"], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "vswitchctl: pf lo: no SR-IOV (virtual interface without a PCI device)\n"
    );
    assert!(o.stdout.is_empty());
}
