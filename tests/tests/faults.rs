//! Faults under a running vswitchd:
//! - a port's interface deleted underneath the datapath: the port is shown down with the
//!   error, the daemon keeps running and the other ports keep forwarding;
//! - kill -9 during traffic, then a restart on the same config: bridges, ports, VLANs and
//!   static MACs come back, the stale XDP programs are replaced, forwarding resumes.

use std::net::Ipv4Addr;
use std::time::Duration;

use vswitch_tests::daemon::{config, wait_until, Daemon};
use vswitch_tests::testutil::VethPair;
use vswitch_tests::{assert_ping_ok, run_ok, run_timeout, Host, Watchdog};

const BR: &str = "br0";

fn port_state(d: &Daemon, port: &str) -> String {
    d.ports(BR)
        .iter()
        .find(|p| p["name"] == port)
        .and_then(|p| p["state"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("port {port} missing from show"))
}

#[test]
fn interface_deleted_under_running_port_is_reported_down() {
    if !vswitch_tests::root_or_skip("interface_deleted_under_running_port_is_reported_down") {
        return;
    }
    let a = Host::with_offloads("fa", Ipv4Addr::new(10, 73, 0, 1));
    let b = Host::with_offloads("fb", Ipv4Addr::new(10, 73, 0, 2));
    let victim = VethPair::new("fv");
    let dmn = Daemon::start(&config(2, 4096));
    let _wd = Watchdog::new(Duration::from_secs(60), "port deletion test", dmn.pid());
    dmn.add_br(BR);
    dmn.add_port(BR, "a", a.switch_if(), &["--access", "10"]);
    dmn.add_port(BR, "b", b.switch_if(), &["--access", "10"]);
    dmn.add_port(BR, "v", &victim.a, &["--access", "10"]);
    assert_eq!(port_state(&dmn, "v"), "up");
    assert_ping_ok(&a, b.ip, 2);

    run_ok("ip", &["link", "del", &victim.a]);
    wait_until(Duration::from_secs(10), "port v shown down", || {
        port_state(&dmn, "v").starts_with("down:")
    });
    let state = port_state(&dmn, "v");
    assert!(
        state.contains(&victim.a) && state.contains("receive"),
        "the error names the interface and the failure: {state}"
    );
    eprintln!("deleted port: {state}");
    for p in ["a", "b"] {
        assert_eq!(port_state(&dmn, p), "up", "port {p} unaffected");
    }
    assert_ping_ok(&a, b.ip, 5);
    let text = dmn.ctl_ok(&["show"]);
    assert!(text.contains("down"), "show prints the down state: {text}");
}

/// XDP program id attached to `ifname` (`ip -d link show`), if any.
fn xdp_prog(ifname: &str) -> Option<String> {
    let o = run_ok("ip", &["-d", "link", "show", "dev", ifname]);
    let line = o.stdout.lines().find(|l| l.contains("prog/xdp"))?;
    let id = line.split("id ").nth(1)?.split_whitespace().next()?;
    Some(id.to_owned())
}

#[test]
fn kill9_then_restart_restores_config_and_forwarding() {
    if !vswitch_tests::root_or_skip("kill9_then_restart_restores_config_and_forwarding") {
        return;
    }
    let a = Host::with_offloads("ra", Ipv4Addr::new(10, 74, 0, 1));
    let b = Host::with_offloads("rb", Ipv4Addr::new(10, 74, 0, 2));
    let c = Host::with_offloads("rc", Ipv4Addr::new(10, 74, 0, 3));
    let mut dmn = Daemon::start(&config(1, 4096));
    let _wd = Watchdog::new(Duration::from_secs(90), "kill -9 test", None);
    dmn.add_br(BR);
    dmn.add_port(BR, "a", a.switch_if(), &["--access", "10"]);
    dmn.add_port(BR, "b", b.switch_if(), &["--access", "10"]);
    dmn.add_port(
        BR,
        "c",
        c.switch_if(),
        &["--trunk", "20,30", "--native", "10"],
    );
    let static_mac = "02:aa:bb:cc:dd:01";
    dmn.ctl_ok(&[
        "fdb", "add", BR, "--vlan", "10", "--mac", static_mac, "--port", "c",
    ]);
    let show_before = dmn.ports(BR);
    assert_ping_ok(&a, b.ip, 2);
    let progs_before: Vec<Option<String>> = [&a, &b, &c]
        .iter()
        .map(|h| xdp_prog(h.switch_if()))
        .collect();
    assert!(
        progs_before.iter().all(Option::is_some),
        "XDP programs attached: {progs_before:?}"
    );

    // Kill it while a pings b.
    std::thread::scope(|s| {
        let pinger = s.spawn(|| {
            run_timeout(
                "ip",
                &[
                    "netns",
                    "exec",
                    a.ns.name(),
                    "ping",
                    "-n",
                    "-c",
                    "10",
                    "-i",
                    "0.1",
                    "-W",
                    "1",
                    &b.ip.to_string(),
                ],
                Duration::from_secs(15),
            )
        });
        std::thread::sleep(Duration::from_millis(400));
        dmn.kill9();
        let _ = pinger.join().expect("ping thread");
    });
    // The killed process left its programs behind.
    for h in [&a, &b, &c] {
        assert!(
            xdp_prog(h.switch_if()).is_some(),
            "stale XDP program on {} after kill -9",
            h.switch_if()
        );
    }

    dmn.spawn();
    let show_after = dmn.ports(BR);
    for (p0, p1) in show_before.iter().zip(&show_after) {
        for k in ["name", "interface", "vlan", "type"] {
            assert_eq!(p0[k], p1[k], "port {k} restored: {p0} vs {p1}");
        }
        assert_eq!(p1["state"], "up", "port up after restart: {p1}");
    }
    assert_eq!(show_before.len(), show_after.len(), "same ports");
    let fdb = dmn.fdb_entries(BR);
    assert!(
        fdb.iter()
            .any(|e| e.0 == 10 && e.1 == static_mac && e.2 == "c" && e.3),
        "static MAC restored: {fdb:?}"
    );
    let progs_after: Vec<Option<String>> = [&a, &b, &c]
        .iter()
        .map(|h| xdp_prog(h.switch_if()))
        .collect();
    for (p0, p1) in progs_before.iter().zip(&progs_after) {
        assert!(p1.is_some(), "XDP program attached after restart");
        assert_ne!(p0, p1, "stale XDP program replaced by a new one");
    }
    assert_ping_ok(&a, b.ip, 5);
}
