//! The PostgreSQL store against a real server: the throwaway cluster `.ci/run` starts (its
//! URL in `$TRIBUTARY_POSTGRES_URL`), a database of its own per test. Schema versions, and
//! the leases by which instances share the sources: each due source taken by one instance
//! only, the per-host bound held across instances, a crashed instance's sources taken over
//! when its leases expire, a host's Retry-After seen by all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
use tributary::store::pg::{Lease, LeaseRequest, Pg, PgError, SCHEMA_VERSION};
use tributary::store::Store;

use crate::common::{pg_database as database, pg_sql as sql};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0)
        .single()
        .expect("a date")
}

fn ask(holder: &str, now: DateTime<Utc>, max: usize) -> LeaseRequest {
    LeaseRequest {
        holder: holder.into(),
        now,
        ttl: Duration::minutes(5),
        max,
        per_host: 2,
    }
}

/// A PostgreSQL store at `url` whose sources are these (id, host) pairs, as a config names
/// them.
fn store_with(url: &str, sources: &[(String, String)]) -> Store {
    let store = Store::open_pg(url, 2).expect("connect");
    sync(&store, sources);
    store
}

fn sync(store: &Store, sources: &[(String, String)]) {
    let mut toml = String::new();
    for (id, host) in sources {
        toml.push_str(&format!(
            "[[sources]]\nid = \"{id}\"\nname = \"{id}\"\ncategory = \"news\"\nurl = \"http://{host}/{id}.xml\"\n"
        ));
    }
    let config = tributary::config::Config::from_toml(std::path::Path::new("t.toml"), &toml)
        .expect("config");
    store.sync_sources(&config.sources).expect("sources");
}

fn ids(leases: &[Lease]) -> Vec<&str> {
    let mut ids: Vec<&str> = leases.iter().map(|l| l.source_id.as_str()).collect();
    ids.sort();
    ids
}

#[test]
fn the_schema_is_migrated_once_and_a_newer_one_is_refused() {
    let url = database();
    let first = Pg::connect(&url, 2).expect("first connect migrates");
    assert_eq!(first.schema_version().expect("version"), SCHEMA_VERSION);
    // Several instances starting at once: one migrates, the others find it done.
    let others: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || Pg::connect(&url, 1).map(|pg| pg.schema_version()))
        })
        .collect();
    for other in others {
        let version = other
            .join()
            .expect("thread")
            .expect("connect")
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
    }
    sql(&url, "UPDATE schema_version SET version = 99");
    match Pg::connect(&url, 1) {
        Err(e @ PgError::TooNew { found: 99, .. }) => {
            assert!(e.to_string().contains("upgrade tributary"), "{e}")
        }
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
    let bad = Pg::connect("postgres://nobody@127.0.0.1:1/none?connect_timeout=2", 1);
    assert!(
        matches!(bad, Err(PgError::Sql(_) | PgError::Pool(_))),
        "an unreachable server is an error"
    );
}

/// 300 sources on 10 hosts, three instances (each its own pool) taking leases in a loop,
/// fetching (holding the lease a moment) and releasing with a next run an hour on: every
/// source is taken exactly once in the cycle and no host ever has more than two live leases.
#[test]
fn three_instances_take_every_due_source_once_and_hold_the_per_host_bound() {
    let url = database();
    let sources: Vec<(String, String)> = (0..300)
        .map(|i| (format!("s{i:03}"), format!("h{}.example", i % 10)))
        .collect();
    let setup = store_with(&url, &sources);
    let taken: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let instances: Vec<_> = (0..3)
        .map(|n| {
            let (url, taken) = (url.clone(), taken.clone());
            std::thread::spawn(move || {
                let pg = Store::open_pg(&url, 2).expect("connect");
                let me = format!("instance-{n}");
                // An instance that failed leaves its leases live: the others would wait on
                // them for ever.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
                loop {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the cycle did not end: leases left live"
                    );
                    let leases = pg.lease(&ask(&me, t0(), 8)).expect("lease");
                    let live = pg.live_leases_per_host(t0()).expect("live");
                    assert!(
                        live.iter().all(|(_, n)| *n <= 2),
                        "per-host bound: {live:?}"
                    );
                    if leases.is_empty() {
                        // Nothing due that is not leased: done once no lease is live.
                        if live.is_empty() {
                            return;
                        }
                        std::thread::yield_now();
                        continue;
                    }
                    for lease in leases {
                        let before = taken
                            .lock()
                            .expect("lock")
                            .insert(lease.source_id.clone(), me.clone());
                        assert_eq!(before, None, "{} taken twice", lease.source_id);
                        let next = t0() + Duration::hours(1);
                        assert!(pg.release(&me, &lease.source_id, next).expect("release"));
                    }
                }
            })
        })
        .collect();
    for instance in instances {
        instance.join().expect("an instance failed");
    }
    let taken = taken.lock().expect("lock");
    assert_eq!(taken.len(), 300, "every source taken");
    let mut per_instance: HashMap<&str, usize> = HashMap::new();
    for holder in taken.values() {
        *per_instance.entry(holder).or_default() += 1;
    }
    assert!(
        per_instance.len() >= 2,
        "the instances shared the work: {per_instance:?}"
    );
    // Released with the next run: nothing is due now, all is an hour on.
    assert!(setup
        .lease(&ask("late", t0(), 100))
        .expect("lease")
        .is_empty());
    let next = setup
        .lease(&ask("late", t0() + Duration::hours(1), 1000))
        .expect("lease");
    assert_eq!(next.len(), 20, "two per host on ten hosts");
}

#[test]
fn a_crashed_instances_leases_are_taken_over_when_they_expire() {
    let url = database();
    let sources: Vec<(String, String)> = (0..6)
        .map(|i| (format!("s{i}"), format!("h{i}.example")))
        .collect();
    let pg = store_with(&url, &sources);
    let crashed = pg.lease(&ask("a", t0(), 4)).expect("lease");
    assert_eq!(crashed.len(), 4);
    // "a" is gone without releasing. Before its leases expire, "b" gets only the others.
    let b = pg
        .lease(&ask("b", t0() + Duration::minutes(1), 10))
        .expect("lease");
    assert_eq!(b.len(), 2);
    assert!(b.iter().all(|l| !crashed.contains(l)));
    for l in &b {
        assert!(pg
            .release("b", &l.source_id, t0() + Duration::hours(1))
            .expect("release"));
    }
    // "b" renews nothing of "a"'s; after the expiry it takes them over.
    assert_eq!(
        pg.renew("b", t0() + Duration::minutes(2), Duration::minutes(5))
            .expect("renew"),
        0
    );
    let later = t0() + Duration::minutes(6);
    let taken_over = pg.lease(&ask("b", later, 10)).expect("lease");
    assert_eq!(ids(&taken_over), ids(&crashed));
    // "a" comes back and releases late: the sources stay "b"'s.
    for l in &crashed {
        assert!(!pg.release("a", &l.source_id, later).expect("release"));
    }
    assert_eq!(
        pg.renew("b", later, Duration::minutes(5)).expect("renew"),
        4
    );
    assert!(pg
        .lease(&ask("c", later + Duration::minutes(4), 10))
        .expect("lease")
        .is_empty());
}

#[test]
fn a_hosts_retry_after_holds_for_every_instance() {
    let url = database();
    let sources = vec![
        ("a1".to_string(), "slow.example".to_string()),
        ("a2".to_string(), "slow.example".to_string()),
        ("b1".to_string(), "fast.example".to_string()),
    ];
    let pg = store_with(&url, &sources);
    pg.defer_host("slow.example", t0() + Duration::minutes(10), "Retry-After")
        .expect("defer");
    // An earlier Retry-After does not shorten a later one.
    pg.defer_host("slow.example", t0() + Duration::minutes(1), "Retry-After")
        .expect("defer");
    let now = pg
        .lease(&ask("x", t0() + Duration::minutes(5), 10))
        .expect("lease");
    assert_eq!(ids(&now), ["b1"]);
    assert!(pg
        .release("x", "b1", t0() + Duration::hours(1))
        .expect("release"));
    let after = pg
        .lease(&ask("y", t0() + Duration::minutes(11), 10))
        .expect("lease");
    assert_eq!(ids(&after), ["a1", "a2"]);
    // A source taken out of the config is no longer leased; one added is due at once.
    let sources = vec![
        ("a1".to_string(), "slow.example".to_string()),
        ("c1".to_string(), "new.example".to_string()),
    ];
    sync(&pg, &sources);
    let added = pg
        .lease(&ask("z", t0() + Duration::minutes(12), 10))
        .expect("lease");
    assert_eq!(ids(&added), ["c1"]);
}

/// The store's calls block like SQLite's, from any thread: also from a task of the daemon's
/// own runtime (as `spawn_blocking` runs them), and the pool can be dropped there.
#[test]
fn calls_work_and_the_pool_drops_inside_another_runtime() {
    let url = database();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let version = runtime.block_on(async move {
        let pg = Pg::connect(&url, 1).expect("connect");
        let version = pg.schema_version().expect("version");
        drop(pg);
        version
    });
    assert_eq!(version, SCHEMA_VERSION);
}

/// A write noted by one instance moves every instance's generation (what their feed caches
/// compare): through the notification alone (the other reads the counter only hourly here),
/// and again after the listening connection was ended by the server (made again, the missed
/// writes read back).
#[test]
fn a_write_by_one_instance_moves_the_others_generation() {
    let url = database();
    let a = Pg::connect(&url, 1).expect("connect");
    let b = Pg::connect_polling(&url, 1, std::time::Duration::from_secs(3600)).expect("connect");
    let wait = std::time::Duration::from_secs(30);
    let pid = b.listener_pid(wait).expect("b listens");
    let before = b.generation();
    let first = a.note_write().expect("write");
    assert!(first > before);
    assert_eq!(
        b.wait_for_generation(before, wait),
        first,
        "heard through NOTIFY"
    );
    sql(&url, &format!("SELECT pg_terminate_backend({pid})"));
    let second = a.note_write().expect("write");
    let third = a.note_write().expect("write");
    assert!(third > second && second > first);
    let heard = b.wait_for_generation(second, wait);
    assert_eq!(
        heard, third,
        "caught up after the listener's connection was ended"
    );
    assert!(
        b.listener_pid(wait).is_some_and(|p| p != pid),
        "a new listening connection"
    );
    assert!(
        a.wait_for_generation(second, wait) >= third,
        "the writer hears itself too"
    );
}

/// The daemon's per-source claim (`Store::claim`): one instance at a time has a source, a
/// host's bound holds across instances, a planned next run or a paused host makes the others
/// wait (a forced fetch does not wait for the next run), and a given-back claim is free.
#[test]
fn a_claimed_source_is_one_instances_and_the_hosts_bound_holds_across_them() {
    use tributary::store::pg::{Claim, ClaimRequest};
    let url = database();
    let sources: Vec<(String, String)> = (0..3)
        .map(|i| (format!("s{i}"), "one.example".to_string()))
        .collect();
    let a = store_with(&url, &sources);
    let b = Store::open_pg(&url, 2).expect("connect");
    let ask = |id: &'static str, now: DateTime<Utc>, forced: bool| ClaimRequest {
        source_id: id,
        now,
        ttl: Duration::minutes(10),
        per_host: 2,
        forced,
    };
    assert!(a.is_shared());
    assert_eq!(
        a.claim(&ask("s0", t0(), false)).expect("claim"),
        Claim::Taken
    );
    assert_eq!(
        b.claim(&ask("s0", t0(), false)).expect("claim"),
        Claim::Wait(t0() + Duration::minutes(10)),
        "another instance has it until its lease runs out"
    );
    assert_eq!(
        b.claim(&ask("s1", t0(), false)).expect("claim"),
        Claim::Taken
    );
    // Two live on the host: the third waits, whoever asks.
    assert_eq!(
        a.claim(&ask("s2", t0(), false)).expect("claim"),
        Claim::Wait(t0() + Duration::seconds(1))
    );
    // A fetch done: its next run stored, its claim given back.
    a.set_next_run("s0", t0() + Duration::hours(1))
        .expect("next run");
    a.unclaim("s0").expect("unclaim");
    assert_eq!(
        b.claim(&ask("s0", t0(), false)).expect("claim"),
        Claim::Wait(t0() + Duration::hours(1)),
        "fetched already: wait for the planned run"
    );
    assert_eq!(
        a.claim(&ask("s2", t0(), false)).expect("claim"),
        Claim::Taken
    );
    b.unclaim("s1").expect("unclaim");
    a.unclaim("s2").expect("unclaim");
    assert_eq!(
        b.claim(&ask("s0", t0(), true)).expect("claim"),
        Claim::Taken,
        "fetch now does not wait for the next run"
    );
    b.unclaim("s0").expect("unclaim");
    a.defer_host("one.example", t0() + Duration::minutes(3), "Retry-After")
        .expect("defer");
    assert_eq!(
        b.claim(&ask("s1", t0(), false)).expect("claim"),
        Claim::Wait(t0() + Duration::minutes(3))
    );
    // A crashed holder's claim runs out.
    assert_eq!(
        b.claim(&ask("s1", t0() + Duration::minutes(4), false))
            .expect("claim"),
        Claim::Taken
    );
    assert_eq!(
        a.claim(&ask("s1", t0() + Duration::minutes(15), false))
            .expect("claim"),
        Claim::Taken
    );
}
