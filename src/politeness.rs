//! When to come back to a source: its schedule, moved by jitter and pushed later (never
//! earlier) by failure backoff (a cron source's failed run is retried sooner, within its own
//! schedule), by how long the server or the feed said the content stays
//! fresh, and by a Retry-After. Pure arithmetic on an injected `now`, tested without a clock;
//! `refresh` applies it after every fetch, for the daemon and `tributary fetch` alike.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::Schedule;

/// What a fetch learned about when to come back; the scheduler turns it into a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NextCheckHints {
    /// The longest of Cache-Control max-age / Expires and the feed's own `ttl`.
    pub fresh_for: Option<Duration>,
    /// 429/503 with Retry-After: the whole host asked for this pause.
    pub retry_after: Option<Duration>,
    /// 410 Gone: the source was disabled.
    pub gone: bool,
}

/// The first retry of a cron source's failed run; it doubles with each failure in a row, up to
/// the source's next scheduled run.
pub const CRON_RETRY: Duration = Duration::from_secs(5 * 60);

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

/// When to fetch a source next, after a fetch at `now`: its schedule moved by jitter
/// (`jitter_unit` in -1..=1); after a failure, later by a backoff doubling from the interval
/// (an interval schedule) or sooner, [`CRON_RETRY`] doubling up to its next run (a cron
/// schedule); then pushed later (never earlier) by how long the server or feed said the
/// content stays fresh, and by a Retry-After.
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
        next = match schedule {
            Schedule::Every(_) => {
                let factor = 2u32.saturating_pow(failures.min(31));
                next.max(later(interval.saturating_mul(factor).min(p.max_backoff)))
            }
            // A cron source runs at its own times (a morning digest at 07:00): a failed run is
            // retried soon and then less often, but before its next time comes round, so a
            // failure costs minutes, not a day.
            Schedule::Cron(_) => {
                let factor = 2u32.saturating_pow((failures - 1).min(31));
                let retry = later(CRON_RETRY.saturating_mul(factor).min(p.max_backoff));
                retry.min(scheduled).max(now)
            }
        };
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
pub fn jitter_unit(source_id: &str, now: DateTime<Utc>) -> f64 {
    let h =
        blake3::hash(format!("{source_id}:{}", now.timestamp_nanos_opt().unwrap_or(0)).as_bytes());
    let bytes: [u8; 8] = h.as_bytes()[..8].try_into().unwrap_or_default();
    (u64::from_le_bytes(bytes) as f64 / u64::MAX as f64) * 2.0 - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_cron_source_is_retried_before_its_next_run() {
        let daily: Schedule = "0 7 * * *".parse().unwrap();
        let now = at("2026-11-26T07:00:06Z");
        let p = Politeness::default();
        let none = NextCheckHints::default();
        let next = |n| next_check(&daily, now, &none, n, &p, 0.0);
        assert_eq!(next(1), at("2026-11-26T07:05:06Z"));
        assert_eq!(next(2), at("2026-11-26T07:10:06Z"));
        assert_eq!(next(4), at("2026-11-26T07:40:06Z"));
        // Never past its own next run.
        assert_eq!(next(12), at("2026-11-27T07:00:00Z"));
        assert_eq!(next(0), at("2026-11-27T07:00:00Z"));
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
    fn a_cron_interval_is_the_gap_between_its_runs() {
        let cron: Schedule = "0 */20 * * * *".parse().unwrap();
        assert_eq!(cron.interval_at(at("2026-11-26T10:03:00Z")).as_secs(), 1200);
    }
}
