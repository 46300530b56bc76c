//! A real container runtime: podman 4.3 (CNI backend, runc) starts containers from a
//! static-busybox root filesystem on two vswitch-cni networks, VLAN 100 and VLAN 200, in
//! one IP subnet (so only the VLANs keep them apart). Containers on the same VLAN ping
//! and move 4 MiB over TCP with the kernel's default offloads (bytes and MD5 compared);
//! across VLANs nothing arrives; a container on both networks reaches both; removing a
//! container removes its port. Everything podman keeps (storage, state, network
//! configurations, plugin directory) lives in a temporary directory; the machine's
//! /etc/cni/net.d and containers.conf are not used. Root only.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vswitch_tests::cni::{link_exists, plugin, port_of, require_plugins, TempDir, CNI_PLUGINS};
use vswitch_tests::daemon::{config, Daemon};
use vswitch_tests::testutil::unique_name;
use vswitch_tests::{root_or_skip, run_timeout, CmdOutput};

/// podman with everything under one temporary directory.
struct Podman {
    dir: TempDir,
    conf: String,
}

impl Podman {
    fn new() -> Podman {
        let dir = TempDir::new("pod");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin dir");
        std::fs::create_dir_all(dir.path().join("net.d")).expect("net.d");
        std::os::unix::fs::symlink(plugin(), bin.join("vswitch-cni")).expect("link plugin");
        let conf = dir.join("containers.conf");
        std::fs::write(
            &conf,
            format!(
                "[engine]\ncgroup_manager = \"cgroupfs\"\nruntime = \"runc\"\n\
                 events_logger = \"none\"\n\n[network]\nnetwork_backend = \"cni\"\n\
                 network_config_dir = \"{}\"\ncni_plugin_dirs = [\"{}\", \"{CNI_PLUGINS}\"]\n",
                dir.join("net.d"),
                bin.display()
            ),
        )
        .expect("containers.conf");
        Podman { dir, conf }
    }

    /// `podman ARGS` with this instance's storage, state and configuration.
    fn run(&self, args: &[&str], timeout: Duration) -> CmdOutput {
        let conf = format!("CONTAINERS_CONF={}", self.conf);
        let root = self.dir.join("root");
        let runroot = self.dir.join("runroot");
        let tmpdir = self.dir.join("tmp");
        let netdir = self.dir.join("net.d");
        let mut all = vec![
            conf.as_str(),
            "podman",
            "--root",
            &root,
            "--runroot",
            &runroot,
            "--tmpdir",
            &tmpdir,
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--runtime",
            "runc",
            "--network-config-dir",
            &netdir,
            "--log-level",
            "error",
        ];
        all.extend_from_slice(args);
        run_timeout("env", &all, timeout)
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args, Duration::from_secs(120));
        assert!(
            o.success(),
            "podman {args:?} failed ({:?}): {}{}",
            o.status,
            o.stdout,
            o.stderr
        );
        o.stdout
    }

    /// A root filesystem for one container: a static busybox and its applets.
    fn rootfs(&self, name: &str) -> String {
        let root = self.dir.path().join(format!("rootfs-{name}"));
        for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "run", "root"] {
            std::fs::create_dir_all(root.join(d)).expect("rootfs dir");
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("a static busybox (busybox-static, installed by scripts/setup.sh)");
        let bytes = std::fs::read(&busybox).expect("read busybox");
        assert!(
            !has_interpreter(&bytes),
            "{} is dynamically linked: the containers need busybox-static",
            busybox.display()
        );
        std::fs::copy(&busybox, root.join("bin/busybox")).expect("copy busybox");
        for applet in [
            "sh", "sleep", "ping", "nc", "ip", "md5sum", "dd", "wc", "cat", "seq", "ls",
        ] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))
                .expect("applet link");
        }
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
        std::fs::write(root.join("etc/group"), "root:x:0:\n").expect("group");
        root.to_string_lossy().into_owned()
    }

    /// Starts container `name` on `networks`, running `sleep`.
    fn start(&self, name: &str, networks: &str) -> Container {
        let rootfs = self.rootfs(name);
        let (nofile, nproc) = ulimits();
        let id = self
            .ok(&[
                "run",
                "-d",
                "--name",
                name,
                "--network",
                networks,
                "--cap-add",
                "NET_RAW",
                "--ulimit",
                &nofile,
                "--ulimit",
                &nproc,
                "--rootfs",
                &rootfs,
                "/bin/sleep",
                "600",
            ])
            .trim()
            .to_string();
        let inspect: Value =
            serde_json::from_str(&self.ok(&["inspect", name])).expect("podman inspect JSON");
        let settings = &inspect[0]["NetworkSettings"];
        Container {
            name: name.to_string(),
            id,
            netns: settings["SandboxKey"]
                .as_str()
                .expect("SandboxKey")
                .to_string(),
            networks: settings["Networks"].clone(),
        }
    }

    fn exec(&self, c: &Container, script: &str) -> CmdOutput {
        self.run(
            &["exec", &c.name, "/bin/sh", "-c", script],
            Duration::from_secs(60),
        )
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-f", "-a", "-t", "0"], Duration::from_secs(120));
    }
}

/// `--ulimit` values runc can apply without CAP_SYS_RESOURCE (which this machine's root
/// lacks): podman asks for nofile 1048576 and nproc 32768 by default and `--ulimit host`
/// does not stop that in podman 4.3, so the container gets at most what this process
/// (nofile) and podman's conmon (nproc, at most 32768) hold.
fn ulimits() -> (String, String) {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    let hard = |what: &str, cap: u64| {
        limits
            .lines()
            .find(|l| l.starts_with(what))
            .and_then(|l| l[what.len()..].split_whitespace().nth(1))
            .map_or(cap, |h| h.parse::<u64>().map_or(cap, |v| v.min(cap)))
    };
    let nofile = hard("Max open files", 1_048_576);
    let nproc = hard("Max processes", 32_768);
    (
        format!("nofile={nofile}:{nofile}"),
        format!("nproc={nproc}:{nproc}"),
    )
}

/// Whether an ELF64 binary names a program interpreter (PT_INTERP): it is dynamic.
fn has_interpreter(elf: &[u8]) -> bool {
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(32), u16_at(54), u16_at(56)) else {
        return true;
    };
    (0..usize::from(phnum)).any(|i| {
        let at = phoff as usize + i * usize::from(phentsize);
        elf.get(at..at + 4) == Some(&3u32.to_le_bytes()[..])
    })
}

#[derive(Debug)]
struct Container {
    name: String,
    id: String,
    netns: String,
    networks: Value,
}

impl Container {
    fn ip(&self, network: &str) -> String {
        self.networks[network]["IPAddress"]
            .as_str()
            .unwrap_or_else(|| {
                panic!(
                    "{} has no address on {network}: {}",
                    self.name, self.networks
                )
            })
            .to_string()
    }
}

/// A vswitch-cni network `name`: VLAN `vlan`, host-local addresses `first`-`last` of
/// 10.233.0.0/24; `dirs`: vswitch-cni's state directory and host-local's data directory.
fn conflist(
    d: &Daemon,
    bridge: &str,
    name: &str,
    vlan: u16,
    (first, last): (u8, u8),
    (state, ipam): (&str, &str),
) -> String {
    json!({
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [{
            "type": "vswitch-cni",
            "bridge": bridge,
            "vlan": vlan,
            "socket": d.socket,
            "stateDir": state,
            "ipam": {
                "type": "host-local",
                "dataDir": ipam,
                "ranges": [[{
                    "subnet": "10.233.0.0/24",
                    "rangeStart": format!("10.233.0.{first}"),
                    "rangeEnd": format!("10.233.0.{last}"),
                }]],
            },
        }],
    })
    .to_string()
}

fn pings(p: &Podman, from: &Container, to: &str) -> u32 {
    pings_via(p, from, to, None)
}

/// Pings out of interface `via` (a container on two networks of one subnet has two
/// routes to it: without `-I` the first wins).
fn pings_via(p: &Podman, from: &Container, to: &str, via: Option<&str>) -> u32 {
    let dev = via.map(|d| format!("-I {d} ")).unwrap_or_default();
    let o = p.exec(from, &format!("ping -c 3 -W 2 {dev}{to}"));
    vswitch_tests::parse_ping(&o.stdout).map_or(0, |(_, rx)| rx)
}

/// The interface of `c` that holds address `ip`.
fn iface_with(p: &Podman, c: &Container, ip: &str) -> String {
    let o = p.exec(c, "ip -o -4 addr show");
    o.stdout
        .lines()
        .find(|l| l.contains(&format!(" {ip}/")))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("{} has no {ip}: {}{}", c.name, o.stdout, o.stderr))
        .to_string()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn podman_containers_on_two_vswitch_vlans() {
    if !root_or_skip("podman_containers_on_two_vswitch_vlans") {
        return;
    }
    require_plugins();
    assert!(
        Path::new("/usr/bin/podman").exists() && Path::new("/usr/sbin/runc").exists(),
        "podman and runc missing: bash scripts/setup.sh test installs them"
    );
    let bridge = unique_name("pb");
    let d = Daemon::start(&config(1, 4096));
    d.add_br(&bridge);
    let p = Podman::new();
    let tag = std::process::id();
    let (n100, n200) = (format!("vsw100-{tag}"), format!("vsw200-{tag}"));
    let state = p.dir.join("cni-state");
    let ipam = p.dir.join("ipam");
    for (name, vlan, first, last) in [(&n100, 100, 10, 19), (&n200, 200, 50, 59)] {
        std::fs::write(
            p.dir.path().join("net.d").join(format!("{name}.conflist")),
            conflist(&d, &bridge, name, vlan, (first, last), (&state, &ipam)),
        )
        .expect("write conflist");
    }
    let a = p.start(&format!("a{tag}"), &n100);
    let b = p.start(&format!("b{tag}"), &n100);
    let c = p.start(&format!("c{tag}"), &n200);
    let both = p.start(&format!("d{tag}"), &format!("{n100},{n200}"));
    // host-local hands out addresses in order: exact values.
    assert_eq!(a.ip(&n100), "10.233.0.10");
    assert_eq!(b.ip(&n100), "10.233.0.11");
    assert_eq!(c.ip(&n200), "10.233.0.50");
    assert_eq!(
        (both.ip(&n100), both.ip(&n200)),
        ("10.233.0.12".into(), "10.233.0.51".into())
    );

    // One port per attachment, owned by the container, in its network's VLAN.
    let show = d.ctl_json(&["show"]);
    let ports = d.ports(&bridge);
    assert_eq!(ports.len(), 5, "{show}");
    for (ctr, net, vlan) in [
        (&a, &n100, "access 100"),
        (&b, &n100, "access 100"),
        (&c, &n200, "access 200"),
    ] {
        let port = port_of(&show, &bridge, &ctr.id, "eth0")
            .unwrap_or_else(|| panic!("no port of {} eth0: {show}", ctr.name));
        assert_eq!(port["vlan"], vlan);
        assert_eq!(port["owner"]["network"], net.as_str());
        assert_eq!(port["owner"]["netns"], ctr.netns.as_str());
        assert_eq!(port["state"], "up");
    }
    let mut both_vlans: Vec<String> = ports
        .iter()
        .filter(|x| x["owner"]["container_id"] == both.id.as_str())
        .map(|x| {
            format!(
                "{} {}",
                x["owner"]["network"].as_str().unwrap_or(""),
                x["vlan"].as_str().unwrap_or("")
            )
        })
        .collect();
    both_vlans.sort();
    assert_eq!(
        both_vlans,
        vec![format!("{n100} access 100"), format!("{n200} access 200")]
    );

    // The pods' interfaces keep the kernel's default offloads.
    let k = run_timeout(
        "nsenter",
        &[&format!("--net={}", a.netns), "ethtool", "-k", "eth0"],
        Duration::from_secs(10),
    );
    assert!(k.stdout.contains("tx-checksumming: on"), "{}", k.stdout);
    assert!(
        k.stdout.contains("tcp-segmentation-offload: on"),
        "{}",
        k.stdout
    );

    // Same VLAN: ping; across VLANs (same subnet): nothing; both networks: both.
    assert_eq!(pings(&p, &a, "10.233.0.11"), 3, "a -> b (VLAN 100)");
    assert_eq!(pings(&p, &a, "10.233.0.50"), 0, "a -> c crossed VLANs");
    assert_eq!(pings(&p, &c, "10.233.0.11"), 0, "c -> b crossed VLANs");
    let (d100, d200) = (
        iface_with(&p, &both, "10.233.0.12"),
        iface_with(&p, &both, "10.233.0.51"),
    );
    assert_eq!((d100.as_str(), d200.as_str()), ("eth0", "eth1"));
    assert_eq!(
        pings_via(&p, &both, "10.233.0.10", Some(&d100)),
        3,
        "d -> a (VLAN 100)"
    );
    assert_eq!(
        pings_via(&p, &both, "10.233.0.50", Some(&d200)),
        3,
        "d -> c (VLAN 200)"
    );
    assert_eq!(
        pings_via(&p, &both, "10.233.0.50", Some(&d100)),
        0,
        "d eth0 reached c"
    );

    // 4 MiB over TCP from a to b, byte for byte.
    let server = p.run(
        &[
            "exec",
            "-d",
            &b.name,
            "/bin/sh",
            "-c",
            "sleep 120 | nc -l -p 5001 > /tmp/recv",
        ],
        Duration::from_secs(30),
    );
    assert!(server.success(), "{}{}", server.stdout, server.stderr);
    let send = p.exec(
        &a,
        "dd if=/dev/urandom of=/tmp/src bs=65536 count=64 2>/dev/null && \
         for i in $(seq 50); do nc 10.233.0.11 5001 < /tmp/src && exit 0; sleep 0.2; done; exit 1",
    );
    assert!(send.success(), "send: {}{}", send.stdout, send.stderr);
    let size = || {
        p.exec(&b, "wc -c < /tmp/recv")
            .stdout
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
    };
    wait_for("4 MiB received", || size() == 4 << 20);
    let md5 = |c: &Container, f: &str| {
        let o = p.exec(c, &format!("md5sum {f}"));
        o.stdout.split_whitespace().next().unwrap_or("").to_string()
    };
    let (sent, got) = (md5(&a, "/tmp/src"), md5(&b, "/tmp/recv"));
    assert_eq!(sent.len(), 32, "md5 of the source: {sent:?}");
    assert_eq!(sent, got, "the 4 MiB arrived changed");

    // Removing a container removes its port (podman runs DEL), and only its port.
    let a_port = port_of(&d.ctl_json(&["show"]), &bridge, &a.id, "eth0").expect("a's port");
    p.ok(&["rm", "-f", "-t", "0", &a.name]);
    let show = d.ctl_json(&["show"]);
    assert_eq!(port_of(&show, &bridge, &a.id, "eth0"), None);
    assert!(port_of(&show, &bridge, &b.id, "eth0").is_some());
    assert!(!link_exists(None, a_port["name"].as_str().expect("name")));
    assert_eq!(
        pings_via(&p, &both, "10.233.0.11", Some(&d100)),
        3,
        "d -> b after a left"
    );
}
