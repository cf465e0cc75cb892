//! When each source is due, and the daemon loop that runs them.
//!
//! A source's [`Schedule`] (config's value type) is a fixed interval or a cron expression. The loop gives every
//! enabled source its own task so a slow or failing source never delays another; the fetch
//! limits bound how many fetches run at once and how many requests reach one host.
//!
//! The loop only waits and wakes: what a source's state says about when it is due, and what
//! to record after a fetch (the next run from `politeness`, a host's Retry-After), is asked of
//! `refresh`, which `tributary fetch` shares.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{watch, Notify};

use crate::config::{Config, SourceConfig};
use crate::fetch::{Fetcher, Limits};
use crate::refresh;
use crate::store::Store;

/// What the scheduler shares with the HTTP server: its heartbeat (for `/healthz`) and a way to
/// ask for a fetch now (`POST /api/sources/{id}/refresh`).
#[derive(Default)]
pub struct Scheduler {
    heartbeat: AtomicI64,
    /// True from the first heartbeat on: every source has its task.
    started: watch::Sender<bool>,
    triggers: Mutex<HashMap<String, Arc<Notify>>>,
}

/// How often the scheduler proves it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

impl Scheduler {
    pub fn new() -> Arc<Scheduler> {
        Arc::new(Scheduler::default())
    }

    /// Asks the source's task to fetch now. False when no such source is scheduled.
    pub fn trigger(&self, source_id: &str) -> bool {
        let triggers = self.triggers.lock().unwrap_or_else(|p| p.into_inner());
        match triggers.get(source_id) {
            Some(n) => {
                n.notify_one();
                true
            }
            None => false,
        }
    }

    /// Whether the scheduler's loop turned within the last three heartbeats.
    pub fn scheduler_alive(&self, now: DateTime<Utc>) -> bool {
        let beat = self.heartbeat.load(Ordering::Relaxed);
        beat > 0 && now.timestamp() - beat <= 3 * HEARTBEAT.as_secs() as i64
    }

    fn beat(&self) {
        self.heartbeat
            .store(Utc::now().timestamp(), Ordering::Relaxed);
        self.started
            .send_if_modified(|started| !std::mem::replace(started, true));
    }

    /// Returns once the scheduler has given every source its task and beaten once.
    pub async fn started(&self) {
        let mut started = self.started.subscribe();
        // The sender lives as long as `self`, so this only returns once started.
        let _ = started.wait_for(|s| *s).await;
    }

    fn register(&self, source_id: &str) -> Arc<Notify> {
        let mut triggers = self.triggers.lock().unwrap_or_else(|p| p.into_inner());
        triggers
            .entry(source_id.to_string())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }

    fn unregister(&self, source_id: &str) {
        let mut triggers = self.triggers.lock().unwrap_or_else(|p| p.into_inner());
        triggers.remove(source_id);
    }
}

/// Runs every enabled source on its schedule until `shutdown` turns true, following config
/// reloads from `configs`: added sources start, removed ones stop, changed ones restart.
///
/// Each source has its own task, so a source still running is never started twice and a slow
/// one delays no other. A source's next run is persisted after every fetch, so a restart
/// continues the schedule (and any backoff) instead of fetching everything at once. Every
/// fetcher, the ones built on a reload included, counts against the one set of `limits`.
pub async fn run(
    mut configs: watch::Receiver<Arc<Config>>,
    store: Arc<Store>,
    limits: Arc<Limits>,
    scheduler: Arc<Scheduler>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut config = configs.borrow_and_update().clone();
    limits.apply(&config.fetch);
    let fetcher = match Fetcher::new(&config.fetch, limits.clone()) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client; nothing will be fetched");
            return;
        }
    };
    // Claims on a shared store are renewed until the last fetch has ended (a JoinSet aborts
    // its task when dropped, however this returns).
    let mut renewing = tokio::task::JoinSet::new();
    renewing.spawn(refresh::renew_claims(store.clone()));
    let mut running = Running {
        tasks: HashMap::new(),
        set: tokio::task::JoinSet::new(),
        websub: crate::websub::Publisher::from_config(&config),
        fetcher,
        store,
        scheduler,
        shutdown: shutdown.clone(),
    };
    let mut tick = tokio::time::interval(HEARTBEAT);
    // Sources are matched to tasks when the config changes or a task ends, not on every
    // heartbeat: that costs a pass over every source, which the idle daemon need not pay.
    let mut changed = true;
    loop {
        if changed {
            running.reconcile(&config);
            changed = false;
        }
        running.scheduler.beat();
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
            update = configs.changed() => {
                if update.is_err() {
                    break;
                }
                config = configs.borrow_and_update().clone();
                limits.apply(&config.fetch);
                match Fetcher::new(&config.fetch, limits.clone()) {
                    Ok(f) => running.fetcher = f,
                    Err(e) => tracing::error!(error = %e, "keeping the old HTTP client"),
                }
                running.websub = crate::websub::Publisher::from_config(&config);
                // Tasks of changed sources restart with the new client; others keep theirs.
                tracing::info!(sources = config.sources.len(), "configuration reloaded");
                changed = true;
            }
            Some(_) = running.set.join_next(), if !running.set.is_empty() => changed = true,
        }
    }
    // Source tasks see the same shutdown signal and return at their next await point; a fetch
    // in flight finishes its store write (which runs on the blocking pool) either way.
    while running.set.join_next().await.is_some() {}
    renewing.abort_all();
}

/// The source tasks the loop runs, and what a new one is given.
struct Running {
    /// Source id → the fingerprint of the config it runs with, and its task.
    tasks: HashMap<String, (u64, tokio::task::AbortHandle)>,
    set: tokio::task::JoinSet<()>,
    websub: Option<Arc<crate::websub::Publisher>>,
    fetcher: Fetcher,
    store: Arc<Store>,
    scheduler: Arc<Scheduler>,
    shutdown: watch::Receiver<bool>,
}

/// A never-fetched source of a host starts this long after the one before it ...
const STAGGER: Duration = Duration::from_secs(5);

impl Running {
    /// Starts a task for every enabled source that has none (or whose task ended), and stops
    /// or restarts the tasks of sources removed or changed.
    fn reconcile(&mut self, config: &Config) {
        let wanted: HashMap<&str, u64> = config
            .sources
            .iter()
            .filter(|s| s.enabled)
            .map(|s| (s.id.as_str(), source_fingerprint(s)))
            .collect();
        let scheduler = &self.scheduler;
        self.tasks.retain(|id, (fingerprint, handle)| {
            let keep = !handle.is_finished() && wanted.get(id.as_str()) == Some(fingerprint);
            if !keep {
                handle.abort();
                scheduler.unregister(id);
            }
            keep
        });
        let mut per_host: HashMap<&str, u32> = HashMap::new();
        for source in config.sources.iter().filter(|s| s.enabled) {
            *per_host
                .entry(source.url.host_str().unwrap_or(""))
                .or_default() += 1;
        }
        let mut rank: HashMap<&str, u32> = HashMap::new();
        for source in config.sources.iter().filter(|s| s.enabled) {
            let host = source.url.host_str().unwrap_or("");
            let before = rank.entry(host).or_default();
            let stagger = stagger(source, *before, per_host[host]);
            *before += 1;
            if self.tasks.contains_key(&source.id) {
                continue;
            }
            let task = SourceTask {
                source: source.clone(),
                store: self.store.clone(),
                fetcher: self.fetcher.clone(),
                trigger: self.scheduler.register(&source.id),
                shutdown: self.shutdown.clone(),
                stagger,
                websub: self.websub.clone(),
            };
            let handle = self.set.spawn(task.run());
            self.tasks
                .insert(source.id.clone(), (wanted[source.id.as_str()], handle));
        }
    }
}

/// How long after start a never-fetched source waits: the sources of one host start
/// [`STAGGER`] apart, or closer when that would not reach them all within one interval of
/// their schedule (1,500 sources on one host every 30 minutes start 1.2 s apart).
fn stagger(source: &SourceConfig, before: u32, on_host: u32) -> Duration {
    let interval = source.schedule.interval_at(Utc::now());
    let step = STAGGER.min(interval / on_host.max(1));
    step * before
}

/// A source's configuration, hashed, to tell whether a reload changed it: its whole `Debug`
/// form streamed into the hasher, never held as a string.
fn source_fingerprint(source: &SourceConfig) -> u64 {
    use std::fmt::Write;
    use std::hash::Hasher;
    struct Hashing(std::collections::hash_map::DefaultHasher);
    impl Write for Hashing {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.write(s.as_bytes());
            Ok(())
        }
    }
    let mut hashing = Hashing(std::collections::hash_map::DefaultHasher::new());
    let _ = write!(hashing, "{source:?}");
    hashing.0.finish()
}

/// One source's task: what it needs for the life of the task (until the source's config
/// changes, the source is removed, or the daemon stops).
struct SourceTask {
    /// Shared with the running config: one copy of each source's config, however many hold it.
    source: Arc<SourceConfig>,
    store: Arc<Store>,
    fetcher: Fetcher,
    trigger: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
    /// How long after start a never-fetched source waits (sources of one host spread out).
    stagger: Duration,
    websub: Option<Arc<crate::websub::Publisher>>,
}

impl SourceTask {
    async fn run(self) {
        let SourceTask {
            source,
            store,
            fetcher,
            trigger,
            mut shutdown,
            stagger,
            websub,
        } = self;
        let mut first = true;
        // Asked for ("fetch now") and not yet fetched: kept through waits for a claim.
        let mut forced = false;
        loop {
            let due = match refresh::due(&store, &source, stagger).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::error!(source = %source.id, error = %e, "cannot read schedule state");
                    refresh::Due {
                        at: Utc::now(),
                        disabled: None,
                    }
                }
            };
            if let (Some(reason), true) = (&due.disabled, first) {
                tracing::warn!(source = %source.id, reason = %reason, "source disabled; change its url or refresh it to try again");
            }
            first = false;
            let wait = if forced { Utc::now() } else { due.at };
            match wait_until(wait, &trigger, &mut shutdown).await {
                Some(asked) => forced |= asked,
                None => return,
            }
            if !forced {
                if let Ok(Some(until)) = refresh::host_paused(&store, &source).await {
                    tracing::info!(
                        source = %source.id, next = %until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        "not fetched: its host asked for a pause (Retry-After)"
                    );
                    continue;
                }
            }
            // On a shared store this instance's own fetches of the host take their turns here
            // first, so a claim is refused only for the other instances' fetches.
            let host_turn = match store.is_shared() {
                true => Some(
                    fetcher
                        .limits()
                        .claim_slot(source.url.host_str().unwrap_or(""))
                        .await,
                ),
                false => None,
            };
            let slot = fetcher.limits().fetch_slot().await;
            // Instances sharing the store: another may have this fetch, or have done it. Claimed
            // once this instance can fetch at once, so no lease runs out waiting for a slot.
            // A stop asked for while this waited for its places: no new fetch starts.
            if *shutdown.borrow() {
                return;
            }
            let claimed = refresh::claim(&store, &source, fetcher.limits().per_host(), forced)
                .await
                .unwrap_or_else(|e| {
                    tracing::error!(source = %source.id, error = %e, "cannot claim the fetch; trying again");
                    Err(Utc::now() + CLAIM_RETRY)
                });
            let held = match claimed {
                Ok(held) => held,
                Err(again) => {
                    drop((slot, host_turn));
                    match wait_until(again, &trigger, &mut shutdown).await {
                        Some(asked) => forced |= asked,
                        None => return,
                    }
                    continue;
                }
            };
            forced = false;
            // Once started, a fetch runs to its end even through a stop signal: the daemon waits
            // for it within its grace period.
            let report = {
                let _slot = slot;
                // Boxed: the fetch's state (a few KB) exists while it runs, not in every
                // waiting source's task.
                Box::pin(refresh::refresh_source(&fetcher, &store, &source)).await
            };
            if let (Some(publisher), Ok(refresh::Refreshed::Stored(counts))) =
                (&websub, &report.outcome)
            {
                if counts.new > 0 {
                    publisher.announce(publisher.feeds_of(&source));
                }
            }
            if let Err(e) = refresh::unclaim(&store, &source).await {
                tracing::warn!(source = %source.id, error = %e, "cannot give the fetch's claim back; it runs out on its own");
            }
            drop((held, host_turn));
            report.log();
        }
    }
}

/// How long a claim that failed (the database unreachable) waits before the next try.
const CLAIM_RETRY: chrono::Duration = chrono::Duration::seconds(5);

/// Waits until `at`: Some(true) when the source was asked for first, Some(false) at `at`, None
/// when the daemon stops.
async fn wait_until(
    at: chrono::DateTime<Utc>,
    trigger: &Notify,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<bool> {
    let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    tokio::select! {
        _ = tokio::time::sleep(wait) => Some(false),
        _ = trigger.notified() => Some(true),
        _ = shutdown.changed() => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hosts_new_sources_start_apart_but_all_within_one_interval() {
        let text = "[[sources]]\nid = \"a\"\nname = \"A\"\ncategory = \"c\"\n\
                    url = \"https://example.com/feed\"\nschedule = \"every 30m\"\n";
        let config = Config::from_toml(std::path::Path::new("t.toml"), text).expect("config");
        let source = &config.sources[0];
        assert_eq!(stagger(source, 0, 2), Duration::ZERO);
        assert_eq!(stagger(source, 1, 2), STAGGER);
        // 1,500 sources of one host every 30 minutes: 1.2 s apart, the last within the interval.
        assert_eq!(stagger(source, 1, 1_500), Duration::from_millis(1_200));
        assert!(stagger(source, 1_499, 1_500) < Duration::from_secs(30 * 60));
    }

    #[test]
    fn a_source_config_fingerprint_changes_with_any_field() {
        let text = "[[sources]]\nid = \"a\"\nname = \"A\"\ncategory = \"c\"\n\
                    url = \"https://example.com/feed\"\n";
        let config = Config::from_toml(std::path::Path::new("t.toml"), text).expect("config");
        let mut other = (*config.sources[0]).clone();
        assert_eq!(
            source_fingerprint(&config.sources[0]),
            source_fingerprint(&other)
        );
        other.name = "B".into();
        assert_ne!(
            source_fingerprint(&config.sources[0]),
            source_fingerprint(&other)
        );
    }

    #[test]
    fn triggers_reach_registered_sources_and_the_heartbeat_shows() {
        let d = Scheduler::new();
        assert!(!d.trigger("a"));
        let _n = d.register("a");
        assert!(d.trigger("a"));
        assert!(!d.scheduler_alive(Utc::now()));
        d.beat();
        assert!(d.scheduler_alive(Utc::now()));
    }
}
