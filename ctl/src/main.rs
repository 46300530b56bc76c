//! `vswitchctl`: the vswitch command-line client.
//!
//! Exit codes: 0 ok, 1 failed, 2 usage (bad syntax or an invalid value), 3 not found.
//! Errors are printed as one line on stderr.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod vf;

/// vswitch control client.
#[derive(Debug, Parser)]
#[command(name = "vswitchctl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// SR-IOV virtual functions: list, show, set, restore, diff, capabilities.
    Vf(vf::VfArgs),
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
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("vswitchctl: {}", one_line(&e));
            ExitCode::from(exit_code(&e))
        }
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
