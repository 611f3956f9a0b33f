//! The IAM's HTTP API under `/acs/api/v1`, as DC/OS' IAM answers it: login and logout with
//! their cookies, the public keys and login providers, accounts, groups, ACLs and the
//! permissions they add up to, and the policy query Admin Router asks on every request.
//!
//! Bodies are JSON with no unknown fields; every error is `{"title","description","code"}`.
//! Management calls need a token of an account with `full` on `dcos:adminrouter:acs` (or a
//! superuser) when the cluster's security asks for tokens; an account may always read itself.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxumState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{self, Action, ApiError, AUTH_COOKIE, INFO_COOKIE, TOKEN_LIFETIME_SECS};
use crate::model::{Account, Acl, Credential, Grantee, State};
use crate::Iam;

/// The resource whose `full` lets an account manage the IAM.
pub const ACS_RESOURCE: &str = "dcos:adminrouter:acs";
const PREFIX: &str = "/acs/api/v1";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = json_response(status, &self.body());
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(api::AUTH_SCHEME),
            );
        }
        resp
    }
}

/// JSON as the IAM writes it: indented, with a final newline.
fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut text = serde_json::to_string_pretty(body).unwrap_or_default();
    text.push('\n');
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

fn ok(body: Value) -> Response {
    json_response(StatusCode::OK, &body)
}

fn created() -> Response {
    StatusCode::CREATED.into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

type Shared = AxumState<Arc<Iam>>;
type Answer = Result<Response, ApiError>;

/// The routes.
pub fn router(iam: Arc<Iam>) -> Router {
    let users = Router::new()
        .route("/users", get(list_users))
        .route(
            "/users/{uid}",
            get(get_user)
                .put(put_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route("/users/{uid}/groups", get(user_groups))
        .route("/users/{uid}/permissions", get(user_permissions));
    let groups = Router::new()
        .route("/groups", get(list_groups))
        .route(
            "/groups/{gid}",
            get(get_group)
                .put(put_group)
                .patch(patch_group)
                .delete(delete_group),
        )
        .route("/groups/{gid}/users", get(group_users))
        .route("/groups/{gid}/users/{uid}", put(join).delete(leave))
        .route("/groups/{gid}/permissions", get(group_permissions));
    let acls = Router::new()
        .route("/acls", get(list_acls))
        .route(
            "/acls/{rid}",
            get(get_acl)
                .put(put_acl)
                .patch(patch_acl)
                .delete(delete_acl),
        )
        .route("/acls/{rid}/permissions", get(acl_permissions))
        .route(
            "/acls/{rid}/{kind}/{id}",
            get(grantee_actions).delete(revoke_all),
        )
        .route(
            "/acls/{rid}/{kind}/{id}/{action}",
            get(grantee_allowed).put(grant).delete(revoke),
        );
    let auth = Router::new()
        .route("/auth/login", post(login).get(login_get))
        .route("/auth/logout", get(logout))
        .route("/auth/jwks", get(jwks))
        .route("/auth/providers", get(providers))
        .route("/internal/policyquery", get(policy_query));
    Router::new()
        .nest(PREFIX, users.merge(groups).merge(acls).merge(auth))
        .fallback(|| async { ApiError::invalid_route() })
        .with_state(iam)
}

impl ApiError {
    fn invalid_route() -> ApiError {
        ApiError::not_granted("ERR_NOT_FOUND", "No such resource.".into()).with_status(404)
    }

    fn with_status(mut self, status: u16) -> ApiError {
        self.status = status;
        self
    }
}

/// A JSON body with only `allowed` fields, read as `T`.
fn body<T: DeserializeOwned>(
    headers: &HeaderMap,
    bytes: &Bytes,
    allowed: &[&str],
) -> Result<T, ApiError> {
    let bad = |d: String| ApiError::invalid(d);
    match headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        None if bytes.is_empty() => {}
        None => return Err(bad("Missing Content-Type header.".into())),
        Some(ct)
            if ct
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json") => {}
        Some(_) => {
            return Err(ApiError::not_granted(
                "ERR_INVALID_DATA",
                "Unexpected or undefined Content-Type".into(),
            )
            .with_status(415))
        }
    }
    if bytes.is_empty() {
        return Err(bad("Expected non-empty request body.".into()));
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("Cannot decode JSON body: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(bad(
            "Unexpected JSON input: the body must be a JSON object.".into(),
        ));
    };
    if let Some(extra) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(format!(
            "Unexpected JSON input: Additional properties are not allowed ('{extra}' was unexpected)"
        )));
    }
    serde_json::from_value(value).map_err(|e| bad(format!("Unexpected JSON input: {e}")))
}

/// A resource id from a path segment: `/` arrives escaped once more (`%252F` on the wire).
fn rid_of(raw: &str) -> String {
    raw.replace("%2F", "/").replace("%2f", "/")
}

fn user_url(uid: &str) -> String {
    format!("{PREFIX}/users/{uid}")
}

fn group_url(gid: &str) -> String {
    format!("{PREFIX}/groups/{gid}")
}

fn acl_url(rid: &str) -> String {
    format!("{PREFIX}/acls/{}", rid.replace('/', "%252F"))
}

fn user_json(uid: &str, a: &Account) -> Value {
    let mut v = json!({
        "uid": uid,
        "url": user_url(uid),
        "description": a.description,
        "is_remote": a.is_remote(),
        "is_service": a.is_service(),
        "provider_type": if a.is_remote() { "oidc" } else { "internal" },
        "provider_id": match &a.credential {
            Credential::Remote { provider_id } => provider_id.as_str(),
            _ => "",
        },
    });
    if let Credential::ServiceAccount { public_key } = &a.credential {
        v["public_key"] = public_key.as_str().into();
    }
    v
}

fn group_json(gid: &str, description: &str) -> Value {
    json!({"gid": gid, "url": group_url(gid), "description": description})
}

fn actions_json(url: &str, actions: &BTreeSet<Action>) -> Value {
    actions
        .iter()
        .map(|a| json!({"name": a.as_str(), "url": format!("{url}/{}", a.as_str())}))
        .collect()
}

impl Iam {
    /// The uid of a request's valid token, if it has one.
    fn caller(&self, headers: &HeaderMap) -> Option<String> {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let cookies = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let token = api::request_token(authorization, cookies)?;
        let claims = api::verify(token, &[self.key.public().clone()], api::now_secs()).ok()?;
        api::uid_of(&claims).ok().map(str::to_string)
    }

    /// Lets a management call through: the cluster asks no tokens, or the caller may manage
    /// the IAM, or (for reads of an account's own data) is that account.
    fn authorize(&self, headers: &HeaderMap, own: Option<&str>) -> Result<Arc<State>, ApiError> {
        let state = self.persist.state();
        if !self.require_token {
            return Ok(state);
        }
        let uid = self.caller(headers).ok_or_else(ApiError::unauthenticated)?;
        if own == Some(uid.as_str()) || state.allowed(&uid, ACS_RESOURCE, Action::Full) {
            return Ok(state);
        }
        Err(ApiError::forbidden())
    }
}

impl Iam {
    /// A management call whose body is `{"description"}`: the change it makes with it.
    async fn describe(
        &self,
        headers: &HeaderMap,
        bytes: &Bytes,
        change: impl Fn(&mut State, String) -> Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        self.authorize(headers, None)?;
        let req: Description = body(headers, bytes, &["description"])?;
        self.persist
            .update(|s| change(s, req.description.clone()))
            .await
    }
}

// --- Login ---------------------------------------------------------------------------------

#[derive(Deserialize)]
struct LoginBody {
    uid: Option<String>,
    password: Option<String>,
    token: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
}

async fn login_get() -> ApiError {
    ApiError::invalid("Expected query parameter: this login flow is not configured.")
}

async fn login(AxumState(iam): Shared, headers: HeaderMap, bytes: Bytes) -> Answer {
    let req: LoginBody = body(&headers, &bytes, &["uid", "password", "token", "exp"])?;
    // The latest expiry the new token may have (a cluster token exchanged keeps its own).
    let mut exp = req.exp;
    let uid = match (&req.uid, &req.password, &req.token) {
        (_, Some(_), Some(_)) | (Some(_), None, None) => {
            return Err(ApiError::invalid(
                "Exactly one of `token` and `password` must be provided in the request body",
            ))
        }
        (None, Some(_), None) => {
            return Err(ApiError::invalid("`uid` missing in the request body"))
        }
        (None, None, None) => return Err(ApiError::invalid("`uid` missing in the request body")),
        (Some(uid), Some(password), None) => {
            if uid.is_empty() || password.is_empty() {
                return Err(ApiError::invalid(
                    "`uid` and `password` must not be empty strings",
                ));
            }
            iam.password_login(uid, password).await?
        }
        (Some(uid), None, Some(token)) => iam.service_login(uid, token)?,
        (None, None, Some(token)) => {
            let (uid, until) = iam.token_login(token)?;
            exp = match (exp, until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            uid
        }
    };
    // Admin Router says how the client reached it.
    let https = headers
        .get("x-forwarded-proto")
        .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
    iam.issue(&uid, exp, https)
}

impl Iam {
    async fn password_login(&self, uid: &str, password: &str) -> Result<String, ApiError> {
        // Logins waiting (slowed down, or for a hash) are bounded, so they cannot take every
        // connection from Admin Router's policy queries.
        let Ok(_waiting) = self.logins.try_acquire() else {
            return Err(ApiError::too_many_logins());
        };
        let delay = self.throttle.attempt(uid);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        // Hashing is memory-hard on purpose: a few at a time, so logins cannot exhaust memory.
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| ApiError::unavailable("The IAM is stopping."))?;
        let hash = match self.persist.state().users.get(uid).map(|a| &a.credential) {
            Some(Credential::Password { hash }) => Some(hash.clone()),
            _ => None,
        };
        let password = password.to_string();
        let matched = tokio::task::spawn_blocking(move || match hash {
            Some(h) => crate::password::verify(&password, &h),
            None => {
                crate::password::verify_nobody(&password);
                false
            }
        })
        .await
        .unwrap_or(false);
        if matched {
            self.throttle.succeeded(uid);
            Ok(uid.to_string())
        } else {
            // The uid only when it is an account: a password typed into the uid field must
            // not reach the log.
            match self.persist.state().users.contains_key(uid) {
                true => tracing::info!(%uid, "password login refused"),
                false => tracing::info!("password login for an unknown uid refused"),
            }
            Err(ApiError::invalid_credentials())
        }
    }

    /// A service account's login: a token it signed with its key, naming it as `uid`.
    fn service_login(&self, uid: &str, token: &str) -> Result<String, ApiError> {
        let state = self.persist.state();
        let refused = || {
            tracing::info!(%uid, "service account login refused");
            ApiError::invalid_credentials()
        };
        let Some(Credential::ServiceAccount { public_key }) =
            state.users.get(uid).map(|a| &a.credential)
        else {
            return Err(refused());
        };
        let key = crate::keys::account_key(public_key).map_err(|_| refused())?;
        let claims = api::verify(token, &[key], api::now_secs()).map_err(|_| refused())?;
        if claims.get("uid").and_then(Value::as_str) != Some(uid) {
            return Err(refused());
        }
        Ok(uid.to_string())
    }

    /// A login with a token alone: an ID token of a trusted OpenID Connect provider, for a
    /// remote account it vouches for; or a token of this cluster, exchanged (for its
    /// cookies) but never renewed: the new one expires when it does, so a stolen token does
    /// not live for ever. Gives the account and, for an exchange, that expiry.
    fn token_login(&self, token: &str) -> Result<(String, Option<u64>), ApiError> {
        let now = api::now_secs();
        let state = self.persist.state();
        if let Ok(claims) = api::verify(token, &[self.key.public().clone()], now) {
            let until = claims.get("exp").and_then(Value::as_u64);
            return api::uid_of(&claims)
                .ok()
                .filter(|uid| state.users.contains_key(*uid))
                .map(|uid| (uid.to_string(), until))
                .ok_or_else(ApiError::invalid_credentials);
        }
        for provider in &self.oidc {
            if let Some(uid) = provider.vouches(token, now) {
                let known = matches!(
                    state.users.get(&uid).map(|a| &a.credential),
                    Some(Credential::Remote { provider_id }) if *provider_id == provider.id
                );
                if known {
                    return Ok((uid, None));
                }
            }
        }
        tracing::info!("token login refused");
        Err(ApiError::invalid_credentials())
    }

    /// The login's answer: the token and its two cookies.
    fn issue(&self, uid: &str, exp: Option<u64>, secure: bool) -> Answer {
        let now = api::now_secs();
        let longest = now + TOKEN_LIFETIME_SECS;
        // A shorter life may be asked for, never a longer one.
        let exp = exp.filter(|e| *e > now).map_or(longest, |e| e.min(longest));
        let token = self
            .key
            .sign(&json!({"uid": uid, "exp": exp}))
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        let state = self.persist.state();
        let account = state.account(uid)?;
        let info = json!({"uid": uid, "description": account.description, "is_remote": account.is_remote()});
        let info = base64::engine::general_purpose::STANDARD.encode(info.to_string());
        let max_age = exp - now;
        let mut resp = ok(json!({"token": token}));
        // Not sent with other sites' POSTs (the cookie alone authenticates), nor over plain
        // http when the login came over https.
        let secure = if secure { "; Secure" } else { "" };
        for cookie in [
            format!(
                "{AUTH_COOKIE}={token}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax{secure}"
            ),
            format!("{INFO_COOKIE}={info}; Max-Age={max_age}; Path=/; SameSite=Lax{secure}"),
        ] {
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        tracing::info!(%uid, "logged in");
        Ok(resp)
    }
}

async fn logout() -> Response {
    let mut resp = ok(json!({}));
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "dcos-acs-auth-cookie=\"\"; expires=Sat, 01 Jan 2000 00:00:00 GMT; Path=/; HttpOnly",
        ),
    );
    resp
}

async fn jwks(AxumState(iam): Shared) -> Response {
    let set = api::Jwks {
        keys: vec![iam.key.public().jwk()],
    };
    ok(serde_json::to_value(set).unwrap_or_default())
}

async fn providers(AxumState(iam): Shared) -> Response {
    let provider = |kind: &str, method: &str| {
        json!({
            "authentication-type": kind,
            "description": "Default DC/OS login provider",
            "client-method": method,
            "config": {"start_flow_url": format!("{PREFIX}/auth/login")},
        })
    };
    let mut all = json!({
        "dcos-users": provider("dcos-uid-password", "dcos-usercredential-post-receive-authtoken"),
        "dcos-services": provider("dcos-uid-servicekey", "dcos-servicecredential-post-receive-authtoken"),
    });
    for p in &iam.oidc {
        all[p.id.as_str()] = json!({
            "authentication-type": "oidc-implicit-flow",
            "description": p.description,
            "client-method": "browser-prompt-oidcidtoken-get-authtoken",
            "config": {"start_flow_url": format!("{PREFIX}/auth/login")},
        });
    }
    ok(all)
}

#[derive(Deserialize)]
struct PolicyQuery {
    uid: String,
    rid: String,
    action: String,
}

async fn policy_query(
    AxumState(iam): Shared,
    q: Result<Query<PolicyQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let Ok(Query(q)) = q else {
        return Err(ApiError::invalid(
            "Expected query parameters `uid`, `rid` and `action`.",
        ));
    };
    let action = Action::parse(&q.action)
        .ok_or_else(|| ApiError::invalid(format!("Invalid action `{}`.", q.action)))?;
    let allowed = iam.persist.state().allowed(&q.uid, &q.rid, action);
    Ok(ok(json!({"allowed": allowed})))
}

// --- Accounts -------------------------------------------------------------------------------

#[derive(Deserialize)]
struct TypeQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
}

async fn list_users(
    AxumState(iam): Shared,
    headers: HeaderMap,
    Query(q): Query<TypeQuery>,
) -> Answer {
    let state = iam.authorize(&headers, None)?;
    let services = q.kind.as_deref() == Some("service");
    let array: Vec<Value> = state
        .users
        .iter()
        .filter(|(_, a)| a.is_service() == services)
        .map(|(uid, a)| user_json(uid, a))
        .collect();
    Ok(ok(json!({"array": array})))
}

async fn get_user(AxumState(iam): Shared, headers: HeaderMap, Path(uid): Path<String>) -> Answer {
    let state = iam.authorize(&headers, Some(&uid))?;
    Ok(ok(user_json(&uid, state.account(&uid)?)))
}

#[derive(Deserialize)]
struct NewAccount {
    #[serde(default)]
    description: String,
    password: Option<String>,
    public_key: Option<String>,
    provider_type: Option<String>,
    provider_id: Option<String>,
}

async fn put_user(
    AxumState(iam): Shared,
    headers: HeaderMap,
    Path(uid): Path<String>,
    bytes: Bytes,
) -> Answer {
    iam.authorize(&headers, None)?;
    let req: NewAccount = body(
        &headers,
        &bytes,
        &[
            "description",
            "password",
            "public_key",
            "provider_type",
            "provider_id",
            "creator_uid",
            "cluster_url",
        ],
    )?;
    let credential = match (req.password, req.public_key, req.provider_type.as_deref()) {
        (Some(p), None, None) => {
            if p.is_empty() {
                return Err(ApiError::invalid(
                    "`password` must not be empty when provided",
                ));
            }
            crate::password::check(&p)
                .map_err(|e| ApiError::invalid(format!("Password does not match rules: {e}")))?;
            let hash = tokio::task::spawn_blocking(move || crate::password::hash(&p))
                .await
                .map_err(|e| ApiError::unavailable(e.to_string()))?
                .map_err(|e| ApiError::invalid(e.0))?;
            Credential::Password { hash }
        }
        (None, Some(k), None) => {
            if k.is_empty() {
                return Err(ApiError::invalid(
                    "`public_key` must not be empty when provided",
                ));
            }
            crate::keys::account_key(&k).map_err(|e| {
                ApiError::not_granted("ERR_INVALID_PUBLIC_KEY", format!("Invalid public key: {e}"))
            })?;
            Credential::ServiceAccount { public_key: k }
        }
        (None, None, Some("oidc")) => {
            let provider_id = req.provider_id.unwrap_or_default();
            if !iam.oidc.iter().any(|p| p.id == provider_id) {
                return Err(ApiError::invalid(format!(
                    "Invalid provider_id: `{provider_id}`"
                )));
            }
            Credential::Remote { provider_id }
        }
        (None, None, Some(other)) => {
            return Err(ApiError::invalid(format!(
                "Invalid provider_type: `{other}`"
            )))
        }
        _ => {
            return Err(ApiError::invalid(
                "One of `password` or `public_key` must be provided",
            ))
        }
    };
    let account = Account {
        description: req.description,
        credential,
    };
    iam.persist
        .update(|s| s.add_account(&uid, account.clone()))
        .await?;
    tracing::info!(%uid, "account created");
    Ok(created())
}

#[derive(Deserialize)]
struct AccountChange {
    description: Option<String>,
    password: Option<String>,
}

async fn patch_user(
    AxumState(iam): Shared,
    headers: HeaderMap,
    Path(uid): Path<String>,
    bytes: Bytes,
) -> Answer {
    let state = iam.authorize(&headers, None)?;
    let req: AccountChange = body(&headers, &bytes, &["description", "password"])?;
    if req.description.is_none() && req.password.is_none() {
        return Err(ApiError::invalid(
            "One of `description` and `password` must be provided.",
        ));
    }
    let credential = match req.password {
        Some(p) => {
            if state.account(&uid)?.is_service() {
                return Err(ApiError::invalid(
                    "Password update is not available for service user accounts.",
                ));
            }
            crate::password::check(&p)
                .map_err(|e| ApiError::invalid(format!("Password does not match rules: {e}")))?;
            let hash = tokio::task::spawn_blocking(move || crate::password::hash(&p))
                .await
                .map_err(|e| ApiError::unavailable(e.to_string()))?
                .map_err(|e| ApiError::invalid(e.0))?;
            Some(Credential::Password { hash })
        }
        None => None,
    };
    iam.persist
        .update(|s| s.update_account(&uid, req.description.clone(), credential.clone()))
        .await?;
    Ok(no_content())
}

async fn delete_user(
    AxumState(iam): Shared,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Answer {
    iam.authorize(&headers, None)?;
    iam.persist.update(|s| s.remove_account(&uid)).await?;
    tracing::info!(%uid, "account removed");
    Ok(no_content())
}

async fn user_groups(
    AxumState(iam): Shared,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Answer {
    let state = iam.authorize(&headers, Some(&uid))?;
    state.account(&uid)?;
    let array: Vec<Value> = state
        .groups_of(&uid)
        .map(|(gid, g)| {
            json!({
                "membershipurl": format!("{}/users/{uid}", group_url(gid)),
                "group": group_json(gid, &g.description),
            })
        })
        .collect();
    Ok(ok(json!({"array": array})))
}

/// The permissions granted to an account or a group directly, one per resource.
fn permissions_of(state: &State, who: Grantee<'_>) -> Vec<Value> {
    let (kind, id) = match who {
        Grantee::User(uid) => ("users", uid),
        Grantee::Group(gid) => ("groups", gid),
    };
    state
        .acls
        .iter()
        .filter_map(|(rid, acl)| {
            let actions = acl.granted(who)?;
            let url = format!("{}/{kind}/{id}", acl_url(rid));
            Some(json!({
                "rid": rid, "description": acl.description, "aclurl": acl_url(rid),
                "actions": actions_json(&url, actions),
            }))
        })
        .collect()
}

async fn user_permissions(
    AxumState(iam): Shared,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Answer {
    let state = iam.authorize(&headers, Some(&uid))?;
    state.account(&uid)?;
    let direct = permissions_of(&state, Grantee::User(&uid));
    let mut groups = Vec::new();
    for (gid, _) in state.groups_of(&uid) {
        for (rid, acl) in &state.acls {
            if let Some(actions) = acl.groups.get(gid) {
                let url = format!("{}/groups/{gid}", acl_url(rid));
                groups.push(json!({
                    "rid": rid, "gid": gid, "description": acl.description, "aclurl": acl_url(rid),
                    "membershipurl": format!("{}/users/{uid}", group_url(gid)),
                    "actions": actions_json(&url, actions),
                }));
            }
        }
    }
    Ok(ok(json!({"direct": direct, "groups": groups})))
}

// --- Groups ---------------------------------------------------------------------------------

async fn list_groups(AxumState(iam): Shared, headers: HeaderMap) -> Answer {
    let state = iam.authorize(&headers, None)?;
    let array: Vec<Value> = state
        .groups
        .iter()
        .map(|(gid, g)| group_json(gid, &g.description))
        .collect();
    Ok(ok(json!({"array": array})))
}

async fn get_group(AxumState(iam): Shared, headers: HeaderMap, Path(gid): Path<String>) -> Answer {
    let state = iam.authorize(&headers, None)?;
    Ok(ok(group_json(&gid, &state.group(&gid)?.description)))
}

#[derive(Deserialize)]
struct Description {
    description: String,
}

async fn put_group(
    AxumState(iam): Shared,
    headers: HeaderMap,
    Path(gid): Path<String>,
    bytes: Bytes,
) -> Answer {
    let change = |s: &mut State, d: String| s.add_group(&gid, d);
    iam.describe(&headers, &bytes, change)
        .await
        .map(|()| created())
}

async fn patch_group(
    AxumState(iam): Shared,
    headers: HeaderMap,
    Path(gid): Path<String>,
    bytes: Bytes,
) -> Answer {
    let change = |s: &mut State, d: String| {
        let g = s
            .groups
            .get_mut(&gid)
            .ok_or_else(|| ApiError::unknown_group(&gid))?;
        g.description = d;
        Ok(())
    };
    iam.describe(&headers, &bytes, change)
        .await
        .map(|()| no_content())
}

async fn delete_group(
    AxumState(iam): Shared,
    headers: HeaderMap,
    Path(gid): Path<String>,
) -> Answer {
    iam.authorize(&headers, None)?;
    iam.persist.update(|s| s.remove_group(&gid)).await?;
    Ok(no_content())
}

async fn group_users(
    AxumState(iam): Shared,
    headers: HeaderMap,
    Path(gid): Path<String>,
    Query(q): Query<TypeQuery>,
) -> Answer {
    let state = iam.authorize(&headers, None)?;
    let group = state.group(&gid)?;
    let services = q.kind.as_deref() == Some("service");
    let array: Vec<Value> = group
        .members
        .iter()
        .filter_map(|uid| Some((uid, state.users.get(uid)?)))
        .filter(|(_, a)| q.kind.is_none() || a.is_service() == services)
        .map(|(uid, a)| {
            json!({"membershipurl": format!("{}/users/{uid}", group_url(&gid)), "user": user_json(uid, a)})
        })
        .collect();
    Ok(ok(json!({"array": array})))
}

async fn join(state: Shared, headers: HeaderMap, path: Path<(String, String)>) -> Answer {
    change_membership(state, headers, path, true).await
}

async fn leave(state: Shared, headers: HeaderMap, path: Path<(String, String)>) -> Answer {
    change_membership(state, headers, path, false).await
}

/// Puts an account in a group (or takes it out).
async fn change_membership(
    AxumState(iam): Shared,
    headers: HeaderMap,
    Path((gid, uid)): Path<(String, String)>,
    joining: bool,
) -> Answer {
    iam.authorize(&headers, None)?;
    iam.persist
        .update(|s| match joining {
            true => s.join(&gid, &uid),
            false => s.leave(&gid, &uid),
        })
        .await?;
    Ok(no_content())
}

async fn group_permissions(
    AxumState(iam): Shared,
    headers: HeaderMap,
    Path(gid): Path<String>,
) -> Answer {
    let state = iam.authorize(&headers, None)?;
    state.group(&gid)?;
    let array = permissions_of(&state, Grantee::Group(&gid));
    Ok(ok(json!({"array": array})))
}

// --- ACLs -----------------------------------------------------------------------------------

async fn list_acls(AxumState(iam): Shared, headers: HeaderMap) -> Answer {
    let state = iam.authorize(&headers, None)?;
    let array: Vec<Value> = state
        .acls
        .iter()
        .map(|(rid, acl)| json!({"rid": rid, "url": acl_url(rid), "description": acl.description}))
        .collect();
    Ok(ok(json!({"array": array})))
}

async fn get_acl(AxumState(iam): Shared, headers: HeaderMap, Path(rid): Path<String>) -> Answer {
    let state = iam.authorize(&headers, None)?;
    let rid = rid_of(&rid);
    let acl = state.acl(&rid)?;
    Ok(ok(
        json!({"rid": rid, "url": acl_url(&rid), "description": acl.description}),
    ))
}

async fn put_acl(
    AxumState(iam): Shared,
    headers: HeaderMap,
    Path(rid): Path<String>,
    bytes: Bytes,
) -> Answer {
    let rid = rid_of(&rid);
    let change = |s: &mut State, d: String| s.add_acl(&rid, d);
    iam.describe(&headers, &bytes, change)
        .await
        .map(|()| created())
}

async fn patch_acl(
    AxumState(iam): Shared,
    headers: HeaderMap,
    Path(rid): Path<String>,
    bytes: Bytes,
) -> Answer {
    let rid = rid_of(&rid);
    let change = |s: &mut State, d: String| s.describe_acl(&rid, d);
    iam.describe(&headers, &bytes, change)
        .await
        .map(|()| no_content())
}

async fn delete_acl(AxumState(iam): Shared, headers: HeaderMap, Path(rid): Path<String>) -> Answer {
    iam.authorize(&headers, None)?;
    let rid = rid_of(&rid);
    iam.persist.update(|s| s.remove_acl(&rid)).await?;
    Ok(no_content())
}

async fn acl_permissions(
    AxumState(iam): Shared,
    headers: HeaderMap,
    Path(rid): Path<String>,
) -> Answer {
    let state = iam.authorize(&headers, None)?;
    let rid = rid_of(&rid);
    let acl = state.acl(&rid)?;
    let users: Vec<Value> = acl
        .users
        .iter()
        .map(|(uid, actions)| {
            let url = format!("{}/users/{uid}", acl_url(&rid));
            json!({"uid": uid, "userurl": user_url(uid), "actions": actions_json(&url, actions)})
        })
        .collect();
    let groups: Vec<Value> = acl
        .groups
        .iter()
        .map(|(gid, actions)| {
            let url = format!("{}/groups/{gid}", acl_url(&rid));
            json!({"gid": gid, "groupurl": group_url(gid), "actions": actions_json(&url, actions)})
        })
        .collect();
    Ok(ok(json!({"users": users, "groups": groups})))
}

/// `users` or `groups` in an ACL path, with the id after it.
fn grantee<'a>(kind: &str, id: &'a str) -> Result<Grantee<'a>, ApiError> {
    match kind {
        "users" => Ok(Grantee::User(id)),
        "groups" => Ok(Grantee::Group(id)),
        _ => Err(ApiError::invalid_route()),
    }
}

fn action_of(name: &str) -> Result<Action, ApiError> {
    Action::parse(name).ok_or_else(|| {
        ApiError::invalid(format!(
            "Invalid action `{name}`: one of create, read, update, delete, full."
        ))
    })
}

async fn grantee_actions(
    AxumState(iam): Shared,
    headers: HeaderMap,
    Path((rid, kind, id)): Path<(String, String, String)>,
) -> Answer {
    let state = iam.authorize(&headers, None)?;
    let rid = rid_of(&rid);
    let who = grantee(&kind, &id)?;
    let actions = state
        .acl(&rid)?
        .granted(who)
        .ok_or_else(|| Acl::not_in(who, &rid))?;
    let url = format!("{}/{kind}/{id}", acl_url(&rid));
    Ok(ok(json!({"array": actions_json(&url, actions)})))
}

async fn grantee_allowed(
    AxumState(iam): Shared,
    headers: HeaderMap,
    Path((rid, kind, id, action)): Path<(String, String, String, String)>,
) -> Answer {
    let state = iam.authorize(&headers, None)?;
    let rid = rid_of(&rid);
    let action = action_of(&action)?;
    let granted = state.acl(&rid)?.granted(grantee(&kind, &id)?);
    let allowed = granted.is_some_and(|a| a.contains(&action) || a.contains(&Action::Full));
    Ok(ok(json!({"allowed": allowed})))
}

async fn grant(
    state: Shared,
    headers: HeaderMap,
    path: Path<(String, String, String, String)>,
) -> Answer {
    change_permission(state, headers, path, true).await
}

async fn revoke(
    state: Shared,
    headers: HeaderMap,
    path: Path<(String, String, String, String)>,
) -> Answer {
    change_permission(state, headers, path, false).await
}

/// Grants (or revokes) one action on a resource to an account or a group.
async fn change_permission(
    AxumState(iam): Shared,
    headers: HeaderMap,
    Path((rid, kind, id, action)): Path<(String, String, String, String)>,
    granting: bool,
) -> Answer {
    iam.authorize(&headers, None)?;
    let rid = rid_of(&rid);
    let action = action_of(&action)?;
    let who = grantee(&kind, &id)?;
    iam.persist
        .update(|s| match granting {
            true => s.grant(&rid, who, action),
            false => s.revoke(&rid, who, action),
        })
        .await?;
    tracing::info!(%rid, ?who, action = action.as_str(), granting, "permission changed");
    Ok(no_content())
}

async fn revoke_all(
    AxumState(iam): Shared,
    headers: HeaderMap,
    Path((rid, kind, id)): Path<(String, String, String)>,
) -> Answer {
    iam.authorize(&headers, None)?;
    let rid = rid_of(&rid);
    let who = grantee(&kind, &id)?;
    iam.persist
        .update(|s| {
            let actions: Vec<Action> = s
                .acl(&rid)?
                .granted(who)
                .ok_or_else(|| Acl::not_in(who, &rid))?
                .iter()
                .copied()
                .collect();
            for a in actions {
                s.revoke(&rid, who, a)?;
            }
            Ok(())
        })
        .await?;
    Ok(no_content())
}

#[cfg(test)]
mod tests;
