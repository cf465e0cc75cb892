//! What a feed or a console page shows: the store's page of a scope as the running rules
//! (`rules::Book`, built once per config) and the subscriber's own narrowing let it through.
//! Feeds and pages both come through here, so they never disagree on what a scope holds.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::model::{FeedQuery, Page, Scope};
use crate::rules::{Book, Subscription, View};
use crate::store::{PageRead, Store, StoreError};

/// The rule book of the running config: built on first use after each reload.
#[derive(Default)]
pub struct RuleBooks(Mutex<Option<(Arc<Config>, Arc<Book>)>>);

impl RuleBooks {
    pub fn of(&self, config: &Arc<Config>) -> Arc<Book> {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((c, book)) = held.as_ref() {
            if Arc::ptr_eq(c, config) {
                return book.clone();
            }
        }
        let book = Arc::new(Book::new(config));
        *held = Some((config.clone(), book.clone()));
        book
    }
}

/// One page to show: a scope and a query, the subscriber's narrowing, the rules and the
/// instant they judge ages at.
pub struct Showing<'a> {
    pub scope: &'a Scope,
    pub q: &'a FeedQuery,
    pub subscription: &'a Subscription,
    pub book: &'a Book,
    pub now: DateTime<Utc>,
}

/// The page `s` asks for: entries the rules and the subscription leave out are skipped, and
/// the page filled from older ones.
pub fn page(store: &Store, s: &Showing<'_>) -> Result<Page, StoreError> {
    let view = View {
        scope: s.scope,
        source: s.q.source.as_deref(),
        tag: s.q.tag.as_deref(),
    };
    let read = PageRead {
        scope: s.scope,
        q: s.q,
        copies: !s.book.is_empty(),
    };
    store.page(&read, &mut |e| s.book.show(&view, s.subscription, e, s.now))
}
