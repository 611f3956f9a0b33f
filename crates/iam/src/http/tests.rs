//! The IAM's HTTP API in process: shapes, status codes and error codes as DC/OS' IAM answers
//! them, and changes that a refused request leaves undone.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::{Bootstrap, Config, Iam};

struct Env {
    iam: Arc<Iam>,
    _dir: tempfile::TempDir,
}

async fn env(require_token: bool) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("seal.key");
    std::fs::write(&secret, b"a secret only masters have").unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: dcos_store::Location::Embedded(dir.path().join("iam.redb")),
        bootstrap: Some(Bootstrap {
            superuser: Some((
                "root".into(),
                crate::password::hash("root-password").unwrap(),
            )),
            service_accounts: Vec::new(),
        }),
        seal_secret: secret,
        require_token,
        oidc: Vec::new(),
    };
    Env {
        iam: Arc::new(Iam::open(&config).await.unwrap()),
        _dir: dir,
    }
}

impl Env {
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("token={t}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let resp = crate::http::router(self.iam.clone())
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body, None).await;
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v
    }
}

const P: &str = "/acs/api/v1";

#[tokio::test]
async fn accounts_groups_and_acls_answer_as_dcos_iam_does() {
    let e = env(false).await;
    // Users.
    let (s, _) = e
        .call(
            "PUT",
            &format!("{P}/users/alice"),
            Some(json!({"password": "alice-pw", "description": "Alice"})),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = e
        .call(
            "PUT",
            &format!("{P}/users/alice"),
            Some(json!({"password": "alice-pw"})),
            None,
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("ERR_USER_EXISTS"))
    );
    let (s, v) = e
        .call("GET", &format!("{P}/users/nobody"), None, None)
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ERR_UNKNOWN_USER_ID"))
    );
    assert_eq!(v["description"], "User with uid `nobody` not known.");
    for (body, why) in [
        (json!({"password": "1234"}), "Password does not match rules"),
        (
            json!({"password": "alice-pw", "admin": true}),
            "Additional properties are not allowed ('admin' was unexpected)",
        ),
        (
            json!({"description": "neither"}),
            "One of `password` or `public_key` must be provided",
        ),
        (
            json!({"public_key": "-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----"}),
            "Invalid public key",
        ),
    ] {
        let (s, v) = e
            .call("PUT", &format!("{P}/users/bob"), Some(body), None)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["description"].as_str().unwrap().contains(why), "{v}");
    }
    let (s, v) = e
        .call(
            "PUT",
            &format!("{P}/users/anonymous"),
            Some(json!({"password": "12345"})),
            None,
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ERR_INVALID_USER_ID"))
    );
    let users = e.ok("GET", &format!("{P}/users"), None).await;
    let uids: Vec<&str> = users["array"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids, ["alice", "root"]);
    assert_eq!(users["array"][0]["url"], "/acs/api/v1/users/alice");
    assert_eq!(users["array"][0]["is_service"], false);
    // A service account, listed apart.
    let (_, public) = crate::keys::generate_account_pair().unwrap();
    e.ok(
        "PUT",
        &format!("{P}/users/svc"),
        Some(json!({"public_key": public})),
    )
    .await;
    let services = e.ok("GET", &format!("{P}/users?type=service"), None).await;
    assert_eq!(services["array"][0]["uid"], "svc");
    assert_eq!(services["array"][0]["public_key"], public);
    let (s, v) = e
        .call(
            "PATCH",
            &format!("{P}/users/svc"),
            Some(json!({"password": "new-password"})),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    // Groups and membership.
    e.ok(
        "PUT",
        &format!("{P}/groups/ops"),
        Some(json!({"description": "Operators"})),
    )
    .await;
    e.ok("PUT", &format!("{P}/groups/ops/users/alice"), None)
        .await;
    let (s, _) = e
        .call("PUT", &format!("{P}/groups/ops/users/alice"), None, None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let members = e.ok("GET", &format!("{P}/groups/ops/users"), None).await;
    assert_eq!(members["array"][0]["user"]["uid"], "alice");
    let mine = e.ok("GET", &format!("{P}/users/alice/groups"), None).await;
    assert_eq!(mine["array"][0]["group"]["gid"], "ops");

    // ACLs, with a `/` in a resource id escaped twice as clients send it.
    let rid = "dcos:service:marathon:marathon:services:/prod";
    let path = format!("{P}/acls/dcos:service:marathon:marathon:services:%252Fprod");
    e.ok("PUT", &path, Some(json!({"description": "prod apps"})))
        .await;
    e.ok("PUT", &format!("{path}/groups/ops/read"), None).await;
    e.ok("PUT", &format!("{path}/users/alice/full"), None).await;
    let perms = e.ok("GET", &format!("{path}/permissions"), None).await;
    assert_eq!(perms["users"][0]["uid"], "alice");
    assert_eq!(perms["users"][0]["actions"][0]["name"], "full");
    assert_eq!(perms["groups"][0]["gid"], "ops");
    let alice = e
        .ok("GET", &format!("{P}/users/alice/permissions"), None)
        .await;
    assert_eq!(alice["direct"][0]["rid"], rid);
    assert_eq!(alice["groups"][0]["gid"], "ops");
    let allowed = e
        .ok("GET", &format!("{path}/users/alice/delete"), None)
        .await;
    assert_eq!(allowed, json!({"allowed": true}));
    let (s, v) = e
        .call("GET", &format!("{path}/users/root"), None, None)
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ERR_USER_NOT_IN_ACL"))
    );
    let (s, v) = e
        .call("DELETE", &format!("{path}/users/alice/read"), None, None)
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ERR_ACTION_NOT_YET_STORED"))
    );
    let q = |uid: &str, action: &str| {
        format!(
            "{P}/internal/policyquery?uid={uid}&rid={}&action={action}",
            rid.replace('/', "%2F")
        )
    };
    assert_eq!(
        e.ok("GET", &q("alice", "delete"), None).await,
        json!({"allowed": true})
    );
    e.ok("DELETE", &format!("{P}/groups/ops/users/alice"), None)
        .await;
    e.ok("DELETE", &format!("{path}/users/alice"), None).await;
    assert_eq!(
        e.ok("GET", &q("alice", "read"), None).await,
        json!({"allowed": false})
    );
    assert_eq!(
        e.ok("GET", &q("root", "read"), None).await,
        json!({"allowed": true})
    );

    // The last superuser stays, and a refused change leaves everything as it was.
    let (s, v) = e
        .call("DELETE", &format!("{P}/users/root"), None, None)
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ERR_NO_MORE_SUPERUSERS"))
    );
    assert_eq!(
        e.ok("GET", &q("root", "full"), None).await,
        json!({"allowed": true})
    );
    e.ok("DELETE", &format!("{P}/users/alice"), None).await;
    assert!(e.iam.persist.state().groups["ops"].members.is_empty());
}

#[tokio::test]
async fn logins_and_management_need_the_right_credentials() {
    let e = env(true).await;
    let (s, v) = e.call("GET", &format!("{P}/users"), None, None).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("ERR_MISSING_AUTH_TOKEN"))
    );
    let (s, login) = e
        .call(
            "POST",
            &format!("{P}/auth/login"),
            Some(json!({"uid": "root", "password": "root-password"})),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{login}");
    let root = login["token"].as_str().unwrap().to_string();
    let (s, _) = e
        .call(
            "PUT",
            &format!("{P}/users/alice"),
            Some(json!({"password": "alice-pw"})),
            Some(&root),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, login) = e
        .call(
            "POST",
            &format!("{P}/auth/login"),
            Some(json!({"uid": "alice", "password": "alice-pw"})),
            None,
        )
        .await;
    let alice = login["token"].as_str().unwrap().to_string();
    // Alice reads herself, not others, and manages nothing.
    let (s, _) = e
        .call("GET", &format!("{P}/users/alice"), None, Some(&alice))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = e
        .call("GET", &format!("{P}/users"), None, Some(&alice))
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("ERR_FORBIDDEN"))
    );
    // Login bodies are checked before anything is looked up.
    for (body, why) in [
        (
            json!({"uid": "alice"}),
            "Exactly one of `token` and `password`",
        ),
        (json!({"password": "x"}), "`uid` missing"),
        (json!({"uid": "", "password": ""}), "must not be empty"),
    ] {
        let (s, v) = e
            .call("POST", &format!("{P}/auth/login"), Some(body), None)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["description"].as_str().unwrap().contains(why), "{v}");
    }
    // A cluster token is exchanged (for cookies), never renewed: the new one expires with it.
    let (s, v) = e
        .call(
            "POST",
            &format!("{P}/auth/login"),
            Some(json!({"token": root})),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let exp = |t: &str| {
        let keys = [e.iam.key.public().clone()];
        crate::api::verify(t, &keys, crate::api::now_secs()).unwrap()["exp"].as_u64()
    };
    assert!(exp(v["token"].as_str().unwrap()) <= exp(&root));
    let (s, v) = e
        .call(
            "POST",
            &format!("{P}/auth/login"),
            Some(json!({"token": "not.a.token"})),
            None,
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("ERR_INVALID_CREDENTIALS"))
    );
    // The keys and providers are public.
    let jwks = e.ok("GET", &format!("{P}/auth/jwks"), None).await;
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
    let keys = crate::api::keys_of(&serde_json::from_value(jwks).unwrap());
    assert!(crate::api::verify(&root, &keys, crate::api::now_secs()).is_ok());
    let providers = e.ok("GET", &format!("{P}/auth/providers"), None).await;
    assert_eq!(
        providers["dcos-services"]["client-method"],
        "dcos-servicecredential-post-receive-authtoken"
    );
}

#[tokio::test]
async fn an_oidc_providers_id_token_logs_in_the_remote_account_it_vouches_for() {
    let dir = tempfile::tempdir().unwrap();
    let (provider_key, _) = crate::keys::SigningKey::generate().unwrap();
    let jwks = dir.path().join("jwks.json");
    let set = crate::api::Jwks {
        keys: vec![provider_key.public().jwk()],
    };
    std::fs::write(&jwks, serde_json::to_vec(&set).unwrap()).unwrap();
    let secret = dir.path().join("seal.key");
    std::fs::write(&secret, b"a secret only masters have").unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: dcos_store::Location::Embedded(dir.path().join("iam.redb")),
        bootstrap: None,
        seal_secret: secret,
        require_token: false,
        oidc: vec![crate::oidc::ProviderConfig {
            id: "corp".into(),
            description: "Corp SSO".into(),
            issuer: "https://sso.corp.example/".into(),
            client_id: "dcos".into(),
            jwks_file: Some(jwks),
            jwks_url: None,
        }],
    };
    let e = Env {
        iam: Arc::new(Iam::open(&config).await.unwrap()),
        _dir: dir,
    };
    let providers = e.ok("GET", &format!("{P}/auth/providers"), None).await;
    assert_eq!(providers["corp"]["description"], "Corp SSO");
    e.ok(
        "PUT",
        &format!("{P}/users/ann@corp.example"),
        Some(json!({"provider_type": "oidc", "provider_id": "corp"})),
    )
    .await;
    let now = crate::api::now_secs();
    let id_token = |claims: Value| provider_key.sign(&claims).unwrap();
    let good = json!({"iss": "https://sso.corp.example/", "aud": "dcos", "exp": now + 60,
        "email": "ann@corp.example", "email_verified": true});
    let (s, v) = e
        .call(
            "POST",
            &format!("{P}/auth/login"),
            Some(json!({"token": id_token(good.clone())})),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["token"].is_string());
    // Another issuer or audience, an unverified e-mail, or an account the IAM does not have.
    for (key, value) in [
        ("iss", json!("https://evil.example/")),
        ("aud", json!("other")),
        ("email_verified", json!(false)),
        ("email", json!("bob@corp.example")),
    ] {
        let mut claims = good.clone();
        claims[key] = value;
        let (s, _) = e
            .call(
                "POST",
                &format!("{P}/auth/login"),
                Some(json!({"token": id_token(claims)})),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{key}");
    }
    let mut claims = good.clone();
    claims.as_object_mut().unwrap().remove("email_verified");
    let (s, _) = e
        .call(
            "POST",
            &format!("{P}/auth/login"),
            Some(json!({"token": id_token(claims)})),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "without email_verified");
}
