//! The client side of the control protocol.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::proto::*;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach vswitchd at {path}: {source} (is vswitchd running?)")]
    Unreachable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("vswitchd at {path}: {what}")]
    Protocol { path: String, what: String },
}

/// Sends one request and waits (bounded by `timeout`) for its reply.
pub fn request(socket: &Path, req: &Request, timeout: Duration) -> Result<Outcome, ClientError> {
    let path = socket.display().to_string();
    let unreachable = |source| ClientError::Unreachable {
        path: path.clone(),
        source,
    };
    let mut s = UnixStream::connect(socket).map_err(unreachable)?;
    s.set_read_timeout(Some(timeout)).map_err(unreachable)?;
    s.set_write_timeout(Some(timeout)).map_err(unreachable)?;
    // A daemon that refuses the connection (unauthorized, too many clients) answers and
    // closes at accept, possibly before the request is written: a failed write is only
    // an error if no reply can be read either.
    let wrote = s.write_all(encode_request(req).as_bytes());
    let mut line = String::new();
    let read = BufReader::new(&s).read_line(&mut line);
    if line.is_empty() {
        wrote.map_err(unreachable)?;
        read.map_err(unreachable)?;
    }
    if line.is_empty() {
        return Err(ClientError::Protocol {
            path,
            what: "closed the connection without a reply".into(),
        });
    }
    let msg: ResponseMsg = serde_json::from_str(&line).map_err(|e| ClientError::Protocol {
        path: path.clone(),
        what: format!("unreadable reply: {e}"),
    })?;
    if msg.version != PROTOCOL_VERSION {
        return Err(ClientError::Protocol {
            path,
            what: format!(
                "speaks protocol version {} (this vswitchctl speaks {PROTOCOL_VERSION})",
                msg.version
            ),
        });
    }
    Ok(msg.outcome)
}
