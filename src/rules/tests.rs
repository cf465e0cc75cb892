use super::*;
use crate::model::EntrySource;
use chrono::TimeZone;

fn config(rules: &str) -> Config {
    let mut text = String::new();
    for (id, category, tags) in [
        ("a", "金融", "[\"wire\"]"),
        ("b", "金融", "[]"),
        ("c", "科技", "[]"),
    ] {
        text.push_str(&format!(
            "[[sources]]\nid = \"{id}\"\nname = \"{id}\"\nurl = \"https://{id}.example/f\"\ncategory = \"{category}\"\ntags = {tags}\n"
        ));
        if let Some(own) = rules
            .split("--")
            .find_map(|p| p.trim().strip_prefix(&format!("{id}:")))
        {
            text.push_str(&format!("[sources.rules]\n{own}\n"));
        }
    }
    let top = rules.split("--").next().unwrap_or("");
    Config::from_toml(std::path::Path::new("t.toml"), &format!("{top}\n{text}")).expect("config")
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
        .single()
        .expect("date")
}

fn copy(entry: i64, source: &str, title: &str, content: &str) -> Copy {
    Copy {
        entry_id: entry,
        source_id: source.into(),
        title: title.into(),
        link: Some(format!("https://{source}.example/{entry}")),
        summary: None,
        content: Some(content.into()),
        authors: vec!["某某".into()],
        categories: vec!["要闻".into()],
        published: now() - chrono::Duration::days(2),
    }
}

/// Entry `id` as carried by `copies` (its own first, then other members').
fn entry(id: i64, copies: Vec<Copy>) -> StoredEntry {
    let first = copies[0].clone();
    StoredEntry {
        id,
        cursor: crate::model::Cursor {
            published: 0,
            key: 0,
            id,
        },
        title: first.title.clone(),
        link: first.link.clone(),
        summary: None,
        content: first.content.clone(),
        authors: first.authors.clone(),
        categories: first.categories.clone(),
        published: first.published,
        updated: first.published,
        sources: copies
            .iter()
            .filter(|c| c.entry_id == id)
            .map(|c| EntrySource {
                source_id: c.source_id.clone(),
                source_name: c.source_id.clone(),
                source_url: String::new(),
                guid: None,
                link: c.link.clone(),
            })
            .collect(),
        copies,
    }
}

const ALL: View<'static> = View {
    scope: &Scope::All,
    source: None,
    tag: None,
};

fn shown(book: &Book, view: &View<'_>, e: &StoredEntry) -> bool {
    matches!(book.judge(view, e, now()), Verdict::Shown { .. })
}

#[test]
fn block_wins_over_keep_and_keep_rules_must_match() {
    let book = Book::new(&config(
        "[rules]\nblock = [{ title = \"/广告|推广/\" }]\nkeep = [{ content = \"碳中和\" }]",
    ));
    let ad = entry(1, vec![copy(1, "a", "【广告】碳中和基金", "<p>碳中和</p>")]);
    let Verdict::Blocked(rule) = book.judge(&ALL, &ad, now()) else {
        panic!("blocked")
    };
    assert_eq!(
        rule.to_string(),
        "block #1 of [rules]: { title = \"/广告|推广/\" }"
    );
    let kept = entry(2, vec![copy(2, "a", "新闻", "<p>推进<b>碳中和</b></p>")]);
    assert!(matches!(
        book.judge(&ALL, &kept, now()),
        Verdict::Shown { keep: Some(_), .. }
    ));
    let other = entry(3, vec![copy(3, "a", "新闻", "<p>别的</p>")]);
    assert_eq!(book.judge(&ALL, &other, now()), Verdict::NotKept);
}

#[test]
fn literals_fold_width_and_case_and_every_key_of_a_table_must_match() {
    let book = Book::new(&config(
        "[rules]\nblock = [{ title = \"ａｉ\", author = \"某某\" }, { category = \"公告\" }, { link = \"/\\\\/9$/\" }, { max_age_days = 1 }]",
    ));
    assert!(!shown(
        &book,
        &ALL,
        &entry(1, vec![copy(1, "a", "New AI chip", "x")])
    ));
    let mut other_author = copy(2, "a", "New AI chip", "x");
    other_author.authors = vec!["别人".into()];
    assert!(shown(&book, &ALL, &entry(2, vec![other_author])));
    let mut notice = copy(3, "a", "公司", "x");
    notice.categories = vec!["公告".into()];
    assert!(!shown(&book, &ALL, &entry(3, vec![notice])));
    assert!(
        !shown(&book, &ALL, &entry(9, vec![copy(9, "a", "t", "x")])),
        "link regex"
    );
    let mut fresh = copy(4, "a", "t", "x");
    fresh.published = now() - chrono::Duration::hours(3);
    assert!(!shown(&book, &ALL, &entry(4, vec![fresh])), "max_age_days");
}

#[test]
fn a_blocked_copy_blocks_the_story_at_every_source_unless_its_own_keep_rule_says_otherwise() {
    let story = |id: i64| {
        entry(
            id,
            vec![
                copy(id, "b", "碳中和新政", "<p>正文</p>"),
                copy(id + 100, "a", "【推广】碳中和新政", "<p>正文</p>"),
            ],
        )
    };
    let book = Book::new(&config("-- a: block = [{ title = \"推广\" }]"));
    let b_feed = View {
        scope: &Scope::Source("b".into()),
        source: None,
        tag: None,
    };
    let Verdict::StoryBlocked { entry, source, .. } = book.judge(&b_feed, &story(1), now()) else {
        panic!("story blocked")
    };
    assert_eq!((entry, source.as_str()), (101, "a"));
    assert!(!shown(&book, &ALL, &story(1)));
    // A keep rule at the category does not override; one of b's own does.
    let book = Book::new(&config(
        "[categories.\"金融\".rules]\nkeep = [{ title = \"碳中和\" }]\n-- a: block = [{ title = \"推广\" }]",
    ));
    assert!(!shown(&book, &b_feed, &story(1)));
    let book = Book::new(&config(
        "-- a: block = [{ title = \"推广\" }] -- b: keep = [{ title = \"碳中和\" }]",
    ));
    assert!(shown(&book, &b_feed, &story(1)));
}

#[test]
fn category_rules_reach_only_their_categorys_sources_and_merged_feeds_pick_a_keeping_source() {
    let book = Book::new(&config(
        "[categories.\"金融\".rules]\nkeep = [{ title = \"碳中和\" }]",
    ));
    let tech = entry(1, vec![copy(1, "c", "芯片", "x")]);
    assert!(shown(&book, &ALL, &tech));
    let finance = entry(2, vec![copy(2, "a", "芯片", "x")]);
    assert!(!shown(&book, &ALL, &finance));
    // One entry at a (金融, not kept) and c (科技): shown in all.json in c's words, not in 金融.
    let both = entry(
        3,
        vec![copy(3, "a", "芯片 a", "x"), copy(3, "c", "芯片 c", "x")],
    );
    let shown_all = book
        .show(&ALL, &Subscription::default(), both.clone(), now())
        .expect("shown");
    assert_eq!(shown_all.title, "芯片 c");
    let finance_feed = View {
        scope: &Scope::Category("金融".into()),
        source: None,
        tag: None,
    };
    assert!(book
        .show(&finance_feed, &Subscription::default(), both.clone(), now())
        .is_none());
    let wire = View {
        scope: &Scope::All,
        source: None,
        tag: Some("wire"),
    };
    assert!(book
        .show(&wire, &Subscription::default(), both, now())
        .is_none());
}

#[test]
fn rewrites_and_removals_change_titles_and_text_and_are_named() {
    let book = Book::new(&config(
        "-- a: rewrite = [{ field = \"title\", pattern = \"^【独家】\", replace = \"\" }, { field = \"content\", pattern = \"^中证网讯（记者[^）]*）\" }]\nremove = [\".share\"]",
    ));
    let e = entry(
        1,
        vec![copy(
            1,
            "a",
            "【独家】央行降准",
            "<p>中证网讯（记者 张三）央行宣布</p><p class=\"share\">分享</p>",
        )],
    );
    let j = book.explain(&ALL, &e, now());
    assert_eq!(j.changed_by.len(), 3, "{:?}", j.changed_by);
    assert!(j.changed_by[0]
        .to_string()
        .starts_with("rewrite #1 of [sources.rules] of \"a\""));
    let out = book
        .show(&ALL, &Subscription::default(), e, now())
        .expect("shown");
    assert_eq!(out.title, "央行降准");
    assert_eq!(out.content.as_deref(), Some("<p>央行宣布</p>"));
    assert!(out.copies.is_empty());
}

#[test]
fn a_subscription_filters_on_the_words_shown() {
    let book = Book::new(&config(""));
    assert!(book.is_empty());
    let sub = Subscription {
        filter: Some(Pattern::parse("碳中和").expect("literal")),
        filterout: Some(Pattern::parse("/广告|推广/").expect("regex")),
    };
    let e = |title: &str, body: &str| entry(1, vec![copy(1, "a", title, body)]);
    assert!(book
        .show(&ALL, &sub, e("新闻", "<p>碳中和</p>"), now())
        .is_some());
    assert!(book
        .show(&ALL, &sub, e("推广", "<p>碳中和</p>"), now())
        .is_none());
    assert!(book
        .show(&ALL, &sub, e("新闻", "<p>别的</p>"), now())
        .is_none());
}

/// What a copy matched is remembered by its words and its scope: words changed by their source
/// (any field) are judged afresh, and the same words at a source with other rules are judged
/// by those.
#[test]
fn remembered_matches_follow_the_words_and_the_scope() {
    let book = Book::new(&config(
        "[rules]\nrewrite = [{ field = \"content\", pattern = \"中证网讯\", replace = \"\" }]\n-- a: block = [{ content = \"广告\" }, { author = \"某乙\" }]",
    ));
    let plain = copy(1, "a", "新闻", "<p>正文</p>");
    assert!(shown(&book, &ALL, &entry(1, vec![plain.clone()])));
    let ad = copy(1, "a", "新闻", "<p>正文<b>广告</b></p>");
    assert!(
        !shown(&book, &ALL, &entry(1, vec![ad.clone()])),
        "text changed"
    );
    let mut by = plain.clone();
    by.authors = vec!["某乙".into()];
    assert!(!shown(&book, &ALL, &entry(1, vec![by])), "author changed");
    assert!(shown(&book, &ALL, &entry(1, vec![plain.clone()])), "back");
    let mut at_c = ad;
    at_c.source_id = "c".into();
    assert!(
        shown(&book, &ALL, &entry(1, vec![at_c])),
        "c has no block rule"
    );
    // The body's rewrite, looked up again for the same text, still applies.
    for _ in 0..2 {
        let e = book
            .show(
                &ALL,
                &Subscription::default(),
                entry(2, vec![copy(2, "b", "t", "<p>中证网讯 今日</p>")]),
                now(),
            )
            .expect("shown");
        assert_eq!(e.content.as_deref(), Some("<p> 今日</p>"));
    }
}

/// A copy with an empty body and one with none are told apart (a summary stands in for a
/// missing content, not for an empty one).
#[test]
fn an_empty_body_is_not_a_missing_one() {
    let book = Book::new(&config("-- a: block = [{ content = \"广告\" }]"));
    let mut missing = copy(1, "a", "t", "");
    missing.content = None;
    missing.summary = Some("<p>广告</p>".into());
    let mut empty = missing.clone();
    empty.content = Some(String::new());
    assert!(
        !shown(&book, &ALL, &entry(1, vec![missing])),
        "the summary is read"
    );
    assert!(
        shown(&book, &ALL, &entry(1, vec![empty])),
        "the empty content is read"
    );
}
