//! Ingest throughput from disk: decode → parse → normalize → dedupe → store for a corpus of
//! feed files, against the floor of the same work done plainly (feed-rs parse + rusqlite
//! inserts of the same rows), both measured in the same run, rounds interleaved.
//!
//!   cargo bench --bench ingest                 # own generated corpus (200 feeds × 50 items)
//!   cargo bench --bench ingest -- DIR [ROUNDS] # a gen_corpus.py-shaped corpus (manifest.json)
//!   cargo bench --bench ingest -- --write-corpus DIR [FEEDS]   # write the own corpus
//!
//! The files are read into memory before timing, so neither side measures the disk. The floor
//! is single-threaded, as in the peer baselines; tributary runs its pipeline as the daemon
//! does: several fetches at once, each read and normalized on its own thread, their writes
//! grouped into few transactions by the store's one writer. Both wall time and CPU time are printed, so the use of the second core is visible.

#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/rng.rs"]
mod rng;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use tributary::config::Config;
use tributary::refresh;
use tributary::store::{Store, StoreFetch};
use url::Url;

/// Fetches in flight at once, as `[fetch] concurrency` allows the daemon.
const WORKERS: usize = 8;

struct Feed {
    id: String,
    url: Url,
    bytes: Vec<u8>,
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("--write-corpus") {
        let dir = PathBuf::from(args.get(1).expect("--write-corpus DIR [FEEDS]"));
        let feeds = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1000);
        corpus::write(&dir, feeds, 50).expect("write corpus");
        println!("wrote {feeds} feeds to {}", dir.display());
        return;
    }
    let rounds: usize = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(5);
    let scratch = tempfile::tempdir().expect("temp dir");
    let dir = match args.first() {
        Some(dir) => PathBuf::from(dir),
        None => {
            let dir = scratch.path().join("corpus");
            corpus::write(&dir, 200, 50).expect("write corpus");
            dir
        }
    };
    let feeds = load(&dir);
    let total_bytes: usize = feeds.iter().map(|f| f.bytes.len()).sum();
    println!(
        "corpus {}: {} feeds, {:.1} MB; {rounds} rounds, interleaved",
        dir.display(),
        feeds.len(),
        total_bytes as f64 / 1e6
    );
    let config = config(scratch.path(), &feeds);
    let mut floor = Vec::new();
    let mut ours = Vec::new();
    for round in 0..rounds {
        let f = run_floor(&scratch.path().join(format!("floor{round}.db")), &feeds);
        let t = run_tributary(
            &scratch.path().join(format!("trib{round}.db")),
            &config,
            &feeds,
        );
        println!(
            "round {}: floor {} rows {:.2} s wall {:.2} s cpu | tributary {} new + {} duplicate, \
             {} merged, {:.2} s wall {:.2} s cpu",
            round + 1,
            f.rows,
            f.wall.as_secs_f64(),
            f.cpu.as_secs_f64(),
            t.rows,
            t.duplicates,
            t.merged,
            t.wall.as_secs_f64(),
            t.cpu.as_secs_f64()
        );
        floor.push(f);
        ours.push(t);
    }
    let med = |runs: &[Run], f: fn(&Run) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let entries: usize = ours.first().map_or(0, |r| r.rows + r.duplicates);
    println!("\n| measure | median | min | max |\n|---|---|---|---|");
    for (name, runs, f) in [
        ("floor wall s", &floor, wall as fn(&Run) -> f64),
        ("floor cpu s", &floor, cpu),
        ("tributary wall s", &ours, wall),
        ("tributary cpu s", &ours, cpu),
    ] {
        let (m, lo, hi) = med(runs, f);
        println!("| {name} | {m:.2} | {lo:.2} | {hi:.2} |");
    }
    let ratios: Vec<Run> = floor
        .iter()
        .zip(&ours)
        .map(|(f, t)| Run {
            wall: Duration::from_secs_f64(t.wall.as_secs_f64() / f.wall.as_secs_f64()),
            cpu: Duration::from_secs_f64(t.cpu.as_secs_f64() / f.cpu.as_secs_f64()),
            ..Run::default()
        })
        .collect();
    let (rw, rw_lo, rw_hi) = med(&ratios, wall);
    let (rc, rc_lo, rc_hi) = med(&ratios, cpu);
    let (tw, _, _) = med(&ours, wall);
    println!(
        "| tributary / floor, wall | {rw:.2}× | {rw_lo:.2} | {rw_hi:.2} |\n\
         | tributary / floor, cpu | {rc:.2}× | {rc_lo:.2} | {rc_hi:.2} |\n\
         | tributary entries/s (wall) | {:.0} | | |",
        entries as f64 / tw
    );
}

fn wall(r: &Run) -> f64 {
    r.wall.as_secs_f64()
}

fn cpu(r: &Run) -> f64 {
    r.cpu.as_secs_f64()
}

#[derive(Default)]
struct Run {
    wall: Duration,
    cpu: Duration,
    rows: usize,
    duplicates: usize,
    merged: usize,
}

/// The corpus's feeds, as listed by its manifest.json (gen_corpus.py's shape).
fn load(dir: &Path) -> Vec<Feed> {
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("manifest.json")).expect("manifest.json in the corpus"),
    )
    .expect("manifest.json is JSON");
    manifest["feeds"]
        .as_array()
        .expect("manifest lists feeds")
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let file = f["file"].as_str().expect("file name");
            Feed {
                id: format!("f{i:04}"),
                url: Url::parse(&format!("http://127.0.0.1:8089/{file}")).expect("url"),
                bytes: std::fs::read(dir.join(file)).expect("feed file"),
            }
        })
        .collect()
}

fn config(dir: &Path, feeds: &[Feed]) -> Config {
    let mut text = String::new();
    for (i, f) in feeds.iter().enumerate() {
        text.push_str(&format!(
            "[[sources]]\nid = \"{}\"\nname = \"{}\"\nurl = \"{}\"\ncategory = \"c{}\"\n",
            f.id,
            f.id,
            f.url,
            i % 4
        ));
    }
    Config::from_toml(&dir.join("bench.toml"), &text).expect("bench config")
}

fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// feed-rs parse + plain inserts with the realistic schema (unique guid per feed, an index on
/// the date), one transaction per feed, WAL + synchronous=NORMAL: the baselines' floor.
fn run_floor(path: &Path, feeds: &[Feed]) -> Run {
    let mut conn = rusqlite::Connection::open(path).expect("floor db");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.pragma_update(None, "synchronous", "NORMAL")
        .expect("sync");
    conn.execute_batch(
        "CREATE TABLE entries (id INTEGER PRIMARY KEY, feed_id INTEGER, guid TEXT, link TEXT,
             title TEXT, content TEXT, published INTEGER, UNIQUE (feed_id, guid));
         CREATE INDEX entries_by_published ON entries (published);",
    )
    .expect("floor schema");
    let (cpu0, started) = (cpu_time(), Instant::now());
    let mut rows = 0;
    for (feed_id, f) in feeds.iter().enumerate() {
        let Ok(feed) = feed_rs::parser::parse(f.bytes.as_slice()) else {
            continue;
        };
        let tx = conn.transaction().expect("tx");
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO entries (feed_id, guid, link, title, content, published)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .expect("insert");
            for e in feed.entries {
                let content = e
                    .content
                    .and_then(|c| c.body)
                    .or(e.summary.map(|s| s.content));
                insert
                    .execute(rusqlite::params![
                        feed_id,
                        e.id,
                        e.links.first().map(|l| l.href.clone()),
                        e.title.map(|t| t.content),
                        content,
                        e.published.or(e.updated).map(|d| d.timestamp())
                    ])
                    .expect("row");
                rows += 1;
            }
        }
        tx.commit().expect("commit");
    }
    Run {
        wall: started.elapsed(),
        cpu: cpu_time() - cpu0,
        rows,
        ..Run::default()
    }
}

/// The daemon's pipeline without the network: like `tributary fetch`, several fetches at once
/// (here [`WORKERS`] threads, each reading, normalizing and storing one feed after another),
/// their writes grouped by the store's one writer.
fn run_tributary(path: &Path, config: &Config, feeds: &[Feed]) -> Run {
    let store = Store::open(path).expect("store");
    store.sync_sources(&config.sources).expect("sources");
    let now = Utc
        .with_ymd_and_hms(2026, 2, 1, 0, 0, 0)
        .single()
        .expect("a date");
    let (cpu0, started) = (cpu_time(), Instant::now());
    let next = AtomicUsize::new(0);
    let totals = Mutex::new(Run::default());
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let (Some(source), Some(f)) = (config.sources.get(i), feeds.get(i)) else {
                    return;
                };
                let read = refresh::with_cpu_slot(|| {
                    refresh::read_document(source, &f.url, None, f.bytes.clone())
                });
                let entries = match read {
                    Ok((feed, _)) => refresh::with_cpu_slot(|| {
                        refresh::normalize_items(source, &f.url, feed.items, now)
                    }),
                    Err(e) => {
                        eprintln!("{}: {e}", source.id);
                        continue;
                    }
                };
                let counts = store
                    .store_fetch(StoreFetch {
                        source_id: source.id.clone(),
                        entries,
                        thresholds: source.dedupe.clone(),
                        now,
                        validators: Default::default(),
                        seen: Default::default(),
                    })
                    .expect("store");
                let mut t = totals.lock().expect("totals");
                t.rows += counts.new;
                t.duplicates += counts.unchanged;
                t.merged += counts.merged;
            });
        }
    });
    // The search index is kept by its own thread: the ingest is done when it has caught up.
    let written = started.elapsed();
    store.wait_for_search_index().expect("search index");
    let mut run = totals.into_inner().expect("totals");
    run.wall = started.elapsed();
    println!(
        "  search index caught up {:.2} s after the last write",
        (run.wall - written).as_secs_f64()
    );
    run.cpu = cpu_time() - cpu0;
    run
}
