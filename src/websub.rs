//! WebSub publishing: tells a hub when a feed gains entries, so subscribers get pushes instead
//! of polling (W3C WebSub; the `hub.mode=publish` ping is the convention public hubs accept).
//!
//! Pings are coalesced: one feed is announced at most once a minute; changes within the minute
//! after a ping are announced together at its end.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use url::Url;

use crate::config::{Config, SourceConfig};
use crate::feed_urls;
use crate::model::Scope;
use crate::publish::Format;

/// The shortest time between two pings for one feed.
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);

pub struct Publisher {
    hub: Url,
    public: Url,
    client: reqwest::Client,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    last: HashMap<String, Instant>,
    pending: HashSet<String>,
}

impl Publisher {
    /// A publisher when the config names a hub (it then also has a public URL: config
    /// validation requires it).
    pub fn from_config(config: &Config) -> Option<Arc<Publisher>> {
        let hub = config.server.websub_hub.clone()?;
        let public = config.server.public_url.clone()?;
        let client = reqwest::Client::builder()
            .user_agent(config.fetch.user_agent.clone())
            .timeout(Duration::from_secs(15))
            .build()
            .ok()?;
        Some(Arc::new(Publisher {
            hub,
            public,
            client,
            state: Mutex::default(),
        }))
    }

    /// Every published feed a new entry of `source` appears in: its category, `all`, the
    /// source's own feed and its tags, each in the three formats.
    pub fn feeds_of(&self, source: &SourceConfig) -> Vec<String> {
        let mut scopes = vec![
            Scope::Category(source.category.clone()),
            Scope::All,
            Scope::Source(source.id.clone()),
        ];
        scopes.extend(source.tags.iter().cloned().map(Scope::Tag));
        scopes
            .iter()
            .flat_map(|scope| {
                [Format::Rss, Format::Atom, Format::Json]
                    .map(|format| feed_urls::url(&self.public, scope, format).to_string())
            })
            .collect()
    }

    /// Announces `feeds` now, or at the end of their minute if they were announced less than a
    /// minute ago.
    pub fn announce(self: &Arc<Self>, feeds: Vec<String>) {
        let now = Instant::now();
        let mut due_now = Vec::new();
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            for feed in feeds {
                match state.last.get(&feed).copied() {
                    Some(at) if now.duration_since(at) < MIN_INTERVAL => {
                        if state.pending.insert(feed.clone()) {
                            let wait = MIN_INTERVAL - now.duration_since(at);
                            let me = self.clone();
                            tokio::spawn(async move {
                                tokio::time::sleep(wait).await;
                                me.state
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .pending
                                    .remove(&feed);
                                me.announce(vec![feed]);
                            });
                        }
                    }
                    _ => {
                        state.last.insert(feed.clone(), now);
                        due_now.push(feed);
                    }
                }
            }
        }
        for feed in due_now {
            let me = self.clone();
            tokio::spawn(async move { me.ping(&feed).await });
        }
    }

    async fn ping(&self, feed: &str) {
        let result = self
            .client
            .post(self.hub.clone())
            .form(&[("hub.mode", "publish"), ("hub.url", feed)])
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => {
                tracing::debug!(hub = %self.hub, feed, "hub notified")
            }
            Ok(r) => {
                tracing::warn!(hub = %self.hub, feed, status = %r.status(), "hub refused the ping")
            }
            Err(e) => {
                tracing::warn!(hub = %self.hub, feed, error = %crate::error_chain(&e), "hub ping failed")
            }
        }
    }
}
