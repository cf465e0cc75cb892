//! The command line: `serve` (the daemon), `fetch`, `sources`, `check` and `rules test`
//! (`cli::inspect`), `search`, `dedupe --explain`, `export`, `opml`, the config edits `add`, `remove`, `enable`, `disable`, and
//! the store's upkeep `backup`, `restore`, `prune` (`cli::upkeep`).
//!
//! Exit codes, as scripts and systemd read them: 0 success; 1 the command finished but found a
//! problem (a source failed, `check` matched nothing, `search` found nothing); 2 a fatal error
//! (bad config, unusable database, port in use) before any work.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use unicode_width::UnicodeWidthStr;

use crate::config::{Config, SourceConfig};
use crate::fetch::{Fetcher, Limits};
use crate::refresh;
use crate::server;
use crate::store::Store;

mod edit;
mod serve;
mod upkeep;

#[derive(Parser)]
#[command(
    name = "tributary",
    version,
    about = "Feed aggregator: many sources in, merged feeds out",
    after_help = "Exit status: 0 success; 1 the command ran but found a problem (a source \
                  failed, `check` matched nothing, `search` found nothing, `add` found no feed \
                  or one already configured); 2 a fatal error before any work (bad config, \
                  unusable database, port in use)."
)]
struct Cli {
    /// The configuration file.
    #[arg(
        short,
        long,
        global = true,
        env = "TRIBUTARY_CONFIG",
        default_value = "config/tributary.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: fetch every source on its schedule and serve the merged feeds.
    Serve,
    /// Fetch sources once now (all enabled ones, or those named), store, print a line each.
    Fetch {
        /// Source ids; all enabled sources when none are given.
        ids: Vec<String>,
    },
    /// List the sources with their last fetch and entry counts.
    Sources {
        /// Print every status whole; without it, lines are cut to the terminal's width
        /// ($COLUMNS, else 120), the status ending in `…`.
        #[arg(long)]
        wide: bool,
    },
    /// Full-text search over stored entries (titles and text; Chinese works), newest first.
    Search {
        /// Words or phrases; every one must occur.
        query: String,
        /// At most this many results.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Near-duplicate clusters: why entries were merged.
    Dedupe {
        /// Print the cluster of this entry (its id is `_tributary.entry_id` in JSON Feed).
        #[arg(long, value_name = "ENTRY_ID")]
        explain: i64,
    },
    /// Add a source: the feed at URL, or the feed a page at URL names; read once, then
    /// appended to the config file (a running daemon picks it up).
    Add {
        /// A feed's URL, or a page that links its feed.
        url: String,
        /// Its category (default: news).
        #[arg(long)]
        category: Option<String>,
        /// Its id, `[a-z0-9-]+` (default: made from its name).
        #[arg(long)]
        id: Option<String>,
        /// Its name (default: the feed's title).
        #[arg(long)]
        name: Option<String>,
    },
    /// Write a consistent copy of the store to PATH (which must not exist), while the daemon
    /// runs; the copy is checked (SQLite's integrity check) before it takes its name.
    Backup {
        /// Where the copy goes.
        #[arg(required_unless_present = "dir", conflicts_with = "dir")]
        path: Option<PathBuf>,
        /// Write the copy into this folder instead, named by the time
        /// (`tributary-20261204T033000Z.db`): what the nightly timer runs.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// With --dir: once the copy is written, keep only the N newest copies there.
        #[arg(long, value_name = "N", requires = "dir", value_parser = clap::value_parser!(u32).range(1..))]
        keep: Option<u32>,
    },
    /// Put a backup back in place of the store (stop the daemon first): the copy must pass
    /// SQLite's integrity check and have a schema this build reads; the replaced store is
    /// kept beside it as `.before-restore`.
    Restore {
        /// The backup to restore.
        path: PathBuf,
    },
    /// Copy the whole store into an empty one, SQLite into PostgreSQL or back (stop the
    /// daemons first: what they write meanwhile is not copied), then count every table's
    /// rows again in the copy.
    Migrate {
        /// The store copied: an SQLite file, or a PostgreSQL URL (postgres://…).
        #[arg(long)]
        from: String,
        /// The store written: a new SQLite file, or an empty PostgreSQL database's URL.
        #[arg(long)]
        to: String,
    },
    /// Take out the entries retention lets go (`keep_days`, `keep_entries`), as the daemon
    /// does every hour, and print how many per source.
    Prune {
        /// Only print what would go.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove a source from the config file (its stored entries stay).
    Remove { id: String },
    /// Enable a source in the config file.
    Enable { id: String },
    /// Disable a source in the config file: it is not fetched, its feed not served.
    Disable { id: String },
    /// OPML 2.0: the configured sources out, a feed reader's subscriptions in.
    Opml {
        #[command(subcommand)]
        action: OpmlCommand,
    },
    /// The config file: `config check` loads and validates it and prints a summary (exit 2
    /// and the error when it does not load), what to run before `systemctl reload`.
    Config {
        #[command(subcommand)]
        action: ConfigCommand,
    },
    /// The keep, block and rewrite rules: `rules test ID` shows what they do to a source.
    Rules {
        #[command(subcommand)]
        action: RulesCommand,
    },
    /// Dry run: fetch one source and print what its rules extract, storing nothing.
    Check {
        /// The source whose rules are used.
        source_id: String,
        /// Read this page instead of the source's URL (e.g. a saved copy, or another channel).
        #[arg(long)]
        url: Option<String>,
    },
    /// Write stored entries as static-site posts, one file per entry; unchanged files are
    /// left alone.
    Export {
        /// The post format.
        #[arg(long, value_enum)]
        format: crate::export::Format,
        /// The folder the posts go to (created when missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Only entries of this category's sources.
        #[arg(long)]
        category: Option<String>,
        /// Only entries published on or after this day (UTC).
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = crate::export::parse_since)]
        since: Option<chrono::NaiveDate>,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Print a source's newest stored entries with what its rules do to each: kept, dropped
    /// or rewritten, and by which rule (nothing is fetched or changed).
    Test {
        source_id: String,
        /// How many of its newest entries.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Load and validate the config; print its sources per category.
    Check {
        /// Also print this source's schedule and its next three runs.
        #[arg(long, value_name = "ID")]
        source: Option<String>,
    },
}

#[derive(Subcommand)]
enum OpmlCommand {
    /// Write the configured sources as OPML, one outline per category, for a feed reader.
    Export {
        /// Write to this file (replaced atomically) instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Add the feeds of a reader's OPML export to the config file (appended; feeds already
    /// configured are skipped).
    Import {
        /// The OPML file (Miniflux, FreshRSS, NetNewsWire… exports).
        file: PathBuf,
    },
}

/// Appends a line to a command's output, which is written in one go by [`emit`].
macro_rules! outln {
    ($out:ident) => {
        $out.push('\n')
    };
    ($out:ident, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

mod inspect;

/// Writes a command's output to stdout. A reader that went away (`| head`) is not an error:
/// the command's work is done either way.
fn emit(out: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon logs at info; a one-off command prints its own output (`fetch` a line per
    // source), so logs would say it twice: errors only.
    let default_log = match cli.command {
        Command::Serve => "info",
        _ => "error",
    };
    init_logging(default_log);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tributary: {}", crate::error_chain(e.as_ref()));
            ExitCode::from(2)
        }
    }
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // journald and log files want plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::load(&cli.config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // `check` touches no database: it must work before the first run, and on a read-only copy.
    if let Command::Check { source_id, url } = &cli.command {
        return runtime.block_on(inspect::check(&config, source_id, url.as_deref()));
    }
    // `opml` works on the config file; the database is at most read.
    if let Command::Opml { action } = &cli.command {
        return opml(&config, action);
    }
    match &cli.command {
        Command::Add {
            url,
            category,
            id,
            name,
        } => {
            let args = edit::AddArgs {
                url,
                category: category.as_deref(),
                id: id.as_deref(),
                name: name.as_deref(),
            };
            return runtime.block_on(edit::add(&config, &args));
        }
        Command::Config {
            action: ConfigCommand::Check { source },
        } => return edit::check(&config, source.as_deref()),
        Command::Remove { id } => return edit::switch(&config, id, edit::Switch::Remove),
        Command::Enable { id } => return edit::switch(&config, id, edit::Switch::Enable),
        Command::Disable { id } => return edit::switch(&config, id, edit::Switch::Disable),
        Command::Restore { path } => return upkeep::restore(&config, path),
        Command::Migrate { from, to } => return upkeep::migrate(from, to),
        _ => {}
    }
    let store = Arc::new(open_store(&config)?);
    store.sync_sources(&config.sources)?;
    match cli.command {
        Command::Serve => runtime.block_on(serve::serve(config, store)),
        Command::Fetch { ids } => runtime.block_on(fetch(config, store, &ids)),
        Command::Sources { wide } => sources(&store, wide),
        Command::Backup { path, dir, keep } => {
            let target = match (path, dir) {
                (Some(path), _) => upkeep::Target::File(path),
                (None, Some(dir)) => upkeep::Target::Dir { dir, keep },
                (None, None) => unreachable!("clap requires one"),
            };
            upkeep::backup(&store, target)
        }
        Command::Prune { dry_run } => upkeep::prune(&config, &store, dry_run),
        Command::Dedupe { explain } => explain_cluster(&store, explain),
        Command::Rules {
            action: RulesCommand::Test { source_id, limit },
        } => inspect::rules_test(&config, &store, &source_id, limit),
        Command::Search { query, limit } => search(&store, &query, limit),
        Command::Check { .. }
        | Command::Opml { .. }
        | Command::Config { .. }
        | Command::Add { .. }
        | Command::Remove { .. }
        | Command::Enable { .. }
        | Command::Disable { .. }
        | Command::Restore { .. }
        | Command::Migrate { .. } => unreachable!("handled above"),
        Command::Export {
            format,
            out,
            category,
            since,
        } => export_posts(&config, &store, format, &out, category.as_deref(), since),
    }
}

async fn fetch(config: Config, store: Arc<Store>, ids: &[String]) -> anyhow::Result<ExitCode> {
    let chosen: Vec<Arc<SourceConfig>> = if ids.is_empty() {
        config
            .sources
            .iter()
            .filter(|s| s.enabled)
            .cloned()
            .collect()
    } else {
        ids.iter()
            .map(|id| match config.sources.iter().find(|s| s.id == *id) {
                Some(s) if s.enabled => Ok(s.clone()),
                Some(_) => anyhow::bail!("source {id:?} is disabled in {}", config.path.display()),
                None => anyhow::bail!("no source {id:?} in {}", config.path.display()),
            })
            .collect::<anyhow::Result<_>>()?
    };
    let fetcher = Fetcher::new(&config.fetch, Limits::new(&config.fetch))?;
    let mut tasks = tokio::task::JoinSet::new();
    for source in chosen {
        let (fetcher, store) = (fetcher.clone(), store.clone());
        tasks.spawn(async move {
            // Saves the schedule the daemon would keep too: the next run, a host's Retry-After.
            let report = {
                let _slot = fetcher.limits().fetch_slot().await;
                refresh::refresh_source(&fetcher, &store, &source).await
            };
            report.log();
            report
        });
    }
    let mut progress = Progress::new(tasks.len());
    let mut failed = 0;
    while let Some(done) = tasks.join_next().await {
        let report = done.context("a fetch task panicked")?;
        failed += usize::from(report.outcome.is_err());
        progress.line(&report.summary_line(), failed)?;
    }
    progress.finish();
    if progress.total == 0 {
        eprintln!(
            "tributary: nothing to fetch: {} has no enabled sources",
            config.path.display()
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `fetch`'s output: each source's line on stdout as it finishes, and, when stderr is a
/// terminal, a progress line under them (done of total, failures, time so far).
struct Progress {
    total: usize,
    done: usize,
    started: std::time::Instant,
    terminal: bool,
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress {
            total,
            done: 0,
            started: std::time::Instant::now(),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn line(&mut self, line: &str, failed: usize) -> anyhow::Result<()> {
        self.done += 1;
        if self.terminal {
            // Clear the progress line, so the source's line takes its place.
            eprint!("\r\x1b[K");
        }
        emit(&format!("{line}\n"))?;
        if self.terminal && self.done < self.total {
            eprint!(
                "[{}/{}] {failed} failed, {:.0?} so far",
                self.done,
                self.total,
                self.started.elapsed()
            );
        }
        Ok(())
    }

    fn finish(&self) {
        if self.terminal && self.done < self.total {
            eprint!("\r\x1b[K");
        }
    }
}

fn search(store: &Store, query: &str, limit: usize) -> anyhow::Result<ExitCode> {
    let q = crate::model::FeedQuery {
        limit: limit.clamp(1, server::MAX_LIMIT),
        text: Some(query.to_string()),
        ..Default::default()
    };
    let found = store.entries(&crate::model::Scope::All, &q)?;
    let mut out = String::new();
    for e in &found {
        let sources: Vec<&str> = e.sources.iter().map(|s| s.source_id.as_str()).collect();
        outln!(
            out,
            "{:>6}  {}  {}  {}\n        {}",
            e.id,
            e.published.format("%Y-%m-%d %H:%MZ"),
            sources.join(","),
            e.title,
            e.link.as_deref().unwrap_or("-")
        );
    }
    if found.is_empty() {
        outln!(out, "no entries match {query:?}");
    }
    emit(&out)?;
    Ok(if found.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn explain_cluster(store: &Store, entry_id: i64) -> anyhow::Result<ExitCode> {
    let Some((cluster, members)) = store.explain(entry_id)? else {
        anyhow::bail!("no entry {entry_id}");
    };
    let mut out = String::new();
    let shown = members
        .iter()
        .find(|m| m.canonical)
        .map_or(cluster, |m| m.entry_id);
    outln!(
        out,
        "entry {entry_id} is in cluster {cluster}: {} member{}; merged feeds show entry {shown}",
        members.len(),
        if members.len() == 1 { "" } else { "s" }
    );
    for m in &members {
        let why = match &m.merged {
            Some((matched, rule, score)) => format!("{rule} {score} with entry {matched}"),
            None => "first in cluster".to_string(),
        };
        outln!(
            out,
            "{} {:>6}  {}  {}  {}  [{}]",
            if m.canonical { "*" } else { " " },
            m.entry_id,
            m.published.format("%Y-%m-%d %H:%MZ"),
            m.sources.join(","),
            m.title,
            why
        );
        if m.sources.len() > 1 {
            outln!(
                out,
                "           one entry carried by {} sources ({}): the same {}",
                m.sources.len(),
                m.sources.join(", "),
                m.shared_keys
                    .first()
                    .map_or("identity".to_string(), |k| format!("key {k}"))
            );
        }
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn export_posts(
    config: &Config,
    store: &Store,
    format: crate::export::Format,
    out_dir: &std::path::Path,
    category: Option<&str>,
    since: Option<chrono::NaiveDate>,
) -> anyhow::Result<ExitCode> {
    let options = crate::export::Options {
        format,
        out: out_dir,
        category,
        since,
        placeholder: &config.export.placeholder,
        rules: &crate::rules::Book::new(config),
    };
    let report = crate::export::export(store, &options)?;
    let mut out = String::new();
    outln!(
        out,
        "exported {} entries to {}: {} written, {} unchanged",
        report.entries,
        out_dir.display(),
        report.written,
        report.unchanged
    );
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// Display columns a `sources` line may take when not `--wide`: `$COLUMNS`, else 120.
fn line_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|&c: &usize| c >= 40)
        .unwrap_or(120)
}

fn sources(store: &Store, wide: bool) -> anyhow::Result<ExitCode> {
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|| "-".into())
    };
    let rows: Vec<[String; 8]> = store
        .source_statuses()?
        .into_iter()
        .map(|s| {
            let status = match (&s.last_status, &s.last_error) {
                _ if s.drift.is_some() => format!("drifting: {}", s.drift.as_deref().unwrap_or("")),
                (Some(st), Some(err)) => format!("{st}: {err}"),
                (Some(st), None) => st.clone(),
                (None, _) => "never fetched".into(),
            };
            [
                s.id,
                s.name,
                s.category,
                time(s.last_fetch_at),
                time(
                    s.next_run
                        .filter(|_| s.active && s.disabled_reason.is_none()),
                ),
                s.consecutive_failures.to_string(),
                s.entry_count.to_string(),
                status,
            ]
        })
        .collect();
    let header = [
        "ID",
        "NAME",
        "CATEGORY",
        "LAST FETCH",
        "NEXT RUN",
        "FAILURES",
        "ENTRIES",
        "LAST STATUS",
    ]
    .map(String::from);
    let mut widths = [0usize; 8];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.width());
        }
    }
    let limit = (!wide).then(line_width);
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell}{}", " ".repeat(w - cell.width())))
            .collect();
        let line = line.join("  ");
        outln!(out, "{}", cut(line.trim_end(), limit));
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// `line` cut to `limit` display columns, ending in `…` when cut.
fn cut(line: &str, limit: Option<usize>) -> String {
    let Some(limit) = limit.filter(|&l| line.width() > l) else {
        return line.to_string();
    };
    let mut out = String::new();
    let mut used = 0;
    for c in line.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        // One column stays for the `…`.
        if used + w + 1 > limit {
            break;
        }
        used += w;
        out.push(c);
    }
    out + "…"
}

/// `opml export`: the config's sources as OPML. `opml import FILE`: a reader's feeds appended
/// to the config file, with what was added and skipped printed.
fn opml(config: &Config, action: &OpmlCommand) -> anyhow::Result<ExitCode> {
    let now = chrono::Utc::now();
    let mut out = String::new();
    match action {
        OpmlCommand::Export { out: None } => {
            let (text, notes) = crate::opml::export_sources(&config.sources, now);
            for note in notes {
                eprintln!("tributary: note: {note}");
            }
            out = text;
        }
        OpmlCommand::Export { out: Some(file) } => {
            let (text, notes) = crate::opml::export_sources(&config.sources, now);
            for note in notes {
                eprintln!("tributary: note: {note}");
            }
            crate::files::replace(file, text.as_bytes(), None)
                .with_context(|| format!("cannot write {}", file.display()))?;
            outln!(
                out,
                "wrote {} sources to {}",
                config.sources.len(),
                file.display()
            );
        }
        OpmlCommand::Import { file } => {
            let reserved = edit::reserved_ids(config)?;
            let report = crate::opml::import(&config.path, file, &reserved, now)?;
            for a in &report.added {
                let tags = if a.tags.is_empty() {
                    String::new()
                } else {
                    format!(", tags {}", a.tags.join(", "))
                };
                outln!(
                    out,
                    "added {}: {} <{}> (category {}{tags})",
                    a.id,
                    a.name,
                    a.url,
                    a.category
                );
            }
            for s in &report.skipped {
                let name = if s.name.is_empty() { "-" } else { &s.name };
                outln!(out, "skipped {name} <{}>: {}", s.url, s.why);
            }
            if report.added.is_empty() {
                outln!(
                    out,
                    "nothing added ({} skipped); {} is unchanged",
                    report.skipped.len(),
                    config.path.display()
                );
            } else {
                outln!(
                    out,
                    "{} added, {} skipped; {} updated (a running daemon picks them up)",
                    report.added.len(),
                    report.skipped.len(),
                    config.path.display()
                );
            }
        }
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// The store the config names: its SQLite file, or its PostgreSQL database.
fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::open_configured(config).with_context(|| match &config.storage_url {
        Some(pg) => format!("[storage] url = {}", pg.redacted()),
        None => format!("[storage] path = {}", config.storage_path.display()),
    })
}

#[cfg(test)]
mod tests {
    /// A wrapper whose message repeats its cause's, as reqwest's and rusqlite's do.
    #[derive(Debug, thiserror::Error)]
    #[error("request failed: {0}")]
    struct Repeats(#[source] std::io::Error);

    /// The binary's error line (`crate::error_chain`): each cause once.
    #[test]
    fn each_cause_is_said_once() {
        let io = || std::io::Error::other("disk on fire");
        let e = anyhow::Error::new(Repeats(io())).context("[storage] path = x.db");
        assert_eq!(
            crate::error_chain(e.as_ref()),
            "[storage] path = x.db: request failed: disk on fire"
        );
        let read = crate::config::ConfigError::Read {
            path: "c.toml".into(),
            source: io(),
        };
        let e = anyhow::Error::new(read);
        assert_eq!(
            crate::error_chain(e.as_ref()),
            "c.toml: cannot read: disk on fire"
        );
    }
}
