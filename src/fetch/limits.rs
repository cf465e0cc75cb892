//! How many fetches may run at once in all (`[fetch] concurrency`), and how many requests
//! against one host (`[fetch] per_host`).
//!
//! The limits belong to the process, not to an HTTP client: a reload builds new clients (a
//! new user agent or timeout) while sources that did not change keep theirs, and every one of
//! them counts against the same [`Limits`], which the reload resizes. Two sets of limits
//! would each allow their bound, and together twice it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::FetchConfig;

/// The process's fetch limits; shared (`Arc`) by every fetcher and scheduler task.
#[derive(Debug)]
pub struct Limits {
    fetches: Arc<Limit>,
    per_host: Mutex<usize>,
    hosts: Mutex<HashMap<String, Arc<Limit>>>,
    /// Fetches of a host being claimed or run, when instances share the store: as many as
    /// its requests, so this instance never asks the store for a claim its own fetches hold
    /// the host's bound against (and waits for one of them instead of asking again later).
    claims: Mutex<HashMap<String, Arc<Limit>>>,
}

/// A place among the fetches or requests that may run at once; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    limit: Arc<Limit>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // A limit that shrank while this slot was held takes it out of use instead.
        if let Some(permit) = self.permit.take() {
            let mut state = lock(&self.limit.state);
            if state.owed > 0 {
                state.owed -= 1;
                permit.forget();
            }
        }
    }
}

impl Limits {
    pub fn new(config: &FetchConfig) -> Arc<Limits> {
        Limits::sized(config.concurrency, config.per_host)
    }

    fn sized(concurrency: usize, per_host: usize) -> Arc<Limits> {
        Arc::new(Limits {
            fetches: Limit::new(concurrency),
            per_host: Mutex::new(per_host.max(1)),
            hosts: Mutex::default(),
            claims: Mutex::default(),
        })
    }

    /// Resizes every limit to `config`. A smaller bound holds as soon as enough of the
    /// requests in flight have ended: none is cut short, and no new one starts before.
    pub fn apply(&self, config: &FetchConfig) {
        self.resize(config.concurrency, config.per_host);
    }

    fn resize(&self, concurrency: usize, per_host: usize) {
        self.fetches.resize(concurrency);
        let per_host = per_host.max(1);
        *lock(&self.per_host) = per_host;
        for host in lock(&self.hosts)
            .values()
            .chain(lock(&self.claims).values())
        {
            host.resize(per_host);
        }
    }

    /// The bound on requests at once to one host.
    pub fn per_host(&self) -> usize {
        *lock(&self.per_host)
    }

    /// How many fetches and requests are waiting for a place: due, but held back by a bound.
    pub fn waiting(&self) -> usize {
        let hosts: usize = lock(&self.hosts)
            .values()
            .map(|h| h.waiting.load(Ordering::Relaxed))
            .sum();
        self.fetches.waiting.load(Ordering::Relaxed) + hosts
    }

    /// Waits for a place among the `concurrency` fetches that may run at once.
    pub async fn fetch_slot(&self) -> Slot {
        self.fetches.acquire().await
    }

    /// Waits for a place among the `per_host` requests that may run against `host` at once.
    pub async fn host_slot(&self, host: &str) -> Slot {
        self.slot_in(&self.hosts, host).await
    }

    /// Waits for a place among the `per_host` fetches of `host` this instance claims or runs
    /// at once (a store shared with other instances); held from before the claim to after
    /// it is given back. Apart from the requests' places, which a fetch takes one at a time.
    pub async fn claim_slot(&self, host: &str) -> Slot {
        self.slot_in(&self.claims, host).await
    }

    async fn slot_in(&self, limits: &Mutex<HashMap<String, Arc<Limit>>>, host: &str) -> Slot {
        let limit = {
            let per_host = *lock(&self.per_host);
            lock(limits)
                .entry(host.to_ascii_lowercase())
                .or_insert_with(|| Limit::new(per_host))
                .clone()
        };
        limit.acquire().await
    }
}

/// A semaphore whose number of permits can change while permits are held.
#[derive(Debug)]
struct Limit {
    permits: Arc<Semaphore>,
    state: Mutex<LimitState>,
    /// Callers waiting for a permit.
    waiting: AtomicUsize,
}

#[derive(Debug)]
struct LimitState {
    size: usize,
    /// Permits held by slots that a shrink took away: each is forgotten when its slot drops.
    owed: usize,
}

impl Limit {
    fn new(size: usize) -> Arc<Limit> {
        Arc::new(Limit {
            permits: Arc::new(Semaphore::new(size)),
            state: Mutex::new(LimitState { size, owed: 0 }),
            waiting: AtomicUsize::new(0),
        })
    }

    async fn acquire(self: &Arc<Self>) -> Slot {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let waited = Waiting(&self.waiting);
        let permit = self.permits.clone().acquire_owned().await.ok();
        drop(waited);
        // The semaphore is never closed, so `permit` is always Some.
        Slot {
            permit,
            limit: self.clone(),
        }
    }

    fn resize(&self, new: usize) {
        let mut state = lock(&self.state);
        if new >= state.size {
            let grow = new - state.size;
            let repaid = grow.min(state.owed);
            state.owed -= repaid;
            self.permits.add_permits(grow - repaid);
        } else {
            let shrink = state.size - new;
            // Free permits go now; the rest when the slots holding them drop.
            state.owed += shrink - self.permits.forget_permits(shrink);
        }
        state.size = new;
    }
}

/// Counts one waiter out, also when its wait is cancelled.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_resized_limit_counts_the_slots_already_held() {
        let limits = Limits::sized(3, 2);
        let held: Vec<Slot> = vec![
            limits.fetch_slot().await,
            limits.fetch_slot().await,
            limits.fetch_slot().await,
        ];
        let free = |l: &Arc<Limit>| l.permits.available_permits();
        limits.resize(2, 1);
        // Three held, two allowed: the first to end is not given back.
        let mut held = held.into_iter();
        drop(held.next());
        assert_eq!(free(&limits.fetches), 0);
        drop(held.next());
        assert_eq!(free(&limits.fetches), 1);
        let _again = limits.fetch_slot().await;
        assert_eq!(free(&limits.fetches), 0);
        // Per host, names folded: two held, one allowed once they end.
        limits.resize(2, 2);
        let a = limits.host_slot("Example.com").await;
        let b = limits.host_slot("example.com").await;
        limits.resize(2, 1);
        let host = lock(&limits.hosts).get("example.com").cloned().unwrap();
        drop(a);
        assert_eq!(free(&host), 0);
        drop(b);
        assert_eq!(free(&host), 1);
        // Growing repays what is still owed before adding permits.
        let c = limits.host_slot("example.com").await;
        limits.resize(2, 0);
        limits.resize(2, 3);
        assert_eq!(free(&host), 2);
        drop(c);
        assert_eq!(free(&host), 3);
    }

    /// A host's claims are a bound of their own: the fetches holding them take request places
    /// beside them, and a third claim waits for one of two to end.
    #[tokio::test]
    async fn a_hosts_claims_are_bounded_apart_from_its_requests() {
        let limits = Limits::sized(8, 2);
        let claims = [
            limits.claim_slot("example.com").await,
            limits.claim_slot("Example.com").await,
        ];
        let requests = [
            limits.host_slot("example.com").await,
            limits.host_slot("example.com").await,
        ];
        let third = limits.claim_slot("example.com");
        tokio::pin!(third);
        assert!(futures_util::FutureExt::now_or_never(third.as_mut()).is_none());
        let [first, _second] = claims;
        drop(first);
        let _third = third.await;
        drop(requests);
        limits.resize(8, 3);
        let claim = lock(&limits.claims).get("example.com").cloned().unwrap();
        assert_eq!(claim.permits.available_permits(), 1);
    }
}
