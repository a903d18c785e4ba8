//! What one loaded config becomes at run time: the config itself and one
//! platform adapter per account. Swapped as a whole on reload, so a request
//! or a worker always sees one consistent version.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{AccountId, Config, PlatformKind};
use crate::platform::sandbox::SandboxFeed;
use crate::platform::{self, Platform};
use crate::store::{SandboxChats, Store};

/// Why a loaded config could not be put to work.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The relay does not start (or a reload keeps the running config).
    #[error("cannot build the HTTP client for the platforms: {0}")]
    HttpClient(#[source] reqwest::Error),
}

/// The client every platform adapter sends with: a total and a connect timeout.
fn http_client(send_timeout: Duration, user_agent: &str) -> Result<reqwest::Client, RuntimeError> {
    reqwest::Client::builder()
        .timeout(send_timeout)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(user_agent)
        .build()
        .map_err(RuntimeError::HttpClient)
}

pub struct Runtime {
    pub config: Arc<Config>,
    pub platforms: HashMap<AccountId, Arc<dyn Platform>>,
    /// Per platform, the user ids our own accounts post under.
    pub own_ids: HashMap<PlatformKind, HashSet<String>>,
}

impl Runtime {
    /// A runtime whose sandbox accounts publish what they post on `feed`
    /// (the server passes the one in `AppState`, across reloads).
    /// Fails when the HTTP client cannot be built: a default client would
    /// have no timeouts, and one stalled platform would hold a worker forever.
    pub fn with_sandbox_feed(
        config: Config,
        store: Arc<dyn Store>,
        chats: Arc<dyn SandboxChats>,
        feed: &SandboxFeed,
    ) -> Result<Runtime, RuntimeError> {
        let http = http_client(
            config.delivery.send_timeout,
            concat!("buurtrelay/", env!("CARGO_PKG_VERSION")),
        )?;
        let mut platforms = HashMap::new();
        let mut own_ids: HashMap<PlatformKind, HashSet<String>> = HashMap::new();
        for (id, acc) in &config.accounts {
            let p = platform::build(acc, http.clone(), store.clone(), chats.clone(), feed);
            if let Some(me) = p.self_id() {
                own_ids.entry(acc.platform).or_default().insert(me);
            }
            platforms.insert(id.clone(), p);
        }
        Ok(Runtime {
            config: Arc::new(config),
            platforms,
            own_ids,
        })
    }

    pub fn own_ids(&self, platform: PlatformKind) -> HashSet<String> {
        self.own_ids.get(&platform).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_that_cannot_be_built_is_an_error_not_a_client_without_timeouts() {
        // An invalid header value makes reqwest's builder fail, as a broken
        // TLS setup would.
        let e = http_client(Duration::from_secs(5), "bad\nagent").unwrap_err();
        assert!(
            e.to_string().contains("cannot build the HTTP client"),
            "{e}"
        );
        assert!(http_client(Duration::from_secs(5), "buurtrelay/test").is_ok());
    }
}
