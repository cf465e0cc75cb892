//! Pages read with CSS selectors: decode → parse::html::parse_list (中证网's list rules) and
//! parse::article::parse_article (its article rules) → normalize → dedupe. Nothing may panic.
//!
//! Input: a page body, optionally preceded by a line `CT:<Content-Type>\n` (see common.rs).
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tributary::config::{Config, SourceConfig};
use tributary::normalize::Context;

mod common;
use common::FIXED;

/// The rules of the shipped config's 中证网 sources, read through the real config loader.
const CONFIG: &str = r#"
[[sources]]
id = "cs-hg"
name = "中证网·财经要闻"
url = "https://www.cs.com.cn/xwzx/hg/"
category = "金融"
kind = "html"
timezone = "Asia/Shanghai"
[sources.html]
item = "ul.ch_type3_list > li"
title = "h3"
link = "a"
date = "em"
date_format = "%Y-%m-%d %H:%M"
summary = "span"
id_pattern = 't\d{8}_(\d+)\.html'
[sources.article]
content = "article.cont_article > section"
author = "div.artc_info em"
date = "div.artc_info time"
remove = ["style", "script", "footer", ".share", ".page"]
"#;

static SOURCE: LazyLock<SourceConfig> = LazyLock::new(|| {
    let config = Config::from_toml(Path::new("fuzz.toml"), CONFIG).expect("fuzz config");
    config.sources.into_iter().next().expect("one source")
});

fuzz_target!(|data: &[u8]| {
    let source = &*SOURCE;
    let (content_type, body) = common::split_content_type(data);
    let page = tributary::decode::decode(body, content_type.as_deref());
    let list = tributary::parse::html::parse_list(&page.text, source.html.as_ref().unwrap());
    let article =
        tributary::parse::article::parse_article(&page.text, source.article.as_ref().unwrap());
    let Ok(list) = list else {
        return;
    };
    let mut items = list.items;
    if let (Some(first), Ok(article)) = (items.first_mut(), article) {
        first.article = Some(article);
    }
    let ctx = Context {
        source_id: &source.id,
        base: &FIXED.base,
        timezone: source.timezone,
        timezone_named: true,
        date_formats: source.date_formats(),
        id_pattern: source.id_pattern(),
        wants_article: true,
        now: FIXED.now,
    };
    common::normalize_all(&ctx, items);
});
