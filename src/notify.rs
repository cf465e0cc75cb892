//! systemd's service notification protocol (`sd_notify(3)`), spoken directly, and the two
//! loops `serve` runs to feed it: the watchdog and the status line.
//!
//! The protocol is one datagram per message, `KEY=value` lines, sent to the `AF_UNIX` socket
//! named by `$NOTIFY_SOCKET` (a path, or an abstract name when it starts with `@`). Without that
//! variable (not under systemd, or not `Type=notify`) every function here does nothing. A
//! message that cannot be sent is logged at debug level and otherwise ignored: supervision
//! must never take the daemon down.
//!
//! What health means is not decided here: the watchdog asks [`Store::ping`] and the
//! scheduler's heartbeat, the same checks as `/healthz`.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::Duration;

use crate::schedule::Scheduler;
use crate::store::Store;

/// How often the status line (`systemctl status`) is refreshed.
pub const STATUS_EVERY: Duration = Duration::from_secs(60);

/// `READY=1`: start-up (or a reload) is complete.
pub fn ready() {
    send("READY=1");
}

/// `RELOADING=1`, with the `MONOTONIC_USEC=` systemd 253 and later use to match the reload.
/// [`ready`] ends the reload, whether the new configuration was taken or refused.
pub fn reloading() {
    match monotonic_usec() {
        Some(usec) => send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}")),
        None => send("RELOADING=1"),
    }
}

/// `STOPPING=1`: shutdown has begun.
pub fn stopping() {
    send("STOPPING=1");
}

/// `STATUS=`: one line of free text shown by `systemctl status`.
pub fn status(text: &str) {
    let line = text.replace(['\n', '\r'], " ");
    send(&format!("STATUS={line}"));
}

/// `WATCHDOG=1`: the daemon is healthy.
pub fn watchdog() {
    send("WATCHDOG=1");
}

/// The watchdog timeout systemd expects pings within (`WatchdogSec=`), if it watches this
/// process: `$WATCHDOG_USEC`, unless `$WATCHDOG_PID` names another process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok()?;
    let pid = std::env::var("WATCHDOG_PID").ok();
    parse_watchdog(&usec, pid.as_deref(), std::process::id())
}

fn parse_watchdog(usec: &str, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != own_pid {
            return None;
        }
    }
    match usec.trim().parse::<u64>() {
        Ok(0) | Err(_) => None,
        Ok(usec) => Some(Duration::from_micros(usec)),
    }
}

/// The status line: sources in the config, entries they carry, and how many are failing.
/// Entries are counted once per source that carries them (an entry several sources share
/// counts for each).
pub fn status_line(sources: &[crate::model::SourceStatus]) -> String {
    let active: Vec<_> = sources.iter().filter(|s| s.active).collect();
    let entries: u64 = sources.iter().map(|s| s.entry_count).sum();
    let failing = active.iter().filter(|s| s.consecutive_failures > 0).count();
    let mut line = format!(
        "{} source{}, {} entr{}",
        active.len(),
        if active.len() == 1 { "" } else { "s" },
        entries,
        if entries == 1 { "y" } else { "ies" }
    );
    if failing > 0 {
        line.push_str(&format!(", {failing} failing"));
    }
    line
}

/// Sends the status line once, read from the store. Does nothing outside systemd.
pub async fn send_status(store: &Arc<Store>) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    match store.call(|s| s.source_statuses()).await {
        Ok(sources) => status(&status_line(&sources)),
        Err(e) => tracing::debug!(error = %e, "status line: cannot read the store"),
    }
}

/// Refreshes the status line every [`STATUS_EVERY`], forever. Does nothing outside systemd.
pub async fn status_loop(store: Arc<Store>) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let mut tick = tokio::time::interval(STATUS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        send_status(&store).await;
    }
}

/// When systemd watches this process, sends `WATCHDOG=1` every half timeout, but only after
/// the store answered a ping and while the scheduler's loop turns. A stuck store or a dead
/// scheduler thus gets the daemon restarted. Returns at once when there is no watchdog.
pub async fn watchdog_loop(store: Arc<Store>, scheduler: Arc<Scheduler>) {
    let Some(timeout) = watchdog_interval() else {
        return;
    };
    let every = timeout / 2;
    // The first ping after one period: the scheduler has turned by then.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let store_ok = match store.call(|s| s.ping()).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "store does not answer; withholding the watchdog ping");
                false
            }
        };
        let scheduler_ok = scheduler.scheduler_alive(chrono::Utc::now());
        if !scheduler_ok {
            tracing::warn!("scheduler not running; withholding the watchdog ping");
        }
        if store_ok && scheduler_ok {
            watchdog();
        }
    }
}

fn send(message: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send_to(&socket, message) {
        tracing::debug!(
            error = %e,
            socket = %socket.to_string_lossy(),
            message,
            "cannot notify systemd"
        );
    }
}

#[cfg(unix)]
fn send_to(socket: &OsStr, message: &str) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixDatagram;

    let name = socket.as_bytes();
    let sock = UnixDatagram::unbound()?;
    let sent = match name.first() {
        Some(b'/') => sock.send_to(message.as_bytes(), socket)?,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Some(b'@') => {
            #[cfg(target_os = "android")]
            use std::os::android::net::SocketAddrExt;
            #[cfg(target_os = "linux")]
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name[1..])?;
            sock.send_to_addr(message.as_bytes(), &addr)?
        }
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "NOTIFY_SOCKET is neither an absolute path nor an abstract socket name",
            ))
        }
    };
    if sent == message.len() {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::WriteZero, "message truncated"))
    }
}

#[cfg(not(unix))]
fn send_to(_socket: &OsStr, _message: &str) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "no AF_UNIX datagrams on this platform",
    ))
}

/// `CLOCK_MONOTONIC` in microseconds, the clock systemd compares `MONOTONIC_USEC=` with.
#[cfg(unix)]
fn monotonic_usec() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime writes only into it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return None;
    }
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u64::try_from(ts.tv_nsec).ok()?;
    Some(secs * 1_000_000 + nanos / 1_000)
}

#[cfg(not(unix))]
fn monotonic_usec() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SourceStatus;

    #[test]
    fn watchdog_interval_from_the_environment_values() {
        assert_eq!(
            parse_watchdog("30000000", None, 42),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_watchdog("2000000", Some("42"), 42),
            Some(Duration::from_secs(2))
        );
        // Meant for another process (a parent that exec'd us without clearing it).
        assert_eq!(parse_watchdog("2000000", Some("41"), 42), None);
        assert_eq!(parse_watchdog("2000000", Some("junk"), 42), None);
        assert_eq!(parse_watchdog("0", None, 42), None);
        assert_eq!(parse_watchdog("", None, 42), None);
        assert_eq!(parse_watchdog("-5", None, 42), None);
    }

    #[test]
    fn status_line_counts_active_sources_and_their_entries() {
        let source = |id: &str, active: bool, entries: u64, failures: u32| SourceStatus {
            id: id.into(),
            active,
            entry_count: entries,
            consecutive_failures: failures,
            ..SourceStatus::default()
        };
        assert_eq!(status_line(&[]), "0 sources, 0 entries");
        assert_eq!(status_line(&[source("a", true, 1, 0)]), "1 source, 1 entry");
        assert_eq!(
            status_line(&[
                source("a", true, 10, 0),
                source("b", true, 5, 3),
                // Left the config: its entries are kept and still served.
                source("c", false, 2, 7),
            ]),
            "2 sources, 17 entries, 1 failing"
        );
    }

    #[cfg(unix)]
    #[test]
    fn sends_to_a_path_socket() {
        use std::os::unix::net::UnixDatagram;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        send_to(path.as_os_str(), "READY=1\nSTATUS=hello").unwrap();
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=hello");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let name = format!("tributary-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        send_to(OsStr::new(&format!("@{name}")), "WATCHDOG=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }

    #[test]
    fn refuses_a_relative_socket_name() {
        assert!(send_to(OsStr::new("notify.sock"), "READY=1").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_usec().unwrap();
        let b = monotonic_usec().unwrap();
        assert!(a > 0 && b >= a);
    }
}
