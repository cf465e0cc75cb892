//! HTTP: the published feeds, with content-derived ETags; a health check; Prometheus metrics;
//! the sources' state as JSON; and the admin API that asks for a fetch now.
//!
//! Handlers only read: they ask the store for entries and hand them to publish. Store calls
//! run on the blocking pool so a slow query never stalls the async workers. The one action,
//! `POST /api/sources/{id}/refresh`, writes nothing either: it wakes the source's scheduler
//! task, which fetches as it would on its schedule.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::header::{
    ACCEPT_ENCODING, AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, HOST,
    IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, VARY, WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use url::Url;

use crate::feed_urls;
use crate::metrics;
use crate::model::{Cursor, FeedQuery, Scope, SourceStatus};
use crate::publish::{self, FeedInfo, Format};
use crate::store::Store;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    /// Base for self links; None means "from the request's Host header".
    pub public_url: Option<Url>,
    /// The scheduler's heartbeat and refresh triggers.
    pub scheduler: Arc<crate::schedule::Scheduler>,
    /// `[server] admin_token`: the bearer token the admin API wants; None turns it off.
    pub admin_token: Option<String>,
    /// The running configuration (it changes on SIGHUP): schedules for Cache-Control, the
    /// WebSub hub.
    pub config: tokio::sync::watch::Receiver<Arc<crate::config::Config>>,
    /// Rendered feeds, so a poll costs no query while nothing changed.
    pub cache: Arc<FeedCache>,
}

/// Rendered feeds by request, valid while the store's generation and the configuration are
/// unchanged and for at most [`CACHE_MAX_AGE`] (writes by another process, such as a one-off
/// `tributary fetch`, are not seen through the generation).
pub struct FeedCache {
    slots: std::sync::Mutex<Slots>,
    /// Held while a feed is queried and rendered.
    rendering: tokio::sync::Mutex<()>,
    /// At most this many renders, and this many bytes (see [`charge`]).
    capacity: usize,
    max_bytes: usize,
}

impl Default for FeedCache {
    fn default() -> Self {
        FeedCache::with_limits(CACHE_CAPACITY, CACHE_BYTES)
    }
}

#[derive(Default)]
struct Slots {
    by_key: HashMap<String, Slot>,
    /// Sum of the slots' charges.
    bytes: usize,
    /// Puts so far: orders the slots, oldest first out.
    puts: u64,
}

/// One cached feed: the render, and what it was made from.
struct Slot {
    generation: u64,
    config: Arc<crate::config::Config>,
    made: std::time::Instant,
    rendered: Arc<Rendered>,
    charge: usize,
    /// `Slots::puts` when it was stored.
    order: u64,
}

/// What a render may come to hold: its body, and at most as much again for each compressed
/// form (made later, on demand); feed XML compresses to a fraction, so this is an upper bound.
fn charge(key: &str, rendered: &Rendered) -> usize {
    key.len() + rendered.body.len() * 3
}

/// A rendered feed with everything a cached answer needs, so a hit touches neither the store
/// nor the renderer: the body, its compressed forms (each made once, by the first request that
/// accepts it), and the header values.
struct Rendered {
    /// The uncompressed document.
    body: Bytes,
    gzip: tokio::sync::OnceCell<Bytes>,
    br: tokio::sync::OnceCell<Bytes>,
    /// BLAKE3 of `body` (hex, 32 digits): the ETag's opaque part.
    hash: String,
    /// One ETag per content coding, indexed by [`Coding`]: `W/"<hash>"`, `W/"<hash>-gz"`,
    /// `W/"<hash>-br"`. A cache that stored the gzip form revalidates that form.
    etags: [HeaderValue; 3],
    last_modified: DateTime<Utc>,
    last_modified_header: HeaderValue,
    content_type: HeaderValue,
    /// `public, max-age=…` from the sources' schedules when it was rendered.
    cache_control: HeaderValue,
}

const CACHE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(60);
/// Distinct feed requests kept (queries and pages are many); the oldest renders go first.
const CACHE_CAPACITY: usize = 512;
/// Bytes the cached renders may hold: a count alone let `limit=500` pages with their
/// compressed forms reach a gigabyte.
const CACHE_BYTES: usize = 32 << 20;

/// What a cache lookup found.
enum Lookup {
    /// Current: answer from it.
    Fresh(Arc<Rendered>),
    /// Out of date (or none): render again. A stale render whose body comes out the same is
    /// kept, with its compressed forms.
    Stale(Option<Arc<Rendered>>),
}

impl FeedCache {
    pub fn with_limits(capacity: usize, max_bytes: usize) -> Self {
        FeedCache {
            slots: Default::default(),
            rendering: Default::default(),
            capacity,
            max_bytes,
        }
    }

    fn get(&self, key: &str, generation: u64, config: &Arc<crate::config::Config>) -> Lookup {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        match slots.by_key.get(key) {
            Some(slot)
                if slot.generation == generation
                    && Arc::ptr_eq(&slot.config, config)
                    && slot.made.elapsed() < CACHE_MAX_AGE =>
            {
                Lookup::Fresh(slot.rendered.clone())
            }
            Some(slot) => Lookup::Stale(Some(slot.rendered.clone())),
            None => Lookup::Stale(None),
        }
    }

    fn put(
        &self,
        key: String,
        generation: u64,
        config: Arc<crate::config::Config>,
        rendered: Arc<Rendered>,
    ) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let charge = charge(&key, &rendered);
        if let Some(old) = slots.by_key.remove(&key) {
            slots.bytes -= old.charge;
        }
        if charge > self.max_bytes {
            // Served, not kept: it would push out everything else.
            return;
        }
        while slots.by_key.len() >= self.capacity || slots.bytes + charge > self.max_bytes {
            let Some(oldest) = slots
                .by_key
                .iter()
                .min_by_key(|(_, slot)| slot.order)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(old) = slots.by_key.remove(&oldest) {
                slots.bytes -= old.charge;
            }
        }
        slots.bytes += charge;
        slots.puts += 1;
        let order = slots.puts;
        slots.by_key.insert(
            key,
            Slot {
                generation,
                config,
                made: std::time::Instant::now(),
                rendered,
                charge,
                order,
            },
        );
    }

    /// Renders held, and the bytes they are charged.
    #[cfg(test)]
    fn usage(&self) -> (usize, usize) {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        (slots.by_key.len(), slots.bytes)
    }
}

/// A content coding the feeds are served in (RFC 9110 §8.4.1), chosen from Accept-Encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Identity = 0,
    Gzip = 1,
    Br = 2,
}

impl Coding {
    fn header_value(self) -> Option<HeaderValue> {
        match self {
            Coding::Identity => None,
            Coding::Gzip => Some(HeaderValue::from_static("gzip")),
            Coding::Br => Some(HeaderValue::from_static("br")),
        }
    }
}

/// The coding to answer with (RFC 9110 §12.5.3): the accepted one with the highest qvalue, br
/// over gzip on a tie (smaller), identity when neither is acceptable or when identity is
/// explicitly preferred over both. `*` stands for codings not named; `x-gzip` is gzip.
fn negotiate(headers: &HeaderMap) -> Coding {
    // qvalues in thousandths; None = not named.
    let (mut gzip, mut br, mut identity, mut any) = (None, None, None, None);
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut params = item.split(';');
            let coding = params.next().unwrap_or("").trim();
            let mut q = Some(1000u16);
            for p in params {
                let p = p.trim();
                if let Some(v) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) {
                    q = parse_qvalue(v.trim());
                }
            }
            let Some(q) = q else { continue };
            let slot =
                if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                    &mut gzip
                } else if coding.eq_ignore_ascii_case("br") {
                    &mut br
                } else if coding.eq_ignore_ascii_case("identity") {
                    &mut identity
                } else if coding == "*" {
                    &mut any
                } else {
                    continue;
                };
            *slot = Some(q);
        }
    }
    let gzip = gzip.or(any).unwrap_or(0);
    let br = br.or(any).unwrap_or(0);
    let best = gzip.max(br);
    if best == 0 || identity.is_some_and(|i| i > best) {
        Coding::Identity
    } else if br == best {
        Coding::Br
    } else {
        Coding::Gzip
    }
}

/// RFC 9110 §12.4.2 qvalue, in thousandths: `0`, `1`, `0.5`, `0.125`, `1.000`.
fn parse_qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// gzip level for served feeds: made once per rendered body, so close to the best ratio.
const GZIP_LEVEL: u32 = 9;
/// Brotli quality and window for served feeds (11 is the best ratio but several times slower
/// for a few percent; a body is compressed at most once per render, but renders can be many:
/// every page and search of every feed).
const BR_QUALITY: i32 = 9;
const BR_WINDOW: i32 = 22;

/// `body` in `coding` (a copy for identity).
fn compress(coding: Coding, body: &[u8]) -> std::io::Result<Bytes> {
    use std::io::Write as _;
    // Feeds compress to a fifth or so.
    let mut out = Vec::with_capacity(body.len() / 4 + 64);
    match coding {
        Coding::Identity => out.extend_from_slice(body),
        Coding::Gzip => {
            let mut w = flate2::write::GzEncoder::new(out, flate2::Compression::new(GZIP_LEVEL));
            w.write_all(body)?;
            out = w.finish()?;
        }
        Coding::Br => {
            let params = brotli::enc::BrotliEncoderParams {
                quality: BR_QUALITY,
                lgwin: BR_WINDOW,
                size_hint: body.len(),
                ..Default::default()
            };
            brotli::BrotliCompress(&mut &body[..], &mut out, &params)?;
        }
    }
    Ok(out.into())
}

impl Rendered {
    /// The body in `coding`, compressing it on the blocking pool the first time it is asked
    /// for; concurrent first requests wait for the one compression. None when compression
    /// failed (the caller answers uncompressed).
    async fn body(self: &Arc<Self>, coding: Coding) -> Option<Bytes> {
        let cell = match coding {
            Coding::Identity => return Some(self.body.clone()),
            Coding::Gzip => &self.gzip,
            Coding::Br => &self.br,
        };
        let result = cell
            .get_or_try_init(|| {
                let body = self.body.clone();
                async move {
                    match tokio::task::spawn_blocking(move || compress(coding, &body)).await {
                        Ok(Ok(bytes)) => Ok(bytes),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                }
            })
            .await;
        match result {
            Ok(bytes) => Some(bytes.clone()),
            Err(e) => {
                tracing::error!(error = %e, ?coding, "cannot compress a feed");
                None
            }
        }
    }
}

pub fn router(state: AppState) -> Router {
    // Feeds are compressed by their handler, once per rendered body (see `Rendered`), and
    // served from the cache in the coding the reader accepts.
    let feeds = Router::new()
        .route(
            &format!("/{}/{{file}}", feed_urls::CATEGORIES),
            get(feed_file),
        )
        .route(&format!("/{}/{{file}}", feed_urls::SOURCES), get(feed_file))
        .route(&format!("/{}/{{file}}", feed_urls::TAGS), get(feed_file));
    // The rest is small or rare: compressed per response by tower-http.
    let others = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/api/sources", get(api_sources))
        .route("/api/sources/{id}/refresh", post(api_refresh))
        .route("/opml", get(opml))
        .layer(
            tower_http::compression::CompressionLayer::new()
                .gzip(true)
                .br(true),
        );
    feeds
        .merge(others)
        // Outermost, so it also sees requests no route took (counted as `unmatched`).
        .layer(middleware::from_fn(count_request))
        .with_state(state)
}

/// Serves until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// 200 "ok" while the store answers and the scheduler's loop turns; 503 naming what is broken.
async fn healthz(State(state): State<AppState>) -> Response {
    let store = state.store.clone();
    let store_result = match tokio::task::spawn_blocking(move || store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("store: {e}")),
        Err(e) => Err(format!("store: {e}")),
    };
    let scheduler_ok = state.scheduler.scheduler_alive(Utc::now());
    match (store_result, scheduler_ok) {
        (Ok(()), true) => (StatusCode::OK, "ok\n").into_response(),
        (Err(e), _) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
        (Ok(()), false) => {
            (StatusCode::SERVICE_UNAVAILABLE, "scheduler: not running\n").into_response()
        }
    }
}

/// Counts every answered request by its route template (`/feeds/{file}`, never the raw path,
/// so the number of series stays bounded) and status.
async fn count_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let mut response = next.run(request).await;
    // Feeds are shown in browsers too: a body is only ever what its type says (no sniffing a
    // feed's escaped markup into an HTML page).
    response.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    metrics::record_http_request(
        method.as_str(),
        route.as_deref().unwrap_or("unmatched"),
        response.status().as_u16(),
    );
    response
}

/// Prometheus text. The stored per-source state (consecutive failures, and the last success
/// from before this process started) is brought in first; a store error leaves the in-process
/// metrics to be served alone.
async fn metrics_text(State(state): State<AppState>) -> Response {
    metrics::observe_feed_queries(state.store.feed_queries());
    match statuses(&state).await {
        Ok(all) => {
            for s in all.iter().filter(|s| s.active) {
                let last_success = s
                    .last_fetch_at
                    .filter(|_| matches!(s.last_status.as_deref(), Some("ok" | "not modified")))
                    .map(|t| t.timestamp());
                metrics::observe_source(&s.id, s.consecutive_failures, last_success);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the sources' state"),
    }
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, metrics::CONTENT_TYPE),
            (CACHE_CONTROL, "no-store"),
        ],
        metrics::render(),
    )
        .into_response()
}

async fn statuses(state: &AppState) -> Result<Vec<SourceStatus>, String> {
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.source_statuses()).await {
        Ok(Ok(all)) => Ok(all),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// One source in `GET /api/sources`.
#[derive(Debug, Serialize)]
struct SourceJson<'a> {
    id: &'a str,
    name: &'a str,
    category: &'a str,
    /// In the config and enabled.
    active: bool,
    /// RFC 3339, UTC; null before the first fetch.
    last_fetch: Option<String>,
    /// "ok", "not modified" or "error"; null before the first fetch.
    last_status: Option<&'a str>,
    last_error: Option<&'a str>,
    consecutive_failures: u32,
    /// RFC 3339, UTC: when the scheduler fetches it next; null when not yet planned.
    next_run: Option<String>,
    /// Why it is not fetched any more (HTTP 410); null while it is.
    disabled_reason: Option<&'a str>,
    entry_count: u64,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Every source the store knows, active ones first, as a JSON array.
async fn api_sources(State(state): State<AppState>) -> Response {
    let all = match statuses(&state).await {
        Ok(all) => all,
        Err(e) => {
            tracing::error!(error = %e, "sources query failed");
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, "store error");
        }
    };
    let body: Vec<SourceJson> = all
        .iter()
        .map(|s| SourceJson {
            id: &s.id,
            name: &s.name,
            category: &s.category,
            active: s.active,
            last_fetch: s.last_fetch_at.map(rfc3339),
            last_status: s.last_status.as_deref(),
            last_error: s.last_error.as_deref(),
            consecutive_failures: s.consecutive_failures,
            next_run: s.next_run.map(rfc3339),
            disabled_reason: s.disabled_reason.as_deref(),
            entry_count: s.entry_count,
        })
        .collect();
    json(StatusCode::OK, &body)
}

/// Asks the scheduler to fetch a source now. 403 while no admin token is configured, 401
/// without the right `Authorization: Bearer` token, 404 for a source the store does not know,
/// 409 for one it knows that is not scheduled (disabled or gone from the config), else 202:
/// the fetch starts as soon as the source's task and a fetch slot are free.
async fn api_refresh(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(expected) = state.admin_token.as_deref() else {
        return json_error(
            StatusCode::FORBIDDEN,
            "the admin API is off: set [server] admin_token to turn it on",
        );
    };
    if !bearer_matches(&headers, expected) {
        let mut response = json_error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <[server] admin_token>)",
        );
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer realm=\"tributary\""),
        );
        return response;
    }
    if state.scheduler.trigger(&id) {
        tracing::info!(source = %id, "refresh requested through the admin API");
        return json(
            StatusCode::ACCEPTED,
            &serde_json::json!({ "id": id, "refresh": "queued" }),
        );
    }
    match statuses(&state).await {
        Ok(all) if all.iter().any(|s| s.id == id) => json_error(
            StatusCode::CONFLICT,
            &format!("source {id:?} is not scheduled: it is disabled or no longer in the config"),
        ),
        Ok(_) => json_error(StatusCode::NOT_FOUND, &format!("no source {id:?}")),
        Err(e) => {
            tracing::error!(error = %e, "sources query failed");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, "store error")
        }
    }
}

/// Whether `Authorization` carries `Bearer <expected>`. The tokens are compared through their
/// BLAKE3 hashes, whose equality is constant-time: the time taken says nothing about how much
/// of a guess was right, nor about the token's length.
fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, given)) = value.trim().split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && blake3::hash(given.trim().as_bytes()) == blake3::hash(expected.as_bytes())
}

fn json(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_string(body) {
        Ok(text) => (
            status,
            [
                (CONTENT_TYPE, "application/json"),
                (CACHE_CONTROL, "no-store"),
            ],
            text + "\n",
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize a JSON answer");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

fn json_error(status: StatusCode, message: &str) -> Response {
    json(status, &serde_json::json!({ "error": message }))
}

/// `/feeds/{name}.{ext}` (a category, or `all`), `/sources/{id}.{ext}`, `/tags/{tag}.{ext}`:
/// one handler, the route's first segment says which scope the name is.
async fn feed_file(
    State(state): State<AppState>,
    route: MatchedPath,
    Path(file): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some((name, format)) = split_file(&file) else {
        return not_found("feeds end in .rss, .atom or .json");
    };
    let dir = route.as_str().trim_start_matches('/');
    let dir = dir.strip_suffix("/{file}").unwrap_or(dir);
    let Some(scope) = feed_urls::scope(dir, name) else {
        return not_found("no such feed");
    };
    feed(state, scope, format, &query, &uri, &headers).await
}

fn split_file(file: &str) -> Option<(&str, Format)> {
    let (name, ext) = file.rsplit_once('.')?;
    Some((name, Format::from_extension(ext)?)).filter(|(n, _)| !n.is_empty())
}

fn not_found(why: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("{why}\n")).into_response()
}

async fn feed(
    state: AppState,
    scope: Scope,
    format: Format,
    query: &HashMap<String, String>,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let bad = |why: String| (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if n > 0 => n.min(MAX_LIMIT),
        Some(_) => return bad(format!("limit must be a number from 1 to {MAX_LIMIT}")),
    };
    let before = match query.get("before") {
        None => None,
        Some(c) => match Cursor::decode(c) {
            Some(c) => Some(c),
            None => return bad(format!("before={c:?} is not a cursor from a next link")),
        },
    };
    let nonempty = |k: &str| {
        query
            .get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let q = FeedQuery {
        limit,
        before,
        text: nonempty("q"),
        source: nonempty("source"),
        tag: nonempty("tag"),
    };
    let config = state.config.borrow().clone();
    let hub = config.server.websub_hub.as_ref().map(Url::to_string);
    // The request, minus parameters that change nothing (cache busters like `_=`), is the key;
    // the Host only matters when it makes the self links. The base URL is parsed from it only
    // to render, or for a WebSub Link header: a cached answer needs neither.
    let host = match state.public_url {
        Some(_) => "",
        None => request_host(headers),
    };
    let key = format!("{scope:?}|{format:?}|{q:?}|{host}");
    let generation = state.store.generation();
    let rendered = match state.cache.get(&key, generation, &config) {
        Lookup::Fresh(hit) => hit,
        Lookup::Stale(_) => {
            // One render at a time (the store reads through one connection anyway), so the
            // readers that miss together, as when the cache expires under load, wait for the
            // first one's render instead of each running the query.
            let _rendering = state.cache.rendering.lock().await;
            let generation = state.store.generation();
            match state.cache.get(&key, generation, &config) {
                Lookup::Fresh(hit) => hit,
                Lookup::Stale(previous) => {
                    let target = CacheTarget {
                        key,
                        generation,
                        previous,
                    };
                    match render_and_cache(
                        &state, &scope, format, &q, uri, headers, &config, target,
                    )
                    .await
                    {
                        Ok(rendered) => rendered,
                        Err(response) => return response,
                    }
                }
            }
        }
    };

    let coding = negotiate(headers);
    let mut response = Response::new(axum::body::Body::empty());
    let h = response.headers_mut();
    h.insert(ETAG, rendered.etags[coding as usize].clone());
    h.insert(LAST_MODIFIED, rendered.last_modified_header.clone());
    h.insert(CACHE_CONTROL, rendered.cache_control.clone());
    h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Some(hub) = &hub {
        // WebSub discovery (W3C §4): the hub and this feed's canonical URL.
        let link = format!(
            "<{hub}>; rel=\"hub\", <{}>; rel=\"self\"",
            self_url(&base_url(&state, headers), uri)
        );
        if let Ok(link) = HeaderValue::try_from(link) {
            h.insert(axum::http::header::LINK, link);
        }
    }
    if not_modified(
        headers,
        &rendered.etags[coding as usize],
        rendered.last_modified,
    ) {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return response;
    }
    let (body, coding) = match rendered.body(coding).await {
        Some(body) => (body, coding),
        None => {
            let h = response.headers_mut();
            h.insert(ETAG, rendered.etags[Coding::Identity as usize].clone());
            (rendered.body.clone(), Coding::Identity)
        }
    };
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, rendered.content_type.clone());
    if let Some(value) = coding.header_value() {
        h.insert(CONTENT_ENCODING, value);
    }
    *response.body_mut() = axum::body::Body::from(body);
    response
}

/// What a render is cached under, and the render it replaces.
struct CacheTarget {
    key: String,
    generation: u64,
    previous: Option<Arc<Rendered>>,
}

/// Queries the store for a feed, renders it and caches the render; Err is the answer to give
/// when the feed does not exist or the store fails.
#[allow(clippy::too_many_arguments)]
async fn render_and_cache(
    state: &AppState,
    scope: &Scope,
    format: Format,
    q: &FeedQuery,
    uri: &Uri,
    headers: &HeaderMap,
    config: &Arc<crate::config::Config>,
    target: CacheTarget,
) -> Result<Arc<Rendered>, Response> {
    let CacheTarget {
        key,
        generation,
        previous,
    } = target;
    let hub = config.server.websub_hub.as_ref().map(Url::to_string);
    let store = state.store.clone();
    let (lookup, page) = (scope.clone(), q.clone());
    let result = tokio::task::spawn_blocking(move || {
        let Some(title) = store.scope_title(&lookup)? else {
            return Ok(None);
        };
        store.entries(&lookup, &page).map(|e| Some((title, e)))
    })
    .await;
    let (title, entries) = match result {
        Ok(Ok(Some(found))) => found,
        Ok(Ok(None)) => {
            return Err(not_found(&match scope {
                Scope::Source(id) => format!("no source {id:?}"),
                Scope::Category(c) => format!("no category {c:?}"),
                Scope::Tag(t) => format!("no tag {t:?}"),
                Scope::All => "no feed".into(),
            }));
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "feed query failed");
            return Err((StatusCode::INTERNAL_SERVER_ERROR, "store error\n").into_response());
        }
        Err(e) => {
            tracing::error!(error = %e, "feed task failed");
            return Err((StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response());
        }
    };
    let mut rendered = Arc::new(render(
        scope,
        format,
        q,
        title,
        &entries,
        &base_url(state, headers),
        uri,
        hub.as_deref(),
        max_age(config, scope),
    ));
    // Nothing changed for this feed: keep the render that already has its compressed forms.
    if let Some(previous) = previous.filter(|p| {
        p.hash == rendered.hash
            && p.last_modified == rendered.last_modified
            && p.cache_control == rendered.cache_control
    }) {
        rendered = previous;
    }
    state
        .cache
        .put(key, generation, config.clone(), rendered.clone());
    Ok(rendered)
}

#[allow(clippy::too_many_arguments)]
fn render(
    scope: &Scope,
    format: Format,
    q: &FeedQuery,
    title: String,
    entries: &[crate::model::StoredEntry],
    base: &Url,
    uri: &Uri,
    hub: Option<&str>,
    max_age: u64,
) -> Rendered {
    let (kind, key) = feed_urls::parts(scope);
    let key = key.to_string();
    let mut title = title;
    if let Some(text) = &q.text {
        title = format!("{title}: {text}");
    }
    // A full page may have more behind it: RFC 5005 `next` (JSON Feed `next_url`).
    let next_url = (entries.len() == q.limit)
        .then(|| entries.last())
        .flatten()
        .map(|last| {
            let mut next = base.join(uri.path()).unwrap_or_else(|_| base.clone());
            {
                let mut pairs = next.query_pairs_mut();
                for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
                    if k != "before" {
                        pairs.append_pair(&k, &v);
                    }
                }
                pairs.append_pair("before", &last.cursor.encode());
            }
            next.to_string()
        });
    let info = FeedInfo {
        description: format!("{title}: merged by tributary"),
        title,
        id: format!(
            "tag:tributary,2026:{kind}/{}",
            url::form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>()
        ),
        self_url: self_url(base, uri),
        home_url: base.to_string(),
        next_url,
        hub: hub.map(str::to_string),
    };
    let body = publish::render(format, &info, entries);
    let hash = blake3::hash(body.as_bytes()).to_hex()[..32].to_string();
    let etag = |suffix: &str| {
        HeaderValue::try_from(format!("W/\"{hash}{suffix}\""))
            .expect("hex digits make a header value")
    };
    let last_modified = publish::last_updated(entries);
    Rendered {
        etags: [etag(""), etag("-gz"), etag("-br")],
        last_modified_header: HeaderValue::try_from(http_date(last_modified))
            .expect("an HTTP date is a header value"),
        last_modified,
        content_type: HeaderValue::from_static(format.content_type()),
        cache_control: HeaderValue::try_from(format!("public, max-age={max_age}"))
            .expect("digits make a header value"),
        hash,
        body: body.into(),
        gzip: Default::default(),
        br: Default::default(),
    }
}

fn self_url(base: &Url, uri: &Uri) -> String {
    base.join(&uri.to_string())
        .map(|u| u.to_string())
        .unwrap_or_else(|_| base.to_string())
}

/// Cache-Control max-age: the shortest schedule among the feed's sources (nothing new can
/// appear sooner), at least a minute, at most an hour.
fn max_age(config: &crate::config::Config, scope: &Scope) -> u64 {
    let now = Utc::now();
    config
        .sources
        .iter()
        .filter(|s| s.enabled)
        .filter(|s| match scope {
            Scope::All => true,
            Scope::Category(c) => &s.category == c,
            Scope::Source(id) => &s.id == id,
            Scope::Tag(t) => s.tags.contains(t),
        })
        .map(|s| s.schedule.interval_at(now).as_secs())
        .min()
        .unwrap_or(900)
        .clamp(60, 3600)
}

fn base_url(state: &AppState, headers: &HeaderMap) -> Url {
    if let Some(url) = &state.public_url {
        return url.clone();
    }
    let host = request_host(headers);
    Url::parse(&format!("http://{host}/"))
        .unwrap_or_else(|_| Url::parse("http://localhost/").expect("static URL parses"))
}

/// The Host a base URL is made from when no `public_url` is set.
fn request_host(headers: &HeaderMap) -> &str {
    headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', '@', ' ']))
        .unwrap_or("localhost")
}

/// RFC 9110 §13.2.2: If-None-Match decides when present; If-Modified-Since only otherwise.
fn not_modified(headers: &HeaderMap, etag: &HeaderValue, last_modified: DateTime<Utc>) -> bool {
    if let Some(inm) = headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        let bare = etag.to_str().unwrap_or_default().trim_start_matches("W/");
        return inm
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == bare);
    }
    headers
        .get(IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
        .is_some_and(|since| last_modified.timestamp() <= since.timestamp())
}

fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// OPML 2.0 listing every feed served (all, each category, each tag of the active sources), with
/// absolute URLs, for a reader to subscribe to all at once (`crate::opml::feed_list`).
async fn opml(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let store = state.store.clone();
    let sources = match tokio::task::spawn_blocking(move || store.active_sources()).await {
        Ok(Ok(sources)) => sources,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "sources query failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "store error\n").into_response();
        }
        Err(e) => {
            tracing::error!(error = %e, "sources task failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response();
        }
    };
    let categories = sources.iter().map(|s| s.3.clone()).collect();
    let tags = sources.iter().flat_map(|s| s.4.iter().cloned()).collect();
    let body = crate::opml::feed_list(&base_url(&state, &headers), &categories, &tags, Utc::now());
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, crate::opml::CONTENT_TYPE),
            (CACHE_CONTROL, "public, max-age=60"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(body_len: usize) -> Arc<Rendered> {
        let value = HeaderValue::from_static("x");
        Arc::new(Rendered {
            body: Bytes::from(vec![b'<'; body_len]),
            gzip: Default::default(),
            br: Default::default(),
            hash: String::new(),
            etags: [value.clone(), value.clone(), value.clone()],
            last_modified: Utc::now(),
            last_modified_header: value.clone(),
            content_type: value.clone(),
            cache_control: value,
        })
    }

    fn empty_config() -> Arc<crate::config::Config> {
        let path = std::path::Path::new("tributary.toml");
        Arc::new(crate::config::Config::from_toml(path, "").expect("an empty config"))
    }

    #[test]
    fn the_feed_cache_keeps_within_its_bytes_and_drops_the_oldest() {
        let cache = FeedCache::with_limits(100, 10_000);
        let config = empty_config();
        for i in 0..10 {
            cache.put(format!("k{i}"), 1, config.clone(), rendered(1_000));
            let (_, bytes) = cache.usage();
            assert!(bytes <= 10_000, "{bytes} bytes after {} puts", i + 1);
        }
        // 3,002 bytes charged each: three fit, the newest three.
        assert_eq!(cache.usage(), (3, 3 * 3_002));
        for (key, kept) in [("k6", false), ("k7", true), ("k9", true)] {
            let found = matches!(cache.get(key, 1, &config), Lookup::Fresh(_));
            assert_eq!(found, kept, "{key}");
        }
        // Replacing a render charges it once; one bigger than the whole cache is not kept.
        cache.put("k9".into(), 2, config.clone(), rendered(1_000));
        assert_eq!(cache.usage(), (3, 3 * 3_002));
        cache.put("huge".into(), 1, config.clone(), rendered(5_000));
        assert!(matches!(cache.get("huge", 1, &config), Lookup::Stale(None)));
        assert_eq!(cache.usage().0, 3);
    }

    #[test]
    fn the_feed_cache_keeps_within_its_count() {
        let cache = FeedCache::with_limits(4, usize::MAX);
        let config = empty_config();
        for i in 0..9 {
            cache.put(format!("k{i}"), 1, config.clone(), rendered(10));
        }
        assert_eq!(cache.usage().0, 4);
        assert!(matches!(cache.get("k8", 1, &config), Lookup::Fresh(_)));
    }

    fn auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, value.parse().unwrap());
        h
    }

    fn accept(value: &str) -> Coding {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, value.parse().unwrap());
        negotiate(&h)
    }

    #[test]
    fn accept_encoding_chooses_the_coding() {
        assert_eq!(negotiate(&HeaderMap::new()), Coding::Identity);
        for (value, coding) in [
            ("gzip", Coding::Gzip),
            ("x-gzip", Coding::Gzip),
            ("GZIP;Q=1.0", Coding::Gzip),
            ("br", Coding::Br),
            ("gzip, deflate, br", Coding::Br),
            ("gzip, deflate, br, zstd", Coding::Br),
            ("br;q=0.5, gzip", Coding::Gzip),
            ("gzip;q=0.1, zstd", Coding::Gzip),
            ("gzip;q=0, br;q=0", Coding::Identity),
            ("*", Coding::Br),
            ("*;q=0.5, gzip", Coding::Gzip),
            ("br;q=0, *", Coding::Gzip),
            ("deflate", Coding::Identity),
            ("identity", Coding::Identity),
            ("gzip;q=0.5, identity", Coding::Identity),
            ("gzip, identity;q=0.5", Coding::Gzip),
            // A malformed qvalue drops its item.
            ("gzip;q=2", Coding::Identity),
            ("br;q=0.1234, gzip;q=0.5", Coding::Gzip),
            ("", Coding::Identity),
        ] {
            assert_eq!(accept(value), coding, "Accept-Encoding: {value}");
        }
    }

    #[test]
    fn qvalues_follow_the_grammar() {
        assert_eq!(parse_qvalue("1"), Some(1000));
        assert_eq!(parse_qvalue("1.000"), Some(1000));
        assert_eq!(parse_qvalue("0"), Some(0));
        assert_eq!(parse_qvalue("0.5"), Some(500));
        assert_eq!(parse_qvalue("0.125"), Some(125));
        assert_eq!(parse_qvalue("0."), Some(0));
        assert_eq!(parse_qvalue("1.5"), None);
        assert_eq!(parse_qvalue("0.1234"), None);
        assert_eq!(parse_qvalue("-0.5"), None);
        assert_eq!(parse_qvalue("0.+5"), None);
        assert_eq!(parse_qvalue(""), None);
    }

    #[test]
    fn compressed_forms_decompress_to_the_body() {
        use std::io::Read;
        let body = "<feed><entry><title>一条消息</title></entry></feed>\n".repeat(200);
        let gzip = compress(Coding::Gzip, body.as_bytes()).unwrap();
        let mut out = String::new();
        flate2::read::GzDecoder::new(&gzip[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, body);
        let br = compress(Coding::Br, body.as_bytes()).unwrap();
        let mut out = String::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, body);
        assert!(gzip.len() < body.len() / 10 && br.len() < body.len() / 10);
    }

    #[test]
    fn bearer_token_must_match_exactly() {
        let token = "0123456789abcdef0123";
        assert!(bearer_matches(&auth("Bearer 0123456789abcdef0123"), token));
        assert!(bearer_matches(&auth("bearer 0123456789abcdef0123"), token));
        assert!(!bearer_matches(&HeaderMap::new(), token));
        assert!(!bearer_matches(&auth("Bearer 0123456789abcdef012"), token));
        assert!(!bearer_matches(
            &auth("Bearer 0123456789abcdef01234"),
            token
        ));
        assert!(!bearer_matches(&auth("Basic 0123456789abcdef0123"), token));
        assert!(!bearer_matches(&auth("0123456789abcdef0123"), token));
        assert!(!bearer_matches(&auth("Bearer "), token));
    }
}
