//! Corpus conformance run: every feed file of the shared third-party corpus (the test suites
//! of feedparser, feed-rs, gofeed, miniflux, feedjira, rss-parser and RSParser) is served on
//! loopback and fetched as a source by ONE `tributary fetch` over a config holding all of
//! them.
//!
//! What must hold:
//! - the run never panics or crashes (exit 0 or 1, no "panicked" on stderr), and every source
//!   ends with one `ok` line or one `error: <cause>` line;
//! - tributary stores entries for at least as many files as feedparser parsed cleanly
//!   (`BASELINE.tsv`: bozo = 0 and at least one entry);
//! - every file where tributary stores fewer entries than feedparser (bozo = 0) is listed,
//!   with its counts and the reason, in `tests/fixtures/corpus/expected-shortfalls.tsv`; a
//!   listed file that no longer falls short (or whose count changed) fails too, so the list
//!   stays true.
//!
//! The corpus is never copied into the repository. It is found at `$TRIBUTARY_FEED_CORPUS`,
//! else `$TRIBUTARY_SHARED/feed-corpus`, else `../shared/feed-corpus` beside the checkout;
//! without it the test fails saying how to point it there.
//!
//! The in-process server answers each file the way `shared/tools/serve-corpus
//! --header-comments` did when `BASELINE.tsv` was made: the same sniffed Content-Types, the
//! feedparser-suite `Header: Name: value` lines in the first 4096 bytes turned into the HTTP
//! status and headers, and the already-compressed `feedparser/compression/*` files sent as they
//! are with `Content-Encoding` and `Content-Type: application/xml` (the baseline fetched them
//! with `?as_encoding=gzip|deflate&ct=application/xml`).
//!
//! Environment knobs (all optional):
//! - `TRIBUTARY_CORPUS_REPORT=FILE` writes one TSV row per file (path, feedparser, newsboat,
//!   tributary, fetch status) for investigation.
//! - `TRIBUTARY_CORPUS_BLESS=1` rewrites the expectations file from this run, keeping the
//!   reasons already written and marking new rows `UNEXPLAINED`; the test still fails until
//!   every row has a real reason.
//! - `TRIBUTARY_CORPUS_KEEP=1` keeps the temporary folder (config, `tributary.db`) and prints
//!   where it is.
//!
//! Also, in process: the identity keys of every item read from the raw feed (what the store is
//! asked before article pages are fetched) are the keys its normalized entry gets.
//!
//! A run prints one summary line on stderr (`--nocapture` shows it): files with entries
//! stored by tributary, feedparser and newsboat, tributary's errors, and the wall time.

use crate::common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;

use crate::common::{
    config_text, etag_of, parse_fetch_output, pct, run_bounded, tributary_command,
};
use crate::common::{FetchStatus, Source};

/// Where the corpus is, when set.
const CORPUS_ENV: &str = "TRIBUTARY_FEED_CORPUS";
/// The shared data folder (`.ci/run` exports it); the corpus is its `feed-corpus/`.
const SHARED_ENV: &str = "TRIBUTARY_SHARED";
const REPORT_ENV: &str = "TRIBUTARY_CORPUS_REPORT";
const KEEP_ENV: &str = "TRIBUTARY_CORPUS_KEEP";
const BLESS_ENV: &str = "TRIBUTARY_CORPUS_BLESS";
/// A reason that still has to be written.
const UNEXPLAINED: &str = "UNEXPLAINED";

/// The one `fetch` over the whole corpus may take this long.
const CORPUS_FETCH_DEADLINE: Duration = Duration::from_secs(300);
/// Fetches at once: well above the default 8, so the run is bound by the per-host limit.
const CONCURRENCY: usize = 16;

fn expectations_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/expected-shortfalls.tsv")
}

// ---------------------------------------------------------------------------------------------
// Finding and reading the corpus
// ---------------------------------------------------------------------------------------------

fn corpus_dir() -> PathBuf {
    let usable = |p: &Path| p.join("BASELINE.tsv").is_file();
    if let Some(dir) = std::env::var_os(CORPUS_ENV).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        assert!(
            usable(&dir),
            "${CORPUS_ENV} is {} but that folder has no BASELINE.tsv; point it at the shared \
             feed corpus (the folder holding MANIFEST.md, SOURCES.tsv and BASELINE.tsv)",
            dir.display()
        );
        return dir;
    }
    let mut tried = Vec::new();
    if let Some(shared) = std::env::var_os(SHARED_ENV).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(shared).join("feed-corpus");
        if usable(&dir) {
            return dir;
        }
        tried.push(dir);
    }
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/feed-corpus");
    if usable(&beside) {
        return beside;
    }
    tried.push(beside);
    panic!(
        "the feed corpus was not found (tried {}). Set {CORPUS_ENV} to the corpus folder, e.g. \
         `{CORPUS_ENV}=$(pwd)/../shared/feed-corpus cargo test --test it corpus::` \
         (`.ci/run` sets it); this test never passes without the corpus",
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// One row of `BASELINE.tsv`: what the reference readers made of a file.
#[derive(Debug, Clone)]
struct Baseline {
    path: String,
    /// The sniffed root element / JSON version (`rss-0.91`, `atom-0.3`, `jsonfeed-1.1`…).
    kind: String,
    fp_bozo: bool,
    fp_entries: u64,
    nb_ok: bool,
    nb_items: u64,
}

impl Baseline {
    /// feedparser parsed the file without complaint.
    fn fp_clean(&self) -> bool {
        !self.fp_bozo
    }
}

fn read_baseline(corpus: &Path) -> Vec<Baseline> {
    let path = corpus.join("BASELINE.tsv");
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .expect("BASELINE.tsv has a header")
        .split('\t')
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("BASELINE.tsv has no column {name:?}: {header:?}"))
    };
    let c_kind = col("kind");
    let (c_path, c_bozo, c_entries, c_nb_ok, c_nb_items) = (
        col("path"),
        col("fp_bozo"),
        col("fp_entries"),
        col("nb_ok"),
        col("nb_items"),
    );
    let number = |fields: &[&str], i: usize, line: &str| -> u64 {
        let f = fields.get(i).copied().unwrap_or("");
        if f.is_empty() {
            0
        } else {
            f.parse()
                .unwrap_or_else(|_| panic!("BASELINE.tsv: column {i} is not a number in {line:?}"))
        }
    };
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            Baseline {
                path: fields[c_path].to_string(),
                kind: fields.get(c_kind).copied().unwrap_or("").to_string(),
                fp_bozo: number(&fields, c_bozo, line) != 0,
                fp_entries: number(&fields, c_entries, line),
                nb_ok: number(&fields, c_nb_ok, line) != 0,
                nb_items: number(&fields, c_nb_items, line),
            }
        })
        .collect()
}

/// One row of the expectations file.
#[derive(Debug, Clone)]
struct Shortfall {
    tributary: u64,
    feedparser: u64,
    reason: String,
}

const EXPECTATIONS_HEADER: &str = "path\ttributary\tfeedparser\treason";

fn read_expectations(path: &Path) -> BTreeMap<String, Shortfall> {
    let Ok(text) = fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') || line == EXPECTATIONS_HEADER {
            continue;
        }
        let fields: Vec<&str> = line.splitn(4, '\t').collect();
        let bad = || -> ! {
            panic!(
                "{}:{}: expected \"path<TAB>tributary<TAB>feedparser<TAB>reason\", got {line:?}",
                path.display(),
                n + 1
            )
        };
        if fields.len() != 4 {
            bad();
        }
        let row = Shortfall {
            tributary: fields[1].parse().unwrap_or_else(|_| bad()),
            feedparser: fields[2].parse().unwrap_or_else(|_| bad()),
            reason: fields[3].trim().to_string(),
        };
        if out.insert(fields[0].to_string(), row).is_some() {
            panic!("{}: {} is listed twice", path.display(), fields[0]);
        }
    }
    out
}

fn write_expectations(path: &Path, rows: &BTreeMap<String, Shortfall>) {
    let mut text = String::from(
        "# Corpus files where tributary stores fewer entries than feedparser 6.0.14 read from\n\
         # them (files feedparser parsed with bozo=0), with both counts and the reason.\n\
         # tests/it/corpus.rs fails on a shortfall missing here and on a row that no longer holds\n\
         # (when a fix makes a file fall away, delete its row, or rerun the test with\n\
         # TRIBUTARY_CORPUS_BLESS=1, which rewrites this file from the run and keeps the\n\
         # reasons). \"TRIBUTARY DEFECT\" marks shortfalls that are tributary's to fix; the\n\
         # others are limits of feed-rs or deliberate identity rules.\n",
    );
    text.push_str(EXPECTATIONS_HEADER);
    text.push('\n');
    for (p, r) in rows {
        let _ = writeln!(text, "{p}\t{}\t{}\t{}", r.tributary, r.feedparser, r.reason);
    }
    fs::create_dir_all(path.parent().expect("expectations file has a folder"))
        .expect("creating tests/fixtures/corpus");
    fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

// ---------------------------------------------------------------------------------------------
// The corpus server: serve-corpus --header-comments, in-process
// ---------------------------------------------------------------------------------------------

/// Everything one file's answer is made of, worked out once.
struct Answer {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Vec<u8>,
}

/// serve-corpus's `EXT_TYPES`.
fn ext_type(ext: &str) -> Option<&'static str> {
    Some(match ext {
        ".atom" => "application/atom+xml",
        ".rss" => "application/rss+xml",
        ".rdf" => "application/rdf+xml",
        ".opml" => "text/x-opml",
        ".json" => "application/json",
        ".html" | ".htm" => "text/html",
        ".txt" => "text/plain",
        ".xml" => "application/xml",
        ".gz" => "application/gzip",
        _ => return None,
    })
}

/// Python's `os.path.splitext(path)[1].lower()`.
fn extension(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem_start = name.len() - name.trim_start_matches('.').len();
    match name[stem_start..].rfind('.') {
        Some(i) => name[stem_start + i..].to_ascii_lowercase(),
        None => String::new(),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// serve-corpus's `sniff_type`: by extension, refined by sniffing XML roots in the first
/// 2048 bytes. (Its `mimetypes` fallback never applies to the corpus's extensions.)
fn sniff_type(path: &str, body: &[u8]) -> &'static str {
    let ext = extension(path);
    let lower = body[..body.len().min(2048)].to_ascii_lowercase();
    let known = ext_type(&ext);
    if matches!(
        ext.as_str(),
        ".xml" | ".rss" | ".atom" | ".rdf" | ".feed" | ""
    ) || known.is_none()
    {
        if contains(&lower, b"<rss") {
            return "application/rss+xml";
        }
        if contains(&lower, b"<feed") {
            return "application/atom+xml";
        }
        if contains(&lower, b"<rdf:rdf") {
            return "application/rdf+xml";
        }
        if contains(&lower, b"<opml") {
            return "text/x-opml";
        }
        if contains(&lower, b"<html") || contains(&lower, b"<!doctype html") {
            return "text/html";
        }
    }
    if ext == ".json" && contains(&lower, b"jsonfeed.org/version") {
        return "application/feed+json";
    }
    if let Some(t) = known {
        return t;
    }
    let stripped = body.trim_ascii_start();
    if stripped.starts_with(b"<") {
        "application/xml"
    } else {
        "application/octet-stream"
    }
}

/// Python's `str.strip()` on text decoded as Latin-1.
fn py_strip(mut b: &[u8]) -> &[u8] {
    let space = |c: u8| matches!(c, b' ' | b'\t'..=b'\r' | 0x1c..=0x1f | 0x85 | 0xa0);
    while let [first, rest @ ..] = b {
        if !space(*first) {
            break;
        }
        b = rest;
    }
    while let [rest @ .., last] = b {
        if !space(*last) {
            break;
        }
        b = rest;
    }
    b
}

/// The `Header: Name: value` lines in the first 4096 bytes, as serve-corpus reads them:
/// `^Header:\s+([^:\r\n]+):(.+)$` (multi-line), both parts stripped.
fn header_comments(body: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let head = &body[..body.len().min(4096)];
    let mut out = Vec::new();
    for line in head.split(|&b| b == b'\n') {
        let Some(rest) = line.strip_prefix(b"Header:") else {
            continue;
        };
        // \s+ (at least one; it may not cross into the next line, as there is none here).
        let after_space = rest.trim_ascii_start();
        if after_space.len() == rest.len() {
            continue;
        }
        // ([^:\r\n]+): then (.+) to the end of the line ('.' matches '\r' in Python).
        let Some(colon) = after_space.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = &after_space[..colon];
        let value = &after_space[colon + 1..];
        if name.is_empty() || name.contains(&b'\r') || value.is_empty() {
            continue;
        }
        out.push((py_strip(name).to_vec(), py_strip(value).to_vec()));
    }
    out
}

fn http_date(t: std::time::SystemTime) -> String {
    let t: chrono::DateTime<chrono::Utc> = t.into();
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn answer_for(corpus: &Path, rel: &str) -> Answer {
    let full = corpus.join(rel);
    let body = fs::read(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()));
    let mtime = fs::metadata(&full)
        .and_then(|m| m.modified())
        .unwrap_or(std::time::UNIX_EPOCH);
    let mut content_type = sniff_type(rel, &body).as_bytes().to_vec();
    let mut status = StatusCode::OK;
    let mut etag = etag_of(&body).into_bytes();
    let mut last_modified = http_date(mtime).into_bytes();
    // A dict in serve-corpus: the last value of a name wins, in first-seen order.
    let mut extra: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for (name, value) in header_comments(&body) {
        let lower = name.to_ascii_lowercase();
        if lower == b"status" {
            if let Some(code) = std::str::from_utf8(&value)
                .ok()
                .and_then(|v| v.parse::<u16>().ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
            {
                status = code;
            }
        } else if lower == b"content-type" {
            content_type = value;
        } else if lower == b"etag" {
            etag = value;
        } else if lower == b"last-modified" {
            last_modified = value;
        } else if let Some(slot) = extra.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = value;
        } else {
            extra.push((name, value));
        }
    }
    let mut content_encoding = None;
    match extension(rel).as_str() {
        ".gz" if rel.starts_with("feedparser/compression/") => {
            content_encoding = Some("gzip");
            content_type = b"application/xml".to_vec();
        }
        ".z" if rel.starts_with("feedparser/compression/") => {
            content_encoding = Some("deflate");
            content_type = b"application/xml".to_vec();
        }
        _ => {}
    }

    let value = |v: &[u8]| {
        HeaderValue::from_bytes(v)
            .unwrap_or_else(|e| panic!("{rel}: header value {:?}: {e}", String::from_utf8_lossy(v)))
    };
    let mut headers = vec![(header::CONTENT_TYPE, value(&content_type))];
    for (name, v) in &extra {
        let name = HeaderName::from_bytes(name).unwrap_or_else(|e| {
            panic!(
                "{rel}: header name {:?}: {e}",
                String::from_utf8_lossy(name)
            )
        });
        headers.push((name, value(v)));
    }
    headers.push((header::ETAG, value(&etag)));
    headers.push((header::LAST_MODIFIED, value(&last_modified)));
    if let Some(enc) = content_encoding {
        headers.push((header::CONTENT_ENCODING, HeaderValue::from_static(enc)));
        headers.push((header::VARY, HeaderValue::from_static("accept-encoding")));
    }
    let body = if matches!(status.as_u16(), 204 | 304) {
        Vec::new()
    } else {
        body
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// The URL path a corpus file is served at.
fn url_path(rel: &str) -> String {
    let segments: Vec<String> = rel.split('/').map(pct).collect();
    format!("/{}", segments.join("/"))
}

struct CorpusServer {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl CorpusServer {
    fn start(corpus: &Path, files: &[Baseline]) -> CorpusServer {
        let answers: HashMap<String, Answer> = files
            .iter()
            .map(|b| (url_path(&b.path), answer_for(corpus, &b.path)))
            .collect();
        let answers = Arc::new(answers);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        thread::Builder::new()
            .name("corpus-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("building the corpus server runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("binding the corpus server to 127.0.0.1:0");
                    addr_tx
                        .send(listener.local_addr().expect("corpus server local_addr"))
                        .expect("sending the corpus server address");
                    let app = Router::new().fallback(serve_file).with_state(answers);
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = shutdown_rx.await;
                        })
                        .await
                        .expect("corpus server failed");
                });
            })
            .expect("spawning the corpus server thread");
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("corpus server did not report its address");
        CorpusServer {
            addr,
            shutdown: Some(shutdown_tx),
        }
    }

    fn url(&self, rel: &str) -> String {
        format!("http://{}{}", self.addr, url_path(rel))
    }
}

impl Drop for CorpusServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn serve_file(State(answers): State<Arc<HashMap<String, Answer>>>, req: Request) -> Response {
    let mut response = match answers.get(req.uri().path()) {
        Some(a) => {
            let mut r = Response::new(Body::from(a.body.clone()));
            *r.status_mut() = a.status;
            for (name, value) in &a.headers {
                r.headers_mut().append(name.clone(), value.clone());
            }
            r
        }
        None => {
            let mut r = Response::new(Body::from("not found\n"));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    };
    response
        .headers_mut()
        .entry(header::CONTENT_TYPE)
        .or_insert(HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// What tributary made of one file.
#[derive(Debug)]
struct Outcome {
    status: FetchStatus,
    /// Entries linked to the source in the store (entries merged with another source's
    /// included).
    stored: u64,
}

fn source_id(index: usize) -> String {
    format!("c{:04}", index + 1)
}

/// The corpus subfolder a file is in (its category).
fn category(rel: &str) -> &str {
    rel.split('/').next().unwrap_or(rel)
}

/// Entries linked to each source: `entry_sources` rows, so an entry first stored for another
/// source (the same story in two corpus files) counts for both.
fn stored_per_source(config: &Path) -> HashMap<String, u64> {
    common::store_rows(
        config,
        "SELECT source_id, COUNT(DISTINCT entry_id) FROM entry_sources GROUP BY source_id",
    )
    .into_iter()
    .map(|row| (row[0].clone(), row[1].parse().expect("a count")))
    .collect()
}

fn status_text(status: &FetchStatus) -> String {
    match status {
        FetchStatus::Ok {
            new,
            updated,
            unchanged,
        } => format!("ok new={new} updated={updated} unchanged={unchanged}"),
        FetchStatus::NotModified => "not modified".into(),
        FetchStatus::Error(cause) => format!("error: {cause}"),
    }
}

fn env_flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| v == "1")
}

/// The last lines of a process's output, for failure messages.
fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn write_report(path: &Path, files: &[Baseline], outcomes: &[Outcome]) {
    let mut text =
        String::from("id\tpath\tfp_bozo\tfp_entries\tnb_ok\tnb_items\ttributary\tstatus\n");
    for (i, (b, o)) in files.iter().zip(outcomes).enumerate() {
        let _ = writeln!(
            text,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            source_id(i),
            b.path,
            u8::from(b.fp_bozo),
            b.fp_entries,
            u8::from(b.nb_ok),
            b.nb_items,
            o.stored,
            status_text(&o.status).replace(['\t', '\n'], " ")
        );
    }
    fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    eprintln!("corpus: per-file report written to {}", path.display());
}

/// One `tributary fetch` over a config holding every corpus file as a source.
struct CorpusRun {
    files: Vec<Baseline>,
    server: CorpusServer,
    /// Holds the config and the database; removed on drop unless kept.
    dir: tempfile::TempDir,
    config: PathBuf,
    code: i32,
    stdout: String,
    stderr: String,
    fetch_time: Duration,
}

impl CorpusRun {
    fn start() -> CorpusRun {
        let corpus = corpus_dir();
        let files = read_baseline(&corpus);
        assert!(
            files.len() > 1000,
            "BASELINE.tsv in {} lists only {} files",
            corpus.display(),
            files.len()
        );
        let server = CorpusServer::start(&corpus, &files);
        let keep = env_flag(KEEP_ENV);
        let dir = tempfile::Builder::new()
            .prefix("tributary-corpus-")
            .disable_cleanup(keep)
            .tempdir()
            .expect("creating a temp folder");
        let sources: Vec<Source> = files
            .iter()
            .enumerate()
            .map(|(i, b)| {
                Source::new(
                    &source_id(i),
                    &b.path,
                    &server.url(&b.path),
                    category(&b.path),
                )
            })
            .collect();
        let mut text = config_text(common::free_addr(), "tributary.db", &sources);
        let _ = write!(text, "\n[fetch]\nconcurrency = {CONCURRENCY}\n");
        let config = common::write_config_text(&dir.path().join("conf"), &text);
        if keep {
            eprintln!("corpus: keeping {}", dir.path().display());
        }
        let fetch_started = Instant::now();
        let mut cmd = tributary_command(&config);
        cmd.arg("fetch");
        let (code, stdout, stderr) = run_bounded(cmd, CORPUS_FETCH_DEADLINE);
        CorpusRun {
            files,
            server,
            dir,
            config,
            code,
            stdout,
            stderr,
            fetch_time: fetch_started.elapsed(),
        }
    }
}

#[test]
fn corpus_every_feed_fetched_without_panic_and_no_worse_than_feedparser() {
    let started = Instant::now();
    let run = CorpusRun::start();
    let (files, code, stdout, stderr, fetch_time) = (
        &run.files,
        run.code,
        &run.stdout,
        &run.stderr,
        run.fetch_time,
    );
    let _ = &run.dir;

    // ---- no crash
    assert!(
        !stderr.contains("panicked"),
        "tributary panicked during the corpus fetch; stderr (last lines):\n{}",
        tail(stderr)
    );
    assert!(
        code == 0 || code == 1,
        "the corpus fetch exited with {code} (0 or 1 expected; -1 is death by a signal)\n\
         stdout (last lines):\n{}\nstderr (last lines):\n{}",
        tail(stdout),
        tail(stderr)
    );

    // ---- what each source ended with
    let lines = parse_fetch_output(stdout);
    let stored = stored_per_source(&run.config);
    let mut failures = Vec::new();
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(files.len());
    for (i, b) in files.iter().enumerate() {
        let id = source_id(i);
        let n = stored.get(&id).copied().unwrap_or(0);
        let status = lines.get(&id).cloned().unwrap_or_else(|| {
            failures.push(format!("{id} ({}): no line in fetch's output", b.path));
            FetchStatus::Error("no line in fetch's output".into())
        });
        match &status {
            FetchStatus::Ok { new, .. } if n < *new => failures.push(format!(
                "{id} ({}): fetch says new={new} but the store links {n} entries to it",
                b.path
            )),
            FetchStatus::NotModified => failures.push(format!(
                "{id} ({}): \"not modified\" on a first fetch into an empty store",
                b.path
            )),
            FetchStatus::Error(cause) if cause.trim().is_empty() => {
                failures.push(format!("{id} ({}): an error line without a cause", b.path))
            }
            FetchStatus::Error(_) if n > 0 => failures.push(format!(
                "{id} ({}): the fetch failed yet {n} entries are linked to the source",
                b.path
            )),
            _ => {}
        }
        outcomes.push(Outcome { status, stored: n });
    }
    let ids: HashSet<String> = (0..files.len()).map(source_id).collect();
    let unknown: BTreeSet<&String> = lines.keys().filter(|id| !ids.contains(*id)).collect();
    if !unknown.is_empty() {
        failures.push(format!(
            "fetch printed lines for sources not in the config: {unknown:?}"
        ));
    }

    // ---- the figures
    let fp_clean = files
        .iter()
        .filter(|b| b.fp_clean() && b.fp_entries > 0)
        .count();
    let nb_loaded = files.iter().filter(|b| b.nb_ok && b.nb_items > 0).count();
    let trib_stored = outcomes.iter().filter(|o| o.stored > 0).count();
    let trib_errors = outcomes
        .iter()
        .filter(|o| matches!(o.status, FetchStatus::Error(_)))
        .count();
    let below_newsboat = files
        .iter()
        .zip(&outcomes)
        .filter(|(b, o)| b.nb_ok && o.stored < b.nb_items)
        .count();
    eprintln!(
        "corpus: {} files; files with entries stored: tributary {trib_stored}, feedparser \
         (bozo=0) {fp_clean}, newsboat {nb_loaded}; tributary errors {trib_errors}; files where \
         tributary stores fewer entries than newsboat: {below_newsboat}; fetch {:.1}s \
         (concurrency {CONCURRENCY}, all on 127.0.0.1), whole test {:.1}s",
        files.len(),
        fetch_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    if let Some(report) = std::env::var_os(REPORT_ENV).filter(|v| !v.is_empty()) {
        write_report(Path::new(&report), files, &outcomes);
    }

    // ---- every format read from third-party files: at least one file of each stores entries
    let corpus = corpus_dir();
    let rss_090 = |b: &Baseline| {
        b.kind == "rdf-other"
            && fs::read(corpus.join(&b.path))
                .is_ok_and(|bytes| contains(&bytes, b"my.netscape.com/rdf/simple/0.9"))
    };
    type Kind<'a> = (&'a str, Box<dyn Fn(&Baseline) -> bool + 'a>);
    let formats: Vec<Kind<'_>> = vec![
        ("RSS 0.90", Box::new(rss_090)),
        ("RSS 0.91", Box::new(|b: &Baseline| b.kind == "rss-0.91")),
        ("RSS 0.92", Box::new(|b: &Baseline| b.kind == "rss-0.92")),
        ("RSS 0.93", Box::new(|b: &Baseline| b.kind == "rss-0.93")),
        ("RSS 0.94", Box::new(|b: &Baseline| b.kind == "rss-0.94")),
        ("RSS 1.0", Box::new(|b: &Baseline| b.kind == "rss-1.0-rdf")),
        ("RSS 2.0", Box::new(|b: &Baseline| b.kind == "rss-2.0")),
        ("Atom 0.3", Box::new(|b: &Baseline| b.kind == "atom-0.3")),
        ("Atom 1.0", Box::new(|b: &Baseline| b.kind == "atom-1.0")),
        (
            "JSON Feed 1.0",
            Box::new(|b: &Baseline| b.kind == "jsonfeed-1.0"),
        ),
        (
            "JSON Feed 1.1",
            Box::new(|b: &Baseline| b.kind == "jsonfeed-1.1"),
        ),
    ];
    for (name, is) in &formats {
        let of_kind: Vec<(&Baseline, &Outcome)> =
            files.iter().zip(&outcomes).filter(|(b, _)| is(b)).collect();
        let with_items = of_kind.iter().filter(|(b, _)| b.fp_entries > 0).count();
        let read = of_kind.iter().filter(|(_, o)| o.stored > 0).count();
        let clean = of_kind
            .iter()
            .filter(|(_, o)| matches!(o.status, FetchStatus::Ok { .. }))
            .count();
        eprintln!(
            "corpus: {name}: {} files, {with_items} with items for feedparser; tributary stored \
             entries for {read}, read {clean} without error",
            of_kind.len()
        );
        // A format whose only samples have no items (RSS 0.94's) must still be read.
        if (with_items > 0 && read == 0) || clean == 0 {
            failures.push(format!(
                "{name}: of {} corpus files, tributary stored entries for {read} and read {clean} \
                 without error",
                of_kind.len()
            ));
        }
    }

    // ---- no worse than feedparser, overall
    if trib_stored < fp_clean {
        failures.push(format!(
            "tributary stored entries for {trib_stored} corpus files, fewer than the {fp_clean} \
             feedparser parsed cleanly (bozo=0, at least one entry)"
        ));
    }

    // ---- and file by file: every shortfall listed with its reason, every listed one real
    let mut shortfalls: BTreeMap<&str, (u64, u64, String)> = BTreeMap::new();
    for (b, o) in files.iter().zip(&outcomes) {
        if b.fp_clean() && o.stored < b.fp_entries {
            shortfalls.insert(&b.path, (o.stored, b.fp_entries, status_text(&o.status)));
        }
    }
    let expectations_file = expectations_path();
    let mut listed = read_expectations(&expectations_file);
    if env_flag(BLESS_ENV) {
        let rows: BTreeMap<String, Shortfall> = shortfalls
            .iter()
            .map(|(p, (t, f, _))| {
                let reason = listed
                    .get(*p)
                    .map(|r| r.reason.clone())
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| UNEXPLAINED.to_string());
                let row = Shortfall {
                    tributary: *t,
                    feedparser: *f,
                    reason,
                };
                (p.to_string(), row)
            })
            .collect();
        write_expectations(&expectations_file, &rows);
        eprintln!(
            "corpus: wrote {} rows to {}",
            rows.len(),
            expectations_file.display()
        );
        listed = rows;
    }
    let mut list_failures = Vec::new();
    for (p, (t, f, status)) in &shortfalls {
        match listed.get(*p) {
            None => list_failures.push(format!(
                "{p}: tributary stores {t} entries, feedparser read {f}, and the file is not \
                 listed ({status})"
            )),
            Some(row) if row.tributary != *t || row.feedparser != *f => {
                list_failures.push(format!(
                    "{p}: listed as {} vs {} but now tributary stores {t}, feedparser {f} \
                     ({status}); update the row and check its reason",
                    row.tributary, row.feedparser
                ))
            }
            Some(row) if row.reason.is_empty() || row.reason == UNEXPLAINED => {
                list_failures.push(format!("{p}: listed without a reason ({status})"))
            }
            Some(_) => {}
        }
    }
    let by_path: HashMap<&str, (&Baseline, &Outcome)> = files
        .iter()
        .zip(&outcomes)
        .map(|(b, o)| (b.path.as_str(), (b, o)))
        .collect();
    for (p, row) in &listed {
        if shortfalls.contains_key(p.as_str()) {
            continue;
        }
        let now = match by_path.get(p.as_str()) {
            Some((b, o)) => format!(
                "tributary now stores {} ({}), feedparser {} with bozo={}",
                o.stored,
                status_text(&o.status),
                b.fp_entries,
                u8::from(b.fp_bozo)
            ),
            None => "the file is not in BASELINE.tsv".to_string(),
        };
        list_failures.push(format!(
            "{p}: listed as falling short ({} vs {}: {}) but no longer does: {now}; remove the \
             row",
            row.tributary, row.feedparser, row.reason
        ));
    }
    if !list_failures.is_empty() {
        failures.push(format!(
            "{} row(s) of {} are wrong (TRIBUTARY_CORPUS_BLESS=1 rewrites it from this run, \
             keeping the reasons written):\n{}",
            list_failures.len(),
            expectations_file.display(),
            list_failures.join("\n")
        ));
    }

    assert!(
        failures.is_empty(),
        "the corpus run failed:\n{}",
        failures.join("\n")
    );
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn corpus_identity_keys_read_raw_are_the_normalized_entries_keys() {
    let corpus = corpus_dir();
    let config = tributary::config::Config::from_toml(
        &corpus.join("keys.toml"),
        "[[sources]]\nid = \"k\"\nname = \"k\"\nurl = \"http://127.0.0.1:9/feed.xml\"\ncategory = \"c\"\n",
    )
    .expect("config");
    let source = &config.sources[0];
    let now = chrono::Utc::now();
    let mut files = Vec::new();
    files_under(&corpus, &mut files);
    let (mut compared, mut differ) = (0, Vec::new());
    for path in files {
        let Ok(bytes) = fs::read(&path) else {
            continue;
        };
        let Ok((feed, _)) = tributary::refresh::read_document(source, &source.url, None, bytes)
        else {
            continue;
        };
        let raw = tributary::refresh::identity_keys(source, &source.url, &feed.items, now);
        let entries = tributary::refresh::normalize_items(source, &source.url, feed.items, now);
        for (raw, entry) in raw.iter().zip(&entries) {
            compared += 1;
            if *raw != entry.keys {
                differ.push(format!("{}: {raw:?} vs {:?}", path.display(), entry.keys));
            }
        }
    }
    eprintln!("identity keys compared for {compared} corpus items");
    assert!(
        compared > 3000,
        "only {compared} items read from the corpus"
    );
    assert!(
        differ.is_empty(),
        "{} items differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Field by field against feedparser
// ---------------------------------------------------------------------------------------------

const DIFFERENCES_HEADER: &str = "path\tfield\treason";
/// The share of files agreeing on every field below which the run fails (98.04% measured when
/// this was set: 1,499 of 1,529).
const AGREEMENT_FLOOR: f64 = 98.0;
/// The fields compared, in the order differences are reported.
const FIELDS: &[&str] = &["count", "title", "link", "authors", "date", "text"];

fn differences_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/expected-differences.tsv")
}

/// One entry as a reader sees it: what feedparser read, or what tributary published.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
struct Fields {
    title: String,
    link: String,
    authors: Vec<String>,
    date: Option<i64>,
    has_text: bool,
}

#[derive(Debug, serde::Deserialize)]
struct FeedparserRow {
    id: String,
    bozo: u8,
    entries: Vec<Fields>,
}

/// feedparser's reading of every source's URL, by source id (`tests/feedparser_fields.py`
/// fetches them from the corpus server, as `BASELINE.tsv` was made).
fn feedparser_read(run: &CorpusRun) -> HashMap<String, FeedparserRow> {
    use std::io::Write as _;
    let python = common::python_with("feedparser", "python3-feedparser");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/feedparser_fields.py");
    let mut child = std::process::Command::new(&python)
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {python} {}: {e}", script.display()));
    let mut input = String::new();
    for (i, b) in run.files.iter().enumerate() {
        let _ = writeln!(input, "{}\t{}", source_id(i), run.server.url(&b.path));
    }
    let mut stdin = child.stdin.take().expect("feedparser's stdin");
    let writer = thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("waiting for feedparser");
    writer
        .join()
        .expect("feeding feedparser")
        .expect("writing to feedparser");
    assert!(out.status.success(), "{script:?} failed: {}", out.status);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let row: FeedparserRow =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("feedparser row {l:?}: {e}"));
            (row.id.clone(), row)
        })
        .collect()
}

/// A link as both sides are compared: parsed and written back (`http://x.example` and
/// `http://x.example/` are one address).
fn same_link(link: &str) -> String {
    url::Url::parse(link).map_or_else(|_| link.to_string(), String::from)
}

/// What tributary publishes for a source: its JSON Feed, read back, in document order (the
/// order the store took the entries in), with whether each entry has any text.
fn published(store: &tributary::store::Store, id: &str) -> Vec<Fields> {
    use tributary::model::{FeedQuery, Scope};
    let mut entries = store
        .entries(
            &Scope::Source(id.to_string()),
            &FeedQuery {
                limit: 100_000,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("reading {id}'s entries: {e}"));
    entries.sort_by_key(|e| e.id);
    let info = tributary::publish::FeedInfo {
        built: chrono::Utc::now(),
        title: id.to_string(),
        description: String::new(),
        id: format!("urn:{id}"),
        self_url: "http://127.0.0.1/feed.json".into(),
        home_url: "http://127.0.0.1/".into(),
        next_url: None,
        hub: None,
    };
    let json = tributary::publish::render(tributary::publish::Format::Json, &info, &entries);
    let doc: serde_json::Value = serde_json::from_str(&json).expect("our JSON Feed parses");
    let items = doc["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), entries.len(), "{id}: every entry is published");
    items
        .iter()
        .zip(&entries)
        .map(|(item, e)| Fields {
            title: item["title"].as_str().unwrap_or("").to_string(),
            link: item["url"].as_str().unwrap_or("").to_string(),
            authors: item["authors"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p["name"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            date: item["date_published"]
                .as_str()
                .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
                .map(|d| d.timestamp()),
            has_text: [&e.content, &e.summary]
                .into_iter()
                .flatten()
                .any(|h| !tributary::text::html_to_text(h).is_empty()),
        })
        .collect()
}

/// The fields in which tributary's entries differ from feedparser's, with an example each.
/// Entries are paired by link, then by title, then in order; a field feedparser has no value
/// for (no title, no date) is not compared, since tributary may read what it could not.
fn compare(fp: &[Fields], ours: &[Fields]) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    if fp.len() != ours.len() {
        out.insert(
            "count",
            format!("feedparser {}, tributary {}", fp.len(), ours.len()),
        );
    }
    let mut free: Vec<bool> = vec![true; ours.len()];
    let mut take = |pred: &dyn Fn(&Fields) -> bool| {
        let i = (0..ours.len()).find(|&i| free[i] && pred(&ours[i]))?;
        free[i] = false;
        Some(i)
    };
    let mut pairs = Vec::new();
    let mut unpaired = Vec::new();
    for f in fp {
        let by_link = (!f.link.is_empty())
            .then(|| take(&|o: &Fields| same_link(&o.link) == same_link(&f.link)))
            .flatten();
        let by_title = || {
            (!f.title.is_empty())
                .then(|| take(&|o: &Fields| o.title == f.title))
                .flatten()
        };
        match by_link.or_else(by_title) {
            Some(i) => pairs.push((f, i)),
            None => unpaired.push(f),
        }
    }
    for f in unpaired {
        if let Some(i) = take(&|_| true) {
            pairs.push((f, i));
        }
    }
    for (f, i) in pairs {
        let o = &ours[i];
        let mut note = |field: &'static str, theirs: String, mine: String| {
            out.entry(field)
                .or_insert_with(|| format!("feedparser {theirs}, tributary {mine}"));
        };
        if !f.title.is_empty() && f.title != o.title {
            note("title", format!("{:?}", f.title), format!("{:?}", o.title));
        }
        if same_link(&f.link) != same_link(&o.link) {
            note("link", format!("{:?}", f.link), format!("{:?}", o.link));
        }
        if f.authors != o.authors {
            note(
                "authors",
                format!("{:?}", f.authors),
                format!("{:?}", o.authors),
            );
        }
        if f.date.is_some() && f.date != o.date {
            let show = |d: Option<i64>| {
                d.and_then(|d| chrono::DateTime::from_timestamp(d, 0))
                    .map_or("none".to_string(), |d| d.to_rfc3339())
            };
            note("date", show(f.date), show(o.date));
        }
        if f.has_text != o.has_text {
            note("text", f.has_text.to_string(), o.has_text.to_string());
        }
    }
    out
}

fn read_differences(path: &Path) -> BTreeMap<(String, String), String> {
    let Ok(text) = fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') || line == DIFFERENCES_HEADER {
            continue;
        }
        let fields: Vec<&str> = line.splitn(3, '\t').collect();
        let [path_, field, reason] = fields[..] else {
            panic!(
                "{}:{}: expected \"path<TAB>field<TAB>reason\", got {line:?}",
                path.display(),
                n + 1
            );
        };
        assert!(
            FIELDS.contains(&field),
            "{}:{}: unknown field {field:?} (one of {FIELDS:?})",
            path.display(),
            n + 1
        );
        let key = (path_.to_string(), field.to_string());
        if out.insert(key, reason.trim().to_string()).is_some() {
            panic!("{}: {path_} {field} is listed twice", path.display());
        }
    }
    out
}

fn write_differences(path: &Path, rows: &BTreeMap<(String, String), String>) {
    let mut text = String::from(
        "# Corpus files where what tributary publishes differs from what feedparser 6 reads,\n\
         # field by field (tests/it/corpus.rs, corpus_fields_agree_with_feedparser), each with the\n\
         # reason. Only files feedparser reads without error (bozo=0) are compared. A row that\n\
         # no longer holds fails the test too: delete it, or rerun with\n\
         # TRIBUTARY_CORPUS_BLESS=1 (reasons already written are kept). The list must shrink.\n",
    );
    text.push_str(DIFFERENCES_HEADER);
    text.push('\n');
    for ((p, field), reason) in rows {
        let _ = writeln!(text, "{p}\t{field}\t{reason}");
    }
    fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

#[test]
fn corpus_fields_agree_with_feedparser() {
    let run = CorpusRun::start();
    assert!(
        !run.stderr.contains("panicked"),
        "tributary panicked during the corpus fetch:\n{}",
        tail(&run.stderr)
    );
    let fp = feedparser_read(&run);
    let store = common::open_store(
        &tributary::config::Config::load(&run.config).expect("the corpus config"),
    );
    // Differences by (path, field), with an example.
    let mut found: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut compared = 0usize;
    let mut agreeing = 0usize;
    for (i, b) in run.files.iter().enumerate() {
        let id = source_id(i);
        let Some(row) = fp.get(&id) else {
            panic!("feedparser printed no row for {id} ({})", b.path);
        };
        if row.bozo != 0 {
            continue;
        }
        compared += 1;
        let diff = compare(&row.entries, &published(&store, &id));
        if diff.is_empty() {
            agreeing += 1;
        }
        for (field, example) in diff {
            found.insert((b.path.clone(), field.to_string()), example);
        }
    }
    let share = 100.0 * agreeing as f64 / compared.max(1) as f64;
    eprintln!(
        "corpus: {agreeing} of {compared} files feedparser reads without error agree on every \
         field ({share:.2}%); {} differences",
        found.len()
    );
    if let Some(report) = std::env::var_os(REPORT_ENV).filter(|v| !v.is_empty()) {
        let mut text = String::new();
        for ((p, field), example) in &found {
            let _ = writeln!(text, "{p}\t{field}\t{example}");
        }
        let path = PathBuf::from(report).with_extension("fields.tsv");
        fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        eprintln!("corpus: differences written to {}", path.display());
    }

    let file = differences_path();
    let mut listed = read_differences(&file);
    if env_flag(BLESS_ENV) {
        listed = found
            .iter()
            .map(|(key, example)| {
                let reason = listed
                    .get(key)
                    .cloned()
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| format!("{UNEXPLAINED}: {example}"));
                (key.clone(), reason)
            })
            .collect();
        write_differences(&file, &listed);
    }
    let mut failures = Vec::new();
    for ((p, field), example) in &found {
        match listed.get(&(p.clone(), field.clone())) {
            None => failures.push(format!("{p}: {field} differs and is not listed: {example}")),
            Some(reason) if reason.starts_with(UNEXPLAINED) => failures.push(format!(
                "{p}: {field} is listed without a reason: {example}"
            )),
            Some(_) => {}
        }
    }
    for ((p, field), reason) in &listed {
        if !found.contains_key(&(p.clone(), field.clone())) {
            failures.push(format!(
                "{p}: {field} is listed as differing ({reason}) but agrees now; remove the row"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows are wrong (TRIBUTARY_CORPUS_BLESS=1 rewrites it, keeping reasons):\n{}",
        failures.len(),
        file.display(),
        failures.join("\n")
    );
    // The list above is the real check; this floor keeps the share from sliding while each
    // listed difference still has its reason. (The aim is 98%: what is left is listed with
    // why tributary differs on purpose, or where feedparser is wrong.)
    assert!(
        share >= AGREEMENT_FLOOR,
        "only {share:.1}% of the files agree with feedparser on every field \
         ({AGREEMENT_FLOOR}% at least)"
    );
}
