//! A source's schedule as the config writes it: a fixed interval (`every 15m`) or a cron
//! expression (crontab's five fields, or six and seven with seconds and years), parsed once at
//! load and asked when it next fires. A value type: the scheduler's loop lives in `schedule`.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

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
    #[error("bad interval {0:?}: expected \"every <n>s|m|h|d|w\" with n > 0")]
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
        let bad = |reason: String| ScheduleError::Cron {
            expr: text.to_string(),
            reason,
        };
        let with_seconds: Vec<&str> = expr.split_whitespace().collect();
        for (field, (name, low, high)) in with_seconds.iter().zip(FIELDS) {
            check_field(field, name, low, high).map_err(bad)?;
        }
        let cron = cron::Schedule::from_str(&expr).map_err(|e| bad(e.to_string()))?;
        if cron.upcoming(Utc).next().is_none() {
            return Err(bad("it never fires (no date matches it)".into()));
        }
        Ok(Schedule::Cron(Box::new(cron)))
    }
}

/// The fields of a cron expression with seconds, their names and ranges (the day of week as
/// the cron crate counts it once crontab's numbers are translated: names, or 1–7).
const FIELDS: [(&str, u32, u32); 7] = [
    ("seconds", 0, 59),
    ("minutes", 0, 59),
    ("hours", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
    ("year", 1970, 2099),
];

/// Numbers and steps of one field within its range; names (`MON`, `JAN`) are the cron
/// crate's to check.
fn check_field(field: &str, name: &str, low: u32, high: u32) -> Result<(), String> {
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        for n in range.split('-').filter_map(|v| v.parse::<u32>().ok()) {
            if n < low || n > high {
                return Err(format!("{name}: {n} is outside {low}–{high}"));
            }
        }
        if let Some(step) = step.and_then(|s| s.parse::<u32>().ok()) {
            if step == 0 || step > high - low + 1 {
                return Err(format!(
                    "{name}: a step of {step} ({name} are {low}–{high})"
                ));
            }
        }
    }
    Ok(())
}

fn parse_interval(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().ok().filter(|n| *n > 0)?;
    let secs = match unit.trim() {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        "w" => n.checked_mul(7 * 86_400)?,
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

impl Schedule {
    /// The schedule as one canonical text (`every 900s`, or the cron expression with
    /// seconds): what the store compares to tell that a source's schedule changed.
    pub fn canonical(&self) -> String {
        match self {
            Schedule::Every(every) => format!("every {}s", every.as_secs()),
            Schedule::Cron(cron) => cron.to_string(),
        }
    }

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
        assert_eq!(every("every 5d"), Some(5 * 86_400));
        assert_eq!(every("every 1w"), Some(7 * 86_400));
        assert_eq!(every("every 5y"), None);
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

    #[test]
    fn rejects_nonsense() {
        assert!("every".parse::<Schedule>().is_err());
        assert!("* * *".parse::<Schedule>().is_err());
        assert!("61 * * * *".parse::<Schedule>().is_err());
        assert!("0 9 * * 8".parse::<Schedule>().is_err());
    }
}
