//! `vswitchctl`: the vswitch command-line client.
//!
//! Exit codes: 0 ok, 1 failed, 2 usage (bad syntax or an invalid value), 3 not found,
//! 4 daemon unreachable. Errors are printed as one line on stderr.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod cmds;
mod vf;

use cmds::{call, Conn};
use ctl::proto::Request;

/// vswitch control client.
#[derive(Debug, Parser)]
#[command(name = "vswitchctl", version, about)]
struct Cli {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a bridge.
    AddBr {
        bridge: String,
        /// No error if it exists.
        #[arg(long)]
        may_exist: bool,
    },
    /// Delete a bridge and its ports.
    DelBr {
        bridge: String,
        /// No error if it does not exist.
        #[arg(long)]
        if_exists: bool,
    },
    /// Add a port (AF_XDP on an existing netdev, or a tap the switch creates).
    AddPort {
        #[command(flatten)]
        args: cmds::AddPortArgs,
    },
    /// Delete a port.
    DelPort {
        bridge: String,
        port: String,
        #[arg(long)]
        if_exists: bool,
    },
    /// Change a port's VLAN mode or MTU.
    SetPort {
        #[command(flatten)]
        args: cmds::SetPortArgs,
    },
    /// Bridges and ports as a tree.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Port counters.
    Port {
        #[command(subcommand)]
        cmd: cmds::PortCmd,
    },
    /// MAC learning table.
    Fdb {
        #[command(subcommand)]
        cmd: cmds::FdbCmd,
    },
    /// Poll-mode workers.
    Pmd {
        #[command(subcommand)]
        cmd: cmds::PmdCmd,
    },
    /// Explain what the switch does with a frame (hex, or dst=..,src=..[,vlan=..]).
    Trace {
        bridge: String,
        port: String,
        frame: String,
        #[arg(long)]
        json: bool,
    },
    /// Ask vswitchd to re-read its configuration file.
    Reload {},
    /// Pre-flight checks of this host (and the named interfaces) for the datapath.
    Doctor {
        interfaces: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// SR-IOV virtual functions: list, show, set, restore, diff, capabilities.
    Vf(vf::VfArgs),
    /// Remove pods' attachments (vswitch-cni) whose network namespace is gone: for
    /// runtimes that do not run CNI GC (see docs/cni.md).
    CniGc {
        /// vswitch-cni's state directory (its `stateDir`).
        #[arg(long, default_value = ctl::cni::conf::DEFAULT_STATE_DIR)]
        state_dir: std::path::PathBuf,
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

/// Exit code for "not found".
const EXIT_NOT_FOUND: u8 = 3;
/// Exit code for usage errors.
const EXIT_USAGE: u8 = 2;
/// Exit code for failures.
const EXIT_FAILED: u8 = 1;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            // clap's own rendering (usage + hint); nothing more we can do if stderr fails.
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Vf(args) => vf::run(args),
        other => run(other, &cli.conn),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("vswitchctl: {}", one_line(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}

fn run(c: Command, conn: &Conn) -> anyhow::Result<u8> {
    use cmds::{FdbCmd, PmdCmd, PortCmd};
    match c {
        Command::AddBr { bridge, may_exist } => {
            call(conn, Request::AddBr { bridge, may_exist }, false)
        }
        Command::DelBr { bridge, if_exists } => {
            call(conn, Request::DelBr { bridge, if_exists }, false)
        }
        Command::AddPort { args } => {
            let port = cmds::port_spec(&args);
            call(
                conn,
                Request::AddPort {
                    bridge: args.bridge,
                    port,
                    may_exist: args.may_exist,
                },
                false,
            )
        }
        Command::DelPort {
            bridge,
            port,
            if_exists,
        } => call(
            conn,
            Request::DelPort {
                bridge,
                port,
                if_exists,
            },
            false,
        ),
        Command::SetPort { args } => {
            let vlan = args.vlan.text();
            let f = &args.flood;
            if vlan.is_none()
                && args.mtu.is_none()
                && args.isolated.is_none()
                && f.flood_unknown.is_none()
                && f.flood_multicast.is_none()
                && f.flood_broadcast.is_none()
            {
                eprintln!(
                    "vswitchctl: set-port: nothing to set (--access, --trunk, --mtu, \
                     --isolated, --flood-unknown, --flood-multicast, --flood-broadcast)"
                );
                return Ok(EXIT_USAGE);
            }
            call(
                conn,
                Request::SetPort {
                    bridge: args.bridge,
                    port: args.port,
                    vlan,
                    mtu: args.mtu,
                    isolated: args.isolated.map(cmds::OnOff::on),
                    flood_unknown: f.flood_unknown.map(cmds::OnOff::on),
                    flood_multicast: f.flood_multicast.map(cmds::OnOff::on),
                    flood_broadcast: f.flood_broadcast.map(cmds::OnOff::on),
                },
                false,
            )
        }
        Command::Show { json } => call(conn, Request::Show {}, json),
        Command::Port { cmd } => match cmd {
            PortCmd::Stats { bridge, port, json } => {
                call(conn, Request::PortStats { bridge, port }, json)
            }
        },
        Command::Fdb { cmd } => match cmd {
            FdbCmd::Show { filter, json } => call(
                conn,
                Request::FdbShow {
                    bridge: filter.bridge,
                    port: filter.port,
                    vlan: filter.vlan,
                    mac: filter.mac,
                },
                json,
            ),
            FdbCmd::Add {
                bridge,
                vlan,
                mac,
                port,
            } => call(
                conn,
                Request::FdbAdd {
                    bridge,
                    vlan,
                    mac,
                    port,
                },
                false,
            ),
            FdbCmd::Del { bridge, vlan, mac } => {
                call(conn, Request::FdbDel { bridge, vlan, mac }, false)
            }
            FdbCmd::Flush { filter } => call(
                conn,
                Request::FdbFlush {
                    bridge: filter.bridge,
                    port: filter.port,
                    vlan: filter.vlan,
                    mac: filter.mac,
                },
                false,
            ),
            FdbCmd::Stats { bridge, json } => call(conn, Request::FdbStats { bridge }, json),
        },
        Command::Pmd { cmd } => match cmd {
            PmdCmd::Show { json } => call(conn, Request::PmdShow {}, json),
            PmdCmd::SetCpus { cpus } => match cmds::parse_cpus(&cpus) {
                Ok(cpus) => call(conn, Request::PmdSetCpus { cpus }, false),
                Err(e) => {
                    eprintln!("vswitchctl: pmd set-cpus: {e}");
                    Ok(EXIT_USAGE)
                }
            },
            PmdCmd::SetFastPath { state } => call(
                conn,
                Request::PmdSetFastPath {
                    enabled: state == cmds::OnOff::On,
                },
                false,
            ),
            PmdCmd::SetPollMode { mode, window_us } => call(
                conn,
                Request::PmdSetPollMode {
                    mode,
                    adaptive_window_us: window_us,
                },
                false,
            ),
        },
        Command::Trace {
            bridge,
            port,
            frame,
            json,
        } => call(
            conn,
            Request::Trace {
                bridge,
                port,
                frame,
            },
            json,
        ),
        Command::Reload {} => call(conn, Request::Reload {}, false),
        Command::CniGc {
            state_dir,
            dry_run,
            json,
        } => cmds::cni_gc(conn, &state_dir, dry_run, json),
        Command::Doctor { interfaces, json } => cmds::doctor(&interfaces, json),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "vswitchctl",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
        Command::Vf(args) => vf::run(args),
    }
}

/// The error and its causes on one line, skipping causes the message already contains
/// (library errors embed their cause in their own text).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line.replace('\n', " ")
}

fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<sriov::VfError>() {
        Some(err) if err.is_not_found() => EXIT_NOT_FOUND,
        Some(sriov::VfError::Invalid { .. }) => EXIT_USAGE,
        _ => EXIT_FAILED,
    }
}
