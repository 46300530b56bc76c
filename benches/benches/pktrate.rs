//! Criterion entry point of the packet-rate harness (issue 4): time per packet delivered
//! through vswitch (switch-access-trunk, one pinned worker, AF_XDP generator flat out),
//! counted by the sink veth. The full comparison with the direct pair and the Linux bridge
//! is the `pktrate` binary (`make pktrate`).
//!
//! Needs root (namespaces, veths, AF_XDP); skipped otherwise, and skipped when cargo runs
//! benches as tests (`cargo test --all-targets`), since it takes seconds and the machine.

#[path = "../src/pktrate/mod.rs"]
#[allow(dead_code)]
mod pktrate;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use pktrate::lab::Lab;
use pktrate::run::{sleep_checked, Case, Params, Path};

fn switch_rate(c: &mut Criterion) {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("pktrate bench: skipped outside `cargo bench`");
        return;
    }
    let lab = match Lab::new() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("pktrate bench: skipped (needs root): {e:#}");
            return;
        }
    };
    if let Err(e) = lab.give_generator_a_queue() {
        eprintln!("pktrate bench: skipped: {e:#}");
        return;
    }
    let p = Params {
        exe: PathBuf::from(env!("CARGO_BIN_EXE_pktrate")),
        seconds: 0.0,
        warmup: 0.0,
        cpu: 1,
        gen_cpu: 0,
        rate: None,
        burst: 32,
        spin: false,
        xdp_mode: datapath::port::XdpMode::Auto,
    };
    let path = Path::up(&lab, Case::SwitchAccessTrunk, &p).expect("switch up");
    let gen = path.generator(&p, None).expect("generator");
    sleep_checked(0.5).expect("warm-up");
    let mut g = c.benchmark_group("pktrate");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(1));
    g.bench_function("switch-access-trunk/64B/delivered", |b| {
        b.iter_custom(|iters| {
            let base = path.sink_stats().expect("sink counter").rx_packets;
            let t0 = Instant::now();
            let mut got = 0;
            while got < iters && t0.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_micros(500));
                got = path
                    .sink_stats()
                    .expect("sink counter")
                    .rx_packets
                    .saturating_sub(base);
            }
            let el = t0.elapsed();
            // Scale the overshoot (counter polled every 0.5 ms) back to `iters` packets.
            if got == 0 {
                el
            } else {
                el.mul_f64(iters as f64 / got as f64)
            }
        })
    });
    g.finish();
    drop(gen);
    path.down().expect("switch down");
}

criterion_group!(benches, switch_rate);
criterion_main!(benches);
