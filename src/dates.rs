//! Dates as feeds and pages really write them, read leniently.
//!
//! Publishers write RFC 822 with every real-world variant (two-digit years, no day name, no
//! seconds, `GMT+8`, `EST`, full month names, `.` for `:`), RFC 3339 and ISO 8601 with or
//! without a zone, `2020/1/10 14:33:00`, and Chinese `2021年10月21日 21:49`. A date without a
//! zone is read in the zone the caller gives (the source's). Each reading says which format it
//! was, so `check` can explain a date.
//!
//! A leaf: pure functions of the text and the zone, no clock. (The `dateparser` crate reads
//! many of these shapes but fills a missing time of day from the clock, which would make the
//! same feed give different entries on every fetch, and cannot say which format matched.)

use std::sync::OnceLock;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use regex::Regex;

/// A date read from text, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub at: DateTime<Utc>,
    /// The shape the text had (`RFC 822`, `ISO 8601`, `YYYY/M/D`, `年月日`, …).
    pub format: &'static str,
    /// The text named its zone; otherwise it was read in the zone given.
    pub zoned: bool,
}

/// Reads `text` as a date; a date without a zone is in `tz`. Text after the date ("2020-12-01
/// 18:59 来源：…") is ignored, text before it is not.
pub fn read(text: &str, tz: Tz) -> Option<Reading> {
    let text = text.trim().trim_start_matches('\u{feff}').trim();
    if text.is_empty() || text.len() > 200 {
        return None;
    }
    iso(text, tz)
        .or_else(|| ymd_other(text, tz))
        .or_else(|| rfc822(text, tz))
        .or_else(|| month_first(text, tz))
}

/// Reads `text` with the source's own strftime `formats` first (page sources' `date_format`),
/// then as [`read`] does.
pub fn read_with(text: &str, formats: &[String], tz: Tz) -> Option<Reading> {
    let trimmed = text.trim();
    for fmt in formats {
        let naive = NaiveDateTime::parse_and_remainder(trimmed, fmt)
            .map(|(d, _)| d)
            .or_else(|_| {
                NaiveDate::parse_and_remainder(trimmed, fmt)
                    .map(|(d, _)| d.and_hms_opt(0, 0, 0).unwrap_or_default())
            });
        if let Ok(naive) = naive {
            if let Some(at) = in_zone(naive, Zone::Local(tz)) {
                return Some(Reading {
                    at,
                    format: "the source's date_format",
                    zoned: false,
                });
            }
        }
    }
    read(text, tz)
}

/// The zone of a date: named by the text, or the caller's.
#[derive(Debug, Clone, Copy)]
enum Zone {
    Fixed(i32),
    Local(Tz),
}

fn in_zone(naive: NaiveDateTime, zone: Zone) -> Option<DateTime<Utc>> {
    match zone {
        Zone::Fixed(seconds) => FixedOffset::east_opt(seconds)?
            .from_local_datetime(&naive)
            .single()
            .map(|d| d.with_timezone(&Utc)),
        // A time in a DST gap does not exist; the earliest reading of an ambiguous one is as
        // good as the other.
        Zone::Local(tz) => tz
            .from_local_datetime(&naive)
            .earliest()
            .map(|d| d.with_timezone(&Utc)),
    }
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("static date pattern"))
}

/// The date and time fields as numbers, checked and assembled. Hour 24:00 is the next day's
/// midnight, a leap second is the last second of its minute.
struct Parts {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
}

impl Parts {
    fn naive(&self) -> Option<NaiveDateTime> {
        let date = NaiveDate::from_ymd_opt(self.year, self.month, self.day)?;
        if self.hour == 24 && self.minute == 0 && self.second == 0 {
            return Some(date.and_hms_opt(0, 0, 0)? + Duration::days(1));
        }
        let second = self.second.min(59);
        date.and_hms_nano_opt(self.hour, self.minute, second, self.nanos)
    }
}

fn num(m: Option<regex::Match<'_>>) -> Option<u32> {
    m.map_or(Some(0), |m| m.as_str().parse().ok())
}

fn fraction(m: Option<regex::Match<'_>>) -> u32 {
    let Some(m) = m else { return 0 };
    let digits: String = m.as_str().chars().take(9).collect();
    let scale = 10u32.pow(9 - digits.len() as u32);
    digits.parse::<u32>().map_or(0, |n| n * scale)
}

/// A zone as written after a time: `Z`, `+08:00`, `+0800`, `+8`, `GMT+8`, `UTC`, `EST`…
fn zone_of(text: &str) -> Option<i32> {
    let t = text.trim();
    let upper = t.to_ascii_uppercase();
    for prefix in ["GMT", "UTC", "UT"] {
        if let Some(rest) = upper.strip_prefix(prefix) {
            if rest.is_empty() {
                return Some(0);
            }
            if rest.starts_with(['+', '-']) {
                return offset(rest);
            }
        }
    }
    if t.starts_with(['+', '-']) {
        return offset(t);
    }
    let hours = match upper.as_str() {
        "Z" => 0,
        "EST" => -5,
        "EDT" => -4,
        "CST" => -6,
        "CDT" => -5,
        "MST" => -7,
        "MDT" => -6,
        "PST" => -8,
        "PDT" => -7,
        "AKST" => -9,
        "AKDT" => -8,
        "HST" => -10,
        "AST" => -4,
        "ADT" => -3,
        "NZST" => 12,
        "NZDT" => 13,
        "BST" | "CET" | "WAT" => 1,
        "CEST" | "EET" | "SAST" => 2,
        "EEST" | "MSK" => 3,
        "IST" => return Some(5 * 3600 + 1800),
        "HKT" | "SGT" | "AWST" | "PHT" | "BJT" => 8,
        "JST" | "KST" => 9,
        "AEST" => 10,
        "AEDT" => 11,
        "WET" => 0,
        "WEST" => 1,
        _ => return None,
    };
    Some(hours * 3600)
}

/// `+08:00`, `+0800`, `+08`, `+8`, `-3:30`.
fn offset(text: &str) -> Option<i32> {
    let sign = if text.starts_with('-') { -1 } else { 1 };
    let body = &text[1..];
    let (h, m) = match body.split_once(':') {
        Some((h, m)) => (h, m),
        None if body.len() == 4 => body.split_at(2),
        None if body.len() <= 2 => (body, "0"),
        None => return None,
    };
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

fn zoned(parts: &Parts, zone_text: Option<&str>, tz: Tz) -> Option<(DateTime<Utc>, bool)> {
    let naive = parts.naive()?;
    match zone_text.map(str::trim).filter(|z| !z.is_empty()) {
        Some(z) => match zone_of(z) {
            Some(seconds) => Some((in_zone(naive, Zone::Fixed(seconds))?, true)),
            // A zone name we do not know: the source's zone is the best guess.
            None => Some((in_zone(naive, Zone::Local(tz))?, false)),
        },
        None => Some((in_zone(naive, Zone::Local(tz))?, false)),
    }
}

/// What may follow a date: nothing, or a break before other text.
fn ends_cleanly(rest: &str) -> bool {
    rest.chars()
        .next()
        .map_or(true, |c| !c.is_alphanumeric() || !c.is_ascii())
}

/// RFC 3339 and ISO 8601: `2026-03-02T08:00:00Z`, `2026-03-02 08:00:00`, `2026-03-02`,
/// `20040105T151045Z`, `2003-12-31T10:14:55.000-08:00`, `2004-01`.
fn iso(text: &str, tz: Tz) -> Option<Reading> {
    static ISO: OnceLock<Regex> = OnceLock::new();
    let re = re(
        &ISO,
        r"(?x)^
        (\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))? | (\d{2})(\d{2}) )?
        (?:(?:[Tt]|\s+)(\d{1,2})(?::?(\d{2})(?::?(\d{2})(?:[.,](\d+))?)?)?)?
        \s*(Z|z|(?:UTC|GMT)?\s*[+-]\d{1,2}(?::?\d{2})?|UTC|GMT)?",
    );
    let c = re.captures(text)?;
    let whole = c.get(0)?;
    if !ends_cleanly(&text[whole.end()..]) {
        return None;
    }
    // A bare year is a number, not a date.
    if c.get(2).is_none() && c.get(4).is_none() {
        return None;
    }
    let parts = Parts {
        year: c[1].parse().ok()?,
        month: num(c.get(2).or(c.get(4))).filter(|m| *m > 0).unwrap_or(1),
        day: num(c.get(3).or(c.get(5))).filter(|d| *d > 0).unwrap_or(1),
        hour: num(c.get(6))?,
        minute: num(c.get(7))?,
        second: num(c.get(8))?,
        nanos: fraction(c.get(9)),
    };
    if c.get(6).is_some() && c.get(7).is_none() && c.get(4).is_none() {
        // "2004-01-05T15" is too odd to guess at.
        return None;
    }
    let (at, zoned) = zoned(&parts, c.get(10).map(|m| m.as_str()), tz)?;
    Some(Reading {
        at,
        format: if zoned {
            "ISO 8601"
        } else {
            "ISO 8601 without zone"
        },
        zoned,
    })
}

/// `2020/1/10 14:33:00`, `2020.01.10 14:33`, and Chinese `2021年10月21日 21:49`,
/// `2021年10月21日21时49分`.
fn ymd_other(text: &str, tz: Tz) -> Option<Reading> {
    static YMD: OnceLock<Regex> = OnceLock::new();
    let re = re(
        &YMD,
        r"(?x)^
        (\d{4})\s*([/.年])\s*(\d{1,2})\s*[/.月]\s*(\d{1,2})\s*日?
        (?:\s*[T\s]?\s*(\d{1,2})\s*[:时:]\s*(\d{1,2})(?:\s*[:分:]\s*(\d{1,2}))?\s*[分秒]?)?
        \s*(Z|(?:UTC|GMT)?\s*[+-]\d{1,2}(?::?\d{2})?|UTC|GMT)?",
    );
    let c = re.captures(text)?;
    let parts = Parts {
        year: c[1].parse().ok()?,
        month: c[3].parse().ok()?,
        day: c[4].parse().ok()?,
        hour: num(c.get(5))?,
        minute: num(c.get(6))?,
        second: num(c.get(7))?,
        nanos: 0,
    };
    let (at, zoned) = zoned(&parts, c.get(8).map(|m| m.as_str()), tz)?;
    Some(Reading {
        at,
        format: if &c[2] == "年" {
            "年月日"
        } else {
            "YYYY/M/D"
        },
        zoned,
    })
}

fn month_number(name: &str) -> Option<u32> {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    if lower.len() < 3 {
        return None;
    }
    let (head, _) = lower.split_at(3);
    let n = MONTHS.iter().position(|m| *m == head)?;
    // "Sept" and full names are fine; "Marchy" is not.
    const FULL: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    (lower.len() == 3 || FULL[n].starts_with(&lower)).then_some(n as u32 + 1)
}

/// A two-digit year as RFC 2822 reads it: 00–49 are 2000–2049, 50–99 are 1950–1999.
fn full_year(text: &str) -> Option<i32> {
    let y: i32 = text.parse().ok()?;
    Some(match text.len() {
        2 if y < 50 => 2000 + y,
        2 => 1900 + y,
        4 => y,
        _ => return None,
    })
}

fn hour_12(hour: u32, meridiem: Option<&str>) -> Option<u32> {
    match meridiem.map(str::to_ascii_lowercase).as_deref() {
        None => Some(hour),
        Some(_) if hour == 0 || hour > 12 => None,
        Some("am") | Some("a.m.") => Some(hour % 12),
        Some(_) => Some(hour % 12 + 12),
    }
}

/// RFC 822 / 2822 and what publishers make of it: `Mon, 02 Mar 2026 08:00:00 GMT`,
/// `2 Mar 26 08:00 +0800`, `Monday, 02-Mar-2026 08.00.00 EST`, `02 March 2026`, `Mon,02 Mar
/// 2026 08:00:00 GMT+8`.
fn rfc822(text: &str, tz: Tz) -> Option<Reading> {
    static RFC822: OnceLock<Regex> = OnceLock::new();
    let re = re(
        &RFC822,
        r"(?xi)^
        (?:[a-z]{2,9}\.?\s*,?\s*)?
        (\d{1,2})(?:st|nd|rd|th)?[\s\-/]*([a-z]{3,9}\.?)[\s\-/,]*(\d{4}|\d{2})
        (?:[\sT,]+(\d{1,2})[:.](\d{2})(?:[:.](\d{2})(?:\.(\d+))?)?\s*(am|pm|a\.m\.|p\.m\.)?)?
        \s*((?:GMT|UTC|UT)?\s*[+-]\d{1,2}(?::?\d{2})?|[a-z]{1,5}\b)?",
    );
    let c = re.captures(text)?;
    let month = month_number(&c[2])?;
    let parts = Parts {
        year: full_year(&c[3])?,
        month,
        day: c[1].parse().ok()?,
        hour: hour_12(num(c.get(4))?, c.get(8).map(|m| m.as_str()))?,
        minute: num(c.get(5))?,
        second: num(c.get(6))?,
        nanos: fraction(c.get(7)),
    };
    let (at, zoned) = zoned(&parts, c.get(9).map(|m| m.as_str()), tz)?;
    Some(Reading {
        at,
        format: if zoned {
            "RFC 822"
        } else {
            "RFC 822 without zone"
        },
        zoned,
    })
}

/// Month first: `January 5, 2004`, `Jan 5 2004 10:00 PM`, `Wed, Mar 2 2026 08:00:00 +0000`,
/// and asctime / `date(1)`: `Sun Jan  4 16:29:06 2004`, `Sun Jan 4 16:29:06 PST 2004`.
fn month_first(text: &str, tz: Tz) -> Option<Reading> {
    static MDY: OnceLock<Regex> = OnceLock::new();
    static ASCTIME: OnceLock<Regex> = OnceLock::new();
    let asctime = re(
        &ASCTIME,
        r"(?xi)^(?:[a-z]{2,9},?\s+)?([a-z]{3,9})\s+(\d{1,2})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?
        (?:\s+([a-z]{1,5}|[+-]\d{4}))?\s+(\d{4})",
    );
    if let Some(c) = asctime.captures(text) {
        let parts = Parts {
            year: c[7].parse().ok()?,
            month: month_number(&c[1])?,
            day: c[2].parse().ok()?,
            hour: c[3].parse().ok()?,
            minute: c[4].parse().ok()?,
            second: num(c.get(5))?,
            nanos: 0,
        };
        let (at, zoned) = zoned(&parts, c.get(6).map(|m| m.as_str()), tz)?;
        return Some(Reading {
            at,
            format: "asctime",
            zoned,
        });
    }
    let re = re(
        &MDY,
        r"(?xi)^
        (?:[a-z]{2,9}\.?,?\s+)?
        ([a-z]{3,9}\.?)\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})
        (?:[\s,T]+(?:at\s+)?(\d{1,2}):(\d{2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?)?
        \s*((?:GMT|UTC|UT)?\s*[+-]\d{1,2}(?::?\d{2})?|[a-z]{1,5}\b)?",
    );
    let c = re.captures(text)?;
    let parts = Parts {
        year: c[3].parse().ok()?,
        month: month_number(&c[1])?,
        day: c[2].parse().ok()?,
        hour: hour_12(num(c.get(4))?, c.get(7).map(|m| m.as_str()))?,
        minute: num(c.get(5))?,
        second: num(c.get(6))?,
        nanos: 0,
    };
    let (at, zoned) = zoned(&parts, c.get(8).map(|m| m.as_str()), tz)?;
    Some(Reading {
        at,
        format: "month first",
        zoned,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> String {
        read(text, Tz::UTC)
            .map(|r| r.at.to_rfc3339())
            .unwrap_or_else(|| format!("unread: {text}"))
    }

    fn shanghai(text: &str) -> (String, &'static str) {
        let r = read(text, chrono_tz::Asia::Shanghai).expect(text);
        (r.at.to_rfc3339(), r.format)
    }

    #[test]
    fn rfc822_and_its_variants() {
        let want = "2026-03-02T08:00:00+00:00";
        for text in [
            "Mon, 02 Mar 2026 08:00:00 GMT",
            "Mon, 02 Mar 2026 08:00:00 +0000",
            "Mon, 2 Mar 2026 08:00:00 UT",
            "02 Mar 2026 08:00:00 Z",
            "Mon,02 Mar 2026 08:00:00 GMT",
            "Monday, 02 March 2026 08:00:00 GMT",
            "Mon, 02 Mar 26 08:00:00 GMT",
            "Mon, 02-Mar-2026 08:00:00 GMT",
            "Mon, 02 Mar 2026 03:00:00 EST",
            "Mon, 02 Mar 2026 16:00:00 +08:00",
            "Mon, 02 Mar 2026 16:00:00 GMT+8",
            "Mon, 02 Mar 2026 16:00:00 GMT+08:00",
            "Mon, 02 Mar 2026 08:00 GMT",
            "Mon, 02 Mar 2026 08.00.00 GMT",
            "mon, 02 mar 2026 08:00:00 gmt",
            "Mon, 02 Mar 2026 08:00:00.000 GMT",
            "Mon, 02 Mar 2026 08:00:00 GMT (some comment)",
        ] {
            assert_eq!(utc(text), want, "{text}");
        }
        assert_eq!(utc("02 Mar 2026"), "2026-03-02T00:00:00+00:00");
        assert_eq!(
            utc("Thu, 01 Jan 1970 00:00:00 GMT"),
            "1970-01-01T00:00:00+00:00"
        );
        assert_eq!(
            utc("Wed, 31 Dec 69 00:00:00 GMT"),
            "1969-12-31T00:00:00+00:00"
        );
    }

    #[test]
    fn iso_8601_with_and_without_zone() {
        assert_eq!(utc("2026-03-02T08:00:00Z"), "2026-03-02T08:00:00+00:00");
        assert_eq!(
            utc("2026-03-02T16:00:00+08:00"),
            "2026-03-02T08:00:00+00:00"
        );
        assert_eq!(utc("2026-03-02T16:00:00+0800"), "2026-03-02T08:00:00+00:00");
        assert_eq!(
            utc("2003-12-31T10:14:55.123-08:00"),
            "2003-12-31T18:14:55.123+00:00"
        );
        assert_eq!(utc("20040105T151045Z"), "2004-01-05T15:10:45+00:00");
        assert_eq!(utc("2004-01"), "2004-01-01T00:00:00+00:00");
        assert_eq!(utc("2004-01-05"), "2004-01-05T00:00:00+00:00");
        assert_eq!(utc("2004-01-05T24:00:00Z"), "2004-01-06T00:00:00+00:00");
        assert_eq!(utc("2016-12-31T23:59:60Z"), "2016-12-31T23:59:59+00:00");
        let (at, format) = shanghai("2026-03-02 08:00:00");
        assert_eq!(
            (at.as_str(), format),
            ("2026-03-02T00:00:00+00:00", "ISO 8601 without zone")
        );
        assert_eq!(
            shanghai("2026-03-02T08:00:00Z"),
            ("2026-03-02T08:00:00+00:00".into(), "ISO 8601")
        );
    }

    #[test]
    fn slashes_and_chinese_dates_in_the_sources_zone() {
        assert_eq!(
            shanghai("2020/1/10 14:33:00"),
            ("2020-01-10T06:33:00+00:00".into(), "YYYY/M/D")
        );
        assert_eq!(
            shanghai("2021年10月21日 21:49"),
            ("2021-10-21T13:49:00+00:00".into(), "年月日")
        );
        assert_eq!(
            shanghai("2021年10月21日21时49分"),
            ("2021-10-21T13:49:00+00:00".into(), "年月日")
        );
        assert_eq!(shanghai("2021年10月21日").0, "2021-10-20T16:00:00+00:00");
        assert_eq!(
            shanghai("2020-12-01 18:59 来源：中国证券报").0,
            "2020-12-01T10:59:00+00:00"
        );
    }

    #[test]
    fn month_first_and_asctime() {
        assert_eq!(utc("January 5, 2004"), "2004-01-05T00:00:00+00:00");
        assert_eq!(utc("Jan 5 2004 10:00 PM"), "2004-01-05T22:00:00+00:00");
        assert_eq!(utc("Sun Jan  4 16:29:06 2004"), "2004-01-04T16:29:06+00:00");
        assert_eq!(
            utc("Sun Jan 4 16:29:06 PST 2004"),
            "2004-01-05T00:29:06+00:00"
        );
        assert_eq!(
            utc("Wed, Mar 2 2026 08:00:00 +0000"),
            "2026-03-02T08:00:00+00:00"
        );
    }

    #[test]
    fn what_is_not_a_date_is_not_read() {
        for text in [
            "",
            "yesterday",
            "2004",
            "13/13/2004",
            "2004-13-01",
            "2004-02-30",
            "Mon, 32 Mar 2026 08:00:00 GMT",
            "Mon, 02 Foo 2026 08:00:00 GMT",
            "12345",
            "20041",
        ] {
            assert_eq!(read(text, Tz::UTC), None, "{text:?}");
        }
    }

    #[test]
    fn the_sources_formats_come_first() {
        let formats = vec!["%d/%m/%Y %H:%M".to_string()];
        let r = read_with("01/12/2020 18:59", &formats, chrono_tz::Asia::Shanghai).unwrap();
        assert_eq!(r.at.to_rfc3339(), "2020-12-01T10:59:00+00:00");
        assert_eq!(r.format, "the source's date_format");
    }
}
