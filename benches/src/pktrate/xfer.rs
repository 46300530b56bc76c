//! How long a cache line takes to move between two CPUs, measured by bouncing one line
//! between two threads pinned to them.
//!
//! On this machine (a 2-vCPU VM) that time is not fixed: the hypervisor sometimes runs the
//! two vCPUs close together (one-way transfers of 40-65 ns) and sometimes far apart
//! (200-250 ns), for minutes at a time, and the guest cannot see which. Every switch case
//! hands each frame between the generator's CPU and the worker's (the XDP fast path's
//! rate fell from 0.78-0.81 to 0.56-0.61 Mpps exactly when the transfer time went from
//! ~50 to ~230 ns, 2026-11-23); the direct pair and the bridge run on the generator's CPU
//! alone and do not notice. So pktrate measures it around every window and reports the
//! rounds of each kind apart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

/// Round trips of one measurement (~10-50 ms).
pub const ROUND_TRIPS: u64 = 50_000;

/// One-way cache-line transfer time between `cpu_a` and `cpu_b` in nanoseconds: `trips`
/// round trips of a counter two pinned threads take turns to increment, timed, divided by
/// the 2 x `trips` transfers. The best of three runs, so that a preemption in one does not
/// count as distance.
pub fn line_transfer_ns(cpu_a: usize, cpu_b: usize, trips: u64) -> anyhow::Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        best = best.min(one_run(cpu_a, cpu_b, trips)?);
    }
    Ok(best)
}

#[repr(align(128))]
struct Line(AtomicU64);

fn pin(cpu: usize) -> anyhow::Result<()> {
    let ok = core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    anyhow::ensure!(ok, "cannot pin a thread to CPU {cpu}");
    Ok(())
}

fn one_run(cpu_a: usize, cpu_b: usize, trips: u64) -> anyhow::Result<f64> {
    anyhow::ensure!(trips > 0, "no round trips to time");
    let line = Arc::new(Line(AtomicU64::new(0)));
    let other = line.clone();
    // The partner answers odd values with the next even one.
    let partner = std::thread::Builder::new()
        .name("xfer-pong".into())
        .spawn(move || -> anyhow::Result<()> {
            pin(cpu_b)?;
            for i in 0..trips {
                while other.0.load(Ordering::Acquire) != 2 * i + 1 {
                    std::hint::spin_loop();
                }
                other.0.store(2 * i + 2, Ordering::Release);
            }
            Ok(())
        })
        .context("spawn the transfer partner")?;
    let here = std::thread::Builder::new()
        .name("xfer-ping".into())
        .spawn(move || -> anyhow::Result<f64> {
            pin(cpu_a)?;
            let t0 = Instant::now();
            for i in 0..trips {
                line.0.store(2 * i + 1, Ordering::Release);
                while line.0.load(Ordering::Acquire) != 2 * i + 2 {
                    std::hint::spin_loop();
                }
            }
            Ok(t0.elapsed().as_nanos() as f64 / (2 * trips) as f64)
        })
        .context("spawn the transfer timer")?;
    let ns = here
        .join()
        .map_err(|_| anyhow::anyhow!("transfer timer panicked"))??;
    partner
        .join()
        .map_err(|_| anyhow::anyhow!("transfer partner panicked"))??;
    Ok(ns)
}

#[cfg(test)]
mod tests {
    /// Between two CPUs (this machine has two), a transfer takes tens to hundreds of
    /// nanoseconds: not zero (the partner really answered each value), not milliseconds.
    #[test]
    fn a_line_transfer_takes_nanoseconds() {
        let ns = super::line_transfer_ns(0, 1, 20_000).expect("measure");
        assert!(ns > 5.0 && ns < 100_000.0, "{ns} ns");
    }
}
