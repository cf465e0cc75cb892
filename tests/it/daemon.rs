//! The daemon run in-process, on a listener the test holds: what must hold across a reload.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::common::{open_store, storage_lines};
use tributary::config::Config;
use tributary::daemon::Daemon;

/// A publisher that holds every request until the test lets one go, and records how many
/// were in flight at once, per host and in all.
struct Gate {
    counts: Mutex<Counts>,
    release: Semaphore,
}

#[derive(Default, Debug)]
struct Counts {
    in_flight: HashMap<String, usize>,
    most_per_host: HashMap<String, usize>,
    most_in_all: usize,
    arrivals: Vec<String>,
}

impl Counts {
    fn total(&self) -> usize {
        self.in_flight.values().sum()
    }
}

/// Counts a request out of flight when its handler ends, answered or cancelled.
struct InFlight {
    gate: Arc<Gate>,
    host: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut c = self.gate.counts.lock().unwrap();
        if let Some(n) = c.in_flight.get_mut(&self.host) {
            *n -= 1;
        }
        drop(c);
    }
}

async fn held_feed(
    State(gate): State<Arc<Gate>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> impl IntoResponse {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split(':').next())
        .unwrap_or("")
        .to_string();
    {
        let mut c = gate.counts.lock().unwrap();
        *c.in_flight.entry(host.clone()).or_default() += 1;
        let now = c.in_flight[&host];
        let most = c.most_per_host.entry(host.clone()).or_default();
        *most = (*most).max(now);
        c.most_in_all = c.most_in_all.max(c.total());
        c.arrivals.push(uri.path().trim_matches('/').to_string());
    }
    let held = InFlight {
        gate: gate.clone(),
        host: host.clone(),
    };
    gate.release.acquire().await.unwrap().forget();
    drop(held);
    let path = uri.path().trim_matches('/');
    (
        [(header::CONTENT_TYPE, "application/rss+xml")],
        format!(
            "<rss version=\"2.0\"><channel><title>{path}</title><item><title>{path} story</title>\
             <link>http://{host}/{path}/1</link></item></channel></rss>"
        ),
    )
}

/// Serves the gate on 127.0.0.1 and 127.0.0.2 (two hosts to the fetcher), same port range.
async fn start_gate(gate: Arc<Gate>) -> (String, String) {
    let app = axum::Router::new().fallback(held_feed).with_state(gate);
    let mut bases = Vec::new();
    for ip in ["127.0.0.1", "127.0.0.2"] {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        bases.push(format!("http://{}", listener.local_addr().unwrap()));
        let app = app.clone();
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    (bases.remove(0), bases.remove(0))
}

fn config(dir: &std::path::Path, sources: &[(&str, &str)]) -> Config {
    let mut text = format!(
        "[storage]\n{}[server]\nlisten = \"127.0.0.1:1\"\n\
         [fetch]\nconcurrency = 3\nper_host = 2\n",
        storage_lines(&dir.join("t.db").display().to_string())
    );
    for (id, url) in sources {
        text.push_str(&format!(
            "[[sources]]\nid = \"{id}\"\nname = \"{id}\"\ncategory = \"c\"\nurl = \"{url}\"\n\
             schedule = \"every 1h\"\n"
        ));
    }
    Config::from_toml(&dir.join("tributary.toml"), &text).unwrap()
}

impl Gate {
    fn new() -> Arc<Gate> {
        Arc::new(Gate {
            counts: Mutex::default(),
            release: Semaphore::new(0),
        })
    }

    /// Waits until `test` holds for the counts. What it reads may change without an arrival
    /// (a fetch starting to wait for a place), so it looks again after every turn of the
    /// runtime, not only when the gate is told something.
    async fn until(&self, test: impl Fn(&Counts) -> bool) {
        while !test(&self.counts.lock().unwrap()) {
            tokio::task::yield_now().await;
        }
    }
}

/// Whether no source still to be fetched can start before a request ends: each has arrived or
/// is waiting for a place (`waiting` of them: a second fetch of a source that was due at start
/// and also triggered may be among them), or a bound is already broken.
fn settled(c: &Counts, sources: &[(&str, &str)], waiting: usize) -> bool {
    let pending = sources
        .iter()
        .filter(|(id, _)| !c.arrivals.iter().any(|p| p == id))
        .count();
    c.total() > 3 || c.in_flight.values().any(|n| *n > 2) || waiting >= pending
}

/// Whether every source has been fetched at least once (a source that was due at start and
/// also triggered may be fetched twice).
fn all_arrived(c: &Counts, sources: &[(&str, &str)]) -> bool {
    sources
        .iter()
        .all(|(id, _)| c.arrivals.iter().any(|p| p == id))
}

/// Waits until the scheduler runs a task for `id`, then asks it to fetch now.
async fn fetch_now(daemon: &Daemon, id: &str) {
    while !daemon.scheduler().trigger(id) {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_mid_cycle_keeps_the_per_host_and_global_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Gate::new();
    let (a, b) = start_gate(gate.clone()).await;
    let first = config(
        dir.path(),
        &[
            ("a1", &format!("{a}/a1")),
            ("a2", &format!("{a}/a2")),
            ("b1", &format!("{b}/b1")),
        ],
    );
    let store = Arc::new(open_store(&first));
    store.sync_sources(&first.sources).unwrap();
    let daemon = Arc::new(Daemon::new(first, store));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = tokio::spawn({
        let daemon = daemon.clone();
        async move { daemon.run(listener).await }
    });
    for id in ["a1", "a2", "b1"] {
        fetch_now(&daemon, id).await;
    }
    // Three fetches in flight: the global bound, two of them on 127.0.0.1.
    gate.until(|c| c.total() == 3).await;

    // Mid-cycle, a reload adds two sources on each host; the new sources get a new fetcher.
    let mut sources: Vec<(String, String)> = ["a1", "a2", "b1"]
        .iter()
        .map(|id| {
            (
                id.to_string(),
                format!("{}/{id}", if id.starts_with('a') { &a } else { &b }),
            )
        })
        .collect();
    for id in ["a3", "a4", "b2", "b3"] {
        let base = if id.starts_with('a') { &a } else { &b };
        sources.push((id.to_string(), format!("{base}/{id}")));
    }
    let listed: Vec<(&str, &str)> = sources
        .iter()
        .map(|(i, u)| (i.as_str(), u.as_str()))
        .collect();
    daemon.reload(config(dir.path(), &listed)).await.unwrap();
    for id in ["a3", "a4", "b2", "b3"] {
        fetch_now(&daemon, id).await;
    }
    // One request ends at a time, and only when no fetch could start without one ending: every
    // source gets fetched, and one the bounds did not hold back pushes a count past them.
    let hosts: Vec<(&str, &str)> = listed
        .iter()
        .map(|(id, _)| {
            (
                *id,
                if id.starts_with('a') {
                    "127.0.0.1"
                } else {
                    "127.0.0.2"
                },
            )
        })
        .collect();
    loop {
        gate.until(|c| settled(c, &hosts, daemon.limits().waiting()))
            .await;
        if all_arrived(&gate.counts.lock().unwrap(), &hosts) {
            break;
        }
        gate.release.add_permits(1);
    }
    // Everything from here on, a second fetch of a source included, goes through.
    gate.release.add_permits(Semaphore::MAX_PERMITS / 2);
    {
        let counts = gate.counts.lock().unwrap();
        assert!(all_arrived(&counts, &hosts), "{counts:?}");
        assert!(counts.most_in_all <= 3, "global bound exceeded: {counts:?}");
        for (host, most) in &counts.most_per_host {
            assert!(*most <= 2, "{host}: {most} requests at once: {counts:?}");
        }
        assert_eq!(counts.most_in_all, 3, "the bound was reached: {counts:?}");
    }
    daemon.stop();
    running.await.unwrap().unwrap();
}

/// Serves `app` on 127.0.0.1; the base URL.
async fn serve_app(app: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websub_pings_and_opml_give_the_url_the_server_answers() {
    let category = "Finance & Markets";
    let (ping_tx, mut pings) = tokio::sync::mpsc::unbounded_channel::<String>();
    let hub = serve_app(axum::Router::new().route(
        "/hub",
        axum::routing::post(move |body: String| {
            let ping_tx = ping_tx.clone();
            async move {
                for (k, v) in url::form_urlencoded::parse(body.as_bytes()) {
                    if k == "hub.url" {
                        let _ = ping_tx.send(v.into_owned());
                    }
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    ))
    .await;
    let publisher = serve_app(axum::Router::new().route(
        "/feed.xml",
        axum::routing::get(|| async {
            (
                [(header::CONTENT_TYPE, "application/rss+xml")],
                "<rss version=\"2.0\"><channel><title>m</title><item><title>Rates rise</title>\
                 <link>https://markets.example/1</link></item></channel></rss>",
            )
        }),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let me = format!("http://{}", listener.local_addr().unwrap());
    let text = format!(
        "[storage]\n{}[server]\nlisten = \"127.0.0.1:1\"\npublic_url = \"{me}/\"\n\
         websub_hub = \"{hub}/hub\"\n\
         [[sources]]\nid = \"m\"\nname = \"Markets\"\ncategory = \"{category}\"\n\
         url = \"{publisher}/feed.xml\"\nschedule = \"every 1h\"\n",
        storage_lines(&dir.path().join("t.db").display().to_string())
    );
    let config = Config::from_toml(&dir.path().join("tributary.toml"), &text).unwrap();
    let store = Arc::new(open_store(&config));
    store.sync_sources(&config.sources).unwrap();
    let daemon = Arc::new(Daemon::new(config, store));
    let running = tokio::spawn({
        let daemon = daemon.clone();
        async move { daemon.run(listener).await }
    });
    fetch_now(&daemon, "m").await;

    // The category's Atom feed: pinged, listed in OPML, and served, all at one URL.
    let mut pinged = Vec::new();
    let atom = loop {
        let url = pings.recv().await.expect("the hub is pinged");
        if url.starts_with(&format!("{me}/feeds/"))
            && url.ends_with(".atom")
            && !url.contains("/all.")
        {
            break url;
        }
        pinged.push(url);
    };
    assert_eq!(
        atom,
        format!("{me}/feeds/Finance%20&%20Markets.atom"),
        "{pinged:?}"
    );
    let client = reqwest::Client::new();
    let feed = client.get(&atom).send().await.unwrap();
    assert_eq!(feed.status(), 200, "{atom}");
    assert!(feed.text().await.unwrap().contains("Rates rise"));
    let opml = client
        .get(format!("{me}/opml"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let listed = roxmltree::Document::parse(&opml).unwrap();
    let urls: Vec<&str> = listed
        .descendants()
        .filter_map(|n| n.attribute("xmlUrl"))
        .collect();
    assert!(urls.contains(&atom.as_str()), "{atom} not in {urls:?}");
    daemon.stop();
    running.await.unwrap().unwrap();
}
