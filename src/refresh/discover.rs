//! Finding the feed behind a URL a person gives (`tributary add`, the console's form): the
//! URL itself when it is a feed; else the feed its page names (`<link rel="alternate">`);
//! else the first of the paths sites commonly publish feeds at, on the page's own origin.
//! Every candidate is read the way a refresh reads it (`check_source`), so what is added is
//! known to parse.

use url::Url;

use super::{check_source, CheckReport, RefreshError};
use crate::config::SourceConfig;
use crate::fetch::Fetcher;
use crate::parse::ParseError;

/// Where sites commonly publish their feed, tried in order when a page names none
/// (WordPress, Ghost, Hugo, Jekyll, Blogger and the bare conventions).
pub const COMMON_PATHS: &[&str] = &[
    "/feed",
    "/rss",
    "/feed.xml",
    "/rss.xml",
    "/atom.xml",
    "/index.xml",
    "/feeds/posts/default",
];

/// What `discover` found.
#[derive(Debug)]
pub struct Discovery {
    /// The feed's URL (after redirects).
    pub feed: Url,
    /// How it was found, for the message: None when the URL given was the feed.
    pub via: Option<String>,
    /// The feed as a refresh would read it.
    pub report: CheckReport,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("{url} is an HTML page that names no feed, and none of {} on {} is one", COMMON_PATHS.join(", "), origin(url))]
    NoFeed { url: Url },
    #[error("{url}: {source}")]
    Read { url: Url, source: RefreshError },
}

fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Reads `source` (a feed source whose URL is the one given) and finds its feed.
pub async fn discover(
    fetcher: &Fetcher,
    source: &SourceConfig,
) -> Result<Discovery, DiscoverError> {
    let given = source.url.clone();
    let linked = match check_source(fetcher, source, None).await {
        Ok(report) => {
            return Ok(Discovery {
                feed: report.url.clone(),
                via: None,
                report,
            })
        }
        Err(RefreshError::Parse(ParseError::HtmlPage { feed })) => feed,
        Err(source) => return Err(DiscoverError::Read { url: given, source }),
    };
    if let Some(feed) = linked.and_then(|f| Url::parse(&f).ok()) {
        return match check_source(fetcher, source, Some(&feed)).await {
            Ok(report) => Ok(Discovery {
                feed: report.url.clone(),
                via: Some(format!("named by the page {given}")),
                report,
            }),
            Err(source) => Err(DiscoverError::Read { url: feed, source }),
        };
    }
    for path in COMMON_PATHS {
        let Ok(candidate) = given.join(path) else {
            continue;
        };
        if let Ok(report) = check_source(fetcher, source, Some(&candidate)).await {
            return Ok(Discovery {
                feed: report.url.clone(),
                via: Some(format!(
                    "at {path} on {}, which the page {given} does not name",
                    origin(&given)
                )),
                report,
            });
        }
    }
    Err(DiscoverError::NoFeed { url: given })
}
