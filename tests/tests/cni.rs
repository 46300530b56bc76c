//! vswitch-cni driven directly with the CNI environment (as a runtime does): ADD, CHECK,
//! DEL, VERSION, STATUS and GC against a real vswitchd, host-local IPAM and network
//! namespaces; results, ports (`show --json`), addresses and IPAM leases checked value by
//! value; bad input and a stopped vswitchd give the spec's error codes. Root only.

use std::path::Path;

use serde_json::{json, Value};
use vswitch_tests::cni::{cni, ip_json, link_exists, port_of, require_plugins, TempDir};
use vswitch_tests::daemon::{config, Daemon};
use vswitch_tests::testutil::{unique_name, Netns};
use vswitch_tests::{ping_from, root_or_skip};

/// A network configuration on `bridge` of daemon `d`, IPAM host-local in 10.231.N.0/24
/// (addresses from .20 on, gateway .1), state and leases under `tmp`.
fn netconf(
    version: &str,
    name: &str,
    d: &Daemon,
    bridge: &str,
    n: u8,
    tmp: &TempDir,
    extra: Value,
) -> Value {
    let mut c = json!({
        "cniVersion": version,
        "name": name,
        "type": "vswitch-cni",
        "bridge": bridge,
        "socket": d.socket,
        "stateDir": tmp.join("state"),
        "ipam": {
            "type": "host-local",
            "dataDir": tmp.join("ipam"),
            "ranges": [[{
                "subnet": format!("10.231.{n}.0/24"),
                "rangeStart": format!("10.231.{n}.20"),
                "rangeEnd": format!("10.231.{n}.29"),
                "gateway": format!("10.231.{n}.1"),
            }]],
            "routes": [{"dst": "0.0.0.0/0"}],
        },
        "dns": {"nameservers": [format!("10.231.{n}.53")]},
    });
    for (k, v) in extra.as_object().expect("extra is an object") {
        c[k] = v.clone();
    }
    c
}

fn lease(tmp: &TempDir, network: &str, ip: &str) -> bool {
    Path::new(&tmp.join("ipam")).join(network).join(ip).exists()
}

fn start(bridge: &str) -> Daemon {
    let d = Daemon::start(&config(1, 4096));
    d.add_br(bridge);
    d
}

#[test]
fn cni_add_check_del_version_and_errors() {
    if !root_or_skip("cni_add_check_del_version_and_errors") {
        return;
    }
    require_plugins();
    let tmp = TempDir::new("cni");
    let bridge = unique_name("cb");
    let d = start(&bridge);
    let a = Netns::new("cna");
    let b = Netns::new("cnb");
    let net = unique_name("net");
    let conf = netconf(
        "1.0.0",
        &net,
        &d,
        &bridge,
        7,
        &tmp,
        json!({"vlan": 100, "mtu": 1400}),
    );
    let text = conf.to_string();
    let cid_a = format!("{}a0c1d2e3f4a5b6c7d8e9f0", unique_name("c"));
    let cid_b = format!("{}b0c1d2e3f4a5b6c7d8e9f0", unique_name("c"));

    // VERSION.
    let v = cni("VERSION", "", "", "", "", r#"{"cniVersion":"1.0.0"}"#).ok();
    assert_eq!(
        v,
        json!({"cniVersion": "1.0.0",
               "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
    );

    // ADD with a requested MAC and the pod named in CNI_ARGS.
    let args = "IgnoreUnknown=1;MAC=02:00:00:cc:00:01;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1";
    let r = cni("ADD", &cid_a, &a.path(), "eth0", args, &text).ok();
    let host_if = r["interfaces"][0]["name"]
        .as_str()
        .expect("host end")
        .to_string();
    assert!(
        host_if.len() <= 15 && host_if.ends_with("-eth0"),
        "{host_if}"
    );
    assert_eq!(r["cniVersion"], "1.0.0");
    assert_eq!(r["interfaces"].as_array().map(Vec::len), Some(2), "{r}");
    assert_eq!(r["interfaces"][0].get("sandbox"), None, "{r}");
    assert_eq!(
        r["interfaces"][1],
        json!({"name": "eth0", "mac": "02:00:00:cc:00:01", "sandbox": a.path()})
    );
    assert_eq!(
        r["ips"],
        json!([{"address": "10.231.7.20/24", "gateway": "10.231.7.1", "interface": 1}])
    );
    assert_eq!(r["routes"], json!([{"dst": "0.0.0.0/0"}]));
    assert_eq!(r["dns"], json!({"nameservers": ["10.231.7.53"]}));
    assert!(lease(&tmp, &net, "10.231.7.20"));
    assert!(Path::new(&tmp.join("state"))
        .join(&net)
        .join(format!("{cid_a}-eth0.json"))
        .exists());

    // The port: named like the host end, a packet port in VLAN 100, MTU 1400, owned.
    let show = d.ctl_json(&["show"]);
    let p = port_of(&show, &bridge, &cid_a, "eth0").expect("the attachment's port");
    assert_eq!(p["name"], host_if.as_str());
    assert_eq!(p["interface"], host_if.as_str());
    assert_eq!(p["type"], "packet");
    assert_eq!(p["vlan"], "access 100");
    assert_eq!(p["mtu"], 1400);
    assert_eq!(p["state"], "up");
    assert_eq!(
        p["owner"],
        json!({"by": "cni", "container_id": cid_a, "ifname": "eth0", "netns": a.path(),
               "network": net, "pod": "default/web-1"})
    );
    let text_show = d.ctl_ok(&["show"]);
    let short: String = cid_a.chars().take(12).collect();
    assert!(
        text_show.contains(&format!(
            "owner: cni pod default/web-1 container {short} eth0 network {net}"
        )),
        "{text_show}"
    );
    // The pod's interface and the host end.
    let l = ip_json(Some(a.name()), &["addr", "show", "dev", "eth0"]);
    assert_eq!(l[0]["mtu"], 1400);
    assert_eq!(l[0]["address"], "02:00:00:cc:00:01");
    assert!(l[0]["flags"]
        .as_array()
        .expect("flags")
        .contains(&json!("UP")));
    let v4: Vec<String> = l[0]["addr_info"]
        .as_array()
        .expect("addr_info")
        .iter()
        .filter(|x| x["family"] == "inet")
        .map(|x| format!("{}/{}", x["local"].as_str().unwrap_or(""), x["prefixlen"]))
        .collect();
    assert_eq!(v4, vec!["10.231.7.20/24"]);
    let routes = ip_json(Some(a.name()), &["route", "show", "default"]);
    assert_eq!(routes[0]["gateway"], "10.231.7.1");
    let h = ip_json(None, &["link", "show", "dev", &host_if]);
    assert_eq!(h[0]["mtu"], 1400);
    let v6 = std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{host_if}/disable_ipv6"))
        .expect("host end's disable_ipv6");
    assert_eq!(v6.trim(), "1", "IPv6 on the host end (a switch port)");

    // CHECK passes, and fails on a changed VLAN or a lost address.
    let mut check_conf = conf.clone();
    check_conf["prevResult"] = r.clone();
    let check_text = check_conf.to_string();
    assert_eq!(
        cni("CHECK", &cid_a, &a.path(), "eth0", args, &check_text).ok(),
        Value::Null
    );
    d.ctl_ok(&["set-port", &bridge, &host_if, "--access", "200"]);
    let m = cni("CHECK", &cid_a, &a.path(), "eth0", args, &check_text).err(999);
    assert_eq!(
        m,
        format!("port {host_if}: VLAN access 200, the network says access 100")
    );
    d.ctl_ok(&["set-port", &bridge, &host_if, "--access", "100"]);
    a.exec("ip", &["addr", "del", "10.231.7.20/24", "dev", "eth0"]);
    let m = cni("CHECK", &cid_a, &a.path(), "eth0", args, &check_text).err(999);
    assert!(m.starts_with("eth0 lacks address 10.231.7.20/24"), "{m}");
    a.exec("ip", &["addr", "add", "10.231.7.20/24", "dev", "eth0"]);
    cni("CHECK", &cid_a, &a.path(), "eth0", args, &check_text).ok();

    // A second pod on the network: the next address, and the two ping each other.
    let r2 = cni("ADD", &cid_b, &b.path(), "eth0", "", &text).ok();
    assert_eq!(r2["ips"][0]["address"], "10.231.7.21/24");
    let pr = ping_from(&a, "10.231.7.21".parse().expect("ip"), 3);
    assert_eq!(pr.received, 3, "ping a -> b: {pr:?}");

    // DEL: port, host end, lease and record gone; again: still fine.
    assert_eq!(
        cni("DEL", &cid_a, &a.path(), "eth0", args, &text).ok(),
        Value::Null
    );
    let show = d.ctl_json(&["show"]);
    assert_eq!(port_of(&show, &bridge, &cid_a, "eth0"), None);
    assert!(!link_exists(None, &host_if));
    assert!(!link_exists(Some(a.name()), "eth0"));
    assert!(!lease(&tmp, &net, "10.231.7.20"));
    assert!(!Path::new(&tmp.join("state"))
        .join(&net)
        .join(format!("{cid_a}-eth0.json"))
        .exists());
    cni("DEL", &cid_a, &a.path(), "eth0", args, &text).ok();

    // DEL after the namespace is gone.
    let b_path = b.path();
    let host_b = r2["interfaces"][0]["name"]
        .as_str()
        .expect("host end")
        .to_string();
    drop(b);
    cni("DEL", &cid_b, &b_path, "eth0", "", &text).ok();
    let show = d.ctl_json(&["show"]);
    assert_eq!(port_of(&show, &bridge, &cid_b, "eth0"), None);
    assert!(!link_exists(None, &host_b));
    assert!(!lease(&tmp, &net, "10.231.7.21"));
    // ... also without CNI_NETNS at all.
    cni("DEL", &cid_b, "", "eth0", "", &text).ok();

    // Bad input: the spec's codes, a message naming the problem, nothing created.
    let bad = |c: Value| cni("ADD", &cid_a, &a.path(), "eth0", "", &c.to_string());
    let m = cni("ADD", &cid_a, &a.path(), "eth0", "", "{not json").err(6);
    assert!(
        m.starts_with("network configuration is not valid JSON"),
        "{m}"
    );
    let mut c = conf.clone();
    c["vlan"] = json!(5000);
    assert_eq!(bad(c).err(7), "vlan: VLAN 5000 is out of range; use 1-4094");
    let mut c = conf.clone();
    c["bridge"] = json!("nosuchbr");
    let m = bad(c).err(7);
    assert!(
        m.starts_with("bridge nosuchbr does not exist in vswitchd at"),
        "{m}"
    );
    let mut c = conf.clone();
    c["vlna"] = json!(100);
    assert_eq!(bad(c).err(2), "unsupported field \"vlna\": 100");
    let mut c = conf.clone();
    c["cniVersion"] = json!("0.2.0");
    assert!(bad(c)
        .err(1)
        .starts_with("cniVersion 0.2.0 is not supported"));
    let m = cni("ADD", "", &a.path(), "eth0", "", &text).err(4);
    assert!(m.starts_with("CNI_CONTAINERID '' is invalid"), "{m}");
    assert!(!link_exists(Some(a.name()), "eth0"));

    // vswitchd down: "try again later", nothing created, no lease taken.
    let mut c = conf.clone();
    let dead = tmp.join("no-such.sock");
    c["socket"] = json!(dead);
    let m = bad(c).err(11);
    assert!(
        m.starts_with(&format!("cannot reach vswitchd at {dead}")),
        "{m}"
    );
    let mut d = d;
    d.stop();
    let m = cni("ADD", &cid_a, &a.path(), "eth0", "", &text).err(11);
    assert!(m.contains("try again once vswitchd is up"), "{m}");
    assert!(!link_exists(Some(a.name()), "eth0"));
    assert!(!lease(&tmp, &net, "10.231.7.20"));
}

#[test]
fn cni_ports_survive_restart_then_gc_and_sweep_remove_them() {
    if !root_or_skip("cni_ports_survive_restart_then_gc_and_sweep_remove_them") {
        return;
    }
    require_plugins();
    let tmp = TempDir::new("cni");
    let bridge = unique_name("cb");
    let mut d = start(&bridge);
    let a = Netns::new("cna");
    let b = Netns::new("cnb");
    let c = Netns::new("cnc");
    let net = unique_name("net");
    let conf = netconf("1.1.0", &net, &d, &bridge, 8, &tmp, json!({"vlan": 300}));
    let text = conf.to_string();
    let cid = |x: &str| format!("{}{x}", unique_name("c"));
    let (ca, cb, cc) = (cid("a"), cid("b"), cid("c"));
    for (id, ns) in [(&ca, &a), (&cb, &b), (&cc, &c)] {
        cni("ADD", id, &ns.path(), "eth0", "", &text).ok();
    }
    // STATUS: ready; with vswitchd unreachable: code 50.
    assert_eq!(cni("STATUS", "", "", "", "", &text).ok(), Value::Null);
    let mut dead = conf.clone();
    dead["socket"] = json!(tmp.join("no-such.sock"));
    cni("STATUS", "", "", "", "", &dead.to_string()).err(50);

    // The ports are in vswitchd's configuration: a restart brings them back, forwarding.
    d.stop();
    d.spawn();
    let show = d.ctl_json(&["show"]);
    for id in [&ca, &cb, &cc] {
        let p = port_of(&show, &bridge, id, "eth0").expect("port after restart");
        assert_eq!(p["state"], "up", "{p}");
        assert_eq!(p["vlan"], "access 300");
    }
    let pr = ping_from(&a, "10.231.8.21".parse().expect("ip"), 3);
    assert_eq!(pr.received, 3, "ping a -> b after restart: {pr:?}");

    // GC with a and c still valid: b is removed (port, lease, record).
    let mut g = conf.clone();
    g["cni.dev/valid-attachments"] = json!([
        {"containerID": ca, "ifname": "eth0"},
        {"containerID": cc, "ifname": "eth0"}
    ]);
    assert_eq!(cni("GC", "", "", "", "", &g.to_string()).ok(), Value::Null);
    let show = d.ctl_json(&["show"]);
    assert!(port_of(&show, &bridge, &ca, "eth0").is_some());
    assert_eq!(port_of(&show, &bridge, &cb, "eth0"), None);
    assert!(port_of(&show, &bridge, &cc, "eth0").is_some());
    assert!(lease(&tmp, &net, "10.231.8.20"));
    assert!(!lease(&tmp, &net, "10.231.8.21"));
    assert!(!link_exists(Some(b.name()), "eth0"));
    // GC and STATUS are spec 1.1: refused for 1.0.0 configurations.
    let mut old = g.clone();
    old["cniVersion"] = json!("1.0.0");
    let m = cni("GC", "", "", "", "", &old.to_string()).err(1);
    assert_eq!(
        m,
        "GC needs cniVersion 1.1.0 or later; the configuration says 1.0.0"
    );

    // The sweep: c's namespace goes away without a DEL; `vswitchctl cni-gc` removes it.
    let c_path = c.path();
    drop(c);
    let state = tmp.join("state");
    let dry = d.ctl_ok(&["cni-gc", "--state-dir", &state, "--dry-run"]);
    let port_c = port_of(&d.ctl_json(&["show"]), &bridge, &cc, "eth0").expect("c's port");
    assert_eq!(
        dry,
        format!(
            "would remove container {cc} eth0 (network {net}, port {}): netns {c_path} is gone\n",
            port_c["name"].as_str().expect("name")
        )
    );
    assert!(port_of(&d.ctl_json(&["show"]), &bridge, &cc, "eth0").is_some());
    let out = d.ctl_ok(&["cni-gc", "--state-dir", &state]);
    assert!(
        out.starts_with(&format!("removed container {cc} eth0")),
        "{out}"
    );
    let show = d.ctl_json(&["show"]);
    assert_eq!(port_of(&show, &bridge, &cc, "eth0"), None);
    assert!(port_of(&show, &bridge, &ca, "eth0").is_some());
    assert!(!lease(&tmp, &net, "10.231.8.22"));
    assert_eq!(
        d.ctl_ok(&["cni-gc", "--state-dir", &state]),
        "nothing to remove\n"
    );
    cni("DEL", &ca, &a.path(), "eth0", "", &text).ok();
    assert_eq!(port_of(&d.ctl_json(&["show"]), &bridge, &ca, "eth0"), None);
}

#[test]
fn cni_tap_trunk_and_veth_access_ping() {
    if !root_or_skip("cni_tap_trunk_and_veth_access_ping") {
        return;
    }
    require_plugins();
    let tmp = TempDir::new("cni");
    let bridge = unique_name("cb");
    let d = start(&bridge);
    let a = Netns::new("cna");
    let b = Netns::new("cnb");
    let net_tap = unique_name("tap");
    let net_veth = unique_name("veth");
    // The tap pod: a trunk of 100 and 200 with native 100 (its untagged frames are VLAN
    // 100), addresses .20+; the veth pod: access 100, addresses .40+ of the same subnet.
    let tap_conf = netconf(
        "1.1.0",
        &net_tap,
        &d,
        &bridge,
        9,
        &tmp,
        json!({"interfaceType": "tap", "trunk": [{"id": 100}, {"id": 200}], "native": 100,
               "mac": "02:00:00:cd:00:01"}),
    );
    let mut veth_conf = netconf(
        "1.1.0",
        &net_veth,
        &d,
        &bridge,
        9,
        &tmp,
        json!({"vlan": 100}),
    );
    veth_conf["ipam"]["ranges"][0][0]["rangeStart"] = json!("10.231.9.40");
    veth_conf["ipam"]["ranges"][0][0]["rangeEnd"] = json!("10.231.9.49");
    let ca = format!("{}tap", unique_name("c"));
    let cb = format!("{}veth", unique_name("c"));
    let r = cni("ADD", &ca, &a.path(), "net1", "", &tap_conf.to_string()).ok();
    assert_eq!(
        r["interfaces"],
        json!([{"name": "net1", "mac": "02:00:00:cd:00:01", "mtu": 1500, "sandbox": a.path()}])
    );
    assert_eq!(
        r["ips"],
        json!([{"address": "10.231.9.20/24", "gateway": "10.231.9.1", "interface": 0}])
    );
    let p = port_of(&d.ctl_json(&["show"]), &bridge, &ca, "net1").expect("tap port");
    assert_eq!(p["type"], "tap");
    assert_eq!(p["vlan"], "trunk 200 native 100");
    assert_eq!(p["state"], "up");
    cni("ADD", &cb, &b.path(), "eth0", "", &veth_conf.to_string()).ok();
    let pr = ping_from(&a, "10.231.9.40".parse().expect("ip"), 3);
    assert_eq!(pr.received, 3, "tap pod -> veth pod: {pr:?}");
    let mut check = tap_conf.clone();
    check["prevResult"] = r;
    cni("CHECK", &ca, &a.path(), "net1", "", &check.to_string()).ok();
    // DEL of the tap attachment: the port goes, and with it the device in the pod.
    cni("DEL", &ca, &a.path(), "net1", "", &tap_conf.to_string()).ok();
    assert_eq!(port_of(&d.ctl_json(&["show"]), &bridge, &ca, "net1"), None);
    assert!(!link_exists(Some(a.name()), "net1"));
    cni("DEL", &cb, &b.path(), "eth0", "", &veth_conf.to_string()).ok();
}
