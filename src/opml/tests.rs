use super::*;

fn config(text: &str) -> Config {
    Config::from_toml(Path::new("/etc/tributary/t.toml"), text).unwrap()
}

const SOURCES: &str = r#"
    [[sources]]
    id = "a"
    name = "A & <B> \"quoted\""
    url = "https://example.com/feed.xml?x=1&y=2"
    category = "金融"
    tags = ["资讯", "daily"]

    [[sources]]
    id = "page"
    name = "Page"
    url = "https://example.org/list/"
    category = "金融"
    kind = "html"
    [sources.html]
    item = "li"

    [[sources]]
    id = "t"
    name = "Tech"
    url = "https://example.org/atom"
    category = "tech"
    enabled = false
"#;

#[test]
fn export_escapes_nests_and_marks_page_sources() {
    let c = config(SOURCES);
    let (text, notes) = export_sources(&c.sources, Utc::now());
    assert!(notes.is_empty(), "{notes:?}");
    assert!(
        text.contains(r#"text="A &amp; &lt;B&gt; &quot;quoted&quot;""#),
        "{text}"
    );
    assert!(
        text.contains(r#"xmlUrl="https://example.com/feed.xml?x=1&amp;y=2""#),
        "{text}"
    );
    assert!(text.contains(r#"category="资讯,daily""#), "{text}");
    assert!(text.contains(r#"type="link" url="https://example.org/list/""#));
    assert!(text.contains("disabled in tributary"));
    let read = read(&text).unwrap();
    assert_eq!(read.len(), 3);
    assert_eq!(read[0].name, "A & <B> \"quoted\"");
    assert_eq!(read[0].url, "https://example.com/feed.xml?x=1&y=2");
    assert_eq!(read[0].folder.as_deref(), Some("金融"));
    assert_eq!(read[0].tags, ["资讯", "daily"]);
    assert_eq!(read[1].kind, "link");
    assert_eq!(read[2].folder.as_deref(), Some("tech"));
}

#[test]
fn feed_list_encodes_names_as_one_segment() {
    let base = Url::parse("https://example.org/news/").unwrap();
    let cats = BTreeSet::from(["金融".to_string(), "a/b ?#%".to_string()]);
    let tags = BTreeSet::from(["x&y".to_string()]);
    let text = feed_list(&base, &cats, &tags, Utc::now());
    let urls: Vec<String> = read(&text).unwrap().into_iter().map(|s| s.url).collect();
    assert_eq!(
        urls,
        [
            "https://example.org/news/feeds/all.atom",
            "https://example.org/news/feeds/a%2Fb%20%3F%23%25.atom",
            "https://example.org/news/feeds/%E9%87%91%E8%9E%8D.atom",
            "https://example.org/news/tags/x&y.atom",
        ]
    );
}

#[test]
fn reading_is_lenient() {
    let text = r#"<?xml version="1.0"?>
        <OPML version="1.0"><body>
          <outline title="Outer"><outline TEXT="Inner">
            <outline type="RSS" title="One" XMLURL="http://example.org/a&b"/>
          </outline>
          <outline text="Two" xmlurl="https://example.org/2" category="/News/World,t1, t2 ,t1"/>
          </outline>
          <outline text="Top" xmlUrl="https://example.org/top"/>
          <outline text="Folder without feeds"/>
        </body></OPML>"#;
    let subs = read(text).unwrap();
    assert_eq!(subs.len(), 3);
    assert_eq!(subs[0].url, "http://example.org/a&b");
    assert_eq!(subs[0].kind, "rss");
    assert_eq!(subs[0].folder.as_deref(), Some("Inner"));
    assert_eq!(subs[1].folder.as_deref(), Some("Outer"));
    assert_eq!(subs[1].tags, ["t1", "t2"]);
    assert_eq!(subs[1].category_path.as_deref(), Some("World"));
    assert_eq!(subs[2].folder, None);
    assert!(read("<rss/>").unwrap_err().contains("<rss>"));
    assert!(read("<opml><body><outline></body></opml>").is_err());
    assert_eq!(
        lenient_unescape("a&amp;b&c&#x41;&#66;&nbsp;"),
        "a&b&cAB&nbsp;"
    );
}

#[test]
fn plan_skips_known_urls_and_makes_unique_ids() {
    let c = config(SOURCES);
    let sub = |name: &str, url: &str, kind: &str, folder: Option<&str>| Subscription {
        name: name.into(),
        url: url.into(),
        kind: kind.into(),
        folder: folder.map(str::to_string),
        tags: Vec::new(),
        category_path: None,
    };
    let reserved = HashSet::from(["tech-news".to_string()]);
    let report = plan(
        &[
            sub("Dup", "http://EXAMPLE.org/atom/", "rss", None),
            sub(
                "Tech News",
                "https://news.example.org/rss",
                "",
                Some("tech"),
            ),
            sub("Tech News", "https://other.example.org/rss", "", None),
            sub("Again", "https://news.example.org/rss#x", "", None),
            sub(
                "财新",
                "feed://www.caixin.example.com/rss",
                "atom",
                Some("all"),
            ),
            sub("Scraped", "https://example.org/page", "html+xpath", None),
            sub("Mail", "mailto:x@example.org", "", None),
        ],
        &c.sources,
        &reserved,
    );
    let added: Vec<(&str, &str, &str)> = report
        .added
        .iter()
        .map(|a| (a.id.as_str(), a.url.as_str(), a.category.as_str()))
        .collect();
    assert_eq!(
        added,
        [
            ("tech-news-2", "https://news.example.org/rss", "tech"),
            ("tech-news-3", "https://other.example.org/rss", "imported"),
            (
                "caixin-example-com",
                "http://www.caixin.example.com/rss",
                "imported"
            ),
        ]
    );
    let why: Vec<&str> = report.skipped.iter().map(|s| s.why.as_str()).collect();
    assert!(why[0].contains("\"t\""), "{why:?}");
    assert!(why[1].contains("earlier"), "{why:?}");
    assert!(why[2].contains("html+xpath"), "{why:?}");
    assert!(why[3].contains("http(s)"), "{why:?}");
}

#[test]
fn appended_tables_load_and_keep_the_file() {
    let added = [NewSource {
        id: "x".into(),
        name: "Quote \" and \\ and\nnewline".into(),
        url: "https://example.org/feed".into(),
        category: "c".into(),
        tags: vec!["t".into()],
    }];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tributary.toml");
    std::fs::write(&path, SOURCES).unwrap();
    let c = crate::config_edit::append_sources(&path, &added, "from evil\nname.opml").unwrap();
    let s = c.source("x").unwrap();
    assert_eq!(s.name, "Quote \" and \\ and\nnewline");
    assert_eq!(s.tags, ["t"]);
    assert!(std::fs::read_to_string(&path).unwrap().starts_with(SOURCES));
}
