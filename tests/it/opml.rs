//! OPML 2.0 against the real binary: `opml export` → `opml import` into a fresh config gives
//! the same sources (and a second import adds nothing); Miniflux's and FreshRSS's exports
//! (fixtures in `tests/fixtures/opml/`, written for these tests in those readers' shapes) and
//! a nested one import with the right categories; bad input leaves the config untouched; and
//! `GET /opml` from a running daemon lists every served feed with URLs that answer.
//!
//! Documents are read back with quick-xml directly, strictly (every attribute value must
//! unescape), not with tributary's own lenient reader.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use quick_xml::events::Event;
use quick_xml::Reader;
use tributary::config::Config;

use crate::common::*;

const DEADLINE: Duration = Duration::from_secs(30);

/// One outline: the names of the folders around it, and its attributes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Outline {
    folders: Vec<String>,
    attrs: BTreeMap<String, String>,
}

impl Outline {
    fn get(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).map(String::as_str)
    }
}

/// A parsed OPML document: `<head><title>`, whether `<dateCreated>` is there, and every
/// outline that is not a folder. Panics (with the text) on anything that is not well-formed
/// OPML 2.0.
#[derive(Debug)]
struct Opml {
    title: String,
    date_created: bool,
    outlines: Vec<Outline>,
    comments: Vec<String>,
}

fn parse_opml(text: &str) -> Opml {
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    // The text of each open <outline>: the folders around the current position.
    let mut folders: Vec<String> = Vec::new();
    let mut doc = Opml {
        title: String::new(),
        date_created: false,
        outlines: Vec::new(),
        comments: Vec::new(),
    };
    loop {
        let event = reader
            .read_event()
            .unwrap_or_else(|e| panic!("not well-formed XML: {e}\n{text}"));
        let (element, is_folder) = match &event {
            Event::Start(e) => (Some(e), true),
            Event::Empty(e) => (Some(e), false),
            _ => (None, false),
        };
        if let Some(e) = element.filter(|e| e.name().as_ref() == b"outline") {
            assert_eq!(path, ["opml", "body"], "an outline outside <body>\n{text}");
            let attrs: BTreeMap<String, String> = e
                .attributes()
                .map(|a| {
                    let a = a.unwrap_or_else(|e| panic!("bad attribute: {e}\n{text}"));
                    (
                        String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                        a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .unwrap_or_else(|e| panic!("bad attribute value: {e}\n{text}"))
                            .into_owned(),
                    )
                })
                .collect();
            let Some(name) = attrs.get("text").cloned() else {
                panic!("OPML 2.0: every outline has a text attribute: {attrs:?}\n{text}");
            };
            if is_folder {
                folders.push(name);
            } else {
                doc.outlines.push(Outline {
                    folders: folders.clone(),
                    attrs,
                });
            }
            continue;
        }
        match event {
            Event::Start(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                if path.is_empty() {
                    assert_eq!(name, "opml", "root element\n{text}");
                    let version = e
                        .try_get_attribute("version")
                        .unwrap()
                        .map(|a| a.value.into_owned());
                    assert_eq!(version.as_deref(), Some(&b"2.0"[..]), "version\n{text}");
                }
                path.push(name);
            }
            Event::Text(t) if path == ["opml", "head", "title"] => {
                doc.title = t.decode().unwrap().into_owned();
            }
            Event::Text(t) if path == ["opml", "head", "dateCreated"] => {
                let value = t.decode().unwrap().into_owned();
                chrono::DateTime::parse_from_rfc2822(&value)
                    .unwrap_or_else(|e| panic!("dateCreated {value:?} is not RFC 822: {e}"));
                doc.date_created = true;
            }
            Event::Comment(c) => doc.comments.push(c.decode().unwrap().into_owned()),
            Event::End(e) if e.name().as_ref() == b"outline" => {
                folders.pop().expect("an </outline> closes a folder");
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(path.is_empty(), "unclosed elements {path:?}\n{text}");
    doc
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/opml")
        .join(name)
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A feed source for a hand-written config.
struct Feed<'a> {
    id: &'a str,
    name: &'a str,
    url: &'a str,
    category: &'a str,
    tags: &'a [&'a str],
}

fn feed_tables(feeds: &[Feed<'_>]) -> String {
    let mut out = String::new();
    for f in feeds {
        out.push_str(&format!(
            "\n[[sources]]\nid = {}\nname = {}\nurl = {}\ncategory = {}\n",
            toml_str(f.id),
            toml_str(f.name),
            toml_str(f.url),
            toml_str(f.category)
        ));
        if !f.tags.is_empty() {
            let tags: Vec<String> = f.tags.iter().map(|t| toml_str(t)).collect();
            out.push_str(&format!("tags = [{}]\n", tags.join(", ")));
        }
    }
    out
}

/// `tributary --config CONFIG opml ARGS…` → (exit code, stdout, stderr).
fn opml(config: &Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = tributary_command(config);
    cmd.arg("opml").args(args);
    run_bounded(cmd, DEADLINE)
}

fn opml_ok(config: &Path, args: &[&str]) -> String {
    let (code, stdout, stderr) = opml(config, args);
    assert_eq!(
        code, 0,
        "opml {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

/// (url, name, category, tags) of every configured source, sorted.
fn sources_of(config: &Path) -> Vec<(String, String, String, Vec<String>)> {
    let c = Config::load(config).unwrap_or_else(|e| panic!("{e}"));
    let mut all: Vec<_> = c
        .sources
        .iter()
        .map(|s| {
            (
                s.url.to_string(),
                s.name.clone(),
                s.category.clone(),
                s.tags.clone(),
            )
        })
        .collect();
    all.sort();
    all
}

/// (id, category) by name.
fn ids_and_categories(config: &Path) -> BTreeMap<String, (String, String)> {
    let c = Config::load(config).unwrap_or_else(|e| panic!("{e}"));
    c.sources
        .iter()
        .map(|s| (s.name.clone(), (s.id.clone(), s.category.clone())))
        .collect()
}

const FRESH: &str = "# a config with no sources yet\n[storage]\npath = \"fresh.db\"";

#[test]
fn export_then_import_into_a_fresh_config_gives_the_same_sources() {
    let dir = tempfile::tempdir().unwrap();
    let feeds = [
        Feed {
            id: "wire-cn",
            name: "新华社·快讯",
            url: "https://wire.example.com/rss?channel=快讯&lang=zh",
            category: "金融",
            tags: &["资讯", "快讯"],
        },
        Feed {
            id: "ft",
            name: "FT & Markets <Asia>",
            url: "https://markets.example.com/feed.xml",
            category: "金融",
            tags: &["markets"],
        },
        Feed {
            id: "bank",
            name: "央行 \"公告\"",
            url: "https://bank.example.org/atom",
            category: "金融",
            tags: &[],
        },
        Feed {
            id: "tech-blog",
            name: "Example Tech Blog",
            url: "https://blog.example.org/feed/",
            category: "Tech & Science",
            tags: &["blogs"],
        },
        Feed {
            id: "hn",
            name: "Hacker News: Front Page",
            url: "http://news.example.org/rss",
            category: "Tech & Science",
            tags: &[],
        },
    ];
    let page = "\n[[sources]]\nid = \"cs-hg\"\nname = \"中证网·财经要闻\"\n\
                url = \"https://www.example.com/xwzx/hg/\"\ncategory = \"金融\"\nkind = \"html\"\n\
                [sources.html]\nitem = \"ul > li\"\n";
    let original = write_config_text(
        &dir.path().join("a"),
        &format!("[storage]\npath = \"a.db\"\n{}{page}", feed_tables(&feeds)),
    );
    let exported = dir.path().join("sources.opml");
    let said = opml_ok(&original, &["export", "--out", exported.to_str().unwrap()]);
    assert!(said.contains("wrote 6 sources"), "{said}");
    let text = fs::read_to_string(&exported).unwrap();
    // Standard output carries the same document.
    let without_date = |t: &str| {
        t.lines()
            .filter(|l| !l.contains("<dateCreated>"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        without_date(&opml_ok(&original, &["export"])),
        without_date(&text)
    );

    let doc = parse_opml(&text);
    assert!(doc.date_created && !doc.title.is_empty(), "{doc:?}");
    let feeds_out: Vec<&Outline> = doc
        .outlines
        .iter()
        .filter(|o| o.get("type") == Some("rss"))
        .collect();
    assert_eq!(feeds_out.len(), 5, "{text}");
    for f in &feeds {
        let o = feeds_out
            .iter()
            .find(|o| o.get("text") == Some(f.name))
            .unwrap_or_else(|| panic!("no outline for {:?}\n{text}", f.name));
        assert_eq!(o.folders, [f.category], "{text}");
        assert_eq!(o.get("title"), Some(f.name));
        assert_eq!(
            o.get("xmlUrl").map(|u| url::Url::parse(u).unwrap()),
            Some(url::Url::parse(f.url).unwrap())
        );
        assert_eq!(
            o.get("category").unwrap_or_default(),
            f.tags.join(","),
            "{text}"
        );
        assert_eq!(o.get("htmlUrl"), None, "no home page is known: {text}");
    }
    // The page source is a link, said to be one.
    let link = doc
        .outlines
        .iter()
        .find(|o| o.get("type") == Some("link"))
        .unwrap_or_else(|| panic!("no link outline\n{text}"));
    assert_eq!(link.get("url"), Some("https://www.example.com/xwzx/hg/"));
    assert!(doc.comments.iter().any(|c| c.contains("cs-hg")), "{text}");

    // Into a config with no sources.
    let fresh = write_config_text(&dir.path().join("b"), FRESH);
    let said = opml_ok(&fresh, &["import", exported.to_str().unwrap()]);
    assert!(said.contains("5 added, 1 skipped"), "{said}");
    assert!(said.contains("not a feed"), "{said}");
    let after = fs::read_to_string(&fresh).unwrap();
    assert!(
        after.starts_with(FRESH),
        "the existing text must stay as it was:\n{after}"
    );
    let mut expected: Vec<(String, String, String, Vec<String>)> = sources_of(&original)
        .into_iter()
        .filter(|s| s.0 != "https://www.example.com/xwzx/hg/")
        .collect();
    expected.sort();
    assert_eq!(sources_of(&fresh), expected);

    // Once more: nothing new, not a byte changed.
    let said = opml_ok(&fresh, &["import", exported.to_str().unwrap()]);
    assert!(said.contains("nothing added"), "{said}");
    assert!(said.contains("already configured"), "{said}");
    assert_eq!(fs::read_to_string(&fresh).unwrap(), after);

    // And the imported config exports the same feeds.
    let again = parse_opml(&opml_ok(&fresh, &["export"]));
    let strip = |doc: &Opml| -> BTreeSet<Outline> {
        doc.outlines
            .iter()
            .filter(|o| o.get("type") == Some("rss"))
            .cloned()
            .collect()
    };
    assert_eq!(strip(&again), strip(&doc));
}

#[test]
fn a_miniflux_export_imports_by_category() {
    let dir = tempfile::tempdir().unwrap();
    // "markets-daily" was configured once: the database still has it (and its entries), so an
    // imported source must not take its id.
    let before = feed_tables(&[Feed {
        id: "markets-daily",
        name: "Old Markets Daily",
        url: "https://old.example.org/markets.xml",
        category: "old",
        tags: &[],
    }]);
    let config = write_config_text(
        &dir.path().join("c"),
        &format!("[storage]\npath = \"c.db\"\n{before}"),
    );
    let mut cmd = tributary_command(&config);
    cmd.arg("sources");
    let (code, _, stderr) = run_bounded(cmd, DEADLINE);
    assert_eq!(code, 0, "{stderr}");
    // Now the config has one other source, the engineering blog by another spelling.
    let existing = "# hand-written\n[storage]\npath = \"c.db\"\n\n[[sources]]\nid = \"eng\"\n\
                    name = \"Engineering\"\nurl = \"http://Engineering.Example.com/feed.xml\"\n\
                    category = \"tech\"\n";
    fs::write(&config, existing).unwrap();

    let said = opml_ok(
        &config,
        &["import", fixture("miniflux.opml").to_str().unwrap()],
    );
    assert!(said.contains("4 added, 1 skipped"), "{said}");
    assert!(
        said.contains("skipped Example Engineering Blog <https://engineering.example.com/feed.xml>: already configured as source \"eng\""),
        "{said}"
    );
    assert!(fs::read_to_string(&config).unwrap().starts_with(existing));
    let got = ids_and_categories(&config);
    let want: BTreeMap<String, (String, String)> = [
        ("Engineering", "eng", "tech"),
        // Miniflux's default category "All" is no category here: all is every source's feed.
        ("Field Notes", "field-notes", "imported"),
        ("Markets Daily", "markets-daily-2", "Finance & Markets"),
        ("央行公告", "bank-example-org", "Finance & Markets"),
        ("Tech Wire — Top Stories", "tech-wire-top-stories", "科技"),
    ]
    .into_iter()
    .map(|(n, i, c)| (n.to_string(), (i.to_string(), c.to_string())))
    .collect();
    assert_eq!(got, want);
    let urls: BTreeSet<String> = sources_of(&config).into_iter().map(|s| s.0).collect();
    assert!(
        urls.contains("https://markets.example.org/daily/rss?format=xml&region=asia"),
        "{urls:?}"
    );
}

#[test]
fn a_freshrss_export_imports_by_category() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_text(&dir.path().join("d"), FRESH);
    let said = opml_ok(
        &config,
        &["import", fixture("freshrss.opml").to_str().unwrap()],
    );
    assert!(said.contains("4 added, 1 skipped"), "{said}");
    assert!(
        said.contains("skipped Notices (scraped) <https://www.example.org/notices/>: not a feed"),
        "{said}"
    );
    let got = ids_and_categories(&config);
    let want: BTreeMap<String, (String, String)> = [
        ("Example Blog", "example-blog", "Uncategorized"),
        ("示例新闻 · 要闻", "news-example-org", "新闻"),
        ("Example Wire \"World\"", "example-wire-world", "新闻"),
        ("Example Talk Show", "example-talk-show", "Podcasts"),
    ]
    .into_iter()
    .map(|(n, i, c)| (n.to_string(), (i.to_string(), c.to_string())))
    .collect();
    assert_eq!(got, want);
    let urls: BTreeSet<String> = sources_of(&config).into_iter().map(|s| s.0).collect();
    assert!(
        urls.contains("https://wire.example.org/atom.xml?lang=en&section=world"),
        "{urls:?}"
    );
}

#[test]
fn nested_folders_give_the_innermost_category_and_tags_come_from_category() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_text(&dir.path().join("e"), FRESH);
    let file = dir.path().join("nested.opml");
    // Latin-1, as declared: the folder's é is the single byte 0xE9.
    let text = r#"<?xml version="1.0" encoding="ISO-8859-1"?>
<opml version="1.1">
  <head><title>Subscriptions</title></head>
  <body>
    <outline title="My Feeds">
      <outline text="Caf{E9} Society">
        <outline type="rss" title="Caf&#233; Daily" xmlurl="https://cafe.example.com/rss" category="food,/Life/Leisure"/>
      </outline>
      <outline type="rss" text="Direct Child" xmlUrl="https://direct.example.com/feed"/>
    </outline>
    <outline type="rss" text="At the Top" xmlUrl="https://top.example.org/feed" category="news, daily"/>
    <outline type="rss" xmlUrl="https://untitled.example.org/feed?a=1&b=2"/>
  </body>
</opml>
"#;
    let (before, after) = text.split_once("{E9}").unwrap();
    fs::write(
        &file,
        [before.as_bytes(), &[0xE9], after.as_bytes()].concat(),
    )
    .unwrap();
    let said = opml_ok(&config, &["import", file.to_str().unwrap()]);
    assert!(said.contains("4 added, 0 skipped"), "{said}");
    let got: BTreeMap<String, (String, String, Vec<String>)> = Config::load(&config)
        .unwrap()
        .sources
        .iter()
        .map(|s| {
            (
                s.url.to_string(),
                (s.name.clone(), s.category.clone(), s.tags.clone()),
            )
        })
        .collect();
    let want: BTreeMap<String, (String, String, Vec<String>)> = [
        (
            "https://cafe.example.com/rss",
            "Café Daily",
            "Café Society",
            vec!["food"],
        ),
        (
            "https://direct.example.com/feed",
            "Direct Child",
            "My Feeds",
            vec![],
        ),
        (
            "https://top.example.org/feed",
            "At the Top",
            "imported",
            vec!["news", "daily"],
        ),
        (
            "https://untitled.example.org/feed?a=1&b=2",
            "untitled.example.org",
            "imported",
            vec![],
        ),
    ]
    .into_iter()
    .map(|(u, n, c, t)| {
        (
            u.to_string(),
            (
                n.to_string(),
                c.to_string(),
                t.into_iter().map(String::from).collect(),
            ),
        )
    })
    .collect();
    assert_eq!(got, want);
}

#[test]
fn bad_input_leaves_the_config_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_text(&dir.path().join("f"), FRESH);
    let not_opml = dir.path().join("feed.xml");
    fs::write(
        &not_opml,
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel/></rss>",
    )
    .unwrap();
    let (code, _, stderr) = opml(&config, &["import", not_opml.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not an OPML document"), "{stderr}");
    assert_eq!(fs::read_to_string(&config).unwrap(), FRESH);

    let (code, _, stderr) = opml(&config, &["import", "/nonexistent/subscriptions.opml"]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(fs::read_to_string(&config).unwrap(), FRESH);

    // Sources written as an inline array: appended [[sources]] tables cannot extend it, so the
    // result would not load. Nothing is written.
    let inline = "sources = []\n[storage]\npath = \"f.db\"\n";
    fs::write(&config, inline).unwrap();
    let (code, _, stderr) = opml(
        &config,
        &["import", fixture("freshrss.opml").to_str().unwrap()],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("would not load"), "{stderr}");
    assert_eq!(fs::read_to_string(&config).unwrap(), inline);
    let leftovers: Vec<_> = fs::read_dir(config.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn served_opml_lists_every_feed_with_working_urls() {
    let fixtures = FixtureServer::start();
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let mut tech = Source::fixture(&fixtures, TECH_ID).tags(&[FINANCE_TAG, "a/b"]);
    tech.category = "Tech & Science".into();
    let sources = [
        Source::fixture(&fixtures, CS_ID),
        Source::fixture(&fixtures, CAIXIN_ID).tags(&["markets & funds"]),
        tech,
    ];
    let config = write_config(&dir.path().join("conf"), listen, &sources);
    let (code, stdout, stderr) = run_fetch(&config, &[]);
    assert_eq!(code, 0, "fetch\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();

    let resp = http_get(&serve.url("/opml"));
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.header("content-type").as_deref(),
        Some("text/x-opml; charset=utf-8")
    );
    let doc = parse_opml(&resp.body);
    assert!(doc.date_created, "{}", resp.body);
    let base = format!("http://{listen}/");
    let listed: BTreeSet<(Vec<String>, String, String)> = doc
        .outlines
        .iter()
        .map(|o| {
            assert_eq!(o.get("type"), Some("rss"), "{:?}", o);
            assert_eq!(o.get("htmlUrl"), Some(base.as_str()), "{:?}", o);
            (
                o.folders.clone(),
                o.get("text").unwrap().to_string(),
                o.get("xmlUrl").unwrap().to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(Vec<String>, String, String)> = [
        (&[][..], "All sources", "feeds/all.atom"),
        (
            &["Categories"][..],
            FINANCE,
            "feeds/%E9%87%91%E8%9E%8D.atom",
        ),
        (
            &["Categories"],
            "Tech & Science",
            "feeds/Tech%20&%20Science.atom",
        ),
        (&["Tags"], FINANCE_TAG, "tags/%E8%B5%84%E8%AE%AF.atom"),
        (&["Tags"], "a/b", "tags/a%2Fb.atom"),
        (
            &["Tags"],
            "markets & funds",
            "tags/markets%20&%20funds.atom",
        ),
    ]
    .into_iter()
    .map(|(folders, text, path)| {
        (
            folders.iter().map(|f| f.to_string()).collect(),
            text.to_string(),
            format!("{base}{path}"),
        )
    })
    .collect();
    assert_eq!(listed, want, "{}", resp.body);

    for (_, name, url) in &listed {
        let feed = http_get(url);
        assert_eq!(feed.status, 200, "GET {url} ({name}): {}", feed.body);
        let parsed = feed_rs::parser::parse(feed.body.as_bytes())
            .unwrap_or_else(|e| panic!("GET {url}: not a feed: {e}\n{}", feed.body));
        assert!(!parsed.entries.is_empty(), "GET {url}: no entries");
    }

    // Without public_url, URLs follow the Host the reader used.
    let resp = http_get_with(&serve.url("/opml"), &[("Host", "feeds.example.net:8080")]);
    let doc = parse_opml(&resp.body);
    assert!(
        doc.outlines.iter().all(|o| o
            .get("xmlUrl")
            .unwrap()
            .starts_with("http://feeds.example.net:8080/")),
        "{}",
        resp.body
    );
}

/// The tag the 中证网 fixture source carries (see `Source::fixture`).
const FINANCE_TAG: &str = "资讯";
