//! HTTP: the published feeds, with content-derived ETags; the operator's console (`console`);
//! a health check; Prometheus metrics; the sources' state as JSON; and the admin API and forms
//! (`admin`).
//!
//! Handlers only read the store: they ask it for entries and hand them to publish or pages.
//! Store calls run on the blocking pool so a slow query never stalls the async workers. The
//! write actions change the config file (the daemon reloads it) or wake a source's scheduler
//! task, which fetches as it would on its schedule; none writes SQL.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use url::Url;

mod admin;
mod cache;
mod console;
mod feeds;
mod shown;

pub use cache::FeedCache;
pub use console::home_cards;
use feeds::base_url;
pub use shown::{page, RuleBooks, Showing};

use crate::feed_urls;
use crate::metrics;
use crate::model::SourceStatus;
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
    /// The running config's rules, indexed once per config.
    pub rules: Arc<RuleBooks>,
    /// Notified after the console wrote the config file, so the daemon reloads it at once.
    pub config_written: Arc<tokio::sync::Notify>,
}

pub fn router(state: AppState) -> Router {
    // Feeds are compressed by their handler, once per rendered body (see `Rendered`), and
    // served from the cache in the coding the reader accepts.
    // A feed's path without its extension is the console's page of the same scope.
    let feeds = Router::new()
        .route(
            &format!("/{}/{{file}}", feed_urls::CATEGORIES),
            get(console::page_or_feed),
        )
        .route(
            &format!("/{}/{{file}}", feed_urls::SOURCES),
            get(console::page_or_feed),
        )
        .route(
            &format!("/{}/{{file}}", feed_urls::TAGS),
            get(console::page_or_feed),
        );
    // The rest is small or rare: compressed per response by tower-http.
    let others = Router::new()
        .route("/", get(console::home))
        .route(
            &format!("/{}", crate::pages::STYLESHEET_PATH),
            get(console::stylesheet),
        )
        .route("/search", get(console::search))
        .route("/sources", get(console::sources).post(admin::form))
        .route(
            &format!("/{}/{{id}}", feed_urls::ENTRIES),
            get(console::entry),
        )
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/api/sources", get(api_sources).post(admin::api_add))
        .route(
            "/api/sources/{id}",
            axum::routing::delete(admin::api_remove),
        )
        .route("/api/sources/{id}/refresh", post(admin::api_refresh))
        .route("/api/sources/{id}/enable", post(admin::api_enable))
        .route("/api/sources/{id}/disable", post(admin::api_disable))
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
    let store_result = state
        .store
        .call(|s| s.ping())
        .await
        .map_err(|e| format!("store: {e}"));
    let scheduler_ok = state.scheduler.scheduler_alive(Utc::now());
    match (store_result, scheduler_ok) {
        (Ok(()), true) => {
            // Healthy as a daemon; a drifting source is named (it needs its selectors
            // fixed) without failing the check a supervisor restarts on.
            let mut body = String::from("ok\n");
            for s in statuses(&state).await.unwrap_or_default() {
                if let (true, Some(why)) = (s.active, &s.drift) {
                    body.push_str(&format!("drifting: {}: {why}\n", s.id));
                }
            }
            (StatusCode::OK, body).into_response()
        }
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
                metrics::observe_source(
                    &s.id,
                    s.consecutive_failures,
                    last_success,
                    s.drift.is_some(),
                );
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

pub(super) async fn statuses(state: &AppState) -> Result<Vec<SourceStatus>, String> {
    state
        .store
        .call(|s| s.source_statuses())
        .await
        .map_err(|e| e.to_string())
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
    /// Why its page looks drifted (selectors that match nothing, items without dates, links or
    /// text far more often than usual); null while it does not.
    drift: Option<&'a str>,
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
            drift: s.drift.as_deref(),
            entry_count: s.entry_count,
        })
        .collect();
    json(StatusCode::OK, &body)
}

pub(super) fn json(status: StatusCode, body: &impl Serialize) -> Response {
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

pub(super) fn json_error(status: StatusCode, message: &str) -> Response {
    json(status, &serde_json::json!({ "error": message }))
}

/// OPML 2.0 listing every feed served (all, each category, each tag of the active sources), with
/// absolute URLs, for a reader to subscribe to all at once (`crate::opml::feed_list`).
async fn opml(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let sources = match state.store.call(|s| s.active_sources()).await {
        Ok(sources) => sources,
        Err(e) => {
            tracing::error!(error = %e, "sources query failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "store error\n").into_response();
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
