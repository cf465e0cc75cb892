//! Bytes to text: which character encoding a feed or page is in, and decoding it.
//!
//! The decision, first match wins:
//!
//! 1. A byte order mark (UTF-8, UTF-16LE, UTF-16BE). A UTF-16 XML declaration without a BOM
//!    (`<\0?\0x\0m\0l\0`) is just as unambiguous and is taken here too (as "XML declaration").
//! 2. Bytes that are valid UTF-8 and contain non-ASCII are UTF-8, whatever was declared: sites
//!    move to UTF-8 and leave `charset=gbk` behind in their headers and templates (cs.com.cn
//!    in 2024). A legacy multi-byte text is almost never valid UTF-8 by accident.
//! 3. The `charset` parameter of the HTTP `Content-Type` header.
//! 4. Within the first 1024 bytes: the XML declaration's `encoding`, else a `<meta charset>`
//!    or `<meta http-equiv="Content-Type" content="…; charset=…">` (the WHATWG prescan).
//! 5. Pure ASCII is UTF-8; anything else is chardetng's guess.
//!
//! Labels are resolved by the WHATWG Encoding Standard through encoding_rs, never by a table of
//! our own and never per site: `gb2312`, `gbk`, `x-gbk`, `chinese`, … name GBK, which encoding_rs
//! decodes with its GB18030 decoder (so four-byte sequences and `0x80` = `€` decode too);
//! `gb18030` names GB18030; `big5`, `big5-hkscs`, `x-x-big5` name Big5 (with the HKSCS
//! extensions, as browsers do).

use std::fmt;
use std::ops::Range;

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1252, X_USER_DEFINED};

/// How far into the body in-document declarations are looked for (the WHATWG prescan's limit).
const PRESCAN_LEN: usize = 1024;

/// Where the encoding decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// A byte order mark.
    Bom,
    /// The `charset` parameter of the HTTP `Content-Type` header.
    HttpHeader,
    /// The `encoding` of the XML declaration, or a UTF-16 declaration's byte pattern.
    XmlDeclaration,
    /// `<meta charset>` or `<meta http-equiv="Content-Type" content="…charset=…">`.
    MetaTag,
    /// The bytes are valid UTF-8 (or plain ASCII), whatever else was declared.
    ValidUtf8,
    /// Nothing usable was declared: chardetng's guess.
    Guessed,
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provenance::Bom => "BOM",
            Provenance::HttpHeader => "HTTP header",
            Provenance::XmlDeclaration => "XML declaration",
            Provenance::MetaTag => "<meta> tag",
            Provenance::ValidUtf8 => "valid UTF-8",
            Provenance::Guessed => "guessed",
        })
    }
}

/// A body decoded to text.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The text, without the byte order mark.
    pub text: String,
    pub encoding: &'static Encoding,
    pub provenance: Provenance,
    /// Malformed sequences were replaced with U+FFFD.
    pub had_errors: bool,
}

/// A document re-encoded as UTF-8 for a parser that reads the XML declaration itself.
#[derive(Debug, Clone)]
pub struct Utf8Document {
    /// UTF-8 without a BOM; an XML declaration's `encoding`, if any, says `UTF-8`.
    pub bytes: Vec<u8>,
    /// The encoding the original bytes were decoded from.
    pub encoding: &'static Encoding,
    pub provenance: Provenance,
    /// Malformed sequences were replaced with U+FFFD.
    pub had_errors: bool,
}

/// Decodes a page or feed body. `content_type` is the HTTP `Content-Type` header value, if any.
///
/// Never fails: malformed sequences become U+FFFD and `had_errors` says so.
pub fn decode(bytes: &[u8], content_type: Option<&str>) -> Decoded {
    let (encoding, provenance, bom_len) = detect(bytes, content_type);
    // The BOM was handled by `detect`; encoding_rs's own BOM sniffing would let a BOM override
    // our choice a second time, so it is bypassed.
    let (text, had_errors) = encoding.decode_without_bom_handling(&bytes[bom_len..]);
    Decoded {
        text: text.into_owned(),
        encoding,
        provenance,
        had_errors,
    }
}

/// Re-encodes a feed as UTF-8 for an XML parser that honours the declaration's encoding itself
/// (feed-rs through quick-xml), so the body is decoded once, by our rules, and not twice.
///
/// The result holds the text only once, as bytes. The BOM is dropped and an XML declaration's
/// `encoding` value, when it names anything but UTF-8, is replaced by `UTF-8` (quotes and all
/// else kept); a declaration without `encoding` already means UTF-8. JSON bodies pass through
/// too: JSON is UTF-8 (RFC 8259) but a BOM must go.
pub fn to_utf8_document(bytes: &[u8], content_type: Option<&str>) -> Utf8Document {
    let Decoded {
        mut text,
        encoding,
        provenance,
        had_errors,
    } = decode(bytes, content_type);
    let start = leading_space(text.as_bytes());
    if let Some(value) = xml_declaration(&text.as_bytes()[start..]).and_then(|d| d.encoding) {
        let range = start + value.start..start + value.end;
        if Encoding::for_label(text[range.clone()].as_bytes()) != Some(UTF_8) {
            // The range is bounded by ASCII bytes (quotes, `=`, spaces), so by char boundaries.
            // An unquoted value (not XML, but seen) gets quotes, so the result is well-formed.
            let quoted = matches!(text.as_bytes()[range.start - 1], b'"' | b'\'');
            text.replace_range(range, if quoted { "UTF-8" } else { "\"UTF-8\"" });
        }
    }
    Utf8Document {
        bytes: text.into_bytes(),
        encoding,
        provenance,
        had_errors,
    }
}

/// Chooses the encoding: (encoding, provenance, length of the BOM to skip).
fn detect(bytes: &[u8], content_type: Option<&str>) -> (&'static Encoding, Provenance, usize) {
    if let Some((encoding, bom_len)) = Encoding::for_bom(bytes) {
        return (encoding, Provenance::Bom, bom_len);
    }
    // XML 1.0 Appendix F: a UTF-16 document without a BOM still shows its byte order in the
    // declaration's first bytes, which no ASCII-compatible encoding can produce.
    if bytes.starts_with(b"<\0?\0x\0m\0l\0") {
        return (UTF_16LE, Provenance::XmlDeclaration, 0);
    }
    if bytes.starts_with(b"\0<\0?\0x\0m\0l") {
        return (UTF_16BE, Provenance::XmlDeclaration, 0);
    }

    let declared = content_type
        .and_then(charset_param)
        .and_then(|label| header_encoding(label, bytes))
        .map(|e| (e, Provenance::HttpHeader))
        .or_else(|| document_declaration(bytes));

    if is_utf8_beyond_ascii(bytes) {
        return match declared {
            Some((e, provenance)) if e == UTF_8 => (UTF_8, provenance, 0),
            _ => (UTF_8, Provenance::ValidUtf8, 0),
        };
    }
    if let Some((encoding, provenance)) = declared {
        return (encoding, provenance, 0);
    }
    if bytes.is_ascii() {
        // WHATWG would say windows-1252, but for ASCII every candidate decodes the same, and
        // "UTF-8" is the honest answer to print.
        return (UTF_8, Provenance::ValidUtf8, 0);
    }
    // UTF-8 is excluded: valid UTF-8 was handled above, so these bytes are not. No TLD hint:
    // a site's domain says little about its encoding and we never special-case sites. chardetng
    // always answers (windows-1252 when nothing else scores), so there is no further fallback.
    let mut detector = chardetng::EncodingDetector::new();
    detector.feed(bytes, true);
    (detector.guess(None, false), Provenance::Guessed, 0)
}

/// Whether the bytes are UTF-8 with some non-ASCII in it. A body cut off in the middle of a
/// character (by the body cap, or a dropped connection) still counts: the decoder replaces the
/// incomplete tail and reports it in `had_errors`, where treating the whole body as GBK would
/// garble all of it.
fn is_utf8_beyond_ascii(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(text) => !text.is_ascii(),
        Err(e) => e.error_len().is_none() && !bytes[..e.valid_up_to()].is_ascii(),
    }
}

/// The `charset` parameter of a `Content-Type` value, unquoted: `text/html; Charset="gbk"`.
fn charset_param(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("charset") {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        Some(value).filter(|v| !v.is_empty())
    })
}

/// The encoding an HTTP charset label names, if the bytes can be in it.
///
/// Labels naming the WHATWG "replacement" encoding (ISO-2022-KR, HZ-GB-2312, …) are ignored:
/// it would turn the whole feed into one U+FFFD, and the text is sanitized after decoding anyway,
/// which is the attack that encoding exists to stop. A UTF-16 label without a BOM is believed
/// only when the first code unit is an ASCII character in one byte order (a feed or page starts
/// with `<`, `{` or white space), and that byte order wins over the label's; a server that says
/// `charset=utf-16` over ASCII bytes is simply wrong, and decoding them as UTF-16 would turn
/// every pair of characters into one CJK ideograph.
fn header_encoding(label: &str, bytes: &[u8]) -> Option<&'static Encoding> {
    let encoding = Encoding::for_label_no_replacement(label.as_bytes())?;
    if encoding != UTF_16LE && encoding != UTF_16BE {
        return Some(encoding);
    }
    match bytes {
        [b, 0, ..] if (1..0x80).contains(b) => Some(UTF_16LE),
        [0, b, ..] if (1..0x80).contains(b) => Some(UTF_16BE),
        _ => None,
    }
}

/// The encoding declared inside the document: the XML declaration, else a `<meta>` tag, within
/// the first [`PRESCAN_LEN`] bytes.
fn document_declaration(bytes: &[u8]) -> Option<(&'static Encoding, Provenance)> {
    let head = &bytes[..bytes.len().min(PRESCAN_LEN)];
    let start = leading_space(head);
    // JSON has neither a prolog nor markup; a `<meta charset>` inside an item's HTML says
    // nothing about the document.
    if matches!(head.get(start), Some(b'{' | b'[')) {
        return None;
    }
    let xml = xml_declaration(&head[start..])
        .and_then(|decl| decl.encoding.map(|r| &head[start + r.start..start + r.end]))
        .and_then(document_label)
        .map(|e| (e, Provenance::XmlDeclaration));
    xml.or_else(|| meta_charset(head).map(|e| (e, Provenance::MetaTag)))
}

/// Resolves a label found inside an ASCII-compatible document, as the WHATWG prescan does:
/// a UTF-16 label there cannot be true (we just read it as ASCII), and the author most likely
/// meant "Unicode", so it means UTF-8; `x-user-defined` means windows-1252. The same holds for
/// an XML declaration: a UTF-16 document's declaration is never readable as ASCII.
fn document_label(label: &[u8]) -> Option<&'static Encoding> {
    let encoding = Encoding::for_label_no_replacement(label)?;
    Some(if encoding == UTF_16LE || encoding == UTF_16BE {
        UTF_8
    } else if encoding == X_USER_DEFINED {
        WINDOWS_1252
    } else {
        encoding
    })
}

/// An XML declaration at the start of a text: where its `encoding` value is, if it has one.
struct XmlDecl {
    encoding: Option<Range<usize>>,
}

/// Parses `<?xml version="1.0" encoding='gbk'?>` at the start of `s`. Lenient: either quote,
/// no quotes, any case, any attribute order.
fn xml_declaration(s: &[u8]) -> Option<XmlDecl> {
    if s.len() < 6 || !s[..5].eq_ignore_ascii_case(b"<?xml") || !is_space(s[5]) {
        return None;
    }
    let mut i = 5;
    let mut encoding = None;
    loop {
        while s.get(i).copied().is_some_and(is_space) {
            i += 1;
        }
        match s.get(i)? {
            b'?' => return Some(XmlDecl { encoding }),
            b if b.is_ascii_alphabetic() => {}
            _ => return None,
        }
        let name_start = i;
        while s
            .get(i)
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':'))
        {
            i += 1;
        }
        let name = &s[name_start..i];
        while s.get(i).copied().is_some_and(is_space) {
            i += 1;
        }
        if s.get(i) != Some(&b'=') {
            return None;
        }
        i += 1;
        while s.get(i).copied().is_some_and(is_space) {
            i += 1;
        }
        let value = match s.get(i)? {
            &q @ (b'"' | b'\'') => {
                let len = s[i + 1..].iter().position(|&b| b == q)?;
                let value = i + 1..i + 1 + len;
                i += len + 2;
                value
            }
            _ => {
                let begin = i;
                while s.get(i).is_some_and(|&b| !is_space(b) && b != b'?') {
                    i += 1;
                }
                begin..i
            }
        };
        if encoding.is_none() && name.eq_ignore_ascii_case(b"encoding") {
            encoding = Some(value);
        }
    }
}

/// The WHATWG prescan for `<meta charset>` and `<meta http-equiv="Content-Type">`
/// (HTML Standard, "prescan a byte stream to determine its encoding"), minus the parts that only
/// matter to a browser. Comments and other tags' attributes are skipped so that
/// `<!-- <meta charset=gbk> -->` or `<img alt="charset=gbk">` do not count.
fn meta_charset(head: &[u8]) -> Option<&'static Encoding> {
    let mut i = 0;
    while i < head.len() {
        let rest = &head[i..];
        if rest.starts_with(b"<!--") {
            // "<!-->" closes the comment: the search for "-->" starts at the opener's dashes.
            i += 2 + find(&rest[2..], b"-->")? + 3;
        } else if rest.len() > 5
            && rest[..5].eq_ignore_ascii_case(b"<meta")
            && (is_space(rest[5]) || rest[5] == b'/')
        {
            let mut scan = Attributes { s: head, i: i + 5 };
            if let Some(encoding) = meta_element(&mut scan) {
                return Some(encoding);
            }
            i = scan.i + 1;
        } else if rest.len() > 2
            && rest[0] == b'<'
            && (rest[1].is_ascii_alphabetic() || (rest[1] == b'/' && rest[2].is_ascii_alphabetic()))
        {
            // Another tag: skip its name, then its attributes (their values may hold '>').
            let mut scan = Attributes { s: head, i };
            while scan
                .s
                .get(scan.i)
                .is_some_and(|&b| !is_space(b) && b != b'>')
            {
                scan.i += 1;
            }
            while scan.next().is_some() {}
            i = scan.i + 1;
        } else if rest.starts_with(b"<!") || rest.starts_with(b"</") || rest.starts_with(b"<?") {
            i += find(rest, b">")? + 1;
        } else {
            i += 1;
        }
    }
    None
}

/// One `<meta>` element's attributes, scanned up to its `>`: the encoding it declares, if any.
fn meta_element(scan: &mut Attributes<'_>) -> Option<&'static Encoding> {
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut got_pragma = false;
    let mut need_pragma = None;
    // As in the prescan, labels are resolved as they are met: an unknown label is no charset.
    let mut charset = None;
    for (name, value) in scan.by_ref() {
        // The first of repeated attributes counts.
        if seen.contains(&name) {
            continue;
        }
        match name.as_slice() {
            b"http-equiv" if value == b"content-type" => got_pragma = true,
            b"content" if charset.is_none() => {
                if let Some(encoding) = charset_in_content(&value).and_then(document_label) {
                    charset = Some(encoding);
                    need_pragma = Some(true);
                }
            }
            b"charset" => {
                charset = document_label(&value);
                need_pragma = Some(false);
            }
            _ => {}
        }
        seen.push(name);
    }
    // A `content="…charset=…"` only counts beside `http-equiv="Content-Type"`.
    match need_pragma {
        Some(true) if !got_pragma => None,
        Some(_) => charset,
        None => None,
    }
}

/// "Extracting a character encoding from a meta element": the label after `charset=` in a
/// `content` value such as `text/html; charset='gb2312'`.
fn charset_in_content(content: &[u8]) -> Option<&[u8]> {
    let mut i = 0;
    loop {
        i += find_ci(&content[i..], b"charset")? + b"charset".len();
        while content.get(i).copied().is_some_and(is_space) {
            i += 1;
        }
        if content.get(i) != Some(&b'=') {
            continue;
        }
        i += 1;
        while content.get(i).copied().is_some_and(is_space) {
            i += 1;
        }
        return match content.get(i)? {
            &q @ (b'"' | b'\'') => {
                let len = content[i + 1..].iter().position(|&b| b == q)?;
                Some(&content[i + 1..i + 1 + len])
            }
            _ => {
                let len = content[i..]
                    .iter()
                    .position(|&b| is_space(b) || b == b';')
                    .unwrap_or(content.len() - i);
                Some(&content[i..i + len])
            }
        };
    }
}

/// The WHATWG prescan's "get an attribute": lower-cased names and values, quoted or not.
struct Attributes<'a> {
    s: &'a [u8],
    /// Where scanning goes on; after the last attribute, at the tag's `>` (or the end).
    i: usize,
}

impl Iterator for Attributes<'_> {
    type Item = (Vec<u8>, Vec<u8>);

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.s;
        while s.get(self.i).is_some_and(|&b| is_space(b) || b == b'/') {
            self.i += 1;
        }
        if *s.get(self.i)? == b'>' {
            return None;
        }
        let mut name = Vec::new();
        loop {
            let b = *s.get(self.i)?;
            match b {
                b'=' if !name.is_empty() => break,
                b if is_space(b) => {
                    while s.get(self.i).copied().is_some_and(is_space) {
                        self.i += 1;
                    }
                    if s.get(self.i) != Some(&b'=') {
                        return Some((name, Vec::new()));
                    }
                    break;
                }
                b'/' | b'>' => return Some((name, Vec::new())),
                b => name.push(b.to_ascii_lowercase()),
            }
            self.i += 1;
        }
        // At the '='.
        self.i += 1;
        while s.get(self.i).copied().is_some_and(is_space) {
            self.i += 1;
        }
        let mut value = Vec::new();
        match *s.get(self.i)? {
            q @ (b'"' | b'\'') => {
                self.i += 1;
                loop {
                    let b = *s.get(self.i)?;
                    self.i += 1;
                    if b == q {
                        return Some((name, value));
                    }
                    value.push(b.to_ascii_lowercase());
                }
            }
            b'>' => Some((name, value)),
            _ => {
                while let Some(&b) = s.get(self.i) {
                    if is_space(b) || b == b'>' {
                        return Some((name, value));
                    }
                    value.push(b.to_ascii_lowercase());
                    self.i += 1;
                }
                None
            }
        }
    }
}

/// White space as the HTML and XML prescans know it.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

fn leading_space(s: &[u8]) -> usize {
    s.iter().position(|&b| !is_space(b)).unwrap_or(s.len())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn find_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use encoding_rs::{BIG5, GB18030, GBK, SHIFT_JIS};

    /// Encodes with encoding_rs, asserting every character was representable.
    fn enc(encoding: &'static Encoding, s: &str) -> Vec<u8> {
        let (bytes, _, unmappable) = encoding.encode(s);
        assert!(
            !unmappable,
            "{s:?} is not representable in {}",
            encoding.name()
        );
        bytes.into_owned()
    }

    /// Decodes and checks the answer, and that nothing was replaced.
    fn check(
        bytes: &[u8],
        content_type: Option<&str>,
        encoding: &'static Encoding,
        provenance: Provenance,
    ) -> String {
        let d = decode(bytes, content_type);
        assert_eq!(
            (d.encoding.name(), d.provenance),
            (encoding.name(), provenance),
            "{:?}",
            d.text
        );
        assert!(!d.had_errors, "errors in {:?}", d.text);
        assert!(!d.text.contains('\u{FFFD}'), "U+FFFD in {:?}", d.text);
        d.text
    }

    fn rss(prolog: &str, title: &str) -> String {
        format!(
            "{prolog}\n<rss version=\"2.0\"><channel><title>新聞</title>\
             <item><title>{title}</title><link>https://example.test/1</link>\
             <description>{title}的摘要</description></item></channel></rss>\n"
        )
    }

    fn html(head: &str, body: &str) -> String {
        format!("<!DOCTYPE html>\n<html><head>{head}<title>{body}</title></head><body><p>{body}</p></body></html>\n")
    }

    /// The first item's title as feed-rs reads the re-encoded document.
    fn feed_title(bytes: &[u8], content_type: Option<&str>) -> String {
        let doc = to_utf8_document(bytes, content_type);
        assert!(!doc.had_errors);
        let feed = feed_rs::parser::parse(doc.bytes.as_slice()).expect("feed-rs parses it");
        feed.entries[0].title.as_ref().unwrap().content.clone()
    }

    const CS: &str = "海通证券助力厦门市政集团";

    #[test]
    fn provenance_displays_as_check_prints_it() {
        let all = [
            (Provenance::Bom, "BOM"),
            (Provenance::HttpHeader, "HTTP header"),
            (Provenance::XmlDeclaration, "XML declaration"),
            (Provenance::MetaTag, "<meta> tag"),
            (Provenance::ValidUtf8, "valid UTF-8"),
            (Provenance::Guessed, "guessed"),
        ];
        for (p, s) in all {
            assert_eq!(p.to_string(), s);
        }
    }

    #[test]
    fn bom_wins_over_everything_and_is_removed() {
        let mut bytes = b"\xEF\xBB\xBF".to_vec();
        bytes.extend_from_slice(rss("<?xml version=\"1.0\" encoding=\"gbk\"?>", CS).as_bytes());
        let text = check(
            &bytes,
            Some("text/xml; charset=big5"),
            UTF_8,
            Provenance::Bom,
        );
        assert!(text.starts_with("<?xml"));

        let mut bytes = vec![0xFF, 0xFE];
        for unit in "<p>中文</p>".encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        let text = check(
            &bytes,
            Some("text/html; charset=gbk"),
            UTF_16LE,
            Provenance::Bom,
        );
        assert_eq!(text, "<p>中文</p>");
    }

    #[test]
    fn utf16_xml_without_bom_is_recognised_by_its_declaration_bytes() {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-16\"?><rss version=\"2.0\"><channel><item><title>中文标题</title></item></channel></rss>";
        let mut le = Vec::new();
        let mut be = Vec::new();
        for unit in xml.encode_utf16() {
            le.extend_from_slice(&unit.to_le_bytes());
            be.extend_from_slice(&unit.to_be_bytes());
        }
        assert_eq!(check(&le, None, UTF_16LE, Provenance::XmlDeclaration), xml);
        assert_eq!(check(&be, None, UTF_16BE, Provenance::XmlDeclaration), xml);
        assert_eq!(feed_title(&le, None), "中文标题");
    }

    #[test]
    fn http_header_charset() {
        let bytes = enc(GBK, &html("", CS));
        for ct in [
            "text/html; charset=GBK",
            "text/html;charset=\"gbk\"",
            "text/html; Charset = 'gbk' ; foo=bar",
            "text/html; foo=bar; charset=gb2312",
        ] {
            assert!(
                check(&bytes, Some(ct), GBK, Provenance::HttpHeader).contains(CS),
                "{ct}"
            );
        }
        // An unknown label is no declaration at all.
        assert_eq!(
            decode(&bytes, Some("text/html; charset=nonsense")).provenance,
            Provenance::Guessed
        );
        assert_eq!(charset_param("text/html"), None);
        assert_eq!(charset_param("text/html; charset="), None);
    }

    #[test]
    fn gb2312_label_means_gbk() {
        for label in ["gb2312", "GB2312", "gbk", "x-gbk", "chinese", "csGB2312"] {
            assert_eq!(Encoding::for_label(label.as_bytes()), Some(GBK), "{label}");
        }
        assert_eq!(Encoding::for_label(b"gb18030"), Some(GB18030));
        let bytes = enc(GBK, CS);
        check(
            &bytes,
            Some("text/plain; charset=gb2312"),
            GBK,
            Provenance::HttpHeader,
        );
    }

    #[test]
    fn gbk_page_with_meta_charset() {
        for head in [
            "<meta charset=\"gbk\">",
            "<meta charset=gbk>",
            "<META CHARSET='GBK' />",
            "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=gb2312\">",
            "<meta content='text/html;charset=GBK' http-equiv='content-type'>",
            "<meta http-equiv=Content-Type content=\"text/html; charset = 'gbk'\">",
            "<meta name=\"viewport\" content=\"width=device-width\"><meta charset=gbk>",
        ] {
            let bytes = enc(GBK, &html(head, CS));
            let text = check(&bytes, Some("text/html"), GBK, Provenance::MetaTag);
            assert!(text.contains(CS), "{head}");
        }
    }

    #[test]
    fn meta_that_does_not_count() {
        for head in [
            // content=…charset=… without http-equiv=Content-Type
            "<meta content=\"text/html; charset=big5\">",
            "<!-- <meta charset=big5> -->",
            "<img alt=\"<meta charset=big5>\">",
            "<meta charset=hz-gb-2312>",
        ] {
            let bytes = enc(GBK, &html(head, &CS.repeat(4)));
            let d = decode(&bytes, None);
            assert_ne!(d.provenance, Provenance::MetaTag, "{head}");
            assert_ne!(d.encoding, BIG5, "{head}");
        }
        // Past the first 1024 bytes a meta is not looked for.
        let padding = format!("<script>{}</script>", " ".repeat(1024));
        let bytes = enc(
            GBK,
            &html(&format!("{padding}<meta charset=big5>"), &CS.repeat(4)),
        );
        assert_eq!(decode(&bytes, None).provenance, Provenance::Guessed);
    }

    #[test]
    fn utf8_labelled_gbk_stays_utf8() {
        // cs.com.cn, 2024: the site moved to UTF-8, its pages and headers still say gbk/gb2312.
        let page = html(
            "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=gb2312\">",
            CS,
        );
        let text = check(
            page.as_bytes(),
            Some("text/html; charset=GBK"),
            UTF_8,
            Provenance::ValidUtf8,
        );
        assert!(text.contains(CS));
        let feed = rss("<?xml version=\"1.0\" encoding=\"gbk\"?>", CS);
        check(feed.as_bytes(), None, UTF_8, Provenance::ValidUtf8);
        assert_eq!(feed_title(feed.as_bytes(), None), CS);
        assert_eq!(
            feed_title(feed.as_bytes(), Some("application/rss+xml; charset=gbk")),
            CS
        );
    }

    #[test]
    fn declared_utf8_reports_the_declaration() {
        let page = html("<meta charset=\"utf-8\">", CS);
        check(page.as_bytes(), None, UTF_8, Provenance::MetaTag);
        check(
            page.as_bytes(),
            Some("text/html; charset=UTF-8"),
            UTF_8,
            Provenance::HttpHeader,
        );
        let feed = rss("<?xml version='1.0' encoding='utf-8'?>", CS);
        check(feed.as_bytes(), None, UTF_8, Provenance::XmlDeclaration);
        // The header's gbk is what would have been used, and it lost to the bytes.
        check(
            feed.as_bytes(),
            Some("text/xml; charset=gbk"),
            UTF_8,
            Provenance::ValidUtf8,
        );
    }

    #[test]
    fn gb18030_four_byte_sequences() {
        let title = "生僻字𠀀与㐀，价格€5";
        let bytes = enc(
            GB18030,
            &rss("<?xml version=\"1.0\" encoding=\"GB18030\"?>", title),
        );
        // U+20000 is the four-byte 95 32 82 36, outside GBK.
        assert!(find(&bytes, &[0x95, 0x32, 0x82, 0x36]).is_some());
        let text = check(&bytes, None, GB18030, Provenance::XmlDeclaration);
        assert!(text.contains(title));
        assert_eq!(feed_title(&bytes, None), title);
        // Mislabelled gb2312, the same bytes still decode: GBK is decoded as GB18030.
        let mislabelled = enc(
            GB18030,
            &rss("<?xml version=\"1.0\" encoding=\"gb2312\"?>", title),
        );
        assert!(check(&mislabelled, None, GBK, Provenance::XmlDeclaration).contains(title));
        // GBK's single-byte euro sign (0x80, what Windows code page 936 writes).
        let euro = [b"<p>".as_slice(), &[0x80], &enc(GBK, "价格"), b"</p>"].concat();
        assert_eq!(
            check(
                &euro,
                Some("text/html; charset=gbk"),
                GBK,
                Provenance::HttpHeader
            ),
            "<p>€价格</p>"
        );
    }

    #[test]
    fn big5_via_http_header_only() {
        let title = "臺灣證券交易所公布年度報告";
        let bytes = enc(BIG5, &rss("<?xml version=\"1.0\"?>", title));
        let text = check(
            &bytes,
            Some("application/rss+xml; charset=big5"),
            BIG5,
            Provenance::HttpHeader,
        );
        assert!(text.contains(title));
        assert_eq!(
            feed_title(&bytes, Some("application/rss+xml; charset=big5")),
            title
        );
        // Declared in the prolog instead.
        let bytes = enc(BIG5, &rss("<?xml version='1.0' encoding='Big5'?>", title));
        check(&bytes, None, BIG5, Provenance::XmlDeclaration);
    }

    #[test]
    fn xml_prolog_gb2312_single_quotes() {
        let bytes = enc(GBK, &rss("<?xml version='1.0' encoding='GB2312'?>", CS));
        let text = check(
            &bytes,
            Some("application/xml"),
            GBK,
            Provenance::XmlDeclaration,
        );
        assert!(text.contains(CS));
        // Other spellings of the declaration.
        for prolog in [
            "<?xml version=\"1.0\" encoding = \"gbk\" standalone=\"yes\"?>",
            "  \n<?xml encoding=gbk version=1.0?>",
            "<?xml\tversion=\"1.0\"\nencoding=\"GBK\"\n?>",
        ] {
            let bytes = enc(GBK, &rss(prolog, CS));
            check(&bytes, None, GBK, Provenance::XmlDeclaration);
            let doc = String::from_utf8(to_utf8_document(&bytes, None).bytes).unwrap();
            assert!(
                doc.contains("encoding") && doc.contains("\"UTF-8\""),
                "{doc}"
            );
        }
        // The header outranks the prolog.
        check(
            &bytes,
            Some("text/xml; charset=gb18030"),
            GB18030,
            Provenance::HttpHeader,
        );
    }

    #[test]
    fn to_utf8_document_rewrites_the_declaration() {
        let bytes = enc(GBK, &rss("<?xml version='1.0' encoding='GB2312'?>", CS));
        let doc = to_utf8_document(&bytes, None);
        assert_eq!(
            (doc.encoding, doc.provenance, doc.had_errors),
            (GBK, Provenance::XmlDeclaration, false)
        );
        let text = String::from_utf8(doc.bytes).unwrap();
        assert!(
            text.starts_with("<?xml version='1.0' encoding='UTF-8'?>"),
            "{text}"
        );
        assert_eq!(feed_title(&bytes, None), CS);
        // Without the rewrite feed-rs decodes a second time, by the prolog: mojibake or an error.
        let utf8_labelled_gbk = rss("<?xml version=\"1.0\" encoding=\"gbk\"?>", CS);
        let raw = feed_rs::parser::parse(utf8_labelled_gbk.as_bytes()).unwrap();
        assert_ne!(
            raw.entries[0].title.as_ref().map(|t| t.content.as_str()),
            Some(CS)
        );

        // Declarations that already mean UTF-8, or none at all, are left as they are.
        for prolog in [
            "<?xml version=\"1.0\" encoding=\"utf8\"?>",
            "<?xml version=\"1.0\"?>",
            "",
        ] {
            let feed = rss(prolog, CS);
            assert_eq!(
                to_utf8_document(feed.as_bytes(), None).bytes,
                feed.as_bytes(),
                "{prolog}"
            );
        }
    }

    #[test]
    fn json_passes_through_without_bom() {
        let json = "{\"version\":\"https://jsonfeed.org/version/1.1\",\"title\":\"j\",\"items\":[{\"id\":\"1\",\"title\":\"海通证券\",\"content_html\":\"<meta charset=big5>\"}]}";
        let with_bom = [b"\xEF\xBB\xBF".as_slice(), json.as_bytes()].concat();
        let doc = to_utf8_document(&with_bom, Some("application/feed+json"));
        assert_eq!(doc.bytes, json.as_bytes());
        assert_eq!(doc.provenance, Provenance::Bom);
        let feed = feed_rs::parser::parse(doc.bytes.as_slice()).unwrap();
        assert_eq!(feed.entries[0].title.as_ref().unwrap().content, "海通证券");
        // The <meta> inside an item is not the document's declaration.
        check(json.as_bytes(), None, UTF_8, Provenance::ValidUtf8);
        let ascii = json.replace("海通证券", "x");
        check(ascii.as_bytes(), None, UTF_8, Provenance::ValidUtf8);
    }

    #[test]
    fn ascii_and_empty_are_utf8() {
        check(b"", None, UTF_8, Provenance::ValidUtf8);
        check(
            b"<rss version=\"2.0\"/>",
            None,
            UTF_8,
            Provenance::ValidUtf8,
        );
        // ASCII under a legacy declaration decodes the same; the declaration is reported.
        check(
            b"<meta charset=gbk><p>x</p>",
            None,
            GBK,
            Provenance::MetaTag,
        );
    }

    #[test]
    fn declared_utf16_is_not_trusted_blindly() {
        // In the document, read as ASCII: it cannot be UTF-16, so it means UTF-8 (WHATWG).
        let page = html("<meta charset=\"utf-16\">", "x");
        check(page.as_bytes(), None, UTF_8, Provenance::MetaTag);
        // Read that way the declaration says UTF-8, so it is what is reported.
        let feed = rss("<?xml version=\"1.0\" encoding=\"UTF-16\"?>", CS);
        check(feed.as_bytes(), None, UTF_8, Provenance::XmlDeclaration);
        assert_eq!(feed_title(feed.as_bytes(), None), CS);
        // In the header, over ASCII bytes: ignored.
        check(
            page.as_bytes(),
            Some("text/html; charset=utf-16"),
            UTF_8,
            Provenance::MetaTag,
        );
        check(
            b"<p>x</p>",
            Some("text/html; charset=utf-16le"),
            UTF_8,
            Provenance::ValidUtf8,
        );
        // Over real UTF-16 without a BOM: believed, in the byte order the bytes show.
        let mut be = Vec::new();
        for unit in "<p>中文</p>".encode_utf16() {
            be.extend_from_slice(&unit.to_be_bytes());
        }
        assert_eq!(
            check(
                &be,
                Some("text/html; charset=utf-16"),
                UTF_16BE,
                Provenance::HttpHeader
            ),
            "<p>中文</p>"
        );
    }

    #[test]
    fn undeclared_legacy_bytes_are_guessed() {
        let text = "国家统计局今天发布数据，一季度国内生产总值同比增长百分之五点三，\
                    经济运行开局良好，市场预期持续改善。";
        let bytes = enc(GBK, &html("", text));
        assert!(check(&bytes, Some("text/html"), GBK, Provenance::Guessed).contains(text));
        let text = "香港交易所公布全年業績，收入及其他收益創歷史紀錄，董事會建議派發末期股息。";
        let bytes = enc(BIG5, &html("", text));
        assert!(check(&bytes, None, BIG5, Provenance::Guessed).contains(text));
        let text =
            "東京証券取引所は本日、新しい上場規則を発表しました。市場関係者は歓迎しています。";
        let bytes = enc(SHIFT_JIS, &html("", text));
        assert!(check(&bytes, None, SHIFT_JIS, Provenance::Guessed).contains(text));
    }

    #[test]
    fn truncated_multibyte_at_the_end_sets_had_errors() {
        let mut gbk = enc(GBK, CS);
        gbk.pop();
        let d = decode(&gbk, Some("text/plain; charset=gbk"));
        assert!(d.had_errors);
        assert!(d.text.ends_with('\u{FFFD}'));
        assert!(d.text.starts_with("海通证券助力厦门市政集"));

        let mut utf8 = CS.as_bytes().to_vec();
        utf8.pop();
        let d = decode(&utf8, Some("text/plain; charset=gbk"));
        assert_eq!(
            (d.encoding, d.provenance, d.had_errors),
            (UTF_8, Provenance::ValidUtf8, true)
        );
        assert_eq!(d.text, "海通证券助力厦门市政集\u{FFFD}");
        let d = decode(&utf8, Some("text/plain; charset=utf-8"));
        assert_eq!(
            (d.encoding, d.provenance, d.had_errors),
            (UTF_8, Provenance::HttpHeader, true)
        );

        let mut gb18030 = enc(GB18030, "字𠀀");
        gb18030.truncate(gb18030.len() - 2);
        let doc = to_utf8_document(&gb18030, Some("text/plain; charset=gb18030"));
        assert!(doc.had_errors);
        assert_eq!(String::from_utf8(doc.bytes).unwrap(), "字\u{FFFD}");
    }

    /// tests/fixtures/encodings/ as the integration tests will serve them.
    #[test]
    fn encoding_fixtures_parse_to_their_titles() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/encodings");
        let expected = std::fs::read_to_string(dir.join("expected.tsv")).unwrap();
        let mut n = 0;
        for line in expected
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let [file, charset, title] = line.split('\t').collect::<Vec<_>>()[..] else {
                panic!("bad line {line:?}");
            };
            let bytes = std::fs::read(dir.join(file)).unwrap();
            let content_type =
                (charset != "-").then(|| format!("application/rss+xml; charset={charset}"));
            assert_eq!(feed_title(&bytes, content_type.as_deref()), title, "{file}");
            n += 1;
        }
        assert_eq!(n, 6);
    }
}
