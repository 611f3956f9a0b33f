//! Reads of the node's own components (the Mesos agent or master, Marathon): one GET with a
//! deadline and a bounded body, with the service account's token when security asks one.

use std::sync::Arc;
use std::time::Duration;

use dcos_iam::client::{ServiceLogin, TokenSource};

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request failed or timed out.
    #[error("cannot read {url}")]
    Request {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The answer was not 2xx.
    #[error("{url} answered {status}")]
    Status {
        /// The URL.
        url: String,
        /// Its status.
        status: u16,
    },
    /// The body was larger than allowed.
    #[error("{url} answered more than {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The body was not the JSON expected.
    #[error("{url} answered JSON that cannot be read")]
    Json {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// No token could be had for the service account.
    #[error("cannot log in to read {url}: {reason}")]
    Login {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// A client of the local components.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    tokens: Option<Arc<TokenSource>>,
    timeout: Duration,
}

impl Fetcher {
    /// A client whose requests take at most `timeout`, logged in as `login` if given.
    pub fn new(timeout: Duration, login: Option<ServiceLogin>) -> Fetcher {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            .pool_max_idle_per_host(4)
            .build()
            .unwrap_or_default();
        Fetcher {
            client,
            tokens: login.map(|l| Arc::new(TokenSource::new(l))),
            timeout,
        }
    }

    /// GETs `url` and reads at most `limit` bytes of JSON.
    pub async fn json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        limit: usize,
    ) -> Result<T, FetchError> {
        let body = self.bytes(url, limit).await?;
        serde_json::from_slice(&body).map_err(|source| FetchError::Json {
            url: url.to_string(),
            source,
        })
    }

    /// GETs `url` and reads at most `limit` bytes.
    pub async fn bytes(&self, url: &str, limit: usize) -> Result<Vec<u8>, FetchError> {
        let request_err = |source| FetchError::Request {
            url: url.to_string(),
            source,
        };
        let mut req = self.client.get(url);
        if let Some(tokens) = &self.tokens {
            let token = tokio::time::timeout(self.timeout, tokens.token())
                .await
                .map_err(|_| FetchError::Login {
                    url: url.to_string(),
                    reason: "the IAM did not answer in time".into(),
                })?
                .map_err(|reason| FetchError::Login {
                    url: url.to_string(),
                    reason,
                })?;
            req = req.header(reqwest::header::AUTHORIZATION, format!("token={token}"));
        }
        let mut resp = req.send().await.map_err(request_err)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(FetchError::Status {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(FetchError::TooLarge {
                url: url.to_string(),
                limit,
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(request_err)? {
            if body.len() + chunk.len() > limit {
                return Err(FetchError::TooLarge {
                    url: url.to_string(),
                    limit,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}
