//! What one loaded config becomes at run time: the config itself and one
//! platform adapter per account. Swapped as a whole on reload, so a request
//! or a worker always sees one consistent version.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::config::{AccountId, Config, PlatformKind};
use crate::platform::sandbox::SandboxFeed;
use crate::platform::{self, Platform};
use crate::store::{SandboxChats, Store};

pub struct Runtime {
    pub config: Arc<Config>,
    pub platforms: HashMap<AccountId, Arc<dyn Platform>>,
    /// Per platform, the user ids our own accounts post under.
    pub own_ids: HashMap<PlatformKind, HashSet<String>>,
}

impl Runtime {
    /// A runtime whose sandbox accounts publish what they post on `feed`
    /// (the server passes the one in `AppState`, across reloads).
    pub fn with_sandbox_feed(
        config: Config,
        store: Arc<dyn Store>,
        chats: Arc<dyn SandboxChats>,
        feed: &SandboxFeed,
    ) -> Runtime {
        let http = reqwest::Client::builder()
            .timeout(config.delivery.send_timeout)
            .connect_timeout(std::time::Duration::from_secs(10))
            .user_agent(concat!("buurtrelay/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let mut platforms = HashMap::new();
        let mut own_ids: HashMap<PlatformKind, HashSet<String>> = HashMap::new();
        for (id, acc) in &config.accounts {
            let p = platform::build(acc, http.clone(), store.clone(), chats.clone(), feed);
            if let Some(me) = p.self_id() {
                own_ids.entry(acc.platform).or_default().insert(me);
            }
            platforms.insert(id.clone(), p);
        }
        Runtime {
            config: Arc::new(config),
            platforms,
            own_ids,
        }
    }

    pub fn own_ids(&self, platform: PlatformKind) -> HashSet<String> {
        self.own_ids.get(&platform).cloned().unwrap_or_default()
    }
}
