//! WebSub: with a hub configured, feeds advertise it (Link header and in the feed) and the
//! daemon pings it when a feed gains entries, at most once a minute per feed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use axum::extract::State;
use axum::routing::post;
use axum::Router;

type Pings = Arc<Mutex<Vec<(String, String)>>>;

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
                        p.lock().expect("pings").push((
                            form.get("hub.mode").cloned().unwrap_or_default(),
                            form.get("hub.url").cloned().unwrap_or_default(),
                        ));
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
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let missing: Vec<&String> = {
            let got = pings.lock().expect("pings");
            expected
                .iter()
                .filter(|url| !got.iter().any(|(_, u)| u == *url))
                .collect()
        };
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no ping for {missing:?}: {:?}\n{}",
            pings.lock().expect("pings"),
            serve.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    {
        let got = pings.lock().expect("pings");
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
    let before = pings
        .lock()
        .expect("pings")
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
    std::thread::sleep(Duration::from_millis(500));
    let after = pings
        .lock()
        .expect("pings")
        .iter()
        .filter(|(_, u)| u == &category_feed)
        .count();
    assert_eq!(after, before, "pinged twice within a minute");
}
