//! Static export: stored entries written as static-site posts, one file per entry
//! (`tributary export --format hexo --out DIR`).
//!
//! A Hexo post is YAML front matter — `title`, `categories` (the source's category, its name,
//! then its tags), `headimg`, `author`, `comments`, `date`, `thumbnail`, in that order — then
//! the entry's sanitized HTML inside a `<div>`. `date` is the true UTC instant in RFC 2822
//! form with `GMT`. `headimg` and `thumbnail` are the content's first image, else the
//! configured placeholder with `{n}` replaced by a number derived from the entry.
//!
//! Rendering is pure (same entry, same bytes), file names depend only on the entry (date and
//! link), and a file is written only when its bytes differ, through a temporary file renamed
//! into place: exporting twice changes nothing, and an interrupted export leaves no half post.
//! The running rules apply as they do to the merged feeds: what they drop is not exported,
//! and posts carry the words the feeds show.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

use crate::model::Scope;
use crate::rules::{Book, Subscription, View};
use crate::store::{ExportEntry, Store, StoreError};

/// Placeholder numbers run from 0 to this, exclusive.
const PLACEHOLDER_RANGE: u64 = 10_000;

/// The longest slug kept in a file name, in bytes (ASCII).
const MAX_SLUG: usize = 64;

/// Output formats. Hexo only for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Hexo Markdown posts with YAML front matter.
    Hexo,
}

/// What to export and where.
#[derive(Clone)]
pub struct Options<'a> {
    pub format: Format,
    /// The folder posts are written to; created when missing.
    pub out: &'a Path,
    /// Only entries of this category's sources.
    pub category: Option<&'a str>,
    /// Only entries published on or after this day (UTC).
    pub since: Option<NaiveDate>,
    /// `[export] placeholder`: the image of posts without one; `{n}` is replaced by the
    /// entry's number.
    pub placeholder: &'a str,
    /// The config's rules.
    pub rules: &'a Book,
}

/// What an export did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Entries exported (files considered).
    pub entries: usize,
    /// Files created or replaced.
    pub written: usize,
    /// Files already holding exactly these bytes, left alone.
    pub unchanged: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no configured source has category {0:?}")]
    NoCategory(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reads `--since`: a day, `YYYY-MM-DD`, taken as midnight UTC.
pub fn parse_since(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|e| format!("{text:?} is not a date like 2020-12-01 ({e})"))
}

/// Exports the entries `opts` selects, oldest first, into `opts.out`.
pub fn export(store: &Store, opts: &Options<'_>) -> Result<Report, ExportError> {
    if let Some(c) = opts.category {
        if store
            .scope_title(&crate::model::Scope::Category(c.to_string()))?
            .is_none()
        {
            return Err(ExportError::NoCategory(c.to_string()));
        }
    }
    let since = opts.since.map(|d| d.and_time(NaiveTime::MIN).and_utc());
    let entries = ruled(store, opts, store.export_entries(opts.category, since)?)?;
    let posts: Vec<String> = match opts.format {
        Format::Hexo => entries
            .iter()
            .map(|e| render_hexo(e, opts.placeholder))
            .collect(),
    };
    let names = file_names(&entries);
    std::fs::create_dir_all(opts.out).map_err(|source| ExportError::Io {
        path: opts.out.to_path_buf(),
        source,
    })?;
    let mut report = Report {
        entries: posts.len(),
        ..Report::default()
    };
    for (text, name) in posts.iter().zip(&names) {
        if write_if_changed(&opts.out.join(name), text.as_bytes())? {
            report.written += 1;
        } else {
            report.unchanged += 1;
        }
    }
    Ok(report)
}

/// `entries` as the rules show them in the merged feed of the export's scope: those they drop
/// left out, the others in the words the feed shows.
fn ruled(
    store: &Store,
    opts: &Options<'_>,
    entries: Vec<ExportEntry>,
) -> Result<Vec<ExportEntry>, ExportError> {
    if opts.rules.is_empty() {
        return Ok(entries);
    }
    let scope = opts
        .category
        .map_or(Scope::All, |c| Scope::Category(c.to_string()));
    let view = View {
        scope: &scope,
        source: None,
        tag: None,
    };
    let now = Utc::now();
    let mut kept = Vec::with_capacity(entries.len());
    for mut e in entries {
        let shown = store.entry(e.id, true)?.and_then(|stored| {
            opts.rules
                .show(&view, &Subscription::default(), stored, now)
        });
        if let Some(shown) = shown {
            e.title = shown.title;
            e.summary = shown.summary;
            e.content = shown.content;
            kept.push(e);
        }
    }
    Ok(kept)
}

/// One entry as a Hexo post.
pub fn render_hexo(e: &ExportEntry, placeholder: &str) -> String {
    let mut categories: Vec<&str> = Vec::new();
    for c in std::iter::once(&e.category)
        .chain(std::iter::once(&e.source_name))
        .chain(&e.tags)
    {
        let c = c.trim();
        if !c.is_empty() && !categories.contains(&c) {
            categories.push(c);
        }
    }
    let html = e
        .content
        .as_deref()
        .or(e.summary.as_deref())
        .unwrap_or("")
        .trim();
    let image = first_image(html).unwrap_or_else(|| placeholder_for(e, placeholder));
    let mut out = String::new();
    out.push_str("---\n");
    let _ = writeln!(out, "title: {}", single_quoted(&e.title));
    // As the example has it, with the space after the colon.
    out.push_str("categories: \n");
    for c in &categories {
        let _ = writeln!(out, " - {}", scalar(c));
    }
    let _ = writeln!(out, "headimg: {}", single_quoted(&image));
    let _ = writeln!(out, "author: {}", scalar(&e.source_name));
    out.push_str("comments: false\n");
    let _ = writeln!(out, "date: {}", rfc2822_gmt(e.published));
    let _ = writeln!(out, "thumbnail: {}", single_quoted(&image));
    out.push_str("---\n\n<div>\n");
    let body = escape_template_tags(html);
    if !body.is_empty() {
        out.push_str(&body);
        out.push('\n');
    }
    out.push_str("</div>\n");
    out
}

/// `Tue, 01 Dec 2020 10:59:00 GMT`: the instant in UTC, which is what GMT means.
pub fn rfc2822_gmt(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// The placeholder image of an entry: `template` with `{n}` replaced by the entry's number.
pub fn placeholder_for(e: &ExportEntry, template: &str) -> String {
    template.replace("{n}", &placeholder_number(e).to_string())
}

/// A number in 0..10000 that depends only on the entry's link (its id when it has none).
pub fn placeholder_number(e: &ExportEntry) -> u64 {
    let hash = blake3::hash(identity(e).as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_le_bytes(first) % PLACEHOLDER_RANGE
}

fn identity(e: &ExportEntry) -> String {
    match e.link.as_deref().filter(|l| !l.is_empty()) {
        Some(link) => link.to_string(),
        None => format!("entry:{}", e.id),
    }
}

/// The `src` of the first `<img>` whose URL is http(s), if any.
fn first_image(html: &str) -> Option<String> {
    if !html.contains("<img") {
        return None;
    }
    let doc = scraper::Html::parse_fragment(html);
    let sel = scraper::Selector::parse("img[src]").ok()?;
    doc.select(&sel)
        .filter_map(|img| img.value().attr("src"))
        .map(str::trim)
        .find(|src| url::Url::parse(src).is_ok_and(|u| matches!(u.scheme(), "http" | "https")))
        .map(str::to_string)
}

/// Hexo runs posts through Nunjucks: `{{`, `{%` and `{#` in an article would be read as
/// template tags. `&#123;` is the same `{` to the browser.
fn escape_template_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut chars = html.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '{' && matches!(chars.peek(), Some('{' | '%' | '#')) {
            out.push_str("&#123;");
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether YAML takes `c` as is inside a scalar: not a control character (line breaks
/// included, which a quoted scalar would fold), not a BOM or non-character.
fn yaml_printable(c: char) -> bool {
    !c.is_control()
        && !matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{FEFF}' | '\u{FFFE}' | '\u{FFFF}'
        )
}

/// `s` with what YAML would not take as is replaced by spaces (tabs stay).
fn yaml_clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == '\t' || yaml_printable(c) {
                c
            } else {
                ' '
            }
        })
        .collect()
}

/// A YAML single-quoted scalar: `'` is doubled, nothing else is special.
pub fn single_quoted(s: &str) -> String {
    format!("'{}'", yaml_clean(s).replace('\'', "''"))
}

/// A plain scalar when YAML reads it back as the same string (`中证网`, `Example Tech Blog`),
/// else single-quoted (`'2024'`, `'yes'`, `'a: b'`).
pub fn scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && !s.starts_with([' ', '-', '.', '_'])
        && !s.ends_with(' ')
        && !s.contains("  ")
        && s.chars().all(|c| {
            (!c.is_ascii() && !c.is_whitespace() && yaml_printable(c))
                || c.is_ascii_alphabetic()
                || matches!(c, ' ' | '-' | '_' | '.')
        })
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "true" | "false" | "on" | "off" | "null"
        );
    if plain {
        s.to_string()
    } else {
        single_quoted(s)
    }
}

/// File names for `entries`, in order: `YYYY-MM-DD-<slug>.md`, the date being the published
/// day in UTC and the slug the link's last path segment (see [`slug`]). Two entries that would
/// share a name keep it for the lower entry id; the others add a hash of their link.
pub fn file_names(entries: &[ExportEntry]) -> Vec<String> {
    let bases: Vec<String> = entries.iter().map(base_name).collect();
    let mut owner: HashMap<&str, i64> = HashMap::new();
    for (e, base) in entries.iter().zip(&bases) {
        let id = owner.entry(base.as_str()).or_insert(e.id);
        *id = (*id).min(e.id);
    }
    entries
        .iter()
        .zip(&bases)
        .map(|(e, base)| {
            if owner[base.as_str()] == e.id {
                format!("{base}.md")
            } else {
                let hash = blake3::hash(identity(e).as_bytes()).to_hex();
                format!("{base}-{}.md", &hash.as_str()[..8])
            }
        })
        .collect()
}

fn base_name(e: &ExportEntry) -> String {
    let slug = e
        .link
        .as_deref()
        .map(slug)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("entry-{}", e.id));
    format!("{}-{slug}", e.published.format("%Y-%m-%d"))
}

/// A file-name-safe slug of a link: its last non-empty path segment without the extension
/// (`t20201201_6116434.html` → `t20201201_6116434`), lower-case ASCII letters, digits, `_` and
/// `-` only, at most 64 bytes; a link with a query string adds a hash of the whole link (so
/// `show?id=1` and `show?id=2` differ). Empty when nothing usable is left.
pub fn slug(link: &str) -> String {
    let without_fragment = link.split('#').next().unwrap_or("");
    let (path, query) = match without_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (without_fragment, None),
    };
    // The path after the scheme and host, when there is one.
    let path = match path.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, p)| p),
        None => path,
    };
    let segment = path
        .split(['/', '\\'])
        .rev()
        .find(|s| !s.is_empty() && *s != "." && *s != "..")
        .unwrap_or("");
    let stem = match segment.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= 5 => stem,
        _ => segment,
    };
    let mut out = String::new();
    for c in stem.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= MAX_SLUG {
            break;
        }
    }
    let mut out = out.trim_matches(['-', '_']).to_string();
    if query.is_some_and(|q| !q.is_empty()) {
        let hash = blake3::hash(link.as_bytes()).to_hex();
        out.truncate(MAX_SLUG - 9);
        let out_trimmed = out.trim_end_matches(['-', '_']);
        out = if out_trimmed.is_empty() {
            hash.as_str()[..8].to_string()
        } else {
            format!("{out_trimmed}-{}", &hash.as_str()[..8])
        };
    }
    out
}

/// Writes `bytes` to `path` unless it already holds exactly them; returns whether it wrote.
/// Through [`crate::files::replace`], so a reader (or a crash) never sees half a post.
pub fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<bool, ExportError> {
    let io = |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read(path) {
        Ok(old) if old == bytes => return Ok(false),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    crate::files::replace(path, bytes, None).map_err(io)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_PLACEHOLDER;
    use chrono::TimeZone;

    fn entry(link: Option<&str>) -> ExportEntry {
        ExportEntry {
            id: 7,
            title: "恒泰股份：全资子公司中标5870万元智慧园区项目".into(),
            link: link.map(str::to_string),
            summary: None,
            content: Some("<p>正文</p>".into()),
            published: Utc.with_ymd_and_hms(2020, 12, 1, 10, 59, 0).unwrap(),
            source_name: "中证网".into(),
            category: "金融".into(),
            tags: vec!["资讯".into()],
        }
    }

    const D1: &str = "https://www.cs.com.cn/sylm/jsbd/202012/t20201201_6116434.html";

    #[test]
    fn renders_the_example_shape() {
        let mut e = entry(Some(D1));
        e.title = "It's 中证网".into();
        let n = placeholder_number(&e);
        let post = render_hexo(&e, DEFAULT_PLACEHOLDER);
        let want = format!(
            "---\ntitle: 'It''s 中证网'\ncategories: \n - 金融\n - 中证网\n - 资讯\n\
             headimg: 'https://picsum.photos/400/300?random={n}'\nauthor: 中证网\n\
             comments: false\ndate: Tue, 01 Dec 2020 10:59:00 GMT\n\
             thumbnail: 'https://picsum.photos/400/300?random={n}'\n---\n\n\
             <div>\n<p>正文</p>\n</div>\n"
        );
        assert_eq!(post, want);
        assert_eq!(
            render_hexo(&e, DEFAULT_PLACEHOLDER),
            post,
            "rendering is pure"
        );
    }

    #[test]
    fn first_http_image_wins_over_the_placeholder() {
        let mut e = entry(Some(D1));
        e.content = Some(
            "<p>a</p><img src=\"data:image/png;base64,AAAA\"><img src=\"https://x.test/1.png\">\
             <img src=\"https://x.test/2.png\">"
                .into(),
        );
        let post = render_hexo(&e, DEFAULT_PLACEHOLDER);
        assert!(post.contains("headimg: 'https://x.test/1.png'\n"), "{post}");
        assert!(
            post.contains("thumbnail: 'https://x.test/1.png'\n"),
            "{post}"
        );
    }

    #[test]
    fn placeholder_number_is_stable_and_in_range() {
        let a = placeholder_number(&entry(Some(D1)));
        assert_eq!(a, placeholder_number(&entry(Some(D1))));
        assert!(a < 10_000);
        let mut other = entry(Some(D1));
        other.id = 99;
        other.title = "else".into();
        assert_eq!(a, placeholder_number(&other), "depends on the link only");
        assert_eq!(
            placeholder_for(&entry(Some(D1)), "/img/{n}.jpg"),
            format!("/img/{a}.jpg")
        );
        let no_link = placeholder_number(&entry(None));
        assert!(no_link < 10_000);
    }

    #[test]
    fn yaml_scalars_round_trip_safely() {
        assert_eq!(single_quoted("a'b"), "'a''b'");
        assert_eq!(single_quoted("two\nlines"), "'two lines'");
        assert_eq!(scalar("中证网"), "中证网");
        assert_eq!(scalar("中证网·财经要闻"), "中证网·财经要闻");
        assert_eq!(scalar("Example Tech Blog"), "Example Tech Blog");
        for quoted in [
            "2024", "yes", "a: b", "#x", "- x", "", " x", "x'y", "[x]", "50%",
        ] {
            assert!(
                scalar(quoted).starts_with('\''),
                "{quoted:?} -> {}",
                scalar(quoted)
            );
        }
    }

    #[test]
    fn template_tags_are_neutralised() {
        assert_eq!(
            escape_template_tags("a {{ b }} {% c %} {# d #} {e}"),
            "a &#123;{ b }} &#123;% c %} &#123;# d #} {e}"
        );
    }

    #[test]
    fn file_names_are_stable_and_safe() {
        let e = entry(Some(D1));
        assert_eq!(file_names(&[e]), ["2020-12-01-t20201201_6116434.md"]);

        let hostile = [
            "../../etc/passwd",
            "https://evil.test/../../etc/passwd",
            "https://evil.test/a/..%2F..%2Fetc%2Fpasswd",
            "https://evil.test/%2e%2e/%2e%2e/",
            "https://evil.test/x\\..\\..\\windows\\system32",
            "https://evil.test/.hidden",
            "https://evil.test/",
            "",
            "https://evil.test/\u{0}nul\u{202e}rtl",
            "https://evil.test/CON",
        ];
        let long = format!(
            "https://evil.test/{}",
            "a/b-".repeat(2000) + &"x".repeat(5000)
        );
        let huge_query = format!("https://evil.test/p?{}", "q=1&".repeat(5000));
        for link in hostile
            .iter()
            .map(|s| s.to_string())
            .chain([long, huge_query])
        {
            let mut e = entry(Some(&link));
            e.id = 3;
            let name = &file_names(&[e])[0];
            assert!(name.starts_with("2020-12-01-"), "{link:?} -> {name}");
            assert!(name.ends_with(".md"), "{link:?} -> {name}");
            assert!(name.len() <= 11 + MAX_SLUG + 3 + 9, "{link:?} -> {name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'),
                "{link:?} -> {name}"
            );
            assert!(!name.contains(".."), "{link:?} -> {name}");
            assert_eq!(
                Path::new(name).components().count(),
                1,
                "one path component: {link:?} -> {name}"
            );
        }
    }

    #[test]
    fn queries_and_collisions_get_distinct_deterministic_names() {
        let a = entry(Some("https://x.test/show?id=1"));
        let mut b = entry(Some("https://x.test/show?id=2"));
        b.id = 8;
        let names = file_names(&[a.clone(), b.clone()]);
        assert_ne!(names[0], names[1]);
        assert!(names[0].starts_with("2020-12-01-show-"), "{names:?}");

        // Same slug, same day: the lower id keeps the plain name whatever the order.
        let c = entry(Some("https://x.test/a/story.html"));
        let mut d = entry(Some("https://x.test/b/story.html"));
        d.id = 3;
        let forward = file_names(&[c.clone(), d.clone()]);
        let backward = file_names(&[d, c]);
        assert_eq!(forward[1], "2020-12-01-story.md");
        assert_eq!(backward[0], "2020-12-01-story.md");
        assert_eq!(forward[0], backward[1]);
        assert!(forward[0].starts_with("2020-12-01-story-"), "{forward:?}");

        // No link: the entry id.
        assert_eq!(file_names(&[entry(None)]), ["2020-12-01-entry-7.md"]);
    }

    #[test]
    fn writes_only_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.md");
        assert!(write_if_changed(&path, b"one").unwrap());
        assert!(!write_if_changed(&path, b"one").unwrap());
        assert!(write_if_changed(&path, b"two").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["p.md"], "no temporary file left behind");
    }

    #[test]
    fn placeholder_is_configured_under_export() {
        let load = |extra: &str| {
            crate::config::Config::from_toml(
                Path::new("/etc/tributary/t.toml"),
                &format!(
                    "{extra}\n[[sources]]\nid = \"a\"\nname = \"A\"\n\
                     url = \"https://example.com/feed.xml\"\ncategory = \"金融\"\n"
                ),
            )
            .map_err(|e| e.to_string())
        };
        assert_eq!(load("").unwrap().export.placeholder, DEFAULT_PLACEHOLDER);
        let c = load("[export]\nplaceholder = \"/img/{n}.jpg\"").unwrap();
        assert_eq!(c.export.placeholder, "/img/{n}.jpg");
        for bad in [
            "placeholder = \"\"",
            "placeholder = \"a\\nb\"",
            "placholder = \"x\"",
        ] {
            let e = load(&format!("[export]\n{bad}")).unwrap_err();
            assert!(
                e.contains("export") || e.contains("placholder"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn since_is_a_day() {
        assert_eq!(
            parse_since("2020-12-01"),
            Ok(NaiveDate::from_ymd_opt(2020, 12, 1).unwrap())
        );
        assert!(parse_since("2020-12-01T00:00:00Z").is_err());
        assert!(parse_since("yesterday").is_err());
    }
}
