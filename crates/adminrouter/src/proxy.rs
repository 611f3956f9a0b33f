//! Forwarding one request to an upstream and its answer back: dcos-serve's reverse proxy
//! ([`dcos_serve::proxy`]: both bodies streamed, hop-by-hop headers dropped, `Host` kept as
//! the client sent it, `X-Real-IP`, `X-Forwarded-For` and `X-Forwarded-Proto` added,
//! WebSocket upgrades passed through), with the client's address and scheme as the router's
//! listeners know them, and `Location` headers moved under the router's prefixes as nginx's
//! `proxy_redirect` does.

use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};

pub use dcos_serve::proxy::{full, Body, ProxyError, Upstream};
use dcos_serve::proxy::{Origin, Settings};

/// The forwarding engine, shared by every connection.
#[derive(Clone)]
pub struct Proxy {
    inner: dcos_serve::proxy::Proxy,
    /// How long an upstream may take to start its answer.
    pub timeout: Duration,
}

impl Proxy {
    /// A proxy whose upstreams must start answering within `timeout`; request bodies are
    /// passed on whole, the upstream's own limit applies.
    pub fn new(timeout: Duration) -> Proxy {
        Proxy {
            inner: dcos_serve::proxy::Proxy::new(Settings::new(timeout)),
            timeout,
        }
    }

    /// Forwards `req` to `upstream` as `path` (with its query), from client `peer` over
    /// `scheme`.
    pub async fn forward(
        &self,
        req: Request<Incoming>,
        upstream: &Upstream,
        path: &str,
        peer: SocketAddr,
        scheme: &str,
    ) -> Result<Response<Body>, ProxyError> {
        let origin = Origin {
            peer: Some(peer.ip()),
            scheme: Some(scheme),
        };
        self.inner.forward(req, upstream, path, origin).await
    }
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
