//! vswitchctl commands that need no daemon: doctor and completions.

use std::process::Command;

fn vswitchctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vswitchctl"))
        .args(args)
        .output()
        .expect("run vswitchctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn doctor_reports_a_missing_interface_and_fails() {
    let (code, out, _) = vswitchctl(&["doctor", "vsw-nosuchif0"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines()
            .any(|l| l == "[FAIL] interface vsw-nosuchif0: does not exist"),
        "{out}"
    );
    let last = out.lines().last().expect("summary line");
    assert!(last.ends_with("failed"), "{last}");
    // JSON: one object per check with a boolean verdict.
    let (code, out, _) = vswitchctl(&["doctor", "--json", "vsw-nosuchif0"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let checks = v.as_array().expect("array");
    assert!(checks
        .iter()
        .any(|c| c["check"] == "interface vsw-nosuchif0: does not exist" && c["ok"] == false));
}

#[test]
fn doctor_checks_loopback_queues_and_xdp() {
    let (_, out, _) = vswitchctl(&["doctor", "lo"]);
    assert!(out.contains("interface lo: operstate"), "{out}");
    assert!(
        out.contains("interface lo: no XDP program attached"),
        "{out}"
    );
    assert!(out.contains("kernel: AF_XDP sockets"), "{out}");
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = vswitchctl(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        for sub in ["add-port", "fdb", "trace", "vf"] {
            assert!(out.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    let (code, _, err) = vswitchctl(&["completions", "cmd.exe"]);
    assert_eq!(code, 2, "{err}");
}

/// doctor's MTU check is the AF_XDP maximum (9216; above 3826 frames span several UMEM
/// frames), checked in a namespace of its own with a veth pair.
#[test]
fn doctor_mtu_check_is_the_afxdp_maximum() {
    if !datapath::testutil::root_or_skip("doctor_mtu_check_is_the_afxdp_maximum") {
        return;
    }
    let ns = format!("vswdoc{}", std::process::id());
    let ip = |args: &[&str]| {
        let st = Command::new("ip").args(args).status().expect("run ip");
        assert!(st.success(), "ip {args:?}");
    };
    ip(&["netns", "add", &ns]);
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _del = Del(ns.clone());
    let exec = |args: &[&str]| {
        let mut all = vec!["netns", "exec", &ns];
        all.extend_from_slice(args);
        ip(&all);
    };
    exec(&[
        "ip", "link", "add", "da", "type", "veth", "peer", "name", "db",
    ]);
    exec(&["ip", "link", "set", "da", "mtu", "9216"]);
    exec(&["ip", "link", "set", "db", "mtu", "9217"]);
    let out = Command::new("ip")
        .args(["netns", "exec", &ns, env!("CARGO_BIN_EXE_vswitchctl")])
        .args(["doctor", "da", "db"])
        .output()
        .expect("run vswitchctl doctor");
    let out = String::from_utf8_lossy(&out.stdout);
    let why = "(an AF_XDP port carries at most MTU 9216; above 3826 (3822 when it sends \
               tagged frames) its frames span several 4096-byte UMEM frames (AF_XDP \
               multi-buffer); longer frames are dropped as mtu_exceeded)";
    assert!(
        out.lines()
            .any(|l| l == format!("[ ok ] interface da: MTU 9216 {why}")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l == format!("[FAIL] interface db: MTU 9217 {why}")),
        "{out}"
    );
    // A veth: type auto picks a packet port; its peer (default offloads) would break TCP
    // through an AF_XDP port, and doctor says so with the fix.
    assert!(
        out.lines()
            .any(|l| l
                .starts_with("[ ok ] interface da: `add-port` (type auto) serves it with packet")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l
            == "[ ok ] interface da: its veth peer db sends with TX checksum offload: serve \
                it with a packet port (the default); an AF_XDP port would break TCP unless \
                `ethtool -K db tx off`"),
        "{out}"
    );
    exec(&["ethtool", "-K", "db", "tx", "off"]);
    let out = Command::new("ip")
        .args(["netns", "exec", &ns, env!("CARGO_BIN_EXE_vswitchctl")])
        .args(["doctor", "da"])
        .output()
        .expect("run vswitchctl doctor");
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.lines().any(|l| l
            == "[ ok ] interface da: its veth peer db has TX checksum offload off: AF_XDP \
                or packet ports both carry TCP"),
        "{out}"
    );
}
