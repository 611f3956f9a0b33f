//! The front door of a service with one leader and hot standbys (Marathon, Metronome): the
//! leader's routes when leading, and on a follower the leader behind [`crate::proxy`], as
//! Marathon's `LeaderProxyFilter` does: a `Via` header against loops, `Host` the leader's,
//! the leader's answer passed back; 502 on an unreachable leader, 504 when it times out, 413
//! for a body too large, and the service's own answer when no leader is known within the wait.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceExt as _;

use crate::proxy::{Origin, Proxy, ProxyError, Settings, Upstream};

/// What this instance is, as the front door routes by it.
#[derive(Clone, Default)]
pub enum Role<T> {
    /// Not known yet.
    #[default]
    Electing,
    /// Another instance (`host:port`) leads.
    Following(String),
    /// This one leads: its routes and its state.
    Leading(Router, T),
}

/// The role, shared by the election and the front door.
pub type SharedRole<T> = Arc<RwLock<Role<T>>>;

/// Replaces the role.
pub fn set<T>(role: &SharedRole<T>, new: Role<T>) {
    *role
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = new;
}

/// The role now.
pub fn current<T: Clone>(role: &SharedRole<T>) -> Role<T> {
    role.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// How the hops and the leader are named in the headers.
#[derive(Clone, Debug)]
pub enum Headers {
    /// Marathon's: `via` gets `1.1 <me>` appended (on the request and the answer), a request
    /// that already passed this instance is a 502 `Detected proxying loop.`; the leader names
    /// itself in `leader` (`http://<me>`) on its own answers.
    Hops {
        /// `X-Marathon-Via`.
        via: HeaderName,
        /// `X-Marathon-Leader`.
        leader: HeaderName,
    },
    /// Metronome's: `via` set to `<me>` and `leader` to the leader's `host:port` on the
    /// request and the answer; a request whose `via` is this instance is a 400.
    Single {
        /// `X-VIA`.
        via: HeaderName,
        /// `X-LEADER`.
        leader: HeaderName,
    },
}

/// A service's front door: how its followers reach its leader.
#[derive(Clone)]
pub struct FrontDoor {
    component: &'static str,
    settings: Settings,
    headers: Headers,
    wait: Duration,
    no_leader: fn() -> Response,
    local: Option<(Router, &'static [&'static str])>,
}

/// How often a request that waits for a leader looks again.
const POLL: Duration = Duration::from_millis(250);

impl FrontDoor {
    /// `component`'s front door (the name is in logs and error texts): a follower passes
    /// requests on with `settings` and `headers`; a request waits up to 2.5 s for a leader
    /// to be known, then is answered by `no_leader`.
    pub fn new(
        component: &'static str,
        settings: Settings,
        headers: Headers,
        no_leader: fn() -> Response,
    ) -> Self {
        Self {
            component,
            settings,
            headers,
            wait: Duration::from_millis(2500),
            no_leader,
            local: None,
        }
    }

    /// Requests for `paths` are answered by `router` on every instance but the leader (whose
    /// own routes answer them), leader known or not.
    pub fn local(mut self, router: Router, paths: &'static [&'static str]) -> Self {
        self.local = Some((router, paths));
        self
    }

    /// The front door of the instance at `me` (`host:port`), routing by `role`.
    pub fn router<T>(self, role: SharedRole<T>, me: String) -> Router
    where
        T: Clone + Send + Sync + 'static,
    {
        let door = Arc::new(Door {
            proxy: Proxy::new(self.settings),
            config: self,
            me,
        });
        Router::new().fallback(move |request: Request| {
            let (role, door) = (role.clone(), door.clone());
            async move { door.dispatch(&role, request).await }
        })
    }
}

struct Door {
    config: FrontDoor,
    proxy: Proxy,
    me: String,
}

impl Door {
    async fn dispatch<T: Clone>(&self, role: &SharedRole<T>, request: Request) -> Response {
        let me = self.me.as_str();
        let deadline = tokio::time::Instant::now() + self.config.wait;
        loop {
            match current(role) {
                Role::Leading(router, _) => {
                    let mut resp = match router.oneshot(request).await {
                        Ok(resp) => resp,
                        Err(never) => match never {},
                    };
                    if let Headers::Hops { leader, .. } = &self.config.headers {
                        if let Ok(v) = HeaderValue::from_str(&format!("http://{me}")) {
                            resp.headers_mut().insert(leader, v);
                        }
                    }
                    return resp;
                }
                _ if self.is_local(request.uri().path()) => {
                    let Some((local, _)) = &self.config.local else {
                        unreachable!("is_local holds only with local routes");
                    };
                    return match local.clone().oneshot(request).await {
                        Ok(resp) => resp,
                        Err(never) => match never {},
                    };
                }
                Role::Following(leader) if leader != me => {
                    return self.forward(&leader, request).await;
                }
                // Not known yet, or the stale record of this instance itself: wait for news.
                _ if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(POLL).await;
                }
                _ => return (self.config.no_leader)(),
            }
        }
    }

    fn is_local(&self, path: &str) -> bool {
        self.config
            .local
            .as_ref()
            .is_some_and(|(_, paths)| paths.contains(&path))
    }

    /// The headers this hop adds to the request and the answer, or the answer to a loop.
    fn hop_headers(
        &self,
        leader: &str,
        request: &Request,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, Response> {
        let me = self.me.as_str();
        let value = |v: &str| HeaderValue::from_str(v).ok();
        match &self.config.headers {
            Headers::Hops { via, .. } => {
                let hop = format!("1.1 {me}");
                let looped = request.headers().get_all(via).iter().any(|v| {
                    v.to_str()
                        .is_ok_and(|v| v.split(',').any(|h| h.trim() == hop))
                });
                if looped {
                    let resp = (StatusCode::BAD_GATEWAY, "Detected proxying loop.");
                    return Err(resp.into_response());
                }
                Ok(value(&hop).map(|v| (via.clone(), v)).into_iter().collect())
            }
            Headers::Single { via, leader: lead } => {
                let seen = request.headers().get(via).and_then(|v| v.to_str().ok());
                if seen == Some(me) {
                    let message = "Prevent proxying already proxied request";
                    return Err((StatusCode::BAD_REQUEST, message).into_response());
                }
                Ok(match (value(me), value(leader)) {
                    (Some(me), Some(leader)) => vec![(via.clone(), me), (lead.clone(), leader)],
                    _ => Vec::new(),
                })
            }
        }
    }

    /// Passes `request` on to the leader (`host:port`), both bodies streamed (event streams
    /// never end), with this hop's headers on the request and the answer and `Host` the
    /// leader's.
    async fn forward(&self, leader: &str, mut request: Request) -> Response {
        let component = self.config.component;
        let hop = match self.hop_headers(leader, &request) {
            Ok(hop) => hop,
            Err(resp) => return resp,
        };
        // Marathon's `Via` lists every hop; Metronome's names only the last.
        let append = matches!(self.config.headers, Headers::Hops { .. });
        let add = |headers: &mut axum::http::HeaderMap| {
            for (name, value) in &hop {
                if append {
                    headers.append(name.clone(), value.clone());
                } else {
                    headers.insert(name.clone(), value.clone());
                }
            }
        };
        let addr = match leader.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => tokio::net::lookup_host(leader)
                .await
                .ok()
                .and_then(|mut a| a.next()),
        };
        let Some(addr) = addr else {
            let message = format!("cannot reach the leading {component} {leader}: no such address");
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
        add(headers);
        if let Ok(v) = HeaderValue::from_str(leader) {
            headers.insert(header::HOST, v);
        }
        // The front door serves plain HTTP and TLS alike: the scheme is left as the client said.
        let origin = Origin { peer, scheme: None };
        match self
            .proxy
            .forward(request, &Upstream::Tcp(addr), &path, origin)
            .await
        {
            Ok(mut resp) => {
                add(resp.headers_mut());
                resp.map(Body::new)
            }
            Err(e @ ProxyError::TimedOut { .. }) => {
                tracing::warn!(error = %e, "the leading {component} did not answer");
                let message = format!("leader {leader} timed out");
                (StatusCode::GATEWAY_TIMEOUT, message).into_response()
            }
            Err(e @ ProxyError::TooLarge { .. }) => (e.status(), e.to_string()).into_response(),
            Err(e) => {
                let message = format!("cannot reach the leading {component} {leader}: {e}");
                (e.status(), message).into_response()
            }
        }
    }
}
