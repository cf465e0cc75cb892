use super::*;
use chrono::TimeZone;

fn base() -> Url {
    Url::parse("https://www.cs.com.cn/xwzx/hg/").unwrap()
}

#[test]
fn canonical_links_ignore_tracking_and_order() {
    let a = Url::parse("https://Example.com:443/a?b=2&utm_source=rss&a=1#top").unwrap();
    let b = Url::parse("http://example.com/a?a=1&b=2&fbclid=x").unwrap();
    assert_eq!(canonical_link(&a), canonical_link(&b));
    assert_eq!(canonical_link(&a), "example.com/a?a=1&b=2");
    let c = Url::parse("https://example.com/a?a=2").unwrap();
    assert_ne!(canonical_link(&a), canonical_link(&c));
}

#[test]
fn titles_authors_and_categories_carry_no_markup() {
    let item = ParsedItem {
        title: Some(Text {
            body: "&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt; 标题".into(),
            html: false,
        }),
        authors: vec!["<img src=x onerror=alert(1)>Ann".into()],
        categories: vec!["&lt;b&gt;markets&lt;/b&gt;".into()],
        links: vec!["/p/2".into()],
        ..Default::default()
    };
    let base = base();
    let e = normalize(&ctx(&base, None), item);
    assert_eq!(e.title, "标题");
    assert_eq!(e.authors, vec!["Ann"]);
    assert_eq!(e.categories, vec!["markets"]);
}

#[test]
fn keys_layer_guid_link_hash() {
    let long = "x".repeat(MIN_HASHED_TEXT);
    let keys = identity_keys(
        "s",
        Some("g1"),
        Some("https://a/1?utm_medium=x"),
        "t",
        &long,
    );
    assert_eq!(keys.len(), 3);
    assert_eq!(keys[0], "guid:s:g1");
    assert_eq!(keys[1], "link:a/1");
    assert!(keys[2].starts_with("hash:"));
    // Short text alone is only trusted within the source.
    let keys = identity_keys("s", None, None, "快讯", "");
    assert_eq!(keys.len(), 1);
    assert!(keys[0].starts_with("hash:s:"));
}

static DEFAULT_DEDUPE: std::sync::LazyLock<crate::config::Thresholds> =
    std::sync::LazyLock::new(Default::default);

fn ctx<'a>(base: &'a Url, pattern: Option<&'a Regex>) -> Context<'a> {
    Context {
        source_id: "s",
        base,
        timezone: chrono_tz::Asia::Shanghai,
        timezone_named: true,
        date_formats: &[],
        id_pattern: pattern,
        wants_article: false,
        now: Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap(),
        dedupe: &DEFAULT_DEDUPE,
    }
}

#[test]
fn identity_keys_are_the_same_read_raw_or_after_sanitizing() {
    let base = base();
    let c = ctx(&base, None);
    let long = "央行今日开展逆回购操作，保持流动性合理充裕，市场利率平稳运行。";
    let bodies = [
        format!("<p>{long}</p><script>var x = '{long}';</script><style>p{{}}</style>"),
        format!("<table>{long}<tr><td>表格</td></tr></table>尾"),
        format!("<pre>\n\n{long}</pre><textarea>\n{long}</textarea>"),
        format!("<noscript>{long}</noscript><template>{long}模板</template><!-- {long} -->"),
        format!("<![CDATA[{long}]]> &amp;amp; &lt;b&gt; &nbsp; &#x4e2d;<b>{long}"),
        format!("<iframe>{long}</iframe><xmp>{long} <b></xmp><plaintext>{long}"),
        format!("<svg><title>{long}</title><style>{long}</style></svg><math>{long}</math>"),
        format!("<select><option>{long}</option></select><object>{long}</object>"),
        "<script>only script</script>   ".to_string(),
    ];
    let mut items: Vec<ParsedItem> = Vec::new();
    for body in &bodies {
        for (content, summary) in [
            (Some(body.as_str()), None),
            (None, Some(body.as_str())),
            (Some("<script>x</script>"), Some(body.as_str())),
        ] {
            let text = |b: &str| Text {
                body: b.to_string(),
                html: true,
            };
            items.push(ParsedItem {
                title: Some(text("标题")),
                content: content.map(text),
                summary: summary.map(text),
                ..Default::default()
            });
        }
    }
    // Plain text that looks escaped, more than once.
    items.push(ParsedItem {
        title: Some(Text {
            body: "t".into(),
            html: false,
        }),
        content: Some(Text {
            body: format!("{long} &amp;amp;amp; <b> &lt;"),
            html: false,
        }),
        ..Default::default()
    });
    for item in items {
        let raw = keys_for(&c, &item);
        assert_eq!(normalize(&c, item.clone()).keys, raw, "{item:?}");
    }
}

#[test]
fn entry_without_title_uses_its_text() {
    let item = ParsedItem {
        summary: Some(Text {
            body: "<p>Only a description</p>".into(),
            html: true,
        }),
        links: vec!["/p/1".into()],
        ..Default::default()
    };
    let base = base();
    let e = normalize(&ctx(&base, None), item);
    assert_eq!(e.title, "Only a description");
    assert_eq!(e.link.as_deref(), Some("https://www.cs.com.cn/p/1"));
}

#[test]
fn beijing_page_times_become_utc() {
    let read = |text: &str, formats: &[String], tz| {
        dates::read_with(text, formats, tz).map(|r| r.at.to_rfc3339())
    };
    let want = Some("2020-12-01T10:59:00+00:00".to_string());
    assert_eq!(
        read("2020-12-01 18:59", &[], chrono_tz::Asia::Shanghai),
        want
    );
    let page = " 2020年12月01日 18:59 来源：中证网";
    assert_eq!(read(page, &[], chrono_tz::Asia::Shanghai), want);
    assert_eq!(read("2020-12-01T18:59:00+08:00", &[], chrono_tz::UTC), want);
    let custom = vec!["%d.%m.%Y %Hh%M".to_string()];
    assert_eq!(
        read("01.12.2020 18h59", &custom, chrono_tz::Asia::Shanghai),
        want
    );
}

#[test]
fn dates_fall_back_in_order_and_future_ones_are_clamped() {
    let base = base();
    let c = ctx(&base, None);
    let link = "./202012/t20201201_6116434.html".to_string();
    let mut item = ParsedItem {
        links: vec![link],
        date_text: Some("2020-12-01 18:59".into()),
        article: Some(crate::parse::ArticleParts {
            content: "<p>正文</p>".into(),
            author: Some("王博".into()),
            date_text: Some("2020-12-01 19:05".into()),
        }),
        ..Default::default()
    };
    let e = normalize(&c, item.clone());
    assert_eq!(e.date_source, DateSource::ArticlePage);
    assert_eq!(
        e.published.unwrap().to_rfc3339(),
        "2020-12-01T11:05:00+00:00"
    );
    assert_eq!(e.authors, vec!["王博"]);
    item.article = None;
    let e = normalize(&c, item.clone());
    assert_eq!(
        (e.date_source, e.published.unwrap().to_rfc3339()),
        (DateSource::ListPage, "2020-12-01T10:59:00+00:00".into())
    );
    item.date_text = None;
    let e = normalize(&c, item.clone());
    assert_eq!(
        (e.date_source, e.published.unwrap().to_rfc3339()),
        (DateSource::Url, "2020-11-30T16:00:00+00:00".into())
    );
    item.links = vec!["/a.html".into()];
    item.date_text = Some("2030-01-01 00:00".into());
    let e = normalize(&c, item);
    assert_eq!(
        (e.date_source, e.published),
        (DateSource::FutureClamped, Some(c.now))
    );
}

#[test]
fn absurd_dates_are_clamped_or_dropped() {
    let base = base();
    let c = ctx(&base, None);
    let at = |y: i32| {
        chrono::NaiveDate::from_ymd_opt(y, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
    };
    let item = |d: DateTime<Utc>| ParsedItem {
        published: Some(d),
        updated: Some(d),
        links: vec!["/a.html".into()],
        ..Default::default()
    };
    // Far future: first seen, recorded as clamped.
    for year in [9999, 100_000] {
        let e = normalize(&c, item(at(year)));
        assert_eq!(
            (e.date_source, e.published),
            (DateSource::FutureClamped, Some(c.now))
        );
        assert_eq!(e.updated, Some(c.now));
    }
    // The epoch and before (year 0, negative years): no date, so first seen.
    for d in [at(1970), at(1), at(0), at(-44)] {
        let e = normalize(&c, item(d));
        assert_eq!(
            (e.date_source, e.published, e.updated),
            (DateSource::FirstSeen, None, None)
        );
    }
    // A real old date is kept.
    let e = normalize(&c, item(at(1995)));
    assert_eq!(
        (e.date_source, e.published),
        (DateSource::Feed, Some(at(1995)))
    );
}

#[test]
fn overlong_links_are_dropped() {
    let base = base();
    let c = ctx(&base, None);
    let long = format!("https://www.cs.com.cn/{}", "a".repeat(MAX_URL_BYTES));
    let item = ParsedItem {
        id: Some("g".into()),
        links: vec![long.clone(), "/short.html".into()],
        ..Default::default()
    };
    let e = normalize(&c, item);
    assert_eq!(e.link.as_deref(), Some("https://www.cs.com.cn/short.html"));
    assert_eq!(absolute(&base, &long), None);
    let fits = format!("/{}", "a".repeat(MAX_URL_BYTES - base.as_str().len() - 1));
    assert!(absolute(&base, &fits).is_some_and(|u| u.len() <= MAX_URL_BYTES));
}

#[test]
fn document_ids_identify_across_channels() {
    let base = base();
    let re = Regex::new(r"t\d{8}_(\d+)\.html").unwrap();
    let c = ctx(&base, Some(&re));
    let a = ParsedItem {
        links: vec!["https://www.cs.com.cn/sylm/jsbd/202012/t20201201_6116434.html".into()],
        ..Default::default()
    };
    let b = ParsedItem {
        links: vec!["http://cs.com.cn/xwzx/hg/202012/t20201201_6116434.html".into()],
        ..Default::default()
    };
    assert_eq!(keys_for(&c, &a)[0], "doc:cs.com.cn:6116434");
    assert_eq!(keys_for(&c, &a)[0], keys_for(&c, &b)[0]);
}
