//! Idle workers block in `poll` instead of sleeping on a timer, and are woken by exactly
//! the events that give them work: frames on an AF_XDP socket, frames on a tap fd, frames
//! handed over by the other worker (its doorbell) and control commands, stop included
//! (the doorbell).
//!
//! The workers' longest wait is set to 30 s, so a missing wake-up would show as lost
//! pings (each reply must come within 2 s) and as a control request timing out (5 s); the
//! workers go idle between pings (0.2 s apart), so every ping needs every wake-up.

use std::net::Ipv4Addr;
use std::time::Duration;

use datapath::port::{TapConfig, TapPort};
use datapath::worker::{DatapathConfig, PollMode, PollPolicy};
use vswitch_tests::testutil::Netns;
use vswitch_tests::{
    assert_ping_ok, assert_ping_ok_from, configure_ns_if, tap_name, unique_mac, Host, Offloads,
    PortSpec, Switch,
};

#[test]
fn idle_workers_block_and_wake_on_frames_handoffs_and_commands() {
    let a = Host::for_afxdp("ia", Ipv4Addr::new(10, 12, 0, 1));
    let b = Host::for_afxdp("ib", Ipv4Addr::new(10, 12, 0, 2));
    let tap_ns = Netns::new("it");
    let tap_ip = Ipv4Addr::new(10, 12, 0, 3);
    let tap = TapPort::create(&TapConfig::new(tap_name())).expect("create tap port");
    let tap_if = tap.name().to_owned();
    configure_ns_if(
        &tap_ns,
        &tap_if,
        tap_ip,
        unique_mac(),
        Offloads::KernelDefault,
    );

    let config = DatapathConfig {
        workers: 2,
        poll: PollPolicy {
            mode: PollMode::Sleep,
            ..PollPolicy::default()
        },
        idle_polls: 1,
        idle_sleep: Duration::from_micros(200),
        idle_wait_max: Duration::from_secs(30),
        ..DatapathConfig::default()
    };
    // A on worker 0; B and the tap on worker 1: every exchange crosses the workers.
    let sw = Switch::start_with(
        config,
        vec![
            PortSpec::afxdp(a.switch_if(), "access 100", 0),
            PortSpec::afxdp(b.switch_if(), "access 100", 1),
            PortSpec::tap(tap, "access 100", 1),
        ],
    );
    assert_ne!(sw.owner(a.switch_if()), sw.owner(b.switch_if()));
    assert_ne!(sw.owner(a.switch_if()), sw.owner(&tap_if));

    // Control requests are answered while the workers sit in their 30 s wait.
    std::thread::sleep(Duration::from_millis(300));
    let before = sw.snapshot();

    assert_ping_ok(&a, b.ip, 10);
    assert_ping_ok(&a, tap_ip, 10);
    assert_ping_ok_from(&tap_ns, a.ip, 10);

    let after = sw.snapshot();
    for (w0, w1) in before.iter().zip(&after) {
        let s0 = &w0.stats;
        let s1 = &w1.stats;
        assert!(
            s1.idle_waits >= s0.idle_waits + 10,
            "worker {} blocked between pings: {} -> {} waits",
            s1.id,
            s0.idle_waits,
            s1.idle_waits
        );
        assert_eq!(s1.idle_wait_errors, 0, "worker {} wait errors", s1.id);
        assert!(
            s1.handoff_out > s0.handoff_out,
            "worker {} handed frames to the other worker",
            s1.id
        );
    }

    // Stopping is a command too: the workers leave their 30 s wait at once.
    let t0 = std::time::Instant::now();
    drop(sw);
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "stopping idle workers took {:?} (their wait is 30 s)",
        t0.elapsed()
    );
}
