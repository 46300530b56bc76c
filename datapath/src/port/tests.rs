//! Port backend tests. The AF_XDP and tap tests need root (CI runs as root; as another
//! user they skip, saying so): each builds its own veth pair / namespace / tap with
//! unique names, removed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::pipeline::{TxDone, TxItem, MAX_BURST};
use crate::sys::xdp::{self, AttachMode};
use crate::testutil::{tagged, test_frame, test_seq, Capture, Netns, VethPair};
use crate::wire::{Edit, Tci};

const DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0xbb];
const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
const WAIT: Duration = Duration::from_secs(3);

/// Receives until `want` test frames arrived or `WAIT` passed; returns copies.
fn rx_collect(rx: &mut dyn RxPort, want: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        let n = rx.rx_burst(MAX_BURST).expect("rx_burst");
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let mut refs: [&[u8]; MAX_BURST] = [&[]; MAX_BURST];
        let k = rx.frames(&mut refs);
        assert_eq!(k, n, "frames() reports what rx_burst held");
        got.extend(
            refs[..k]
                .iter()
                .filter(|f| crate::testutil::is_test_frame(f))
                .map(|f| f.to_vec()),
        );
        rx.release();
    }
    got
}

/// Items sending frames `0..n` of a burst in order, each with `edit`.
fn burst_items(n: usize, edit: Edit) -> Vec<TxItem> {
    (0..n)
        .map(|i| TxItem {
            frame: i as u16,
            edit,
        })
        .collect()
}

/// One `tx_burst` of `frames` (in order, each with `edit`), then flushes until the kernel
/// has had every chance to take them; returns what the burst reported.
fn tx_once(tx: &mut dyn TxPort, frames: &[Vec<u8>], edit: Edit) -> TxDone {
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    let done = tx.tx_burst(&refs, &[], &burst_items(frames.len(), edit));
    for _ in 0..50 {
        tx.flush();
    }
    done
}

/// Transmits `frames` with `edit` through `tx`, retrying what the ring did not take, and
/// kicks until the kernel has taken everything.
fn tx_all(tx: &mut dyn TxPort, frames: &[Vec<u8>], edit: Edit) -> TxDone {
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    let items = burst_items(frames.len(), edit);
    let mut total = TxDone::default();
    let deadline = Instant::now() + WAIT;
    while total.sent < items.len() && Instant::now() < deadline {
        let d = tx.tx_burst(&refs, &[], &items[total.sent..]);
        total.sent += d.sent;
        total.bytes += d.bytes;
        tx.flush();
    }
    for _ in 0..100 {
        tx.flush();
    }
    total
}

fn open_veth(pair: &VethPair) -> AfXdpPort {
    AfXdpPort::open(&AfXdpConfig::new(pair.a.clone())).expect("open AF_XDP port on veth")
}

#[test]
fn afxdp_rx_receives_frame_sent_by_peer() {
    if !crate::testutil::root_or_skip("afxdp_rx_receives_frame_sent_by_peer") {
        return;
    }
    let ns = Netns::new("xr");
    let pair = VethPair::new("xr");
    ns.adopt(&pair.b);
    let mut port = open_veth(&pair);
    assert_eq!(port.info().driver, "veth");
    assert_eq!(port.mode(), AttachMode::Native, "veth supports native XDP");
    assert!(!port.info().zero_copy, "veth runs AF_XDP in copy mode");
    let peer = Capture::open_in(&ns, &pair.b);
    let frame = test_frame(DST, SRC, 7, 100);
    peer.send(&frame);
    let got = rx_collect(port.rx(), 1);
    assert_eq!(got, vec![frame]);
}

/// Frames the veth peer could not hand over (here: the port's interface is down) are the
/// port's kernel drops, exactly, also with the peer in another namespace; the frames
/// before the port opened are not.
#[test]
fn afxdp_counts_frames_its_veth_peer_dropped() {
    if !crate::testutil::root_or_skip("afxdp_counts_frames_its_veth_peer_dropped") {
        return;
    }
    let ns = Netns::new("xp");
    let pair = VethPair::new("xp");
    ns.adopt(&pair.b);
    ns.exec("ip", &["link", "set", &pair.b, "up"]);
    let peer = Capture::open_in(&ns, &pair.b);
    crate::testutil::run("ip", &["link", "set", &pair.a, "down"]);
    for i in 0..3 {
        let _ = peer.try_send(&test_frame(DST, SRC, i, 60));
    }
    crate::testutil::run("ip", &["link", "set", &pair.a, "up"]);
    let mut port = open_veth(&pair);
    assert_eq!(drops_now(&mut port).rx, 0, "drops before the port opened");
    crate::testutil::run("ip", &["link", "set", &pair.a, "down"]);
    for i in 0..7 {
        // The veth drops it: the sender may be told (ENOBUFS) or not.
        let _ = peer.try_send(&test_frame(DST, SRC, i, 60));
    }
    assert_eq!(drops_now(&mut port).rx, 7);
    crate::testutil::run("ip", &["link", "set", &pair.a, "up"]);
    peer.send(&test_frame(DST, SRC, 99, 60));
    assert_eq!(rx_collect(port.rx(), 1).len(), 1);
    assert_eq!(drops_now(&mut port).rx, 7);

    // The peer moves to another namespace while the port is open: its drops there are
    // counted too (the peer is looked up again, not remembered).
    drop(peer);
    let ns2 = Netns::new("xq");
    ns.exec("ip", &["link", "set", &pair.b, "netns", ns2.name()]);
    // Exact counts: a move resets the device's IPv6 settings, and its autoconfiguration
    // frames (router solicitations, MLD) could be dropped while the port is down.
    let no_ipv6 = format!("net.ipv6.conf.{}.disable_ipv6=1", pair.b);
    ns2.exec("sysctl", &["-qw", &no_ipv6]);
    ns2.exec("ip", &["link", "set", &pair.b, "up"]);
    let peer = Capture::open_in(&ns2, &pair.b);
    crate::testutil::run("ip", &["link", "set", &pair.a, "down"]);
    for i in 0..5 {
        let _ = peer.try_send(&test_frame(DST, SRC, i, 60));
    }
    assert_eq!(drops_now(&mut port).rx, 12);
    crate::testutil::run("ip", &["link", "set", &pair.a, "up"]);

    // The other way: what the port sends while its peer is down is dropped by the device
    // and is the port's transmit-side kernel drops, exactly.
    assert_eq!(drops_now(&mut port).tx, 0);
    ns2.exec("ip", &["link", "set", &pair.b, "down"]);
    let frames: Vec<Vec<u8>> = (1..=9).map(|i| test_frame(DST, SRC, i, 60)).collect();
    assert_eq!(tx_all(port.tx(), &frames, Edit::Keep).sent, 9);
    assert_eq!(
        drops_now(&mut port),
        KernelDrops { rx: 12, tx: 9 },
        "9 sent to a peer that is down"
    );
    ns2.exec("ip", &["link", "set", &pair.b, "up"]);
    wait_carrier(&pair.a);
    // (A capture socket errs once its interface went down: open a new one.)
    let peer = Capture::open_in(&ns2, &pair.b);
    let frame = test_frame(DST, SRC, 10, 60);
    assert_eq!(
        tx_all(port.tx(), std::slice::from_ref(&frame), Edit::Keep).sent,
        1
    );
    assert_eq!(peer.collect_test_frames(1, WAIT), vec![frame]);
    assert_eq!(drops_now(&mut port), KernelDrops { rx: 12, tx: 9 });
}

/// The background reader (not the worker's health check) reads the veth peer: drops show
/// up in `kernel_drops` within about a second without anyone asking the kernel.
#[test]
fn veth_peer_drops_are_read_in_the_background() {
    if !crate::testutil::root_or_skip("veth_peer_drops_are_read_in_the_background") {
        return;
    }
    let ns = Netns::new("xb");
    let pair = VethPair::new("xb");
    ns.adopt(&pair.b);
    ns.exec("ip", &["link", "set", &pair.b, "up"]);
    let peer = Capture::open_in(&ns, &pair.b);
    let mut port = open_veth(&pair);
    assert_eq!(port.rx().kernel_drops().rx, 0);
    crate::testutil::run("ip", &["link", "set", &pair.a, "down"]);
    for i in 0..4 {
        let _ = peer.try_send(&test_frame(DST, SRC, i, 60));
    }
    // Right after: not read yet (or read already by a pass that just ran).
    let first = port.rx().kernel_drops().rx;
    assert!(first == 0 || first == 4, "{first}");
    let deadline = Instant::now() + 3 * super::probe::INTERVAL;
    while port.rx().kernel_drops().rx != 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(port.rx().kernel_drops().rx, 4);
}

/// The port's kernel drops after reading its veth peer now (the background reader does it
/// once a second).
fn drops_now(port: &mut AfXdpPort) -> KernelDrops {
    port.rx().read_peer_now();
    port.rx().kernel_drops()
}

/// Waits until `ifname` has carrier (a veth's peer came up).
fn wait_carrier(ifname: &str) {
    let path = format!("/sys/class/net/{ifname}/carrier");
    let deadline = Instant::now() + WAIT;
    while !std::fs::read_to_string(&path).is_ok_and(|s| s.trim() == "1") {
        assert!(Instant::now() < deadline, "{ifname} has no carrier");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn afxdp_tx_reaches_peer_with_exact_bytes() {
    if !crate::testutil::root_or_skip("afxdp_tx_reaches_peer_with_exact_bytes") {
        return;
    }
    let ns = Netns::new("xt");
    let pair = VethPair::new("xt");
    ns.adopt(&pair.b);
    let mut port = open_veth(&pair);
    let peer = Capture::open_in(&ns, &pair.b);
    let frame = test_frame(DST, SRC, 1, 64);
    let done = tx_all(port.tx(), std::slice::from_ref(&frame), Edit::Keep);
    assert_eq!(
        done,
        TxDone {
            sent: 1,
            bytes: 64,
            ..TxDone::default()
        }
    );
    let got = peer.collect_test_frames(2, Duration::from_millis(500));
    assert_eq!(got, vec![frame]);
}

#[test]
fn afxdp_vlan_edits_round_trip_tagged_frames() {
    if !crate::testutil::root_or_skip("afxdp_vlan_edits_round_trip_tagged_frames") {
        return;
    }
    let ns = Netns::new("xv");
    let pair = VethPair::new("xv");
    ns.adopt(&pair.b);
    let mut port = open_veth(&pair);
    let peer = Capture::open_in(&ns, &pair.b);
    let plain = test_frame(DST, SRC, 3, 80);

    // Push: untagged source, tagged on the wire (capture re-inserts the auxdata tag).
    let tci = 0x6000 | 100;
    let done = tx_all(
        port.tx(),
        std::slice::from_ref(&plain),
        Edit::Push(Tci(tci)),
    );
    assert_eq!(
        done,
        TxDone {
            sent: 1,
            bytes: 84,
            ..TxDone::default()
        }
    );
    assert_eq!(peer.collect_test_frames(1, WAIT), vec![tagged(&plain, tci)]);

    // A tagged frame from the peer reaches AF_XDP with its tag in the bytes.
    let tagged_in = tagged(&plain, 20);
    peer.send(&tagged_in);
    assert_eq!(rx_collect(port.rx(), 1), vec![tagged_in.clone()]);

    // Retag and pop on the way back out.
    tx_all(
        port.tx(),
        std::slice::from_ref(&tagged_in),
        Edit::SetTci(Tci(30)),
    );
    assert_eq!(peer.collect_test_frames(1, WAIT), vec![tagged(&plain, 30)]);
    tx_all(port.tx(), std::slice::from_ref(&tagged_in), Edit::Pop);
    assert_eq!(peer.collect_test_frames(1, WAIT), vec![plain]);
}

fn assert_each_seq_once(frames: &[Vec<u8>], n: u32) {
    let mut seqs: Vec<u32> = frames
        .iter()
        .map(|f| test_seq(f).expect("test frame has a sequence number"))
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..n).collect::<Vec<_>>(), "each frame exactly once");
}

#[test]
fn afxdp_burst_of_64_delivered_exactly_once_both_ways() {
    if !crate::testutil::root_or_skip("afxdp_burst_of_64_delivered_exactly_once_both_ways") {
        return;
    }
    let ns = Netns::new("xb");
    let pair = VethPair::new("xb");
    ns.adopt(&pair.b);
    let mut port = open_veth(&pair);
    let peer = Capture::open_in(&ns, &pair.b);
    let frames: Vec<Vec<u8>> = (0..64)
        .map(|i| test_frame(DST, SRC, i, 60 + i as usize))
        .collect();

    for f in &frames {
        peer.send(f);
    }
    let got = rx_collect(port.rx(), 64);
    assert_eq!(got.len(), 64);
    assert_each_seq_once(&got, 64);
    for f in &got {
        let seq = test_seq(f).expect("seq") as usize;
        assert_eq!(f, &frames[seq], "frame {seq} bytes");
    }
    assert!(
        rx_collect(port.rx(), 1).is_empty(),
        "no duplicate after the burst"
    );

    // One tx_burst call with all 64 (copy mode transmits up to 32 per sendto; flush kicks
    // the rest).
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    let items = burst_items(64, Edit::Keep);
    let done = port.tx().tx_burst(&refs, &[], &items);
    assert_eq!(done.sent, 64);
    assert_eq!(
        done.bytes,
        frames.iter().map(|f| f.len() as u64).sum::<u64>()
    );
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while seen.len() < 64 && Instant::now() < deadline {
        port.tx().flush();
        seen.extend(peer.collect_test_frames(64 - seen.len(), Duration::from_millis(20)));
    }
    seen.extend(peer.collect_test_frames(1, Duration::from_millis(300)));
    assert_eq!(seen.len(), 64, "exactly 64 frames on the wire");
    assert_each_seq_once(&seen, 64);
    // Completions come back: every TX frame is free again.
    for _ in 0..10 {
        port.tx().flush();
    }
    let tx_share = AfXdpConfig::new("x").frame_count as usize / 2;
    assert_eq!(port.tx().free_frames(), tx_share);
}

#[test]
fn afxdp_two_queues_receive_each_frame_once() {
    if !crate::testutil::root_or_skip("afxdp_two_queues_receive_each_frame_once") {
        return;
    }
    let ns = Netns::new("xq");
    let pair = VethPair::with_queues("xq", 2);
    ns.adopt(&pair.b);
    let mut cfg = AfXdpConfig::new(pair.a.clone());
    cfg.queues = vec![0, 1];
    let mut port = AfXdpPort::open(&cfg).expect("open two queues");
    assert_eq!(port.info().queues, vec![0, 1]);
    let peer = Capture::open_in(&ns, &pair.b);
    for i in 0..32 {
        peer.send(&test_frame(DST, SRC, i, 60));
    }
    let got = rx_collect(port.rx(), 32);
    assert_each_seq_once(&got, 32);
}

/// Frames arriving on a device queue the port does not bind are dropped by the port's XDP
/// program and counted (`no_socket`), not handed to the host's stack (before, the XSKMAP
/// redirect fell back to `XDP_PASS`: a capture on the switch's interface saw them). The
/// peer's transmit queue, which a veth keeps as the receive queue, is chosen by XPS: every
/// CPU sends on the one queue given all of them.
#[test]
fn afxdp_frames_on_an_unbound_queue_are_dropped_and_counted() {
    if !crate::testutil::root_or_skip("afxdp_frames_on_an_unbound_queue_are_dropped_and_counted") {
        return;
    }
    let ns = Netns::new("xu");
    let pair = VethPair::with_queues("xu", 2);
    ns.adopt(&pair.b);
    let mut port = AfXdpPort::open(&AfXdpConfig::new(pair.a.clone())).expect("open queue 0");
    assert_eq!(port.info().queues, vec![0]);
    let host = Capture::open(&pair.a);
    let peer = Capture::open_in(&ns, &pair.b);
    let send_on = |q: u32| {
        let xps = |tx: u32, mask: &str| {
            format!(
                "echo {mask} > /sys/class/net/{}/queues/tx-{tx}/xps_cpus",
                pair.b
            )
        };
        let all = "$(printf %x $(( (1 << $(nproc --all)) - 1 )))";
        ns.exec(
            "sh",
            &["-ec", &format!("{}; {}", xps(1 - q, "0"), xps(q, all))],
        );
    };
    send_on(1);
    for i in 0..5 {
        peer.send(&test_frame(DST, SRC, i, 60));
    }
    assert_eq!(
        rx_collect(port.rx(), 1),
        Vec::<Vec<u8>>::new(),
        "queue 1 unbound"
    );
    assert_eq!(
        host.collect_test_frames(1, Duration::from_millis(300)),
        Vec::<Vec<u8>>::new(),
        "the host stack saw frames of the switch's interface"
    );
    assert_eq!(port.rx().xdp_counters().no_socket, 5);
    // Queue 0 is the port's: received by the switch, counted nowhere else.
    send_on(0);
    let frame = test_frame(DST, SRC, 9, 60);
    peer.send(&frame);
    assert_eq!(rx_collect(port.rx(), 1), vec![frame]);
    assert_eq!(port.rx().xdp_counters().no_socket, 5);
    assert_eq!(
        host.collect_test_frames(1, Duration::from_millis(100)),
        Vec::<Vec<u8>>::new()
    );
}

#[test]
fn afxdp_generic_mode_is_reported_and_works() {
    if !crate::testutil::root_or_skip("afxdp_generic_mode_is_reported_and_works") {
        return;
    }
    let ns = Netns::new("xg");
    let pair = VethPair::new("xg");
    ns.adopt(&pair.b);
    let mut cfg = AfXdpConfig::new(pair.a.clone());
    cfg.mode = XdpMode::Generic;
    let mut port = AfXdpPort::open(&cfg).expect("open in generic mode");
    assert_eq!(port.mode(), AttachMode::Generic);
    let peer = Capture::open_in(&ns, &pair.b);
    let frame = test_frame(DST, SRC, 9, 70);
    peer.send(&frame);
    assert_eq!(rx_collect(port.rx(), 1), vec![frame]);
}

#[test]
fn afxdp_native_mode_on_driver_without_xdp_is_specific_error() {
    if !crate::testutil::root_or_skip("afxdp_native_mode_on_driver_without_xdp_is_specific_error") {
        return;
    }
    let br = crate::testutil::unique_name("xn");
    crate::testutil::run("ip", &["link", "add", &br, "type", "bridge"]);
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["link", "del", &self.0]).status();
        }
    }
    let _del = Del(br.clone());
    let mut cfg = AfXdpConfig::new(br.clone());
    cfg.mode = XdpMode::Native;
    let err = AfXdpPort::open(&cfg).expect_err("bridge has no native XDP");
    assert!(
        matches!(&err, PortError::UnsupportedMode { mode: XdpMode::Native, driver, .. } if driver == "bridge"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("interface {br}: XDP native mode not supported (driver bridge)")
    );
}

#[test]
fn afxdp_nonexistent_interface_is_specific_error() {
    let err = AfXdpPort::open(&AfXdpConfig::new("vsnosuch0")).expect_err("no such interface");
    assert!(matches!(&err, PortError::NoSuchInterface { ifname } if ifname == "vsnosuch0"));
    assert_eq!(err.to_string(), "interface vsnosuch0 does not exist");
}

#[test]
fn afxdp_queue_out_of_range_is_specific_error() {
    if !crate::testutil::root_or_skip("afxdp_queue_out_of_range_is_specific_error") {
        return;
    }
    let pair = VethPair::new("xo");
    let mut cfg = AfXdpConfig::new(pair.a.clone());
    cfg.queues = vec![0, 5];
    let err = AfXdpPort::open(&cfg).expect_err("veth has one queue");
    assert!(
        matches!(
            err,
            PortError::QueueOutOfRange {
                queue: 5,
                count: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "interface {}: queue 5 out of range (device has 1 rx queues)",
            pair.a
        )
    );
    // Nothing was attached on the way out.
    let idx = crate::sys::netdev::if_index(&pair.a).expect("ifindex");
    assert_eq!(xdp::attached(idx).expect("query"), None);
}

#[test]
fn afxdp_drop_detaches_program() {
    if !crate::testutil::root_or_skip("afxdp_drop_detaches_program") {
        return;
    }
    let pair = VethPair::new("xd");
    let idx = crate::sys::netdev::if_index(&pair.a).expect("ifindex");
    let port = open_veth(&pair);
    let attached = xdp::attached(idx)
        .expect("query")
        .expect("program attached while open");
    assert_eq!(attached.prog_id, port.info().prog_id);
    let (rx, tx) = port.split();
    drop(rx);
    assert!(
        xdp::attached(idx).expect("query").is_some(),
        "TX half still open"
    );
    drop(tx);
    assert_eq!(xdp::attached(idx).expect("query"), None);
}

/// What `std::mem::forget` of a port leaves behind: the sockets stay open in this process
/// and keep the queue bound, so a second open is refused with a specific error (unlike
/// kill -9, where the kernel closes the sockets and only the XDP program stays; see
/// `afxdp_stale_program_after_kill_is_replaced`).
#[test]
fn afxdp_forgotten_port_keeps_queue_busy() {
    if !crate::testutil::root_or_skip("afxdp_forgotten_port_keeps_queue_busy") {
        return;
    }
    let pair = VethPair::new("xf");
    std::mem::forget(open_veth(&pair));
    let err = AfXdpPort::open(&AfXdpConfig::new(pair.a.clone())).expect_err("queue still bound");
    assert!(
        matches!(err, PortError::QueueBusy { queue: 0, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "interface {}: queue 0 already bound by another AF_XDP socket",
            pair.a
        )
    );
}

/// Child half of the kill -9 test: opens the port named in the environment, reports the
/// program id, then waits to be killed.
#[test]
#[ignore = "run by afxdp_stale_program_after_kill_is_replaced in a child process"]
fn afxdp_stale_child() {
    let Ok(ifname) = std::env::var("VSWITCH_STALE_IF") else {
        return;
    };
    let port = AfXdpPort::open(&AfXdpConfig::new(ifname)).expect("child open");
    println!("OPENED {}", port.info().prog_id);
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn afxdp_stale_program_after_kill_is_replaced() {
    if !crate::testutil::root_or_skip("afxdp_stale_program_after_kill_is_replaced") {
        return;
    }
    let ns = Netns::new("xk");
    let pair = VethPair::new("xk");
    ns.adopt(&pair.b);
    let idx = crate::sys::netdev::if_index(&pair.a).expect("ifindex");

    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "port::tests::afxdp_stale_child",
            "--ignored",
            "--nocapture",
        ])
        .env("VSWITCH_STALE_IF", &pair.a)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut stale_id = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("child output");
        if let Some(id) = line.strip_prefix("OPENED ") {
            stale_id = Some(id.trim().parse::<u32>().expect("program id"));
            break;
        }
    }
    let stale_id = stale_id.expect("child opened the port");
    // While the child lives its program is in use, not stale: not taken over (before, it
    // was detached, and then the child's busy queue failed the open anyway).
    let err = AfXdpPort::open(&AfXdpConfig::new(pair.a.clone())).expect_err("in use");
    assert!(
        matches!(&err, PortError::XdpProgramInUse { prog_id, pid, .. }
            if *prog_id == stale_id && *pid == child.id()),
        "{err:?}"
    );
    let comm = match &err {
        PortError::XdpProgramInUse { comm, .. } => comm.clone(),
        _ => String::new(),
    };
    assert_eq!(
        err.to_string(),
        format!(
            "interface {}: vswitch's XDP program (id {stale_id}) is attached and in use by \
             process {} ({comm}); not replacing it: another vswitchd serves this interface \
             (xdp_replace / --xdp-replace detaches it anyway)",
            pair.a,
            child.id()
        )
    );
    assert_eq!(
        xdp::attached(idx).expect("query").map(|a| a.prog_id),
        Some(stale_id),
        "the live process's program stays"
    );
    child.kill().expect("SIGKILL child");
    child.wait().expect("reap child");

    let stale = xdp::attached(idx)
        .expect("query")
        .expect("program left by killed process");
    assert_eq!(stale.prog_id, stale_id);

    let mut strict = AfXdpConfig::new(pair.a.clone());
    strict.replace_stale = false;
    let err = AfXdpPort::open(&strict).expect_err("stale program refused");
    assert!(
        matches!(&err, PortError::XdpProgramAttached { prog_id, driver, .. } if *prog_id == stale_id && driver == "veth"),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "interface {}: XDP program already attached (driver veth",
            pair.a
        )),
        "{err}"
    );

    let mut port = open_veth(&pair);
    let replaced = port
        .info()
        .replaced
        .clone()
        .expect("stale program replaced");
    assert_eq!(replaced.prog_id, stale_id);
    assert_ne!(port.info().prog_id, stale_id);
    let peer = Capture::open_in(&ns, &pair.b);
    let frame = test_frame(DST, SRC, 11, 90);
    peer.send(&frame);
    assert_eq!(rx_collect(port.rx(), 1), vec![frame]);
    drop(port);
    assert_eq!(xdp::attached(idx).expect("query"), None, "detached on drop");
}

/// Someone else's XDP program on the interface (here a minimal XDP_PASS program, as a
/// firewall or a libxdp component would be) is never detached by default: opening the
/// port fails naming the program and the option, and the program stays attached (same
/// id). Also one that merely carries vswitch's program name without its owner mark. With
/// `replace_foreign` it is detached and the port works. (Before, any program was replaced
/// silently.)
#[test]
fn afxdp_foreign_program_is_kept_unless_replacing_is_asked() {
    if !crate::testutil::root_or_skip("afxdp_foreign_program_is_kept_unless_replacing_is_asked") {
        return;
    }
    let ns = Netns::new("xy");
    let pair = VethPair::new("xy");
    ns.adopt(&pair.b);
    let idx = crate::sys::netdev::if_index(&pair.a).expect("ifindex");
    for name in ["fw_pass", crate::sys::bpf::PROG_NAME] {
        let id = xdp::attach_foreign_test_program(idx, name, 0).expect("attach foreign program");
        let who = xdp::identify(id).expect("identify");
        assert_eq!(
            (who.name.as_str(), who.marked, who.is_vswitch()),
            (name, false, false)
        );
        let err = AfXdpPort::open(&AfXdpConfig::new(pair.a.clone())).expect_err("foreign kept");
        assert!(
            matches!(&err, PortError::ForeignXdpProgram { prog_id, program, dispatcher: false, .. }
                if *prog_id == id && program == name),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "interface {}: XDP program {name} (id {id}, native mode) is attached and is not \
                 vswitch's; not replacing it: set the port's xdp_replace option (vswitchctl \
                 add-port --xdp-replace, or xdp_replace = true in its config) to detach it",
                pair.a
            )
        );
        let still = xdp::attached(idx).expect("query").expect("still attached");
        assert_eq!((still.prog_id, still.name.as_str()), (id, name));

        let mut replace = AfXdpConfig::new(pair.a.clone());
        replace.replace_foreign = true;
        let mut port = AfXdpPort::open(&replace).expect("replaced on request");
        let replaced = port.info().replaced.clone().expect("replaced");
        assert_eq!((replaced.prog_id, replaced.name.as_str()), (id, name));
        assert_ne!(port.info().prog_id, id);
        assert!(xdp::identify(port.info().prog_id)
            .expect("identify")
            .is_vswitch());
        let peer = Capture::open_in(&ns, &pair.b);
        let frame = test_frame(DST, SRC, 12, 80);
        peer.send(&frame);
        assert_eq!(rx_collect(port.rx(), 1), vec![frame]);
        drop(port);
        assert_eq!(xdp::attached(idx).expect("query"), None, "detached on drop");
    }
}

fn tap_name(prefix: &str) -> String {
    crate::testutil::unique_name(prefix)
}

#[test]
fn tap_receives_frame_written_on_kernel_side() {
    if !crate::testutil::root_or_skip("tap_receives_frame_written_on_kernel_side") {
        return;
    }
    let ns = Netns::new("tr");
    let name = tap_name("tr");
    let mut port = TapPort::create(&TapConfig::new(name.clone())).expect("create tap");
    assert_eq!(port.name(), name);
    ns.adopt(&name);
    let host = Capture::open_in(&ns, &name);
    let frame = test_frame(DST, SRC, 5, 120);
    host.send(&frame);
    assert_eq!(rx_collect(port.rx(), 1), vec![frame]);
}

#[test]
fn tap_transmits_to_kernel_side_with_edit_and_mtu() {
    if !crate::testutil::root_or_skip("tap_transmits_to_kernel_side_with_edit_and_mtu") {
        return;
    }
    let ns = Netns::new("tt");
    let name = tap_name("tt");
    let mut cfg = TapConfig::new(name.clone());
    cfg.mtu = Some(9000);
    let mut port = TapPort::create(&cfg).expect("create tap");
    assert_eq!(port.mtu(), 9000);
    ns.adopt(&name);
    let host = Capture::open_in(&ns, &name);

    let plain = test_frame(DST, SRC, 2, 64);
    let done = tx_all(port.tx(), std::slice::from_ref(&plain), Edit::Keep);
    assert_eq!(
        done,
        TxDone {
            sent: 1,
            bytes: 64,
            ..TxDone::default()
        }
    );
    assert_eq!(host.collect_test_frames(1, WAIT), vec![plain.clone()]);

    let done = tx_all(port.tx(), std::slice::from_ref(&plain), Edit::Push(Tci(42)));
    assert_eq!(
        done,
        TxDone {
            sent: 1,
            bytes: 68,
            ..TxDone::default()
        }
    );
    assert_eq!(host.collect_test_frames(1, WAIT), vec![tagged(&plain, 42)]);

    // A jumbo frame fits the 9000-byte MTU.
    let jumbo = test_frame(DST, SRC, 3, 9014);
    let done = tx_all(port.tx(), std::slice::from_ref(&jumbo), Edit::Keep);
    assert_eq!(done.sent, 1);
    assert_eq!(host.collect_test_frames(1, WAIT), vec![jumbo]);
}

#[test]
fn tap_burst_of_64_received_exactly_once() {
    if !crate::testutil::root_or_skip("tap_burst_of_64_received_exactly_once") {
        return;
    }
    let name = tap_name("tb");
    let mut port = TapPort::create(&TapConfig::new(name.clone())).expect("create tap");
    crate::testutil::disable_ipv6(&name);
    let host = Capture::open(&name);
    for i in 0..64 {
        host.send(&test_frame(DST, SRC, i, 60));
    }
    let got = rx_collect(port.rx(), 64);
    assert_each_seq_once(&got, 64);
}

#[test]
fn tap_device_disappears_on_drop() {
    if !crate::testutil::root_or_skip("tap_device_disappears_on_drop") {
        return;
    }
    let name = tap_name("td");
    let port = TapPort::create(&TapConfig::new(name.clone())).expect("create tap");
    assert!(crate::sys::netdev::if_index(&name).is_some());
    let (rx, tx) = port.split();
    drop(rx);
    assert!(
        crate::sys::netdev::if_index(&name).is_some(),
        "TX half keeps the fd"
    );
    drop(tx);
    // The device goes when the last reference to its fd closes. A process another test
    // forks at that moment holds a copy until its exec closes it (O_CLOEXEC), so allow a
    // moment.
    let t0 = std::time::Instant::now();
    while crate::sys::netdev::if_index(&name).is_some() && t0.elapsed().as_secs() < 2 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(crate::sys::netdev::if_index(&name), None);
}

/// A TX half that records what it was given.
#[derive(Default)]
struct Recorder {
    frames: Vec<Vec<u8>>,
    room: usize,
    flushes: usize,
}

impl TxPort for Recorder {
    fn tx_burst(
        &mut self,
        frames: &[&[u8]],
        _offloads: &[crate::offload::Offload],
        items: &[TxItem],
    ) -> TxDone {
        let n = items.len().min(self.room);
        let mut d = TxDone::default();
        for it in &items[..n] {
            let mut out = vec![0u8; 2048];
            let len = crate::wire::write_edited(frames[usize::from(it.frame)], it.edit, &mut out)
                .expect("edit");
            out.truncate(len);
            d.bytes += len as u64;
            self.frames.push(out);
        }
        d.sent = n;
        self.room -= n;
        d
    }
    fn flush(&mut self) {
        self.flushes += 1;
    }
}

#[test]
fn tx_table_routes_bursts_by_port_and_reports_missing_ports_as_unsent() {
    use crate::pipeline::TxPorts;
    use crate::topology::PortId;
    let p1 = PortId::new(1).expect("id");
    let p2 = PortId::new(2).expect("id");
    let mut table = PortTxTable::new();
    assert!(table
        .insert(
            p1,
            Box::new(Recorder {
                room: 1,
                ..Recorder::default()
            })
        )
        .is_none());
    let f = test_frame(DST, SRC, 0, 60);
    let frames: [&[u8]; 1] = [&f];
    let items = [
        TxItem {
            frame: 0,
            edit: Edit::Push(Tci(5)),
        },
        TxItem {
            frame: 0,
            edit: Edit::Keep,
        },
    ];
    assert_eq!(
        table.tx_burst(p1, &frames, &[], &items),
        TxDone {
            sent: 1,
            bytes: 64,
            ..TxDone::default()
        }
    );
    assert_eq!(table.tx_burst(p2, &frames, &[], &items), TxDone::default());
    table.flush_all();
    assert!(table.remove(p2).is_none());
    assert!(table.remove(p1).is_some());
}

fn peer_rx_packets(ns: &Netns, ifname: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name(), "cat"])
        .arg(format!("/sys/class/net/{ifname}/statistics/rx_packets"))
        .output()
        .expect("read peer counter");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("rx_packets is a number")
}

/// Rough single-core TX rate through AF_XDP (copy mode on veth) into a peer namespace,
/// counted by the peer's kernel. Run with `--ignored --nocapture` in release mode.
#[test]
#[ignore = "measurement, not a check"]
fn afxdp_tx_rate_on_veth() {
    let ns = Netns::new("xp");
    let pair = VethPair::new("xp");
    ns.adopt(&pair.b);
    let mut port = open_veth(&pair);
    let frames: Vec<Vec<u8>> = (0..64).map(|i| test_frame(DST, SRC, i, 64)).collect();
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    let items = burst_items(64, Edit::Keep);
    let before = peer_rx_packets(&ns, &pair.b);
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        sent += port.tx().tx_burst(&refs, &[], &items).sent as u64;
        port.tx().flush();
    }
    let secs = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(100));
    let got = peer_rx_packets(&ns, &pair.b) - before;
    println!(
        "AF_XDP TX veth ({} mode): queued {sent}, peer received {got}: {:.2} Mpps",
        port.mode(),
        got as f64 / secs / 1e6
    );
    assert!(got > 0);
}

#[test]
fn afxdp_tx_skips_a_frame_too_long_for_its_umem_frames_and_sends_the_rest() {
    if !crate::testutil::root_or_skip(
        "afxdp_tx_skips_a_frame_too_long_for_its_umem_frames_and_sends_the_rest",
    ) {
        return;
    }
    let ns = Netns::new("xb");
    let pair = VethPair::new("xb");
    ns.adopt(&pair.b);
    crate::testutil::run("ip", &["link", "set", "dev", &pair.a, "mtu", "9000"]);
    ns.exec("ip", &["link", "set", "dev", &pair.b, "mtu", "9000"]);
    let mut port = open_veth(&pair);
    let room = port.info().max_frame_len;
    let peer = Capture::open_in(&ns, &pair.b);
    let frames = [
        test_frame(DST, SRC, 1, 64),
        test_frame(DST, SRC, 2, room + 1),
        test_frame(DST, SRC, 3, room),
        test_frame(DST, SRC, 4, room - 3),
    ];
    let done = tx_once(port.tx(), &frames, Edit::Keep);
    assert_eq!(
        done,
        TxDone {
            sent: 3,
            bytes: (64 + room + room - 3) as u64,
            too_big: 1,
            ..TxDone::default()
        },
        "the too-long frame is skipped, the frames after it still go"
    );
    // A push that would grow a frame past the room is skipped the same way.
    let done = tx_once(port.tx(), &frames[3..], Edit::Push(Tci(100)));
    assert_eq!((done.sent, done.too_big), (0, 1));
    let got = peer.collect_test_frames(4, WAIT);
    let seqs: Vec<u32> = got.iter().filter_map(|f| test_seq(f)).collect();
    assert_eq!(seqs, vec![1, 3, 4], "never truncated, never stalled");
}

/// AF_XDP multi-buffer on a veth at MTU 9000: frames up to the configured maximum go out
/// as descriptor chains and arrive at the peer byte for byte (a push on a chained frame
/// included), one byte more is skipped as too big; jumbo frames from the peer arrive
/// whole (linearized), in order with small ones.
#[test]
fn afxdp_multi_buffer_carries_jumbo_frames_both_ways() {
    if !crate::testutil::root_or_skip("afxdp_multi_buffer_carries_jumbo_frames_both_ways") {
        return;
    }
    let ns = Netns::new("xj");
    let pair = VethPair::new("xj");
    ns.adopt(&pair.b);
    crate::testutil::run("ip", &["link", "set", "dev", &pair.a, "mtu", "9000"]);
    ns.exec("ip", &["link", "set", "dev", &pair.b, "mtu", "9000"]);
    let mut cfg = AfXdpConfig::new(pair.a.clone());
    cfg.frame_size = 4096;
    cfg.max_frame = 9018; // MTU 9000 + Ethernet header + one tag
    let mut port = AfXdpPort::open(&cfg).expect("open multi-buffer AF_XDP port");
    assert!(port.info().multi_buffer);
    assert_eq!(port.info().max_frame_len, 9018);
    assert_eq!(port.info().chain_room, 3840);
    let peer = Capture::open_in(&ns, &pair.b);

    // Transmit: one UMEM frame, a chain of 2, a chain of 3 (exactly the maximum), one
    // byte too many, and a frame after it.
    let out = [
        test_frame(DST, SRC, 1, 64),
        test_frame(DST, SRC, 2, 5000),
        test_frame(DST, SRC, 3, 9018),
        test_frame(DST, SRC, 4, 9019),
        test_frame(DST, SRC, 5, 3840),
    ];
    let done = tx_once(port.tx(), &out, Edit::Keep);
    assert_eq!(
        done,
        TxDone {
            sent: 4,
            bytes: (64 + 5000 + 9018 + 3840) as u64,
            too_big: 1,
            ..TxDone::default()
        }
    );
    // A VLAN push on a chained frame: 9014 + 4 bytes, tag inserted.
    let f6 = test_frame(DST, SRC, 6, 9014);
    let done = port.tx().tx_burst(
        &[f6.as_slice()],
        &[],
        &[TxItem {
            frame: 0,
            edit: Edit::Push(Tci(100)),
        }],
    );
    for _ in 0..10 {
        port.tx().flush();
    }
    assert_eq!((done.sent, done.too_big), (1, 0));
    let got = peer.collect_test_frames(5, WAIT);
    let want = [
        out[0].clone(),
        out[1].clone(),
        out[2].clone(),
        out[4].clone(),
        tagged(&f6, 100),
    ];
    assert_eq!(got.len(), want.len(), "frames at the peer");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.len(), w.len(), "length of frame {:?}", test_seq(w));
        assert!(g == w, "frame {:?} differs at the peer", test_seq(w));
    }

    // A whole burst of chains in one call (3 descriptors per frame): all taken.
    let many: Vec<Vec<u8>> = (0..100)
        .map(|i| test_frame(DST, SRC, 100 + i, 9018))
        .collect();
    let done = tx_once(port.tx(), &many, Edit::Keep);
    assert_eq!((done.sent, done.too_big), (100, 0), "{done:?}");
    let got = peer.collect_test_frames(100, WAIT);
    let seqs: Vec<u32> = got.iter().filter_map(|f| test_seq(f)).collect();
    assert_eq!(
        seqs,
        (100..200).collect::<Vec<u32>>(),
        "100 chains at the peer, in order"
    );

    // Receive: jumbo frames from the peer arrive whole, in order with small ones.
    let inbound = [
        test_frame(DST, SRC, 11, 9014),
        test_frame(DST, SRC, 12, 60),
        test_frame(DST, SRC, 13, 4000),
        test_frame(DST, SRC, 14, 3840),
        test_frame(DST, SRC, 15, 3841),
    ];
    for f in &inbound {
        peer.send(f);
    }
    let got = rx_collect(port.rx(), inbound.len());
    assert_eq!(got.len(), inbound.len(), "frames received");
    for (g, w) in got.iter().zip(&inbound) {
        assert_eq!(g.len(), w.len(), "length of frame {:?}", test_seq(w));
        assert!(g == w, "frame {:?} differs after receive", test_seq(w));
    }
}
