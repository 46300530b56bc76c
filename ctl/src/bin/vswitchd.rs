//! `vswitchd`: hosts the datapath and serves the control socket.
//!
//! vswitchd [--config PATH] [--socket PATH] [--socket-group NAME|GID]
//!
//! The control socket is mode 0660; root, the daemon's user and members of its group
//! (`--socket-group`, else the daemon's group) may use it.
//!
//! SIGHUP re-reads the configuration and applies the difference (an invalid file is
//! rejected and the running state kept); SIGTERM/SIGINT stop cleanly: workers drained,
//! XDP programs detached, the socket removed. Under systemd (NOTIFY_SOCKET set) it
//! reports READY=1 and STOPPING=1.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "vswitchd",
    version,
    about = "vswitch daemon: hosts the datapath"
)]
struct Args {
    /// Configuration file (TOML); created on the first change if missing.
    #[arg(long, default_value = ctl::DEFAULT_CONFIG, env = "VSWITCHD_CONFIG")]
    config: PathBuf,
    /// Control socket path.
    #[arg(long, default_value = ctl::DEFAULT_SOCKET, env = "VSWITCH_SOCKET")]
    socket: PathBuf,
    /// Group given the control socket (mode 0660): its members, as primary or
    /// supplementary group, may use vswitchctl. Default: the daemon's group.
    #[arg(long, env = "VSWITCH_SOCKET_GROUP", value_name = "NAME|GID")]
    socket_group: Option<String>,
}

/// A group given by number or by name.
fn resolve_group(spec: &str) -> anyhow::Result<u32> {
    if let Ok(gid) = spec.parse::<u32>() {
        return Ok(gid);
    }
    match ctl::sys::group_id(spec) {
        Ok(Some(gid)) => Ok(gid),
        Ok(None) => anyhow::bail!("--socket-group {spec}: no such group"),
        Err(e) => anyhow::bail!("--socket-group {spec}: {e}"),
    }
}

/// `sd_notify(3)` without libsystemd: one datagram to $NOTIFY_SOCKET.
fn sd_notify(state: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Ok(path) = std::env::var("NOTIFY_SOCKET") else {
        return;
    };
    let addr = match path.strip_prefix('@') {
        Some(abs) => SocketAddr::from_abstract_name(abs.as_bytes()),
        None => SocketAddr::from_pathname(&path),
    };
    if let (Ok(sock), Ok(addr)) = (UnixDatagram::unbound(), addr) {
        let _ = sock.send_to_addr(state.as_bytes(), &addr);
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Logs: plain lines on stderr (journald adds time and level), filtered by
    // VSWITCHD_LOG (e.g. "warn"); the datapath never logs per packet.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_level(false)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VSWITCHD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let socket_group = args
        .socket_group
        .as_deref()
        .map(resolve_group)
        .transpose()?;
    // Block the signals before any thread starts, so workers inherit the mask and the
    // control loop's signalfd receives them.
    let signals = ctl::sys::signal_fd().context("signalfd")?;
    // A port holds a few descriptors; a bridge of 1,000 ports needs more than the usual
    // soft limit of 1,024. Past the hard limit, opening a port fails with EMFILE, named.
    match ctl::sys::raise_nofile_limit() {
        Ok((_, new)) if new < 4096 => tracing::warn!(
            "vswitchd: open files limited to {new} (hard limit): about {} ports",
            new / 4
        ),
        Ok((old, new)) if old != new => tracing::debug!("vswitchd: open files {old} -> {new}"),
        Ok(_) => {}
        Err(e) => tracing::warn!("vswitchd: cannot raise the open files limit: {e}"),
    }
    let (mut daemon, problems) = ctl::daemon::Daemon::start(&args.config)
        .with_context(|| format!("configuration {}", args.config.display()))?;
    for p in &problems {
        if p.is_port_down() {
            tracing::warn!("vswitchd: {p} (port kept down)");
        } else {
            tracing::warn!("vswitchd: {p}");
        }
    }
    let metrics = daemon.valid_config().metrics;
    let mut server = ctl::server::Server::bind(&args.socket, socket_group, metrics, signals)
        .with_context(|| format!("control socket {}", args.socket.display()))?;
    if let Some(problem) =
        socket_group.and_then(|g| ctl::server::group_reach_problem(&args.socket, g))
    {
        tracing::warn!("vswitchd: {problem}");
    }
    tracing::info!(
        "vswitchd: ready: {} bridge(s), socket {}{}",
        daemon.config().bridges.len(),
        args.socket.display(),
        server
            .metrics_addr()
            .map(|a| format!(", metrics http://{a}/metrics"))
            .unwrap_or_default()
    );
    sd_notify("READY=1");
    let exit = server.run(&mut daemon).context("control loop")?;
    sd_notify("STOPPING=1");
    tracing::info!("vswitchd: {exit:?}: stopping");
    daemon.shutdown();
    drop(server);
    Ok(())
}
