//! OPML 2.0 (<https://opml.org/spec2.opml>), read and written with quick-xml: the list of output
//! feeds `GET /opml` serves, `tributary opml export` (the configured sources) and
//! `tributary opml import` (a reader's subscriptions added to the config file).
//!
//! Writing: every attribute value and text goes through quick-xml's escaping, and characters XML
//! 1.0 cannot carry are dropped, so any name or URL gives a well-formed document. Categories are
//! nested outlines (what Miniflux, FreshRSS and NetNewsWire read); a source's tags go in the
//! outline's `category` attribute (comma-separated names without slashes: OPML's tags).
//!
//! Reading is lenient the way readers' exports need: attribute names in any case, `text` or
//! `title`, a stray `&` in a URL, any encoding [`crate::decode`] recognizes. Nested outlines are
//! folders: a feed's category is the innermost folder's name.
//!
//! Import never rewrites the config: it appends `[[sources]]` tables (serialized by the toml
//! crate), checks that the whole new text loads with [`Config::from_toml`], then replaces the
//! file atomically (a temporary file beside it, renamed over it).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer, XmlVersion};
use url::Url;

use crate::config::{Config, ConfigError, SourceConfig, SourceKind};
use crate::config_edit::{self, NewSource};
use crate::feed_urls;
use crate::model::Scope;
use crate::publish::Format;

/// The media type `GET /opml` is served with. OPML has no registered type; `text/x-opml` is the
/// one subscription lists are exchanged with (readers' exports, podcast directories), and it
/// says what the document is, where `application/xml` would only say how it is written.
pub const CONTENT_TYPE: &str = "text/x-opml; charset=utf-8";

/// The category of imported feeds that are in no folder.
pub const DEFAULT_CATEGORY: &str = "imported";

#[derive(Debug, thiserror::Error)]
pub enum OpmlError {
    #[error("{}: cannot read: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: not an OPML document: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Edit(#[from] config_edit::EditError),
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// One `<outline>` to write.
struct Outline {
    /// Written as an XML comment just before the element.
    comment: Option<String>,
    attrs: Vec<(&'static str, String)>,
    children: Vec<Outline>,
}

impl Outline {
    /// A folder: `text` and `title` are its name.
    fn folder(name: &str, children: Vec<Outline>) -> Outline {
        Outline {
            comment: None,
            attrs: vec![("text", name.to_string()), ("title", name.to_string())],
            children,
        }
    }

    /// A feed a reader subscribes to.
    fn feed(name: &str, xml_url: &str, html_url: Option<&str>) -> Outline {
        let mut attrs = vec![
            ("text", name.to_string()),
            ("title", name.to_string()),
            ("type", "rss".to_string()),
            ("xmlUrl", xml_url.to_string()),
        ];
        if let Some(html) = html_url {
            attrs.push(("htmlUrl", html.to_string()));
        }
        Outline {
            comment: None,
            attrs,
            children: Vec::new(),
        }
    }
}

/// `tributary opml export`: the configured sources (disabled ones too), one folder per category
/// in the config's order, holding its sources in the config's order.
///
/// A feed source is a `type="rss"` outline: `text` and `title` are its name, `xmlUrl` its URL,
/// `category` its tags. No `htmlUrl`: the config does not know a feed's home page. A page
/// source (`kind = "html"` or `"json"`) has no feed a reader could poll: it is written as a
/// `type="link"` outline whose `url` is the page, after a comment saying so; `import` skips
/// it (its selectors only live in the config).
///
/// Returns the document and notes for the operator (tags that cannot make the trip).
pub fn export_sources(
    sources: &[std::sync::Arc<SourceConfig>],
    created: DateTime<Utc>,
) -> (String, Vec<String>) {
    let mut notes = Vec::new();
    let mut folders: Vec<(&str, Vec<Outline>)> = Vec::new();
    for s in sources {
        let mut outline = match s.kind {
            SourceKind::Feed => Outline::feed(&s.name, s.url.as_str(), None),
            SourceKind::Html | SourceKind::Json => Outline {
                comment: Some(format!(
                    "tributary page source {:?} (kind = \"{}\"): read with selectors, not a \
                     feed; subscribe to tributary's /sources/{}.atom instead",
                    s.id,
                    if s.kind == SourceKind::Html {
                        "html"
                    } else {
                        "json"
                    },
                    s.id
                )),
                attrs: vec![
                    ("text", s.name.clone()),
                    ("title", s.name.clone()),
                    ("type", "link".to_string()),
                    ("url", s.url.to_string()),
                ],
                children: Vec::new(),
            },
        };
        if !s.enabled {
            let said = outline
                .comment
                .take()
                .map(|c| format!("{c}; "))
                .unwrap_or_default();
            outline.comment = Some(format!(
                "{said}source {:?} is disabled in tributary (enabled = false)",
                s.id
            ));
        }
        for tag in &s.tags {
            if tag.contains(',') || tag.trim_start().starts_with('/') || tag.trim() != tag {
                notes.push(format!(
                    "source {:?}: tag {tag:?} cannot be written exactly in OPML's category \
                     attribute (commas separate tags, a leading slash makes a path, spaces \
                     around it are dropped)",
                    s.id
                ));
            }
        }
        if !s.tags.is_empty() {
            outline.attrs.push(("category", s.tags.join(",")));
        }
        match folders.iter_mut().find(|(c, _)| *c == s.category) {
            Some((_, outlines)) => outlines.push(outline),
            None => folders.push((&s.category, vec![outline])),
        }
    }
    let body: Vec<Outline> = folders
        .into_iter()
        .map(|(category, outlines)| Outline::folder(category, outlines))
        .collect();
    (document("tributary sources", created, &body), notes)
}

/// `GET /opml`: every feed tributary publishes, for a reader to subscribe to in one go:
/// `/feeds/all.atom` first, then a "Categories" folder with each category's feed and a "Tags"
/// folder with each tag's feed (each folder only when there is something in it).
///
/// URLs are [`feed_urls::url`]s under `base`, the ones the server answers.
/// `htmlUrl` is `base`, the home link the feeds themselves carry.
pub fn feed_list(
    base: &Url,
    categories: &BTreeSet<String>,
    tags: &BTreeSet<String>,
    created: DateTime<Utc>,
) -> String {
    let home = base.as_str();
    let mut body = vec![Outline::feed(
        "All sources",
        feed_urls::url(base, &Scope::All, Format::Atom).as_str(),
        Some(home),
    )];
    let folder = |name: &str, names: &BTreeSet<String>, scope: fn(String) -> Scope| {
        let feeds = names
            .iter()
            .map(|n| {
                let url = feed_urls::url(base, &scope(n.clone()), Format::Atom);
                Outline::feed(n, url.as_str(), Some(home))
            })
            .collect();
        Outline::folder(name, feeds)
    };
    if !categories.is_empty() {
        body.push(folder("Categories", categories, Scope::Category));
    }
    if !tags.is_empty() {
        body.push(folder("Tags", tags, Scope::Tag));
    }
    document("tributary feeds", created, &body)
}

fn document(title: &str, created: DateTime<Utc>, body: &[Outline]) -> String {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    write_document(&mut writer, title, created, body).expect("writing to a Vec cannot fail");
    let mut text =
        String::from_utf8(writer.into_inner()).expect("quick-xml writes the UTF-8 it is given");
    text.push('\n');
    text
}

fn write_document(
    w: &mut Writer<Vec<u8>>,
    title: &str,
    created: DateTime<Utc>,
    body: &[Outline],
) -> io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.write_event(Event::Start(
        BytesStart::new("opml").with_attributes([("version", "2.0")]),
    ))?;
    w.write_event(Event::Start(BytesStart::new("head")))?;
    for (name, text) in [
        ("title", title.to_string()),
        // RFC 822, as OPML 2.0 asks.
        (
            "dateCreated",
            created.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        ),
    ] {
        w.write_event(Event::Start(BytesStart::new(name)))?;
        w.write_event(Event::Text(BytesText::new(&xml_chars(&text))))?;
        w.write_event(Event::End(BytesEnd::new(name)))?;
    }
    w.write_event(Event::End(BytesEnd::new("head")))?;
    w.write_event(Event::Start(BytesStart::new("body")))?;
    for outline in body {
        write_outline(w, outline)?;
    }
    w.write_event(Event::End(BytesEnd::new("body")))?;
    w.write_event(Event::End(BytesEnd::new("opml")))
}

fn write_outline(w: &mut Writer<Vec<u8>>, outline: &Outline) -> io::Result<()> {
    if let Some(comment) = &outline.comment {
        w.write_event(Event::Comment(BytesText::from_escaped(comment_text(
            comment,
        ))))?;
    }
    let values: Vec<String> = outline.attrs.iter().map(|(_, v)| xml_chars(v)).collect();
    let start = BytesStart::new("outline").with_attributes(
        outline
            .attrs
            .iter()
            .zip(&values)
            .map(|((k, _), v)| (*k, v.as_str())),
    );
    if outline.children.is_empty() {
        return w.write_event(Event::Empty(start));
    }
    w.write_event(Event::Start(start))?;
    for child in &outline.children {
        write_outline(w, child)?;
    }
    w.write_event(Event::End(BytesEnd::new("outline")))
}

/// `s` without the characters XML 1.0 cannot carry; tabs and line breaks become spaces (a
/// reader would normalize them so in an attribute anyway).
fn xml_chars(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            '\t' | '\n' | '\r' => Some(' '),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => None,
            c => Some(c),
        })
        .collect()
}

/// A comment's text: XML characters only, no `--`, not ending in `-`, spaces around it.
fn comment_text(s: &str) -> String {
    let mut text = xml_chars(s);
    while text.contains("--") {
        text = text.replace("--", "- -");
    }
    format!(" {text} ")
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// An outline that names a URL, as a reader exported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// `text`, else `title`, trimmed (may be empty).
    pub name: String,
    /// `xmlUrl` (any case), else `url`, trimmed.
    pub url: String,
    /// `type`, lower-cased; empty when absent.
    pub kind: String,
    /// The innermost enclosing folder's `text` (else `title`), trimmed; None at the top level.
    pub folder: Option<String>,
    /// Names in the `category` attribute without a leading slash: OPML's tags.
    pub tags: Vec<String>,
    /// The last name of the first slash path in the `category` attribute (`/News/Tech` gives
    /// `Tech`).
    pub category_path: Option<String>,
}

/// Reads an OPML document: every outline that names a URL (`xmlUrl`, or `url` for links and
/// the like), in document order. Whether it is a feed is the importer's call. An outline
/// without a URL that holds others is a folder.
pub fn read(text: &str) -> Result<Vec<Subscription>, String> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    // Folders open around the current position; None for an outline that is no folder (a feed
    // with children, which some exporters write).
    let mut open: Vec<Option<String>> = Vec::new();
    let mut found = Vec::new();
    let mut seen_root = false;
    loop {
        let event = reader.read_event().map_err(|e| {
            format!(
                "not well-formed XML at byte {}: {e}",
                reader.error_position()
            )
        })?;
        let (element, has_children) = match &event {
            Event::Start(e) => (e, true),
            Event::Empty(e) => (e, false),
            Event::End(e) => {
                if e.local_name().as_ref().eq_ignore_ascii_case(b"outline") {
                    open.pop();
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let name = element.local_name();
        if !seen_root {
            if !name.as_ref().eq_ignore_ascii_case(b"opml") {
                return Err(format!(
                    "the root element is <{}>, not <opml>",
                    String::from_utf8_lossy(name.as_ref())
                ));
            }
            seen_root = true;
            continue;
        }
        if !name.as_ref().eq_ignore_ascii_case(b"outline") {
            continue;
        }
        let attrs = attributes(element);
        let get = |key: &str| attrs.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let label = get("text").or_else(|| get("title"));
        let url = get("xmlurl").or_else(|| get("url"));
        if let Some(url) = url {
            let (tags, category_path) = categories(get("category").unwrap_or_default());
            found.push(Subscription {
                name: label.unwrap_or_default().to_string(),
                url: url.to_string(),
                kind: get("type").unwrap_or_default().to_ascii_lowercase(),
                folder: open.iter().rev().find_map(Clone::clone),
                tags,
                category_path,
            });
        }
        if has_children {
            open.push(match url {
                Some(_) => None,
                None => label.map(str::to_string),
            });
        }
    }
    if !seen_root {
        return Err("no <opml> element".into());
    }
    Ok(found)
}

/// An element's attributes by lower-cased name (the first of repeated ones), values unescaped
/// and normalized; a value with a stray `&` (seen in exports) is unescaped leniently.
fn attributes(element: &BytesStart<'_>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for attr in element.attributes().with_checks(false) {
        let Ok(attr) = attr else {
            break;
        };
        let key = String::from_utf8_lossy(attr.key.as_ref()).to_ascii_lowercase();
        let value = match attr.normalized_value(XmlVersion::Implicit1_0) {
            Ok(v) => v.into_owned(),
            Err(_) => lenient_unescape(&String::from_utf8_lossy(&attr.value)),
        };
        map.entry(key).or_insert(value);
    }
    map
}

/// Unescapes the predefined entities and character references, leaving any other `&` as it is.
fn lenient_unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let decoded = after.find(';').filter(|&end| end <= 10).and_then(|end| {
            let name = &after[..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => match name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => name.strip_prefix('#').and_then(|d| d.parse().ok()),
                }
                .and_then(char::from_u32),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.replace(['\t', '\n', '\r'], " ")
}

/// OPML's `category` attribute: comma-separated; a name with a leading slash is a path, one
/// without is a tag. Returns (tags, the last name of the first path).
fn categories(attr: &str) -> (Vec<String>, Option<String>) {
    let mut tags: Vec<String> = Vec::new();
    let mut path = None;
    for item in attr.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        match item.strip_prefix('/') {
            Some(p) => {
                if path.is_none() {
                    path = p
                        .rsplit('/')
                        .map(str::trim)
                        .find(|s| !s.is_empty())
                        .map(str::to_string);
                }
            }
            None => {
                if !tags.iter().any(|t| t == item) {
                    tags.push(item.to_string());
                }
            }
        }
    }
    (tags, path)
}

// ---------------------------------------------------------------------------------------------
// Importing
// ---------------------------------------------------------------------------------------------

/// An outline `import` left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub name: String,
    pub url: String,
    pub why: String,
}

/// What `import` added and skipped. Nothing added means the config was not touched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub added: Vec<NewSource>,
    pub skipped: Vec<Skipped>,
}

/// `type` values of outlines that are feeds. Anything else (`link`, `include`, FreshRSS's
/// `HTML+XPath`…) is skipped: it is not something tributary can poll as a feed.
const FEED_TYPES: &[&str] = &["", "rss", "atom", "json", "jsonfeed", "feed"];

/// Decides which subscriptions become sources, given the configured `existing` sources and ids
/// that must not be used (`reserved`: ids the database still knows from sources since removed
/// from the config, whose entries a new source must not take over).
///
/// - A feed already configured (same URL once normalized: scheme http/https, host case,
///   default port, fragment and a trailing slash do not count) or listed earlier in the file
///   is skipped, as is an outline that is no feed or whose URL is not http(s).
/// - Its category is its innermost folder's name; else the last name of a `/path` in its
///   `category` attribute; else [`DEFAULT_CATEGORY`]. A folder named `all` in any case
///   (Miniflux's default category is "All") counts as none: `all` is the feed of every source.
/// - Its tags are the other names in its `category` attribute.
/// - Its id is made from its name, else its host: `[a-z0-9-]+`, unique (`-2`, `-3`… when
///   taken).
pub fn plan(
    subscriptions: &[Subscription],
    existing: &[std::sync::Arc<SourceConfig>],
    reserved: &HashSet<String>,
) -> ImportReport {
    let mut report = ImportReport::default();
    let mut known: HashMap<String, String> = existing
        .iter()
        .map(|s| {
            (
                config_edit::url_key(&s.url),
                format!("already configured as source {:?}", s.id),
            )
        })
        .collect();
    let mut taken: HashSet<String> = existing.iter().map(|s| s.id.clone()).collect();
    taken.extend(reserved.iter().cloned());
    for sub in subscriptions {
        let skip = |why: String| Skipped {
            name: sub.name.clone(),
            url: sub.url.clone(),
            why,
        };
        if !FEED_TYPES.contains(&sub.kind.as_str()) {
            report
                .skipped
                .push(skip(format!("not a feed (type={:?})", sub.kind)));
            continue;
        }
        let url = match config_edit::feed_url(&sub.url) {
            Ok(url) => url,
            Err(why) => {
                report.skipped.push(skip(why));
                continue;
            }
        };
        let key = config_edit::url_key(&url);
        if let Some(why) = known.get(&key) {
            report.skipped.push(skip(why.clone()));
            continue;
        }
        let host = url.host_str().unwrap_or_default();
        let name = if sub.name.is_empty() {
            host.to_string()
        } else {
            sub.name.clone()
        };
        let category = sub
            .folder
            .as_deref()
            .or(sub.category_path.as_deref())
            .filter(|c| !c.eq_ignore_ascii_case("all"))
            .unwrap_or(DEFAULT_CATEGORY)
            .to_string();
        let id = config_edit::new_id(&name, host, &taken);
        taken.insert(id.clone());
        known.insert(key, format!("listed earlier in the file (as {name:?})"));
        report.added.push(NewSource {
            id,
            name,
            url: url.to_string(),
            category,
            tags: sub.tags.clone(),
        });
    }
    report
}

/// `tributary opml import FILE`: reads the OPML file, decides with [`plan`], and when there is
/// something to add, appends it to the config file at `config_path`. The existing text is kept
/// byte for byte; the new text must load as a valid config, else nothing is written; the file
/// is replaced atomically, and only if nobody changed it meanwhile.
pub fn import(
    config_path: &Path,
    opml_path: &Path,
    reserved: &HashSet<String>,
    now: DateTime<Utc>,
) -> Result<ImportReport, OpmlError> {
    let bytes = std::fs::read(opml_path).map_err(|source| OpmlError::Read {
        path: opml_path.to_path_buf(),
        source,
    })?;
    let text = crate::decode::decode(&bytes, None).text;
    let subscriptions = read(&text).map_err(|message| OpmlError::Parse {
        path: opml_path.to_path_buf(),
        message,
    })?;
    let config = Config::load(config_path)?;
    let report = plan(&subscriptions, &config.sources, reserved);
    if report.added.is_empty() {
        return Ok(report);
    }
    let note = format!(
        "Added by `tributary opml import` from {} on {}.",
        opml_path.display(),
        now.format("%Y-%m-%d %H:%M UTC")
    );
    config_edit::append_sources(config_path, &report.added, &note)?;
    Ok(report)
}

#[cfg(test)]
mod tests;
