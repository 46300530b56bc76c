//! Runs the pipeline on a fixed burst (32 x 64-byte known unicast, access -> trunk with a
//! VLAN push, including the copy into transmit memory) N times. For instruction counts
//! that do not depend on machine noise:
//!
//! `valgrind --tool=callgrind target/release/examples/pipeline_loop 20000`
//! (instructions per frame = total / (N * 32)), or for wall time: `time ... 1000000`.

use datapath::fdb::FdbConfig;
use datapath::pipeline::Pipeline;
use datapath::topology::{PortConfig, PortId, Topology};
use vswitch_benches::{frame64, mac, CopySink};

fn main() {
    let n: u64 = match std::env::args().nth(1).map(|s| s.parse()) {
        None => 100_000,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("pipeline_loop: iteration count: {e}");
            std::process::exit(2);
        }
    };
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
    let t = b.build();
    let p0 = PortId::new(0).expect("port id");
    let p2 = PortId::new(2).expect("port id");
    let mut p = Pipeline::new(FdbConfig::default());
    let (a, z) = (mac(1), mac(2));
    p.fdb_mut().learn(100, a, p0, 0, None);
    p.fdb_mut().learn(100, z, p2, 0, None);
    let frames = vec![frame64(z, a, None); 32];
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let mut sink = CopySink::new(256, 2048);
    let start = std::time::Instant::now();
    for _ in 0..n {
        p.process(&t, p0, &refs, &[], 1);
        p.flush(&refs, &[], &mut sink);
    }
    let el = start.elapsed();
    let frames = n * 32;
    println!(
        "{frames} frames in {:.3} s: {:.1} ns/frame, {:.2} Mpps",
        el.as_secs_f64(),
        el.as_nanos() as f64 / frames as f64,
        frames as f64 / el.as_secs_f64() / 1e6
    );
    assert_eq!(sink.frames, frames);
}
