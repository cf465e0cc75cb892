//! The config file as written: every table's TOML shape, refusing unknown keys, with the
//! defaults serde fills in. `load` validates these into `Config`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{SourceKind, Thresholds};

// The file as written. Unknown keys are errors: a misspelt `schedul` silently ignored is
// worse than a refusal to start.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) storage: RawStorage,
    #[serde(default)]
    pub(super) defaults: RawDefaults,
    #[serde(default)]
    pub(super) fetch: RawFetch,
    #[serde(default)]
    pub(super) dedupe: RawDedupe,
    #[serde(default)]
    pub(super) categories: BTreeMap<String, RawCategory>,
    #[serde(default)]
    pub(super) sources: Vec<RawSource>,
    #[serde(default)]
    pub(super) export: RawExport,
    #[serde(default)]
    pub(super) rules: RawRules,
}

/// `[rules]`, `[categories."…".rules]`, `[sources.rules]`: see `config::rules`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRules {
    #[serde(default)]
    pub(super) keep: Vec<RawCondition>,
    #[serde(default)]
    pub(super) block: Vec<RawCondition>,
    #[serde(default)]
    pub(super) rewrite: Vec<RawRewrite>,
    #[serde(default)]
    pub(super) remove: Vec<String>,
}

/// One table of a `keep` or `block` list.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCondition {
    pub(super) title: Option<String>,
    pub(super) content: Option<String>,
    pub(super) author: Option<String>,
    pub(super) category: Option<String>,
    pub(super) link: Option<String>,
    /// Read as any value, so that a wrong one is refused naming the rule.
    pub(super) max_age_days: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRewrite {
    pub(super) field: String,
    pub(super) pattern: String,
    #[serde(default)]
    pub(super) replace: String,
}

/// `[categories."金融"]`: what the category's sources share.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCategory {
    pub(super) keep_days: Option<RawLimit>,
    pub(super) keep_entries: Option<RawLimit>,
    pub(super) rules: Option<RawRules>,
}

/// `keep_days` and `keep_entries` as written in `[defaults]`, a category or a source (each
/// table has its own two fields: a flattened struct would cost unknown keys their place in the
/// file and the list of known ones).
pub(super) struct RawRetention<'a> {
    pub(super) keep_days: &'a Option<RawLimit>,
    pub(super) keep_entries: &'a Option<RawLimit>,
}

/// A retention limit as written: a whole number of at least 1, or "forever". Read as any
/// value, so that a wrong one is refused naming its key (an untagged enum would not say which).
pub(super) type RawLimit = toml::Value;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExport {
    pub(super) placeholder: Option<String>,
}

/// Near-duplicate thresholds: the defaults, and per-category overrides under
/// `[dedupe.categories."金融"]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDedupe {
    #[serde(flatten)]
    pub(super) base: RawThresholds,
    #[serde(default)]
    pub(super) categories: std::collections::BTreeMap<String, RawThresholds>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawThresholds {
    pub(super) enabled: Option<bool>,
    pub(super) window_hours: Option<i64>,
    pub(super) min_body_chars: Option<usize>,
    pub(super) long_body_chars: Option<usize>,
    pub(super) simhash_distance: Option<u32>,
    pub(super) body_containment: Option<f64>,
    pub(super) rewrite_body_bigrams: Option<f64>,
    pub(super) rewrite_title_cover: Option<f64>,
    pub(super) headline_title_cover: Option<f64>,
}

impl RawThresholds {
    /// `self`'s values over `base`'s.
    pub(super) fn over(&self, base: &Thresholds) -> Thresholds {
        Thresholds {
            enabled: self.enabled.unwrap_or(base.enabled),
            window_hours: self.window_hours.unwrap_or(base.window_hours),
            min_body_chars: self.min_body_chars.unwrap_or(base.min_body_chars),
            long_body_chars: self.long_body_chars.unwrap_or(base.long_body_chars),
            simhash_distance: self.simhash_distance.unwrap_or(base.simhash_distance),
            body_containment: self.body_containment.unwrap_or(base.body_containment),
            rewrite_body_bigrams: self
                .rewrite_body_bigrams
                .unwrap_or(base.rewrite_body_bigrams),
            rewrite_title_cover: self.rewrite_title_cover.unwrap_or(base.rewrite_title_cover),
            headline_title_cover: self
                .headline_title_cover
                .unwrap_or(base.headline_title_cover),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    #[serde(default = "default_listen")]
    pub(super) listen: String,
    pub(super) public_url: Option<String>,
    pub(super) admin_token: Option<String>,
    pub(super) websub_hub: Option<String>,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: default_listen(),
            public_url: None,
            admin_token: None,
            websub_hub: None,
        }
    }
}

pub(super) fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    #[serde(default = "default_storage_path")]
    pub(super) path: PathBuf,
    /// A PostgreSQL store instead of the SQLite file: `postgres://user@host/db`.
    #[serde(default)]
    pub(super) url: Option<String>,
    /// At most this many connections to PostgreSQL at once.
    #[serde(default = "default_storage_connections")]
    pub(super) connections: usize,
    /// How long a crashed instance's fetches hold their sources from the other instances.
    #[serde(default = "default_lease_secs")]
    pub(super) lease_secs: u64,
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage {
            path: default_storage_path(),
            url: None,
            connections: default_storage_connections(),
            lease_secs: default_lease_secs(),
        }
    }
}

pub(super) fn default_lease_secs() -> u64 {
    120
}

pub(super) fn default_storage_connections() -> usize {
    8
}

pub(super) fn default_storage_path() -> PathBuf {
    PathBuf::from("data/tributary.db")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    #[serde(default = "default_schedule")]
    pub(super) schedule: String,
    /// Zone of naive dates on pages.
    #[serde(default)]
    pub(super) timezone: Option<String>,
    /// Hours; see `SourceConfig::max_backoff`.
    pub(super) max_backoff_hours: Option<u64>,
    /// Hours; see `SourceConfig::max_interval`.
    pub(super) max_interval_hours: Option<u64>,
    /// See `SourceConfig::max_items`.
    pub(super) max_items: Option<usize>,
    pub(super) keep_days: Option<RawLimit>,
    pub(super) keep_entries: Option<RawLimit>,
}

impl RawDefaults {
    pub(super) fn keep(&self) -> RawRetention<'_> {
        RawRetention {
            keep_days: &self.keep_days,
            keep_entries: &self.keep_entries,
        }
    }
}

impl RawSource {
    pub(super) fn keep(&self) -> RawRetention<'_> {
        RawRetention {
            keep_days: &self.keep_days,
            keep_entries: &self.keep_entries,
        }
    }
}

impl Default for RawDefaults {
    fn default() -> Self {
        RawDefaults {
            schedule: default_schedule(),
            timezone: None,
            max_backoff_hours: None,
            max_interval_hours: None,
            max_items: None,
            keep_days: None,
            keep_entries: None,
        }
    }
}

pub(super) fn default_schedule() -> String {
    "every 15m".into()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFetch {
    pub(super) timeout_secs: Option<u64>,
    pub(super) connect_timeout_secs: Option<u64>,
    pub(super) max_body_bytes: Option<u64>,
    pub(super) max_redirects: Option<usize>,
    pub(super) user_agent: Option<String>,
    pub(super) concurrency: Option<usize>,
    pub(super) per_host: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub(super) id: Option<String>,
    pub(super) name: Option<String>,
    pub(super) url: Option<String>,
    pub(super) category: Option<String>,
    #[serde(default)]
    pub(super) tags: Vec<String>,
    pub(super) kind: Option<SourceKind>,
    pub(super) schedule: Option<String>,
    pub(super) enabled: Option<bool>,
    pub(super) timezone: Option<String>,
    #[serde(default)]
    pub(super) allow_private: bool,
    #[serde(default)]
    pub(super) article_hosts: Vec<String>,
    #[serde(default)]
    pub(super) priority: i64,
    pub(super) html: Option<RawHtml>,
    pub(super) article: Option<RawArticle>,
    pub(super) json: Option<RawJson>,
    pub(super) keep_days: Option<RawLimit>,
    pub(super) keep_entries: Option<RawLimit>,
    pub(super) rules: Option<RawRules>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(super) fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHtml {
    pub(super) item: String,
    pub(super) title: Option<String>,
    pub(super) link: Option<String>,
    pub(super) date: Option<String>,
    pub(super) date_format: Option<OneOrMany>,
    pub(super) summary: Option<String>,
    pub(super) id_pattern: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArticle {
    pub(super) content: String,
    pub(super) author: Option<String>,
    pub(super) date: Option<String>,
    #[serde(default)]
    pub(super) remove: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJson {
    pub(super) items: String,
    pub(super) title: String,
    pub(super) link: String,
    pub(super) date: Option<String>,
    pub(super) date_format: Option<OneOrMany>,
    pub(super) summary: Option<String>,
    pub(super) author: Option<String>,
    pub(super) id: Option<String>,
    pub(super) id_pattern: Option<String>,
}
