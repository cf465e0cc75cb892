//! Text and HTML fragments as tributary republishes them: untrusted HTML sanitized (ammonia's
//! allow-list; SVG and MathML reduced to their words), the text of HTML, plain text that no
//! HTML reader takes for markup, and only characters XML 1.0 can carry. Pure functions with no
//! knowledge of feeds: normalize sanitizes what sources say, publish and the command line read
//! text back through the same functions.

use std::sync::OnceLock;

use url::Url;

/// Sanitizes untrusted HTML for republishing. Allowed: ammonia's default tags and attributes
/// (no script, style, iframe, form, on* handlers; only http, https and mailto URLs), and
/// `class`, which runs nothing and is what `remove` rules (`.share`) select by; `id` stays
/// out, since ids clobber globals in readers that show entries inside their own page. Relative
/// URLs are resolved against `page`, because a reader showing the entry has no other base.
/// SVG and MathML are republished as their text (see [`flatten_foreign`]).
pub fn sanitize_html(html: &str, page: &Url) -> String {
    let mut builder = ammonia::Builder::default();
    builder
        .url_relative(ammonia::UrlRelative::RewriteWithBase(page.clone()))
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .link_rel(Some("noopener noreferrer"))
        .add_generic_attributes(["class"])
        .add_tags(FOREIGN_TAGS);
    let clean = builder.clean(html).to_string();
    // Scrubbed after: the parser also decodes references (`&#x1A;` is U+001A in its output).
    xml_text(&flatten_foreign(&clean)).into_owned()
}

/// The SVG and MathML elements whose text a reader should still get: a formula's symbols, a
/// drawing's title, description and labels. ammonia drops foreign content together with its
/// text once `<svg>` or `<math>` is gone, so they pass its first reading as elements (with no
/// attribute) and [`flatten_foreign`] then keeps only their text.
const FOREIGN_TAGS: &[&str] = &[
    "math",
    "mrow",
    "mi",
    "mn",
    "mo",
    "ms",
    "mtext",
    "mspace",
    "mfrac",
    "msqrt",
    "mroot",
    "mstyle",
    "merror",
    "mpadded",
    "mphantom",
    "msub",
    "msup",
    "msubsup",
    "munder",
    "mover",
    "munderover",
    "mmultiscripts",
    "mprescripts",
    "mtable",
    "mtr",
    "mtd",
    "semantics",
    "svg",
    "g",
    "title",
    "desc",
    "text",
    "tspan",
];

/// `clean` (html5ever's serialization of sanitized HTML) with every `<svg>` and `<math>`
/// element replaced by its text, and no `<title>` tag left. Foreign content is where HTML
/// sanitizers have been bypassed again and again (a reader's parser switching namespaces
/// where ours did not), so no SVG or MathML element is ever republished; an entry whose only
/// content is a formula or a drawing keeps its words. The text stays escaped as it was.
fn flatten_foreign(clean: &str) -> std::borrow::Cow<'_, str> {
    if !(clean.contains("<svg") || clean.contains("<math") || clean.contains("<title")) {
        return std::borrow::Cow::Borrowed(clean);
    }
    let mut out = String::with_capacity(clean.len());
    let mut depth = 0usize;
    let mut rest = clean;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let tag_len = tag_length(&rest[open..]);
        let tag = &rest[open..open + tag_len];
        let closing = tag.starts_with("</");
        let name: String = tag
            .trim_start_matches(['<', '/'])
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if name == "svg" || name == "math" {
            depth = if closing {
                depth.saturating_sub(1)
            } else {
                depth + 1
            };
        } else if depth == 0 && name != "title" {
            out.push_str(tag);
        }
        rest = &rest[open + tag_len..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// The length of the tag that `html` starts with, up to its `>` outside quotes (the whole
/// rest when it is never closed). html5ever double-quotes every attribute value.
fn tag_length(html: &str) -> usize {
    let mut quoted = false;
    html.char_indices()
        .find_map(|(i, c)| match c {
            '"' => {
                quoted = !quoted;
                None
            }
            '>' if !quoted => Some(i + 1),
            _ => None,
        })
        .unwrap_or(html.len())
}

/// `text` without the characters XML 1.0 cannot carry (C0 controls but tab and line breaks,
/// U+FFFE, U+FFFF) and without C1 controls, which no text means (they are mis-decoded
/// bytes): every RSS and Atom document made of normalized text is well-formed.
pub fn xml_text(text: &str) -> std::borrow::Cow<'_, str> {
    // Nearly every text is clean, and this runs on every text: the bytes are scanned first
    // (C0 and DEL are single bytes, C1 are 0xC2 0x80..0x9F, U+FFFE/U+FFFF 0xEF 0xBF 0xBE/BF).
    let b = text.as_bytes();
    let suspect = (0..b.len()).any(|i| match b[i] {
        b'\t' | b'\n' | b'\r' => false,
        0..=0x1f | 0x7f => true,
        0xc2 => matches!(b.get(i + 1), Some(0x80..=0x9f)),
        0xef => b.get(i + 1) == Some(&0xbf) && matches!(b.get(i + 2), Some(0xbe | 0xbf)),
        _ => false,
    });
    if !suspect {
        return std::borrow::Cow::Borrowed(text);
    }
    let bad = |c: char| {
        matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}')
    };
    if text.contains(bad) {
        std::borrow::Cow::Owned(text.chars().filter(|c| !bad(*c)).collect())
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

pub(crate) fn plain_to_html(text: &str) -> String {
    let text = xml_text(text);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    text.split("\n\n")
        .map(|p| format!("<p>{}</p>", html_escape::encode_text(p.trim())))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text of an HTML fragment, entities decoded and whitespace collapsed.
pub fn html_to_text(html: &str) -> String {
    static STRIP: OnceLock<ammonia::Builder<'static>> = OnceLock::new();
    let strip = STRIP.get_or_init(|| {
        let mut b = ammonia::Builder::empty();
        b.clean_content_tags(["script", "style"].into_iter().collect());
        // Kept as elements, so that their text stays: ammonia drops foreign content whose
        // `<svg>` or `<math>` is gone. The tags go when the text is read off the output.
        b.add_tags(FOREIGN_TAGS);
        b
    });
    sanitized_text(&strip.clean(html).to_string())
}

/// [`html_to_text`] of HTML this module sanitized, without parsing it again: ammonia's output
/// is serialized by html5ever, so every attribute value is double-quoted and every `<`, `>`
/// and `&` of the text is escaped. The text is what lies outside the tags, decoded by
/// [`clean_text`] exactly as `html_to_text` decodes the re-serialized text.
pub(crate) fn sanitized_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        rest = &rest[open + tag_length(&rest[open..])..];
    }
    text.push_str(rest);
    clean_text(&text)
}

/// An HTML fragment edited: what `Edit` asked for, and which of its selectors removed
/// something.
pub struct Edited {
    pub html: String,
    /// Indices into `Edit::remove` of the selectors that matched.
    pub removed: Vec<usize>,
}

/// What to change in an HTML fragment: elements to remove (with everything inside), and each
/// run of text (the text between two tags, entities decoded) given to `text`, which returns
/// its replacement or None to keep it.
pub struct Edit<'a> {
    pub remove: &'a [&'a scraper::Selector],
    pub text: &'a mut dyn FnMut(&str) -> Option<String>,
}

/// Applies `edit` to `html` through html5ever's tree, so markup stays markup and replaced text
/// is escaped as text.
pub fn edit_html(html: &str, edit: Edit<'_>) -> Edited {
    let mut doc = scraper::Html::parse_fragment(html);
    let mut removed = Vec::new();
    let mut doomed = Vec::new();
    for (i, sel) in edit.remove.iter().enumerate() {
        let before = doomed.len();
        doomed.extend(doc.select(sel).map(|e| e.id()));
        if doomed.len() > before {
            removed.push(i);
        }
    }
    for id in doomed {
        if let Some(mut node) = doc.tree.get_mut(id) {
            node.detach();
        }
    }
    let texts: Vec<_> = doc
        .root_element()
        .descendants()
        .filter(|n| n.value().is_text())
        .map(|n| n.id())
        .collect();
    for id in texts {
        let Some(mut node) = doc.tree.get_mut(id) else {
            continue;
        };
        if let scraper::Node::Text(t) = node.value() {
            if let Some(new) = (edit.text)(&t.text) {
                t.text = new.as_str().into();
            }
        }
    }
    Edited {
        html: doc.root_element().inner_html(),
        removed,
    }
}

/// The text of sanitized HTML as rules and filters match it: outside the tags, entities
/// decoded, nothing else done (cheaper than [`sanitized_text`], which also tidies whitespace
/// for display), and no copy made of a fragment with neither tag nor entity.
pub fn visible_text(html: &str) -> std::borrow::Cow<'_, str> {
    if !html.contains(['<', '&']) {
        return std::borrow::Cow::Borrowed(html);
    }
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        rest = &rest[open + tag_length(&rest[open..])..];
    }
    text.push_str(rest);
    match html_escape::decode_html_entities(&text) {
        std::borrow::Cow::Borrowed(_) => std::borrow::Cow::Owned(text),
        std::borrow::Cow::Owned(decoded) => std::borrow::Cow::Owned(decoded),
    }
}

/// Text that stays text wherever it is shown. Titles, authors and categories are plain text
/// in every output, but some readers show RSS titles (and JSON Feed summaries) as HTML: text
/// an HTML parser would read as markup (`<img src=x onerror=…>`, also when a feed escaped it
/// twice) is reduced to its words. Anything else (`a < b`, `AT&T`) is kept as it is; a title
/// like `Vec<u8>` loses its `<u8>`, as it would in such a reader.
pub fn plain_text(text: &str) -> String {
    let mut text = xml_text(text).trim().to_string();
    for _ in 0..4 {
        if !reads_as_markup(&text) {
            return text;
        }
        text = html_to_text(&text);
    }
    // Escaped more times than any publisher means: no tag can open.
    text.replace('<', "")
}

/// Whether an HTML parser finds anything but text in `text` (an element, a comment).
fn reads_as_markup(text: &str) -> bool {
    text.contains('<')
        && scraper::Html::parse_fragment(text)
            .root_element()
            .descendants()
            .skip(1)
            .any(|node| !node.value().is_text())
}

/// Plain text with entities decoded (titles are often escaped twice) and whitespace collapsed.
pub fn clean_text(text: &str) -> String {
    let decoded = html_escape::decode_html_entities(text);
    let decoded = if decoded.contains('&') {
        html_escape::decode_html_entities(&decoded).into_owned()
    } else {
        decoded.into_owned()
    };
    let decoded = xml_text(&decoded);
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_removes_elements_and_rewrites_text_runs_keeping_markup_escaped() {
        let remove = scraper::Selector::parse(".share, img[width='1']").expect("selector");
        let html = r#"<p>中证网讯（记者 张三）近日<b>消息</b> a &amp; b</p><div class="share"><a href="https://x.example/">分享</a></div><img src="https://t.example/p.gif" width="1">"#;
        let mut rewrite = |t: &str| {
            let r = regex::Regex::new("^中证网讯（记者[^）]*）").expect("regex");
            let new = r.replace(t, "<script>");
            (new != t).then(|| new.into_owned())
        };
        let edited = edit_html(
            html,
            Edit {
                remove: &[&remove],
                text: &mut rewrite,
            },
        );
        assert_eq!(
            edited.html,
            "<p>&lt;script&gt;近日<b>消息</b> a &amp; b</p>"
        );
        assert_eq!(edited.removed, [0]);
    }

    fn base() -> Url {
        Url::parse("https://www.cs.com.cn/xwzx/hg/").unwrap()
    }

    #[test]
    fn hostile_html_is_removed_and_links_made_absolute() {
        let html = r#"<p onclick="steal()">正文<script>alert(1)</script><a href="javascript:alert(1)">x</a>
            <a href="./202011/t20201201_1.html">相对</a><img src="../img/a.png"><iframe src="https://evil"></iframe>
            <style>p{}</style></p>"#;
        let out = sanitize_html(html, &base());
        for bad in [
            "script",
            "onclick",
            "javascript:",
            "iframe",
            "style",
            "alert",
        ] {
            assert!(!out.contains(bad), "{bad} survived: {out}");
        }
        assert!(
            out.contains("https://www.cs.com.cn/xwzx/hg/202011/t20201201_1.html"),
            "{out}"
        );
        assert!(
            out.contains("https://www.cs.com.cn/xwzx/img/a.png"),
            "{out}"
        );
    }

    #[test]
    fn titles_are_plain_text() {
        assert_eq!(clean_text("  A &amp;amp; B\n  C "), "A & B C");
        assert_eq!(html_to_text("<b>央行</b> &lt;降准&gt;"), "央行 <降准>");
    }

    #[test]
    fn formulas_and_drawings_are_republished_as_their_text() {
        let page = Url::parse("https://example.com/a/").unwrap();
        let math = "<p>Sum:</p><math display=\"block\"><mrow xlink:href=\"javascript:x\">\
            <mi>a</mi><mo>+</mo><mi>b</mi></mrow></math> &lt;done&gt;";
        assert_eq!(sanitize_html(math, &page), "<p>Sum:</p>a+b &lt;done&gt;");
        let svg = "<svg viewBox=\"0 0 9 9\" onload=\"alert(1)\"><title>Rates &amp; yields</title>\
            <desc>2020 to 2026</desc><circle r=\"4\"/><text x=\"1\">3.5%</text></svg>";
        assert_eq!(
            sanitize_html(svg, &page),
            "Rates &amp; yields2020 to 20263.5%"
        );
        // An HTML <title> in content was never an element readers get, nor is it now.
        assert_eq!(
            sanitize_html("<title>Doc</title><p>body</p>", &page),
            "Doc<p>body</p>"
        );
        // Namespace confusion (mXSS) leaves neither an element nor a script-shaped text.
        for hostile in [
            "<math><mi><svg><iframe><!--</iframe><img src onerror=alert(1)>-->",
            "<svg><foreignObject><math><iframe><!--</iframe><img src onerror=alert(1)>-->",
            "<math><mtext><table><mglyph><style><!--</style><img title=\"--&gt;&lt;img src=1 \
             onerror=alert(1)&gt;\">",
            "<svg><style><img src=x onerror=alert(1)></style><script>alert(2)</script></svg>",
        ] {
            let clean = sanitize_html(hostile, &page);
            for gone in [
                "<svg", "<math", "<iframe", "<table", "<style", "<script", "onerror",
            ] {
                assert!(
                    !clean.contains(gone),
                    "{gone} in {clean:?} from {hostile:?}"
                );
            }
        }
        assert_eq!(html_to_text(svg), "Rates & yields2020 to 20263.5%");
    }

    #[test]
    fn sanitized_text_is_html_to_text_of_sanitized_html() {
        let page = Url::parse("https://example.com/a/").unwrap();
        for raw in [
            "<p>央行 <b>降准</b> 50bp &amp; more</p>",
            "<a href=\"x?a=1&b=2\" title=\"a > b\">link</a> after",
            "<img src=x alt=\"<p>not text</p>\" onerror=alert(1)>caption",
            "<script>alert(1)</script><style>p{}</style>kept",
            "<p>&amp;amp; double &amp;lt;b&amp;gt;</p>\u{a0}nbsp",
            "<pre>\nline one\n  line two</pre><table>fostered<tr><td>cell</td></tr></table>",
            "<!-- comment --><textarea>typed</textarea><noscript>ns</noscript>",
            "plain text without tags",
            "<p>unclosed <b>bold",
        ] {
            let clean = sanitize_html(raw, &page);
            assert_eq!(
                sanitized_text(&clean),
                html_to_text(&clean),
                "{raw:?} → {clean:?}"
            );
        }
        let plain = plain_to_html("a < b & c > d\n\nsecond &quot;para&quot;");
        assert_eq!(sanitized_text(&plain), html_to_text(&plain));
    }

    #[test]
    fn plain_text_carries_no_markup() {
        for (text, plain) in [
            ("<script>alert(1)</script> title", "title"),
            ("<img src=x onerror=alert(1)> title", "title"),
            ("<a href=\"javascript:alert(1)\">title</a>", "title"),
            ("<b>bold</b> & <i>italic</i>", "bold & italic"),
            // Escaped twice: the first reading leaves markup, the second removes it.
            ("<p>&lt;svg onload=alert(1)&gt;</p>x", "x"),
            ("<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>y", "y"),
            ("<!-- hidden -->shown", "shown"),
            // Text that is not markup stays as written.
            ("a < b && c > d", "a < b && c > d"),
            ("x<3 AT&T", "x<3 AT&T"),
            ("央行：<降准> 50bp", "央行：<降准> 50bp"),
        ] {
            assert_eq!(plain_text(text), plain, "{text:?}");
        }
    }
}
