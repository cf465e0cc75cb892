//! A deterministic feed corpus for the benchmarks when no other is given: RSS 2.0, Atom 1.0
//! and JSON Feed 1.1 files of Chinese and English items with ~2 KB HTML bodies, a tenth of the
//! items republished by another feed (new guid, the link with a utm_ query), and a
//! manifest.json listing the files (the same shape as the peers' generator, so the benchmark
//! scripts read either).

use std::fmt::Write as _;
use std::path::Path;

use crate::rng::Rng;

const SYLLABLES: &[&str] = &[
    "ka", "ro", "mi", "ten", "sul", "vor", "la", "dre", "no", "pix", "an", "gel", "tor", "bu",
    "sen", "qua", "li", "mor", "ex", "da",
];

/// A word from a vocabulary of a few thousand (two or three syllables), skewed towards the
/// common ones as real text is.
fn word(r: &mut Rng) -> String {
    let n = 2 + r.below(2);
    let mut w = String::new();
    for _ in 0..n {
        let i = r.below(SYLLABLES.len());
        let skewed = i * r.below(SYLLABLES.len()) / SYLLABLES.len();
        w.push_str(SYLLABLES[skewed]);
    }
    w
}

fn zh(r: &mut Rng, chars: usize) -> String {
    (0..chars)
        .map(|_| {
            let i = r.below(3000);
            char::from_u32(0x4e00 + (i * r.below(3000) / 3000) as u32).unwrap_or('中')
        })
        .collect()
}

fn sentence(r: &mut Rng, chinese: bool) -> String {
    if chinese {
        let n = 20 + r.below(30);
        let mut s = zh(r, n);
        if r.below(3) == 0 {
            let _ = write!(s, "{}万元", r.below(100_000));
        }
        s.push('。');
        s
    } else {
        let words: Vec<String> = (0..8 + r.below(12)).map(|_| word(r)).collect();
        let mut s = words.join(" ");
        if r.below(3) == 0 {
            let _ = write!(s, " {}.{}", r.below(1000), r.below(100));
        }
        s.push('.');
        s
    }
}

struct Item {
    guid: String,
    link: String,
    title: String,
    body: String,
    published: i64,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn date(ts: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(ts, 0).unwrap_or_default()
}

/// Writes `feeds` feeds of `items` items to `dir/feeds/`, and `dir/manifest.json`.
pub fn write(dir: &Path, feeds: usize, items: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("feeds"))?;
    let mut r = Rng(42);
    let base = 1_767_225_600; // 2026-01-01
    let mut originals: Vec<Item> = Vec::new();
    let mut manifest = Vec::new();
    for f in 0..feeds {
        let chinese = f % 2 == 0;
        let mut list = Vec::new();
        for i in 0..items {
            let published = base + (r.below(30 * 86_400) as i64);
            if i % 10 == 9 && !originals.is_empty() {
                let o = &originals[r.below(originals.len())];
                list.push(Item {
                    guid: format!("f{f}-{i}"),
                    link: format!("{}?utm_source=f{f}", o.link),
                    title: o.title.clone(),
                    body: o.body.clone(),
                    published: o.published + 3600,
                });
                continue;
            }
            let title = sentence(&mut r, chinese);
            let mut body = String::new();
            while body.len() < 2000 {
                let _ = write!(body, "<p>{}</p>", sentence(&mut r, chinese));
            }
            let item = Item {
                guid: format!("f{f}-{i}"),
                link: format!("https://site{f}.example.com/{i}.html"),
                title,
                body,
                published,
            };
            if originals.len() < 5000 {
                originals.push(Item {
                    guid: item.guid.clone(),
                    link: item.link.clone(),
                    title: item.title.clone(),
                    body: item.body.clone(),
                    published,
                });
            }
            list.push(item);
        }
        let (file, format, text) = match f % 10 {
            0 => (format!("feeds/f{f:04}.json"), "json", json_feed(f, &list)),
            1..=3 => (format!("feeds/f{f:04}.xml"), "atom", atom(f, &list)),
            _ => (format!("feeds/f{f:04}.xml"), "rss", rss(f, &list)),
        };
        std::fs::write(dir.join(&file), &text)?;
        manifest.push(serde_json::json!({
            "file": file, "format": format, "bytes": text.len(), "items": items,
            "title": format!("Feed {f:04}"),
        }));
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&serde_json::json!({ "feeds": manifest }))?,
    )
}

fn rss(f: usize, items: &[Item]) -> String {
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel>\
         <title>Feed {f:04}</title><link>https://site{f}.example.com/</link>\
         <description>bench</description>\n"
    );
    for i in items {
        let _ = writeln!(
            s,
            "<item><title>{}</title><link>{}</link><guid isPermaLink=\"false\">{}</guid>\
             <pubDate>{}</pubDate><description>{}</description></item>",
            escape(&i.title),
            escape(&i.link),
            i.guid,
            date(i.published).to_rfc2822(),
            escape(&i.body)
        );
    }
    s.push_str("</channel></rss>\n");
    s
}

fn atom(f: usize, items: &[Item]) -> String {
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\
         <title>Feed {f:04}</title><id>urn:feed:{f}</id><updated>2026-02-01T00:00:00Z</updated>\n"
    );
    for i in items {
        let _ = writeln!(
            s,
            "<entry><title>{}</title><link href=\"{}\"/><id>urn:{}</id>\
             <updated>{}</updated><content type=\"html\">{}</content></entry>",
            escape(&i.title),
            escape(&i.link),
            i.guid,
            date(i.published).to_rfc3339(),
            escape(&i.body)
        );
    }
    s.push_str("</feed>\n");
    s
}

fn json_feed(f: usize, items: &[Item]) -> String {
    let items: Vec<serde_json::Value> = items
        .iter()
        .map(|i| {
            serde_json::json!({
                "id": i.guid, "url": i.link, "title": i.title, "content_html": i.body,
                "date_published": date(i.published).to_rfc3339(),
            })
        })
        .collect();
    serde_json::json!({
        "version": "https://jsonfeed.org/version/1.1",
        "title": format!("Feed {f:04}"),
        "items": items,
    })
    .to_string()
}
