//! Whatever text a feed carries, every document tributary publishes parses: random strings
//! made of every C0 and C1 control, the non-characters U+FFFE and U+FFFF, markup characters,
//! references to characters XML forbids (`&#0;`, `&#xD800;`), JSON's lone surrogate escapes,
//! and ordinary Latin and Chinese text, put in every field of an RSS, an Atom and a JSON Feed
//! item, read by tributary's parser, normalized, and rendered in all three formats. RSS and
//! Atom must be well-formed XML 1.0 (roxmltree, which refuses forbidden characters), JSON Feed
//! valid JSON, and no item may be lost.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use tributary::model::{Cursor, EntrySource, StoredEntry};
use tributary::publish::{self, FeedInfo, Format};

/// One piece of hostile or ordinary text.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap_or(' ').to_string()),
        (0x7fu32..0xa0).prop_map(|c| char::from_u32(c).unwrap_or(' ').to_string()),
        Just("\u{fffe}".to_string()),
        Just("\u{ffff}".to_string()),
        Just("\u{feff}".to_string()),
        Just("\u{2028}".to_string()),
        Just("&#0;".to_string()),
        Just("&#x1A;".to_string()),
        Just("&#xD800;".to_string()),
        Just("&#xFFFE;".to_string()),
        Just("\\ud800".to_string()),
        Just("<b>".to_string()),
        Just("]]>".to_string()),
        Just("&".to_string()),
        Just("\"'<>".to_string()),
        "[a-zA-Z0-9 ]{1,8}",
        "[\u{4e00}-\u{9fa5}]{1,6}",
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 1..12).prop_map(|p| p.concat())
}

/// Text as it may appear inside an XML element of a sloppy feed: `<` and `&` escaped only
/// when `escape` says so (a lenient reader must cope either way).
fn in_xml(s: &str, escape: bool) -> String {
    if escape {
        html_escape::encode_text(s).into_owned()
    } else {
        s.replace('<', "&lt;")
    }
}

/// A JSON string literal of `s`, lone surrogate escapes (`\ud800`) kept as escapes.
fn in_json(s: &str) -> String {
    let quoted = serde_json::to_string(s).expect("a JSON string");
    quoted.replace("\\\\ud800", "\\ud800")
}

fn documents(t: &[String; 4], escape: bool) -> Vec<Vec<u8>> {
    let x = |i: usize| in_xml(&t[i], escape);
    let rss = format!(
        "<rss version=\"2.0\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\"><channel>\
         <title>t</title><item><title>{}</title><link>https://x.example/1?q={}</link>\
         <description>{}</description><dc:creator>{}</dc:creator><category>{}</category>\
         <guid isPermaLink=\"false\">{}</guid></item></channel></rss>",
        x(0),
        x(1),
        x(2),
        x(3),
        x(1),
        x(0)
    );
    let atom = format!(
        "<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>t</title><entry><id>{}</id>\
         <title type=\"html\">{}</title><content type=\"html\">{}</content>\
         <author><name>{}</name></author><link href=\"https://x.example/2\"/>\
         <updated>2024-01-01T00:00:00Z</updated></entry></feed>",
        x(1),
        x(0),
        x(2),
        x(3)
    );
    let json = format!(
        "{{\"version\":\"https://jsonfeed.org/version/1.1\",\"title\":\"t\",\"items\":[{{\
         \"id\":{},\"title\":{},\"content_html\":{},\"authors\":[{{\"name\":{}}}],\
         \"url\":\"https://x.example/3\",\"tags\":[{}]}}]}}",
        in_json(&t[1]),
        in_json(&t[0]),
        in_json(&t[2]),
        in_json(&t[3]),
        in_json(&t[1])
    );
    vec![rss.into_bytes(), atom.into_bytes(), json.into_bytes()]
}

fn stored(e: tributary::model::Entry, id: i64) -> StoredEntry {
    let at = Utc
        .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .expect("a date");
    StoredEntry {
        id,
        cursor: Cursor {
            published: at.timestamp(),
            key: id,
            id,
        },
        title: e.title,
        link: e.link.clone(),
        summary: e.summary,
        content: e.content,
        authors: e.authors,
        categories: e.categories,
        published: e.published.unwrap_or(at),
        updated: e.updated.unwrap_or(at),
        sources: vec![EntrySource {
            source_id: "s".into(),
            source_name: "Source".into(),
            source_url: "https://x.example/feed.xml".into(),
            guid: e.guid,
            link: e.link,
        }],
        copies: Vec::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1000,
        // A failure prints its input; nothing is written into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_published_document_parses(t in [text(), text(), text(), text()], escape: bool) {
        let config = tributary::config::Config::from_toml(
            std::path::Path::new("wellformed.toml"),
            "[[sources]]\nid = \"s\"\nname = \"Source\"\nurl = \"https://x.example/feed.xml\"\n\
             category = \"c\"\n",
        )
        .expect("config");
        let source = &config.sources[0];
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("a date");
        let info = FeedInfo {
            built: chrono::Utc::now(),
            title: "t".into(),
            description: String::new(),
            id: "urn:t".into(),
            self_url: "http://127.0.0.1/feed".into(),
            home_url: "http://127.0.0.1/".into(),
            next_url: None,
            hub: None,
        };
        for (n, doc) in documents(&t, escape).into_iter().enumerate() {
            let (feed, _) = tributary::refresh::read_document(source, &source.url, None, doc)
                .unwrap_or_else(|e| panic!("document {n} not read: {e}"));
            prop_assert_eq!(feed.items.len(), 1, "document {} lost its item", n);
            let entries: Vec<StoredEntry> =
                tributary::refresh::normalize_items(source, &source.url, feed.items, now)
                    .into_iter()
                    .map(|e| stored(e, 1))
                    .collect();
            for format in [Format::Rss, Format::Atom] {
                let out = publish::render(format, &info, &entries);
                if let Err(e) = roxmltree::Document::parse(&out) {
                    prop_assert!(false, "document {} as {:?}: {}\n{}", n, format, e, out);
                }
            }
            let out = publish::render(Format::Json, &info, &entries);
            prop_assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok(), "{}", out);
        }
    }
}
