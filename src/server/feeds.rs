//! The published feeds: `/feeds/…`, `/sources/…`, `/tags/…` in three formats, with paging,
//! search, content-derived ETags, 304s and the WebSub Link header.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{MatchedPath, Path, Query, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, HOST, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    LAST_MODIFIED, VARY,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use url::Url;

use super::cache::{negotiate, Coding, Lookup, Rendered};
use super::Showing;
use super::{AppState, DEFAULT_LIMIT, MAX_LIMIT};
use crate::config::Pattern;
use crate::feed_urls;
use crate::model::{Cursor, FeedQuery, Page, Scope};
use crate::publish::{self, FeedInfo, Format};
use crate::rules::Subscription;

/// `/feeds/{name}.{ext}` (a category, or `all`), `/sources/{id}.{ext}`, `/tags/{tag}.{ext}`:
/// one handler, the route's first segment says which scope the name is.
pub(super) async fn feed_file(
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
    let (q, narrowing) = match feed_query(query).and_then(|q| Ok((q, narrowing(query)?))) {
        Ok(parsed) => parsed,
        Err(why) => return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
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
    let key = format!("{scope:?}|{format:?}|{q:?}|{}|{host}", narrowing.key);
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
                    let req = FeedRequest {
                        scope: &scope,
                        format,
                        q: &q,
                        narrowing: &narrowing,
                        uri,
                        headers,
                    };
                    match render_and_cache(&state, &req, &config, target).await {
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
    if let Some(value) = &rendered.last_modified_header {
        h.insert(LAST_MODIFIED, value.clone());
    }
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

/// `?limit=`, `?before=`, `?q=`, `?source=`, `?tag=`; Err says what is wrong (a 400).
fn feed_query(query: &HashMap<String, String>) -> Result<FeedQuery, String> {
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if n > 0 => n.min(MAX_LIMIT),
        Some(_) => return Err(format!("limit must be a number from 1 to {MAX_LIMIT}")),
    };
    let before = match query.get("before") {
        None => None,
        Some(c) => match Cursor::decode(c) {
            Some(c) => Some(c),
            None => return Err(format!("before={c:?} is not a cursor from a next link")),
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
        since: None,
    };
    Ok(q)
}

/// A subscriber's own narrowing: `?filter=`, `?filterout=` (a literal or `/regex/`, on the
/// title and text), `?since=` and `?max_age=`; `key` is what the cache tells them apart by.
struct Narrowing {
    subscription: Subscription,
    since: Option<DateTime<Utc>>,
    max_age: Option<chrono::Duration>,
    key: String,
}

fn narrowing(query: &HashMap<String, String>) -> Result<Narrowing, String> {
    let get = |k: &str| query.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let pattern = |k: &str| {
        get(k)
            .map(|v| Pattern::parse(v).map_err(|why| format!("{k}={v:?}: {why}")))
            .transpose()
    };
    let subscription = Subscription {
        filter: pattern("filter")?,
        filterout: pattern("filterout")?,
    };
    let since = get("since")
        .map(|v| {
            parse_since(v).ok_or_else(|| {
                format!("since={v:?} is not a date (2026-12-01, 2026-12-01T08:00:00+08:00, or Unix seconds)")
            })
        })
        .transpose()?;
    let max_age = get("max_age")
        .map(|v| {
            parse_age(v).ok_or_else(|| {
                format!("max_age={v:?} is not an age (a number of days, or with a unit: 90m, 12h, 7d, 2w)")
            })
        })
        .transpose()?;
    let key = format!(
        "{:?}|{:?}|{:?}|{:?}",
        get("filter"),
        get("filterout"),
        since.map(|t| t.timestamp()),
        max_age.map(|a| a.num_seconds())
    );
    Ok(Narrowing {
        subscription,
        since,
        max_age,
        key,
    })
}

/// RFC 3339, a day (its start, UTC), or Unix seconds.
fn parse_since(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc());
    }
    v.parse::<i64>()
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
}

/// `7` (days), `90m`, `12h`, `7d`, `2w`.
fn parse_age(v: &str) -> Option<chrono::Duration> {
    let (number, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => v.split_at(i),
        None => (v, "d"),
    };
    let n: i64 = number.parse().ok().filter(|n| *n > 0)?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    // At most about a century: beyond that every entry is younger anyway.
    Some(chrono::Duration::seconds(
        n.min(40_000 * 86_400 / secs) * secs,
    ))
}

/// One request for a feed: what it names and how it asks.
struct FeedRequest<'a> {
    scope: &'a Scope,
    format: Format,
    q: &'a FeedQuery,
    narrowing: &'a Narrowing,
    uri: &'a Uri,
    headers: &'a HeaderMap,
}

/// What a render is cached under, and the render it replaces.
struct CacheTarget {
    key: String,
    generation: u64,
    previous: Option<Arc<Rendered>>,
}

/// Queries the store for a feed, renders it and caches the render; Err is the answer to give
/// when the feed does not exist or the store fails.
async fn render_and_cache(
    state: &AppState,
    req: &FeedRequest<'_>,
    config: &Arc<crate::config::Config>,
    target: CacheTarget,
) -> Result<Arc<Rendered>, Response> {
    let scope = req.scope;
    let CacheTarget {
        key,
        generation,
        previous,
    } = target;
    let hub = config.server.websub_hub.as_ref().map(Url::to_string);
    let now = Utc::now();
    let mut q = req.q.clone();
    let n = req.narrowing;
    q.since = [n.since, n.max_age.map(|age| now - age)]
        .into_iter()
        .flatten()
        .max()
        .map(|t| t.timestamp());
    let lookup = scope.clone();
    let book = state.rules.of(config);
    let subscription = n.subscription.clone();
    let result = state
        .store
        .call(move |store| {
            let Some(title) = store.scope_title(&lookup)? else {
                return Ok(None);
            };
            let showing = Showing {
                scope: &lookup,
                q: &q,
                subscription: &subscription,
                book: &book,
                now,
            };
            super::page(store, &showing).map(|p| Some((title, p)))
        })
        .await;
    let (title, page) = match result {
        Ok(Some(found)) => found,
        Ok(None) => {
            return Err(not_found(&match scope {
                Scope::Source(id) => format!("no source {id:?}"),
                Scope::Category(c) => format!("no category {c:?}"),
                Scope::Tag(t) => format!("no tag {t:?}"),
                Scope::All => "no feed".into(),
            }));
        }
        Err(e) => {
            tracing::error!(error = %e, "feed query failed");
            return Err((StatusCode::INTERNAL_SERVER_ERROR, "store error\n").into_response());
        }
    };
    let mut rendered = Arc::new(render(
        req,
        title,
        &page,
        &base_url(state, req.headers),
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

fn render(
    req: &FeedRequest<'_>,
    title: String,
    page: &Page,
    base: &Url,
    hub: Option<&str>,
    max_age: u64,
) -> Rendered {
    let FeedRequest {
        scope,
        format,
        q,
        uri,
        ..
    } = *req;
    let entries = &page.entries;
    let (kind, key) = feed_urls::parts(scope);
    let key = key.to_string();
    let mut title = title;
    if let Some(text) = &q.text {
        title = format!("{title}: {text}");
    }
    // A full page may have more behind it: RFC 5005 `next` (JSON Feed `next_url`).
    let next_url = page.next.map(|next_cursor| {
        let mut next = base.join(uri.path()).unwrap_or_else(|_| base.clone());
        {
            let mut pairs = next.query_pairs_mut();
            for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
                if k != "before" {
                    pairs.append_pair(&k, &v);
                }
            }
            pairs.append_pair("before", &next_cursor.encode());
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
        home_url: feed_urls::page_url(base, scope).to_string(),
        next_url,
        hub: hub.map(str::to_string),
        built: *STARTED.get_or_init(Utc::now),
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
        last_modified_header: last_modified
            .map(|t| HeaderValue::try_from(http_date(t)).expect("an HTTP date is a header value")),
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

/// When this process first rendered a feed: the `updated` of a feed with no entries, the same
/// on every render so that its ETag does not change while nothing does.
static STARTED: std::sync::OnceLock<DateTime<Utc>> = std::sync::OnceLock::new();

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

pub(super) fn base_url(state: &AppState, headers: &HeaderMap) -> Url {
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
fn not_modified(
    headers: &HeaderMap,
    etag: &HeaderValue,
    last_modified: Option<DateTime<Utc>>,
) -> bool {
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
        .zip(last_modified)
        .is_some_and(|(since, last)| last.timestamp() <= since.timestamp())
}

pub(super) fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}
