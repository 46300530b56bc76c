//! Poll modes: what a worker does when its polls find nothing.
//!
//! A worker that blocks when idle gives its CPU back, but every wake-up (a `poll` that
//! returns, a thread the scheduler puts back on a CPU) costs tens of microseconds on a
//! virtual machine, once on each side of a round trip. A worker that never blocks
//! answers within one pass over its queues and burns its CPU while nothing happens.
//! [`PollMode`] makes the trade a setting; [`IdleClock`] is the pure decision the worker
//! takes after each empty pass, so it is tested without threads or clocks.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How an idle worker waits for work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PollMode {
    /// Never block: poll again at once (the OVS and VPP PMD behaviour). Lowest latency;
    /// each worker keeps its CPU busy all the time.
    Spin,
    /// Spin while traffic flows: after the last frame a worker keeps polling for
    /// [`PollPolicy::adaptive_window`], then blocks until work arrives. Spin latency
    /// while frames come at least once per window, sleep cost when idle.
    #[default]
    Adaptive,
    /// Block after a short run of empty polls ([`super::DatapathConfig::idle_polls`]):
    /// least CPU, a wake-up per frame that finds the worker asleep.
    Sleep,
}

impl PollMode {
    pub const ALL: [PollMode; 3] = [PollMode::Spin, PollMode::Adaptive, PollMode::Sleep];

    pub fn name(self) -> &'static str {
        match self {
            PollMode::Spin => "spin",
            PollMode::Adaptive => "adaptive",
            PollMode::Sleep => "sleep",
        }
    }
}

impl fmt::Display for PollMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A poll mode name that is not one of `spin`, `adaptive`, `sleep`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown poll mode {0:?} (expected spin, adaptive or sleep)")]
pub struct UnknownPollMode(pub String);

impl FromStr for PollMode {
    type Err = UnknownPollMode;

    fn from_str(s: &str) -> Result<PollMode, UnknownPollMode> {
        PollMode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownPollMode(s.to_string()))
    }
}

/// Default of [`PollPolicy::adaptive_window`]: longer than the gaps of traffic that asks
/// for low latency (a request/response flow, a ping every 10 ms), short enough that a
/// worker is back to blocking well within a second of the last frame. Measured in
/// `docs/performance.md` (latency section).
pub const ADAPTIVE_WINDOW: Duration = Duration::from_millis(20);

/// Longest [`PollPolicy::adaptive_window`] accepted: a window is a promise to spin, and
/// an idle daemon must stay cheap.
pub const MAX_ADAPTIVE_WINDOW: Duration = Duration::from_secs(1);

/// A worker's poll mode and its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollPolicy {
    pub mode: PollMode,
    /// `adaptive`: how long a worker keeps polling after the last frame it moved.
    pub adaptive_window: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            mode: PollMode::default(),
            adaptive_window: ADAPTIVE_WINDOW,
        }
    }
}

/// Invalid [`PollPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("adaptive poll window {0:?} is longer than the maximum {MAX_ADAPTIVE_WINDOW:?}")]
pub struct WindowTooLong(pub Duration);

impl PollPolicy {
    pub fn validate(&self) -> Result<(), WindowTooLong> {
        if self.adaptive_window > MAX_ADAPTIVE_WINDOW {
            return Err(WindowTooLong(self.adaptive_window));
        }
        Ok(())
    }
}

/// A spinning worker yields once per this many empty passes in a row: often enough that a
/// thread sharing its CPU waits a few microseconds at most, rarely enough that a busy
/// worker (whose empty passes come one at a time between bursts) never pays the syscall.
pub const YIELD_EVERY: u32 = 8;

/// What a worker does after a pass that found nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Poll again at once.
    Poll,
    /// Poll again after letting any other runnable thread on this CPU run first
    /// (`sched_yield`; returns at once when there is none). A worker that spins without
    /// yielding keeps a thread that shares its CPU (a pod's process, a softirq thread,
    /// the ping whose reply it forwards) waiting for the scheduler's time slice:
    /// milliseconds.
    Yield,
    /// Block until work arrives (or the idle timeout).
    Block,
}

/// A worker's idle bookkeeping: empty passes in a row and when it last moved a frame.
#[derive(Debug, Clone, Default)]
pub struct IdleClock {
    empty_polls: u32,
    last_work_ns: u64,
}

impl IdleClock {
    /// A pass moved frames (or updates) at `now_ns`.
    pub fn work(&mut self, now_ns: u64) {
        self.empty_polls = 0;
        self.last_work_ns = now_ns;
    }

    /// A pass at `now_ns` found nothing: what to do next. Spinning is polling with a
    /// yield every [`YIELD_EVERY`] empty passes in a row. `idle_polls` is the run of empty passes after which
    /// `sleep` blocks; `shares_cpu` says kernel threads that feed this worker run on its
    /// CPU, so `sleep` blocks at the first empty pass.
    pub fn empty(
        &mut self,
        policy: &PollPolicy,
        idle_polls: u32,
        shares_cpu: bool,
        now_ns: u64,
    ) -> Idle {
        self.empty_polls = self.empty_polls.saturating_add(1);
        let spin = if self.empty_polls % YIELD_EVERY == 0 {
            Idle::Yield
        } else {
            Idle::Poll
        };
        match policy.mode {
            PollMode::Spin => spin,
            PollMode::Adaptive => {
                let window = u64::try_from(policy.adaptive_window.as_nanos()).unwrap_or(u64::MAX);
                if now_ns.saturating_sub(self.last_work_ns) < window {
                    spin
                } else {
                    Idle::Block
                }
            }
            PollMode::Sleep if shares_cpu || self.empty_polls >= idle_polls => Idle::Block,
            PollMode::Sleep => Idle::Poll,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn policy(mode: PollMode, window_ms: u64) -> PollPolicy {
        PollPolicy {
            mode,
            adaptive_window: Duration::from_millis(window_ms),
        }
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for m in PollMode::ALL {
            assert_eq!(m.to_string().parse::<PollMode>(), Ok(m));
        }
        assert_eq!(
            "busy".parse::<PollMode>(),
            Err(UnknownPollMode("busy".into()))
        );
        assert_eq!(
            "Spin"
                .parse::<PollMode>()
                .expect_err("case matters")
                .to_string(),
            "unknown poll mode \"Spin\" (expected spin, adaptive or sleep)"
        );
        assert_eq!(PollMode::default(), PollMode::Adaptive);
    }

    #[test]
    fn spin_never_blocks() {
        let mut c = IdleClock::default();
        let p = policy(PollMode::Spin, 20);
        let yields = (1..=100_000u64)
            .filter(|i| c.empty(&p, 1, false, i * MS) == Idle::Yield)
            .count();
        assert_eq!(yields, 100_000 / YIELD_EVERY as usize);
        // A busy worker's empty passes come one at a time: never a yield.
        for i in 0..1000u64 {
            c.work(i);
            assert_eq!(c.empty(&p, 1, false, i), Idle::Poll);
        }
    }

    #[test]
    fn sleep_blocks_after_idle_polls_and_at_once_when_sharing_the_cpu() {
        let p = policy(PollMode::Sleep, 20);
        let mut c = IdleClock::default();
        c.work(0);
        assert_eq!(c.empty(&p, 3, false, 1), Idle::Poll);
        assert_eq!(c.empty(&p, 3, false, 2), Idle::Poll);
        assert_eq!(c.empty(&p, 3, false, 3), Idle::Block);
        assert_eq!(c.empty(&p, 3, false, 4), Idle::Block);
        c.work(5);
        assert_eq!(c.empty(&p, 3, false, 6), Idle::Poll);
        assert_eq!(c.empty(&p, 3, true, 7), Idle::Block);
    }

    #[test]
    fn adaptive_spins_for_the_window_after_work_then_blocks() {
        let p = policy(PollMode::Adaptive, 20);
        let mut c = IdleClock::default();
        c.work(100 * MS);
        // Many empty passes inside the window: keep polling (no idle_polls limit).
        for t in 1..20_000u64 {
            let want = if t % u64::from(YIELD_EVERY) == 0 {
                Idle::Yield
            } else {
                Idle::Poll
            };
            assert_eq!(c.empty(&p, 1, false, 100 * MS + t * 999), want);
        }
        assert_eq!(c.empty(&p, 1, false, 120 * MS), Idle::Block);
        assert_eq!(c.empty(&p, 1, false, 500 * MS), Idle::Block);
        // Traffic again (e.g. a ping every 10 ms): the window restarts at each frame.
        for k in 0..10u64 {
            let t = 600 * MS + k * 10 * MS;
            c.work(t);
            assert_eq!(c.empty(&p, 1, false, t + 9 * MS), Idle::Poll);
        }
    }

    #[test]
    fn a_zero_window_is_sleep_without_the_idle_poll_run() {
        let p = policy(PollMode::Adaptive, 0);
        let mut c = IdleClock::default();
        c.work(7);
        assert_eq!(c.empty(&p, 1024, false, 7), Idle::Block);
    }

    #[test]
    fn windows_longer_than_a_second_are_rejected() {
        assert_eq!(policy(PollMode::Adaptive, 1000).validate(), Ok(()));
        let e = policy(PollMode::Adaptive, 1001)
            .validate()
            .expect_err("too long");
        assert_eq!(e, WindowTooLong(Duration::from_millis(1001)));
        assert_eq!(
            e.to_string(),
            "adaptive poll window 1.001s is longer than the maximum 1s"
        );
    }
}
