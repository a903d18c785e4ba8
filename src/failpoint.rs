//! Crash points for the crash tests: `BUURTRELAY_FAILPOINT=NAME:N` aborts the
//! process (no clean-up, like SIGKILL) the N-th time the code passes the
//! point `NAME`. Without the variable each point is one relaxed atomic load.
//!
//! Points: `after_commit` (the webhook's write is durable, the 2xx not yet
//! sent) and `after_send` (the platform accepted a message, its bookkeeping
//! not yet written).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

struct Armed {
    name: String,
    at: u64,
    hits: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let v = std::env::var("BUURTRELAY_FAILPOINT").ok()?;
            let (name, n) = v.split_once(':').unwrap_or((v.as_str(), "1"));
            Some(Armed {
                name: name.to_string(),
                at: n.parse().ok().filter(|n| *n > 0)?,
                hits: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Aborts here if this point is armed and its count is reached.
pub fn hit(name: &str) {
    if let Some(a) = armed() {
        if a.name == name && a.hits.fetch_add(1, Ordering::Relaxed) + 1 == a.at {
            eprintln!("failpoint {name}: aborting");
            std::process::abort();
        }
    }
}
