//! The integration tests, in one test binary (as ripgrep does): linking the crate and the
//! harness once instead of once per file is most of what `cargo test` used to spend.
//!
//! Each module is one area of behaviour, `common` the harness they share. The tests run in
//! parallel in this one process, so none may touch process-global state (environment, signal
//! dispositions, the current directory): anything of that kind is done to a child process.

mod common;

mod admin;
mod architecture;
mod browser;
mod console;
mod corpus;
mod daemon;
mod dedupe_eval;
mod dedupe_feeds;
mod dedupe_order;
mod e2e;
mod encodings;
mod export;
mod faults;
mod fidelity;
mod first_hour;
mod html_sources;
mod instances;
mod migrate;
mod observability;
mod opml;
mod outputs;
mod postgres;
mod readers;
mod retention;
mod rules;
mod safety;
mod scheduling;
mod store_writes;
// systemd's notify protocol (a Unix datagram socket, signals through libc): Linux only, as
// when it was its own test file.
#[cfg(target_os = "linux")]
mod systemd;
mod websub;
mod wellformed;
