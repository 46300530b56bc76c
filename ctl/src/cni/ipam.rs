//! Delegation to an IPAM plugin, the standard way: the executable named by the `ipam`
//! section's `type`, found in `CNI_PATH`, run with the same network configuration on
//! stdin and the same `CNI_*` variables (but the command), its result parsed on success
//! and its error passed through (code and message) on failure.
//!
//! Versions: the plugin is asked for its versions first (VERSION). When it does not
//! speak the configuration's `cniVersion` (host-local before 1.5 stops at 1.0.0), it gets
//! the configuration with the newest version both speak that is not newer; GC and STATUS,
//! which exist from 1.1.0 on, are not sent to a plugin that does not speak 1.1.0.

use std::borrow::Cow;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use serde::Deserialize;

use super::env::{Command, Env};
use super::error::{internal, CniError, Code, ErrorJson};
use super::types::{CniResult, Version};

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

/// Runs the plugin at `path` for `command` with `stdin`; its stdout on success.
fn spawn(
    kind: &str,
    path: &Path,
    command: Command,
    env: &Env,
    stdin: &[u8],
) -> Result<Vec<u8>, CniError> {
    let mut child = Process::new(path)
        .envs(env.vars_for(command))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            CniError::new(
                Code::Io,
                format!("ipam {kind}: cannot run {}: {e}", path.display()),
            )
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
            let mut err =
                CniError::new(Code::from_number(e.code), format!("ipam {kind}: {}", e.msg));
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

/// The versions the plugin at `path` says it speaks (empty when it does not say).
fn versions(kind: &str, path: &Path, env: &Env, ours: &str) -> Vec<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Info {
        supported_versions: Vec<String>,
    }
    let stdin = format!("{{\"cniVersion\":\"{ours}\"}}");
    spawn(kind, path, Command::Version, env, stdin.as_bytes())
        .ok()
        .and_then(|out| serde_json::from_slice::<Info>(&out).ok())
        .map(|i| i.supported_versions)
        .unwrap_or_default()
}

/// `stdin` with the `cniVersion` the plugin gets: the configuration's when it speaks it
/// (or does not say), else the newest both speak that is not newer (and `prevResult`
/// converted to that version's shape).
fn adapt<'a>(
    kind: &str,
    path: &Path,
    env: &Env,
    stdin: &'a [u8],
) -> Result<Cow<'a, [u8]>, CniError> {
    let Ok(mut conf) = serde_json::from_slice::<serde_json::Value>(stdin) else {
        return Ok(Cow::Borrowed(stdin));
    };
    let Some(ours) = conf["cniVersion"].as_str().map(str::to_string) else {
        return Ok(Cow::Borrowed(stdin));
    };
    let theirs = versions(kind, path, env, &ours);
    if theirs.is_empty() || theirs.contains(&ours) {
        return Ok(Cow::Borrowed(stdin));
    }
    let ours_v = Version::supported(&ours);
    let best = theirs
        .iter()
        .filter_map(|t| Version::supported(t).map(|v| (v, t)))
        .filter(|(v, _)| ours_v.is_some_and(|o| *v <= o))
        .max_by_key(|(v, _)| *v)
        .map(|(_, t)| t.clone())
        .ok_or_else(|| {
            CniError::new(
                Code::IncompatibleVersion,
                format!(
                    "ipam {kind} speaks {} and nothing up to cniVersion {ours}",
                    theirs.join(", ")
                ),
            )
        })?;
    // The previous result (CHECK, DEL) in the shape of that version too.
    if let Some(v) = Version::supported(&best) {
        if let Ok(prev) = serde_json::from_value::<CniResult>(conf["prevResult"].clone()) {
            conf["prevResult"] = serde_json::to_value(prev.for_version(v, &best))
                .map_err(|e| internal(format!("encode prevResult for ipam {kind}: {e}")))?;
        }
    }
    conf["cniVersion"] = serde_json::Value::String(best);
    serde_json::to_vec(&conf)
        .map(Cow::Owned)
        .map_err(|e| internal(format!("encode configuration for ipam {kind}: {e}")))
}

/// Runs `kind` for `command` with `stdin`; its stdout on success.
pub fn exec(kind: &str, command: Command, env: &Env, stdin: &[u8]) -> Result<Vec<u8>, CniError> {
    let path = find(kind, env)?;
    match command {
        Command::Gc | Command::Status => {
            let ours = super::types::LATEST_VERSION;
            let theirs = versions(kind, &path, env, ours);
            if !theirs.iter().any(|t| t == ours) {
                return Err(CniError::new(
                    Code::IncompatibleVersion,
                    format!(
                        "ipam {kind} does not speak {ours} ({} has no {})",
                        theirs.join(", "),
                        command.name()
                    ),
                ));
            }
            spawn(kind, &path, command, env, stdin)
        }
        _ => {
            let stdin = adapt(kind, &path, env, stdin)?;
            spawn(kind, &path, command, env, &stdin)
        }
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

/// IPAM DEL, CHECK, GC, STATUS: nothing but success or the plugin's error.
pub fn run(kind: &str, command: Command, env: &Env, stdin: &[u8]) -> Result<(), CniError> {
    exec(kind, command, env, stdin).map(|_| ())
}

/// Whether an error of a delegated GC or STATUS means only that the plugin predates
/// spec 1.1 (incompatible version, or the command unknown: invalid environment).
pub fn unsupported_verb(e: &CniError) -> bool {
    matches!(e.code.number(), 1 | 4)
}
