//! Cosmos, the DC/OS package manager (`dcos-cosmos.service`, masters, `127.0.0.1:7070` and
//! its Twitter-server admin port `127.0.0.1:9990`).
//!
//! Packages come from repositories in Universe's formats ([`universe`], [`repos`]); an
//! install renders the package's Marathon template with the user's options over the
//! defaults its schema declares ([`options`], [`mustache`]) and creates the app through
//! Marathon, marked with the `DCOS_PACKAGE_*` labels ([`apps`]) from which `list`,
//! `uninstall` and `/cosmos/service/*` read what is installed. Every endpoint speaks
//! Cosmos 0.5's media types ([`media`]) and error shapes ([`error`]).
//!
//! The admin port answers Twitter-server's `/admin`, `/admin/ping` (`pong`),
//! `/admin/metrics.json`, `/admin/server_info` and `/health` (`OK`), and redirects `/` to
//! `/admin`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub mod api;
pub mod apps;
pub mod error;
pub mod marathon;
pub mod media;
pub mod mustache;
pub mod options;
pub mod repos;
pub mod universe;

pub use error::{CosmosError, ERROR_TYPE};

/// The API port of the contract.
pub const API_PORT: u16 = 7070;
/// The Twitter-server admin port of the contract.
pub const ADMIN_PORT: u16 = 9990;

/// The media type of a `/capabilities` answer.
pub const CAPABILITIES_TYPE: &str = media::CAPABILITIES;

/// What this cluster has, in Cosmos' names, DC/OS 1.11's list: the package manager,
/// dcos-diagnostics' bundles, Metronome (the DC/OS CLI requires `METRONOME` before `dcos
/// job`), and dcos-log's v1 and v2 APIs (the DC/OS CLI reads logs through them when listed).
pub const CAPABILITIES: &[&str] = &[
    "PACKAGE_MANAGEMENT",
    "SUPPORT_CLUSTER_REPORT",
    "METRONOME",
    "LOGGING",
    "LOGGING_V2",
];

/// Where Cosmos listens, and what it works with.
#[derive(Clone, Debug)]
pub struct Config {
    /// The API (`127.0.0.1:7070`).
    pub listen: SocketAddr,
    /// The Twitter-server admin port (`127.0.0.1:9990`), if any.
    pub admin: Option<SocketAddr>,
    /// Marathon's base URL (`http://<this master>:8080`).
    pub marathon: String,
    /// Where the repository list is kept.
    pub store: dcos_store::Location,
}

/// Why Cosmos cannot run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An address cannot be bound.
    #[error("cannot bind {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The store cannot be opened.
    #[error("cannot open the store")]
    Store(#[source] dcos_store::Error),
}

/// Limits of the API: requests from Admin Router and local services; an install's options
/// are the largest body.
pub const LIMITS: dcos_serve::Limits = dcos_serve::Limits::api().connections(128).body(1024 * 1024);
/// Limits of the admin port: local probes.
pub const ADMIN_LIMITS: dcos_serve::Limits =
    dcos_serve::Limits::api().connections(16).body(4 * 1024);

async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// Binds the configured addresses and serves until `shutdown` is cancelled.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let api = bind(config.listen).await?;
    let admin = match config.admin {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let cosmos = Arc::new(api::Cosmos::new(
        repos::Repositories::open(config.store)
            .await
            .map_err(Error::Store)?,
        marathon::Marathon::new(config.marathon),
    ));
    let stats = Arc::new(Stats::default());
    tracing::info!(addr = %config.listen, "listening for Cosmos requests");
    let api = dcos_serve::serve(api, router(cosmos, stats.clone()), LIMITS, shutdown.clone());
    let admin = async {
        if let Some(admin) = admin {
            dcos_serve::serve(admin, admin_router(stats), ADMIN_LIMITS, shutdown).await;
        }
    };
    tokio::join!(api, admin);
    Ok(())
}

/// Request counts for `/admin/metrics.json`.
#[derive(Default)]
pub struct Stats {
    requests: AtomicU64,
    status: [AtomicU64; 6],
    started: std::sync::OnceLock<std::time::Instant>,
}

impl Stats {
    fn started(&self) -> std::time::Instant {
        *self.started.get_or_init(std::time::Instant::now)
    }
}

async fn count(State(stats): State<Arc<Stats>>, request: Request, next: Next) -> Response {
    stats.requests.fetch_add(1, Ordering::Relaxed);
    let response = next.run(request).await;
    let class = usize::from(response.status().as_u16() / 100).min(5);
    stats.status[class].fetch_add(1, Ordering::Relaxed);
    response
}

/// The API: `/capabilities`, the package API, and Cosmos' 404 elsewhere.
pub fn router(cosmos: Arc<api::Cosmos>, stats: Arc<Stats>) -> Router {
    stats.started();
    api::routes()
        .route("/capabilities", get(capabilities))
        .fallback(not_found)
        .with_state(cosmos)
        .layer(axum::middleware::from_fn_with_state(stats, count))
}

/// The Twitter-server admin endpoints.
pub fn admin_router(stats: Arc<Stats>) -> Router {
    stats.started();
    Router::new()
        .route("/", get(|| async { Redirect::to("/admin") }))
        .route(
            "/admin",
            get(|| async {
                axum::response::Html(
                    "<html><head><title>Cosmos admin</title></head><body><h1>Cosmos</h1><ul>\
                     <li><a href=\"/admin/ping\">/admin/ping</a></li>\
                     <li><a href=\"/admin/metrics.json\">/admin/metrics.json</a></li>\
                     <li><a href=\"/admin/server_info\">/admin/server_info</a></li>\
                     <li><a href=\"/health\">/health</a></li></ul></body></html>\n",
                )
            }),
        )
        .route("/admin/ping", get(|| async { "pong" }))
        .route("/health", get(|| async { "OK" }))
        .route("/admin/metrics.json", get(metrics))
        .route(
            "/admin/server_info",
            get(|| async {
                axum::Json(serde_json::json!({
                    "name": "cosmos",
                    "version": env!("CARGO_PKG_VERSION"),
                }))
            }),
        )
        .with_state(stats)
}

async fn metrics(State(stats): State<Arc<Stats>>) -> Response {
    let n = |i: usize| stats.status[i].load(Ordering::Relaxed);
    let failures = n(4) + n(5);
    axum::Json(serde_json::json!({
        "srv/requests": stats.requests.load(Ordering::Relaxed),
        "srv/success": n(2) + n(3),
        "srv/failures": failures,
        "srv/status/2XX": n(2),
        "srv/status/3XX": n(3),
        "srv/status/4XX": n(4),
        "srv/status/5XX": n(5),
        "jvm/uptime": stats.started().elapsed().as_millis() as u64,
    }))
    .into_response()
}

/// `GET /capabilities`, when `Accept` names its media type.
async fn capabilities(headers: HeaderMap) -> Response {
    if let Err(e) = media::negotiate(&headers, &[CAPABILITIES_TYPE]) {
        return e.into_response();
    }
    let list: Vec<_> = CAPABILITIES
        .iter()
        .map(|name| serde_json::json!({"name": name}))
        .collect();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(CAPABILITIES_TYPE),
        )],
        serde_json::json!({"capabilities": list}).to_string(),
    )
        .into_response()
}

/// Paths Cosmos 0.5 does not serve (`/`, `/service/start` of 0.4, ...).
async fn not_found(request: Request) -> Response {
    CosmosError::new(
        "not_found",
        format!(
            "{} {} is not an endpoint of Cosmos",
            request.method(),
            request.uri().path()
        ),
    )
    .status(StatusCode::NOT_FOUND)
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    /// A Cosmos whose store is a temporary file and whose Marathon is unreachable: enough
    /// for what is decided before Marathon is asked (the integration tests install for real).
    async fn cosmos() -> (tempfile::TempDir, Router) {
        let dir = tempfile::tempdir().unwrap();
        let location = dcos_store::Location::Embedded(dir.path().join("cosmos.redb"));
        let cosmos = Arc::new(api::Cosmos::new(
            repos::Repositories::open(location).await.unwrap(),
            marathon::Marathon::new("http://127.0.0.1:1"),
        ));
        (dir, router(cosmos, Arc::new(Stats::default())))
    }

    async fn call(
        router: Router,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, String, serde_json::Value) {
        let mut request = axum::http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = router
            .oneshot(request.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let kind = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        (status, kind, body)
    }

    #[tokio::test]
    async fn capabilities_list_the_package_manager_with_the_vendor_type() {
        let (_dir, router) = cosmos().await;
        let (status, kind, body) = call(
            router.clone(),
            "GET",
            "/capabilities",
            &[("accept", CAPABILITIES_TYPE)],
            "",
        )
        .await;
        assert_eq!((status, kind.as_str()), (StatusCode::OK, CAPABILITIES_TYPE));
        assert_eq!(
            body,
            serde_json::json!({"capabilities": [{"name": "PACKAGE_MANAGEMENT"},
                {"name": "SUPPORT_CLUSTER_REPORT"}, {"name": "METRONOME"}, {"name": "LOGGING"},
                {"name": "LOGGING_V2"}]})
        );
        for accept in [
            "*/*",
            "application/json",
            "application/vnd.dcos.capabilities+json",
        ] {
            let (status, kind, body) = call(
                router.clone(),
                "GET",
                "/capabilities",
                &[("accept", accept)],
                "",
            )
            .await;
            assert_eq!(
                (status, kind.as_str()),
                (StatusCode::BAD_REQUEST, ERROR_TYPE)
            );
            assert_eq!(body["type"], "not_valid", "{accept}");
        }
    }

    #[tokio::test]
    async fn other_paths_are_404_in_cosmos_error_shape() {
        let (_dir, router) = cosmos().await;
        for path in ["/", "/service/start", "/package/nope"] {
            let (status, kind, body) = call(router.clone(), "POST", path, &[], "{}").await;
            assert_eq!(
                (status, kind.as_str()),
                (StatusCode::NOT_FOUND, ERROR_TYPE),
                "{path}"
            );
            assert_eq!(body["type"], "not_found");
        }
    }

    #[tokio::test]
    async fn requests_are_read_as_cosmos_reads_them() {
        let (_dir, router) = cosmos().await;
        let request = "application/vnd.dcos.package.search-request+json;charset=utf-8;version=v1";
        let response = "application/vnd.dcos.package.search-response+json;charset=utf-8;version=v1";
        let search = |headers: Vec<(&'static str, &'static str)>, body: &'static str| {
            let router = router.clone();
            async move { call(router, "POST", "/package/search", &headers, body).await }
        };
        let (status, kind, body) =
            search(vec![("accept", response), ("content-type", request)], "{}").await;
        assert_eq!((status, kind.as_str()), (StatusCode::OK, response));
        let names: Vec<&str> = body["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"hello-world"), "{body}");
        let hello = body["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "hello-world")
            .unwrap();
        assert_eq!(hello["currentVersion"], "0.2.0");
        assert_eq!(
            hello["versions"],
            serde_json::json!({"0.1.0": "0", "0.2.0": "1"})
        );

        // The headers, the body, and the error type Cosmos answers.
        type Case = (
            Vec<(&'static str, &'static str)>,
            &'static str,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (vec![("content-type", request)], "{}", "not_present"),
            (
                vec![("accept", "application/json"), ("content-type", request)],
                "{}",
                "not_valid",
            ),
            (vec![("accept", response)], "{}", "not_present"),
            (
                vec![("accept", response), ("content-type", "application/json")],
                "{}",
                "not_valid",
            ),
            (
                vec![("accept", response), ("content-type", request)],
                "{",
                "json_error",
            ),
            (
                vec![("accept", response), ("content-type", request)],
                "{\"query\": 5}",
                "json_error",
            ),
        ];
        for (headers, body, kind) in cases {
            let (status, _, answer) = search(headers.clone(), body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{headers:?} {body}");
            assert_eq!(answer["type"], kind, "{headers:?} {body}: {answer}");
        }
    }

    #[tokio::test]
    async fn every_endpoint_refuses_requests_without_its_media_types() {
        let (_dir, router) = cosmos().await;
        let endpoints = [
            ("/package/list", "list"),
            ("/package/search", "search"),
            ("/package/describe", "describe"),
            ("/package/list-versions", "list-versions"),
            ("/package/install", "install"),
            ("/package/render", "render"),
            ("/package/uninstall", "uninstall"),
            ("/package/repository/list", "repository.list"),
            ("/package/repository/add", "repository.add"),
            ("/package/repository/delete", "repository.delete"),
        ];
        for (path, kind) in endpoints {
            let request = format!(
                "application/vnd.dcos.package.{kind}-request+json;charset=utf-8;version=v1"
            );
            let cases = [
                (vec![("content-type", request.as_str())], "not_present"),
                (
                    vec![("accept", "*/*"), ("content-type", request.as_str())],
                    "not_valid",
                ),
                (
                    vec![
                        ("accept", "application/json"),
                        ("content-type", request.as_str()),
                    ],
                    "not_valid",
                ),
            ];
            for (headers, kind) in cases {
                let (status, content_type, body) =
                    call(router.clone(), "POST", path, &headers, "{}").await;
                assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {headers:?}");
                assert_eq!(content_type, ERROR_TYPE);
                assert_eq!(body["type"], kind, "{path} {headers:?}: {body}");
            }
        }
        for path in ["/service/describe", "/service/update"] {
            let (status, _, body) = call(router.clone(), "POST", path, &[], "{}").await;
            assert_eq!(
                (status, body["type"].as_str()),
                (StatusCode::BAD_REQUEST, Some("not_present"))
            );
        }
    }

    #[tokio::test]
    async fn a_kept_search_answer_follows_the_repositories() {
        let (dir, router) = cosmos().await;
        let search = |query: &str| {
            let router = router.clone();
            let body = serde_json::json!({"query": query}).to_string();
            async move {
                let headers = [
                    ("accept", "application/vnd.dcos.package.search-response+json;charset=utf-8;version=v1"),
                    ("content-type", "application/vnd.dcos.package.search-request+json;charset=utf-8;version=v1"),
                ];
                call(router, "POST", "/package/search", &headers, &body)
                    .await
                    .2
            }
        };
        let names = |answer: &serde_json::Value| -> Vec<String> {
            answer["packages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect()
        };
        let first = search("").await;
        assert_eq!(search("").await, first, "the kept answer is the same");
        assert_eq!(names(&search("kv").await), ["kv-store"]);
        // Another repository: the next search sees its package.
        let repo = dir.path().join("extra.json");
        let template = "{}";
        let extra = serde_json::json!({"packages": [{"packagingVersion": "4.0", "name": "extra",
            "version": "1", "releaseVersion": 0, "maintainer": "m", "description": "d",
            "marathon": {"v2AppMustacheTemplate": base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD, template)}}]});
        std::fs::write(&repo, extra.to_string()).unwrap();
        let headers = [
            ("accept", "application/vnd.dcos.package.repository.add-response+json;charset=utf-8;version=v1"),
            ("content-type", "application/vnd.dcos.package.repository.add-request+json;charset=utf-8;version=v1"),
        ];
        let body =
            serde_json::json!({"name": "extra", "uri": format!("file://{}", repo.display())});
        let (status, _, _) = call(
            router.clone(),
            "POST",
            "/package/repository/add",
            &headers,
            &body.to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let after = names(&search("").await);
        assert!(after.contains(&"extra".to_string()), "{after:?}");
        assert_eq!(after.len(), names(&first).len() + 1);
    }

    #[tokio::test]
    async fn unknown_packages_and_versions_are_named() {
        let (_dir, router) = cosmos().await;
        let request = "application/vnd.dcos.package.describe-request+json;charset=utf-8;version=v1";
        let response =
            "application/vnd.dcos.package.describe-response+json;charset=utf-8;version=v3";
        let headers = [("accept", response), ("content-type", request)];
        let describe =
            |body: &'static str| call(router.clone(), "POST", "/package/describe", &headers, body);
        let (status, _, body) = describe(r#"{"packageName": "nope"}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["type"], "PackageNotFound");
        assert_eq!(body["data"]["packageName"], "nope");
        let (_, _, body) =
            describe(r#"{"packageName": "hello-world", "packageVersion": "9"}"#).await;
        assert_eq!(body["type"], "VersionNotFound");
        let (status, _, body) =
            describe(r#"{"packageName": "hello-world", "packageVersion": "0.1.0"}"#).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["package"]["version"], "0.1.0");
    }

    #[tokio::test]
    async fn serves_both_ports_until_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let shutdown = CancellationToken::new();
        let api = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let config = Config {
            listen: api.local_addr().unwrap(),
            admin: Some(admin.local_addr().unwrap()),
            marathon: "http://127.0.0.1:1".into(),
            store: dcos_store::Location::Embedded(dir.path().join("cosmos.redb")),
        };
        drop((api, admin));
        let server = tokio::spawn(serve(config.clone(), shutdown.clone()));
        let mut ok = false;
        for _ in 0..50 {
            if tokio::net::TcpStream::connect(config.listen).await.is_ok()
                && tokio::net::TcpStream::connect(config.admin.unwrap())
                    .await
                    .is_ok()
            {
                ok = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(ok, "both ports accept");
        let stats = Arc::new(Stats::default());
        let (status, _, _) = call(admin_router(stats.clone()), "GET", "/admin/ping", &[], "").await;
        assert_eq!(status, StatusCode::OK);
        let (_, _, metrics) =
            call(admin_router(stats), "GET", "/admin/metrics.json", &[], "").await;
        assert!(metrics["srv/requests"].is_u64(), "{metrics}");
        shutdown.cancel();
        server.await.unwrap().unwrap();
    }
}
