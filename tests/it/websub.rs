//! WebSub: with a hub configured, feeds advertise it (Link header and in the feed) and the
//! daemon pings it when a feed gains entries, at most once a minute per feed.

use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::common::*;
use axum::extract::State;
use axum::routing::post;
use axum::Router;

/// What the hub was sent: each ping's (hub.mode, hub.url), in order, and a signal on each.
#[derive(Default)]
struct Received {
    pings: Mutex<Vec<(String, String)>>,
    arrived: Condvar,
}

type Pings = Arc<Received>;

impl Received {
    fn lock(&self) -> MutexGuard<'_, Vec<(String, String)>> {
        self.pings.lock().expect("pings")
    }

    /// Waits until `done` holds for the pings so far, for at most `deadline`; whether it did.
    /// Woken by each ping as the hub receives it.
    fn wait_until(&self, deadline: Duration, done: impl Fn(&[(String, String)]) -> bool) -> bool {
        let (_pings, timeout) = self
            .arrived
            .wait_timeout_while(self.lock(), deadline, |pings| !done(pings))
            .expect("pings");
        !timeout.timed_out()
    }
}

/// A hub on 127.0.0.1 that records each ping's hub.mode and hub.url.
fn start_hub() -> (SocketAddr, Pings) {
    let pings: Pings = Arc::default();
    let state = pings.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr"))
                .expect("send addr");
            let app = Router::new()
                .route(
                    "/hub",
                    post(|State(p): State<Pings>, body: String| async move {
                        let form: std::collections::HashMap<String, String> =
                            url::form_urlencoded::parse(body.as_bytes())
                                .into_owned()
                                .collect();
                        p.lock().push((
                            form.get("hub.mode").cloned().unwrap_or_default(),
                            form.get("hub.url").cloned().unwrap_or_default(),
                        ));
                        p.arrived.notify_all();
                        axum::http::StatusCode::NO_CONTENT
                    }),
                )
                .with_state(state);
            axum::serve(listener, app).await.expect("hub");
        });
    });
    (
        rx.recv_timeout(Duration::from_secs(10))
            .expect("hub address"),
        pings,
    )
}

#[test]
fn feeds_name_the_hub_and_new_entries_ping_it_once_a_minute() {
    let (hub, pings) = start_hub();
    let server = FixtureServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let listen = free_addr();
    let token = "websub-test-token-0123";
    let text = config_text(
        listen,
        "tributary.db",
        &[Source::fixture(&server, CS_ID)],
    )
    .replacen(
        "[server]\n",
        &format!(
            "[server]\npublic_url = \"http://{listen}/\"\nwebsub_hub = \"http://{hub}/hub\"\nadmin_token = \"{token}\"\n"
        ),
        1,
    );
    let config = write_config_text(dir.path(), &text);
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();

    let category_feed = format!("http://{listen}/feeds/{}.atom", pct(FINANCE));
    // Each feed's ping is a request of its own, so they arrive one by one: wait for every
    // feed the new entries are in (the category's, the merged, the source's, a tag's).
    let expected: Vec<String> = [
        format!("feeds/{}.atom", pct(FINANCE)),
        "feeds/all.rss".to_string(),
        format!("sources/{CS_ID}.json"),
        format!("tags/{}.atom", pct("资讯")),
    ]
    .iter()
    .map(|feed| format!("http://{listen}/{feed}"))
    .collect();
    let missing = |got: &[(String, String)]| -> Vec<String> {
        expected
            .iter()
            .filter(|url| !got.iter().any(|(_, u)| u == *url))
            .cloned()
            .collect()
    };
    assert!(
        pings.wait_until(Duration::from_secs(30), |got| missing(got).is_empty()),
        "no ping for {:?}: {:?}\n{}",
        missing(&pings.lock()),
        *pings.lock(),
        serve.logs()
    );
    {
        let got = pings.lock();
        assert!(got.iter().all(|(mode, _)| mode == "publish"), "{got:?}");
    }

    // Discovery: the Link header and the feed itself name the hub and the feed's own URL.
    let resp = http_get(&category_feed);
    let link = resp.header("link").expect("a Link header");
    assert!(
        link.contains(&format!("<http://{hub}/hub>; rel=\"hub\"")),
        "{link}"
    );
    assert!(link.contains("rel=\"self\""), "{link}");
    assert!(
        resp.body
            .contains(&format!("href=\"http://{hub}/hub\" rel=\"hub\"")),
        "{}",
        resp.body
    );
    let json = http_get(&format!("http://{listen}/feeds/all.json")).body;
    assert!(json.contains("\"WebSub\""), "{json}");

    // New entries within the minute: no second ping yet for the same feed.
    let cycles_before = serve
        .until(API_DEADLINE, || {
            let n = fetch_cycles(&serve);
            (n > 0).then_some(n)
        })
        .unwrap_or_else(|| panic!("the first fetch never finished\n{}", serve.logs()));
    let before = pings
        .lock()
        .iter()
        .filter(|(_, u)| u == &category_feed)
        .count();
    let feed = String::from_utf8(server.get(CS_FILE)).expect("UTF-8");
    let extra = "<item><title>新增快讯</title><link>https://www.cs.com.cn/new/1.html</link><guid isPermaLink=\"false\">new-1</guid><pubDate>Tue, 01 Dec 2020 20:00:00 +0800</pubDate></item></channel>";
    server.set(CS_FILE, feed.replacen("</channel>", extra, 1));
    let resp = http_post_with(
        &serve.url(&format!("/api/sources/{CS_ID}/refresh")),
        &[("Authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(resp.status, 202);
    source_until(&serve, CS_ID, "the new entry", |s| {
        s["entry_count"].as_u64() == Some(5)
    });
    // The source's task tells the publisher of new entries right after storing them, and the
    // publisher decides then, synchronously, to ping or to wait for the minute's end; the
    // fetch's line is logged after that. So once it is out the decision is made: a ping due
    // now would already be on its way, and one coalesced into the minute's end is not.
    let done = serve.until(API_DEADLINE, || {
        (fetch_cycles(&serve) > cycles_before).then_some(())
    });
    assert!(
        done.is_some(),
        "the refresh never finished\n{}",
        serve.logs()
    );
    let after = pings
        .lock()
        .iter()
        .filter(|(_, u)| u == &category_feed)
        .count();
    assert_eq!(after, before, "pinged twice within a minute");
}

/// How many fetches of [`CS_ID`] have run to their end (their one line each is logged).
fn fetch_cycles(serve: &ServeGuard) -> usize {
    serve.lines_with(&[&format!("source={CS_ID}"), "status="])
}
