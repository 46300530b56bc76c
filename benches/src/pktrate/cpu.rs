//! CPU accounting from /proc: per-CPU time split (user/system/softirq/idle), per-thread
//! on-CPU time (schedstat), user/system ticks and context switches.

use anyhow::Context;

/// Clock ticks per second of /proc/stat and /proc/PID/stat (USER_HZ; 100 on Linux/x86).
const USER_HZ: f64 = 100.0;

/// Jiffies of one CPU line of /proc/stat.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CpuTimes {
    pub user: u64,
    pub system: u64,
    pub irq: u64,
    pub softirq: u64,
    pub idle: u64,
    /// steal + iowait + guest: counted as not ours.
    pub other: u64,
}

impl CpuTimes {
    fn sub(&self, o: &CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user.saturating_sub(o.user),
            system: self.system.saturating_sub(o.system),
            irq: self.irq.saturating_sub(o.irq),
            softirq: self.softirq.saturating_sub(o.softirq),
            idle: self.idle.saturating_sub(o.idle),
            other: self.other.saturating_sub(o.other),
        }
    }
    fn busy(&self) -> u64 {
        self.user + self.system + self.irq + self.softirq
    }
    fn total(&self) -> u64 {
        self.busy() + self.idle + self.other
    }
}

/// Per-CPU jiffies, index = CPU number.
#[derive(Debug, Clone, Default)]
pub struct CpuStat(pub Vec<CpuTimes>);

impl CpuStat {
    pub fn read() -> anyhow::Result<CpuStat> {
        let s = std::fs::read_to_string("/proc/stat").context("read /proc/stat")?;
        let mut cpus = Vec::new();
        for line in s.lines() {
            let Some(rest) = line.strip_prefix("cpu") else {
                continue;
            };
            // "cpuN ..." lines only (the aggregate line is "cpu  ...").
            let Some((num, values)) = rest.split_once(' ') else {
                continue;
            };
            let Ok(id) = num.parse::<usize>() else {
                continue;
            };
            let it = values.split_whitespace();
            let v: Vec<u64> = it.filter_map(|x| x.parse().ok()).collect();
            let g = |i: usize| v.get(i).copied().unwrap_or(0);
            if cpus.len() <= id {
                cpus.resize(id + 1, CpuTimes::default());
            }
            // user nice system idle iowait irq softirq steal guest guest_nice
            cpus[id] = CpuTimes {
                user: g(0) + g(1),
                system: g(2),
                idle: g(3),
                irq: g(5),
                softirq: g(6),
                other: g(4) + g(7),
            };
        }
        Ok(CpuStat(cpus))
    }

    /// Utilisation over the interval since `before`, per CPU.
    pub fn since(&self, before: &CpuStat) -> Vec<CpuShare> {
        self.0
            .iter()
            .zip(before.0.iter())
            .enumerate()
            .map(|(cpu, (a, b))| {
                let d = a.sub(b);
                let t = d.total().max(1) as f64;
                CpuShare {
                    cpu,
                    busy: d.busy() as f64 / t,
                    user: d.user as f64 / t,
                    system: d.system as f64 / t,
                    softirq: (d.softirq + d.irq) as f64 / t,
                    busy_ns: d.busy() as f64 / USER_HZ * 1e9,
                }
            })
            .collect()
    }
}

/// One CPU's utilisation over an interval (fractions of its time).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct CpuShare {
    pub cpu: usize,
    pub busy: f64,
    pub user: f64,
    pub system: f64,
    pub softirq: f64,
    /// Busy time in ns (jiffy resolution).
    pub busy_ns: f64,
}

/// A thread's CPU counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadTimes {
    /// On-CPU time (ns) from schedstat: user + kernel, precise.
    pub run_ns: u64,
    pub utime_ticks: u64,
    pub stime_ticks: u64,
    pub vol_ctxt: u64,
    pub invol_ctxt: u64,
}

/// Deltas of [`ThreadTimes`] over an interval.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ThreadDelta {
    pub run_ns: u64,
    /// Share of the thread's CPU time spent in the kernel (ticks based).
    pub sys_share: f64,
    pub vol_ctxt: u64,
    pub invol_ctxt: u64,
}

impl ThreadTimes {
    /// Counters of thread `tid` of this process.
    pub fn read(tid: u64) -> anyhow::Result<ThreadTimes> {
        Self::read_task(std::process::id().into(), tid)
    }

    /// Counters of thread `tid` of process `pid`.
    pub fn read_task(pid: u64, tid: u64) -> anyhow::Result<ThreadTimes> {
        let dir = format!("/proc/{pid}/task/{tid}");
        let sched = std::fs::read_to_string(format!("{dir}/schedstat"))
            .with_context(|| format!("read {dir}/schedstat"))?;
        let run_ns = sched
            .split_whitespace()
            .next()
            .and_then(|x| x.parse().ok())
            .context("parse schedstat")?;
        let stat = std::fs::read_to_string(format!("{dir}/stat"))
            .with_context(|| format!("{dir}/stat"))?;
        // Fields after the ")" of comm: state is field 3; utime 14, stime 15.
        let after = stat.rsplit_once(')').map(|x| x.1).context("parse stat")?;
        let f: Vec<&str> = after.split_whitespace().collect();
        let utime_ticks = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0);
        let stime_ticks = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0);
        let status = std::fs::read_to_string(format!("{dir}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        Ok(ThreadTimes {
            run_ns,
            utime_ticks,
            stime_ticks,
            vol_ctxt: field("voluntary_ctxt_switches:"),
            invol_ctxt: field("nonvoluntary_ctxt_switches:"),
        })
    }

    pub fn since(&self, before: &ThreadTimes) -> ThreadDelta {
        let u = self.utime_ticks.saturating_sub(before.utime_ticks);
        let s = self.stime_ticks.saturating_sub(before.stime_ticks);
        ThreadDelta {
            run_ns: self.run_ns.saturating_sub(before.run_ns),
            sys_share: if u + s == 0 {
                0.0
            } else {
                s as f64 / (u + s) as f64
            },
            vol_ctxt: self.vol_ctxt.saturating_sub(before.vol_ctxt),
            invol_ctxt: self.invol_ctxt.saturating_sub(before.invol_ctxt),
        }
    }
}

/// Thread id of this process's thread named `comm` (e.g. the worker "pmd0").
pub fn find_thread(comm: &str) -> Option<u64> {
    let rd = std::fs::read_dir("/proc/self/task").ok()?;
    for e in rd.flatten() {
        let c = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if c.trim() == comm {
            return e.file_name().to_str()?.parse().ok();
        }
    }
    None
}
