//! The commands about the config file: `config check`, and those that change it: `add`,
//! `remove`, `enable`, `disable`. A running daemon sees the file change and reloads (`serve`
//! watches it), so none needs a restart.

use std::collections::HashSet;
use std::process::ExitCode;

use anyhow::Context;

use super::emit;
use crate::config::Config;
use crate::config_edit;
use crate::subscribe::{self, AddError, AddRequest};

/// Ids the database still knows (sources since removed from the config keep their entries
/// under them): a new source must not inherit one. Nothing when there is no database yet.
pub(super) fn reserved_ids(config: &Config) -> anyhow::Result<HashSet<String>> {
    if config.storage_url.is_none() && !config.storage_path.exists() {
        return Ok(HashSet::new());
    }
    Ok(super::open_store(config)?
        .source_statuses()
        .with_context(|| format!("[storage] {}", config.storage_name()))?
        .into_iter()
        .map(|s| s.id)
        .collect())
}

pub(super) struct AddArgs<'a> {
    pub url: &'a str,
    pub category: Option<&'a str>,
    pub id: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// `add URL`: exit 0 with what was added; 1 when nothing could be (already configured, no
/// feed found, unreadable), the config left as it was.
pub(super) async fn add(config: &Config, args: &AddArgs<'_>) -> anyhow::Result<ExitCode> {
    let reserved = reserved_ids(config)?;
    let req = AddRequest {
        url: args.url,
        category: args.category,
        id: args.id,
        name: args.name,
        reserved: &reserved,
    };
    let added = match subscribe::add(&config.path, &req).await {
        Ok(added) => added,
        Err(e @ (AddError::Config(_) | AddError::Edit(_) | AddError::Client(_))) => {
            return Err(e.into())
        }
        Err(e) => {
            eprintln!("tributary: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let s = &added.source;
    let mut out = String::new();
    if let Some(via) = &added.via {
        out.push_str(&format!("found the feed {} ({via})\n", s.url));
    }
    out.push_str(&format!(
        "read {} items{}\nadded {}: {} <{}> (category {}) to {}\n",
        added.items,
        added
            .newest
            .map(|t| format!(", the newest of {}", t.format("%Y-%m-%d %H:%M UTC")))
            .unwrap_or_default(),
        s.id,
        s.name,
        s.url,
        s.category,
        config.path.display()
    ));
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// What `remove`, `enable` and `disable` do.
#[derive(Debug, Clone, Copy)]
pub(super) enum Switch {
    Remove,
    Enable,
    Disable,
}

pub(super) fn switch(config: &Config, id: &str, what: Switch) -> anyhow::Result<ExitCode> {
    let path = &config.path;
    let result = match what {
        Switch::Remove => config_edit::remove_source(path, id).map(|()| {
            format!(
                "removed {id} from {}; its stored entries stay under its id",
                path.display()
            )
        }),
        Switch::Enable | Switch::Disable => {
            let on = matches!(what, Switch::Enable);
            let word = if on { "enabled" } else { "disabled" };
            config_edit::set_enabled(path, id, on).map(|changed| match changed {
                true => format!("{id} {word} in {}", path.display()),
                false => format!("{id} was already {word}; {} is unchanged", path.display()),
            })
        }
    };
    match result {
        Ok(line) => {
            emit(&(line + "\n"))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ config_edit::EditError::NoSource { .. }) => {
            eprintln!("tributary: {e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}

/// `config check [--source ID]`: the config loaded (else `run` has already exited 2 with the
/// error): its sources per category, the server and storage it names, and on request one
/// source's schedule and next three runs.
pub(super) fn check(config: &Config, source: Option<&str>) -> anyhow::Result<ExitCode> {
    let mut by_category: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for s in &config.sources {
        by_category.entry(&s.category).or_default().push(&s.id);
    }
    let enabled = config.sources.iter().filter(|s| s.enabled).count();
    let mut out = format!(
        "{}: ok: {} sources ({enabled} enabled) in {} categories\n",
        config.path.display(),
        config.sources.len(),
        by_category.len()
    );
    for (category, ids) in &by_category {
        out.push_str(&format!("  {category}: {}\n", ids.join(", ")));
    }
    out.push_str(&format!(
        "listen {}; admin API and forms {}; store {}\n",
        config.server.listen,
        if config.server.admin_token.is_some() {
            "on"
        } else {
            "off"
        },
        config.storage_name()
    ));
    if let Some(id) = source {
        let Some(s) = config.source(id) else {
            eprintln!("tributary: no source {id:?} in {}", config.path.display());
            return Ok(ExitCode::from(1));
        };
        let mut at = chrono::Utc::now();
        out.push_str(&format!(
            "{id}: schedule {}; next runs",
            s.schedule.canonical()
        ));
        for _ in 0..3 {
            at = s.schedule.next_after(at);
            out.push_str(&format!(" {}", at.format("%Y-%m-%d %H:%M:%S UTC")));
        }
        out.push('\n');
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}
