//! Process-wide Prometheus metrics, served as text by `GET /metrics`.
//!
//! What is counted, and where:
//!
//! - fetches, their duration, bytes and entries: [`record_fetch`], called by `refresh::log`,
//!   which sees the report of every fetch (daemon and `tributary fetch` alike);
//! - HTTP requests by route template and status: [`record_http_request`], called by the
//!   server's middleware;
//! - per-source state kept in the store (last success after a restart, consecutive failures):
//!   [`observe_source`], called by the `/metrics` handler just before [`render`].
//!
//! The registry is one process-wide static (the "default registry" of Prometheus clients in
//! other languages) rather than a handle threaded through the code: a fetch is counted when its
//! line is logged (`RefreshReport::log`, by the scheduler and by `tributary fetch`), and
//! passing a registry down would widen every call for no gain. A `fetch` run counts into a registry nobody scrapes, which costs a few
//! atomic adds. Every label value is bounded: source ids come from the config, routes are the
//! router's templates (never raw paths), outcomes and methods are small fixed sets.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The Content-Type of [`render`]'s text: the Prometheus text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the fetch duration buckets: a cached 304 on a nearby host takes
/// ~10 ms, a slow page source with article pages can take the whole 30 s deadline.
pub const FETCH_DURATION_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0,
];

/// How a fetch ended, as [`record_fetch`] counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchResult {
    /// Read and stored: how many entries were new, edited, or joined another source's story.
    Stored {
        new: usize,
        updated: usize,
        merged: usize,
    },
    /// 304: nothing to read.
    NotModified,
    /// Any failure (HTTP, network, parse, store).
    Error,
}

impl FetchResult {
    /// The `outcome` label.
    pub fn label(&self) -> &'static str {
        match self {
            FetchResult::Stored { .. } => "ok",
            FetchResult::NotModified => "not_modified",
            FetchResult::Error => "error",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FetchLabels {
    source: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EntryLabels {
    source: String,
    change: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: String,
    status: u16,
}

fn duration_histogram() -> Histogram {
    Histogram::new(FETCH_DURATION_BUCKETS)
}

struct Metrics {
    registry: Registry,
    fetches: Family<FetchLabels, Counter>,
    fetch_duration: Family<OutcomeLabels, Histogram, fn() -> Histogram>,
    fetch_bytes: Family<SourceLabels, Counter>,
    entries: Family<EntryLabels, Counter>,
    merges: Family<SourceLabels, Counter>,
    last_success: Family<SourceLabels, Gauge>,
    consecutive_failures: Family<SourceLabels, Gauge>,
    drifting: Family<SourceLabels, Gauge>,
    http_requests: Family<HttpLabels, Counter>,
    feed_queries: Gauge,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tributary");
        let m = Metrics {
            registry: Registry::default(),
            fetches: Family::default(),
            fetch_duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            fetch_bytes: Family::default(),
            entries: Family::default(),
            merges: Family::default(),
            last_success: Family::default(),
            consecutive_failures: Family::default(),
            drifting: Family::default(),
            http_requests: Family::default(),
            feed_queries: Gauge::default(),
        };
        registry.register(
            "fetches",
            "Source fetches by outcome (ok, not_modified, error)",
            m.fetches.clone(),
        );
        registry.register_with_unit(
            "fetch_duration",
            "Time one source's fetch took, reading and storing included",
            Unit::Seconds,
            m.fetch_duration.clone(),
        );
        registry.register_with_unit(
            "fetch",
            "Body bytes received from sources, counted after decompression",
            Unit::Bytes,
            m.fetch_bytes.clone(),
        );
        registry.register(
            "entries",
            "Entries stored by fetches: change=new (first seen) or updated (edited)",
            m.entries.clone(),
        );
        registry.register(
            "dedupe_merges",
            "New or edited entries that joined another source's story (near-duplicates)",
            m.merges.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the source's last fetch that ended ok or not modified",
            m.last_success.clone(),
        );
        registry.register(
            "source_consecutive_failures",
            "Failed fetches in a row, as stored (0 after a success)",
            m.consecutive_failures.clone(),
        );
        registry.register(
            "source_drifting",
            "1 while the source's page looks drifted (its selectors match nothing, or its items lack dates, links or text far more than usual), else 0",
            m.drifting.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            m.http_requests.clone(),
        );
        registry.register(
            "feed_queries",
            "Feed queries run against the store since start (a cached feed costs none)",
            m.feed_queries.clone(),
        );
        Metrics { registry, ..m }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Counts one finished fetch of `source`: its outcome, duration, body bytes and, when stored,
/// its entries; a success (stored or not modified) sets the source's last-success time to
/// `finished_at` (Unix seconds).
pub fn record_fetch(
    source: &str,
    result: FetchResult,
    bytes: usize,
    duration: Duration,
    finished_at: i64,
) {
    let m = &*METRICS;
    let outcome = result.label();
    m.fetches
        .get_or_create(&FetchLabels {
            source: source.to_string(),
            outcome,
        })
        .inc();
    m.fetch_duration
        .get_or_create(&OutcomeLabels { outcome })
        .observe(duration.as_secs_f64());
    let by_source = SourceLabels {
        source: source.to_string(),
    };
    m.fetch_bytes.get_or_create(&by_source).inc_by(bytes as u64);
    if let FetchResult::Stored {
        new,
        updated,
        merged,
    } = result
    {
        for (change, n) in [("new", new), ("updated", updated)] {
            m.entries
                .get_or_create(&EntryLabels {
                    source: source.to_string(),
                    change,
                })
                .inc_by(n as u64);
        }
        m.merges.get_or_create(&by_source).inc_by(merged as u64);
    }
    if result != FetchResult::Error {
        m.last_success.get_or_create(&by_source).set(finished_at);
    }
}

/// Counts one answered HTTP request. `route` is the matched route template
/// (`/feeds/{file}`), or `unmatched` for a request no route took; methods other than the ones
/// the server answers are counted as `other`.
pub fn record_http_request(method: &str, route: &str, status: u16) {
    let method = match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        _ => "other",
    };
    METRICS
        .http_requests
        .get_or_create(&HttpLabels {
            method,
            route: route.to_string(),
            status,
        })
        .inc();
}

/// Brings a source's stored state into the gauges: its consecutive failures, and its last
/// success (`last_success`, Unix seconds) when this process has not fetched it yet, so the
/// gauge survives a restart.
pub fn observe_source(
    source: &str,
    consecutive_failures: u32,
    last_success: Option<i64>,
    drifting: bool,
) {
    let m = &*METRICS;
    let labels = SourceLabels {
        source: source.to_string(),
    };
    m.consecutive_failures
        .get_or_create(&labels)
        .set(i64::from(consecutive_failures));
    m.drifting.get_or_create(&labels).set(i64::from(drifting));
    if let Some(at) = last_success {
        if m.last_success.get(&labels).is_none() {
            m.last_success.get_or_create(&labels).set(at);
        }
    }
}

/// Sets the count of feed queries the store has run.
pub fn observe_feed_queries(total: u64) {
    METRICS
        .feed_queries
        .set(i64::try_from(total).unwrap_or(i64::MAX));
}

/// Every metric in the Prometheus text format ([`CONTENT_TYPE`]).
pub fn render() -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; an encoder error would be a bug in a metric type.
    if let Err(e) =
        prometheus_client::encoding::prometheus_text::encode(&mut out, &METRICS.registry)
    {
        tracing::error!(error = %e, "cannot encode metrics");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn fetches_are_counted_by_source_and_outcome() {
        // The registry is process-wide: use a source id no other test uses.
        let id = "metrics-unit-a";
        record_fetch(
            id,
            FetchResult::Stored {
                new: 3,
                updated: 1,
                merged: 2,
            },
            1234,
            Duration::from_millis(40),
            1_700_000_000,
        );
        record_fetch(
            id,
            FetchResult::NotModified,
            0,
            Duration::from_millis(5),
            1_700_000_100,
        );
        record_fetch(
            id,
            FetchResult::Error,
            0,
            Duration::from_secs(31),
            1_700_000_200,
        );
        let text = render();
        let s = |rest: &str| value(&text, &format!("tributary_{rest}"));
        assert_eq!(
            s(&format!("fetches_total{{source=\"{id}\",outcome=\"ok\"}}")),
            Some(1.0)
        );
        assert_eq!(
            s(&format!(
                "fetches_total{{source=\"{id}\",outcome=\"not_modified\"}}"
            )),
            Some(1.0)
        );
        assert_eq!(
            s(&format!(
                "fetches_total{{source=\"{id}\",outcome=\"error\"}}"
            )),
            Some(1.0)
        );
        assert_eq!(
            s(&format!("fetch_bytes_total{{source=\"{id}\"}}")),
            Some(1234.0)
        );
        assert_eq!(
            s(&format!("entries_total{{source=\"{id}\",change=\"new\"}}")),
            Some(3.0)
        );
        assert_eq!(
            s(&format!(
                "entries_total{{source=\"{id}\",change=\"updated\"}}"
            )),
            Some(1.0)
        );
        assert_eq!(
            s(&format!("dedupe_merges_total{{source=\"{id}\"}}")),
            Some(2.0)
        );
        // The error did not move the last success.
        assert_eq!(
            s(&format!(
                "last_success_timestamp_seconds{{source=\"{id}\"}}"
            )),
            Some(1_700_000_100.0)
        );
        assert!(text.contains("# TYPE tributary_fetch_duration_seconds histogram"));
        // 31 s is past the last bucket: counted in +Inf only.
        let bucket = |le: &str| {
            value(
                &text,
                &format!(
                    "tributary_fetch_duration_seconds_bucket{{outcome=\"error\",le=\"{le}\"}}"
                ),
            )
        };
        assert!(bucket("30").is_some_and(|n| n < bucket("+Inf").unwrap_or(0.0)));
    }

    #[test]
    fn stored_state_seeds_but_never_overrides() {
        let id = "metrics-unit-b";
        observe_source(id, 2, Some(1_600_000_000), false);
        let text = render();
        let series = format!("tributary_last_success_timestamp_seconds{{source=\"{id}\"}}");
        assert_eq!(value(&text, &series), Some(1_600_000_000.0));
        record_fetch(
            id,
            FetchResult::NotModified,
            0,
            Duration::ZERO,
            1_700_000_000,
        );
        observe_source(id, 0, Some(1_600_000_000), true);
        let text = render();
        assert_eq!(value(&text, &series), Some(1_700_000_000.0));
        assert_eq!(
            value(
                &text,
                &format!("tributary_source_consecutive_failures{{source=\"{id}\"}}")
            ),
            Some(0.0)
        );
        assert_eq!(
            value(
                &text,
                &format!("tributary_source_drifting{{source=\"{id}\"}}")
            ),
            Some(1.0)
        );
    }

    #[test]
    fn http_methods_are_bounded() {
        record_http_request("PROPFIND", "/metrics-unit", 405);
        record_http_request("GET", "/metrics-unit", 200);
        let text = render();
        assert!(text.contains(
            "tributary_http_requests_total{method=\"other\",route=\"/metrics-unit\",status=\"405\"} 1"
        ));
        assert!(text.contains(
            "tributary_http_requests_total{method=\"GET\",route=\"/metrics-unit\",status=\"200\"} 1"
        ));
    }
}
