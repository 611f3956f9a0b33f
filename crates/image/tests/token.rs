//! Token auth and manifest lists, against a small in-process registry: Distribution needs a
//! signed-JWT token service for the first, and a multi-platform push for the second.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use dcos_image::{Credentials, Limits, Reason, Reference, Store};
use dcos_testkit::images::{tar_of, Item};
use sha2::Digest;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const SCOPE: &str = "repository:team/app:pull";

/// The registry, its token service and a foreign upload host, on 127.0.0.1 and 127.0.0.2.
struct Fake {
    realm: String,
    /// Where a blob upload goes (another host: the registry's auth must not follow).
    upload: String,
    /// Path under /v2/team/app/ -> (content type, body).
    objects: HashMap<String, (String, Vec<u8>)>,
    /// Every request: (host, path, its Authorization header).
    seen: Mutex<Vec<(String, String, Option<String>)>>,
}

struct Served {
    fake: Arc<Fake>,
    /// The registry's address (127.0.0.1).
    addr: SocketAddr,
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

fn good() -> Credentials {
    Credentials {
        username: "u".into(),
        password: "pw".into(),
    }
}

/// Serves `objects`; `realm_host` names the token service's host ("127.0.0.1" is the
/// registry's own).
async fn serve(objects: HashMap<String, (String, Vec<u8>)>, realm_host: &str) -> Served {
    let one = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let two = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let (addr, other) = (one.local_addr().unwrap(), two.local_addr().unwrap());
    let port = if realm_host == "127.0.0.1" {
        addr.port()
    } else {
        other.port()
    };
    let fake = Arc::new(Fake {
        realm: format!("http://{realm_host}:{port}/token"),
        upload: format!("http://{other}/upload/1"),
        objects,
        seen: Mutex::default(),
    });
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(fake.clone());
    for listener in [one, two] {
        tokio::spawn(axum::serve(listener, app.clone()).into_future());
    }
    Served { fake, addr }
}

async fn handle(State(fake): State<Arc<Fake>>, req: Request) -> Response {
    // Only the headers are borrowed: the body is not Sync, and the handler must be Send.
    let headers = req.headers().clone();
    let header_of = |h| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (host, auth) = (header_of(header::HOST), header_of(header::AUTHORIZATION));
    let path = req.uri().path().to_string();
    fake.seen
        .lock()
        .unwrap()
        .push((host.unwrap_or_default(), path.clone(), auth.clone()));
    if path == "/token" {
        let Query(q) = Query::<HashMap<String, String>>::try_from_uri(req.uri()).unwrap();
        return token(auth, q);
    }
    if path.starts_with("/upload/") {
        return StatusCode::CREATED.into_response();
    }
    v2(&fake, auth, req).await
}

/// Tokens only for u:pw, and each names its scope.
fn token(auth: Option<String>, q: HashMap<String, String>) -> Response {
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("u:pw")
    );
    if auth != Some(basic) || q.get("service").map(String::as_str) != Some("fake") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let scope = q.get("scope").cloned().unwrap_or_default();
    axum::Json(serde_json::json!({ "token": format!("T {scope}") })).into_response()
}

async fn v2(fake: &Fake, auth: Option<String>, req: Request) -> Response {
    if auth != Some(format!("Bearer T {SCOPE}")) {
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
    match (req.method().clone(), path) {
        (Method::POST, "blobs/uploads/") => {
            let location = [(header::LOCATION, fake.upload.clone())];
            return (StatusCode::ACCEPTED, location).into_response();
        }
        (Method::PUT, _) => return StatusCode::CREATED.into_response(),
        (_, "manifests/slow") => tokio::time::sleep(Duration::from_secs(30)).await,
        _ => {}
    }
    match fake.objects.get(path) {
        // As Distribution does: an OCI manifest only for a client that accepts one.
        Some((ct, _)) if ct.starts_with("application/vnd.oci") && !accept.contains(ct) => {
            StatusCode::NOT_FOUND.into_response()
        }
        Some((ct, body)) => ([(header::CONTENT_TYPE, ct.clone())], body.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A one-file layer: (tar, tar+gzip).
fn layer() -> (Vec<u8>, Vec<u8>) {
    let tar = tar_of(&[Item::File("hello".into(), 0o644, b"hi\n".to_vec())]).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    (tar, gz.finish().unwrap())
}

fn desc(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({ "mediaType": media_type, "digest": digest(bytes), "size": bytes.len() })
}

fn json(value: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&value).unwrap()
}

/// An OCI image manifest of `config` and `layers` (descriptors).
fn manifest(config: &[u8], layers: serde_json::Value) -> Vec<u8> {
    json(serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc("application/vnd.oci.image.config.v1+json", config),
        "layers": layers,
    }))
}

/// An index whose linux/amd64 entry names `digest` (and an arm64 one).
fn index(amd64_digest: &str) -> Vec<u8> {
    let mut arm = desc(OCI_MANIFEST, b"elsewhere");
    arm["platform"] = serde_json::json!({ "os": "linux", "architecture": "arm64" });
    let amd = serde_json::json!({
        "mediaType": OCI_MANIFEST, "digest": amd64_digest, "size": 100,
        "platform": { "os": "linux", "architecture": "amd64" },
    });
    json(serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [arm, amd],
    }))
}

/// `multi`: an index with an arm64 and an amd64 image; only the amd64 one is served in full.
/// The other tags break one rule each.
fn objects() -> HashMap<String, (String, Vec<u8>)> {
    let (tar, layer) = layer();
    let config = json(serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": { "Entrypoint": ["/hello"], "WorkingDir": "/srv", "User": "nobody" },
        "rootfs": { "type": "layers", "diff_ids": [digest(&tar)] },
    }));
    let layer_desc = desc("application/vnd.oci.image.layer.v1.tar+gzip", &layer);
    let good = manifest(&config, serde_json::json!([layer_desc.clone()]));
    let mut short = layer_desc;
    short["size"] = (layer.len() - 1).into();
    let (oci, blob) = (
        OCI_MANIFEST.to_string(),
        "application/octet-stream".to_string(),
    );
    let claimed = digest(b"claimed");
    HashMap::from([
        (
            "manifests/multi".into(),
            (OCI_INDEX.into(), index(&digest(&good))),
        ),
        (
            format!("manifests/{}", digest(&good)),
            (oci.clone(), good.clone()),
        ),
        // An entry digest that is no sha256 digest, and one whose manifest is another.
        (
            "manifests/bad-entry".into(),
            (OCI_INDEX.into(), index("sha256:../../blobs")),
        ),
        (
            "manifests/lying-entry".into(),
            (OCI_INDEX.into(), index(&claimed)),
        ),
        (format!("manifests/{claimed}"), (oci.clone(), good)),
        // Larger than any manifest may be, and a layer larger than its descriptor says.
        ("manifests/huge".into(), (oci.clone(), vec![b' '; 5 << 20])),
        (
            "manifests/short".into(),
            (oci, manifest(&config, serde_json::json!([short]))),
        ),
        (format!("blobs/{}", digest(&config)), (blob.clone(), config)),
        (format!("blobs/{}", digest(&layer)), (blob, layer)),
    ])
}

fn reference(served: &Served, tag: &str) -> Reference {
    Reference::parse(&format!("{}/team/app:{tag}", served.addr)).unwrap()
}

#[tokio::test]
async fn bearer_token_auth_and_a_manifest_list_pick_linux_amd64() {
    let served = serve(objects(), "127.0.0.1").await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), vec![]).unwrap();
    let r = reference(&served, "multi");
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
    let before = store.stats().manifests;
    let image = store.pull(&r, Some(&good()), false).await.unwrap();
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

#[tokio::test]
async fn list_entries_manifests_and_blobs_are_checked_and_bounded() {
    let served = serve(objects(), "127.0.0.1").await;
    for (tag, want) in [
        ("bad-entry", "the manifest list names an unsupported digest"),
        ("lying-entry", "does not match its digest"),
        (
            "huge",
            "manifest huge is larger than the limit of 4194304 bytes",
        ),
        ("short", "bytes its manifest says"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), vec![]).unwrap();
        let r = reference(&served, tag);
        let err = store.pull(&r, Some(&good()), false).await.unwrap_err();
        assert!(err.to_string().contains(want), "{tag}: {err}");
    }
}

#[tokio::test]
async fn a_pull_stops_at_its_deadline() {
    let served = serve(objects(), "127.0.0.1").await;
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        pull_deadline: Duration::from_millis(300),
        ..Limits::default()
    };
    let store = Store::open_with(dir.path(), vec![], limits).unwrap();
    let started = std::time::Instant::now();
    let err = store
        .pull(&reference(&served, "slow"), Some(&good()), false)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("the pull did not finish within 0.3 s"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn credentials_go_to_no_plain_http_realm_on_another_host() {
    let served = serve(objects(), "127.0.0.2").await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), vec![]).unwrap();
    let err = store
        .pull(&reference(&served, "multi"), Some(&good()), false)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("credentials are not sent to token realm"),
        "{err}"
    );
    let seen = served.fake.seen.lock().unwrap();
    assert!(seen.iter().all(|(_, path, _)| path != "/token"), "{seen:?}");
}

#[tokio::test]
async fn the_registry_auth_does_not_follow_an_upload_to_another_host() {
    let served = serve(objects(), "127.0.0.1").await;
    let dir = tempfile::tempdir().unwrap();
    // A config the registry lacks, so it is uploaded; the layer it has.
    let config = json(serde_json::json!({ "architecture": "amd64", "os": "linux" }));
    let layer = layer().1;
    let manifest = manifest(
        &config,
        serde_json::json!([desc("application/vnd.oci.image.layer.v1.tar+gzip", &layer)]),
    );
    let blobs = dir.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for b in [&config, &layer, &manifest] {
        std::fs::write(blobs.join(&digest(b)[7..]), b).unwrap();
    }
    let index = json(serde_json::json!({
        "schemaVersion": 2, "manifests": [desc(OCI_MANIFEST, &manifest)],
    }));
    std::fs::write(dir.path().join("index.json"), index).unwrap();
    let r = reference(&served, "pushed");
    let pushed = dcos_image::push_oci_layout(dir.path(), &r, Some(&good()), &[])
        .await
        .unwrap();
    assert_eq!(pushed, digest(&manifest));
    let seen = served.fake.seen.lock().unwrap();
    let uploads: Vec<_> = seen.iter().filter(|(_, p, _)| p == "/upload/1").collect();
    assert_eq!(uploads.len(), 1, "{seen:?}");
    assert_eq!(
        uploads[0].2, None,
        "the registry's token went to the upload host"
    );
    assert!(seen
        .iter()
        .any(|(_, p, auth)| p.ends_with("/blobs/uploads/") && auth.is_some()));
}
