//! Running code inside another network namespace: a fresh thread joins the namespace
//! (`setns`), so the calling thread and the rest of the process stay where they are.
//! Sockets created in that thread keep belonging to the namespace after it ends.

use std::io;
use std::os::fd::AsRawFd;

/// Runs `f` on a new thread that has joined the network namespace at `path`
/// (e.g. /run/netns/NAME) and returns its result.
pub fn run_in<T: Send + 'static>(
    path: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let file = std::fs::File::open(path)?;
    std::thread::spawn(move || -> io::Result<T> {
        // SAFETY: `file` is an open namespace file descriptor; setns only changes this
        // (fresh, single-purpose) thread's network namespace.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(f())
    })
    .join()
    .map_err(|_| io::Error::other("thread in network namespace panicked"))?
}
