//! A lenient XML reader: UTF-8 text to a small element tree, the way feed readers read feeds.
//!
//! Feeds in the wild are often not well-formed XML: HTML entities with no DTD (`&nbsp;`), bare
//! `&`, end tags that do not match, undeclared namespace prefixes. Readers read them anyway, so
//! this does too: quick-xml tokenizes without checking end names or references, end tags close
//! the nearest open element of their name (and those inside it), references are resolved here
//! (XML's five, numeric, HTML's named ones; entities a DTD declares are never expanded, so a
//! billion laughs stays literal text), and element names are matched by namespace, with the
//! usual prefixes (`dc:`, `content:`, `atom:`…) standing for their namespace when undeclared.
//! Local names are lower-cased, as feedparser does, so `<PubDate>` is `pubdate`.
//!
//! What it cannot repair is reported: a document that ends before its root element closes is
//! cut off (`Tree::truncated`).

use std::ops::Range;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// The namespaces feeds are read in. Atom 0.3 and 1.0 are one: their elements mean the same
/// where they share a name. RSS 0.90 and 1.0's namespaces are RSS's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ns {
    /// No namespace (RSS 0.9x/2.0, and documents that forgot theirs).
    None,
    Atom,
    Rss,
    Rdf,
    Dc,
    Dcterms,
    Content,
    Xhtml,
    Media,
    Itunes,
    Xml,
    Other,
}

impl Ns {
    fn of_uri(uri: &str) -> Ns {
        // Namespace names are case-sensitive, but feeds write iTunes' in several cases and
        // readers accept them all.
        let uri = uri.trim().to_ascii_lowercase();
        match uri.trim_end_matches(['/', '#']) {
            "http://www.w3.org/2005/atom" | "http://purl.org/atom/ns" => Ns::Atom,
            "http://purl.org/rss/1.0"
            | "http://my.netscape.com/rdf/simple/0.9"
            | "http://backend.userland.com/rss2"
            | "http://backend.userland.com/rss"
            | "http://blogs.law.harvard.edu/tech/rss" => Ns::Rss,
            "http://www.w3.org/1999/02/22-rdf-syntax-ns" => Ns::Rdf,
            "http://purl.org/dc/elements/1.1" | "http://purl.org/dc/elements/1.0" => Ns::Dc,
            "http://purl.org/dc/terms" => Ns::Dcterms,
            "http://purl.org/rss/1.0/modules/content" => Ns::Content,
            "http://www.w3.org/1999/xhtml" => Ns::Xhtml,
            "http://search.yahoo.com/mrss" => Ns::Media,
            "http://www.itunes.com/dtds/podcast-1.0.dtd" => Ns::Itunes,
            "http://www.w3.org/xml/1998/namespace" => Ns::Xml,
            "" => Ns::None,
            _ => Ns::Other,
        }
    }

    /// What an undeclared prefix most likely means.
    fn of_prefix(prefix: &str) -> Ns {
        match prefix.to_ascii_lowercase().as_str() {
            "atom" | "atom10" | "atom03" => Ns::Atom,
            "rdf" => Ns::Rdf,
            "dc" => Ns::Dc,
            "dcterms" => Ns::Dcterms,
            "content" => Ns::Content,
            "xhtml" => Ns::Xhtml,
            "media" => Ns::Media,
            "itunes" => Ns::Itunes,
            "xml" => Ns::Xml,
            _ => Ns::Other,
        }
    }
}

/// One element: its name, attributes, direct text and where its content is in the document.
#[derive(Debug)]
pub struct Element {
    pub ns: Ns,
    /// Lower-cased local name.
    pub name: String,
    /// (namespace, lower-cased local name, value with references resolved).
    pub attrs: Vec<(Ns, String, String)>,
    /// The text and CDATA directly inside, references resolved, in document order.
    pub text: String,
    pub children: Vec<usize>,
    pub parent: Option<usize>,
    /// Byte range of everything between the start and end tags (the markup of mixed content);
    /// to the end of the document for an element never closed.
    pub inner: Range<usize>,
}

impl Element {
    pub fn is(&self, ns: &[Ns], name: &str) -> bool {
        self.name == name && ns.contains(&self.ns)
    }

    /// An attribute by local name, in no namespace or the given one.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(ns, n, _)| n == name && matches!(ns, Ns::None | Ns::Rdf | Ns::Xml))
            .map(|(_, _, v)| v.as_str())
    }

    pub fn attr_in(&self, ns: Ns, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n_ns, n, _)| *n_ns == ns && n == name)
            .map(|(_, _, v)| v.as_str())
    }
}

/// A document as elements; index 0 is not special, `root` is the document element.
#[derive(Debug)]
pub struct Tree<'a> {
    pub doc: &'a str,
    pub elements: Vec<Element>,
    pub root: Option<usize>,
    /// The document ended with elements still open: `(name of the outermost, bytes read)`.
    pub truncated: Option<String>,
    /// Why tokenizing stopped early, if it did.
    pub error: Option<String>,
}

impl<'a> Tree<'a> {
    pub fn get(&self, i: usize) -> &Element {
        &self.elements[i]
    }

    pub fn children(&self, i: usize) -> impl Iterator<Item = (usize, &Element)> {
        self.elements[i]
            .children
            .iter()
            .map(move |&c| (c, &self.elements[c]))
    }

    /// The `xml:base` values in scope at `i`, outermost first (RFC 3986 resolves them in
    /// that order, against the document's own address).
    pub fn bases(&self, i: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut at = Some(i);
        while let Some(e) = at {
            let element = &self.elements[e];
            // CDF names its base with a plain BASE attribute on its channel.
            let base = element.attr_in(Ns::Xml, "base").or_else(|| {
                (element.name == "channel")
                    .then(|| element.attr_in(Ns::None, "base"))
                    .flatten()
            });
            if let Some(base) = base {
                out.push(base.trim().to_string());
            }
            at = self.elements[e].parent;
        }
        out.reverse();
        out
    }

    /// The markup inside an element, as written.
    pub fn inner(&self, i: usize) -> &'a str {
        let r = &self.elements[i].inner;
        self.doc.get(r.clone()).unwrap_or("")
    }

    /// Every element's text inside `i`, depth first (what a browser would show of it).
    pub fn all_text(&self, i: usize) -> String {
        // Direct text and children are interleaved in the document; kept apart here, each
        // element's own text comes before its children's. Callers use this only for elements
        // that are nearly all text. A stack of its own: nesting can be deeper than a call
        // stack.
        let mut out = String::new();
        let mut todo = vec![i];
        while let Some(e) = todo.pop() {
            out.push_str(&self.elements[e].text);
            todo.extend(self.elements[e].children.iter().rev());
        }
        out
    }
}

/// Namespace bindings in scope: (prefix, namespace), innermost last.
struct Scope {
    bindings: Vec<(String, Ns)>,
    /// How many bindings each open element added.
    added: Vec<usize>,
}

impl Scope {
    fn lookup(&self, prefix: &str) -> Ns {
        match self.bindings.iter().rev().find(|(p, _)| p == prefix) {
            Some((_, ns)) => *ns,
            None if prefix.is_empty() => Ns::None,
            None => Ns::of_prefix(prefix),
        }
    }
}

fn split_name(raw: &[u8]) -> (String, String) {
    let name = String::from_utf8_lossy(raw);
    match name.split_once(':') {
        Some((p, l)) => (p.to_string(), l.to_ascii_lowercase()),
        None => (String::new(), name.to_ascii_lowercase()),
    }
}

/// Resolves one reference by name (`amp`, `#38`, `#x26`, `nbsp`): XML's five, numeric ones,
/// and HTML's named ones; anything else stays as written.
fn reference(name: &str, out: &mut String) {
    let literal = |out: &mut String| {
        out.push('&');
        out.push_str(name);
        out.push(';');
    };
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => num.parse().ok(),
        };
        match code.and_then(char::from_u32) {
            // cp1252's C1 range, as browsers and feedparser read it.
            Some(c @ '\u{80}'..='\u{9f}') => out.push(cp1252(c)),
            Some(c) => out.push(c),
            None => literal(out),
        }
        return;
    }
    match name {
        "amp" => out.push('&'),
        "lt" => out.push('<'),
        "gt" => out.push('>'),
        "quot" => out.push('"'),
        "apos" => out.push('\''),
        _ => {
            let written = format!("&{name};");
            let decoded = html_escape::decode_html_entities(&written);
            out.push_str(&decoded);
        }
    }
}

fn cp1252(c: char) -> char {
    let bytes = [c as u32 as u8];
    let (text, _, _) = encoding_rs::WINDOWS_1252.decode(&bytes);
    text.chars().next().unwrap_or(c)
}

/// Resolves the references in an attribute value or a piece of text; a bare `&` stays.
pub fn resolve_references(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after
            .find(|c: char| c == ';' || c == '&' || c.is_whitespace() || c == '<')
            .filter(|&e| after.as_bytes().get(e) == Some(&b';') && e > 0 && e <= 32);
        match end {
            Some(e) => {
                reference(&after[..e], &mut out);
                rest = &after[e + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn attributes(start: &BytesStart<'_>, scope: &Scope) -> Vec<(Ns, String, String)> {
    let mut out = Vec::new();
    for attr in start.html_attributes().with_checks(false).flatten() {
        let (prefix, local) = split_name(attr.key.as_ref());
        if prefix == "xmlns" || (prefix.is_empty() && local == "xmlns") {
            continue;
        }
        let ns = if prefix.is_empty() {
            Ns::None
        } else {
            scope.lookup(&prefix)
        };
        let value = resolve_references(&String::from_utf8_lossy(&attr.value));
        out.push((ns, local, value));
    }
    out
}

/// The `xmlns` and `xmlns:p` declarations of a start tag.
fn declarations(start: &BytesStart<'_>) -> Vec<(String, Ns)> {
    let mut out = Vec::new();
    for attr in start.html_attributes().with_checks(false).flatten() {
        let key = attr.key.as_ref();
        let prefix = if key == b"xmlns" {
            String::new()
        } else if let Some(p) = key.strip_prefix(b"xmlns:") {
            String::from_utf8_lossy(p).into_owned()
        } else {
            continue;
        };
        let uri = resolve_references(&String::from_utf8_lossy(&attr.value));
        out.push((prefix, Ns::of_uri(&uri)));
    }
    out
}

/// Reads `doc` into a tree, as far as it can.
pub fn read(doc: &str) -> Tree<'_> {
    let mut reader = Reader::from_str(doc);
    {
        let config = reader.config_mut();
        config.check_end_names = false;
        config.allow_unmatched_ends = true;
        config.allow_dangling_amp = true;
        config.expand_empty_elements = false;
    }
    let mut b = Builder {
        tree: Tree {
            doc,
            elements: Vec::new(),
            root: None,
            truncated: None,
            error: None,
        },
        scope: Scope {
            bindings: Vec::new(),
            added: Vec::new(),
        },
        open: Vec::new(),
    };
    loop {
        let before = reader.buffer_position() as usize;
        let event = match reader.read_event() {
            Ok(e) => e,
            Err(e) => {
                b.tree.error = Some(format!("at byte {}: {e}", reader.error_position()));
                break;
            }
        };
        let after = reader.buffer_position() as usize;
        match event {
            Event::Start(start) => b.start(&start, after, false),
            Event::Empty(start) => b.start(&start, after, true),
            Event::End(end) => b.end(end.name().as_ref(), before),
            Event::Text(text) => b.text(&String::from_utf8_lossy(text.as_ref())),
            Event::CData(data) => b.text(&String::from_utf8_lossy(data.as_ref())),
            Event::GeneralRef(r) => {
                let mut resolved = String::new();
                reference(&String::from_utf8_lossy(r.as_ref()), &mut resolved);
                b.text(&resolved);
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    b.finish()
}

/// The tree being built and the elements still open, outermost first.
struct Builder<'a> {
    tree: Tree<'a>,
    scope: Scope,
    open: Vec<usize>,
}

impl<'a> Builder<'a> {
    fn start(&mut self, start: &BytesStart<'_>, content_at: usize, empty: bool) {
        let declared = declarations(start);
        self.scope.added.push(declared.len());
        self.scope.bindings.extend(declared);
        let (prefix, name) = split_name(start.name().as_ref());
        let ns = self.scope.lookup(&prefix);
        let attrs = attributes(start, &self.scope);
        let index = self.tree.elements.len();
        self.tree.elements.push(Element {
            ns,
            name,
            attrs,
            text: String::new(),
            children: Vec::new(),
            parent: self.open.last().copied(),
            inner: content_at..content_at,
        });
        match self.open.last() {
            Some(&parent) => self.tree.elements[parent].children.push(index),
            None if self.tree.root.is_none() => self.tree.root = Some(index),
            // Content after the document element: ignored, as parsers do.
            None => {}
        }
        if empty {
            self.pop_scope();
        } else {
            self.open.push(index);
        }
    }

    /// The nearest open element of that name closes, and everything inside it; an end tag
    /// nothing matches is ignored.
    fn end(&mut self, raw_name: &[u8], at: usize) {
        let (_, name) = split_name(raw_name);
        let elements = &mut self.tree.elements;
        let Some(depth) = self.open.iter().rposition(|&i| elements[i].name == name) else {
            return;
        };
        for &i in &self.open[depth..] {
            elements[i].inner.end = at;
        }
        for _ in depth..self.open.len() {
            self.pop_scope();
        }
        self.open.truncate(depth);
    }

    fn pop_scope(&mut self) {
        let added = self.scope.added.pop().unwrap_or(0);
        let keep = self.scope.bindings.len().saturating_sub(added);
        self.scope.bindings.truncate(keep);
    }

    fn text(&mut self, text: &str) {
        if let Some(&i) = self.open.last() {
            self.tree.elements[i].text.push_str(text);
        }
    }

    fn finish(mut self) -> Tree<'a> {
        let len = self.tree.doc.len();
        for &i in &self.open {
            self.tree.elements[i].inner.end = len;
        }
        if let Some(&outer) = self.open.first() {
            self.tree.truncated = Some(self.tree.elements[outer].name.clone());
        }
        self.tree
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_prefixes_and_case() {
        let doc = r#"<rss xmlns:d="http://purl.org/dc/elements/1.1/"><channel><Item>
            <d:creator>A</d:creator><dc:date>2004</dc:date><PubDate>x</PubDate>
            </Item></channel></rss>"#;
        let tree = read(doc);
        let root = tree.root.unwrap();
        assert_eq!(tree.get(root).name, "rss");
        let channel = tree.get(root).children[0];
        let item = tree.get(channel).children[0];
        let kids: Vec<_> = tree
            .children(item)
            .map(|(_, e)| (e.ns, e.name.as_str(), e.text.as_str()))
            .collect();
        assert_eq!(
            kids,
            [
                (Ns::Dc, "creator", "A"),
                (Ns::Dc, "date", "2004"),
                (Ns::None, "pubdate", "x")
            ]
        );
        assert!(tree.truncated.is_none());
    }

    #[test]
    fn references_html_entities_and_bare_ampersands() {
        let doc =
            "<t a=\"x&amp;y&nbsp;&bogus;\">a &amp; b &nbsp;&eacute; &#233;&#x263a; &lol; & c \
                   &#150;</t>";
        let tree = read(doc);
        let t = tree.get(tree.root.unwrap());
        assert_eq!(t.text, "a & b \u{a0}é é☺ &lol; & c \u{2013}");
        assert_eq!(t.attr("a"), Some("x&y\u{a0}&bogus;"));
    }

    #[test]
    fn mismatched_and_cut_off_documents() {
        let tree = read("<rss><channel><item><title>a</b></title></item><item><title>b");
        let root = tree.root.unwrap();
        assert_eq!(tree.truncated.as_deref(), Some("rss"));
        let channel = tree.get(root).children[0];
        let items: Vec<_> = tree.children(channel).map(|(i, _)| tree.inner(i)).collect();
        assert_eq!(items, ["<title>a</b></title>", "<title>b"]);
        let tree = read("<a><b><c>text</b>tail</a>");
        let a = tree.root.unwrap();
        assert!(tree.truncated.is_none());
        assert_eq!(tree.get(a).text, "tail");
    }

    #[test]
    fn inner_markup_is_kept_as_written() {
        let tree = read("<d><p>one &amp; <b>two</b></p><br/></d>");
        let d = tree.root.unwrap();
        assert_eq!(tree.inner(d), "<p>one &amp; <b>two</b></p><br/>");
        assert_eq!(tree.inner(tree.get(d).children[1]), "");
    }
}
