//! Delegation to an IPAM plugin, the standard way: the executable named by the `ipam`
//! section's `type`, found in `CNI_PATH`, run with the same network configuration on
//! stdin and the same `CNI_*` variables (but the command), its result parsed on success
//! and its error passed through (code and message) on failure.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};

use super::env::{Command, Env};
use super::error::{internal, CniError, Code, ErrorJson};
use super::types::CniResult;

/// The IPAM plugin `kind` in `env.path`.
pub fn find(kind: &str, env: &Env) -> Result<PathBuf, CniError> {
    env.path
        .iter()
        .map(|dir| dir.join(kind))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| {
            CniError::new(
                Code::InvalidConfig,
                format!(
                    "ipam plugin {kind} not found in CNI_PATH ({})",
                    env.path
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(":")
                ),
            )
        })
}

/// Runs `kind` for `command` with `stdin`; its stdout on success.
pub fn exec(kind: &str, command: Command, env: &Env, stdin: &[u8]) -> Result<Vec<u8>, CniError> {
    let path = find(kind, env)?;
    let mut child = Process::new(&path)
        .envs(env.vars_for(command))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            CniError::new(Code::Io, format!("ipam {kind}: cannot run {}: {e}", path.display()))
        })?;
    if let Some(mut i) = child.stdin.take() {
        // A plugin that exits without reading gives EPIPE: its answer says why.
        let _ = i.write_all(stdin);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| CniError::new(Code::Io, format!("ipam {kind}: {e}")))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    match serde_json::from_slice::<ErrorJson>(&out.stdout) {
        Ok(e) => {
            let mut err = CniError::new(Code::from_number(e.code), format!("ipam {kind}: {}", e.msg));
            if let Some(d) = e.details.filter(|d| !d.is_empty()) {
                err = err.with_details(d);
            }
            Err(err)
        }
        Err(_) => Err(internal(format!(
            "ipam {kind} {} failed ({}): {}{}",
            command.name(),
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}

/// IPAM ADD: the addresses, routes and DNS it assigned.
pub fn add(kind: &str, env: &Env, stdin: &[u8]) -> Result<CniResult, CniError> {
    let out = exec(kind, Command::Add, env, stdin)?;
    serde_json::from_slice(&out).map_err(|e| {
        internal(format!(
            "ipam {kind}: unreadable result ({e}): {}",
            String::from_utf8_lossy(&out).trim()
        ))
    })
}

/// IPAM DEL, CHECK: nothing but success or the plugin's error.
pub fn run(kind: &str, command: Command, env: &Env, stdin: &[u8]) -> Result<(), CniError> {
    exec(kind, command, env, stdin).map(|_| ())
}

/// Whether an error of a delegated GC or STATUS means only that the plugin predates
/// spec 1.1 (incompatible version, or the command unknown: invalid environment).
pub fn unsupported_verb(e: &CniError) -> bool {
    matches!(e.code.number(), 1 | 4)
}
