//! `tributary serve`: the listener (bound here, or passed in by socket activation), the
//! signals (SIGHUP reloads, SIGTERM and Ctrl-C stop), and the config file watched for changes
//! (`add`, `remove`, the console's forms, an editor), each turned into a call on the daemon.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;
use crate::daemon::Daemon;
use crate::notify;
use crate::store::Store;

pub(super) async fn serve(config: Config, store: Arc<Store>) -> anyhow::Result<ExitCode> {
    let listener = listener(&config).await?;
    let listen = listener
        .local_addr()
        .context("reading the listener's address")?;
    tracing::info!(
        listen = %listen,
        sources = config.sources.iter().filter(|s| s.enabled).count(),
        database = %config.storage_name(),
        "tributary started"
    );
    let daemon = Arc::new(Daemon::new(config, store));
    // systemd (Type=notify): the store is open and the listener bound. systemd may reload or
    // stop the service as soon as it is ready, so SIGHUP and SIGTERM get their handlers first
    // (tokio keeps a signal handled from its first registration on).
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        for kind in [SignalKind::hangup(), SignalKind::terminate()] {
            let _ = signal(kind);
        }
    }
    let stopper = daemon.clone();
    tokio::spawn(async move {
        wait_for_stop_signal().await;
        tracing::info!("stop signal received; finishing in-flight work");
        notify::stopping();
        stopper.stop();
    });
    tokio::spawn(reload_on_sighup(daemon.clone()));
    tokio::spawn(reload_on_change(daemon.clone()));
    notify::ready();
    daemon.run(listener).await.context("HTTP server failed")?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The listening socket: the one passed in by socket activation (`LISTEN_FDS`: a systemd
/// `.socket` unit, or a test that bound it first and so owns the port from the start), else
/// `[server] listen` bound here.
async fn listener(config: &Config) -> anyhow::Result<tokio::net::TcpListener> {
    let passed = listenfd::ListenFd::from_env()
        .take_tcp_listener(0)
        .context("LISTEN_FDS: the passed descriptor 3 is not a listening TCP socket")?;
    if let Some(std_listener) = passed {
        std_listener
            .set_nonblocking(true)
            .context("LISTEN_FDS: cannot make the passed socket non-blocking")?;
        let listener = tokio::net::TcpListener::from_std(std_listener)
            .context("LISTEN_FDS: cannot use the passed socket")?;
        tracing::info!(
            "listening on the socket passed in (LISTEN_FDS); [server] listen = {} is not bound",
            config.server.listen
        );
        return Ok(listener);
    }
    tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))
}

/// How often the config file is read to see whether it changed.
const CONFIG_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads the config file again and applies it. A valid one replaces the running config (the
/// scheduler starts, stops and restarts sources to match); an invalid one is logged and the
/// running config stays.
async fn reload(daemon: &Daemon) {
    notify::reloading();
    match Config::load(&daemon.config().path) {
        Ok(new) => {
            if let Err(e) = daemon.reload(new).await {
                tracing::error!(error = %e, "reload failed");
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "reload rejected; the running configuration stays");
        }
    }
    notify::ready();
    notify::send_status(daemon.store()).await;
}

/// SIGHUP: read the config file again.
async fn reload_on_sighup(daemon: Arc<Daemon>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload by restarting");
            return;
        };
        while hup.recv().await.is_some() {
            reload(&daemon).await;
        }
    }
    #[cfg(not(unix))]
    let _ = daemon;
}

/// The config file changed (`tributary add`, `remove`, `enable`, `disable`, an editor, or the
/// console, which also says so at once): reload. Its bytes are compared, not its time stamp,
/// so a rewrite with the same text changes nothing.
async fn reload_on_change(daemon: Arc<Daemon>) {
    let path = daemon.config().path.clone();
    let digest = |bytes: Option<Vec<u8>>| bytes.map(|b| blake3::hash(&b));
    let mut last = digest(std::fs::read(&path).ok());
    let mut poll = tokio::time::interval(CONFIG_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let written = daemon.config_written();
    loop {
        tokio::select! {
            _ = poll.tick() => {}
            () = written.notified() => {}
        }
        let now = digest(tokio::fs::read(&path).await.ok());
        if now.is_none() || now == last {
            continue;
        }
        last = now;
        tracing::info!(config = %path.display(), "the config file changed; reloading");
        reload(&daemon).await;
    }
}

async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
