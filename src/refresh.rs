//! One source through the pipeline: fetch → parse → normalize → store.
//!
//! `tributary fetch` and the daemon call the same [`refresh_source`], so what a one-off run
//! reports is what the daemon does. A failure is recorded on the source and returned as a
//! report; it never touches stored entries and never stops another source.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::config::SourceConfig;
use crate::fetch::{FetchError, FetchOutcome, Fetcher};
use crate::parse::ParseError;
use crate::store::{FetchRecord, Store, StoreError, UpsertCounts};
use crate::{normalize, parse};

/// What happened to one source.
#[derive(Debug)]
pub struct RefreshReport {
    pub source_id: String,
    pub outcome: Result<Refreshed, RefreshError>,
    pub bytes: usize,
    pub duration: Duration,
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
            Err(e) => format!("{}: error: {e}", self.source_id),
        }
    }
}

/// Fetches, parses, normalizes and stores one source, records the outcome on the source, and
/// logs one line.
pub async fn refresh_source(
    fetcher: &Fetcher,
    store: &Arc<Store>,
    source: &SourceConfig,
) -> RefreshReport {
    let started = Instant::now();
    let mut bytes = 0;
    let outcome = run(fetcher, store, source, &mut bytes).await;
    let report = RefreshReport {
        source_id: source.id.clone(),
        outcome,
        bytes,
        duration: started.elapsed(),
    };
    log(&report, source);
    report
}

async fn run(
    fetcher: &Fetcher,
    store: &Arc<Store>,
    source: &SourceConfig,
    bytes: &mut usize,
) -> Result<Refreshed, RefreshError> {
    let id = source.id.clone();
    let validators = blocking(store, move |s| s.validators(&id)).await?;
    let fetched = fetcher.get(&source.url, &validators).await;
    let now = Utc::now();
    let fetched = match fetched {
        Ok(FetchOutcome::NotModified(validators)) => {
            let id = source.id.clone();
            blocking(store, move |s| {
                s.record_fetch(
                    &id,
                    &FetchRecord {
                        at: now,
                        status: "not modified",
                        error: None,
                        validators: Some(&validators),
                    },
                )
            })
            .await?;
            return Ok(Refreshed::NotModified);
        }
        Ok(FetchOutcome::Fetched(f)) => f,
        Err(e) => return Err(record_failure(store, source, now, e.into()).await),
    };
    *bytes = fetched.body.len();

    let feed = match parse::parse(&fetched.body) {
        Ok(feed) => feed,
        Err(e) => return Err(record_failure(store, source, now, e.into()).await),
    };
    let entries: Vec<_> = feed
        .items
        .into_iter()
        .map(|item| normalize::normalize(&source.id, &fetched.url, item))
        .collect();

    let id = source.id.clone();
    let validators = fetched.validators;
    let counts = blocking(store, move |s| {
        let counts = s.upsert_entries(&id, &entries, now)?;
        s.record_fetch(
            &id,
            &FetchRecord {
                at: now,
                status: "ok",
                error: None,
                validators: Some(&validators),
            },
        )?;
        Ok(counts)
    })
    .await?;
    Ok(Refreshed::Stored(counts))
}

/// Records a failed fetch on the source (keeping its validators and entries) and hands the
/// error back.
async fn record_failure(
    store: &Arc<Store>,
    source: &SourceConfig,
    now: chrono::DateTime<Utc>,
    err: RefreshError,
) -> RefreshError {
    let id = source.id.clone();
    let message = err.to_string();
    let recorded = blocking(store, move |s| {
        s.record_fetch(
            &id,
            &FetchRecord {
                at: now,
                status: "error",
                error: Some(&message),
                validators: None,
            },
        )
    })
    .await;
    if let Err(store_err) = recorded {
        tracing::error!(source = %source.id, error = %store_err, "cannot record fetch failure");
    }
    err
}

async fn blocking<T: Send + 'static>(
    store: &Arc<Store>,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, RefreshError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| RefreshError::Task(e.to_string()))?
        .map_err(RefreshError::from)
}

fn log(report: &RefreshReport, source: &SourceConfig) {
    let ms = report.duration.as_millis() as u64;
    match &report.outcome {
        Ok(Refreshed::Stored(c)) => tracing::info!(
            source = %source.id, status = "ok", bytes = report.bytes, new = c.new,
            updated = c.updated, duplicate = c.unchanged, duration_ms = ms, "fetched"
        ),
        Ok(Refreshed::NotModified) => tracing::info!(
            source = %source.id, status = "not modified", bytes = 0, new = 0, updated = 0,
            duplicate = 0, duration_ms = ms, "fetched"
        ),
        Err(e) => tracing::warn!(
            source = %source.id, status = "error", url = %source.url, error = %e,
            duration_ms = ms, "fetch failed"
        ),
    }
}
