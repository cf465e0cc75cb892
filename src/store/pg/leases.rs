//! Leases: how instances sharing a database share the fetches. A source is fetched by the
//! instance that holds its lease; a lease is taken when the source is due and not leased (or
//! its lease expired: its holder crashed or lost the database), and released with the next
//! run when the fetch ends. Taking leases locks the rows of the hosts they are taken on
//! (`FOR UPDATE SKIP LOCKED`), so two instances never count a host's fetches at once: the
//! per-host bound holds across instances, and a host another instance is leasing on is
//! skipped, never waited for (no lock is waited on, so no deadlock). Times are the
//! instances' clocks: the lease's length must be far above their skew (NTP keeps it to
//! milliseconds; leases last minutes).

use chrono::{DateTime, Utc};

use super::{Pg, PgError};

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

impl Pg {
    /// Makes the database's sources these (id, host) pairs: new ones due at `now`, the host of
    /// the others updated, those not named taken out.
    pub fn sync_lease_sources(
        &self,
        sources: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<(), PgError> {
        let ids: Vec<String> = sources.iter().map(|(id, _)| id.clone()).collect();
        let hosts: Vec<String> = sources.iter().map(|(_, host)| host.clone()).collect();
        self.run(|pool| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            tx.execute(
                "INSERT INTO hosts (host) SELECT DISTINCT unnest($1::text[])
                 ON CONFLICT DO NOTHING",
                &[&hosts],
            )
            .await?;
            tx.execute(
                "INSERT INTO sources (id, host, next_run)
                 SELECT id, host, $3 FROM unnest($1::text[], $2::text[]) AS t (id, host)
                 ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host",
                &[&ids, &hosts, &now],
            )
            .await?;
            tx.execute("DELETE FROM sources WHERE NOT (id = ANY($1))", &[&ids])
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Takes the leases of up to `max` due sources, the longest due first, on hosts that are
    /// not deferred and have fewer than `per_host` live leases.
    pub fn lease(&self, req: &LeaseRequest) -> Result<Vec<Lease>, PgError> {
        let req = req.clone();
        self.run(|pool| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            let max = req.max as i64;
            // The hosts this call may lease on: locked for the transaction, those another
            // instance is leasing on skipped.
            let hosts: Vec<String> = tx
                .query(
                    "SELECT h.host FROM hosts h
                     WHERE (h.deferred_until IS NULL OR h.deferred_until <= $1)
                       AND EXISTS (SELECT 1 FROM sources s
                                   WHERE s.host = h.host AND s.next_run <= $1
                                     AND (s.lease_expires IS NULL OR s.lease_expires <= $1))
                     ORDER BY (SELECT min(s.next_run) FROM sources s
                               WHERE s.host = h.host
                                 AND (s.lease_expires IS NULL OR s.lease_expires <= $1))
                     LIMIT $2
                     FOR UPDATE OF h SKIP LOCKED",
                    &[&req.now, &max],
                )
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect();
            if hosts.is_empty() {
                tx.commit().await?;
                return Ok(Vec::new());
            }
            let expires = req.now + req.ttl;
            let per_host = req.per_host as i64;
            let rows = tx
                .query(
                    "WITH live AS (
                         SELECT host, count(*) AS n FROM sources
                         WHERE host = ANY($1) AND lease_expires > $2 GROUP BY host),
                     due AS (
                         SELECT id, host, next_run,
                                row_number() OVER (PARTITION BY host ORDER BY next_run, id) AS k
                         FROM sources
                         WHERE host = ANY($1) AND next_run <= $2
                           AND (lease_expires IS NULL OR lease_expires <= $2)),
                     take AS (
                         SELECT due.id FROM due LEFT JOIN live ON live.host = due.host
                         WHERE due.k <= $5 - COALESCE(live.n, 0)
                         ORDER BY due.next_run, due.id LIMIT $6)
                     UPDATE sources s SET lease_holder = $3, lease_expires = $4
                     FROM take WHERE s.id = take.id
                     RETURNING s.id, s.host",
                    &[&hosts, &req.now, &req.holder, &expires, &per_host, &max],
                )
                .await?;
            tx.commit().await?;
            Ok(rows
                .iter()
                .map(|row| Lease {
                    source_id: row.get(0),
                    host: row.get(1),
                })
                .collect())
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
    ) -> Result<bool, PgError> {
        let (holder, source_id) = (holder.to_string(), source_id.to_string());
        self.run(|pool| async move {
            let client = pool.get().await?;
            let n = client
                .execute(
                    "UPDATE sources SET lease_holder = NULL, lease_expires = NULL, next_run = $3
                     WHERE id = $1 AND lease_holder = $2",
                    &[&source_id, &holder, &next_run],
                )
                .await?;
            Ok(n == 1)
        })
    }

    /// Extends `holder`'s live leases to `now + ttl` (a long fetch outlives none); returns how
    /// many it holds.
    pub fn renew(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<u64, PgError> {
        let holder = holder.to_string();
        self.run(|pool| async move {
            let client = pool.get().await?;
            Ok(client
                .execute(
                    "UPDATE sources SET lease_expires = $3
                     WHERE lease_holder = $1 AND lease_expires > $2",
                    &[&holder, &now, &(now + ttl)],
                )
                .await?)
        })
    }

    /// No instance leases on `host` before `until` (its Retry-After, seen by one of them).
    pub fn defer_host(&self, host: &str, until: DateTime<Utc>) -> Result<(), PgError> {
        let host = host.to_string();
        self.run(|pool| async move {
            let client = pool.get().await?;
            client
                .execute(
                    "INSERT INTO hosts (host, deferred_until) VALUES ($1, $2)
                     ON CONFLICT (host) DO UPDATE SET deferred_until =
                         GREATEST(hosts.deferred_until, EXCLUDED.deferred_until)",
                    &[&host, &until],
                )
                .await?;
            Ok(())
        })
    }

    /// Each host's live leases at `now`, the most first: what the tests check the bound by.
    pub fn live_leases_per_host(&self, now: DateTime<Utc>) -> Result<Vec<(String, i64)>, PgError> {
        self.run(|pool| async move {
            let client = pool.get().await?;
            Ok(client
                .query(
                    "SELECT host, count(*) AS n FROM sources WHERE lease_expires > $1
                     GROUP BY host ORDER BY n DESC, host",
                    &[&now],
                )
                .await?
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect())
        })
    }
}
