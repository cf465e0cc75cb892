//! What an operator sees: `GET /metrics` read back with a strict Prometheus text-format parser,
//! `GET /api/sources`, and the admin API `POST /api/sources/{id}/refresh`, all against the
//! real binary and the fixture server on 127.0.0.1.
//!
//! Every wait is a poll with a deadline.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use prom_text_format_parser::{Scrape, Type, ValueType};
use serde_json::Value;

use crate::common::*;

const TOKEN: &str = "observability-test-token-0123456789";
const BROKEN_ID: &str = "broken";
const DISABLED_ID: &str = "switched-off";
/// How long a test waits for the daemon to do something it was asked to (or scheduled to).
const DEADLINE: Duration = Duration::from_secs(45);

fn broken_source(fixtures: &FixtureServer) -> Source {
    Source::new(BROKEN_ID, "Broken", &fixtures.url(STATUS_500_PATH), TECH)
}

/// Writes the config of `sources` in `dir`, with `[server] admin_token` when given.
fn config_in(dir: &Path, sources: &[Source], admin_token: Option<&str>) -> (PathBuf, SocketAddr) {
    let listen = free_addr();
    let mut text = config_text(listen, "tributary.db", sources);
    if let Some(token) = admin_token {
        text = text.replacen(
            "[server]\n",
            &format!("[server]\nadmin_token = \"{token}\"\n"),
            1,
        );
    }
    (write_config_text(dir, &text), listen)
}

/// `tributary serve` on `config`, answering `/healthz`.
fn start_daemon(config: &Path, listen: SocketAddr) -> ServeGuard {
    let mut serve = spawn_serve(config, listen);
    serve.wait_healthz();
    serve
}

// ---------------------------------------------------------------------------------------------
// /metrics, parsed
// ---------------------------------------------------------------------------------------------

/// One parsed scrape of `/metrics`.
struct Metrics {
    scrape: Scrape,
    text: String,
}

impl Metrics {
    /// GETs `/metrics`, checks the status and Content-Type, and parses the body with the
    /// strict text-format grammar (a parse error fails the test, showing the text).
    fn scrape(serve: &ServeGuard) -> Metrics {
        let resp = http_get(&serve.url("/metrics"));
        assert_eq!(resp.status, 200, "GET /metrics: {}", resp.body);
        let content_type = resp.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"),
            "GET /metrics Content-Type is {content_type:?}, not the Prometheus text format"
        );
        let scrape = Scrape::parse(&resp.body).unwrap_or_else(|e| {
            panic!(
                "/metrics is not valid Prometheus text: {e:?}\n{}",
                resp.body
            )
        });
        Metrics {
            scrape,
            text: resp.body,
        }
    }

    /// The value of one series: `name` as exposed (`tributary_fetches_total`, or a histogram's
    /// `…_count` / `…_sum`) whose labels are exactly `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<&str, &str> = labels.iter().copied().collect();
        for metric in &self.scrape.metrics {
            let value_type = if metric.name == name {
                ValueType::Sample
            } else if metric.kind == Type::Histogram
                && name.strip_suffix("_count") == Some(&metric.name)
            {
                ValueType::Count
            } else if metric.kind == Type::Histogram
                && name.strip_suffix("_sum") == Some(&metric.name)
            {
                ValueType::Sum
            } else {
                continue;
            };
            for sample in metric
                .samples
                .iter()
                .filter(|s| s.value.value_type == value_type)
            {
                let have: BTreeMap<&str, &str> = sample
                    .labels
                    .iter()
                    .map(|l| (l.key.as_str(), l.value.as_str()))
                    .collect();
                if have == want {
                    return Some(sample.value.value.as_f64());
                }
            }
        }
        None
    }

    /// Like [`Self::get`], 0 when the series is absent (a counter not yet created).
    fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// The declared type of a metric family.
    fn kind(&self, name: &str) -> Option<Type> {
        self.scrape
            .metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.kind)
    }

    /// A histogram's buckets for `labels` (without `le`), as (upper bound, cumulative count).
    fn buckets(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let want: BTreeMap<&str, &str> = labels.iter().copied().collect();
        let metric = self
            .scrape
            .metrics
            .iter()
            .find(|m| m.name == name && m.kind == Type::Histogram)
            .unwrap_or_else(|| panic!("no histogram {name}\n{}", self.text));
        let mut out: Vec<(f64, f64)> = metric
            .samples
            .iter()
            .filter(|s| s.value.value_type == ValueType::Sample)
            .filter_map(|s| {
                let mut have: BTreeMap<&str, &str> = s
                    .labels
                    .iter()
                    .map(|l| (l.key.as_str(), l.value.as_str()))
                    .collect();
                let le = have.remove("le")?;
                let le: f64 = le.parse().ok()?;
                (have == want).then(|| (le, s.value.value.as_f64()))
            })
            .collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }
}

/// Scrapes until `done` holds, or panics after [`DEADLINE`] with the last scrape and the
/// daemon's logs.
fn scrape_until(serve: &ServeGuard, what: &str, done: impl Fn(&Metrics) -> bool) -> Metrics {
    let mut last = String::new();
    serve
        .until(DEADLINE, || {
            let m = Metrics::scrape(serve);
            if done(&m) {
                return Some(m);
            }
            last = m.text;
            None
        })
        .unwrap_or_else(|| {
            panic!(
                "/metrics: {what} not seen after {DEADLINE:?}\n{last}\n{}",
                serve.logs()
            )
        })
}

fn fetches(m: &Metrics, source: &str, outcome: &str) -> f64 {
    m.count(
        "tributary_fetches_total",
        &[("source", source), ("outcome", outcome)],
    )
}

#[test]
fn metrics_count_fetches_by_source_and_outcome_and_move_after_each_fetch() {
    let fixtures = FixtureServer::start();
    let dir = tempfile::tempdir().expect("temp folder");
    // A fresh database: the daemon fetches both sources as it starts, then every 2 s (the
    // failing one with backoff).
    let sources = [
        Source::fixture(&fixtures, CS_ID).schedule("every 2s"),
        broken_source(&fixtures).schedule("every 2s"),
    ];
    let (config, addr) = config_in(dir.path(), &sources, None);
    let started = Utc::now().timestamp();
    let serve = start_daemon(&config, addr);

    let first = scrape_until(&serve, "a fetch of each source", |m| {
        fetches(m, CS_ID, "ok") >= 1.0 && fetches(m, BROKEN_ID, "error") >= 1.0
    });
    for (name, kind) in [
        ("tributary_fetches_total", Type::Counter),
        ("tributary_fetch_duration_seconds", Type::Histogram),
        ("tributary_fetch_bytes_total", Type::Counter),
        ("tributary_entries_total", Type::Counter),
        ("tributary_dedupe_merges_total", Type::Counter),
        ("tributary_last_success_timestamp_seconds", Type::Gauge),
        ("tributary_source_consecutive_failures", Type::Gauge),
        ("tributary_http_requests_total", Type::Counter),
    ] {
        assert_eq!(first.kind(name), Some(kind), "{name}\n{}", first.text);
    }

    // The first fetch of the good source read the whole fixture and stored every entry.
    assert_eq!(fetches(&first, CS_ID, "ok"), 1.0, "{}", first.text);
    assert_eq!(fetches(&first, CS_ID, "error"), 0.0, "{}", first.text);
    assert_eq!(
        first.get("tributary_fetch_bytes_total", &[("source", CS_ID)]),
        Some(fixture_bytes(CS_FILE).len() as f64),
        "bytes of the one 200 (a 304 adds none)\n{}",
        first.text
    );
    assert_eq!(
        first.get(
            "tributary_entries_total",
            &[("source", CS_ID), ("change", "new")]
        ),
        Some(expected_for(&[CS_ID]).len() as f64),
        "{}",
        first.text
    );
    assert_eq!(
        first.get(
            "tributary_entries_total",
            &[("source", CS_ID), ("change", "updated")]
        ),
        Some(0.0)
    );
    assert_eq!(
        first.get("tributary_dedupe_merges_total", &[("source", CS_ID)]),
        Some(0.0),
        "one working source has nobody to merge with"
    );
    let last_ok = first
        .get(
            "tributary_last_success_timestamp_seconds",
            &[("source", CS_ID)],
        )
        .expect("a last success time for the good source");
    assert!(
        last_ok >= started as f64 && last_ok <= Utc::now().timestamp() as f64,
        "last success {last_ok} outside [{started}, now]"
    );
    assert_eq!(
        first.get(
            "tributary_last_success_timestamp_seconds",
            &[("source", BROKEN_ID)]
        ),
        None,
        "a source that never succeeded has no last success"
    );
    assert!(
        first.count(
            "tributary_source_consecutive_failures",
            &[("source", BROKEN_ID)]
        ) >= 1.0,
        "{}",
        first.text
    );
    assert_eq!(
        first.get(
            "tributary_source_consecutive_failures",
            &[("source", CS_ID)]
        ),
        Some(0.0)
    );

    // The duration histogram: cumulative buckets from 10 ms to 30 s, +Inf equal to the count.
    let ok = [("outcome", "ok")];
    let buckets = first.buckets("tributary_fetch_duration_seconds", &ok);
    let bounds: Vec<f64> = buckets.iter().map(|b| b.0).collect();
    assert_eq!(bounds.first(), Some(&0.01), "{bounds:?}");
    assert!(bounds.contains(&30.0), "{bounds:?}");
    assert_eq!(bounds.last(), Some(&f64::INFINITY), "{bounds:?}");
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    let ok_count = first
        .get("tributary_fetch_duration_seconds_count", &ok)
        .expect("histogram count");
    assert_eq!(buckets.last().map(|b| b.1), Some(ok_count));
    assert!(
        first
            .get("tributary_fetch_duration_seconds_sum", &ok)
            .expect("sum")
            > 0.0
    );

    // Each scheduled fetch after the first is a 304: the counters move, the last success
    // moves on, nothing is stored and no body is counted.
    let total = |m: &Metrics| {
        ["ok", "not_modified", "error"]
            .into_iter()
            .map(|o| m.count("tributary_fetch_duration_seconds_count", &[("outcome", o)]))
            .sum::<f64>()
    };
    let (before, cs_before) = (total(&first), fetches(&first, CS_ID, "not_modified"));
    let later = scrape_until(&serve, "another 304 of the good source", |m| {
        fetches(m, CS_ID, "not_modified") > cs_before
    });
    assert!(total(&later) > before, "{}", later.text);
    assert_eq!(fetches(&later, CS_ID, "ok"), 1.0, "{}", later.text);
    assert_eq!(
        later.get("tributary_fetch_bytes_total", &[("source", CS_ID)]),
        Some(fixture_bytes(CS_FILE).len() as f64),
        "a 304 has no body"
    );
    assert!(
        later
            .get(
                "tributary_last_success_timestamp_seconds",
                &[("source", CS_ID)]
            )
            .unwrap_or(0.0)
            >= last_ok
    );
    assert_eq!(
        later.get(
            "tributary_entries_total",
            &[("source", CS_ID), ("change", "new")]
        ),
        Some(expected_for(&[CS_ID]).len() as f64),
        "a 304 stores nothing"
    );
}

#[test]
fn http_requests_are_counted_by_route_template_and_status() {
    let fixtures = FixtureServer::start();
    let dir = tempfile::tempdir().expect("temp folder");
    let sources = [Source::fixture(&fixtures, CS_ID)];
    let (config, addr) = config_in(dir.path(), &sources, None);
    let (code, stdout, stderr) = run_fetch(&config, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let serve = start_daemon(&config, addr);

    assert_eq!(http_get(&serve.url("/feeds/all.atom")).status, 200);
    let finance = format!("/feeds/{}.rss", pct(FINANCE));
    assert_eq!(http_get(&serve.url(&finance)).status, 200);
    assert_eq!(http_get(&serve.url("/feeds/nothing-here.json")).status, 404);
    assert_eq!(
        http_get(&serve.url(&format!("/sources/{CS_ID}.json"))).status,
        200
    );
    assert_eq!(http_get(&serve.url("/no/such/page")).status, 404);
    assert_eq!(http_post_with(&serve.url("/metrics"), &[]).status, 405);

    let m = Metrics::scrape(&serve);
    let requests = |method: &str, route: &str, status: &str| {
        m.count(
            "tributary_http_requests_total",
            &[("method", method), ("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("GET", "/feeds/{file}", "200"), 2.0, "{}", m.text);
    assert_eq!(requests("GET", "/feeds/{file}", "404"), 1.0, "{}", m.text);
    assert_eq!(requests("GET", "/sources/{file}", "200"), 1.0, "{}", m.text);
    assert_eq!(requests("GET", "unmatched", "404"), 1.0, "{}", m.text);
    assert_eq!(requests("POST", "/metrics", "405"), 1.0, "{}", m.text);
    assert!(requests("GET", "/healthz", "200") >= 1.0, "{}", m.text);
    // Raw paths never become label values.
    for raw in ["all.atom", "nothing-here", "/no/such/page", "%E9"] {
        assert!(
            !m.text.contains(raw),
            "{raw:?} leaked into a label\n{}",
            m.text
        );
    }

    // This scrape is counted by the next one.
    let again = Metrics::scrape(&serve);
    assert!(
        again.count(
            "tributary_http_requests_total",
            &[("method", "GET"), ("route", "/metrics"), ("status", "200")]
        ) >= 1.0
    );
}

// ---------------------------------------------------------------------------------------------
// /api/sources
// ---------------------------------------------------------------------------------------------

#[test]
fn api_sources_reports_each_sources_state() {
    let fixtures = FixtureServer::start();
    let dir = tempfile::tempdir().expect("temp folder");
    let conf = dir.path().join("conf");
    // One fetch with three sources, then the daemon on a config without the tech blog.
    let mut sources = vec![
        Source::fixture(&fixtures, CS_ID),
        broken_source(&fixtures).schedule("every 1s"),
        Source::fixture(&fixtures, TECH_ID),
    ];
    let (config, _) = config_in(&conf, &sources, None);
    let before = Utc::now() - chrono::Duration::seconds(1);
    let (code, stdout, stderr) = run_fetch(&config, &[]);
    assert_eq!(code, 1, "the broken source fails the run\n{stdout}{stderr}");
    sources.pop();
    let (config, addr) = config_in(&conf, &sources, None);
    let serve = start_daemon(&config, addr);

    let all = api_sources(&serve);
    assert_eq!(all.len(), 3, "{all:?}");
    let keys = [
        "active",
        "category",
        "consecutive_failures",
        "disabled_reason",
        "drift",
        "entry_count",
        "id",
        "last_error",
        "last_fetch",
        "last_status",
        "name",
        "next_run",
    ];
    for s in &all {
        let mut have: Vec<&str> = s
            .as_object()
            .expect("each source is an object")
            .keys()
            .map(String::as_str)
            .collect();
        have.sort_unstable();
        assert_eq!(have, keys, "{s}");
    }

    let cs = source_in(&all, CS_ID);
    assert_eq!(cs["name"], CS_NAME);
    assert_eq!(cs["category"], FINANCE);
    assert_eq!(cs["active"], true);
    assert_eq!(cs["last_status"], "ok");
    assert_eq!(cs["last_error"], Value::Null);
    assert_eq!(cs["consecutive_failures"], 0);
    assert_eq!(cs["disabled_reason"], Value::Null);
    assert_eq!(cs["entry_count"], expected_for(&[CS_ID]).len());
    let fetched = time_of(&cs["last_fetch"]).expect("last_fetch is set");
    assert!(fetched >= before && fetched <= Utc::now(), "{fetched}");
    // Never fetched by this daemon yet: the next run is planned but not stored, or stored.
    if let Some(next) = time_of(&cs["next_run"]) {
        assert!(next > fetched, "{next} <= {fetched}");
    }

    // A source that left the config keeps its entries, inactive, listed after the active ones.
    let tech = source_in(&all, TECH_ID);
    assert_eq!(tech["active"], false);
    assert_eq!(tech["entry_count"], expected_for(&[TECH_ID]).len());
    assert_eq!(all.last().map(|s| &s["id"]), Some(&Value::from(TECH_ID)));

    // The failing source: its error, its failures in a row (the daemon retries it with
    // backoff), and its next run once the daemon has planned one.
    // The failure is recorded a moment before the run after it is planned: until then the
    // next run shown is the one that just came due.
    let broken = source_until(&serve, BROKEN_ID, "a second failure and a next run", |s| {
        s["consecutive_failures"].as_u64().unwrap_or(0) >= 2
            && time_of(&s["next_run"]) > time_of(&s["last_fetch"])
    });
    assert_eq!(broken["last_status"], "error");
    assert!(
        broken["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{broken}"
    );
    assert_eq!(broken["entry_count"], 0);
    assert_eq!(broken["active"], true);
    let last = time_of(&broken["last_fetch"]).expect("last_fetch");
    let next = time_of(&broken["next_run"]).expect("next_run");
    // Every 1 s, but failed twice in a row: at least 2² × 1 s later, less a second of rounding.
    assert!(
        (next - last).num_seconds() >= 3,
        "backoff plans the next run well after the last fetch: {broken}"
    );
}

// ---------------------------------------------------------------------------------------------
// POST /api/sources/{id}/refresh
// ---------------------------------------------------------------------------------------------

fn refresh_url(serve: &ServeGuard, id: &str) -> String {
    serve.url(&format!("/api/sources/{id}/refresh"))
}

#[test]
fn admin_refresh_needs_the_token_and_fetches_now() {
    let fixtures = FixtureServer::start();
    let dir = tempfile::tempdir().expect("temp folder");
    let sources = [
        Source::fixture(&fixtures, CS_ID),
        Source::fixture(&fixtures, TECH_ID),
        Source::new(DISABLED_ID, "Off", &fixtures.url(TECH_FILE), TECH).enabled(false),
    ];
    let (config, addr) = config_in(dir.path(), &sources, Some(TOKEN));
    // Fetched once: the daemon's next scheduled run is 15 minutes away.
    let (code, stdout, stderr) = run_fetch(&config, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let serve = start_daemon(&config, addr);
    let all = api_sources(&serve);
    let first = time_of(&source_in(&all, CS_ID)["last_fetch"]).expect("fetched");
    let tech_first = source_in(&all, TECH_ID)["last_fetch"].clone();
    let hits = fixtures.hits(CS_FILE).len();

    // Refused without the token, with a wrong one, or with another scheme; nothing fetched.
    let url = refresh_url(&serve, CS_ID);
    let wrong = format!("Bearer {TOKEN}x");
    let basic = format!("Basic {TOKEN}");
    for headers in [
        vec![],
        vec![("Authorization", wrong.as_str())],
        vec![("Authorization", "Bearer ")],
        vec![("Authorization", basic.as_str())],
    ] {
        let resp = http_post_with(&url, &headers);
        assert_eq!(resp.status, 401, "{headers:?}: {}", resp.body);
        assert!(
            resp.header("www-authenticate")
                .is_some_and(|h| h.starts_with("Bearer")),
            "{:?}",
            resp.headers
        );
        assert!(resp.body.contains("\"error\""), "{}", resp.body);
    }
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    let unknown = http_post_with(&refresh_url(&serve, "no-such-source"), &auth);
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let off = http_post_with(&refresh_url(&serve, DISABLED_ID), &auth);
    assert_eq!(
        off.status, 409,
        "a configured but disabled source: {}",
        off.body
    );
    assert_eq!(http_get(&url).status, 405, "GET does not refresh");
    assert_eq!(
        fixtures.hits(CS_FILE).len(),
        hits,
        "refused requests fetched"
    );

    let accepted = http_post_with(&url, &auth);
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let body: Value = serde_json::from_str(&accepted.body).expect("202 answers JSON");
    assert_eq!(body["id"], CS_ID);

    // The first fetch stored entries ("ok"); the refresh finds nothing new.
    assert_eq!(source_in(&all, CS_ID)["last_status"], "ok");
    let cs = source_until(&serve, CS_ID, "the refresh's fetch", |s| {
        s["last_status"] == "not modified"
    });
    assert!(
        time_of(&cs["last_fetch"]).is_some_and(|t| t >= first),
        "{cs}"
    );
    assert_eq!(cs["last_status"], "not modified", "{cs}");
    assert!(fixtures.hits(CS_FILE).len() > hits);
    // Only the source asked for was fetched.
    assert_eq!(
        source_in(&api_sources(&serve), TECH_ID)["last_fetch"],
        tech_first
    );
    let m = Metrics::scrape(&serve);
    assert_eq!(fetches(&m, CS_ID, "not_modified"), 1.0, "{}", m.text);
    assert_eq!(fetches(&m, TECH_ID, "not_modified"), 0.0, "{}", m.text);
    assert_eq!(
        m.count(
            "tributary_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/api/sources/{id}/refresh"),
                ("status", "401")
            ]
        ),
        4.0,
        "{}",
        m.text
    );
}

#[test]
fn admin_api_is_off_without_a_token() {
    let fixtures = FixtureServer::start();
    let dir = tempfile::tempdir().expect("temp folder");
    let sources = [Source::fixture(&fixtures, CS_ID)];
    let (config, addr) = config_in(dir.path(), &sources, None);
    let (code, stdout, stderr) = run_fetch(&config, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let serve = start_daemon(&config, addr);
    let hits = fixtures.hits(CS_FILE).len();
    let bearer = format!("Bearer {TOKEN}");
    for headers in [vec![], vec![("Authorization", bearer.as_str())]] {
        let resp = http_post_with(&refresh_url(&serve, CS_ID), &headers);
        assert_eq!(resp.status, 403, "{headers:?}: {}", resp.body);
        assert!(resp.body.contains("admin_token"), "{}", resp.body);
    }
    assert_eq!(fixtures.hits(CS_FILE).len(), hits);
}

#[test]
fn a_short_admin_token_is_a_config_error() {
    let dir = tempfile::tempdir().expect("temp folder");
    let sources = [Source::new(
        CS_ID,
        CS_NAME,
        "http://127.0.0.1:9/feed.xml",
        FINANCE,
    )];
    let (config, _) = config_in(dir.path(), &sources, Some("letmein"));
    let (code, stdout, stderr) = run_fetch(&config, &[]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("admin_token") && !stderr.contains("letmein"),
        "the error names the key, not the secret: {stderr}"
    );
}
