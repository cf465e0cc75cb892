//! Shared harness for the integration tests: an in-process fixture HTTP server that plays the
//! publishers, helpers that write configs and run the real `tributary` binary, and a small HTTP
//! client for reading what the daemon serves.
//!
//! Everything listens on and talks to 127.0.0.1 only, and nothing waits by sleeping: a child's
//! exit, what the fixture server sees, and each line a daemon prints wake the test when they
//! happen ([`wait_timeout`], [`FixtureServer::wait_started`], [`ServeGuard::until`]). A
//! daemon's port is bound by the test before the daemon starts and handed to it
//! ([`free_addr`], [`spawn_serve`]), so no two tests race for one. The only sleeps set a pace on
//! purpose: the fixture server's slow publishers, and the load test's publishers adding items.

pub mod cs;
pub mod served;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// How long a `tributary fetch` may take before the test gives up on it.
pub const FETCH_DEADLINE: Duration = Duration::from_secs(60);
/// How long `tributary serve` may take to answer `/healthz`.
pub const HEALTHZ_DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------------------------

/// Waits for `child` to exit, for at most `deadline`: its status, or `None` if it is still
/// running then (it is not killed; the caller decides). Woken by the exit itself, not by
/// polling: a thread blocks in `waitid(WEXITED | WNOWAIT)`, which leaves the child for
/// `Child::wait` to reap, so the caller keeps the only handle that may kill or reap it.
pub fn wait_timeout(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    if let Some(status) = child.try_wait().expect("checking a child") {
        return Some(status);
    }
    let pid = libc::id_t::from(child.id());
    let (exited, exit) = mpsc::channel();
    thread::spawn(move || {
        let outcome = loop {
            // SAFETY: `info` is plain data the kernel writes; WNOWAIT reaps nothing.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let rc =
                unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT) };
            let error = std::io::Error::last_os_error();
            if rc == 0 {
                break Ok(());
            }
            if error.kind() != std::io::ErrorKind::Interrupted {
                break Err(error);
            }
        };
        // The receiver is gone if the caller gave up waiting (and then killed and reaped it).
        let _ = exited.send(outcome);
    });
    match exit.recv_timeout(deadline) {
        Ok(Ok(())) => Some(child.wait().expect("reaping a child that exited")),
        Ok(Err(e)) => panic!("waitid on child {pid}: {e}"),
        Err(RecvTimeoutError::Timeout) => None,
        Err(RecvTimeoutError::Disconnected) => panic!("the waiter of child {pid} died"),
    }
}

// ---------------------------------------------------------------------------------------------
// What the fixture feeds contain
// ---------------------------------------------------------------------------------------------

/// One entry of the fixture feeds, as the tests expect to see it again in the served output.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    /// Source id in the configs written by [`Source::fixture`].
    pub source: &'static str,
    /// guid / Atom id / JSON Feed id in the fixture file.
    pub guid: &'static str,
    pub title: &'static str,
    pub link: &'static str,
    /// The published instant, RFC 3339 in UTC (the fixtures use +08:00 offsets for the Chinese
    /// sources, so a reader that ignores offsets gets the merged order wrong).
    pub published: &'static str,
    /// Categories / tags the fixture gives the entry; each must come through.
    pub categories: &'static [&'static str],
}

pub const CS_ID: &str = "cs-kuaixun";
pub const CS_NAME: &str = "中证网 中证快讯";
pub const CS_FILE: &str = "/cs-kuaixun.xml";
pub const CAIXIN_ID: &str = "caixin-mixed";
pub const CAIXIN_NAME: &str = "财新 Caixin";
pub const CAIXIN_FILE: &str = "/caixin-mixed.json";
pub const TECH_ID: &str = "tech-blog";
pub const TECH_NAME: &str = "Example Tech Blog";
pub const TECH_FILE: &str = "/tech-blog.atom";
pub const MALFORMED_FILE: &str = "/malformed.xml";
/// A route on the fixture server that always answers 500.
pub const STATUS_500_PATH: &str = "/status/500";

pub const FINANCE: &str = "金融";
pub const TECH: &str = "tech";

/// The item of the RSS fixture whose description carries `<script>`, `onclick` and relative URLs.
pub const DIRTY_GUID: &str = "cs-6400003";
/// What the relative `href` / `src` of that item must become. The base is the item's own link
/// (`https://www.cs.com.cn/sylm/jsbd/202403/t20240316_6400003.html`), which is where the HTML
/// came from; the channel link gives the same result for these root-relative paths.
pub const DIRTY_ABS_HREF: &str =
    "https://www.cs.com.cn/sylm/jsbd/202403/t20240316_6400003_rules.html";
pub const DIRTY_ABS_SRC: &str = "https://www.cs.com.cn/sylm/jsbd/202403/W020240316_chart.png";

/// The title of one RSS item, and what a test changes it to (same guid).
pub const R2_GUID: &str = "cs-6400002";
pub const R2_OLD_TITLE: &str = "沪深两市成交额突破万亿元";
pub const R2_NEW_TITLE: &str = "沪深两市成交额突破1.2万亿元";

/// Every fixture entry, newest first (the order `/feeds/all.*` must have).
pub const ALL_NEWEST_FIRST: &[Expected] = &[
    Expected {
        source: CAIXIN_ID,
        guid: "cx-2024-003",
        title: "PBOC 宣布降准 cuts RRR by 50bp",
        link: "https://www.caixinglobal.com/2024-03-18/pboc-rrr-cut-102100003.html",
        published: "2024-03-17T23:00:00Z",
        categories: &["货币政策", "PBOC"],
    },
    Expected {
        source: TECH_ID,
        guid: "tag:blog.example.org,2024:sqlite-perf",
        title: "Profiling SQLite with perf",
        link: "https://blog.example.org/2024/03/sqlite-perf",
        published: "2024-03-17T05:00:00Z",
        categories: &["databases"],
    },
    Expected {
        source: CS_ID,
        guid: "cs-6400004",
        title: "人民币汇率中间价上调",
        link: "https://www.cs.com.cn/sylm/jsbd/202403/t20240317_6400004.html",
        published: "2024-03-17T02:15:00Z",
        categories: &["外汇"],
    },
    Expected {
        source: CAIXIN_ID,
        guid: "cx-2024-002",
        title: "Bond yields fall 国债收益率下行",
        link: "https://www.caixinglobal.com/2024-03-16/bond-yields-fall-102100002.html",
        published: "2024-03-16T12:30:00Z",
        categories: &["bonds"],
    },
    Expected {
        source: TECH_ID,
        guid: "tag:blog.example.org,2024:async-closures",
        title: "Async closures in practice",
        link: "https://blog.example.org/2024/03/async-closures",
        published: "2024-03-16T06:00:00Z",
        categories: &["rust"],
    },
    Expected {
        source: CS_ID,
        guid: DIRTY_GUID,
        title: "证监会发布上市公司监管新规",
        link: "https://www.cs.com.cn/sylm/jsbd/202403/t20240316_6400003.html",
        published: "2024-03-16T00:00:00Z",
        categories: &["监管"],
    },
    Expected {
        source: CS_ID,
        guid: R2_GUID,
        title: R2_OLD_TITLE,
        link: "https://www.cs.com.cn/sylm/jsbd/202403/t20240315_6400002.html",
        published: "2024-03-15T07:05:00Z",
        categories: &["A股市场"],
    },
    Expected {
        source: CAIXIN_ID,
        guid: "cx-2024-001",
        title: "A股 rally: 科技股领涨 Tech shares lead",
        link: "https://www.caixinglobal.com/2024-03-15/a-share-rally-102100001.html",
        published: "2024-03-15T04:00:00Z",
        categories: &["A股", "markets"],
    },
    Expected {
        source: CS_ID,
        guid: "cs-6400001",
        title: "央行：保持流动性合理充裕",
        link: "https://www.cs.com.cn/sylm/jsbd/202403/t20240315_6400001.html",
        published: "2024-03-15T01:30:00Z",
        categories: &["货币政策"],
    },
    Expected {
        source: TECH_ID,
        guid: "tag:blog.example.org,2024:widget-1-0",
        title: "Announcing Widget 1.0",
        link: "https://blog.example.org/2024/03/widget-1-0",
        published: "2024-03-14T18:00:00Z",
        categories: &["release"],
    },
];

/// Fixture entries of the given sources, newest first.
pub fn expected_for(sources: &[&str]) -> Vec<Expected> {
    ALL_NEWEST_FIRST
        .iter()
        .filter(|e| sources.contains(&e.source))
        .copied()
        .collect()
}

/// Fixture entries of a category in the standard three-source config, newest first.
pub fn expected_in_category(category: &str) -> Vec<Expected> {
    match category {
        FINANCE => expected_for(&[CS_ID, CAIXIN_ID]),
        TECH => expected_for(&[TECH_ID]),
        other => panic!("no fixture category {other:?}"),
    }
}

/// The configured display name of a fixture source.
pub fn source_name(id: &str) -> &'static str {
    match id {
        CS_ID => CS_NAME,
        CAIXIN_ID => CAIXIN_NAME,
        TECH_ID => TECH_NAME,
        other => panic!("no fixture source {other:?}"),
    }
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/feeds")
}

pub fn fixture_bytes(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name.trim_start_matches('/'));
    fs::read(&path).unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Fixture HTTP server
// ---------------------------------------------------------------------------------------------

/// One request the fixture server answered.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub if_none_match: Option<String>,
    /// When the request arrived.
    pub at: Instant,
}

struct FixtureState {
    /// URL path (e.g. `/cs-kuaixun.xml`) → body.
    files: Mutex<HashMap<String, Vec<u8>>>,
    /// When false, `If-None-Match` is ignored and every request gets the full body.
    conditional: AtomicBool,
    hits: Mutex<Vec<Hit>>,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    /// Per-path Content-Type replacing the one guessed from the extension.
    content_types: Mutex<HashMap<String, String>>,
    /// Per-path status that replaces the body (e.g. 500 for a channel that breaks).
    failures: Mutex<HashMap<String, u16>>,
    /// Retry-After values sent with a path's failure status.
    retry_after: Mutex<HashMap<String, String>>,
    /// Paths answered with a redirect: (status, Location).
    redirects: Mutex<HashMap<String, (u16, String)>>,
    /// Paths answered only after this long (a slow publisher).
    delays: Mutex<HashMap<String, Duration>>,
    /// Paths of requests received, in order, logged before any delay.
    started: Mutex<Vec<String>>,
    /// Notified on each push to `started`.
    arrived: Condvar,
    /// Paths that play a broken publisher (see [`Misbehaviour`]), replacing the file.
    misbehaviours: Mutex<HashMap<String, Misbehaviour>>,
    /// Headers added to every response of a path (raw: names and values as given).
    extra_headers: Mutex<HashMap<String, Vec<(String, String)>>>,
    /// Body bytes handed to the connection per path, for the streaming misbehaviours.
    sent: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

/// A broken publisher, for fault injection: what a path answers instead of its file (set with
/// [`FixtureServer::misbehave`]). Each answers 200 with the path's usual Content-Type.
#[derive(Debug, Clone)]
pub enum Misbehaviour {
    /// `body` in `chunk`-byte pieces, each after a `pause` (no Content-Length): a slow drip
    /// that never stalls long enough for a read timeout.
    Drip {
        body: Vec<u8>,
        chunk: usize,
        pause: Duration,
    },
    /// `body` as given, labelled `Content-Encoding: <encoding>` (a gzip or deflate bomb).
    Encoded {
        encoding: &'static str,
        body: Vec<u8>,
    },
    /// Declares the Content-Length of all of `body`, sends its first `after` bytes, then drops
    /// the connection.
    ResetAfter { body: Vec<u8>, after: usize },
    /// `chunk`-byte pieces of filler without end and without Content-Length, for as long as the
    /// client reads; [`FixtureServer::bytes_sent`] says how much went out.
    Endless { chunk: usize },
}

/// An axum server on 127.0.0.1:0, on its own thread and runtime, serving the fixture feeds
/// with feed Content-Types, a strong ETag per body, and 304 on a matching `If-None-Match`.
/// `/status/500` always answers 500. It stops when dropped.
pub struct FixtureServer {
    addr: SocketAddr,
    state: Arc<FixtureState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FixtureServer {
    /// Starts a server holding every file of `tests/fixtures/feeds/` at `/<file name>`.
    pub fn start() -> FixtureServer {
        FixtureServer::start_with(FixtureServer::feed_files())
    }

    /// Starts a server holding a miniature web site: every file under `root` (recursively) at
    /// its path relative to `root`, and each `index.html` also at its folder's URL with a
    /// trailing slash (`/xwzx/hg/index.html` is served at `/xwzx/hg/` too), as the real site
    /// does. `.html` files go out as plain `text/html`, with no charset parameter.
    pub fn start_site(root: &Path) -> FixtureServer {
        fn walk(root: &Path, dir: &Path, files: &mut HashMap<String, Vec<u8>>) {
            let listing =
                fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
            for entry in listing {
                let path = entry
                    .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
                    .path();
                if path.is_dir() {
                    walk(root, &path, files);
                    continue;
                }
                let rel = path
                    .strip_prefix(root)
                    .expect("walked paths are under the root")
                    .to_str()
                    .expect("fixture paths are UTF-8")
                    .replace('\\', "/");
                let body =
                    fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                if let Some(folder) = rel.strip_suffix("index.html") {
                    files.insert(format!("/{folder}"), body.clone());
                }
                files.insert(format!("/{rel}"), body);
            }
        }
        let mut files = HashMap::new();
        walk(root, root, &mut files);
        FixtureServer::start_with(files)
    }

    /// Starts a server holding exactly `files` (URL path → body); [`Self::set`] adds more.
    pub fn start_with_files(files: HashMap<String, Vec<u8>>) -> FixtureServer {
        FixtureServer::start_with(files)
    }

    fn feed_files() -> HashMap<String, Vec<u8>> {
        let mut files = HashMap::new();
        for entry in fs::read_dir(fixtures_dir()).expect("listing tests/fixtures/feeds") {
            let entry = entry.expect("reading tests/fixtures/feeds entry");
            let name = entry
                .file_name()
                .into_string()
                .expect("fixture names are UTF-8");
            let body = fs::read(entry.path()).expect("reading fixture file");
            files.insert(format!("/{name}"), body);
        }
        files
    }

    fn start_with(files: HashMap<String, Vec<u8>>) -> FixtureServer {
        let state = Arc::new(FixtureState {
            files: Mutex::new(files),
            conditional: AtomicBool::new(true),
            hits: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
            content_types: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            retry_after: Mutex::new(HashMap::new()),
            delays: Mutex::new(HashMap::new()),
            redirects: Mutex::new(HashMap::new()),
            started: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            misbehaviours: Mutex::new(HashMap::new()),
            extra_headers: Mutex::new(HashMap::new()),
            sent: Mutex::new(HashMap::new()),
        });

        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let thread_state = Arc::clone(&state);
        thread::Builder::new()
            .name("fixture-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("building the fixture server runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("binding the fixture server to 127.0.0.1:0");
                    addr_tx
                        .send(listener.local_addr().expect("fixture server local_addr"))
                        .expect("sending the fixture server address");
                    let app = Router::new()
                        .fallback(serve_fixture)
                        .with_state(thread_state);
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = shutdown_rx.await;
                        })
                        .await
                        .expect("fixture server failed");
                });
            })
            .expect("spawning the fixture server thread");
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("fixture server did not report its address");
        FixtureServer {
            addr,
            state,
            shutdown: Some(shutdown_tx),
        }
    }

    /// Absolute URL of `path` (which starts with `/`) on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Replaces (or adds) the body served at `path`; its ETag changes with it.
    pub fn set(&self, path: &str, body: impl Into<Vec<u8>>) {
        self.state
            .files
            .lock()
            .expect("fixture files lock")
            .insert(path.to_string(), body.into());
    }

    /// The body currently served at `path`.
    pub fn get(&self, path: &str) -> Vec<u8> {
        self.state
            .files
            .lock()
            .expect("fixture files lock")
            .get(path)
            .unwrap_or_else(|| panic!("fixture server has no {path}"))
            .clone()
    }

    /// Whether `If-None-Match` is honoured (default true). With false every GET gets a 200.
    pub fn set_conditional(&self, on: bool) {
        self.state.conditional.store(on, Ordering::SeqCst);
    }

    /// Serves `path` with this Content-Type instead of the one its extension gives.
    pub fn set_content_type(&self, path: &str, content_type: &str) {
        self.state
            .content_types
            .lock()
            .expect("fixture content types lock")
            .insert(path.to_string(), content_type.to_string());
    }

    /// Makes `path` answer `status` (with a short text/plain body) until [`Self::recover`].
    pub fn fail_with(&self, path: &str, status: u16) {
        self.state
            .failures
            .lock()
            .expect("fixture failures lock")
            .insert(path.to_string(), status);
    }

    /// Like [`Self::fail_with`], with a `Retry-After` header (seconds or an HTTP date).
    pub fn fail_with_retry_after(&self, path: &str, status: u16, retry_after: &str) {
        self.state
            .retry_after
            .lock()
            .expect("fixture retry-after lock")
            .insert(path.to_string(), retry_after.to_string());
        self.fail_with(path, status);
    }

    /// Makes `path` answer `status` (301, 302, 307, 308) pointing at `location`.
    pub fn redirect(&self, path: &str, status: u16, location: &str) {
        self.state
            .redirects
            .lock()
            .expect("fixture redirects lock")
            .insert(path.to_string(), (status, location.to_string()));
    }

    /// Makes `path` answer only after `delay`.
    pub fn set_delay(&self, path: &str, delay: Duration) {
        self.state
            .delays
            .lock()
            .expect("fixture delays lock")
            .insert(path.to_string(), delay);
    }

    /// Makes `path` play a broken publisher (see [`Misbehaviour`]) from now on.
    pub fn misbehave(&self, path: &str, how: Misbehaviour) {
        self.state
            .misbehaviours
            .lock()
            .expect("fixture misbehaviours lock")
            .insert(path.to_string(), how);
    }

    /// Adds a header, as given, to every response of `path` (replacing one of the same name
    /// the server would send, such as `ETag`).
    pub fn set_header(&self, path: &str, name: &str, value: &str) {
        self.state
            .extra_headers
            .lock()
            .expect("fixture extra headers lock")
            .entry(path.to_string())
            .or_default()
            .push((name.to_string(), value.to_string()));
    }

    /// Body bytes the streaming misbehaviours of `path` have handed to the connection so far.
    pub fn bytes_sent(&self, path: &str) -> u64 {
        self.state
            .sent
            .lock()
            .expect("fixture sent lock")
            .get(path)
            .map_or(0, |n| n.load(Ordering::SeqCst))
    }

    /// How many requests for `path` have arrived (answered or still in progress).
    pub fn started(&self, path: &str) -> usize {
        self.state
            .started
            .lock()
            .expect("fixture started lock")
            .iter()
            .filter(|p| *p == path)
            .count()
    }

    /// Waits until `n` requests for `path` have arrived, for at most `deadline`; whether they
    /// did. Woken by each request as it comes in.
    /// Waits (woken by each request) until `n` distinct paths have been asked for, or
    /// `deadline` passes; how many had been.
    pub fn wait_paths_started(&self, n: usize, deadline: Duration) -> usize {
        let started = self.state.started.lock().expect("fixture started lock");
        let distinct = |started: &Vec<String>| started.iter().collect::<HashSet<_>>().len();
        let (started, _) = self
            .state
            .arrived
            .wait_timeout_while(started, deadline, |started| distinct(started) < n)
            .expect("fixture started lock");
        distinct(&started)
    }

    pub fn wait_started(&self, path: &str, n: usize, deadline: Duration) -> bool {
        let started = self.state.started.lock().expect("fixture started lock");
        let (_started, timeout) = self
            .state
            .arrived
            .wait_timeout_while(started, deadline, |started| {
                started.iter().filter(|p| *p == path).count() < n
            })
            .expect("fixture started lock");
        !timeout.timed_out()
    }

    /// Undoes [`Self::fail_with`] for `path`.
    pub fn recover(&self, path: &str) {
        self.state
            .failures
            .lock()
            .expect("fixture failures lock")
            .remove(path);
    }

    /// The most requests this server was answering at once (all on one host, 127.0.0.1).
    pub fn peak_in_flight(&self) -> usize {
        self.state.peak_in_flight.load(Ordering::SeqCst)
    }

    /// Every request answered so far, oldest first.
    pub fn all_hits(&self) -> Vec<Hit> {
        self.state.hits.lock().expect("fixture hits lock").clone()
    }

    /// Requests answered so far for `path`, oldest first.
    pub fn hits(&self, path: &str) -> Vec<Hit> {
        self.state
            .hits
            .lock()
            .expect("fixture hits lock")
            .iter()
            .filter(|h| h.path == path)
            .cloned()
            .collect()
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        // Signal only: joining could wait on a client's idle keep-alive connection.
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Strong ETag of a body.
pub fn etag_of(body: &[u8]) -> String {
    let hash = blake3::hash(body).to_hex();
    format!("\"{}\"", &hash.as_str()[..24])
}

fn content_type_for(path: &str) -> &'static str {
    if path == MALFORMED_FILE {
        // Labelled as a feed so only the body is wrong.
        "application/rss+xml; charset=utf-8"
    } else if path.ends_with(".atom") {
        "application/atom+xml; charset=utf-8"
    } else if path.ends_with(".json") {
        "application/feed+json; charset=utf-8"
    } else if path.ends_with(".xml") || path.ends_with(".rss") {
        "application/rss+xml; charset=utf-8"
    } else if path.ends_with(".html") || path.ends_with('/') {
        // What many CMS-driven sites send: no charset, so the page's own <meta> must decide.
        "text/html"
    } else {
        "application/octet-stream"
    }
}

fn if_none_match_matches(header_value: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    header_value
        .split(',')
        .any(|candidate| candidate.trim() == "*" || bare(candidate) == bare(etag))
}

async fn serve_fixture(State(state): State<Arc<FixtureState>>, req: Request) -> Response {
    let at = Instant::now();
    let _answering = InFlight::enter(&state);
    let path = req.uri().path().to_string();
    let if_none_match = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    state
        .started
        .lock()
        .expect("fixture started lock")
        .push(path.clone());
    state.arrived.notify_all();
    let delay = state
        .delays
        .lock()
        .expect("fixture delays lock")
        .get(&path)
        .copied();
    if let Some(delay) = delay {
        // A slow publisher, on purpose (`set_delay`): the test is about what a slow answer does.
        tokio::time::sleep(delay).await;
    }
    let failure = state
        .failures
        .lock()
        .expect("fixture failures lock")
        .get(&path)
        .copied();
    let redirect = state
        .redirects
        .lock()
        .expect("fixture redirects lock")
        .get(&path)
        .cloned();
    let misbehaviour = state
        .misbehaviours
        .lock()
        .expect("fixture misbehaviours lock")
        .get(&path)
        .cloned();
    let mut response = if let Some(how) = misbehaviour {
        misbehave(&state, &path, how)
    } else if let Some((code, location)) = redirect {
        (
            StatusCode::from_u16(code).expect("a redirect status"),
            [(header::LOCATION, location)],
        )
            .into_response()
    } else if let Some(code) = failure {
        let mut response = (
            StatusCode::from_u16(code).expect("a valid fixture status"),
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("fixture server: deliberate {code}\n"),
        )
            .into_response();
        if let Some(value) = state
            .retry_after
            .lock()
            .expect("fixture retry-after lock")
            .get(&path)
        {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(value).expect("a valid Retry-After"),
            );
        }
        response
    } else if path == STATUS_500_PATH {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "fixture server: deliberate failure\n",
        )
            .into_response()
    } else {
        let body = state
            .files
            .lock()
            .expect("fixture files lock")
            .get(&path)
            .cloned();
        match body {
            None => (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "no such fixture\n",
            )
                .into_response(),
            Some(body) => {
                let etag = etag_of(&body);
                let conditional = state.conditional.load(Ordering::SeqCst);
                let mut headers = HeaderMap::new();
                headers.insert(
                    header::ETAG,
                    HeaderValue::from_str(&etag).expect("etag is a valid header"),
                );
                match &if_none_match {
                    Some(inm) if conditional && if_none_match_matches(inm, &etag) => {
                        (StatusCode::NOT_MODIFIED, headers).into_response()
                    }
                    _ => {
                        let content_type = state
                            .content_types
                            .lock()
                            .expect("fixture content types lock")
                            .get(&path)
                            .cloned()
                            .unwrap_or_else(|| content_type_for(&path).to_string());
                        headers.insert(
                            header::CONTENT_TYPE,
                            HeaderValue::from_str(&content_type)
                                .expect("fixture Content-Type is a valid header"),
                        );
                        (StatusCode::OK, headers, Body::from(body)).into_response()
                    }
                }
            }
        }
    };
    if let Some(extra) = state
        .extra_headers
        .lock()
        .expect("fixture extra headers lock")
        .get(&path)
    {
        for (name, value) in extra {
            response.headers_mut().insert(
                header::HeaderName::from_bytes(name.as_bytes()).expect("a valid header name"),
                HeaderValue::from_str(value).expect("a valid header value"),
            );
        }
    }
    state.hits.lock().expect("fixture hits lock").push(Hit {
        path,
        if_none_match,
        at,
    });
    response
}

/// A request counted in [`FixtureState::in_flight`] until its answer is made.
struct InFlight<'a>(&'a FixtureState);

impl<'a> InFlight<'a> {
    fn enter(state: &'a FixtureState) -> InFlight<'a> {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The answer of a path set to misbehave.
fn misbehave(state: &FixtureState, path: &str, how: Misbehaviour) -> Response {
    use axum::body::Bytes;
    use futures_util::stream;

    let content_type = state
        .content_types
        .lock()
        .expect("fixture content types lock")
        .get(path)
        .cloned()
        .unwrap_or_else(|| content_type_for(path).to_string());
    let sent = Arc::clone(
        state
            .sent
            .lock()
            .expect("fixture sent lock")
            .entry(path.to_string())
            .or_default(),
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type).expect("fixture Content-Type is a valid header"),
    );
    let body = match how {
        Misbehaviour::Drip { body, chunk, pause } => {
            let pieces: Vec<Bytes> = body
                .chunks(chunk.max(1))
                .map(Bytes::copy_from_slice)
                .collect();
            Body::from_stream(stream::unfold(
                (pieces.into_iter(), sent),
                move |(mut pieces, sent)| async move {
                    let piece = pieces.next()?;
                    // The drip is the fault: slow on purpose.
                    tokio::time::sleep(pause).await;
                    sent.fetch_add(piece.len() as u64, Ordering::SeqCst);
                    Some((Ok::<_, std::io::Error>(piece), (pieces, sent)))
                },
            ))
        }
        Misbehaviour::Encoded { encoding, body } => {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
            Body::from(body)
        }
        Misbehaviour::ResetAfter { body, after } => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            let head = Bytes::copy_from_slice(&body[..after.min(body.len())]);
            Body::from_stream(stream::unfold(
                (Some(head), sent),
                |(head, sent)| async move {
                    match head {
                        Some(head) => {
                            sent.fetch_add(head.len() as u64, Ordering::SeqCst);
                            // Let the first bytes reach the client before the connection goes.
                            let next = (None, sent);
                            Some((Ok(head), next))
                        }
                        None => {
                            // On purpose: the reset must come after the first bytes have
                            // reached the client, not race them.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Some((
                                Err(std::io::Error::new(
                                    std::io::ErrorKind::ConnectionReset,
                                    "fixture server: deliberate reset mid-body",
                                )),
                                (None, sent),
                            ))
                        }
                    }
                },
            ))
        }
        Misbehaviour::Endless { chunk } => {
            let filler = Bytes::from(vec![b' '; chunk.max(1)]);
            Body::from_stream(stream::unfold(sent, move |sent| {
                let filler = filler.clone();
                async move {
                    sent.fetch_add(filler.len() as u64, Ordering::SeqCst);
                    Some((Ok::<_, std::io::Error>(filler), sent))
                }
            }))
        }
    };
    (StatusCode::OK, headers, body).into_response()
}

// ---------------------------------------------------------------------------------------------
// Configs
// ---------------------------------------------------------------------------------------------

/// A TCP port on 127.0.0.1 where nothing listens once this returns (for "connection
/// refused"; another process may take it later, so not for a daemon: see [`free_addr`]).
pub fn free_port() -> u16 {
    StdTcpListener::bind("127.0.0.1:0")
        .expect("binding 127.0.0.1:0 to find a free port")
        .local_addr()
        .expect("local_addr of the probe listener")
        .port()
}

/// Listeners bound by [`free_addr`], held for the life of the test process.
static RESERVED: Mutex<Vec<StdTcpListener>> = Mutex::new(Vec::new());

/// An address on 127.0.0.1 reserved for a daemon: bound here, and held by the test process
/// until it exits, so no other test can take it; [`spawn_serve`] hands the listener itself to
/// the daemon (and again to a restarted one).
pub fn free_addr() -> SocketAddr {
    let listener = StdTcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0 for a daemon");
    let addr = listener
        .local_addr()
        .expect("local_addr of a reserved listener");
    RESERVED.lock().unwrap().push(listener);
    addr
}

/// One `[[sources]]` table.
#[derive(Debug, Clone)]
pub struct Source {
    pub id: String,
    pub name: String,
    pub url: String,
    pub category: String,
    pub tags: Vec<String>,
    pub schedule: Option<String>,
    pub enabled: Option<bool>,
}

impl Source {
    pub fn new(id: &str, name: &str, url: &str, category: &str) -> Source {
        Source {
            id: id.into(),
            name: name.into(),
            url: url.into(),
            category: category.into(),
            tags: Vec::new(),
            schedule: None,
            enabled: None,
        }
    }

    /// The source for one of the three good fixture feeds, served by `server`.
    pub fn fixture(server: &FixtureServer, id: &str) -> Source {
        match id {
            CS_ID => Source::new(CS_ID, CS_NAME, &server.url(CS_FILE), FINANCE).tags(&["资讯"]),
            CAIXIN_ID => Source::new(CAIXIN_ID, CAIXIN_NAME, &server.url(CAIXIN_FILE), FINANCE),
            TECH_ID => Source::new(TECH_ID, TECH_NAME, &server.url(TECH_FILE), TECH),
            other => panic!("no fixture source {other:?}"),
        }
    }

    pub fn tags(mut self, tags: &[&str]) -> Source {
        self.tags = tags.iter().map(|t| t.to_string()).collect();
        self
    }

    pub fn enabled(mut self, on: bool) -> Source {
        self.enabled = Some(on);
        self
    }

    pub fn schedule(mut self, schedule: &str) -> Source {
        self.schedule = Some(schedule.into());
        self
    }
}

/// The `[storage]` lines of a test's config: the SQLite file at `path`, and with
/// `TRIBUTARY_TEST_STORE=postgres` a database on the test server, which the config's `url`
/// then names instead: one per test (its thread), so the configs a test writes share it as
/// they share their SQLite file.
pub fn storage_lines(path: &str) -> String {
    let mut lines = format!("path = {}\n", toml_str(path));
    let url = STORE.with(|store| {
        let mut store = store.borrow_mut();
        if matches!(*store, TestStore::Suite) && on_postgres() {
            *store = TestStore::Database(pg_database());
        }
        match &*store {
            TestStore::Database(url) => Some(url.clone()),
            TestStore::Suite | TestStore::Sqlite => None,
        }
    });
    if let Some(url) = url {
        lines.push_str(&format!("url = {}\n", toml_str(&url)));
    }
    lines
}

/// What the configs of this thread's test name.
enum TestStore {
    /// The suite's backend: SQLite's file, or a database made for the test on PostgreSQL.
    Suite,
    /// This PostgreSQL database.
    Database(String),
    /// SQLite's file, whichever backend the suite runs on.
    Sqlite,
}

thread_local! {
    static STORE: std::cell::RefCell<TestStore> = const { std::cell::RefCell::new(TestStore::Suite) };
}

/// The configs this test writes from now on name SQLite's file, even when the suite runs on
/// PostgreSQL (a test comparing the two).
pub fn use_sqlite() {
    STORE.with(|store| *store.borrow_mut() = TestStore::Sqlite);
}

/// Whether the suite runs on PostgreSQL (`TRIBUTARY_TEST_STORE=postgres`) rather than SQLite.
pub fn on_postgres() -> bool {
    std::env::var("TRIBUTARY_TEST_STORE").as_deref() == Ok("postgres")
}

/// The configs this test writes from now on name the PostgreSQL database at `url`, or with
/// `None` the suite's backend afresh (on PostgreSQL a new database, as a config in a new
/// folder is a new store on SQLite).
pub fn use_pg_database(url: Option<String>) {
    let next = url.map_or(TestStore::Suite, TestStore::Database);
    STORE.with(|store| *store.borrow_mut() = next);
}

/// Ends a test that is about SQLite's file itself when the suite runs on PostgreSQL, saying
/// why (`reason`) on stderr. Returns whether the test should stop here.
pub fn sqlite_only(reason: &str) -> bool {
    if on_postgres() {
        eprintln!("SQLite only: {reason}");
    }
    on_postgres()
}

/// On PostgreSQL, `tributary backup` and `restore` copy SQLite files the store does not have:
/// both refuse, naming PostgreSQL's own tools. Asserts they do, and returns true, where a
/// test of SQLite's copies ends on PostgreSQL.
pub fn backups_are_pg_dumps(config: &Path) -> bool {
    if !on_postgres() {
        return false;
    }
    let copy = config.with_file_name("copy.db");
    for (command, tool) in [("backup", "pg_dump"), ("restore", "pg_restore")] {
        let mut cmd = tributary_command(config);
        cmd.args([command, copy.to_str().expect("a UTF-8 path")]);
        let (code, out, err) = run_bounded(cmd, FETCH_DEADLINE);
        assert_eq!((code, out.as_str()), (2, ""), "{command}: {err}");
        assert!(err.contains(tool), "{command}: {err}");
    }
    assert!(!copy.exists());
    true
}

/// The rows `sql` gives on the store `config` names (its SQLite file, or its PostgreSQL
/// database), each value as text ("NULL" for NULL): what a test reads from the tables
/// themselves, whichever backend holds them. `sql` must mean the same on both.
pub fn store_rows(config: &Path, sql: &str) -> Vec<Vec<String>> {
    let loaded = tributary::config::Config::load(config).expect("the test's config");
    match loaded.storage_url {
        Some(pg) => pg_rows(&pg.url, sql),
        None => {
            use rusqlite::types::ValueRef;
            let db = rusqlite::Connection::open(&loaded.storage_path)
                .unwrap_or_else(|e| panic!("opening {}: {e}", loaded.storage_path.display()));
            let mut stmt = db.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            let width = stmt.column_count();
            let rows = stmt.query_map([], |r| {
                (0..width)
                    .map(|i| {
                        Ok(match r.get_ref(i)? {
                            ValueRef::Null => "NULL".to_string(),
                            ValueRef::Integer(n) => n.to_string(),
                            ValueRef::Real(x) => x.to_string(),
                            ValueRef::Text(t) | ValueRef::Blob(t) => {
                                String::from_utf8_lossy(t).into_owned()
                            }
                        })
                    })
                    .collect::<Result<Vec<String>, rusqlite::Error>>()
            });
            rows.and_then(|rows| rows.collect())
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        }
    }
}

/// The one integer `sql` gives (a count) on the store `config` names.
pub fn store_count(config: &Path, sql: &str) -> i64 {
    let rows = store_rows(config, sql);
    let [row] = rows.as_slice() else {
        panic!("{sql}: {} rows, one expected", rows.len());
    };
    row[0].parse().unwrap_or_else(|_| panic!("{sql}: {row:?}"))
}

/// The rows `sql` gives on `url`, as text, read on a thread of its own (see `pg_sql`).
pub fn pg_rows(url: &str, sql: &str) -> Vec<Vec<String>> {
    let (url, owned) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || pg_simple(&url, &owned))
        .join()
        .expect("the query's thread")
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

static NEXT_DATABASE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A new, empty database on the test server (`$TRIBUTARY_POSTGRES_URL`, which `bash .ci/run`
/// starts); its URL.
pub fn pg_database() -> String {
    pg_database_with("")
}

/// A new, empty database made with `options` (`CREATE DATABASE name options`); its URL.
pub fn pg_database_with(options: &str) -> String {
    let url = std::env::var("TRIBUTARY_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("TRIBUTARY_POSTGRES_URL is not set: a PostgreSQL server's URL; `bash .ci/run` starts one")
    });
    let name = format!(
        "t_{}_{}",
        std::process::id(),
        NEXT_DATABASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    pg_sql(&url, &format!("CREATE DATABASE {name} {options}"));
    let (base, _) = url.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{name}")
}

/// Runs `statement` on `url` with a client of the test's own, on a thread of its own (the
/// caller may be a tokio test's runtime, where another cannot block).
pub fn pg_sql(url: &str, statement: &str) {
    if let Err(e) = pg_try_sql(url, statement) {
        panic!("{statement}: {e}");
    }
}

/// `pg_sql`, saying why it failed rather than panicking (for cleanups).
pub fn pg_try_sql(url: &str, statement: &str) -> Result<(), String> {
    let (url, statement) = (url.to_string(), statement.to_string());
    std::thread::spawn(move || pg_simple(&url, &statement).map(drop))
        .join()
        .expect("the statement's thread")
}

/// `sql` (one statement or several) on `url` with a client of its own: the rows it gives,
/// every value as text (the simple protocol's), or why it failed.
fn pg_simple(url: &str, sql: &str) -> Result<Vec<Vec<String>>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test cluster");
        let connection = tokio::spawn(connection);
        let messages = client.simple_query(sql).await;
        drop(client);
        let _ = connection.await;
        let rows = messages
            .map_err(|e| format!("{e:?}"))?
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).unwrap_or("NULL").to_string())
                        .collect(),
                ),
                _ => None,
            })
            .collect();
        Ok(rows)
    })
}

/// The store `config` names: its PostgreSQL database when it has a `url`, else its SQLite
/// file.
pub fn open_store(config: &tributary::config::Config) -> tributary::store::Store {
    tributary::store::Store::open_configured(config).expect("opening the store")
}

/// A TOML basic string with the needed escapes.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The text of a config with `[server] listen = listen`, storage at `storage` (as written,
/// relative paths being the binary's business) and the given sources.
pub fn config_text(listen: SocketAddr, storage: &str, sources: &[Source]) -> String {
    let mut out = format!(
        "[server]\nlisten = {}\n\n[storage]\n{}\n[defaults]\nschedule = \"every 15m\"\n",
        toml_str(&listen.to_string()),
        storage_lines(storage)
    );
    for s in sources {
        out.push_str("\n[[sources]]\n");
        out.push_str(&format!("id = {}\n", toml_str(&s.id)));
        out.push_str(&format!("name = {}\n", toml_str(&s.name)));
        out.push_str(&format!("url = {}\n", toml_str(&s.url)));
        out.push_str(&format!("category = {}\n", toml_str(&s.category)));
        if !s.tags.is_empty() {
            let tags: Vec<String> = s.tags.iter().map(|t| toml_str(t)).collect();
            out.push_str(&format!("tags = [{}]\n", tags.join(", ")));
        }
        out.push_str("kind = \"feed\"\n");
        if let Some(schedule) = &s.schedule {
            out.push_str(&format!("schedule = {}\n", toml_str(schedule)));
        }
        if let Some(enabled) = s.enabled {
            out.push_str(&format!("enabled = {enabled}\n"));
        }
    }
    out
}

/// Sets `[server] admin_token = token` in the config at `config` (written by `write_config`).
pub fn with_admin_token(config: &Path, token: &str) {
    let text = fs::read_to_string(config).expect("the config");
    let text = text.replacen(
        "[server]\n",
        &format!("[server]\nadmin_token = \"{token}\"\n"),
        1,
    );
    fs::write(config, text).expect("the config");
}

/// Writes `dir/tributary.toml` (storage `tributary.db`, relative to it) and returns its path.
pub fn write_config(dir: &Path, listen: SocketAddr, sources: &[Source]) -> PathBuf {
    write_config_text(dir, &config_text(listen, "tributary.db", sources))
}

/// Writes `text` as `dir/tributary.toml` and returns its path.
pub fn write_config_text(dir: &Path, text: &str) -> PathBuf {
    fs::create_dir_all(dir).expect("creating the config folder");
    let path = dir.join("tributary.toml");
    fs::write(&path, text).expect("writing the config");
    path
}

// ---------------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------------

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tributary")
}

/// A folder beside the config's folder that the binary runs in, so a relative storage path
/// resolved against the working directory (a bug) lands somewhere the tests can notice and
/// never in the repository.
fn cwd_for(config: &Path) -> PathBuf {
    let parent = config
        .parent()
        .and_then(Path::parent)
        .expect("config has a grandparent folder");
    let cwd = parent.join("elsewhere-cwd");
    fs::create_dir_all(&cwd).expect("creating the child's working folder");
    cwd
}

/// `tributary --config CONFIG`, run from a folder that is not the config's, with no proxy
/// variables.
pub fn tributary_command(config: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.arg("--config").arg(config);
    cmd.current_dir(cwd_for(config));
    for var in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("NO_PROXY", "127.0.0.1,localhost");
    cmd
}

/// Runs `tributary --config CONFIG fetch [IDS...]` and returns (exit code, stdout, stderr).
/// The exit code is -1 if the process died of a signal. Panics if it runs past
/// [`FETCH_DEADLINE`].
pub fn run_fetch(config: &Path, ids: &[&str]) -> (i32, String, String) {
    let mut cmd = tributary_command(config);
    cmd.arg("fetch").args(ids);
    run_bounded(cmd, FETCH_DEADLINE)
}

/// Runs a command with piped output, killing it and panicking if it outlives `deadline`.
pub fn run_bounded(mut cmd: Command, deadline: Duration) -> (i32, String, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let mut out = child.stdout.take().expect("child stdout is piped");
    let mut err = child.stderr.take().expect("child stderr is piped");
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let Some(status) = wait_timeout(&mut child, deadline) else {
        let _ = child.kill();
        let _ = child.wait();
        let stdout = String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned();
        let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
        panic!("{cmd:?} still running after {deadline:?}; killed it.\nstdout:\n{stdout}\nstderr:\n{stderr}");
    };
    let stdout = String::from_utf8_lossy(&out_reader.join().expect("stdout reader")).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().expect("stderr reader")).into_owned();
    (status.code().unwrap_or(-1), stdout, stderr)
}

/// A running `tributary serve`; killed (and reaped) on drop.
pub struct ServeGuard {
    child: Child,
    pub addr: SocketAddr,
    output: Arc<Output>,
}

/// What a daemon has printed so far, and a wake-up for whoever waits on a new line.
#[derive(Default)]
struct Output {
    text: Mutex<OutputText>,
    grew: Condvar,
}

#[derive(Default)]
struct OutputText {
    stdout: String,
    stderr: String,
    /// Lines printed so far, on both streams.
    lines: usize,
    /// How many of the two streams have ended (the daemon exited, or closed them).
    closed: usize,
}

impl Output {
    /// Copies `stream` into the buffer line by line, waking waiters on each line.
    fn collect(self: &Arc<Output>, stream: impl Read + Send + 'static, is_stdout: bool) {
        let output = self.clone();
        thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = std::io::BufRead::read_until(&mut lines, b'\n', &mut line).unwrap_or(0);
                let mut text = output.text.lock().unwrap();
                if n == 0 {
                    text.closed += 1;
                    output.grew.notify_all();
                    return;
                }
                let line = String::from_utf8_lossy(&line);
                text.lines += 1;
                if is_stdout {
                    text.stdout.push_str(&line);
                } else {
                    text.stderr.push_str(&line);
                }
                output.grew.notify_all();
            }
        });
    }
}

/// Starts `tributary --config CONFIG serve` on the listener [`free_addr`] reserved for
/// `listen` (the config's `[server] listen`), passed in as systemd's socket activation does.
pub fn spawn_serve(config: &Path, listen: SocketAddr) -> ServeGuard {
    spawn_serve_env(config, listen, &[], &[])
}

/// [`spawn_serve`] with environment variables set (`set`) and removed (`remove`), e.g. the
/// ones systemd passes (`NOTIFY_SOCKET`, `WATCHDOG_USEC`).
pub fn spawn_serve_env(
    config: &Path,
    listen: SocketAddr,
    set: &[(&str, &std::ffi::OsStr)],
    remove: &[&str],
) -> ServeGuard {
    let mut cmd = tributary_command(config);
    for var in remove {
        cmd.env_remove(var);
    }
    for (var, value) in set {
        cmd.env(var, value);
    }
    pass_listener(&mut cmd, listen);
    cmd.arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let output = Arc::new(Output::default());
    output.collect(child.stdout.take().expect("piped stdout"), true);
    output.collect(child.stderr.take().expect("piped stderr"), false);
    ServeGuard {
        child,
        addr: listen,
        output,
    }
}

/// Hands the listener reserved for `listen` to the child as descriptor 3 with `LISTEN_FDS=1`
/// (socket activation). The test process keeps its own copy, so the port stays reserved
/// across a daemon's restart; requests made before the daemon accepts wait in the backlog.
fn pass_listener(cmd: &mut Command, listen: SocketAddr) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let reserved = RESERVED.lock().unwrap();
    let fd = reserved
        .iter()
        .find(|l| l.local_addr().ok() == Some(listen))
        .unwrap_or_else(|| panic!("{listen} was not reserved with free_addr()"))
        .as_raw_fd();
    cmd.env("LISTEN_FDS", "1").env_remove("LISTEN_PID");
    // SAFETY: between fork and exec the closure only makes async-signal-safe calls (dup2,
    // fcntl) on a descriptor that stays open in the parent for the life of the process.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                // dup2 onto itself keeps close-on-exec: clear it instead.
                if libc::fcntl(3, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

impl ServeGuard {
    /// The bodies of `paths` on this daemon, each answered 200.
    pub fn bodies(&self, paths: &[&str]) -> Vec<String> {
        paths
            .iter()
            .map(|path| {
                let r = http_get(&self.url(path));
                assert_eq!(r.status, 200, "{path}");
                r.body
            })
            .collect()
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// What the daemon has printed so far (for failure messages).
    pub fn logs(&self) -> String {
        let text = self.output.text.lock().unwrap();
        format!(
            "--- serve stdout ---\n{}\n--- serve stderr ---\n{}",
            text.stdout, text.stderr
        )
    }

    /// Waits until the daemon has printed more than `seen` lines, its output has ended, or
    /// `deadline` passes; the number of lines printed by then.
    fn wait_past(&self, seen: usize, deadline: Instant) -> usize {
        let mut text = self.output.text.lock().unwrap();
        while text.lines <= seen && text.closed < 2 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            text = self.output.grew.wait_timeout(text, left).unwrap().0;
        }
        text.lines
    }

    fn printed(&self) -> usize {
        self.output.text.lock().unwrap().lines
    }

    /// Whether the daemon's output has `needle` within `deadline`; woken by each line it prints.
    pub fn log_within(&self, needle: &str, deadline: Duration) -> bool {
        self.until(deadline, || self.logs().contains(needle).then_some(()))
            .is_some()
    }

    /// How many lines of the daemon's output have all of `words`.
    pub fn lines_with(&self, words: &[&str]) -> usize {
        let text = self.output.text.lock().unwrap();
        text.stderr
            .lines()
            .chain(text.stdout.lines())
            .filter(|line| words.iter().all(|w| line.contains(w)))
            .count()
    }

    /// Asks `probe` (of the daemon's output, its API, its metrics) now and again after each
    /// line the daemon prints, until it answers `Some`, for at most `deadline` (then `None`).
    /// What the daemon does that a probe can see, it logs once done (a fetch's line comes
    /// after its store writes and its next run), so a change is never missed between lines.
    pub fn until<T>(&self, deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
        let end = Instant::now() + deadline;
        loop {
            let seen = self.printed();
            if let Some(found) = probe() {
                return Some(found);
            }
            if self.wait_past(seen, end) == seen {
                // Nothing more was printed: the deadline passed, or the daemon is gone.
                return None;
            }
        }
    }

    /// Waits for `GET /healthz` to answer 200 "ok" (the request waits in the listener's
    /// backlog until the daemon accepts it); panics (with the daemon's logs) if the daemon
    /// exits first or [`HEALTHZ_DEADLINE`] passes.
    pub fn wait_healthz(&mut self) {
        let url = self.url("/healthz");
        let (tx, rx) = mpsc::channel();
        let asked = tx.clone();
        let get = url.clone();
        thread::spawn(move || {
            let _ = asked.send(Some(try_http_get(&get, &[])));
        });
        let output = self.output.clone();
        thread::spawn(move || {
            let mut text = output.text.lock().unwrap();
            while text.closed < 2 {
                text = output.grew.wait(text).unwrap();
            }
            let _ = tx.send(None);
        });
        let resp = match rx.recv_timeout(HEALTHZ_DEADLINE) {
            Ok(Some(Ok(resp))) => resp,
            Ok(Some(Err(e))) => panic!("GET {url}: {e}\n{}", self.logs()),
            Ok(None) => panic!(
                "tributary serve exited before /healthz answered\n{}",
                self.logs()
            ),
            Err(_) => panic!(
                "GET {url} not answered after {HEALTHZ_DEADLINE:?}\n{}",
                self.logs()
            ),
        };
        // The first line says the daemon is healthy; lines after it name drifting sources.
        assert_eq!(
            (resp.status, resp.body.lines().next().unwrap_or_default()),
            (200, "ok"),
            "GET /healthz of a started daemon\n{}",
            self.logs()
        );
    }

    /// Whether the daemon is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .try_wait()
            .expect("checking the daemon")
            .is_none()
    }

    /// The daemon's process id (for sending it signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls until the daemon exits and returns its status; panics (with its logs) if it is
    /// still running after `deadline`.
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        wait_timeout(&mut self.child, deadline).unwrap_or_else(|| {
            panic!(
                "tributary serve still running {deadline:?} after being asked to stop\n{}",
                self.logs()
            )
        })
    }
}

impl Drop for ServeGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP client
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

/// One request through a fresh client (no proxy, 20 s timeout): status, headers, raw body.
/// `Err` describes a transport failure.
fn request(
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, reqwest::header::HeaderMap, Vec<u8>), String> {
    request_body(method, url, headers, None)
}

fn request_body(
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<(u16, reqwest::header::HeaderMap, Vec<u8>), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("building a client runtime: {e}"))?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        let mut req = client.request(method.clone(), url);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(body) = body {
            req = req.body(body.to_string());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("reading body of {url}: {e}"))?;
        Ok((status, headers, bytes.to_vec()))
    })
}

/// A request whose body must be UTF-8 text.
fn text_request(
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<HttpResponse, String> {
    let (status, headers, bytes) = request(method, url, headers)?;
    let body = String::from_utf8(bytes).map_err(|e| format!("body of {url} is not UTF-8: {e}"))?;
    let response = HttpResponse {
        status,
        headers,
        body,
    };
    assert_well_formed(url, &response);
    Ok(response)
}

/// Every document tributary serves parses: RSS, Atom and OPML as XML 1.0 (roxmltree, which
/// also refuses characters XML cannot carry), JSON Feed and the API as JSON. Checked on every
/// response a test receives from tributary (which marks all of its responses `nosniff`; the
/// fixture servers, which serve broken documents on purpose, do not), so no test can miss it.
pub fn assert_well_formed(url: &str, r: &HttpResponse) {
    let ours = r.header("x-content-type-options").as_deref() == Some("nosniff");
    if !ours || !(200..300).contains(&r.status) || r.body.is_empty() {
        return;
    }
    let kind = r.header("content-type").unwrap_or_default();
    let served_xml = ["application/rss+xml", "application/atom+xml", "text/x-opml"]
        .iter()
        .any(|t| kind.starts_with(t));
    let served_json =
        kind.starts_with("application/feed+json") || kind.starts_with("application/json");
    if served_xml {
        if let Err(e) = roxmltree::Document::parse(&r.body) {
            panic!("{url} ({kind}) is not well-formed XML: {e}\n{}", r.body);
        }
    }
    if served_json {
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&r.body) {
            panic!("{url} ({kind}) is not JSON: {e}\n{}", r.body);
        }
    }
    if kind.starts_with("text/html") {
        assert_valid_page(url, &r.body);
    }
}

/// A console page: html5ever (the HTML standard's parser) reports no parse error, and nothing
/// needs `unsafe-inline`: no inline script, event handler or style attribute.
pub fn assert_valid_page(url: &str, body: &str) {
    let doc = scraper::Html::parse_document(body);
    assert!(
        doc.errors.is_empty(),
        "{url}: HTML parse errors {:?}\n{body}",
        doc.errors
    );
    let inline = scraper::Selector::parse("script, [style]").expect("static selector");
    assert!(
        doc.select(&inline).next().is_none(),
        "{url}: inline script or style"
    );
    for element in doc.root_element().descendent_elements() {
        for (name, _) in element.value().attrs() {
            assert!(
                !name.starts_with("on"),
                "{url}: event handler {name} on <{}>",
                element.value().name()
            );
        }
    }
}

/// GET `url` with extra request headers; `Err` describes a transport failure.
pub fn try_http_get(url: &str, headers: &[(&str, &str)]) -> Result<HttpResponse, String> {
    text_request(reqwest::Method::GET, url, headers)
}

/// GET `url` and return (status, headers, raw body bytes), for bodies that are not UTF-8
/// (the GBK pages of the fixture site); panics on a transport failure.
pub fn http_get_bytes(url: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    request(reqwest::Method::GET, url, &[]).unwrap_or_else(|e| panic!("{e}"))
}

/// GET `url`; panics on a transport failure.
pub fn http_get(url: &str) -> HttpResponse {
    try_http_get(url, &[]).unwrap_or_else(|e| panic!("{e}"))
}

/// GET `url` with extra request headers; panics on a transport failure.
pub fn http_get_with(url: &str, headers: &[(&str, &str)]) -> HttpResponse {
    try_http_get(url, headers).unwrap_or_else(|e| panic!("{e}"))
}

/// POST `url` (empty body) with extra request headers; `Err` describes a transport failure.
pub fn try_http_post(url: &str, headers: &[(&str, &str)]) -> Result<HttpResponse, String> {
    text_request(reqwest::Method::POST, url, headers)
}

/// `method` `url` with a body and extra request headers; panics on a transport failure.
pub fn http_send(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
    let (status, headers, bytes) =
        request_body(method, url, headers, Some(body)).unwrap_or_else(|e| panic!("{e}"));
    let response = HttpResponse {
        status,
        headers,
        body: String::from_utf8(bytes).expect("a UTF-8 answer"),
    };
    assert_well_formed(url, &response);
    response
}

/// POST `url` with extra request headers; panics on a transport failure.
pub fn http_post_with(url: &str, headers: &[(&str, &str)]) -> HttpResponse {
    try_http_post(url, headers).unwrap_or_else(|e| panic!("{e}"))
}

/// Percent-encodes every byte outside RFC 3986's unreserved set (upper-case hex).
pub fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// A whole stack: fixtures + fetched config + running daemon
// ---------------------------------------------------------------------------------------------

/// Fixture server, a temp config with the three good fixture sources (two in 金融, one in
/// tech), one successful `fetch`, and a daemon serving the result.
pub struct Stack {
    // Field order is drop order: daemon first, then the fixtures, then the folder.
    pub serve: ServeGuard,
    /// Held, not read: the publishers stay up for as long as the daemon that polls them.
    _fixtures: FixtureServer,
    pub dir: tempfile::TempDir,
}

impl Stack {
    pub fn start() -> Stack {
        let fixtures = FixtureServer::start();
        let dir = tempfile::tempdir().expect("creating a temp folder");
        let listen = free_addr();
        let sources = [
            Source::fixture(&fixtures, CS_ID),
            Source::fixture(&fixtures, CAIXIN_ID),
            Source::fixture(&fixtures, TECH_ID),
        ];
        let config = write_config(&dir.path().join("conf"), listen, &sources);
        let (code, stdout, stderr) = run_fetch(&config, &[]);
        assert_eq!(
            code, 0,
            "initial fetch should succeed\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        let mut serve = spawn_serve(&config, listen);
        serve.wait_healthz();
        Stack {
            serve,
            _fixtures: fixtures,
            dir,
        }
    }

    pub fn get(&self, path: &str) -> HttpResponse {
        http_get(&self.serve.url(path))
    }
}

// ---------------------------------------------------------------------------------------------
// Fetch output lines
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchStatus {
    Ok {
        new: u64,
        updated: u64,
        unchanged: u64,
    },
    NotModified,
    Error(String),
}

/// Parses one stdout line of `fetch` into (source id, status); panics naming the line if it
/// matches none of the three documented shapes.
pub fn parse_fetch_line(line: &str) -> (String, FetchStatus) {
    let (id, rest) = line
        .split_once(": ")
        .unwrap_or_else(|| panic!("fetch line without \"<id>: \": {line:?}"));
    let bad = || -> ! { panic!("fetch line does not match the documented format: {line:?}") };
    let ms_suffix = |s: &str| -> Option<String> {
        // " (<ms> ms)" at the end; returns what comes before it.
        let s = s.strip_suffix(" ms)")?;
        let (head, ms) = s.rsplit_once(" (")?;
        ms.parse::<u64>().ok()?;
        Some(head.to_string())
    };
    let status = if let Some(cause) = rest.strip_prefix("error: ") {
        FetchStatus::Error(cause.to_string())
    } else if let Some(counts) = rest.strip_prefix("ok ") {
        let counts = ms_suffix(counts).unwrap_or_else(|| bad());
        let mut map = HashMap::new();
        for pair in counts.split(' ') {
            let (k, v) = pair.split_once('=').unwrap_or_else(|| bad());
            map.insert(k, v.parse::<u64>().unwrap_or_else(|_| bad()));
        }
        if map.len() != 3 {
            bad();
        }
        FetchStatus::Ok {
            new: *map.get("new").unwrap_or_else(|| bad()),
            updated: *map.get("updated").unwrap_or_else(|| bad()),
            unchanged: *map.get("unchanged").unwrap_or_else(|| bad()),
        }
    } else if ms_suffix(rest).as_deref() == Some("not modified") {
        FetchStatus::NotModified
    } else {
        bad()
    };
    (id.to_string(), status)
}

/// Parses all of `fetch`'s stdout into a map id → status, asserting each id appears once.
pub fn parse_fetch_output(stdout: &str) -> HashMap<String, FetchStatus> {
    let mut map = HashMap::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let (id, status) = parse_fetch_line(line);
        if map.insert(id.clone(), status).is_some() {
            panic!("source {id} has more than one line in fetch output:\n{stdout}");
        }
    }
    map
}

// ---------------------------------------------------------------------------------------------
// newsboat
// ---------------------------------------------------------------------------------------------

/// Fails the test, saying how to install it, when newsboat is missing.
pub fn require_newsboat() {
    let found = Command::new("newsboat")
        .arg("-v")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "newsboat is not installed (or `newsboat -v` fails): these reader tests need it. \
         Install it with `apt-get install newsboat`; `bash .ci/run` installs it."
    );
}

/// Runs newsboat headless (`-x reload`) on one feed with its own cache, and returns the
/// cache's items as (title, url, feedurl), with newsboat's stdout and stderr.
pub fn newsboat_reload(
    url: &str,
    urls: &Path,
    cache: &Path,
    conf: &Path,
    work: &Path,
) -> (Vec<(String, String, String)>, String, String) {
    fs::write(urls, format!("{url}\n")).expect("writing the newsboat urls file");
    let mut cmd = Command::new("newsboat");
    cmd.arg("-u")
        .arg(urls)
        .arg("-c")
        .arg(cache)
        .arg("-C")
        .arg(conf)
        .args(["-x", "reload"])
        // newsboat creates ~/.newsboat (or XDG folders); keep that in the temp folder.
        .env("HOME", work)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .current_dir(work);
    let (code, stdout, stderr) = run_bounded(cmd, Duration::from_secs(60));
    assert_eq!(
        code, 0,
        "newsboat reload of {url}: exit code\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let db = rusqlite::Connection::open(cache)
        .unwrap_or_else(|e| panic!("opening newsboat's cache {}: {e}", cache.display()));
    let mut stmt = db
        .prepare("SELECT title, url, feedurl FROM rss_item")
        .expect("newsboat's cache has rss_item(title, url, feedurl)");
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("querying rss_item")
        .collect::<Result<_, _>>()
        .expect("reading rss_item rows");
    (rows, stdout, stderr)
}

// ---------------------------------------------------------------------------------------------
// /api/sources
// ---------------------------------------------------------------------------------------------

/// How long [`source_until`] polls.
pub const API_DEADLINE: Duration = Duration::from_secs(45);

pub fn api_sources(serve: &ServeGuard) -> Vec<serde_json::Value> {
    let resp = http_get(&serve.url("/api/sources"));
    assert_eq!(resp.status, 200, "GET /api/sources: {}", resp.body);
    assert!(
        resp.header("content-type")
            .unwrap_or_default()
            .starts_with("application/json"),
        "{:?}",
        resp.header("content-type")
    );
    match serde_json::from_str(&resp.body) {
        Ok(serde_json::Value::Array(all)) => all,
        other => panic!("/api/sources is not a JSON array: {other:?}\n{}", resp.body),
    }
}

pub fn source_in<'a>(all: &'a [serde_json::Value], id: &str) -> &'a serde_json::Value {
    all.iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no source {id} in /api/sources: {all:?}"))
}

pub fn time_of(v: &serde_json::Value) -> Option<chrono::DateTime<chrono::Utc>> {
    v.as_str().map(|t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap_or_else(|e| panic!("{t:?} is not RFC 3339: {e}"))
            .with_timezone(&chrono::Utc)
    })
}

/// Polls `/api/sources` until `done` holds for source `id`; panics after [`API_DEADLINE`].
pub fn source_until(
    serve: &ServeGuard,
    id: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = None;
    serve
        .until(API_DEADLINE, || {
            let all = api_sources(serve);
            // A source added by a reload appears once the daemon has read the new file.
            last = all.iter().find(|s| s["id"] == id).cloned();
            last.clone().filter(|s| done(s))
        })
        .unwrap_or_else(|| {
            panic!(
                "/api/sources: {id}: {what} not seen after {API_DEADLINE:?}: {last:?}\n{}",
                serve.logs()
            )
        })
}

// ---------------------------------------------------------------------------------------------
// External tools
// ---------------------------------------------------------------------------------------------

/// A python3 that has `module` (Debian's `package` installs it for /usr/bin/python3); fails
/// the test, saying what to install, when none has.
pub fn python_with(module: &str, package: &str) -> String {
    let mut tried = Vec::new();
    for candidate in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(candidate)
            .args(["-c", &format!("import {module}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return candidate.to_string();
        }
        tried.push(candidate);
    }
    panic!(
        "no python3 with the {module} module (tried {tried:?}). Install it with \
         `apt-get install {package}`; `bash .ci/run` installs it."
    );
}

/// A file of the shared third-party material (`$TRIBUTARY_SHARED`, else `../shared` beside
/// the checkout), e.g. `schemas/atom.rnc`.
pub fn shared_file(relative: &str) -> PathBuf {
    let base = std::env::var_os("TRIBUTARY_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let path = base.join(relative);
    assert!(
        path.exists(),
        "{} not found: set TRIBUTARY_SHARED to the shared material (`bash .ci/run` does)",
        path.display()
    );
    path
}
