//! The configuration file: TOML read with serde, then validated into typed values before
//! anything runs.
//!
//! Every error names the file, the key and, for a source, its id, because the operator fixing
//! it has only the message and the file in front of them.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use regex::Regex;
use serde::Deserialize;
use url::Url;

mod schedule;

pub use schedule::{Schedule, ScheduleError};

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from; relative paths in it resolve against its folder.
    pub path: PathBuf,
    pub server: ServerConfig,
    pub storage_path: PathBuf,
    pub fetch: FetchConfig,
    pub sources: Vec<SourceConfig>,
    pub export: ExportConfig,
}

/// `[export]`: static export (`tributary export`).
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// The image of posts whose content has none; `{n}` becomes a number (0–9999) derived from
    /// the entry, the same on every export.
    pub placeholder: String,
}

#[derive(Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The address readers use, for self links; when absent the request's Host header is used.
    pub public_url: Option<Url>,
    /// A WebSub hub: feeds name it, and tributary pings it when a feed gains entries.
    pub websub_hub: Option<Url>,
    /// The bearer token of the admin API (`POST /api/sources/{id}/refresh`); when absent the
    /// admin API refuses every request.
    pub admin_token: Option<String>,
}

/// Never prints the admin token.
impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("websub_hub", &self.websub_hub)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The default `[export] placeholder`.
pub const DEFAULT_PLACEHOLDER: &str = "https://picsum.photos/400/300?random={n}";

/// Thresholds, configurable per category. The defaults were tuned on the labeled pairs in
/// `tests/fixtures/dedupe/` (precision and recall are checked there).
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Off: every entry stands alone in the merged feeds (exact identity still applies).
    pub enabled: bool,
    /// Entries further apart in time are never merged.
    pub window_hours: i64,
    /// Bodies shorter than this (flashes, headline-only items) are compared by title.
    pub min_body_chars: usize,
    /// Bodies of at least this many characters are also compared by SimHash.
    pub long_body_chars: usize,
    /// Hamming distance between two long bodies' SimHashes that still means "same text".
    pub simhash_distance: u32,
    /// Share of the shorter body's shingles found in the other (wire copies, trimmed copies).
    pub body_containment: f64,
    /// Rewrites: Jaccard of the bodies' character bigrams ...
    pub rewrite_body_bigrams: f64,
    /// ... and the share of one title's bigrams found in the other's title and lead.
    pub rewrite_title_cover: f64,
    /// Headlines: the share of the short item's title bigrams found in the other's title and
    /// lead.
    pub headline_title_cover: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            enabled: true,
            window_hours: 72,
            min_body_chars: 60,
            long_body_chars: 200,
            simhash_distance: 3,
            body_containment: 0.7,
            rewrite_body_bigrams: 0.2,
            rewrite_title_cover: 0.3,
            headline_title_cover: 0.5,
        }
    }
}

/// The shortest admin token accepted: a short token can be guessed over the network.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

#[derive(Debug, Clone)]
pub struct FetchConfig {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_body_bytes: u64,
    pub max_redirects: usize,
    pub user_agent: String,
    /// Fetches running at once, across all sources.
    pub concurrency: usize,
    /// Requests running at once against one host (feeds and article pages alike).
    pub per_host: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Feed,
    Html,
    Json,
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub id: String,
    pub name: String,
    pub url: Url,
    pub category: String,
    pub tags: Vec<String>,
    pub kind: SourceKind,
    pub enabled: bool,
    pub schedule: Schedule,
    /// Zone of dates written without one (the source's, else `[defaults]`, else UTC).
    pub timezone: Tz,
    /// The zone was named (by the source or `[defaults]`), not the UTC fallback: its naive
    /// dates are read as surely as the config can say.
    pub timezone_named: bool,
    /// Article pages may be fetched from private or loopback addresses.
    pub allow_private: bool,
    /// Hosts besides the source's own that article links may lead to ("*.example.com" allowed,
    /// "*" for any).
    pub article_hosts: Vec<String>,
    pub html: Option<HtmlRules>,
    pub json: Option<JsonRules>,
    pub article: Option<ArticleRules>,
    /// When several sources carry one story, the merged feed shows the copy from the source
    /// with the highest priority (then the earliest).
    pub priority: i64,
    /// Near-duplicate thresholds of the source's category.
    pub dedupe: Thresholds,
    /// Server hints (max-age, ttl, Retry-After) are honoured up to this.
    pub max_interval: Duration,
    /// Failure backoff doubles from the schedule's interval up to this.
    pub max_backoff: Duration,
    /// At most this many items of one fetch are stored: the newest by date, else the first in
    /// document order. Bounds the work (and memory) one huge feed can cause.
    pub max_items: usize,
}

/// `[defaults] max_items` when the config does not say.
pub const DEFAULT_MAX_ITEMS: usize = 1000;

/// A CSS selector with the text it came from, for error messages.
#[derive(Debug, Clone)]
pub struct Sel {
    pub text: String,
    /// "html.item", "article.content": the key, for error messages.
    pub key: &'static str,
    pub selector: scraper::Selector,
}

/// How to read a list page (`kind = "html"`).
#[derive(Debug, Clone)]
pub struct HtmlRules {
    /// One element per entry.
    pub item: Sel,
    /// Text inside the item; the link's text when absent.
    pub title: Option<Sel>,
    /// Its href; the item itself when it is a link and this is absent or matches nothing.
    pub link: Option<Sel>,
    pub date: Option<Sel>,
    pub summary: Option<Sel>,
    pub date_formats: Vec<String>,
    /// Capture group 1 (or the whole match) is the site's document id.
    pub id_pattern: Option<Regex>,
}

/// How to read a JSON list (`kind = "json"`): dot paths into the document and each item.
#[derive(Debug, Clone)]
pub struct JsonRules {
    pub items: String,
    pub title: String,
    pub link: String,
    pub date: Option<String>,
    pub summary: Option<String>,
    pub author: Option<String>,
    pub id: Option<String>,
    pub date_formats: Vec<String>,
    pub id_pattern: Option<Regex>,
}

/// How to read an article page for the full text.
#[derive(Debug, Clone)]
pub struct ArticleRules {
    pub content: Sel,
    pub author: Option<Sel>,
    pub date: Option<Sel>,
    /// Removed from the content before it is kept.
    pub remove: Vec<Sel>,
}

impl SourceConfig {
    /// Formats for naive dates on this source's pages.
    pub fn date_formats(&self) -> &[String] {
        if let Some(h) = &self.html {
            &h.date_formats
        } else if let Some(j) = &self.json {
            &j.date_formats
        } else {
            &[]
        }
    }

    /// The pattern that extracts the site's document id from a link.
    pub fn id_pattern(&self) -> Option<&Regex> {
        self.html
            .as_ref()
            .and_then(|h| h.id_pattern.as_ref())
            .or_else(|| self.json.as_ref().and_then(|j| j.id_pattern.as_ref()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{}: {location}: `{key}`: {message}", path.display())]
    Invalid {
        path: PathBuf,
        /// "[server]", or `source "cs-hg"` for a source.
        location: String,
        key: &'static str,
        message: String,
    },
}

pub const DEFAULT_USER_AGENT: &str = concat!(
    "tributary/",
    env!("CARGO_PKG_VERSION"),
    " (feed aggregator; +https://github.com/tributary-aggregator/tributary)"
);

// The file as written. Unknown keys are errors: a misspelt `schedul` silently ignored is
// worse than a refusal to start.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    fetch: RawFetch,
    #[serde(default)]
    dedupe: RawDedupe,
    #[serde(default)]
    sources: Vec<RawSource>,
    #[serde(default)]
    export: RawExport,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawExport {
    placeholder: Option<String>,
}

/// Near-duplicate thresholds: the defaults, and per-category overrides under
/// `[dedupe.categories."金融"]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDedupe {
    #[serde(flatten)]
    base: RawThresholds,
    #[serde(default)]
    categories: std::collections::BTreeMap<String, RawThresholds>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawThresholds {
    enabled: Option<bool>,
    window_hours: Option<i64>,
    min_body_chars: Option<usize>,
    long_body_chars: Option<usize>,
    simhash_distance: Option<u32>,
    body_containment: Option<f64>,
    rewrite_body_bigrams: Option<f64>,
    rewrite_title_cover: Option<f64>,
    headline_title_cover: Option<f64>,
}

impl RawThresholds {
    /// `self`'s values over `base`'s.
    fn over(&self, base: &Thresholds) -> Thresholds {
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

fn check_thresholds(t: &Thresholds) -> Result<(), String> {
    let ratios = [
        ("body_containment", t.body_containment),
        ("rewrite_body_bigrams", t.rewrite_body_bigrams),
        ("rewrite_title_cover", t.rewrite_title_cover),
        ("headline_title_cover", t.headline_title_cover),
    ];
    if let Some((key, v)) = ratios.iter().find(|(_, v)| !(0.0..=1.0).contains(v)) {
        return Err(format!("{key} = {v} is not between 0 and 1"));
    }
    if t.window_hours <= 0 || t.simhash_distance > 64 {
        return Err("window_hours must be > 0 and simhash_distance at most 64".into());
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default = "default_listen")]
    listen: String,
    public_url: Option<String>,
    admin_token: Option<String>,
    websub_hub: Option<String>,
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

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    #[serde(default = "default_storage_path")]
    path: PathBuf,
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage {
            path: default_storage_path(),
        }
    }
}

fn default_storage_path() -> PathBuf {
    PathBuf::from("data/tributary.db")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    #[serde(default = "default_schedule")]
    schedule: String,
    /// Zone of naive dates on pages.
    #[serde(default)]
    timezone: Option<String>,
    /// Hours; see `SourceConfig::max_backoff`.
    max_backoff_hours: Option<u64>,
    /// Hours; see `SourceConfig::max_interval`.
    max_interval_hours: Option<u64>,
    /// See `SourceConfig::max_items`.
    max_items: Option<usize>,
}

impl Default for RawDefaults {
    fn default() -> Self {
        RawDefaults {
            schedule: default_schedule(),
            timezone: None,
            max_backoff_hours: None,
            max_interval_hours: None,
            max_items: None,
        }
    }
}

fn default_schedule() -> String {
    "every 15m".into()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFetch {
    timeout_secs: Option<u64>,
    connect_timeout_secs: Option<u64>,
    max_body_bytes: Option<u64>,
    max_redirects: Option<usize>,
    user_agent: Option<String>,
    concurrency: Option<usize>,
    per_host: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    id: Option<String>,
    name: Option<String>,
    url: Option<String>,
    category: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    kind: Option<SourceKind>,
    schedule: Option<String>,
    enabled: Option<bool>,
    timezone: Option<String>,
    #[serde(default)]
    allow_private: bool,
    #[serde(default)]
    article_hosts: Vec<String>,
    #[serde(default)]
    priority: i64,
    html: Option<RawHtml>,
    article: Option<RawArticle>,
    json: Option<RawJson>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHtml {
    item: String,
    title: Option<String>,
    link: Option<String>,
    date: Option<String>,
    date_format: Option<OneOrMany>,
    summary: Option<String>,
    id_pattern: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArticle {
    content: String,
    author: Option<String>,
    date: Option<String>,
    #[serde(default)]
    remove: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJson {
    items: String,
    title: String,
    link: String,
    date: Option<String>,
    date_format: Option<OneOrMany>,
    summary: Option<String>,
    author: Option<String>,
    id: Option<String>,
    id_pattern: Option<String>,
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(path, &text)
    }

    /// Validates `text` as if read from `path`.
    pub fn from_toml(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        let invalid = |location: &str, key: &'static str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            location: location.to_string(),
            key,
            message,
        };

        let listen = raw.server.listen.parse::<SocketAddr>().map_err(|e| {
            invalid(
                "[server]",
                "listen",
                format!("{:?} is not an address:port ({e})", raw.server.listen),
            )
        })?;
        let public_url = raw
            .server
            .public_url
            .as_deref()
            .map(|u| {
                Url::parse(u).map_err(|e| invalid("[server]", "public_url", format!("{u:?}: {e}")))
            })
            .transpose()?;
        let websub_hub = raw
            .server
            .websub_hub
            .as_deref()
            .map(|u| {
                Url::parse(u).map_err(|e| invalid("[server]", "websub_hub", format!("{u:?}: {e}")))
            })
            .transpose()?;
        if websub_hub.is_some() && public_url.is_none() {
            return Err(invalid(
                "[server]",
                "websub_hub",
                "needs public_url: the hub is told the feeds' public addresses".into(),
            ));
        }
        let admin_token = raw.server.admin_token.clone();
        if let Some(token) = &admin_token {
            if token.chars().count() < MIN_ADMIN_TOKEN_CHARS
                || token.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(invalid(
                    "[server]",
                    "admin_token",
                    format!(
                        "must be at least {MIN_ADMIN_TOKEN_CHARS} characters with no spaces \
                         (e.g. the output of `openssl rand -hex 32`); leave it out to turn the \
                         admin API off"
                    ),
                ));
            }
        }

        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let storage_path = if raw.storage.path.is_absolute() {
            raw.storage.path.clone()
        } else {
            base.join(&raw.storage.path)
        };

        let default_schedule: Schedule = raw
            .defaults
            .schedule
            .parse()
            .map_err(|e: ScheduleError| invalid("[defaults]", "schedule", e.to_string()))?;
        let default_tz = match &raw.defaults.timezone {
            Some(tz) => parse_timezone(tz).map_err(|m| invalid("[defaults]", "timezone", m))?,
            None => Tz::UTC,
        };

        let f = &raw.fetch;
        let positive = |v: Option<u64>, key: &'static str, default: u64| match v {
            Some(0) => Err(invalid("[fetch]", key, "must be greater than 0".into())),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        let fetch = FetchConfig {
            timeout: Duration::from_secs(positive(f.timeout_secs, "timeout_secs", 30)?),
            connect_timeout: Duration::from_secs(positive(
                f.connect_timeout_secs,
                "connect_timeout_secs",
                10,
            )?),
            max_body_bytes: positive(f.max_body_bytes, "max_body_bytes", 10 * 1024 * 1024)?,
            max_redirects: f.max_redirects.unwrap_or(5),
            user_agent: f
                .user_agent
                .clone()
                .unwrap_or_else(|| DEFAULT_USER_AGENT.to_string()),
            concurrency: positive(f.concurrency.map(|n| n as u64), "concurrency", 8)? as usize,
            per_host: positive(f.per_host.map(|n| n as u64), "per_host", 2)? as usize,
        };

        let dedupe_base = raw.dedupe.base.over(&Thresholds::default());
        check_thresholds(&dedupe_base).map_err(|m| invalid("[dedupe]", "thresholds", m))?;
        let mut dedupe_by_category = std::collections::BTreeMap::new();
        for (category, raw_t) in &raw.dedupe.categories {
            let t = raw_t.over(&dedupe_base);
            check_thresholds(&t).map_err(|m| {
                invalid(
                    &format!("[dedupe.categories.{category:?}]"),
                    "thresholds",
                    m,
                )
            })?;
            dedupe_by_category.insert(category.clone(), t);
        }

        let hours = |v: Option<u64>, key: &'static str| match v {
            Some(0) => Err(invalid("[defaults]", key, "must be greater than 0".into())),
            Some(h) => Ok(Duration::from_secs(h * 3600)),
            None => Ok(Duration::from_secs(24 * 3600)),
        };
        let max_backoff = hours(raw.defaults.max_backoff_hours, "max_backoff_hours")?;
        let max_interval = hours(raw.defaults.max_interval_hours, "max_interval_hours")?;
        let max_items = match raw.defaults.max_items {
            Some(0) => {
                return Err(invalid(
                    "[defaults]",
                    "max_items",
                    "must be greater than 0".into(),
                ))
            }
            Some(n) => n,
            None => DEFAULT_MAX_ITEMS,
        };

        let mut seen = HashSet::new();
        let mut sources = Vec::with_capacity(raw.sources.len());
        for (i, s) in raw.sources.into_iter().enumerate() {
            let at = match &s.id {
                Some(id) => format!("source {id:?}"),
                None => format!("[[sources]] #{}", i + 1),
            };
            let required = |v: Option<String>, key: &'static str| {
                v.filter(|v| !v.trim().is_empty())
                    .ok_or_else(|| invalid(&at, key, "is required".into()))
            };
            let id = required(s.id, "id")?;
            if !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(invalid(&at, "id", "must match [a-z0-9-]+".into()));
            }
            if !seen.insert(id.clone()) {
                return Err(invalid(&at, "id", "is used by another source".into()));
            }
            let name = required(s.name, "name")?;
            let url_text = required(s.url, "url")?;
            let url = Url::parse(&url_text)
                .map_err(|e| invalid(&at, "url", format!("{url_text:?}: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(&at, "url", format!("{url_text:?}: not http(s)")));
            }
            let category = required(s.category, "category")?;
            if category == "all" {
                return Err(invalid(
                    &at,
                    "category",
                    "\"all\" is reserved for the feed of every source".into(),
                ));
            }
            let schedule = match &s.schedule {
                Some(text) => text
                    .parse()
                    .map_err(|e: ScheduleError| invalid(&at, "schedule", e.to_string()))?,
                None => default_schedule.clone(),
            };
            let timezone = match &s.timezone {
                Some(tz) => parse_timezone(tz).map_err(|m| invalid(&at, "timezone", m))?,
                None => default_tz,
            };
            let timezone_named = s.timezone.is_some() || raw.defaults.timezone.is_some();
            let kind = s.kind.unwrap_or(SourceKind::Feed);
            let enabled = s.enabled.unwrap_or(true);
            let sel = |text: &str, key: &'static str| -> Result<Sel, ConfigError> {
                scraper::Selector::parse(text)
                    .map(|selector| Sel {
                        text: text.to_string(),
                        key,
                        selector,
                    })
                    .map_err(|e| invalid(&at, key, format!("bad CSS selector {text:?}: {e}")))
            };
            let opt_sel = |text: &Option<String>, key: &'static str| {
                text.as_deref().map(|t| sel(t, key)).transpose()
            };
            let pattern = |text: &Option<String>, key: &'static str| {
                text.as_deref()
                    .map(|p| {
                        Regex::new(p).map_err(|e| invalid(&at, key, format!("bad regex: {e}")))
                    })
                    .transpose()
            };
            let html = s
                .html
                .as_ref()
                .map(|h| -> Result<HtmlRules, ConfigError> {
                    Ok(HtmlRules {
                        item: sel(&h.item, "html.item")?,
                        title: opt_sel(&h.title, "html.title")?,
                        link: opt_sel(&h.link, "html.link")?,
                        date: opt_sel(&h.date, "html.date")?,
                        summary: opt_sel(&h.summary, "html.summary")?,
                        date_formats: h
                            .date_format
                            .clone()
                            .map(OneOrMany::into_vec)
                            .unwrap_or_default(),
                        id_pattern: pattern(&h.id_pattern, "html.id_pattern")?,
                    })
                })
                .transpose()?;
            let article = s
                .article
                .as_ref()
                .map(|a| -> Result<ArticleRules, ConfigError> {
                    Ok(ArticleRules {
                        content: sel(&a.content, "article.content")?,
                        author: opt_sel(&a.author, "article.author")?,
                        date: opt_sel(&a.date, "article.date")?,
                        remove: a
                            .remove
                            .iter()
                            .map(|r| sel(r, "article.remove"))
                            .collect::<Result<_, _>>()?,
                    })
                })
                .transpose()?;
            let json = s
                .json
                .as_ref()
                .map(|j| -> Result<JsonRules, ConfigError> {
                    Ok(JsonRules {
                        items: j.items.clone(),
                        title: j.title.clone(),
                        link: j.link.clone(),
                        date: j.date.clone(),
                        summary: j.summary.clone(),
                        author: j.author.clone(),
                        id: j.id.clone(),
                        date_formats: j
                            .date_format
                            .clone()
                            .map(OneOrMany::into_vec)
                            .unwrap_or_default(),
                        id_pattern: pattern(&j.id_pattern, "json.id_pattern")?,
                    })
                })
                .transpose()?;
            match kind {
                SourceKind::Html if html.is_none() => {
                    return Err(invalid(&at, "html", "kind = \"html\" needs a [sources.html] table".into()))
                }
                SourceKind::Json if json.is_none() => {
                    return Err(invalid(&at, "json", "kind = \"json\" needs a [sources.json] table".into()))
                }
                SourceKind::Feed if html.is_some() || json.is_some() || article.is_some() => {
                    return Err(invalid(
                        &at,
                        "kind",
                        "[sources.html], [sources.json] and [sources.article] need kind = \"html\" or \"json\"".into(),
                    ))
                }
                _ => {}
            }
            let dedupe = dedupe_by_category
                .get(&category)
                .cloned()
                .unwrap_or_else(|| dedupe_base.clone());
            sources.push(SourceConfig {
                id,
                name,
                url,
                category,
                tags: s.tags,
                kind,
                enabled,
                schedule,
                timezone,
                timezone_named,
                allow_private: s.allow_private,
                article_hosts: s.article_hosts,
                html,
                json,
                article,
                priority: s.priority,
                dedupe,
                max_interval,
                max_backoff,
                max_items,
            });
        }

        let placeholder = raw
            .export
            .placeholder
            .unwrap_or_else(|| DEFAULT_PLACEHOLDER.to_string());
        if placeholder.trim().is_empty() || placeholder.chars().any(char::is_control) {
            return Err(invalid(
                "[export]",
                "placeholder",
                "must be a non-empty image URL on one line (\"{n}\" is replaced by a number)"
                    .into(),
            ));
        }
        let export = ExportConfig { placeholder };

        Ok(Config {
            path: path.to_path_buf(),
            server: ServerConfig {
                listen,
                public_url,
                websub_hub,
                admin_token,
            },
            storage_path,
            fetch,
            sources,
            export,
        })
    }

    pub fn source(&self, id: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.id == id)
    }
}

fn parse_timezone(tz: &str) -> Result<Tz, String> {
    tz.parse::<Tz>()
        .map_err(|_| format!("{tz:?} is not an IANA time zone name like \"Asia/Shanghai\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, String> {
        Config::from_toml(Path::new("/etc/tributary/t.toml"), text).map_err(|e| e.to_string())
    }

    const ONE: &str = r#"
        [[sources]]
        id = "a"
        name = "A"
        url = "https://example.com/feed.xml"
        category = "金融"
    "#;

    #[test]
    fn defaults_apply() {
        let c = load(ONE).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            c.storage_path,
            Path::new("/etc/tributary/data/tributary.db")
        );
        let s = &c.sources[0];
        assert!(s.enabled);
        assert_eq!(s.kind, SourceKind::Feed);
        assert!(matches!(s.schedule, Schedule::Every(d) if d.as_secs() == 900));
        assert_eq!(s.max_items, DEFAULT_MAX_ITEMS);
        let c = load(&format!("[defaults]\nmax_items = 50\n{ONE}")).unwrap();
        assert_eq!(c.sources[0].max_items, 50);
        let e = load(&format!("[defaults]\nmax_items = 0\n{ONE}")).unwrap_err();
        assert!(e.contains("`max_items`"), "{e}");
    }

    #[test]
    fn errors_name_file_key_and_source() {
        let dup = format!("{ONE}{ONE}");
        let e = load(&dup).unwrap_err();
        assert!(e.contains("/etc/tributary/t.toml"), "{e}");
        assert!(e.contains("source \"a\""), "{e}");
        assert!(e.contains("`id`"), "{e}");

        let bad = ONE.replace(
            "category = \"金融\"",
            "category = \"x\"\nschedule = \"every 0s\"",
        );
        let e = load(&bad).unwrap_err();
        assert!(
            e.contains("`schedule`") && e.contains("source \"a\""),
            "{e}"
        );

        let e = load(&ONE.replace("https://example.com/feed.xml", "feed.xml")).unwrap_err();
        assert!(e.contains("`url`"), "{e}");

        let e = load(&ONE.replace("id = \"a\"", "id = \"Bad Id\"")).unwrap_err();
        assert!(e.contains("[a-z0-9-]+"), "{e}");
    }

    #[test]
    fn admin_token_is_optional_long_and_never_printed() {
        assert_eq!(load(ONE).unwrap().server.admin_token, None);
        let with = |token: &str| format!("[server]\nadmin_token = {token:?}\n{ONE}");
        let c = load(&with("0123456789abcdef0123")).unwrap();
        assert_eq!(
            c.server.admin_token.as_deref(),
            Some("0123456789abcdef0123")
        );
        assert!(!format!("{:?}", c.server).contains("0123456789abcdef"));
        for bad in ["", "short", "0123456789 abcdef0123"] {
            let e = load(&with(bad)).unwrap_err();
            assert!(e.contains("`admin_token`") && e.contains("[server]"), "{e}");
        }
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let e = load(&format!("{ONE}\nschedul = \"every 1m\"")).unwrap_err();
        assert!(e.contains("schedul"), "{e}");
    }

    #[test]
    fn page_sources_need_their_rules_and_valid_selectors() {
        let html = ONE.replace("category", "kind = \"html\"\ncategory");
        assert!(load(&html).unwrap_err().contains("`html`"));
        let with_rules = format!("{html}\n[sources.html]\nitem = \"ul > li\"\ndate_format = [\"%Y-%m-%d\", \"%Y年%m月%d日\"]");
        let c = load(&with_rules).unwrap();
        assert_eq!(c.sources[0].date_formats().len(), 2);
        let bad = with_rules.replace("ul > li", "ul >> li[");
        let e = load(&bad).unwrap_err();
        assert!(
            e.contains("`html.item`") && e.contains("source \"a\""),
            "{e}"
        );
        let tz = with_rules.replace("kind", "timezone = \"Mars/Base\"\nkind");
        assert!(load(&tz).unwrap_err().contains("`timezone`"));
    }
}
