//! The daemon: the scheduler and the HTTP server over one store, until it is told to stop.
//!
//! `tributary serve` runs it on the configured address and turns the process's signals into
//! calls (SIGHUP: [`Daemon::reload`], SIGTERM: [`Daemon::stop`]); tests run the same thing
//! in-process on a listener they bound. What must live as long as the process lives here and
//! is built once: the fetch limits (a reload resizes them, never replaces them), the
//! scheduler's handle, and the running configuration every part reads.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::fetch::Limits;
use crate::notify;
use crate::schedule::{self, Scheduler};
use crate::server::{self, AppState};
use crate::store::{PruneRequest, Store, StoreError};

/// Why a reload did not take: the running configuration stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("cannot update the sources in the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot update the sources in the store: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// How often the daemon prunes what retention lets go; the first pass comes
/// [`PRUNE_FIRST`] after the start, once the first fetches are in.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);
pub const PRUNE_FIRST: Duration = Duration::from_secs(120);

/// How long `stop` waits for fetches in flight before the daemon returns without them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct Daemon {
    store: Arc<Store>,
    configs: watch::Sender<Arc<Config>>,
    stop: watch::Sender<bool>,
    limits: Arc<Limits>,
    scheduler: Arc<Scheduler>,
    config_written: Arc<tokio::sync::Notify>,
}

impl Daemon {
    pub fn new(config: Config, store: Arc<Store>) -> Daemon {
        let limits = Limits::new(&config.fetch);
        Daemon {
            store,
            configs: watch::Sender::new(Arc::new(config)),
            stop: watch::Sender::new(false),
            limits,
            scheduler: Scheduler::new(),
            config_written: Default::default(),
        }
    }

    /// The scheduler's handle: its heartbeat, and a way to run a source now.
    pub fn scheduler(&self) -> &Arc<Scheduler> {
        &self.scheduler
    }

    /// The fetch limits every fetcher of the daemon counts against.
    pub fn limits(&self) -> &Arc<Limits> {
        &self.limits
    }

    /// Notified when the console has written the config file: whoever watches the file
    /// (`serve`) reloads at once instead of at its next look.
    pub fn config_written(&self) -> Arc<tokio::sync::Notify> {
        self.config_written.clone()
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The running configuration.
    pub fn config(&self) -> Arc<Config> {
        self.configs.borrow().clone()
    }

    /// Replaces the running configuration: the store learns the sources first, then the
    /// scheduler starts, stops and restarts sources to match. On error the running
    /// configuration stays.
    pub async fn reload(&self, new: Config) -> Result<(), ReloadError> {
        if new.server.listen != self.config().server.listen {
            tracing::warn!("[server] listen changed: takes effect at the next restart");
        }
        let sources = new.sources.clone();
        self.store.call(move |s| s.sync_sources(&sources)).await?;
        self.configs.send_replace(Arc::new(new));
        Ok(())
    }

    /// Asks the daemon to stop: the server stops accepting, fetches in flight finish (for at
    /// most [`SHUTDOWN_GRACE`]), and [`Daemon::run`] returns.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Schedules every source and serves `listener` until [`Daemon::stop`].
    ///
    /// The server starts once the scheduler has (or has given up), so its first `/healthz`
    /// already answers for both; requests that come earlier wait in the listener's backlog.
    pub async fn run(&self, listener: TcpListener) -> std::io::Result<()> {
        let mut scheduler = tokio::spawn(schedule::run(
            self.configs.subscribe(),
            self.store.clone(),
            self.limits.clone(),
            self.scheduler.clone(),
            self.stop.subscribe(),
        ));
        let mut scheduler_ended = None;
        tokio::select! {
            () = self.scheduler.started() => {}
            ended = &mut scheduler => scheduler_ended = Some(ended),
        }
        let mut background = JoinSet::new();
        background.spawn(notify::status_loop(self.store.clone()));
        background.spawn(retention_loop(self.configs.subscribe(), self.store.clone()));
        background.spawn(notify::watchdog_loop(
            self.store.clone(),
            self.scheduler.clone(),
        ));
        let config = self.config();
        let state = AppState {
            store: self.store.clone(),
            public_url: config.server.public_url.clone(),
            scheduler: self.scheduler.clone(),
            admin_token: config.server.admin_token.clone(),
            config: self.configs.subscribe(),
            cache: Default::default(),
            rules: Default::default(),
            config_written: self.config_written.clone(),
        };
        let mut stop = self.stop.subscribe();
        let served = server::serve(listener, state, async move {
            let _ = stop.wait_for(|stop| *stop).await;
        })
        .await;
        // The server returns on stop, or on failure: either way the scheduler stops too.
        self.stop();
        // In-flight fetches finish (their store writes are transactions: whole or not at all);
        // past the grace period the daemon returns without them.
        if scheduler_ended.is_none()
            && tokio::time::timeout(SHUTDOWN_GRACE, scheduler)
                .await
                .is_err()
        {
            tracing::warn!(
                "in-flight fetches did not finish within {SHUTDOWN_GRACE:?}; stopping anyway"
            );
        }
        background.shutdown().await;
        served
    }
}

/// Prunes on [`PRUNE_EVERY`], with the running config's retention; a line per pass that took
/// anything out. A failed pass is logged and tried again at the next.
async fn retention_loop(configs: watch::Receiver<Arc<Config>>, store: Arc<Store>) {
    let start = tokio::time::Instant::now() + PRUNE_FIRST;
    let mut every = tokio::time::interval_at(start, PRUNE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let config = configs.borrow().clone();
        let started = std::time::Instant::now();
        let pass = store
            .call(move |s| {
                s.prune(&PruneRequest {
                    sources: &config.sources,
                    default: config.retention,
                    now: chrono::Utc::now(),
                    dry_run: false,
                })
            })
            .await;
        match pass {
            Ok(r) if r.entries > 0 || r.tombstones_dropped > 0 => tracing::info!(
                entries = r.entries,
                batches = r.batches,
                longest_batch_ms = r.longest_batch.as_millis() as u64,
                longest_vacuum_step_ms = r.longest_vacuum_step.as_millis() as u64,
                tombstones_kept = r.tombstones_written,
                tombstones_dropped = r.tombstones_dropped,
                freed_mb = r.bytes_freed as f64 / 1e6,
                secs = started.elapsed().as_secs_f64(),
                "pruned what retention lets go"
            ),
            Ok(_) => tracing::debug!("nothing to prune"),
            Err(e) => tracing::warn!(error = %e, "prune failed; trying again at the next pass"),
        }
    }
}
