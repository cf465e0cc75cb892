//! Polite, bounded HTTP GETs.
//!
//! Every read is bounded: a connect timeout, a total deadline, a redirect cap and a body cap
//! counted on the decompressed bytes (so a gzip bomb stops at the cap too). Conditional
//! requests use the validators stored from the last response. At most
//! [`PER_HOST_CONCURRENCY`] requests run against one host at a time, whichever source or
//! article they are for.
//!
//! Links found in pages are followed with [`Access::PublicOnly`]: a client whose resolver
//! drops private, loopback and link-local addresses and whose redirects are checked the same
//! way, so a hostile page cannot point tributary at the operator's own network.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use reqwest::header::{
    HeaderMap, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};
use reqwest::StatusCode;
use url::Url;

use crate::config::FetchConfig;
use crate::model::Validators;

/// Requests in flight to one host at most.
pub const PER_HOST_CONCURRENCY: usize = 2;

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
    hosts: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
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
}

#[derive(Debug)]
pub enum FetchOutcome {
    /// 304: the stored copy is current. Validators may still have changed.
    NotModified(Validators),
    Fetched(Fetched),
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("HTTP {status}")]
    Status { status: StatusCode },
    #[error("body larger than the {limit}-byte cap")]
    TooLarge { limit: u64 },
    #[error("timed out after {}s", .0.as_secs())]
    Timeout(Duration),
    #[error("connection refused")]
    Refused,
    #[error("too many redirects")]
    Redirects,
    #[error("refused: {0} is a private or loopback address (set allow_private = true on the source to allow it)")]
    Private(String),
    #[error("{0}")]
    Other(String),
}

impl Fetcher {
    pub fn new(config: &FetchConfig) -> Result<Fetcher, FetchError> {
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
        let client = builder()
            .redirect(reqwest::redirect::Policy::limited(config.max_redirects))
            .build()
            .map_err(build_error)?;
        let max_redirects = config.max_redirects;
        let public_client = builder()
            .dns_resolver(Arc::new(PublicResolver))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= max_redirects {
                    attempt.error("too many redirects")
                } else if literal_private_host(attempt.url()) {
                    let host = attempt.url().host_str().unwrap_or("").to_string();
                    attempt.error(PrivateAddress(host))
                } else {
                    attempt.follow()
                }
            }))
            .build()
            .map_err(build_error)?;
        Ok(Fetcher {
            client,
            public_client,
            max_body_bytes: config.max_body_bytes,
            timeout: config.timeout,
            hosts: Arc::default(),
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
        let client = match access {
            Access::Any => &self.client,
            Access::PublicOnly if literal_private_host(url) => {
                return Err(FetchError::Private(
                    url.host_str().unwrap_or("").to_string(),
                ))
            }
            Access::PublicOnly => &self.public_client,
        };
        let host = url.host_str().unwrap_or("").to_ascii_lowercase();
        let slot = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
            hosts
                .entry(host)
                .or_insert_with(|| Arc::new(Semaphore::new(PER_HOST_CONCURRENCY)))
                .clone()
        };
        let _permit = slot.acquire_owned().await;
        self.send(client, url, validators).await
    }

    async fn send(
        &self,
        client: &reqwest::Client,
        url: &Url,
        validators: &Validators,
    ) -> Result<FetchOutcome, FetchError> {
        let mut request = client.get(url.clone());
        if let Some(etag) = &validators.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &validators.last_modified {
            request = request.header(IF_MODIFIED_SINCE, lm);
        }
        let mut response = request.send().await.map_err(|e| self.classify(e))?;
        let status = response.status();
        let new_validators = read_validators(response.headers());
        if status == StatusCode::NOT_MODIFIED {
            // A 304 may omit validators; keep the ones that got it.
            return Ok(FetchOutcome::NotModified(Validators {
                etag: new_validators.etag.or_else(|| validators.etag.clone()),
                last_modified: new_validators
                    .last_modified
                    .or_else(|| validators.last_modified.clone()),
            }));
        }
        if !status.is_success() {
            return Err(FetchError::Status { status });
        }
        let limit = self.max_body_bytes;
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        // Content-Length counts the compressed bytes when the body is encoded, so it can only
        // refuse early; the running count below is what bounds memory.
        if declared.is_some_and(|n| n > limit)
            && response.headers().get("content-encoding").is_none()
        {
            return Err(FetchError::TooLarge { limit });
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let final_url = response.url().clone();
        let mut body = Vec::with_capacity(declared.unwrap_or(0).min(limit) as usize);
        while let Some(chunk) = response.chunk().await.map_err(|e| self.classify(e))? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(FetchError::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(FetchOutcome::Fetched(Fetched {
            status: status.as_u16(),
            url: final_url,
            content_type,
            body,
            validators: new_validators,
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
        if chain.contains("dns error") {
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

fn read_validators(headers: &HeaderMap) -> Validators {
    let get = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Validators {
        etag: get(ETAG),
        last_modified: get(LAST_MODIFIED),
    }
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
    fn literal_hosts() {
        let private = |u: &str| literal_private_host(&Url::parse(u).unwrap());
        assert!(private("http://127.0.0.1:8080/a"));
        assert!(private("http://[::1]/a"));
        assert!(private("http://localhost/a"));
        assert!(!private("https://www.cs.com.cn/a"));
        assert!(!private("http://8.8.8.8/a"));
    }
}
