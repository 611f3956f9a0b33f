//! Trusted OpenID Connect providers: an ID token one of them signed (RS256, its issuer, this
//! cluster as audience, not expired, a verified e-mail) logs in the remote account named by
//! that e-mail, if the IAM has one from that provider. Their keys come from a JWKS file or
//! URL, read at start and, for a URL, every [`REFRESH`].

use std::path::PathBuf;
use std::sync::RwLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::api::{self, Jwks, VerifyingKey};

/// How often a provider's JWKS URL is read again.
pub const REFRESH: Duration = Duration::from_secs(300);
/// The largest JWKS read.
const MAX_JWKS: usize = 256 * 1024;

/// A trusted provider as the node config names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Its id in `/auth/providers` and in remote accounts' `provider_id`.
    pub id: String,
    /// What the login page calls it.
    #[serde(default)]
    pub description: String,
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// The `aud` its tokens carry (this cluster's client id there).
    pub client_id: String,
    /// Its keys, as a JWKS file.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Its keys, as a JWKS URL.
    #[serde(default)]
    pub jwks_url: Option<String>,
}

/// A provider and the keys it signs with.
#[derive(Debug)]
pub struct Provider {
    /// Its id.
    pub id: String,
    /// Its description.
    pub description: String,
    config: ProviderConfig,
    keys: RwLock<Vec<VerifyingKey>>,
}

impl Provider {
    /// The provider of `config`, with the keys of its file (a URL is read by [`Provider::refresh`]).
    pub fn new(config: ProviderConfig) -> Result<Provider, String> {
        let keys = match &config.jwks_file {
            Some(path) => {
                let text = fs_err::read(path).map_err(|e| e.to_string())?;
                parse(&text)?
            }
            None => Vec::new(),
        };
        if config.jwks_file.is_none() && config.jwks_url.is_none() {
            return Err(format!(
                "provider {}: give jwks_file or jwks_url",
                config.id
            ));
        }
        Ok(Provider {
            id: config.id.clone(),
            description: config.description.clone(),
            config,
            keys: RwLock::new(keys),
        })
    }

    /// Reads the JWKS URL again, if the provider has one.
    pub async fn refresh(&self, client: &reqwest::Client) {
        let Some(url) = &self.config.jwks_url else {
            return;
        };
        let fetched = async {
            let resp = client.get(url).send().await.map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("{} answered {}", url, resp.status()));
            }
            let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
            if bytes.len() > MAX_JWKS {
                return Err(format!("{url}: JWKS over {MAX_JWKS} bytes"));
            }
            parse(&bytes)
        };
        match fetched.await {
            Ok(keys) => *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys,
            Err(e) => {
                tracing::warn!(provider = %self.id, error = %e, "cannot read the provider's keys")
            }
        }
    }

    /// The uid (the verified e-mail) an ID token of this provider vouches for.
    pub fn vouches(&self, token: &str, now: u64) -> Option<String> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        let claims = api::verify(token, &keys, now).ok()?;
        let issuer = claims.get("iss").and_then(|v| v.as_str());
        let audience_ok = match claims.get("aud") {
            Some(serde_json::Value::String(a)) => *a == self.config.client_id,
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .any(|a| a.as_str() == Some(&self.config.client_id)),
            _ => false,
        };
        let verified = claims.get("email_verified").and_then(|v| v.as_bool()) == Some(true);
        if issuer != Some(self.config.issuer.as_str()) || !audience_ok || !verified {
            return None;
        }
        claims
            .get("email")
            .and_then(|v| v.as_str())
            .filter(|e| crate::model::valid_uid(e))
            .map(str::to_string)
    }
}

fn parse(bytes: &[u8]) -> Result<Vec<VerifyingKey>, String> {
    let jwks: Jwks = serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS: {e}"))?;
    Ok(api::keys_of(&jwks))
}
