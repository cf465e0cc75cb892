//! The cache of rendered feeds, and the content codings they are served in: a poll of an
//! unchanged feed costs no query and no render, and each compressed form is made once.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::header::ACCEPT_ENCODING;
use axum::http::{HeaderMap, HeaderValue};
use chrono::{DateTime, Utc};

/// Rendered feeds by request, valid while the store's generation and the configuration are
/// unchanged and for at most [`CACHE_MAX_AGE`] (writes by another process, such as a one-off
/// `tributary fetch`, are not seen through the generation).
pub struct FeedCache {
    slots: std::sync::Mutex<Slots>,
    /// Held while a feed is queried and rendered.
    pub(super) rendering: tokio::sync::Mutex<()>,
    /// At most this many renders, and this many bytes (see [`charge`]).
    capacity: usize,
    max_bytes: usize,
}

impl Default for FeedCache {
    fn default() -> Self {
        FeedCache::with_limits(CACHE_CAPACITY, CACHE_BYTES)
    }
}

#[derive(Default)]
struct Slots {
    by_key: HashMap<String, Slot>,
    /// Sum of the slots' charges.
    bytes: usize,
    /// Puts so far: orders the slots, oldest first out.
    puts: u64,
}

/// One cached feed: the render, and what it was made from.
struct Slot {
    generation: u64,
    config: Arc<crate::config::Config>,
    made: std::time::Instant,
    rendered: Arc<Rendered>,
    charge: usize,
    /// `Slots::puts` when it was stored.
    order: u64,
}

/// What a render may come to hold: its body, and at most as much again for each compressed
/// form (made later, on demand); feed XML compresses to a fraction, so this is an upper bound.
fn charge(key: &str, rendered: &Rendered) -> usize {
    key.len() + rendered.body.len() * 3
}

/// A rendered feed with everything a cached answer needs, so a hit touches neither the store
/// nor the renderer: the body, its compressed forms (each made once, by the first request that
/// accepts it), and the header values.
pub(super) struct Rendered {
    /// The uncompressed document.
    pub(super) body: Bytes,
    pub(super) gzip: tokio::sync::OnceCell<Bytes>,
    pub(super) br: tokio::sync::OnceCell<Bytes>,
    /// BLAKE3 of `body` (hex, 32 digits): the ETag's opaque part.
    pub(super) hash: String,
    /// One ETag per content coding, indexed by [`Coding`]: `W/"<hash>"`, `W/"<hash>-gz"`,
    /// `W/"<hash>-br"`. A cache that stored the gzip form revalidates that form.
    pub(super) etags: [HeaderValue; 3],
    /// None for a feed with no entries: no Last-Modified is claimed.
    pub(super) last_modified: Option<DateTime<Utc>>,
    pub(super) last_modified_header: Option<HeaderValue>,
    pub(super) content_type: HeaderValue,
    /// `public, max-age=…` from the sources' schedules when it was rendered.
    pub(super) cache_control: HeaderValue,
}

const CACHE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(60);
/// Distinct feed requests kept (queries and pages are many); the oldest renders go first.
const CACHE_CAPACITY: usize = 512;
/// Bytes the cached renders may hold: a count alone let `limit=500` pages with their
/// compressed forms reach a gigabyte.
const CACHE_BYTES: usize = 32 << 20;

/// What a cache lookup found.
pub(super) enum Lookup {
    /// Current: answer from it.
    Fresh(Arc<Rendered>),
    /// Out of date (or none): render again. A stale render whose body comes out the same is
    /// kept, with its compressed forms.
    Stale(Option<Arc<Rendered>>),
}

impl FeedCache {
    pub fn with_limits(capacity: usize, max_bytes: usize) -> Self {
        FeedCache {
            slots: Default::default(),
            rendering: Default::default(),
            capacity,
            max_bytes,
        }
    }

    pub(super) fn get(
        &self,
        key: &str,
        generation: u64,
        config: &Arc<crate::config::Config>,
    ) -> Lookup {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        match slots.by_key.get(key) {
            Some(slot)
                if slot.generation == generation
                    && Arc::ptr_eq(&slot.config, config)
                    && slot.made.elapsed() < CACHE_MAX_AGE =>
            {
                Lookup::Fresh(slot.rendered.clone())
            }
            Some(slot) => Lookup::Stale(Some(slot.rendered.clone())),
            None => Lookup::Stale(None),
        }
    }

    pub(super) fn put(
        &self,
        key: String,
        generation: u64,
        config: Arc<crate::config::Config>,
        rendered: Arc<Rendered>,
    ) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let charge = charge(&key, &rendered);
        if let Some(old) = slots.by_key.remove(&key) {
            slots.bytes -= old.charge;
        }
        if charge > self.max_bytes {
            // Served, not kept: it would push out everything else.
            return;
        }
        while slots.by_key.len() >= self.capacity || slots.bytes + charge > self.max_bytes {
            let Some(oldest) = slots
                .by_key
                .iter()
                .min_by_key(|(_, slot)| slot.order)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(old) = slots.by_key.remove(&oldest) {
                slots.bytes -= old.charge;
            }
        }
        slots.bytes += charge;
        slots.puts += 1;
        let order = slots.puts;
        slots.by_key.insert(
            key,
            Slot {
                generation,
                config,
                made: std::time::Instant::now(),
                rendered,
                charge,
                order,
            },
        );
    }

    /// Renders held, and the bytes they are charged.
    #[cfg(test)]
    fn usage(&self) -> (usize, usize) {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        (slots.by_key.len(), slots.bytes)
    }
}

/// A content coding the feeds are served in (RFC 9110 §8.4.1), chosen from Accept-Encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Coding {
    Identity = 0,
    Gzip = 1,
    Br = 2,
}

impl Coding {
    pub(super) fn header_value(self) -> Option<HeaderValue> {
        match self {
            Coding::Identity => None,
            Coding::Gzip => Some(HeaderValue::from_static("gzip")),
            Coding::Br => Some(HeaderValue::from_static("br")),
        }
    }
}

/// The coding to answer with (RFC 9110 §12.5.3): the accepted one with the highest qvalue, br
/// over gzip on a tie (smaller), identity when neither is acceptable or when identity is
/// explicitly preferred over both. `*` stands for codings not named; `x-gzip` is gzip.
pub(super) fn negotiate(headers: &HeaderMap) -> Coding {
    // qvalues in thousandths; None = not named.
    let (mut gzip, mut br, mut identity, mut any) = (None, None, None, None);
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut params = item.split(';');
            let coding = params.next().unwrap_or("").trim();
            let mut q = Some(1000u16);
            for p in params {
                let p = p.trim();
                if let Some(v) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) {
                    q = parse_qvalue(v.trim());
                }
            }
            let Some(q) = q else { continue };
            let slot =
                if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                    &mut gzip
                } else if coding.eq_ignore_ascii_case("br") {
                    &mut br
                } else if coding.eq_ignore_ascii_case("identity") {
                    &mut identity
                } else if coding == "*" {
                    &mut any
                } else {
                    continue;
                };
            *slot = Some(q);
        }
    }
    let gzip = gzip.or(any).unwrap_or(0);
    let br = br.or(any).unwrap_or(0);
    let best = gzip.max(br);
    if best == 0 || identity.is_some_and(|i| i > best) {
        Coding::Identity
    } else if br == best {
        Coding::Br
    } else {
        Coding::Gzip
    }
}

/// RFC 9110 §12.4.2 qvalue, in thousandths: `0`, `1`, `0.5`, `0.125`, `1.000`.
fn parse_qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// gzip level for served feeds: made once per rendered body, so close to the best ratio.
const GZIP_LEVEL: u32 = 9;
/// Brotli quality and window for served feeds (11 is the best ratio but several times slower
/// for a few percent; a body is compressed at most once per render, but renders can be many:
/// every page and search of every feed).
const BR_QUALITY: i32 = 9;
const BR_WINDOW: i32 = 22;

/// `body` in `coding` (a copy for identity).
fn compress(coding: Coding, body: &[u8]) -> std::io::Result<Bytes> {
    use std::io::Write as _;
    // Feeds compress to a fifth or so.
    let mut out = Vec::with_capacity(body.len() / 4 + 64);
    match coding {
        Coding::Identity => out.extend_from_slice(body),
        Coding::Gzip => {
            let mut w = flate2::write::GzEncoder::new(out, flate2::Compression::new(GZIP_LEVEL));
            w.write_all(body)?;
            out = w.finish()?;
        }
        Coding::Br => {
            let params = brotli::enc::BrotliEncoderParams {
                quality: BR_QUALITY,
                lgwin: BR_WINDOW,
                size_hint: body.len(),
                ..Default::default()
            };
            brotli::BrotliCompress(&mut &body[..], &mut out, &params)?;
        }
    }
    Ok(out.into())
}

impl Rendered {
    /// The body in `coding`, compressing it on the blocking pool the first time it is asked
    /// for; concurrent first requests wait for the one compression. None when compression
    /// failed (the caller answers uncompressed).
    pub(super) async fn body(self: &Arc<Self>, coding: Coding) -> Option<Bytes> {
        let cell = match coding {
            Coding::Identity => return Some(self.body.clone()),
            Coding::Gzip => &self.gzip,
            Coding::Br => &self.br,
        };
        let result = cell
            .get_or_try_init(|| {
                let body = self.body.clone();
                async move {
                    match tokio::task::spawn_blocking(move || compress(coding, &body)).await {
                        Ok(Ok(bytes)) => Ok(bytes),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                }
            })
            .await;
        match result {
            Ok(bytes) => Some(bytes.clone()),
            Err(e) => {
                tracing::error!(error = %e, ?coding, "cannot compress a feed");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(body_len: usize) -> Arc<Rendered> {
        let value = HeaderValue::from_static("x");
        Arc::new(Rendered {
            body: Bytes::from(vec![b'<'; body_len]),
            gzip: Default::default(),
            br: Default::default(),
            hash: String::new(),
            etags: [value.clone(), value.clone(), value.clone()],
            last_modified: Some(Utc::now()),
            last_modified_header: Some(value.clone()),
            content_type: value.clone(),
            cache_control: value,
        })
    }

    fn empty_config() -> Arc<crate::config::Config> {
        let path = std::path::Path::new("tributary.toml");
        Arc::new(crate::config::Config::from_toml(path, "").expect("an empty config"))
    }

    #[test]
    fn the_feed_cache_keeps_within_its_bytes_and_drops_the_oldest() {
        let cache = FeedCache::with_limits(100, 10_000);
        let config = empty_config();
        for i in 0..10 {
            cache.put(format!("k{i}"), 1, config.clone(), rendered(1_000));
            let (_, bytes) = cache.usage();
            assert!(bytes <= 10_000, "{bytes} bytes after {} puts", i + 1);
        }
        // 3,002 bytes charged each: three fit, the newest three.
        assert_eq!(cache.usage(), (3, 3 * 3_002));
        for (key, kept) in [("k6", false), ("k7", true), ("k9", true)] {
            let found = matches!(cache.get(key, 1, &config), Lookup::Fresh(_));
            assert_eq!(found, kept, "{key}");
        }
        // Replacing a render charges it once; one bigger than the whole cache is not kept.
        cache.put("k9".into(), 2, config.clone(), rendered(1_000));
        assert_eq!(cache.usage(), (3, 3 * 3_002));
        cache.put("huge".into(), 1, config.clone(), rendered(5_000));
        assert!(matches!(cache.get("huge", 1, &config), Lookup::Stale(None)));
        assert_eq!(cache.usage().0, 3);
    }

    #[test]
    fn the_feed_cache_keeps_within_its_count() {
        let cache = FeedCache::with_limits(4, usize::MAX);
        let config = empty_config();
        for i in 0..9 {
            cache.put(format!("k{i}"), 1, config.clone(), rendered(10));
        }
        assert_eq!(cache.usage().0, 4);
        assert!(matches!(cache.get("k8", 1, &config), Lookup::Fresh(_)));
    }

    fn accept(value: &str) -> Coding {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, value.parse().unwrap());
        negotiate(&h)
    }

    #[test]
    fn accept_encoding_chooses_the_coding() {
        assert_eq!(negotiate(&HeaderMap::new()), Coding::Identity);
        for (value, coding) in [
            ("gzip", Coding::Gzip),
            ("x-gzip", Coding::Gzip),
            ("GZIP;Q=1.0", Coding::Gzip),
            ("br", Coding::Br),
            ("gzip, deflate, br", Coding::Br),
            ("gzip, deflate, br, zstd", Coding::Br),
            ("br;q=0.5, gzip", Coding::Gzip),
            ("gzip;q=0.1, zstd", Coding::Gzip),
            ("gzip;q=0, br;q=0", Coding::Identity),
            ("*", Coding::Br),
            ("*;q=0.5, gzip", Coding::Gzip),
            ("br;q=0, *", Coding::Gzip),
            ("deflate", Coding::Identity),
            ("identity", Coding::Identity),
            ("gzip;q=0.5, identity", Coding::Identity),
            ("gzip, identity;q=0.5", Coding::Gzip),
            // A malformed qvalue drops its item.
            ("gzip;q=2", Coding::Identity),
            ("br;q=0.1234, gzip;q=0.5", Coding::Gzip),
            ("", Coding::Identity),
        ] {
            assert_eq!(accept(value), coding, "Accept-Encoding: {value}");
        }
    }

    #[test]
    fn qvalues_follow_the_grammar() {
        assert_eq!(parse_qvalue("1"), Some(1000));
        assert_eq!(parse_qvalue("1.000"), Some(1000));
        assert_eq!(parse_qvalue("0"), Some(0));
        assert_eq!(parse_qvalue("0.5"), Some(500));
        assert_eq!(parse_qvalue("0.125"), Some(125));
        assert_eq!(parse_qvalue("0."), Some(0));
        assert_eq!(parse_qvalue("1.5"), None);
        assert_eq!(parse_qvalue("0.1234"), None);
        assert_eq!(parse_qvalue("-0.5"), None);
        assert_eq!(parse_qvalue("0.+5"), None);
        assert_eq!(parse_qvalue(""), None);
    }

    #[test]
    fn compressed_forms_decompress_to_the_body() {
        use std::io::Read;
        let body = "<feed><entry><title>一条消息</title></entry></feed>\n".repeat(200);
        let gzip = compress(Coding::Gzip, body.as_bytes()).unwrap();
        let mut out = String::new();
        flate2::read::GzDecoder::new(&gzip[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, body);
        let br = compress(Coding::Br, body.as_bytes()).unwrap();
        let mut out = String::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, body);
        assert!(gzip.len() < body.len() / 10 && br.len() < body.len() / 10);
    }
}
