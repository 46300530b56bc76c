//! Child processes the harness waits for (iperf3, ping): killed when their guard drops
//! (error, panic, Ctrl-C), waited for with a hard time limit, output collected by reader
//! threads so a chatty child never blocks on a full pipe.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use vswitch_benches::harness::check_interrupted;

/// `ip netns exec NS PROG` (the command `exec`s PROG, so the child's PID is PROG's).
pub fn in_netns(ns: &str, prog: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, prog]);
    c
}

/// What a finished child printed and how it ended.
#[derive(Debug)]
pub struct Finished {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    /// It ran past its limit and was killed.
    pub timed_out: bool,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// A running child with captured output; killed on drop.
#[derive(Debug)]
pub struct Running {
    what: String,
    child: Option<Child>,
    out: Option<JoinHandle<Vec<u8>>>,
    err: Option<JoinHandle<Vec<u8>>>,
}

fn reader(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

impl Running {
    /// Starts `cmd` with stdin closed and stdout/stderr captured; `what` names it in errors.
    pub fn spawn(what: &str, cmd: &mut Command) -> anyhow::Result<Running> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawn {what}"))?;
        let out = child.stdout.take().map(reader);
        let err = child.stderr.take().map(reader);
        Ok(Running {
            what: what.to_owned(),
            child: Some(child),
            out,
            err,
        })
    }

    /// Whether it has exited (without collecting its output).
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Waits until it exits or `limit` passes (then kills it); Ctrl-C kills it and fails.
    pub fn wait(mut self, limit: Duration) -> anyhow::Result<Finished> {
        let end = Instant::now() + limit;
        let mut timed_out = false;
        let status = loop {
            let child = self.child.as_mut().context("child already collected")?;
            if let Some(s) = child
                .try_wait()
                .with_context(|| format!("wait for {}", self.what))?
            {
                break Some(s);
            }
            if let Err(e) = check_interrupted() {
                self.kill();
                return Err(e);
            }
            if Instant::now() >= end {
                timed_out = true;
                self.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.child = None;
        let text = |h: Option<JoinHandle<Vec<u8>>>| {
            h.and_then(|h| h.join().ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        Ok(Finished {
            status,
            stdout: text(self.out.take()),
            stderr: text(self.err.take()),
            timed_out,
        })
    }

    fn kill(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}
