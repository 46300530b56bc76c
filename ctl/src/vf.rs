//! `vswitchctl vf ...`: SR-IOV VF commands on top of the `sriov` library.
//!
//! Text output is for people; `--json` output (show, list, caps, diff) uses the library's
//! serde field names, which are stable.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use sriov::host::NumVfsChange;
use sriov::journal::{Journal, DEFAULT_STATE_DIR};
use sriov::netlink::RouteSocket;
use sriov::sysfs::Sysfs;
use sriov::validate::{check_mac, vlan_mode, VlanRequest};
use sriov::{
    Drift, Host, LinkState, MacAddr, PfView, VfConfig, VfError, VfView, VlanMode, VlanProto,
    VlanSet,
};

/// `vswitchctl vf`.
#[derive(Debug, Args)]
pub struct VfArgs {
    /// Journal directory (original and desired VF state).
    #[arg(long, global = true, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Root of the sysfs tree (tests).
    #[arg(
        long,
        global = true,
        hide = true,
        default_value = "/sys",
        env = "VSWITCH_SYSFS_ROOT"
    )]
    sysfs_root: PathBuf,
    #[command(subcommand)]
    command: VfCommand,
}

#[derive(Debug, Subcommand)]
enum VfCommand {
    /// List SR-IOV capable PFs and their VFs.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show the VFs of a PF (or one VF) with their live settings.
    Show {
        /// PF interface.
        pf: String,
        /// VF index.
        vf: Option<u32>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Change settings of a VF (its original state is journaled first).
    Set(SetArgs),
    /// Set the number of VFs of a PF (sriov_numvfs).
    Numvfs {
        /// PF interface.
        pf: String,
        /// Number of VFs (0 removes them all).
        n: u32,
    },
    /// What the PF's driver supports (settings, trunk enforcement).
    Caps {
        /// PF interface.
        pf: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Return a VF (or all journaled VFs of a PF) to its original state.
    #[command(group = clap::ArgGroup::new("which").required(true).args(["vf", "all"]))]
    Restore {
        /// PF interface.
        pf: String,
        /// VF index.
        vf: Option<u32>,
        /// Every journaled VF of the PF.
        #[arg(long)]
        all: bool,
    },
    /// Desired (journaled) versus live settings of a PF's VFs.
    Diff {
        /// PF interface.
        pf: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

/// `vswitchctl vf set PF VF ...`.
#[derive(Debug, Args)]
struct SetArgs {
    /// PF interface.
    pf: String,
    /// VF index.
    vf: u32,
    /// Access VLAN (1-4094): the VF tags/untags, the guest sends untagged frames.
    #[arg(long, value_name = "VLAN")]
    access: Option<u32>,
    /// 802.1p priority (0-7) of the access VLAN.
    #[arg(long, value_name = "Q")]
    qos: Option<u32>,
    /// TPID of the access VLAN: 802.1q (default) or 802.1ad.
    #[arg(long, value_name = "802.1q|802.1ad")]
    proto: Option<VlanProto>,
    /// Trunk: no VLAN enforced by the VF (the guest tags); LIST (e.g. 10,20,100-199) is an
    /// allow-list enforced by the driver's trunk backend, an error where there is none.
    #[arg(long, value_name = "LIST", num_args = 0..=1, conflicts_with = "access")]
    trunk: Option<Option<VlanSet>>,
    /// Administrative MAC (unicast, non-zero).
    #[arg(long, value_name = "MAC")]
    mac: Option<MacAddr>,
    /// Anti-spoofing.
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    spoofchk: Option<bool>,
    /// Trusted VF.
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    trust: Option<bool>,
    /// Link state the VF sees.
    #[arg(long, value_name = "auto|enable|disable")]
    state: Option<LinkState>,
    /// Minimum TX rate, Mbit/s.
    #[arg(long, value_name = "MBPS")]
    min_rate: Option<u32>,
    /// Maximum TX rate, Mbit/s (0 = unlimited).
    #[arg(long, value_name = "MBPS")]
    max_rate: Option<u32>,
}

/// A switch value that is neither `on` nor `off`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not on or off")]
struct NotOnOff(String);

fn on_off(s: &str) -> Result<bool, NotOnOff> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(NotOnOff(s.to_owned())),
    }
}

impl SetArgs {
    fn config(&self) -> Result<VfConfig, VfError> {
        let invalid = |source| VfError::Invalid {
            pf: self.pf.clone(),
            vf: self.vf,
            source,
        };
        let vlan = vlan_mode(&VlanRequest {
            access: self.access,
            qos: self.qos,
            proto: self.proto,
            trunk: self.trunk.clone(),
        })
        .map_err(invalid)?;
        let mac = self.mac.map(check_mac).transpose().map_err(invalid)?;
        Ok(VfConfig {
            vlan,
            mac,
            spoofchk: self.spoofchk,
            trust: self.trust,
            link_state: self.state,
            min_tx_rate: self.min_rate,
            max_tx_rate: self.max_rate,
        })
    }
}

/// Runs one `vf` command; returns the exit code for non-error outcomes.
pub fn run(args: VfArgs) -> Result<u8> {
    let sysfs = Sysfs::new(&args.sysfs_root);
    let journal = Journal::new(&args.state_dir);
    let out = &mut io::stdout().lock();
    let rtnl = RouteSocket::open().map_err(|source| VfError::Netlink {
        pf: "-".into(),
        source,
    })?;
    let mut host = Host::new(sysfs, journal, rtnl);
    match args.command {
        VfCommand::List { json } => {
            let pfs = host.list()?;
            if json {
                print_json(out, &pfs)?;
            } else if pfs.is_empty() {
                writeln!(out, "no SR-IOV capable PF")?;
            } else {
                for pf in &pfs {
                    print_pf(out, pf)?;
                }
            }
        }
        VfCommand::Show { pf, vf, json } => match vf {
            None => {
                let view = host.show(&pf)?;
                if json {
                    print_json(out, &view)?;
                } else {
                    print_pf(out, &view)?;
                }
            }
            Some(vf) => {
                let view = host.show_vf(&pf, vf)?;
                if json {
                    print_json(out, &view.vfs)?;
                } else {
                    print_pf(out, &view)?;
                }
            }
        },
        VfCommand::Set(set) => {
            let cfg = set.config()?;
            let done = host.set(&set.pf, set.vf, &cfg)?;
            writeln!(out, "pf {} vf {}: set {}", set.pf, set.vf, done.join(", "))?;
        }
        VfCommand::Numvfs { pf, n } => {
            let change = host.set_num_vfs(&pf, n)?;
            print_numvfs(out, &change)?;
        }
        VfCommand::Caps { pf, json } => {
            let caps = host.caps(&pf)?;
            if json {
                print_json(out, &caps)?;
            } else {
                print_caps(out, &caps)?;
            }
        }
        VfCommand::Restore { pf, vf, all } => {
            if all {
                let results = host.restore_all(&pf)?;
                if results.is_empty() {
                    writeln!(out, "pf {pf}: nothing to restore")?;
                }
                let mut failed = false;
                for (vf, res) in results {
                    match res {
                        Ok(done) => print_restored(out, &pf, vf, &done)?,
                        Err(e) => {
                            failed = true;
                            eprintln!("vswitchctl: {e}");
                        }
                    }
                }
                if failed {
                    return Ok(1);
                }
            } else if let Some(vf) = vf {
                let done = host.restore(&pf, vf)?;
                print_restored(out, &pf, vf, &done)?;
            }
        }
        VfCommand::Diff { pf, json } => {
            let rows = host.diff(&pf)?;
            if json {
                print_json(out, &rows)?;
            } else {
                print_diff(out, &pf, &rows)?;
            }
        }
    }
    Ok(0)
}

fn print_json<T: Serialize>(out: &mut impl Write, value: &T) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, value).context("writing JSON")?;
    writeln!(out)?;
    Ok(())
}

fn on_off_text(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "on",
        Some(false) => "off",
        None => "?",
    }
}

fn vlan_text(vf: &VfView) -> String {
    match vf.state.vlan_mode() {
        VlanMode::Access { vid, qos, proto } => format!("access {vid} qos {qos} {proto}"),
        VlanMode::Trunk {
            allowed: Some(list),
        } => format!("trunk {list}"),
        VlanMode::Trunk { allowed: None } => "trunk".to_string(),
    }
}

fn print_pf(out: &mut impl Write, pf: &PfView) -> Result<()> {
    writeln!(
        out,
        "pf {} pci {} driver {} vfs {}/{}",
        pf.pf,
        pf.pci,
        pf.driver.as_deref().unwrap_or("-"),
        pf.num_vfs,
        pf.total_vfs
    )?;
    for vf in &pf.vfs {
        let s = &vf.state;
        writeln!(
            out,
            "  vf {:<3} pci {} netdev {} mac {} {} spoofchk {} trust {} state {} min_tx_rate {} max_tx_rate {}{}",
            s.vf,
            if vf.pci.is_empty() { "-" } else { &vf.pci },
            if vf.netdevs.is_empty() {
                "-".to_string()
            } else {
                vf.netdevs.join(",")
            },
            s.mac,
            vlan_text(vf),
            on_off_text(s.spoofchk),
            on_off_text(s.trust),
            s.link_state.map_or("?".to_string(), |l| l.to_string()),
            s.min_tx_rate,
            s.max_tx_rate,
            if vf.journaled { " (journaled)" } else { "" },
        )?;
    }
    Ok(())
}

fn print_caps(out: &mut impl Write, caps: &sriov::caps::Caps) -> Result<()> {
    writeln!(
        out,
        "pf {} driver {} vfs {}/{}{}",
        caps.pf,
        caps.driver.as_deref().unwrap_or("-"),
        caps.num_vfs,
        caps.total_vfs,
        if caps.driver_known {
            ""
        } else {
            " (driver not in the table: settings are tried and the kernel's answer reported)"
        }
    )?;
    let s = &caps.settings;
    let rows = [
        ("vlan", s.vlan),
        ("qos", s.qos),
        ("proto 802.1ad", s.proto_8021ad),
        ("mac", s.mac),
        ("spoofchk", s.spoofchk),
        ("trust", s.trust),
        ("state", s.link_state),
        ("min-rate", s.min_tx_rate),
        ("max-rate", s.max_tx_rate),
        ("trunk (vlan 0)", caps.trunk.untagged_passthrough),
    ];
    for (name, support) in rows {
        let text = serde_json::to_value(support)?;
        writeln!(out, "  {name:<15} {}", text.as_str().unwrap_or("?"))?;
    }
    match caps.trunk.allow_list_format {
        Some(format) => writeln!(
            out,
            "  {:<15} vendor sysfs ({}), VFs {:?}",
            "trunk allow-list",
            serde_json::to_value(format)?.as_str().unwrap_or("?"),
            caps.trunk.vfs_with_trunk_file
        )?,
        None => writeln!(
            out,
            "  {:<15} none (no device/sriov/N/trunk)",
            "trunk allow-list"
        )?,
    }
    Ok(())
}

fn print_numvfs(out: &mut impl Write, c: &NumVfsChange) -> Result<()> {
    writeln!(out, "pf {}: {} -> {} VFs", c.pf, c.previous, c.num_vfs)?;
    if !c.journal_dropped.is_empty() {
        writeln!(
            out,
            "pf {}: dropped journal entries of destroyed VFs {:?}",
            c.pf, c.journal_dropped
        )?;
    }
    Ok(())
}

fn print_restored(out: &mut impl Write, pf: &str, vf: u32, done: &[&str]) -> Result<()> {
    if done.is_empty() {
        writeln!(out, "pf {pf} vf {vf}: already in its original state")?;
    } else {
        writeln!(out, "pf {pf} vf {vf}: restored {}", done.join(", "))?;
    }
    Ok(())
}

fn print_diff(out: &mut impl Write, pf: &str, rows: &[Drift]) -> Result<()> {
    if rows.is_empty() {
        writeln!(out, "pf {pf}: no journaled VF")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<4} {:<12} {:<26} {:<26} STATUS",
        "VF", "SETTING", "DESIRED", "LIVE"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<4} {:<12} {:<26} {:<26} {}",
            r.vf,
            r.setting,
            r.desired,
            r.live,
            if r.in_sync { "ok" } else { "DRIFT" }
        )?;
    }
    Ok(())
}
