//! vswitchd as the plugin sees it: bridges and ports over the control socket.
//!
//! Invariants: a daemon that cannot be reached is "try again later" (code 11) naming the
//! socket; a port is removed only when its owner is the attachment asking (a port of the
//! same name made by hand, or by another attachment, is never touched).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{internal, invalid_config, CniError, Code};
use crate::client::{self, ClientError};
use crate::config::{CniAttachment, PortOwner, PortSpec};
use crate::proto::{BridgeView, ErrorCode, Outcome, PortView, Request, Response};

/// How long vswitchd may take to answer (adding a port can restart a bridge's workers).
const TIMEOUT: Duration = Duration::from_secs(30);

/// The control socket of one vswitchd.
#[derive(Debug, Clone)]
pub struct Switch {
    socket: PathBuf,
}

impl Switch {
    pub fn new(socket: &Path) -> Switch {
        Switch {
            socket: socket.to_path_buf(),
        }
    }

    fn call(&self, req: Request) -> Result<Response, CniError> {
        let op = req.op();
        match client::request(&self.socket, &req, TIMEOUT) {
            Ok(Outcome::Ok(r)) => Ok(r),
            Ok(Outcome::Error(e)) => Err(CniError::new(
                match e.code {
                    ErrorCode::Usage | ErrorCode::NotFound | ErrorCode::Exists => {
                        Code::InvalidConfig
                    }
                    ErrorCode::Timeout | ErrorCode::TooLarge => Code::TryAgainLater,
                    _ => Code::Internal,
                },
                format!("vswitchd {op}: {}", e.message),
            )),
            Err(e @ ClientError::Unreachable { .. }) => Err(CniError::new(
                Code::TryAgainLater,
                format!("{e}; try again once vswitchd is up"),
            )),
            Err(e @ ClientError::Protocol { .. }) => {
                Err(CniError::new(Code::TryAgainLater, e.to_string()))
            }
        }
    }

    /// Every bridge with its ports.
    pub fn show(&self) -> Result<Vec<BridgeView>, CniError> {
        match self.call(Request::Show {})? {
            Response::Show { bridges } => Ok(bridges),
            other => Err(internal(format!(
                "vswitchd show: unexpected reply {other:?}"
            ))),
        }
    }

    /// The bridge `name`, which must exist.
    pub fn bridge(&self, name: &str) -> Result<BridgeView, CniError> {
        self.show()?
            .into_iter()
            .find(|b| b.name == name)
            .ok_or_else(|| {
                invalid_config(format!(
                    "bridge {name} does not exist in vswitchd at {} (create it: vswitchctl \
                     add-br {name})",
                    self.socket.display()
                ))
            })
    }

    pub fn add_port(&self, bridge: &str, port: PortSpec) -> Result<(), CniError> {
        self.call(Request::AddPort {
            bridge: bridge.to_string(),
            port,
            may_exist: false,
        })
        .map(|_| ())
    }

    /// Removes port `name` of `bridge` if it is the attachment's; returns whether it did.
    /// A missing bridge or port is not an error (DEL is idempotent).
    pub fn del_owned_port(
        &self,
        bridge: &str,
        name: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<bool, CniError> {
        let Some(b) = self.show()?.into_iter().find(|b| b.name == bridge) else {
            return Ok(false);
        };
        let Some(p) = b.ports.iter().find(|p| p.name == name) else {
            return Ok(false);
        };
        if !owned_by(p, container_id, ifname) {
            return Ok(false);
        }
        self.call(Request::DelPort {
            bridge: bridge.to_string(),
            port: name.to_string(),
            if_exists: true,
        })?;
        Ok(true)
    }
}

/// The attachment that owns `p`, if a CNI attachment does.
pub fn cni_owner(p: &PortView) -> Option<&CniAttachment> {
    match &p.owner {
        Some(PortOwner::Cni(a)) => Some(a),
        None => None,
    }
}

/// Whether `p` belongs to attachment (`container_id`, `ifname`).
pub fn owned_by(p: &PortView, container_id: &str, ifname: &str) -> bool {
    cni_owner(p).is_some_and(|a| a.container_id == container_id && a.ifname == ifname)
}
