//! Changing the config file for the operator: sources appended (`add`, OPML import), removed,
//! enabled and disabled, and one source's `[[sources]]` table read back as the file has it.
//!
//! The file is the operator's: what an edit does not touch stays byte for byte (additions are
//! appended; removals and switches go through toml_edit, which keeps every other table, comment
//! and blank line as written). Every new text must load as a valid config before it is
//! written, and it replaces the file atomically, only if nobody changed the file meanwhile.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use toml_edit::{DocumentMut, Item, Table};
use url::Url;

use crate::config::{Config, ConfigError};
use crate::files;

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{}: cannot read: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: not valid TOML: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("no source {id:?} in {}", path.display())]
    NoSource { id: String, path: PathBuf },
    #[error("the config would not load after this change, so it was left as it was: {0}")]
    WouldNotLoad(ConfigError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}: cannot write: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// A source to append: the keys `add` and OPML import write (the rest take their defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewSource {
    pub id: String,
    pub name: String,
    pub url: String,
    pub category: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

fn read(path: &Path) -> Result<String, EditError> {
    std::fs::read_to_string(path).map_err(|source| EditError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `new_text` over `original` once it loads as a config; returns the loaded config.
fn write_checked(path: &Path, original: &str, new_text: &str) -> Result<Config, EditError> {
    let config = Config::from_toml(path, new_text).map_err(EditError::WouldNotLoad)?;
    files::replace(path, new_text.as_bytes(), Some(original.as_bytes())).map_err(|source| {
        EditError::Write {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(config)
}

fn appended(original: &str, added: &[NewSource], note: &str) -> String {
    #[derive(Serialize)]
    struct Tables<'a> {
        sources: &'a [NewSource],
    }
    let tables = toml::to_string(&Tables { sources: added })
        .expect("strings and string lists always serialize to TOML");
    // A note holding a line break would end the comment early.
    let note: String = note
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut new_text = original.to_string();
    if !new_text.is_empty() && !new_text.ends_with('\n') {
        new_text.push('\n');
    }
    new_text.push_str(&format!("\n# {note}\n{tables}"));
    new_text
}

/// The config as it would be with `added` appended, checked but not written.
pub fn with_sources(path: &Path, added: &[NewSource]) -> Result<Config, EditError> {
    let original = read(path)?;
    Config::from_toml(path, &original)?;
    Config::from_toml(path, &appended(&original, added, "")).map_err(EditError::WouldNotLoad)
}

/// Appends one `[[sources]]` table per source after a comment (`note`, one line), serialized
/// by the toml crate (quoting and escaping included); the existing text is kept byte for byte.
pub fn append_sources(path: &Path, added: &[NewSource], note: &str) -> Result<Config, EditError> {
    let original = read(path)?;
    Config::from_toml(path, &original)?;
    write_checked(path, &original, &appended(&original, added, note))
}

/// The file's text as a document, and the index of source `id` in its `[[sources]]`.
fn find(path: &Path, text: &str, id: &str) -> Result<(DocumentMut, usize), EditError> {
    let doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| EditError::Parse {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })?;
    let index = doc
        .get("sources")
        .and_then(Item::as_array_of_tables)
        .and_then(|tables| {
            tables
                .iter()
                .position(|t| t.get("id").and_then(Item::as_str) == Some(id))
        });
    match index {
        Some(i) => Ok((doc, i)),
        None => Err(EditError::NoSource {
            id: id.to_string(),
            path: path.to_path_buf(),
        }),
    }
}

fn table_mut(doc: &mut DocumentMut, index: usize) -> &mut Table {
    doc["sources"]
        .as_array_of_tables_mut()
        .and_then(|tables| tables.get_mut(index))
        .expect("found by `find`")
}

/// Source `id`'s table as the file writes it (its comments and layout kept).
pub fn source_table(path: &Path, id: &str) -> Result<String, EditError> {
    let text = read(path)?;
    let (mut doc, index) = find(path, &text, id)?;
    let table = table_mut(&mut doc, index).clone();
    let mut alone = DocumentMut::new();
    let mut tables = toml_edit::ArrayOfTables::new();
    tables.push(table);
    alone.insert("sources", Item::ArrayOfTables(tables));
    Ok(alone.to_string().trim().to_string() + "\n")
}

/// Sets `enabled` on source `id`; false when it already was so (nothing written).
pub fn set_enabled(path: &Path, id: &str, enabled: bool) -> Result<bool, EditError> {
    let original = read(path)?;
    Config::from_toml(path, &original)?;
    let (mut doc, index) = find(path, &original, id)?;
    let table = table_mut(&mut doc, index);
    let now = table.get("enabled").and_then(Item::as_bool).unwrap_or(true);
    if now == enabled {
        return Ok(false);
    }
    if enabled {
        // The default: the key goes rather than saying what it would say anyway.
        table.remove("enabled");
    } else {
        table.insert("enabled", toml_edit::value(false));
    }
    write_checked(path, &original, &doc.to_string())?;
    Ok(true)
}

/// Removes source `id`'s table. Its stored entries stay (under its id) until pruned.
pub fn remove_source(path: &Path, id: &str) -> Result<(), EditError> {
    let original = read(path)?;
    Config::from_toml(path, &original)?;
    let (mut doc, index) = find(path, &original, id)?;
    if let Some(tables) = doc["sources"].as_array_of_tables_mut() {
        tables.remove(index);
        if tables.is_empty() {
            doc.remove("sources");
        }
    }
    write_checked(path, &original, &doc.to_string())?;
    Ok(())
}

/// Ids made by [`new_id`] are at most this long.
pub const MAX_ID_CHARS: usize = 40;

/// Parses a feed URL from an export: http(s) only; `feed://…` and `feed:https://…` (old
/// browser conventions) are read as the http(s) URL they stand for.
pub fn feed_url(text: &str) -> Result<Url, String> {
    let lower = text.to_ascii_lowercase();
    let text = if lower.starts_with("feed://") {
        format!("http://{}", &text["feed://".len()..])
    } else if lower.starts_with("feed:http") {
        text["feed:".len()..].to_string()
    } else {
        text.to_string()
    };
    let url = Url::parse(&text).map_err(|e| match e {
        url::ParseError::RelativeUrlWithoutBase => {
            format!("`{text}` has no scheme; did you mean `https://{text}`?")
        }
        e => format!("not a URL ({e})"),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("not an http(s) URL".into());
    }
    Ok(url)
}

/// A feed URL's identity for "is it already configured": host (lower-cased by `Url`), port
/// when not the default, path without a trailing slash, query. The scheme and the fragment do
/// not count: `http://` and `https://` of one feed are one feed.
pub fn url_key(url: &Url) -> String {
    format!(
        "{}{}{}{}",
        url.host_str().unwrap_or_default(),
        url.port().map(|p| format!(":{p}")).unwrap_or_default(),
        url.path().trim_end_matches('/'),
        url.query().map(|q| format!("?{q}")).unwrap_or_default()
    )
}

/// An id from the name, else the host (without `www.`), else "feed": lower-case ASCII letters
/// and digits joined by single hyphens, at most [`MAX_ID_CHARS`]; `-2`, `-3`… when taken.
pub fn new_id(name: &str, host: &str, taken: &HashSet<String>) -> String {
    let base = [slug(name), slug(host.trim_start_matches("www."))]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "feed".to_string());
    if !taken.contains(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|id| !taken.contains(id))
        .expect("some suffix is free")
}

fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            if out.len() >= MAX_ID_CHARS {
                break;
            }
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# my sources\n[server]\nlisten = \"127.0.0.1:0\"\n\n[storage]\npath = \"x.db\"\n\n\
        # the first\n[[sources]]\nid = \"a\"   # keep this comment\nname = \"A\"\nurl = \"https://a.example/feed\"\ncategory = \"news\"\n\n\
        [[sources]]\nid = \"b\"\nname = \"B\"\nurl = \"https://b.example/feed\"\ncategory = \"news\"\nenabled = false\n";

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tributary.toml");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    #[test]
    fn switches_touch_only_the_key() {
        let (_d, path) = file(TEXT);
        assert!(set_enabled(&path, "a", false).expect("disable"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            TEXT.replace(
                "category = \"news\"\n\n[[sources]]",
                "category = \"news\"\nenabled = false\n\n[[sources]]"
            )
        );
        assert!(!set_enabled(&path, "a", false).expect("again"));
        assert!(set_enabled(&path, "a", true).expect("enable"));
        assert!(set_enabled(&path, "b", true).expect("enable b"));
        let config = Config::load(&path).expect("loads");
        assert!(config.sources.iter().all(|s| s.enabled));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# my sources\n[server]"), "{text}");
        assert!(text.contains("id = \"a\"   # keep this comment"), "{text}");
    }

    #[test]
    fn removal_keeps_the_rest_as_written() {
        let (_d, path) = file(TEXT);
        remove_source(&path, "b").expect("remove");
        let text = std::fs::read_to_string(&path).unwrap();
        let (kept, _) = TEXT.split_once("[[sources]]\nid = \"b\"").unwrap();
        assert_eq!(text.trim_end(), kept.trim_end());
        let err = remove_source(&path, "b").unwrap_err();
        assert!(matches!(err, EditError::NoSource { .. }), "{err}");
    }

    #[test]
    fn a_table_reads_back_with_its_comments() {
        let (_d, path) = file(TEXT);
        let table = source_table(&path, "a").expect("table");
        assert!(table.contains("[[sources]]"), "{table}");
        assert!(
            table.contains("id = \"a\"   # keep this comment"),
            "{table}"
        );
        assert!(!table.contains("\"b\""), "{table}");
    }

    #[test]
    fn an_append_that_would_not_load_writes_nothing() {
        let (_d, path) = file(TEXT);
        let dup = NewSource {
            id: "a".into(),
            name: "again".into(),
            url: "https://c.example/feed".into(),
            category: "news".into(),
            tags: vec![],
        };
        let err = append_sources(&path, std::slice::from_ref(&dup), "added").unwrap_err();
        assert!(matches!(err, EditError::WouldNotLoad(_)), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), TEXT);
        let new = NewSource {
            id: "c".into(),
            ..dup
        };
        let config = append_sources(&path, &[new], "added by a test\nwith a break").unwrap();
        assert_eq!(config.sources.len(), 3);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(TEXT), "{text}");
        assert!(
            text.contains("# added by a test with a break\n[[sources]]\nid = \"c\""),
            "{text}"
        );
    }
}
