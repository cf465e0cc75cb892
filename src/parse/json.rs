//! JSON lists (`kind = "json"`), such as 新浪财经's roll API: dot paths pick the item array
//! and each item's fields.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{ParseError, ParsedFeed, ParsedItem, Text};
use crate::config::JsonRules;

pub fn parse_list(text: &str, rules: &JsonRules) -> Result<ParsedFeed, ParseError> {
    let doc: Value = serde_json::from_str(text).map_err(|e| ParseError::Json(e.to_string()))?;
    let items = lookup(&doc, &rules.items)
        .and_then(Value::as_array)
        .ok_or_else(|| ParseError::JsonPath {
            key: "json.items",
            path: rules.items.clone(),
            problem: "is not an array in the document",
        })?;
    if items.is_empty() {
        return Err(ParseError::NothingMatched {
            key: "json.items",
            selector: rules.items.clone(),
        });
    }
    let mut parsed = Vec::with_capacity(items.len());
    let mut without_link = 0;
    for item in items {
        let field = |path: &Option<String>| path.as_deref().and_then(|p| scalar(item, p));
        let Some(link) = scalar(item, &rules.link).filter(|l| !l.is_empty()) else {
            without_link += 1;
            continue;
        };
        let (published, date_text) = match rules.date.as_deref().and_then(|p| lookup(item, p)) {
            Some(v) => match epoch(v) {
                Some(t) => (Some(t), None),
                None => (None, v.as_str().map(str::to_string)),
            },
            None => (None, None),
        };
        parsed.push(ParsedItem {
            id: field(&rules.id),
            title: scalar(item, &rules.title).map(|body| Text { body, html: false }),
            links: vec![link],
            summary: field(&rules.summary).map(|body| Text { body, html: false }),
            authors: field(&rules.author).into_iter().collect(),
            published,
            date_text,
            ..Default::default()
        });
    }
    if parsed.is_empty() {
        return Err(ParseError::JsonPath {
            key: "json.link",
            path: rules.link.clone(),
            problem: "is missing from every item",
        });
    }
    let mut warnings = Vec::new();
    if without_link > 0 {
        warnings.push(format!(
            "{without_link} items have no {:?} (json.link) and were skipped",
            rules.link
        ));
    }
    Ok(ParsedFeed {
        title: None,
        items: parsed,
        warnings,
        ttl: None,
    })
}

/// Follows a dot path ("result.data", "items.0.url"); numeric segments index arrays.
fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .filter(|s| !s.is_empty())
        .try_fold(value, |v, seg| match v {
            Value::Object(map) => map.get(seg),
            Value::Array(list) => seg.parse::<usize>().ok().and_then(|i| list.get(i)),
            _ => None,
        })
}

/// A string or number at `path`, as text.
fn scalar(value: &Value, path: &str) -> Option<String> {
    match lookup(value, path)? {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

/// Epoch seconds (or milliseconds, for values too large to be seconds), as a number or a
/// string of digits.
fn epoch(value: &Value) -> Option<DateTime<Utc>> {
    let n = match value {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()?
        }
        _ => return None,
    };
    let secs = if n > 100_000_000_000 { n / 1000 } else { n };
    DateTime::from_timestamp(secs, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> JsonRules {
        JsonRules {
            items: "result.data".into(),
            title: "title".into(),
            link: "url".into(),
            date: Some("ctime".into()),
            summary: Some("intro".into()),
            author: Some("media_name".into()),
            id: Some("docid".into()),
            date_formats: vec![],
            id_pattern: None,
        }
    }

    #[test]
    fn reads_sina_roll_items() {
        let text = r#"{"result":{"status":{"code":0},"data":[
            {"docid":"comos:1","title":"央行开展逆回购","url":"https://finance.sina.com.cn/a.shtml",
             "ctime":"1606820340","intro":"简介","media_name":"新浪财经"},
            {"title":"no link"}]}}"#;
        let feed = parse_list(text, &rules()).unwrap();
        assert_eq!(feed.items.len(), 1);
        let item = &feed.items[0];
        assert_eq!(item.title.as_ref().unwrap().body, "央行开展逆回购");
        assert_eq!(
            item.published.unwrap().to_rfc3339(),
            "2020-12-01T10:59:00+00:00"
        );
        assert_eq!(item.authors, vec!["新浪财经"]);
        assert_eq!(feed.warnings.len(), 1);
    }

    #[test]
    fn wrong_path_is_named() {
        let e = parse_list(r#"{"data":[]}"#, &rules()).unwrap_err();
        assert!(e.to_string().contains("result.data"), "{e}");
    }
}
