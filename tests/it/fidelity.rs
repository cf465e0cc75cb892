//! What comes in is what goes out: each field a feed gives reaches the readers of every output
//! format, and a story several sources carry is one item in merged feeds while each source's
//! own feed keeps its own words. Each test fetches with the real binary from a fixture server
//! on 127.0.0.1, then reads what `serve` publishes (every document it serves is also checked
//! to be well-formed, by the shared helpers).

use std::collections::HashMap;
use std::path::PathBuf;

use crate::common::*;
use serde_json::Value;

/// A source of a test: its id, the body its feed serves, and extra lines for its table.
struct Feed<'a> {
    id: &'a str,
    body: Vec<u8>,
    extra: &'a str,
}

fn feed<'a>(id: &'a str, body: impl Into<Vec<u8>>) -> Feed<'a> {
    Feed {
        id,
        body: body.into(),
        extra: "",
    }
}

/// Fixture server, config and store for some feeds; nothing fetched yet.
struct Setup {
    _fixtures: FixtureServer,
    _dir: tempfile::TempDir,
    config: PathBuf,
}

fn setup(feeds: &[Feed<'_>], defaults: &str) -> Setup {
    let files: HashMap<String, Vec<u8>> = feeds
        .iter()
        .map(|f| (format!("/{}.xml", f.id), f.body.clone()))
        .collect();
    let fixtures = FixtureServer::start_with_files(files);
    let dir = tempfile::tempdir().expect("a temp folder");
    let sources: Vec<Source> = feeds
        .iter()
        .map(|f| {
            Source::new(
                f.id,
                &format!("Source {}", f.id),
                &fixtures.url(&format!("/{}.xml", f.id)),
                "news",
            )
        })
        .collect();
    let mut text = config_text(free_addr(), "tributary.db", &sources);
    text = text.replace("[defaults]\n", &format!("[defaults]\n{defaults}"));
    for f in feeds.iter().filter(|f| !f.extra.is_empty()) {
        let table = format!("id = \"{}\"\n", f.id);
        text = text.replace(&table, &format!("{table}{}\n", f.extra));
    }
    let config = write_config_text(dir.path(), &text);
    Setup {
        _fixtures: fixtures,
        _dir: dir,
        config,
    }
}

impl Setup {
    fn fetch(&self, ids: &[&str]) {
        let (code, out, err) = run_fetch(&self.config, ids);
        assert_eq!(code, 0, "fetch {ids:?}:\n{out}\n{err}");
    }

    fn serve(&self) -> ServeGuard {
        let text = std::fs::read_to_string(&self.config).expect("the config");
        let listen: std::net::SocketAddr = text
            .lines()
            .find_map(|l| l.strip_prefix("listen = "))
            .and_then(|v| v.trim_matches('"').parse().ok())
            .expect("the config's listen address");
        let mut serve = spawn_serve(&self.config, listen);
        serve.wait_healthz();
        serve
    }
}

/// Fetches every feed once and serves them.
fn published(feeds: &[Feed<'_>], defaults: &str) -> (Setup, ServeGuard) {
    let s = setup(feeds, defaults);
    s.fetch(&[]);
    let serve = s.serve();
    (s, serve)
}

fn items(serve: &ServeGuard, path: &str) -> Vec<Value> {
    let r = http_get(&serve.url(path));
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    let doc: Value = serde_json::from_str(&r.body).expect("JSON Feed");
    doc["items"].as_array().cloned().unwrap_or_default()
}

fn body(serve: &ServeGuard, path: &str) -> String {
    let r = http_get(&serve.url(path));
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.body
}

fn by_title<'a>(items: &'a [Value], title: &str) -> &'a Value {
    items
        .iter()
        .find(|i| i["title"] == title)
        .unwrap_or_else(|| panic!("no item {title:?} in {items:#?}"))
}

fn authors(item: &Value) -> Vec<String> {
    item["authors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn rss(items: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rss version=\"2.0\" \
         xmlns:dc=\"http://purl.org/dc/elements/1.1/\" \
         xmlns:dcterms=\"http://purl.org/dc/terms/\" \
         xmlns:content=\"http://purl.org/rss/1.0/modules/content/\">\
         <channel><title>t</title><link>https://example.org/</link>{items}</channel></rss>"
    )
}

#[test]
fn rss_authors_are_the_names_written() {
    let (_s, serve) = published(
        &[
            feed(
                "a",
                rss("<item><title>one</title><link>https://a.example/1</link>\
                     <author>李明</author></item>\
                     <item><title>two</title><link>https://a.example/2</link>\
                     <author>jane@example.com (Jane Doe)</author></item>\
                     <item><title>three</title><link>https://a.example/3</link></item>"),
            ),
            feed(
                "b",
                "<feed version=\"0.3\" xmlns=\"http://purl.org/atom/ns#\" \
                 xmlns:dc=\"http://purl.org/dc/elements/1.1/\"><title>b</title>\
                 <entry><title>four</title><link rel=\"alternate\" href=\"https://b.example/4\"/>\
                 <id>tag:b.example,2004:4</id><dc:creator>王芳</dc:creator>\
                 <issued>2004-01-05T10:00:00Z</issued></entry></feed>",
            ),
        ],
        "",
    );
    let a = items(&serve, "/sources/a.json");
    assert_eq!(authors(by_title(&a, "one")), ["李明"]);
    assert_eq!(authors(by_title(&a, "two")), ["Jane Doe"]);
    // No author is claimed where the feed named none; the source is named as the source.
    let three = by_title(&a, "three");
    assert_eq!(three.get("authors"), None, "{three}");
    assert_eq!(three["_tributary"]["sources"][0]["name"], "Source a");
    assert_eq!(
        authors(by_title(&items(&serve, "/sources/b.json"), "four")),
        ["王芳"]
    );

    let atom = body(&serve, "/sources/a.atom");
    assert!(atom.contains("<name>李明</name>") && atom.contains("<name>Jane Doe</name>"));
    assert!(!atom.contains("<name>author</name>"), "{atom}");
    let rss_out = body(&serve, "/sources/a.rss");
    assert!(
        rss_out.contains("<dc:creator>李明</dc:creator>"),
        "{rss_out}"
    );
    assert!(
        !rss_out.contains("<dc:creator>author</dc:creator>"),
        "{rss_out}"
    );
    assert!(
        !rss_out.contains("<dc:creator>Source a</dc:creator>"),
        "{rss_out}"
    );
}

#[test]
fn dates_in_any_shape_are_read_in_the_sources_zone() {
    let feeds = [
        Feed {
            extra: "timezone = \"Asia/Shanghai\"",
            ..feed(
                "cn",
                rss(
                    "<item><title>slashes</title><link>https://cn.example/1</link>\
                     <pubDate>2020/1/10 14:33:00</pubDate></item>\
                     <item><title>iso</title><link>https://cn.example/2</link>\
                     <pubDate>2026-03-02 08:00:00</pubDate></item>\
                     <item><title>issued</title><link>https://cn.example/3</link>\
                     <dcterms:issued>2021年10月21日 21:49</dcterms:issued></item>\
                     <item><title>zoned</title><link>https://cn.example/4</link>\
                     <dc:date>2021-10-21T21:49:00+00:00</dc:date></item>",
                ),
            )
        },
        // No zone of its own: [defaults] timezone applies.
        feed(
            "dflt",
            rss(
                "<item><title>default zone</title><link>https://d.example/1</link>\
                 <pubDate>2024-05-06 07:08</pubDate></item>",
            ),
        ),
    ];
    let (s, serve) = published(&feeds, "timezone = \"Asia/Tokyo\"\n");
    let cn = items(&serve, "/sources/cn.json");
    let date = |items: &[Value], t: &str| by_title(items, t)["date_published"].clone();
    assert_eq!(date(&cn, "slashes"), "2020-01-10T06:33:00+00:00");
    assert_eq!(date(&cn, "iso"), "2026-03-02T00:00:00+00:00");
    assert_eq!(date(&cn, "issued"), "2021-10-21T13:49:00+00:00");
    assert_eq!(date(&cn, "zoned"), "2021-10-21T21:49:00+00:00");
    let d = items(&serve, "/sources/dflt.json");
    assert_eq!(date(&d, "default zone"), "2024-05-05T22:08:00+00:00");
    // Old posts stay below new ones in the merged feed.
    let all = items(&serve, "/feeds/all.json");
    let titles: Vec<&str> = all.iter().filter_map(|i| i["title"].as_str()).collect();
    assert_eq!(titles.last(), Some(&"slashes"), "{titles:?}");

    // `check` says which element and which format each date came from.
    let mut cmd = tributary_command(&s.config);
    cmd.args(["check", "cn"]);
    let (code, out, err) = run_bounded(cmd, std::time::Duration::from_secs(60));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("from feed: pubDate, YYYY/M/D"), "{out}");
    assert!(out.contains("from feed: dcterms:issued, 年月日"), "{out}");
    assert!(out.contains("from feed: dc:date, ISO 8601"), "{out}");
}

#[test]
fn rss_090_feeds_are_read() {
    // A real news site's RSS 0.90 feed (Miniflux's test data): feedparser reads 60 items.
    let real = std::fs::read(shared_file("feed-corpus/miniflux/parser/rdf_UTF8.xml"))
        .expect("the shared corpus (bash .ci/run sets $TRIBUTARY_SHARED)");
    let (_s, serve) = published(&[feed("rdf", real)], "");
    let got = items(&serve, "/sources/rdf.json?limit=100");
    assert_eq!(got.len(), 60);
    assert!(got
        .iter()
        .all(|i| i["url"].as_str().is_some_and(|u| u.starts_with("http"))));
}

#[test]
fn permalink_guids_are_the_items_links() {
    // As in the RSS 2.0 specification's sample: guids that are permalinks, no <link>.
    let (_s, serve) = published(
        &[feed(
            "spec",
            rss("<item><title>Star City</title>\
                 <guid>http://liftoff.msfc.nasa.gov/2003/06/03.html#item573</guid></item>\
                 <item><title>Sky watchers</title>\
                 <guid isPermaLink=\"true\">http://liftoff.msfc.nasa.gov/2003/05/30.html#item572</guid></item>\
                 <item><title>Not a link</title>\
                 <guid isPermaLink=\"false\">http://liftoff.msfc.nasa.gov/2003/05/27.html#item571</guid></item>"),
        )],
        "",
    );
    let got = items(&serve, "/sources/spec.json");
    assert_eq!(
        by_title(&got, "Star City")["url"],
        "http://liftoff.msfc.nasa.gov/2003/06/03.html#item573"
    );
    assert_eq!(
        by_title(&got, "Sky watchers")["url"],
        "http://liftoff.msfc.nasa.gov/2003/05/30.html#item572"
    );
    assert_eq!(by_title(&got, "Not a link").get("url"), None);
    let out = body(&serve, "/sources/spec.rss");
    assert!(
        out.contains(
            "<guid isPermaLink=\"true\">http://liftoff.msfc.nasa.gov/2003/06/03.html#item573</guid>"
        ) || out.contains("<guid>http://liftoff.msfc.nasa.gov/2003/06/03.html#item573</guid>"),
        "{out}"
    );
}

#[test]
fn one_odd_attribute_costs_a_field_never_the_feed() {
    let (_s, serve) = published(
        &[feed(
            "odd",
            "<feed xmlns=\"http://www.w3.org/2005/Atom\" \
             xmlns:media=\"http://search.yahoo.com/mrss/\"><title>odd</title>\
             <rights type=\"application/pdf\">x</rights>\
             <entry><id>https://odd.example/1</id><title>first</title>\
             <media:title type=\"text/html\">media</media:title>\
             <updated>2024-01-01T00:00:00Z</updated></entry>\
             <entry><id>https://odd.example/2</id><title>second</title>\
             <summary type=\"application/octet-stream\">@@not base64@@</summary>\
             <updated>2024-01-02T00:00:00Z</updated></entry></feed>",
        )],
        "",
    );
    let got = items(&serve, "/sources/odd.json");
    let titles: Vec<&str> = got.iter().filter_map(|i| i["title"].as_str()).collect();
    assert_eq!(titles, ["second", "first"]);
}

#[test]
fn control_characters_never_reach_the_output() {
    let (_s, serve) = published(
        &[feed(
            "ctl",
            rss(
                "<item><title>bad\u{1a} title\u{1}</title><link>https://ctl.example/1</link>\
                 <description>text\u{1b} with \u{8}controls\u{85}</description></item>",
            ),
        )],
        "",
    );
    for path in [
        "/sources/ctl.rss",
        "/sources/ctl.atom",
        "/feeds/news.rss",
        "/feeds/all.atom",
    ] {
        let doc = body(&serve, path);
        roxmltree::Document::parse(&doc).unwrap_or_else(|e| panic!("{path}: {e}\n{doc}"));
        assert!(
            !doc.contains(['\u{1a}', '\u{1}', '\u{1b}', '\u{8}', '\u{85}']),
            "{doc}"
        );
    }
    assert_eq!(items(&serve, "/sources/ctl.json")[0]["title"], "bad title");
}

#[test]
fn an_entrys_link_is_its_page() {
    let (_s, serve) = published(
        &[feed(
            "links",
            "<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>l</title>\
             <entry><id>tag:l.example,2024:1</id><title>podcast</title>\
             <link rel=\"enclosure\" type=\"audio/mpeg\" href=\"https://l.example/1.mp3\"/>\
             <updated>2024-01-01T00:00:00Z</updated></entry>\
             <entry><id>tag:l.example,2024:2</id><title>paper</title>\
             <link rel=\"alternate\" type=\"application/pdf\" href=\"https://l.example/2.pdf\"/>\
             <link rel=\"alternate\" type=\"text/html\" href=\"https://l.example/2.html\"/>\
             <updated>2024-01-02T00:00:00Z</updated></entry></feed>",
        )],
        "",
    );
    let got = items(&serve, "/sources/links.json");
    assert_eq!(by_title(&got, "podcast").get("url"), None);
    assert_eq!(by_title(&got, "paper")["url"], "https://l.example/2.html");
}

/// One item per source, all with the same link unless `link` says otherwise.
fn one_item(title: &str, link: &str, extra: &str) -> String {
    rss(&format!(
        "<item><title>{title}</title><link>{link}</link>\
         <pubDate>Mon, 01 Jan 2024 08:00:00 GMT</pubDate>{extra}</item>"
    ))
}

#[test]
fn each_sources_feed_shows_its_own_words() {
    let (_s, serve) = published(
        &[
            feed("a", one_item("A's title", "https://n.example/story", "")),
            feed("b", one_item("B's title", "https://n.example/story", "")),
            // A fragment names a part of the page: two items, not one.
            feed("c", one_item("Age", "https://n.example/page.html#age", "")),
            feed(
                "d",
                one_item("Agent", "https://n.example/page.html#agent", ""),
            ),
        ],
        "",
    );
    assert_eq!(items(&serve, "/sources/a.json")[0]["title"], "A's title");
    assert_eq!(items(&serve, "/sources/b.json")[0]["title"], "B's title");
    assert_eq!(items(&serve, "/sources/c.json")[0]["title"], "Age");
    assert_eq!(items(&serve, "/sources/d.json")[0]["title"], "Agent");
    let merged = items(&serve, "/feeds/news.json");
    let titles: Vec<&str> = merged.iter().filter_map(|i| i["title"].as_str()).collect();
    assert_eq!(titles.len(), 3, "{titles:?}");
    let story = merged
        .iter()
        .find(|i| i["url"] == "https://n.example/story")
        .expect("the shared story");
    let names: Vec<&str> = story["_tributary"]["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn also_reported_by_names_the_others_and_stays_short() {
    let ids = ["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"];
    let feeds: Vec<Feed<'_>> = ids
        .iter()
        .map(|id| {
            feed(
                id,
                one_item(&format!("{id} says"), "https://w.example/big", ""),
            )
        })
        .collect();
    let (_s, serve) = published(&feeds, "");
    let html = items(&serve, "/sources/s3.json")[0]["content_html"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let also = html
        .split("Also reported by: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no line naming the others: {html}"));
    assert!(
        !also.contains("Source s3"),
        "a source's feed names itself: {also}"
    );
    let named = also.matches("Source s").count();
    assert_eq!(named, 5, "{also}");
    assert!(also.contains(" and 2 more"), "{also}");
}

#[test]
fn tracking_parameters_do_not_survive_a_merge() {
    let s = setup(
        &[
            feed(
                "copy",
                one_item(
                    "story",
                    "https://t.example/a?id=7&amp;utm_source=rss&amp;utm_medium=feed",
                    "",
                ),
            ),
            feed("orig", one_item("story", "https://t.example/a?id=7", "")),
        ],
        "",
    );
    // The republished copy is stored first.
    s.fetch(&["copy"]);
    s.fetch(&["orig"]);
    let serve = s.serve();
    let merged = items(&serve, "/feeds/news.json");
    assert_eq!(merged.len(), 1, "{merged:#?}");
    assert_eq!(merged[0]["url"], "https://t.example/a?id=7");
    assert_eq!(
        items(&serve, "/sources/copy.json")[0]["url"],
        "https://t.example/a?id=7"
    );
}

/// The merged item of a story one source lists bare (no text, no author, a zone-less date
/// read in UTC) and another in full (text, author, the same time in its own zone), after
/// fetching them in `order`.
fn merged_story(order: &[&str]) -> Value {
    let bare = feed(
        "bare",
        rss("<item><title>恒泰股份中标</title>\
             <link>https://www.cs.com.cn/ssgs/gsxw/202012/t20201201_6116388.html</link>\
             <pubDate>2020-12-01 18:59</pubDate></item>"),
    );
    let rich = Feed {
        extra: "timezone = \"Asia/Shanghai\"",
        ..feed(
            "rich",
            rss("<item><title>恒泰股份：全资子公司中标智慧园区项目</title>\
                 <link>https://www.cs.com.cn/ssgs/gsxw/202012/t20201201_6116388.html</link>\
                 <pubDate>2020-12-01 18:59</pubDate><author>王博</author>\
                 <content:encoded><![CDATA[<p>中证网讯（记者 王博）恒泰股份12月1日晚间公告。</p>]]>\
                 </content:encoded></item>"),
        )
    };
    let s = setup(&[bare, rich], "");
    for id in order {
        s.fetch(&[id]);
    }
    let serve = s.serve();
    let merged = items(&serve, "/feeds/news.json");
    assert_eq!(merged.len(), 1, "{merged:#?}");
    let mut item = merged[0].clone();
    // Ids, titles and the source order say who came first; the rest must not.
    for key in ["id", "title", "_tributary"] {
        item.as_object_mut().map(|o| o.remove(key));
    }
    let mut content = item["content_html"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    content.truncate(content.find("<p>Also reported by").unwrap_or(content.len()));
    item["content_html"] = Value::String(content);
    item
}

#[test]
fn the_richer_copy_wins_whatever_the_order() {
    let bare_first = merged_story(&["bare", "rich"]);
    let rich_first = merged_story(&["rich", "bare"]);
    assert_eq!(bare_first, rich_first);
    assert_eq!(bare_first["date_published"], "2020-12-01T10:59:00+00:00");
    assert_eq!(authors(&bare_first), ["王博"]);
    assert!(
        bare_first["content_html"]
            .as_str()
            .is_some_and(|c| c.contains("恒泰股份12月1日晚间公告")),
        "{bare_first:#}"
    );
}

#[test]
fn an_article_that_failed_is_fetched_again_though_its_list_is_unchanged() {
    let list = "<html><body><ul><li><a href=\"/a/1.html\">Story one</a>\
                <em>2024-01-01 08:00</em></li></ul></body></html>";
    let article = "<html><body><article><p>The full text of story one.</p></article>\
                   </body></html>";
    let fixtures = FixtureServer::start_with_files(HashMap::from([
        ("/list.html".to_string(), list.as_bytes().to_vec()),
        ("/a/1.html".to_string(), article.as_bytes().to_vec()),
    ]));
    let dir = tempfile::tempdir().expect("a temp folder");
    let listen = free_addr();
    let text = format!(
        "[server]\nlisten = \"{listen}\"\n[storage]\npath = \"tributary.db\"\n\
         [[sources]]\nid = \"page\"\nname = \"Page\"\nurl = \"{}\"\ncategory = \"news\"\n\
         kind = \"html\"\n[sources.html]\nitem = \"li\"\ndate = \"em\"\n\
         [sources.article]\ncontent = \"article\"\n",
        fixtures.url("/list.html")
    );
    let config = write_config_text(dir.path(), &text);
    fixtures.fail_with("/a/1.html", 500);
    let (code, out, err) = run_fetch(&config, &[]);
    assert_eq!(code, 0, "{out}{err}");
    fixtures.recover("/a/1.html");
    // The list has not changed, and would answer 304 to a conditional poll.
    let (code, out, err) = run_fetch(&config, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let lists = fixtures.hits("/list.html");
    assert_eq!(lists.len(), 2, "{lists:?}");
    assert_eq!(
        lists[1].if_none_match, None,
        "the retry polls the list whole: {lists:?}"
    );
    assert_eq!(fixtures.hits("/a/1.html").len(), 2);
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    let got = items(&serve, "/sources/page.json");
    assert!(
        got[0]["content_html"]
            .as_str()
            .is_some_and(|c| c.contains("The full text of story one.")),
        "{got:#?}"
    );
    // Complete now: the next poll is conditional again.
    let (code, out, err) = run_fetch(&config, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("not modified"), "{out}");
}
