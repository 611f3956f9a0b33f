//! Token auth and manifest lists, against a small in-process registry: Distribution needs a
//! signed-JWT token service for the first, and a multi-platform push for the second.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use dcos_image::{Credentials, Reason, Reference, Store};
use dcos_testkit::images::{tar_of, Item};
use sha2::Digest;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const SCOPE: &str = "repository:team/app:pull";

#[derive(Default)]
struct Fake {
    realm: String,
    /// Path under /v2/team/app/ -> (content type, body).
    objects: HashMap<String, (String, Vec<u8>)>,
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

/// Tokens only for u:pw, and each names its scope.
async fn token(headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("u:pw")
    );
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(basic.as_str()) || q.get("service").map(String::as_str) != Some("fake") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let scope = q.get("scope").cloned().unwrap_or_default();
    axum::Json(serde_json::json!({ "token": format!("T {scope}") })).into_response()
}

async fn v2(State(fake): State<Arc<Fake>>, req: Request) -> Response {
    let want = format!("Bearer T {SCOPE}");
    let auth = req.headers().get(header::AUTHORIZATION);
    if auth.and_then(|v| v.to_str().ok()) != Some(want.as_str()) {
        let challenge = format!(
            r#"Bearer realm="{}",service="fake",scope="{SCOPE}""#,
            fake.realm
        );
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
        )
            .into_response();
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let path = req.uri().path().trim_start_matches("/v2/team/app/");
    match fake.objects.get(path) {
        // As Distribution does: an OCI manifest only for a client that accepts one.
        Some((ct, _)) if ct.starts_with("application/vnd.oci") && !accept.contains(ct) => {
            StatusCode::NOT_FOUND.into_response()
        }
        Some((ct, body)) => ([(header::CONTENT_TYPE, ct.clone())], body.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// An index with an arm64 and an amd64 image; only the amd64 one is served in full.
fn objects() -> HashMap<String, (String, Vec<u8>)> {
    let tar = tar_of(&[Item::File("hello".into(), 0o644, b"hi\n".to_vec())]).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let layer = gz.finish().unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": { "Entrypoint": ["/hello"], "WorkingDir": "/srv", "User": "nobody" },
        "rootfs": { "type": "layers", "diff_ids": [digest(&tar)] },
    }))
    .unwrap();
    let desc = |mt: &str, b: &[u8]| serde_json::json!({ "mediaType": mt, "digest": digest(b), "size": b.len() });
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc("application/vnd.oci.image.config.v1+json", &config),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", &layer)],
    }))
    .unwrap();
    let mut arm = desc(OCI_MANIFEST, b"elsewhere");
    arm["platform"] = serde_json::json!({ "os": "linux", "architecture": "arm64" });
    let mut amd = desc(OCI_MANIFEST, &manifest);
    amd["platform"] = serde_json::json!({ "os": "linux", "architecture": "amd64" });
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [arm, amd],
    }))
    .unwrap();
    let blob = "application/octet-stream".to_string();
    HashMap::from([
        ("manifests/multi".into(), (OCI_INDEX.into(), index)),
        (
            format!("manifests/{}", digest(&manifest)),
            (OCI_MANIFEST.into(), manifest),
        ),
        (format!("blobs/{}", digest(&config)), (blob.clone(), config)),
        (format!("blobs/{}", digest(&layer)), (blob, layer)),
    ])
}

#[tokio::test]
async fn bearer_token_auth_and_a_manifest_list_pick_linux_amd64() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = Arc::new(Fake {
        realm: format!("http://{addr}/token"),
        objects: objects(),
    });
    let app = axum::Router::new()
        .route("/token", get(token))
        .fallback(v2)
        .with_state(fake);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), vec![]).unwrap();
    let r = Reference::parse(&format!("{addr}/team/app:multi")).unwrap();
    let bad = Credentials {
        username: "u".into(),
        password: "wrong".into(),
    };
    for creds in [None, Some(&bad)] {
        let err = store.pull(&r, creds, false).await.unwrap_err();
        assert!(
            matches!(err.reason(), Some(Reason::Unauthorized(401))),
            "{err}"
        );
    }
    let good = Credentials {
        username: "u".into(),
        password: "pw".into(),
    };
    let before = store.stats().manifests;
    let image = store.pull(&r, Some(&good), false).await.unwrap();
    assert_eq!(image.config.entrypoint, vec!["/hello"]);
    assert_eq!(image.config.working_dir.as_deref(), Some("/srv"));
    assert_eq!(image.config.user.as_deref(), Some("nobody"));
    assert_eq!(
        std::fs::read(image.layers[0].join("hello")).unwrap(),
        b"hi\n"
    );
    assert_eq!(
        store.stats().manifests - before,
        2,
        "the index, then the amd64 manifest"
    );
}
