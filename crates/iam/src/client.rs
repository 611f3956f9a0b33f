//! What the cluster's components use of the IAM: checking a caller's token against the
//! IAM's public keys ([`Verifier`]: Admin Router on every guarded request, the Mesos master
//! on every framework's SUBSCRIBE in strict mode), and logging in as a service account
//! ([`ServiceLogin`]: Marathon and Metronome registering with the master in strict mode).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::api::{self, Action, Jwks, PolicyAnswer, TokenError, VerifyingKey};

/// The shortest time between two fetches of the IAM's keys.
pub const KEY_RETRY: Duration = Duration::from_secs(5);
/// Tokens whose signature was verified, kept so that a token's next requests cost a lookup
/// rather than an RSA verification (a token cannot change; its expiry is checked each time).
const VERIFIED_TOKENS: usize = 4096;
/// How long a verified token is remembered at most.
const VERIFIED_FOR_SECS: u64 = 600;

/// Why a caller is not known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unverified {
    /// No token, or one that does not verify.
    Unauthenticated,
    /// The IAM's keys cannot be read.
    Unavailable,
}

/// A request's caller: its account and the token that proved it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account.
    pub uid: String,
    /// The token.
    pub token: String,
}

/// Checks tokens against the keys of the IAM at one address. The keys are fetched at the
/// first token and again when a token does not verify (at most every [`KEY_RETRY`]).
pub struct Verifier {
    iam: SocketAddr,
    client: reqwest::Client,
    keys: RwLock<(Vec<VerifyingKey>, Option<Instant>)>,
    /// One fetch of the keys at a time.
    fetching: tokio::sync::Mutex<()>,
    /// Verified tokens: their account and expiry.
    verified: std::sync::Mutex<std::collections::HashMap<String, (String, f64)>>,
}

impl Verifier {
    /// A verifier of the IAM at `iam`.
    pub fn new(iam: SocketAddr) -> Verifier {
        Verifier {
            iam,
            client: http_client(),
            keys: RwLock::new((Vec::new(), None)),
            fetching: tokio::sync::Mutex::new(()),
            verified: Default::default(),
        }
    }

    /// The IAM's address.
    pub fn iam(&self) -> SocketAddr {
        self.iam
    }

    /// The caller of a request with `headers`, if its token verifies.
    pub async fn caller(&self, headers: &HeaderMap) -> Result<Caller, Unverified> {
        let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        let cookies = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let token =
            api::request_token(authorization, cookies).ok_or(Unverified::Unauthenticated)?;
        let now = api::now_secs();
        let known = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .filter(|(_, exp)| *exp > now as f64)
            .map(|(uid, _)| uid.clone());
        if let Some(uid) = known {
            return Ok(Caller {
                uid,
                token: token.to_string(),
            });
        }
        let keys = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone();
        let claims = match api::verify(token, &keys, now) {
            Ok(c) => c,
            // Perhaps signed by a key fetched after ours (or none fetched yet).
            Err(TokenError::Signature) => {
                let keys = self.refresh_keys().await?;
                api::verify(token, &keys, now).map_err(|_| Unverified::Unauthenticated)?
            }
            Err(_) => return Err(Unverified::Unauthenticated),
        };
        let uid = api::uid_of(&claims).map_err(|_| Unverified::Unauthenticated)?;
        // Remembered for at most 10 minutes, whatever the token's own expiry.
        let exp = claims
            .get("exp")
            .and_then(|e| e.as_f64())
            .unwrap_or(0.0)
            .min((now + VERIFIED_FOR_SECS) as f64);
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= VERIFIED_TOKENS {
            verified.clear();
        }
        verified.insert(token.to_string(), (uid.to_string(), exp));
        drop(verified);
        Ok(Caller {
            uid: uid.to_string(),
            token: token.to_string(),
        })
    }

    /// Whether `uid` may take `action` on `rid`, as the IAM's policy query answers.
    pub async fn allowed(&self, uid: &str, rid: &str, action: Action) -> Result<bool, Unverified> {
        let url = format!("http://{}{}", self.iam, api::POLICY_QUERY_PATH);
        let resp = self
            .client
            .get(&url)
            .query(&[("uid", uid), ("rid", rid), ("action", action.as_str())])
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "the IAM's policy query failed");
                Unverified::Unavailable
            })?;
        if !resp.status().is_success() {
            tracing::warn!(status = %resp.status(), "unexpected policyquery response");
            return Err(Unverified::Unavailable);
        }
        let answer: PolicyAnswer = resp.json().await.map_err(|_| Unverified::Unavailable)?;
        Ok(answer.allowed)
    }

    /// Fetches the IAM's keys again, unless they were fetched within [`KEY_RETRY`].
    async fn refresh_keys(&self) -> Result<Vec<VerifyingKey>, Unverified> {
        let _one = self.fetching.lock().await;
        {
            let (keys, at) = &*self.keys.read().unwrap_or_else(|e| e.into_inner());
            if at.is_some_and(|t| t.elapsed() < KEY_RETRY) {
                return Ok(keys.clone());
            }
        }
        let url = format!("http://{}{}", self.iam, api::JWKS_PATH);
        let fetched = async {
            let resp = self.client.get(&url).send().await.ok()?;
            resp.status().is_success().then_some(())?;
            resp.json::<Jwks>().await.ok()
        };
        let Some(jwks) = fetched.await else {
            tracing::warn!(%url, "cannot read the IAM's keys");
            self.keys.write().unwrap_or_else(|e| e.into_inner()).1 = Some(Instant::now());
            return Err(Unverified::Unavailable);
        };
        let keys = api::keys_of(&jwks);
        let mut current = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if current.0 != keys {
            // Tokens verified with keys the IAM no longer publishes are checked again.
            self.verified
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
        *current = (keys.clone(), Some(Instant::now()));
        drop(current);
        Ok(keys)
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default()
}

/// A service account's secret as DC/OS keeps it (`dcos security secrets create-sa-secret`):
/// `{"scheme": "RS256", "uid", "private_key", "login_endpoint"}`.
#[derive(Clone, Serialize, Deserialize)]
pub struct ServiceSecret {
    /// `RS256`.
    pub scheme: String,
    /// The account.
    pub uid: String,
    /// Its private key (PEM).
    pub private_key: String,
    /// Where it logs in (`http://127.0.0.1:8101/acs/api/v1/auth/login` on a master).
    pub login_endpoint: String,
    /// Where else it may log in when that cannot be reached (dcos-rs: an agent's secret
    /// names every master's Admin Router).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_at: Vec<String>,
}

impl std::fmt::Debug for ServiceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        write!(f, "ServiceSecret({})", self.uid)
    }
}

/// How long a service account's login token (the one it signs) is valid.
const LOGIN_TOKEN_SECS: u64 = 300;

/// A service account's logins, from its secret file.
#[derive(Clone, Debug)]
pub struct ServiceLogin {
    secret: ServiceSecret,
    client: reqwest::Client,
}

impl ServiceLogin {
    /// The login of the account whose secret is in `path`.
    pub fn from_file(path: &Path) -> Result<ServiceLogin, String> {
        let text = fs_err::read(path).map_err(|e| e.to_string())?;
        let secret: ServiceSecret = serde_json::from_slice(&text)
            .map_err(|e| format!("{} is not a service account secret: {e}", path.display()))?;
        if secret.scheme != "RS256" {
            return Err(format!(
                "{}: scheme {} is not RS256",
                path.display(),
                secret.scheme
            ));
        }
        Ok(ServiceLogin {
            secret,
            client: http_client(),
        })
    }

    /// The login of the secret at `path`, if a component is given one.
    pub fn from_optional_file(path: Option<&Path>) -> Result<Option<ServiceLogin>, String> {
        path.map(ServiceLogin::from_file).transpose()
    }

    /// The account.
    pub fn uid(&self) -> &str {
        &self.secret.uid
    }

    /// Logs in and gives the cluster's token for the account.
    pub async fn token(&self) -> Result<String, String> {
        let signed = crate::keys::account_login_token(
            &self.secret.uid,
            &self.secret.private_key,
            LOGIN_TOKEN_SECS,
        )
        .map_err(|e| e.to_string())?;
        let body = serde_json::json!({"uid": self.secret.uid, "token": signed});
        let mut unreachable = Vec::new();
        let endpoints = std::iter::once(&self.secret.login_endpoint).chain(&self.secret.also_at);
        let mut answered = None;
        for endpoint in endpoints {
            match self.client.post(endpoint).json(&body).send().await {
                Ok(resp) => {
                    answered = Some(resp);
                    break;
                }
                Err(e) => unreachable.push(format!("{endpoint}: {e}")),
            }
        }
        let resp =
            answered.ok_or_else(|| format!("cannot reach the IAM: {}", unreachable.join("; ")))?;
        let status = resp.status();
        let answer: serde_json::Value = resp.json().await.unwrap_or_default();
        match answer["token"].as_str() {
            Some(t) if status.is_success() => Ok(t.to_string()),
            _ => Err(format!(
                "the IAM refused {}'s login ({status}): {}",
                self.secret.uid, answer["description"]
            )),
        }
    }
}

/// A framework's HTTP client for one subscription to the master: redirects not followed (a
/// standby master's 307 is followed by the scheduler client, which then talks to the leader
/// directly), and with `login` (strict security) a fresh token of the framework's service
/// account on every request, which the master checks at SUBSCRIBE.
pub async fn framework_client(login: Option<&ServiceLogin>) -> Result<reqwest::Client, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(login) = login {
        let token = login.token().await?;
        let mut value = reqwest::header::HeaderValue::from_str(&format!("token={token}"))
            .map_err(|e| e.to_string())?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .default_headers(headers)
        .build()
        .map_err(|e| e.to_string())
}

/// `router` with every request, but those to `open` paths, needing a valid token of the IAM
/// at `iam` (strict security on a component's own port): 401 `{"message"}` with
/// `WWW-Authenticate` otherwise, 503 when the IAM's keys cannot be read. No `iam`: the router
/// as it is.
pub fn require_tokens(
    router: axum::Router,
    iam: Option<SocketAddr>,
    open: &'static [&'static str],
) -> axum::Router {
    use axum::response::IntoResponse;
    let Some(iam) = iam else {
        return router;
    };
    let verifier = std::sync::Arc::new(Verifier::new(iam));
    router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let verifier = verifier.clone();
            async move {
                if open.contains(&req.uri().path()) {
                    return next.run(req).await;
                }
                match verifier.caller(req.headers()).await {
                    Ok(_) => next.run(req).await,
                    Err(why) => {
                        let (status, message) = match why {
                            Unverified::Unauthenticated => {
                                (axum::http::StatusCode::UNAUTHORIZED, "Not Authenticated!")
                            }
                            Unverified::Unavailable => (
                                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                                "The IAM cannot be reached to check the token.",
                            ),
                        };
                        (
                            status,
                            [(axum::http::header::WWW_AUTHENTICATE, api::AUTH_SCHEME)],
                            axum::Json(serde_json::json!({"message": message})),
                        )
                            .into_response()
                    }
                }
            }
        },
    ))
}

/// How long a service account's cluster token is reused before logging in again (tokens
/// live 5 days).
const TOKEN_REUSE: Duration = Duration::from_secs(3600);

/// A service account's cluster token, logged in for once and reused for an hour.
#[derive(Debug)]
pub struct TokenSource {
    login: ServiceLogin,
    cached: tokio::sync::Mutex<Option<(String, Instant)>>,
}

impl TokenSource {
    /// The tokens of `login`.
    pub fn new(login: ServiceLogin) -> TokenSource {
        TokenSource {
            login,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// A token: the last one while it is fresh, else a new login's.
    pub async fn token(&self) -> Result<String, String> {
        let mut cached = self.cached.lock().await;
        if let Some((token, at)) = cached.as_ref() {
            if at.elapsed() < TOKEN_REUSE {
                return Ok(token.clone());
            }
        }
        let token = self.login.token().await?;
        *cached = Some((token.clone(), Instant::now()));
        Ok(token)
    }
}

impl TokenSource {
    /// The tokens of the service account whose secret is at `path`, if there is one, as a
    /// function a component calls before it asks the masters.
    #[allow(clippy::type_complexity)]
    pub fn function(
        path: Option<&Path>,
    ) -> Result<
        Option<
            std::sync::Arc<
                dyn Fn() -> std::pin::Pin<
                        Box<dyn std::future::Future<Output = Result<String, String>> + Send>,
                    > + Send
                    + Sync,
            >,
        >,
        String,
    > {
        let Some(login) = ServiceLogin::from_optional_file(path)? else {
            return Ok(None);
        };
        let source = std::sync::Arc::new(TokenSource::new(login));
        Ok(Some(std::sync::Arc::new(move || {
            let source = source.clone();
            Box::pin(async move { source.token().await })
        })))
    }
}
