//! Reading the file: the TOML as written (`config::raw`), validated into [`Config`], one
//! section at a time. Every error names the file, the section
//! or source, and the key.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chrono_tz::Tz;
use regex::Regex;
use url::Url;

use super::errors;
use super::raw::*;
use super::*;

/// The shortest and longest `[storage] lease_secs`.
const LEASE_SECS: std::ops::RangeInclusive<u64> = 3..=86_400;

pub(super) fn from_toml(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| errors::syntax_error(path, text, &e))?;
    let check = Check { path, text };
    let server = check.server(&raw.server)?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    let storage_path = if raw.storage.path.is_absolute() {
        raw.storage.path.clone()
    } else {
        base.join(&raw.storage.path)
    };
    let storage_url = check.storage_url(&raw.storage)?;
    let fetch = check.fetch(&raw.fetch)?;
    let mut defaults = Defaults {
        dedupe: check.dedupe(&raw.dedupe)?,
        ..check.defaults(&raw.defaults)?
    };
    defaults.categories = check.categories(&raw.categories, defaults.retention)?;
    let mut seen = HashSet::new();
    let mut sources = Vec::with_capacity(raw.sources.len());
    for (i, s) in raw.sources.into_iter().enumerate() {
        let source = check.source(i, s, &defaults)?;
        if !seen.insert(source.id.clone()) {
            let at = format!("source {:?}", source.id);
            return Err(check.invalid(&at, "id", "is used by another source".into()));
        }
        sources.push(std::sync::Arc::new(source));
    }
    let export = check.export(&raw.export)?;
    let rules = RuleLevels {
        global: check.rules(Level::Global, &raw.rules)?,
        categories: raw
            .categories
            .iter()
            .filter_map(|(name, c)| Some((name, c.rules.as_ref()?)))
            .map(|(name, r)| {
                let rules = check.rules(Level::Category(name.clone()), r)?;
                Ok(rules.map(|r| (name.clone(), r)))
            })
            .filter_map(Result::transpose)
            .collect::<Result<_, ConfigError>>()?,
    };
    Ok(Config {
        path: path.to_path_buf(),
        server,
        storage_path,
        storage_url,
        fetch,
        sources,
        export,
        retention: defaults.retention,
        rules,
    })
}

/// What every source takes from `[defaults]` and `[dedupe]` unless it says otherwise.
struct Defaults {
    schedule: Schedule,
    timezone: Tz,
    timezone_named: bool,
    max_backoff: Duration,
    max_interval: Duration,
    max_items: usize,
    /// `[dedupe]`'s thresholds, and each category's.
    dedupe: (Thresholds, BTreeMap<String, Thresholds>),
    /// `[defaults]`' retention.
    retention: Retention,
    /// `[categories."…"]`: each category's retention, over `[defaults]`'.
    categories: BTreeMap<String, Retention>,
}

impl Defaults {
    /// What a source of `category` keeps unless it says otherwise.
    fn retention_of(&self, category: &str) -> Retention {
        self.categories
            .get(category)
            .copied()
            .unwrap_or(self.retention)
    }

    fn dedupe_of(&self, category: &str) -> Thresholds {
        let (base, by_category) = &self.dedupe;
        by_category
            .get(category)
            .cloned()
            .unwrap_or_else(|| base.clone())
    }
}

/// Validation of one file: it knows the path every error names.
struct Check<'a> {
    path: &'a Path,
    /// The file's text, to show the line an error is about.
    text: &'a str,
}

impl Check<'_> {
    fn invalid(&self, location: &str, key: &'static str, message: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            location: location.to_string(),
            key,
            message,
            snippet: errors::snippet(self.text, location, key),
        }
    }

    fn url(&self, text: Option<&str>, key: &'static str) -> Result<Option<Url>, ConfigError> {
        text.map(|u| {
            Url::parse(u).map_err(|e| self.invalid("[server]", key, format!("{u:?}: {e}")))
        })
        .transpose()
    }

    fn server(&self, raw: &RawServer) -> Result<ServerConfig, ConfigError> {
        let listen =
            listen_address(&raw.listen).map_err(|why| self.invalid("[server]", "listen", why))?;
        let public_url = self.url(raw.public_url.as_deref(), "public_url")?;
        let websub_hub = self.url(raw.websub_hub.as_deref(), "websub_hub")?;
        if websub_hub.is_some() && public_url.is_none() {
            return Err(self.invalid(
                "[server]",
                "websub_hub",
                "needs public_url: the hub is told the feeds' public addresses".into(),
            ));
        }
        let admin_token = raw.admin_token.clone();
        if let Some(token) = &admin_token {
            if token.chars().count() < MIN_ADMIN_TOKEN_CHARS
                || token.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(self.invalid(
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
        Ok(ServerConfig {
            listen,
            public_url,
            websub_hub,
            admin_token,
        })
    }

    /// `[storage] url`: a PostgreSQL URL (its line never shown: it may hold a password).
    fn storage_url(&self, raw: &RawStorage) -> Result<Option<StorageUrl>, ConfigError> {
        let Some(url) = &raw.url else {
            return Ok(None);
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(self.invalid(
                "[storage]",
                "url",
                "must be a PostgreSQL URL (postgres://user@host/database); an SQLite store \
                 is named by `path`"
                    .into(),
            ));
        }
        if raw.connections == 0 {
            return Err(self.invalid("[storage]", "connections", "must be greater than 0".into()));
        }
        // Renewed every third of it while the instance runs: shorter would renew more often
        // than a busy database answers.
        if !LEASE_SECS.contains(&raw.lease_secs) {
            return Err(self.invalid(
                "[storage]",
                "lease_secs",
                format!(
                    "must be at least {} and at most {} (a day)",
                    LEASE_SECS.start(),
                    LEASE_SECS.end()
                ),
            ));
        }
        Ok(Some(StorageUrl {
            url: url.clone(),
            connections: raw.connections,
            lease: std::time::Duration::from_secs(raw.lease_secs),
        }))
    }

    fn fetch(&self, f: &RawFetch) -> Result<FetchConfig, ConfigError> {
        let positive = |v: Option<u64>, key: &'static str, default: u64| match v {
            Some(0) => Err(self.invalid("[fetch]", key, "must be greater than 0".into())),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        Ok(FetchConfig {
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
        })
    }

    fn dedupe(
        &self,
        raw: &RawDedupe,
    ) -> Result<(Thresholds, BTreeMap<String, Thresholds>), ConfigError> {
        let base = raw.base.over(&Thresholds::default());
        check_thresholds(&base).map_err(|m| self.invalid("[dedupe]", "thresholds", m))?;
        let mut by_category = BTreeMap::new();
        for (category, raw_t) in &raw.categories {
            let t = raw_t.over(&base);
            check_thresholds(&t).map_err(|m| {
                self.invalid(
                    &format!("[dedupe.categories.{category:?}]"),
                    "thresholds",
                    m,
                )
            })?;
            by_category.insert(category.clone(), t);
        }
        Ok((base, by_category))
    }

    fn defaults(&self, raw: &RawDefaults) -> Result<Defaults, ConfigError> {
        let schedule: Schedule = raw
            .schedule
            .parse()
            .map_err(|e: ScheduleError| self.invalid("[defaults]", "schedule", e.to_string()))?;
        let timezone = match &raw.timezone {
            Some(tz) => {
                parse_timezone(tz).map_err(|m| self.invalid("[defaults]", "timezone", m))?
            }
            None => Tz::UTC,
        };
        let hours = |v: Option<u64>, key: &'static str| match v {
            Some(0) => Err(self.invalid("[defaults]", key, "must be greater than 0".into())),
            Some(h) => Ok(Duration::from_secs(h * 3600)),
            None => Ok(Duration::from_secs(24 * 3600)),
        };
        let max_items = match raw.max_items {
            Some(0) => {
                return Err(self.invalid(
                    "[defaults]",
                    "max_items",
                    "must be greater than 0".into(),
                ))
            }
            Some(n) => n,
            None => DEFAULT_MAX_ITEMS,
        };
        Ok(Defaults {
            schedule,
            timezone,
            timezone_named: raw.timezone.is_some(),
            max_backoff: hours(raw.max_backoff_hours, "max_backoff_hours")?,
            max_interval: hours(raw.max_interval_hours, "max_interval_hours")?,
            max_items,
            dedupe: Default::default(),
            retention: self.retention("[defaults]", raw.keep(), Retention::default())?,
            categories: BTreeMap::new(),
        })
    }

    /// `keep_days` and `keep_entries` as written at `at`, over `base`.
    fn retention(
        &self,
        at: &str,
        raw: RawRetention<'_>,
        base: Retention,
    ) -> Result<Retention, ConfigError> {
        let limit = |v: &Option<RawLimit>, key: &'static str, base: Option<u32>| match v {
            None => Ok(base),
            Some(v) => limit_value(v).map_err(|why| self.invalid(at, key, why)),
        };
        Ok(Retention {
            keep_days: limit(raw.keep_days, "keep_days", base.keep_days)?,
            keep_entries: limit(raw.keep_entries, "keep_entries", base.keep_entries)?,
        })
    }

    /// `[categories."金融"]`: what a category's sources take unless they say otherwise.
    fn categories(
        &self,
        raw: &BTreeMap<String, RawCategory>,
        base: Retention,
    ) -> Result<BTreeMap<String, Retention>, ConfigError> {
        raw.iter()
            .map(|(name, c)| {
                let at = format!("[categories.{name:?}]");
                let keep = RawRetention {
                    keep_days: &c.keep_days,
                    keep_entries: &c.keep_entries,
                };
                Ok((name.clone(), self.retention(&at, keep, base)?))
            })
            .collect()
    }

    /// The `i`th `[[sources]]` table, with what it does not say taken from `defaults`.
    fn source(
        &self,
        i: usize,
        s: RawSource,
        defaults: &Defaults,
    ) -> Result<SourceConfig, ConfigError> {
        let at = match &s.id {
            Some(id) => format!("source {id:?}"),
            None => format!("[[sources]] #{}", i + 1),
        };
        let required = |v: Option<String>, key: &'static str| {
            v.filter(|v| !v.trim().is_empty())
                .ok_or_else(|| self.invalid(&at, key, "is required".into()))
        };
        let id = required(s.id.clone(), "id")?;
        if !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(self.invalid(&at, "id", "must match [a-z0-9-]+".into()));
        }
        let name = required(s.name.clone(), "name")?;
        let url_text = required(s.url.clone(), "url")?;
        let url = Url::parse(&url_text).map_err(|e| {
            let why = match e {
                url::ParseError::RelativeUrlWithoutBase => {
                    format!("`{url_text}` has no scheme; did you mean `https://{url_text}`?")
                }
                e => format!("{url_text:?}: {e}"),
            };
            self.invalid(&at, "url", why)
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(self.invalid(&at, "url", format!("{url_text:?}: not http(s)")));
        }
        let category = required(s.category.clone(), "category")?;
        if category == "all" {
            return Err(self.invalid(
                &at,
                "category",
                "\"all\" is reserved for the feed of every source".into(),
            ));
        }
        let schedule = match &s.schedule {
            Some(text) => text
                .parse()
                .map_err(|e: ScheduleError| self.invalid(&at, "schedule", e.to_string()))?,
            None => defaults.schedule.clone(),
        };
        let timezone = match &s.timezone {
            Some(tz) => parse_timezone(tz).map_err(|m| self.invalid(&at, "timezone", m))?,
            None => defaults.timezone,
        };
        let kind = s.kind.unwrap_or(SourceKind::Feed);
        let rules = Extraction {
            check: self,
            at: &at,
        };
        let html = s.html.as_ref().map(|h| rules.html(h)).transpose()?;
        let article = s.article.as_ref().map(|a| rules.article(a)).transpose()?;
        let json = s.json.as_ref().map(|j| rules.json(j)).transpose()?;
        self.kind_fits(
            &at,
            kind,
            [html.is_some(), json.is_some(), article.is_some()],
        )?;
        let retention = self.retention(&at, s.keep(), defaults.retention_of(&category))?;
        let source_rules = s
            .rules
            .as_ref()
            .map(|r| self.rules(Level::Source(id.clone()), r));
        let dedupe = defaults.dedupe_of(&category);
        Ok(SourceConfig {
            id,
            name,
            url,
            category,
            tags: s.tags,
            kind,
            enabled: s.enabled.unwrap_or(true),
            schedule,
            timezone,
            timezone_named: s.timezone.is_some() || defaults.timezone_named,
            allow_private: s.allow_private,
            article_hosts: s.article_hosts,
            html: html.map(Box::new),
            json: json.map(Box::new),
            article: article.map(Box::new),
            priority: s.priority,
            dedupe,
            max_interval: defaults.max_interval,
            max_backoff: defaults.max_backoff,
            max_items: defaults.max_items,
            retention,
            rules: source_rules.transpose()?.flatten(),
        })
    }

    /// A page source has the table that reads its pages, a feed none: `tables` says whether
    /// `[sources.html]`, `[sources.json]` and `[sources.article]` are there.
    fn kind_fits(&self, at: &str, kind: SourceKind, tables: [bool; 3]) -> Result<(), ConfigError> {
        let [html, json, article] = tables;
        match kind {
            SourceKind::Html if !html => Err(self.invalid(
                at,
                "html",
                "kind = \"html\" needs a [sources.html] table".into(),
            )),
            SourceKind::Json if !json => Err(self.invalid(
                at,
                "json",
                "kind = \"json\" needs a [sources.json] table".into(),
            )),
            SourceKind::Feed if html || json || article => Err(self.invalid(
                at,
                "kind",
                "[sources.html], [sources.json] and [sources.article] need kind = \"html\" or \"json\"".into(),
            )),
            _ => Ok(()),
        }
    }

    /// One level of rules, checked and compiled; None when it has none.
    fn rules(
        &self,
        level: Level,
        raw: &RawRules,
    ) -> Result<Option<std::sync::Arc<super::Rules>>, ConfigError> {
        // Errors are placed where `errors::snippet` finds the key: the table's header, or
        // the source's `[sources.rules]`.
        let (location, prefixed) = match &level {
            Level::Source(id) => (format!("source {id:?}"), true),
            other => (other.to_string(), false),
        };
        let sel = |text: &str| {
            scraper::Selector::parse(text)
                .map(|selector| Sel {
                    text: text.to_string(),
                    key: "rules.remove",
                    selector,
                })
                .map_err(|e| {
                    let why = errors::selector_problem(&e);
                    format!("bad CSS selector {text:?}: {why}")
                })
        };
        let rules = super::rules::compile(level, raw, &sel).map_err(|p| {
            let key = match (prefixed, p.key) {
                (false, k) => k,
                (true, "keep") => "rules.keep",
                (true, "block") => "rules.block",
                (true, "rewrite") => "rules.rewrite",
                (true, _) => "rules.remove",
            };
            self.invalid(&location, key, p.message)
        })?;
        Ok((!rules.is_empty()).then(|| std::sync::Arc::new(rules)))
    }

    fn export(&self, raw: &RawExport) -> Result<ExportConfig, ConfigError> {
        let placeholder = raw
            .placeholder
            .clone()
            .unwrap_or_else(|| DEFAULT_PLACEHOLDER.to_string());
        if placeholder.trim().is_empty() || placeholder.chars().any(char::is_control) {
            return Err(self.invalid(
                "[export]",
                "placeholder",
                "must be a non-empty image URL on one line (\"{n}\" is replaced by a number)"
                    .into(),
            ));
        }
        Ok(ExportConfig { placeholder })
    }
}

/// `[server] listen`: an address and port, or `localhost:PORT` (the loopback address, as
/// RFC 6761 says `localhost` always is: no lookup needed). Other names are refused rather
/// than looked up, so the address the daemon binds never depends on a resolver.
fn listen_address(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        return port
            .parse::<u16>()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .map_err(|_| format!("{text:?}: the port must be a number from 0 to 65535"));
    }
    Err(format!(
        "{text:?} is not an address:port (an IP address, `localhost:PORT`, or `0.0.0.0:PORT` \
         for every interface)"
    ))
}

/// The extraction rules of one source: its selectors and patterns, each checked.
struct Extraction<'a> {
    check: &'a Check<'a>,
    at: &'a str,
}

impl Extraction<'_> {
    fn sel(&self, text: &str, key: &'static str) -> Result<Sel, ConfigError> {
        scraper::Selector::parse(text)
            .map(|selector| Sel {
                text: text.to_string(),
                key,
                selector,
            })
            .map_err(|e| {
                let why = errors::selector_problem(&e);
                self.check
                    .invalid(self.at, key, format!("bad CSS selector {text:?}: {why}"))
            })
    }

    fn opt_sel(
        &self,
        text: &Option<String>,
        key: &'static str,
    ) -> Result<Option<Sel>, ConfigError> {
        text.as_deref().map(|t| self.sel(t, key)).transpose()
    }

    fn pattern(
        &self,
        text: &Option<String>,
        key: &'static str,
    ) -> Result<Option<Regex>, ConfigError> {
        text.as_deref()
            .map(|p| {
                Regex::new(p)
                    .map_err(|e| self.check.invalid(self.at, key, format!("bad regex: {e}")))
            })
            .transpose()
    }

    fn html(&self, h: &RawHtml) -> Result<HtmlRules, ConfigError> {
        Ok(HtmlRules {
            item: self.sel(&h.item, "html.item")?,
            title: self.opt_sel(&h.title, "html.title")?,
            link: self.opt_sel(&h.link, "html.link")?,
            date: self.opt_sel(&h.date, "html.date")?,
            summary: self.opt_sel(&h.summary, "html.summary")?,
            date_formats: h
                .date_format
                .clone()
                .map(OneOrMany::into_vec)
                .unwrap_or_default(),
            id_pattern: self.pattern(&h.id_pattern, "html.id_pattern")?,
        })
    }

    fn article(&self, a: &RawArticle) -> Result<ArticleRules, ConfigError> {
        Ok(ArticleRules {
            content: self.sel(&a.content, "article.content")?,
            author: self.opt_sel(&a.author, "article.author")?,
            date: self.opt_sel(&a.date, "article.date")?,
            remove: a
                .remove
                .iter()
                .map(|r| self.sel(r, "article.remove"))
                .collect::<Result<_, _>>()?,
        })
    }

    fn json(&self, j: &RawJson) -> Result<JsonRules, ConfigError> {
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
            id_pattern: self.pattern(&j.id_pattern, "json.id_pattern")?,
        })
    }
}

fn limit_value(v: &RawLimit) -> Result<Option<u32>, String> {
    match v {
        toml::Value::Integer(n) if *n >= 1 => Ok(Some(
            u32::try_from(*n).map_err(|_| format!("{n} is too large"))?,
        )),
        toml::Value::String(w) if w == "forever" => Ok(None),
        other => Err(format!(
            "{other}: must be a whole number (at least 1), or \"forever\" for no limit"
        )),
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

fn parse_timezone(tz: &str) -> Result<Tz, String> {
    tz.parse::<Tz>()
        .map_err(|_| format!("{tz:?} is not an IANA time zone name like \"Asia/Shanghai\""))
}
