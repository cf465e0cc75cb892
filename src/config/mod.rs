//! The configuration file: TOML read with serde, then validated into typed values before
//! anything runs.
//!
//! Every error names the file, the key and, for a source, its id, because the operator fixing
//! it has only the message and the file in front of them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use regex::Regex;
use serde::Deserialize;
use url::Url;

mod errors;
mod load;
mod raw;
mod rules;
mod schedule;

pub use rules::{
    Condition, Field, Level, Matched, Pattern, Rewrite, RewriteField, Rules, MAX_PATTERN_CHARS,
    REGEX_SIZE_LIMIT,
};
pub use schedule::{Schedule, ScheduleError};

/// A PostgreSQL store's address, how many connections to it at once, and how long an
/// instance's claim on a fetch lasts unless it renews it (what a crash holds sources for).
#[derive(Clone, PartialEq, Eq)]
pub struct StorageUrl {
    pub url: String,
    pub connections: usize,
    pub lease: std::time::Duration,
}

impl StorageUrl {
    /// The URL with its password (if any) left out: what messages and logs show.
    pub fn redacted(&self) -> String {
        redact_url(&self.url)
    }
}

/// A PostgreSQL URL with its password (if any) left out.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((auth, host)) => (auth, host),
        None => return format!("{scheme}://{}", without_password_parameter(rest)),
    };
    let user = auth.split_once(':').map_or(auth, |(user, _)| user);
    let hidden = if user.len() < auth.len() { ":…" } else { "" };
    format!(
        "{scheme}://{user}{hidden}@{}",
        without_password_parameter(host)
    )
}

/// `host/db?…` with a `password=` parameter's value left out.
fn without_password_parameter(rest: &str) -> String {
    let Some((path, query)) = rest.split_once('?') else {
        return rest.to_string();
    };
    let query: Vec<&str> = query
        .split('&')
        .map(|p| {
            if p.starts_with("password=") {
                "password=…"
            } else {
                p
            }
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

impl std::fmt::Debug for StorageUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageUrl")
            .field("url", &self.redacted())
            .field("connections", &self.connections)
            .field("lease", &self.lease)
            .finish()
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from; relative paths in it resolve against its folder.
    pub path: PathBuf,
    pub server: ServerConfig,
    pub storage_path: PathBuf,
    /// `[storage] url`: the PostgreSQL store used instead of `storage_path`'s SQLite file.
    pub storage_url: Option<StorageUrl>,
    pub fetch: FetchConfig,
    pub sources: Vec<std::sync::Arc<SourceConfig>>,
    pub export: ExportConfig,
    /// The retention of entries whose source left the config (`[defaults]`'s).
    pub retention: Retention,
    /// `[rules]` and each category's; a source's own are on the source.
    pub rules: RuleLevels,
}

/// The rules above the sources: global, and per category (levels with no rule left out).
#[derive(Debug, Clone, Default)]
pub struct RuleLevels {
    pub global: Option<std::sync::Arc<Rules>>,
    pub categories: std::collections::BTreeMap<String, std::sync::Arc<Rules>>,
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
    // Boxed: most sources are feeds with none of these, and a source's config is copied into
    // its task (at 100 k sources, 66 MB a copy inline).
    pub html: Option<Box<HtmlRules>>,
    pub json: Option<Box<JsonRules>>,
    pub article: Option<Box<ArticleRules>>,
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
    /// How long its entries are kept (the source's keys, else its category's, else
    /// `[defaults]`).
    pub retention: Retention,
    /// `[sources.rules]`: the source's own rules (the global and its category's are in
    /// `Config::rules`).
    pub rules: Option<std::sync::Arc<Rules>>,
}

/// How long a source's entries are kept: at most `keep_days` after their date, and at most
/// its `keep_entries` newest; None: no such limit. An entry the source's latest fetch still
/// listed is kept either way (see `store::retention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub keep_days: Option<u32>,
    pub keep_entries: Option<u32>,
}

/// `[defaults] keep_days` when the config does not say: half a year, as Miniflux and FreshRSS
/// keep by default about that long or less.
pub const DEFAULT_KEEP_DAYS: u32 = 180;

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_days: Some(DEFAULT_KEEP_DAYS),
            keep_entries: None,
        }
    }
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
    #[error("{}: no such file; name the config with --config FILE or $TRIBUTARY_CONFIG (a checkout ships config/tributary.toml to start from)", path.display())]
    Missing { path: PathBuf },
    #[error("{}: cannot read", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{}: {location}: `{key}`: {message}{snippet}", path.display())]
    Invalid {
        path: PathBuf,
        /// "[server]", or `source "cs-hg"` for a source.
        location: String,
        key: &'static str,
        message: String,
        /// The file's own line with the key, under the message (empty when it is not found:
        /// a key left out, or a default).
        snippet: String,
    },
}

pub const DEFAULT_USER_AGENT: &str = concat!(
    "tributary/",
    env!("CARGO_PKG_VERSION"),
    " (feed aggregator; +https://github.com/tributary-aggregator/tributary)"
);

impl Config {
    /// The store as messages name it: the SQLite file, or the PostgreSQL URL without its
    /// password.
    pub fn storage_name(&self) -> String {
        match &self.storage_url {
            Some(url) => url.redacted(),
            None => self.storage_path.display().to_string(),
        }
    }

    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ConfigError::Missing {
                path: path.to_path_buf(),
            },
            _ => ConfigError::Read {
                path: path.to_path_buf(),
                source,
            },
        })?;
        Config::from_toml(path, &text)
    }

    /// Validates `text` as if read from `path`.
    pub fn from_toml(path: &Path, text: &str) -> Result<Config, ConfigError> {
        load::from_toml(path, text)
    }

    pub fn source(&self, id: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.id == id).map(|s| &**s)
    }
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
    fn a_postgres_url_names_the_store_and_its_password_is_never_shown() {
        let text = format!(
            "[storage]\nurl = \"postgres://feeds:s3cret@db.example:5432/tributary\"\n{ONE}"
        );
        let c = Config::from_toml(Path::new("/etc/tributary/t.toml"), &text).expect("loads");
        let url = c.storage_url.as_ref().expect("a url");
        assert_eq!(url.connections, 8);
        assert_eq!(url.lease, std::time::Duration::from_secs(120));
        assert_eq!(
            c.storage_name(),
            "postgres://feeds:…@db.example:5432/tributary"
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        let query = StorageUrl {
            url: "postgres://db.example/tributary?user=feeds&password=s3cret".into(),
            connections: 1,
            lease: std::time::Duration::from_secs(60),
        };
        assert_eq!(
            query.redacted(),
            "postgres://db.example/tributary?user=feeds&password=…"
        );
        let broken = "[storage]\nurl = \"postgres://feeds:s3\\qcret@db/x\"\n";
        let e = Config::from_toml(Path::new("t.toml"), broken).expect_err("bad escape");
        assert!(!format!("{e}").contains("s3"), "{e}");
        let bad = "[storage]\nurl = \"mysql://feeds:s3cret@db/x\"\n".to_string() + ONE;
        let e = Config::from_toml(Path::new("t.toml"), &bad).expect_err("refused");
        let shown = format!("{e}");
        assert!(shown.contains("must be a PostgreSQL URL"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        let short = "[storage]\nurl = \"postgres://db/x\"\nlease_secs = 2\n".to_string() + ONE;
        let e = Config::from_toml(Path::new("t.toml"), &short).expect_err("refused");
        assert!(
            format!("{e}").contains("`lease_secs`: must be at least 3 and at most 86400"),
            "{e}"
        );
    }

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
    fn retention_comes_from_the_source_then_its_category_then_defaults() {
        let c = load(ONE).unwrap();
        assert_eq!(c.sources[0].retention, Retention::default());
        assert_eq!(c.retention.keep_days, Some(DEFAULT_KEEP_DAYS));
        let text = format!(
            "[defaults]\nkeep_days = 30\n[categories.\"金融\"]\nkeep_entries = 500\n\
             [categories.\"科技\"]\nkeep_days = \"forever\"\n{ONE}{}",
            ONE.replace("\"a\"", "\"b\"")
                .replace("金融", "科技")
                .replace("category", "keep_entries = 7\ncategory")
        );
        let c = load(&text).unwrap();
        let keep = |i: usize| {
            (
                c.sources[i].retention.keep_days,
                c.sources[i].retention.keep_entries,
            )
        };
        assert_eq!(keep(0), (Some(30), Some(500)));
        assert_eq!(keep(1), (None, Some(7)));
        assert_eq!(c.retention.keep_days, Some(30));
        for bad in ["0", "-3", "\"never\"", "1.5"] {
            let e = load(&format!("[defaults]\nkeep_days = {bad}\n{ONE}")).unwrap_err();
            assert!(e.contains("keep_days"), "{bad}: {e}");
        }
        let e = load(&format!("[categories.\"金融\"]\nkeep_day = 3\n{ONE}")).unwrap_err();
        assert!(e.contains("keep_day"), "{e}");
        let e = load(&format!("[defaults]\nkeep_entrys = 3\n{ONE}")).unwrap_err();
        assert!(e.contains("keep_entrys"), "{e}");
        let e = load(&format!("{ONE}keep_days = 0\n")).unwrap_err();
        assert!(
            e.contains("source \"a\"") && e.contains("`keep_days`"),
            "{e}"
        );
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
