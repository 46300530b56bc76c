//! Kernel counters that cost syscalls to read (rtnetlink queries, ioctls in another
//! namespace) are read once a second by one background thread for every port, never by
//! a worker: a port's [`Probe`] reads them and stores the result in atomics, and the
//! worker's health check only loads those. Measured before: two rtnetlink round trips per
//! veth port took 74-394 us of a worker's loop each second, a stall every frame arriving
//! meanwhile waited out.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

/// How often the background thread refreshes every probe.
pub(crate) const INTERVAL: Duration = Duration::from_secs(1);

/// Something the background thread refreshes (interior mutability: it is shared with the
/// port that reads its results).
pub(crate) trait Probe: Send + Sync + std::fmt::Debug {
    fn refresh(&self);
}

type Registry = Mutex<Vec<Weak<dyn Probe>>>;

fn registry() -> &'static Registry {
    static PROBES: OnceLock<Registry> = OnceLock::new();
    PROBES.get_or_init(|| {
        // If the thread cannot start, these counters stay where the ports' first reads
        // left them; forwarding is unaffected.
        let _ = std::thread::Builder::new()
            .name("port-probes".into())
            .spawn(refresh_forever);
        Mutex::new(Vec::new())
    })
}

/// Has the background thread refresh `probe` from now on, while a strong reference to it
/// lives (the port's).
pub(crate) fn register(probe: &Arc<dyn Probe>) {
    if let Ok(mut list) = registry().lock() {
        list.push(Arc::downgrade(probe));
    }
}

fn refresh_forever() {
    loop {
        std::thread::sleep(INTERVAL);
        let live: Vec<Arc<dyn Probe>> = match registry().lock() {
            Ok(mut list) => {
                list.retain(|w| w.strong_count() > 0);
                list.iter().filter_map(Weak::upgrade).collect()
            }
            Err(_) => return,
        };
        for p in live {
            p.refresh();
        }
    }
}
