//! The one reverse proxy of dcos-rs (Admin Router's upstreams, a standby Marathon's leader):
//! a request forwarded to an upstream and its answer back, both bodies streamed as they come,
//! on hyper directly.
//!
//! As nginx does: hop-by-hop headers (RFC 9110 7.6.1, and those `Connection` names) are
//! dropped both ways; `Host` is kept as the client sent it; `X-Real-IP`, `X-Forwarded-For`
//! (appended to) and `X-Forwarded-Proto` tell the upstream who asked. TCP upstreams go
//! through a keep-alive pool, unix-socket upstreams over a fresh connection; an `Upgrade`
//! (WebSocket) is passed through byte for byte once the upstream agrees (101).
//!
//! Failures answer as a gateway does ([`ProxyError::status`]): a request body over the limit
//! is 413 (refused before connecting when its `Content-Length` says so, cut off otherwise), an
//! upstream that cannot be reached or breaks the exchange is 502, one that does not start
//! its answer in time is 504; [`ProxyError::response`] says which upstream and why.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Any error a body or a connection may end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every response body the proxy hands back (and what its callers answer with themselves).
pub type Body = BoxBody<Bytes, BoxError>;

/// A request body on its way upstream.
type Outgoing = UnsyncBoxBody<Bytes, BoxError>;

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
#[non_exhaustive]
pub enum ProxyError {
    /// It could not be reached, or broke the exchange (the cause is in the message, as the
    /// router's log line shows it).
    #[error("upstream {upstream} failed: {cause}")]
    Failed {
        /// The upstream.
        upstream: String,
        /// What went wrong, with its causes.
        cause: String,
    },
    /// It did not start its answer in time.
    #[error("upstream {upstream} did not answer within {within:?}")]
    TimedOut {
        /// The upstream.
        upstream: String,
        /// The time it had.
        within: Duration,
    },
    /// The request body is larger than the proxy passes on.
    #[error("the request body is larger than {limit} bytes")]
    TooLarge {
        /// The most bytes passed on.
        limit: usize,
    },
}

impl ProxyError {
    /// The status the client gets: 413 for a body too large, 504 for a timeout, 502 otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Failed { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::TimedOut { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// A plain-text answer with [`ProxyError::status`] that says what happened.
    pub fn response(&self) -> Response<Body> {
        let mut resp = Response::new(full(format!("{self}\n")));
        *resp.status_mut() = self.status();
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp
    }
}

/// What a proxy allows its upstreams and clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// How long an upstream may take to start its answer, the request's body sent (504 after).
    pub answer_timeout: Duration,
    /// How long connecting to an upstream may take (502 after).
    pub connect_timeout: Duration,
    /// Bytes of a request body passed on at most (413 beyond); `usize::MAX` leaves the limit
    /// to the upstream.
    pub max_request_body: usize,
    /// How long a pooled connection to an upstream is kept idle.
    pub pool_idle: Duration,
}

impl Settings {
    /// Upstreams that start answering within `answer_timeout`, connected within 5 s, bodies
    /// of any size, idle pooled connections kept for 60 s (nginx's keepalive_timeout).
    pub const fn new(answer_timeout: Duration) -> Settings {
        Settings {
            answer_timeout,
            connect_timeout: Duration::from_secs(5),
            max_request_body: usize::MAX,
            pool_idle: Duration::from_secs(60),
        }
    }

    /// These settings with request bodies of at most `bytes`.
    pub const fn request_body(mut self, bytes: usize) -> Settings {
        self.max_request_body = bytes;
        self
    }
}

/// Who sent a request, as the upstream is told.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Origin<'a> {
    /// The client's address (`X-Real-IP`, appended to `X-Forwarded-For`); `None` leaves both
    /// headers as the client sent them.
    pub peer: Option<IpAddr>,
    /// The scheme it used (`X-Forwarded-Proto`); `None` leaves the header as sent.
    pub scheme: Option<&'a str>,
}

/// Headers that belong to one connection, never forwarded (RFC 9110 7.6.1). `Upgrade` is
/// put back when the request is an upgrade.
const HOP_BY_HOP: [HeaderName; 9] = [
    hyper::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    hyper::header::PROXY_AUTHENTICATE,
    hyper::header::PROXY_AUTHORIZATION,
    hyper::header::TE,
    hyper::header::TRAILER,
    hyper::header::TRANSFER_ENCODING,
    hyper::header::UPGRADE,
];

/// Drops the hop-by-hop headers, and those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(&HOP_BY_HOP) {
        headers.remove(name);
    }
}

/// The protocol a request asks to switch to, if it asks (`Connection: upgrade` and an
/// `Upgrade`).
fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let asked = headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    asked
        .then(|| headers.get(hyper::header::UPGRADE).cloned())
        .flatten()
}

/// Tells the upstream who asked: `X-Real-IP`, `X-Forwarded-For` (the client's address after
/// those it names), `X-Forwarded-Proto`.
fn add_forwarded(headers: &mut HeaderMap, origin: Origin<'_>) {
    if let Some(ip) = origin.peer {
        let ip = ip.to_string();
        let earlier: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let forwarded_for = if earlier.is_empty() {
            ip.clone()
        } else {
            format!("{}, {ip}", earlier.join(", "))
        };
        for (name, value) in [("x-real-ip", ip), ("x-forwarded-for", forwarded_for)] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
    }
    if let Some(scheme) = origin.scheme.and_then(|s| HeaderValue::from_str(s).ok()) {
        headers.insert("x-forwarded-proto", scheme);
    }
}

/// Whether an error (or one of its causes) is a body cut off at its limit.
fn over_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if e.is::<LengthLimitError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// An error and its causes, as one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// The forwarding engine, shared by every request (its pool is shared by its clones).
#[derive(Clone)]
pub struct Proxy {
    pool: Client<HttpConnector, Outgoing>,
    settings: Settings,
}

impl Proxy {
    /// A proxy with `settings`.
    pub fn new(settings: Settings) -> Proxy {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.connect_timeout));
        connector.set_nodelay(true);
        let pool = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(settings.pool_idle)
            .build(connector);
        Proxy { pool, settings }
    }

    /// What this proxy allows.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// Forwards `req` to `upstream` as `path` (with its query), from `origin`, and returns
    /// the upstream's answer with its body still streaming.
    pub async fn forward<B>(
        &self,
        req: Request<B>,
        upstream: &Upstream,
        path: &str,
        origin: Origin<'_>,
    ) -> Result<Response<Body>, ProxyError>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let name = upstream.to_string();
        let failed = |e: &(dyn std::error::Error + 'static)| {
            if over_limit(e) {
                ProxyError::TooLarge {
                    limit: self.settings.max_request_body,
                }
            } else {
                ProxyError::Failed {
                    upstream: name.clone(),
                    cause: chain(e),
                }
            }
        };
        let limit = self.settings.max_request_body;
        let declared = req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(ProxyError::TooLarge { limit });
        }
        let mut req = req.map(|b| Limited::new(b, limit).boxed_unsync());
        let upgrade = upgrade_of(req.headers());
        let headers = req.headers_mut();
        strip_hop_by_hop(headers);
        add_forwarded(headers, origin);
        if let Some(up) = &upgrade {
            headers.insert(
                hyper::header::CONNECTION,
                HeaderValue::from_static("upgrade"),
            );
            headers.insert(hyper::header::UPGRADE, up.clone());
        }
        let within = self.settings.answer_timeout;
        let timed_out = || ProxyError::TimedOut {
            upstream: name.clone(),
            within,
        };

        if upgrade.is_some() || matches!(upstream, Upstream::Unix(_)) {
            let uri: hyper::Uri = path.parse().map_err(|e| failed(&e))?;
            let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
            *req.uri_mut() = uri;
            let connect = self.settings.connect_timeout;
            let exchange = async {
                let mut sender = match upstream {
                    Upstream::Tcp(addr) => {
                        let stream =
                            tokio::time::timeout(connect, tokio::net::TcpStream::connect(addr))
                                .await
                                .map_err(|_| -> BoxError {
                                    format!("no connection within {connect:?}").into()
                                })??;
                        let _ = stream.set_nodelay(true);
                        handshake(stream).await?
                    }
                    Upstream::Unix(p) => {
                        handshake(tokio::net::UnixStream::connect(p).await?).await?
                    }
                };
                Ok::<_, BoxError>(sender.send_request(req).await?)
            };
            let mut resp = tokio::time::timeout(within, exchange)
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| failed(&*e))?;
            if let (Some(client), StatusCode::SWITCHING_PROTOCOLS) = (client_upgrade, resp.status())
            {
                let server = hyper::upgrade::on(&mut resp);
                // The tunnel lives as long as either side keeps it open: it belongs to the
                // two connections, not to this request.
                tokio::spawn(async move {
                    if let (Ok(c), Ok(s)) = (client.await, server.await) {
                        let (mut c, mut s) = (TokioIo::new(c), TokioIo::new(s));
                        let _ = tokio::io::copy_bidirectional(&mut c, &mut s).await;
                    }
                });
                return Ok(resp.map(|b| b.map_err(BoxError::from).boxed()));
            }
            strip_hop_by_hop(resp.headers_mut());
            return Ok(resp.map(|b| b.map_err(BoxError::from).boxed()));
        }

        let Upstream::Tcp(addr) = upstream else {
            unreachable!("unix upstreams are handled above")
        };
        let uri: hyper::Uri = format!("http://{addr}{path}")
            .parse()
            .map_err(|e| failed(&e))?;
        *req.uri_mut() = uri;
        let mut resp = tokio::time::timeout(within, self.pool.request(req))
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| failed(&e))?;
        strip_hop_by_hop(resp.headers_mut());
        Ok(resp.map(|b| b.map_err(BoxError::from).boxed()))
    }
}

async fn handshake<S>(
    stream: S,
) -> Result<hyper::client::conn::http1::SendRequest<Outgoing>, BoxError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection is driven for as long as its request and answer (or tunnel) last.
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests;
