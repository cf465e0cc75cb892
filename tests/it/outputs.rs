//! Every kind of published feed validates, and paging, search and caching behave as readers
//! need: Atom against RFC 4287's RELAX NG schema (jing), RSS and Atom through feedparser with
//! no error, JSON Feed against the JSON Feed 1.1 schema; pages are disjoint and complete;
//! a poll with the ETag is a 304 that runs no query.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::common::*;

/// The served URLs every validator checks, as paths with a `{ext}` placeholder.
fn output_paths(stack: &Stack) -> Vec<String> {
    let all = http_get(&stack.serve.url("/feeds/all.json?limit=4")).body;
    let all: serde_json::Value = serde_json::from_str(&all).expect("JSON Feed");
    let next = all["next_url"].as_str().expect("page 1 has a next_url");
    let cursor = next.split("before=").nth(1).expect("a cursor").to_string();
    let term: String = expected_for(&[CS_ID])[0].title.chars().take(4).collect();
    vec![
        format!("/feeds/{}.{{ext}}", pct(FINANCE)),
        format!("/feeds/{TECH}.{{ext}}"),
        "/feeds/all.{ext}".to_string(),
        format!("/sources/{CS_ID}.{{ext}}"),
        format!("/tags/{}.{{ext}}", pct("资讯")),
        format!("/feeds/all.{{ext}}?limit=4&before={cursor}"),
        format!("/feeds/all.{{ext}}?q={}", pct(&term)),
    ]
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e} (bash .ci/run installs the tools)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_output_validates() {
    let stack = Stack::start();
    let work = stack.dir.path().join("validate");
    fs::create_dir_all(&work).expect("a folder");
    let rnc = shared_file("schemas/atom.rnc");
    let schema = std::env::var_os("TRIBUTARY_JSONFEED_SCHEMA")
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .expect("TRIBUTARY_JSONFEED_SCHEMA must name jsonfeed-schema's schema-v1.1.json (bash .ci/run installs it)");
    let python = python_with("jsonschema", "python3-jsonschema");
    let feedparser = python_with("feedparser", "python3-feedparser");
    for (n, path) in output_paths(&stack).iter().enumerate() {
        for ext in ["atom", "rss", "json"] {
            let url = stack.serve.url(&path.replace("{ext}", ext));
            let resp = http_get(&url);
            assert_eq!(resp.status, 200, "{url}");
            let file = work.join(format!("{n}.{ext}"));
            fs::write(&file, &resp.body).expect("saving the feed");
            match ext {
                "atom" => {
                    let (ok, out) = run(Command::new("jing").arg("-c").arg(&rnc).arg(&file));
                    let errors: Vec<&str> =
                        out.lines().filter(|l| !l.contains("[warning]")).collect();
                    assert!(
                        ok && errors.is_empty(),
                        "{url}: jing: {errors:#?}\n{}",
                        resp.body
                    );
                }
                "rss" => {
                    let (ok, out) = run(Command::new("xmllint").arg("--noout").arg(&file));
                    assert!(ok, "{url}: xmllint: {out}");
                }
                _ => {
                    let script = "import json,sys,jsonschema\n\
                        jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))";
                    let (ok, out) = run(Command::new(&python)
                        .args(["-c", script])
                        .arg(&file)
                        .arg(&schema));
                    assert!(ok, "{url}: JSON Feed 1.1 schema: {out}");
                }
            }
            if ext != "json" {
                let script = "import sys, feedparser, urllib.request\n\
                    d = feedparser.parse(sys.argv[1], handlers=[urllib.request.ProxyHandler({})])\n\
                    print(int(bool(d.bozo)), repr(d.get('bozo_exception', '')), len(d.entries))\n\
                    sys.exit(1 if d.bozo else 0)";
                let (ok, out) = run(Command::new(&feedparser).args(["-c", script, &url]));
                assert!(ok, "{url}: feedparser bozo: {out}");
            }
        }
    }
}

/// Following `next` links from page 1 visits every entry exactly once, in order, as feedparser
/// reads them; newsboat reads page 1 and page 2 as disjoint feeds, and a search feed.
#[test]
fn pages_are_disjoint_and_complete_for_readers() {
    let stack = Stack::start();
    let feedparser = python_with("feedparser", "python3-feedparser");
    let everything: Vec<String> = expected_in_category(FINANCE)
        .iter()
        .chain(expected_in_category(TECH).iter())
        .map(|e| e.title.to_string())
        .collect();
    let mut seen = Vec::new();
    let mut url = Some(stack.serve.url("/feeds/all.atom?limit=4"));
    let mut pages = Vec::new();
    while let Some(page) = url.take() {
        let script = "import sys, json, feedparser, urllib.request\n\
            d = feedparser.parse(sys.argv[1], handlers=[urllib.request.ProxyHandler({})])\n\
            nxt = [l['href'] for l in d.feed.get('links', []) if l.get('rel') == 'next']\n\
            print(json.dumps({'bozo': int(bool(d.bozo)), 'titles': [e.title for e in d.entries], 'next': nxt[0] if nxt else None}))";
        let (ok, out) = run(Command::new(&feedparser).args(["-c", script, &page]));
        assert!(ok, "{page}: {out}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("feedparser's JSON");
        assert_eq!(v["bozo"], 0, "{page}");
        let titles: Vec<String> = v["titles"]
            .as_array()
            .expect("titles")
            .iter()
            .map(|t| t.as_str().unwrap_or_default().to_string())
            .collect();
        seen.extend(titles);
        pages.push(page);
        url = v["next"].as_str().map(str::to_string);
        assert!(pages.len() <= 10, "next links do not end");
    }
    assert_eq!(
        seen.len(),
        everything.len(),
        "pages {pages:#?} gave {seen:#?}"
    );
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "an entry appeared on two pages: {seen:#?}"
    );
    let want: BTreeSet<&String> = everything.iter().collect();
    assert_eq!(unique, want);

    require_newsboat();
    let work = stack.dir.path().join("newsboat");
    fs::create_dir_all(&work).expect("a folder");
    let conf = work.join("config");
    fs::write(&conf, "").expect("an empty config");
    let term: String = expected_for(&[CS_ID])[0].title.chars().take(4).collect();
    let mut page_titles = Vec::new();
    for (n, page) in pages
        .iter()
        .take(2)
        .cloned()
        .chain([stack.serve.url(&format!("/feeds/all.rss?q={}", pct(&term)))])
        .enumerate()
    {
        let (rows, _, _) = newsboat_reload(
            &page,
            &work.join(format!("urls-{n}")),
            &work.join(format!("cache-{n}.db")),
            &conf,
            &work,
        );
        page_titles.push(rows.into_iter().map(|r| r.0).collect::<BTreeSet<String>>());
    }
    assert_eq!(page_titles[0].len(), 4);
    assert_eq!(page_titles[1].len(), 4);
    assert!(
        page_titles[0].is_disjoint(&page_titles[1]),
        "{page_titles:#?}"
    );
    assert!(
        page_titles[2].iter().any(|t| t.starts_with(&term)),
        "search for {term:?}: {:#?}",
        page_titles[2]
    );
}

fn feed_queries(stack: &Stack) -> f64 {
    let text = http_get(&stack.serve.url("/metrics")).body;
    text.lines()
        .find_map(|l| l.strip_prefix("tributary_feed_queries "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no tributary_feed_queries in /metrics:\n{text}"))
}

/// A second poll with the ETag is a 304 from the cache: no query runs. The response also
/// carries Last-Modified, Cache-Control from the category's schedule, and compresses.
#[test]
fn a_conditional_poll_is_answered_from_the_cache() {
    let stack = Stack::start();
    let url = stack.serve.url(&format!("/feeds/{}.atom", pct(FINANCE)));
    let first = http_get(&url);
    assert_eq!(first.status, 200);
    let etag = first.header("etag").expect("an ETag");
    assert!(first.header("last-modified").is_some());
    // Every source in the test config is on "every 15m".
    assert_eq!(
        first.header("cache-control").as_deref(),
        Some("public, max-age=900")
    );
    let before = feed_queries(&stack);
    for _ in 0..3 {
        let again = http_get_with(&url, &[("If-None-Match", &etag)]);
        assert_eq!(again.status, 304);
    }
    assert_eq!(feed_queries(&stack), before, "a cached poll ran a query");
    let since = http_get_with(
        &url,
        &[(
            "If-Modified-Since",
            &first.header("last-modified").unwrap_or_default(),
        )],
    );
    assert_eq!(since.status, 304, "If-Modified-Since alone");
    // The HTTP client of the other tests decompresses silently; ask by hand.
    let head = raw_get_head(&url, "gzip").to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(head.contains("vary: accept-encoding"), "{head}");
    let head = raw_get_head(&url, "br").to_ascii_lowercase();
    assert!(head.contains("content-encoding: br"), "{head}");
}

/// Compressed feeds come from the cache in each coding: the gzip and br bodies decompress to
/// exactly the uncompressed body, each coding has an ETag of its own, and each revalidates with
/// its ETag to a 304 (the uncompressed form's ETag does not validate a compressed one). No
/// request after the first runs a query.
#[test]
fn each_coding_is_served_whole_and_revalidates() {
    let stack = Stack::start();
    for path in [
        "/feeds/all.atom".to_string(),
        format!("/feeds/{}.json", pct(FINANCE)),
    ] {
        let url = stack.serve.url(&path);
        let (head, identity) = raw_get(&url, &[("Accept-Encoding", "identity")]);
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        assert_eq!(header(&head, "content-encoding"), None, "{path}: {head}");
        assert!(!identity.is_empty());
        let plain_etag = header(&head, "etag").expect("an ETag");
        let before = feed_queries(&stack);
        let mut etags = vec![plain_etag.clone()];
        for (coding, accept) in [
            ("gzip", "gzip"),
            ("br", "br"),
            ("br", "gzip, deflate, br"),
            ("gzip", "br;q=0.5, gzip"),
        ] {
            let what = format!("{path} with Accept-Encoding: {accept}");
            let (head, body) = raw_get(&url, &[("Accept-Encoding", accept)]);
            assert!(head.starts_with("HTTP/1.1 200"), "{what}: {head}");
            assert_eq!(
                header(&head, "content-encoding").as_deref(),
                Some(coding),
                "{what}: {head}"
            );
            assert_eq!(
                header(&head, "vary").map(|v| v.to_ascii_lowercase()),
                Some("accept-encoding".to_string())
            );
            assert_eq!(
                header(&head, "content-length"),
                Some(body.len().to_string()),
                "{what}"
            );
            assert_eq!(decompress(coding, &body), identity, "{what}: decompressed");
            assert!(
                body.len() < identity.len() / 2,
                "{what}: {} bytes",
                body.len()
            );
            let etag = header(&head, "etag").expect("an ETag");
            assert!(
                etag.starts_with("W/\"") && etag.ends_with(&format!("-{}\"", &coding[..2])),
                "{what}: {etag}"
            );
            assert_ne!(etag, plain_etag, "{what}");
            etags.push(etag.clone());
            // The second answer is the same cached bytes.
            let (_, again) = raw_get(&url, &[("Accept-Encoding", accept)]);
            assert_eq!(again, body, "{what}: a second request");
            let (head, body) = raw_get(
                &url,
                &[("Accept-Encoding", accept), ("If-None-Match", &etag)],
            );
            assert!(
                head.starts_with("HTTP/1.1 304"),
                "{what}, If-None-Match: {head}"
            );
            assert!(body.is_empty(), "{what}: a 304 has no body");
            assert_eq!(header(&head, "etag"), Some(etag.clone()));
            let (head, _) = raw_get(
                &url,
                &[("Accept-Encoding", accept), ("If-None-Match", &plain_etag)],
            );
            assert!(
                head.starts_with("HTTP/1.1 200"),
                "{what}, the identity ETag: {head}"
            );
        }
        etags.sort();
        etags.dedup();
        assert_eq!(etags.len(), 3, "{path}: one ETag per coding: {etags:?}");
        assert_eq!(
            feed_queries(&stack),
            before,
            "{path}: a cached answer ran a query"
        );
    }
}

fn decompress(coding: &str, body: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match coding {
        "gzip" => flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .expect("valid gzip"),
        _ => brotli::Decompressor::new(body, 4096)
            .read_to_end(&mut out)
            .expect("valid brotli"),
    };
    out
}

/// The value of header `name` in a response head.
fn header(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// The status line and headers of a GET sent with `Accept-Encoding: encoding`.
fn raw_get_head(url: &str, encoding: &str) -> String {
    raw_get(url, &[("Accept-Encoding", encoding)]).0
}

/// A GET over a fresh connection with exactly `headers` (and Host): the response head and the
/// body's bytes as sent (no decompression).
fn raw_get(url: &str, headers: &[(&str, &str)]) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let url = url::Url::parse(url).expect("a URL");
    let addr = format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port().unwrap_or(80)
    );
    let mut stream = std::net::TcpStream::connect(addr).expect("connecting");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("a timeout");
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let mut request = format!(
        "GET {target} HTTP/1.1\r\nHost: {}\r\n",
        url.host_str().unwrap_or("")
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("sending");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..end]).into_owned();
    let body = response.get(end + 4..).unwrap_or_default().to_vec();
    (head, body)
}

/// Chinese full-text search: `?q=碳中和` and `tributary search 碳中和` find the article that
/// mentions it, and only that one; two-character terms work too, and a longer term matches
/// only as a whole.
#[test]
fn chinese_search_finds_the_article() {
    let server = FixtureServer::start();
    let feed = r#"<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>
        <title>中证网</title><link>https://www.cs.com.cn/</link><description>d</description>
        <item><title>中证协发布证券行业助力碳达峰碳中和行动报告</title>
          <link>https://www.cs.com.cn/xwzx/hg/202110/t20211021_6212345.html</link>
          <guid isPermaLink="false">seed-1</guid><pubDate>Thu, 21 Oct 2021 21:49:00 +0800</pubDate>
          <description>协会在金融街论坛年会上发布报告，总结证券行业服务绿色发展的实践。</description></item>
        <item><title>央行开展逆回购操作</title>
          <link>https://www.cs.com.cn/xwzx/hg/202110/t20211021_6212346.html</link>
          <guid isPermaLink="false">seed-2</guid><pubDate>Thu, 21 Oct 2021 09:30:00 +0800</pubDate>
          <description>人民银行以利率招标方式开展逆回购操作，保持流动性合理充裕。</description></item>
        <item><title>市场观察</title>
          <link>https://www.cs.com.cn/xwzx/hg/202110/t20211021_6212347.html</link>
          <guid isPermaLink="false">seed-3</guid><pubDate>Thu, 21 Oct 2021 08:00:00 +0800</pubDate>
          <description>流动性一般；灵动性合作；个性合理化。</description></item>
        </channel></rss>"#;
    server.set("/seed.xml", feed);
    let dir = tempfile::tempdir().expect("temp dir");
    let listen = free_addr();
    let config = write_config(
        dir.path(),
        listen,
        &[Source::new(
            "cs-seed",
            "中证网",
            &server.url("/seed.xml"),
            FINANCE,
        )],
    );
    let (code, stdout, stderr) = run_fetch(&config, &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    let titles = |q: &str| -> Vec<String> {
        let body = http_get(&serve.url(&format!("/feeds/all.json?q={}", pct(q)))).body;
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON Feed");
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["title"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        titles("碳中和"),
        vec!["中证协发布证券行业助力碳达峰碳中和行动报告"]
    );
    assert_eq!(titles("央行"), vec!["央行开展逆回购操作"]);
    assert_eq!(titles("流动性 逆回购"), vec!["央行开展逆回购操作"]);
    // The third item holds every trigram of 流动性合理, but not the phrase: the index only
    // narrows, the text decides.
    assert_eq!(titles("流动性合理"), vec!["央行开展逆回购操作"]);
    assert!(titles("碳中和 逆回购").is_empty());

    let mut cmd = tributary_command(&config);
    cmd.args(["search", "碳中和"]);
    let (code, stdout, _) = run_bounded(cmd, std::time::Duration::from_secs(30));
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("碳达峰碳中和"), "{stdout}");
    assert!(!stdout.contains("逆回购"), "{stdout}");
}
