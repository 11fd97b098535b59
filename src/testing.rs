//! Test hooks that production never triggers: a crash test names a point
//! in `ZLTEST_STOP_AT` (comma-separated), and the process stops
//! itself there with SIGSTOP the first time it passes, as a VM pause or a
//! stalled process would. The test then lets a successor take over and
//! sends SIGCONT, to prove that nothing the frozen process does next moves
//! shared state back (fencing, see `index::Fence`).

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

const STOP_AT: &str = "ZLTEST_STOP_AT";

static ARMED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();

#[doc(hidden)]
#[allow(unsafe_code)] // one libc call, see SAFETY below
pub fn stop_point(name: &str) {
    let armed = ARMED.get_or_init(|| {
        let names = std::env::var(STOP_AT).unwrap_or_default();
        Mutex::new(
            names
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect(),
        )
    });
    let hit = armed
        .lock()
        .map(|mut names| names.remove(name))
        .unwrap_or(false);
    if hit {
        tracing::warn!(point = name, "test hook: stopping this process (SIGSTOP)");
        // SAFETY: raise only sends a signal to this process.
        unsafe {
            libc::raise(libc::SIGSTOP);
        }
        tracing::warn!(point = name, "test hook: continued (SIGCONT)");
    }
}
