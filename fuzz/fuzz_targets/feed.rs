//! Feed bodies: decode → parse (feed-rs) → normalize → dedupe. Nothing may panic.
//!
//! Input: a feed body, optionally preceded by a line `CT:<Content-Type>\n` (see common.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tributary::normalize::Context;

mod common;
use common::FIXED;

fuzz_target!(|data: &[u8]| {
    let (content_type, body) = common::split_content_type(data);
    let doc = tributary::decode::to_utf8_document(body, content_type.as_deref());
    let Ok(feed) = tributary::parse::parse(&doc.bytes) else {
        return;
    };
    let ctx = Context {
        source_id: "fuzz",
        base: &FIXED.base,
        timezone: FIXED.timezone,
        timezone_named: true,
        date_formats: &FIXED.date_formats,
        id_pattern: Some(&FIXED.id_pattern),
        wants_article: false,
        now: FIXED.now,
    };
    common::normalize_all(&ctx, feed.items);
});
