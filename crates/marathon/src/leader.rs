//! One leading Marathon, hot standbys behind it: the election and the followers' proxy.
//!
//! Every Marathon contends in `/marathon/leader-curator` as Marathon 1.6's Curator
//! `LeaderLatch` does (an ephemeral sequential `_c_<id>-latch-<seq>` holding its `host:port`;
//! the lowest sequence leads) through [`dcos_store::Contender`]. Only the leader loads the
//! state and is the Mesos framework. A follower serves the same ports and proxies every
//! request to the leader through [`dcos_serve::leader`], as Marathon's `LeaderProxyFilter`
//! does: it adds `X-Marathon-Via`, passes the leader's answer (with its `X-Marathon-Leader`)
//! back, answers 502 on a proxy loop or an unreachable leader, 504 when the leader times out,
//! and 503 when no leader is known within 2.5 seconds.
//!
//! A Marathon whose candidacy ends (its ZooKeeper session expired) stops, as Marathon does on
//! losing leadership; its supervisor starts it again as a new contender.

use std::time::Duration;

use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use dcos_serve::leader::{FrontDoor, Headers};
use dcos_serve::proxy::Settings;
use dcos_store::AnyStore;
use serde_json::json;

use crate::engine::Marathon;

pub use dcos_store::Lost;

/// Where the Marathons hold their election (Curator's `leader-curator` beside `leader`).
pub const ELECTION_DIR: &str = "/marathon/leader-curator";

/// The largest request body a follower passes on.
const MAX_PROXIED_BODY: usize = 16 << 20;
/// How a follower reaches the leader: connected within 5 s, its answer started within 60 s
/// (a large group's deployment plan takes a while), bodies of [`MAX_PROXIED_BODY`].
const PROXY: Settings = Settings::new(Duration::from_secs(60)).request_body(MAX_PROXIED_BODY);
/// The hops a proxied request took, to catch a loop between two Marathons.
const VIA: HeaderName = HeaderName::from_static("x-marathon-via");

/// What this Marathon is: when leading, its REST routes and its state.
pub type Role = dcos_serve::leader::Role<Marathon>;
/// The role, shared by the election and the front door.
pub type SharedRole = dcos_serve::leader::SharedRole<Marathon>;
pub use dcos_serve::leader::set;

/// This Marathon's candidacy.
pub type Election = dcos_store::Contender<AnyStore>;

/// Enters the election as `me` (`host:port`).
pub async fn join(store: AnyStore, me: String) -> Result<Election, dcos_store::Error> {
    Election::curator(store, ELECTION_DIR, "Marathon", me).await
}

/// The REST front door: the leader's routes when leading, the proxy when following.
pub fn front_door(role: SharedRole, me: String) -> Router {
    let headers = Headers::Hops {
        via: VIA,
        leader: HeaderName::from_static("x-marathon-leader"),
    };
    FrontDoor::new("Marathon", PROXY, headers, no_leader).router(role, me)
}

fn no_leader() -> Response {
    let body = json!({"message": "Could not determine the current leader"});
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::{ConnectInfo, Request};
    use axum::routing::{get, post};
    use std::net::SocketAddr;
    use tokio_util::sync::CancellationToken;
    use tower::ServiceExt;

    /// A leading Marathon stand-in: `/v2/info` reports the headers it saw (and names itself
    /// leader, as Marathon does), `/v2/echo` returns the body.
    async fn leader() -> (SocketAddr, CancellationToken) {
        let app = Router::new()
            .route(
                "/v2/info",
                get(|req: Request| async move {
                    let seen: serde_json::Map<String, serde_json::Value> = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
                        .collect();
                    ([("x-marathon-leader", "http://leader")], Json(seen))
                }),
            )
            .route(
                "/v2/echo",
                post(|body: axum::body::Bytes| async move { body }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let serving =
            axum::serve(listener, app).with_graceful_shutdown(stop.clone().cancelled_owned());
        tokio::spawn(async move { serving.await });
        (addr, stop)
    }

    /// The front door of a Marathon at `me` that follows `leader`.
    fn follower(me: &str, leader: &str) -> Router {
        let role = SharedRole::default();
        set(&role, Role::Following(leader.to_string()));
        front_door(role, me.to_string())
    }

    async fn ask(
        door: Router,
        request: axum::http::Request<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let resp = door.oneshot(request).await.unwrap();
        let (parts, body) = resp.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    #[tokio::test]
    async fn a_follower_passes_requests_to_the_leader_and_its_answers_back() {
        let (addr, stop) = leader().await;
        let door = follower("127.0.0.1:1", &addr.to_string());
        let mut request = axum::http::Request::get("/v2/info")
            .header("connection", "close, x-secret")
            .header("x-secret", "hop")
            .header("host", "marathon.mesos:8080")
            .body(Body::empty())
            .unwrap();
        let client: SocketAddr = "192.0.2.9:40000".parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(client));
        let (status, headers, body) = ask(door.clone(), request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(seen["x-marathon-via"], "1.1 127.0.0.1:1");
        assert_eq!(seen["host"], addr.to_string());
        assert_eq!(seen["x-forwarded-for"], "192.0.2.9");
        assert!(seen.get("x-secret").is_none(), "{seen}");
        assert_eq!(headers["x-marathon-leader"], "http://leader");
        assert_eq!(headers[VIA], "1.1 127.0.0.1:1");

        let body = "x".repeat(100_000);
        let request = axum::http::Request::post("/v2/echo")
            .body(Body::from(body.clone()))
            .unwrap();
        let (status, _, echoed) = ask(door.clone(), request).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(echoed, body);

        let too_large = axum::http::Request::post("/v2/echo")
            .header("content-length", (MAX_PROXIED_BODY + 1).to_string())
            .body(Body::empty())
            .unwrap();
        let (status, _, _) = ask(door, too_large).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        stop.cancel();
    }

    #[tokio::test]
    async fn loops_and_unreachable_leaders_are_502() {
        let door = follower("127.0.0.1:1", "127.0.0.1:2");
        let request = axum::http::Request::get("/v2/apps")
            .header("x-marathon-via", "1.1 127.0.0.1:3, 1.1 127.0.0.1:1")
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = ask(door.clone(), request).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(body, "Detected proxying loop.");

        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let gone = closed.local_addr().unwrap();
        drop(closed);
        let door = follower("127.0.0.1:1", &gone.to_string());
        let request = axum::http::Request::get("/v2/apps")
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = ask(door, request).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert!(
            body.starts_with(&format!("cannot reach the leading Marathon {gone}")),
            "{body}"
        );
    }
}
