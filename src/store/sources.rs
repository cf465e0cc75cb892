//! The sources as the database knows them: made to match the config, and what scheduling and
//! refreshing keep between runs (validators, the next run, failures, redirects, a 410, hosts
//! that asked to be left alone), so that a restart neither refetches everything at once nor
//! forgets a backoff. Also the lists of sources that `/api/sources`, `status` and `/opml` show.

use super::sql::Conn;
use super::{from_json, from_unix, Store, StoreError};
use crate::config::SourceConfig;
use crate::health::{self, Seen, Shape};
use crate::model::{SourceStatus, Validators};
use chrono::{DateTime, Utc};

/// What the scheduler and a refresh need to know about a source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceState {
    pub validators: Validators,
    /// The URL a permanent redirect pointed to, used instead of the configured one.
    pub moved_to: Option<String>,
    pub next_run: Option<DateTime<Utc>>,
    pub last_fetch_at: Option<DateTime<Utc>>,
    pub consecutive_failures: u32,
    pub disabled_reason: Option<String>,
}

/// The outcome of one fetch, as recorded on the source.
#[derive(Debug, Clone)]
pub struct FetchRecord<'a> {
    pub at: DateTime<Utc>,
    /// "ok", "not modified" or "error".
    pub status: &'a str,
    pub error: Option<&'a str>,
    /// Replaces the stored validators when Some.
    pub validators: Option<&'a Validators>,
    /// What the fetch saw, when it read a document (judged for drift, kept for the console);
    /// None leaves the last one and the verdict as they were.
    pub seen: Option<&'a Seen>,
}

impl Store {
    /// Makes the sources table match the config: new sources added, names, URLs and
    /// categories updated, sources no longer configured (or disabled) marked inactive. Their
    /// entries are kept.
    pub fn sync_sources(&self, sources: &[std::sync::Arc<SourceConfig>]) -> Result<(), StoreError> {
        self.transaction(|c| {
            if c.is_pg() {
                // Every source row is written: under the lock write groups take, so that it
                // cannot deadlock with another instance's group locking them in fetch order.
                super::writes::lock_pg_writes(c)?;
            }
            c.execute("UPDATE sources SET active = 0", &[])?;
            for s in sources {
                let tags = serde_json::to_string(&s.tags).unwrap_or_else(|_| "[]".into());
                let host = s.url.host_str().unwrap_or_default();
                if c.is_pg() {
                    // The rows instances lock to lease on a host (`pg::leases`).
                    c.execute(
                        "INSERT INTO hosts (host) VALUES (?1) ON CONFLICT DO NOTHING",
                        &[&host],
                    )?;
                }
                c.execute(
                    "INSERT INTO sources (id, name, url, category, tags, active, priority,
                                          schedule, host)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (id) DO UPDATE SET name = ?2, category = ?4, tags = ?5,
                         active = ?6, priority = ?7, host = ?9,
                         -- A schedule changed in the config replans from the last fetch (a
                         -- stored plan of a store from before schedules were kept stays).
                         next_run = CASE WHEN sources.schedule IS NOT NULL
                                          AND sources.schedule IS DISTINCT FROM ?8
                                         THEN NULL ELSE sources.next_run END,
                         schedule = ?8,
                         -- A new URL in the config is the operator's word over a redirect or
                         -- a 410.
                         moved_to = CASE WHEN sources.url = ?3 THEN sources.moved_to END,
                         disabled_reason = CASE WHEN sources.url = ?3
                                                THEN sources.disabled_reason END,
                         url = ?3",
                    &[
                        &s.id,
                        &s.name,
                        &s.url.as_str(),
                        &s.category,
                        &tags,
                        &s.enabled,
                        &s.priority,
                        &s.schedule.canonical(),
                        &host,
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// The scheduling state of a source (defaults for one never seen).
    pub fn source_state(&self, source_id: &str) -> Result<SourceState, StoreError> {
        let state = self.read(|c| {
            c.query_opt(
                "SELECT etag, last_modified, moved_to, next_run, last_fetch_at,
                        consecutive_failures, disabled_reason
                 FROM sources WHERE id = ?1",
                &[&source_id],
                |r| {
                    Ok(SourceState {
                        validators: Validators {
                            etag: r.get(0)?,
                            last_modified: r.get(1)?,
                        },
                        moved_to: r.get(2)?,
                        next_run: r.get::<Option<i64>>(3)?.map(from_unix),
                        last_fetch_at: r.get::<Option<i64>>(4)?.map(from_unix),
                        consecutive_failures: r.get::<i64>(5)?.max(0) as u32,
                        disabled_reason: r.get(6)?,
                    })
                },
            )
        })?;
        Ok(state.unwrap_or_default())
    }

    pub fn set_next_run(&self, source_id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.write(|c| {
            c.execute(
                "UPDATE sources SET next_run = ?2 WHERE id = ?1",
                &[&source_id, &at.timestamp()],
            )
        })?;
        Ok(())
    }

    /// Stops fetching a source until a success or a config change (HTTP 410 Gone).
    pub fn disable_source(&self, source_id: &str, reason: &str) -> Result<(), StoreError> {
        self.write(|c| {
            c.execute(
                "UPDATE sources SET disabled_reason = ?2 WHERE id = ?1",
                &[&source_id, &reason],
            )
        })?;
        Ok(())
    }

    /// Records a permanent redirect: later fetches go to `url`.
    pub fn set_moved_to(&self, source_id: &str, url: &str) -> Result<(), StoreError> {
        self.write(|c| {
            c.execute(
                "UPDATE sources SET moved_to = ?2 WHERE id = ?1",
                &[&source_id, &url],
            )
        })?;
        Ok(())
    }

    /// No request goes to `host` before `until` (a later deferral wins over an earlier one).
    pub fn defer_host(
        &self,
        host: &str,
        until: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.write(|c| {
            c.execute(
                "INSERT INTO hosts (host, deferred_until, reason) VALUES (?1, ?2, ?3)
                 ON CONFLICT (host) DO UPDATE SET
                     deferred_until = CASE WHEN hosts.deferred_until > ?2
                                           THEN hosts.deferred_until ELSE ?2 END,
                     reason = ?3",
                &[&host, &until.timestamp(), &reason],
            )
        })?;
        Ok(())
    }

    pub fn host_deferred_until(&self, host: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<i64> = self.read(|c| {
            c.query_opt(
                "SELECT deferred_until FROM hosts WHERE host = ?1",
                &[&host],
                |r| r.get(0),
            )
        })?;
        Ok(at.map(from_unix))
    }

    pub fn record_fetch(&self, source_id: &str, rec: &FetchRecord<'_>) -> Result<(), StoreError> {
        self.write(|c| record_fetch_in(c, source_id, rec))
    }

    /// Every known source with its last fetch and entry count, configured ones first.
    pub fn source_statuses(&self) -> Result<Vec<SourceStatus>, StoreError> {
        self.read(|c| {
            c.query_map(
                "SELECT s.id, s.name, s.category, s.last_fetch_at, s.last_status, s.last_error,
                        s.entry_count,
                        s.consecutive_failures, s.next_run, s.disabled_reason, s.active, s.drift
                 FROM sources s ORDER BY s.active DESC, s.id",
                &[],
                |r| {
                    Ok(SourceStatus {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        category: r.get(2)?,
                        last_fetch_at: r.get::<Option<i64>>(3)?.map(from_unix),
                        last_status: r.get(4)?,
                        last_error: r.get(5)?,
                        entry_count: r.get::<i64>(6)?.max(0) as u64,
                        consecutive_failures: r.get::<i64>(7)?.max(0) as u32,
                        next_run: r.get::<Option<i64>>(8)?.map(from_unix),
                        disabled_reason: r.get(9)?,
                        active: r.get(10)?,
                        drift: r.get(11)?,
                    })
                },
            )
        })
    }

    /// What the source's last fetch that read a document saw; None before the first.
    pub fn source_seen(&self, source_id: &str) -> Result<Option<Seen>, StoreError> {
        let seen: Option<String> = self
            .read(|c| {
                c.query_opt(
                    "SELECT seen FROM sources WHERE id = ?1",
                    &[&source_id],
                    |r| r.get::<Option<String>>(0),
                )
            })?
            .flatten();
        Ok(seen.and_then(|s| serde_json::from_str(&s).ok()))
    }

    /// Every active source (configured and enabled) as (id, name, url, category, tags), by id:
    /// what `GET /opml` lists feeds from.
    #[allow(clippy::type_complexity)] // the plain row; one caller
    pub fn active_sources(
        &self,
    ) -> Result<Vec<(String, String, String, String, Vec<String>)>, StoreError> {
        self.read(|c| {
            c.query_map(
                "SELECT id, name, url, category, tags FROM sources WHERE active = 1 ORDER BY id",
                &[],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        from_json(&r.get::<String>(4)?),
                    ))
                },
            )
        })
    }
}

/// The fetch's outcome on the source row: status, error, failure count, validators.
pub(super) fn record_fetch_in(
    c: Conn<'_>,
    source_id: &str,
    rec: &FetchRecord<'_>,
) -> Result<(), StoreError> {
    let failed = rec.error.is_some();
    c.execute(
        "UPDATE sources SET last_fetch_at = ?2, last_status = ?3, last_error = ?4,
             last_success_at = CASE WHEN ?5 THEN last_success_at ELSE ?2 END,
             disabled_reason = CASE WHEN ?5 THEN disabled_reason END,
             consecutive_failures = CASE WHEN ?5 THEN consecutive_failures + 1 ELSE 0 END
         WHERE id = ?1",
        &[
            &source_id,
            &rec.at.timestamp(),
            &rec.status,
            &rec.error,
            &failed,
        ],
    )?;
    if let Some(v) = rec.validators {
        c.execute(
            "UPDATE sources SET etag = ?2, last_modified = ?3 WHERE id = ?1",
            &[&source_id, &v.etag, &v.last_modified],
        )?;
    }
    if let Some(seen) = rec.seen {
        record_seen(c, source_id, seen)?;
    }
    Ok(())
}

/// Keeps what a fetch saw, judges it against the source's usual shape (`health::assess`) and
/// keeps the verdict and the new shape.
fn record_seen(c: Conn<'_>, source_id: &str, seen: &Seen) -> Result<(), StoreError> {
    let shape: Option<String> = c
        .query_opt(
            "SELECT shape FROM sources WHERE id = ?1",
            &[&source_id],
            |r| r.get::<Option<String>>(0),
        )?
        .flatten();
    let shape: Shape = shape
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let (shape, drift) = health::assess(&shape, seen);
    if let Some(why) = &drift {
        tracing::warn!(source = %source_id, drift = %why, "the source's page looks different: check its selectors");
    }
    c.execute(
        "UPDATE sources SET seen = ?2, shape = ?3, drift = ?4 WHERE id = ?1",
        &[
            &source_id,
            &serde_json::to_string(seen).ok(),
            &serde_json::to_string(&shape).ok(),
            &drift,
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{at, both, scratch, sources};
    use super::*;

    fn active(store: &Store) -> Vec<(String, bool)> {
        store
            .source_statuses()
            .expect("statuses")
            .into_iter()
            .map(|s| (s.id, s.active))
            .collect()
    }

    #[test]
    fn sync_adds_sources_and_retires_those_left_out_or_disabled() {
        let s = scratch();
        let t = |id: &str, on: bool| (id.to_string(), on);
        assert_eq!(
            active(&s.store),
            [t("first", true), t("second", true), t("third", true)]
        );
        let mut config = sources(
            "[[sources]]\nid = \"fourth\"\nname = \"Fourth\"\n\
             url = \"http://127.0.0.1:9/4.xml\"\ncategory = \"other\"\nenabled = false\n",
        );
        config.retain(|c| c.id != "second");
        std::sync::Arc::make_mut(&mut config[0]).name = "First, renamed".into();
        s.store.sync_sources(&config).expect("synced");
        // Configured ones first; a source that left the config is kept, inactive.
        assert_eq!(
            active(&s.store),
            [
                t("first", true),
                t("third", true),
                t("fourth", false),
                t("second", false)
            ]
        );
        let title = s
            .store
            .scope_title(&crate::model::Scope::Source("first".into()));
        assert_eq!(title.expect("title").as_deref(), Some("First, renamed"));
        let listed: Vec<String> = s
            .store
            .active_sources()
            .expect("active")
            .into_iter()
            .map(|(id, ..)| id)
            .collect();
        assert_eq!(listed, ["first", "third"]);
    }

    /// A redirect and a 410 hold until the operator changes the source's URL.
    #[test]
    fn a_new_url_in_the_config_clears_the_redirect_and_the_410() {
        for s in both() {
            s.store
                .set_moved_to("first", "http://example.org/new.xml")
                .expect("moved");
            s.store
                .disable_source("first", "410 Gone")
                .expect("disabled");
            s.store.sync_sources(&sources("")).expect("same config");
            let state = s.store.source_state("first").expect("state");
            assert_eq!(
                state.moved_to.as_deref(),
                Some("http://example.org/new.xml")
            );
            assert_eq!(state.disabled_reason.as_deref(), Some("410 Gone"));

            let mut config = sources("");
            std::sync::Arc::make_mut(&mut config[0]).url =
                url::Url::parse("http://127.0.0.1:9/elsewhere.xml").expect("url");
            s.store.sync_sources(&config).expect("new url");
            let state = s.store.source_state("first").expect("state");
            assert_eq!((state.moved_to, state.disabled_reason), (None, None));
        }
    }

    #[test]
    fn failures_count_up_and_a_success_resets_them_and_keeps_its_validators() {
        for s in both() {
            let failed = |at| FetchRecord {
                seen: None,
                at,
                status: "error",
                error: Some("timed out"),
                validators: None,
            };
            s.store
                .record_fetch("first", &failed(at(0)))
                .expect("recorded");
            s.store
                .record_fetch("first", &failed(at(1)))
                .expect("recorded");
            s.store
                .disable_source("first", "410 Gone")
                .expect("disabled");
            let state = s.store.source_state("first").expect("state");
            assert_eq!(state.consecutive_failures, 2);
            assert_eq!(state.last_fetch_at, Some(at(1)));

            let validators = Validators {
                etag: Some("\"v1\"".into()),
                last_modified: None,
            };
            let ok = FetchRecord {
                seen: None,
                at: at(2),
                status: "ok",
                error: None,
                validators: Some(&validators),
            };
            s.store.record_fetch("first", &ok).expect("recorded");
            let state = s.store.source_state("first").expect("state");
            assert_eq!(state.consecutive_failures, 0);
            assert_eq!(state.validators, validators);
            assert_eq!(
                state.disabled_reason, None,
                "a success re-enables the source"
            );
            // A source never seen has the defaults.
            assert_eq!(
                s.store.source_state("nowhere").expect("state"),
                SourceState::default()
            );
        }
    }

    #[test]
    fn a_later_deferral_wins_over_an_earlier_one() {
        for s in both() {
            s.store
                .defer_host("example.org", at(5), "Retry-After")
                .expect("deferred");
            s.store
                .defer_host("example.org", at(1), "Retry-After")
                .expect("deferred");
            assert_eq!(
                s.store.host_deferred_until("example.org").expect("host"),
                Some(at(5))
            );
            assert_eq!(
                s.store.host_deferred_until("example.net").expect("host"),
                None
            );
            s.store.set_next_run("first", at(3)).expect("next run");
            assert_eq!(
                s.store.source_state("first").expect("state").next_run,
                Some(at(3))
            );
        }
    }
}
