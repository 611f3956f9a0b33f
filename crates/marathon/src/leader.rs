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
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use dcos_store::{AnyStore, Candidate, LeaderElection, Standing};
use futures::TryStreamExt;
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
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("a proxy client");
    let me: Arc<str> = me.into();
    Router::new().fallback(move |request: Request| {
        let (role, me, client) = (role.clone(), me.clone(), client.clone());
        async move { dispatch(&role, &me, &client, request).await }
    })
}

async fn dispatch(
    role: &SharedRole,
    me: &str,
    client: &reqwest::Client,
    request: Request,
) -> Response {
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
                return proxy(client, me, &leader, request).await;
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

/// Headers that belong to one connection, not to the request or answer.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

async fn proxy(client: &reqwest::Client, me: &str, leader: &str, request: Request) -> Response {
    let via = format!("1.1 {me}");
    let looped = request.headers().get_all("x-marathon-via").iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|hop| hop.trim() == via))
    });
    if looped {
        return (StatusCode::BAD_GATEWAY, "Detected proxying loop.").into_response();
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_PROXIED_BODY).await {
        Ok(body) => body,
        Err(e) => return (StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).into_response(),
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut forward = client
        .request(parts.method, format!("http://{leader}{path}"))
        .body(body);
    for (name, value) in parts.headers.iter().filter(|(n, _)| !hop_by_hop(n)) {
        forward = forward.header(name, value);
    }
    forward = forward.header("x-marathon-via", &via);
    if let Some(peer) = peer {
        forward = forward.header("x-forwarded-for", peer);
    }
    let answer = match forward.send().await {
        Ok(answer) => answer,
        Err(e) if e.is_timeout() => {
            return (
                StatusCode::GATEWAY_TIMEOUT,
                format!("leader {leader} timed out"),
            )
                .into_response()
        }
        Err(e) => {
            let message = format!("cannot reach the leading Marathon {leader}: {e}");
            return (StatusCode::BAD_GATEWAY, message).into_response();
        }
    };
    let mut resp = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers().iter().filter(|(n, _)| !hop_by_hop(n)) {
        resp = resp.header(name, value);
    }
    resp = resp.header("x-marathon-via", via);
    // Streamed, not buffered: `/v2/events` never ends.
    let body = Body::from_stream(answer.bytes_stream().map_err(std::io::Error::other));
    resp.body(body)
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    #[test]
    fn connection_headers_are_not_forwarded() {
        assert!(hop_by_hop(&header::CONNECTION));
        assert!(hop_by_hop(&header::HOST));
        assert!(!hop_by_hop(&header::CONTENT_TYPE));
        assert!(!hop_by_hop(&HeaderName::from_static("x-marathon-leader")));
    }
}
