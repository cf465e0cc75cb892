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
mod tests;
