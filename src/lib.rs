//! Tributary watches many news sources, keeps every entry in SQLite and republishes merged
//! feeds by category.
//!
//! # Layout
//!
//! One module per stage of the pipeline; data flows one way through plain structs:
//!
//! ```text
//! schedule ─▶ refresh: fetch ─▶ parse ─▶ normalize ─▶ store ◀─ publish ◀─ server
//! ```
//!
//! - [`config`]: the TOML file, validated before anything runs.
//! - [`daemon`]: the scheduler and the server over one store, until stopped; `serve` runs it.
//! - [`schedule`]: the per-source loop that runs each source when it is due.
//! - [`politeness`]: when to come back (jitter, backoff, freshness, Retry-After).
//! - [`fetch`]: polite, bounded HTTP GETs with conditional requests.
//! - [`decode`]: bytes to text: BOM, HTTP charset, XML declaration or `<meta>`, else a guess.
//! - [`parse`]: text to [`parse::ParsedFeed`] (our lenient XML reader, JSON Feed, pages),
//!   without invented ids.
//! - [`normalize`]: parsed items to the one [`model::Entry`] shape: clean text, absolute links,
//!   UTC dates, sanitized HTML, identity keys.
//! - [`text`]: sanitized HTML, the text of HTML, plain text that reads as no markup.
//! - [`store`]: SQLite. The only module that writes SQL.
//! - [`refresh`]: one source through fetch → parse → normalize → store. Shared by `fetch` and
//!   the daemon.
//! - [`feed_urls`]: where each published feed lives (path and URL of a scope).
//! - [`publish`]: stored entries to RSS 2.0, Atom 1.0 and JSON Feed 1.1 documents.
//! - [`server`]: HTTP routes, caching headers, `/metrics` and the admin API.
//! - [`opml`]: OPML 2.0: the feed list `GET /opml` serves, `opml export` of the sources and
//!   `opml import` of a reader's subscriptions (appended to the config).
//! - [`export`]: stored entries as static-site posts (Hexo Markdown), one file per entry.
//! - [`files`]: replacing a file whole (a temporary file renamed over it).
//! - [`metrics`]: the process-wide Prometheus counters, gauges and histograms.
//! - [`notify`]: systemd's notify protocol (READY, STATUS, RELOADING, STOPPING, WATCHDOG).
//! - [`websub`]: tells a WebSub hub when feeds gain entries.
//! - [`cli`]: the command line; the binary is a thin wrapper around [`cli::main`].
//!
//! See ARCHITECTURE.md for the invariants.

// Functions stay small: at most 100 lines (clippy.toml) and 7 parameters, with no `allow` for
// either (tests/architecture.rs checks); CI runs clippy with `-D warnings`.
#![warn(clippy::too_many_lines, clippy::too_many_arguments)]

pub mod cli;
pub mod config;
pub mod config_edit;
pub mod daemon;
pub mod dates;
pub mod decode;
pub mod dedupe;
pub mod export;
pub mod feed_urls;
pub mod fetch;
pub mod files;
pub mod health;
pub mod metrics;
pub mod model;
pub mod normalize;
pub mod notify;
pub mod opml;
pub mod pages;
pub mod parse;
pub mod politeness;
pub mod publish;
pub mod refresh;
pub mod rules;
pub mod schedule;
pub mod server;
pub mod store;
pub mod subscribe;
pub mod text;
pub mod websub;

/// jemalloc for every allocation, SQLite's included (its unprefixed build replaces malloc).
/// glibc's malloc cost ~11 % of a cold cycle's CPU (arena locks, `_int_malloc`, `_int_free`);
/// jemalloc took the 300-feed cold fetch from 5.0 to 3.5 s wall and 8.5 to 6.3 s CPU (7 pairs;
/// BENCHMARKS.md). Being in the library, benches and tests run on the daemon's allocator.
#[cfg(all(unix, not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its first allocation. A daemon mostly waits, so memory freed
/// after a burst (a cycle's documents, a search) goes back to the system within a second on a
/// background thread instead of at the next allocation; two arenas, as the daemon allocates
/// from a handful of busy threads. Measured with benches/rss.sh (1 M entries, every source due
/// each minute): median RSS 24.3 MB, as with glibc and two arenas. `MALLOC_CONF` in the
/// environment still overrides each option.
#[cfg(all(unix, not(target_env = "musl")))]
#[export_name = "malloc_conf"]
static MALLOC_CONF: MallocConf =
    MallocConf(c"narenas:2,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

/// `malloc_conf` is a C `const char *`; the pointer is to a static string, so sharing it
/// between threads is sound.
#[cfg(all(unix, not(target_env = "musl")))]
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);

// SAFETY: the pointer is to a `'static` C string literal that is never written.
#[cfg(all(unix, not(target_env = "musl")))]
unsafe impl Sync for MallocConf {}

/// Formats an error with its whole `source()` chain on one line, so a log line or a `fetch`
/// summary says the root cause ("connection refused") and not only the outermost context.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(cause) = cur {
        let text = cause.to_string();
        // reqwest and hyper repeat their inner message; skip exact repeats.
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = cause.source();
    }
    out
}
