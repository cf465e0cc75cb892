//! Adding a source from a URL a person gives (`tributary add`, the console's form): the feed
//! found behind it (`refresh::discover`), read once so that what is added is known to parse,
//! refused when it is already configured, named and given an id, and appended to the config
//! file (`config_edit`). A running daemon picks the new table up like any change of the file.

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::config::{Config, ConfigError};
use crate::config_edit::{self, EditError, NewSource};
use crate::fetch::{FetchError, Fetcher, Limits};
use crate::refresh::{self, DiscoverError};

/// The category of a source added without one.
pub const DEFAULT_CATEGORY: &str = "news";

/// What to add.
#[derive(Debug, Clone)]
pub struct AddRequest<'a> {
    pub url: &'a str,
    pub category: Option<&'a str>,
    pub id: Option<&'a str>,
    pub name: Option<&'a str>,
    /// Ids the store still knows from sources since removed: a new source must not take one
    /// over, with the entries stored under it.
    pub reserved: &'a HashSet<String>,
}

/// What was added.
#[derive(Debug)]
pub struct Added {
    pub source: NewSource,
    /// How the feed was found, when it is not the URL given.
    pub via: Option<String>,
    pub items: usize,
    pub newest: Option<DateTime<Utc>>,
    /// The config as it now is.
    pub config: Config,
}

#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("url: {0}")]
    Url(String),
    #[error("{url} is already configured as source {id:?}; nothing added")]
    Exists { url: String, id: String },
    #[error("id {0:?} is taken; nothing added (choose another with --id)")]
    IdTaken(String),
    #[error("{0}; nothing added")]
    Discover(Box<DiscoverError>),
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Edit(#[from] EditError),
    #[error("cannot make an HTTP client: {0}")]
    Client(#[from] FetchError),
}

/// Finds, checks and appends the source `req` asks for to the config at `path`.
pub async fn add(path: &Path, req: &AddRequest<'_>) -> Result<Added, AddError> {
    let config = Config::load(path)?;
    let given = config_edit::feed_url(req.url.trim()).map_err(AddError::Url)?;
    refuse_known(&config, &given)?;
    let mut taken: HashSet<String> = config.sources.iter().map(|s| s.id.clone()).collect();
    taken.extend(req.reserved.iter().cloned());
    if let Some(id) = req.id.filter(|id| taken.contains(*id)) {
        return Err(AddError::IdTaken(id.to_string()));
    }
    let host = given.host_str().unwrap_or_default().to_string();
    let mut new = NewSource {
        id: req
            .id
            .map(str::to_string)
            .unwrap_or_else(|| config_edit::new_id(&host, &host, &taken)),
        name: req.name.map(str::to_string).unwrap_or_else(|| host.clone()),
        url: given.to_string(),
        category: req
            .category
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .unwrap_or(DEFAULT_CATEGORY)
            .to_string(),
        tags: Vec::new(),
    };
    // The source as the config would hold it (its keys checked, the defaults applied), read
    // through the same fetcher settings the daemon uses.
    let probe = config_edit::with_sources(path, std::slice::from_ref(&new))?;
    let source = probe.source(&new.id).expect("just added").clone();
    let fetcher = Fetcher::new(&probe.fetch, Limits::new(&probe.fetch))?;
    let found = refresh::discover(&fetcher, &source)
        .await
        .map_err(|e| AddError::Discover(Box::new(e)))?;
    refuse_known(&config, &found.feed)?;
    new.url = found.feed.to_string();
    if req.name.is_none() {
        if let Some(title) = found
            .report
            .title
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            new.name = title.to_string();
        }
        if req.id.is_none() {
            new.id = config_edit::new_id(&new.name, &host, &taken);
        }
    }
    let note = format!(
        "Added by `tributary add {}` on {}.",
        req.url.trim(),
        Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    let config = config_edit::append_sources(path, std::slice::from_ref(&new), &note)?;
    Ok(Added {
        items: found.report.entries.len(),
        newest: found
            .report
            .entries
            .iter()
            .filter_map(|e| e.published)
            .max(),
        via: found.via,
        source: new,
        config,
    })
}

fn refuse_known(config: &Config, url: &url::Url) -> Result<(), AddError> {
    let key = config_edit::url_key(url);
    match config
        .sources
        .iter()
        .find(|s| config_edit::url_key(&s.url) == key)
    {
        Some(s) => Err(AddError::Exists {
            url: url.to_string(),
            id: s.id.clone(),
        }),
        None => Ok(()),
    }
}
