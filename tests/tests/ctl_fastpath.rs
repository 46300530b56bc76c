//! The XDP fast path driven through vswitchd: `vswitchctl pmd set-fast-path on|off`
//! switches `datapath.xdp_fast_path`, which restarts the bridges with (or without) one
//! fast-path XDP program shared by the bridge's AF_XDP ports. Verdicts come from what the
//! receiving namespaces captured (every test frame exactly once, byte for byte) and from
//! the workers' packet counters (`pmd show --json`): with the fast path on, known unicast
//! between AF_XDP ports is forwarded in the kernel, so the workers see next to none of it;
//! with it off they see every frame.
//!
//! Namespace-side veths get GRO on: a veth accepts XDP-redirected frames only when its
//! peer has a NAPI context (`datapath::fastpath` explains the requirement).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vswitch_tests::daemon::{binaries, config, wait_until, Daemon, CTL_TIMEOUT};
use vswitch_tests::testutil::{test_seq, unique_name, Capture};
use vswitch_tests::{
    assert_ping_ok, drain, eth_frame, ns_run_ok, run_timeout, CmdOutput, Host, TapHost, Watchdog,
};

const BR: &str = "br0";
/// Test frames per burst.
const N: u32 = 300;
/// A static entry on port `b`, which must survive every bridge restart.
const STATIC_MAC: &str = "02:5a:00:00:00:01";

fn ip(net: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 83, net, host)
}

fn gro_on(h: &Host) {
    ns_run_ok(&h.ns, "ethtool", &["-K", &h.ifname, "gro", "on"]);
}

/// `pmd show --json`: the worker objects of `BR`.
fn pmd_workers(dmn: &Daemon) -> Vec<serde_json::Value> {
    dmn.pmd_workers(BR)
}

/// Frames the workers of `BR` received so far.
fn worker_packets(dmn: &Daemon) -> u64 {
    dmn.pmd_sum(BR, "packets")
}

/// Asserts the fast-path state `on` everywhere it shows: `pmd show` (text and per worker
/// in JSON, no error) and every AF_XDP port of `ports` in `show --json` (up).
fn assert_fast_path(dmn: &Daemon, on: bool, ports: &[&str]) {
    let state = if on { "on" } else { "off" };
    for w in pmd_workers(dmn) {
        assert_eq!(w["xdp_fast_path"], on, "pmd show --json worker: {w}");
        assert!(w.get("xdp_fast_path_error").is_none(), "{w}");
    }
    // Text: a first line and one per worker when on; no mention when off (as before).
    let text = dmn.ctl_ok(&["pmd", "show"]);
    let workers = text.matches("pmd thread ").count();
    assert!(workers >= 1, "pmd show: {text}");
    if on {
        assert!(
            text.starts_with("poll mode: adaptive (window 20000 us)\nxdp fast path: on\n"),
            "pmd show: {text}"
        );
        assert_eq!(
            text.matches("\n  xdp fast path: on  fdb entries: ").count(),
            workers,
            "pmd show: {text}"
        );
    } else {
        assert!(!text.contains("xdp fast path"), "pmd show: {text}");
    }
    // JSON: `fast_path: true` on fast-path ports, absent otherwise.
    for p in ports {
        let v = dmn.port_view(BR, p);
        assert_eq!(v["state"], "up", "port {p}: {v}");
        let fast = on.then_some(&serde_json::Value::Bool(true));
        assert_eq!(v.get("fast_path"), fast, "port {p} ({state}): {v}");
    }
    let show = dmn.ctl_ok(&["show"]);
    assert_eq!(
        show.matches(", fast path").count(),
        if on { ports.len() } else { 0 },
        "show: {show}"
    );
}

/// The `[datapath]` line of the config file that sets `xdp_fast_path`.
fn config_line(dmn: &Daemon) -> String {
    let text = std::fs::read_to_string(&dmn.config).expect("read config file");
    let section = text
        .split("[datapath]")
        .nth(1)
        .unwrap_or_else(|| panic!("no [datapath] section: {text}"));
    section
        .lines()
        .take_while(|l| !l.trim_start().starts_with('['))
        .find(|l| l.trim_start().starts_with("xdp_fast_path"))
        .unwrap_or_else(|| panic!("no xdp_fast_path in [datapath]: {text}"))
        .trim()
        .to_string()
}

/// Whether the static entry is installed on port `b`.
fn static_present(dmn: &Daemon) -> bool {
    dmn.fdb_entries(BR)
        .iter()
        .any(|e| e == &(100, STATIC_MAC.to_string(), "b".to_string(), true))
}

/// Test frames 1..=N from `from` to `to`, each received exactly once, in order, unchanged.
fn burst_exactly_once(from: &Host, to: &Host, at_from: &Capture, at_to: &Capture) {
    let frame = |seq: u32| eth_frame(to.mac, from.mac, &[], seq, 128);
    vswitch_tests::burst_exactly_once(at_from, at_to, N, frame, frame, &to.ifname);
}

/// Learning: both hosts resolve each other (ARP and ICMP through the switch).
fn learn(a: &Host, b: &Host) {
    assert_ping_ok(a, b.ip, 2);
}

/// Waits until the fast path's FDB holds at least `n` entries.
fn wait_mirrored(dmn: &Daemon, n: u64) {
    wait_until(
        Duration::from_secs(5),
        "fast-path FDB mirrors the MACs",
        || {
            pmd_workers(dmn)
                .first()
                .and_then(|w| w["xdp_fdb_entries"].as_u64())
                .is_some_and(|e| e >= n)
        },
    );
}

/// Asserts that VLAN 200's host captured none of the test frames.
fn assert_nothing_at(c: &Host, cap: &Capture) {
    let leaked: Vec<Vec<u8>> = drain(cap)
        .into_iter()
        .filter(|f| test_seq(f).is_some())
        .collect();
    assert!(
        leaked.is_empty(),
        "VLAN 200 host {} captured {} test frame(s), first {:02x?}",
        c.ifname,
        leaked.len(),
        leaked.first()
    );
}

#[test]
fn fast_path_on_and_off_through_vswitchctl() {
    if !vswitch_tests::root_or_skip("fast_path_on_and_off_through_vswitchctl") {
        return;
    }
    let t0 = Instant::now();
    let a = Host::with_offloads("fpa", ip(1, 1));
    let b = Host::with_offloads("fpb", ip(1, 2));
    let c = Host::with_offloads("fpc", ip(1, 3));
    let d = Host::with_offloads("fpd", ip(1, 4));
    for h in [&a, &b, &c, &d] {
        gro_on(h);
    }
    let dmn = Daemon::start(&config(1, 4096));
    let _wd = Watchdog::new(Duration::from_secs(90), "fast path on/off", dmn.pid());
    dmn.add_br(BR);
    dmn.add_port(BR, "a", a.switch_if(), &["--access", "100"]);
    dmn.add_port(BR, "b", b.switch_if(), &["--access", "100"]);
    dmn.add_port(BR, "c", c.switch_if(), &["--access", "200"]);
    dmn.ctl_ok(&[
        "fdb", "add", BR, "--vlan", "100", "--mac", STATIC_MAC, "--port", "b",
    ]);
    let ports = ["a", "b", "c"];
    assert_fast_path(&dmn, false, &ports);

    // On: the bridge restarts with its fast-path program; ports and statics come back.
    let out = dmn.ctl_ok(&["pmd", "set-fast-path", "on"]);
    assert_eq!(out.trim(), "XDP fast path on (1 bridge(s) restarted)");
    assert_fast_path(&dmn, true, &ports);
    assert!(static_present(&dmn), "static entry after the restart");
    assert_eq!(config_line(&dmn), "xdp_fast_path = true");
    let again = dmn.ctl_ok(&["pmd", "set-fast-path", "on"]);
    assert_eq!(again.trim(), "XDP fast path already on");

    let cap_a = a.capture();
    let cap_b = b.capture();
    let cap_c = c.capture();
    learn(&a, &b);
    // a, b and the static entry.
    wait_mirrored(&dmn, 3);
    for cap in [&cap_a, &cap_b] {
        drain(cap);
    }
    let slow0 = worker_packets(&dmn);
    let tx_b0 = dmn.port_stats(BR, "b").tx_packets;
    burst_exactly_once(&a, &b, &cap_a, &cap_b);
    let slow = worker_packets(&dmn) - slow0;
    eprintln!("fast path on: {N} frames delivered, {slow} seen by the worker");
    assert!(
        slow < u64::from(N) / 10,
        "fast path on: the worker received {slow} of {N} frames (want < {}): the kernel \
         did not forward them",
        N / 10
    );
    // The kernel-forwarded frames are in the port's counters.
    wait_until(
        Duration::from_secs(3),
        "port b's tx counter includes the fast-path frames",
        || dmn.port_stats(BR, "b").tx_packets >= tx_b0 + u64::from(N),
    );
    assert_nothing_at(&c, &cap_c);

    // AF_XDP ports opened later join the bridge's program: a port added now, and a port
    // reopened because its MTU needs other UMEM frames (2048 -> 4096 bytes).
    dmn.add_port(BR, "d", d.switch_if(), &["--access", "100"]);
    dmn.ctl_ok(&["set-port", BR, "b", "--mtu", "2000"]);
    let ports = ["a", "b", "c", "d"];
    assert_fast_path(&dmn, true, &ports);
    let cap_d = d.capture();
    learn(&a, &b);
    learn(&a, &d);
    // a, b, d and the static entry.
    wait_mirrored(&dmn, 4);
    for cap in [&cap_a, &cap_b, &cap_d] {
        drain(cap);
    }
    let slow0 = worker_packets(&dmn);
    burst_exactly_once(&a, &b, &cap_a, &cap_b);
    burst_exactly_once(&a, &d, &cap_a, &cap_d);
    let slow = worker_packets(&dmn) - slow0;
    eprintln!(
        "new and reopened ports: {} frames delivered, {slow} seen by the worker",
        2 * N
    );
    assert!(
        slow < u64::from(2 * N) / 10,
        "new and reopened ports: the worker received {slow} of {} frames (want < {})",
        2 * N,
        2 * N / 10
    );
    assert_nothing_at(&c, &cap_c);

    // Off: restarted again, every frame through the worker.
    let out = dmn.ctl_ok(&["pmd", "set-fast-path", "off"]);
    assert_eq!(out.trim(), "XDP fast path off (1 bridge(s) restarted)");
    assert_fast_path(&dmn, false, &ports);
    assert!(
        static_present(&dmn),
        "static entry after the second restart"
    );
    assert_eq!(config_line(&dmn), "xdp_fast_path = false");
    for w in pmd_workers(&dmn) {
        assert_eq!(w["xdp_fdb_entries"], 0, "{w}");
    }
    learn(&a, &b);
    for cap in [&cap_a, &cap_b] {
        drain(cap);
    }
    let slow0 = worker_packets(&dmn);
    burst_exactly_once(&a, &b, &cap_a, &cap_b);
    let slow = worker_packets(&dmn) - slow0;
    eprintln!("fast path off: {N} frames delivered, {slow} seen by the worker");
    assert!(
        slow >= u64::from(N),
        "fast path off: the worker received only {slow} of {N} frames"
    );
    assert_nothing_at(&c, &cap_c);
    for p in ["a", "b"] {
        let st = dmn.port_stats(BR, p);
        assert_eq!(st.total_drops(), 0, "drops on port {p}: {st:?}");
    }
    eprintln!(
        "fast_path_on_and_off_through_vswitchctl: {:?}",
        t0.elapsed()
    );
}

#[test]
fn fast_path_setting_persists_across_restart_and_bad_values_are_refused() {
    if !vswitch_tests::root_or_skip(
        "fast_path_setting_persists_across_restart_and_bad_values_are_refused",
    ) {
        return;
    }
    let t0 = Instant::now();
    let a = Host::with_offloads("fqa", ip(2, 1));
    let b = Host::with_offloads("fqb", ip(2, 2));
    for h in [&a, &b] {
        gro_on(h);
    }
    let mut dmn = Daemon::start(&config(2, 4096));
    let _wd = Watchdog::new(Duration::from_secs(90), "fast path persistence", dmn.pid());
    dmn.add_br(BR);
    dmn.add_port(BR, "a", a.switch_if(), &["--access", "100"]);
    dmn.add_port(BR, "b", b.switch_if(), &["--access", "100"]);
    dmn.ctl_ok(&[
        "fdb", "add", BR, "--vlan", "100", "--mac", STATIC_MAC, "--port", "b",
    ]);
    assert_eq!(config_line(&dmn), "xdp_fast_path = false");

    // Bad values: a usage error (exit 2) naming the value and the choices; nothing changes.
    let before = std::fs::read_to_string(&dmn.config).expect("read config");
    for bad in ["maybe", "1", "ON"] {
        let o = dmn.ctl(&["pmd", "set-fast-path", bad]);
        assert_eq!(
            o.status.and_then(|s| s.code()),
            Some(2),
            "set-fast-path {bad}: {o:?}"
        );
        assert!(
            o.stderr.contains(&format!("invalid value '{bad}'"))
                && o.stderr.contains("[possible values: on, off]"),
            "set-fast-path {bad}: {}",
            o.stderr
        );
    }
    let o = dmn.ctl(&["pmd", "set-fast-path"]);
    assert_eq!(o.status.and_then(|s| s.code()), Some(2), "no value: {o:?}");
    assert_eq!(
        std::fs::read_to_string(&dmn.config).expect("read config"),
        before,
        "refused values left the file alone"
    );
    assert_fast_path(&dmn, false, &["a", "b"]);

    dmn.ctl_ok(&["pmd", "set-fast-path", "on"]);
    assert_eq!(config_line(&dmn), "xdp_fast_path = true");
    // Written atomically: no temporary file left next to it.
    let dir = dmn.config.parent().expect("config dir");
    let names: Vec<String> = std::fs::read_dir(dir)
        .expect("read config dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(names.is_empty(), "temporary files left: {names:?}");

    // Restart: the daemon comes back with the fast path on, ports and statics in place.
    dmn.stop();
    dmn.spawn();
    assert_fast_path(&dmn, true, &["a", "b"]);
    assert!(
        static_present(&dmn),
        "static entry after the daemon restart"
    );
    let cap_a = a.capture();
    let cap_b = b.capture();
    learn(&a, &b);
    wait_mirrored(&dmn, 3);
    for cap in [&cap_a, &cap_b] {
        drain(cap);
    }
    let slow0 = worker_packets(&dmn);
    burst_exactly_once(&a, &b, &cap_a, &cap_b);
    let slow = worker_packets(&dmn) - slow0;
    eprintln!("after restart (2 workers): {N} frames delivered, {slow} seen by the workers");
    assert!(
        slow < u64::from(N) / 10,
        "after the restart the workers received {slow} of {N} frames (want < {})",
        N / 10
    );

    // Off, persisted too.
    dmn.ctl_ok(&["pmd", "set-fast-path", "off"]);
    dmn.stop();
    dmn.spawn();
    assert_eq!(config_line(&dmn), "xdp_fast_path = false");
    assert_fast_path(&dmn, false, &["a", "b"]);
    assert!(
        static_present(&dmn),
        "static entry after the second restart"
    );
    learn(&a, &b);
    eprintln!(
        "fast_path_setting_persists_across_restart_and_bad_values_are_refused: {:?}",
        t0.elapsed()
    );
}

/// A vswitchd that cannot load BPF programs: started through `setpriv` without CAP_BPF,
/// CAP_SYS_ADMIN and CAP_PERFMON (it keeps CAP_NET_ADMIN, enough for tap ports). Killed
/// and its directory removed on drop.
struct NoBpfDaemon {
    child: Child,
    dir: PathBuf,
    config: PathBuf,
    socket: PathBuf,
    log: PathBuf,
}

impl NoBpfDaemon {
    fn start(config_toml: &str) -> NoBpfDaemon {
        let dir = std::env::temp_dir().join(unique_name("vsdnb"));
        std::fs::create_dir_all(&dir).expect("create daemon directory");
        let config = dir.join("vswitchd.toml");
        std::fs::write(&config, config_toml).expect("write config");
        let socket = dir.join("ctl.sock");
        let log = dir.join("stderr.log");
        let (vswitchd, _) = binaries();
        let caps = "-bpf,-sys_admin,-perfmon";
        let child = Command::new("setpriv")
            .args(["--inh-caps", caps, "--bounding-set", caps])
            .arg(vswitchd)
            .arg("--config")
            .arg(&config)
            .arg("--socket")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create log"))
            .spawn()
            .expect("spawn setpriv vswitchd (util-linux setpriv)");
        let mut d = NoBpfDaemon {
            child,
            dir,
            config,
            socket,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(d.socket.exists() && d.ctl(&["show"]).success()) {
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!("vswitchd exited at start-up ({st}): {}", d.log());
            }
            assert!(Instant::now() < deadline, "no answer in 20 s: {}", d.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn ctl(&self, args: &[&str]) -> CmdOutput {
        let (_, ctl) = binaries();
        let sock = self.socket.to_string_lossy().into_owned();
        let mut all = args.to_vec();
        all.extend_from_slice(&["--socket", &sock]);
        run_timeout(&ctl.to_string_lossy(), &all, CTL_TIMEOUT)
    }

    fn ctl_ok(&self, args: &[&str]) -> String {
        let o = self.ctl(args);
        assert!(
            o.success(),
            "vswitchctl {args:?}: {o:?}\nlog: {}",
            self.log()
        );
        o.stdout
    }

    /// `pmd show --json`'s first worker of `BR`.
    fn worker(&self) -> serde_json::Value {
        let out = self.ctl_ok(&["pmd", "show", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("pmd show JSON");
        v.as_array()
            .and_then(|a| a.iter().find(|w| w["bridge"] == BR))
            .cloned()
            .unwrap_or_else(|| panic!("no worker of {BR}: {v}"))
    }
}

impl Drop for NoBpfDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn bridge_falls_back_to_the_workers_when_the_program_cannot_load() {
    if !vswitch_tests::root_or_skip("bridge_falls_back_to_the_workers_when_the_program_cannot_load")
    {
        return;
    }
    let t0 = Instant::now();
    // Created before the daemon, so the namespaces outlive its tap devices.
    let t1 = TapHost::new("fra", ip(3, 1));
    let t2 = TapHost::new("frb", ip(3, 2));
    let dmn = NoBpfDaemon::start(&format!(
        "[datapath]\nworkers = 1\nxdp_fast_path = true\n\n[[bridge]]\nname = \"{BR}\"\n\
         [[bridge.port]]\nname = \"t1\"\ntype = \"tap\"\ninterface = \"{}\"\naccess = 100\n\
         [[bridge.port]]\nname = \"t2\"\ntype = \"tap\"\ninterface = \"{}\"\naccess = 100\n",
        t1.ifname, t2.ifname
    ));
    let _wd = Watchdog::new(
        Duration::from_secs(60),
        "fast path fallback",
        Some(dmn.child.id()),
    );
    t1.attach();
    t2.attach();

    // Running, without the fast path, saying why.
    let cause = "cannot load the XDP program: Operation not permitted";
    assert!(
        dmn.log().contains(&format!(
            "vswitchd: bridge {BR}: XDP fast path unavailable ({cause}"
        )),
        "start-up log: {}",
        dmn.log()
    );
    let w = dmn.worker();
    assert_eq!(w["xdp_fast_path"], false, "{w}");
    assert!(
        w["xdp_fast_path_error"]
            .as_str()
            .is_some_and(|e| e.starts_with(cause)),
        "{w}"
    );
    let text = dmn.ctl_ok(&["pmd", "show"]);
    assert!(
        text.starts_with("poll mode: adaptive (window 20000 us)\nxdp fast path: on\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("  xdp fast path: unavailable: {cause}")),
        "{text}"
    );
    let r = t1.ping(t2.ip, 3);
    assert!(r.all_received(), "the bridge forwards: {}", r.output);

    // Asking for what is configured but unavailable says so.
    let o = dmn.ctl(&["pmd", "set-fast-path", "on"]);
    assert_eq!(o.status.and_then(|s| s.code()), Some(1), "{o:?}");
    assert!(
        o.stderr.contains(&format!(
            "XDP fast path is on but unavailable on bridge {BR}: {cause}"
        )),
        "{}",
        o.stderr
    );
    // Off works; on again fails as a whole: nothing changes, nothing is persisted.
    dmn.ctl_ok(&["pmd", "set-fast-path", "off"]);
    let w = dmn.worker();
    assert_eq!(w["xdp_fast_path"], false, "{w}");
    assert!(w.get("xdp_fast_path_error").is_none(), "{w}");
    let before = std::fs::read_to_string(&dmn.config).expect("config");
    assert!(before.contains("xdp_fast_path = false"), "{before}");
    let o = dmn.ctl(&["pmd", "set-fast-path", "on"]);
    assert_eq!(o.status.and_then(|s| s.code()), Some(1), "{o:?}");
    assert!(
        o.stderr
            .contains(&format!("bridge {BR}: XDP fast path: {cause}")),
        "{}",
        o.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&dmn.config).expect("config"),
        before,
        "a failed change is not persisted"
    );
    assert!(!dmn.ctl_ok(&["pmd", "show"]).contains("xdp fast path"));
    // (No ping here: the restart by `set-fast-path off` re-created the tap devices in the
    // daemon's namespace, as every [datapath] change does; the hosts' taps are gone.)
    let show = dmn.ctl_ok(&["show"]);
    assert_eq!(show.matches("(tap, pmd 0): up").count(), 2, "{show}");
    eprintln!(
        "bridge_falls_back_to_the_workers_when_the_program_cannot_load: {:?}",
        t0.elapsed()
    );
}

/// A veth port whose peer has GRO off cannot take XDP-redirected frames: vswitchd says so
/// (`pmd show` note, log line) and its known unicast goes through the workers. When the
/// peer turns GRO on, the daemon notices within seconds: the note goes, the log says it
/// no longer applies, and the fast path forwards to the port.
#[test]
fn a_veth_peer_turning_gro_on_moves_its_traffic_to_the_fast_path() {
    if !vswitch_tests::root_or_skip("a_veth_peer_turning_gro_on_moves_its_traffic_to_the_fast_path")
    {
        return;
    }
    let a = Host::with_offloads("fga", ip(3, 1));
    let b = Host::with_offloads("fgb", ip(3, 2));
    gro_on(&a); // b keeps the veth default: GRO off
    let dmn = Daemon::start(&config(1, 4096));
    let _wd = Watchdog::new(Duration::from_secs(90), "veth peer GRO", dmn.pid());
    dmn.ctl_ok(&["pmd", "set-fast-path", "on"]);
    dmn.add_br(BR);
    dmn.add_port(BR, "a", a.switch_if(), &["--access", "100"]);
    dmn.add_port(BR, "b", b.switch_if(), &["--access", "100"]);
    let note_start = format!(
        "{}: known unicast to this port goes through the workers",
        b.switch_if()
    );
    let notes = |dmn: &Daemon| -> Vec<String> {
        pmd_workers(dmn)
            .iter()
            .flat_map(|w| w["notes"].as_array().cloned().unwrap_or_default())
            .filter_map(|n| n.as_str().map(str::to_owned))
            .filter(|n| n.starts_with(&note_start))
            .collect()
    };
    let now = notes(&dmn);
    assert_eq!(now.len(), 1, "{now:?}");
    assert!(
        now[0].contains(&format!(
            "`ethtool -K {} gro on` (in its namespace)",
            b.ifname
        )),
        "{now:?}"
    );
    assert!(
        dmn.ctl_ok(&["pmd", "show"])
            .contains(&format!("  note: {note_start}")),
        "pmd show text"
    );
    let logged = |dmn: &Daemon, what: &str| {
        dmn.log_lines()
            .iter()
            .filter(|l| l.contains(what) && l.contains(&note_start))
            .count()
    };
    wait_until(Duration::from_secs(5), "the note in the log", || {
        logged(&dmn, "vswitchd: bridge br0: ") == 1
    });

    let cap_a = a.capture();
    let cap_b = b.capture();
    learn(&a, &b);
    wait_mirrored(&dmn, 2);
    drain(&cap_a);
    drain(&cap_b);
    // GRO off: every frame to b is the worker's (and arrives exactly once).
    let slow0 = worker_packets(&dmn);
    burst_exactly_once(&a, &b, &cap_a, &cap_b);
    let slow = worker_packets(&dmn) - slow0;
    assert!(
        slow >= u64::from(N),
        "{slow} of {N} frames to b seen by the worker"
    );

    // GRO on at b: the note goes within seconds, the log says so, the fast path takes over.
    gro_on(&b);
    wait_until(Duration::from_secs(5), "the note about b to go", || {
        notes(&dmn).is_empty()
    });
    wait_until(
        Duration::from_secs(5),
        "'no longer applies' in the log",
        || logged(&dmn, "no longer applies: ") == 1,
    );
    let slow0 = worker_packets(&dmn);
    burst_exactly_once(&a, &b, &cap_a, &cap_b);
    let slow = worker_packets(&dmn) - slow0;
    assert!(
        slow < u64::from(N) / 10,
        "GRO on: the worker received {slow} of {N} frames to b (want < {})",
        N / 10
    );
}
