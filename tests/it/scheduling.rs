//! The daemon's politeness and signals, observed from outside: through `/api/sources`, the
//! fixture server's request log, the exit status and the database.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use chrono::Utc;

const TOKEN: &str = "test-token-0123456789";

fn config_with_token(
    dir: &std::path::Path,
    sources: &[Source],
) -> (std::path::PathBuf, std::net::SocketAddr) {
    let listen = free_addr();
    let text = config_text(listen, "tributary.db", sources).replacen(
        "[server]\n",
        &format!("[server]\nadmin_token = \"{TOKEN}\"\n"),
        1,
    );
    (write_config_text(dir, &text), listen)
}

fn signal(serve: &ServeGuard, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &serve.pid().to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -{name}");
}

fn refresh_now(serve: &ServeGuard, id: &str) {
    let resp = http_post_with(
        &serve.url(&format!("/api/sources/{id}/refresh")),
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    );
    assert_eq!(resp.status, 202, "refresh {id}: {}", resp.body);
}

fn seconds_between(a: &serde_json::Value, b: &serde_json::Value) -> i64 {
    let (a, b) = (time_of(a).expect("a time"), time_of(b).expect("a time"));
    (b - a).num_seconds()
}

/// A 429 with Retry-After: 120 from one source defers every source of that host: the failing
/// source's next run and the other's are both at least two minutes ahead, and the other is
/// not requested.
#[test]
fn retry_after_defers_every_source_of_the_host() {
    let server = FixtureServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    server.fail_with_retry_after("/busy.xml", 429, "120");
    server.set("/busy.xml", fixture_bytes("tech-blog.atom"));
    let (config, listen) = config_with_token(
        dir.path(),
        &[
            Source::new("busy", "Busy", &server.url("/busy.xml"), "tech").schedule("every 1m"),
            Source::new("calm", "Calm", &server.url("/tech-blog.atom"), "tech")
                .schedule("every 1m"),
        ],
    );
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    let started = Utc::now();
    // The fetch's line is logged once its outcome and its next run are both stored (its
    // status alone is stored first).
    let logged = serve.until(API_DEADLINE, || {
        (serve.lines_with(&["source=busy", "status=\"error\""]) > 0).then_some(())
    });
    assert!(logged.is_some(), "busy was never fetched\n{}", serve.logs());
    let busy = source_in(&api_sources(&serve), "busy").clone();
    assert_eq!(busy["last_status"], "error", "{busy}");
    let next = time_of(&busy["next_run"]).expect("busy has a next run");
    assert!(
        (next - started).num_seconds() >= 115,
        "busy's next run {next} is not ~120 s after {started}"
    );
    // The other source was due 5 s after start (same host, staggered); it must now wait too.
    let calm = source_until(&serve, "calm", "a deferred next run", |s| {
        time_of(&s["next_run"]).is_some_and(|t| (t - started).num_seconds() >= 110)
    });
    assert!(
        calm["last_fetch"].is_null(),
        "calm was fetched during the deferral: {calm}"
    );
    assert_eq!(
        server.started("/tech-blog.atom"),
        0,
        "a request reached the deferred host"
    );
}

/// `tributary fetch` leaves the schedule where the daemon would: each source's next run, and a
/// 429's Retry-After as a pause of the whole host, which the daemon then honours.
#[test]
fn a_one_off_fetch_records_the_next_run_and_the_hosts_pause() {
    let server = FixtureServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    server.fail_with_retry_after("/busy.xml", 429, "600");
    let (config, listen) = config_with_token(
        dir.path(),
        &[
            Source::new("busy", "Busy", &server.url("/busy.xml"), "tech").schedule("every 1m"),
            Source::new("calm", "Calm", &server.url("/tech-blog.atom"), "tech")
                .schedule("every 1m"),
        ],
    );
    let started = Utc::now();
    let (code, _, err) = run_fetch(&config, &["busy"]);
    assert_eq!(code, 1, "{err}");
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    let busy = source_until(&serve, "busy", "a next run", |s| !s["next_run"].is_null());
    let busy = time_of(&busy["next_run"]).expect("the fetch recorded busy's next run");
    assert!(
        (busy - started).num_seconds() >= 590,
        "busy's next run {busy} is not the Retry-After's 600 s after {started}"
    );
    // The daemon starts calm (never fetched, same host) only after the pause.
    let calm = source_until(&serve, "calm", "a next run after the pause", |s| {
        time_of(&s["next_run"]).is_some_and(|t| (t - started).num_seconds() >= 590)
    });
    assert!(calm["last_fetch"].is_null(), "{calm}");
    assert_eq!(server.started("/tech-blog.atom"), 0);
}

/// Failures push the next run back by doubling delays from the schedule; a 304 ends it.
#[test]
fn failures_back_off_doubling_and_a_304_resets_them() {
    let server = FixtureServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (config, listen) = config_with_token(
        dir.path(),
        &[
            Source::new("flaky", "Flaky", &server.url("/tech-blog.atom"), "tech")
                .schedule("every 1m"),
        ],
    );
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    let ok = source_until(&serve, "flaky", "a first fetch", |s| {
        s["last_status"] == "ok" && !s["next_run"].is_null()
    });
    assert_eq!(ok["consecutive_failures"], 0);

    server.fail_with("/tech-blog.atom", 500);
    let mut waits = Vec::new();
    let mut next_run = ok["next_run"].clone();
    for failures in 1..=3 {
        refresh_now(&serve, "flaky");
        // The next run is saved just after the fetch is recorded: wait for both.
        let s = source_until(&serve, "flaky", "a failed fetch", |s| {
            s["consecutive_failures"] == failures && s["next_run"] != next_run
        });
        waits.push(seconds_between(&s["last_fetch"], &s["next_run"]));
        next_run = s["next_run"].clone();
    }
    // 2 × 60 s, 4 × 60 s, 8 × 60 s (timestamps are whole seconds).
    for (wait, want) in waits.iter().zip([120, 240, 480]) {
        assert!(
            (want - 1..=want + 1).contains(wait),
            "backoff waits {waits:?}"
        );
    }

    server.recover("/tech-blog.atom");
    refresh_now(&serve, "flaky");
    let s = source_until(&serve, "flaky", "a 304", |s| {
        s["last_status"] == "not modified" && s["next_run"] != next_run
    });
    assert_eq!(s["consecutive_failures"], 0, "{s}");
    let wait = seconds_between(&s["last_fetch"], &s["next_run"]);
    assert!(
        (53..=67).contains(&wait),
        "after a 304 the schedule (60 s ± 10%) applies: {wait}"
    );
}

/// SIGHUP with a source added to the file: the new source is fetched by the same process.
#[test]
fn sighup_adds_a_source_without_a_restart() {
    let server = FixtureServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let first = Source::new("first", "First", &server.url("/tech-blog.atom"), "tech");
    let (config, listen) = config_with_token(dir.path(), std::slice::from_ref(&first));
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    let pid = serve.pid();
    source_until(&serve, "first", "a first fetch", |s| {
        s["last_status"] == "ok"
    });

    let second = Source::new(
        "second",
        "Second",
        &server.url("/caixin-mixed.json"),
        "金融",
    );
    let text = config_text(listen, "tributary.db", &[first, second]).replacen(
        "[server]\n",
        &format!("[server]\nadmin_token = \"{TOKEN}\"\n"),
        1,
    );
    fs::write(&config, text).expect("rewriting the config");
    signal(&serve, "HUP");
    source_until(&serve, "second", "the added source fetched", |s| {
        s["last_status"] == "ok"
    });
    assert_eq!(serve.pid(), pid);
    assert!(serve.is_running(), "the daemon exited\n{}", serve.logs());

    // An invalid file is refused and the running configuration stays.
    fs::write(&config, "[[sources]]\nid = \"Bad Id\"\n").expect("breaking the config");
    signal(&serve, "HUP");
    assert!(
        serve.log_within("reload rejected", Duration::from_secs(10)),
        "no rejection logged\n{}",
        serve.logs()
    );
    assert_eq!(http_get(&serve.url("/sources/second.json")).status, 200);
}

/// SIGTERM while a fetch is in flight: the fetch finishes, the daemon exits 0 within its grace
/// period, and the database is whole with everything committed before the signal.
#[test]
fn sigterm_during_a_slow_fetch_exits_cleanly() {
    let server = FixtureServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    server.set("/slow.json", fixture_bytes("caixin-mixed.json"));
    let (config, listen) = config_with_token(
        dir.path(),
        &[
            Source::new("fast", "Fast", &server.url("/tech-blog.atom"), "tech"),
            Source::new("slow", "Slow", &server.url("/slow.json"), "金融"),
        ],
    );
    // Entries committed before the daemon starts.
    let (code, stdout, stderr) = run_fetch(&config, &["fast"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    server.set_delay("/slow.json", Duration::from_secs(3));
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    assert!(
        server.wait_started("/slow.json", 1, Duration::from_secs(20)),
        "the slow fetch never started\n{}",
        serve.logs()
    );
    let signalled = Instant::now();
    signal(&serve, "TERM");
    let status = serve.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "exit status\n{}", serve.logs());
    assert!(
        signalled.elapsed() < Duration::from_secs(12),
        "took {:?}",
        signalled.elapsed()
    );

    if !on_postgres() {
        // SQLite's check of its own file (PostgreSQL's files are its server's to check).
        assert_eq!(store_rows(&config, "PRAGMA integrity_check"), [["ok"]]);
    }
    let count = |source: &str| -> i64 {
        store_count(
            &config,
            &format!("SELECT COUNT(*) FROM entry_sources WHERE source_id = '{source}'"),
        )
    };
    assert_eq!(count("fast"), 3, "entries committed before the signal");
    assert_eq!(
        count("slow"),
        3,
        "the in-flight fetch finished within the grace period"
    );
}

/// A permanent redirect moves the source: later fetches go straight to the new URL (and a
/// temporary one does not). A 410 stops fetching the source, with the reason shown.
#[test]
fn permanent_redirects_move_the_source_and_410_disables_it() {
    let server = FixtureServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    server.redirect("/old.atom", 301, "/tech-blog.atom");
    server.redirect("/hop.json", 302, "/caixin-mixed.json");
    server.fail_with("/gone.xml", 410);
    let (config, listen) = config_with_token(
        dir.path(),
        &[
            Source::new("moved", "Moved", &server.url("/old.atom"), "tech"),
            Source::new("hop", "Hop", &server.url("/hop.json"), "金融"),
            Source::new("gone", "Gone", &server.url("/gone.xml"), "tech"),
        ],
    );
    for _ in 0..2 {
        let (code, stdout, stderr) = run_fetch(&config, &["moved", "hop"]);
        assert_eq!(code, 0, "{stdout}\n{stderr}");
    }
    assert_eq!(
        server.started("/old.atom"),
        1,
        "the moved feed's old URL was asked again"
    );
    assert_eq!(server.started("/tech-blog.atom"), 2);
    assert_eq!(
        server.started("/hop.json"),
        2,
        "a temporary redirect is followed each time"
    );

    let (code, stdout, _) = run_fetch(&config, &["gone"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("410"), "{stdout}");
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    let gone = source_until(&serve, "gone", "disabled", |s| {
        !s["disabled_reason"].is_null()
    });
    assert!(
        gone["disabled_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("410"),
        "{gone}"
    );
    // The daemon does not ask a disabled source again: it says so when it starts.
    let before = server.started("/gone.xml");
    assert!(
        serve.log_within("source disabled", Duration::from_secs(10)),
        "no 'disabled' line\n{}",
        serve.logs()
    );
    assert_eq!(
        server.started("/gone.xml"),
        before,
        "a gone source was fetched again"
    );
}
