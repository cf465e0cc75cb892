//! Article pages: the full text, author and date of one entry.

use scraper::Html;

use super::html::{first_date, first_text};
use super::ParseError;
use crate::config::ArticleRules;

/// What an article page adds to its list entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArticleParts {
    /// The content element's inner HTML, with the `remove` selectors' matches taken out.
    /// Not yet sanitized.
    pub content: String,
    pub author: Option<String>,
    pub date_text: Option<String>,
}

pub fn parse_article(page: &str, rules: &ArticleRules) -> Result<ArticleParts, ParseError> {
    let mut doc = Html::parse_document(page);
    let root = doc.root_element();
    let author = rules
        .author
        .as_ref()
        .and_then(|s| first_text(&root, &s.selector))
        .filter(|a| !a.is_empty());
    let date_text = rules
        .date
        .as_ref()
        .and_then(|s| first_date(&root, &s.selector));
    let Some(content) = doc.select(&rules.content.selector).next() else {
        return Err(ParseError::NothingMatched {
            key: rules.content.key,
            selector: rules.content.text.clone(),
        });
    };
    let content_id = content.id();
    let doomed: Vec<_> = rules
        .remove
        .iter()
        .flat_map(|r| content.select(&r.selector).map(|e| e.id()))
        .filter(|id| *id != content_id)
        .collect();
    for id in doomed {
        if let Some(mut node) = doc.tree.get_mut(id) {
            node.detach();
        }
    }
    let content = doc
        .tree
        .get(content_id)
        .and_then(scraper::ElementRef::wrap)
        .map(|e| e.inner_html())
        .unwrap_or_default();
    Ok(ArticleParts {
        content,
        author,
        date_text,
    })
}
