//! CNI errors: the spec's well-known codes and the JSON a plugin prints on stdout when it
//! fails (`{"cniVersion", "code", "msg", "details"}`, exit status non-zero).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The spec's well-known error codes (0-99), and vswitch-cni's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 1: the configuration's `cniVersion` is not one this plugin speaks.
    IncompatibleVersion,
    /// 2: a field of the network configuration this plugin does not know.
    UnsupportedField,
    /// 3: the container (its network namespace) does not exist.
    UnknownContainer,
    /// 4: a required `CNI_*` variable is missing or invalid.
    InvalidEnvironment,
    /// 5: an I/O failure (state files, netlink sockets).
    Io,
    /// 6: the input could not be decoded (not JSON, wrong types).
    Decode,
    /// 7: the network configuration is invalid (values, combinations).
    InvalidConfig,
    /// 11: transient: retry later (vswitchd is not reachable).
    TryAgainLater,
    /// 50 (STATUS): the plugin cannot serve ADD now.
    NotAvailable,
    /// 999: anything else (the kernel or vswitchd refused, a CHECK found a difference).
    Internal,
    /// A code passed through from a delegated plugin (IPAM).
    Other(u32),
}

impl Code {
    /// The code a number stands for (a delegated plugin's answer).
    pub fn from_number(n: u32) -> Code {
        match n {
            1 => Code::IncompatibleVersion,
            2 => Code::UnsupportedField,
            3 => Code::UnknownContainer,
            4 => Code::InvalidEnvironment,
            5 => Code::Io,
            6 => Code::Decode,
            7 => Code::InvalidConfig,
            11 => Code::TryAgainLater,
            50 => Code::NotAvailable,
            999 => Code::Internal,
            n => Code::Other(n),
        }
    }

    pub fn number(self) -> u32 {
        match self {
            Code::IncompatibleVersion => 1,
            Code::UnsupportedField => 2,
            Code::UnknownContainer => 3,
            Code::InvalidEnvironment => 4,
            Code::Io => 5,
            Code::Decode => 6,
            Code::InvalidConfig => 7,
            Code::TryAgainLater => 11,
            Code::NotAvailable => 50,
            Code::Internal => 999,
            Code::Other(n) => n,
        }
    }
}

/// A failed CNI operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: Code,
    pub msg: String,
    pub details: Option<String>,
}

impl CniError {
    pub fn new(code: Code, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> CniError {
        self.details = Some(details.into());
        self
    }

    /// The error JSON of the spec, for `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> String {
        serde_json::to_string(&ErrorJson {
            cni_version: cni_version.to_string(),
            code: self.code.number(),
            msg: self.msg.clone(),
            details: self.details.clone(),
        })
        .unwrap_or_else(|_| {
            format!(
                "{{\"cniVersion\":\"{cni_version}\",\"code\":{},\"msg\":\"vswitch-cni: error\"}}",
                self.code.number()
            )
        })
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.msg, self.code.number())?;
        if let Some(d) = &self.details {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

/// The error object on the wire (also what a delegated plugin prints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorJson {
    #[serde(default)]
    pub cni_version: String,
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// Shorthands for the common cases.
pub fn invalid_config(msg: impl Into<String>) -> CniError {
    CniError::new(Code::InvalidConfig, msg)
}
pub fn invalid_env(msg: impl Into<String>) -> CniError {
    CniError::new(Code::InvalidEnvironment, msg)
}
pub fn internal(msg: impl Into<String>) -> CniError {
    CniError::new(Code::Internal, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_has_the_spec_fields() {
        let e = invalid_config("vlan 5000 is out of range").with_details("use 1-4094");
        assert_eq!(
            e.to_json("1.0.0"),
            r#"{"cniVersion":"1.0.0","code":7,"msg":"vlan 5000 is out of range","details":"use 1-4094"}"#
        );
        let e = CniError::new(Code::TryAgainLater, "vswitchd down");
        assert_eq!(
            e.to_json("1.1.0"),
            r#"{"cniVersion":"1.1.0","code":11,"msg":"vswitchd down"}"#
        );
        assert_eq!(Code::Other(123).number(), 123);
        for n in [1, 2, 3, 4, 5, 6, 7, 11, 50, 999, 123] {
            assert_eq!(Code::from_number(n).number(), n);
        }
        assert_eq!(Code::from_number(7), Code::InvalidConfig);
        assert_eq!(e.to_string(), "vswitchd down (code 11)");
    }
}
