//! Criterion benchmarks of the forwarding core on one core: parsing, FDB lookup/learn at
//! 2 / 1k / 100k MACs, and the whole pipeline (parse, classify, learn, lookup, egress edit
//! and the copy into transmit memory) per burst of 32 and 64 frames.
//!
//! Throughput is reported per frame; ns/frame = time per iteration / burst.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use datapath::fdb::{Fdb, FdbConfig};
use datapath::pipeline::Pipeline;
use datapath::topology::{PortConfig, PortId, Topology};
use datapath::wire::L2Header;
use vswitch_benches::{frame64, mac, CopySink};

fn pid(i: usize) -> PortId {
    PortId::new(i).expect("port id")
}

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    let untagged = frame64(mac(2), mac(1), None);
    let tagged = frame64(mac(2), mac(1), Some(100));
    g.bench_function("untagged", |b| {
        b.iter(|| L2Header::parse(black_box(&untagged)))
    });
    g.bench_function("tagged", |b| b.iter(|| L2Header::parse(black_box(&tagged))));
    g.finish();
}

fn filled_fdb(n: u64) -> Fdb {
    let mut f = Fdb::new(FdbConfig {
        capacity: 131072,
        aging_secs: 300,
    });
    for i in 0..n {
        f.learn(100, mac(i), pid((i % 8) as usize), 0, None);
    }
    f
}

fn bench_fdb(c: &mut Criterion) {
    let mut g = c.benchmark_group("fdb");
    g.throughput(Throughput::Elements(1));
    for n in [2u64, 1_000, 100_000] {
        let mut f = filled_fdb(n);
        // Keys visited in a scrambled order (stride coprime to n), precomputed so the
        // loop measures the table, not key arithmetic.
        let keys: Vec<(datapath::wire::MacAddr, PortId)> = (0..n)
            .map(|k| {
                let i = (k * 7919) % n;
                (mac(i), pid((i % 8) as usize))
            })
            .collect();
        let mut i = 0usize;
        g.bench_with_input(BenchmarkId::new("lookup_hit", n), &n, |b, _| {
            b.iter(|| {
                i += 1;
                if i == keys.len() {
                    i = 0;
                }
                f.lookup(100, black_box(keys[i].0), 1)
            })
        });
        g.bench_with_input(BenchmarkId::new("learn_refresh", n), &n, |b, _| {
            b.iter(|| {
                i += 1;
                if i == keys.len() {
                    i = 0;
                }
                f.learn(100, black_box(keys[i].0), keys[i].1, 0, None)
            })
        });
        let mut j = 0u64;
        g.bench_with_input(BenchmarkId::new("learn_new_evict", n), &n, |b, _| {
            // A stream of new MACs into a table held at n entries: learn + evict.
            let mut f = Fdb::new(FdbConfig {
                capacity: n as usize,
                aging_secs: 300,
            });
            for k in 0..n {
                f.learn(100, mac(1 << 40 | k), pid(0), 0, None);
            }
            b.iter(|| {
                j += 1;
                f.learn(100, black_box(mac(j)), pid(1), 0, None)
            })
        });
    }
    g.finish();
}

/// Topology for pipeline benches: p0/p1 access 100, p2 trunk 100,200, p3 access 200.
fn topo() -> Topology {
    let mut b = Topology::builder();
    for (i, v) in ["access 100", "access 100", "trunk 100,200", "access 200"]
        .iter()
        .enumerate()
    {
        b.add_port(
            i,
            PortConfig::new(format!("p{i}"), v.parse().expect("vlan")),
        )
        .expect("port");
    }
    b.build()
}

struct Case {
    name: &'static str,
    ingress: usize,
    frames: Vec<Vec<u8>>,
}

fn pipeline_cases(burst: usize, table: u64) -> (Pipeline, Vec<Case>) {
    let mut p = Pipeline::new(FdbConfig {
        capacity: 131072,
        aging_secs: 300,
    });
    // Background entries (so lookups hit a table of `table` MACs), then the hosts.
    for i in 0..table.saturating_sub(2) {
        p.fdb_mut().learn(100, mac(1 << 32 | i), pid(1), 0, None);
    }
    let a = mac(1); // on p0 (access 100)
    let z = mac(2); // behind p2 (trunk, VLAN 100)
    let w = mac(3); // on p1 (access 100)
    p.fdb_mut().learn(100, a, pid(0), 0, None);
    p.fdb_mut().learn(100, z, pid(2), 0, None);
    p.fdb_mut().learn(100, w, pid(1), 0, None);
    let n = burst;
    let cases = vec![
        Case {
            name: "access_to_access_unicast",
            ingress: 0,
            frames: vec![frame64(w, a, None); n],
        },
        Case {
            name: "access_to_trunk_unicast_push",
            ingress: 0,
            frames: vec![frame64(z, a, None); n],
        },
        Case {
            name: "trunk_to_access_unicast_pop",
            ingress: 2,
            frames: vec![frame64(a, z, Some(100)); n],
        },
        Case {
            name: "access_broadcast_flood",
            ingress: 0,
            frames: vec![frame64(datapath::wire::MacAddr::BROADCAST, a, None); n],
        },
    ];
    (p, cases)
}

fn bench_pipeline(c: &mut Criterion) {
    let t = topo();
    for table in [2u64, 100_000] {
        let mut g = c.benchmark_group(format!("pipeline_{table}_macs"));
        for burst in [32usize, 64] {
            g.throughput(Throughput::Elements(burst as u64));
            let (mut p, cases) = pipeline_cases(burst, table);
            let mut sink = CopySink::new(256, 2048);
            for case in &cases {
                let refs: Vec<&[u8]> = case.frames.iter().map(Vec::as_slice).collect();
                g.bench_function(BenchmarkId::new(case.name, burst), |b| {
                    b.iter(|| {
                        p.process(&t, pid(case.ingress), black_box(&refs), &[], 1);
                        p.flush(&refs, &[], &mut sink);
                    })
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, bench_parse, bench_fdb, bench_pipeline);
criterion_main!(benches);
