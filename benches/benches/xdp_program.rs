//! Criterion benchmark of vswitch's XDP program (the fast path's per-frame cost in the
//! kernel), run by the kernel on one CPU with `BPF_PROG_TEST_RUN`: each sample is the
//! kernel's own mean time per run over the iterations, so syscall and harness costs are
//! not in it. Needs root (BPF) and creates one veth pair (the program checks that the
//! ingress and egress interfaces exist).
//!
//! Cases, on a trunk port and an access-100 port with both MACs learned (static):
//! `pop` trunk -> access, `push` access -> trunk, `slow` a broadcast (handed to the
//! port's socket; here there is none, so the verdict is the fallback XDP_PASS).

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use datapath::fastpath::XdpProgram;
use datapath::sys::{bpf, netdev};
use datapath::testutil::VethPair;
use datapath::topology::{PortConfig, PortId, Topology};
use datapath::wire::MacAddr;
use datapath::worker::FdbOp;
use vswitch_benches::{frame64, mac};

fn bench_program(c: &mut Criterion) {
    let veth = VethPair::new("xb");
    let trunk = netdev::if_index(&veth.a).expect("ifindex");
    let access = netdev::if_index(&veth.b).expect("ifindex");
    let p = XdpProgram::new(true, 4096).expect("load XDP program (root, BPF)");
    let mut tb = Topology::builder();
    tb.add_port(0, PortConfig::new("t", "trunk".parse().expect("vlan")))
        .expect("port");
    tb.add_port(1, PortConfig::new("a", "access 100".parse().expect("vlan")))
        .expect("port");
    let ids = [PortId::new(0).expect("id"), PortId::new(1).expect("id")];
    for (ifindex, id) in [(trunk, ids[0]), (access, ids[1])] {
        p.register(ifindex, 4096).expect("register");
        p.bind(ifindex, id);
    }
    p.sync_topology(Arc::new(tb.build()));
    let (a, b) = (mac(1), mac(2));
    for (m, port) in [(a, ids[0]), (b, ids[1])] {
        p.fdb_op(&FdbOp::AddStatic {
            vid: 100,
            mac: m,
            port,
        });
    }
    let cases = [
        ("pop", trunk, frame64(b, a, Some(100)), bpf::XDP_REDIRECT),
        ("push", access, frame64(a, b, None), bpf::XDP_REDIRECT),
        (
            "slow",
            trunk,
            frame64(MacAddr::BROADCAST, a, Some(100)),
            bpf::XDP_PASS,
        ),
    ];
    let mut g = c.benchmark_group("xdp_program");
    g.throughput(Throughput::Elements(1));
    for (name, ifindex, frame, want) in cases {
        let r = p.test_run(ifindex, &frame, 1).expect("test run");
        assert_eq!(r.action, want, "{name}: unexpected verdict");
        g.bench_function(name, |bn| {
            bn.iter_custom(|iters| {
                let n = u32::try_from(iters).unwrap_or(u32::MAX);
                let r = p.test_run(ifindex, &frame, n).expect("test run");
                Duration::from_nanos(u64::from(r.ns_per_run) * iters)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_program);
criterion_main!(benches);
