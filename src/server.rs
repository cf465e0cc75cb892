//! HTTP: the published feeds, with content-derived ETags, and a health check.
//!
//! Handlers only read: they ask the store for entries and hand them to publish. Store calls
//! run on the blocking pool so a slow query never stalls the async workers.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_TYPE, ETAG, HOST, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, VARY,
};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use url::Url;

use crate::model::Scope;
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
    pub daemon: Arc<crate::schedule::Daemon>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/feeds/{file}", get(category_feed))
        .route("/sources/{file}", get(source_feed))
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
    let scheduler_ok = state.daemon.scheduler_alive(Utc::now());
    match (store_result, scheduler_ok) {
        (Ok(()), true) => (StatusCode::OK, "ok\n").into_response(),
        (Err(e), _) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
        (Ok(()), false) => {
            (StatusCode::SERVICE_UNAVAILABLE, "scheduler: not running\n").into_response()
        }
    }
}

async fn category_feed(
    State(state): State<AppState>,
    Path(file): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some((name, format)) = split_file(&file) else {
        return not_found("feeds end in .rss, .atom or .json");
    };
    let scope = if name == "all" {
        Scope::All
    } else {
        Scope::Category(name.to_string())
    };
    feed(state, scope, format, &query, &uri, &headers).await
}

async fn source_feed(
    State(state): State<AppState>,
    Path(file): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some((id, format)) = split_file(&file) else {
        return not_found("feeds end in .rss, .atom or .json");
    };
    feed(
        state,
        Scope::Source(id.to_string()),
        format,
        &query,
        &uri,
        &headers,
    )
    .await
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
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if n > 0 => n.min(MAX_LIMIT),
        Some(_) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("limit must be a number from 1 to {MAX_LIMIT}\n"),
            )
                .into_response()
        }
    };
    let store = state.store.clone();
    let lookup = scope.clone();
    let result = tokio::task::spawn_blocking(move || {
        let Some(title) = store.scope_title(&lookup)? else {
            return Ok(None);
        };
        store.entries(&lookup, limit).map(|e| Some((title, e)))
    })
    .await;
    let (title, entries) = match result {
        Ok(Ok(Some(found))) => found,
        Ok(Ok(None)) => {
            return not_found(&match scope {
                Scope::Source(id) => format!("no source {id:?}"),
                Scope::Category(c) => format!("no category {c:?}"),
                Scope::All => "no feed".into(),
            })
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "feed query failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "store error\n").into_response();
        }
        Err(e) => {
            tracing::error!(error = %e, "feed task failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response();
        }
    };

    let base = base_url(&state, headers);
    let self_url = base
        .join(&uri.to_string())
        .map(|u| u.to_string())
        .unwrap_or_else(|_| base.to_string());
    let (kind, key) = match &scope {
        Scope::All => ("feeds", "all".to_string()),
        Scope::Category(c) => ("feeds", c.clone()),
        Scope::Source(s) => ("sources", s.clone()),
    };
    let info = FeedInfo {
        description: format!("{title}: merged by tributary"),
        title,
        id: format!(
            "tag:tributary,2026:{kind}/{}",
            url::form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>()
        ),
        self_url,
        home_url: base.to_string(),
    };
    let body = publish::render(format, &info, &entries);
    let last_modified = publish::last_updated(&entries);
    let etag = format!("\"{}\"", &blake3::hash(body.as_bytes()).to_hex()[..32]);

    let mut response_headers = vec![
        (ETAG, etag.clone()),
        (LAST_MODIFIED, http_date(last_modified)),
        (CACHE_CONTROL, "public, max-age=60".to_string()),
        (VARY, "Accept-Encoding".to_string()),
    ];
    if not_modified(headers, &etag, last_modified) {
        return (
            StatusCode::NOT_MODIFIED,
            response_headers_map(&response_headers),
        )
            .into_response();
    }
    response_headers.push((CONTENT_TYPE, format.content_type().to_string()));
    (
        StatusCode::OK,
        response_headers_map(&response_headers),
        body,
    )
        .into_response()
}

fn response_headers_map(pairs: &[(axum::http::HeaderName, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let Ok(v) = value.parse() {
            map.insert(name.clone(), v);
        }
    }
    map
}

fn base_url(state: &AppState, headers: &HeaderMap) -> Url {
    if let Some(url) = &state.public_url {
        return url.clone();
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', '@', ' ']))
        .unwrap_or("localhost");
    Url::parse(&format!("http://{host}/"))
        .unwrap_or_else(|_| Url::parse("http://localhost/").expect("static URL parses"))
}

/// RFC 9110 §13.2.2: If-None-Match decides when present; If-Modified-Since only otherwise.
fn not_modified(headers: &HeaderMap, etag: &str, last_modified: DateTime<Utc>) -> bool {
    if let Some(inm) = headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        let bare = etag.trim_start_matches("W/");
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
