//! Polite, bounded HTTP GETs.
//!
//! Every read is bounded: a connect timeout, a total deadline, a redirect cap and a body cap
//! counted on the decompressed bytes (so a gzip bomb stops at the cap too). Conditional
//! requests use the validators stored from the last response.

use std::time::Duration;

use reqwest::header::{
    HeaderMap, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};
use reqwest::StatusCode;
use url::Url;

use crate::config::FetchConfig;
use crate::model::Validators;

/// A shared HTTP client; cheap to clone.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    max_body_bytes: u64,
    timeout: Duration,
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
    #[error("{0}")]
    Other(String),
}

impl Fetcher {
    pub fn new(config: &FetchConfig) -> Result<Fetcher, FetchError> {
        let client = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::limited(config.max_redirects))
            .gzip(true)
            .brotli(true)
            .deflate(true)
            .build()
            .map_err(|e| FetchError::Other(crate::error_chain(&e)))?;
        Ok(Fetcher {
            client,
            max_body_bytes: config.max_body_bytes,
            timeout: config.timeout,
        })
    }

    /// GETs `url`, conditionally when `validators` has anything.
    pub async fn get(
        &self,
        url: &Url,
        validators: &Validators,
    ) -> Result<FetchOutcome, FetchError> {
        let mut request = self.client.get(url.clone());
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
