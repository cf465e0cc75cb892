//! Claiming a fetch when instances share the store (PostgreSQL): the instance that claims a
//! due source fetches it, the others wait for the next run it plans (`store::pg::leases`).
//! Claims last `[storage] lease_secs` and are renewed while the instance runs, so only a
//! crashed instance's sources wait for theirs to run out. On a store of one's own every
//! claim is taken at once, with no call.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{blocking, RefreshError};
use crate::config::SourceConfig;
use crate::store::Store;

/// A claim this instance's fetch runs on, renewed while it is held; dropped (the fetch done,
/// or its task stopped) it is renewed no more, and runs out unless given back first.
pub struct Held {
    claim: Option<(Arc<Store>, String)>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some((store, id)) = &self.claim {
            store.forget_claim(id);
        }
    }
}

/// Whether this instance fetches `source` now (its claim), or when to ask again: with
/// instances sharing the store, the one that claims a due source fetches it, the others wait
/// for the next run it plans (see `store::pg::leases`). Always now on a store of one's own.
pub async fn claim(
    store: &Arc<Store>,
    source: &SourceConfig,
    per_host: usize,
    forced: bool,
) -> Result<Result<Held, DateTime<Utc>>, RefreshError> {
    if !store.is_shared() {
        return Ok(Ok(Held { claim: None }));
    }
    let id = source.id.clone();
    let wait = blocking(store, move |s| {
        let claim = s.claim(&crate::store::pg::ClaimRequest {
            source_id: &id,
            now: Utc::now(),
            ttl: s.lease_ttl(),
            per_host,
            forced,
        })?;
        Ok(match claim {
            crate::store::pg::Claim::Taken => None,
            crate::store::pg::Claim::Wait(at) => Some(at),
        })
    })
    .await?;
    // Held from here: a task stopped while the claim was being taken never renews it.
    Ok(match wait {
        None => {
            store.hold_claim(&source.id);
            Ok(Held {
                claim: Some((store.clone(), source.id.clone())),
            })
        }
        Some(at) => Err(at),
    })
}

/// Ends this instance's claim on `source` once its fetch and next run are stored.
pub async fn unclaim(store: &Arc<Store>, source: &SourceConfig) -> Result<(), RefreshError> {
    if !store.is_shared() {
        return Ok(());
    }
    let id = source.id.clone();
    blocking(store, move |s| s.unclaim(&id)).await
}

/// Renews the claims this instance's running fetches hold every third of their length for as
/// long as the daemon runs: a fetch of many pages may outlast a lease, and a renewal that
/// fails once is tried again before any claim runs out. Returns at once on a store of one's
/// own.
pub async fn renew_claims(store: Arc<Store>) {
    if !store.is_shared() {
        return;
    }
    let every = (store.lease_ttl() / 3)
        .to_std()
        .unwrap_or(std::time::Duration::from_secs(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = blocking(&store, |s| s.renew_claims(Utc::now())).await {
            tracing::warn!(error = %e, "cannot renew this instance's claims; trying again");
        }
    }
}
