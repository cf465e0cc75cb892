//! XML feeds to a [`ParsedFeed`]: RSS 0.90, 0.91–0.94, 1.0 and 2.0, Atom 0.3 and 1.0, an
//! Atom entry document, and Microsoft's CDF, read from one lenient tree ([`super::tree`]).
//!
//! The dialects share most element names and feeds mix them freely (Atom links in RSS, Dublin
//! Core everywhere), so an item is read by one function that knows every name, as feedparser
//! does: what an element means depends on its name and namespace, not on the root. What a
//! field cannot be read from (an unknown content type, a base64 body that is not base64) costs
//! that field, never the item or the feed.

use base64::Engine as _;

use super::tree::{self, Element, Ns, Tree};
use super::{DateText, ParseError, ParsedFeed, ParsedItem, Text};

/// Namespaces whose elements are RSS's own (RSS 0.9x/2.0 have none).
const RSS: &[Ns] = &[Ns::None, Ns::Rss];
/// Where Atom's element names are read: its namespace, and feeds that forgot to declare it.
const ATOM: &[Ns] = &[Ns::Atom, Ns::None];
/// Names of elements that are shared by both, with the same meaning.
const ANY: &[Ns] = &[Ns::None, Ns::Rss, Ns::Atom];

/// Parses an XML feed document.
pub fn parse(doc: &str, max_items: usize) -> Result<ParsedFeed, ParseError> {
    let tree = tree::read(doc);
    let Some(root) = tree.root else {
        return Err(match &tree.error {
            Some(e) => ParseError::Malformed(e.clone()),
            None => ParseError::NotAFeed,
        });
    };
    let Some(feed) = feed_element(&tree, root) else {
        return Err(ParseError::NotAFeed);
    };
    if let Some(open) = &tree.truncated {
        // A document cut off in transit: what it would have said is unknown, and keeping the
        // validators of a partial body would leave the rest unread until the feed changes.
        return Err(ParseError::Malformed(format!(
            "the document ends before <{open}> is closed ({} bytes; cut off?)",
            doc.len()
        )));
    }
    let mut warnings = Vec::new();
    if let Some(e) = &tree.error {
        warnings.push(format!("the XML is broken {e}; read what came before"));
    }
    let mut items = Vec::new();
    entries_under(&tree, feed, &mut items);
    if tree.get(feed).is(ATOM, "entry") {
        items.push(feed);
    }
    let total = items.len();
    let mut lost = Vec::new();
    let mut items: Vec<ParsedItem> = items
        .into_iter()
        .enumerate()
        .map(|(n, i)| {
            let (item, fields) = item(&tree, i);
            lost.extend(fields.into_iter().map(|f| format!("item {}: {f}", n + 1)));
            item
        })
        .collect();
    // A field that could not be read costs that field: say which, a few times.
    if !lost.is_empty() {
        let more = lost.len().saturating_sub(LOST_SHOWN);
        lost.truncate(LOST_SHOWN);
        if more > 0 {
            lost.push(format!("and {more} more fields left out"));
        }
        warnings.push(lost.join("; "));
    }
    if super::keep_newest(&mut items, max_items, super::sort_date) {
        warnings.push(super::dropped_warning(total, max_items));
    }
    let channel = channel_of(&tree, feed);
    let title = tree
        .children(channel)
        .find(|(_, e)| e.is(ANY, "title"))
        .map(|(i, _)| text_of(&tree, i, TextKind::Guess).body)
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    let ttl = tree
        .children(channel)
        .find(|(_, e)| e.is(RSS, "ttl"))
        .and_then(|(_, e)| e.text.trim().parse::<u64>().ok())
        .filter(|m| *m > 0)
        .map(|minutes| std::time::Duration::from_secs(minutes.saturating_mul(60)));
    Ok(ParsedFeed {
        title,
        items,
        warnings,
        ttl,
    })
}

/// The element that holds the feed: the document element, or for a feed wrapped in another
/// document (an Atom feed inside XHTML), the first feed element inside it.
fn feed_element(tree: &Tree<'_>, root: usize) -> Option<usize> {
    let is_feed = |e: &Element| {
        e.is(RSS, "rss")
            || e.is(&[Ns::Rdf, Ns::None], "rdf")
            || e.is(ATOM, "feed")
            || e.is(ATOM, "entry")
            || e.is(RSS, "channel")
    };
    if is_feed(tree.get(root)) {
        return Some(root);
    }
    // Not deep: a page that merely mentions a feed is not one.
    let mut level = vec![root];
    for _ in 0..3 {
        let mut next = Vec::new();
        for i in level {
            for (c, e) in tree.children(i) {
                if e.is(RSS, "rss") || e.is(ATOM, "feed") || e.is(&[Ns::Rdf], "rdf") {
                    return Some(c);
                }
                next.push(c);
            }
        }
        level = next;
    }
    None
}

/// The element with the feed's own title: RSS's `<channel>`, else the feed element.
fn channel_of(tree: &Tree<'_>, feed: usize) -> usize {
    tree.children(feed)
        .find(|(_, e)| e.is(RSS, "channel"))
        .map_or(feed, |(c, _)| c)
}

/// Every entry element under `i`: `<item>` (RSS, RDF, CDF, and Atom feeds that use it) and
/// Atom's `<entry>`, at any depth (RSS 0.90 and 1.0 put items beside the channel, some RSS
/// puts them outside it), but not inside another entry. Walked with a stack of its own, in
/// document order: a hostile document nests elements deeper than any call stack.
fn entries_under(tree: &Tree<'_>, i: usize, out: &mut Vec<usize>) {
    let mut todo: Vec<usize> = tree.get(i).children.iter().rev().copied().collect();
    while let Some(c) = todo.pop() {
        let e = tree.get(c);
        if e.is(ANY, "item") || e.is(ATOM, "entry") {
            out.push(c);
        } else if !e.is(ANY, "source") {
            todo.extend(e.children.iter().rev());
        }
    }
}

/// How a text element says what it holds.
#[derive(Clone, Copy)]
enum TextKind {
    /// RSS titles: plain text, unless it reads as HTML (feedparser's rule).
    Guess,
    /// RSS descriptions and `content:encoded`: HTML.
    Html,
    /// Plain text (CDF abstracts).
    Plain,
}

/// The text of an element: Atom's `type` (and 0.3's `mode`) when it has one, else `kind`.
/// Markup written unescaped inside an element is kept as HTML.
fn text_of(tree: &Tree<'_>, i: usize, kind: TextKind) -> Text {
    let e = tree.get(i);
    let mode = e.attr("mode").map(|m| m.trim().to_ascii_lowercase());
    let declared = e.attr("type").map(|t| t.trim().to_ascii_lowercase());
    let mixed = !e.children.is_empty();
    let markup = || Text {
        body: tree.inner(i).trim().to_string(),
        html: true,
    };
    if mode.as_deref() == Some("base64") {
        return base64_text(&e.text, declared.as_deref());
    }
    if mode.as_deref() == Some("xml") && mixed {
        return markup();
    }
    match declared.as_deref() {
        Some("xhtml" | "application/xhtml+xml") => xhtml(tree, i),
        Some("html" | "text/html") if mixed => markup(),
        Some("html" | "text/html") => Text {
            body: e.text.clone(),
            html: true,
        },
        Some("text" | "text/plain" | "") => Text {
            body: if mixed {
                tree.all_text(i)
            } else {
                e.text.clone()
            },
            html: false,
        },
        // XML content (RFC 4287 §4.1.3.3): markup, as readers show it.
        Some(t) if t.ends_with("+xml") || t.ends_with("/xml") => {
            if mixed {
                markup()
            } else {
                Text {
                    body: e.text.clone(),
                    html: true,
                }
            }
        }
        Some(t) if t.starts_with("text/") => Text {
            body: if mixed {
                tree.all_text(i)
            } else {
                e.text.clone()
            },
            html: false,
        },
        // Atom 1.0: any other MIME type is base64 (RFC 4287 §4.1.3.3); unreadable ones
        // cost only this field (see base64_text).
        Some(t) if t.contains('/') => base64_text(&e.text, Some(t)),
        // An unknown word: read it for what it looks like.
        Some(_) => guess(tree, i),
        None if mixed => markup(),
        None => match kind {
            TextKind::Html => Text {
                body: e.text.clone(),
                html: true,
            },
            TextKind::Plain => Text {
                body: e.text.clone(),
                html: false,
            },
            TextKind::Guess => guess(tree, i),
        },
    }
}

fn guess(tree: &Tree<'_>, i: usize) -> Text {
    let e = tree.get(i);
    if !e.children.is_empty() {
        return Text {
            body: tree.inner(i).trim().to_string(),
            html: true,
        };
    }
    Text {
        html: looks_like_html(&e.text),
        body: e.text.clone(),
    }
}

/// feedparser's test: an end tag, or a character reference, means HTML.
fn looks_like_html(text: &str) -> bool {
    let bytes = text.as_bytes();
    let end_tag = text
        .match_indices("</")
        .any(|(at, _)| bytes.get(at + 2).is_some_and(|b| b.is_ascii_alphabetic()));
    end_tag
        || text.match_indices('&').any(|(at, _)| {
            let rest = &text[at + 1..];
            let name_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '#'))
                .unwrap_or(rest.len());
            name_len > 0 && rest[name_len..].starts_with(';')
        })
        || ["<br", "<p>", "<img ", "<a href"]
            .iter()
            .any(|tag| text.to_ascii_lowercase().contains(tag))
}

/// Atom's `type="xhtml"`: the markup inside the wrapping `<div>`.
fn xhtml(tree: &Tree<'_>, i: usize) -> Text {
    let e = tree.get(i);
    let only_div = e.children.len() == 1 && e.text.trim().is_empty() && {
        let d = tree.get(e.children[0]);
        d.name == "div"
    };
    let inner = if only_div {
        tree.inner(e.children[0])
    } else if e.children.is_empty() {
        // Escaped markup where XHTML was promised: it is still markup.
        return Text {
            body: e.text.clone(),
            html: true,
        };
    } else {
        tree.inner(i)
    };
    Text {
        body: inner.trim().to_string(),
        html: true,
    }
}

/// A base64 body (Atom 0.3's `mode="base64"`, Atom 1.0's non-text MIME types). Text that is
/// not base64 is read as it is written, as feedparser does (`type="application/json"` with
/// JSON inside); base64 that is not UTF-8 is not text we can show, and the field is empty.
fn base64_text(raw: &str, declared: Option<&str>) -> Text {
    let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    let html = declared.is_some_and(|t| t.contains("html"));
    let body = match base64::engine::general_purpose::STANDARD.decode(compact.as_bytes()) {
        Ok(bytes) => String::from_utf8(bytes).unwrap_or_default(),
        Err(_) => raw.to_string(),
    };
    Text { body, html }
}

/// One author as RSS writes them: `jane@example.com (Jane Doe)`, `Jane Doe <jane@…>`, a
/// name, or an address alone (kept, since it is all there is).
pub fn person(text: &str) -> Option<String> {
    let text = text.trim();
    let email = text
        .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '<' | '>' | ','))
        .find(|w| {
            let w = w.trim_start_matches("mailto:");
            w.split_once('@').is_some_and(|(user, host)| {
                !user.is_empty() && host.contains('.') && !host.ends_with('.')
            })
        });
    let name = match email {
        Some(email) => text
            .replace(email, "")
            .replace("()", "")
            .replace("<>", "")
            .trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .trim()
            .to_string(),
        None => text.to_string(),
    };
    let chosen = if name.is_empty() {
        email.map(|e| e.trim_start_matches("mailto:").to_string())?
    } else {
        name
    };
    Some(chosen).filter(|n| !n.is_empty())
}

/// What the children of one entry element say, gathered before choosing.
#[derive(Default)]
struct Fields {
    title: Option<Text>,
    /// Titles to use when there is no `<title>`: `dc:title`, `media:title`.
    other_title: Option<Text>,
    /// The title and description of the entry's one media object (a `media:title` inside
    /// `media:content` or `<enclosure>`, as Media RSS allows): for an entry that is nothing
    /// but a photo or an episode, the best name it has.
    media_title: Option<Text>,
    media_summary: Option<Text>,
    rss_link: Option<String>,
    /// Atom links: (rel, type, href), in document order.
    atom_links: Vec<(String, String, String)>,
    guid: Option<(String, bool)>,
    summary: Option<Text>,
    /// Summaries to use when there is none: `media:description`, `itunes:summary`.
    other_summary: Option<Text>,
    content: Option<Text>,
    authors: Vec<String>,
    published: Option<DateText>,
    updated: Option<DateText>,
    created: Option<DateText>,
    categories: Vec<String>,
    /// Fields that could not be read (a base64 body that is not text).
    lost: Vec<String>,
}

/// A date element. Of two of one kind in an entry, the last is kept, as feedparser does.
fn date(slot: &mut Option<DateText>, field: &'static str, e: &Element) {
    let text = e.text.trim();
    if !text.is_empty() {
        *slot = Some(DateText {
            field,
            text: text.to_string(),
        });
    }
}

fn first<T>(slot: &mut Option<T>, value: Option<T>) {
    if slot.is_none() {
        *slot = value;
    }
}

fn non_empty(text: Text) -> Option<Text> {
    (!text.body.trim().is_empty()).then_some(text)
}

/// How many unreadable fields one fetch's warning names.
const LOST_SHOWN: usize = 5;

/// Reads one entry element, and says which of its fields could not be read.
fn item(tree: &Tree<'_>, i: usize) -> (ParsedItem, Vec<String>) {
    let mut f = Fields::default();
    for (c, e) in tree.children(i) {
        read_child(tree, c, e, &mut f);
    }
    let entry = tree.get(i);
    // CDF puts its link and date in attributes of <item>.
    if let Some(href) = entry.attr("href") {
        first(&mut f.rss_link, Some(href.trim().to_string()));
    }
    if let Some(lastmod) = entry.attr("lastmod") {
        first(
            &mut f.updated,
            Some(DateText {
                field: "lastmod",
                text: lastmod.trim().to_string(),
            }),
        );
    }
    let id = f
        .guid
        .as_ref()
        .map(|(g, _)| g.clone())
        .or_else(|| entry.attr_in(Ns::Rdf, "about").map(str::to_string))
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty());
    let mut authors = f.authors;
    let mut seen = std::collections::HashSet::new();
    authors.retain(|a| seen.insert(a.clone()));
    let item = ParsedItem {
        id,
        title: f.title.or(f.other_title).or(f.media_title),
        links: links(f.rss_link, f.atom_links, f.guid),
        base: tree.bases(i),
        summary: f.summary.or(f.other_summary).or(f.media_summary),
        content: f.content,
        authors,
        published_text: f.published.or(f.created),
        updated_text: f.updated,
        categories: f.categories,
        ..Default::default()
    };
    (item, f.lost)
}

/// The `media:title` and `media:description` of one media object of the entry.
fn read_media(tree: &Tree<'_>, media: usize, f: &mut Fields) {
    for (m, me) in tree.children(media) {
        let slot = match (me.ns, me.name.as_str()) {
            (Ns::Media, "title") => &mut f.media_title,
            (Ns::Media, "description") => &mut f.media_summary,
            _ => continue,
        };
        first(slot, non_empty(text_of(tree, m, TextKind::Guess)));
    }
}

/// Reads one child of an entry into the fields.
fn read_child(tree: &Tree<'_>, c: usize, e: &Element, f: &mut Fields) {
    let mut text = |kind| {
        let t = text_of(tree, c, kind);
        if t.body.trim().is_empty() && !e.text.trim().is_empty() {
            f.lost.push(format!(
                "<{}{}> could not be read as text, left out",
                e.name,
                e.attr("type")
                    .map(|t| format!(" type=\"{t}\""))
                    .unwrap_or_default()
            ));
        }
        non_empty(t)
    };
    match (e.ns, e.name.as_str()) {
        (Ns::None | Ns::Rss | Ns::Atom, "title") => first(&mut f.title, text(TextKind::Guess)),
        (Ns::Dc | Ns::Media, "title") => first(&mut f.other_title, text(TextKind::Guess)),
        (Ns::Media, "description") | (Ns::Itunes, "summary") => {
            first(&mut f.other_summary, text(TextKind::Guess))
        }
        // A group of alternative media describes the entry's media as one.
        (Ns::Media, "group") => {
            for (g, ge) in tree.children(c) {
                if matches!(ge.name.as_str(), "title" | "description") && ge.ns == Ns::Media {
                    read_child(tree, g, ge, f);
                } else if ge.ns == Ns::Media && ge.name == "content" {
                    read_media(tree, g, f);
                }
            }
        }
        (Ns::Media, "content") | (Ns::None | Ns::Rss, "enclosure") => read_media(tree, c, f),
        (Ns::None | Ns::Rss | Ns::Atom, "link") => match e.attr("href") {
            Some(href) => f.atom_links.push((
                e.attr("rel")
                    .unwrap_or("alternate")
                    .trim()
                    .to_ascii_lowercase(),
                e.attr("type").unwrap_or("").trim().to_ascii_lowercase(),
                href.trim().to_string(),
            )),
            None => first(
                &mut f.rss_link,
                Some(e.text.trim().to_string()).filter(|l| !l.is_empty()),
            ),
        },
        (Ns::None | Ns::Rss, "guid") => {
            let permalink = e
                .attr("ispermalink")
                .map_or(true, |p| p.trim().eq_ignore_ascii_case("true"));
            first(&mut f.guid, Some((e.text.trim().to_string(), permalink)));
        }
        // An Atom id that is a web address is as good a link as a permalink guid, when the
        // entry has no other.
        (Ns::Atom | Ns::None, "id") => first(&mut f.guid, Some((e.text.trim().to_string(), true))),
        (Ns::None | Ns::Rss | Ns::Dc, "description") => first(&mut f.summary, text(TextKind::Html)),
        (Ns::Atom | Ns::None, "summary") => first(&mut f.summary, text(TextKind::Plain)),
        (Ns::None, "abstract") => first(&mut f.summary, text(TextKind::Plain)),
        (Ns::Atom | Ns::None, "content") if e.attr("src").is_none() => {
            first(&mut f.content, text(TextKind::Plain))
        }
        (Ns::Content, "encoded") | (Ns::None, "fullitem") => {
            first(&mut f.content, text(TextKind::Html))
        }
        (Ns::Xhtml | Ns::None, "body") => first(
            &mut f.content,
            non_empty(Text {
                body: tree.inner(c).trim().to_string(),
                html: true,
            }),
        ),
        (Ns::None | Ns::Rss | Ns::Atom, "author") => {
            // Atom's <author><name>…</name><email>…</email></author>, or RSS's text.
            let name = tree
                .children(c)
                .find(|(_, p)| p.name == "name")
                .map(|(_, p)| p.text.trim().to_string())
                .filter(|n| !n.is_empty())
                .or_else(|| {
                    tree.children(c)
                        .find(|(_, p)| p.name == "email")
                        .map(|(_, p)| p.text.trim().to_string())
                        .filter(|n| !n.is_empty())
                });
            let name = if e.children.is_empty() {
                person(&e.text)
            } else {
                name
            };
            f.authors.extend(name);
        }
        (Ns::Dc, "creator" | "author") => f.authors.extend(person(&e.text)),
        (Ns::Itunes, "author") => f.authors.extend(person(&e.text)),
        (Ns::None | Ns::Rss, "pubdate") => date(&mut f.published, "pubDate", e),
        (Ns::Atom | Ns::None, "published") => date(&mut f.published, "published", e),
        (Ns::Atom | Ns::None, "issued") => date(&mut f.published, "issued", e),
        (Ns::Dcterms, "issued") => date(&mut f.published, "dcterms:issued", e),
        (Ns::Atom | Ns::None, "created") => date(&mut f.created, "created", e),
        (Ns::Dcterms, "created") => date(&mut f.created, "dcterms:created", e),
        (Ns::Atom | Ns::None, "updated") => date(&mut f.updated, "updated", e),
        (Ns::Atom | Ns::None, "modified") => date(&mut f.updated, "modified", e),
        (Ns::Dcterms, "modified") => date(&mut f.updated, "dcterms:modified", e),
        (Ns::Dc, "date") => date(&mut f.updated, "dc:date", e),
        (Ns::None | Ns::Rss | Ns::Atom, "category") => {
            let label = e
                .attr("label")
                .or(e.attr("term"))
                .map(str::to_string)
                .unwrap_or_else(|| e.text.clone());
            let label = label.trim();
            if !label.is_empty() {
                f.categories.push(label.to_string());
            }
        }
        (Ns::Dc, "subject") => {
            let subject = e.text.trim();
            if !subject.is_empty() {
                f.categories.push(subject.to_string());
            }
        }
        _ => {}
    }
}

/// The entry's links, its own page first: RSS's `<link>`; Atom's alternates, those of an HTML
/// type before others (a PDF alternate is still a page, but a worse one); else a permalink
/// guid that is a web address. Enclosures, `related`, `self`, `via` and the rest are not the
/// entry's page and are never taken for it.
fn links(
    rss_link: Option<String>,
    atom_links: Vec<(String, String, String)>,
    guid: Option<(String, bool)>,
) -> Vec<String> {
    let mut out: Vec<String> = rss_link.into_iter().collect();
    let alternates = atom_links
        .into_iter()
        .filter(|(rel, _, href)| {
            !href.is_empty()
                && (rel == "alternate" || rel.is_empty() || rel.ends_with("/alternate"))
        })
        .map(|(_, kind, href)| {
            let html = kind.is_empty()
                || kind.starts_with("text/html")
                || kind.starts_with("application/xhtml+xml");
            (!html, href)
        });
    let mut alternates: Vec<(bool, String)> = alternates.collect();
    alternates.sort_by_key(|(worse, _)| *worse);
    out.extend(alternates.into_iter().map(|(_, href)| href));
    if let Some((g, true)) = guid {
        let lower = g.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            out.push(g);
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|l| seen.insert(l.clone()));
    out
}

#[cfg(test)]
mod tests {
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
}
