//! One leading Marathon, hot standbys behind it: the election and the followers' proxy.
//!
//! Every Marathon contends in `/marathon/leader-curator` as Marathon 1.6's Curator
//! `LeaderLatch` does (an ephemeral sequential `_c_<id>-latch-<seq>` holding its `host:port`;
//! the lowest sequence leads). Only the leader loads the state and is the Mesos framework.
//! A follower serves the same ports and proxies every request to the leader, as Marathon's
//! `LeaderProxyFilter` does: it adds `X-Marathon-Via`, passes the leader's answer (with its
//! `X-Marathon-Leader`) back, answers 502 on a proxy loop or an unreachable leader, 504 when the
//! leader times out, and 503 when no leader is known within 2.5 seconds.
//!
//! A Marathon whose candidacy ends (its ZooKeeper session expired) stops, as Marathon does on
//! losing leadership; its supervisor starts it again as a new contender.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use dcos_serve::proxy::{Origin, Proxy, ProxyError, Settings, Upstream};
use dcos_store::{AnyStore, Candidate, LeaderElection, Standing};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::engine::Marathon;

/// Where the Marathons hold their election (Curator's `leader-curator` beside `leader`).
pub const ELECTION_DIR: &str = "/marathon/leader-curator";

/// How long a request waits for a leader to be known (Marathon: 10 tries, 250 ms apart).
const LEADER_WAIT: Duration = Duration::from_millis(2500);
/// The largest request body a follower passes on.
const MAX_PROXIED_BODY: usize = 16 << 20;
/// How a follower reaches the leader: connected within 5 s, its answer started within 60 s
/// (a large group's deployment plan takes a while), bodies of [`MAX_PROXIED_BODY`].
const PROXY: Settings = Settings::new(Duration::from_secs(60)).request_body(MAX_PROXIED_BODY);
/// The hops a proxied request took, to catch a loop between two Marathons.
const VIA: HeaderName = HeaderName::from_static("x-marathon-via");

/// What this Marathon is, as the front door routes by it.
#[derive(Clone, Default)]
pub enum Role {
    /// Not known yet.
    #[default]
    Electing,
    /// Another Marathon (`host:port`) leads.
    Following(String),
    /// This one leads: its REST routes and its state.
    Leading(Router, Marathon),
}

/// The role, shared by the election and the front door.
pub type SharedRole = Arc<RwLock<Role>>;

/// This Marathon's election: its candidacy and how it learns who leads.
pub struct Election {
    candidate: Candidate<AnyStore>,
    me: String,
}

/// The candidacy ended: the store session closed or expired.
#[derive(Debug, thiserror::Error)]
#[error("Marathon {me} lost its candidacy in {ELECTION_DIR}")]
pub struct Lost {
    me: String,
}

impl Election {
    /// Enters the election as `me` (`host:port`).
    pub async fn join(store: AnyStore, me: String) -> Result<Self, dcos_store::Error> {
        let election = LeaderElection::curator(store, ELECTION_DIR)?;
        let candidate = election.join(me.as_bytes()).await?;
        Ok(Self { candidate, me })
    }

    /// Follows the election, publishing the leader into `role`, until this candidate leads
    /// (`Ok(true)`) or `stop` is cancelled (`Ok(false)`).
    pub async fn until_leading(
        &self,
        role: &SharedRole,
        stop: &CancellationToken,
    ) -> Result<bool, Lost> {
        loop {
            let Some(mut standing) = self.standing(stop).await? else {
                return Ok(false);
            };
            // By node, not by `host:port`: the node of this Marathon's killed predecessor
            // names the same address until its session expires.
            if standing.leading {
                return Ok(true);
            }
            if let Some((_, leader)) = standing.leader {
                let leader = String::from_utf8_lossy(&leader).into_owned();
                tracing::info!(%leader, "following the leading Marathon");
                set(role, Role::Following(leader));
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(false),
                _ = standing.changes.recv() => {}
            }
        }
    }

    /// Returns when this candidacy ends (an error) or `stop` is cancelled.
    pub async fn while_leading(&self, stop: &CancellationToken) -> Result<(), Lost> {
        while let Some(mut standing) = self.standing(stop).await? {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = standing.changes.recv() => {}
            }
        }
        Ok(())
    }

    /// The election now, `None` once `stop` is cancelled; its only error is the candidacy's end.
    async fn standing(&self, stop: &CancellationToken) -> Result<Option<Standing>, Lost> {
        tokio::select! {
            _ = stop.cancelled() => Ok(None),
            standing = self.candidate.standing() => standing.map(Some).map_err(|_| Lost {
                me: self.me.clone(),
            }),
        }
    }
}

/// Replaces the role.
pub fn set(role: &SharedRole, new: Role) {
    *role
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = new;
}

fn current(role: &SharedRole) -> Role {
    role.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// The REST front door: the leader's routes when leading, the proxy when following.
pub fn front_door(role: SharedRole, me: String) -> Router {
    let proxy = Proxy::new(PROXY);
    let me: Arc<str> = me.into();
    Router::new().fallback(move |request: Request| {
        let (role, me, proxy) = (role.clone(), me.clone(), proxy.clone());
        async move { dispatch(&role, &me, &proxy, request).await }
    })
}

async fn dispatch(role: &SharedRole, me: &str, proxy: &Proxy, request: Request) -> Response {
    let deadline = tokio::time::Instant::now() + LEADER_WAIT;
    loop {
        match current(role) {
            Role::Leading(router, _) => {
                let mut resp = match router.oneshot(request).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                };
                if let Ok(v) = HeaderValue::from_str(&format!("http://{me}")) {
                    resp.headers_mut().insert("x-marathon-leader", v);
                }
                return resp;
            }
            Role::Following(leader) if leader != me => {
                return forward(proxy, me, &leader, request).await;
            }
            // Not known yet, or the stale record of this Marathon itself: wait for the news.
            _ if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            _ => {
                let body = json!({"message": "Could not determine the current leader"});
                return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            }
        }
    }
}

/// Passes `request` on to the leading Marathon (`host:port`) through dcos-serve's proxy,
/// both bodies streamed (`/v2/events` never ends), as Marathon's `LeaderProxyFilter` does:
/// `X-Marathon-Via` on the request and the answer, `Host` the leader's.
async fn forward(proxy: &Proxy, me: &str, leader: &str, mut request: Request) -> Response {
    let via = format!("1.1 {me}");
    let looped = request.headers().get_all(VIA).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|hop| hop.trim() == via))
    });
    if looped {
        return (StatusCode::BAD_GATEWAY, "Detected proxying loop.").into_response();
    }
    let addr = match leader.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => tokio::net::lookup_host(leader)
            .await
            .ok()
            .and_then(|mut a| a.next()),
    };
    let Some(addr) = addr else {
        let message = format!("cannot reach the leading Marathon {leader}: no such address");
        return (StatusCode::BAD_GATEWAY, message).into_response();
    };
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let headers = request.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&via) {
        headers.append(VIA, v);
    }
    if let Ok(v) = HeaderValue::from_str(leader) {
        headers.insert(header::HOST, v);
    }
    // The front door serves plain HTTP and TLS alike: the scheme is left as the client said.
    let origin = Origin { peer, scheme: None };
    match proxy
        .forward(request, &Upstream::Tcp(addr), &path, origin)
        .await
    {
        Ok(mut resp) => {
            if let Ok(v) = HeaderValue::from_str(&via) {
                resp.headers_mut().append(VIA, v);
            }
            resp.map(Body::new)
        }
        Err(e @ ProxyError::TimedOut { .. }) => {
            tracing::warn!(error = %e, "the leading Marathon did not answer");
            let message = format!("leader {leader} timed out");
            (StatusCode::GATEWAY_TIMEOUT, message).into_response()
        }
        Err(e @ ProxyError::TooLarge { .. }) => {
            (StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).into_response()
        }
        Err(e) => {
            let message = format!("cannot reach the leading Marathon {leader}: {e}");
            (StatusCode::BAD_GATEWAY, message).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};

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
