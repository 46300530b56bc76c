//! The XDP fast path (known unicast forwarded in the kernel by vswitch's XDP program) in
//! network namespaces: frames delivered exactly once with the right tag (pushed/popped in
//! eBPF), ping and TCP across, the workers see only the first frames, counters include
//! the fast-path frames, other VLANs see nothing, and a moved MAC is followed.
//!
//! Namespace-side veths get GRO on: a veth accepts XDP-redirected frames only when its
//! peer has a NAPI context (fastpath.rs explains the requirement).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use datapath::fastpath::XdpProgram;
use datapath::port::{AfXdpConfig, AfXdpPort, SharedProgram};
use datapath::testutil::{test_seq, Capture, Netns, VethPair};
use datapath::topology::{PortConfig, PortId, Topology};
use datapath::wire::MacAddr;
use datapath::worker::{sum_counters, Datapath, DatapathConfig};
use vswitch_tests::{
    assert_ping_ok, eth_frame, ns_run_ok, outer_vlan, src_mac, tcp_transfer, unique_mac, Host,
    CONTROL_TIMEOUT,
};

struct Wire {
    _veth: VethPair,
    ns: Netns,
    ifname: String,
    switch_if: String,
}

impl Wire {
    /// A bare link (no IP) whose far end is in its own namespace, for raw frames.
    fn new(prefix: &str) -> Wire {
        let ns = Netns::new(prefix);
        let veth = VethPair::new(prefix);
        ns.adopt(&veth.b);
        ns.exec("ip", &["link", "set", "dev", &veth.b, "up"]);
        Wire {
            ifname: veth.b.clone(),
            switch_if: veth.a.clone(),
            _veth: veth,
            ns,
        }
    }
}

fn gro_on(ns: &Netns, ifname: &str) {
    ns_run_ok(ns, "ethtool", &["-K", ifname, "gro", "on"]);
}

struct FastSwitch {
    dp: Datapath,
    program: Arc<XdpProgram>,
}

impl FastSwitch {
    /// One worker pinned to CPU 1 (its CPU also runs the ports' NAPI threads).
    fn start(ports: &[(&str, &str)]) -> FastSwitch {
        let mut b = Topology::builder();
        for (i, (ifname, vlan)) in ports.iter().enumerate() {
            b.add_port(i, PortConfig::new(*ifname, vlan.parse().expect("vlan")))
                .expect("add port");
        }
        let program = XdpProgram::new(true, 4096).expect("load XDP program");
        let cfg = DatapathConfig {
            workers: 1,
            cpus: vec![1],
            idle_polls: 32,
            idle_sleep: Duration::from_micros(200),
            xdp: Some(SharedProgram(program.clone())),
            ..DatapathConfig::default()
        };
        let mut dp = Datapath::start(cfg, b.build()).expect("start datapath");
        for (i, (ifname, _)) in ports.iter().enumerate() {
            let mut c = AfXdpConfig::new(*ifname);
            c.program = Some(SharedProgram(program.clone()));
            let port = AfXdpPort::open(&c).unwrap_or_else(|e| panic!("port {ifname}: {e}"));
            assert!(port.info().fast_path);
            let (rx, tx) = port.split();
            dp.attach_port(pid(i), vec![Box::new(rx)], Box::new(tx), Some(0))
                .expect("attach");
        }
        dp.sync(CONTROL_TIMEOUT).expect("sync");
        FastSwitch { dp, program }
    }

    /// The workers' notes (what `pmd show` prints under them).
    fn notes(&self) -> Vec<String> {
        self.dp
            .snapshot(false, CONTROL_TIMEOUT)
            .expect("snapshot")
            .into_iter()
            .flat_map(|s| s.stats.notes)
            .map(|n| n.text)
            .collect()
    }

    /// Frames the worker received (slow path) so far.
    fn worker_packets(&self) -> u64 {
        self.dp
            .snapshot(false, CONTROL_TIMEOUT)
            .expect("snapshot")
            .iter()
            .map(|s| s.stats.packets)
            .sum()
    }

    fn counters(&self, p: usize) -> datapath::counters::PortCounters {
        let snaps = self.dp.snapshot(false, CONTROL_TIMEOUT).expect("snapshot");
        sum_counters(&snaps)
            .into_iter()
            .find(|(id, _)| *id == pid(p))
            .map(|(_, c)| c)
            .unwrap_or_default()
    }

    /// Waits until the program's FDB maps (`vid`, `mac`) to the interface `ifname`.
    fn wait_mirrored(&self, vid: u16, mac: [u8; 6], ifname: &str) {
        let want = datapath::sys::netdev::if_index(ifname).expect("ifindex");
        let t0 = std::time::Instant::now();
        loop {
            let got = self.program.lookup(vid, MacAddr(mac)).expect("lookup");
            if got.map(|(i, _)| i) == Some(want) {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "({vid}, {mac:02x?}) never mirrored to {ifname}: {got:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Hosts a and b (namespaces `pa`, `pb`, on 10.`net`.0.1 and .2) on access-100 ports of a
/// fast-path switch; GRO on at a's end, and at b's when `b_gro` (else the veth default).
/// The ports are AF_XDP (the fast path is their XDP program), so both hosts send with TX
/// checksum offload off, as AF_XDP ports need.
fn two_hosts(pa: &str, pb: &str, net: u8, b_gro: bool) -> (Host, Host, FastSwitch) {
    let a = Host::for_afxdp(pa, Ipv4Addr::new(10, net, 0, 1));
    let b = Host::for_afxdp(pb, Ipv4Addr::new(10, net, 0, 2));
    gro_on(&a.ns, &a.ifname);
    if b_gro {
        gro_on(&b.ns, &b.ifname);
    }
    let sw = FastSwitch::start(&[(a.switch_if(), "access 100"), (b.switch_if(), "access 100")]);
    (a, b, sw)
}

/// Both hosts announce themselves (a broadcast each, the workers learn) and the fast
/// path's FDB mirrors them.
fn announce(sw: &FastSwitch, (a, ca): (&Host, &Capture), (b, cb): (&Host, &Capture)) {
    ca.send(&eth_frame([0xff; 6], a.mac, &[], 0, 64));
    cb.send(&eth_frame([0xff; 6], b.mac, &[], 0, 64));
    sw.wait_mirrored(100, a.mac, a.switch_if());
    sw.wait_mirrored(100, b.mac, b.switch_if());
}

fn pid(i: usize) -> PortId {
    PortId::new(i).expect("port id")
}

const N: u32 = 300;

/// `got` holds test frames 1..=N, each once, in order.
fn assert_each_once_in_order(got: &[Vec<u8>]) {
    let seqs: Vec<u32> = got.iter().filter_map(|f| test_seq(f)).collect();
    assert_eq!(
        seqs,
        (1..=N).collect::<Vec<_>>(),
        "each frame once, in order"
    );
}

/// Sends frames 1..=N from `from` while `to` collects them (a capture socket's receive
/// buffer holds only ~200 such frames); a pause every 32 frames, as the AF_PACKET
/// sender's socket buffer and the veth ring (256 frames) are not what is tested here.
fn send_and_collect(from: &Capture, to: &Capture, frame: impl Fn(u32) -> Vec<u8>) -> Vec<Vec<u8>> {
    std::thread::scope(|s| {
        let rx = s.spawn(|| to.collect_test_frames(N as usize, Duration::from_secs(5)));
        send_paced(from, frame);
        rx.join().expect("collector")
    })
}

/// Sends frames 1..=N from `from`, pausing every 32 frames (see [`send_and_collect`]).
fn send_paced(from: &Capture, frame: impl Fn(u32) -> Vec<u8>) {
    for seq in 1..=N {
        from.send(&frame(seq));
        if seq % 32 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

#[test]
fn fast_path_pops_and_pushes_tags_and_follows_moves() {
    if !vswitch_tests::root_or_skip("fast_path_pops_and_pushes_tags_and_follows_moves") {
        return;
    }
    let h1 = Host::for_afxdp("fx1", Ipv4Addr::new(10, 71, 0, 1));
    let h2 = Host::for_afxdp("fx2", Ipv4Addr::new(10, 71, 0, 2));
    let other = Host::for_afxdp("fxo", Ipv4Addr::new(10, 71, 0, 3));
    let wire = Wire::new("fxw");
    for (ns, ifname) in [
        (&h1.ns, &h1.ifname),
        (&h2.ns, &h2.ifname),
        (&other.ns, &other.ifname),
        (&wire.ns, &wire.ifname),
    ] {
        gro_on(ns, ifname);
    }
    // One sender with a queueing discipline: its veth pushes back instead of dropping when
    // the switch port's ring is full, and the switch has no advice about it.
    ns_run_ok(
        &other.ns,
        "tc",
        &["qdisc", "replace", "dev", &other.ifname, "root", "pfifo"],
    );
    let sw = FastSwitch::start(&[
        (h1.switch_if(), "access 100"),
        (wire.switch_if.as_str(), "trunk 100,200"),
        (other.switch_if(), "access 200"),
        (h2.switch_if(), "access 100"),
    ]);
    let notes = sw.notes();
    let advised = |switch_if: &str| {
        notes
            .iter()
            .filter(|n| n.starts_with(&format!("{switch_if}: its veth peer ")))
            .count()
    };
    for (switch_if, peer) in [(h1.switch_if(), &h1.ifname), (h2.switch_if(), &h2.ifname)] {
        assert_eq!(advised(switch_if), 1, "{notes:?}");
        assert!(
            notes.iter().any(|n| n.contains(&format!(
                "`tc qdisc replace dev {peer} root pfifo` (in its namespace)"
            ))),
            "{notes:?}"
        );
    }
    assert_eq!(advised(other.switch_if()), 0, "{notes:?}");
    let c1 = Capture::open_in(&h1.ns, &h1.ifname);
    let cw = Capture::open_in(&wire.ns, &wire.ifname);
    let co = Capture::open_in(&other.ns, &other.ifname);
    let c2 = Capture::open_in(&h2.ns, &h2.ifname);
    let w_mac = unique_mac();
    let m1 = h1.mac;

    // Both stations announce themselves (slow path: flood, learn, mirror).
    c1.send(&eth_frame([0xff; 6], m1, &[], 0, 64));
    cw.send(&eth_frame([0xff; 6], w_mac, &[100], 0, 64));
    sw.wait_mirrored(100, m1, h1.switch_if());
    sw.wait_mirrored(100, w_mac, &wire.switch_if);
    for c in [&c1, &cw, &co, &c2] {
        vswitch_tests::drain(c);
    }
    let slow0 = sw.worker_packets();

    // Trunk -> access: tagged VID 100 in, untagged out (pop in eBPF).
    let got = send_and_collect(&cw, &c1, |seq| eth_frame(m1, w_mac, &[100], seq, 128));
    assert_each_once_in_order(&got);
    for f in &got {
        assert_eq!(outer_vlan(f).1, None, "popped: untagged at the access host");
        assert_eq!(src_mac(f), Some(w_mac));
        assert_eq!(f.len(), 124, "128 bytes in, 4 bytes of tag removed");
    }

    // Access -> trunk: untagged in, tagged VID 100 out (push in eBPF).
    let got = send_and_collect(&c1, &cw, |seq| eth_frame(w_mac, m1, &[], seq, 124));
    assert_each_once_in_order(&got);
    for f in &got {
        assert_eq!(
            outer_vlan(f),
            (0x8100, Some(100)),
            "pushed: tagged 100 on the trunk"
        );
        assert_eq!(f.len(), 128);
    }
    let slow = sw.worker_packets() - slow0;
    assert!(
        slow <= 4,
        "{slow} of {} frames reached the worker: the fast path did not forward them",
        2 * N
    );
    // The fast path's frames are in the ports' counters.
    assert!(sw.counters(0).tx_packets >= u64::from(N));
    assert!(sw.counters(1).tx_packets >= u64::from(N));
    assert!(sw.counters(1).rx_packets > u64::from(N));
    // Nothing reached VLAN 200 or the other VLAN 100 host.
    assert!(co
        .collect_test_frames(1, Duration::from_millis(300))
        .is_empty());
    assert!(c2
        .collect_test_frames(1, Duration::from_millis(300))
        .is_empty());

    // The trunk station moves to h2's port... as a frame from h2's link with its MAC:
    // the program must stop sending it to the trunk (slow path learns the move).
    c2.send(&eth_frame(m1, w_mac, &[], 0, 64));
    sw.wait_mirrored(100, w_mac, h2.switch_if());
    vswitch_tests::drain(&c1);
    for seq in 1..=20 {
        c1.send(&eth_frame(w_mac, m1, &[], seq, 64));
    }
    let got = c2.collect_test_frames(20, Duration::from_secs(5));
    assert_eq!(got.len(), 20, "frames follow the moved MAC to its new port");
    assert!(
        cw.collect_test_frames(1, Duration::from_millis(300))
            .is_empty(),
        "nothing goes to the old port after the move"
    );
}

#[test]
fn ping_and_tcp_through_the_fast_path() {
    if !vswitch_tests::root_or_skip("ping_and_tcp_through_the_fast_path") {
        return;
    }
    let (a, b, sw) = two_hosts("fxa", "fxb", 72, true);
    assert_ping_ok(&a, b.ip, 3);
    sw.wait_mirrored(100, a.mac, a.switch_if());
    sw.wait_mirrored(100, b.mac, b.switch_if());
    let slow0 = sw.worker_packets();
    let bytes = 8 << 20;
    let r = tcp_transfer(&a.ns, &b.ns, b.ip, 5201, bytes, Duration::from_secs(60));
    assert_eq!(r.received, bytes, "TCP transfer complete: {r:?}");
    assert_eq!(r.first_mismatch, None, "content verified: {r:?}");
    let slow = sw.worker_packets() - slow0;
    let fwd = sw.counters(1).tx_packets;
    assert!(
        fwd > 1000 && slow < fwd / 20,
        "fast path carried the transfer: {fwd} frames sent to b, {slow} seen by the worker"
    );
}

/// A veth whose peer has GRO off and no XDP program drops XDP-redirected frames without
/// counting them. The fast path therefore never redirects to such a port: frames to it
/// go through the workers (delivered, counted), frames from it still take the fast
/// path, and the workers' notes say why and what to change.
#[test]
fn fast_path_keeps_frames_to_a_veth_whose_peer_cannot_take_redirects() {
    if !vswitch_tests::root_or_skip(
        "fast_path_keeps_frames_to_a_veth_whose_peer_cannot_take_redirects",
    ) {
        return;
    }
    // b: the veth default, GRO off.
    let (a, b, sw) = two_hosts("fxg", "fxn", 73, false);
    let notes = bypass_notes(&sw, b.switch_if());
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains(&format!("`ethtool -K {} gro on`", b.ifname)),
        "{notes:?}"
    );
    assert_eq!(bypass_notes(&sw, a.switch_if()), Vec::<String>::new());

    let ca = Capture::open_in(&a.ns, &a.ifname);
    let cb = Capture::open_in(&b.ns, &b.ifname);
    announce(&sw, (&a, &ca), (&b, &cb));
    vswitch_tests::drain(&ca);
    vswitch_tests::drain(&cb);

    // a -> b: known unicast, but to a port the kernel would not deliver redirects to:
    // every frame arrives once, in order, carried by the worker.
    let slow0 = sw.worker_packets();
    let tx0 = sw.counters(1).tx_packets;
    let got = send_and_collect(&ca, &cb, |seq| eth_frame(b.mac, a.mac, &[], seq, 100));
    assert_each_once_in_order(&got);
    assert!(got.iter().all(|f| f.len() == 100));
    let slow = sw.worker_packets() - slow0;
    assert!(
        slow >= u64::from(N),
        "{slow} of {N} frames went through the worker"
    );
    assert_eq!(sw.counters(1).tx_packets - tx0, u64::from(N));

    // b -> a: a's peer has GRO on, so the fast path forwards (the worker sees at most the
    // refresh frames).
    let slow0 = sw.worker_packets();
    let got = send_and_collect(&cb, &ca, |seq| eth_frame(a.mac, b.mac, &[], seq, 100));
    assert_each_once_in_order(&got);
    let slow = sw.worker_packets() - slow0;
    assert!(slow <= 2, "{slow} of {N} frames reached the worker");

    // The peer's state is watched while the port is open. GRO on at b: within about a
    // second the note goes and a -> b takes the fast path too.
    let bypassed = |sw: &FastSwitch| bypass_notes(sw, b.switch_if());
    gro_on(&b.ns, &b.ifname);
    wait_for(|| bypassed(&sw).is_empty(), "the note about b to go");
    let a_to_b = |path: &str| {
        let slow0 = sw.worker_packets();
        let tx0 = sw.counters(1).tx_packets;
        let got = send_and_collect(&ca, &cb, |seq| eth_frame(b.mac, a.mac, &[], seq, 100));
        assert_each_once_in_order(&got);
        let slow = sw.worker_packets() - slow0;
        assert_eq!(
            sw.counters(1).tx_packets - tx0,
            u64::from(N),
            "{path}: b's port counts each frame once"
        );
        slow
    };
    let slow = a_to_b("fast path");
    assert!(slow <= 2, "{slow} of {N} frames to b reached the worker");

    // GRO off again, frames sent at once: until the port's next check of its peer (about
    // a second) the fast path still redirects to b, and the kernel refuses those frames
    // (b's peer has no NAPI context any more): they are counted as redirect_refused. After
    // the check the worker delivers them. Every frame either arrives (once, in order) or
    // is counted, never both. The check may come before the first frame (sending takes
    // ~30 ms), so up to three tries to see a refused redirect at all.
    let refused = |sw: &FastSwitch| {
        sw.counters(1)
            .drops(datapath::counters::DropReason::RedirectRefused)
    };
    assert_eq!(refused(&sw), 0, "nothing refused while b's peer had GRO on");
    let mut seen_refused = 0;
    for _ in 0..3 {
        let refused0 = refused(&sw);
        ns_run_ok(&b.ns, "ethtool", &["-K", &b.ifname, "gro", "off"]);
        let got: Vec<u32> = std::thread::scope(|s| {
            let rx = s.spawn(|| cb.collect_test_frames(N as usize, Duration::from_secs(3)));
            send_paced(&ca, |seq| eth_frame(b.mac, a.mac, &[], seq, 100));
            rx.join().expect("collector")
        })
        .iter()
        .filter_map(|f| test_seq(f))
        .collect();
        wait_for(
            || refused(&sw) - refused0 + got.len() as u64 == u64::from(N),
            "every frame to b delivered or counted as redirect_refused",
        );
        std::thread::sleep(Duration::from_millis(1500));
        seen_refused = refused(&sw) - refused0;
        assert_eq!(
            seen_refused + got.len() as u64,
            u64::from(N),
            "counted once each"
        );
        // The refused ones are the first: the rest arrive in order.
        let first = u32::try_from(seen_refused).expect("small") + 1;
        assert_eq!(
            got,
            (first..=N).collect::<Vec<_>>(),
            "delivered after the refusals"
        );
        wait_for(|| bypassed(&sw).len() == 1, "the note about b to come back");
        if seen_refused > 0 {
            break;
        }
        gro_on(&b.ns, &b.ifname);
        wait_for(|| bypassed(&sw).is_empty(), "the note about b to go");
    }
    assert!(seen_refused > 0, "no refused redirect in three tries");

    let slow = a_to_b("workers");
    assert!(
        slow >= u64::from(N),
        "{slow} of {N} frames to b went through the worker"
    );

    // b's end moves to another namespace: the watch follows it there (its GRO is read
    // in the new namespace), and GRO on there lets the fast path redirect to b again.
    let elsewhere = Netns::new("fxm");
    ns_run_ok(
        &b.ns,
        "ip",
        &["link", "set", &b.ifname, "netns", elsewhere.name()],
    );
    // (A move takes the interface down.)
    ns_run_ok(&elsewhere, "ip", &["link", "set", &b.ifname, "up"]);
    wait_for(
        || bypassed(&sw).iter().any(|n| n.contains("GRO off")),
        "a note about b's peer in its new namespace",
    );
    ns_run_ok(&elsewhere, "ethtool", &["-K", &b.ifname, "gro", "on"]);
    wait_for(
        || bypassed(&sw).is_empty(),
        "the note about b to go after GRO on in its new namespace",
    );
}

/// The workers' notes saying frames to `switch_if` bypass the fast path.
fn bypass_notes(sw: &FastSwitch, switch_if: &str) -> Vec<String> {
    sw.notes()
        .into_iter()
        .filter(|n| {
            n.starts_with(&format!(
                "{switch_if}: known unicast to this port goes through the workers"
            ))
        })
        .collect()
}

/// Waits up to 5 s (the ports are re-examined about once a second) for `cond`.
fn wait_for(cond: impl Fn() -> bool, what: &str) {
    let t0 = std::time::Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "waited 5 s for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A veth whose peer is down drops what it is sent. The fast path must not redirect to it
/// (the kernel would drop those frames without counting them anywhere): frames to it go
/// through the workers, whose transmit the device drops and counts, and the port reports
/// each such frame as `tx_ring_full`. Once the peer is up again the fast path resumes.
#[test]
fn frames_to_a_veth_whose_peer_is_down_are_counted_not_lost_silently() {
    if !vswitch_tests::root_or_skip(
        "frames_to_a_veth_whose_peer_is_down_are_counted_not_lost_silently",
    ) {
        return;
    }
    let (a, b, sw) = two_hosts("fxu", "fxd", 74, true);
    assert_eq!(bypass_notes(&sw, b.switch_if()), Vec::<String>::new());
    let ca = Capture::open_in(&a.ns, &a.ifname);
    let cb = Capture::open_in(&b.ns, &b.ifname);
    announce(&sw, (&a, &ca), (&b, &cb));
    drop(cb);

    ns_run_ok(&b.ns, "ip", &["link", "set", &b.ifname, "down"]);
    wait_for(
        || {
            bypass_notes(&sw, b.switch_if())
                .iter()
                .any(|n| n.contains(&format!("its veth peer {} is down", b.ifname)))
        },
        "a note that b's peer is down",
    );
    let tx_full = |sw: &FastSwitch| {
        sw.counters(1)
            .drops(datapath::counters::DropReason::TxRingFull)
    };
    let drops0 = tx_full(&sw);
    let slow0 = sw.worker_packets();
    send_paced(&ca, |seq| eth_frame(b.mac, a.mac, &[], seq, 100));
    wait_for(
        || tx_full(&sw) - drops0 == u64::from(N),
        "b's port to count every frame sent to its down peer as tx_ring_full",
    );
    assert!(
        sw.worker_packets() - slow0 >= u64::from(N),
        "the worker carried them"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(tx_full(&sw) - drops0, u64::from(N), "counted once each");

    // Up again: the note goes and the fast path delivers to b.
    ns_run_ok(&b.ns, "ip", &["link", "set", &b.ifname, "up"]);
    wait_for(
        || bypass_notes(&sw, b.switch_if()).is_empty(),
        "the note to go",
    );
    let cb = Capture::open_in(&b.ns, &b.ifname);
    let slow0 = sw.worker_packets();
    let got = send_and_collect(&ca, &cb, |seq| eth_frame(b.mac, a.mac, &[], seq, 100));
    assert_each_once_in_order(&got);
    let slow = sw.worker_packets() - slow0;
    assert!(slow <= 2, "{slow} of {N} frames reached the worker");
    assert_eq!(tx_full(&sw) - drops0, u64::from(N), "nothing more dropped");

    // Down again, frames sent at once: until the port's next check of its peer (about a
    // second) the fast path still redirects to it. The device takes those redirects, fails
    // to hand them over and counts them itself, like the worker's: every frame is counted
    // as tx_ring_full, exactly once, and none as redirect_refused (no double count).
    let refused = |sw: &FastSwitch| {
        sw.counters(1)
            .drops(datapath::counters::DropReason::RedirectRefused)
    };
    let (full0, refused0) = (tx_full(&sw), refused(&sw));
    ns_run_ok(&b.ns, "ip", &["link", "set", &b.ifname, "down"]);
    send_paced(&ca, |seq| eth_frame(b.mac, a.mac, &[], seq, 100));
    wait_for(
        || tx_full(&sw) - full0 == u64::from(N),
        "every frame to b's down peer counted as tx_ring_full",
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(tx_full(&sw) - full0, u64::from(N), "counted once each");
    assert_eq!(refused(&sw) - refused0, 0);
}
