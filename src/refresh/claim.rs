//! Claiming a fetch when instances share the store (PostgreSQL): the instance that claims a
//! due source fetches it, the others wait for the next run it plans (`store::pg::leases`). On
//! a store of one's own every claim is taken at once, with no call.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{blocking, RefreshError};
use crate::config::SourceConfig;
use crate::store::Store;

/// How long a claimed fetch holds its source against the other instances sharing the store:
/// far past any fetch's length (each request is bounded by `[fetch] timeout_secs`), so only a
/// crashed instance's sources wait for it to run out.
pub const LEASE_TTL: chrono::Duration = chrono::Duration::minutes(10);

/// Whether this instance fetches `source` now (`None`), or when to ask again: with instances
/// sharing the store, the one that claims a due source fetches it, the others wait for the
/// next run it plans (see `store::pg::leases`). Always now on a store of one's own.
pub async fn claim(
    store: &Arc<Store>,
    source: &SourceConfig,
    per_host: usize,
    forced: bool,
) -> Result<Option<DateTime<Utc>>, RefreshError> {
    if !store.is_shared() {
        return Ok(None);
    }
    let id = source.id.clone();
    blocking(store, move |s| {
        let claim = s.claim(&crate::store::pg::ClaimRequest {
            source_id: &id,
            now: Utc::now(),
            ttl: LEASE_TTL,
            per_host,
            forced,
        })?;
        Ok(match claim {
            crate::store::pg::Claim::Taken => None,
            crate::store::pg::Claim::Wait(at) => Some(at),
        })
    })
    .await
}

/// Ends this instance's claim on `source` once its fetch and next run are stored.
pub async fn unclaim(store: &Arc<Store>, source: &SourceConfig) -> Result<(), RefreshError> {
    if !store.is_shared() {
        return Ok(());
    }
    let id = source.id.clone();
    blocking(store, move |s| s.unclaim(&id)).await
}
