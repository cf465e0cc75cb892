//! Three daemons sharing one PostgreSQL store, as operators run them for availability. Each
//! schedules every source and claims each due fetch, so the origin sees every source once a
//! cycle and never more than `[fetch] per_host` requests at once from the three together;
//! every instance serves the same feeds, and they are the feeds one SQLite daemon serves on
//! the same input. A SIGKILLed instance's claims run out (`[storage] lease_secs`) and the
//! others fetch its sources: no entry lost, none twice.
//!
//! These run on PostgreSQL whichever backend the suite runs on (the server
//! `$TRIBUTARY_POSTGRES_URL` names, which `bash .ci/run` starts).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;

/// Sources, all on one host (127.0.0.1): the per-host bound is one bound for all of them.
const SOURCES: usize = 300;
/// Their schedule. Never-fetched sources of a host start spread over one interval, so a
/// cycle of the 300 takes about this long.
const EVERY_SECS: u64 = 20;
/// How long the origin takes to answer: long enough for requests to overlap, so the bound is
/// what holds them apart.
const ANSWER: Duration = Duration::from_millis(25);
const CYCLE_DEADLINE: Duration = Duration::from_secs(120);
/// The claims' length in the kill test: a dead instance's sources wait this long.
const LEASE_SECS: u64 = 3;
/// The public address all instances publish under, so their links agree.
const PUBLIC: &str = "http://feeds.example.org/";

fn path_of(i: usize) -> String {
    format!("/s{i:03}.xml")
}

/// Source `i`'s feed: a story of its own, and one it shares with source `i ± 150`
/// (syndicated: the same link and title), which dedupe makes one entry naming both. (All
/// entries fit in one page of a feed: at most 500.)
fn feed(i: usize) -> String {
    let shared = i % (SOURCES / 2);
    let item = |n: usize, title: String, link: String| {
        // One second apart across all items, so the merged order has no ties.
        let at = chrono::DateTime::from_timestamp(1_796_000_000 - n as i64, 0).expect("a time");
        format!(
            "<item><title>{title}</title><link>{link}</link><guid isPermaLink=\"false\">{link}</guid>\
             <pubDate>{}</pubDate><description>Story {n} of the shared-store test.</description></item>",
            at.to_rfc2822()
        )
    };
    let own = item(
        i,
        format!("Source {i}'s story"),
        format!("https://news.example.com/{i}/story"),
    );
    let syndicated = item(
        SOURCES + shared,
        format!("Syndicated story {shared}"),
        format!("https://wire.example.com/{shared}"),
    );
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss version=\"2.0\"><channel>\
         <title>Source {i}</title><link>https://news.example.com/{i}/</link>\
         <description>Source {i}</description>{own}{syndicated}</channel></rss>"
    )
}

/// The origin: every source's feed, answered after [`ANSWER`].
fn origin() -> FixtureServer {
    let files = (0..SOURCES).map(|i| (path_of(i), feed(i).into_bytes()));
    let server = FixtureServer::start_with_files(files.collect());
    for i in 0..SOURCES {
        server.set_delay(&path_of(i), ANSWER);
    }
    server
}

fn sources(origin: &FixtureServer) -> Vec<Source> {
    let every = format!("every {EVERY_SECS}s");
    (0..SOURCES)
        .map(|i| {
            let category = if i % 2 == 0 { "even" } else { "odd" };
            Source::new(
                &format!("s{i:03}"),
                &format!("Source {i}"),
                &origin.url(&path_of(i)),
                category,
            )
            .schedule(&every)
        })
        .collect()
}

/// A config in `dir` on the store the test chose (`use_pg_database`, `use_sqlite`), with
/// `extra` lines in `[storage]`.
fn config(dir: &Path, sources: &[Source], storage: &str) -> (PathBuf, std::net::SocketAddr) {
    let listen = free_addr();
    let text = config_text(listen, "tributary.db", sources)
        .replacen(
            "[server]\n",
            &format!("[server]\npublic_url = \"{PUBLIC}\"\n"),
            1,
        )
        .replacen("[storage]\n", &format!("[storage]\n{storage}"), 1);
    (write_config_text(dir, &text), listen)
}

/// The feeds compared between instances and stores.
const FEEDS: [&str; 4] = [
    "/feeds/all.atom?limit=500",
    "/feeds/all.rss?limit=500",
    "/feeds/even.atom?limit=500",
    "/sources/s150.atom",
];

fn feeds(serve: &ServeGuard) -> Vec<String> {
    serve.bodies(&FEEDS)
}

/// Entries the input holds: each source's own and one per syndicated pair.
const ENTRIES: usize = SOURCES + SOURCES / 2;

/// Waits until every instance serves the same feeds with every entry in them (an instance
/// sees another's writes within its cache's bound); those feeds.
fn converged(instances: &[&ServeGuard]) -> Vec<String> {
    let deadline = Instant::now() + CYCLE_DEADLINE;
    loop {
        let seen: Vec<Vec<String>> = instances.iter().map(|s| feeds(s)).collect();
        let whole = seen[0][0].matches("<entry>").count() == ENTRIES;
        if whole && seen.iter().all(|f| *f == seen[0]) {
            return seen[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the instances never served the same whole feeds ({} of {ENTRIES} entries in the first)",
            seen[0][0].matches("<entry>").count()
        );
        // Polled: what changes is other processes' writes reaching this one's cache (within
        // `WRITE_POLL`), which nothing here can wait on.
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the origin has answered every source at least once; the time it took.
fn every_source_requested(origin: &FixtureServer, started: Instant) -> Duration {
    let left = CYCLE_DEADLINE.saturating_sub(started.elapsed());
    let seen = origin.wait_paths_started(SOURCES, left);
    assert_eq!(seen, SOURCES, "sources requested within {CYCLE_DEADLINE:?}");
    started.elapsed()
}

/// Each source's request times, oldest first.
fn requests(origin: &FixtureServer) -> BTreeMap<String, Vec<Instant>> {
    let mut per_path: BTreeMap<String, Vec<Instant>> = BTreeMap::new();
    for hit in origin.all_hits() {
        per_path.entry(hit.path).or_default().push(hit.at);
    }
    per_path
}

/// What one SQLite daemon serves after one fetch of the same input.
fn on_sqlite(dir: &Path, origin: &FixtureServer) -> Vec<String> {
    use_sqlite();
    let (config, listen) = config(dir, &sources(origin), "");
    let (code, out, err) = run_fetch(&config, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    feeds(&serve)
}

fn start(dir: &Path, name: &str, storage: &str, origin: &FixtureServer) -> ServeGuard {
    let (config, listen) = config(&dir.join(name), &sources(origin), storage);
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    serve
}

#[test]
fn three_instances_fetch_each_source_once_a_cycle_and_serve_one_sqlite_daemons_feeds() {
    let origin = origin();
    let dir = tempfile::tempdir().expect("a temp folder");
    use_pg_database(Some(pg_database()));
    let started = Instant::now();
    let instances: Vec<ServeGuard> = ["a", "b", "c"]
        .iter()
        .map(|name| start(dir.path(), name, "", &origin))
        .collect();
    let cycle = every_source_requested(&origin, started);
    let shared = converged(&instances.iter().collect::<Vec<_>>());
    drop(instances);

    // Once a cycle: no source asked for twice within half its interval (a second instance
    // fetching it too would ask within milliseconds).
    let half = Duration::from_secs(EVERY_SECS / 2);
    let per_path = requests(&origin);
    assert_eq!(per_path.len(), SOURCES);
    for (path, times) in &per_path {
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= half,
                "{path} requested twice {:?} apart",
                pair[1] - pair[0]
            );
        }
    }
    let peak = origin.peak_in_flight();
    assert!(peak <= 2, "{peak} requests at once on one host");
    eprintln!(
        "3 instances: {SOURCES} sources requested in {cycle:?}, {} requests, at most {peak} at once",
        origin.all_hits().len()
    );

    assert_eq!(shared, on_sqlite(&dir.path().join("single"), &origin));
}

#[test]
fn a_sigkilled_instances_sources_are_fetched_by_the_others_once_its_claims_run_out() {
    let origin = origin();
    let dir = tempfile::tempdir().expect("a temp folder");
    // One fetch outlasts a claim twice: its instance renews the claim while it runs, so no
    // other asks for the source meanwhile (checked with every source's requests below).
    origin.set_delay(&path_of(0), Duration::from_secs(2 * LEASE_SECS));
    let database = pg_database();
    use_pg_database(Some(database.clone()));
    let storage = format!("lease_secs = {LEASE_SECS}\n");
    let started = Instant::now();
    let mut instances: Vec<ServeGuard> = ["a", "b", "c"]
        .iter()
        .map(|name| start(dir.path(), name, &storage, &origin))
        .collect();
    // Mid-cycle (a third of the sources asked for), while the victim holds a claim.
    let holds = format!(
        "SELECT id FROM sources WHERE lease_holder LIKE '%:{}:%' ORDER BY id",
        instances[1].pid()
    );
    let deadline = started + CYCLE_DEADLINE;
    let victim = instances[1].pid() as libc::pid_t;
    let signal = |sig| {
        // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
        assert_eq!(unsafe { libc::kill(victim, sig) }, 0, "signal {sig}");
    };
    let left: Vec<String> = loop {
        assert!(Instant::now() < deadline, "the cycle never got going");
        if origin.all_hits().len() >= SOURCES / 3 && !pg_rows(&database, &holds).is_empty() {
            // Stopped, it can give nothing back: what it holds now is what it leaves.
            signal(libc::SIGSTOP);
            let held = pg_rows(&database, &holds);
            if !held.is_empty() {
                break held
                    .into_iter()
                    .map(|mut row| format!("/{}.xml", row.remove(0)))
                    .collect();
            }
            signal(libc::SIGCONT);
        }
        // Polled: the claims are another process's rows in the database.
        std::thread::sleep(Duration::from_millis(5));
    };
    let killed_at = Instant::now();
    instances.remove(1); // dropped: SIGKILL, and reaped
    let cycle = every_source_requested(&origin, started);
    let shared = converged(&instances.iter().collect::<Vec<_>>());
    drop(instances);

    // Only a fetch the killed instance had started is asked for again within the cycle, once
    // its claim ran out (the slow one too, unless the killed instance was fetching it).
    let half = Duration::from_secs(EVERY_SECS / 2);
    // A claim renewed every third of its length, in whole seconds, runs out two thirds of
    // a lease after the kill at the soonest.
    let lease = Duration::from_secs(LEASE_SECS) * 2 / 3;
    let mut taken_over = Vec::new();
    for (path, times) in requests(&origin) {
        for pair in times.windows(2) {
            if pair[1] - pair[0] >= half {
                continue;
            }
            assert!(
                pair[0] <= killed_at && pair[1] >= killed_at + lease - Duration::from_secs(1),
                "{path} requested twice {:?} apart, not across the kill",
                pair[1] - pair[0]
            );
            taken_over.push(path.clone());
        }
    }
    // Its claims left behind held their sources until they ran out; then another took them.
    let per_path = requests(&origin);
    for path in &left {
        assert!(
            per_path[path]
                .iter()
                .any(|&at| at >= killed_at + lease - Duration::from_secs(1)),
            "{path}, claimed by the killed instance, was not fetched after its claim ran out"
        );
    }
    let peak = origin.peak_in_flight();
    assert!(peak <= 2, "{peak} requests at once on one host");
    eprintln!(
        "killed after {:?} holding {left:?}: every source requested after {cycle:?}; asked \
         for again after the lease: {taken_over:?}",
        killed_at - started
    );
    // No entry lost, none twice: the feeds of one SQLite daemon that fetched each once.
    assert_eq!(shared, on_sqlite(&dir.path().join("single"), &origin));
}
