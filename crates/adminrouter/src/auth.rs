//! Logins at the front door: every guarded request ([`crate::routes::guard`]) must carry a
//! token the IAM issued (`Authorization: token=` or `Bearer`, else the auth cookie), checked
//! here against the IAM's public keys on every request; a resource's guard then asks the
//! IAM's policy query whether the token's account has `full` on it. No token or a bad one:
//! 401 with `WWW-Authenticate: acsjwt` and the page that sends a browser to the login; a
//! good token without the permission: 403.
//!
//! The keys are the IAM's ([`dcos_iam::client::Verifier`]); decisions are kept for
//! [`DECISION_TTL`], so a revoked permission takes at most that long to bite.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dcos_iam::api::{self, Action};
pub use dcos_iam::client::Caller;
use dcos_iam::client::{Unverified, Verifier};
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, COOKIE};

/// How long a policy decision is reused.
pub const DECISION_TTL: Duration = Duration::from_secs(5);
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

impl From<Unverified> for Denied {
    fn from(u: Unverified) -> Denied {
        match u {
            Unverified::Unauthenticated => Denied::Unauthenticated,
            Unverified::Unavailable => Denied::Unavailable,
        }
    }
}

/// The token checker of one router.
pub struct Auth {
    verifier: Verifier,
    decisions: Mutex<HashMap<(String, String), (bool, Instant)>>,
}

impl Auth {
    /// A checker asking the IAM at `iam`.
    pub fn new(iam: SocketAddr) -> Auth {
        Auth {
            verifier: Verifier::new(iam),
            decisions: Mutex::new(HashMap::new()),
        }
    }

    /// The caller of a request with `headers`, if its token verifies.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, Denied> {
        Ok(self.verifier.caller(headers).await?)
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
        Ok(self.verifier.allowed(uid, rid, Action::Full).await?)
    }
}

/// The headers an upstream sees: for a `caller` (an upstream of the cluster's own), its token
/// in `Authorization` (also when it came as the cookie); never the DC/OS cookies, which are
/// the router's business.
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
