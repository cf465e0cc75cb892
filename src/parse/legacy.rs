//! Old feed dialects feed-rs does not read, rewritten into the ones it does.
//!
//! - Atom 0.3 (`xmlns="http://purl.org/atom/ns#"`, 2003–2005, still served by old blogs): the
//!   namespace becomes Atom 1.0's, `issued`/`modified`/`tagline`/`copyright` take their 1.0
//!   names, and content types given as MIME types (`text/html`, `mode="escaped"`) become 1.0's
//!   `html`/`text`/`xhtml`.
//! - RSS with no `version` or an unknown one (0.93, 0.94, 2.01): read as RSS 2.0, which is a
//!   superset of what those versions say.
//!
//! The rewrite is textual and touches only what it must; everything else reaches feed-rs as is.

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::Regex;

const ATOM_03: &str = "http://purl.org/atom/ns#";
const ATOM_10: &str = "http://www.w3.org/2005/Atom";
/// How far into the document the root element is looked for.
const HEAD: usize = 4096;

/// The document in a dialect feed-rs reads (borrowed when nothing needed changing).
pub fn upgrade(doc: &[u8]) -> Cow<'_, [u8]> {
    let head = String::from_utf8_lossy(&doc[..doc.len().min(HEAD)]);
    if head.contains(ATOM_03) {
        if let Ok(text) = std::str::from_utf8(doc) {
            return Cow::Owned(atom_03(text).into_bytes());
        }
    }
    if let Some(fixed) = rss_version(doc, &head) {
        return Cow::Owned(fixed);
    }
    Cow::Borrowed(doc)
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("static pattern"))
}

fn atom_03(text: &str) -> String {
    static RENAME: OnceLock<Regex> = OnceLock::new();
    static TEXT_TAG: OnceLock<Regex> = OnceLock::new();
    static TYPE: OnceLock<Regex> = OnceLock::new();
    static MODE: OnceLock<Regex> = OnceLock::new();
    let text = text.replace(ATOM_03, ATOM_10);
    let text = re(&RENAME, r"<(/?)(issued|modified|tagline|copyright)\b").replace_all(
        &text,
        |c: &regex::Captures| {
            let name = match &c[2] {
                "issued" => "published",
                "modified" => "updated",
                "tagline" => "subtitle",
                _ => "rights",
            };
            format!("<{}{name}", &c[1])
        },
    );
    // Only text constructs carry 0.3's MIME-typed content; a <link type="text/html"> stays.
    let text_tag = re(
        &TEXT_TAG,
        r"<(content|title|summary|subtitle|rights)(\s[^>]*)>",
    );
    text_tag
        .replace_all(&text, |c: &regex::Captures| {
            let attrs = re(&TYPE, r#"type\s*=\s*["']([^"']*)["']"#).replace(
                &c[2],
                |t: &regex::Captures| {
                    let kind = match t[1].trim().to_ascii_lowercase().as_str() {
                        "text/html" | "html" => "html",
                        "application/xhtml+xml" | "xhtml" => "xhtml",
                        "text/plain" | "text" => "text",
                        // Anything else (base64 media) is kept; feed-rs decides.
                        _ => return t[0].to_string(),
                    };
                    format!("type=\"{kind}\"")
                },
            );
            let attrs = re(&MODE, r#"\smode\s*=\s*["'][^"']*["']"#).replace_all(&attrs, "");
            format!("<{}{}>", &c[1], attrs)
        })
        .into_owned()
}

/// `<rss>` without a version feed-rs knows gets version="2.0".
fn rss_version(doc: &[u8], head: &str) -> Option<Vec<u8>> {
    static RSS_TAG: OnceLock<Regex> = OnceLock::new();
    static VERSION: OnceLock<Regex> = OnceLock::new();
    let tag = re(&RSS_TAG, r"<rss(\s[^>]*)?>").find(head)?;
    let attrs = &head[tag.start() + 4..tag.end() - 1];
    let version = re(&VERSION, r#"version\s*=\s*["']([^"']*)["']"#)
        .captures(attrs)
        .map(|c| c[1].trim().to_string());
    if matches!(version.as_deref(), Some("0.91" | "0.92" | "2.0")) {
        return None;
    }
    let new_attrs = match version {
        Some(_) => re(&VERSION, r#"version\s*=\s*["'][^"']*["']"#)
            .replace(attrs, "version=\"2.0\"")
            .into_owned(),
        None => format!("{attrs} version=\"2.0\""),
    };
    // `head` is a lossy view of the same bytes up to `tag.end()` only if those were valid
    // UTF-8; they are ASCII around the tag, so its offsets hold for `doc`.
    let prefix = doc.get(..tag.start())?;
    if prefix != head.as_bytes().get(..tag.start())? {
        return None;
    }
    let mut out = Vec::with_capacity(doc.len() + 16);
    out.extend_from_slice(prefix);
    out.extend_from_slice(format!("<rss{new_attrs}>").as_bytes());
    out.extend_from_slice(&doc[tag.end()..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atom_03_reads_as_atom_10() {
        let doc = r#"<?xml version="1.0"?><feed version="0.3" xmlns="http://purl.org/atom/ns#">
            <title>Old blog</title><tagline>since 2004</tagline>
            <link rel="alternate" type="text/html" href="http://example.org/"/>
            <modified>2005-01-02T03:04:05Z</modified>
            <entry><title>First</title><link rel="alternate" type="text/html" href="http://example.org/1"/>
              <id>tag:example.org,2005:1</id><issued>2005-01-01T00:00:00Z</issued><modified>2005-01-02T00:00:00Z</modified>
              <content type="text/html" mode="escaped">&lt;p&gt;Hello &lt;b&gt;world&lt;/b&gt;&lt;/p&gt;</content></entry></feed>"#;
        let feed = crate::parse::parse(&upgrade(doc.as_bytes())).expect("parses");
        assert_eq!(feed.items.len(), 1);
        let item = &feed.items[0];
        assert_eq!(item.links, vec!["http://example.org/1"]);
        assert!(item.published.is_some());
        let content = item.content.as_ref().expect("content");
        assert!(
            content.html && content.body.contains("<b>world</b>"),
            "{content:?}"
        );
    }

    #[test]
    fn rss_without_a_known_version_reads_as_2_0() {
        for root in [
            r#"<rss>"#,
            r#"<rss version="0.93">"#,
            r#"<rss version='2.01' xmlns:dc="x">"#,
        ] {
            let doc = format!(
                "<?xml version=\"1.0\"?>{root}<channel><title>t</title><item><title>a</title><link>http://x/1</link></item></channel></rss>"
            );
            let feed = crate::parse::parse(&upgrade(doc.as_bytes())).expect(root);
            assert_eq!(feed.items.len(), 1, "{root}");
        }
        let fine = b"<rss version=\"2.0\"><channel></channel></rss>";
        assert!(matches!(upgrade(fine), Cow::Borrowed(_)));
    }
}
