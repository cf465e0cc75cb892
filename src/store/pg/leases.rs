//! Leases: how instances sharing a database share the fetches. A source is fetched by the
//! instance that holds its lease; a lease is taken when the source is due and not leased (or
//! its lease expired: its holder crashed or lost the database), and released with the next
//! run when the fetch ends. Taking leases locks the rows of the hosts they are taken on
//! (`FOR UPDATE SKIP LOCKED`), so two instances never count a host's fetches at once: the
//! per-host bound holds across instances, and a host another instance is leasing on is
//! skipped, never waited for (no lock is waited on, so no deadlock). Times are the
//! instances' clocks: the lease's length must be far above their skew (NTP keeps it to
//! milliseconds; leases last minutes).
//!
//! The sources and hosts are the store's own rows (`Store::sync_sources` keeps them, with
//! each source's host; `Store::defer_host` a host's Retry-After).

use chrono::{DateTime, Utc};

use super::DEFAULT_LEASE_TTL;
use crate::store::sql::Conn;
use crate::store::{Store, StoreError};

/// What one instance asks for.
#[derive(Debug, Clone)]
pub struct LeaseRequest {
    /// The instance's name (unique among those sharing the database).
    pub holder: String,
    pub now: DateTime<Utc>,
    /// How long the leases last unless renewed or released.
    pub ttl: chrono::Duration,
    /// At most this many sources.
    pub max: usize,
    /// At most this many leases live at once on one host, across every instance.
    pub per_host: usize,
}

/// A source to fetch, and the host it is fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub source_id: String,
    pub host: String,
}

/// What [`Store::claim`] asks: may this instance fetch `source_id` now?
#[derive(Debug, Clone)]
pub struct ClaimRequest<'a> {
    pub source_id: &'a str,
    pub now: DateTime<Utc>,
    /// How long the lease lasts (past any fetch's length: its holder's crash frees it then).
    pub ttl: chrono::Duration,
    /// At most this many live leases on the source's host, across every instance.
    pub per_host: usize,
    /// Asked for now (the admin's "fetch now"): neither a next run still to come nor the
    /// host's pause makes it wait (as on SQLite); another instance's lease and the host's
    /// bound do.
    pub forced: bool,
}

/// The answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Fetch it: the lease is this instance's until released.
    Taken,
    /// Not now: another instance holds it, or fetched it and planned its next run, or its
    /// host is at its bound or paused. Ask again at this time.
    Wait(DateTime<Utc>),
}

/// How long a claim refused for a host at its bound waits before it asks again.
const HOST_FULL_RETRY: chrono::Duration = chrono::Duration::seconds(1);

/// A source can be leased when it is configured, enabled and not stopped by a 410; it is due
/// when its next run has come (one never planned is due at once).
const LEASABLE: &str = "s.active = 1 AND s.disabled_reason IS NULL";

impl Store {
    /// Whether instances share this store (PostgreSQL): fetches are then claimed first.
    pub fn is_shared(&self) -> bool {
        matches!(self.engine, crate::store::Engine::Pg(_))
    }

    /// This store with claims lasting `ttl` unless renewed ([`DEFAULT_LEASE_TTL`] else). No
    /// effect on a store of one's own.
    pub fn with_lease_ttl(mut self, ttl: std::time::Duration) -> Store {
        if let crate::store::Engine::Pg(pg) = &mut self.engine {
            pg.set_lease_ttl(chrono::Duration::from_std(ttl).unwrap_or(DEFAULT_LEASE_TTL));
        }
        self
    }

    /// How long this instance's claims last unless renewed.
    pub fn lease_ttl(&self) -> chrono::Duration {
        match &self.engine {
            crate::store::Engine::Pg(pg) => pg.lease_ttl(),
            crate::store::Engine::Lite { .. } => DEFAULT_LEASE_TTL,
        }
    }

    /// Notes that a fetch of this instance runs on its claim of `source_id` (until
    /// [`Store::forget_claim`]): only such claims are renewed, so one whose fetch ended without
    /// giving it back (a task stopped by a reload, a failed unclaim) runs out as a crashed
    /// instance's does.
    pub fn hold_claim(&self, source_id: &str) {
        if let crate::store::Engine::Pg(pg) = &self.engine {
            pg.held().insert(source_id.to_string());
        }
    }

    pub fn forget_claim(&self, source_id: &str) {
        if let crate::store::Engine::Pg(pg) = &self.engine {
            pg.held().remove(source_id);
        }
    }

    /// Extends this instance's live claims that running fetches hold ([`Store::hold_claim`])
    /// to [`Store::lease_ttl`] from `now`: while it runs, its fetches keep their sources
    /// however long they take; once it has crashed, they run out. Returns how many were
    /// renewed.
    pub fn renew_claims(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let crate::store::Engine::Pg(pg) = &self.engine else {
            return Ok(0);
        };
        let held: Vec<String> = pg.held().iter().cloned().collect();
        if held.is_empty() {
            return Ok(0);
        }
        let ids = serde_json::to_string(&held).unwrap_or_else(|_| "[]".into());
        Conn::Pg(&pg.session()?).execute(
            "UPDATE sources SET lease_expires = ?3
             WHERE lease_holder = ?1 AND lease_expires > ?2
               AND id IN (SELECT value FROM json_array_elements_text(CAST(?4 AS json)))",
            &[
                &pg.holder(),
                &now.timestamp(),
                &(now + pg.lease_ttl()).timestamp(),
                &ids,
            ],
        )
    }

    /// Takes the lease of one source for this instance when it is due (or forced), not
    /// leased by another instance, and its host is neither paused nor at its bound. The
    /// host's row is locked first, as [`Store::lease`] does, so two instances never count its
    /// leases at once; the second statement's snapshot sees what the lock waited for. Without
    /// instances to share with (SQLite), every claim is taken.
    pub fn claim(&self, req: &ClaimRequest<'_>) -> Result<Claim, StoreError> {
        let crate::store::Engine::Pg(pg) = &self.engine else {
            return Ok(Claim::Taken);
        };
        let now = req.now.timestamp();
        let session = pg.session()?;
        session.transaction(|c| {
            c.execute(
                "SELECT h.host FROM hosts h JOIN sources s ON s.host = h.host
                 WHERE s.id = ?1 FOR UPDATE OF h",
                &[&req.source_id],
            )?;
            let found = c.query_opt(
                "SELECT s.lease_holder, COALESCE(s.lease_expires, 0), COALESCE(s.next_run, 0),
                        (SELECT count(*) FROM sources o
                         WHERE o.host = s.host AND o.lease_expires > ?2),
                        COALESCE((SELECT h.deferred_until FROM hosts h WHERE h.host = s.host), 0)
                 FROM sources s WHERE s.id = ?1",
                &[&req.source_id, &now],
                |r| {
                    Ok((
                        r.get::<Option<String>>(0)?,
                        r.get::<i64>(1)?,
                        r.get::<i64>(2)?,
                        r.get::<i64>(3)?,
                        r.get::<i64>(4)?,
                    ))
                },
            )?;
            let Some((holder, expires, next_run, live, paused)) = found else {
                return Ok(Claim::Wait(req.now + HOST_FULL_RETRY));
            };
            let mine = holder.as_deref() == Some(pg.holder());
            if expires > now && !mine {
                return Ok(Claim::Wait(super::super::from_unix(expires)));
            }
            if !req.forced && next_run > now {
                return Ok(Claim::Wait(super::super::from_unix(next_run)));
            }
            if !req.forced && paused > now {
                return Ok(Claim::Wait(super::super::from_unix(paused)));
            }
            if !mine && live >= req.per_host as i64 {
                return Ok(Claim::Wait(req.now + HOST_FULL_RETRY));
            }
            c.execute(
                "UPDATE sources SET lease_holder = ?2, lease_expires = ?3 WHERE id = ?1",
                &[
                    &req.source_id,
                    &pg.holder(),
                    &(req.now + req.ttl).timestamp(),
                ],
            )?;
            Ok(Claim::Taken)
        })
    }

    /// Gives back this instance's lease on `source_id` (its next run is already stored).
    pub fn unclaim(&self, source_id: &str) -> Result<(), StoreError> {
        let crate::store::Engine::Pg(pg) = &self.engine else {
            return Ok(());
        };
        Conn::Pg(&pg.session()?).execute(
            "UPDATE sources SET lease_holder = NULL, lease_expires = NULL
             WHERE id = ?1 AND lease_holder = ?2",
            &[&source_id, &pg.holder()],
        )?;
        Ok(())
    }

    /// Takes the leases of up to `max` due sources, the longest due first, on hosts that are
    /// not deferred and have fewer than `per_host` live leases.
    pub fn lease(&self, req: &LeaseRequest) -> Result<Vec<Lease>, StoreError> {
        let now = req.now.timestamp();
        let expires = (req.now + req.ttl).timestamp();
        let (max, per_host) = (req.max as i64, req.per_host as i64);
        // Two statements: READ COMMITTED gives each its own snapshot, so the second reads
        // the sources as they are once the hosts are locked (another instance's leases on
        // them committed), which one statement would read from before it waited.
        let free = format!(
            "SELECT h.host FROM hosts h
             WHERE h.deferred_until <= ?1
               AND EXISTS (SELECT 1 FROM sources s
                           WHERE s.host = h.host AND {LEASABLE}
                             AND COALESCE(s.next_run, 0) <= ?1
                             AND COALESCE(s.lease_expires, 0) <= ?1)
             ORDER BY (SELECT min(COALESCE(s.next_run, 0)) FROM sources s
                       WHERE s.host = h.host AND {LEASABLE}
                         AND COALESCE(s.lease_expires, 0) <= ?1)
             LIMIT ?2
             FOR UPDATE OF h SKIP LOCKED"
        );
        // The locked hosts, as a JSON list.
        let hosts = "SELECT value FROM json_array_elements_text(CAST(?1 AS json))";
        let take = format!(
            "WITH live AS (
                 SELECT host, count(*) AS n FROM sources
                 WHERE host IN ({hosts}) AND lease_expires > ?2 GROUP BY host),
             due AS (
                 SELECT s.id, s.host, COALESCE(s.next_run, 0) AS next_run,
                        row_number() OVER (PARTITION BY s.host
                                           ORDER BY COALESCE(s.next_run, 0), s.id) AS k
                 FROM sources s
                 WHERE s.host IN ({hosts}) AND {LEASABLE} AND COALESCE(s.next_run, 0) <= ?2
                   AND COALESCE(s.lease_expires, 0) <= ?2),
             take AS (
                 SELECT due.id FROM due LEFT JOIN live ON live.host = due.host
                 WHERE due.k <= ?5 - COALESCE(live.n, 0)
                 ORDER BY due.next_run, due.id LIMIT ?6)
             UPDATE sources s SET lease_holder = ?3, lease_expires = ?4
             FROM take WHERE s.id = take.id
             RETURNING s.id, s.host"
        );
        let session = self.pg_session("leases")?;
        session.transaction(|c| {
            let hosts = c.query_map(&free, &[&now, &max], |r| r.get::<String>(0))?;
            if hosts.is_empty() {
                return Ok(Vec::new());
            }
            let hosts = serde_json::to_string(&hosts).unwrap_or_else(|_| "[]".into());
            c.query_map(
                &take,
                &[&hosts, &now, &req.holder, &expires, &per_host, &max],
                |r| {
                    Ok(Lease {
                        source_id: r.get(0)?,
                        host: r.get(1)?,
                    })
                },
            )
        })
    }

    /// Ends `holder`'s lease on `source_id` with its next run; false when the lease was no
    /// longer its own (it expired and another instance took the source), which is then left as
    /// that instance has it.
    pub fn release(
        &self,
        holder: &str,
        source_id: &str,
        next_run: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let c = self.pg_session("leases")?;
        let n = Conn::Pg(&c).execute(
            "UPDATE sources SET lease_holder = NULL, lease_expires = NULL, next_run = ?3
             WHERE id = ?1 AND lease_holder = ?2",
            &[&source_id, &holder, &next_run.timestamp()],
        )?;
        Ok(n == 1)
    }

    /// Extends `holder`'s live leases to `now + ttl` (a long fetch outlives none); returns how
    /// many it holds.
    pub fn renew(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<usize, StoreError> {
        let c = self.pg_session("leases")?;
        Conn::Pg(&c).execute(
            "UPDATE sources SET lease_expires = ?3
             WHERE lease_holder = ?1 AND lease_expires > ?2",
            &[&holder, &now.timestamp(), &(now + ttl).timestamp()],
        )
    }

    /// Each host's live leases at `now`, the most first: what the tests check the bound by.
    pub fn live_leases_per_host(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let c = self.pg_session("leases")?;
        Conn::Pg(&c).query_map(
            "SELECT host, count(*) AS n FROM sources WHERE lease_expires > ?1
             GROUP BY host ORDER BY n DESC, host",
            &[&now.timestamp()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }
}
