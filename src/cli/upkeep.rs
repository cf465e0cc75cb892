//! Keeping the store: `backup` (a checked copy of the live store), `restore` (putting one
//! back, the daemon stopped) and `prune` (what retention lets go, now, or only said).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;

use crate::config::Config;
use crate::store::{PruneReport, PruneRequest, Store};

use super::emit;

/// Where a backup goes.
pub(super) enum Target {
    File(PathBuf),
    /// A copy named by the time in `dir`; then only the `keep` newest kept.
    Dir {
        dir: PathBuf,
        keep: Option<u32>,
    },
}

/// Copies in a backup folder are named `tributary-<UTC time>.db`, so their names sort by age.
const COPY_PREFIX: &str = "tributary-";

pub(super) fn backup(store: &Store, target: Target) -> anyhow::Result<ExitCode> {
    let (path, rotate) = match target {
        Target::File(path) => (path, None),
        Target::Dir { dir, keep } => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let name = format!("{COPY_PREFIX}{}.db", Utc::now().format("%Y%m%dT%H%M%SZ"));
            (dir.join(name), keep.map(|n| (dir, n)))
        }
    };
    let b = store.backup(&path)?;
    let mut out = format!(
        "backed up {} entries of {} sources to {} ({:.1} MB)\n",
        b.entries,
        b.sources,
        path.display(),
        b.bytes as f64 / 1e6
    );
    if let Some((dir, keep)) = rotate {
        for old in older_copies(&dir, keep as usize)? {
            std::fs::remove_file(&old)
                .with_context(|| format!("cannot remove the old copy {}", old.display()))?;
            out.push_str(&format!("removed the old copy {}\n", old.display()));
        }
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// The copies in `dir` past the `keep` newest (by name: the time they were taken).
fn older_copies(dir: &Path, keep: usize) -> anyhow::Result<Vec<PathBuf>> {
    let mut copies: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(COPY_PREFIX) && n.ends_with(".db"))
        })
        .collect();
    copies.sort();
    let surplus = copies.len().saturating_sub(keep);
    copies.truncate(surplus);
    Ok(copies)
}

/// Runs before the store is opened: the store must be closed everywhere for it to be replaced.
pub(super) fn restore(config: &Config, copy: &Path) -> anyhow::Result<ExitCode> {
    if let Some(url) = &config.storage_url {
        anyhow::bail!(
            "[storage] url = {}: restore copies SQLite backups; a PostgreSQL store is restored \
             with PostgreSQL's own tools (pg_restore)",
            url.redacted()
        );
    }
    let r = Store::restore(&config.storage_path, copy)?;
    let mut out = format!(
        "restored {} entries of {} sources from {} (schema version {}) to {}\n",
        r.copy.entries,
        r.copy.sources,
        copy.display(),
        r.schema_version,
        config.storage_path.display()
    );
    if let Some(kept) = &r.kept {
        out.push_str(&format!(
            "the store it replaced is kept as {}; the search index is built again at the next \
             start\n",
            kept.display()
        ));
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// `tributary migrate`: `from` copied into `to` (each an SQLite file or a PostgreSQL URL),
/// then every table's rows counted again in `to`.
pub(super) fn migrate(from: &str, to: &str) -> anyhow::Result<ExitCode> {
    // A mistyped path would otherwise be a new, empty store, and "0 entries copied".
    if !is_url(from) && !Path::new(from).exists() {
        anyhow::bail!("{from}: no such store");
    }
    let (source, target) = (open_named(from)?, open_named(to)?);
    let copied = source
        .copy_into(&target)
        .with_context(|| format!("copying {} into {}", shown(from), shown(to)))?;
    let counted = target.table_counts()?;
    let rows = |table: &str| {
        copied
            .0
            .iter()
            .find(|(t, _)| *t == table)
            .map_or(0, |c| c.1)
    };
    let mut out = format!(
        "copied {} entries of {} sources from {} to {}; each table's rows counted again there:\n",
        rows("entries"),
        rows("sources"),
        shown(from),
        shown(to)
    );
    for ((table, n), (_, there)) in copied.0.iter().zip(&counted.0) {
        // PostgreSQL gives every source's host a row (instances lock it to claim a fetch).
        let derived = *table == "hosts" && is_url(to) && there >= n;
        if there != n && !derived {
            anyhow::bail!("{}: {there} rows in {table}, {n} copied", shown(to));
        }
        out.push_str(&format!("  {table:<14} {n}"));
        if there != n {
            out.push_str(&format!(" (and {} for the sources' hosts)", there - n));
        }
        out.push('\n');
    }
    if source.table_counts()? != copied {
        out.push_str(&format!(
            "{} changed during the copy (a daemon running on it?): what it wrote since is not \
             in the copy\n",
            shown(from)
        ));
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn is_url(spec: &str) -> bool {
    spec.starts_with("postgres://") || spec.starts_with("postgresql://")
}

/// A store named on the command line, as messages show it (a URL without its password).
fn shown(spec: &str) -> String {
    if is_url(spec) {
        crate::config::redact_url(spec)
    } else {
        spec.to_string()
    }
}

fn open_named(spec: &str) -> anyhow::Result<Store> {
    let store = if is_url(spec) {
        Store::open_pg(spec, 2)
    } else {
        Store::open(Path::new(spec))
    };
    store.with_context(|| shown(spec))
}

pub(super) fn prune(config: &Config, store: &Store, dry_run: bool) -> anyhow::Result<ExitCode> {
    let req = PruneRequest {
        sources: &config.sources,
        default: config.retention,
        now: Utc::now(),
        dry_run,
    };
    let report = store.prune(&req)?;
    emit(&describe(config, &report, dry_run))?;
    Ok(ExitCode::SUCCESS)
}

/// One line per source with entries to prune (its retention beside it), then the total.
fn describe(config: &Config, r: &PruneReport, dry_run: bool) -> String {
    let width = r
        .per_source
        .iter()
        .map(|(id, _)| id.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let limit = |v: Option<u32>| v.map_or_else(|| "forever".to_string(), |n| n.to_string());
    for (id, n) in &r.per_source {
        let keep = config.source(id).map_or(config.retention, |s| s.retention);
        out.push_str(&format!(
            "{id:width$}  {n:>7} {}  (keep_days {}, keep_entries {}{})\n",
            if *n == 1 { "entry" } else { "entries" },
            limit(keep.keep_days),
            limit(keep.keep_entries),
            if config.source(id).is_none() {
                "; no longer configured"
            } else {
                ""
            },
        ));
    }
    if dry_run {
        out.push_str(&format!(
            "{} entries would go (dry run: nothing was changed)\n",
            r.entries
        ));
    } else {
        out.push_str(&format!(
            "pruned {} entries in {} batches (the writer held at most {} ms by a batch, {} ms \
             by a vacuum step); tombstones: {} kept, {} dropped; {:.1} MB given back\n",
            r.entries,
            r.batches,
            r.longest_batch.as_millis(),
            r.longest_vacuum_step.as_millis(),
            r.tombstones_written,
            r.tombstones_dropped,
            r.bytes_freed as f64 / 1e6
        ));
    }
    out
}
