//! Fault injection: the fixture server on 127.0.0.1 plays every kind of broken publisher at
//! once, one source per fault, and `tributary fetch` must give each its exact outcome (an error
//! line naming the source, its URL and a plain cause, or the entries stored) while the other
//! sources go on, and without losing anything stored before.
//!
//! The run: every source first serves a good feed (two entries each, all fetched), then each
//! path turns into its fault and one `fetch` runs over all of them (plus a few targeted runs).
//! A daemon then serves what was stored, and every source must still have its first two
//! entries. A second test feeds 100 000 items in one document and measures the fetch's peak
//! memory.

use crate::common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{FetchStatus, FixtureServer, Misbehaviour, Source};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// `[fetch] timeout_secs` of the test config: small, so a stalled fetch fails fast.
const TIMEOUT_SECS: u64 = 3;
/// `[fetch] max_body_bytes` of the test config.
const CAP: u64 = 1024 * 1024;
/// What a bomb inflates to.
const BOMB_BYTES: usize = 50 * 1024 * 1024;
/// Hops of the chain that must be refused (the cap is 5).
const LONG_CHAIN: usize = 12;

fn path_of(id: &str) -> String {
    format!("/f/{id}.xml")
}

/// One RSS `<item>`.
fn item(guid: &str, title: &str, link: &str, date: &str) -> String {
    format!(
        "<item><guid isPermaLink=\"false\">{guid}</guid><title>{title}</title>\
         <link>{link}</link><pubDate>{date}</pubDate>\
         <description>{title}: the body of this entry.</description></item>\n"
    )
}

fn rss(items: &[String]) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel>\
         <title>fault fixture</title><link>https://faults.example.org/</link>\
         <description>d</description>\n{}</channel></rss>\n",
        items.concat()
    )
}

/// The two entries every source serves before its fault.
fn old_items(id: &str) -> Vec<String> {
    (1..=2)
        .map(|n| {
            item(
                &format!("{id}-old-{n}"),
                &old_title(id, n),
                &format!("https://faults.example.org/{id}/old-{n}"),
                &format!("Fri, 0{n} Mar 2024 08:00:00 GMT"),
            )
        })
        .collect()
}

fn old_title(id: &str, n: u32) -> String {
    format!("{id} entry {n} stored before the fault")
}

fn new_title(id: &str) -> String {
    format!("{id} entry added with the fault")
}

/// The good feed plus one new entry.
fn newer_feed(id: &str) -> String {
    let mut items = old_items(id);
    items.insert(
        0,
        item(
            &format!("{id}-new"),
            &new_title(id),
            &format!("https://faults.example.org/{id}/new"),
            "Sat, 16 Mar 2024 08:00:00 GMT",
        ),
    );
    rss(&items)
}

/// Two bombs of [`BOMB_BYTES`] spaces: (gzip, zlib, i.e. HTTP's `deflate`). One raw deflate
/// stream in two wrappers, so the slow part (compressing 50 MiB) is done once.
fn bombs() -> (Vec<u8>, Vec<u8>) {
    let block = vec![b' '; 1024 * 1024];
    let blocks = BOMB_BYTES / block.len();
    let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let mut crc = flate2::Crc::new();
    for _ in 0..blocks {
        raw.write_all(&block).expect("compressing");
        crc.update(&block);
    }
    let raw = raw.finish().expect("finishing the deflate stream");
    // RFC 1952: magic, deflate, no flags, no mtime, no extra flags, unknown OS; CRC-32, size.
    let mut gzip = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    gzip.extend_from_slice(&raw);
    gzip.extend_from_slice(&crc.sum().to_le_bytes());
    gzip.extend_from_slice(&(BOMB_BYTES as u32).to_le_bytes());
    // RFC 1950: deflate with a 32 KiB window, best compression; Adler-32 of the data.
    let (mut a, mut b) = (1u32, 0u32);
    for _ in 0..blocks {
        for &byte in &block {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
    }
    let mut zlib = vec![0x78, 0xda];
    zlib.extend_from_slice(&raw);
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());
    (gzip, zlib)
}

/// A config with `sources` (each in a category of its own, so no two are merged) and the
/// short deadline and small cap of these tests.
fn fault_config(
    dir: &Path,
    sources: &[Source],
    fetch: &str,
    max_items: usize,
) -> std::path::PathBuf {
    let listen = common::free_addr();
    let text = common::config_text(listen, "tributary.db", sources).replacen(
        "[defaults]\n",
        &format!("[defaults]\nmax_items = {max_items}\n"),
        1,
    ) + fetch;
    common::write_config_text(dir, &text)
}

fn fetch_settings(timeout: u64, cap: u64) -> String {
    format!(
        "\n[fetch]\ntimeout_secs = {timeout}\nconnect_timeout_secs = 2\nmax_body_bytes = {cap}\n\
         max_redirects = 5\nconcurrency = 64\nper_host = 64\n"
    )
}

/// What a source's line must say.
enum Expect {
    /// `error: <cause> (<url>)`, the cause exactly this.
    Error(String),
    /// `error: <cause> (<url>)`, the cause starting with this.
    ErrorStarting(String),
    /// `error: HTTP <status> <reason> (retry after <n>s) (<url>)` with n within a minute
    /// below this (an HTTP-date Retry-After, counted from when it is read).
    RetryAfterAbout(u16, u64),
    /// `ok` with this many new entries (and the two stored before unchanged).
    New(u64),
    /// `ok` with this many new entries and none unchanged (a feed without the old ones).
    OnlyNew(u64),
}

/// The error cause of a line, after checking that it ends with the source's URL.
fn cause_of<'a>(id: &str, status: &'a FetchStatus, url: &str) -> &'a str {
    let FetchStatus::Error(cause) = status else {
        panic!("{id}: expected an error line, got {status:?}");
    };
    cause
        .strip_suffix(&format!(" ({url})"))
        .unwrap_or_else(|| panic!("{id}: the error line should end with ({url}): {cause:?}"))
}

fn served_items(serve: &common::ServeGuard, id: &str) -> Vec<Value> {
    let resp = common::http_get(&serve.url(&format!("/sources/{id}.json?limit=500")));
    assert_eq!(resp.status, 200, "/sources/{id}.json: {}", resp.body);
    let doc: Value = serde_json::from_str(&resp.body)
        .unwrap_or_else(|e| panic!("/sources/{id}.json is not JSON: {e}\n{}", resp.body));
    doc["items"]
        .as_array()
        .unwrap_or_else(|| panic!("/sources/{id}.json has no items: {}", resp.body))
        .clone()
}

fn titles(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["title"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn date_of(item: &Value) -> DateTime<Utc> {
    let text = item["date_published"]
        .as_str()
        .unwrap_or_else(|| panic!("item without date_published: {item}"));
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

#[test]
fn every_fault_gets_its_own_outcome_and_loses_nothing() {
    // Built while the first fetch runs.
    let bombs = std::thread::spawn(bombs);
    let fx = FixtureServer::start();
    let dir = tempfile::tempdir().expect("creating a temp folder");

    // Faults whose fetch fails, and faults that still store something.
    let ids = [
        "control",
        "slow-drip",
        "stall",
        "too-big",
        "too-big-stream",
        "gzip-bomb",
        "deflate-bomb",
        "redirect-loop",
        "redirect-chain",
        "redirect-ok",
        "giant-location",
        "http-429",
        "http-503",
        "http-500",
        "http-404",
        "reset",
        "truncated",
        "empty",
        "html-page",
        "html-nofeed",
        "wrong-type",
        "json-as-text",
        "bad-utf8",
        "billion-laughs",
        "xxe",
        "absurd-dates",
        "long-link",
        "giant-header",
        "many-headers",
        "giant-etag",
    ];
    let url_of = |id: &str| fx.url(&path_of(id));
    let sources: Vec<Source> = ids
        .iter()
        .map(|id| Source::new(id, &format!("Fault {id}"), &url_of(id), id))
        .collect();
    let config = fault_config(
        &dir.path().join("conf"),
        &sources,
        &fetch_settings(TIMEOUT_SECS, CAP),
        1000,
    );

    // 1. Every source good: two entries each.
    for id in ids {
        fx.set(&path_of(id), rss(&old_items(id)));
    }
    let (code, stdout, stderr) = common::run_fetch(&config, &[]);
    let first = common::parse_fetch_output(&stdout);
    for id in ids {
        assert_eq!(
            first.get(id),
            Some(&FetchStatus::Ok {
                new: 2,
                updated: 0,
                unchanged: 0
            }),
            "{id} on the good first fetch\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
    }
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");

    // 2. Every path turns into its fault.
    let mut expect: HashMap<&str, Expect> = HashMap::new();
    let timed_out = format!("timed out after {TIMEOUT_SECS}s");
    let over_cap = format!("body larger than the {CAP}-byte cap");

    fx.set(&path_of("control"), newer_feed("control"));
    expect.insert("control", Expect::New(1));

    // A body that trickles in for a minute: no read ever waits long, the total deadline cuts it.
    fx.misbehave(
        &path_of("slow-drip"),
        Misbehaviour::Drip {
            body: newer_feed("slow-drip").into_bytes(),
            chunk: 8,
            pause: Duration::from_millis(200),
        },
    );
    expect.insert("slow-drip", Expect::Error(timed_out.clone()));

    fx.set_delay(&path_of("stall"), Duration::from_secs(60));
    expect.insert("stall", Expect::Error(timed_out.clone()));

    // Twice the cap with a Content-Length (refused before reading), and without end.
    let mut big = newer_feed("too-big");
    big.push_str(&format!("<!-- {} -->", "x".repeat(2 * CAP as usize)));
    fx.set(&path_of("too-big"), big);
    expect.insert("too-big", Expect::Error(over_cap.clone()));
    fx.misbehave(
        &path_of("too-big-stream"),
        Misbehaviour::Endless { chunk: 64 * 1024 },
    );
    expect.insert("too-big-stream", Expect::Error(over_cap.clone()));

    let (gzip, zlib) = bombs.join().expect("building the bombs");
    assert!(
        gzip.len() < 100_000 && zlib.len() < 100_000,
        "the bombs should be small: gzip {} bytes, zlib {} bytes",
        gzip.len(),
        zlib.len()
    );
    fx.misbehave(
        &path_of("gzip-bomb"),
        Misbehaviour::Encoded {
            encoding: "gzip",
            body: gzip,
        },
    );
    expect.insert("gzip-bomb", Expect::Error(over_cap.clone()));
    fx.misbehave(
        &path_of("deflate-bomb"),
        Misbehaviour::Encoded {
            encoding: "deflate",
            body: zlib,
        },
    );
    expect.insert("deflate-bomb", Expect::Error(over_cap.clone()));

    // A loop, a chain longer than the cap, and a short chain that is followed.
    fx.redirect(&path_of("redirect-loop"), 302, "/loop/b");
    fx.redirect("/loop/b", 302, &path_of("redirect-loop"));
    expect.insert("redirect-loop", Expect::Error("too many redirects".into()));
    fx.redirect(&path_of("redirect-chain"), 302, "/chain/1");
    for hop in 1..LONG_CHAIN {
        fx.redirect(
            &format!("/chain/{hop}"),
            307,
            &format!("/chain/{}", hop + 1),
        );
    }
    fx.set(
        &format!("/chain/{LONG_CHAIN}"),
        newer_feed("redirect-chain"),
    );
    expect.insert("redirect-chain", Expect::Error("too many redirects".into()));
    fx.redirect(&path_of("redirect-ok"), 302, "/short/1");
    fx.redirect("/short/1", 302, "/short/2");
    fx.redirect("/short/2", 307, "/short/feed.xml");
    fx.set("/short/feed.xml", newer_feed("redirect-ok"));
    expect.insert("redirect-ok", Expect::New(1));

    // A Location of 100 KB.
    let giant_location = format!("/{}", "l".repeat(100 * 1024));
    fx.redirect(&path_of("giant-location"), 302, &giant_location);
    expect.insert(
        "giant-location",
        Expect::Error(format!(
            "the redirect's Location is a URL of {} bytes, longer than the 2048-byte limit",
            giant_location.len()
        )),
    );

    fx.fail_with_retry_after(&path_of("http-429"), 429, "120");
    expect.insert(
        "http-429",
        Expect::Error("HTTP 429 Too Many Requests (retry after 120s)".into()),
    );
    let in_an_hour = (Utc::now() + chrono::Duration::hours(1))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    fx.fail_with_retry_after(&path_of("http-503"), 503, &in_an_hour);
    expect.insert("http-503", Expect::RetryAfterAbout(503, 3600));
    fx.fail_with(&path_of("http-500"), 500);
    expect.insert(
        "http-500",
        Expect::Error("HTTP 500 Internal Server Error".into()),
    );
    fx.fail_with(&path_of("http-404"), 404);
    expect.insert("http-404", Expect::Error("HTTP 404 Not Found".into()));

    // The connection dropped half-way through a body whose length was declared.
    let whole = newer_feed("reset").into_bytes();
    let half = whole.len() / 2;
    fx.misbehave(
        &path_of("reset"),
        Misbehaviour::ResetAfter {
            body: whole,
            after: half,
        },
    );
    expect.insert(
        "reset",
        Expect::ErrorStarting("reading the body failed: ".into()),
    );

    let full = newer_feed("truncated");
    fx.set(&path_of("truncated"), &full[..full.len() * 2 / 3]);
    expect.insert(
        "truncated",
        Expect::ErrorStarting("malformed feed: ".into()),
    );

    fx.set(&path_of("empty"), "");
    expect.insert(
        "empty",
        Expect::Error("not a feed: the body is empty".into()),
    );

    // A web page where the feed was: the answer names the feed the page links to.
    fx.set(
        &path_of("html-page"),
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>News</title>\n\
         <link rel=\"stylesheet\" href=\"/s.css\">\n\
         <link rel=\"alternate\" type=\"application/rss+xml\" title=\"News\" href=\"/feeds/news.rss\">\n\
         </head><body><h1>News</h1><p>Read our feed.<br></body></html>\n",
    );
    fx.set_content_type(&path_of("html-page"), "text/html; charset=utf-8");
    expect.insert(
        "html-page",
        Expect::Error(format!(
            "not a feed: an HTML page; its feed is at {} (set url to it)",
            fx.url("/feeds/news.rss")
        )),
    );
    fx.set(
        &path_of("html-nofeed"),
        "<html><head><title>Parked</title></head><body>This domain is for sale</body></html>",
    );
    fx.set_content_type(&path_of("html-nofeed"), "text/html");
    expect.insert(
        "html-nofeed",
        Expect::Error(
            "not a feed: an HTML page; it names no feed (no <link rel=\"alternate\"> of a feed type)"
                .into(),
        ),
    );

    // Right bytes, wrong labels.
    fx.set(&path_of("wrong-type"), newer_feed("wrong-type"));
    fx.set_content_type(&path_of("wrong-type"), "text/html; charset=utf-8");
    expect.insert("wrong-type", Expect::New(1));
    let json_feed = serde_json::json!({
        "version": "https://jsonfeed.org/version/1.1",
        "title": "json served as text",
        "items": [{
            "id": "json-as-text-new",
            "url": "https://faults.example.org/json-as-text/new",
            "title": new_title("json-as-text"),
            "content_text": "A JSON Feed labelled text/plain.",
            "date_published": "2024-03-16T08:00:00Z"
        }]
    });
    fx.set(&path_of("json-as-text"), json_feed.to_string());
    fx.set_content_type(&path_of("json-as-text"), "text/plain");
    expect.insert("json-as-text", Expect::OnlyNew(1));

    // UTF-8 (declared so) with one byte that is not.
    let mut bad = newer_feed("bad-utf8").replace(
        &new_title("bad-utf8"),
        &format!("{} 央行@公告", new_title("bad-utf8")),
    );
    bad = bad.replacen('@', "\u{1}", 1);
    let bad = bad.into_bytes();
    let bad: Vec<u8> = bad
        .into_iter()
        .map(|b| if b == 1 { 0xFF } else { b })
        .collect();
    assert!(std::str::from_utf8(&bad).is_err());
    fx.set(&path_of("bad-utf8"), bad);
    expect.insert("bad-utf8", Expect::New(1));

    // Entity expansion: a billion laughs, and external entities (a file, a URL, a parameter
    // entity pulling a DTD from the network).
    let laughs = newer_feed("billion-laughs")
        .replacen(
            "<rss",
            "<!DOCTYPE rss [\n <!ENTITY lol \"lol\">\n\
             <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n\
             <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n\
             <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n\
             <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n\
             <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n\
             <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n\
             <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n\
             <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n\
             <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n\
             ]>\n<rss",
            1,
        )
        .replace(
            &format!("<description>{}", new_title("billion-laughs")),
            "<description>&lol9;",
        );
    fx.set(&path_of("billion-laughs"), laughs);
    expect.insert("billion-laughs", Expect::New(1));

    let secret = format!("XXE-SECRET-{}", std::process::id());
    let secret_file = dir.path().join("secret.txt");
    std::fs::write(&secret_file, &secret).expect("writing the secret file");
    let xxe = newer_feed("xxe")
        .replacen(
            "<rss",
            &format!(
                "<!DOCTYPE rss [\n <!ENTITY xxe SYSTEM \"file://{}\">\n\
                 <!ENTITY probe SYSTEM \"{}\">\n <!ENTITY % remote SYSTEM \"{}\">\n %remote;\n]>\n<rss",
                secret_file.display(),
                fx.url("/xxe/probe"),
                fx.url("/xxe/dtd")
            ),
            1,
        )
        .replace(
            &format!("<description>{}", new_title("xxe")),
            "<description>file: &xxe; url: &probe;",
        );
    fx.set(&path_of("xxe"), xxe);
    expect.insert("xxe", Expect::New(1));

    // Dates no calendar of news holds.
    let absurd = [
        ("y9999", "Fri, 31 Dec 9999 23:59:59 GMT"),
        ("y100000", "Thu, 01 Jan 100000 00:00:00 GMT"),
        ("y0", "Sat, 01 Jan 0000 00:00:00 +0100"),
        ("y1", "Mon, 01 Jan 0001 00:00:00 GMT"),
        ("epoch", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ("negative", "-1"),
        ("garbage", "the day after tomorrow"),
        ("feb30", "Tue, 30 Feb 2021 10:00:00 GMT"),
        ("y1995", "Sun, 01 Jan 1995 12:00:00 GMT"),
    ];
    let mut items = old_items("absurd-dates");
    for (tag, date) in absurd {
        items.push(item(
            &format!("absurd-{tag}"),
            &format!("absurd date {tag}"),
            &format!("https://faults.example.org/absurd/{tag}"),
            date,
        ));
    }
    fx.set(&path_of("absurd-dates"), rss(&items));
    expect.insert("absurd-dates", Expect::New(absurd.len() as u64));

    // A link of 100 KB: dropped, the entry kept.
    let long_link = format!("https://faults.example.org/{}", "a".repeat(100 * 1024));
    let mut items = old_items("long-link");
    items.push(item(
        "long-link-new",
        &new_title("long-link"),
        &long_link,
        "Sat, 16 Mar 2024 08:00:00 GMT",
    ));
    fx.set(&path_of("long-link"), rss(&items));
    expect.insert("long-link", Expect::New(1));

    // Response heads beyond hyper's bounds: one 1 MiB header, and 200 headers.
    fx.set(&path_of("giant-header"), newer_feed("giant-header"));
    fx.set_header(
        &path_of("giant-header"),
        "x-padding",
        &"p".repeat(1024 * 1024),
    );
    expect.insert(
        "giant-header",
        Expect::Error("response headers too large or too many".into()),
    );
    fx.set(&path_of("many-headers"), newer_feed("many-headers"));
    for n in 0..200 {
        fx.set_header(&path_of("many-headers"), &format!("x-h{n}"), "v");
    }
    expect.insert(
        "many-headers",
        Expect::Error("response headers too large or too many".into()),
    );

    // An ETag of 100 KB: the feed is read, the ETag not kept.
    fx.set(&path_of("giant-etag"), newer_feed("giant-etag"));
    fx.set_header(
        &path_of("giant-etag"),
        "etag",
        &format!("\"{}\"", "e".repeat(100 * 1024)),
    );
    expect.insert("giant-etag", Expect::New(1));

    assert_eq!(expect.len(), ids.len(), "every source has an expectation");

    // 3. One fetch over every fault.
    let started = Instant::now();
    let (code, stdout, stderr) = common::run_fetch(&config, &[]);
    let took = started.elapsed();
    let second = common::parse_fetch_output(&stdout);
    let context = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(code, 1, "some sources failed, so exit 1\n{context}");
    for id in ids {
        let status = second
            .get(id)
            .unwrap_or_else(|| panic!("no line for {id}\n{context}"));
        let url = url_of(id);
        match &expect[id] {
            Expect::Error(cause) => {
                assert_eq!(cause_of(id, status, &url), cause, "{id}\n{context}")
            }
            Expect::ErrorStarting(prefix) => {
                let cause = cause_of(id, status, &url);
                assert!(
                    cause.starts_with(prefix.as_str()),
                    "{id}: the cause should start with {prefix:?}: {cause:?}\n{context}"
                );
            }
            Expect::RetryAfterAbout(code, secs) => {
                let cause = cause_of(id, status, &url);
                let waited = cause
                    .strip_prefix(&format!("HTTP {code} "))
                    .and_then(|rest| rest.split_once(" (retry after "))
                    .and_then(|(_, n)| n.strip_suffix("s)"))
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("{id}: no retry-after in {cause:?}\n{context}"));
                assert!(
                    (secs - 60..=*secs).contains(&waited),
                    "{id}: retry after {waited}s, expected about {secs}s\n{context}"
                );
            }
            Expect::New(new) | Expect::OnlyNew(new) => assert_eq!(
                status,
                &FetchStatus::Ok {
                    new: *new,
                    updated: 0,
                    unchanged: if matches!(expect[id], Expect::New(_)) {
                        2
                    } else {
                        0
                    }
                },
                "{id}\n{context}"
            ),
        }
    }
    // The drip would take a minute and the stall a minute: the deadline holds for both.
    assert!(
        took < Duration::from_secs(TIMEOUT_SECS + 12),
        "the fetch took {took:?}: the {TIMEOUT_SECS}s deadline did not hold\n{context}"
    );
    assert!(
        fx.bytes_sent(&path_of("slow-drip")) < newer_feed("slow-drip").len() as u64,
        "the drip was read to its end"
    );
    // Reading stopped at the cap: the endless body was not drained (socket buffers hold a few
    // MiB at most).
    let streamed = fx.bytes_sent(&path_of("too-big-stream"));
    assert!(
        streamed < 32 * CAP,
        "{streamed} bytes of the endless body were sent: the reader did not stop at the cap"
    );
    // No entity reached out to the network.
    assert_eq!(
        fx.started("/xxe/probe"),
        0,
        "an external entity was fetched"
    );
    assert_eq!(fx.started("/xxe/dtd"), 0, "an external DTD was fetched");
    // The redirect chain was followed no further than the cap.
    assert_eq!(
        fx.started(&format!("/chain/{LONG_CHAIN}")),
        0,
        "the chain was followed past the cap"
    );

    // 4. The giant ETag was not kept: the next poll is unconditional and changes nothing.
    let (_, stdout, stderr) = common::run_fetch(&config, &["giant-etag"]);
    assert_eq!(
        common::parse_fetch_output(&stdout).get("giant-etag"),
        Some(&FetchStatus::Ok {
            new: 0,
            updated: 0,
            unchanged: 3
        }),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let etag_hits = fx.hits(&path_of("giant-etag"));
    let last = etag_hits.last().expect("giant-etag was fetched");
    assert_eq!(
        last.if_none_match, None,
        "a 100 KB ETag was stored and sent back"
    );

    // 5. What is served: nothing stored before is lost, and what the faults added is sane.
    let serve = serve_on_a_free_port(&config);

    let started_at = Utc::now();
    for id in ids {
        let items = served_items(&serve, id);
        let got = titles(&items);
        for n in 1..=2 {
            assert!(
                got.contains(&old_title(id, n)),
                "{id}: entry {n} stored before the fault is gone: {got:?}"
            );
        }
        if let Expect::New(_) | Expect::OnlyNew(_) = expect[id] {
            if !matches!(id, "bad-utf8" | "absurd-dates" | "billion-laughs" | "xxe") {
                assert!(
                    got.contains(&new_title(id)),
                    "{id}: the new entry is not served: {got:?}"
                );
            }
        }
    }

    // Invalid UTF-8: one U+FFFD, the rest of the text intact.
    let got = titles(&served_items(&serve, "bad-utf8"));
    let want = format!("{} 央行\u{FFFD}公告", new_title("bad-utf8"));
    assert!(got.contains(&want), "bad-utf8: {want:?} not in {got:?}");

    // Entities are left unexpanded: no laughs, no file, no URL.
    let laughs = common::http_get(&serve.url("/sources/billion-laughs.json"));
    assert!(
        laughs.body.len() < 20_000 && !laughs.body.contains("lollol"),
        "billion-laughs expanded: {} bytes",
        laughs.body.len()
    );
    for path in [
        "/sources/xxe.json".to_string(),
        "/sources/xxe.rss".to_string(),
        "/sources/xxe.atom".to_string(),
        "/feeds/all.json?limit=500".to_string(),
    ] {
        let resp = common::http_get(&serve.url(&path));
        assert_eq!(resp.status, 200, "{path}");
        assert!(
            !resp.body.contains(&secret),
            "{path} serves the content of a local file read through an external entity"
        );
    }
    let got = titles(&served_items(&serve, "xxe"));
    assert!(got.contains(&new_title("xxe")), "xxe: {got:?}");

    // Absurd dates: far-future ones become the first-seen time (clamped), the epoch and before
    // count as no date (first seen too), a real old date and a bad one are what they are.
    let items = served_items(&serve, "absurd-dates");
    let fetched_by = started_at;
    let fetched_after = fetched_by - chrono::Duration::minutes(10);
    for (tag, _) in absurd {
        let title = format!("absurd date {tag}");
        let entry = items
            .iter()
            .find(|i| i["title"] == title.as_str())
            .unwrap_or_else(|| panic!("absurd-dates: {title:?} not served: {items:?}"));
        let date = date_of(entry);
        match tag {
            "y1995" => assert_eq!(date.to_rfc3339(), "1995-01-01T12:00:00+00:00"),
            _ => assert!(
                date > fetched_after && date <= fetched_by,
                "absurd-dates: {tag} is dated {date}; expected the first-seen time"
            ),
        }
    }
    for format in ["rss", "atom", "json"] {
        let resp = common::http_get(&serve.url(&format!("/sources/absurd-dates.{format}")));
        assert_eq!(resp.status, 200, "absurd-dates.{format}: {}", resp.body);
        let _ = common::served::parse(
            match format {
                "rss" => common::served::Format::Rss,
                "atom" => common::served::Format::Atom,
                _ => common::served::Format::Json,
            },
            &resp.body,
        );
    }

    // The 100 KB link was dropped; the entry is there, linking nowhere.
    let items = served_items(&serve, "long-link");
    let entry = items
        .iter()
        .find(|i| i["title"] == new_title("long-link").as_str())
        .expect("long-link's new entry");
    assert!(
        entry["url"].as_str().is_none_or(|u| u.len() <= 2048),
        "long-link: a 100 KB link is served"
    );
    drop(serve);
}

/// Runs `fetch` and returns (exit code, stdout, stderr, its peak RSS in KiB).
///
/// The peak must be tributary's own, but a process this one starts begins with this one's:
/// Linux carries the high-water mark of the address space a process leaves over `exec`, and a
/// child spawned (vfork, posix_spawn) or forked from here leaves this process' address space
/// or a copy of it. This process holds every integration test at once, so its size says
/// nothing of the fetch. A small python3 is started instead, forks a fresh child that runs
/// the fetch, and reports that child's `ru_maxrss` from `wait4` (at least python's own few MiB;
/// a fetch of 100 000 items is far above). It also kills the fetch at the deadline.
fn run_fetch_measured(config: &Path) -> (i32, String, String, i64) {
    const MEASURE: &str = r#"
import os, signal, sys
report, seconds, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
pid = os.fork()
if pid == 0:
    try:
        os.execv(argv[0], argv)
    finally:
        os._exit(127)
late = []
def stop(*_):
    late.append(1)
    os.kill(pid, signal.SIGKILL)
signal.signal(signal.SIGALRM, stop)
signal.alarm(seconds)
_, status, usage = os.wait4(pid, 0)
signal.alarm(0)
code = os.waitstatus_to_exitcode(status)
with open(report, "w") as f:
    f.write("%d %d %d\n" % (code if code >= 0 else -1, usage.ru_maxrss, len(late)))
"#;
    let fetch = {
        let mut cmd = common::tributary_command(config);
        cmd.arg("fetch");
        cmd
    };
    let report = config.with_extension("rss-report");
    let mut cmd = Command::new(common::python_with("os", "python3"));
    cmd.arg("-c")
        .arg(MEASURE)
        .arg(&report)
        .arg(common::FETCH_DEADLINE.as_secs().to_string())
        .arg(fetch.get_program())
        .args(fetch.get_args());
    for (var, value) in fetch.get_envs() {
        match value {
            Some(value) => cmd.env(var, value),
            None => cmd.env_remove(var),
        };
    }
    if let Some(dir) = fetch.get_current_dir() {
        cmd.current_dir(dir);
    }
    // python kills the fetch at FETCH_DEADLINE; this bounds python itself.
    let (python_code, stdout, stderr) =
        common::run_bounded(cmd, common::FETCH_DEADLINE + Duration::from_secs(30));
    let line = std::fs::read_to_string(&report).unwrap_or_else(|e| {
        panic!("no report from the measuring python3 (exit {python_code}): {e}\n{stderr}")
    });
    let fields: Vec<i64> = line
        .split_whitespace()
        .map(|f| f.parse().expect("a number in the report"))
        .collect();
    let [code, max_rss_kib, late] = fields[..] else {
        panic!("a report of three numbers: {line:?}");
    };
    assert!(
        late == 0,
        "tributary fetch still running after {:?}; killed it.\nstdout:\n{stdout}\nstderr:\n{stderr}",
        common::FETCH_DEADLINE
    );
    (code as i32, stdout, stderr, max_rss_kib)
}

/// 100 000 items in one feed, oldest first: only the newest `max_items` are stored, and the
/// fetch's memory stays bounded.
#[test]
fn a_hundred_thousand_items_store_only_the_newest() {
    const ITEMS: usize = 100_000;
    const KEEP: usize = 300;
    let fx = FixtureServer::start();
    let dir = tempfile::tempdir().expect("creating a temp folder");
    let start: DateTime<Utc> = "2024-01-01T00:00:00Z".parse().expect("a date");
    // Atom: feed-rs reads it about twice as fast as RSS in a debug build, which keeps this test
    // short; the cap and the selection do not depend on the format.
    let mut body = String::with_capacity(ITEMS * 120);
    body.push_str(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\
         <title>huge</title><id>urn:huge</id><updated>2024-03-01T00:00:00Z</updated>\n",
    );
    for i in 0..ITEMS {
        let date = (start + chrono::Duration::minutes(i as i64)).to_rfc3339();
        body.push_str(&format!(
            "<entry><id>urn:n{i}</id><title>Item {i}</title><updated>{date}</updated></entry>\n"
        ));
    }
    body.push_str("</feed>\n");
    let size = body.len() as u64;
    fx.set("/huge.atom", body);
    let sources = [Source::new("huge", "Huge", &fx.url("/huge.atom"), "huge")];
    let config = fault_config(
        &dir.path().join("conf"),
        &sources,
        &fetch_settings(60, 64 * CAP),
        KEEP,
    );

    let (code, stdout, stderr, max_rss_kib) = run_fetch_measured(&config);
    let context = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(code, 0, "{context}");
    assert_eq!(
        common::parse_fetch_output(&stdout).get("huge"),
        Some(&FetchStatus::Ok {
            new: KEEP as u64,
            updated: 0,
            unchanged: 0
        }),
        "{context}"
    );
    eprintln!(
        "a {ITEMS}-item feed of {} KiB: fetch peak RSS {max_rss_kib} KiB",
        size / 1024
    );
    // Bounded: a few times the body, not a copy per item.
    assert!(
        max_rss_kib < 512 * 1024,
        "peak RSS {max_rss_kib} KiB for a {} KiB feed",
        size / 1024
    );

    let serve = serve_on_a_free_port(&config);
    let items = served_items(&serve, "huge");
    let got = titles(&items);
    let want: Vec<String> = (ITEMS - KEEP..ITEMS)
        .rev()
        .map(|i| format!("Item {i}"))
        .collect();
    assert_eq!(got, want, "the newest {KEEP} items, newest first");
}

/// Starts the daemon on `config` listening on a free port (the config's listen line is
/// rewritten to it) and waits until it answers.
fn serve_on_a_free_port(config: &std::path::Path) -> common::ServeGuard {
    let listen = common::free_addr();
    let text = std::fs::read_to_string(config).expect("reading the config");
    let listen_line = text
        .lines()
        .find(|l| l.starts_with("listen = "))
        .expect("the config has a listen line")
        .to_string();
    std::fs::write(
        config,
        text.replacen(&listen_line, &format!("listen = \"{listen}\""), 1),
    )
    .expect("rewriting the config");
    let mut serve = common::spawn_serve(config, listen);
    serve.wait_healthz();
    serve
}
