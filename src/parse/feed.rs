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

/// An Atom `<link href rel type>`, or RSS's `<link>` text.
fn read_link(e: &Element, f: &mut Fields) {
    match e.attr("href") {
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
    }
}

/// Atom's `<author><name>…</name><email>…</email></author>` (the name, else the address), or
/// RSS's text read as a person.
fn author(tree: &Tree<'_>, c: usize, e: &Element) -> Option<String> {
    if e.children.is_empty() {
        return person(&e.text);
    }
    let child = |name: &str| {
        tree.children(c)
            .find(|(_, p)| p.name == name)
            .map(|(_, p)| p.text.trim().to_string())
            .filter(|n| !n.is_empty())
    };
    child("name").or_else(|| child("email"))
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
        (Ns::None | Ns::Rss | Ns::Atom, "link") => read_link(e, f),
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
        (Ns::None | Ns::Rss | Ns::Atom, "author") => f.authors.extend(author(tree, c, e)),
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
            let label = e.attr("label").or(e.attr("term")).unwrap_or(&e.text).trim();
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
mod tests;
