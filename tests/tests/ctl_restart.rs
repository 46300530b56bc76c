//! A datapath restart (`pmd set-cpus`, `pmd set-fast-path`: every bridge restarts) keeps
//! tap ports' devices where the user put them: the device in its namespace is the same one
//! (same ifindex there, same address and MTU) and forwards again right after, instead of
//! being destroyed and recreated in the daemon's namespace.

use std::net::Ipv4Addr;
use std::time::Duration;

use vswitch_tests::daemon::{config, Daemon};
use vswitch_tests::{assert_ping_ok, assert_ping_ok_from, Host, TapHost, Watchdog};

const BR: &str = "br0";

#[test]
fn tap_devices_survive_datapath_restarts() {
    if !vswitch_tests::root_or_skip("tap_devices_survive_datapath_restarts") {
        return;
    }
    let a = Host::with_offloads("ra", Ipv4Addr::new(10, 83, 0, 1));
    let t = TapHost::new("rt", Ipv4Addr::new(10, 83, 0, 2));
    let dmn = Daemon::start(&config(2, 4096));
    let _wd = Watchdog::new(Duration::from_secs(90), "tap restart", dmn.pid());
    dmn.add_br(BR);
    dmn.add_port(BR, "a", a.switch_if(), &["--access", "100"]);
    dmn.add_tap_port(BR, "t", &t.ifname, &["--access", "100", "--mtu", "1400"]);
    t.attach();
    assert_eq!(t.mtu(), 1400);
    let index = t.ifindex();
    assert_ping_ok(&a, t.ip, 3);

    for change in [
        &["pmd", "set-cpus", "0"][..],
        &["pmd", "set-fast-path", "on"][..],
        &["pmd", "set-fast-path", "off"][..],
    ] {
        dmn.ctl_ok(change);
        assert_eq!(
            t.ifindex(),
            index,
            "after `{}` the tap in its namespace is another device",
            change.join(" ")
        );
        assert_eq!(t.mtu(), 1400, "MTU after `{}`", change.join(" "));
        let v = dmn.port_view(BR, "t");
        assert_eq!(v["state"], "up", "after `{}`: {v}", change.join(" "));
        assert_ping_ok(&a, t.ip, 3);
        assert_ping_ok_from(&t.ns, a.ip, 3);
    }
}
