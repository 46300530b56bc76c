//! Blocking while idle: an eventfd doorbell and `poll(2)` over a worker's descriptors.
//!
//! A worker that found nothing to do for a while sleeps in `poll` on its receive
//! descriptors (AF_XDP sockets, tap fds) plus its doorbell; frames arriving, another worker
//! handing it frames, or a control command wake it. The doorbell is rung only while its
//! worker says it is asleep, so a busy datapath makes no syscall for it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::time::Duration;

/// A worker's doorbell: an eventfd plus the "asleep" flag ringers check first.
#[derive(Debug)]
pub struct Doorbell {
    fd: OwnedFd,
    asleep: AtomicBool,
}

impl Doorbell {
    pub fn new() -> io::Result<Doorbell> {
        // SAFETY: eventfd takes no pointers; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Doorbell {
            // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            asleep: AtomicBool::new(false),
        })
    }

    /// Wakes the owner if it is (about to be) asleep. Call after publishing the work
    /// (pushing to a lane, sending a command): the fence orders that publication before
    /// reading the flag, pairing with the fence in [`Doorbell::sleep_begin`], so either
    /// the owner sees the work before sleeping or this call sees it asleep.
    pub fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.asleep.load(Ordering::Relaxed) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a valid u64 to our own eventfd. A failure
            // (EAGAIN: counter saturated) means the owner is woken anyway.
            unsafe {
                libc::write(
                    self.fd.as_raw_fd(),
                    (&one as *const u64).cast(),
                    std::mem::size_of::<u64>(),
                )
            };
        }
    }

    /// The owner announces it is going to sleep; it must then re-check for work before
    /// calling [`wait`] and call [`Doorbell::sleep_end`] afterwards.
    pub fn sleep_begin(&self) {
        self.asleep.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// The owner is awake again; clears a pending ring.
    pub fn sleep_end(&self) {
        self.asleep.store(false, Ordering::Relaxed);
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into a valid u64 from our own non-blocking
        // eventfd; EAGAIN (not rung) is the normal case and ignored.
        unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut v as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// What woke a [`wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// A descriptor is readable (or the doorbell rang).
    Ready,
    /// A descriptor reported an error or hang-up only (a device gone): the caller should
    /// not wait on the same set again before its health check.
    Error,
    /// The timeout passed.
    Timeout,
    /// Interrupted by a signal.
    Interrupted,
}

/// Waits until one of `fds` is readable or `timeout` passes. `fds` is the caller's
/// reusable array (built once when its descriptors change); revents are reset here.
pub fn wait(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<Woken> {
    for p in fds.iter_mut() {
        p.revents = 0;
    }
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd of the length given.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::EINTR) {
            Ok(Woken::Interrupted)
        } else {
            Err(e)
        };
    }
    if r == 0 {
        return Ok(Woken::Timeout);
    }
    if fds.iter().any(|p| p.revents & libc::POLLIN != 0) {
        Ok(Woken::Ready)
    } else {
        Ok(Woken::Error)
    }
}

/// A pollfd asking for readability of `fd`.
pub fn readable(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn ring_wakes_a_sleeper_and_is_silent_when_awake() {
        let bell = Arc::new(Doorbell::new().expect("eventfd"));
        // Awake: ringing writes nothing, so a wait on the bell times out.
        bell.ring();
        let mut fds = [readable(bell.fd())];
        assert_eq!(
            wait(&mut fds, Duration::ZERO).expect("poll"),
            Woken::Timeout
        );

        bell.sleep_begin();
        let b = bell.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            b.ring();
        });
        let t0 = Instant::now();
        let w = wait(&mut fds, Duration::from_secs(10)).expect("poll");
        bell.sleep_end();
        t.join().expect("ringer thread");
        assert_eq!(w, Woken::Ready);
        assert!(t0.elapsed() < Duration::from_secs(5));
        // sleep_end consumed the ring: the next wait times out again.
        assert_eq!(
            wait(&mut fds, Duration::ZERO).expect("poll"),
            Woken::Timeout
        );
    }

    #[test]
    fn hangup_or_bad_fd_only_is_reported_as_error() {
        let mut p = [0 as libc::c_int; 2];
        // SAFETY: `p` has room for the two descriptors pipe writes.
        assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
        // SAFETY: both fds were just created by pipe and are owned here.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
        let mut fds = [readable(r.as_raw_fd())];
        assert_eq!(
            wait(&mut fds, Duration::ZERO).expect("poll"),
            Woken::Timeout
        );
        drop(w);
        // Writer gone, nothing to read: POLLHUP without POLLIN.
        assert_eq!(wait(&mut fds, Duration::ZERO).expect("poll"), Woken::Error);
        // Not an open descriptor: POLLNVAL only.
        let mut fds = [readable(999_999)];
        assert_eq!(wait(&mut fds, Duration::ZERO).expect("poll"), Woken::Error);
    }
}
