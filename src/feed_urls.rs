//! Where each published feed lives: the one mapping from a scope and a format to a path and
//! an absolute URL. The server's routes, `GET /opml` and WebSub pings all go through it, so the
//! URL a reader is given, the URL a hub is told about and the URL the server answers are one.
//!
//! A name (category, source id, tag) is one path segment, percent-encoded by the URL
//! standard's path rules: a space is `%20` (never `+`, which a path keeps as itself), and `/`,
//! `?`, `#` and `%` are encoded so that no name changes the URL's shape. The router decodes the
//! segment back to the name.

use url::Url;

use crate::model::Scope;
use crate::publish::Format;

/// The first path segment of each kind of feed, as the server routes them.
pub const CATEGORIES: &str = "feeds";
pub const SOURCES: &str = "sources";
pub const TAGS: &str = "tags";

/// The scope `/{dir}/{name}.{ext}` names, `dir` being one of the constants above (the merged
/// feed of every source is the category feed named `all`).
pub fn scope(dir: &str, name: &str) -> Option<Scope> {
    let name = name.to_string();
    match dir {
        CATEGORIES if name == "all" => Some(Scope::All),
        CATEGORIES => Some(Scope::Category(name)),
        SOURCES => Some(Scope::Source(name)),
        TAGS => Some(Scope::Tag(name)),
        _ => None,
    }
}

/// `(dir, name)` of a scope's feeds.
pub fn parts(scope: &Scope) -> (&'static str, &str) {
    match scope {
        Scope::All => (CATEGORIES, "all"),
        Scope::Category(c) => (CATEGORIES, c),
        Scope::Source(s) => (SOURCES, s),
        Scope::Tag(t) => (TAGS, t),
    }
}

/// The absolute URL of `scope`'s feed in `format` under `base`. A path in `base` is kept
/// (`https://example.org/news/` gives `https://example.org/news/feeds/all.atom`); its query
/// and fragment are not.
pub fn url(base: &Url, scope: &Scope, format: Format) -> Url {
    let (dir, name) = parts(scope);
    // (A base that is not hierarchical, never http or https, is returned as it is.)
    under(base, &[dir, &format!("{name}.{}", format.extension())])
}

/// The console's page of `scope`: the same path as its feeds without the extension
/// (`/feeds/金融`, `/sources/cs-hg`, `/tags/x`, `/feeds/all`), what feeds name as their
/// `alternate` (JSON Feed `home_page_url`).
pub fn page_url(base: &Url, scope: &Scope) -> Url {
    let (dir, name) = parts(scope);
    under(base, &[dir, name])
}

/// The console's page of one stored entry.
pub fn entry_page_url(base: &Url, id: i64) -> Url {
    under(base, &[ENTRIES, &id.to_string()])
}

/// The first path segment of entry pages.
pub const ENTRIES: &str = "entries";

fn under(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// A page path's last segment, when it names a page rather than a feed file: no extension a
/// feed format has. (Source ids are `[a-z0-9-]+`; a category or tag with a dot in its name
/// still gets its page, as long as what follows the dot is not `rss`, `atom` or `json`.)
pub fn is_page_name(segment: &str) -> bool {
    match segment.rsplit_once('.') {
        Some((_, ext)) => Format::from_extension(ext).is_none(),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_segment_and_come_back_as_they_were() {
        let base = Url::parse("https://example.org/news/?x=1#top").unwrap();
        for (scope, expected) in [
            (Scope::All, "https://example.org/news/feeds/all.atom"),
            (
                Scope::Category("Finance & Markets".into()),
                "https://example.org/news/feeds/Finance%20&%20Markets.atom",
            ),
            (
                Scope::Tag("a/b ?#%+".into()),
                "https://example.org/news/tags/a%2Fb%20%3F%23%25+.atom",
            ),
            (
                Scope::Category("金融".into()),
                "https://example.org/news/feeds/%E9%87%91%E8%9E%8D.atom",
            ),
            (
                Scope::Source("cs-hg".into()),
                "https://example.org/news/sources/cs-hg.atom",
            ),
        ] {
            let url = url(&base, &scope, Format::Atom);
            assert_eq!(url.as_str(), expected);
            // What a router reads back: the segments, percent-decoded.
            let mut segments = url.path_segments().unwrap().skip(1);
            let dir = segments.next().unwrap();
            let file = percent_decode(segments.next().unwrap());
            let name = file.strip_suffix(".atom").unwrap();
            assert_eq!(super::scope(dir, name), Some(scope));
        }
    }

    fn percent_decode(s: &str) -> String {
        let (mut out, mut bytes) = (Vec::new(), s.bytes());
        while let Some(b) = bytes.next() {
            if b == b'%' {
                let hex: String = bytes.by_ref().take(2).map(char::from).collect();
                out.push(u8::from_str_radix(&hex, 16).unwrap());
            } else {
                out.push(b);
            }
        }
        String::from_utf8(out).unwrap()
    }
}
