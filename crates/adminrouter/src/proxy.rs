//! Forwarding one request to an upstream and its answer back, streaming both bodies:
//! TCP upstreams through a keep-alive pool, unix-socket upstreams on a fresh connection,
//! WebSocket (any `Upgrade`) passed through byte for byte once the upstream agrees (101).
//!
//! As nginx does: hop-by-hop headers are dropped, `Host` is kept as the client sent it,
//! `X-Real-IP`, `X-Forwarded-For` and `X-Forwarded-Proto` tell the upstream who asked.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Every response body Admin Router sends.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// A body of bytes known up front.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Where a request is forwarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// `host:port` over TCP.
    Tcp(SocketAddr),
    /// A unix socket.
    Unix(PathBuf),
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upstream::Tcp(a) => write!(f, "http://{a}"),
            Upstream::Unix(p) => write!(f, "http://{}", p.display()),
        }
    }
}

/// Why an upstream gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// It could not be reached, or broke the exchange.
    #[error("upstream {0} failed: {1}")]
    Failed(String, String),
    /// It did not answer in time.
    #[error("upstream {0} timed out")]
    TimedOut(String),
}

impl ProxyError {
    /// The status the client gets: 504 for a timeout, 502 otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Failed(..) => StatusCode::BAD_GATEWAY,
            ProxyError::TimedOut(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

/// Headers that belong to one connection, never forwarded (RFC 9110 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers the `Connection` header names are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The forwarding engine, shared by every connection.
#[derive(Clone)]
pub struct Proxy {
    pool: Client<HttpConnector, Incoming>,
    /// How long an upstream may take to start its answer.
    pub timeout: Duration,
}

impl Proxy {
    /// A proxy whose upstreams must start answering within `timeout`.
    pub fn new(timeout: Duration) -> Proxy {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_nodelay(true);
        let pool = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Proxy { pool, timeout }
    }

    /// Forwards `req` to `upstream` as `path` (with its query), from client `peer` over
    /// `scheme`.
    pub async fn forward(
        &self,
        mut req: Request<Incoming>,
        upstream: &Upstream,
        path: &str,
        peer: SocketAddr,
        scheme: &str,
    ) -> Result<Response<Body>, ProxyError> {
        let upgrade = req
            .headers()
            .get(hyper::header::UPGRADE)
            .cloned()
            .filter(|_| {
                req.headers()
                    .get(hyper::header::CONNECTION)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.to_ascii_lowercase().contains("upgrade"))
            });
        let headers = req.headers_mut();
        strip_hop_by_hop(headers);
        headers.remove(hyper::header::UPGRADE);
        let ip = peer.ip().to_string();
        let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(earlier) => format!("{earlier}, {ip}"),
            None => ip.clone(),
        };
        for (name, value) in [
            ("x-real-ip", ip.as_str()),
            ("x-forwarded-for", forwarded_for.as_str()),
            ("x-forwarded-proto", scheme),
        ] {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        }
        if let Some(up) = &upgrade {
            headers.insert(
                hyper::header::CONNECTION,
                HeaderValue::from_static("upgrade"),
            );
            headers.insert(hyper::header::UPGRADE, up.clone());
        }
        let name = upstream.to_string();
        let failed = |e: &dyn std::fmt::Display| ProxyError::Failed(name.clone(), e.to_string());

        if upgrade.is_some() || matches!(upstream, Upstream::Unix(_)) {
            let uri: hyper::Uri = path.parse().map_err(|e| failed(&e))?;
            let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
            *req.uri_mut() = uri;
            let exchange = async {
                let mut sender = match upstream {
                    Upstream::Tcp(addr) => {
                        let stream = tokio::net::TcpStream::connect(addr).await?;
                        handshake(stream).await?
                    }
                    Upstream::Unix(p) => {
                        let stream = tokio::net::UnixStream::connect(p).await?;
                        handshake(stream).await?
                    }
                };
                anyhow::Ok(sender.send_request(req).await?)
            };
            let mut resp = tokio::time::timeout(self.timeout, exchange)
                .await
                .map_err(|_| ProxyError::TimedOut(name.clone()))?
                .map_err(|e| failed(&e))?;
            if let (Some(client), StatusCode::SWITCHING_PROTOCOLS) = (client_upgrade, resp.status())
            {
                let server = hyper::upgrade::on(&mut resp);
                tokio::spawn(async move {
                    if let (Ok(c), Ok(s)) = (client.await, server.await) {
                        let (mut c, mut s) = (TokioIo::new(c), TokioIo::new(s));
                        let _ = tokio::io::copy_bidirectional(&mut c, &mut s).await;
                    }
                });
                return Ok(resp.map(|b| b.boxed()));
            }
            strip_hop_by_hop(resp.headers_mut());
            return Ok(resp.map(|b| b.boxed()));
        }

        let Upstream::Tcp(addr) = upstream else {
            unreachable!("unix upstreams are handled above")
        };
        let uri: hyper::Uri = format!("http://{addr}{path}")
            .parse()
            .map_err(|e| failed(&e))?;
        *req.uri_mut() = uri;
        let mut resp = tokio::time::timeout(self.timeout, self.pool.request(req))
            .await
            .map_err(|_| ProxyError::TimedOut(name.clone()))?
            .map_err(|e| failed(&e))?;
        strip_hop_by_hop(resp.headers_mut());
        Ok(resp.map(|b| b.boxed()))
    }
}

async fn handshake<S>(
    stream: S,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Incoming>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

/// A `Location` the upstream sent, as the client must see it: relative locations made
/// absolute on the client's `host`; locations on `host` moved under `prefix` (unless they
/// are already below it and `always` is false).
pub fn rewrite_location(
    location: &str,
    scheme: &str,
    host: &str,
    prefix: &str,
    always: bool,
) -> String {
    let (origin, path) = if location.starts_with('/') {
        (format!("{scheme}://{host}"), location.to_string())
    } else {
        let Some((sch, rest)) = location.split_once("://") else {
            return location.to_string();
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority != host {
            return location.to_string();
        }
        (format!("{sch}://{authority}"), path.to_string())
    };
    let below = path == prefix || path.starts_with(&format!("{prefix}/"));
    if below && !always {
        format!("{origin}{path}")
    } else {
        format!("{origin}{prefix}{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_move_under_the_route_prefix() {
        let svc = "/service/nest1/app";
        for (set, want) in [
            (
                "http://127.0.0.1/service/nest1/app/foo/bar",
                "http://127.0.0.1/service/nest1/app/foo/bar",
            ),
            (
                "http://127.0.0.1/foo/bar",
                "http://127.0.0.1/service/nest1/app/foo/bar",
            ),
            ("/foo/bar", "http://127.0.0.1/service/nest1/app/foo/bar"),
            ("https://example.com/x", "https://example.com/x"),
        ] {
            assert_eq!(rewrite_location(set, "http", "127.0.0.1", svc, false), want);
        }
        assert_eq!(
            rewrite_location(
                "http://127.0.0.1/exhibitor/v1/ui/index.html",
                "http",
                "127.0.0.1",
                "/exhibitor",
                true
            ),
            "http://127.0.0.1/exhibitor/exhibitor/v1/ui/index.html"
        );
        assert_eq!(
            rewrite_location(
                "http://127.0.0.1:61001/foo/bar",
                "http",
                "127.0.0.1:61001",
                "/pkgpanda",
                true
            ),
            "http://127.0.0.1:61001/pkgpanda/foo/bar"
        );
    }
}
