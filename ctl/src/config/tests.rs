//! Configuration: parsing, rejection with line and reason, atomic persistence.

use super::*;

fn parse(text: &str) -> Result<Config, ConfigFileError> {
    Config::parse(text, Path::new("test.toml"))
}

/// The line and the reason of a file the parser or the validation refused.
fn line_and_reason(e: &ConfigFileError) -> Option<(usize, String)> {
    match e {
        ConfigFileError::Parse { line, reason, .. } => Some((*line, reason.clone())),
        ConfigFileError::Invalid { line, problem, .. } => Some((*line, problem.to_string())),
        _ => None,
    }
}

const GOOD: &str = r#"
[datapath]
workers = 1
burst = 32

[fdb]
aging_secs = 120

[metrics]
listen = "127.0.0.1:9464"

[[bridge]]
name = "br0"

[[bridge.port]]
name = "vm1"
type = "afxdp"
interface = "veth-vm1"
access = 100

[[bridge.port]]
name = "uplink"
type = "tap"
trunk = "100,200"
native = 5
native_tagged = true
mtu = 9000

[[bridge.static_mac]]
vlan = 100
mac = "02:00:00:00:00:01"
port = "vm1"
"#;

#[test]
fn good_config_parses_into_datapath_types() {
    let c = parse(GOOD).expect("valid");
    assert_eq!(c.fdb.aging_secs, 120);
    assert_eq!(c.fdb.capacity, 65536, "default");
    let b = c.bridge("br0").expect("bridge");
    assert_eq!(b.ports[0].interface(), "veth-vm1");
    assert_eq!(b.ports[0].vlan().expect("vlan").to_string(), "access 100");
    assert_eq!(
        b.ports[1].vlan().expect("vlan").to_string(),
        "trunk 100,200 native 5 tagged"
    );
    assert_eq!(b.ports[1].port_config().expect("cfg").mtu, 9000);
    assert_eq!(b.ports[1].interface(), "uplink");
}

#[test]
fn save_then_load_is_identical_and_atomic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sub/vswitchd.toml");
    let c = parse(GOOD).expect("valid");
    c.save(&path).expect("save");
    let back = Config::load(&path, false).expect("load");
    assert_eq!(back, c);
    // No temporary files left behind.
    let names: Vec<_> = fs::read_dir(path.parent().expect("dir"))
        .expect("readdir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("vswitchd.toml")]);
}

#[test]
fn errors_name_the_line_and_reason() {
    let cases = [
        ("[datapath]\nworkerz = 2\n", 2, "unknown field `workerz`"),
        ("[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"p\"\ntype = \"bogus\"\n", 5, "unknown variant `bogus`"),
        ("[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"p1\"\ntype = \"tap\"\naccess = 4095\n", 4, "port p1: access: VLAN 4095 is reserved by 802.1Q; use 1-4094"),
        ("[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"p1\"\ntype = \"tap\"\naccess = 5\ntrunk = \"1\"\n", 4, "port p1: set either access or trunk, not both"),
        ("[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"p1\"\ntype = \"tap\"\ntrunk = \"10-5\"\n", 4, "port p1: trunk: invalid VLAN list '10-5': range 10-5 is descending"),
        ("[metrics]\nlisten = \"0.0.0.0:9464\"\n", 2, "metrics.listen: 0.0.0.0:9464 is not a loopback address (metrics are served on loopback only)"),
        ("[[bridge]]\nname = \"br0\"\n[[bridge]]\nname = \"br0\"\n", 2, "bridge br0: defined twice"),
    ];
    for (text, line, reason) in cases {
        match parse(text).as_ref().map_err(line_and_reason) {
            Err(Some((l, r))) => {
                assert!(
                    r.contains(reason),
                    "{text:?}: reason {r:?} lacks {reason:?}"
                );
                assert_eq!(l, line, "{text:?}: {r}");
            }
            other => panic!("{text:?}: expected a parse error, got {other:?}"),
        }
    }
}

#[test]
fn static_mac_must_be_unicast_and_on_a_member_port() {
    let base =
        "[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"p1\"\ntype = \"tap\"\naccess = 10\n";
    let bad_vlan = format!(
        "{base}[[bridge.static_mac]]\nvlan = 20\nmac = \"02:00:00:00:00:01\"\nport = \"p1\"\n"
    );
    let e = parse(&bad_vlan).expect_err("vlan");
    assert!(
        e.to_string().contains("port p1 does not carry VLAN 20"),
        "{e}"
    );
    let bad_mac = format!(
        "{base}[[bridge.static_mac]]\nvlan = 10\nmac = \"01:00:5e:00:00:01\"\nport = \"p1\"\n"
    );
    let e = parse(&bad_mac).expect_err("multicast");
    assert!(e.to_string().contains("must be unicast"), "{e}");
}

#[test]
fn set_vlan_round_trips() {
    let mut p = PortSpec::new("p", PortKind::Tap);
    assert_eq!(p.vlan().expect("default").to_string(), "access 1");
    for text in [
        "access 7",
        "trunk 10,20-30",
        "trunk all native 5 tagged",
        "trunk 3 native 4",
    ] {
        let v: PortVlan = text.parse().expect("vlan");
        p.set_vlan(&v);
        assert_eq!(p.vlan().expect("vlan").to_string(), text);
    }
    // A trunk that carries only its native VLAN stays closed to the others (it was
    // written back as "all").
    let v: PortVlan = "trunk 5 native 5".parse().expect("vlan");
    p.set_vlan(&v);
    assert_eq!(p.trunk.as_deref(), Some("5"));
    let back = p.vlan().expect("vlan");
    assert_eq!(back, v);
    assert_eq!(back.to_string(), "trunk 5 native 5");
    let PortVlan::Trunk { allowed, .. } = &back else {
        panic!("not a trunk: {back}");
    };
    assert!(!allowed.is_all() && allowed.len() == 1, "{back}");
}

#[test]
fn vf_section_is_typed_and_validated() {
    let good = "[[vf]]\npf = \"eth0\"\nvf = 0\nsettings = { vlan = { mode = \"access\", vid = 10, qos = 3, proto = \"802.1Q\" }, spoofchk = false }\n";
    let c = parse(good).expect("valid vf");
    assert_eq!(c.vfs.len(), 1);
    assert_eq!(c.vfs[0].settings.spoofchk, Some(false));
    assert_eq!(
        c.vfs[0].settings.vlan,
        Some(sriov::VlanMode::Access {
            vid: 10,
            qos: 3,
            proto: sriov::VlanProto::Dot1Q
        })
    );
    let bad = good.replace("vid = 10", "vid = 4095");
    let e = parse(&bad).expect_err("vid 4095");
    assert!(
        e.to_string()
            .contains("vf eth0 0: access VLAN 4095 out of range"),
        "{e}"
    );
    let dup = format!("{good}{good}");
    assert!(parse(&dup)
        .expect_err("dup")
        .to_string()
        .contains("vf eth0 0: defined twice"));
}

const AFXDP_REFUSED: &str = "is too large for an AF_XDP port";

fn afxdp_port(vlan: &str, mtu: u32) -> String {
    format!(
        "[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"up1\"\ntype = \"afxdp\"\n{vlan}\nmtu = {mtu}\n"
    )
}

#[test]
fn afxdp_mtu_above_one_umem_frame_uses_multi_buffer_up_to_9216() {
    assert_eq!(
        (afxdp_single_frame_mtu(false), afxdp_single_frame_mtu(true)),
        (3826, 3822)
    );
    for vlan in [
        "access = 10",
        "trunk = \"10,20\"",
        "trunk = \"5\"\nnative = 5",
    ] {
        for mtu in [1500, 3822, 3826, 9000, 9216] {
            parse(&afxdp_port(vlan, mtu)).unwrap_or_else(|e| panic!("{vlan} MTU {mtu}: {e}"));
        }
        let e = parse(&afxdp_port(vlan, 9217)).expect_err("9217");
        assert_eq!(
            e.to_string(),
            "test.toml: line 4: port up1: MTU 9217 is too large for an AF_XDP port: at most \
             9216 (frames of MTU + 18 bytes cross workers in 9238-byte buffers)",
            "{vlan}"
        );
        assert!(e.to_string().contains(AFXDP_REFUSED));
    }
    // Tap ports carry more.
    let tap = afxdp_port("access = 10", 9500).replace("afxdp", "tap");
    parse(&tap).expect("tap at 9500");
}

#[test]
fn afxdp_multi_buffer_frame_length_follows_the_mtu() {
    let mut p = PortSpec::new("p", PortKind::Afxdp);
    for (mtu, max_frame) in [
        (None, None),
        (Some(3822), None), // 3822 + 18 = 3840: one 4096-byte UMEM frame
        (Some(3823), Some(3841)),
        (Some(9000), Some(9018)),
        (Some(9216), Some(9234)),
    ] {
        p.mtu = mtu;
        assert_eq!(p.afxdp_max_frame(), max_frame, "MTU {mtu:?}");
    }
}

#[test]
fn afxdp_frame_size_follows_the_mtu() {
    let mut p = PortSpec::new("p", PortKind::Afxdp);
    for (mtu, size) in [
        (None, 2048),
        (Some(68), 2048),
        (Some(1500), 2048),
        (Some(1774), 2048), // 1774 + 18 = 2048 - 256
        (Some(1775), 4096),
        (Some(2048), 4096),
        (Some(3826), 4096),
    ] {
        p.mtu = mtu;
        assert_eq!(p.afxdp_frame_size(), size, "MTU {mtu:?}");
    }
}

#[test]
fn xdp_fast_path_defaults_off_parses_and_round_trips() {
    assert!(!parse("").expect("empty").datapath.xdp_fast_path, "default");
    assert!(
        !parse(GOOD).expect("valid").datapath.xdp_fast_path,
        "absent"
    );
    assert!(!DatapathSection::default().xdp_fast_path);
    let on = parse("[datapath]\nworkers = 2\nxdp_fast_path = true\n").expect("on");
    assert!(on.datapath.xdp_fast_path);
    assert_eq!(on.datapath.workers, 2, "other keys unaffected");
    let off = parse("[datapath]\nxdp_fast_path = false\n").expect("off");
    assert_eq!(off, Config::default());

    // Written out and read back, on and off.
    let mut c = parse(GOOD).expect("valid");
    for v in [true, false] {
        c.datapath.xdp_fast_path = v;
        let text = c.to_toml();
        assert!(
            text.contains(&format!("xdp_fast_path = {v}")),
            "serialised: {text}"
        );
        assert_eq!(parse(&text).expect("reparse"), c);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vswitchd.toml");
        c.save(&path).expect("save");
        assert_eq!(Config::load(&path, false).expect("load"), c);
    }
}

#[test]
fn xdp_fast_path_bad_values_name_the_line_and_type() {
    for (value, got) in [
        ("\"yes\"", "string \"yes\""),
        ("1", "integer `1`"),
        ("\"on\"", "string \"on\""),
    ] {
        let text = format!("[datapath]\nworkers = 1\nxdp_fast_path = {value}\n");
        match parse(&text) {
            Err(ConfigFileError::Parse { line, reason, .. }) => {
                assert_eq!(line, 3, "{value}: {reason}");
                assert!(
                    reason.contains(&format!("invalid type: {got}, expected a boolean")),
                    "{value}: {reason}"
                );
            }
            other => panic!("{value}: expected a parse error, got {other:?}"),
        }
    }
    // Misspelt key: rejected as unknown, like every other key.
    let e = parse("[datapath]\nxdp_fastpath = true\n").expect_err("unknown key");
    assert!(
        e.to_string().contains("unknown field `xdp_fastpath`"),
        "{e}"
    );
    assert!(e.to_string().contains("line 2"), "{e}");
}

/// `xdp_replace` (replace a foreign XDP program) parses on AF_XDP and auto ports, is
/// written only when set, and is refused on ports that attach no XDP program.
#[test]
fn xdp_replace_parses_round_trips_and_applies_to_afxdp_only() {
    let port = |kind: &str, extra: &str| {
        format!(
            "[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"p\"\ntype = \"{kind}\"\n\
             access = 10\n{extra}"
        )
    };
    for kind in ["afxdp", "auto"] {
        let c = parse(&port(kind, "xdp_replace = true\n")).expect(kind);
        assert!(c.bridges[0].ports[0].xdp_replace, "{kind}");
        let text = c.to_toml();
        assert!(text.contains("xdp_replace = true"), "{text}");
        let c = parse(&port(kind, "")).expect(kind);
        assert!(!c.bridges[0].ports[0].xdp_replace, "default off");
        assert!(!c.to_toml().contains("xdp_replace"));
    }
    for kind in ["tap", "packet"] {
        let e = parse(&port(kind, "xdp_replace = true\n")).expect_err(kind);
        assert!(
            e.to_string().contains(&format!(
                "port p: xdp_replace applies to afxdp ports only (this one is {kind})"
            )),
            "{e}"
        );
    }
    let e = parse(&port("afxdp", "xdp_replace = 1\n")).expect_err("not a bool");
    assert!(e.to_string().contains("line 7"), "{e}");
}

#[test]
fn port_types_parse_and_one_queue_backends_refuse_more() {
    let port = |kind: &str, queues: u32| {
        format!(
            "[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"p\"\ntype = \"{kind}\"\n\
             queues = {queues}\naccess = 10\n"
        )
    };
    for (text, kind) in [
        ("auto", PortKind::Auto),
        ("packet", PortKind::Packet),
        ("afxdp", PortKind::Afxdp),
        ("tap", PortKind::Tap),
    ] {
        let c = parse(&port(text, 1)).expect(text);
        assert_eq!(c.bridges[0].ports[0].kind, kind);
        assert_eq!(kind.to_string(), text);
    }
    for text in ["packet", "tap"] {
        let e = parse(&port(text, 2)).expect_err(text);
        assert!(
            e.to_string()
                .contains(&format!("port p: {text} ports have one queue")),
            "{e}"
        );
    }
    // auto and afxdp may have several queues (auto on a NIC becomes afxdp).
    assert!(parse(&port("auto", 2)).is_ok());
    let e = parse(&port("system", 1)).expect_err("unknown type");
    assert!(e.to_string().contains("unknown variant `system`"), "{e}");
}

#[test]
fn auto_resolves_to_packet_for_a_virtual_device_and_keeps_explicit_kinds() {
    // `lo` has no bus device: a virtual device.
    assert_eq!(PortKind::Auto.resolve("lo"), PortKind::Packet);
    for k in [PortKind::Afxdp, PortKind::Packet, PortKind::Tap] {
        assert_eq!(k.resolve("lo"), k);
    }
}

#[test]
fn poll_mode_parses_validates_and_round_trips() {
    use datapath::worker::PollMode;
    let d = parse("").expect("empty").datapath;
    assert_eq!(
        (d.poll_mode, d.adaptive_window_us),
        (PollMode::Adaptive, 20_000)
    );
    for m in PollMode::ALL {
        let c = parse(&format!("[datapath]\npoll_mode = \"{m}\"\n")).expect("mode");
        assert_eq!(c.datapath.poll_mode, m);
        let text = c.to_toml();
        assert!(text.contains(&format!("poll_mode = \"{m}\"")), "{text}");
        assert_eq!(parse(&text).expect("reparse"), c);
    }
    let c =
        parse("[datapath]\npoll_mode = \"adaptive\"\nadaptive_window_us = 500\n").expect("window");
    assert_eq!(
        c.datapath.poll().adaptive_window,
        std::time::Duration::from_micros(500)
    );
    // The poll policy is the one datapath setting running workers change in place.
    let mut other = c.datapath.clone();
    other.poll_mode = PollMode::Spin;
    other.adaptive_window_us = 1;
    assert!(c.datapath.same_workers(&other));
    other.burst = 16;
    assert!(!c.datapath.same_workers(&other));

    match parse("[datapath]\nworkers = 1\npoll_mode = \"busy\"\n") {
        Err(ConfigFileError::Parse { line, reason, .. }) => {
            assert_eq!(line, 3, "{reason}");
            assert!(
                reason.contains("unknown poll mode \"busy\" (expected spin, adaptive or sleep)"),
                "{reason}"
            );
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    let e = parse("[datapath]\nadaptive_window_us = 1000001\n").expect_err("too long");
    assert_eq!(
        e.to_string(),
        "test.toml: line 2: datapath.adaptive_window_us: adaptive poll window 1.000001s is \
         longer than the maximum 1s"
    );
}

/// `validate` hands the daemon the values in the datapath's types, so it parses nothing
/// again.
#[test]
fn validate_returns_datapath_types() {
    let c = parse(GOOD).expect("valid");
    let v = c.validate().expect("validated");
    assert_eq!(v.metrics, Some("127.0.0.1:9464".parse().expect("addr")));
    let b = &v.bridges["br0"];
    assert_eq!(
        b.ports["vm1"].vlan,
        "access 100".parse::<PortVlan>().expect("vlan")
    );
    assert_eq!(b.ports["uplink"].mtu, 9000);
    assert_eq!(
        b.ports["uplink"].vlan.to_string(),
        "trunk 100,200 native 5 tagged"
    );
    let vid = Vid::new(100).expect("vid");
    let mac: MacAddr = "02:00:00:00:00:01".parse().expect("mac");
    assert_eq!(
        b.statics.iter().collect::<Vec<_>>(),
        vec![(&(vid, mac), &"vm1".to_string())]
    );
}

/// Every problem names the setting or the object it is about, which is where the file
/// error points.
#[test]
fn problems_point_at_their_field() {
    let e = ConfigError::Workers { value: 0, max: 8 };
    assert_eq!(
        e.field(),
        Field::Key {
            section: "datapath",
            key: "workers"
        }
    );
    let e = parse(
        "[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"p1\"\ntype = \"tap\"\nqueues = 0\n",
    )
    .expect_err("queues");
    match e {
        ConfigFileError::Invalid { line, problem, .. } => {
            assert_eq!(line, 4, "{problem}");
            assert_eq!(problem.field(), Field::Named("p1"));
            assert_eq!(
                *problem,
                ConfigError::Port {
                    bridge: "br0".into(),
                    port: "p1".into(),
                    problem: PortProblem::Queues(0)
                }
            );
            assert_eq!(problem.path(), "bridge[br0].port[p1].queues");
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
}

/// A static MAC is read in any case and with `-`, written in the canonical form, and a
/// problem with it points at its `mac` line however the file writes it.
#[test]
fn static_macs_are_typed_and_found_in_any_case() {
    let base =
        "[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"p1\"\ntype = \"tap\"\naccess = 10\n";
    let upper = format!(
        "{base}[[bridge.static_mac]]\nvlan = 10\nmac = \"02-00-00-00-00-AB\"\nport = \"p1\"\n"
    );
    let c = parse(&upper).expect("valid");
    let mac: MacAddr = "02:00:00:00:00:ab".parse().expect("mac");
    assert_eq!(c.bridges[0].static_macs[0].mac, mac);
    assert!(
        c.to_toml().contains("mac = \"02:00:00:00:00:ab\""),
        "{}",
        c.to_toml()
    );
    let e = parse(&upper.replace("vlan = 10", "vlan = 20")).expect_err("not a member");
    assert_eq!(
        e.to_string(),
        "test.toml: line 9: static MAC 02:00:00:00:00:ab: port p1 does not carry VLAN 20"
    );
    let e = parse(&upper.replace("02-00-00-00-00-AB", "zz")).expect_err("not a MAC");
    assert!(
        e.to_string()
            .starts_with("test.toml: line 9: invalid MAC address 'zz'"),
        "{e}"
    );
}

/// Each problem's path names the field, down to the bridge and port it belongs to.
#[test]
fn problem_paths_name_the_field() {
    let port = |extra: &str| {
        format!(
            "[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"p1\"\ntype = \"tap\"\n{extra}"
        )
    };
    let path = |text: &str| match parse(text).expect_err(text) {
        ConfigFileError::Invalid { problem, .. } => problem.path(),
        other => panic!("{text:?}: expected a validation error, got {other:?}"),
    };
    for (text, want) in [
        ("[datapath]\nburst = 0\n".to_string(), "datapath.burst"),
        ("[fdb]\naging_secs = 0\n".to_string(), "fdb.aging_secs"),
        (port("access = 4095\n"), "bridge[br0].port[p1].access"),
        (port("trunk = \"9-1\"\n"), "bridge[br0].port[p1].trunk"),
        (port("access = 5\nnative = 3\n"), "bridge[br0].port[p1].native"),
        (port("mtu = 20\n"), "bridge[br0].port[p1].mtu"),
        (port("interface = \"a/b\"\n"), "bridge[br0].port[p1].interface"),
        (
            port("access = 5\n[[bridge.static_mac]]\nvlan = 6\nmac = \"02:00:00:00:00:01\"\nport = \"p1\"\n"),
            "bridge[br0].static_mac[02:00:00:00:00:01].vlan",
        ),
        (
            "[[vf]]\npf = \"eth0\"\nvf = 1\nsettings = { spoofchk = true }\n[[vf]]\npf = \"eth0\"\nvf = 1\nsettings = { spoofchk = true }\n".to_string(),
            "vf[eth0 1]",
        ),
    ] {
        assert_eq!(path(&text), want, "{text:?}");
    }
}

#[test]
fn cni_owner_parses_round_trips_and_is_shown() {
    let text = r#"
[[bridge]]
name = "br0"

[[bridge.port]]
name = "3f2a971ec0-eth0"
type = "packet"
access = 100

[bridge.port.owner]
by = "cni"
container_id = "3f2a9c1b07e4aa55"
ifname = "eth0"
netns = "/run/netns/cni-1"
network = "vlan100"
pod = "default/web"
"#;
    let c = parse(text).expect("valid");
    let p = &c.bridge("br0").expect("bridge").ports[0];
    let want = PortOwner::Cni(CniAttachment {
        container_id: "3f2a9c1b07e4aa55".into(),
        ifname: "eth0".into(),
        netns: "/run/netns/cni-1".into(),
        network: "vlan100".into(),
        pod: Some("default/web".into()),
    });
    assert_eq!(p.owner.as_ref(), Some(&want));
    assert_eq!(
        want.to_string(),
        "cni pod default/web container 3f2a9c1b07e4 eth0 network vlan100"
    );
    let again = parse(&c.to_toml()).expect("round trip");
    assert_eq!(again, c);
    // JSON (the control protocol) carries the same shape.
    let json = serde_json::to_string(&want).expect("json");
    assert_eq!(
        json,
        r#"{"by":"cni","container_id":"3f2a9c1b07e4aa55","ifname":"eth0","netns":"/run/netns/cni-1","network":"vlan100","pod":"default/web"}"#
    );
    assert_eq!(
        serde_json::from_str::<PortOwner>(&json).expect("parse"),
        want
    );
    // Unknown owners and unknown keys are refused like any other unknown key.
    let bad = text.replace("by = \"cni\"", "by = \"kubelet\"");
    assert!(parse(&bad).is_err(), "unknown owner kind accepted");
    let bad = text.replace("pod = ", "pood = ");
    let e = parse(&bad).expect_err("unknown key accepted").to_string();
    assert!(e.contains("pood"), "{e}");
}
