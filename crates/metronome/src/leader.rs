//! One leading Metronome among the masters, the others proxying to it, as Metronome does
//! (Marathon's Curator election under `/metronome/leader-curator`, `LeaderProxyFilter`).
//!
//! A follower passes every request but `/ping` and `/v1/metrics` to the leader with `X-VIA`
//! (itself) and `X-LEADER` (the leader) and returns the answer with the same headers; a
//! request that already came through this Metronome is refused with 400 (a proxy loop), and
//! with no leader known within 2.5 s the answer is 503 `No consistent leadership`.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use dcos_serve::proxy::{Origin, Proxy, ProxyError, Settings, Upstream};
use dcos_store::{AnyStore, Candidate, LeaderElection, Standing};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Where the Metronomes hold their election.
pub const ELECTION_DIR: &str = "/metronome/leader-curator";

/// How long a request waits for a leader to be known.
const LEADER_WAIT: Duration = Duration::from_millis(2500);
/// A follower's proxy: the leader answers within 30 s (Metronome's `leader.proxy.timeout`).
const PROXY: Settings = Settings::new(Duration::from_secs(30)).request_body(16 << 20);
const VIA: HeaderName = HeaderName::from_static("x-via");
const LEADER: HeaderName = HeaderName::from_static("x-leader");

/// What this Metronome is, as the front door routes by it.
#[derive(Clone, Default)]
pub enum Role {
    /// Not known yet.
    #[default]
    Electing,
    /// Another Metronome (`host:port`) leads.
    Following(String),
    /// This one leads: its routes.
    Leading(Router),
}

/// The role, shared by the election and the front door.
pub type SharedRole = Arc<RwLock<Role>>;

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

/// The candidacy ended (the store session closed or expired).
#[derive(Debug, thiserror::Error)]
#[error("Metronome {me} lost its candidacy in {ELECTION_DIR}")]
pub struct Lost {
    me: String,
}

/// This Metronome's candidacy.
pub struct Election {
    candidate: Candidate<AnyStore>,
    me: String,
}

impl Election {
    /// Enters the election as `me` (`host:port`).
    pub async fn join(store: AnyStore, me: String) -> Result<Self, dcos_store::Error> {
        let election = LeaderElection::curator(store, ELECTION_DIR)?;
        let candidate = election.join(me.as_bytes()).await?;
        Ok(Self { candidate, me })
    }

    /// Publishes the leader into `role` until this candidate leads (`Ok(true)`) or `stop`
    /// (`Ok(false)`).
    pub async fn until_leading(
        &self,
        role: &SharedRole,
        stop: &CancellationToken,
    ) -> Result<bool, Lost> {
        loop {
            let Some(mut standing) = self.standing(stop).await? else {
                return Ok(false);
            };
            if standing.leading {
                return Ok(true);
            }
            if let Some((_, leader)) = standing.leader {
                let leader = String::from_utf8_lossy(&leader).into_owned();
                tracing::info!(%leader, "following the leading Metronome");
                set(role, Role::Following(leader));
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(false),
                _ = standing.changes.recv() => {}
            }
        }
    }

    /// Returns when the candidacy ends (an error) or on `stop`.
    pub async fn while_leading(&self, stop: &CancellationToken) -> Result<(), Lost> {
        while let Some(mut standing) = self.standing(stop).await? {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = standing.changes.recv() => {}
            }
        }
        Ok(())
    }

    async fn standing(&self, stop: &CancellationToken) -> Result<Option<Standing>, Lost> {
        tokio::select! {
            _ = stop.cancelled() => Ok(None),
            s = self.candidate.standing() => s.map(Some).map_err(|_| Lost { me: self.me.clone() }),
        }
    }
}

/// The REST front door: the leader's routes when leading, the proxy when following; `/ping`
/// and `/v1/metrics` are answered by every Metronome itself.
pub fn front_door(role: SharedRole, me: String, local: Router) -> Router {
    let proxy = Proxy::new(PROXY);
    let me: Arc<str> = me.into();
    Router::new().fallback(move |request: Request| {
        let (role, me, proxy, local) = (role.clone(), me.clone(), proxy.clone(), local.clone());
        async move { dispatch(&role, &me, &proxy, local, request).await }
    })
}

async fn dispatch(
    role: &SharedRole,
    me: &str,
    proxy: &Proxy,
    local: Router,
    request: Request,
) -> Response {
    let deadline = tokio::time::Instant::now() + LEADER_WAIT;
    loop {
        match current(role) {
            Role::Leading(router) => {
                return match router.oneshot(request).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
            }
            _ if matches!(request.uri().path(), "/ping" | "/v1/metrics") => {
                return match local.oneshot(request).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
            }
            Role::Following(leader) if leader != me => {
                return forward(proxy, me, &leader, request).await;
            }
            _ if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            _ => {
                return (StatusCode::SERVICE_UNAVAILABLE, "No consistent leadership")
                    .into_response()
            }
        }
    }
}

async fn forward(proxy: &Proxy, me: &str, leader: &str, mut request: Request) -> Response {
    if request
        .headers()
        .get(&VIA)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == me)
    {
        return (
            StatusCode::BAD_REQUEST,
            "Prevent proxying already proxied request",
        )
            .into_response();
    }
    let addr = match leader.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => tokio::net::lookup_host(leader)
            .await
            .ok()
            .and_then(|mut a| a.next()),
    };
    let Some(addr) = addr else {
        let message = format!("cannot reach the leading Metronome {leader}: no such address");
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
    if let (Ok(via), Ok(lead)) = (HeaderValue::from_str(me), HeaderValue::from_str(leader)) {
        headers.insert(VIA, via);
        headers.insert(LEADER, lead.clone());
        headers.insert(header::HOST, lead);
    }
    let origin = Origin { peer, scheme: None };
    match proxy
        .forward(request, &Upstream::Tcp(addr), &path, origin)
        .await
    {
        Ok(mut resp) => {
            if let (Ok(via), Ok(lead)) = (HeaderValue::from_str(me), HeaderValue::from_str(leader))
            {
                resp.headers_mut().insert(VIA, via);
                resp.headers_mut().insert(LEADER, lead);
            }
            resp.map(Body::new)
        }
        Err(e @ ProxyError::TimedOut { .. }) => {
            tracing::warn!(error = %e, "the leading Metronome did not answer");
            (
                StatusCode::GATEWAY_TIMEOUT,
                format!("leader {leader} timed out"),
            )
                .into_response()
        }
        Err(e) => (
            e.status(),
            format!("cannot reach the leading Metronome {leader}: {e}"),
        )
            .into_response(),
    }
}
