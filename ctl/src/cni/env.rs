//! The `CNI_*` environment a runtime runs the plugin with, checked once at the edge.
//!
//! Invariants: a command's required variables are present and valid before anything is
//! done (ADD, CHECK: container id, netns, ifname; DEL: container id, ifname); container
//! ids and interface names are limited to characters that are safe in interface names and
//! file names; `CNI_ARGS` is parsed into pairs (unknown keys are kept and ignored).

use std::path::PathBuf;

use super::error::{invalid_env, CniError};

/// `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Status,
    Gc,
}

impl Command {
    pub fn parse(s: &str) -> Result<Command, CniError> {
        Ok(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            other => {
                return Err(invalid_env(format!(
                    "CNI_COMMAND '{other}' is not one of ADD, DEL, CHECK, VERSION, STATUS, GC"
                )))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Status => "STATUS",
            Command::Gc => "GC",
        }
    }
}

/// The invocation's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub command: Command,
    /// `CNI_CONTAINERID` (ADD, DEL, CHECK).
    pub container_id: String,
    /// `CNI_NETNS`; may be empty for DEL (the namespace is gone).
    pub netns: String,
    /// `CNI_IFNAME` (ADD, DEL, CHECK).
    pub ifname: String,
    /// `CNI_ARGS` as pairs, in order.
    pub args: Vec<(String, String)>,
    /// `CNI_PATH`: where delegated plugins (IPAM) are looked up.
    pub path: Vec<PathBuf>,
}

impl Env {
    /// Reads and checks the variables from `get` (the process environment in the binary).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Env, CniError> {
        let command = match get("CNI_COMMAND") {
            Some(c) => Command::parse(&c)?,
            None => {
                return Err(invalid_env(
                    "CNI_COMMAND is not set: vswitch-cni is a CNI plugin, run by a container \
                     runtime (see docs/cni.md)",
                ))
            }
        };
        let var = |name: &str| get(name).unwrap_or_default();
        let env = Env {
            command,
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME"),
            args: parse_args(&var("CNI_ARGS"))?,
            path: std::env::split_paths(&var("CNI_PATH"))
                .filter(|p| !p.as_os_str().is_empty())
                .collect(),
        };
        env.check()?;
        Ok(env)
    }

    fn check(&self) -> Result<(), CniError> {
        let attachment = matches!(self.command, Command::Add | Command::Del | Command::Check);
        if attachment {
            check_container_id(&self.container_id)?;
            crate::config::check_ifname(crate::config::NameOf::Given("CNI_IFNAME"), &self.ifname)
                .map_err(|e| invalid_env(e.to_string()))?;
        }
        if matches!(self.command, Command::Add | Command::Check) && self.netns.is_empty() {
            return Err(invalid_env(format!(
                "CNI_NETNS is required for {}",
                self.command.name()
            )));
        }
        Ok(())
    }

    /// The value of `key` in `CNI_ARGS`.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// "namespace/name" of the Kubernetes pod, when `CNI_ARGS` names it.
    pub fn pod(&self) -> Option<String> {
        match (self.arg("K8S_POD_NAMESPACE"), self.arg("K8S_POD_NAME")) {
            (Some(ns), Some(name)) if !name.is_empty() => Some(format!("{ns}/{name}")),
            _ => None,
        }
    }

    /// The variables to run a delegated plugin with for `command`.
    pub fn vars_for(&self, command: Command) -> Vec<(&'static str, String)> {
        let args: Vec<String> = self.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        vec![
            ("CNI_COMMAND", command.name().to_string()),
            ("CNI_CONTAINERID", self.container_id.clone()),
            ("CNI_NETNS", self.netns.clone()),
            ("CNI_IFNAME", self.ifname.clone()),
            ("CNI_ARGS", args.join(";")),
            (
                "CNI_PATH",
                std::env::join_paths(&self.path)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
        ]
    }
}

/// A container id as the spec allows it: alphanumerics, then alphanumerics, `_`, `.`, `-`.
pub fn check_container_id(id: &str) -> Result<(), CniError> {
    let mut chars = id.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && id.len() <= 256;
    if ok {
        Ok(())
    } else {
        Err(invalid_env(format!(
            "CNI_CONTAINERID '{id}' is invalid: it must start with a letter or digit and hold \
             only letters, digits, '_', '.', '-' (at most 256)"
        )))
    }
}

/// `K1=V1;K2=V2`; an empty string is no pairs.
fn parse_args(s: &str) -> Result<Vec<(String, String)>, CniError> {
    s.split(';')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| invalid_env(format!("CNI_ARGS: '{pair}' is not KEY=VALUE")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::error::Code;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> Result<Env, CniError> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn add_needs_container_netns_and_ifname() {
        let ok = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc123"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            (
                "CNI_ARGS",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web",
            ),
            ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
        ])
        .expect("valid");
        assert_eq!(ok.command, Command::Add);
        assert_eq!(ok.pod().as_deref(), Some("default/web"));
        assert_eq!(
            ok.path,
            vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
        );
        let e = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
        ])
        .expect_err("no netns");
        assert_eq!(e.code, Code::InvalidEnvironment);
        assert_eq!(e.msg, "CNI_NETNS is required for ADD");
        // DEL without a namespace is fine (it may be gone).
        env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
        ])
        .expect("DEL without netns");
    }

    #[test]
    fn bad_values_are_invalid_environment() {
        for (vars, want) in [
            (vec![], "CNI_COMMAND is not set"),
            (vec![("CNI_COMMAND", "EXPLODE")], "CNI_COMMAND 'EXPLODE'"),
            (
                vec![
                    ("CNI_COMMAND", "DEL"),
                    ("CNI_CONTAINERID", "../etc"),
                    ("CNI_IFNAME", "eth0"),
                ],
                "CNI_CONTAINERID '../etc' is invalid",
            ),
            (
                vec![
                    ("CNI_COMMAND", "DEL"),
                    ("CNI_CONTAINERID", "abc"),
                    ("CNI_IFNAME", "a-name-that-is-too-long"),
                ],
                "CNI_IFNAME 'a-name-that-is-too-long': must be 1-15 characters",
            ),
            (
                vec![
                    ("CNI_COMMAND", "DEL"),
                    ("CNI_CONTAINERID", "abc"),
                    ("CNI_IFNAME", "eth0"),
                    ("CNI_ARGS", "A=1;oops"),
                ],
                "CNI_ARGS: 'oops' is not KEY=VALUE",
            ),
        ] {
            let e = env(&vars).expect_err("invalid");
            assert_eq!(e.code, Code::InvalidEnvironment, "{vars:?}");
            assert!(e.msg.starts_with(want), "{vars:?}: {}", e.msg);
        }
        // VERSION, STATUS and GC need no attachment variables.
        for c in ["VERSION", "STATUS", "GC"] {
            env(&[("CNI_COMMAND", c)]).expect(c);
        }
    }
}
