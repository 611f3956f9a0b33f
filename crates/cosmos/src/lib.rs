//! Cosmos, the DC/OS package manager (`dcos-cosmos.service`, masters, `127.0.0.1:7070` and
//! its Twitter-server admin port `127.0.0.1:9990`), as far as this cluster has it.
//!
//! The API port answers what Cosmos 0.5 answers for `GET /capabilities`, which Admin Router
//! routes here and the DC/OS CLI reads before `dcos job` (it requires `METRONOME`). The list
//! names only what this cluster really has: Metronome runs on every master, so `METRONOME`;
//! there is no `PACKAGE_MANAGEMENT` (nor the logging or cluster-report ones), so clients do
//! not try to install packages. The package API (`/package/*`, `/cosmos/service/*`) comes
//! with issue 23; until then every other path is a 404 in Cosmos' error shape.
//!
//! The admin port answers Twitter-server's `/admin/ping` (`pong`) and `/health` (`OK`), and
//! redirects `/` to `/admin`.

use std::net::SocketAddr;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The API port of the contract.
pub const API_PORT: u16 = 7070;
/// The Twitter-server admin port of the contract.
pub const ADMIN_PORT: u16 = 9990;

/// The media type of a `/capabilities` answer.
pub const CAPABILITIES_TYPE: &str =
    "application/vnd.dcos.capabilities+json;charset=utf-8;version=v1";
/// The media type of Cosmos' errors.
pub const ERROR_TYPE: &str = "application/vnd.dcos.package.error+json;charset=utf-8;version=v1";

/// What this cluster has, in Cosmos' names: Metronome on every master, no package
/// management until issue 23.
pub const CAPABILITIES: &[&str] = &["METRONOME"];

/// Where Cosmos listens.
#[derive(Clone, Debug)]
pub struct Config {
    /// The API (`127.0.0.1:7070`).
    pub listen: SocketAddr,
    /// The Twitter-server admin port (`127.0.0.1:9990`), if any.
    pub admin: Option<SocketAddr>,
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
}

/// Limits of the API: small GETs from Admin Router and local services.
pub const LIMITS: dcos_serve::Limits = dcos_serve::Limits::api().connections(128).body(64 * 1024);
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
    tracing::info!(addr = %config.listen, "listening for Cosmos requests");
    let api = dcos_serve::serve(api, router(), LIMITS, shutdown.clone());
    let admin = async {
        if let Some(admin) = admin {
            dcos_serve::serve(admin, admin_router(), ADMIN_LIMITS, shutdown).await;
        }
    };
    tokio::join!(api, admin);
    Ok(())
}

/// The API: `GET /capabilities`, 404 elsewhere (the package API is issue 23).
pub fn router() -> Router {
    Router::new()
        .route("/capabilities", get(capabilities))
        .fallback(not_found)
}

/// The Twitter-server admin endpoints that probes use.
pub fn admin_router() -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/admin") }))
        .route("/admin", get(|| async { "Cosmos admin\n" }))
        .route("/admin/ping", get(|| async { "pong" }))
        .route("/health", get(|| async { "OK" }))
}

/// Cosmos' error answer.
fn error(status: StatusCode, kind: &str, message: String) -> Response {
    let body = serde_json::json!({"type": kind, "message": message});
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(ERROR_TYPE))],
        body.to_string(),
    )
        .into_response()
}

/// `GET /capabilities`, when `Accept` names its media type.
async fn capabilities(headers: HeaderMap) -> Response {
    if let Err(response) = negotiate(&headers, CAPABILITIES_TYPE) {
        return response;
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

/// Every path but `/capabilities`: the package API (`/package/*`, `/cosmos/service/*`)
/// is issue 23.
async fn not_found(request: Request) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "{} {} is not served: Cosmos' package API is not available on this cluster",
            request.method(),
            request.uri().path()
        ),
    )
}

/// A media type: `type/subtype` and its parameters (lowercased names, `q` apart).
struct MediaType {
    essence: String,
    params: Vec<(String, String)>,
    q: f32,
}

fn parse_media_type(text: &str) -> Option<MediaType> {
    let mut parts = text.split(';');
    let essence = parts.next()?.trim().to_ascii_lowercase();
    let (ty, sub) = essence.split_once('/')?;
    if ty.is_empty() || sub.is_empty() {
        return None;
    }
    let mut params = Vec::new();
    let mut q = 1.0;
    for p in parts {
        let (k, v) = p.split_once('=')?;
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"'));
        if k == "q" {
            q = v.parse().ok()?;
        } else {
            params.push((k, v.to_string()));
        }
    }
    params.sort();
    Some(MediaType { essence, params, q })
}

/// Cosmos' `Accept` check: required; a listed type matches when its type and subtype are the
/// server's and its parameters (without `q`) are the server's (Cosmos looks the chosen value
/// up by exact equality, so all of `charset=utf-8;version=vN` must be there). `*/*` or plain
/// `application/json` do not match. Answers 400 `not_present` / `not_valid` otherwise.
fn negotiate(headers: &HeaderMap, server: &str) -> Result<(), Response> {
    let values: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "not_present",
            "Item 'header' 'Accept' not present but required".into(),
        ));
    }
    let want = parse_media_type(server).expect("a valid server media type");
    let accepted = values
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(parse_media_type)
        .any(|m| m.q > 0.0 && m.essence == want.essence && m.params == want.params);
    if accepted {
        return Ok(());
    }
    Err(error(
        StatusCode::BAD_REQUEST,
        "not_valid",
        format!(
            "Item 'header' 'Accept' deemed invalid by rule: 'media type was {} but should be one of: {server}'",
            values.join(",")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    async fn call(
        router: Router,
        path: &str,
        accept: Option<&str>,
    ) -> (StatusCode, String, serde_json::Value) {
        let mut request = axum::http::Request::get(path);
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT, accept);
        }
        let response = router
            .oneshot(request.body(Body::empty()).unwrap())
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
    async fn capabilities_list_only_metronome_with_the_vendor_type() {
        let (status, kind, body) = call(router(), "/capabilities", Some(CAPABILITIES_TYPE)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(kind, CAPABILITIES_TYPE);
        assert_eq!(
            body,
            serde_json::json!({"capabilities": [{"name": "METRONOME"}]})
        );
        // Parameters in another order, spaces, a q value, among other types.
        let accept =
            "text/html, application/vnd.dcos.capabilities+json; version=v1; charset=utf-8; q=0.9";
        let (status, _, _) = call(router(), "/capabilities", Some(accept)).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn an_accept_cosmos_cannot_satisfy_is_a_bad_request() {
        for accept in [
            "*/*",
            "application/json",
            "application/vnd.dcos.capabilities+json",
            "application/vnd.dcos.capabilities+json;charset=utf-8;version=v2",
            "application/vnd.dcos.capabilities+json;charset=utf-8;version=v1;q=0",
        ] {
            let (status, kind, body) = call(router(), "/capabilities", Some(accept)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{accept}");
            assert_eq!(kind, ERROR_TYPE);
            assert_eq!(body["type"], "not_valid", "{body}");
            assert!(
                body["message"]
                    .as_str()
                    .unwrap()
                    .contains(CAPABILITIES_TYPE),
                "{body}"
            );
        }
        let (status, _, body) = call(router(), "/capabilities", None).await;
        assert_eq!(
            (status, body["type"].as_str()),
            (StatusCode::BAD_REQUEST, Some("not_present"))
        );
    }

    #[tokio::test]
    async fn every_other_path_is_a_404_in_cosmos_error_shape() {
        for path in [
            "/",
            "/package/list",
            "/cosmos/service/describe",
            "/service/start",
        ] {
            let (status, kind, body) = call(router(), path, Some(CAPABILITIES_TYPE)).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(kind, ERROR_TYPE);
            assert_eq!(body["type"], "not_found");
            assert!(body["message"].as_str().unwrap().contains(path), "{body}");
        }
    }

    #[tokio::test]
    async fn serves_both_ports_until_shutdown() {
        let shutdown = CancellationToken::new();
        let api = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let config = Config {
            listen: api.local_addr().unwrap(),
            admin: Some(admin.local_addr().unwrap()),
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
        let (status, _, _) = call(admin_router(), "/admin/ping", None).await;
        assert_eq!(status, StatusCode::OK);
        shutdown.cancel();
        server.await.unwrap().unwrap();
    }
}
