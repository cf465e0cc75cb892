//! How config errors are shown: a TOML error with the file's own lines, the source it is in
//! and the nearest known key; the line a bad value is on, with a caret under its key (never
//! for a secret's line); a CSS selector's problem in words. Text in, text out: `load`
//! decides what is wrong.

use std::path::Path;

use super::ConfigError;

/// Keys whose lines are never shown: their values are secrets (`[storage] url` may hold a
/// password; a source's `url` is shown).
const SECRET_KEYS: &[&str] = &["admin_token"];

fn is_secret(location: &str, key: &str) -> bool {
    SECRET_KEYS.contains(&key) || (location == "[storage]" && key == "url")
}

/// Whether the line at byte `offset` of `text` holds a secret: the toml crate's own message
/// would quote it.
fn secret_line(text: &str, offset: usize) -> bool {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let Some((key, _)) = line.split_once('=') else {
        return false;
    };
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .unwrap_or("");
    is_secret(table, key.trim())
}

/// What is wrong with a selector, in words. scraper's own text for the selector grammar's
/// errors is an "unexpected error" asking for a bug report, and a debug dump; the grammar's
/// error names are read instead (a name not known here still gets a plain sentence).
pub(super) fn selector_problem(e: &scraper::error::SelectorErrorKind) -> String {
    use scraper::error::SelectorErrorKind as K;
    let grammar = match e {
        K::UnexpectedSelectorParseError(inner) => format!("{inner:?}"),
        K::EndOfLine => return "it ends where more was expected".into(),
        K::UnexpectedToken => return "a character or word where none belongs".into(),
        K::ExpectedColonOnPseudoElement => return "a pseudo-element needs `::`".into(),
        K::ExpectedIdentityOnPseudoElement => return "`::` with no pseudo-element name".into(),
        other => return other.to_string().to_lowercase(),
    };
    let words = match grammar.split(['(', ' ']).next().unwrap_or_default() {
        "DanglingCombinator" => "a combinator (`>`, `+`, `~` or a space) with nothing after it",
        "EmptySelector" => "an empty selector (nothing between two commas, or nothing at all)",
        "NonCompoundSelector" => "a combinator where a simple selector was expected",
        "ClassNeedsIdent" => "`.` with no class name after it",
        "NoIdentForPseudo" => "`:` with no pseudo-class name after it",
        "UnsupportedPseudoClassOrElement" => "a pseudo-class or pseudo-element not supported",
        "UnexpectedIdent" => "a name where none belongs",
        "ExpectedBarInAttr" | "ExpectedNamespace" | "ExplicitNamespaceUnexpectedToken" => {
            "a namespace prefix (`|`) written wrong"
        }
        "BadValueInAttr" => "an attribute value that is not a name or a quoted string",
        "NoQualifiedNameInAttributeSelector" | "InvalidQualNameInAttr" => {
            "an attribute selector (`[…]`) without a valid attribute name"
        }
        "UnexpectedTokenInAttributeSelector" => {
            "an attribute selector (`[…]`) with an operator other than =, ~=, |=, ^=, $=, *="
        }
        _ => "not a CSS selector this reader understands",
    };
    words.to_string()
}

/// The line of `text` holding `key` (`html.item`: `item` under `[sources.html]`) of the table
/// `location` names (`[server]`, `source "a"`), with its number and a caret under the key, as
/// the toml crate shows syntax errors; empty when the key is not written there.
pub(super) fn snippet(text: &str, location: &str, key: &str) -> String {
    if is_secret(location, key) {
        return String::new();
    }
    let lines: Vec<&str> = text.lines().collect();
    let header = |l: &str| l.trim_start().starts_with('[');
    // Where the table starts: its header, or a source's `[[sources]]` before its `id` line.
    let start = match location.strip_prefix("source ") {
        Some(id) => {
            let id_line = lines.iter().position(|l| {
                l.split_once('=').is_some_and(|(k, v)| {
                    k.trim() == "id" && v.split('#').next().unwrap_or("").trim() == id
                })
            });
            id_line.and_then(|i| (0..=i).rev().find(|&j| lines[j].trim() == "[[sources]]"))
        }
        None => lines.iter().position(|l| l.trim() == location),
    };
    let Some(mut from) = start else {
        return String::new();
    };
    let (table, key) = match key.split_once('.') {
        Some((sub, k)) => (Some(sub), k),
        None => (None, key),
    };
    if let Some(sub) = table {
        let wanted = format!("[sources.{sub}]");
        match (from + 1..lines.len())
            .take_while(|&j| lines[j].trim() != "[[sources]]")
            .find(|&j| lines[j].trim() == wanted)
        {
            Some(j) => from = j,
            None => return String::new(),
        }
    }
    let found = (from + 1..lines.len())
        .take_while(|&j| !header(lines[j]))
        .find(|&j| {
            lines[j]
                .split_once('=')
                .is_some_and(|(k, _)| k.trim() == key)
        });
    let Some(j) = found else {
        return String::new();
    };
    let line = lines[j];
    let number = (j + 1).to_string();
    let pad = " ".repeat(number.len());
    let indent = line.len() - line.trim_start().len();
    format!(
        "\n{pad} |\n{number} | {line}\n{pad} | {}{}",
        " ".repeat(indent),
        "^".repeat(key.len())
    )
}

/// A TOML or shape error as the toml crate reports it (the file's own lines, a caret under
/// the place), with the source whose table it is in, and the nearest known key when the
/// error is an unknown one.
pub(super) fn syntax_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let at = e.span().map_or(0, |span| span.start);
    let mut message = if secret_line(text, at) {
        // The message alone: the crate's excerpt would show the secret's line.
        format!(
            "{} (line {})",
            e.message(),
            text[..at.min(text.len())].lines().count().max(1)
        )
    } else {
        e.to_string().trim_end().to_string()
    };
    if let Some(id) = e.span().and_then(|span| source_at(text, span.start)) {
        message = format!("in source {id:?}: {message}");
    }
    if let Some(near) = nearest_key(e.message()) {
        message.push_str(&format!("\ndid you mean `{near}`?"));
    }
    ConfigError::Syntax {
        path: path.to_path_buf(),
        message,
    }
}

/// The id of the `[[sources]]` table the byte `offset` of `text` is in, if it is in one and
/// the table says its id.
fn source_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let start = before.rfind("[[sources]]")?;
    // A later header of any table ends the source's table.
    let table = &text[start..];
    let table = match table[11..].find("\n[") {
        Some(end) => &table[..11 + end],
        None => table,
    };
    if start + table.len() < offset {
        return None;
    }
    table.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "id").then(|| value.trim().trim_matches('"').to_string())
    })
}

/// For "unknown field `schedul`, expected one of `id`, `schedule`, …": the expected name
/// nearest the unknown one, when it is near enough to be a typo.
fn nearest_key(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, rest) = rest.split_once('`')?;
    rest.split('`')
        .skip(1)
        .step_by(2)
        .map(|known| (strsim::levenshtein(unknown, known), known))
        .filter(|&(d, known)| d <= 2.max(known.len() / 3))
        .min()
        .map(|(_, known)| known.to_string())
}
