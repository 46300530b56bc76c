//! Criterion benchmark of vswitch's XDP program (the fast path's per-frame cost in the
//! kernel), run by the kernel on one CPU with `BPF_PROG_TEST_RUN`: each sample is the
//! kernel's own mean time per run over the iterations, so syscall and harness costs are
//! not in it. Needs root (BPF) and creates one veth pair (the program checks that the
//! ingress and egress interfaces exist).
//!
//! Cases, on a trunk port and an access-100 port with both MACs learned (static):
//! `pop` trunk -> access, `push` access -> trunk, `slow` a broadcast (handed to the
//! port's socket; here there is none, so the frame is dropped and counted `no_socket`).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use datapath::sys::bpf;
use datapath::testutil::FastPathPair;
use datapath::wire::MacAddr;
use vswitch_benches::{frame64, mac};

fn bench_program(c: &mut Criterion) {
    // `cargo test --all-targets` runs benches once as tests, also as a normal user.
    if !datapath::testutil::root_or_skip("xdp_program bench") {
        return;
    }
    let (a, b) = (mac(1), mac(2));
    let f = FastPathPair::new("xb", a, b);
    let (p, trunk, access) = (&f.program, f.trunk, f.access);
    let cases = [
        ("pop", trunk, frame64(b, a, Some(100)), bpf::XDP_REDIRECT),
        ("push", access, frame64(a, b, None), bpf::XDP_REDIRECT),
        (
            "slow",
            trunk,
            frame64(MacAddr::BROADCAST, a, Some(100)),
            bpf::XDP_DROP,
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
