//! Precision and recall of near-duplicate detection on the labeled pairs in
//! `tests/fixtures/dedupe/pairs.jsonl`, with the shipped default thresholds and the same
//! decision the store makes: a shared candidate key, a matching rule, and a time window.

use std::collections::HashSet;

use chrono::DateTime;
use tributary::dedupe::{self, Thresholds};

const MIN_PRECISION: f64 = 0.98;
const MIN_RECALL: f64 = 0.95;

struct Side {
    title: String,
    text: String,
    published: i64,
}

fn side(v: &serde_json::Value, id: &str) -> Side {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    let published = DateTime::parse_from_rfc3339(&s("published"))
        .unwrap_or_else(|e| panic!("{id}: bad published date: {e}"))
        .timestamp();
    Side {
        title: s("title"),
        text: s("text"),
        published,
    }
}

/// The store's decision for two entries of different sources in one category.
fn merged(a: &Side, b: &Side, t: &Thresholds) -> bool {
    if (a.published - b.published).abs() > t.window_hours * 3600 {
        return false;
    }
    let (fa, fb) = (
        dedupe::fingerprint(&a.title, &a.text),
        dedupe::fingerprint(&b.title, &b.text),
    );
    let keys: HashSet<i64> = dedupe::candidate_keys(&fa, t).into_iter().collect();
    let candidate = dedupe::candidate_keys(&fb, t)
        .iter()
        .any(|k| keys.contains(k));
    candidate && dedupe::compare(&fa, &fb, t).is_some()
}

#[test]
fn precision_and_recall_on_the_labeled_set() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/dedupe/pairs.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("reading the labeled pairs");
    let t = Thresholds::default();
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    let mut pairs = 0;
    let mut mistakes = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let id = v["id"].as_str().unwrap_or("?").to_string();
        let label = v["label"].as_i64() == Some(1);
        let (a, b) = (side(&v["a"], &id), side(&v["b"], &id));
        let got = merged(&a, &b, &t);
        pairs += 1;
        match (label, got) {
            (true, true) => tp += 1,
            (false, true) => {
                fp += 1;
                mistakes.push(format!("false merge   {id} ({})", v["kind"]));
            }
            (true, false) => {
                fn_ += 1;
                mistakes.push(format!("missed        {id} ({})", v["kind"]));
            }
            (false, false) => {}
        }
    }
    assert!(
        pairs >= 300,
        "the labeled set has {pairs} pairs; at least 300 are needed"
    );
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / (tp + fn_).max(1) as f64;
    println!("dedupe evaluation: {pairs} pairs, precision {precision:.3}, recall {recall:.3} (tp {tp}, fp {fp}, fn {fn_})");
    for m in &mistakes {
        println!("  {m}");
    }
    assert!(
        precision >= MIN_PRECISION && recall >= MIN_RECALL,
        "precision {precision:.3} (need {MIN_PRECISION}) recall {recall:.3} (need {MIN_RECALL})"
    );
}
