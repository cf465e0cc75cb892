//! Write actions, for the admin token only: add a source (found and read once first), remove,
//! enable or disable one, or fetch one now. Over the JSON API (`Authorization: Bearer`) and as
//! the console's forms (`POST /sources`, the token a form field: no cookie, so no session a
//! third-party page could ride on, and a browser's cross-origin POST is refused outright).
//!
//! The server writes no SQL here either: the config file is changed through `config_edit`
//! (or `subscribe`), the daemon told to reload it, and a fetch asked of the scheduler.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::header::{AUTHORIZATION, HOST, ORIGIN, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::{Form, Json};
use serde::Deserialize;

use super::console;
use super::{json, json_error, statuses, AppState};
use crate::config_edit::{self, EditError};
use crate::pages::Flash;
use crate::subscribe::{self, AddError, AddRequest};

/// How long an action waits for the daemon to reload the config it changed, so that the
/// answer can say the source is scheduled (and an added source be fetched at once).
const RELOAD_WAIT: Duration = Duration::from_secs(5);

/// One write action.
#[derive(Debug, Clone)]
enum Action {
    Add {
        url: String,
        category: Option<String>,
        id: Option<String>,
    },
    Refresh(String),
    Enable(String),
    Disable(String),
    Remove(String),
}

/// The outcome of an action: the source it concerns and what happened, or why not.
type Outcome = Result<(String, String), (StatusCode, String)>;

/// Whether `given` is the admin token; None when the admin API is off.
fn token_matches(state: &AppState, given: &str) -> Option<bool> {
    let expected = state.admin_token.as_deref()?;
    Some(same_token(given, expected))
}

/// The tokens are compared through their BLAKE3 hashes, whose equality is constant-time: the
/// time taken says nothing about how much of a guess was right, nor about the token's length.
fn same_token(given: &str, expected: &str) -> bool {
    blake3::hash(given.trim().as_bytes()) == blake3::hash(expected.as_bytes())
}

/// Whether `Authorization` carries `Bearer <expected>`.
fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, given)) = value.trim().split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && same_token(given, expected)
}

/// The `Authorization: Bearer` check of the JSON API: None when it passes, else the answer
/// (403 while no admin token is configured, 401 without the right one).
fn bearer_refusal(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let Some(expected) = state.admin_token.as_deref() else {
        return Some(json_error(
            StatusCode::FORBIDDEN,
            "the admin API is off: set [server] admin_token to turn it on",
        ));
    };
    if bearer_matches(headers, expected) {
        return None;
    }
    let mut response = json_error(
        StatusCode::UNAUTHORIZED,
        "missing or wrong bearer token (Authorization: Bearer <[server] admin_token>)",
    );
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"tributary\""),
    );
    Some(response)
}

/// Runs an action. Config changes are written, then the daemon is told and given a moment
/// to reload, so that a source added is fetched at once and one enabled is scheduled.
async fn perform(state: &AppState, action: Action) -> Outcome {
    let path = state.config.borrow().path.clone();
    let (id, done) = match action {
        Action::Refresh(id) => {
            return match state.scheduler.trigger(&id) {
                true => Ok((id.clone(), format!("{id}: fetch queued"))),
                false => Err((
                    StatusCode::CONFLICT,
                    format!("{id} is not scheduled: it is disabled or not in the config"),
                )),
            }
        }
        Action::Add { url, category, id } => add(state, &path, &url, category, id).await?,
        Action::Remove(id) => {
            let removed = tokio::task::spawn_blocking({
                let (path, id) = (path.clone(), id.clone());
                move || config_edit::remove_source(&path, &id)
            })
            .await;
            edited(removed)?;
            (
                id.clone(),
                format!("{id} removed from the config; its stored entries stay"),
            )
        }
        Action::Enable(id) => switch(&path, id, true).await?,
        Action::Disable(id) => switch(&path, id, false).await?,
    };
    state.config_written.notify_one();
    Ok((id, done))
}

/// Enables or disables a source in the config file.
async fn switch(
    path: &std::path::Path,
    id: String,
    on: bool,
) -> Result<(String, String), (StatusCode, String)> {
    let changed = tokio::task::spawn_blocking({
        let (path, id) = (path.to_path_buf(), id.clone());
        move || config_edit::set_enabled(&path, &id, on)
    })
    .await;
    let word = if on { "enabled" } else { "disabled" };
    let line = match edited(changed)? {
        true => format!("{id} {word}"),
        false => format!("{id} was already {word}"),
    };
    Ok((id, line))
}

/// A config edit run on the blocking pool, as the answer's status and text when it failed.
fn edited<T>(
    r: Result<Result<T, EditError>, tokio::task::JoinError>,
) -> Result<T, (StatusCode, String)> {
    match r {
        Ok(edit) => edit.map_err(edit_refusal),
        Err(e) => Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the config edit did not finish: {e}"),
        )),
    }
}

fn edit_refusal(e: EditError) -> (StatusCode, String) {
    let status = match e {
        EditError::NoSource { .. } => StatusCode::NOT_FOUND,
        EditError::WouldNotLoad(_) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, e.to_string())
}

/// Adds a source; once the daemon has it scheduled, asks for its first fetch now.
async fn add(
    state: &AppState,
    path: &std::path::Path,
    url: &str,
    category: Option<String>,
    id: Option<String>,
) -> Result<(String, String), (StatusCode, String)> {
    let reserved: HashSet<String> = statuses(state)
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e))?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let req = AddRequest {
        url,
        category: category.as_deref().filter(|c| !c.trim().is_empty()),
        id: id.as_deref().map(str::trim).filter(|i| !i.is_empty()),
        name: None,
        reserved: &reserved,
    };
    let added = subscribe::add(path, &req).await.map_err(|e| {
        let status = match e {
            AddError::Exists { .. } | AddError::IdTaken(_) => StatusCode::CONFLICT,
            AddError::Url(_)
            | AddError::Discover(_)
            | AddError::Edit(EditError::WouldNotLoad(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, e.to_string())
    })?;
    let id = added.source.id.clone();
    state.config_written.notify_one();
    let scheduled = wait_until(|| state.scheduler.trigger(&id)).await;
    tracing::info!(source = %id, url = %added.source.url, "source added through the admin API");
    let line = format!(
        "{id} added: {} <{}>, {} items read{}",
        added.source.name,
        added.source.url,
        added.items,
        if scheduled {
            "; its first fetch is under way"
        } else {
            "; the daemon fetches it once it has reloaded"
        }
    );
    Ok((id, line))
}

/// Asks the scheduler to fetch a source now. 403 while no admin token is configured, 401
/// without the right `Authorization: Bearer` token, 404 for a source the store does not know,
/// 409 for one it knows that is not scheduled (disabled or gone from the config), else 202:
/// the fetch starts as soon as the source's task and a fetch slot are free.
pub(super) async fn api_refresh(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = bearer_refusal(&state, &headers) {
        return refusal;
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

/// Polls `done` until it holds or [`RELOAD_WAIT`] has passed.
async fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + RELOAD_WAIT;
    loop {
        if done() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `POST /api/sources` with `{"url": …, "category": …, "id": …}`: 201 with the new source's
/// id, 409 when the feed or the id is taken, 422 when no feed is found.
pub(super) async fn api_add(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<HashMap<String, String>>,
) -> Response {
    if let Some(refusal) = bearer_refusal(&state, &headers) {
        return refusal;
    }
    let Some(url) = body.get("url").cloned() else {
        return json_error(StatusCode::BAD_REQUEST, "url is required");
    };
    let action = Action::Add {
        url,
        category: body.get("category").cloned(),
        id: body.get("id").cloned(),
    };
    answer_json(perform(&state, action).await, StatusCode::CREATED)
}

/// A bearer-checked action of the JSON API.
async fn api_do(state: &AppState, headers: &HeaderMap, action: Action) -> Response {
    if let Some(refusal) = bearer_refusal(state, headers) {
        return refusal;
    }
    answer_json(perform(state, action).await, StatusCode::OK)
}

/// `POST /api/sources/{id}/enable`.
pub(super) async fn api_enable(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    api_do(&state, &headers, Action::Enable(id)).await
}

/// `POST /api/sources/{id}/disable`.
pub(super) async fn api_disable(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    api_do(&state, &headers, Action::Disable(id)).await
}

/// `DELETE /api/sources/{id}`.
pub(super) async fn api_remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    api_do(&state, &headers, Action::Remove(id)).await
}

fn answer_json(outcome: Outcome, ok: StatusCode) -> Response {
    match outcome {
        Ok((id, message)) => json(ok, &serde_json::json!({ "id": id, "message": message })),
        Err((status, message)) => json_error(status, &message),
    }
}

/// The console's form fields.
#[derive(Debug, Deserialize)]
pub(super) struct FormFields {
    #[serde(default)]
    token: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    category: String,
}

/// Whether a browser sent this POST from another site: its `Origin` (or `Sec-Fetch-Site`)
/// says so. Clients that send neither (curl, scripts) are not browsers a page can drive.
fn cross_origin(headers: &HeaderMap) -> bool {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = header("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    match (header(ORIGIN.as_str()), header(HOST.as_str())) {
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            !origin_host.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// `POST /sources`: the console's forms. The answer is the sources page (or the source's
/// own page) with what happened at the top.
pub(super) async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(fields): Form<FormFields>,
) -> Response {
    let outcome = if cross_origin(&headers) {
        Err((
            StatusCode::FORBIDDEN,
            "refused: the form was posted from another site".to_string(),
        ))
    } else {
        match token_matches(&state, &fields.token) {
            None => Err((
                StatusCode::FORBIDDEN,
                "write actions are off: set [server] admin_token".to_string(),
            )),
            Some(false) => Err((StatusCode::UNAUTHORIZED, "wrong admin token".to_string())),
            Some(true) => match form_action(fields) {
                Ok(action) => perform(&state, action).await,
                Err(why) => Err((StatusCode::BAD_REQUEST, why)),
            },
        }
    };
    let (status, flash) = match outcome {
        Ok((_, text)) => (StatusCode::OK, Flash { ok: true, text }),
        Err((status, text)) => (status, Flash { ok: false, text }),
    };
    let mut response = console::sources_with(&state, &headers, Some(&flash)).await;
    if response.status() == StatusCode::OK {
        *response.status_mut() = status;
    }
    response
}

fn form_action(f: FormFields) -> Result<Action, String> {
    let id = f.id.trim().to_string();
    let need_id = |a: fn(String) -> Action| match id.is_empty() {
        true => Err("choose a source".to_string()),
        false => Ok(a(id.clone())),
    };
    match f.action.as_str() {
        "add" => Ok(Action::Add {
            url: f.url,
            category: Some(f.category),
            id: Some(id.clone()),
        }),
        "refresh" => need_id(Action::Refresh),
        "enable" => need_id(Action::Enable),
        "disable" => need_id(Action::Disable),
        "remove" => need_id(Action::Remove),
        other => Err(format!("unknown action {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, value.parse().unwrap());
        h
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
