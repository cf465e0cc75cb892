use super::*;
use encoding_rs::{BIG5, GB18030, GBK, SHIFT_JIS};

/// Encodes with encoding_rs, asserting every character was representable.
fn enc(encoding: &'static Encoding, s: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding.encode(s);
    assert!(
        !unmappable,
        "{s:?} is not representable in {}",
        encoding.name()
    );
    bytes.into_owned()
}

/// Decodes and checks the answer, and that nothing was replaced.
fn check(
    bytes: &[u8],
    content_type: Option<&str>,
    encoding: &'static Encoding,
    provenance: Provenance,
) -> String {
    let d = decode(bytes, content_type);
    assert_eq!(
        (d.encoding.name(), d.provenance),
        (encoding.name(), provenance),
        "{:?}",
        d.text
    );
    assert!(!d.had_errors, "errors in {:?}", d.text);
    assert!(!d.text.contains('\u{FFFD}'), "U+FFFD in {:?}", d.text);
    d.text
}

fn rss(prolog: &str, title: &str) -> String {
    format!(
        "{prolog}\n<rss version=\"2.0\"><channel><title>新聞</title>\
         <item><title>{title}</title><link>https://example.test/1</link>\
         <description>{title}的摘要</description></item></channel></rss>\n"
    )
}

fn html(head: &str, body: &str) -> String {
    format!("<!DOCTYPE html>\n<html><head>{head}<title>{body}</title></head><body><p>{body}</p></body></html>\n")
}

/// The first item's title as feed-rs reads the re-encoded document.
fn feed_title(bytes: &[u8], content_type: Option<&str>) -> String {
    let doc = to_utf8_document(bytes, content_type);
    assert!(!doc.had_errors);
    let feed = feed_rs::parser::parse(doc.bytes.as_slice()).expect("feed-rs parses it");
    feed.entries[0].title.as_ref().unwrap().content.clone()
}

const CS: &str = "海通证券助力厦门市政集团";

#[test]
fn provenance_displays_as_check_prints_it() {
    let all = [
        (Provenance::Bom, "BOM"),
        (Provenance::HttpHeader, "HTTP header"),
        (Provenance::XmlDeclaration, "XML declaration"),
        (Provenance::MetaTag, "<meta> tag"),
        (Provenance::ValidUtf8, "valid UTF-8"),
        (Provenance::Guessed, "guessed"),
    ];
    for (p, s) in all {
        assert_eq!(p.to_string(), s);
    }
}

#[test]
fn bom_wins_over_everything_and_is_removed() {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(rss("<?xml version=\"1.0\" encoding=\"gbk\"?>", CS).as_bytes());
    let text = check(
        &bytes,
        Some("text/xml; charset=big5"),
        UTF_8,
        Provenance::Bom,
    );
    assert!(text.starts_with("<?xml"));

    let mut bytes = vec![0xFF, 0xFE];
    for unit in "<p>中文</p>".encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    let text = check(
        &bytes,
        Some("text/html; charset=gbk"),
        UTF_16LE,
        Provenance::Bom,
    );
    assert_eq!(text, "<p>中文</p>");
}

#[test]
fn utf16_xml_without_bom_is_recognised_by_its_declaration_bytes() {
    let xml = "<?xml version=\"1.0\" encoding=\"UTF-16\"?><rss version=\"2.0\"><channel><item><title>中文标题</title></item></channel></rss>";
    let mut le = Vec::new();
    let mut be = Vec::new();
    for unit in xml.encode_utf16() {
        le.extend_from_slice(&unit.to_le_bytes());
        be.extend_from_slice(&unit.to_be_bytes());
    }
    assert_eq!(check(&le, None, UTF_16LE, Provenance::XmlDeclaration), xml);
    assert_eq!(check(&be, None, UTF_16BE, Provenance::XmlDeclaration), xml);
    assert_eq!(feed_title(&le, None), "中文标题");
}

#[test]
fn http_header_charset() {
    let bytes = enc(GBK, &html("", CS));
    for ct in [
        "text/html; charset=GBK",
        "text/html;charset=\"gbk\"",
        "text/html; Charset = 'gbk' ; foo=bar",
        "text/html; foo=bar; charset=gb2312",
    ] {
        assert!(
            check(&bytes, Some(ct), GBK, Provenance::HttpHeader).contains(CS),
            "{ct}"
        );
    }
    // An unknown label is no declaration at all.
    assert_eq!(
        decode(&bytes, Some("text/html; charset=nonsense")).provenance,
        Provenance::Guessed
    );
    assert_eq!(charset_param("text/html"), None);
    assert_eq!(charset_param("text/html; charset="), None);
}

#[test]
fn gb2312_label_means_gbk() {
    for label in ["gb2312", "GB2312", "gbk", "x-gbk", "chinese", "csGB2312"] {
        assert_eq!(Encoding::for_label(label.as_bytes()), Some(GBK), "{label}");
    }
    assert_eq!(Encoding::for_label(b"gb18030"), Some(GB18030));
    let bytes = enc(GBK, CS);
    check(
        &bytes,
        Some("text/plain; charset=gb2312"),
        GBK,
        Provenance::HttpHeader,
    );
}

#[test]
fn gbk_page_with_meta_charset() {
    for head in [
        "<meta charset=\"gbk\">",
        "<meta charset=gbk>",
        "<META CHARSET='GBK' />",
        "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=gb2312\">",
        "<meta content='text/html;charset=GBK' http-equiv='content-type'>",
        "<meta http-equiv=Content-Type content=\"text/html; charset = 'gbk'\">",
        "<meta name=\"viewport\" content=\"width=device-width\"><meta charset=gbk>",
    ] {
        let bytes = enc(GBK, &html(head, CS));
        let text = check(&bytes, Some("text/html"), GBK, Provenance::MetaTag);
        assert!(text.contains(CS), "{head}");
    }
}

#[test]
fn meta_that_does_not_count() {
    for head in [
        // content=…charset=… without http-equiv=Content-Type
        "<meta content=\"text/html; charset=big5\">",
        "<!-- <meta charset=big5> -->",
        "<img alt=\"<meta charset=big5>\">",
        "<meta charset=hz-gb-2312>",
    ] {
        let bytes = enc(GBK, &html(head, &CS.repeat(4)));
        let d = decode(&bytes, None);
        assert_ne!(d.provenance, Provenance::MetaTag, "{head}");
        assert_ne!(d.encoding, BIG5, "{head}");
    }
    // Past the first 1024 bytes a meta is not looked for.
    let padding = format!("<script>{}</script>", " ".repeat(1024));
    let bytes = enc(
        GBK,
        &html(&format!("{padding}<meta charset=big5>"), &CS.repeat(4)),
    );
    assert_eq!(decode(&bytes, None).provenance, Provenance::Guessed);
}

#[test]
fn utf8_labelled_gbk_stays_utf8() {
    // cs.com.cn, 2024: the site moved to UTF-8, its pages and headers still say gbk/gb2312.
    let page = html(
        "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=gb2312\">",
        CS,
    );
    let text = check(
        page.as_bytes(),
        Some("text/html; charset=GBK"),
        UTF_8,
        Provenance::ValidUtf8,
    );
    assert!(text.contains(CS));
    let feed = rss("<?xml version=\"1.0\" encoding=\"gbk\"?>", CS);
    check(feed.as_bytes(), None, UTF_8, Provenance::ValidUtf8);
    assert_eq!(feed_title(feed.as_bytes(), None), CS);
    assert_eq!(
        feed_title(feed.as_bytes(), Some("application/rss+xml; charset=gbk")),
        CS
    );
}

#[test]
fn declared_utf8_reports_the_declaration() {
    let page = html("<meta charset=\"utf-8\">", CS);
    check(page.as_bytes(), None, UTF_8, Provenance::MetaTag);
    check(
        page.as_bytes(),
        Some("text/html; charset=UTF-8"),
        UTF_8,
        Provenance::HttpHeader,
    );
    let feed = rss("<?xml version='1.0' encoding='utf-8'?>", CS);
    check(feed.as_bytes(), None, UTF_8, Provenance::XmlDeclaration);
    // The header's gbk is what would have been used, and it lost to the bytes.
    check(
        feed.as_bytes(),
        Some("text/xml; charset=gbk"),
        UTF_8,
        Provenance::ValidUtf8,
    );
}

#[test]
fn gb18030_four_byte_sequences() {
    let title = "生僻字𠀀与㐀，价格€5";
    let bytes = enc(
        GB18030,
        &rss("<?xml version=\"1.0\" encoding=\"GB18030\"?>", title),
    );
    // U+20000 is the four-byte 95 32 82 36, outside GBK.
    assert!(find(&bytes, &[0x95, 0x32, 0x82, 0x36]).is_some());
    let text = check(&bytes, None, GB18030, Provenance::XmlDeclaration);
    assert!(text.contains(title));
    assert_eq!(feed_title(&bytes, None), title);
    // Mislabelled gb2312, the same bytes still decode: GBK is decoded as GB18030.
    let mislabelled = enc(
        GB18030,
        &rss("<?xml version=\"1.0\" encoding=\"gb2312\"?>", title),
    );
    assert!(check(&mislabelled, None, GBK, Provenance::XmlDeclaration).contains(title));
    // GBK's single-byte euro sign (0x80, what Windows code page 936 writes).
    let euro = [b"<p>".as_slice(), &[0x80], &enc(GBK, "价格"), b"</p>"].concat();
    assert_eq!(
        check(
            &euro,
            Some("text/html; charset=gbk"),
            GBK,
            Provenance::HttpHeader
        ),
        "<p>€价格</p>"
    );
}

#[test]
fn big5_via_http_header_only() {
    let title = "臺灣證券交易所公布年度報告";
    let bytes = enc(BIG5, &rss("<?xml version=\"1.0\"?>", title));
    let text = check(
        &bytes,
        Some("application/rss+xml; charset=big5"),
        BIG5,
        Provenance::HttpHeader,
    );
    assert!(text.contains(title));
    assert_eq!(
        feed_title(&bytes, Some("application/rss+xml; charset=big5")),
        title
    );
    // Declared in the prolog instead.
    let bytes = enc(BIG5, &rss("<?xml version='1.0' encoding='Big5'?>", title));
    check(&bytes, None, BIG5, Provenance::XmlDeclaration);
}

#[test]
fn xml_prolog_gb2312_single_quotes() {
    let bytes = enc(GBK, &rss("<?xml version='1.0' encoding='GB2312'?>", CS));
    let text = check(
        &bytes,
        Some("application/xml"),
        GBK,
        Provenance::XmlDeclaration,
    );
    assert!(text.contains(CS));
    // Other spellings of the declaration.
    for prolog in [
        "<?xml version=\"1.0\" encoding = \"gbk\" standalone=\"yes\"?>",
        "  \n<?xml encoding=gbk version=1.0?>",
        "<?xml\tversion=\"1.0\"\nencoding=\"GBK\"\n?>",
    ] {
        let bytes = enc(GBK, &rss(prolog, CS));
        check(&bytes, None, GBK, Provenance::XmlDeclaration);
        let doc = String::from_utf8(to_utf8_document(&bytes, None).bytes).unwrap();
        assert!(
            doc.contains("encoding") && doc.contains("\"UTF-8\""),
            "{doc}"
        );
    }
    // The header outranks the prolog.
    check(
        &bytes,
        Some("text/xml; charset=gb18030"),
        GB18030,
        Provenance::HttpHeader,
    );
}

#[test]
fn to_utf8_document_rewrites_the_declaration() {
    let bytes = enc(GBK, &rss("<?xml version='1.0' encoding='GB2312'?>", CS));
    let doc = to_utf8_document(&bytes, None);
    assert_eq!(
        (doc.encoding, doc.provenance, doc.had_errors),
        (GBK, Provenance::XmlDeclaration, false)
    );
    let text = String::from_utf8(doc.bytes).unwrap();
    assert!(
        text.starts_with("<?xml version='1.0' encoding='UTF-8'?>"),
        "{text}"
    );
    assert_eq!(feed_title(&bytes, None), CS);
    // Without the rewrite feed-rs decodes a second time, by the prolog: mojibake or an error.
    let utf8_labelled_gbk = rss("<?xml version=\"1.0\" encoding=\"gbk\"?>", CS);
    let raw = feed_rs::parser::parse(utf8_labelled_gbk.as_bytes()).unwrap();
    assert_ne!(
        raw.entries[0].title.as_ref().map(|t| t.content.as_str()),
        Some(CS)
    );

    // Declarations that already mean UTF-8, or none at all, are left as they are.
    for prolog in [
        "<?xml version=\"1.0\" encoding=\"utf8\"?>",
        "<?xml version=\"1.0\"?>",
        "",
    ] {
        let feed = rss(prolog, CS);
        assert_eq!(
            to_utf8_document(feed.as_bytes(), None).bytes,
            feed.as_bytes(),
            "{prolog}"
        );
    }
}

#[test]
fn json_passes_through_without_bom() {
    let json = "{\"version\":\"https://jsonfeed.org/version/1.1\",\"title\":\"j\",\"items\":[{\"id\":\"1\",\"title\":\"海通证券\",\"content_html\":\"<meta charset=big5>\"}]}";
    let with_bom = [b"\xEF\xBB\xBF".as_slice(), json.as_bytes()].concat();
    let doc = to_utf8_document(&with_bom, Some("application/feed+json"));
    assert_eq!(doc.bytes, json.as_bytes());
    assert_eq!(doc.provenance, Provenance::Bom);
    let feed = feed_rs::parser::parse(doc.bytes.as_slice()).unwrap();
    assert_eq!(feed.entries[0].title.as_ref().unwrap().content, "海通证券");
    // The <meta> inside an item is not the document's declaration.
    check(json.as_bytes(), None, UTF_8, Provenance::ValidUtf8);
    let ascii = json.replace("海通证券", "x");
    check(ascii.as_bytes(), None, UTF_8, Provenance::ValidUtf8);
}

#[test]
fn ascii_and_empty_are_utf8() {
    check(b"", None, UTF_8, Provenance::ValidUtf8);
    check(
        b"<rss version=\"2.0\"/>",
        None,
        UTF_8,
        Provenance::ValidUtf8,
    );
    // ASCII under a legacy declaration decodes the same; the declaration is reported.
    check(
        b"<meta charset=gbk><p>x</p>",
        None,
        GBK,
        Provenance::MetaTag,
    );
}

#[test]
fn declared_utf16_is_not_trusted_blindly() {
    // In the document, read as ASCII: it cannot be UTF-16, so it means UTF-8 (WHATWG).
    let page = html("<meta charset=\"utf-16\">", "x");
    check(page.as_bytes(), None, UTF_8, Provenance::MetaTag);
    // Read that way the declaration says UTF-8, so it is what is reported.
    let feed = rss("<?xml version=\"1.0\" encoding=\"UTF-16\"?>", CS);
    check(feed.as_bytes(), None, UTF_8, Provenance::XmlDeclaration);
    assert_eq!(feed_title(feed.as_bytes(), None), CS);
    // In the header, over ASCII bytes: ignored.
    check(
        page.as_bytes(),
        Some("text/html; charset=utf-16"),
        UTF_8,
        Provenance::MetaTag,
    );
    check(
        b"<p>x</p>",
        Some("text/html; charset=utf-16le"),
        UTF_8,
        Provenance::ValidUtf8,
    );
    // Over real UTF-16 without a BOM: believed, in the byte order the bytes show.
    let mut be = Vec::new();
    for unit in "<p>中文</p>".encode_utf16() {
        be.extend_from_slice(&unit.to_be_bytes());
    }
    assert_eq!(
        check(
            &be,
            Some("text/html; charset=utf-16"),
            UTF_16BE,
            Provenance::HttpHeader
        ),
        "<p>中文</p>"
    );
}

#[test]
fn undeclared_legacy_bytes_are_guessed() {
    let text = "国家统计局今天发布数据，一季度国内生产总值同比增长百分之五点三，\
                经济运行开局良好，市场预期持续改善。";
    let bytes = enc(GBK, &html("", text));
    assert!(check(&bytes, Some("text/html"), GBK, Provenance::Guessed).contains(text));
    let text = "香港交易所公布全年業績，收入及其他收益創歷史紀錄，董事會建議派發末期股息。";
    let bytes = enc(BIG5, &html("", text));
    assert!(check(&bytes, None, BIG5, Provenance::Guessed).contains(text));
    let text = "東京証券取引所は本日、新しい上場規則を発表しました。市場関係者は歓迎しています。";
    let bytes = enc(SHIFT_JIS, &html("", text));
    assert!(check(&bytes, None, SHIFT_JIS, Provenance::Guessed).contains(text));
}

#[test]
fn truncated_multibyte_at_the_end_sets_had_errors() {
    let mut gbk = enc(GBK, CS);
    gbk.pop();
    let d = decode(&gbk, Some("text/plain; charset=gbk"));
    assert!(d.had_errors);
    assert!(d.text.ends_with('\u{FFFD}'));
    assert!(d.text.starts_with("海通证券助力厦门市政集"));

    let mut utf8 = CS.as_bytes().to_vec();
    utf8.pop();
    let d = decode(&utf8, Some("text/plain; charset=gbk"));
    assert_eq!(
        (d.encoding, d.provenance, d.had_errors),
        (UTF_8, Provenance::ValidUtf8, true)
    );
    assert_eq!(d.text, "海通证券助力厦门市政集\u{FFFD}");
    let d = decode(&utf8, Some("text/plain; charset=utf-8"));
    assert_eq!(
        (d.encoding, d.provenance, d.had_errors),
        (UTF_8, Provenance::HttpHeader, true)
    );

    let mut gb18030 = enc(GB18030, "字𠀀");
    gb18030.truncate(gb18030.len() - 2);
    let doc = to_utf8_document(&gb18030, Some("text/plain; charset=gb18030"));
    assert!(doc.had_errors);
    assert_eq!(String::from_utf8(doc.bytes).unwrap(), "字\u{FFFD}");
}

/// tests/fixtures/encodings/ as the integration tests will serve them.
#[test]
fn encoding_fixtures_parse_to_their_titles() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/encodings");
    let expected = std::fs::read_to_string(dir.join("expected.tsv")).unwrap();
    let mut n = 0;
    for line in expected
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let [file, charset, title] = line.split('\t').collect::<Vec<_>>()[..] else {
            panic!("bad line {line:?}");
        };
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let content_type =
            (charset != "-").then(|| format!("application/rss+xml; charset={charset}"));
        assert_eq!(feed_title(&bytes, content_type.as_deref()), title, "{file}");
        n += 1;
    }
    assert_eq!(n, 6);
}
