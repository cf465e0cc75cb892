//! One source through the pipeline: fetch → decode → parse → (article pages) → normalize →
//! store.
//!
//! `tributary fetch` and the daemon call the same [`refresh_source`], so what a one-off run
//! reports is what the daemon does; `tributary check` runs the same reading steps without the
//! store ([`check_source`]). A failure is recorded on the source and returned as a report; it
//! never touches stored entries and never stops another source.

mod claim;
mod discover;

pub use claim::{claim, renew_claims, unclaim};
pub use discover::{discover, DiscoverError, Discovery, COMMON_PATHS};

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use url::Url;

use crate::config::{SourceConfig, SourceKind};
use crate::decode::{self, Provenance};
use crate::fetch::{self, Access, FetchError, FetchOutcome, Fetcher};
use crate::health::Seen;
use crate::metrics;
use crate::model::{Entry, Validators};
use crate::normalize::{self, Context};
use crate::parse::{self, ParseError, ParsedFeed, ParsedItem};
use crate::politeness::{self, NextCheckHints, Politeness};
use crate::store::{ArticleNeed, FetchRecord, Store, StoreError, StoreFetch, UpsertCounts};

/// `check` reads at most this many article pages: enough to see the selectors work without
/// crawling a whole channel.
pub const CHECK_ARTICLES: usize = 20;

/// What happened to one source.
#[derive(Debug)]
pub struct RefreshReport {
    pub source_id: String,
    pub url: String,
    pub outcome: Result<Refreshed, RefreshError>,
    pub bytes: usize,
    pub duration: Duration,
    /// Problems that did not fail the source (an article page that could not be read).
    pub warnings: Vec<String>,
    /// What the server and the feed said about the next check.
    pub hints: NextCheckHints,
    /// When the source is to be fetched again, as saved in the store (`None`: not saved).
    pub next_run: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    Stored(UpsertCounts),
    NotModified,
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Task(String),
}

impl RefreshReport {
    /// The one line `fetch` prints for this source.
    pub fn summary_line(&self) -> String {
        let ms = self.duration.as_millis();
        match &self.outcome {
            Ok(Refreshed::Stored(c)) => format!(
                "{}: ok new={} updated={} unchanged={} ({ms} ms)",
                self.source_id, c.new, c.updated, c.unchanged
            ),
            Ok(Refreshed::NotModified) => format!("{}: not modified ({ms} ms)", self.source_id),
            Err(e) => format!("{}: error: {e} ({})", self.source_id, self.url),
        }
    }
}

/// Fetches, reads and stores one source, records the outcome on the source, and plans its
/// next run (and a host's Retry-After). The caller then logs the fetch's one line with
/// [`RefreshReport::log`], once it has done what follows (a WebSub ping): so once the line is
/// out, everything the fetch did can be seen.
pub async fn refresh_source(
    fetcher: &Fetcher,
    store: &Arc<Store>,
    source: &SourceConfig,
) -> RefreshReport {
    let started = Instant::now();
    let mut bytes = 0;
    let mut warnings = Vec::new();
    let mut hints = NextCheckHints::default();
    let mut url = source.url.clone();
    let outcome = run(
        fetcher,
        store,
        source,
        &mut url,
        &mut bytes,
        &mut warnings,
        &mut hints,
    )
    .await;
    let mut report = RefreshReport {
        source_id: source.id.clone(),
        url: url.to_string(),
        outcome,
        bytes,
        duration: started.elapsed(),
        warnings,
        hints,
        next_run: None,
    };
    match schedule_next(store, source, &report.hints).await {
        Ok(next) => report.next_run = Some(next),
        Err(e) => tracing::error!(source = %source.id, error = %e, "cannot save the next run"),
    }
    report
}

async fn run(
    fetcher: &Fetcher,
    store: &Arc<Store>,
    source: &SourceConfig,
    url: &mut Url,
    bytes: &mut usize,
    warnings: &mut Vec<String>,
    hints: &mut NextCheckHints,
) -> Result<Refreshed, RefreshError> {
    let id = source.id.clone();
    let state = blocking(store, move |s| s.source_state(&id)).await?;
    if let Some(moved) = state.moved_to.as_deref().and_then(|u| Url::parse(u).ok()) {
        *url = moved;
    }
    // An article page that failed is retried with the list it came from: that list is then
    // asked for whole, since a 304 would leave the entry waiting until the list changes.
    let retry_articles = source.article.is_some() && {
        let id = source.id.clone();
        blocking(store, move |s| s.articles_pending(&id)).await?
    };
    let validators = if retry_articles {
        crate::model::Validators::default()
    } else {
        state.validators.clone()
    };
    let fetched = fetcher.get(url, &validators).await;
    let now = Utc::now();
    let mut fetched = match fetched {
        Ok(FetchOutcome::NotModified(validators, fetch_hints)) => {
            hints.fresh_for = fetch_hints.cache_for;
            remember_move(store, source, url, fetch_hints.moved_to).await?;
            let rec = Recorded {
                status: "not modified",
                error: None,
                validators: Some(validators),
                seen: None,
            };
            record(store, source, now, rec).await?;
            return Ok(Refreshed::NotModified);
        }
        Ok(FetchOutcome::Fetched(f)) => f,
        Err(e) => {
            if let FetchError::Status {
                status,
                retry_after,
            } = &e
            {
                if matches!(status.as_u16(), 429 | 503) {
                    hints.retry_after = *retry_after;
                }
                if status.as_u16() == 410 {
                    hints.gone = true;
                    let (id, reason) = (source.id.clone(), format!("{e} from {url}"));
                    blocking(store, move |s| s.disable_source(&id, &reason)).await?;
                }
            }
            return Err(record_failure(store, source, now, e.into()).await);
        }
    };
    *bytes = fetched.body.len();
    let body = std::mem::take(&mut fetched.body);
    hints.fresh_for = fetched.hints.cache_for;
    remember_move(store, source, url, fetched.hints.moved_to.clone()).await?;

    let read = {
        let (source, url, content_type) = (
            source.clone(),
            fetched.url.clone(),
            fetched.content_type.clone(),
        );
        on_cpu(move || read_document(&source, &url, content_type.as_deref(), body)).await?
    };
    let (mut feed, _) = match read {
        Ok(read) => read,
        Err(e) => return Err(record_failure(store, source, now, e.into()).await),
    };
    warnings.append(&mut feed.warnings);
    hints.fresh_for = hints.fresh_for.max(feed.ttl);

    if source.article.is_some() {
        let keys = identity_keys(source, &fetched.url, &feed.items, now);
        let id = source.id.clone();
        let needs = blocking(store, move |s| s.article_needs(&id, &keys)).await?;
        let wanted: Vec<bool> = needs.iter().map(|n| *n != ArticleNeed::Done).collect();
        let mut article_warnings =
            fetch_articles(fetcher, source, &fetched.url, &mut feed, &wanted).await;
        warnings.append(&mut article_warnings);
    }

    let entries = {
        let (source, url, items) = (source.clone(), fetched.url.clone(), feed.items);
        on_cpu(move || normalize_items(&source, &url, items, now)).await?
    };

    let fetch = StoreFetch {
        source_id: source.id.clone(),
        seen: Seen::of(&entries, scraped(source)),
        entries,
        thresholds: source.dedupe.clone(),
        now,
        validators: fetched.validators,
    };
    let counts = blocking(store, move |s| s.store_fetch(fetch)).await?;
    Ok(Refreshed::Stored(counts))
}

/// What `tributary check` shows: the entries as they would be stored, and how the page was
/// read.
#[derive(Debug)]
pub struct CheckReport {
    pub url: Url,
    /// The feed's (or page's) own title.
    pub title: Option<String>,
    pub encoding: &'static str,
    pub provenance: Provenance,
    pub entries: Vec<Entry>,
    pub warnings: Vec<String>,
    pub articles_read: usize,
}

/// Reads a source (or `url` with its rules) like a refresh would, fetching the article pages
/// of the first [`CHECK_ARTICLES`] items, and stores nothing.
pub async fn check_source(
    fetcher: &Fetcher,
    source: &SourceConfig,
    url: Option<&Url>,
) -> Result<CheckReport, RefreshError> {
    let url = url.unwrap_or(&source.url);
    let mut fetched = match fetcher.get(url, &Validators::default()).await? {
        FetchOutcome::Fetched(f) => f,
        // No validators were sent, so a 304 is the server's mistake.
        FetchOutcome::NotModified(..) => {
            return Err(FetchError::Other("304 Not Modified to an unconditional GET".into()).into())
        }
    };
    let body = std::mem::take(&mut fetched.body);
    let (mut feed, (encoding, provenance, had_errors)) =
        read_document(source, &fetched.url, fetched.content_type.as_deref(), body)?;
    let mut warnings = std::mem::take(&mut feed.warnings);
    if had_errors {
        warnings.push(format!(
            "the page has bytes that are not valid {} ({provenance}): they show as U+FFFD",
            encoding
        ));
    }
    let mut articles_read = 0;
    if source.article.is_some() {
        let wanted: Vec<bool> = (0..feed.items.len()).map(|i| i < CHECK_ARTICLES).collect();
        warnings.extend(fetch_articles(fetcher, source, &fetched.url, &mut feed, &wanted).await);
        articles_read = feed.items.iter().filter(|i| i.article.is_some()).count();
    }
    let entries = normalize_items(source, &fetched.url, feed.items, Utc::now());
    Ok(CheckReport {
        url: fetched.url,
        title: feed.title,
        encoding,
        provenance,
        entries,
        warnings,
        articles_read,
    })
}

/// A permanent redirect moves the source: later fetches go straight to the new URL.
async fn remember_move(
    store: &Arc<Store>,
    source: &SourceConfig,
    url: &mut Url,
    moved_to: Option<Url>,
) -> Result<(), RefreshError> {
    let Some(moved) = moved_to else {
        return Ok(());
    };
    tracing::info!(source = %source.id, from = %url, to = %moved, "feed moved permanently");
    *url = moved.clone();
    let id = source.id.clone();
    blocking(store, move |s| s.set_moved_to(&id, moved.as_str())).await
}

/// Normalizes a document's items as read from `base` (links resolve against it).
pub fn normalize_items(
    source: &SourceConfig,
    base: &Url,
    items: Vec<ParsedItem>,
    now: DateTime<Utc>,
) -> Vec<Entry> {
    let ctx = context(source, base, now);
    items
        .into_iter()
        .map(|item| normalize::normalize(&ctx, item))
        .collect()
}

/// The identity keys of items as the feed wrote them, before any article is fetched: the
/// keys [`normalize_items`] gives the same items (the store asks which of them still need
/// their article page).
pub fn identity_keys(
    source: &SourceConfig,
    base: &Url,
    items: &[ParsedItem],
    now: DateTime<Utc>,
) -> Vec<Vec<String>> {
    let ctx = context(source, base, now);
    items.iter().map(|i| normalize::keys_for(&ctx, i)).collect()
}

fn context<'a>(source: &'a SourceConfig, base: &'a Url, now: DateTime<Utc>) -> Context<'a> {
    Context {
        source_id: &source.id,
        base,
        timezone: source.timezone,
        timezone_named: source.timezone_named,
        date_formats: source.date_formats(),
        id_pattern: source.id_pattern(),
        wants_article: source.article.is_some(),
        now,
        dedupe: &source.dedupe,
    }
}

/// Decodes a fetched body by our charset rules and parses it as the source's kind says,
/// keeping at most the source's `max_items` items (see [`parse::keep_newest`]). Takes the body
/// so that it is freed once decoded, before the parse builds its items. Returns the encoding
/// used, where that came from, and whether bytes were malformed.
///
/// Public for the ingest benchmark, which reads documents from disk.
pub fn read_document(
    source: &SourceConfig,
    url: &Url,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<(ParsedFeed, (&'static str, Provenance, bool)), ParseError> {
    let (mut feed, how) = match (source.kind, &source.html, &source.json) {
        (SourceKind::Html, Some(rules), _) => {
            let page = decode::decode(&body, content_type);
            drop(body);
            let feed = parse::html::parse_list(&page.text, rules)?;
            (
                feed,
                (page.encoding.name(), page.provenance, page.had_errors),
            )
        }
        (SourceKind::Json, _, Some(rules)) => {
            let page = decode::decode(&body, content_type);
            drop(body);
            let feed = parse::json::parse_list(&page.text, rules)?;
            (
                feed,
                (page.encoding.name(), page.provenance, page.had_errors),
            )
        }
        _ => {
            let doc = decode::to_utf8_document(&body, content_type);
            drop(body);
            let feed = match parse::parse_newest(&doc.bytes, source.max_items) {
                Ok(feed) => feed,
                // A web page at a feed's address: name the feed it links to (autodiscovery).
                // Malformed XML counts as a page only when it opens like one, whatever the
                // Content-Type says: a broken feed served as text/html is still a broken feed.
                Err(e @ (ParseError::NotAFeed | ParseError::Malformed(_)))
                    if parse::looks_like_html(
                        &doc.bytes,
                        matches!(e, ParseError::NotAFeed)
                            .then_some(content_type)
                            .flatten(),
                    ) =>
                {
                    let page = String::from_utf8_lossy(&doc.bytes);
                    let feed = parse::html::feed_link(&page)
                        .and_then(|href| url.join(&href).ok())
                        .filter(|feed| feed != url)
                        .map(String::from);
                    return Err(ParseError::HtmlPage { feed });
                }
                Err(e) => return Err(e),
            };
            (feed, (doc.encoding.name(), doc.provenance, doc.had_errors))
        }
    };
    // Feeds were cut while parsing; list pages and JSON lists are cut here.
    let total = feed.items.len();
    if parse::keep_newest(&mut feed.items, source.max_items, parse::sort_date) {
        feed.warnings
            .push(parse::dropped_warning(total, source.max_items));
    }
    Ok((feed, how))
}

/// Fetches the article page of each item with `wanted[i]` and attaches what it says. A page
/// that cannot be read leaves its item as the list gave it (the store marks it pending, and the
/// next refresh tries again); each such failure is one warning naming the URL and the cause.
async fn fetch_articles(
    fetcher: &Fetcher,
    source: &SourceConfig,
    base: &Url,
    feed: &mut ParsedFeed,
    wanted: &[bool],
) -> Vec<String> {
    let Some(rules) = source.article.clone() else {
        return Vec::new();
    };
    // A source on a private address (a test server, an intranet site) may link within it.
    // `base` is the page actually read (after redirects, or `check --url`).
    let access = if source.allow_private || fetch::literal_private_host(base) {
        Access::Any
    } else {
        Access::PublicOnly
    };
    let mut warnings = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, item) in feed.items.iter().enumerate() {
        if !wanted.get(index).copied().unwrap_or(false) {
            continue;
        }
        // The link normalize will store: http(s), at most MAX_URL_BYTES.
        let Some(url) = item
            .links
            .iter()
            .find_map(|l| normalize::absolute(base, l))
            .and_then(|l| Url::parse(&l).ok())
        else {
            continue;
        };
        if !host_allowed(source, base, &url) {
            warnings.push(format!(
                "article {url} is on another host than the source; add it to article_hosts to read it"
            ));
            continue;
        }
        let fetcher = fetcher.clone();
        let rules = rules.clone();
        tasks.spawn(async move {
            let result = match fetcher.get_with(&url, &Validators::default(), access).await {
                Ok(FetchOutcome::Fetched(page)) => {
                    let text = decode::decode(&page.body, page.content_type.as_deref()).text;
                    parse::article::parse_article(&text, &rules).map_err(RefreshError::from)
                }
                Ok(FetchOutcome::NotModified(..)) => Err(RefreshError::Fetch(FetchError::Other(
                    "304 Not Modified to an unconditional GET".into(),
                ))),
                Err(e) => Err(e.into()),
            };
            (index, url, result)
        });
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((index, _, Ok(parts))) => feed.items[index].article = Some(parts),
            // Logged with the fetch's other warnings (`log`).
            Ok((_, url, Err(e))) => warnings.push(format!("article {url}: {e}")),
            Err(e) => warnings.push(format!("article task failed: {e}")),
        }
    }
    warnings
}

/// Article links stay on the host of the list page (`base`) unless `article_hosts` names
/// others.
fn host_allowed(source: &SourceConfig, base: &Url, url: &Url) -> bool {
    let bare = |h: &str| h.trim_start_matches("www.").to_ascii_lowercase();
    let Some(host) = url.host_str().map(bare) else {
        return false;
    };
    if base.host_str().map(bare).as_deref() == Some(host.as_str()) {
        return true;
    }
    source.article_hosts.iter().any(|allowed| {
        let allowed = allowed.to_ascii_lowercase();
        allowed == "*"
            || match allowed.strip_prefix("*.") {
                Some(suffix) => host == suffix || host.ends_with(&format!(".{suffix}")),
                None => bare(&allowed) == host,
            }
    })
}

/// What [`record`] writes on the source's row.
struct Recorded {
    status: &'static str,
    error: Option<String>,
    validators: Option<Validators>,
    seen: Option<Seen>,
}

/// Whether a source is read with selectors, where drift is looked for.
fn scraped(source: &SourceConfig) -> bool {
    matches!(source.kind, SourceKind::Html | SourceKind::Json)
}

async fn record(
    store: &Arc<Store>,
    source: &SourceConfig,
    now: DateTime<Utc>,
    rec: Recorded,
) -> Result<(), RefreshError> {
    let id = source.id.clone();
    blocking(store, move |s| {
        s.record_fetch(
            &id,
            &FetchRecord {
                at: now,
                status: rec.status,
                error: rec.error.as_deref(),
                validators: rec.validators.as_ref(),
                seen: rec.seen.as_ref(),
            },
        )
    })
    .await
}

/// Records a failed fetch on the source (keeping its validators and entries) and hands the
/// error back.
async fn record_failure(
    store: &Arc<Store>,
    source: &SourceConfig,
    now: DateTime<Utc>,
    err: RefreshError,
) -> RefreshError {
    // A page whose selectors found nothing (or nothing with a link) did read a document:
    // what it saw is judged for drift like any other fetch.
    let seen = match &err {
        RefreshError::Parse(ParseError::NothingMatched { .. }) => Some(Seen::nothing_matched()),
        RefreshError::Parse(ParseError::NoLinks { count, .. }) => {
            let count = u32::try_from(*count).unwrap_or(u32::MAX);
            Some(Seen {
                scraped: true,
                items: count,
                missing_link: count,
                ..Seen::default()
            })
        }
        _ => None,
    };
    let status = Recorded {
        status: "error",
        error: Some(err.to_string()),
        validators: None,
        seen,
    };
    if let Err(store_err) = record(store, source, now, status).await {
        tracing::error!(source = %source.id, error = %store_err, "cannot record fetch failure");
    }
    err
}

/// Where a source's schedule stands before its task waits.
#[derive(Debug, Clone)]
pub struct Due {
    /// Its stored next run (else a run after its last fetch, else start plus the stagger),
    /// pushed past any pause its host asked for; a year ahead for a disabled source.
    pub at: DateTime<Utc>,
    /// Why the source is disabled (410 Gone), if it is.
    pub disabled: Option<String>,
}

/// When `source` is next due. `stagger` delays a source that was never fetched, so that the
/// sources of one host do not all start at once.
pub async fn due(
    store: &Arc<Store>,
    source: &SourceConfig,
    stagger: Duration,
) -> Result<Due, RefreshError> {
    let (id, host) = (source.id.clone(), host_of(source));
    let schedule = source.schedule.clone();
    blocking(store, move |s| {
        let (state, deferred) = (s.source_state(&id)?, s.host_deferred_until(&host)?);
        let now = Utc::now();
        let mut at = match (state.next_run, state.last_fetch_at) {
            (Some(next), _) => next,
            // A database from before next runs were stored: continue from the last fetch.
            (None, Some(last)) => schedule.next_after(last),
            (None, None) => now + chrono::Duration::from_std(stagger).unwrap_or_default(),
        };
        if let Some(until) = deferred {
            at = at.max(until);
        }
        if state.disabled_reason.is_some() {
            at = now + chrono::Duration::days(365);
        } else if state.next_run != Some(at) {
            // Recorded, so that `/api/sources` shows the run the task is waiting for.
            s.set_next_run(&id, at)?;
        }
        Ok(Due {
            at,
            disabled: state.disabled_reason,
        })
    })
    .await
}

/// Whether another source of this host was told to back off while `source` waited: the end
/// of the pause, recorded as `source`'s next run (so `/api/sources` shows it).
pub async fn host_paused(
    store: &Arc<Store>,
    source: &SourceConfig,
) -> Result<Option<DateTime<Utc>>, RefreshError> {
    let (id, host) = (source.id.clone(), host_of(source));
    blocking(store, move |s| {
        let Some(until) = s.host_deferred_until(&host)?.filter(|u| *u > Utc::now()) else {
            return Ok(None);
        };
        s.set_next_run(&id, until)?;
        Ok(Some(until))
    })
    .await
}

/// After a fetch of `source`: when to come back ([`politeness::next_check`] on its schedule,
/// the failures in a row and what the fetch learned), recorded as its next run, and a
/// Retry-After recorded as a pause of its whole host. The daemon and `tributary fetch` both
/// call this, so a one-off fetch leaves the schedule where the daemon would.
async fn schedule_next(
    store: &Arc<Store>,
    source: &SourceConfig,
    hints: &NextCheckHints,
) -> Result<DateTime<Utc>, RefreshError> {
    let politeness = Politeness {
        max_interval: source.max_interval,
        max_backoff: source.max_backoff,
        ..Politeness::default()
    };
    let (id, host, hints) = (source.id.clone(), host_of(source), hints.clone());
    let schedule = source.schedule.clone();
    blocking(store, move |s| {
        let now = Utc::now();
        let failures = s.source_state(&id)?.consecutive_failures;
        let jitter = politeness::jitter_unit(&id, now);
        let next = politeness::next_check(&schedule, now, &hints, failures, &politeness, jitter);
        if let Some(wait) = hints.retry_after {
            let until = now + chrono::Duration::from_std(wait).unwrap_or_default();
            s.defer_host(&host, until, "Retry-After")?;
        }
        s.set_next_run(&id, next)?;
        tracing::debug!(source = %id, next = %next, failures, "next check");
        Ok(next)
    })
    .await
}

fn host_of(source: &SourceConfig) -> String {
    source.url.host_str().unwrap_or("").to_ascii_lowercase()
}

async fn blocking<T: Send + 'static>(
    store: &Arc<Store>,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, RefreshError> {
    store.call(f).await.map_err(RefreshError::from)
}

/// Runs blocking work (a store call, parsing) on a blocking thread, off the runtime's.
async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RefreshError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| RefreshError::Task(e.to_string()))
}

/// Runs CPU work of a fetch (reading, normalizing) on a blocking thread, in a CPU slot.
async fn on_cpu<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RefreshError> {
    off_runtime(move || with_cpu_slot(work)).await
}

/// Runs `work` when one of `cores` slots is free.
///
/// The scheduler gives every runnable thread an equal share of the cores, so with every fetch
/// parsing at once the store's writer got a fraction of one (measured when it was the
/// bottleneck: busy 7.4 s of an 8.1 s ingest for 4 s of its own CPU work). Bounding the CPU
/// work of fetches to a slot per core keeps that share fair, and fetches wait in the network
/// or for the writer instead. It was `cores − 1` while the writer also built the search index;
/// with the index on its own thread, parsing is the longer path (300-feed ingest: 3.35 → 2.98
/// s wall with a slot per core). Callers outside the daemon that feed the same store (the
/// ingest benchmark) go through here too.
pub fn with_cpu_slot<T>(work: impl FnOnce() -> T) -> T {
    static SLOTS: std::sync::OnceLock<CpuSlots> = std::sync::OnceLock::new();
    let slots = SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        CpuSlots {
            free: std::sync::Mutex::new(cores.max(1)),
            freed: std::sync::Condvar::new(),
        }
    });
    let _slot = slots.take();
    work()
}

struct CpuSlots {
    free: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
}

struct CpuSlot<'a>(&'a CpuSlots);

impl CpuSlots {
    fn take(&self) -> CpuSlot<'_> {
        // A poisoned lock only means a worker panicked while counting: the count is still
        // right, since it is changed in one step.
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        CpuSlot(self)
    }
}

impl Drop for CpuSlot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

impl RefreshReport {
    /// Logs the fetch's one line (and its warnings) and counts it in the metrics.
    pub fn log(&self) {
        log(self);
    }
}

fn log(report: &RefreshReport) {
    record_metrics(report);
    let source = &report.source_id;
    let ms = report.duration.as_millis() as u64;
    // When the source is tried again: after a failure, how long the backoff is.
    let next = report.next_run.map_or_else(
        || "-".to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    match &report.outcome {
        Ok(Refreshed::Stored(c)) => tracing::info!(
            source = %source, status = "ok", bytes = report.bytes, new = c.new,
            updated = c.updated, duplicate = c.unchanged, merged = c.merged, warnings = report.warnings.len(),
            duration_ms = ms, next = %next, "fetched"
        ),
        Ok(Refreshed::NotModified) => tracing::info!(
            source = %source, status = "not modified", bytes = 0, new = 0, updated = 0,
            duplicate = 0, duration_ms = ms, next = %next, "fetched"
        ),
        Err(e) => tracing::warn!(
            source = %source, status = "error", url = %report.url, error = %e,
            duration_ms = ms, next = %next, "fetch failed"
        ),
    }
    // What the fetch lost or skipped (an unreadable field, items past max_items, an article
    // page): each said once, with the source, after the fetch's own line.
    for warning in &report.warnings {
        tracing::warn!(source = %source, warning = %warning, "fetch warning");
    }
}

fn record_metrics(report: &RefreshReport) {
    let result = match &report.outcome {
        Ok(Refreshed::Stored(c)) => metrics::FetchResult::Stored {
            new: c.new,
            updated: c.updated,
            merged: c.merged,
        },
        Ok(Refreshed::NotModified) => metrics::FetchResult::NotModified,
        Err(_) => metrics::FetchResult::Error,
    };
    metrics::record_fetch(
        &report.source_id,
        result,
        report.bytes,
        report.duration,
        Utc::now().timestamp(),
    );
}
