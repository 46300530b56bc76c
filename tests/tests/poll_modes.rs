//! Poll modes (`spin`, `adaptive`, `sleep`): each forwards on every port kind (AF_XDP,
//! packet, tap) and across workers; each waits the way it says (spin never blocks,
//! adaptive does not block while frames come within its window, sleep blocks between
//! frames); and switching modes under traffic loses no frame.
//!
//! And a blocked worker is woken by exactly the events that give it work: frames on an
//! AF_XDP socket, frames on a tap fd, frames handed over by the other worker (its
//! doorbell) and control commands, stop included (the doorbell). The workers' longest
//! wait is 30 s, so a missing wake-up shows as lost pings (each reply must come within
//! 2 s) or a control request timing out (5 s).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use datapath::port::{TapConfig, TapPort};
use datapath::worker::{DatapathConfig, PollMode, PollPolicy, WorkerSnapshot};
use vswitch_tests::testutil::Netns;
use vswitch_tests::{
    assert_ping_ok, assert_ping_ok_from, configure_ns_if, root_or_skip, tap_name, unique_mac, Host,
    Offloads, PortSpec, Switch,
};

fn policy(mode: PollMode, window: Duration) -> PollPolicy {
    PollPolicy {
        mode,
        adaptive_window: window,
    }
}

fn idle_waits(s: &[WorkerSnapshot]) -> Vec<u64> {
    s.iter().map(|w| w.stats.idle_waits).collect()
}

/// A (AF_XDP) on worker 0; B (`b_port`: a packet or AF_XDP port) and a tap on worker 1:
/// every exchange crosses the workers.
struct Lab {
    a: Host,
    b: Host,
    tap_ns: Netns,
    tap_ip: Ipv4Addr,
    tap_if: String,
    sw: Switch,
}

fn lab(prefix: &str, net: u8, poll: PollPolicy, b_port: fn(&str, &str, usize) -> PortSpec) -> Lab {
    let a = Host::with_offloads(&format!("{prefix}a"), Ipv4Addr::new(10, 13, net, 1));
    let b = Host::with_offloads(&format!("{prefix}b"), Ipv4Addr::new(10, 13, net, 2));
    let tap_ns = Netns::new(&format!("{prefix}t"));
    let tap_ip = Ipv4Addr::new(10, 13, net, 3);
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
        poll,
        idle_polls: 1,
        idle_sleep: Duration::from_micros(200),
        idle_wait_max: Duration::from_secs(30),
        ..DatapathConfig::default()
    };
    let sw = Switch::start_with(
        config,
        vec![
            PortSpec::afxdp(a.switch_if(), "access 100", 0),
            b_port(b.switch_if(), "access 100", 1),
            PortSpec::tap(tap, "access 100", 1),
        ],
    );
    assert_ne!(sw.owner(a.switch_if()), sw.owner(b.switch_if()));
    assert_ne!(sw.owner(a.switch_if()), sw.owner(&tap_if));
    Lab {
        a,
        b,
        tap_ns,
        tap_ip,
        tap_if,
        sw,
    }
}

#[test]
fn every_poll_mode_forwards_on_every_port_kind_across_workers() {
    if !root_or_skip("every_poll_mode_forwards_on_every_port_kind_across_workers") {
        return;
    }
    let mut l = lab("pm", 0, PollPolicy::default(), PortSpec::packet);
    // 5 pings 0.2 s apart per direction; the adaptive window (1 s) covers the gaps.
    for p in [
        policy(PollMode::Spin, Duration::ZERO),
        policy(PollMode::Adaptive, Duration::from_secs(1)),
        policy(PollMode::Sleep, Duration::ZERO),
    ] {
        l.sw.set_poll(p);
        // The first exchange (ARP, learning) may come after a worker's window ended.
        assert_ping_ok(&l.a, l.b.ip, 1);
        assert_ping_ok(&l.a, l.tap_ip, 1);
        let before = l.sw.snapshot();
        assert_ping_ok(&l.a, l.b.ip, 5);
        assert_ping_ok(&l.a, l.tap_ip, 5);
        assert_ping_ok_from(&l.tap_ns, l.a.ip, 5);
        let after = l.sw.snapshot();
        assert!(
            after.iter().all(|w| w.stats.poll_mode == p.mode),
            "{:?}: workers run {:?}",
            p.mode,
            after.iter().map(|w| w.stats.poll_mode).collect::<Vec<_>>()
        );
        let (w0, w1) = (idle_waits(&before), idle_waits(&after));
        let blocked: Vec<u64> = w1.iter().zip(&w0).map(|(a, b)| a - b).collect();
        match p.mode {
            // Never blocks.
            PollMode::Spin => assert_eq!(blocked, [0, 0], "spin blocked"),
            // Frames every 0.2 s inside a 1 s window: no block between them (a snapshot
            // reply is not traffic, so allow one block at a phase change).
            PollMode::Adaptive => assert!(
                blocked.iter().all(|b| *b <= 1),
                "adaptive blocked {blocked:?} times with traffic inside its window"
            ),
            // Blocks between pings: at least once per ping on each worker.
            PollMode::Sleep => assert!(
                blocked.iter().all(|b| *b >= 15),
                "sleep blocked only {blocked:?} times across 15 pings"
            ),
        }
        for w in &after {
            assert_eq!(
                w.stats.idle_wait_errors, 0,
                "worker {} wait errors",
                w.stats.id
            );
        }
    }
    let handoffs = l.sw.handoffs();
    assert!(handoffs >= 30, "frames crossed workers: {handoffs}");
    assert_eq!(l.sw.counters(&l.tap_if).total_drops(), 0);
}

/// Modes change every 30 ms while a ping every 2 ms crosses the workers: all 1,000
/// answered.
#[test]
fn switching_poll_modes_under_traffic_loses_no_frame() {
    if !root_or_skip("switching_poll_modes_under_traffic_loses_no_frame") {
        return;
    }
    let mut l = lab(
        "ps",
        1,
        policy(PollMode::Sleep, Duration::ZERO),
        PortSpec::packet,
    );
    assert_ping_ok(&l.a, l.b.ip, 1);
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = {
        let stop = stop.clone();
        let ns = l.a.ns.name().to_owned();
        let dst = l.b.ip;
        std::thread::spawn(move || {
            let o = vswitch_tests::run_timeout(
                "ip",
                &[
                    "netns",
                    "exec",
                    &ns,
                    "ping",
                    "-n",
                    "-q",
                    "-c",
                    "1000",
                    "-i",
                    "0.002",
                    "-W",
                    "1",
                    &dst.to_string(),
                ],
                Duration::from_secs(60),
            );
            stop.store(true, Ordering::SeqCst);
            o
        })
    };
    let modes = [
        policy(PollMode::Spin, Duration::ZERO),
        policy(PollMode::Adaptive, Duration::from_millis(1)),
        policy(PollMode::Sleep, Duration::ZERO),
        policy(PollMode::Adaptive, Duration::from_millis(20)),
    ];
    let mut changes = 0usize;
    while !stop.load(Ordering::SeqCst) {
        l.sw.set_poll(modes[changes % modes.len()]);
        changes += 1;
        std::thread::sleep(Duration::from_millis(30));
    }
    let o = pinger.join().expect("pinger");
    let summary = vswitch_tests::parse_ping(&o.stdout)
        .unwrap_or_else(|| panic!("no ping summary: {}{}", o.stdout, o.stderr));
    assert_eq!(
        summary,
        (1000, 1000),
        "ping across {changes} mode changes: {}",
        o.stdout
    );
    assert!(changes >= 20, "only {changes} mode changes");
    // And the last mode is in force on both workers.
    let last = modes[(changes - 1) % modes.len()].mode;
    assert!(l.sw.snapshot().iter().all(|w| w.stats.poll_mode == last));
}

#[test]
fn idle_workers_block_and_wake_on_frames_handoffs_and_commands() {
    if !root_or_skip("idle_workers_block_and_wake_on_frames_handoffs_and_commands") {
        return;
    }
    let l = lab(
        "pi",
        2,
        policy(PollMode::Sleep, Duration::ZERO),
        PortSpec::afxdp,
    );
    // Control requests are answered while the workers sit in their 30 s wait.
    std::thread::sleep(Duration::from_millis(300));
    let before = l.sw.snapshot();

    assert_ping_ok(&l.a, l.b.ip, 10);
    assert_ping_ok(&l.a, l.tap_ip, 10);
    assert_ping_ok_from(&l.tap_ns, l.a.ip, 10);

    let after = l.sw.snapshot();
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
    drop(l.sw);
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "stopping idle workers took {:?} (their wait is 30 s)",
        t0.elapsed()
    );
}
