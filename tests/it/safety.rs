//! Safety under hostile input and hostile conditions.
//!
//! - Output safety: feeds in every input format carry known XSS payloads (OWASP's filter
//!   evasion cheat sheet and mutation/namespace tricks) in every slot a publisher controls;
//!   every served document, in every output format and kind of feed, and the Hexo export, is
//!   read back with real parsers and each piece of HTML is checked with an HTML parser: no
//!   forbidden element, no event handler, no URL outside http/https/mailto, and plain-text
//!   fields (titles, authors, categories) carry no markup at all.
//! - Crash safety: `fetch` is SIGKILLed at 20 seeded points spread over an ingest of 20
//!   sources; after each the store opens, passes `PRAGMA integrity_check`, holds no
//!   half-written entry, and the next run completes with every entry stored.
//! - A full disk (a small tmpfs) fails the fetch with a line naming the source and the cause,
//!   and leaves the store intact.
//! - Load: 200 concurrent readers poll merged feeds while the daemon fetches: no errors;
//!   p50/p99 and requests per second are printed.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

/// The tests below that measure time (kill points, latencies) or fill a disk take turns, so one
/// does not skew another's figures.
static TURNS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn my_turn() -> std::sync::MutexGuard<'static, ()> {
    TURNS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// =============================================================================================
// 1. Output safety
// =============================================================================================

/// HTML payloads, each carried by every input format's HTML slots. Most come from OWASP's XSS
/// filter evasion cheat sheet; the rest are mutation-XSS and namespace-confusion tricks that
/// broke other sanitizers, and attacks on the republished document itself.
const HTML_PAYLOADS: &[&str] = &[
    r#"<script>alert('xss')</script>"#,
    r#"<SCRIPT SRC=https://xss.example/xss.js></SCRIPT>"#,
    r#"<SCRIPT/XSS SRC="https://xss.example/xss.js"></SCRIPT>"#,
    r#"<<SCRIPT>alert("XSS");//<</SCRIPT>"#,
    r#"<SCRIPT SRC=https://xss.example/xss.js?< B >"#,
    r#"<scr<script>ipt>alert(1)</scr</script>ipt>"#,
    r#"<img src=x onerror=alert(1)>"#,
    r#"<IMG SRC="javascript:alert('XSS');">"#,
    r#"<IMG SRC=JaVaScRiPt:alert('XSS')>"#,
    r#"<IMG SRC=javascript:alert(&quot;XSS&quot;)>"#,
    r#"<IMG SRC=`javascript:alert("RSnake says, 'XSS'")`>"#,
    r#"<IMG """><SCRIPT>alert("XSS")</SCRIPT>">"#,
    r#"<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;&#97;&#108;&#101;&#114;&#116;&#40;&#39;&#88;&#83;&#83;&#39;&#41;>"#,
    r#"<IMG SRC=&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114&#0000105&#0000112&#0000116&#0000058&#0000097&#0000108&#0000101&#0000114&#0000116&#0000040&#0000039&#0000088&#0000083&#0000083&#0000039&#0000041>"#,
    r#"<IMG SRC=&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A&#x61&#x6C&#x65&#x72&#x74&#x28&#x27&#x58&#x53&#x53&#x27&#x29>"#,
    "<IMG SRC=\"jav\tascript:alert('XSS');\">",
    r#"<IMG SRC="jav&#x09;ascript:alert('XSS');">"#,
    r#"<IMG SRC="jav&#x0A;ascript:alert('XSS');">"#,
    r#"<IMG SRC="jav&#x0D;ascript:alert('XSS');">"#,
    r#"<IMG SRC=" &#14;  javascript:alert('XSS');">"#,
    r#"<IMG DYNSRC="javascript:alert('XSS')">"#,
    r#"<IMG LOWSRC="javascript:alert('XSS')">"#,
    r#"<img src=x:alert(alt) onerror=eval(src) alt=0>"#,
    r#"<img srcset="javascript:alert(1) 1x, https://ok.example/a.png 2x">"#,
    r#"<img src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==">"#,
    r#"<img src="data:image/svg+xml,<svg onload=alert(1)>">"#,
    r#"<BODY onload!#$%&()*~+-_.,:;?@[/|\]^`=alert("XSS")>"#,
    r#"<body onload=alert(1)>"#,
    r#"<BODY BACKGROUND="javascript:alert('XSS')">"#,
    r#"</TITLE><SCRIPT>alert("XSS");</SCRIPT>"#,
    r#"<INPUT TYPE="IMAGE" SRC="javascript:alert('XSS');">"#,
    r#"<STYLE>li {list-style-image: url("javascript:alert('XSS')");}</STYLE><UL><LI>XSS</br>"#,
    r#"<style>@import 'https://xss.example/x.css';</style>"#,
    r#"<DIV STYLE="background-image: url(javascript:alert('XSS'))">styled</DIV>"#,
    r#"<DIV STYLE="width: expression(alert('XSS'));">expr</DIV>"#,
    r#"<a href="https://ok.example/" style="position:fixed;top:0;left:0;width:100%;height:100%">overlay</a>"#,
    r#"<svg/onload=alert('XSS')>"#,
    r#"<svg><script>alert(1)</script></svg>"#,
    r#"<svg><a xlink:href="javascript:alert(1)"><text x="20" y="20">XSS</text></a></svg>"#,
    r#"<svg><animate onbegin=alert(1) attributeName=x dur=1s>"#,
    r#"<svg><set attributeName="href" to="javascript:alert(1)"/></svg>"#,
    r#"<svg><style><img src=x onerror=alert(1)></style></svg>"#,
    r#"<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>"#,
    r#"<math><mi xlink:href="javascript:alert(1)">click</mi></math>"#,
    r#"<form><math><mtext></form><form><mglyph><style></math><img src onerror=alert(1)>"#,
    r#"<noscript><p title="</noscript><img src=x onerror=alert(1)>">"#,
    r#"<template><script>alert(1)</script></template>"#,
    r#"<META HTTP-EQUIV="refresh" CONTENT="0;url=javascript:alert('XSS');">"#,
    r#"<META HTTP-EQUIV="refresh" CONTENT="0;url=data:text/html;base64,PHNjcmlwdD5hbGVydCgnWFNTJyk8L3NjcmlwdD4K">"#,
    r#"<BASE HREF="javascript:alert('XSS');//">"#,
    r#"<base href="https://xss.example/">"#,
    r#"<link rel="import" href="https://xss.example/x.html">"#,
    r#"<link rel="stylesheet" href="javascript:alert(1)">"#,
    r#"<IFRAME SRC="javascript:alert('XSS');"></IFRAME>"#,
    r#"<iframe src=https://xss.example/ <"#,
    r#"<iframe srcdoc="<script>alert(1)</script>"></iframe>"#,
    r#"<FRAMESET><FRAME SRC="javascript:alert('XSS');"></FRAMESET>"#,
    r#"<TABLE BACKGROUND="javascript:alert('XSS')"><TR><TD BACKGROUND="javascript:alert('XSS')">cell</TD></TR></TABLE>"#,
    r#"<OBJECT TYPE="text/x-scriptlet" DATA="https://xss.example/scriptlet.html"></OBJECT>"#,
    r#"<object data="javascript:alert(1)"></object>"#,
    r#"<object data="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="></object>"#,
    r#"<EMBED SRC="data:image/svg+xml;base64,PHN2Zz48c2NyaXB0PmFsZXJ0KDEpPC9zY3JpcHQ+PC9zdmc+" type="image/svg+xml" AllowScriptAccess="always"></EMBED>"#,
    r#"<applet code="xss.class"></applet>"#,
    r#"<form action="javascript:alert(1)"><input type=submit></form>"#,
    r#"<button formaction="javascript:alert(1)">x</button>"#,
    r#"<isindex action=javascript:alert(1) type=image>"#,
    r#"<video><source onerror="alert(1)"></video>"#,
    r#"<audio src=x onerror=alert(1)>"#,
    r#"<details open ontoggle=alert(1)>d</details>"#,
    r#"<marquee onstart=alert(1)>m</marquee>"#,
    r#"<xss onpointerover=alert(1)>hover</xss>"#,
    r##"<a href="#" onclick="alert(1)">click</a>"##,
    r#"<a href="javascript:alert(1)">js</a>"#,
    r#"<a href="JaVaScRiPt:alert(1)">mixed case</a>"#,
    r#"<a href="&#106;avascript:alert(1)">entity</a>"#,
    r#"<a href="javas&#99;ript:alert(1)">entity inside</a>"#,
    r#"<a href="&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;alert(1)">hex</a>"#,
    r#"<a href="jav&#x09;ascript:alert(1)">tab entity</a>"#,
    r#"<a href="java&Tab;script:alert(1)">named tab</a>"#,
    r#"<a href="javascript&colon;alert(1)">named colon</a>"#,
    r#"<a href="&#x20;javascript:alert(1)">leading space entity</a>"#,
    r#"<a href="  javascript:alert(1)">leading spaces</a>"#,
    r#"<a href="java&#0;script:alert(1)">nul</a>"#,
    r#"<a href="vbscript:msgbox(1)">vbs</a>"#,
    r#"<a href="VBScript:msgbox(1)">vbs case</a>"#,
    r#"<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">data html</a>"#,
    r#"<a href="data:text/html,<script>alert(1)</script>">data html 2</a>"#,
    r#"<a href="feed:javascript:alert(1)">feed scheme</a>"#,
    r#"<a href="//xss.example/">protocol relative</a>"#,
    r#"<area href="javascript:alert(1)">"#,
    r#"<!--[if gte IE 4]><SCRIPT>alert('XSS');</SCRIPT><![endif]-->"#,
    r#"<![CDATA[<script>alert(1)</script>]]>"#,
    r#"&lt;script&gt;alert('entity-encoded')&lt;/script&gt;"#,
    r#"<plaintext><script>alert(1)</script>"#,
    r#"<xmp><script>alert(1)</script></xmp>"#,
    r#"<textarea><script>alert(1)</script></textarea>"#,
    r#"<title><script>alert(1)</script></title>"#,
    r#"<noembed><img src=x onerror=alert(1)></noembed>"#,
    r#"<portal src="https://xss.example/"></portal>"#,
    r#"]]><script>alert('cdata-breakout')</script>"#,
];

/// Payloads that are well-formed XML, for Atom's `type="xhtml"` content (inline XHTML).
const XHTML_PAYLOADS: &[&str] = &[
    r#"<script>alert(1)</script>"#,
    r#"<img src="x" onerror="alert(1)"/>"#,
    r#"<a href="javascript:alert(1)">js</a>"#,
    r#"<a href="JaVaScRiPt:alert(1)">js</a>"#,
    r#"<a href="jav&#x09;ascript:alert(1)">tab</a>"#,
    r#"<iframe src="javascript:alert(1)"></iframe>"#,
    r#"<object data="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="></object>"#,
    r#"<embed src="javascript:alert(1)"/>"#,
    r#"<form action="javascript:alert(1)"><button formaction="javascript:alert(1)">x</button></form>"#,
    r#"<style>@import 'https://xss.example/x.css';</style>"#,
    r#"<meta http-equiv="refresh" content="0;url=javascript:alert(1)"/>"#,
    r#"<base href="javascript:alert(1)//"/>"#,
    r#"<link rel="import" href="https://xss.example/x.html"/>"#,
    r#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>"#,
    r#"<math xmlns="http://www.w3.org/1998/Math/MathML"><mi xmlns:xlink="http://www.w3.org/1999/xlink" xlink:href="javascript:alert(1)">x</mi></math>"#,
    r#"<div style="background:url(javascript:alert(1))" onmouseover="alert(1)">hover</div>"#,
    r#"<iframe srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;"></iframe>"#,
];

/// Titles (and the other plain-text slots) carrying markup: escaped, in CDATA, double-escaped,
/// and breaking out of the element or of a CDATA section. Written as XML text content.
const RSS_TITLE_PAYLOADS: &[&str] = &[
    "&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt; title one",
    "<![CDATA[<img src=x onerror=alert(2)> title two]]>",
    "]]&gt;&lt;script&gt;alert(3)&lt;/script&gt; title three &lt;![CDATA[",
    "&amp;lt;script&amp;gt;alert(4)&amp;lt;/script&amp;gt; title four",
    "&lt;svg onload=alert(5)&gt; title five",
    "&lt;a href=\"javascript:alert(6)\"&gt;title six&lt;/a&gt;",
    "]]&gt;&lt;/description&gt;&lt;script xmlns=\"http://www.w3.org/1999/xhtml\"&gt;alert(7)&lt;/script&gt; title seven",
    "&lt;xss onpointerover=alert(8)&gt;title eight&lt;/xss&gt;",
    "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;i&gt;italic&lt;/i&gt; title nine",
    "&lt;![CDATA[&lt;/title&gt;]]&gt;&lt;img src=x onerror=alert(10)&gt; title ten",
];

/// URLs a hostile feed gives as an entry's link, id or author URL.
const URL_PAYLOADS: &[&str] = &[
    "javascript:alert(1)",
    " JaVaScRiPt:alert(1)",
    "jav\tascript:alert(1)",
    "vbscript:msgbox(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "feed:javascript:alert(1)",
];

/// Element names that must never reach a reader.
const FORBIDDEN_ELEMENTS: &[&str] = &[
    "script",
    "style",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "form",
    "input",
    "button",
    "textarea",
    "select",
    "option",
    "keygen",
    "isindex",
    "meta",
    "link",
    "base",
    "svg",
    "math",
    "template",
    "noscript",
    "noembed",
    "noframes",
    "xmp",
    "plaintext",
    "title",
    "param",
    "portal",
    "fencedframe",
    "audio",
    "video",
    "source",
    "track",
    "marquee",
    "body",
    "head",
    "html",
    "image",
    "set",
    "animate",
];

/// Attributes that must never reach a reader (beyond every `on*`): inline CSS, nested
/// documents, form targets, legacy URL carriers.
const FORBIDDEN_ATTRIBUTES: &[&str] = &[
    "style",
    "srcdoc",
    "formaction",
    "action",
    "background",
    "dynsrc",
    "lowsrc",
    "http-equiv",
    "xmlns",
    "data",
    "codebase",
    "classid",
    "allowscriptaccess",
];

/// Attributes whose value is a URL (or, for `srcset`, a list of them).
const URL_ATTRIBUTES: &[&str] = &[
    "href", "src", "cite", "poster", "longdesc", "usemap", "ping", "manifest", "icon", "profile",
    "archive", "itemtype",
];

/// URL schemes a republished URL may have. `data:` is refused even for images (ammonia's
/// default, kept): an image is worth a link, and `data:image/svg+xml` carries script.
const ALLOWED_SCHEMES: &[&str] = &["http", "https", "mailto"];

/// A URL as a browser reads it: tabs and newlines removed anywhere, leading and trailing C0
/// controls and spaces trimmed, lower case (for the scheme test).
fn browser_url(value: &str) -> String {
    value
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect::<String>()
        .trim_matches(|c: char| c <= ' ')
        .to_ascii_lowercase()
}

/// Whether a value, read as a URL, runs script or a document of its own.
fn dangerous_url(value: &str) -> bool {
    let v = browser_url(value);
    ["javascript:", "vbscript:", "data:", "livescript:", "mocha:"]
        .iter()
        .any(|s| v.starts_with(s))
}

/// Problems of a republished URL: it must be absolute http/https/mailto.
fn check_url(place: &str, value: &str, problems: &mut Vec<String>) {
    match url::Url::parse(value.trim()) {
        Ok(u) if ALLOWED_SCHEMES.contains(&u.scheme()) && !dangerous_url(value) => {}
        Ok(u) => problems.push(format!(
            "{place}: URL with scheme {:?}: {value:?}",
            u.scheme()
        )),
        Err(e) => problems.push(format!("{place}: not an absolute URL ({e}): {value:?}")),
    }
}

/// Problems of an id (Atom `id`, RSS `guid`, JSON `id`): any string, but not a script URL a
/// reader might follow.
fn check_id(place: &str, value: &str, problems: &mut Vec<String>) {
    let v = browser_url(value);
    if dangerous_url(value) || dangerous_url(v.strip_prefix("feed:").unwrap_or(&v)) {
        problems.push(format!("{place}: id is a script URL: {value:?}"));
    }
}

/// Problems of a piece of republished HTML, parsed as a browser (html5ever) would, then
/// serialized and parsed again (mutation XSS shows in the second reading).
/// Read twice: as a fragment (a reader's `innerHTML`) and inside a whole page (a reader that
/// pastes it into its template, where `<body onload>` lends its handler to the page's body).
fn check_html(place: &str, html: &str, problems: &mut Vec<String>) {
    let first = scraper::Html::parse_fragment(html);
    check_tree(place, &first, html, problems);
    let again = first.root_element().inner_html();
    let second = scraper::Html::parse_fragment(&again);
    check_tree(&format!("{place} (re-parsed)"), &second, html, problems);
    let page = scraper::Html::parse_document(&format!(
        "<!DOCTYPE html><html><head><title>reader</title></head><body><div>{html}</div></body></html>"
    ));
    check_tree(&format!("{place} (in a page)"), &page, html, problems);
}

fn check_tree(place: &str, doc: &scraper::Html, html: &str, problems: &mut Vec<String>) {
    let root = doc.root_element();
    // A whole page: its own html, head, title and body are the reader's, but must gain no
    // attribute.
    let page = doc.tree.root().children().any(|n| n.value().is_doctype());
    for (index, node) in root.descendants().enumerate() {
        let Some(el) = scraper::ElementRef::wrap(node) else {
            continue;
        };
        let name = el.value().name().to_ascii_lowercase();
        let parent = node
            .parent()
            .and_then(scraper::ElementRef::wrap)
            .map(|p| p.value().name().to_string());
        let readers = page
            && (matches!(name.as_str(), "html" | "head" | "body")
                || (name == "title" && parent.as_deref() == Some("head"))
                || (name == "div"
                    && parent.as_deref() == Some("body")
                    && node.prev_sibling().is_none()));
        if readers {
            if let Some((attr, _)) = el.value().attrs().next() {
                problems.push(format!(
                    "{place}: attribute {attr}= reached the page's <{name}> in {html:?}"
                ));
            }
            continue;
        }
        if index == 0 {
            // The fragment's own root.
            continue;
        }
        if FORBIDDEN_ELEMENTS.contains(&name.as_str()) {
            problems.push(format!("{place}: element <{name}> in {html:?}"));
        }
        for (attr, value) in el.value().attrs() {
            let attr = attr.to_ascii_lowercase();
            if attr.starts_with("on") {
                problems.push(format!(
                    "{place}: event handler {attr}= on <{name}> in {html:?}"
                ));
            }
            if FORBIDDEN_ATTRIBUTES.contains(&attr.as_str()) {
                problems.push(format!(
                    "{place}: attribute {attr}= on <{name}> in {html:?}"
                ));
            }
            if dangerous_url(value) {
                problems.push(format!(
                    "{place}: script/data URL in {attr}= on <{name}>: {value:?} in {html:?}"
                ));
            }
            if URL_ATTRIBUTES.contains(&attr.as_str()) {
                check_url(&format!("{place}: <{name} {attr}>"), value, problems);
            }
            if attr == "srcset" {
                for candidate in value.split(',') {
                    let url = candidate.split_whitespace().next().unwrap_or("");
                    check_url(&format!("{place}: <{name} srcset>"), url, problems);
                }
            }
        }
    }
}

/// Problems of a plain-text field (a title, an author, a category): read as HTML by the least
/// careful reader, it must still be only text.
fn check_plain(place: &str, text: &str, problems: &mut Vec<String>) {
    let doc = scraper::Html::parse_fragment(text);
    let elements: Vec<String> = doc
        .root_element()
        .descendants()
        .skip(1)
        .filter_map(scraper::ElementRef::wrap)
        .map(|e| e.value().name().to_string())
        .collect();
    if !elements.is_empty() {
        problems.push(format!(
            "{place}: plain text carries markup (elements {elements:?}): {text:?}"
        ));
    }
}

fn xml_escape(s: &str) -> String {
    html_escape::encode_safe(s).into_owned()
}

/// An RSS `content:encoded` value: CDATA unless the payload closes one.
fn cdata_or_escaped(html: &str) -> String {
    if html.contains("]]>") {
        xml_escape(html)
    } else {
        format!("<![CDATA[{html}]]>")
    }
}

/// `<p>SAFE-{tag}</p>` opens every payload's HTML: it must come through, so an empty output
/// cannot pass for a safe one.
fn marker(tag: &str) -> String {
    format!("SAFE-{tag}")
}

fn payload_html(tag: &str, payload: &str) -> String {
    format!("<p>{}</p>{payload}<p>after {tag}</p>", marker(tag))
}

fn date(n: usize) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc
        .with_ymd_and_hms(2024, 3, 1, 0, 0, 0)
        .unwrap()
        .checked_add_signed(chrono::Duration::minutes(n as i64))
        .unwrap()
}

/// An RSS 2.0 feed: every payload in `description` (escaped) and `content:encoded` (CDATA),
/// hostile titles, links, guids, authors and categories. Returns the feed and the markers
/// its entries must show.
fn hostile_rss() -> (String, Vec<String>) {
    let mut out = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>Hostile RSS</title><link>https://rss.example/</link><description>payloads</description>
"#,
    );
    let mut markers = Vec::new();
    for (n, payload) in HTML_PAYLOADS.iter().enumerate() {
        let tag = format!("rss-{n}");
        let html = payload_html(&tag, payload);
        let _ = writeln!(
            out,
            "<item><title>RSS payload {n}</title><link>https://rss.example/item/{n}</link>\
             <guid isPermaLink=\"false\">rss-{n}</guid><pubDate>{}</pubDate>\
             <description>{}</description><content:encoded>{}</content:encoded></item>",
            date(n).to_rfc2822(),
            xml_escape(&html),
            cdata_or_escaped(&html),
        );
        markers.push(marker(&tag));
    }
    for (n, title) in RSS_TITLE_PAYLOADS.iter().enumerate() {
        let tag = format!("rss-title-{n}");
        let _ = writeln!(
            out,
            "<item><title>{title}</title><link>https://rss.example/title/{n}</link>\
             <guid>rss-title-{n}</guid><pubDate>{}</pubDate>\
             <dc:creator>{title}</dc:creator><category>{title}</category>\
             <description>{}</description></item>",
            date(200 + n).to_rfc2822(),
            xml_escape(&payload_html(&tag, "")),
        );
        markers.push(marker(&tag));
    }
    for (n, url) in URL_PAYLOADS.iter().enumerate() {
        let tag = format!("rss-url-{n}");
        let url = xml_escape(url);
        let _ = writeln!(
            out,
            "<item><title>RSS hostile link {n}</title><link>{url}</link>\
             <guid isPermaLink=\"true\">{url}</guid><pubDate>{}</pubDate>\
             <author>evil@xss.example (&lt;img src=x onerror=alert({n})&gt;)</author>\
             <enclosure url=\"{url}\" length=\"1\" type=\"text/html\"/>\
             <source url=\"{url}\">&lt;script&gt;alert({n})&lt;/script&gt;</source>\
             <description>{}</description></item>",
            date(300 + n).to_rfc2822(),
            xml_escape(&payload_html(
                &tag,
                r#"<a href="/relative/ok">relative</a>"#
            )),
        );
        markers.push(marker(&tag));
    }
    out.push_str("</channel></rss>\n");
    (out, markers)
}

/// An Atom 1.0 feed: payloads in `type="html"` content and summary, well-formed ones in
/// `type="xhtml"` content, hostile `type="html"`/`"xhtml"` titles, links, ids and authors.
fn hostile_atom() -> (String, Vec<String>) {
    let mut out = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Hostile Atom</title><id>urn:hostile-atom</id>
<updated>2024-03-02T00:00:00Z</updated><author><name>atom</name></author>
<link rel="self" href="https://atom.example/feed.atom"/>
"#,
    );
    let mut markers = Vec::new();
    for (n, payload) in HTML_PAYLOADS.iter().enumerate() {
        let tag = format!("atom-{n}");
        let html = payload_html(&tag, payload);
        let summary = payload_html(&format!("atom-summary-{n}"), payload);
        let _ = writeln!(
            out,
            "<entry><title type=\"text\">Atom payload {n}</title><id>urn:atom:{n}</id>\
             <link rel=\"alternate\" href=\"https://atom.example/item/{n}\"/>\
             <updated>{d}</updated><published>{d}</published>\
             <summary type=\"html\">{}</summary><content type=\"html\">{}</content></entry>",
            xml_escape(&summary),
            xml_escape(&html),
            d = date(n).to_rfc3339(),
        );
        markers.push(marker(&tag));
    }
    for (n, payload) in XHTML_PAYLOADS.iter().enumerate() {
        let tag = format!("atom-xhtml-{n}");
        let _ = writeln!(
            out,
            "<entry><title type=\"xhtml\"><div xmlns=\"http://www.w3.org/1999/xhtml\">\
             XHTML title {n} {payload}</div></title><id>urn:atom:xhtml:{n}</id>\
             <link rel=\"alternate\" href=\"https://atom.example/xhtml/{n}\"/>\
             <updated>{d}</updated>\
             <content type=\"xhtml\"><div xmlns=\"http://www.w3.org/1999/xhtml\">\
             <p>{}</p>{payload}</div></content></entry>",
            marker(&tag),
            d = date(400 + n).to_rfc3339(),
        );
        markers.push(marker(&tag));
    }
    for (n, title) in RSS_TITLE_PAYLOADS.iter().enumerate() {
        let tag = format!("atom-title-{n}");
        // As type="html" the escaped markup is markup; as text it is literal text.
        let kind = if n % 2 == 0 { "html" } else { "text" };
        let _ = writeln!(
            out,
            "<entry><title type=\"{kind}\">{title}</title><id>urn:atom:title:{n}</id>\
             <link rel=\"alternate\" href=\"https://atom.example/title/{n}\"/>\
             <updated>{d}</updated><author><name>{title}</name></author>\
             <category term=\"{}\" label=\"{}\"/>\
             <content type=\"html\">{}</content></entry>",
            xml_escape("<script>alert(1)</script>"),
            xml_escape("<img src=x onerror=alert(1)>"),
            xml_escape(&payload_html(&tag, "")),
            d = date(500 + n).to_rfc3339(),
        );
        markers.push(marker(&tag));
    }
    for (n, url) in URL_PAYLOADS.iter().enumerate() {
        let tag = format!("atom-url-{n}");
        let url = xml_escape(url);
        let _ = writeln!(
            out,
            "<entry><title>Atom hostile link {n}</title><id>{url}</id>\
             <link rel=\"alternate\" href=\"{url}\"/><link rel=\"via\" href=\"{url}\"/>\
             <updated>{d}</updated><author><name>n</name><uri>{url}</uri></author>\
             <content type=\"html\">{}</content></entry>",
            xml_escape(&payload_html(&tag, "")),
            d = date(600 + n).to_rfc3339(),
        );
        markers.push(marker(&tag));
    }
    out.push_str("</feed>\n");
    (out, markers)
}

/// A JSON Feed 1.1: payloads in `content_html` and `summary`, hostile titles, urls, ids,
/// authors, tags and images.
fn hostile_json() -> (String, Vec<String>) {
    let mut items = Vec::new();
    let mut markers = Vec::new();
    for (n, payload) in HTML_PAYLOADS.iter().enumerate() {
        let tag = format!("json-{n}");
        items.push(serde_json::json!({
            "id": format!("json-{n}"),
            "url": format!("https://json.example/item/{n}"),
            "title": format!("JSON payload {n}"),
            "content_html": payload_html(&tag, payload),
            "summary": payload,
            "date_published": date(n).to_rfc3339(),
        }));
        markers.push(marker(&tag));
    }
    for (n, url) in URL_PAYLOADS.iter().enumerate() {
        let tag = format!("json-url-{n}");
        let title = html_escape::decode_html_entities(RSS_TITLE_PAYLOADS[n]).into_owned();
        items.push(serde_json::json!({
            "id": url,
            "url": url,
            "external_url": url,
            "title": title,
            "content_html": payload_html(&tag, r#"<img src="/relative.png">"#),
            "content_text": "<script>alert('content_text')</script>",
            "image": url,
            "banner_image": url,
            "date_published": date(700 + n).to_rfc3339(),
            "authors": [{"name": "<img src=x onerror=alert(1)>", "url": url, "avatar": url}],
            "tags": ["<script>alert(1)</script>", "<b>bold</b>"],
        }));
        markers.push(marker(&tag));
    }
    let feed = serde_json::json!({
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Hostile JSON",
        "home_page_url": "https://json.example/",
        "items": items,
    });
    (
        serde_json::to_string_pretty(&feed).expect("serializing the hostile JSON Feed"),
        markers,
    )
}

/// Element names a served RSS document may contain (qualified as written by `publish`).
const RSS_VOCABULARY: &[&str] = &[
    "rss",
    "channel",
    "title",
    "link",
    "description",
    "language",
    "copyright",
    "managingEditor",
    "webMaster",
    "pubDate",
    "lastBuildDate",
    "category",
    "generator",
    "docs",
    "ttl",
    "item",
    "author",
    "comments",
    "enclosure",
    "guid",
    "source",
    "atom:link",
    "dc:creator",
    "content:encoded",
];

const ATOM_VOCABULARY: &[&str] = &[
    "feed",
    "title",
    "id",
    "updated",
    "author",
    "contributor",
    "name",
    "email",
    "uri",
    "subtitle",
    "generator",
    "link",
    "entry",
    "published",
    "category",
    "summary",
    "content",
    "source",
    "rights",
    "icon",
    "logo",
];

/// The XML itself: well-formed, no DTD, no processing instruction but the declaration, and
/// only the format's own elements (a CDATA breakout would add others), except inside
/// `type="xhtml"` text constructs.
fn check_xml_document(place: &str, xml: &str, vocabulary: &[&str], problems: &mut Vec<String>) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut xhtml_depth = 0usize;
    loop {
        match reader.read_event() {
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if xhtml_depth > 0 {
                    xhtml_depth += 1;
                    continue;
                }
                if !vocabulary.contains(&name.as_str()) {
                    problems.push(format!("{place}: unexpected XML element <{name}>"));
                }
                let xhtml = e
                    .attributes()
                    .flatten()
                    .any(|a| a.key.as_ref() == b"type" && a.value.as_ref() == b"xhtml");
                if xhtml {
                    xhtml_depth = 1;
                }
            }
            Ok(Event::Empty(e)) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if xhtml_depth == 0 && !vocabulary.contains(&name.as_str()) {
                    problems.push(format!("{place}: unexpected XML element <{name}/>"));
                }
            }
            Ok(Event::End(_)) => {
                xhtml_depth = xhtml_depth.saturating_sub(1);
            }
            Ok(Event::DocType(d)) => {
                problems.push(format!("{place}: DOCTYPE in a served feed: {d:?}"));
            }
            Ok(Event::PI(p)) => {
                problems.push(format!("{place}: processing instruction: {p:?}"));
            }
            Ok(_) => {}
            Err(e) => {
                problems.push(format!(
                    "{place}: not well-formed XML at {}: {e}",
                    reader.buffer_position()
                ));
                break;
            }
        }
    }
}

/// Every HTML and plain-text field of a served document, checked; returns the entries'
/// HTML joined (to look for the markers) and how many entries there were.
fn check_served(place: &str, ext: &str, body: &str, problems: &mut Vec<String>) -> (String, usize) {
    let mut all_html = String::new();
    let count;
    match ext {
        "rss" => {
            check_xml_document(place, body, RSS_VOCABULARY, problems);
            let channel = rss::Channel::read_from(body.as_bytes())
                .unwrap_or_else(|e| panic!("{place}: the rss crate cannot read it: {e}\n{body}"));
            check_plain(&format!("{place} channel title"), channel.title(), problems);
            count = channel.items().len();
            for (i, item) in channel.items().iter().enumerate() {
                let at = format!("{place} item {i}");
                check_plain(&format!("{at} title"), item.title().unwrap_or(""), problems);
                for (what, html) in [
                    ("description", item.description()),
                    ("content:encoded", item.content()),
                ] {
                    if let Some(html) = html {
                        check_html(&format!("{at} {what}"), html, problems);
                        all_html.push_str(html);
                        all_html.push('\n');
                    }
                }
                if let Some(link) = item.link() {
                    check_url(&format!("{at} link"), link, problems);
                }
                if let Some(guid) = item.guid() {
                    if guid.is_permalink() {
                        check_url(&format!("{at} permalink guid"), guid.value(), problems);
                    }
                    check_id(&format!("{at} guid"), guid.value(), problems);
                }
                if let Some(author) = item.author() {
                    check_plain(&format!("{at} author"), author, problems);
                }
                for c in item.categories() {
                    check_plain(&format!("{at} category"), c.name(), problems);
                }
                if let Some(dc) = item.dublin_core_ext() {
                    for creator in dc.creators() {
                        check_plain(&format!("{at} dc:creator"), creator, problems);
                    }
                }
                if let Some(source) = item.source() {
                    check_url(&format!("{at} source url"), source.url(), problems);
                    check_plain(
                        &format!("{at} source title"),
                        source.title().unwrap_or(""),
                        problems,
                    );
                }
                if let Some(enclosure) = item.enclosure() {
                    check_url(&format!("{at} enclosure"), enclosure.url(), problems);
                }
            }
        }
        "atom" => {
            check_xml_document(place, body, ATOM_VOCABULARY, problems);
            let feed = atom_syndication::Feed::read_from(body.as_bytes()).unwrap_or_else(|e| {
                panic!("{place}: atom_syndication cannot read it: {e}\n{body}")
            });
            check_plain(
                &format!("{place} feed title"),
                &feed.title().value,
                problems,
            );
            count = feed.entries().len();
            for (i, entry) in feed.entries().iter().enumerate() {
                let at = format!("{place} entry {i}");
                let title = entry.title();
                if title.r#type != atom_syndication::TextType::Text {
                    problems.push(format!("{at}: title is not type=\"text\": {title:?}"));
                }
                check_plain(&format!("{at} title"), &title.value, problems);
                check_id(&format!("{at} id"), entry.id(), problems);
                for link in entry.links() {
                    check_url(
                        &format!("{at} link rel={}", link.rel()),
                        link.href(),
                        problems,
                    );
                    if let Some(t) = link.title() {
                        check_plain(&format!("{at} link title"), t, problems);
                    }
                }
                for person in entry.authors().iter().chain(entry.contributors()) {
                    check_plain(&format!("{at} author name"), person.name(), problems);
                    if let Some(uri) = person.uri() {
                        check_url(&format!("{at} author uri"), uri, problems);
                    }
                }
                for c in entry.categories() {
                    check_plain(&format!("{at} category term"), c.term(), problems);
                    if let Some(label) = c.label() {
                        check_plain(&format!("{at} category label"), label, problems);
                    }
                }
                if let Some(summary) = entry.summary() {
                    match summary.r#type {
                        atom_syndication::TextType::Text => {
                            check_plain(&format!("{at} summary"), &summary.value, problems)
                        }
                        _ => check_html(&format!("{at} summary"), &summary.value, problems),
                    }
                    all_html.push_str(&summary.value);
                    all_html.push('\n');
                }
                if let Some(content) = entry.content() {
                    if let Some(src) = content.src() {
                        check_url(&format!("{at} content src"), src, problems);
                    }
                    let value = content.value().unwrap_or("");
                    match content.content_type() {
                        Some("html") | Some("xhtml") | Some("text/html") => {
                            check_html(&format!("{at} content"), value, problems)
                        }
                        None | Some("text") => {
                            check_plain(&format!("{at} content"), value, problems)
                        }
                        Some(other) => problems.push(format!("{at}: content type {other:?}")),
                    }
                    all_html.push_str(value);
                    all_html.push('\n');
                }
                if let Some(source) = entry.source() {
                    check_plain(
                        &format!("{at} source title"),
                        &source.title().value,
                        problems,
                    );
                    for link in source.links() {
                        check_url(&format!("{at} source link"), link.href(), problems);
                    }
                }
            }
        }
        "json" => {
            let doc: serde_json::Value = serde_json::from_str(body)
                .unwrap_or_else(|e| panic!("{place}: not JSON: {e}\n{body}"));
            let s = |v: &serde_json::Value, k: &str| {
                v.get(k).and_then(|x| x.as_str()).map(str::to_string)
            };
            check_plain(
                &format!("{place} feed title"),
                &s(&doc, "title").unwrap_or_default(),
                problems,
            );
            let items = doc["items"].as_array().cloned().unwrap_or_default();
            count = items.len();
            for (i, item) in items.iter().enumerate() {
                let at = format!("{place} item {i}");
                check_plain(
                    &format!("{at} title"),
                    &s(item, "title").unwrap_or_default(),
                    problems,
                );
                if let Some(id) = s(item, "id") {
                    check_id(&format!("{at} id"), &id, problems);
                }
                for key in ["url", "external_url", "image", "banner_image"] {
                    if let Some(u) = s(item, key) {
                        check_url(&format!("{at} {key}"), &u, problems);
                    }
                }
                if let Some(html) = s(item, "content_html") {
                    check_html(&format!("{at} content_html"), &html, problems);
                    all_html.push_str(&html);
                    all_html.push('\n');
                }
                for key in ["content_text", "summary"] {
                    if let Some(text) = s(item, key) {
                        check_plain(&format!("{at} {key}"), &text, problems);
                    }
                }
                for a in item["authors"].as_array().into_iter().flatten() {
                    check_plain(
                        &format!("{at} author name"),
                        &s(a, "name").unwrap_or_default(),
                        problems,
                    );
                    for key in ["url", "avatar"] {
                        if let Some(u) = s(a, key) {
                            check_url(&format!("{at} author {key}"), &u, problems);
                        }
                    }
                }
                for t in item["tags"].as_array().into_iter().flatten() {
                    check_plain(&format!("{at} tag"), t.as_str().unwrap_or(""), problems);
                }
                for src in item["_tributary"]["sources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    check_plain(
                        &format!("{at} _tributary source name"),
                        &s(src, "name").unwrap_or_default(),
                        problems,
                    );
                    for key in ["feed_url", "url"] {
                        if let Some(u) = s(src, key) {
                            check_url(&format!("{at} _tributary source {key}"), &u, problems);
                        }
                    }
                }
            }
        }
        other => panic!("no format {other}"),
    }
    (all_html, count)
}

/// The problems grouped by what is wrong (the text after the place), each with how often it
/// was seen and the first place.
fn report(problems: &[String]) -> String {
    let mut groups: std::collections::BTreeMap<&str, (usize, &str)> = Default::default();
    for p in problems {
        let (place, what) = p.split_once(": ").unwrap_or(("", p));
        groups.entry(what).or_insert((0, place)).0 += 1;
    }
    let mut out = format!("{} problems, {} distinct:\n", problems.len(), groups.len());
    for (what, (n, place)) in groups.iter().take(120) {
        let _ = writeln!(out, "  {n:4} × {what}   [first at {place}]");
    }
    if groups.len() > 120 {
        let _ = writeln!(out, "  … and {} more", groups.len() - 120);
    }
    out
}

/// The checks themselves catch what they look for: every payload that is markup, unsanitized,
/// fails them, and so do the hostile titles and URLs; harmless text passes.
#[test]
fn the_checks_catch_every_raw_payload() {
    // Payloads that an HTML parser reads as text, a comment or an element named `scr<script`:
    // harmless as they are.
    const INERT: &[&str] = &[
        "<!--[if gte IE 4]>",
        "<![CDATA[<script>",
        "&lt;script&gt;alert('entity-encoded')",
        "<scr<script>ipt>",
        // A frameset after body content is ignored.
        "<FRAMESET>",
    ];
    for payload in HTML_PAYLOADS {
        let mut problems = Vec::new();
        check_html("raw", payload, &mut problems);
        let inert = INERT.iter().any(|p| payload.starts_with(p));
        assert_eq!(
            problems.is_empty(),
            inert,
            "raw payload {payload:?}: {problems:?}"
        );
    }
    for payload in XHTML_PAYLOADS {
        let mut problems = Vec::new();
        check_html("raw xhtml", payload, &mut problems);
        assert!(!problems.is_empty(), "raw payload {payload:?} passes");
    }
    for title in RSS_TITLE_PAYLOADS {
        // As XML reads it, then once more, as the feed that escaped it twice meant.
        let once = html_escape::decode_html_entities(title).replace("<![CDATA[", "");
        let text = html_escape::decode_html_entities(&once).into_owned();
        let mut problems = Vec::new();
        check_plain("raw title", &text, &mut problems);
        assert!(!problems.is_empty(), "raw title {text:?} passes");
    }
    for url in URL_PAYLOADS {
        let (mut as_url, mut as_id) = (Vec::new(), Vec::new());
        check_url("raw", url, &mut as_url);
        check_id("raw", url, &mut as_id);
        assert!(
            !as_url.is_empty() && !as_id.is_empty(),
            "raw URL {url:?} passes"
        );
    }
    let mut problems = Vec::new();
    check_html(
        "clean",
        r#"<p>a &lt;b&gt; <a href="https://x.example/?a=1&amp;b=2" rel="noopener noreferrer">x</a>
           <img src="https://x.example/a.png" alt="a"> <a href="mailto:a@x.example">m</a></p>"#,
        &mut problems,
    );
    check_plain("clean", "a < b && c > d, AT&T, 央行：<降准>", &mut problems);
    check_url("clean", "https://x.example/a", &mut problems);
    check_id("clean", "tag:x.example,2024:javascript-tips", &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
}

const XSS_CATEGORY: &str = "hostile";
const XSS_TAG: &str = "payloads";

#[test]
fn hostile_content_is_republished_safe_in_every_format_and_feed() {
    let _turn = my_turn();
    let fixtures = FixtureServer::start_with_files(Default::default());
    let (rss, rss_markers) = hostile_rss();
    let (atom, atom_markers) = hostile_atom();
    let (json, json_markers) = hostile_json();
    fixtures.set("/hostile.xml", rss.clone());
    // The same items again from another source: the entries are shared, so merged feeds name a
    // second source ("Also reported by") with the hostile links.
    fixtures.set("/mirror.xml", rss);
    fixtures.set("/hostile.atom", atom);
    fixtures.set("/hostile.json", json);

    let dir = tempfile::tempdir().expect("a temp folder");
    let listen = free_addr();
    let sources = [
        Source::new(
            "hostile-rss",
            r#"RSS payloads & "quotes" 'apos' < less"#,
            &fixtures.url("/hostile.xml"),
            XSS_CATEGORY,
        )
        .tags(&[XSS_TAG]),
        Source::new(
            "hostile-mirror",
            "Mirror > of < RSS & co",
            &fixtures.url("/mirror.xml"),
            XSS_CATEGORY,
        ),
        Source::new(
            "hostile-atom",
            "Atom payloads",
            &fixtures.url("/hostile.atom"),
            XSS_CATEGORY,
        )
        .tags(&[XSS_TAG]),
        Source::new(
            "hostile-json",
            "JSON payloads",
            &fixtures.url("/hostile.json"),
            "other",
        ),
    ];
    let config = write_config(&dir.path().join("conf"), listen, &sources);
    let (code, stdout, stderr) = run_fetch(&config, &[]);
    assert_eq!(
        code, 0,
        "fetch of the hostile feeds\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();

    let mut problems = Vec::new();
    let feeds = vec![
        (format!("/feeds/{XSS_CATEGORY}"), None),
        ("/feeds/other".to_string(), None),
        ("/feeds/all".to_string(), None),
        (format!("/tags/{XSS_TAG}"), None),
        ("/sources/hostile-rss".to_string(), Some(&rss_markers)),
        ("/sources/hostile-mirror".to_string(), Some(&rss_markers)),
        ("/sources/hostile-atom".to_string(), Some(&atom_markers)),
        ("/sources/hostile-json".to_string(), Some(&json_markers)),
    ];
    let mut checked = 0;
    for (path, markers) in &feeds {
        for ext in ["rss", "atom", "json"] {
            for query in ["?limit=500", "?limit=500&q=alert"] {
                let url = serve.url(&format!("{path}.{ext}{query}"));
                let resp = http_get(&url);
                assert_eq!(resp.status, 200, "GET {url}: {}", resp.body);
                let (html, count) = check_served(
                    &format!("{path}.{ext}{query}"),
                    ext,
                    &resp.body,
                    &mut problems,
                );
                checked += count;
                if query == "?limit=500" {
                    assert!(count > 0, "GET {url} has no entries\n{}", resp.body);
                    if let Some(markers) = markers {
                        assert_eq!(count, markers.len(), "GET {url}: one entry per item served");
                        let missing: Vec<&String> = markers
                            .iter()
                            .filter(|m| !html.contains(m.as_str()))
                            .collect();
                        assert!(
                            missing.is_empty(),
                            "GET {url}: the text around the payloads was lost: {missing:?}"
                        );
                    }
                }
            }
        }
    }

    // The merged feed names the mirror (or the original) beside each shared entry.
    let merged = http_get(&serve.url(&format!("/feeds/{XSS_CATEGORY}.json?limit=500"))).body;
    assert!(
        merged.contains("Also reported by"),
        "the shared entries name their second source\n{merged}"
    );

    // Hostile titles lose their markup, not their words.
    let titles: Vec<String> = serde_json::from_str::<serde_json::Value>(
        &http_get(&serve.url("/sources/hostile-rss.json?limit=500")).body,
    )
    .expect("JSON Feed")["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["title"].as_str().map(str::to_string))
        .collect();
    for word in [
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(&format!("title {word}"))),
            "no title says \"title {word}\": {titles:?}"
        );
    }

    // The static export republishes the same HTML.
    let out = dir.path().join("posts");
    let mut cmd = tributary_command(&config);
    cmd.args(["export", "--format", "hexo", "--out"]).arg(&out);
    let (code, stdout, stderr) = run_bounded(cmd, FETCH_DEADLINE);
    assert_eq!(code, 0, "export\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let mut posts = 0;
    for file in fs::read_dir(&out).expect("listing the export") {
        let path = file.expect("an exported file").path();
        let text = fs::read_to_string(&path).expect("reading a post");
        let place = format!(
            "export {}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        let (front, body) = text
            .strip_prefix("---\n")
            .and_then(|t| t.split_once("\n---\n"))
            .unwrap_or_else(|| panic!("{place}: no front matter:\n{text}"));
        check_html(&place, body, &mut problems);
        for line in front.lines() {
            if let Some(title) = line.strip_prefix("title: ") {
                let title = title.trim_matches('\'').replace("''", "'");
                check_plain(&format!("{place} title"), &title, &mut problems);
            }
            for key in ["headimg: ", "thumbnail: "] {
                if let Some(url) = line.strip_prefix(key) {
                    check_url(
                        &format!("{place} {key}"),
                        url.trim_matches('\''),
                        &mut problems,
                    );
                }
            }
        }
        posts += 1;
    }
    assert!(posts > 0, "the export wrote no post");

    assert!(problems.is_empty(), "{}", report(&problems));
    eprintln!(
        "checked {checked} served entries in {} documents and {posts} exported posts",
        feeds.len() * 6
    );
    drop(serve);
}

// =============================================================================================
// Generated feeds for the crash, disk-full and load tests
// =============================================================================================

/// SplitMix64: a seeded, dependency-free generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..1.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A random lower-case word of 3 to 9 letters: diverse enough that texts share few
    /// shingles, as real articles do.
    fn word(&mut self) -> String {
        let n = 3 + (self.next() % 7) as usize;
        (0..n)
            .map(|_| char::from(b'a' + (self.next() % 26) as u8))
            .collect()
    }

    fn words(&mut self, n: usize) -> String {
        (0..n).map(|_| self.word()).collect::<Vec<_>>().join(" ")
    }
}

/// An RSS feed of `items` distinct items for generated source `source` (`first` is the number
/// of its first item, so a later version can add items). Texts are random words, so no two
/// items are duplicates or near-duplicates.
fn generated_rss(source: usize, first: usize, items: usize, body_words: usize) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel>\
         <title>Generated {source}</title><link>https://gen{source}.example/</link>\
         <description>generated</description>\n"
    );
    for i in (first..first + items).rev() {
        // Each item's text depends only on its source and number: a longer feed repeats the
        // shorter one's items unchanged.
        let mut rng = Rng(0x5EED_0000 ^ ((source as u64) << 32) ^ (i as u64));
        let _ = writeln!(
            out,
            "<item><title>Gen {source}-{i} {}</title><link>https://gen{source}.example/a/{i}</link>\
             <guid isPermaLink=\"false\">gen-{source}-{i}</guid><pubDate>{}</pubDate>\
             <description>&lt;p&gt;{}&lt;/p&gt;</description></item>",
            rng.words(5),
            generated_date(i).to_rfc2822(),
            rng.words(body_words),
        );
    }
    out.push_str("</channel></rss>\n");
    out
}

/// Item `i`'s date: four days apart from 1990 on, so no two items of a source fall in one
/// dedupe window (72 hours) and ingest cost stays linear, as with a real backlog.
fn generated_date(i: usize) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc.with_ymd_and_hms(1990, 1, 1, 0, 0, 0).unwrap()
        + chrono::Duration::days(4 * i as i64)
}

fn generated_id(source: usize) -> String {
    format!("gen-{source:02}")
}

fn generated_path(source: usize) -> String {
    format!("/gen-{source:02}.xml")
}

/// `count` generated sources served by `fixtures`, `items` each.
fn generated_sources(
    fixtures: &FixtureServer,
    count: usize,
    items: usize,
    body_words: usize,
    category: impl Fn(usize) -> String,
) -> Vec<Source> {
    (0..count)
        .map(|s| {
            fixtures.set(&generated_path(s), generated_rss(s, 0, items, body_words));
            Source::new(
                &generated_id(s),
                &format!("Generated {s}"),
                &fixtures.url(&generated_path(s)),
                &category(s),
            )
        })
        .collect()
}

/// The checks every store must pass, whatever happened to the process writing it: on SQLite
/// its own integrity check, foreign keys and the search index's check (PostgreSQL's server
/// checks its own files and keys); on both, no half-written entry (each has its source link,
/// its keys and its fingerprint; a source's batch is stored whole or not at all; each cluster
/// shows exactly one member). Returns the entry count.
fn check_store(config: &Path, per_source: Option<usize>, what: &str) -> i64 {
    if !on_postgres() {
        check_sqlite_file(config, what);
    }
    for (sql, meaning) in [
        (
            "SELECT COUNT(*) FROM entries e
             WHERE NOT EXISTS (SELECT 1 FROM entry_sources es WHERE es.entry_id = e.id)",
            "entries with no source",
        ),
        (
            "SELECT COUNT(*) FROM entry_sources es
             WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE e.id = es.entry_id)",
            "source links to no entry",
        ),
        (
            "SELECT COUNT(*) FROM entries e
             WHERE NOT EXISTS (SELECT 1 FROM entry_keys k WHERE k.entry_id = e.id)",
            "entries with no identity key",
        ),
        (
            "SELECT COUNT(*) FROM entry_keys k
             WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE e.id = k.entry_id)",
            "identity keys of no entry",
        ),
        (
            "SELECT COUNT(*) FROM entries e
             WHERE title = '' OR cluster_id IS NULL
                OR NOT EXISTS (SELECT 1 FROM fingerprints f
                               WHERE f.entry_id = e.id AND f.title != '')",
            "entries without title, fingerprint or cluster",
        ),
        (
            "SELECT COUNT(*) FROM (SELECT cluster_id FROM entries GROUP BY cluster_id
                                   HAVING SUM(canonical) != 1) AS c",
            "clusters without exactly one member shown",
        ),
        (
            "SELECT COUNT(*) FROM (SELECT source_id FROM entry_sources GROUP BY source_id
                                   HAVING COUNT(*) != ?1) AS s",
            "sources stored in part",
        ),
    ] {
        let sql = match per_source {
            _ if !sql.contains("?1") => sql.to_string(),
            Some(n) => sql.replace("?1", &n.to_string()),
            None => continue,
        };
        assert_eq!(store_count(config, &sql), 0, "{what}: {meaning}\n{sql}");
    }
    store_count(config, "SELECT COUNT(*) FROM entries")
}

/// SQLite's own checks of its file: integrity, foreign keys, and the search index (its own
/// file): every entry indexed once with its own text, or still queued for it; nothing else.
fn check_sqlite_file(config: &Path, what: &str) {
    let db_path = tributary::config::Config::load(config)
        .expect("the test's config")
        .storage_path;
    assert_eq!(
        store_rows(config, "PRAGMA integrity_check"),
        [["ok"]],
        "{what}: integrity_check"
    );
    assert_eq!(
        store_rows(config, "PRAGMA foreign_key_check").len(),
        0,
        "{what}: rows violating foreign keys"
    );
    tributary::store::verify_search_index(&db_path)
        .unwrap_or_else(|e| panic!("{what}: search index: {e}"));
}

// =============================================================================================
// 2. Crash safety
// =============================================================================================

const CRASH_SOURCES: usize = 20;
/// Items per source: 1,200 entries in all, about two seconds of a debug build's ingest (each
/// run of the test ingests 21 times). `TRIBUTARY_CRASH_ITEMS` overrides it, up to the
/// default `max_items` (1000).
const CRASH_ITEMS: usize = 60;
const CRASH_KILLS: usize = 20;
const CRASH_SEED: u64 = 0x7121_B07A_2026;

#[test]
fn sigkill_at_twenty_points_of_a_large_ingest_leaves_a_sound_store() {
    let _turn = my_turn();
    let started = Instant::now();
    let items: usize = std::env::var("TRIBUTARY_CRASH_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CRASH_ITEMS);
    let fixtures = FixtureServer::start_with_files(Default::default());
    let sources = generated_sources(&fixtures, CRASH_SOURCES, items, 12, generated_id);
    let expected = (CRASH_SOURCES * items) as i64;
    let dir = tempfile::tempdir().expect("a temp folder");

    // One uninterrupted run gives the span the kill points are spread over.
    use_pg_database(None);
    let measure = write_config(&dir.path().join("measure"), free_addr(), &sources);
    let t0 = Instant::now();
    let (code, stdout, stderr) = run_fetch(&measure, &[]);
    let full = t0.elapsed();
    assert_eq!(
        code, 0,
        "the uninterrupted ingest\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(
        check_store(&measure, Some(items), "uninterrupted ingest"),
        expected
    );
    eprintln!("one full ingest of {expected} entries: {full:?}");

    let mut rng = Rng(CRASH_SEED);
    let mut landed = 0;
    let mut report = String::new();
    // On PostgreSQL a round takes about four times as long (each statement of the ingest is a
    // round trip to the server): half the points, spread over the same run, keep the suite's
    // time; what each must leave is the same.
    let kills = if on_postgres() {
        CRASH_KILLS / 2
    } else {
        CRASH_KILLS
    };
    for k in 0..kills {
        // Stratified: point k falls in the k-th of `kills` equal parts of the first 90% of the
        // run (runs vary; the last tenth is often over before the kill).
        let at = full.mul_f64(0.9 * (k as f64 + rng.unit()) / kills as f64);
        let round = dir.path().join(format!("round-{k:02}"));
        use_pg_database(None);
        let config = write_config(&round, free_addr(), &sources);
        let mut cmd = tributary_command(&config);
        cmd.arg("fetch")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let spawned = Instant::now();
        let mut child = cmd.spawn().expect("spawning tributary fetch");
        let finished = wait_timeout(&mut child, at.saturating_sub(spawned.elapsed()));
        let killed = match finished {
            Some(_) => false,
            None => {
                // Child::kill sends SIGKILL.
                child.kill().expect("SIGKILL");
                let status = child.wait().expect("reaping the killed fetch");
                status.code().is_none()
            }
        };
        landed += usize::from(killed);
        let db = round.join("tributary.db");
        let what = format!("after SIGKILL {k} at {at:?}");
        // The binary opens the store (recovering the WAL) and lists the sources.
        let mut sources_cmd = tributary_command(&config);
        sources_cmd.arg("sources");
        let (code, stdout, stderr) = run_bounded(sources_cmd, FETCH_DEADLINE);
        assert_eq!(
            code, 0,
            "{what}: `sources`\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        let partial = if on_postgres() || db.exists() {
            check_store(&config, Some(items), &what)
        } else {
            0
        };
        // The next run completes, and everything is there.
        let (code, stdout, stderr) = run_fetch(&config, &[]);
        assert_eq!(
            code, 0,
            "{what}: the next fetch\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        let complete = check_store(&config, Some(items), &format!("{what}, then a full fetch"));
        assert_eq!(complete, expected, "{what}: entries after the next fetch");
        let _ = writeln!(
            report,
            "kill {k:2} at {:>6} ms: {} ({partial} entries stored)",
            at.as_millis(),
            if killed { "killed" } else { "had finished" },
        );
        let _ = fs::remove_dir_all(&round);
    }
    eprintln!(
        "{report}{landed}/{kills} kills landed mid-run; {:?} in all",
        started.elapsed()
    );
    assert!(
        landed >= kills / 2,
        "too few kills landed while the fetch ran (the run got faster than measured?)\n{report}"
    );
}

// =============================================================================================
// 3. A full disk
// =============================================================================================

/// A tmpfs of a fixed size mounted on a folder, unmounted on drop. Mounting needs root
/// (CAP_SYS_ADMIN), which the CI machines have.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: &Path, bytes: u64) -> SmallDisk {
        fs::create_dir_all(path).expect("creating the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={bytes},mode=0700"))
            .arg("tributary-small-disk")
            .arg(path)
            .stdin(Stdio::null())
            .output()
            .expect("running mount(8)");
        assert!(
            out.status.success(),
            "mounting a {bytes}-byte tmpfs on {} failed (this test simulates a full disk with a \
             small tmpfs and needs root, as CI has): {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk {
            path: path.to_path_buf(),
        }
    }

    /// Bytes still free for an unprivileged writer.
    fn free(&self) -> u64 {
        let c = std::ffi::CString::new(self.path.as_os_str().as_encoded_bytes())
            .expect("a path without NUL");
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a valid C string and `st` a properly sized out-parameter.
        let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
        assert_eq!(rc, 0, "statvfs {}", self.path.display());
        st.f_bavail as u64 * st.f_frsize as u64
    }

    /// Fills the disk with a file until `leave` bytes are free; returns the file.
    fn fill_leaving(&self, leave: u64) -> PathBuf {
        let n = fs::read_dir(&self.path).map(|d| d.count()).unwrap_or(0);
        let filler = self.path.join(format!("filler-{n}"));
        let size = self.free().saturating_sub(leave);
        fs::write(&filler, vec![0xA5u8; size as usize]).expect("writing the filler");
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn titles(config: &Path) -> Vec<String> {
    store_rows(config, "SELECT title FROM entries ORDER BY id")
        .into_iter()
        .map(|mut row| row.remove(0))
        .collect()
}

/// On PostgreSQL, the small disk holds the server's files for the test's databases: a
/// tablespace on it (the server's write-ahead log stays on its own disk, so what fills up is
/// what a database's tables need). Dropped before the disk is unmounted.
struct PgOnDisk {
    disk: PathBuf,
    server: String,
    tablespace: String,
    databases: Vec<String>,
}

impl PgOnDisk {
    fn new(disk: &SmallDisk) -> PgOnDisk {
        use std::os::unix::fs::MetadataExt;
        let server = std::env::var("TRIBUTARY_POSTGRES_URL").expect("TRIBUTARY_POSTGRES_URL");
        // The server's files belong to the user it runs as (a cluster on this machine).
        let data = &pg_rows(&server, "SHOW data_directory")[0][0];
        let owner = fs::metadata(data).expect("the server's data folder");
        let location = disk.path.join("pg");
        fs::create_dir(&location).expect("the tablespace's folder");
        // The server (another user, when the tests run as root) passes through the test's
        // folders to reach it.
        for folder in [&disk.path, disk.path.parent().expect("the test's folder")] {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(folder, fs::Permissions::from_mode(0o711))
                .expect("opening the way to the tablespace");
        }
        std::os::unix::fs::chown(&location, Some(owner.uid()), Some(owner.gid()))
            .expect("giving the folder to the server's user");
        let tablespace = format!("small_disk_{}", std::process::id());
        pg_sql(
            &server,
            &format!(
                "CREATE TABLESPACE {tablespace} LOCATION '{}'",
                location.display()
            ),
        );
        PgOnDisk {
            disk: disk.path.clone(),
            server,
            tablespace,
            databases: Vec::new(),
        }
    }

    /// A new database on the disk, which the configs the test writes next name.
    fn database(&mut self) -> String {
        let url = pg_database_with(&format!("TABLESPACE {}", self.tablespace));
        use_pg_database(Some(url.clone()));
        self.databases
            .push(url.rsplit('/').next().expect("a name").to_string());
        url
    }
}

impl Drop for PgOnDisk {
    fn drop(&mut self) {
        // After a failure the disk may still be full, and the server can neither drop a
        // database nor write its checkpoints (for every test after) until it has room.
        for file in fs::read_dir(&self.disk).into_iter().flatten().flatten() {
            if file.file_name().to_string_lossy().starts_with("filler-") {
                let _ = fs::remove_file(file.path());
            }
        }
        let mut sql: String = self
            .databases
            .iter()
            .map(|db| format!("DROP DATABASE IF EXISTS {db} WITH (FORCE);"))
            .collect();
        sql.push_str(&format!("DROP TABLESPACE IF EXISTS {};", self.tablespace));
        for statement in sql.split_inclusive(';') {
            if let Err(e) = pg_try_sql(&self.server, statement) {
                eprintln!("cleaning up the small disk's tablespace: {statement} {e}");
            }
        }
    }
}

/// The big source's feed once it grows: within `[defaults] max_items`' default (1000), and far
/// more than the space left.
const BIG_ITEMS: usize = 1000;

#[test]
fn a_full_disk_fails_the_fetch_clearly_and_corrupts_nothing() {
    let _turn = my_turn();
    let dir = tempfile::tempdir().expect("a temp folder");
    let disk = SmallDisk::mount(&dir.path().join("disk"), 24 << 20);
    let fixtures = FixtureServer::start_with_files(Default::default());
    let sources = generated_sources(&fixtures, 2, 20, 30, |_| "disk".to_string());
    let (small, big) = (generated_id(0), generated_id(1));
    let mut pg = on_postgres().then(|| PgOnDisk::new(&disk));
    // On PostgreSQL: the test's database, and the one made while there is room for its copy
    // of the template but that gets no tables until the disk is full.
    let fresh_pg = pg.as_mut().map(|pg| {
        let fresh = pg.database();
        // Connected to once, so the server has its caches' files: what fails later is the
        // store's tables.
        pg_rows(&fresh, "SELECT 1");
        pg.database();
        fresh
    });
    let full = if on_postgres() {
        "No space left on device"
    } else {
        "database or disk is full"
    };
    let db = disk.path.join("tributary.db");
    let config = write_config_text(
        &dir.path().join("conf"),
        &config_text(free_addr(), &db.to_string_lossy(), &sources),
    );
    let (code, stdout, stderr) = run_fetch(&config, &[]);
    assert_eq!(code, 0, "first fetch\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let before = titles(&config);
    assert_eq!(before.len(), 40);

    // The big source publishes far more than the disk has room for.
    fixtures.set(&generated_path(1), generated_rss(1, 0, BIG_ITEMS, 60));
    let filler = disk.fill_leaving(256 << 10);
    let (code, stdout, stderr) = run_fetch(&config, &[]);
    let lines = parse_fetch_output(&stdout);
    assert_eq!(
        code, 1,
        "a fetch that runs out of disk exits 1\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    match &lines[&big] {
        FetchStatus::Error(cause) => assert!(
            cause.contains(full),
            "the error line names the cause: {cause:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        ),
        other => panic!("{big}: expected an error, got {other:?}\nstdout:\n{stdout}"),
    }
    assert_eq!(
        lines[&small],
        FetchStatus::NotModified,
        "the other source is untouched\nstdout:\n{stdout}"
    );
    eprintln!("full disk: {stdout}");
    check_store(&config, Some(20), "after the disk filled up");
    assert_eq!(titles(&config), before, "the stored entries are intact");

    // A new store cannot even be created: exit 2 naming the storage and the cause.
    let fresh = disk.path.join("fresh.db");
    use_pg_database(fresh_pg.clone());
    let fresh_config = write_config_text(
        &dir.path().join("fresh"),
        &config_text(free_addr(), &fresh.to_string_lossy(), &sources),
    );
    let fresh_name = match &fresh_pg {
        Some(url) => url.rsplit('/').next().expect("a name").to_string(),
        None => "fresh.db".to_string(),
    };
    let filler_2 = disk.fill_leaving(0);
    let (code, stdout, stderr) = run_fetch(&fresh_config, &[]);
    assert_eq!(
        code, 2,
        "a store that cannot be created is fatal\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains(full) && stderr.contains(&fresh_name),
        "the error names the storage and the cause:\n{stderr}"
    );
    eprintln!("fresh store on a full disk: {stderr}");

    // Space comes back: the next fetch stores everything.
    for f in [&filler, &filler_2] {
        fs::remove_file(f).expect("removing a filler");
    }
    let _ = fs::remove_file(&fresh);
    let (code, stdout, stderr) = run_fetch(&config, &[]);
    assert_eq!(
        code, 0,
        "fetch once space is free\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let total = check_store(&config, None, "after space came back");
    assert_eq!(
        total,
        20 + BIG_ITEMS as i64,
        "every entry stored once space is back\nstdout:\n{stdout}"
    );
    drop(pg);
    drop(disk);
}

// =============================================================================================
// 4. Load: readers while the daemon fetches
// =============================================================================================

const READERS: usize = 200;
const LOAD_SECS: u64 = 5;

/// What the readers saw.
#[derive(Default)]
struct LoadResult {
    latencies: Vec<Duration>,
    ok: usize,
    not_modified: usize,
    conditional: usize,
    errors: Vec<String>,
}

/// Sum of `tributary_fetches_total` over every label, from `/metrics`.
fn fetches_total(serve: &ServeGuard) -> f64 {
    http_get(&serve.url("/metrics"))
        .body
        .lines()
        .filter(|l| l.starts_with("tributary_fetches_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn reader(
    client: reqwest::Client,
    urls: std::sync::Arc<Vec<String>>,
    seed: u64,
    until: Instant,
) -> LoadResult {
    let mut rng = Rng(seed);
    let mut etags: std::collections::HashMap<usize, String> = Default::default();
    let mut out = LoadResult::default();
    while Instant::now() < until {
        let which = (rng.next() % urls.len() as u64) as usize;
        let url = &urls[which];
        let mut req = client.get(url);
        let conditional = match etags.get(&which) {
            Some(etag) if rng.next() % 2 == 0 => {
                req = req.header("If-None-Match", etag.clone());
                true
            }
            _ => false,
        };
        let t = Instant::now();
        let result = async {
            let resp = req.send().await.map_err(|e| format!("GET {url}: {e}"))?;
            let status = resp.status().as_u16();
            let etag = resp
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = resp
                .bytes()
                .await
                .map_err(|e| format!("GET {url}: body: {e}"))?;
            Ok::<_, String>((status, etag, body.len()))
        }
        .await;
        out.latencies.push(t.elapsed());
        out.conditional += usize::from(conditional);
        match result {
            Ok((200, etag, len)) if len > 0 => {
                out.ok += 1;
                if let Some(etag) = etag {
                    etags.insert(which, etag);
                }
            }
            Ok((304, _, _)) if conditional => out.not_modified += 1,
            Ok((status, _, len)) => out.errors.push(format!(
                "GET {url} (conditional: {conditional}): status {status}, {len} bytes"
            )),
            Err(e) => out.errors.push(e),
        }
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[test]
fn two_hundred_readers_poll_merged_feeds_while_the_daemon_fetches() {
    let _turn = my_turn();
    let fixtures = FixtureServer::start_with_files(Default::default());
    // Every scheduled fetch reads whole feeds and writes, as with publishers that send no
    // validators.
    fixtures.set_conditional(false);
    let sources: Vec<Source> = generated_sources(&fixtures, 6, 300, 30, |s| {
        if s % 2 == 0 { "markets" } else { "tech" }.to_string()
    })
    .into_iter()
    .map(|s| s.schedule("every 1s"))
    .collect();
    let dir = tempfile::tempdir().expect("a temp folder");
    let listen = free_addr();
    let config = write_config(&dir.path().join("conf"), listen, &sources);
    let (code, stdout, stderr) = run_fetch(&config, &[]);
    assert_eq!(code, 0, "first fetch\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();

    let urls = std::sync::Arc::new(vec![
        serve.url("/feeds/all.atom"),
        serve.url("/feeds/markets.json"),
        serve.url("/feeds/tech.json"),
        serve.url("/feeds/all.rss?limit=100"),
        serve.url("/sources/gen-00.json"),
    ]);
    let fetches_before = fetches_total(&serve);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime for the readers");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let started = Instant::now();
    let until = started + Duration::from_secs(LOAD_SECS);
    let results: Vec<LoadResult> = thread::scope(|scope| {
        // Publishers keep adding items, so fetches change what the merged feeds show and
        // the readers' cached copies and ETags go stale.
        scope.spawn(|| {
            let mut n = 300;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let s = n % 6;
                fixtures.set(&generated_path(s), generated_rss(s, n, 300, 30));
                n += 1;
                // The publishers' pace, on purpose: a new item every quarter second.
                thread::sleep(Duration::from_millis(250));
            }
        });
        let results = runtime.block_on(async {
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(READERS)
                .build()
                .expect("an HTTP client");
            let mut tasks = tokio::task::JoinSet::new();
            for r in 0..READERS {
                tasks.spawn(reader(
                    client.clone(),
                    urls.clone(),
                    0x10AD + r as u64,
                    until,
                ));
            }
            let mut results = Vec::new();
            while let Some(done) = tasks.join_next().await {
                results.push(done.expect("a reader task panicked"));
            }
            results
        });
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        results
    });
    let elapsed = started.elapsed();
    let fetches = fetches_total(&serve) - fetches_before;
    assert!(
        serve.is_running(),
        "the daemon died under load\n{}",
        serve.logs()
    );

    let mut latencies: Vec<Duration> = results.iter().flat_map(|r| r.latencies.clone()).collect();
    latencies.sort();
    let errors: Vec<&String> = results.iter().flat_map(|r| &r.errors).collect();
    let (ok, not_modified, conditional) = results.iter().fold((0, 0, 0), |a, r| {
        (a.0 + r.ok, a.1 + r.not_modified, a.2 + r.conditional)
    });
    let total = latencies.len();
    eprintln!(
        "{READERS} readers for {elapsed:.1?} while the daemon ran {fetches} fetches: \
         {total} requests ({:.0} req/s), {ok} × 200, {not_modified} × 304 \
         ({conditional} conditional), {} errors; latency p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        total as f64 / elapsed.as_secs_f64(),
        errors.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or_default(),
    );
    assert!(
        errors.is_empty(),
        "{} of {total} requests failed; first ones:\n{}\n{}",
        errors.len(),
        errors
            .iter()
            .take(20)
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        serve.logs()
    );
    assert!(total >= READERS, "every reader made requests");
    assert!(not_modified > 0, "conditional polls were answered 304");
    assert!(
        fetches >= 1.0,
        "the daemon fetched while the readers polled (fetches counted: {fetches})"
    );
}
