//! ARCHITECTURE.md is the map, and this keeps it the territory: every module of `src/` has a
//! row in its code map, every row is a module, and each module refers (`crate::…`) only to the
//! modules its row's "may use" column names. The allowed graph has no cycle. And the rooms
//! stay small: no file of `src/` over 800 lines, no silenced size lint.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Module → the modules it may use, as ARCHITECTURE.md's code map says.
fn map() -> BTreeMap<String, BTreeSet<String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md");
    let text = fs::read_to_string(&path).expect("ARCHITECTURE.md");
    let table = text
        .split("## Code map")
        .nth(1)
        .expect("a \"## Code map\" section")
        .split("\n## ")
        .next()
        .unwrap_or("");
    let mut rows = BTreeMap::new();
    let mut header = None;
    for line in table.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        if header.is_none() {
            header = Some(cells.clone());
            assert_eq!(
                cells.last().copied(),
                Some("may use"),
                "the code map's last column is \"may use\": {line}"
            );
            continue;
        }
        if line.chars().all(|ch| "|-: ".contains(ch)) {
            continue;
        }
        let name = ticked(cells[0])
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("a module name in backticks: {line}"));
        let module = name.trim_end_matches(".rs").to_string();
        let uses = ticked(cells.last().copied().unwrap_or(""))
            .into_iter()
            .collect();
        assert!(
            rows.insert(module.clone(), uses).is_none(),
            "{module} has two rows"
        );
    }
    rows
}

/// The `names` in backticks in a table cell.
fn ticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Every `.rs` file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).expect("listing src") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The top-level module a file of `src/` belongs to (`parse/feed.rs` is `parse`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a path");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// The first path segment of every `crate::` path in `code` (comments left out):
/// `crate::store::Store` and `use crate::{store, fetch::Limits}` name `store` and `fetch`.
fn references(code: &str) -> BTreeSet<String> {
    let code: String = code
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        // `tributary::crate::` cannot occur; a preceding identifier character means another
        // word (`foo_crate::`).
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(first_ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            found.insert(first_ident(&item));
        } else {
            found.insert(first_ident(rest));
        }
    }
    found.retain(|m| !m.is_empty() && m != "self");
    found
}

fn first_ident(text: &str) -> String {
    text.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn modules_use_only_what_the_map_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let map = map();
    let mut uses: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for file in files(&src) {
        let module = module_of(&src, &file);
        let code = fs::read_to_string(&file).expect("a source file");
        let rel = file
            .strip_prefix(&src)
            .expect("under src")
            .display()
            .to_string();
        for used in references(&code) {
            uses.entry(module.clone())
                .or_default()
                .entry(used)
                .or_default()
                .push(rel.clone());
        }
        uses.entry(module).or_default();
    }
    let modules: BTreeSet<&String> = uses.keys().collect();
    let mapped: BTreeSet<&String> = map.keys().collect();
    let unmapped: Vec<_> = modules.difference(&mapped).collect();
    let gone: Vec<_> = mapped.difference(&modules).collect();
    assert!(
        unmapped.is_empty(),
        "modules missing from the code map: {unmapped:?}"
    );
    assert!(gone.is_empty(), "code map rows with no module: {gone:?}");

    let mut broken = Vec::new();
    for (module, used) in &uses {
        for (other, files) in used {
            // Items of the crate root (`crate::error_chain`) are not modules.
            if other == module || !modules.contains(other) {
                continue;
            }
            if !map[module].contains(other) {
                broken.push(format!("{module} uses {other} (in {})", files.join(", ")));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "uses the code map does not allow (ARCHITECTURE.md, \"may use\"):\n{}",
        broken.join("\n")
    );
    for (module, allowed) in &map {
        for other in allowed {
            assert!(
                map.contains_key(other),
                "{module} may use {other}, which is no module"
            );
        }
    }
    if let Some(cycle) = cycle(&map) {
        panic!("the code map allows a cycle: {}", cycle.join(" → "));
    }
}

/// A cycle in the "may use" graph, if there is one.
fn cycle(map: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        map: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in map.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, map, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    map.keys()
        .find_map(|m| visit(m, map, &mut Vec::new(), &mut done))
}

/// The longest a file of `src/` may be, unit tests included: past it, a file holds more than
/// one concern and should be split.
const MAX_FILE_LINES: usize = 800;

#[test]
fn files_stay_small_and_no_size_lint_is_silenced() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    assert!(
        lib.contains("#![warn(clippy::too_many_lines, clippy::too_many_arguments)]"),
        "lib.rs turns on clippy's size lints"
    );
    let mut problems = Vec::new();
    for file in files(&src) {
        let code = fs::read_to_string(&file).expect("a source file");
        let rel = file
            .strip_prefix(&src)
            .expect("under src")
            .display()
            .to_string();
        let lines = code.lines().count();
        if lines > MAX_FILE_LINES {
            problems.push(format!("{rel}: {lines} lines (at most {MAX_FILE_LINES})"));
        }
        for lint in ["too_many_lines", "too_many_arguments"] {
            if code.contains(&format!("allow(clippy::{lint}")) {
                problems.push(format!("{rel}: allows clippy::{lint}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn references_are_read_from_paths_and_groups() {
    let code = "use crate::{store::Store, fetch::{Fetcher, Limits}};\n\
                let x = crate::model::Entry::default(); // crate::cli in a comment\n\
                fn f() -> crate::error_chain {}";
    let found: Vec<String> = references(code).into_iter().collect();
    assert_eq!(found, ["error_chain", "fetch", "model", "store"]);
    let mut map = BTreeMap::new();
    map.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    map.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(cycle(&map), Some(vec!["a".into(), "b".into(), "a".into()]));
}

/// No message the binary can print asks the user to report a bug in words a library chose
/// (scraper's selector errors did): every error names its cause in words of ours.
#[test]
fn no_message_asks_the_user_to_report_it_to_the_developer() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src];
    let mut found = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source");
                if text.to_lowercase().contains("report this to the developer") {
                    found.push(path.display().to_string());
                }
            }
        }
    }
    assert!(found.is_empty(), "{found:?}");
}
