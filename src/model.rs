//! The plain structs that flow between stages. No behaviour lives here, so every stage can
//! depend on this module without depending on another stage.

use chrono::{DateTime, Utc};

/// The longest URL tributary follows or stores, in bytes (the sitemaps protocol's limit, and
/// what browsers and servers reliably handle). A longer link in a feed is dropped; a longer
/// redirect target or page link is refused.
pub const MAX_URL_BYTES: usize = 2048;

/// The longest ETag or Last-Modified kept from a response. Validators are stored and sent back
/// on every poll, so a longer one is ignored (the next poll is unconditional).
pub const MAX_VALIDATOR_BYTES: usize = 1024;

/// One entry as normalize hands it to the store: clean text, absolute links, UTC dates,
/// sanitized HTML and the keys that identify it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The source's own id for the entry (RSS guid, Atom id, JSON Feed id), if it gave one.
    pub guid: Option<String>,
    /// Absolute link, as published.
    pub link: Option<String>,
    pub title: String,
    /// Sanitized HTML.
    pub summary: Option<String>,
    /// Sanitized HTML.
    pub content: Option<String>,
    pub authors: Vec<String>,
    pub published: Option<DateTime<Utc>>,
    pub updated: Option<DateTime<Utc>>,
    /// Where `published` came from.
    pub date_source: DateSource,
    /// How it was read: the element and the format (`pubDate, RFC 822`), when it was text.
    pub date_format: Option<String>,
    /// How surely (`normalize::date_rank`): of two sources' dates for one entry, the surer wins.
    pub date_rank: u8,
    pub categories: Vec<String>,
    /// Identity keys in the order they are tried: guid (scoped to the source), canonical link,
    /// content hash. See `normalize::identity_keys`.
    pub keys: Vec<String>,
    /// Hash of what the feed or list page says about the entry; a change means an edit.
    pub version: String,
    /// The source reads article pages and this entry's has not been read yet: try again on
    /// the next fetch.
    pub article_pending: bool,
    /// What near-duplicate detection compares (see `dedupe`).
    pub fingerprint: Fingerprint,
    /// Where to look for near-duplicates (`dedupe::candidate_keys` with the source's
    /// thresholds; empty when its dedupe is off), computed with the fingerprint so the store's
    /// writer does not have to.
    pub candidate_keys: Vec<i64>,
    /// The fingerprint's figures (`dedupe::Figures::of`), also computed off the writer.
    pub figures: Figures,
}

/// What is kept of an entry to compare it with others.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fingerprint {
    /// Normalized title (NFKC, lower case, separators collapsed).
    pub title: String,
    /// Normalized body text.
    pub body: String,
    /// SimHash of the body's shingles; 0 for an empty body.
    pub simhash: u64,
}

/// What the figures rules of near-duplicate detection read of an entry: the numbers its title
/// states, every number it states, and its body's length. A few dozen bytes, so the candidate
/// index keeps them for every entry it holds and turns most chance candidates down before their
/// text is read. Built and read by `dedupe`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    pub(crate) chars: usize,
    /// The title's figures, a tab, then all figures; each list sorted, space-separated, and
    /// without repeats (figures are digits and at most one point).
    pub(crate) lists: Box<str>,
}

/// Where an entry's date came from, kept so a wrong date can be explained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateSource {
    /// The feed's own published/updated date.
    Feed,
    ArticlePage,
    ListPage,
    /// A date in the link (`t20201201_...`).
    Url,
    /// No date anywhere: the time tributary first saw the entry.
    FirstSeen,
    /// The only dates were more than a day in the future: first-seen instead.
    FutureClamped,
}

impl DateSource {
    pub fn as_str(self) -> &'static str {
        match self {
            DateSource::Feed => "feed",
            DateSource::ArticlePage => "article page",
            DateSource::ListPage => "list page",
            DateSource::Url => "URL",
            DateSource::FirstSeen => "first seen",
            DateSource::FutureClamped => "first seen (page date was in the future)",
        }
    }
}

/// An entry as the store returns it for publishing.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntry {
    pub id: i64,
    /// Where this entry sits in newest-first order (for the next page's cursor).
    pub cursor: Cursor,
    pub title: String,
    pub link: Option<String>,
    pub summary: Option<String>,
    pub content: Option<String>,
    pub authors: Vec<String>,
    pub categories: Vec<String>,
    pub published: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    /// Every source that carried the entry, the first one to see it first.
    pub sources: Vec<EntrySource>,
    /// What rules judge (read only when some rule is configured): the words each source
    /// gives the story, for this entry and every other member of its cluster.
    pub copies: Vec<Copy>,
}

/// One source's words for one entry: what a rule in that source's scope looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct Copy {
    pub entry_id: i64,
    pub source_id: String,
    pub title: String,
    pub link: Option<String>,
    /// Sanitized HTML.
    pub summary: Option<String>,
    /// Sanitized HTML.
    pub content: Option<String>,
    pub authors: Vec<String>,
    /// The item's own categories.
    pub categories: Vec<String>,
    pub published: DateTime<Utc>,
}

/// A page of a feed: its entries, and where the next page starts when there may be one.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub entries: Vec<StoredEntry>,
    pub next: Option<Cursor>,
}

/// One source's view of a stored entry.
#[derive(Debug, Clone, PartialEq)]
pub struct EntrySource {
    pub source_id: String,
    pub source_name: String,
    /// The source's feed URL.
    pub source_url: String,
    /// The source's own id for the entry.
    pub guid: Option<String>,
    /// The entry's link at this source.
    pub link: Option<String>,
}

/// Which entries a published feed holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Category(String),
    Source(String),
    /// Every source with this tag.
    Tag(String),
}

/// Narrowing and paging within a scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FeedQuery {
    pub limit: usize,
    /// Only entries older than this cursor (RFC 5005 paging).
    pub before: Option<Cursor>,
    /// Full-text search over title and text.
    pub text: Option<String>,
    /// Only entries carried by this source.
    pub source: Option<String>,
    /// Only entries of sources with this tag.
    pub tag: Option<String>,
    /// Only entries published at or after this instant (Unix seconds).
    pub since: Option<i64>,
}

/// A position in a newest-first list: the last entry of a page. Entries of one instant are
/// ordered by `key` (a hash of the entry's identity, so the order does not depend on which
/// was stored first), then by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub published: i64,
    pub key: i64,
    pub id: i64,
}

impl Cursor {
    /// `1606820340-7215043362-42`: readable, stable, and safe in a query string.
    pub fn encode(&self) -> String {
        format!("{}-{}-{}", self.published, self.key, self.id)
    }

    /// Also reads the older `published-id` form, as coming after every entry of that instant
    /// with a smaller id (a page boundary may repeat some, never skip any).
    pub fn decode(text: &str) -> Option<Cursor> {
        let parts: Vec<&str> = text.split('-').collect();
        let num = |s: &str| s.parse::<i64>().ok();
        match parts[..] {
            [p, k, i] => Some(Cursor {
                published: num(p)?,
                key: num(k)?,
                id: num(i)?,
            }),
            [p, i] => Some(Cursor {
                published: num(p)?,
                key: i64::MAX,
                id: num(i)?,
            }),
            _ => None,
        }
    }
}

/// What the store keeps about a source between fetches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceStatus {
    pub id: String,
    pub name: String,
    pub category: String,
    pub last_fetch_at: Option<DateTime<Utc>>,
    pub last_status: Option<String>,
    pub last_error: Option<String>,
    pub entry_count: u64,
    pub consecutive_failures: u32,
    pub next_run: Option<DateTime<Utc>>,
    /// Why the source is not fetched any more (HTTP 410), if it is not.
    pub disabled_reason: Option<String>,
    /// Still in the config (sources that left it keep their entries).
    pub active: bool,
    /// Why its page looks drifted (`health::assess`), if it does.
    pub drift: Option<String>,
}

/// Conditional-request validators from the last response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}
