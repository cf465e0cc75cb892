//! When each source is due, and the daemon loop that runs them.
//!
//! A schedule is either a fixed interval ("every 15m") or a cron expression. The loop gives every
//! enabled source its own task so a slow or failing source never delays another; a global
//! semaphore bounds how many fetches run at once, and fetch bounds each host.
//!
//! Politeness lives in [`next_check`]: jitter, failure backoff, Cache-Control/Expires/`ttl`,
//! Retry-After (which defers every source of the host). The arithmetic is a pure function of
//! an injected `now`, so it is tested without a clock.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{watch, Notify};

use crate::config::{Config, SourceConfig};
use crate::fetch::{Fetcher, Limits};
use crate::refresh::{self, NextCheckHints};
use crate::store::Store;

/// How often a source is fetched.
#[derive(Debug, Clone)]
pub enum Schedule {
    Every(Duration),
    Cron(Box<cron::Schedule>),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScheduleError {
    #[error("empty schedule")]
    Empty,
    #[error("bad interval {0:?}: expected \"every <n>s|m|h\" with n > 0")]
    Interval(String),
    #[error("bad cron expression {expr:?}: {reason}")]
    Cron { expr: String, reason: String },
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ScheduleError::Empty);
        }
        if let Some(rest) = text.strip_prefix("every") {
            return parse_interval(rest.trim())
                .map(Schedule::Every)
                .ok_or_else(|| ScheduleError::Interval(text.to_string()));
        }
        let fields: Vec<&str> = text.split_whitespace().collect();
        let expr = match fields.len() {
            // Plain crontab: pad the seconds field, and translate its day-of-week numbering
            // (0 or 7 = Sunday, 1 = Monday) to names, because the cron crate counts 1 = Sunday.
            5 => {
                let dow = crontab_weekdays(fields[4]).ok_or_else(|| ScheduleError::Cron {
                    expr: text.to_string(),
                    reason: format!("bad day-of-week field {:?}", fields[4]),
                })?;
                format!(
                    "0 {} {} {} {} {}",
                    fields[0], fields[1], fields[2], fields[3], dow
                )
            }
            6 | 7 => fields.join(" "),
            n => {
                return Err(ScheduleError::Cron {
                    expr: text.to_string(),
                    reason: format!("{n} fields; expected 5 (crontab), 6 or 7"),
                })
            }
        };
        cron::Schedule::from_str(&expr)
            .map(|s| Schedule::Cron(Box::new(s)))
            .map_err(|e| ScheduleError::Cron {
                expr: text.to_string(),
                reason: e.to_string(),
            })
    }
}

fn parse_interval(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().ok().filter(|n| *n > 0)?;
    let secs = match unit.trim() {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// Rewrites a crontab day-of-week field into the cron crate's names. Returns None on a number
/// outside 0..=7; ranges ending at 7 are split so they do not wrap.
fn crontab_weekdays(field: &str) -> Option<String> {
    const NAMES: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];
    let name = |s: &str| -> Option<String> {
        match s.parse::<usize>() {
            Ok(n) if n <= 7 => Some(NAMES[n].to_string()),
            Ok(_) => None,
            Err(_) => Some(s.to_string()),
        }
    };
    let mut parts = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        let step = step.map(|s| format!("/{s}")).unwrap_or_default();
        match range.split_once('-') {
            Some((a, "7")) if step.is_empty() && a != "0" && a != "7" => {
                parts.push(format!("{}-SAT", name(a)?));
                parts.push("SUN".to_string());
            }
            Some((a, b)) => parts.push(format!("{}-{}{step}", name(a)?, name(b)?)),
            None => parts.push(format!("{}{step}", name(range)?)),
        }
    }
    Some(parts.join(","))
}

impl Schedule {
    /// The first run strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Schedule::Every(every) => {
                after + chrono::Duration::from_std(*every).unwrap_or(chrono::Duration::hours(1))
            }
            Schedule::Cron(cron) => cron
                .after(&after)
                .next()
                // An expression with no future match (a past year) never runs again; a far
                // date keeps the loop simple.
                .unwrap_or(after + chrono::Duration::days(365 * 100)),
        }
    }
}

/// Limits on how far a fetch's hints and failures may push a source's next check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Politeness {
    /// Cache-Control, Expires, `ttl` and Retry-After are honoured up to this.
    pub max_interval: Duration,
    /// Failure backoff doubles from the schedule's interval up to this.
    pub max_backoff: Duration,
    /// Each next run moves by up to this share of the interval, either way, so sources on one
    /// schedule drift apart instead of firing together.
    pub jitter: f64,
}

impl Default for Politeness {
    fn default() -> Self {
        Politeness {
            max_interval: Duration::from_secs(24 * 3600),
            max_backoff: Duration::from_secs(24 * 3600),
            jitter: 0.1,
        }
    }
}

impl Schedule {
    /// The time between two runs around `at` (a cron expression's runs need not be even).
    pub fn interval_at(&self, at: DateTime<Utc>) -> Duration {
        match self {
            Schedule::Every(every) => *every,
            Schedule::Cron(_) => {
                let next = self.next_after(at);
                (self.next_after(next) - next)
                    .to_std()
                    .unwrap_or(Duration::from_secs(3600))
            }
        }
    }
}

/// When to fetch a source next, after a fetch at `now`: its schedule moved by jitter
/// (`jitter_unit` in -1..=1), then pushed later (never earlier) by failure backoff, by how long
/// the server or feed said the content stays fresh, and by a Retry-After.
pub fn next_check(
    schedule: &Schedule,
    now: DateTime<Utc>,
    hints: &NextCheckHints,
    failures: u32,
    p: &Politeness,
    jitter_unit: f64,
) -> DateTime<Utc> {
    let interval = schedule.interval_at(now);
    let shift = interval.as_secs_f64() * p.jitter * jitter_unit.clamp(-1.0, 1.0);
    let scheduled =
        schedule.next_after(now) + chrono::Duration::milliseconds((shift * 1000.0) as i64);
    let mut next = scheduled.max(now);
    let later =
        |d: Duration| now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero());
    if failures > 0 {
        let factor = 2u32.saturating_pow(failures.min(31));
        let backoff = interval.saturating_mul(factor).min(p.max_backoff);
        next = next.max(later(backoff));
    }
    if let Some(fresh) = hints.fresh_for {
        next = next.max(later(fresh.min(p.max_interval)));
    }
    if let Some(wait) = hints.retry_after {
        next = next.max(later(wait.min(p.max_interval)));
    }
    next
}

/// A number in -1..=1 that differs per source and per run, for jitter.
fn jitter_unit(source_id: &str, now: DateTime<Utc>) -> f64 {
    let h =
        blake3::hash(format!("{source_id}:{}", now.timestamp_nanos_opt().unwrap_or(0)).as_bytes());
    let bytes: [u8; 8] = h.as_bytes()[..8].try_into().unwrap_or_default();
    (u64::from_le_bytes(bytes) as f64 / u64::MAX as f64) * 2.0 - 1.0
}

/// What the scheduler shares with the HTTP server: its heartbeat (for `/healthz`) and a way to
/// ask for a fetch now (`POST /api/sources/{id}/refresh`).
#[derive(Default)]
pub struct Scheduler {
    heartbeat: AtomicI64,
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
    let mut tasks: HashMap<String, (String, tokio::task::AbortHandle)> = HashMap::new();
    let mut set = tokio::task::JoinSet::new();
    let mut config = configs.borrow_and_update().clone();
    limits.apply(&config.fetch);
    let mut fetcher = match Fetcher::new(&config.fetch, limits.clone()) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client; nothing will be fetched");
            return;
        }
    };
    let mut websub = crate::websub::Publisher::from_config(&config);
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        // Start what the config has and no task runs; restart what changed.
        let wanted: HashMap<&str, &SourceConfig> = config
            .sources
            .iter()
            .filter(|s| s.enabled)
            .map(|s| (s.id.as_str(), s))
            .collect();
        tasks.retain(|id, (fingerprint, handle)| {
            let keep = wanted
                .get(id.as_str())
                .is_some_and(|s| source_fingerprint(s) == *fingerprint);
            if !keep {
                handle.abort();
                scheduler.unregister(id);
            }
            keep
        });
        let mut per_host: HashMap<String, u32> = HashMap::new();
        for source in config.sources.iter().filter(|s| s.enabled) {
            let host = source.url.host_str().unwrap_or("").to_string();
            let rank = per_host.entry(host).or_default();
            *rank += 1;
            if tasks.contains_key(&source.id) {
                continue;
            }
            // Never-fetched sources on one host start a few seconds apart.
            let stagger = Duration::from_secs(u64::from(*rank - 1) * 5);
            let task = SourceTask {
                source: source.clone(),
                store: store.clone(),
                fetcher: fetcher.clone(),
                trigger: scheduler.register(&source.id),
                shutdown: shutdown.clone(),
                stagger,
                websub: websub.clone(),
            };
            let handle = set.spawn(task.run());
            tasks.insert(source.id.clone(), (source_fingerprint(source), handle));
        }
        scheduler.beat();
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
            changed = configs.changed() => {
                if changed.is_err() {
                    break;
                }
                config = configs.borrow_and_update().clone();
                limits.apply(&config.fetch);
                match Fetcher::new(&config.fetch, limits.clone()) {
                    Ok(f) => fetcher = f,
                    Err(e) => tracing::error!(error = %e, "keeping the old HTTP client"),
                }
                websub = crate::websub::Publisher::from_config(&config);
                // Tasks of changed sources restart with the new client; others keep theirs.
                tracing::info!(sources = config.sources.len(), "configuration reloaded");
            }
            Some(_) = set.join_next(), if !set.is_empty() => {}
        }
    }
    // Source tasks see the same shutdown signal and return at their next await point; a fetch
    // in flight finishes its store write (which runs on the blocking pool) either way.
    while set.join_next().await.is_some() {}
}

/// A source's configuration as text, to tell whether a reload changed it.
fn source_fingerprint(source: &SourceConfig) -> String {
    format!("{source:?}")
}

/// One source's task: what it needs for the life of the task (until the source's config
/// changes, the source is removed, or the daemon stops).
struct SourceTask {
    source: SourceConfig,
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
        let host = source.url.host_str().unwrap_or("").to_ascii_lowercase();
        let politeness = Politeness {
            max_interval: source.max_interval,
            max_backoff: source.max_backoff,
            ..Politeness::default()
        };
        let mut first = true;
        loop {
            let (state, deferred) = {
                let (id, host) = (source.id.clone(), host.clone());
                let store = store.clone();
                match tokio::task::spawn_blocking(move || {
                    Ok::<_, crate::store::StoreError>((
                        store.source_state(&id)?,
                        store.host_deferred_until(&host)?,
                    ))
                })
                .await
                {
                    Ok(Ok(found)) => found,
                    Ok(Err(e)) => {
                        tracing::error!(source = %source.id, error = %e, "cannot read schedule state");
                        (Default::default(), None)
                    }
                    Err(_) => return,
                }
            };
            let now = Utc::now();
            let mut due = match (state.next_run, state.last_fetch_at) {
                (Some(next), _) => next,
                // A database from before next runs were stored: continue from the last fetch.
                (None, Some(last)) => source.schedule.next_after(last),
                (None, None) => now + chrono::Duration::from_std(stagger).unwrap_or_default(),
            };
            if let Some(until) = deferred {
                due = due.max(until);
            }
            if let Some(reason) = &state.disabled_reason {
                if first {
                    tracing::warn!(source = %source.id, reason = %reason, "source disabled; change its url or refresh it to try again");
                }
                due = now + chrono::Duration::days(365);
            }
            first = false;
            let wait = (due - now).to_std().unwrap_or(Duration::ZERO);
            let asked = tokio::select! {
                _ = tokio::time::sleep(wait) => false,
                _ = trigger.notified() => true,
                _ = shutdown.changed() => return,
            };
            if !asked {
                // Another source of this host may have been told to back off while this one slept:
                // honour it, and record the deferred run so /api/sources shows it.
                let (store2, host2) = (store.clone(), host.clone());
                let deferred_now =
                    tokio::task::spawn_blocking(move || store2.host_deferred_until(&host2))
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .flatten();
                if let Some(until) = deferred_now.filter(|until| *until > Utc::now()) {
                    let (store2, id) = (store.clone(), source.id.clone());
                    let _ =
                        tokio::task::spawn_blocking(move || store2.set_next_run(&id, until)).await;
                    continue;
                }
            }
            // Once started, a fetch runs to its end even through a stop signal: the daemon waits
            // for it within its grace period.
            let report = {
                let _slot = fetcher.limits().fetch_slot().await;
                refresh::refresh_source(&fetcher, &store, &source).await
            };
            if let (Some(publisher), Ok(refresh::Refreshed::Stored(counts))) =
                (&websub, &report.outcome)
            {
                if counts.new > 0 {
                    publisher.announce(publisher.feeds_of(&source));
                }
            }
            let now = Utc::now();
            let failures = if report.outcome.is_ok() {
                0
            } else {
                state.consecutive_failures + 1
            };
            let next = next_check(
                &source.schedule,
                now,
                &report.hints,
                failures,
                &politeness,
                jitter_unit(&source.id, now),
            );
            let (id, host_for_store) = (source.id.clone(), host.clone());
            let retry_after = report.hints.retry_after;
            let store_for_write = store.clone();
            let saved = tokio::task::spawn_blocking(move || {
                if let Some(wait) = retry_after {
                    let until = now + chrono::Duration::from_std(wait).unwrap_or_default();
                    store_for_write.defer_host(&host_for_store, until, "Retry-After")?;
                }
                store_for_write.set_next_run(&id, next)
            })
            .await;
            if let Ok(Err(e)) = saved {
                tracing::error!(source = %source.id, error = %e, "cannot save the next run");
            }
            tracing::debug!(source = %source.id, next = %next, failures, "next check");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Timelike};

    #[test]
    fn intervals() {
        let every = |s: &str| match s.parse::<Schedule>() {
            Ok(Schedule::Every(d)) => Some(d.as_secs()),
            _ => None,
        };
        assert_eq!(every("every 15m"), Some(900));
        assert_eq!(every("every 30s"), Some(30));
        assert_eq!(every("every 2h"), Some(7200));
        assert_eq!(every("every 0m"), None);
        assert_eq!(every("every 5d"), None);
        assert_eq!(every("every m"), None);
    }

    #[test]
    fn cron_six_fields_and_crontab_five() {
        let t = Utc.with_ymd_and_hms(2026, 11, 26, 10, 3, 0).unwrap();
        let six: Schedule = "0 */10 * * * *".parse().unwrap();
        assert_eq!(six.next_after(t).minute(), 10);
        let five: Schedule = "*/5 * * * *".parse().unwrap();
        let next = five.next_after(t);
        assert_eq!((next.minute(), next.second()), (5, 0));
    }

    #[test]
    fn crontab_weekday_numbers_mean_what_crontab_means() {
        // 2026-11-26 is a Thursday; crontab "1" is Monday.
        let t = Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap();
        let monday: Schedule = "0 9 * * 1".parse().unwrap();
        assert_eq!(monday.next_after(t).weekday(), chrono::Weekday::Mon);
        let sunday: Schedule = "0 9 * * 0".parse().unwrap();
        assert_eq!(sunday.next_after(t).weekday(), chrono::Weekday::Sun);
        let fri_to_sun: Schedule = "0 9 * * 5-7".parse().unwrap();
        assert_eq!(fri_to_sun.next_after(t).weekday(), chrono::Weekday::Fri);
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn jitter_stays_within_a_tenth_of_the_interval() {
        let every: Schedule = "every 10m".parse().unwrap();
        let now = at("2026-11-26T10:00:00Z");
        let p = Politeness::default();
        let none = NextCheckHints::default();
        let early = next_check(&every, now, &none, 0, &p, -1.0);
        let late = next_check(&every, now, &none, 0, &p, 1.0);
        assert_eq!(early, at("2026-11-26T10:09:00Z"));
        assert_eq!(late, at("2026-11-26T10:11:00Z"));
        for i in 0..100 {
            let u = jitter_unit("s", now + chrono::Duration::nanoseconds(i));
            assert!((-1.0..=1.0).contains(&u));
            let t = next_check(&every, now, &none, 0, &p, u);
            assert!(t >= early && t <= late);
        }
    }

    #[test]
    fn failures_double_the_wait_up_to_the_cap() {
        let every: Schedule = "every 10m".parse().unwrap();
        let now = at("2026-11-26T10:00:00Z");
        let p = Politeness::default();
        let none = NextCheckHints::default();
        let wait = |n| (next_check(&every, now, &none, n, &p, 0.0) - now).num_minutes();
        assert_eq!([wait(0), wait(1), wait(2), wait(3)], [10, 20, 40, 80]);
        assert_eq!(wait(20), 24 * 60);
    }

    #[test]
    fn server_hints_only_ever_delay() {
        let every: Schedule = "every 10m".parse().unwrap();
        let now = at("2026-11-26T10:00:00Z");
        let p = Politeness::default();
        let hint = |fresh: Option<u64>, retry: Option<u64>| NextCheckHints {
            fresh_for: fresh.map(Duration::from_secs),
            retry_after: retry.map(Duration::from_secs),
            gone: false,
        };
        let wait =
            |h: NextCheckHints| (next_check(&every, now, &h, 0, &p, 0.0) - now).num_seconds();
        assert_eq!(wait(hint(Some(3600), None)), 3600, "max-age of an hour");
        assert_eq!(
            wait(hint(Some(60), None)),
            600,
            "a short max-age does not hurry us"
        );
        assert_eq!(wait(hint(None, Some(1200))), 1200, "Retry-After");
        assert_eq!(wait(hint(Some(10 * 86400), None)), 86400, "capped");
    }

    #[test]
    fn cron_intervals_and_daemon_triggers() {
        let cron: Schedule = "0 */20 * * * *".parse().unwrap();
        assert_eq!(cron.interval_at(at("2026-11-26T10:03:00Z")).as_secs(), 1200);
        let d = Scheduler::new();
        assert!(!d.trigger("a"));
        let _n = d.register("a");
        assert!(d.trigger("a"));
        assert!(!d.scheduler_alive(Utc::now()));
        d.beat();
        assert!(d.scheduler_alive(Utc::now()));
    }

    #[test]
    fn rejects_nonsense() {
        assert!("every".parse::<Schedule>().is_err());
        assert!("* * *".parse::<Schedule>().is_err());
        assert!("61 * * * *".parse::<Schedule>().is_err());
        assert!("0 9 * * 8".parse::<Schedule>().is_err());
    }
}
