//! `vswitch-cni`: the CNI plugin that attaches pods to vswitch (see `ctl::cni` and
//! docs/cni.md). A container runtime runs it with the `CNI_*` environment and the network
//! configuration on stdin; it prints a result (ADD), a version list (VERSION) or nothing,
//! and on failure a CNI error object on stdout with a non-zero exit status.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use ctl::cni::conf::version_of;
use ctl::cni::env::Env;
use ctl::cni::error::{CniError, Code};
use ctl::cni::types::LATEST_VERSION;
use ctl::cni::{run, Node};

/// Largest network configuration read from stdin.
const MAX_INPUT: u64 = 1 << 20;

fn main() -> ExitCode {
    let mut input = Vec::new();
    let read = std::io::stdin()
        .take(MAX_INPUT + 1)
        .read_to_end(&mut input)
        .map_err(|e| CniError::new(Code::Io, format!("reading stdin: {e}")))
        .and_then(|n| {
            if n as u64 > MAX_INPUT {
                Err(CniError::new(
                    Code::Decode,
                    format!("network configuration larger than {MAX_INPUT} bytes"),
                ))
            } else {
                Ok(())
            }
        });
    let outcome = read
        .and_then(|()| Env::from_vars(|k| std::env::var(k).ok()))
        .and_then(|env| {
            let socket = std::env::var_os("VSWITCH_SOCKET")
                .map_or_else(|| PathBuf::from(ctl::DEFAULT_SOCKET), PathBuf::from);
            let mut node = Node::system(socket);
            if let Some(root) = std::env::var_os("VSWITCH_SYSFS_ROOT") {
                node.sysfs_root = PathBuf::from(root);
            }
            run(&env, &node, &input)
        });
    let mut out = std::io::stdout().lock();
    match outcome {
        Ok(text) => {
            if let Some(t) = text {
                // Nothing better to do if stdout is gone: the runtime sees no result.
                let _ = writeln!(out, "{t}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let version = version_of(&input).unwrap_or_else(|| LATEST_VERSION.to_string());
            let _ = writeln!(out, "{}", e.to_json(&version));
            eprintln!("vswitch-cni: {e}");
            ExitCode::FAILURE
        }
    }
}
