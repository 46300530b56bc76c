//! One case in one round: build the path, check that it forwards (a ping gets an answer),
//! measure RTT on the idle link, then TCP with 1 and with 4 streams, take the path down.
//!
//! A case that cannot be built or does not forward is a [`Outcome::Failed`] with the
//! reason, and the run goes on with the next case; only Ctrl-C stops the run.

use std::time::Duration;

use vswitch_benches::harness::{check_interrupted, INTERRUPTED};

use super::case::{Case, Env, Setup};
use super::iperf::{run_tcp, TcpParams, TcpRun};
use super::ovs;
use super::ping::{reachable, run_ping, Rtt};
use super::topo::Hosts;

/// Measurement parameters.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub tcp: TcpParams,
    pub pings: u32,
    pub ping_interval: Duration,
    /// Seconds a new path gets to answer its first ping.
    pub reach_secs: u32,
}

/// The numbers of one case in one round.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Measured {
    pub rtt: Rtt,
    pub one_stream: TcpRun,
    pub four_streams: TcpRun,
    /// What the switch logged meanwhile (OVS warnings), for a reader wondering about a 0.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Outcome {
    Measured(Box<Measured>),
    /// Setup failed, or the path did not forward a ping.
    Failed {
        reason: String,
    },
    /// A prerequisite of the case is missing (OVS not installable or not starting).
    Unavailable {
        reason: String,
    },
}

/// One case in one round.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Round {
    pub case: Case,
    pub round: usize,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Measures `case` once. Errors only on Ctrl-C; everything else is an [`Outcome`].
pub fn measure(
    case: Case,
    round: usize,
    hosts: &Hosts,
    env: &Env,
    p: &Params,
) -> anyhow::Result<Round> {
    let outcome = match (&env.ovs, case.is_ovs()) {
        (Err(why), true) => Outcome::Unavailable {
            reason: why.clone(),
        },
        _ => {
            let log_from = case.is_ovs().then(ovs::log_len);
            let r = measure_once(case, hosts, env, p);
            check_interrupted()?;
            match r {
                Ok(mut m) => {
                    if let Some(from) = log_from {
                        m.notes.extend(
                            ovs::log_warnings_since(from)
                                .into_iter()
                                .map(|w| format!("OVS log: {w}")),
                        );
                    }
                    Outcome::Measured(Box::new(m))
                }
                Err(e) => Outcome::Failed {
                    reason: format!("{e:#}"),
                },
            }
        }
    };
    Ok(Round {
        case,
        round,
        outcome,
    })
}

fn measure_once(case: Case, hosts: &Hosts, env: &Env, p: &Params) -> anyhow::Result<Measured> {
    let setup = Setup::up(case, hosts, env)?;
    if !reachable(&hosts.h1, p.reach_secs)? {
        let mut why = format!(
            "no forwarding: h1 got no ping reply from h2 within {} s",
            p.reach_secs
        );
        if let Some(d) = &setup.vswitchd {
            why.push_str(&format!(" (vswitchd log: {})", d.log_tail(3)));
        }
        anyhow::bail!(why);
    }
    let rtt = run_ping(&hosts.h1, p.pings, p.ping_interval)?;
    let one_stream = run_tcp(&hosts.h1, &hosts.h2, 1, p.tcp)?;
    let four_streams = run_tcp(&hosts.h1, &hosts.h2, 4, p.tcp)?;
    drop(setup);
    Ok(Measured {
        rtt,
        one_stream,
        four_streams,
        notes: Vec::new(),
    })
}

/// Whether Ctrl-C was pressed.
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed)
}
