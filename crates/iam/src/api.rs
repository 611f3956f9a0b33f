//! What the IAM's clients share with it: the names of its cookies and resources, its error
//! shape, the actions of a permission, and RS256 token checking (Admin Router checks every
//! token locally against the keys the IAM publishes at `/acs/api/v1/auth/jwks`).

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The cookie holding a login's token.
pub const AUTH_COOKIE: &str = "dcos-acs-auth-cookie";
/// The cookie holding `{uid, description, is_remote}` for the web UI (not a credential).
pub const INFO_COOKIE: &str = "dcos-acs-info-cookie";
/// The resource whose `full` grants everything.
pub const SUPERUSER: &str = "dcos:superuser";
/// What Admin Router sends in `WWW-Authenticate` with a 401.
pub const AUTH_SCHEME: &str = "acsjwt";
/// How long a login's token is valid: 5 days, as DC/OS issues them.
pub const TOKEN_LIFETIME_SECS: u64 = 5 * 24 * 3600;
/// The longest token read: anything longer is not one of ours and is refused unread.
pub const MAX_TOKEN: usize = 16 * 1024;
/// The policy query Admin Router asks the IAM (`?uid=&rid=&action=`), answered
/// `{"allowed": bool}`; only on the IAM's own localhost port, never routed by Admin Router.
pub const POLICY_QUERY_PATH: &str = "/acs/api/v1/internal/policyquery";
/// The IAM's public keys.
pub const JWKS_PATH: &str = "/acs/api/v1/auth/jwks";

/// How much the cluster asks of its callers (`dcos cluster up --security`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityMode {
    /// No logins anywhere: for tests that want none.
    Disabled,
    /// Admin Router asks a login on every protected route; the components' own ports
    /// behave as in open-source DC/OS.
    #[default]
    Permissive,
    /// As permissive, and the components' own APIs ask a token too.
    Strict,
}

impl SecurityMode {
    /// Its name on the command line and in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityMode::Disabled => "disabled",
            SecurityMode::Permissive => "permissive",
            SecurityMode::Strict => "strict",
        }
    }

    /// The mode named `name`.
    pub fn parse(name: &str) -> Option<SecurityMode> {
        [Self::Disabled, Self::Permissive, Self::Strict]
            .into_iter()
            .find(|m| m.as_str() == name)
    }

    /// Whether logins are asked for at all.
    pub fn enabled(self) -> bool {
        self != SecurityMode::Disabled
    }
}

/// An action of a permission; `full` implies every other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Create.
    Create,
    /// Read.
    Read,
    /// Update.
    Update,
    /// Delete.
    Delete,
    /// Everything.
    Full,
}

impl Action {
    /// Every action, in order.
    pub const ALL: [Action; 5] = [
        Action::Create,
        Action::Read,
        Action::Update,
        Action::Delete,
        Action::Full,
    ];

    /// Its name in paths and answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Read => "read",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Full => "full",
        }
    }

    /// The action named `name`.
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// An error the IAM answers: `{"title", "description", "code"}` with an HTTP status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {description}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// The machine-readable code (`ERR_...`).
    pub code: &'static str,
    /// What went wrong, for a person.
    pub description: String,
}

impl ApiError {
    fn new(status: u16, code: &'static str, description: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            description: description.into(),
        }
    }

    /// 400: the request's data is not valid.
    pub fn invalid(description: impl Into<String>) -> ApiError {
        ApiError::new(400, "ERR_INVALID_DATA", description)
    }

    /// 400: a uid that breaks the rules.
    pub fn invalid_uid(uid: &str) -> ApiError {
        ApiError::new(
            400,
            "ERR_INVALID_USER_ID",
            format!("Invalid user ID: {uid}"),
        )
    }

    /// 400: a gid that breaks the rules.
    pub fn new_invalid_gid(gid: &str) -> ApiError {
        ApiError::new(
            400,
            "ERR_INVALID_GROUP_ID",
            format!("Invalid group ID: {gid} (use 1 to 96 letters, digits, `.`, `_` and `-`)"),
        )
    }

    /// 400: a resource id that breaks the rules.
    pub fn invalid_rid(rid: &str) -> ApiError {
        ApiError::new(
            400,
            "ERR_INVALID_RESOURCE_ID",
            format!("Invalid resource ID: {rid} (it starts with `dcos:` and has no empty segment)"),
        )
    }

    /// 401: the credentials do not log anyone in. Says nothing of which part was wrong.
    pub fn invalid_credentials() -> ApiError {
        ApiError::new(401, "ERR_INVALID_CREDENTIALS", "Invalid credentials.")
    }

    /// 401: no valid token came with a request that needs one.
    pub fn unauthenticated() -> ApiError {
        ApiError::new(
            401,
            "ERR_MISSING_AUTH_TOKEN",
            "A valid authentication token is needed for this request.",
        )
    }

    /// 403: the caller may not do this.
    pub fn forbidden() -> ApiError {
        ApiError::new(403, "ERR_FORBIDDEN", "The caller may not take this action.")
    }

    /// 400: no such account (the IAM answers 400, not 404, for an unknown id).
    pub fn unknown_user(uid: &str) -> ApiError {
        ApiError::new(
            400,
            "ERR_UNKNOWN_USER_ID",
            format!("User with uid `{uid}` not known."),
        )
    }

    /// 400: no such group.
    pub fn unknown_group(gid: &str) -> ApiError {
        ApiError::new(
            400,
            "ERR_UNKNOWN_GROUP_ID",
            format!("Group with gid `{gid}` not known."),
        )
    }

    /// 400: no ACL for this resource.
    pub fn unknown_acl(rid: &str) -> ApiError {
        ApiError::new(
            400,
            "ERR_UNKNOWN_RESOURCE_ID",
            format!("Protected resource with rid `{rid}` not known."),
        )
    }

    /// 400: the grantee is not in the ACL, or not with this action.
    pub fn not_granted(code: &'static str, description: String) -> ApiError {
        ApiError::new(400, code, description)
    }

    /// 400: the last superuser would go.
    pub fn last_superuser() -> ApiError {
        ApiError::new(
            400,
            "ERR_NO_MORE_SUPERUSERS",
            "The last account with full access to `dcos:superuser` cannot be removed.",
        )
    }

    /// 429: too many logins wait already.
    pub fn too_many_logins() -> ApiError {
        ApiError::new(
            429,
            "ERR_TOO_MANY_REQUESTS",
            "Too many logins are waiting; try again shortly.",
        )
    }

    /// 409: it exists already.
    pub fn conflict(code: &'static str, description: String) -> ApiError {
        ApiError::new(409, code, description)
    }

    /// 503: the store cannot be reached.
    pub fn unavailable(description: impl Into<String>) -> ApiError {
        ApiError::new(503, "ERR_SERVICE_UNAVAILABLE", description)
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let title = http_reason(self.status);
        serde_json::json!({"title": title, "description": self.description, "code": self.code})
    }
}

fn http_reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// A public key as JWKS publishes it (RSA, RS256).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `RSA`.
    pub kty: String,
    /// `RS256`.
    #[serde(default)]
    pub alg: Option<String>,
    /// `sig`.
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
    /// The key's id, as tokens name it in their header.
    #[serde(default)]
    pub kid: Option<String>,
    /// The modulus, base64url big-endian.
    pub n: String,
    /// The exponent, base64url big-endian.
    pub e: String,
}

/// A JWK set (`{"keys": [...]}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// An RSA public key that checks RS256 signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyingKey {
    /// The key's id, if it has one.
    pub kid: Option<String>,
    n: Vec<u8>,
    e: Vec<u8>,
}

impl VerifyingKey {
    /// A key from its modulus and exponent (big-endian bytes).
    pub fn from_components(kid: Option<String>, n: Vec<u8>, e: Vec<u8>) -> VerifyingKey {
        VerifyingKey { kid, n, e }
    }

    /// The key a JWK describes, if it is an RSA key for signatures.
    pub fn from_jwk(jwk: &Jwk) -> Option<VerifyingKey> {
        let usable = jwk.kty == "RSA"
            && jwk.alg.as_deref().is_none_or(|a| a == "RS256")
            && jwk.use_.as_deref().is_none_or(|u| u == "sig");
        if !usable {
            return None;
        }
        Some(VerifyingKey {
            kid: jwk.kid.clone(),
            n: URL_SAFE_NO_PAD.decode(&jwk.n).ok()?,
            e: URL_SAFE_NO_PAD.decode(&jwk.e).ok()?,
        })
    }

    /// Its JWK.
    pub fn jwk(&self) -> Jwk {
        Jwk {
            kty: "RSA".into(),
            alg: Some("RS256".into()),
            use_: Some("sig".into()),
            kid: self.kid.clone(),
            n: URL_SAFE_NO_PAD.encode(&self.n),
            e: URL_SAFE_NO_PAD.encode(&self.e),
        }
    }

    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        ring::signature::RsaPublicKeyComponents {
            n: &self.n,
            e: &self.e,
        }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            message,
            signature,
        )
        .is_ok()
    }
}

/// Why a token is refused. Clients hear only "invalid token": the kinds are for logs and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts of JSON, or too long.
    #[error("malformed token")]
    Malformed,
    /// Not RS256 (`none`, `HS256`, ...): never accepted, whatever the signature.
    #[error("token algorithm is not RS256")]
    Algorithm,
    /// No key checks its signature.
    #[error("token signature does not verify")]
    Signature,
    /// Its `exp` has passed, or it has none.
    #[error("token expired or without expiry")]
    Expired,
    /// A claim it needs is missing or wrong.
    #[error("token claims are not valid here")]
    Claims,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// The claims of a verified token.
pub type Claims = serde_json::Map<String, serde_json::Value>;

/// Checks an RS256 token against `keys` (the one its `kid` names, else each) and its expiry
/// at `now` (seconds since the epoch), and gives its claims.
pub fn verify(token: &str, keys: &[VerifyingKey], now: u64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(head), Some(body), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let decode = |p: &str| URL_SAFE_NO_PAD.decode(p).map_err(|_| TokenError::Malformed);
    let header: Header =
        serde_json::from_slice(&decode(head)?).map_err(|_| TokenError::Malformed)?;
    if header.alg != "RS256" {
        return Err(TokenError::Algorithm);
    }
    let signature = decode(sig)?;
    let signed = &token[..head.len() + 1 + body.len()];
    let verified = keys
        .iter()
        .filter(|k| header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
        .any(|k| k.verifies(signed.as_bytes(), &signature));
    if !verified {
        return Err(TokenError::Signature);
    }
    let claims: Claims =
        serde_json::from_slice(&decode(body)?).map_err(|_| TokenError::Malformed)?;
    match claims.get("exp").and_then(serde_json::Value::as_f64) {
        Some(exp) if exp > now as f64 => Ok(claims),
        _ => Err(TokenError::Expired),
    }
}

/// The `uid` of a verified cluster token.
pub fn uid_of(claims: &Claims) -> Result<&str, TokenError> {
    claims
        .get("uid")
        .and_then(serde_json::Value::as_str)
        .filter(|u| crate::model::valid_uid(u))
        .ok_or(TokenError::Claims)
}

/// The token a request carries: `Authorization: token=<jwt>` or `Bearer <jwt>`, else the
/// auth cookie.
pub fn request_token<'a>(
    authorization: Option<&'a str>,
    cookies: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    if let Some(a) = authorization {
        let a = a.trim();
        if let Some(t) = a.strip_prefix("token=") {
            return Some(t.trim());
        }
        if let Some(t) = a
            .strip_prefix("Bearer ")
            .or_else(|| a.strip_prefix("bearer "))
        {
            return Some(t.trim());
        }
    }
    cookies
        .flat_map(|header| header.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == AUTH_COOKIE)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A policy query's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyAnswer {
    /// Whether the action is allowed.
    pub allowed: bool,
}

/// The keys in a JWK set that check signatures, by kid (keys without one under "").
pub fn keys_of(jwks: &Jwks) -> Vec<VerifyingKey> {
    let mut seen = HashMap::new();
    for k in jwks.keys.iter().filter_map(VerifyingKey::from_jwk) {
        seen.entry(k.kid.clone().unwrap_or_default()).or_insert(k);
    }
    seen.into_values().collect()
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_header_or_the_cookie() {
        assert_eq!(
            request_token(Some("token=abc"), [].into_iter()),
            Some("abc")
        );
        assert_eq!(
            request_token(Some("Bearer abc"), [].into_iter()),
            Some("abc")
        );
        assert_eq!(
            request_token(None, ["a=b; dcos-acs-auth-cookie=xyz; c=d"].into_iter()),
            Some("xyz")
        );
        assert_eq!(
            request_token(None, ["dcos-acs-auth-cookie="].into_iter()),
            None
        );
        assert_eq!(request_token(Some("Basic Zm9v"), [].into_iter()), None);
    }

    #[test]
    fn malformed_and_unsigned_tokens_are_refused() {
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"uid":"a","exp":99999999999}"#)
        );
        assert_eq!(verify(&none, &[], 0), Err(TokenError::Algorithm));
        assert_eq!(verify("a.b", &[], 0), Err(TokenError::Malformed));
        assert_eq!(verify("a.b.c.d", &[], 0), Err(TokenError::Malformed));
        assert_eq!(
            verify(&"a".repeat(MAX_TOKEN + 1), &[], 0),
            Err(TokenError::Malformed)
        );
    }
}
