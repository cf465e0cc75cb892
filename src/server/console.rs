//! The console's routes: `/`, `/search`, the pages of categories, tags and sources (the
//! feeds' paths without an extension), `/sources`, `/entries/{id}` and the stylesheet.
//!
//! Handlers read the store on the blocking pool and hand plain structs to `pages`. Every
//! page goes out with the strict Content-Security-Policy and no caching by intermediaries: it
//! shows live state.

use std::collections::HashMap;

use axum::extract::{MatchedPath, Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use std::sync::Arc;

use super::feeds::{base_url, feed_file};
use super::{AppState, Showing};
use crate::feed_urls;
use crate::model::{Cursor, FeedQuery, Page, Scope, StoredEntry};
use crate::pages::{self, CategoryCard, Site};
use crate::rules::{Book, Subscription};
use crate::store::{Store, StoreError};

/// Entries a category shows on the home page.
const HOME_NEWEST: usize = 5;
/// Entries on a scope's or a source's page, and search results.
const PAGE_ENTRIES: usize = 50;

/// An HTML answer with the console's headers.
pub(super) fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CONTENT_SECURITY_POLICY, pages::CONTENT_SECURITY_POLICY),
            (CACHE_CONTROL, "no-cache"),
            (REFERRER_POLICY, "same-origin"),
        ],
        body,
    )
        .into_response()
}

fn site<'a>(state: &AppState, base: &'a url::Url) -> Site<'a> {
    Site {
        base,
        admin: state.admin_token.is_some(),
    }
}

/// Runs `read` on the blocking pool; a store error is logged and answered with a 500 page.
async fn read<T: Send + 'static>(
    state: &AppState,
    read: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    state.store.call(read).await.map_err(|e| {
        tracing::error!(error = %e, "console: store read failed");
        message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The store could not be read; see the log.",
        )
    })
}

fn message(status: StatusCode, text: &str) -> Response {
    let page = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (status.as_u16()) " · tributary" } }
            body { h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) } p { (text) } p { a href="/" { "Feeds" } } }
        }
    };
    html(status, page.into_string())
}

pub(super) async fn stylesheet() -> Response {
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        pages::STYLESHEET,
    )
        .into_response()
}

/// The running config's rules.
fn book(state: &AppState) -> Arc<Book> {
    let config = state.config.borrow().clone();
    state.rules.of(&config)
}

/// A page of `scope` as the feeds show it (the rules applied; no subscriber's narrowing).
fn shown(store: &Store, book: &Book, scope: &Scope, q: &FeedQuery) -> Result<Page, StoreError> {
    let showing = Showing {
        scope,
        q,
        subscription: &Subscription::default(),
        book,
        now: chrono::Utc::now(),
    };
    super::page(store, &showing)
}

/// What the home page shows: every category of the active sources with its counts and
/// newest entries (as its feed shows them), by name. Public for the benchmark that times the
/// page at scale.
pub fn home_cards(store: &Store, book: &Book) -> Result<Vec<CategoryCard>, StoreError> {
    let mut by_category: std::collections::BTreeMap<String, CategoryCard> = Default::default();
    for s in store.source_statuses()?.into_iter().filter(|s| s.active) {
        let card = by_category
            .entry(s.category.clone())
            .or_insert_with(|| CategoryCard {
                name: s.category.clone(),
                entries: 0,
                sources: 0,
                newest: Vec::new(),
            });
        card.entries += s.entry_count;
        card.sources += 1;
    }
    for card in by_category.values_mut() {
        let q = FeedQuery {
            limit: HOME_NEWEST,
            ..Default::default()
        };
        card.newest = shown(store, book, &Scope::Category(card.name.clone()), &q)?.entries;
    }
    Ok(by_category.into_values().collect())
}

pub(super) async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let book = book(&state);
    let cards = read(&state, move |store| home_cards(store, &book)).await;
    let base = base_url(&state, &headers);
    match cards {
        Ok(cards) => html(StatusCode::OK, pages::home(&site(&state, &base), &cards)),
        Err(response) => response,
    }
}

pub(super) async fn search(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let q = query
        .get("q")
        .map(|q| q.trim().to_string())
        .unwrap_or_default();
    let results = if q.is_empty() {
        Ok(Vec::new())
    } else {
        let text = q.clone();
        let book = book(&state);
        read(&state, move |store| {
            let q = FeedQuery {
                limit: PAGE_ENTRIES,
                text: Some(text),
                ..Default::default()
            };
            Ok(shown(store, &book, &Scope::All, &q)?.entries)
        })
        .await
    };
    let base = base_url(&state, &headers);
    match results {
        Ok(found) => html(
            StatusCode::OK,
            pages::search_page(&site(&state, &base), &q, &found),
        ),
        Err(response) => response,
    }
}

/// `/feeds/{file}`, `/sources/{file}`, `/tags/{file}`: a feed when the name ends in a feed
/// format's extension, else the console's page of that scope.
pub(super) async fn page_or_feed(
    state: State<AppState>,
    route: MatchedPath,
    file: Path<String>,
    query: Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if !feed_urls::is_page_name(&file) {
        return feed_file(state, route, file, query, uri, headers).await;
    }
    let dir = route.as_str().trim_start_matches('/');
    let dir = dir.strip_suffix("/{file}").unwrap_or(dir);
    let Some(scope) = feed_urls::scope(dir, &file) else {
        return message(StatusCode::NOT_FOUND, "No such page.");
    };
    let before = match query.get("before").map(|c| Cursor::decode(c)) {
        None => None,
        Some(Some(c)) => Some(c),
        Some(None) => {
            return message(
                StatusCode::BAD_REQUEST,
                "`before` is not a cursor from an “Older entries” link.",
            )
        }
    };
    match scope {
        Scope::Source(id) => source(state.0, id, &headers).await,
        scope => scope_page(state.0, scope, before, &uri, &headers).await,
    }
}

async fn scope_page(
    state: AppState,
    scope: Scope,
    before: Option<Cursor>,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let lookup = scope.clone();
    let book = book(&state);
    let found = read(&state, move |store| {
        let Some(title) = store.scope_title(&lookup)? else {
            return Ok(None);
        };
        let q = FeedQuery {
            limit: PAGE_ENTRIES,
            before,
            ..Default::default()
        };
        Ok(Some((title, shown(store, &book, &lookup, &q)?)))
    })
    .await;
    let (title, Page { entries, next }) = match found {
        Ok(Some(found)) => found,
        Ok(None) => {
            return message(
                StatusCode::NOT_FOUND,
                "No configured source makes this feed.",
            )
        }
        Err(response) => return response,
    };
    let base = base_url(&state, headers);
    let older = next.and_then(|next| older_link(&base, uri, next));
    let page = pages::ScopePage {
        scope: &scope,
        title: &title,
        entries: &entries,
        older,
    };
    html(
        StatusCode::OK,
        pages::scope_page(&site(&state, &base), &page),
    )
}

/// The link to the page that starts at `cursor`.
fn older_link(base: &url::Url, uri: &Uri, cursor: Cursor) -> Option<String> {
    let mut next = base.join(uri.path().trim_start_matches('/')).ok()?;
    next.query_pairs_mut()
        .clear()
        .append_pair("before", &cursor.encode());
    Some(next.to_string())
}

async fn source(state: AppState, id: String, headers: &HeaderMap) -> Response {
    let config = state.config.borrow().clone();
    let lookup = id.clone();
    let book = state.rules.of(&config);
    let found = read(&state, move |store| {
        let Some(status) = store
            .source_statuses()?
            .into_iter()
            .find(|s| s.id == lookup)
        else {
            return Ok(None);
        };
        let q = FeedQuery {
            limit: PAGE_ENTRIES,
            ..Default::default()
        };
        let seen = store.source_seen(&lookup)?;
        Ok(Some((
            status,
            shown(store, &book, &Scope::Source(lookup), &q)?.entries,
            seen,
        )))
    })
    .await;
    let (status, entries, seen) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return message(StatusCode::NOT_FOUND, &format!("No source {id:?}.")),
        Err(response) => return response,
    };
    let configured = config.source(&id);
    let table = configured.and_then(|_| crate::config_edit::source_table(&config.path, &id).ok());
    let url = configured.map(|s| s.url.to_string());
    let base = base_url(&state, headers);
    let page = pages::SourcePage {
        status: &status,
        url: url.as_deref(),
        config: table.as_deref(),
        entries: &entries,
        seen: seen.as_ref(),
    };
    html(
        StatusCode::OK,
        pages::source_page(&site(&state, &base), &page, None),
    )
}

pub(super) async fn sources(State(state): State<AppState>, headers: HeaderMap) -> Response {
    sources_with(&state, &headers, None).await
}

/// The sources page, with what a form just did at the top.
pub(super) async fn sources_with(
    state: &AppState,
    headers: &HeaderMap,
    flash: Option<&pages::Flash>,
) -> Response {
    let base = base_url(state, headers);
    match read(state, |store| store.source_statuses()).await {
        Ok(all) => html(
            StatusCode::OK,
            pages::sources_page(&site(state, &base), &all, flash),
        ),
        Err(response) => response,
    }
}

pub(super) async fn entry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return message(StatusCode::NOT_FOUND, "Entry ids are numbers.");
    };
    let book = book(&state);
    let found = read(&state, move |store| {
        Ok(store.entry(id, !book.is_empty())?.map(|e| {
            let rules = verdicts(&book, &e);
            (e, store.explain(id), rules)
        }))
    })
    .await;
    let (entry, cluster, rules) = match found {
        Ok(Some((entry, cluster, rules))) => (entry, cluster.ok().flatten(), rules),
        Ok(None) => return message(StatusCode::NOT_FOUND, &format!("No entry {id}.")),
        Err(response) => return response,
    };
    let base = base_url(&state, &headers);
    let cluster = cluster
        .as_ref()
        .map(|(id, members)| pages::Cluster { id: *id, members });
    html(
        StatusCode::OK,
        pages::entry_page(&site(&state, &base), &entry, cluster, &rules),
    )
}

/// What the rules say of `e` in each of its sources' feeds.
fn verdicts(book: &Book, e: &StoredEntry) -> Vec<(String, String)> {
    if book.is_empty() {
        return Vec::new();
    }
    let now = chrono::Utc::now();
    e.sources
        .iter()
        .filter(|s| {
            e.copies
                .iter()
                .any(|c| c.entry_id == e.id && c.source_id == s.source_id)
        })
        .map(|s| {
            let scope = Scope::Source(s.source_id.clone());
            let view = crate::rules::View {
                scope: &scope,
                source: None,
                tag: None,
            };
            (s.source_id.clone(), book.explain(&view, e, now).to_string())
        })
        .collect()
}
