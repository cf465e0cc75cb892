use super::*;

fn one(doc: &str) -> ParsedItem {
    let mut feed = parse(doc, usize::MAX).expect(doc);
    assert_eq!(feed.items.len(), 1, "{doc}");
    feed.items.remove(0)
}

#[test]
fn rss_authors_are_names_not_the_word_author() {
    let item = |a: &str| {
        one(&format!(
            "<rss version=\"2.0\"><channel><item><author>{a}</author></item></channel></rss>"
        ))
        .authors
    };
    assert_eq!(item("李明"), ["李明"]);
    assert_eq!(item("jane@example.com (Jane Doe)"), ["Jane Doe"]);
    assert_eq!(item("Jane Doe &lt;jane@example.com&gt;"), ["Jane Doe"]);
    assert_eq!(item("jane@example.com"), ["jane@example.com"]);
    let atom03 = one(r#"<feed version="0.3" xmlns="http://purl.org/atom/ns#"
           xmlns:dc="http://purl.org/dc/elements/1.1/"><entry><title>t</title>
           <dc:creator>王芳</dc:creator></entry></feed>"#);
    assert_eq!(atom03.authors, ["王芳"]);
}

#[test]
fn rss_090_items_beside_the_channel() {
    let doc = r#"<?xml version="1.0"?>
        <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
                 xmlns="http://my.netscape.com/rdf/simple/0.9/">
          <channel><title>Mozilla Dot Org</title><link>http://www.mozilla.org</link></channel>
          <item><title>New Status Updates</title><link>http://www.mozilla.org/status/</link></item>
          <item><title>Bugzilla Reorganized</title><link>http://www.mozilla.org/bugs/</link></item>
        </rdf:RDF>"#;
    let feed = parse(doc, usize::MAX).unwrap();
    assert_eq!(feed.title.as_deref(), Some("Mozilla Dot Org"));
    let links: Vec<_> = feed.items.iter().map(|i| i.links[0].as_str()).collect();
    assert_eq!(
        links,
        [
            "http://www.mozilla.org/status/",
            "http://www.mozilla.org/bugs/"
        ]
    );
}

#[test]
fn permalink_guids_are_links_and_other_guids_are_not() {
    let item = |guid: &str| {
        one(&format!(
            "<rss version=\"2.0\"><channel><item><title>t</title>{guid}</item></channel></rss>"
        ))
        .links
    };
    assert_eq!(
        item("<guid>http://x.example/1</guid>"),
        ["http://x.example/1"]
    );
    assert_eq!(
        item("<guid isPermaLink=\"true\">http://x.example/1</guid>"),
        ["http://x.example/1"]
    );
    assert!(item("<guid isPermaLink=\"false\">http://x.example/1</guid>").is_empty());
    assert!(item("<guid>tag:x.example,2024:1</guid>").is_empty());
}

#[test]
fn odd_types_cost_the_field_not_the_feed() {
    let doc = r#"<feed xmlns="http://www.w3.org/2005/Atom"
           xmlns:media="http://search.yahoo.com/mrss/"><title>t</title>
        <rights type="application/pdf">x</rights>
        <entry><title type="application/octet-stream">not base64!</title>
          <media:title type="text/html">m</media:title>
          <summary type="text/plain">plain</summary><id>1</id></entry>
        <entry><title type="text/html">&lt;b&gt;b&lt;/b&gt;</title><id>2</id></entry></feed>"#;
    let feed = parse(doc, usize::MAX).unwrap();
    assert_eq!(feed.items.len(), 2);
    // The title typed as binary is not base64: read as written.
    assert_eq!(
        feed.items[0].title,
        Some(Text {
            body: "not base64!".into(),
            html: false
        })
    );
    let doc = doc.replace("not base64!", "/w==");
    let feed = parse(&doc, usize::MAX).unwrap();
    assert_eq!(
        feed.warnings,
        ["item 1: <title type=\"application/octet-stream\"> could not be read as text, left out"]
    );
    // Base64 of bytes that are not text: the title is lost, media:title stands in.
    assert_eq!(
        feed.items[0].title,
        Some(Text {
            body: "m".into(),
            html: true
        })
    );
    assert_eq!(feed.items[0].summary.as_ref().unwrap().body, "plain");
    assert_eq!(
        feed.items[1].title,
        Some(Text {
            body: "<b>b</b>".into(),
            html: true
        })
    );
}

#[test]
fn atom_links_prefer_html_alternates_and_never_enclosures() {
    let links = |l: &str| {
        one(&format!(
            "<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><id>1</id>{l}</entry></feed>"
        ))
        .links
    };
    assert!(links(r#"<link rel="enclosure" href="http://x/a.mp3"/>"#).is_empty());
    assert_eq!(
        links(
            r#"<link rel="alternate" type="application/pdf" href="http://x/a.pdf"/>
               <link rel="alternate" type="text/html" href="http://x/a.html"/>"#
        ),
        ["http://x/a.html", "http://x/a.pdf"]
    );
    assert_eq!(links(r#"<link href="http://x/p"/>"#), ["http://x/p"]);
}

#[test]
fn dates_are_kept_as_written_with_their_element() {
    let item = one(
        r#"<rss version="2.0" xmlns:dcterms="http://purl.org/dc/terms/"><channel><item>
           <title>t</title><dcterms:issued>2020/1/10 14:33:00</dcterms:issued>
           <dcterms:modified>2020-01-11</dcterms:modified></item></channel></rss>"#,
    );
    let p = item.published_text.unwrap();
    assert_eq!(
        (p.field, p.text.as_str()),
        ("dcterms:issued", "2020/1/10 14:33:00")
    );
    assert_eq!(item.updated_text.unwrap().field, "dcterms:modified");
}

#[test]
fn unescaped_markup_and_xhtml_content() {
    let item = one(r#"<rss version="2.0"><channel><item><title>t</title>
           <description><p>one <b>two</b></p></description></item></channel></rss>"#);
    assert_eq!(item.summary.unwrap().body, "<p>one <b>two</b></p>");
    let item = one(
        r#"<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>1</id>
           <content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>hi</p></div></content>
           </entry></feed>"#,
    );
    assert_eq!(
        item.content,
        Some(Text {
            body: "<p>hi</p>".into(),
            html: true
        })
    );
}

#[test]
fn deep_nesting_is_walked_without_the_call_stack() {
    let depth = 200_000;
    let doc = format!(
        "<rss><channel>{}<item><title type=\"text\">{}deep{}</title></item>{}</channel></rss>",
        "<x>".repeat(depth),
        "<b>".repeat(depth),
        "</b>".repeat(depth),
        "</x>".repeat(depth)
    );
    let feed = parse(&doc, usize::MAX).expect("a feed");
    assert_eq!(feed.items.len(), 1);
    assert_eq!(
        feed.items[0].title.as_ref().map(|t| t.body.as_str()),
        Some("deep")
    );
}

#[test]
fn cut_off_documents_and_non_feeds() {
    assert!(matches!(
        parse("<rss version=\"2.0\"><channel><item><title>a", 10),
        Err(ParseError::Malformed(_))
    ));
    assert!(matches!(
        parse("<html><body>hi</body></html>", 10),
        Err(ParseError::NotAFeed)
    ));
    let wrapped = parse(
        r#"<html><body><feed xmlns="http://www.w3.org/2005/Atom"><entry><id>1</id>
           </entry></feed></body></html>"#,
        10,
    )
    .unwrap();
    assert_eq!(wrapped.items.len(), 1);
}

#[test]
fn an_entry_that_is_one_media_object_is_named_by_it() {
    let rss = |item: &str| {
        format!(
            "<rss version=\"2.0\" xmlns:media=\"http://search.yahoo.com/mrss/\">\
             <channel><item>{item}</item></channel></rss>"
        )
    };
    let photo = one(&rss(
        "<enclosure url=\"http://x/a.jpg\" type=\"image/jpeg\">\
         <media:title>Harbour at dawn</media:title>\
         <media:description>Shot from the pier</media:description></enclosure>",
    ));
    assert_eq!(
        photo.title.map(|t| t.body).as_deref(),
        Some("Harbour at dawn")
    );
    assert_eq!(
        photo.summary.map(|t| t.body).as_deref(),
        Some("Shot from the pier")
    );
    let grouped = one(&rss("<media:group><media:content url=\"http://x/a.mp4\">\
         <media:title>Episode 4</media:title></media:content></media:group>"));
    assert_eq!(grouped.title.map(|t| t.body).as_deref(), Some("Episode 4"));
    // The entry's own title and summary, and the item-level media:title, come first.
    let titled = one(&rss("<media:content url=\"http://x/a.jpg\">\
         <media:title>photo</media:title></media:content>\
         <title>Story</title><description>Text</description>"));
    assert_eq!(titled.title.map(|t| t.body).as_deref(), Some("Story"));
    assert_eq!(titled.summary.map(|t| t.body).as_deref(), Some("Text"));
    let item_level = one(&rss(
        "<media:content url=\"http://x/a.jpg\">\
         <media:title>photo</media:title></media:content><media:title>Item</media:title>",
    ));
    assert_eq!(item_level.title.map(|t| t.body).as_deref(), Some("Item"));
}
