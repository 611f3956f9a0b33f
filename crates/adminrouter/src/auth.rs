//! Logins at the front door: every guarded request ([`crate::routes::guard`]) must carry a
//! token the IAM issued (`Authorization: token=` or `Bearer`, else the auth cookie), checked
//! here against the IAM's public keys on every request; a resource's guard then asks the
//! IAM's policy query whether the token's account has `full` on it. No token or a bad one:
//! 401 with `WWW-Authenticate: acsjwt` and the page that sends a browser to the login; a
//! good token without the permission: 403.
//!
//! The keys are fetched from the IAM (`/acs/api/v1/auth/jwks`) and fetched again when a
//! token does not verify (at most every [`KEY_RETRY`]); decisions are kept for
//! [`DECISION_TTL`], so a revoked permission takes at most that long to bite.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use dcos_iam::api::{self, Jwks, PolicyAnswer, TokenError, VerifyingKey};
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, COOKIE};

/// How long a policy decision is reused.
pub const DECISION_TTL: Duration = Duration::from_secs(5);
/// The shortest time between two fetches of the IAM's keys.
pub const KEY_RETRY: Duration = Duration::from_secs(5);
/// The most decisions kept.
const MAX_DECISIONS: usize = 16_384;

/// Why a request is not let through.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// No token, or one that does not verify: 401.
    Unauthenticated,
    /// The account may not: 403.
    Forbidden,
    /// The IAM cannot be asked: 503.
    Unavailable,
}

/// The token checker of one router.
pub struct Auth {
    iam: SocketAddr,
    client: reqwest::Client,
    keys: RwLock<(Vec<VerifyingKey>, Option<Instant>)>,
    /// One fetch of the keys at a time.
    fetching: tokio::sync::Mutex<()>,
    decisions: Mutex<HashMap<(String, String), (bool, Instant)>>,
}

/// A request's caller: its account and the token that proved it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account.
    pub uid: String,
    /// The token.
    pub token: String,
}

impl Auth {
    /// A checker asking the IAM at `iam`.
    pub fn new(iam: SocketAddr) -> Auth {
        Auth {
            iam,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            keys: RwLock::new((Vec::new(), None)),
            fetching: tokio::sync::Mutex::new(()),
            decisions: Mutex::new(HashMap::new()),
        }
    }

    /// The caller of a request with `headers`, if its token verifies.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, Denied> {
        let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        let cookies = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let token = api::request_token(authorization, cookies).ok_or(Denied::Unauthenticated)?;
        let now = api::now_secs();
        let keys = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone();
        let claims = match api::verify(token, &keys, now) {
            Ok(c) => c,
            // Perhaps signed by a key fetched after ours (a new cluster key).
            Err(TokenError::Signature) => {
                let keys = self.refresh_keys().await?;
                api::verify(token, &keys, now).map_err(|_| Denied::Unauthenticated)?
            }
            Err(_) => return Err(Denied::Unauthenticated),
        };
        let uid = api::uid_of(&claims).map_err(|_| Denied::Unauthenticated)?;
        Ok(Caller {
            uid: uid.to_string(),
            token: token.to_string(),
        })
    }

    /// Fetches the IAM's keys again, unless they were fetched within [`KEY_RETRY`].
    async fn refresh_keys(&self) -> Result<Vec<VerifyingKey>, Denied> {
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
            return Err(Denied::Unavailable);
        };
        let keys = api::keys_of(&jwks);
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) =
            (keys.clone(), Some(Instant::now()));
        Ok(keys)
    }

    /// Whether `uid` has `full` on `rid`, as the IAM's policy query answers.
    pub async fn authorize(&self, uid: &str, rid: &str) -> Result<(), Denied> {
        let key = (uid.to_string(), rid.to_string());
        let cached = self
            .decisions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .filter(|(_, at)| at.elapsed() < DECISION_TTL)
            .map(|(allowed, _)| *allowed);
        let allowed = match cached {
            Some(a) => a,
            None => {
                let a = self.ask(uid, rid).await?;
                let mut decisions = self.decisions.lock().unwrap_or_else(|e| e.into_inner());
                if decisions.len() >= MAX_DECISIONS {
                    decisions.retain(|_, (_, at)| at.elapsed() < DECISION_TTL);
                    if decisions.len() >= MAX_DECISIONS {
                        decisions.clear();
                    }
                }
                decisions.insert(key, (a, Instant::now()));
                a
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(Denied::Forbidden)
        }
    }

    async fn ask(&self, uid: &str, rid: &str) -> Result<bool, Denied> {
        let url = format!("http://{}{}", self.iam, api::POLICY_QUERY_PATH);
        let resp = self
            .client
            .get(&url)
            .query(&[("uid", uid), ("rid", rid), ("action", "full")])
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "the IAM's policy query failed");
                Denied::Unavailable
            })?;
        if !resp.status().is_success() {
            tracing::warn!(status = %resp.status(), "unexpected policyquery response");
            return Err(Denied::Unavailable);
        }
        let answer: PolicyAnswer = resp.json().await.map_err(|_| Denied::Unavailable)?;
        Ok(answer.allowed)
    }
}

/// The headers an upstream sees for an authenticated caller: its token in `Authorization`
/// (also when it came as the cookie), and no DC/OS cookies, which are the router's business.
pub fn forward_headers(headers: &mut HeaderMap, caller: Option<&Caller>) {
    if let Some(c) = caller {
        if let Ok(v) = HeaderValue::from_str(&format!("token={}", c.token)) {
            headers.insert(AUTHORIZATION, v);
        }
    }
    let kept: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|h| h.split(';'))
        .map(str::trim)
        .filter(|c| {
            let name = c.split('=').next().unwrap_or("");
            !c.is_empty() && name != api::AUTH_COOKIE && name != api::INFO_COOKIE
        })
        .map(String::from)
        .collect();
    headers.remove(COOKIE);
    if !kept.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
            headers.insert(COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_get_the_token_and_no_dcos_cookies() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("a=1; dcos-acs-auth-cookie=T; dcos-acs-info-cookie=I; b=2"),
        );
        let caller = Caller {
            uid: "u".into(),
            token: "T".into(),
        };
        forward_headers(&mut h, Some(&caller));
        assert_eq!(h[AUTHORIZATION], "token=T");
        assert_eq!(h[COOKIE], "a=1; b=2");
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("dcos-acs-auth-cookie=T"));
        forward_headers(&mut h, None);
        assert!(h.get(COOKIE).is_none());
    }
}
