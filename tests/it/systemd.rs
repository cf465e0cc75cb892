//! The daemon under systemd's notify protocol (`Type=notify`, `WatchdogSec=`): the real binary
//! runs `serve` with `$NOTIFY_SOCKET` pointing at a datagram socket the test reads, the way
//! systemd would. READY=1 at start, STATUS= with counts, WATCHDOG=1 on its interval,
//! RELOADING=1 then READY=1 around SIGHUP (taken or refused), STOPPING=1 and exit 0 on SIGTERM.

use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::common::*;

/// How long one expected message may take. The watchdog interval is 2 s, fetches of the
/// fixture server are milliseconds; this is slack for a loaded CI machine.
const MESSAGE_DEADLINE: Duration = Duration::from_secs(20);
/// How long SIGTERM may take to end the daemon (in-flight work gets 10 s).
const EXIT_DEADLINE: Duration = Duration::from_secs(30);

/// The test's side of `$NOTIFY_SOCKET`: every message received, in order.
struct NotifySocket {
    sock: UnixDatagram,
    seen: Vec<String>,
}

impl NotifySocket {
    fn bind(path: &std::path::Path) -> NotifySocket {
        let sock = UnixDatagram::bind(path).expect("binding the notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("setting the notify socket's read timeout");
        NotifySocket {
            sock,
            seen: Vec::new(),
        }
    }

    /// Reads messages until one satisfies `want`, and returns it. Messages read on the way
    /// are skipped (kept for failure output). Panics, with everything seen and the daemon's
    /// logs, if the daemon exits or `MESSAGE_DEADLINE` passes first.
    fn expect(
        &mut self,
        daemon: &mut ServeGuard,
        what: &str,
        want: impl Fn(&str) -> bool,
    ) -> String {
        let start = Instant::now();
        let mut buf = vec![0u8; 4096];
        loop {
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    self.seen.push(msg.clone());
                    if want(&msg) {
                        return msg;
                    }
                    continue;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("reading the notify socket: {e}"),
            }
            if !daemon.is_running() {
                panic!(
                    "daemon exited while waiting for {what}; messages so far: {:?}\n{}",
                    self.seen,
                    daemon.logs()
                );
            }
            if start.elapsed() > MESSAGE_DEADLINE {
                panic!(
                    "no {what} within {MESSAGE_DEADLINE:?}; messages so far: {:?}\n{}",
                    self.seen,
                    daemon.logs()
                );
            }
        }
    }
}

impl NotifySocket {
    /// Reads messages for `window` (checking for an absence needs a time window).
    fn collect_for(&mut self, window: Duration) {
        let start = Instant::now();
        let mut buf = vec![0u8; 4096];
        while start.elapsed() < window {
            if let Ok(n) = self.sock.recv(&mut buf) {
                self.seen
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }

    /// Reads whatever is still queued (after the daemon exited).
    fn drain(&mut self) {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = self.sock.recv(&mut buf) {
            self.seen
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

/// Whether `msg` has exactly this line (messages are `KEY=value` lines).
fn has_line(msg: &str, line: &str) -> bool {
    msg.lines().any(|l| l == line)
}

fn status_of(msg: &str) -> Option<&str> {
    msg.lines().find_map(|l| l.strip_prefix("STATUS="))
}

fn signal(daemon: &ServeGuard, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(daemon.pid()).expect("pid fits pid_t");
    // SAFETY: kill(2) with a child's pid, which is not reaped before the guard drops.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

#[test]
fn serve_speaks_the_systemd_notify_protocol() {
    let dir = tempfile::tempdir().expect("temp folder");
    let server = FixtureServer::start();
    let listen = free_addr();
    let conf_dir = dir.path().join("conf");
    let all = [CS_ID, CAIXIN_ID, TECH_ID].map(|id| Source::fixture(&server, id));
    let config = write_config(&conf_dir, listen, &all);
    // Entries in the store before the daemon starts, so the counts are known exactly.
    let (code, stdout, stderr) = run_fetch(&config, &[]);
    assert_eq!(
        code, 0,
        "tributary fetch\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let entries = ALL_NEWEST_FIRST.len();

    let socket_path = dir.path().join("notify.sock");
    let mut notify = NotifySocket::bind(&socket_path);
    let mut daemon = spawn_serve_env(
        &config,
        listen,
        &[
            ("NOTIFY_SOCKET", socket_path.as_os_str()),
            ("WATCHDOG_USEC", "2000000".as_ref()),
        ],
        &["WATCHDOG_PID"],
    );

    // Start-up: READY=1 once the listener is bound (so /healthz answers), then the counts.
    notify.expect(&mut daemon, "READY=1", |m| has_line(m, "READY=1"));
    daemon.wait_healthz();
    let msg = notify.expect(&mut daemon, "STATUS=", |m| status_of(m).is_some());
    assert_eq!(
        status_of(&msg),
        Some(format!("3 sources, {entries} entries").as_str()),
        "status line at start"
    );

    // The watchdog: 2 s timeout, so a ping every second while the store answers.
    notify.expect(&mut daemon, "WATCHDOG=1", |m| has_line(m, "WATCHDOG=1"));
    notify.expect(&mut daemon, "a second WATCHDOG=1", |m| {
        has_line(m, "WATCHDOG=1")
    });

    // SIGHUP with a valid config (one source fewer): RELOADING=1 with the monotonic time,
    // READY=1 once applied, and the new counts.
    write_config(&conf_dir, listen, &all[..2]);
    signal(&daemon, libc::SIGHUP);
    let msg = notify.expect(&mut daemon, "RELOADING=1", |m| has_line(m, "RELOADING=1"));
    let usec = msg
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC=: {msg:?}"));
    assert!(
        usec.parse::<u64>().is_ok_and(|u| u > 0),
        "MONOTONIC_USEC={usec}"
    );
    notify.expect(&mut daemon, "READY=1 after the reload", |m| {
        has_line(m, "READY=1")
    });
    let msg = notify.expect(&mut daemon, "STATUS= after the reload", |m| {
        status_of(m).is_some()
    });
    assert_eq!(
        status_of(&msg),
        Some(format!("2 sources, {entries} entries").as_str()),
        "status line after the reload (the dropped source's entries are kept)"
    );

    // SIGHUP with a broken config: refused, yet the reload still ends with READY=1.
    write_config_text(&conf_dir, "[server]\nlisten = 42\n");
    signal(&daemon, libc::SIGHUP);
    notify.expect(&mut daemon, "RELOADING=1 (broken config)", |m| {
        has_line(m, "RELOADING=1")
    });
    notify.expect(&mut daemon, "READY=1 after the refused reload", |m| {
        has_line(m, "READY=1")
    });
    // Still running on the old configuration, and still pinging the watchdog.
    notify.expect(&mut daemon, "WATCHDOG=1 after the refused reload", |m| {
        has_line(m, "WATCHDOG=1")
    });
    daemon.wait_healthz();

    // SIGTERM: STOPPING=1, then a clean exit.
    signal(&daemon, libc::SIGTERM);
    notify.expect(&mut daemon, "STOPPING=1", |m| has_line(m, "STOPPING=1"));
    let status = daemon.wait_exit(EXIT_DEADLINE);
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM\n{}",
        daemon.logs()
    );
    // A healthy daemon never withheld a ping (the first comes after the scheduler turned).
    assert!(
        !daemon.logs().contains("withholding the watchdog ping"),
        "{}",
        daemon.logs()
    );
}

#[test]
fn no_watchdog_pings_for_another_process() {
    // WATCHDOG_PID naming another process (a parent that exec'd us without clearing it):
    // the daemon must not ping, but still reports READY=1 and stops cleanly.
    let dir = tempfile::tempdir().expect("temp folder");
    let server = FixtureServer::start();
    let listen = free_addr();
    let config = write_config(
        &dir.path().join("conf"),
        listen,
        &[Source::fixture(&server, TECH_ID)],
    );
    let socket_path = dir.path().join("notify.sock");
    let mut notify = NotifySocket::bind(&socket_path);
    let mut daemon = spawn_serve_env(
        &config,
        listen,
        &[
            ("NOTIFY_SOCKET", socket_path.as_os_str()),
            ("WATCHDOG_USEC", "100000".as_ref()),
            ("WATCHDOG_PID", "1".as_ref()),
        ],
        &[],
    );
    notify.expect(&mut daemon, "READY=1", |m| has_line(m, "READY=1"));
    daemon.wait_healthz();
    // A 0.1 s watchdog would ping every 50 ms: a second without one shows there is none.
    notify.collect_for(Duration::from_secs(1));
    signal(&daemon, libc::SIGTERM);
    notify.expect(&mut daemon, "STOPPING=1", |m| has_line(m, "STOPPING=1"));
    let status = daemon.wait_exit(EXIT_DEADLINE);
    assert_eq!(status.code(), Some(0), "exit status\n{}", daemon.logs());
    notify.drain();
    assert!(
        !notify.seen.iter().any(|m| has_line(m, "WATCHDOG=1")),
        "WATCHDOG=1 sent although WATCHDOG_PID names another process: {:?}",
        notify.seen
    );
}

/// The backup unit's own command line, with the test's config and folder for the shipped
/// paths: it writes a checked copy named by the time, and keeps the seven newest.
#[test]
fn the_backup_units_command_takes_a_copy_and_keeps_the_newest_seven() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/tributary-backup.service"),
    )
    .expect("the unit");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart=/usr/local/bin/tributary "))
        .expect("ExecStart runs tributary");
    let fixtures = FixtureServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        free_addr(),
        &[Source::fixture(&fixtures, CS_ID)],
    );
    if backups_are_pg_dumps(&config) {
        return;
    }
    assert_eq!(run_fetch(&config, &[]).0, 0);
    let backups = dir.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    // Eight older copies, of which the two oldest are past the seven kept with the new one.
    let older: Vec<String> = (1..=8)
        .map(|day| format!("tributary-202001{day:02}T033000Z.db"))
        .collect();
    for name in &older {
        std::fs::write(backups.join(name), b"an older copy").unwrap();
    }
    let args: Vec<String> = exec
        .replace("/etc/tributary/tributary.toml", config.to_str().unwrap())
        .replace("/var/lib/tributary/backups", backups.to_str().unwrap())
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mut cmd = std::process::Command::new(bin());
    cmd.args(&args);
    let (code, out, err) = run_bounded(cmd, FETCH_DEADLINE);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("backed up 4 entries of 1 sources to "),
        "{out}"
    );
    let mut names: Vec<String> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 7, "{names:?}");
    assert_eq!(names[..6], older[2..]);
    let new = &names[6];
    assert!(
        new.starts_with("tributary-20") && new.ends_with("Z.db"),
        "{new}"
    );
    for gone in &older[..2] {
        assert!(out.contains(&format!(
            "removed the old copy {}",
            backups.join(gone).display()
        )));
    }
    let copy = rusqlite::Connection::open(backups.join(new)).unwrap();
    let entries: i64 = copy
        .query_row("SELECT COUNT(*) FROM entries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(entries, 4);
}
