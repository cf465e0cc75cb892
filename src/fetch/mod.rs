//! Polite, bounded HTTP GETs.
//!
//! Every read is bounded: a connect timeout, a total deadline, a redirect cap and a body cap
//! counted on the decompressed bytes (so a gzip bomb stops at the cap too). Conditional
//! requests use the validators stored from the last response. At most `[fetch] per_host`
//! requests (default 2) run against one host at a time, whichever source or article they are
//! for.
//!
//! Response heads are bounded by hyper: at most 100 headers and about 400 KiB over HTTP/1.1,
//! 16 KiB over HTTP/2; a larger head fails the request. Validators longer than
//! [`MAX_VALIDATOR_BYTES`] are not kept (they would be stored and sent back on every poll), and
//! no URL longer than [`MAX_URL_BYTES`] is requested, redirects included.
//!
//! Links found in pages are followed with [`Access::PublicOnly`]: a client whose resolver
//! drops private, loopback and link-local addresses and whose redirects are checked the same
//! way, so a hostile page cannot point tributary at the operator's own network.

mod limits;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use limits::{Limits, Slot};

use chrono::{DateTime, Utc};
use reqwest::header::{
    HeaderMap, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, EXPIRES, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, LAST_MODIFIED, LOCATION, RETRY_AFTER,
};
use reqwest::StatusCode;
use url::Url;

use crate::config::FetchConfig;
use crate::model::{Validators, MAX_URL_BYTES, MAX_VALIDATOR_BYTES};

/// Which addresses a request may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anything: for the URLs an operator configured.
    Any,
    /// Public addresses only: for links found in fetched pages.
    PublicOnly,
}

/// A shared HTTP client; cheap to clone.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    public_client: reqwest::Client,
    max_body_bytes: u64,
    timeout: Duration,
    max_redirects: usize,
    limits: Arc<Limits>,
}

/// A successful response, read whole.
#[derive(Debug)]
pub struct Fetched {
    pub status: u16,
    /// Where the body came from after redirects; relative links resolve against it.
    pub url: Url,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub validators: Validators,
    pub hints: Hints,
}

/// What a response says about when and where to ask next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    /// How long the response may be cached (Cache-Control max-age, else Expires).
    pub cache_for: Option<Duration>,
    /// Every redirect was permanent (301/308): the resource lives here now.
    pub moved_to: Option<Url>,
}

#[derive(Debug)]
pub enum FetchOutcome {
    /// 304: the stored copy is current. Validators may still have changed.
    NotModified(Validators, Hints),
    Fetched(Fetched),
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("HTTP {status}{}", retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    Status {
        status: StatusCode,
        /// Retry-After, when the server sent one (429, 503).
        retry_after: Option<Duration>,
    },
    #[error("body larger than the {limit}-byte cap")]
    TooLarge { limit: u64 },
    #[error("timed out after {}s", .0.as_secs())]
    Timeout(Duration),
    #[error("connection refused")]
    Refused,
    #[error("too many redirects")]
    Redirects,
    /// Over hyper's bounds on an HTTP/1.1 response head: 100 headers, about 400 KiB. (HTTP/2
    /// heads are bounded at 16 KiB by the h2 settings; a larger one resets the stream.)
    #[error("response headers too large or too many")]
    HeadersTooLarge,
    #[error("{what} is a URL of {len} bytes, longer than the {MAX_URL_BYTES}-byte limit")]
    UrlTooLong { what: &'static str, len: usize },
    #[error("refused: {0} is a private or loopback address (set allow_private = true on the source to allow it)")]
    Private(String),
    #[error("{0}")]
    Other(String),
}

impl Fetcher {
    /// A client for `config`, counting its requests against `limits` (which it shares with
    /// every other fetcher of the process).
    pub fn new(config: &FetchConfig, limits: Arc<Limits>) -> Result<Fetcher, FetchError> {
        let builder = || {
            reqwest::Client::builder()
                .user_agent(config.user_agent.clone())
                .connect_timeout(config.connect_timeout)
                .timeout(config.timeout)
                .gzip(true)
                .brotli(true)
                .deflate(true)
        };
        let build_error = |e: reqwest::Error| FetchError::Other(crate::error_chain(&e));
        // Redirects are followed by hand in `follow`: it records permanent moves and checks
        // every hop.
        let client = builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(build_error)?;
        let public_client = builder()
            .dns_resolver(Arc::new(PublicResolver))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(build_error)?;
        Ok(Fetcher {
            client,
            public_client,
            max_body_bytes: config.max_body_bytes,
            timeout: config.timeout,
            max_redirects: config.max_redirects,
            limits,
        })
    }

    /// GETs a configured URL, conditionally when `validators` has anything.
    pub async fn get(
        &self,
        url: &Url,
        validators: &Validators,
    ) -> Result<FetchOutcome, FetchError> {
        self.get_with(url, validators, Access::Any).await
    }

    /// GETs `url` with the given reach.
    pub async fn get_with(
        &self,
        url: &Url,
        validators: &Validators,
        access: Access,
    ) -> Result<FetchOutcome, FetchError> {
        if url.as_str().len() > MAX_URL_BYTES {
            return Err(FetchError::UrlTooLong {
                what: "the address",
                len: url.as_str().len(),
            });
        }
        let client = match access {
            Access::Any => &self.client,
            Access::PublicOnly if literal_private_host(url) => {
                return Err(FetchError::Private(
                    url.host_str().unwrap_or("").to_string(),
                ))
            }
            Access::PublicOnly => &self.public_client,
        };
        let _slot = self.limits.host_slot(url.host_str().unwrap_or("")).await;
        self.send(client, url, validators, access).await
    }

    /// The limits this fetcher counts against.
    pub fn limits(&self) -> &Arc<Limits> {
        &self.limits
    }

    /// One GET, following redirects by hand (so a permanent move can be recorded and every
    /// hop checked against `access`), under one total deadline.
    async fn send(
        &self,
        client: &reqwest::Client,
        url: &Url,
        validators: &Validators,
        access: Access,
    ) -> Result<FetchOutcome, FetchError> {
        match tokio::time::timeout(self.timeout, self.follow(client, url, validators, access)).await
        {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout(self.timeout)),
        }
    }

    async fn follow(
        &self,
        client: &reqwest::Client,
        url: &Url,
        validators: &Validators,
        access: Access,
    ) -> Result<FetchOutcome, FetchError> {
        let mut current = url.clone();
        // True while every hop so far was permanent (301, 308).
        let mut permanent = true;
        let mut hops = 0;
        let mut response = loop {
            let mut request = client.get(current.clone());
            if let Some(etag) = &validators.etag {
                request = request.header(IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &validators.last_modified {
                request = request.header(IF_MODIFIED_SINCE, lm);
            }
            let response = request.send().await.map_err(|e| self.classify(e))?;
            let status = response.status();
            if !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
                break response;
            }
            hops += 1;
            if hops > self.max_redirects {
                return Err(FetchError::Redirects);
            }
            let location = redirect_target(&current, &response, access)?;
            permanent &= matches!(
                status,
                StatusCode::MOVED_PERMANENTLY | StatusCode::PERMANENT_REDIRECT
            );
            current = location;
        };
        let status = response.status();
        let headers = response.headers();
        let hints = Hints {
            cache_for: cache_lifetime(headers),
            moved_to: (hops > 0 && permanent).then(|| current.clone()),
        };
        let new_validators = read_validators(headers);
        if status == StatusCode::NOT_MODIFIED {
            // A 304 may omit validators; keep the ones that got it.
            return Ok(FetchOutcome::NotModified(
                Validators {
                    etag: new_validators.etag.or_else(|| validators.etag.clone()),
                    last_modified: new_validators
                        .last_modified
                        .or_else(|| validators.last_modified.clone()),
                },
                hints,
            ));
        }
        if !status.is_success() {
            return Err(FetchError::Status {
                status,
                retry_after: retry_after(headers, Utc::now()),
            });
        }
        let limit = self.max_body_bytes;
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        // Content-Length counts the compressed bytes when the body is encoded, so it can only
        // refuse early; the running count below is what bounds memory.
        if declared.is_some_and(|n| n > limit) && headers.get("content-encoding").is_none() {
            return Err(FetchError::TooLarge { limit });
        }
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = Vec::with_capacity(declared.unwrap_or(0).min(limit) as usize);
        while let Some(chunk) = response.chunk().await.map_err(|e| self.classify(e))? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(FetchError::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(FetchOutcome::Fetched(Fetched {
            status: status.as_u16(),
            url: current,
            content_type,
            body,
            validators: new_validators,
            hints,
        }))
    }

    fn classify(&self, err: reqwest::Error) -> FetchError {
        if err.is_timeout() {
            return FetchError::Timeout(self.timeout);
        }
        if err.is_redirect() {
            return FetchError::Redirects;
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::ConnectionRefused {
                    return FetchError::Refused;
                }
            }
            if let Some(PrivateAddress(host)) = c.downcast_ref::<PrivateAddress>() {
                return FetchError::Private(host.clone());
            }
            cause = c.source();
        }
        // The innermost cause says what happened ("Name or service not known"); the layers
        // above it repeat the URL and the library's names for its stages.
        let mut root: &(dyn std::error::Error + 'static) = &err;
        while let Some(next) = root.source() {
            root = next;
        }
        let host = err
            .url()
            .and_then(|u| u.host_str())
            .unwrap_or("the server")
            .to_string();
        let chain = crate::error_chain(&err);
        if chain.contains("message head is too large") {
            FetchError::HeadersTooLarge
        } else if chain.contains("dns error") {
            FetchError::Other(format!("cannot resolve {host}: {root}"))
        } else if err.is_connect() {
            FetchError::Other(format!("cannot connect to {host}: {root}"))
        } else if err.is_body() || err.is_decode() {
            FetchError::Other(format!("reading the body failed: {root}"))
        } else {
            FetchError::Other(chain)
        }
    }
}

/// The response's ETag and Last-Modified, each only when it is at most [`MAX_VALIDATOR_BYTES`].
fn read_validators(headers: &HeaderMap) -> Validators {
    let get = |name| {
        headers
            .get(name)
            .filter(|v| v.len() <= MAX_VALIDATOR_BYTES)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Validators {
        etag: get(ETAG),
        last_modified: get(LAST_MODIFIED),
    }
}

/// Where a redirect from `current` goes, checked: a Location that is there, not too long,
/// http(s), and (for links found in pages) not a literal private address.
fn redirect_target(
    current: &Url,
    response: &reqwest::Response,
    access: Access,
) -> Result<Url, FetchError> {
    let too_long = |len| FetchError::UrlTooLong {
        what: "the redirect's Location",
        len,
    };
    let raw_location = response.headers().get(LOCATION);
    if let Some(len) = raw_location
        .map(|l| l.len())
        .filter(|len| *len > MAX_URL_BYTES)
    {
        return Err(too_long(len));
    }
    let Some(location) = raw_location
        .and_then(|v| v.to_str().ok())
        .and_then(|l| current.join(l).ok())
    else {
        return Err(FetchError::Status {
            status: response.status(),
            retry_after: None,
        });
    };
    if location.as_str().len() > MAX_URL_BYTES {
        return Err(too_long(location.as_str().len()));
    }
    if !matches!(location.scheme(), "http" | "https") {
        return Err(FetchError::Other(format!(
            "redirect to {location}: not http(s)"
        )));
    }
    if access == Access::PublicOnly && literal_private_host(&location) {
        return Err(FetchError::Private(
            location.host_str().unwrap_or("").into(),
        ));
    }
    Ok(location)
}

/// Retry-After: delay-seconds or an HTTP date (RFC 9110 §10.2.3), from `now`.
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// How long a response may be cached: Cache-Control max-age, else Expires minus Date (or now).
/// `no-cache`/`no-store` mean nothing is promised.
pub fn cache_lifetime(headers: &HeaderMap) -> Option<Duration> {
    if let Some(cc) = headers.get(CACHE_CONTROL).and_then(|v| v.to_str().ok()) {
        let cc = cc.to_ascii_lowercase();
        if cc.contains("no-store") || cc.contains("no-cache") {
            return None;
        }
        if let Some(secs) = cc
            .split(',')
            .filter_map(|d| d.trim().strip_prefix("max-age="))
            .find_map(|v| v.trim_matches('"').parse::<u64>().ok())
        {
            return Some(Duration::from_secs(secs));
        }
    }
    let date = |name| {
        headers
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
            .map(|d| d.with_timezone(&Utc))
    };
    let expires = date(EXPIRES)?;
    let now = date(reqwest::header::DATE).unwrap_or_else(Utc::now);
    (expires - now).to_std().ok()
}

/// The error the public-only client's resolver and redirect check raise.
#[derive(Debug, thiserror::Error)]
#[error("{0} is a private or loopback address")]
struct PrivateAddress(String);

/// Resolves names to their public addresses only.
struct PublicResolver;

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(
                    Box::new(PrivateAddress(host)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether the URL names a non-public address directly (an IP literal or localhost), which no
/// resolver sees.
pub fn literal_private_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => !is_public(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => !is_public(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        None => true,
    }
}

/// Whether an address is on the public internet: not loopback, private (RFC 1918, ULA),
/// link-local, shared (CGNAT), unspecified, broadcast or multicast.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "203.0.114.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn retry_after_in_both_forms() {
        let now = DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(120)));
        h.insert(
            RETRY_AFTER,
            "Thu, 26 Nov 2026 10:05:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(300)));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn cache_lifetimes() {
        let mut h = HeaderMap::new();
        h.insert(CACHE_CONTROL, "public, max-age=3600".parse().unwrap());
        assert_eq!(cache_lifetime(&h), Some(Duration::from_secs(3600)));
        h.insert(CACHE_CONTROL, "no-cache".parse().unwrap());
        assert_eq!(cache_lifetime(&h), None);
        let mut h = HeaderMap::new();
        h.insert(
            reqwest::header::DATE,
            "Thu, 26 Nov 2026 10:00:00 GMT".parse().unwrap(),
        );
        h.insert(EXPIRES, "Thu, 26 Nov 2026 10:30:00 GMT".parse().unwrap());
        assert_eq!(cache_lifetime(&h), Some(Duration::from_secs(1800)));
    }

    #[test]
    fn literal_hosts() {
        let private = |u: &str| literal_private_host(&Url::parse(u).unwrap());
        assert!(private("http://127.0.0.1:8080/a"));
        assert!(private("http://[::1]/a"));
        assert!(private("http://localhost/a"));
        assert!(!private("https://www.cs.com.cn/a"));
        assert!(!private("http://8.8.8.8/a"));
    }
}
