//! `tributary export --format hexo`: the real binary scrapes the 中证网 miniature
//! (`tests/fixtures/cs.com.cn/`, the 中证快讯 channel configured as source "中证网", category
//! 金融, tag 资讯), then writes one Hexo post per entry. Each post must have the front matter
//! of the shared example post (`$TRIBUTARY_SHARED/examples/hexo-post.md`) key for key, the true
//! UTC date, and the article's text; a second export must change no file.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::common::cs::{self, Doc, JSBD};
use crate::common::*;

/// What the config calls the source: the example post's author and second category.
const SOURCE_NAME: &str = "中证网";

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// The shared example post: `$TRIBUTARY_SHARED/examples/hexo-post.md`, else
/// `../shared/examples/hexo-post.md` beside the checkout.
fn example_post() -> String {
    let mut tried = Vec::new();
    if let Some(shared) = std::env::var_os("TRIBUTARY_SHARED") {
        tried.push(PathBuf::from(shared).join("examples/hexo-post.md"));
    }
    tried.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/examples/hexo-post.md"));
    for path in &tried {
        if path.is_file() {
            return fs::read_to_string(path)
                .unwrap_or_else(|e| panic!("reading the example post {}: {e}", path.display()));
        }
    }
    panic!(
        "the example Hexo post is missing; looked at {}. Set TRIBUTARY_SHARED to the folder \
         holding examples/hexo-post.md",
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" and ")
    );
}

/// A post's front matter: keys in order, scalar values, the `categories` list, and the body.
#[derive(Debug)]
struct Post {
    keys: Vec<String>,
    values: BTreeMap<String, String>,
    categories: Vec<String>,
    body: String,
}

/// Reads the front matter between the first two `---` lines (blank lines before the first
/// are skipped: the example has one). Top-level `key: value` lines and ` - item` list lines.
fn parse_post(text: &str, what: &str) -> Post {
    let mut lines = text.split_inclusive('\n').peekable();
    while lines.peek().is_some_and(|l| l.trim().is_empty()) {
        lines.next();
    }
    assert_eq!(
        lines.next().map(str::trim_end),
        Some("---"),
        "{what}: no opening ---\n{text}"
    );
    let mut post = Post {
        keys: Vec::new(),
        values: BTreeMap::new(),
        categories: Vec::new(),
        body: String::new(),
    };
    let mut closed = false;
    for line in lines.by_ref() {
        let line = line.trim_end_matches(['\n', '\r']);
        if line == "---" {
            closed = true;
            break;
        }
        if let Some(item) = line.strip_prefix(" - ") {
            assert_eq!(
                post.keys.last().map(String::as_str),
                Some("categories"),
                "{what}: a list item outside categories: {line:?}"
            );
            post.categories.push(item.to_string());
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("{what}: not a `key: value` line: {line:?}"));
        assert!(
            !key.starts_with(' ') && !key.is_empty(),
            "{what}: bad key line {line:?}"
        );
        post.keys.push(key.to_string());
        post.values
            .insert(key.to_string(), value.trim().to_string());
    }
    assert!(closed, "{what}: no closing ---\n{text}");
    post.body = lines.collect();
    post
}

/// The value of a single-quoted YAML scalar.
fn unquote(value: &str, what: &str) -> String {
    let inner = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or_else(|| panic!("{what}: {value:?} is not single-quoted"));
    inner.replace("''", "'")
}

/// The text of some HTML: tags dropped, a few entities decoded.
fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The fixture site, a config naming the 中证快讯 channel "中证网", and one good fetch.
struct Site {
    site: FixtureServer,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Site {
    fn start() -> Site {
        let site = FixtureServer::start_site(&cs::site_dir());
        let dir = tempfile::tempdir().expect("temp folder");
        let config = dir.path().join("conf").join("tributary.toml");
        let s = Site { site, dir, config };
        s.write_config("");
        let (code, stdout, stderr) = run_fetch(&s.config, &[]);
        assert_eq!(code, 0, "fetch\nstdout:\n{stdout}\nstderr:\n{stderr}");
        assert!(stdout.contains("ok new=6"), "fetch: {stdout}");
        s
    }

    /// (Re)writes the config with `extra` (TOML tables) before the source.
    fn write_config(&self, extra: &str) {
        let mut text = cs::config_head(free_addr(), "Asia/Shanghai");
        text.push_str(extra);
        text.push_str(&cs::html_source_toml(
            JSBD.id,
            SOURCE_NAME,
            &self.site.url(JSBD.path),
            Some("Asia/Shanghai"),
            cs::CS_TABLES,
        ));
        write_config_text(self.config.parent().expect("config folder"), &text);
    }

    /// A folder for posts under the test's temp folder.
    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `export ARGS`; returns (exit code, stdout, stderr).
    fn export(&self, args: &[&str]) -> (i32, String, String) {
        let mut cmd = tributary_command(&self.config);
        cmd.arg("export").args(args);
        run_bounded(cmd, FETCH_DEADLINE)
    }

    /// Runs `export --format hexo --out OUT`, asserts success, returns (written, unchanged).
    fn export_ok(&self, out: &Path, extra: &[&str]) -> (usize, usize) {
        let out_arg = out.to_str().expect("temp paths are UTF-8");
        let mut args = vec!["--format", "hexo", "--out", out_arg];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = self.export(&args);
        assert_eq!(
            code, 0,
            "export {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        counts(&stdout)
    }
}

/// (written, unchanged) from `exported N entries to DIR: W written, U unchanged`, checking
/// that they add up to N.
fn counts(stdout: &str) -> (usize, usize) {
    let line = stdout.trim();
    let number_before = |word: &str| -> usize {
        let head = line
            .split(word)
            .next()
            .unwrap_or_else(|| panic!("no {word:?} in {line:?}"));
        head.trim_end()
            .rsplit([' ', ':'])
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count before {word:?} in {line:?}"))
    };
    let total = line
        .strip_prefix("exported ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("unexpected export output {line:?}"));
    let (written, unchanged) = (number_before(" written"), number_before(" unchanged"));
    assert_eq!(written + unchanged, total, "{line:?}");
    (written, unchanged)
}

/// Every file of `dir`: name → bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| {
            let e = e.expect("directory entry");
            let name = e.file_name().into_string().expect("UTF-8 file name");
            (name, fs::read(e.path()).expect("reading a post"))
        })
        .collect()
}

/// The post of a fixture document, found by its document id in the file name.
fn post_of<'a>(files: &'a BTreeMap<String, Vec<u8>>, doc: &Doc) -> (&'a str, String) {
    let found: Vec<_> = files
        .iter()
        .filter(|(name, _)| name.contains(doc.doc_id))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{}: expected one post named after docid {}; files: {:?}",
        doc.key,
        doc.doc_id,
        files.keys().collect::<Vec<_>>()
    );
    let (name, bytes) = found[0];
    (
        name,
        String::from_utf8(bytes.clone()).expect("posts are UTF-8"),
    )
}

/// `Tue, 01 Dec 2020 10:59:00 GMT` of an RFC 3339 instant.
fn gmt(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .expect("fixture dates are RFC 3339")
        .with_timezone(&chrono::Utc)
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// `https://picsum.photos/400/300?random=N` with N in 0..10000: N.
fn placeholder_number(url: &str, prefix: &str, suffix: &str) -> Option<u32> {
    let n = url.strip_prefix(prefix)?.strip_suffix(suffix)?;
    let n: u32 = n.parse().ok()?;
    (n < 10_000).then_some(n)
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn example_parses_as_expected() {
    // The reference the other tests compare with: if this fails, the example changed.
    let example = parse_post(&example_post(), "example");
    assert_eq!(
        example.keys,
        [
            "title",
            "categories",
            "headimg",
            "author",
            "comments",
            "date",
            "thumbnail"
        ]
    );
    assert_eq!(example.categories, ["金融", "中证网", "资讯"]);
}

#[test]
fn the_cs_article_becomes_a_post_shaped_like_the_example() {
    let example = parse_post(&example_post(), "example");
    let s = Site::start();
    let out = s.out("posts");
    let docs = cs::docs_of(&[JSBD]);
    assert_eq!(s.export_ok(&out, &[]), (docs.len(), 0));
    let written = files(&out);
    assert_eq!(
        written.len(),
        docs.len(),
        "one post per entry: {:?}",
        written.keys().collect::<Vec<_>>()
    );

    // The acceptance article: 恒泰股份, 2020-12-01 18:59 Beijing time.
    let d1 = cs::doc("D1");
    let (name, text) = post_of(&written, d1);
    assert_eq!(name, "2020-12-01-t20201201_6116434.md");
    assert!(
        text.starts_with("---\n"),
        "Hexo wants the front matter on the first line:\n{text}"
    );
    let post = parse_post(&text, name);
    assert_eq!(
        post.keys, example.keys,
        "front matter keys and their order must match the example\n{text}"
    );
    assert_eq!(post.categories, ["金融", SOURCE_NAME, "资讯"], "\n{text}");
    assert_eq!(unquote(&post.values["title"], name), d1.title);
    assert_eq!(post.values["author"], SOURCE_NAME);
    assert_eq!(post.values["comments"], "false");
    assert_eq!(post.values["date"], "Tue, 01 Dec 2020 10:59:00 GMT");
    assert_eq!(post.values["date"], gmt(d1.published));
    // The article's own picture, made absolute when it was stored.
    let image = s.site.url(d1.absolute[0]);
    assert_eq!(unquote(&post.values["headimg"], name), image);
    assert_eq!(unquote(&post.values["thumbnail"], name), image);

    // The body: the sanitized article inside <div>, as in the example.
    assert!(
        post.body.starts_with("\n<div>\n") && post.body.ends_with("\n</div>\n"),
        "body not wrapped in <div>:\n{}",
        post.body
    );
    let body_text = text_of(&post.body);
    assert!(body_text.contains(d1.lead), "lead missing:\n{}", post.body);
    assert!(
        body_text.contains(d1.phrase),
        "phrase missing:\n{}",
        post.body
    );
    for junk in cs::NOT_CONTENT {
        assert!(
            !post.body.contains(junk),
            "{junk:?} (not article text) in the post:\n{}",
            post.body
        );
    }
    for tag in ["<style", "<script", "<footer"] {
        assert!(
            !post.body.contains(tag),
            "{tag} in the post:\n{}",
            post.body
        );
    }

    // Every post: same keys, the true UTC date, and a title; a post with no picture gets the
    // default placeholder, the same one as headimg and thumbnail.
    for doc in &docs {
        let (name, text) = post_of(&written, doc);
        let post = parse_post(&text, name);
        assert_eq!(post.keys, example.keys, "{name}\n{text}");
        assert_eq!(post.values["date"], gmt(doc.published), "{name}: date");
        assert!(
            name.starts_with(&doc.published[..10]),
            "{name}: named after the UTC day of {}",
            doc.published
        );
        assert_eq!(unquote(&post.values["title"], name), doc.title);
        assert_eq!(post.categories, ["金融", SOURCE_NAME, "资讯"], "{name}");
        assert!(
            text_of(&post.body).contains(doc.phrase),
            "{name}: article text"
        );
        let headimg = unquote(&post.values["headimg"], name);
        assert_eq!(headimg, unquote(&post.values["thumbnail"], name), "{name}");
        if !post.body.contains("<img") {
            assert!(
                placeholder_number(&headimg, "https://picsum.photos/400/300?random=", "").is_some(),
                "{name}: placeholder {headimg:?}"
            );
        }
    }
    // D4 (a 快讯 with no picture) shows the placeholder.
    let (name, text) = post_of(&written, cs::doc("D4"));
    assert!(!text.contains("<img"), "{name}: fixture changed?\n{text}");
}

#[test]
fn a_second_export_changes_nothing() {
    let s = Site::start();
    let out = s.out("posts");
    let n = cs::docs_of(&[JSBD]).len();
    assert_eq!(s.export_ok(&out, &[]), (n, 0));
    let before = files(&out);
    // Old mtimes, so a rewrite within the same clock tick still shows.
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    for name in before.keys() {
        fs::File::options()
            .write(true)
            .open(out.join(name))
            .and_then(|f| f.set_modified(old))
            .expect("setting a post's mtime");
    }

    assert_eq!(s.export_ok(&out, &[]), (0, n), "second export");
    assert_eq!(
        files(&out),
        before,
        "second export: same files, same bytes, nothing added"
    );
    for name in before.keys() {
        let mtime = fs::metadata(out.join(name))
            .and_then(|m| m.modified())
            .expect("a post's mtime");
        assert_eq!(mtime, old, "{name} was rewritten");
    }

    // A post edited by hand and a deleted post are put back; the others stay untouched.
    let mut names = before.keys();
    let (edited, deleted) = (names.next().unwrap(), names.next().unwrap());
    fs::write(out.join(edited), "hand edit\n").expect("editing a post");
    fs::remove_file(out.join(deleted)).expect("deleting a post");
    assert_eq!(s.export_ok(&out, &[]), (2, n - 2), "third export");
    assert_eq!(files(&out), before, "third export restores the two posts");
    for name in before.keys().filter(|k| *k != edited && *k != deleted) {
        let mtime = fs::metadata(out.join(name)).unwrap().modified().unwrap();
        assert_eq!(mtime, old, "{name} was rewritten");
    }
}

#[test]
fn placeholder_template_and_filters() {
    let s = Site::start();
    let d4 = cs::doc("D4");
    let default_out = s.out("default");
    s.export_ok(&default_out, &[]);
    let default_files = files(&default_out);
    let (name, text) = post_of(&default_files, d4);
    let default_image = unquote(&parse_post(&text, name).values["headimg"], name);
    let n = placeholder_number(&default_image, "https://picsum.photos/400/300?random=", "")
        .unwrap_or_else(|| panic!("{name}: {default_image:?} is not the default placeholder"));

    // `[export] placeholder`: the same number in the configured template.
    s.write_config("\n[export]\nplaceholder = \"/images/ph-{n}.jpg\"\n");
    let custom_out = s.out("custom");
    s.export_ok(&custom_out, &[]);
    let custom_files = files(&custom_out);
    let (name, text) = post_of(&custom_files, d4);
    let post = parse_post(&text, name);
    assert_eq!(
        unquote(&post.values["headimg"], name),
        format!("/images/ph-{n}.jpg")
    );
    assert_eq!(
        unquote(&post.values["thumbnail"], name),
        format!("/images/ph-{n}.jpg")
    );

    // --category and --since.
    let all = cs::docs_of(&[JSBD]).len();
    let filtered = s.out("filtered");
    assert_eq!(
        s.export_ok(&filtered, &["--category", "金融", "--since", "2020-12-01"]),
        (all, 0)
    );
    let none = s.out("none");
    assert_eq!(s.export_ok(&none, &["--since", "2020-12-02"]), (0, 0));
    assert!(files(&none).is_empty());

    // Refusals: exit 2 and a message naming the problem.
    let out = s.out("refused");
    let out = out.to_str().unwrap();
    for (args, says) in [
        (
            vec!["--format", "hexo", "--out", out, "--category", "科技"],
            "科技",
        ),
        (vec!["--format", "jekyll", "--out", out], "jekyll"),
        (
            vec!["--format", "hexo", "--out", out, "--since", "2020/12/01"],
            "2020/12/01",
        ),
    ] {
        let (code, stdout, stderr) = s.export(&args);
        assert_eq!(code, 2, "{args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        assert!(
            stderr.contains(says),
            "{args:?}: stderr should name {says:?}:\n{stderr}"
        );
    }
    assert!(!Path::new(out).exists(), "a refused export writes nothing");
}

/// The rules apply to posts as to the merged feed: an entry they block is not exported, and
/// posts carry the rewritten words.
#[test]
fn rules_apply_to_the_posts() {
    let s = Site::start();
    let d4 = cs::doc("D4");
    s.write_config(&format!(
        "\n[rules]\nblock = [{{ title = {:?} }}]\nrewrite = [{{ field = \"title\", pattern = \"^\", replace = \"【快讯】\" }}]\n",
        d4.title
    ));
    let out = s.out("ruled");
    let all = cs::docs_of(&[JSBD]).len();
    assert_eq!(s.export_ok(&out, &[]), (all - 1, 0));
    let posts = files(&out);
    assert!(
        posts.keys().all(|name| !name.contains(d4.doc_id)),
        "the blocked entry was exported: {:?}",
        posts.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &posts {
        let text = String::from_utf8(bytes.clone()).expect("posts are UTF-8");
        let title = unquote(&parse_post(&text, name).values["title"], name);
        assert!(
            title.starts_with("【快讯】"),
            "{name}: title {title:?} not rewritten"
        );
    }
    // Without the rules, every entry is exported again, in its own words.
    s.write_config("");
    assert_eq!(s.export_ok(&out, &[]), (all, 0), "all rewritten back");
}
