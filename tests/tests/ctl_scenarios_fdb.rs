//! FDB and port-configuration scenarios (after the Linux bridge selftests
//! `bridge_vlan_aware`/`bridge_port_isolation`/`bridge_locked_port` families and the
//! Open vSwitch `ofproto-dpif` MAC-learning tests) run against vswitchd, configured only
//! through vswitchctl (and `vswitchctl reload` of the file it writes), with hosts in
//! network namespaces behind AF_XDP veth ports. Verdicts come from what the receiving
//! namespaces captured and from exact counter values the daemon reports.
//!
//! 1. a learned entry ages out after `fdb.aging_secs`: known unicast goes to its port only
//!    while it is present, floods again afterwards;
//! 2. per-port flood flags (`flood_unknown`, `flood_multicast`, `flood_broadcast`, set in
//!    the config file and applied by `reload`): known unicast still arrives, each flood
//!    class reaches exactly the ports whose flag is on;
//! 3. static entries: `fdb add`/`del`/`flush` (by VLAN, port, MAC, all): flushes remove
//!    dynamic entries only (as `fdb flush --help` and `datapath::fdb` document), static
//!    entries keep forwarding to their port;
//! 4. a bad port (missing interface on `add-port`, invalid port on `reload`) fails once
//!    with the reason, nothing changes, the other ports keep forwarding;
//! 5. removing a tagged VLAN from a trunk with a native VLAN leaves the native VLAN and the
//!    other tagged VLAN alone; frames of the removed VLAN are dropped as
//!    `vlan_not_allowed`.
//!
//! Test frames are sent raw through an AF_PACKET socket on the sending host's interface
//! (the same socket captures what arrives there; its own transmissions are not captured).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use vswitch_tests::daemon::{config, wait_until, Daemon};
use vswitch_tests::lab::{collect, seqs, Lab};
use vswitch_tests::per_workers;
use vswitch_tests::testutil::test_seq;
use vswitch_tests::{
    assert_ping_ok, drain, eth_frame, mac_string, outer_vlan, src_mac, Host, Watchdog,
};

const BR: &str = "br0";
const BCAST: [u8; 6] = [0xff; 6];
const MCAST: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x42];

fn ip(net: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 83, net, host)
}

fn range(r: std::ops::Range<u32>) -> Vec<u32> {
    r.collect()
}

/// A locally administered unicast MAC built from `tag` and `i`.
fn test_mac(tag: u8, i: u8) -> [u8; 6] {
    [0x02, 0x5f, tag, 0x00, (std::process::id() & 0xff) as u8, i]
}

/// A config file with `workers` PMD threads and a short FDB aging time.
fn config_aging(workers: usize, aging_secs: u64) -> String {
    format!(
        "[datapath]\nworkers = {workers}\n\n[fdb]\ncapacity = 4096\naging_secs = {aging_secs}\n"
    )
}

fn entry(vlan: u64, mac: [u8; 6], port: &str, is_static: bool) -> (u64, String, String, bool) {
    (vlan, mac_string(mac), port.to_string(), is_static)
}

// ---------------------------------------------------------------------------------------
// 1. Aging.

fn learning_ages_out(workers: usize, net: u8) {
    const AGING: u64 = 3;
    let a10 = ["--access", "10"];
    // Placement with 2 workers: a 0, b 1, c 0.
    let l = Lab::new(
        &config_aging(workers, AGING),
        |h| ip(net, h),
        &[("a", &a10), ("b", &a10), ("c", &a10)],
    );
    assert_eq!(l.dmn.fdb_counter(BR, "aging_secs"), AGING);
    let m = test_mac(1, 1);
    let c_mac = l.host("c").mac;

    l.send("a", &[eth_frame(BCAST, m, &[], 1, 60)]);
    let learned_at = Instant::now();
    wait_until(Duration::from_secs(5), "m learned on a", || {
        l.fdb_for(m) == vec![entry(10, m, "a", false)]
    });
    l.drain_all();
    // While present, known unicast to m goes to a only.
    l.send("c", &[eth_frame(m, c_mac, &[], 10, 60)]);
    assert!(
        learned_at.elapsed() < Duration::from_secs(AGING - 1),
        "too slow to check the entry before it can age ({:?})",
        learned_at.elapsed()
    );
    assert_eq!(seqs(&collect(l.cap("a"), 1, 10..11)), vec![10], "a gets it");
    assert!(
        collect(l.cap("b"), 0, 10..11).is_empty(),
        "b got unicast to a present entry (flooded?)"
    );
    assert_eq!(l.dmn.fdb_counter(BR, "expired"), 0);

    // It goes after the aging time (1 s resolution), not before AGING - 1 s.
    wait_until(
        Duration::from_secs(AGING + 5),
        "m aged out of fdb show",
        || l.fdb_for(m).is_empty(),
    );
    let gone_after = learned_at.elapsed();
    assert!(
        gone_after >= Duration::from_secs(AGING - 1),
        "m left the table after {gone_after:?}, aging time {AGING} s"
    );
    // c's own MAC (learned at the unicast above) may have aged too; m is gone for sure.
    let st = l.dmn.fdb_stats(BR);
    assert!(st["expired"].as_u64().expect("expired") >= 1, "{st}");
    assert!(
        l.dmn
            .fdb_entries(BR)
            .iter()
            .all(|e| e.1 == mac_string(c_mac)),
        "only c's MAC may remain: {:?}",
        l.dmn.fdb_entries(BR)
    );

    // Unicast to m is unknown again: floods to a and b.
    l.send(
        "c",
        &[
            eth_frame(m, c_mac, &[], 30, 60),
            eth_frame(m, c_mac, &[], 31, 60),
        ],
    );
    assert_eq!(seqs(&collect(l.cap("a"), 2, 30..32)), vec![30, 31]);
    assert_eq!(seqs(&collect(l.cap("b"), 2, 30..32)), vec![30, 31]);
    assert!(collect(l.cap("c"), 0, 0..100).is_empty(), "sent back to c");
    // Nothing learned m meanwhile.
    assert!(l.fdb_for(m).is_empty(), "{:?}", l.fdb_for(m));
}
per_workers!(learning_ages_out, 1);

// ---------------------------------------------------------------------------------------
// 2. Flood flags.

/// Sets `key = value` in the `[[bridge.port]]` block of port `port` of a config file text
/// as vswitchd writes it (every flood key present).
fn set_port_key(text: &str, port: &str, key: &str, value: &str) -> String {
    let mut out = Vec::new();
    let mut in_port = false;
    let mut current = String::new();
    let mut done = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_port = t == "[[bridge.port]]";
            current.clear();
        } else if in_port && t.starts_with("name = ") {
            current = t["name = ".len()..].trim_matches('"').to_string();
        }
        if in_port && current == port && t.starts_with(&format!("{key} = ")) {
            out.push(format!("{key} = {value}"));
            done = true;
        } else {
            out.push(line.to_string());
        }
    }
    assert!(done, "no key {key} for port {port} in:\n{text}");
    out.join("\n") + "\n"
}

fn flood_flags(workers: usize, net: u8) {
    let a10 = ["--access", "10"];
    // s sends; nouc: flood_unknown off; nomc: flood_multicast off; nobc: flood_broadcast
    // off; dst: all three off (reached only by known unicast).
    let l = Lab::new(
        &config(workers, 4096),
        |h| ip(net, h),
        &[
            ("s", &a10),
            ("nouc", &a10),
            ("nomc", &a10),
            ("nobc", &a10),
            ("dst", &a10),
        ],
    );
    let mut text = std::fs::read_to_string(&l.dmn.config).expect("config text");
    text = set_port_key(&text, "nouc", "flood_unknown", "false");
    text = set_port_key(&text, "nomc", "flood_multicast", "false");
    text = set_port_key(&text, "nobc", "flood_broadcast", "false");
    for k in ["flood_unknown", "flood_multicast", "flood_broadcast"] {
        text = set_port_key(&text, "dst", k, "false");
    }
    std::fs::write(&l.dmn.config, &text).expect("write config");
    l.dmn.ctl_ok(&["reload"]);
    let ports = l.dmn.ports(BR);
    assert_eq!(ports.len(), 5, "{ports:?}");
    assert!(ports.iter().all(|p| p["state"] == "up"), "{ports:?}");

    let s_mac = l.host("s").mac;
    let d_mac = l.host("dst").mac;
    // dst's MAC is learned from a frame it sends (to s's MAC: unknown, floods).
    l.send("dst", &[eth_frame(s_mac, d_mac, &[], 1, 60)]);
    wait_until(Duration::from_secs(5), "dst's MAC learned", || {
        l.fdb_for(d_mac) == vec![entry(10, d_mac, "dst", false)]
    });
    // The flags hold for dst's unknown unicast too: nouc does not get it.
    assert_eq!(seqs(&collect(l.cap("s"), 1, 1..2)), vec![1]);
    assert_eq!(seqs(&collect(l.cap("nomc"), 1, 1..2)), vec![1]);
    assert_eq!(seqs(&collect(l.cap("nobc"), 1, 1..2)), vec![1]);
    assert!(
        collect(l.cap("nouc"), 0, 1..2).is_empty(),
        "nouc got unknown unicast"
    );
    l.drain_all();
    let s_before = l.dmn.port_stats(BR, "s");
    let tx0 = l.tx();

    let unknown = test_mac(2, 0x99);
    let mut frames = Vec::new();
    for i in 0..2 {
        frames.push(eth_frame(d_mac, s_mac, &[], 100 + i, 60)); // known unicast
    }
    for i in 0..3 {
        frames.push(eth_frame(unknown, s_mac, &[], 110 + i, 60));
    }
    for i in 0..4 {
        frames.push(eth_frame(MCAST, s_mac, &[], 120 + i, 60));
    }
    for i in 0..5 {
        frames.push(eth_frame(BCAST, s_mac, &[], 130 + i, 60));
    }
    l.send("s", &frames);

    let uc = range(110..113);
    let mc = range(120..124);
    let bc = range(130..135);
    let cat = |parts: &[&Vec<u32>]| -> Vec<u32> {
        let mut v: Vec<u32> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        v.sort_unstable();
        v
    };
    let want = [
        ("dst", vec![100, 101]),
        ("nouc", cat(&[&mc, &bc])),
        ("nomc", cat(&[&uc, &bc])),
        ("nobc", cat(&[&uc, &mc])),
    ];
    for (h, w) in &want {
        let got = collect(l.cap(h), w.len(), 100..200);
        assert_eq!(seqs(&got), *w, "frames captured at {h}");
        for f in &got {
            assert_eq!(outer_vlan(f).1, None, "tagged frame at {h}");
        }
    }
    assert!(
        collect(l.cap("s"), 0, 100..200).is_empty(),
        "reflected to s"
    );
    let tx1 = l.tx();
    let dtx: Vec<u64> = tx1.iter().zip(&tx0).map(|(a, b)| a - b).collect();
    assert_eq!(dtx, vec![0, 9, 8, 7, 2], "tx deltas s nouc nomc nobc dst");
    let s_after = l.dmn.port_stats(BR, "s");
    assert_eq!(
        s_after.rx_flooded - s_before.rx_flooded,
        12,
        "unknown + multicast + broadcast flooded from s: {s_after:?}"
    );
    assert_eq!(s_after.total_drops(), 0, "{s_after:?}");
}
per_workers!(flood_flags, 2);

// ---------------------------------------------------------------------------------------
// 3. Static entries: add, del, flush.

fn static_entries_and_flush(workers: usize, net: u8) {
    // Placement with 2 workers: a 0, b 1, c 0, d 1.
    let l = Lab::new(
        &config(workers, 4096),
        |h| ip(net, h),
        &[
            ("a", &["--access", "10"]),
            ("b", &["--access", "10"]),
            ("c", &["--trunk", "10,20"]),
            ("d", &["--access", "20"]),
        ],
    );
    let fdb = |args: &[&str]| {
        let mut all = vec!["fdb"];
        all.extend_from_slice(args);
        l.dmn.ctl_ok(&all)
    };
    let s1 = test_mac(3, 0x51);
    let s2 = test_mac(3, 0x52);
    let (x1, x2, x3, x4) = (
        test_mac(3, 1),
        test_mac(3, 2),
        test_mac(3, 3),
        test_mac(3, 4),
    );
    let all = [s1, s2, x1, x2, x3, x4];
    fdb(&[
        "add",
        BR,
        "--vlan",
        "10",
        "--mac",
        &mac_string(s1),
        "--port",
        "a",
    ]);
    fdb(&[
        "add",
        BR,
        "--vlan",
        "20",
        "--mac",
        &mac_string(s2),
        "--port",
        "d",
    ]);
    let text = std::fs::read_to_string(&l.dmn.config).expect("config");
    for s in [s1, s2] {
        assert!(
            text.contains(&mac_string(s)),
            "static {} persisted: {text}",
            mac_string(s)
        );
    }
    // Dynamic: x1 on b (10), x2 on d (20), x3 on c (10), x4 on c (20).
    l.send("b", &[eth_frame(BCAST, x1, &[], 1, 60)]);
    l.send("d", &[eth_frame(BCAST, x2, &[], 2, 60)]);
    l.send(
        "c",
        &[
            eth_frame(BCAST, x3, &[10], 3, 64),
            eth_frame(BCAST, x4, &[20], 4, 64),
        ],
    );
    let mut full = vec![
        entry(10, s1, "a", true),
        entry(20, s2, "d", true),
        entry(10, x1, "b", false),
        entry(20, x2, "d", false),
        entry(10, x3, "c", false),
        entry(20, x4, "c", false),
    ];
    full.sort();
    wait_until(Duration::from_secs(5), "six entries", || {
        l.fdb_of(&all) == full
    });
    let st = l.dmn.fdb_stats(BR);
    assert_eq!(st["static_entries"], 2, "{st}");
    assert_eq!(st["entries"], 6, "{st}");
    let keep = |e: &(u64, String, String, bool), gone: &[[u8; 6]]| {
        !gone.iter().any(|m| mac_string(*m) == e.1)
    };

    // Flush by VLAN 20: x2 and x4 go; s2 (static, VLAN 20) stays.
    fdb(&["flush", BR, "--vlan", "20"]);
    let want: Vec<_> = full
        .iter()
        .filter(|e| keep(e, &[x2, x4]))
        .cloned()
        .collect();
    assert_eq!(l.fdb_of(&all), want, "after flush --vlan 20");
    // Flush by port c: x3 goes.
    fdb(&["flush", BR, "--port", "c"]);
    let want: Vec<_> = full
        .iter()
        .filter(|e| keep(e, &[x2, x4, x3]))
        .cloned()
        .collect();
    assert_eq!(l.fdb_of(&all), want, "after flush --port c");
    // Flush by the static MAC s1 and by port a (which holds only s1): s1 stays.
    fdb(&["flush", BR, "--mac", &mac_string(s1)]);
    fdb(&["flush", BR, "--port", "a"]);
    assert_eq!(l.fdb_of(&all), want, "statics survive flush by MAC/port");
    // Flush all: only the statics remain.
    fdb(&["flush", BR]);
    let statics = vec![entry(10, s1, "a", true), entry(20, s2, "d", true)];
    assert_eq!(l.fdb_of(&all), statics, "after flush (all)");
    let st = l.dmn.fdb_stats(BR);
    assert_eq!(st["static_entries"], 2, "{st}");
    assert_eq!(st["entries"], 2, "nothing but the statics: {st}");
    l.drain_all();

    // Statics forward: c sends to s1 (VLAN 10) and s2 (VLAN 20).
    let c_mac = l.host("c").mac;
    l.send(
        "c",
        &[
            eth_frame(s1, c_mac, &[10], 200, 64),
            eth_frame(s1, c_mac, &[10], 201, 64),
            eth_frame(s2, c_mac, &[20], 210, 64),
        ],
    );
    assert_eq!(seqs(&collect(l.cap("a"), 2, 200..220)), vec![200, 201]);
    assert_eq!(seqs(&collect(l.cap("d"), 1, 200..220)), vec![210]);
    assert!(
        collect(l.cap("b"), 0, 200..220).is_empty(),
        "b got static unicast"
    );

    // A dynamic entry deleted with `fdb del`.
    l.send("b", &[eth_frame(BCAST, x1, &[], 5, 60)]);
    wait_until(Duration::from_secs(5), "x1 relearned", || {
        l.fdb_for(x1) == vec![entry(10, x1, "b", false)]
    });
    fdb(&["del", BR, "--vlan", "10", "--mac", &mac_string(x1)]);
    assert!(l.fdb_for(x1).is_empty(), "{:?}", l.fdb_for(x1));

    // `fdb del` of a static: gone from the table and the file; unicast to it floods.
    fdb(&["del", BR, "--vlan", "10", "--mac", &mac_string(s1)]);
    assert!(l.fdb_for(s1).is_empty(), "{:?}", l.fdb_for(s1));
    let text = std::fs::read_to_string(&l.dmn.config).expect("config");
    assert!(
        !text.contains(&mac_string(s1)),
        "s1 still in the file: {text}"
    );
    assert!(
        text.contains(&mac_string(s2)),
        "s2 lost from the file: {text}"
    );
    l.drain_all();
    l.send("c", &[eth_frame(s1, c_mac, &[10], 300, 64)]);
    assert_eq!(seqs(&collect(l.cap("a"), 1, 300..301)), vec![300]);
    assert_eq!(seqs(&collect(l.cap("b"), 1, 300..301)), vec![300]);
    assert!(
        collect(l.cap("d"), 0, 300..301).is_empty(),
        "VLAN 10 reached d"
    );
    assert_eq!(l.fdb_of(&all), vec![entry(20, s2, "d", true)]);
}
per_workers!(static_entries_and_flush, 3);

// ---------------------------------------------------------------------------------------
// 4. Bad port configuration.

fn bad_port_config(workers: usize, net: u8) {
    let a = Host::with_offloads("sg", ip(net, 1));
    let b = Host::with_offloads("sg", ip(net, 2));
    let dmn = Daemon::start(&config(workers, 4096));
    let _wd = Watchdog::new(Duration::from_secs(60), "bad port config", dmn.pid());
    dmn.add_br(BR);
    dmn.add_port(BR, "a", a.switch_if(), &["--access", "10"]);
    dmn.add_port(BR, "b", b.switch_if(), &["--access", "10"]);
    assert_ping_ok(&a, b.ip, 2);
    let show0 = dmn.ctl_json(&["show"]);
    let file0 = std::fs::read_to_string(&dmn.config).expect("config");

    // add-port on a missing interface: exit 1, the port and the interface named, nothing
    // added.
    let missing = format!("vsnx{}", std::process::id() % 100_000);
    let r = dmn.ctl(&[
        "add-port",
        BR,
        "ghost",
        "--type",
        "afxdp",
        "--interface",
        &missing,
        "--access",
        "10",
    ]);
    assert_eq!(r.status.and_then(|s| s.code()), Some(1), "{r:?}");
    assert_eq!(
        r.stderr.trim_end(),
        format!("vswitchctl: bridge {BR}: port ghost: interface {missing} does not exist"),
        "{r:?}"
    );
    assert_eq!(r.stdout, "", "{r:?}");
    assert_eq!(dmn.ctl_json(&["show"]), show0, "show changed");
    assert_eq!(
        std::fs::read_to_string(&dmn.config).expect("config"),
        file0,
        "the file changed"
    );
    let failures = dmn
        .log_lines()
        .iter()
        .filter(|l| l.contains(&missing))
        .count();
    assert!(
        failures <= 1,
        "logged more than once: {:?}",
        dmn.log_lines()
    );
    assert_ping_ok(&a, b.ip, 2);
    assert_ping_ok(&b, a.ip, 2);

    // A file with an invalid port (access and trunk both set) is rejected on reload with
    // the line naming the port and the reason; the running state is kept.
    let bad = format!(
        "{file0}\n[[bridge.port]]\nname = \"badp\"\ntype = \"afxdp\"\ninterface = \"{}\"\naccess = 10\ntrunk = \"10\"\n",
        missing
    );
    let line = bad
        .lines()
        .position(|l| l == "name = \"badp\"")
        .expect("line")
        + 1;
    std::fs::write(&dmn.config, &bad).expect("write");
    let r = dmn.ctl(&["reload"]);
    assert_eq!(r.status.and_then(|s| s.code()), Some(1), "{r:?}");
    assert_eq!(
        r.stderr.trim_end(),
        format!(
            "vswitchctl: reload rejected, running configuration kept: {}: line {line}: port badp: set either access or trunk, not both",
            dmn.config.display()
        ),
        "{r:?}"
    );
    assert_eq!(
        dmn.ctl_json(&["show"]),
        show0,
        "show changed on a rejected reload"
    );
    let cap_b = b.capture();
    assert_ping_ok(&a, b.ip, 2);
    assert!(
        drain(&cap_b).iter().any(|f| src_mac(f) == Some(a.mac)),
        "b captured nothing from a after the rejected reload"
    );
    for p in ["a", "b"] {
        let st = dmn.port_stats(BR, p);
        assert_eq!(st.total_drops(), 0, "{st:?}");
    }
    // Restore the good file so that a later reload would not trip on it.
    std::fs::write(&dmn.config, &file0).expect("write");
    dmn.ctl_ok(&["reload"]);
    assert_eq!(dmn.ctl_json(&["show"]), show0);
}
per_workers!(bad_port_config, 4);

// ---------------------------------------------------------------------------------------
// 5. VLAN removal from a trunk with a native VLAN.

/// Sends untagged, VLAN 10 and VLAN 20 frames from t (3 each, seq base+0.., +10.., +20..)
/// and returns what n (native 5), a (10), b (20) captured.
fn trunk_round(l: &Lab, base: u32) -> [Vec<u32>; 3] {
    let t_mac = l.host("t").mac;
    let mut frames = Vec::new();
    for i in 0..3 {
        frames.push(eth_frame(BCAST, t_mac, &[], base + i, 60));
        frames.push(eth_frame(BCAST, t_mac, &[10], base + 10 + i, 64));
        frames.push(eth_frame(BCAST, t_mac, &[20], base + 20 + i, 64));
    }
    l.send("t", &frames);
    let r = base..base + 30;
    let n = collect(l.cap("n"), 3, r.clone());
    let a = collect(l.cap("a"), 3, r.clone());
    let b = collect(l.cap("b"), 3, r);
    for f in n.iter().chain(&a).chain(&b) {
        assert_eq!(outer_vlan(f).1, None, "tagged at an access host: {f:02x?}");
    }
    [seqs(&n), seqs(&a), seqs(&b)]
}

fn vlan_removal_keeps_native(workers: usize, net: u8) {
    // Placement with 2 workers: t 0, n 1, a 0, b 1.
    let l = Lab::new(
        &config(workers, 4096),
        |h| ip(net, h),
        &[
            ("t", &["--trunk", "10,20", "--native", "5"]),
            ("n", &["--access", "5"]),
            ("a", &["--access", "10"]),
            ("b", &["--access", "20"]),
        ],
    );
    assert_eq!(l.dmn.port_view(BR, "t")["vlan"], "trunk 10,20 native 5");
    let [n, a, b] = trunk_round(&l, 1000);
    assert_eq!(n, range(1000..1003), "native before");
    assert_eq!(a, range(1010..1013), "VLAN 10 before");
    assert_eq!(b, range(1020..1023), "VLAN 20 before");
    let st0 = l.dmn.port_stats(BR, "t");
    assert_eq!(st0.total_drops(), 0, "{st0:?}");

    // Remove VLAN 20 (the mode is restated whole: set-port replaces the VLAN mode).
    let out = l
        .dmn
        .ctl_ok(&["set-port", BR, "t", "--trunk", "10", "--native", "5"]);
    assert_eq!(out.trim_end(), "port t: trunk 10 native 5");
    assert_eq!(l.dmn.port_view(BR, "t")["vlan"], "trunk 10 native 5");
    l.drain_all();
    let [n, a, b] = trunk_round(&l, 2000);
    assert_eq!(n, range(2000..2003), "native after removing VLAN 20");
    assert_eq!(a, range(2010..2013), "VLAN 10 after removing VLAN 20");
    assert_eq!(b, Vec::<u32>::new(), "VLAN 20 after its removal");
    let st = l.dmn.port_stats(BR, "t");
    assert_eq!(st.drop("vlan_not_allowed"), 3, "{st:?}");
    assert_eq!(st.total_drops(), 3, "{st:?}");

    // The other way: n, a, b broadcast; t gets native untagged and VLAN 10 tagged only.
    let cap_t = l.cap("t");
    drain(cap_t);
    let (nm, am, bm) = (l.host("n").mac, l.host("a").mac, l.host("b").mac);
    l.send("n", &[eth_frame(BCAST, nm, &[], 3000, 60)]);
    l.send("a", &[eth_frame(BCAST, am, &[], 3010, 60)]);
    l.send("b", &[eth_frame(BCAST, bm, &[], 3020, 60)]);
    let at_t = collect(cap_t, 2, 3000..3030);
    let mut got: Vec<(u32, Option<u16>)> = at_t
        .iter()
        .map(|f| (test_seq(f).expect("seq"), outer_vlan(f).1))
        .collect();
    got.sort_unstable();
    assert_eq!(
        got,
        vec![(3000, None), (3010, Some(10))],
        "at the trunk host"
    );
}
per_workers!(vlan_removal_keeps_native, 5);

/// Removing the last tagged VLAN leaves a trunk carrying only its native VLAN.
#[test]
fn last_tagged_vlan_removal_keeps_trunk_closed() {
    if !vswitch_tests::root_or_skip("last_tagged_vlan_removal_keeps_trunk_closed") {
        return;
    }
    let net = 6;
    let l = Lab::new(
        &config(1, 4096),
        |h| ip(net, h),
        &[
            ("t", &["--trunk", "10,20", "--native", "5"]),
            ("n", &["--access", "5"]),
            ("a", &["--access", "10"]),
            ("b", &["--access", "20"]),
        ],
    );
    l.dmn
        .ctl_ok(&["set-port", BR, "t", "--trunk", "10", "--native", "5"]);
    l.dmn
        .ctl_ok(&["set-port", BR, "t", "--trunk", "5", "--native", "5"]);
    let vlan = l.dmn.port_view(BR, "t")["vlan"].clone();
    let [n, a, b] = trunk_round(&l, 1000);
    assert_eq!(
        (n, a, b),
        (range(1000..1003), Vec::new(), Vec::new()),
        "(native, VLAN 10, VLAN 20) frames delivered; t is shown as {vlan}"
    );
    let st = l.dmn.port_stats(BR, "t");
    assert_eq!(st.drop("vlan_not_allowed"), 6, "{st:?}");
}
