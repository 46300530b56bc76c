//! vswitchd + vswitchctl end to end (root): CLI output and exit codes, the configuration
//! cycle (CLI -> file -> restart, SIGHUP), `trace` against real frames, metrics.
//!
//! Every daemon runs in its own network namespace with tap ports; frames are written
//! into a tap's kernel side with AF_PACKET and captured on the others' kernel sides.

mod common;

use std::time::Duration;

use common::*;
use ctl::config::{Config, PortKind, PortSpec, StaticMac};
use datapath::testutil::{tagged, test_frame};
use serde_json::json;

/// Four tap ports: p1, p2 access 10; p3 trunk 10,20; p4 access 20; one static MAC.
const FOUR_PORTS: &str = r#"
[[bridge]]
name = "br0"

[[bridge.port]]
name = "p1"
type = "tap"
access = 10

[[bridge.port]]
name = "p2"
type = "tap"
access = 10

[[bridge.port]]
name = "p3"
type = "tap"
trunk = "10,20"

[[bridge.port]]
name = "p4"
type = "tap"
access = 20

[[bridge.static_mac]]
vlan = 10
mac = "02:00:00:00:00:5e"
port = "p2"
"#;

const STATIC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x5e];
const QUIET: Duration = Duration::from_millis(300);

fn captures(d: &Vswitchd, names: &[&str]) -> Vec<Capture> {
    names.iter().map(|n| d.capture(n)).collect()
}

/// Polls `port stats --json` until `pred` holds (bounded), returning the last reply.
fn stats_until(
    d: &Vswitchd,
    pred: impl Fn(&serde_json::Value) -> bool,
    limit: Duration,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let v = d.ctl(&["port", "stats", "--json"]).json();
        if pred(&v) || std::time::Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn port<'a>(stats: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    stats
        .as_array()
        .expect("stats array")
        .iter()
        .find(|p| p["port"] == name)
        .unwrap_or_else(|| panic!("no port {name} in {stats}"))
}

#[test]
fn cli_output_snapshots() {
    if !root_or_skip("cli_output_snapshots") {
        return;
    }
    let _w = Watchdog::new("cli_output_snapshots", Duration::from_secs(60));
    let d = Vswitchd::start(Some(FOUR_PORTS));
    let c = captures(&d, &["p1", "p2", "p3", "p4"]);
    let f = test_frame(BCAST, MAC_A, 1, 60);
    c[0].send(&f);
    assert_eq!(
        c[1].collect_test_frames(1, Duration::from_secs(3)),
        vec![f.clone()]
    );
    assert_eq!(
        c[2].collect_test_frames(1, Duration::from_secs(3)),
        vec![tagged(&f, 10)]
    );
    assert!(c[3].collect_test_frames(1, QUIET).is_empty());

    // show
    assert_eq!(
        d.ctl(&["show"]).ok(),
        "Bridge br0\n\
         \x20   Port p1\n\
         \x20       vlan: access 10\n\
         \x20       Interface p1 (tap, pmd 0): up\n\
         \x20   Port p2\n\
         \x20       vlan: access 10\n\
         \x20       Interface p2 (tap, pmd 0): up\n\
         \x20   Port p3\n\
         \x20       vlan: trunk 10,20\n\
         \x20       Interface p3 (tap, pmd 0): up\n\
         \x20   Port p4\n\
         \x20       vlan: access 20\n\
         \x20       Interface p4 (tap, pmd 0): up\n"
    );
    let show = d.ctl(&["show", "--json"]).json();
    let port_json = |name: &str, id: usize, vlan: &str| {
        json!({"name": name, "id": id, "type": "tap", "backend": "tap", "interface": name,
               "vlan": vlan, "mtu": 1500, "queues": 1, "xdp_mode": "", "worker": 0,
               "state": "up"})
    };
    assert_eq!(
        show,
        json!([{"name": "br0", "ports": [
            port_json("p1", 0, "access 10"),
            port_json("p2", 1, "access 10"),
            port_json("p3", 2, "trunk 10,20"),
            port_json("p4", 3, "access 20"),
        ]}])
    );

    // port stats: one 60-byte broadcast from p1 flooded to p2 (untagged) and p3 (tagged).
    let stats = stats_until(
        &d,
        |v| port(v, "p3")["tx_packets"] == 1,
        Duration::from_secs(3),
    );
    let row = |p: &str, rx: u64, rxb: u64, tx: u64, txb: u64, fl: u64| {
        json!({"bridge": "br0", "port": p, "rx_packets": rx, "rx_bytes": rxb,
               "tx_packets": tx, "tx_bytes": txb, "rx_flooded": fl, "drops": {}})
    };
    assert_eq!(
        stats,
        json!([
            row("p1", 1, 60, 0, 0, 1),
            row("p2", 0, 0, 1, 60, 0),
            row("p3", 0, 0, 1, 64, 0),
            row("p4", 0, 0, 0, 0, 0),
        ])
    );
    assert_eq!(
        d.ctl(&["port", "stats"]).ok(),
        "BRIDGE     PORT           RX_PACKETS       RX_BYTES   TX_PACKETS       TX_BYTES    FLOODED      DROPS\n\
         br0        p1                      1             60            0              0          1          0\n\
         br0        p2                      0              0            1             60          0          0\n\
         br0        p3                      0              0            1             64          0          0\n\
         br0        p4                      0              0            0              0          0          0\n"
    );
    assert_eq!(
        d.ctl(&["port", "stats", "br0", "p3", "--json"]).json(),
        json!([row("p3", 0, 0, 1, 64, 0)])
    );

    // fdb show: the static entry and MAC_A learned on p1 (age 0-2 s).
    let mut fdb = d.ctl(&["fdb", "show", "br0", "--json"]).json();
    let entries = fdb.as_array_mut().expect("fdb array");
    for e in entries.iter_mut() {
        let age = e["age"].as_u64().expect("age");
        assert!(age <= 2, "age {age}");
        e["age"] = json!(0);
    }
    entries.sort_by_key(|e| e["mac"].as_str().unwrap_or("").to_string());
    assert_eq!(
        fdb,
        json!([
            {"vlan": 10, "mac": "02:00:00:00:00:0a", "port": "p1", "static": false, "age": 0},
            {"vlan": 10, "mac": "02:00:00:00:00:5e", "port": "p2", "static": true, "age": 0},
        ])
    );
    let text = d.ctl(&["fdb", "show", "br0"]).ok();
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.remove(0),
        " port         VLAN  MAC                  Age"
    );
    lines.sort();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[1], " p2             10  02:00:00:00:00:5e  static");
    let (learned, age) = lines[0].rsplit_once(' ').expect("age column");
    assert_eq!(learned.trim_end(), " p1             10  02:00:00:00:00:0a");
    assert!(age.parse::<u64>().expect("age number") <= 2);
    assert_eq!(
        d.ctl(&["fdb", "show", "br0", "--port", "p2", "--json"])
            .json(),
        json!([{"vlan": 10, "mac": "02:00:00:00:00:5e", "port": "p2", "static": true, "age": 0}])
    );
    assert_eq!(
        d.ctl(&["fdb", "show", "br0", "--vlan", "20", "--json"])
            .json(),
        json!([])
    );

    // pmd show
    let pmd = d.ctl(&["pmd", "show", "--json"]).json();
    let w = &pmd.as_array().expect("workers")[0];
    assert_eq!(pmd.as_array().map(Vec::len), Some(1));
    assert_eq!(w["bridge"], "br0");
    assert_eq!(w["worker"], 0);
    assert_eq!(w["cpu"], json!(null));
    assert_eq!(w["packets"], 1);
    assert_eq!(w["bursts"], 1);
    assert_eq!(w["avg_burst"], 1.0);
    let busy = w["busy_ratio"].as_f64().expect("busy_ratio");
    assert!((0.0..=1.0).contains(&busy), "busy {busy}");
    assert_eq!(w["rx_queues"], json!(["p1:0", "p2:0", "p3:0", "p4:0"]));
    assert_eq!(w["tx_ports"], json!(["p1", "p2", "p3", "p4"]));
    assert_eq!(w["handoff_out"], 0);
    assert_eq!(w["handoff_in"], 0);
    assert_eq!(w["fdb_updates_sent"], 0);
    assert_eq!(w["fdb_updates_dropped"], 0);
    assert_eq!(w["handoff_full"], 0);
    assert_eq!(w["lane_waits"], 0);
    assert_eq!(w["poll_mode"], "adaptive");
    assert_eq!(w["shares_cpu"], false);
    assert_eq!(w["packet_fast_path"], true);
    let text = d.ctl(&["pmd", "show"]).ok();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8, "{text}");
    assert_eq!(lines[0], "poll mode: adaptive (window 20000 us)");
    assert_eq!(lines[1], "pmd thread 0 of bridge br0 (unpinned):");
    assert!(
        lines[2].starts_with("  packets: 1  bursts: 1  avg burst: 1.0  busy: "),
        "{text}"
    );
    assert_eq!(lines[3], "  rx queues: p1:0 p2:0 p3:0 p4:0");
    assert_eq!(lines[4], "  tx ports:  p1 p2 p3 p4");
    assert_eq!(
        lines[5],
        "  handoff out/in: 0/0  lane full: 0  lane waits: 0  fdb updates sent: 0 dropped: 0"
    );
    assert!(
        lines[6].starts_with("  poll mode: adaptive  idle waits: "),
        "{text}"
    );
    assert_eq!(
        lines[7],
        "  packet fast path: on  fdb entries: 0  map errors: 0"
    );

    // trace: broadcast from p1 in VLAN 10.
    let spec = "dst=ff:ff:ff:ff:ff:ff,src=02:00:00:00:00:0a";
    let t = d.ctl(&["trace", "br0", "p1", spec, "--json"]).json();
    assert_eq!(t["bridge"], "br0");
    assert_eq!(t["ingress"], "p1");
    assert_eq!(
        t["egress"],
        json!([{"port": "p2", "tag": "untagged"}, {"port": "p3", "tag": "vlan 10 pcp 0"}])
    );
    assert_eq!(t["drop"], json!(null));
    assert_eq!(
        t["steps"],
        json!([
            "parse: 60 bytes, dst ff:ff:ff:ff:ff:ff src 02:00:00:00:00:0a, untagged",
            "classify: port p1 (access 10) -> VLAN 10",
            "learn: 02:00:00:00:00:0a vlan 10 on p1: refresh",
            "lookup: group address: flood in VLAN",
            "verdict: flood, 2 copies",
        ])
    );
    assert_eq!(
        d.ctl(&["trace", "br0", "p1", spec]).ok(),
        "bridge br0, ingress port p1\n\
         \x20 parse: 60 bytes, dst ff:ff:ff:ff:ff:ff src 02:00:00:00:00:0a, untagged\n\
         \x20 classify: port p1 (access 10) -> VLAN 10\n\
         \x20 learn: 02:00:00:00:00:0a vlan 10 on p1: refresh\n\
         \x20 lookup: group address: flood in VLAN\n\
         \x20 verdict: flood, 2 copies\n\
         egress: p2 untagged\n\
         egress: p3 vlan 10 pcp 0\n"
    );
    let t = d
        .ctl(&["trace", "br0", "p1", &format!("{spec},vlan=20")])
        .ok();
    assert!(
        t.ends_with("egress: none (drop: tagged_on_access)\n"),
        "{t}"
    );
}

#[test]
fn exit_codes_and_idempotent_flags() {
    if !root_or_skip("exit_codes_and_idempotent_flags") {
        return;
    }
    let _w = Watchdog::new("exit_codes_and_idempotent_flags", Duration::from_secs(60));
    let d = Vswitchd::start(Some(FOUR_PORTS));
    let before = std::fs::read(&d.config).expect("config");

    // 4: unreachable (also with --socket after the subcommand).
    let gone = d.dir.path().join("nothing.sock");
    let r = vswitchctl_at(&gone, &["show"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.starts_with(&format!(
            "vswitchctl: cannot reach vswitchd at {}: ",
            gone.display()
        )),
        "{r:?}"
    );
    let r = vswitchctl_at(
        &d.socket,
        &["show", "--socket", gone.to_str().expect("utf8")],
    );
    assert_eq!(r.code, 4, "{r:?}");

    // 3: not found.
    for (args, msg) in [
        (&["del-br", "nob"][..], "vswitchctl: no bridge nob\n"),
        (&["show", "--json"][..], ""), // control: 0
        (
            &["del-port", "br0", "px"][..],
            "vswitchctl: bridge br0: no port px\n",
        ),
        (
            &["port", "stats", "br0", "px"][..],
            "vswitchctl: bridge br0: no port px\n",
        ),
        (&["port", "stats", "nob"][..], "vswitchctl: no bridge nob\n"),
        (&["fdb", "show", "nob"][..], "vswitchctl: no bridge nob\n"),
        (
            &[
                "fdb",
                "add",
                "br0",
                "--vlan",
                "10",
                "--mac",
                "02:00:00:00:00:01",
                "--port",
                "px",
            ][..],
            "vswitchctl: bridge br0: no port px\n",
        ),
        (
            &["set-port", "br0", "px", "--access", "5"][..],
            "vswitchctl: bridge br0: no port px\n",
        ),
        (
            &[
                "trace",
                "br0",
                "px",
                "dst=02:00:00:00:00:01,src=02:00:00:00:00:02",
            ][..],
            "vswitchctl: bridge br0: no port px\n",
        ),
    ] {
        let r = d.ctl(args);
        if msg.is_empty() {
            assert_eq!(r.code, 0, "{args:?}: {r:?}");
            continue;
        }
        assert_eq!((r.code, r.stderr.as_str()), (3, msg), "{args:?}: {r:?}");
        assert_eq!(r.stdout, "", "{args:?}");
    }

    // 2: usage, from clap and from the daemon.
    for (args, msg) in [
        (&["frobnicate"][..], None),
        (&["add-port"][..], None),
        (
            &["set-port", "br0", "p1", "--access", "5", "--trunk", "6"][..],
            None,
        ),
        (
            &["set-port", "br0", "p1"][..],
            Some(
                "vswitchctl: set-port: nothing to set (--access, --trunk, --mtu, --isolated, \
                 --flood-unknown, --flood-multicast, --flood-broadcast)\n",
            ),
        ),
        (
            &["set-port", "br0", "p1", "--access", "5000"][..],
            Some("vswitchctl: port p1: VLAN 5000 is out of range; use 1-4094\n"),
        ),
        (
            &["trace", "br0", "p1", "zz"][..],
            Some("vswitchctl: frame: 'z' (character 1) is not a hex digit\n"),
        ),
        // Non-ASCII once panicked the daemon's hex parser (a byte slice through 'é').
        (
            &["trace", "br0", "p1", "aéa"][..],
            Some("vswitchctl: frame: 'é' (character 2) is not a hex digit\n"),
        ),
        (
            &[
                "fdb",
                "add",
                "br0",
                "--vlan",
                "10",
                "--mac",
                "ff:ff:ff:ff:ff:ff",
                "--port",
                "p1",
            ][..],
            Some("vswitchctl: static MAC ff:ff:ff:ff:ff:ff: must be unicast and non-zero\n"),
        ),
        (
            &["pmd", "set-cpus", "x"][..],
            Some("vswitchctl: pmd set-cpus: 'x' is not a CPU number\n"),
        ),
        // VLAN 4106 is VLAN 10 in the workers' 12-bit keys: unchecked, it removed the
        // static entry of VLAN 10 from them (and not from the XDP mirror).
        (
            &[
                "fdb",
                "del",
                "br0",
                "--vlan",
                "4106",
                "--mac",
                "02:00:00:00:00:5e",
            ][..],
            Some("vswitchctl: fdb del: VLAN 4106 is out of range; use 1-4094\n"),
        ),
        (
            &["fdb", "flush", "br0", "--vlan", "5000"][..],
            Some("vswitchctl: fdb flush: VLAN 5000 is out of range; use 1-4094\n"),
        ),
    ] {
        let r = d.ctl(args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        if let Some(m) = msg {
            assert_eq!(r.stderr, m, "{args:?}");
        }
    }

    // --may-exist / --if-exists: exit 0, nothing changes; without them: 1 / 3.
    let r = d.ctl(&["add-br", "br0"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "vswitchctl: bridge br0 already exists\n")
    );
    assert_eq!(
        d.ctl(&["add-br", "br0", "--may-exist"]).ok(),
        "bridge br0 exists\n"
    );
    let r = d.ctl(&["add-port", "br0", "p1", "--type", "tap", "--access", "30"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "vswitchctl: bridge br0: port p1 already exists\n")
    );
    assert_eq!(
        d.ctl(&[
            "add-port",
            "br0",
            "p1",
            "--type",
            "tap",
            "--access",
            "30",
            "--may-exist"
        ])
        .ok(),
        "port p1 exists\n"
    );
    assert_eq!(
        d.ctl(&["del-br", "nob", "--if-exists"]).ok(),
        "no bridge nob\n"
    );
    assert_eq!(
        d.ctl(&["del-port", "br0", "px", "--if-exists"]).ok(),
        "no port px\n"
    );
    let r = d.ctl(&["del-port", "nob", "px", "--if-exists"]);
    assert_eq!(
        r.code, 3,
        "--if-exists covers the port, not the bridge: {r:?}"
    );
    // Nothing of the above touched the file or the running state.
    assert_eq!(std::fs::read(&d.config).expect("config"), before);
    let show = d.ctl(&["show", "--json"]).json();
    assert_eq!(show[0]["ports"][0]["vlan"], "access 10");
    assert_eq!(show[0]["ports"].as_array().map(Vec::len), Some(4));
    assert_eq!(
        d.ctl(&["fdb", "show", "br0", "--json", "--mac", "02:00:00:00:00:5e"])
            .json(),
        json!([{"vlan": 10, "mac": "02:00:00:00:00:5e", "port": "p2", "static": true, "age": 0}]),
        "the refused fdb del left VLAN 10's static entry"
    );
}

/// The tap's ifindex inside the daemon's namespace (None: no such device).
fn ifindex(d: &Vswitchd, ifname: &str) -> Option<u32> {
    let out = run_bounded(
        {
            let mut c = std::process::Command::new("ip");
            c.args([
                "netns",
                "exec",
                d.ns.name(),
                "cat",
                &format!("/sys/class/net/{ifname}/ifindex"),
            ]);
            c
        },
        Duration::from_secs(5),
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

#[test]
fn cli_changes_persist_and_survive_kill9() {
    if !root_or_skip("cli_changes_persist_and_survive_kill9") {
        return;
    }
    let _w = Watchdog::new(
        "cli_changes_persist_and_survive_kill9",
        Duration::from_secs(60),
    );
    let mut d = Vswitchd::start(None);
    assert!(!d.config.exists(), "no file before the first change");
    for args in [
        &["add-br", "br0"][..],
        &["add-port", "br0", "p1", "--type", "tap", "--access", "10"],
        &["add-port", "br0", "p2", "--type", "tap", "--access", "20"],
        &[
            "add-port", "br0", "p3", "--type", "tap", "--access", "10", "--mtu", "9000",
        ],
        &["set-port", "br0", "p2", "--access", "10"],
        &[
            "set-port", "br0", "p3", "--trunk", "10,20", "--native", "30", "--tagged",
        ],
        &[
            "fdb",
            "add",
            "br0",
            "--vlan",
            "10",
            "--mac",
            "02:00:00:00:00:5E",
            "--port",
            "p2",
        ],
    ] {
        d.ctl(args).ok();
    }
    // The file on disk has exactly that.
    let cfg = Config::load(&d.config, false).expect("saved config parses");
    assert_eq!(cfg.bridges.len(), 1);
    let b = &cfg.bridges[0];
    assert_eq!(b.name, "br0");
    let mut p1 = PortSpec::new("p1", PortKind::Tap);
    p1.access = Some(10);
    let mut p2 = PortSpec::new("p2", PortKind::Tap);
    p2.access = Some(10);
    let mut p3 = PortSpec::new("p3", PortKind::Tap);
    p3.trunk = Some("10,20".into());
    p3.native = Some(30);
    p3.native_tagged = true;
    p3.mtu = Some(9000);
    assert_eq!(b.ports, vec![p1, p2, p3]);
    assert_eq!(
        b.static_macs,
        vec![StaticMac {
            vlan: 10,
            mac: "02:00:00:00:00:5e".parse().expect("mac"),
            port: "p2".into()
        }]
    );
    assert_eq!(cfg.datapath, Config::default().datapath);
    assert_eq!(cfg.fdb, Config::default().fdb);

    let show_before = d.ctl(&["show", "--json"]).json();
    assert_eq!(
        show_before[0]["ports"][2]["vlan"],
        "trunk 10,20 native 30 tagged"
    );
    assert_eq!(show_before[0]["ports"][2]["mtu"], 9000);
    let c = captures(&d, &["p1", "p2", "p3"]);
    assert_forwards(&c[0], &c[1], MAC_A, 1, 2);
    drop(c);
    let old_index = ifindex(&d, "p1").expect("p1 exists");

    // kill -9: the taps go with the daemon's fds.
    d.kill9();
    assert_eq!(ifindex(&d, "p1"), None, "tap p1 outlived its daemon");
    d.spawn();
    d.wait_ready();
    assert_eq!(d.ctl(&["show", "--json"]).json(), show_before);
    assert_ne!(ifindex(&d, "p1"), Some(old_index), "p1 was recreated");
    assert_eq!(
        d.ctl(&["fdb", "show", "br0", "--json"]).json(),
        json!([{"vlan": 10, "mac": "02:00:00:00:00:5e", "port": "p2", "static": true, "age": 0}])
    );
    // Forwarding resumes: flood p1 -> p2 (untagged) and p3 (trunk: tagged 10); a
    // unicast to the static MAC goes to p2 only.
    let c = captures(&d, &["p1", "p2", "p3"]);
    assert_forwards(&c[0], &c[1], MAC_A, 10, 2);
    let tagged10 = c[2].collect_test_frames(2, Duration::from_secs(3));
    assert_eq!(
        tagged10,
        vec![
            tagged(&test_frame(BCAST, MAC_A, 10, 60), 10),
            tagged(&test_frame(BCAST, MAC_A, 11, 60), 10)
        ]
    );
    let u = test_frame(STATIC_MAC, MAC_A, 20, 60);
    c[0].send(&u);
    assert_eq!(c[1].collect_test_frames(1, Duration::from_secs(3)), vec![u]);
    assert!(
        c[2].collect_test_frames(1, QUIET).is_empty(),
        "static MAC not restored"
    );
    // The native VLAN 30 leaves p3 tagged (native_tagged survived the restart).
    let t = d
        .ctl(&[
            "trace",
            "br0",
            "p3",
            "dst=ff:ff:ff:ff:ff:ff,src=02:00:00:00:00:0b",
            "--json",
        ])
        .json();
    assert_eq!(t["egress"], json!([]));
    assert_eq!(t["drop"], "no_egress");
}

#[test]
fn bad_config_is_rejected_at_start() {
    if !root_or_skip("bad_config_is_rejected_at_start") {
        return;
    }
    let _w = Watchdog::new("bad_config_is_rejected_at_start", Duration::from_secs(30));
    let cases = [
        (
            "[[bridge]]\nname = \"br0\"\n\n[[bridge.port]]\nname = \"p1\"\ntype = \"tap\"\nacces = 10\n",
            "line 7: unknown field `acces`",
        ),
        (
            "[[bridge]]\nname = \"br0\"\n\n[[bridge.port]]\nname = \"p1\"\ntype = \"tap\"\naccess = 5000\n",
            "line 5: port p1: access: ",
        ),
        (
            "[datapath]\nworkers = 0\n",
            "line 2: datapath.workers: 0 is out of range",
        ),
        ("[[bridge]\nname = \"br0\"\n", "line 1: "),
    ];
    for (text, want) in cases {
        let d = Vswitchd::prepare(Some(text), &[]);
        let mut cmd = std::process::Command::new("ip");
        cmd.args(["netns", "exec", d.ns.name()])
            .arg(env!("CARGO_BIN_EXE_vswitchd"))
            .arg("--config")
            .arg(&d.config)
            .arg("--socket")
            .arg(&d.socket);
        let out = run_bounded(cmd, Duration::from_secs(10));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text:?}: {stderr}");
        assert!(
            stderr.contains(&format!("{}: {want}", d.config.display())),
            "{text:?}: want {want:?} in {stderr}"
        );
        assert!(!d.socket.exists(), "no socket for a rejected config");
    }
}

#[test]
fn sighup_rejects_bad_file_and_applies_good_one() {
    if !root_or_skip("sighup_rejects_bad_file_and_applies_good_one") {
        return;
    }
    let _w = Watchdog::new(
        "sighup_rejects_bad_file_and_applies_good_one",
        Duration::from_secs(60),
    );
    let d = Vswitchd::start(Some(FOUR_PORTS));
    let show = d.ctl(&["show", "--json"]).json();
    let p1_index = ifindex(&d, "p1").expect("p1");

    // Broken file: rejected, state kept, reason logged.
    let broken = FOUR_PORTS.replace("access = 20", "access = 20\naccess = 30");
    std::fs::write(&d.config, &broken).expect("write");
    d.signal("HUP");
    let log = d.wait_log("reload rejected", Duration::from_secs(5));
    assert!(
        log.contains(&format!(
            "vswitchd: reload rejected, running configuration kept: {}: line ",
            d.config.display()
        )),
        "{log}"
    );
    assert_eq!(d.ctl(&["show", "--json"]).json(), show);
    let c = captures(&d, &["p1", "p2", "p3", "p4"]);
    assert_forwards(&c[0], &c[1], MAC_A, 1, 1);
    drain(&c[2]);

    // Good file: p2 moves to VLAN 20, p4 goes, p5 comes; p1 keeps its tap.
    let good = FOUR_PORTS
        .replace(
            "name = \"p2\"\ntype = \"tap\"\naccess = 10",
            "name = \"p2\"\ntype = \"tap\"\naccess = 20",
        )
        .replace(
            "name = \"p4\"\ntype = \"tap\"\naccess = 20",
            "name = \"p5\"\ntype = \"tap\"\naccess = 10",
        )
        .replace("port = \"p2\"", "port = \"p5\"");
    assert_ne!(good, FOUR_PORTS);
    std::fs::write(&d.config, &good).expect("write");
    d.signal("HUP");
    d.wait_log("vswitchd: configuration reloaded\n", Duration::from_secs(5));
    let show = d.ctl(&["show", "--json"]).json();
    let ports: Vec<(String, String, u64)> = show[0]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("").to_string(),
                p["vlan"].as_str().unwrap_or("").to_string(),
                p["id"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    assert_eq!(
        ports,
        vec![
            ("p1".into(), "access 10".into(), 0),
            ("p2".into(), "access 20".into(), 1),
            ("p3".into(), "trunk 10,20".into(), 2),
            ("p5".into(), "access 10".into(), 3),
        ]
    );
    assert_eq!(
        ifindex(&d, "p1"),
        Some(p1_index),
        "unchanged port p1 was reopened"
    );
    assert_eq!(ifindex(&d, "p4"), None, "removed port p4's tap remains");
    assert_eq!(
        d.ctl(&["fdb", "show", "br0", "--json", "--mac", "02:00:00:00:00:5e"])
            .json(),
        json!([{"vlan": 10, "mac": "02:00:00:00:00:5e", "port": "p5", "static": true, "age": 0}])
    );
    // Frames follow the new VLANs: p1's flood reaches p5 and p3 (tag 10), not p2.
    let p5 = d.capture("p5");
    let f = test_frame(BCAST, MAC_A, 50, 60);
    c[0].send(&f);
    assert_eq!(
        p5.collect_test_frames(1, Duration::from_secs(3)),
        vec![f.clone()]
    );
    assert_eq!(
        c[2].collect_test_frames(1, Duration::from_secs(3)),
        vec![tagged(&f, 10)]
    );
    assert!(
        c[1].collect_test_frames(1, QUIET).is_empty(),
        "p2 left VLAN 10"
    );
    // p2 now floods into VLAN 20: p3 gets it tagged 20.
    let g = test_frame(BCAST, MAC_B, 51, 60);
    c[1].send(&g);
    assert_eq!(
        c[2].collect_test_frames(1, Duration::from_secs(3)),
        vec![tagged(&g, 20)]
    );
}

/// Egress of a trace as (port, tag) pairs, and its drop reason.
fn trace_of(d: &Vswitchd, port: &str, frame: &[u8]) -> (Vec<(String, String)>, Option<String>) {
    let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
    let t = d.ctl(&["trace", "br0", port, &hex, "--json"]).json();
    let egress = t["egress"]
        .as_array()
        .expect("egress")
        .iter()
        .map(|e| {
            (
                e["port"].as_str().unwrap_or("").to_string(),
                e["tag"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    (egress, t["drop"].as_str().map(str::to_string))
}

/// What each of p1..p4 captured within a short window: (port, frames).
fn captured(c: &[Capture], want: &[usize]) -> Vec<(String, Vec<Vec<u8>>)> {
    c.iter()
        .enumerate()
        .map(|(i, cap)| {
            let n = want[i];
            let wait = if n > 0 { Duration::from_secs(3) } else { QUIET };
            (
                format!("p{}", i + 1),
                cap.collect_test_frames(n.max(1), wait),
            )
        })
        .collect()
}

#[test]
fn trace_agrees_with_real_frames() {
    if !root_or_skip("trace_agrees_with_real_frames") {
        return;
    }
    let _w = Watchdog::new("trace_agrees_with_real_frames", Duration::from_secs(60));
    let d = Vswitchd::start(Some(FOUR_PORTS));
    let c = captures(&d, &["p1", "p2", "p3", "p4"]);
    let untagged = |p: &str| (p.to_string(), "untagged".to_string());
    let vlan = |p: &str, v: u16| (p.to_string(), format!("vlan {v} pcp 0"));

    // 1. Broadcast in VLAN 10 from p1: p2 untagged, p3 tagged 10, not p4.
    let f = test_frame(BCAST, MAC_A, 1, 60);
    assert_eq!(
        trace_of(&d, "p1", &f),
        (vec![untagged("p2"), vlan("p3", 10)], None)
    );
    c[0].send(&f);
    assert_eq!(
        captured(&c, &[0, 1, 1, 0]),
        vec![
            ("p1".into(), vec![]),
            ("p2".into(), vec![f.clone()]),
            ("p3".into(), vec![tagged(&f, 10)]),
            ("p4".into(), vec![]),
        ]
    );

    // 2. Known unicast after learning: p2 -> MAC_A goes to p1 only.
    let u = test_frame(MAC_A, MAC_B, 2, 60);
    assert_eq!(trace_of(&d, "p2", &u), (vec![untagged("p1")], None));
    c[1].send(&u);
    assert_eq!(
        captured(&c, &[1, 0, 0, 0]),
        vec![
            ("p1".into(), vec![u.clone()]),
            ("p2".into(), vec![]),
            ("p3".into(), vec![]),
            ("p4".into(), vec![]),
        ]
    );

    // 3. Tagged frame on access port p1: dropped, nothing anywhere, counted.
    let t = tagged(&test_frame(BCAST, MAC_A, 3, 60), 10);
    assert_eq!(
        trace_of(&d, "p1", &t),
        (vec![], Some("tagged_on_access".into()))
    );
    c[0].send(&t);
    // 4. VLAN 30 on trunk p3 (allowed 10,20): dropped.
    let v = tagged(&test_frame(BCAST, MAC_B, 4, 60), 30);
    assert_eq!(
        trace_of(&d, "p3", &v),
        (vec![], Some("vlan_not_allowed".into()))
    );
    c[2].send(&v);
    // 5. VLAN 20 on trunk p3: to p4 untagged only.
    let w = tagged(&test_frame(BCAST, MAC_B, 5, 60), 20);
    assert_eq!(trace_of(&d, "p3", &w), (vec![untagged("p4")], None));
    c[2].send(&w);
    assert_eq!(
        captured(&c, &[0, 0, 0, 1]),
        vec![
            ("p1".into(), vec![]),
            ("p2".into(), vec![]),
            ("p3".into(), vec![]),
            ("p4".into(), vec![test_frame(BCAST, MAC_B, 5, 60)]),
        ]
    );
    let stats = stats_until(
        &d,
        |v| port(v, "p3")["drops"]["vlan_not_allowed"] == 1,
        Duration::from_secs(3),
    );
    assert_eq!(port(&stats, "p1")["drops"], json!({"tagged_on_access": 1}));
    assert_eq!(port(&stats, "p3")["drops"], json!({"vlan_not_allowed": 1}));
    assert_eq!(port(&stats, "p2")["drops"], json!({}));
    assert_eq!(port(&stats, "p4")["drops"], json!({}));
    assert_eq!(port(&stats, "p1")["rx_packets"], 2);
    assert_eq!(port(&stats, "p3")["rx_packets"], 2);
    assert_eq!(port(&stats, "p1")["tx_packets"], 1);
    assert_eq!(port(&stats, "p4")["tx_packets"], 1);
}

/// The value of the exposition line `series` (exact labels), if present.
fn metric(body: &str, series: &str) -> Option<u64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_count_frames_and_drops() {
    if !root_or_skip("metrics_count_frames_and_drops") {
        return;
    }
    let _w = Watchdog::new("metrics_count_frames_and_drops", Duration::from_secs(60));
    let mut d = Vswitchd::prepare(None, &[]);
    let port_no = free_port_in(&d.ns);
    std::fs::write(
        &d.config,
        format!("[metrics]\nlisten = \"127.0.0.1:{port_no}\"\n{FOUR_PORTS}"),
    )
    .expect("write config");
    d.spawn();
    d.wait_ready();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port_no}").parse().expect("addr");
    let c = captures(&d, &["p1", "p2", "p3", "p4"]);
    for seq in 0..3 {
        let f = test_frame(BCAST, MAC_A, seq, 100);
        c[0].send(&f);
        assert_eq!(c[1].collect_test_frames(1, Duration::from_secs(3)), vec![f]);
    }
    c[0].send(&tagged(&test_frame(BCAST, MAC_A, 9, 60), 10));
    stats_until(
        &d,
        |v| port(v, "p1")["drops"]["tagged_on_access"] == 1,
        Duration::from_secs(3),
    );
    let (status, body) = http_get(&d.ns, addr, "/metrics");
    assert_eq!(status, "HTTP/1.0 200 OK");
    let m = |s: &str| metric(&body, s);
    assert_eq!(
        m(r#"vswitch_port_rx_packets_total{bridge="br0",port="p1"}"#),
        Some(4)
    );
    assert_eq!(
        m(r#"vswitch_port_rx_bytes_total{bridge="br0",port="p1"}"#),
        Some(364)
    );
    assert_eq!(
        m(r#"vswitch_port_rx_flooded_total{bridge="br0",port="p1"}"#),
        Some(3)
    );
    assert_eq!(
        m(r#"vswitch_port_tx_packets_total{bridge="br0",port="p2"}"#),
        Some(3)
    );
    assert_eq!(
        m(r#"vswitch_port_tx_bytes_total{bridge="br0",port="p2"}"#),
        Some(300)
    );
    assert_eq!(
        m(r#"vswitch_port_tx_packets_total{bridge="br0",port="p3"}"#),
        Some(3)
    );
    assert_eq!(
        m(r#"vswitch_port_tx_bytes_total{bridge="br0",port="p3"}"#),
        Some(312)
    );
    assert_eq!(
        m(r#"vswitch_port_rx_packets_total{bridge="br0",port="p4"}"#),
        Some(0)
    );
    assert_eq!(
        m(r#"vswitch_port_drops_total{bridge="br0",port="p1",reason="tagged_on_access"}"#),
        Some(1)
    );
    assert_eq!(
        m(r#"vswitch_port_drops_total{bridge="br0",port="p2",reason="tagged_on_access"}"#),
        Some(0)
    );
    assert_eq!(m(r#"vswitch_fdb_entries{bridge="br0"}"#), Some(2));
    assert_eq!(
        m(r#"vswitch_fdb_events_total{bridge="br0",event="learned"}"#),
        Some(1)
    );
    assert_eq!(
        m(r#"vswitch_pmd_packets_total{bridge="br0",worker="0"}"#),
        Some(4)
    );
    assert_eq!(m("vswitch_scrape_errors"), Some(0));
    assert!(
        body.contains("# TYPE vswitch_port_rx_packets_total counter\n"),
        "{body}"
    );
    let (status, _) = http_get(&d.ns, addr, "/other");
    assert_eq!(status, "HTTP/1.0 404 Not Found");
}

/// An AF_XDP port's MTU is limited to 9216 (above one 4096-byte UMEM frame it runs AF_XDP
/// multi-buffer): add-port and set-port beyond it are refused with the port, the MTU and
/// the maximum named, and nothing changes (running state, file); `reload` of a file with
/// such a port is rejected too. Jumbo MTUs up to the maximum are accepted and the port
/// (re)opens, up.
#[test]
fn afxdp_mtu_above_9216_is_refused_and_jumbo_ports_open() {
    if !root_or_skip("afxdp_mtu_above_9216_is_refused_and_jumbo_ports_open") {
        return;
    }
    let _w = Watchdog::new(
        "afxdp_mtu_above_9216_is_refused_and_jumbo_ports_open",
        Duration::from_secs(60),
    );
    let d = Vswitchd::start(None);
    d.ns.exec(
        "ip",
        &["link", "add", "vx0", "type", "veth", "peer", "name", "vx1"],
    );
    for i in ["vx0", "vx1"] {
        d.ns.exec("ip", &["link", "set", i, "mtu", "9216"]);
        d.ns.exec("ip", &["link", "set", i, "up"]);
    }
    d.ctl(&["add-br", "br0"]).ok();
    let too_big = |port: &str, mtu: u32| {
        format!(
            "vswitchctl: port {port}: MTU {mtu} is too large for an AF_XDP port: at most \
             9216 (frames of MTU + 18 bytes cross workers in 9238-byte buffers)\n"
        )
    };
    for vlan in [["--access", "10"], ["--trunk", "10"]] {
        let r = d.ctl(&[
            "add-port",
            "br0",
            "x",
            "--type",
            "afxdp",
            "--interface",
            "vx0",
            vlan[0],
            vlan[1],
            "--mtu",
            "9217",
        ]);
        assert_eq!(
            (r.code, r.stderr.as_str()),
            (2, too_big("x", 9217).as_str()),
            "{r:?}"
        );
    }
    let show = d.ctl(&["show", "--json"]).json();
    assert_eq!(show[0]["ports"], json!([]), "nothing added");
    let saved = Config::load(&d.config, false).expect("saved config");
    assert!(saved.bridges[0].ports.is_empty());

    // Accepted at 1500, then set-port: over the maximum refused, jumbo MTUs accepted.
    d.ctl(&[
        "add-port",
        "br0",
        "x",
        "--type",
        "afxdp",
        "--interface",
        "vx0",
        "--access",
        "10",
    ])
    .ok();
    let r = d.ctl(&["set-port", "br0", "x", "--mtu", "9217"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (2, too_big("x", 9217).as_str()),
        "{r:?}"
    );
    let show = d.ctl(&["show", "--json"]).json();
    assert_eq!(show[0]["ports"][0]["mtu"], 1500, "{show}");
    assert_eq!(show[0]["ports"][0]["state"], "up", "{show}");
    for mtu in ["9000", "3823", "9216"] {
        d.ctl(&["set-port", "br0", "x", "--mtu", mtu]).ok();
        let show = d.ctl(&["show", "--json"]).json();
        assert_eq!(
            show[0]["ports"][0]["mtu"],
            mtu.parse::<u32>().expect("mtu"),
            "{show}"
        );
        assert_eq!(show[0]["ports"][0]["state"], "up", "MTU {mtu}: {show}");
    }

    // A file asking for more is rejected on reload; the running configuration stays.
    let text = std::fs::read_to_string(&d.config).expect("config text");
    std::fs::write(&d.config, text.replace("mtu = 9216", "mtu = 9300")).expect("write");
    let r = d.ctl(&["reload"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .starts_with("vswitchctl: reload rejected, running configuration kept: ")
            && r.stderr
                .contains("port x: MTU 9300 is too large for an AF_XDP port: at most 9216"),
        "{r:?}"
    );
    let show = d.ctl(&["show", "--json"]).json();
    assert_eq!(show[0]["ports"][0]["mtu"], 9216, "{show}");
}

/// The XDP program on `ifname` in the daemon's namespace: (id, name, vswitch's own).
fn xdp_on(d: &Vswitchd, ifname: &str) -> Option<(u32, String, bool)> {
    let ifname = ifname.to_owned();
    datapath::sys::netns::run_in(&d.ns.path(), move || {
        let idx = datapath::sys::netdev::if_index(&ifname).expect("ifindex");
        let a = datapath::sys::xdp::attached(idx).expect("query XDP")?;
        let who = datapath::sys::xdp::identify(a.prog_id).expect("identify");
        Some((a.prog_id, a.name, who.is_vswitch()))
    })
    .expect("run in the daemon's namespace")
}

/// `add-port` on an interface running someone else's XDP program (a minimal XDP_PASS
/// program standing in for a firewall or libxdp's dispatcher) fails naming the program
/// and the option, leaves it attached (same id) and adds nothing; `--xdp-replace` detaches
/// it, opens the port and keeps the option in the file; `del-port` leaves nothing
/// attached. (Before, the program was replaced silently.)
#[test]
fn add_port_keeps_a_foreign_xdp_program_unless_asked() {
    if !root_or_skip("add_port_keeps_a_foreign_xdp_program_unless_asked") {
        return;
    }
    let _w = Watchdog::new(
        "add_port_keeps_a_foreign_xdp_program_unless_asked",
        Duration::from_secs(60),
    );
    let d = Vswitchd::start(None);
    d.ns.exec(
        "ip",
        &["link", "add", "vf0", "type", "veth", "peer", "name", "vf1"],
    );
    for i in ["vf0", "vf1"] {
        d.ns.exec("ip", &["link", "set", i, "up"]);
    }
    let id = datapath::sys::netns::run_in(&d.ns.path(), || {
        let idx = datapath::sys::netdev::if_index("vf0").expect("ifindex");
        datapath::sys::xdp::attach_foreign_test_program(idx, "fw_pass", 0)
    })
    .expect("run in the daemon's namespace")
    .expect("attach the foreign program");
    d.ctl(&["add-br", "br0"]).ok();
    let add = [
        "add-port",
        "br0",
        "x",
        "--type",
        "afxdp",
        "--interface",
        "vf0",
    ];
    let r = d.ctl(&add);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            1,
            format!(
                "vswitchctl: bridge br0: port x: interface vf0: XDP program fw_pass (id {id}, \
                 native mode) is attached and is not vswitch's; not replacing it: set the \
                 port's xdp_replace option (vswitchctl add-port --xdp-replace, or xdp_replace \
                 = true in its config) to detach it\n"
            )
            .as_str()
        ),
        "{r:?}"
    );
    assert_eq!(xdp_on(&d, "vf0"), Some((id, "fw_pass".to_string(), false)));
    let show = d.ctl(&["show", "--json"]).json();
    assert_eq!(show[0]["ports"], json!([]), "nothing added: {show}");
    let saved = Config::load(&d.config, false).expect("saved config");
    assert!(saved.bridges[0].ports.is_empty());

    let mut replace = add.to_vec();
    replace.push("--xdp-replace");
    d.ctl(&replace).ok();
    let show = d.ctl(&["show", "--json"]).json();
    assert_eq!(show[0]["ports"][0]["state"], "up", "{show}");
    let (now, name, ours) = xdp_on(&d, "vf0").expect("vswitch's program attached");
    assert_ne!(now, id);
    assert_eq!((name.as_str(), ours), ("vswitch_port", true));
    let saved = Config::load(&d.config, false).expect("saved config");
    assert!(
        saved.bridges[0].ports[0].xdp_replace,
        "option kept in the file"
    );
    assert!(std::fs::read_to_string(&d.config)
        .expect("config text")
        .contains("xdp_replace = true"));
    d.ctl(&["del-port", "br0", "x"]).ok();
    assert_eq!(xdp_on(&d, "vf0"), None, "detached by del-port");
}

/// `set-port --mtu` that needs other UMEM frames reopens the AF_XDP port; when the reopen
/// fails (here: its interface was deleted) the command fails with the reason, and the
/// previous configuration stays (running and on disk).
#[test]
fn set_port_mtu_reopen_failure_is_reported_and_rolled_back() {
    if !root_or_skip("set_port_mtu_reopen_failure_is_reported_and_rolled_back") {
        return;
    }
    let _w = Watchdog::new(
        "set_port_mtu_reopen_failure_is_reported_and_rolled_back",
        Duration::from_secs(60),
    );
    let d = Vswitchd::start(None);
    d.ns.exec(
        "ip",
        &["link", "add", "vr0", "type", "veth", "peer", "name", "vr1"],
    );
    for i in ["vr0", "vr1"] {
        d.ns.exec("ip", &["link", "set", i, "up"]);
    }
    d.ctl(&["add-br", "br0"]).ok();
    d.ctl(&[
        "add-port",
        "br0",
        "x",
        "--type",
        "afxdp",
        "--interface",
        "vr0",
        "--access",
        "10",
    ])
    .ok();
    // 1500 -> 2048 needs 4096-byte UMEM frames: reopened, up.
    d.ctl(&["set-port", "br0", "x", "--mtu", "2048"]).ok();
    let show = d.ctl(&["show", "--json"]).json();
    assert_eq!(show[0]["ports"][0]["mtu"], 2048, "{show}");
    assert_eq!(show[0]["ports"][0]["state"], "up", "{show}");
    let file = std::fs::read_to_string(&d.config).expect("config");

    d.ns.exec("ip", &["link", "del", "vr0"]);
    let r = d.ctl(&["set-port", "br0", "x", "--mtu", "1500"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            1,
            "vswitchctl: bridge br0: port x: interface vr0 does not exist; previous \
             configuration restored with: bridge br0: port x: interface vr0 does not exist\n"
        ),
        "{r:?}"
    );
    let show = d.ctl(&["show", "--json"]).json();
    assert_eq!(show[0]["ports"][0]["mtu"], 2048, "{show}");
    assert_eq!(
        std::fs::read_to_string(&d.config).expect("config"),
        file,
        "file unchanged"
    );
}

/// `set-port --mtu` on a tap port changes the MTU of the same device in place, also after
/// the user moved it into another namespace: it stays there (same ifindex, address kept)
/// and the daemon's namespace gets no new device.
#[test]
fn set_port_mtu_on_tap_changes_the_device_in_place() {
    if !root_or_skip("set_port_mtu_on_tap_changes_the_device_in_place") {
        return;
    }
    let _w = Watchdog::new(
        "set_port_mtu_on_tap_changes_the_device_in_place",
        Duration::from_secs(60),
    );
    let d = Vswitchd::start(None);
    d.ctl(&["add-br", "br0"]).ok();
    d.ctl(&["add-port", "br0", "t1", "--type", "tap", "--access", "10"])
        .ok();
    let user = Netns::new("mt");
    d.ns.exec("ip", &["link", "set", "t1", "netns", user.name()]);
    user.exec("ip", &["addr", "add", "10.98.0.1/24", "dev", "t1"]);
    user.exec("ip", &["link", "set", "t1", "up"]);
    let show_link = || {
        let o = run_bounded(
            {
                let mut c = std::process::Command::new("ip");
                c.args(["-n", user.name(), "-o", "addr", "show", "dev", "t1"]);
                c
            },
            Duration::from_secs(5),
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let mtu_of = || {
        let o = run_bounded(
            {
                let mut c = std::process::Command::new("ip");
                c.args(["-n", user.name(), "-o", "link", "show", "dev", "t1"]);
                c
            },
            Duration::from_secs(5),
        );
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let (index, rest) = text.split_once(':').expect("ip -o link line");
        let mtu = rest
            .split_whitespace()
            .skip_while(|w| *w != "mtu")
            .nth(1)
            .and_then(|m| m.parse::<u32>().ok())
            .expect("mtu");
        (index.trim().to_string(), mtu)
    };
    let (index, mtu) = mtu_of();
    assert_eq!(mtu, 1500);
    assert_eq!(
        d.ctl(&["set-port", "br0", "t1", "--mtu", "2048"]).ok(),
        "port t1: access 10\n"
    );
    assert_eq!(mtu_of(), (index.clone(), 2048), "same device, new MTU");
    assert!(show_link().contains("10.98.0.1/24"), "address kept");
    assert_eq!(
        ifindex(&d, "t1"),
        None,
        "no new device in the daemon's namespace"
    );
    let show = d.ctl(&["show", "--json"]).json();
    assert_eq!(show[0]["ports"][0]["mtu"], 2048, "{show}");
    assert_eq!(show[0]["ports"][0]["state"], "up", "{show}");
    d.ctl(&["set-port", "br0", "t1", "--mtu", "1280"]).ok();
    assert_eq!(mtu_of(), (index, 1280));
}

/// `set-port --isolated/--flood-*` and `add-port --flood-*` change the port's policy:
/// shown in `show` (text and JSON), written to the file, and a bad value is a usage error
/// that changes nothing.
#[test]
fn set_port_flood_flags_and_isolation() {
    if !root_or_skip("set_port_flood_flags_and_isolation") {
        return;
    }
    let _w = Watchdog::new(
        "set_port_flood_flags_and_isolation",
        Duration::from_secs(60),
    );
    let d = Vswitchd::start(None);
    d.ctl(&["add-br", "br0"]).ok();
    d.ctl(&[
        "add-port",
        "br0",
        "t1",
        "--type",
        "tap",
        "--access",
        "10",
        "--flood-multicast",
        "off",
    ])
    .ok();
    let port = |d: &Vswitchd| d.ctl(&["show", "--json"]).json()[0]["ports"][0].clone();
    let p = port(&d);
    assert_eq!(p["no_flood"], json!(["multicast"]), "{p}");
    assert_eq!(p.get("isolated"), None, "{p}");
    d.ctl(&[
        "set-port",
        "br0",
        "t1",
        "--flood-unknown",
        "off",
        "--flood-multicast",
        "on",
        "--flood-broadcast",
        "off",
        "--isolated",
        "on",
    ])
    .ok();
    let p = port(&d);
    assert_eq!(p["no_flood"], json!(["unknown", "broadcast"]), "{p}");
    assert_eq!(p["isolated"], true, "{p}");
    assert_eq!(p["vlan"], "access 10", "VLAN mode untouched: {p}");
    let text = d.ctl(&["show"]).ok();
    assert!(text.contains("        isolated\n"), "{text}");
    assert!(
        text.contains("        no flood: unknown broadcast\n"),
        "{text}"
    );
    let saved = Config::load(&d.config, false).expect("saved config");
    let sp = &saved.bridges[0].ports[0];
    assert_eq!(
        (
            sp.isolated,
            sp.flood_unknown,
            sp.flood_multicast,
            sp.flood_broadcast
        ),
        (true, false, true, false)
    );
    let file = std::fs::read_to_string(&d.config).expect("config");
    let r = d.ctl(&["set-port", "br0", "t1", "--flood-unknown", "maybe"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("invalid value 'maybe'"), "{r:?}");
    assert_eq!(std::fs::read_to_string(&d.config).expect("config"), file);
    let r = d.ctl(&["set-port", "br0", "t1"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("nothing to set"), "{r:?}");
    d.ctl(&[
        "set-port",
        "br0",
        "t1",
        "--flood-unknown",
        "on",
        "--flood-broadcast",
        "on",
        "--isolated",
        "off",
    ])
    .ok();
    let p = port(&d);
    assert_eq!(p.get("no_flood"), None, "{p}");
    assert_eq!(p.get("isolated"), None, "{p}");
}

/// `pmd set-poll-mode`: persisted, shown, applied to the running workers without a
/// restart (frames keep flowing, the FDB and counters survive); bad input is a usage
/// error that changes nothing.
#[test]
fn poll_mode_is_set_live_and_persisted() {
    if !root_or_skip("poll_mode_is_set_live_and_persisted") {
        return;
    }
    let _w = Watchdog::new(
        "poll_mode_is_set_live_and_persisted",
        Duration::from_secs(60),
    );
    let d = Vswitchd::start(Some(FOUR_PORTS));
    let c = captures(&d, &["p1", "p2", "p3", "p4"]);
    let mode_of_workers = |d: &Vswitchd| -> Vec<String> {
        let v = d.ctl(&["pmd", "show", "--json"]).json();
        v.as_array()
            .expect("workers")
            .iter()
            .map(|w| w["poll_mode"].as_str().expect("poll_mode").to_string())
            .collect()
    };
    assert_eq!(mode_of_workers(&d), ["adaptive"]);
    let mut sent = 0u64;
    for (mode, window, reply, header) in [
        ("spin", None, "poll mode spin set", "poll mode: spin"),
        ("sleep", None, "poll mode sleep set", "poll mode: sleep"),
        (
            "adaptive",
            Some("5000"),
            "poll mode adaptive (window 5000 us) set",
            "poll mode: adaptive (window 5000 us)",
        ),
    ] {
        let mut args = vec!["pmd", "set-poll-mode", mode];
        if let Some(w) = window {
            args.extend(["--window-us", w]);
        }
        assert_eq!(d.ctl(&args).ok(), format!("{reply}\n"));
        assert_eq!(mode_of_workers(&d), [mode]);
        let text = d.ctl(&["pmd", "show"]).ok();
        assert_eq!(text.lines().next(), Some(header), "{text}");
        let saved = Config::load(&d.config, false).expect("saved config");
        assert_eq!(saved.datapath.poll_mode.name(), mode);
        // Forwarding goes on in the new mode: a broadcast from p1 reaches p2.
        let f = test_frame(BCAST, MAC_A, sent as u32 + 1, 60);
        c[0].send(&f);
        sent += 1;
        assert_eq!(
            c[1].collect_test_frames(1, Duration::from_secs(3)),
            vec![f.clone()],
            "mode {mode}"
        );
    }
    assert_eq!(
        Config::load(&d.config, false)
            .expect("saved config")
            .datapath
            .adaptive_window_us,
        5000
    );
    // No restart: the worker's counters kept every frame.
    let v = d.ctl(&["pmd", "show", "--json"]).json();
    assert_eq!(v[0]["packets"], sent, "{v}");
    assert_eq!(
        d.ctl(&["pmd", "set-poll-mode", "adaptive"]).ok(),
        "poll mode adaptive (window 5000 us) already set\n"
    );

    // Bad input: usage errors, nothing changes.
    let file = std::fs::read_to_string(&d.config).expect("config");
    let r = d.ctl(&["pmd", "set-poll-mode", "busy"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("unknown poll mode \"busy\" (expected spin, adaptive or sleep)"),
        "{r:?}"
    );
    let r = d.ctl(&["pmd", "set-poll-mode", "adaptive", "--window-us", "2000000"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains(
            "datapath.adaptive_window_us: adaptive poll window 2s is longer than the maximum 1s"
        ),
        "{r:?}"
    );
    assert_eq!(std::fs::read_to_string(&d.config).expect("config"), file);
    assert_eq!(mode_of_workers(&d), ["adaptive"]);
}

/// `fdb stats --json` of br0.
fn fdb_stats(d: &Vswitchd) -> serde_json::Value {
    d.ctl(&["fdb", "stats", "br0", "--json"]).json()
}

/// (static entries, static entries removed from the workers' FDBs) of br0.
fn statics(d: &Vswitchd) -> (u64, u64) {
    let s = fdb_stats(d);
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("no {k} in {s}"));
    (n("static_entries"), n("static_removed"))
}

#[test]
fn config_changes_leave_other_static_macs_in_place() {
    if !root_or_skip("config_changes_leave_other_static_macs_in_place") {
        return;
    }
    let _w = Watchdog::new(
        "config_changes_leave_other_static_macs_in_place",
        Duration::from_secs(90),
    );
    let d = Vswitchd::start(Some(&format!("[datapath]\nworkers = 2\n{FOUR_PORTS}")));
    assert_eq!(statics(&d), (1, 0));
    // Changes that do not touch p2's static entry: it is never removed from any worker
    // (a removal, even followed by a re-add, is a window for a spoofed source).
    let extra = "02:00:00:00:00:77";
    for (args, want) in [
        (&["set-port", "br0", "p4", "--access", "30"][..], (1, 0)),
        (&["set-port", "br0", "p1", "--mtu", "1400"], (1, 0)),
        (&["set-port", "br0", "p3", "--flood-unknown", "off"], (1, 0)),
        (
            &["add-port", "br0", "p5", "--type", "tap", "--access", "10"],
            (1, 0),
        ),
        (
            &[
                "fdb", "add", "br0", "--vlan", "10", "--mac", extra, "--port", "p5",
            ],
            (2, 0),
        ),
        (&["del-port", "br0", "p4"], (2, 0)),
        (&["pmd", "set-poll-mode", "sleep"], (2, 0)),
        // Moving a static entry replaces it in place.
        (
            &[
                "fdb", "add", "br0", "--vlan", "10", "--mac", extra, "--port", "p1",
            ],
            (2, 0),
        ),
        // Only the deleted entry goes (once per worker: counted once).
        (
            &["fdb", "del", "br0", "--vlan", "10", "--mac", extra],
            (1, 1),
        ),
        // A port's removal takes its static entries with it, only those.
        (&["del-port", "br0", "p2"], (0, 2)),
    ] {
        d.ctl(args).ok();
        assert_eq!(statics(&d), want, "after {args:?}: {}", fdb_stats(&d));
    }
}

#[test]
fn refused_static_mac_fails_and_leaves_the_file_unchanged() {
    if !root_or_skip("refused_static_mac_fails_and_leaves_the_file_unchanged") {
        return;
    }
    let _w = Watchdog::new(
        "refused_static_mac_fails_and_leaves_the_file_unchanged",
        Duration::from_secs(60),
    );
    // Room for two entries, both static: the workers refuse a third.
    let text = format!(
        "[fdb]\ncapacity = 2\n{FOUR_PORTS}\n[[bridge.static_mac]]\nvlan = 20\n\
         mac = \"02:00:00:00:00:5f\"\nport = \"p3\"\n"
    );
    let d = Vswitchd::start(Some(&text));
    let add = |mac: &str, port: &str| {
        d.ctl(&[
            "fdb", "add", "br0", "--vlan", "10", "--mac", mac, "--port", port,
        ])
    };
    let before = std::fs::read(&d.config).expect("config");
    let r = add("02:00:00:00:00:60", "p1");
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr,
        "vswitchctl: bridge br0: static MAC 02:00:00:00:00:60 vlan 10: FDB full (2 entries, \
         none dynamic to evict); previous configuration restored\n",
        "{r:?}"
    );
    assert_eq!(std::fs::read(&d.config).expect("config"), before);
    let shown = d.ctl(&["fdb", "show", "br0", "--json"]).json();
    assert_eq!(
        shown,
        json!([
            {"vlan": 10, "mac": "02:00:00:00:00:5e", "port": "p2", "static": true, "age": 0},
            {"vlan": 20, "mac": "02:00:00:00:00:5f", "port": "p3", "static": true, "age": 0},
        ]),
        "the refused entry is in no worker, the others stayed"
    );
    assert_eq!(statics(&d), (2, 0));
    // Replacing an entry needs no room; other changes still go through.
    add("02:00:00:00:00:5e", "p3").ok();
    d.ctl(&["set-port", "br0", "p4", "--access", "30"]).ok();
    let cfg = Config::load(&d.config, false).expect("saved config parses");
    assert_eq!(cfg.bridges[0].static_macs.len(), 2, "{cfg:?}");
    assert_eq!(statics(&d), (2, 0));
}
