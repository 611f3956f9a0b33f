//! The one HTTP server toolkit of dcos-rs. Every HTTP listener of the port contract is served
//! through [`serve`] with explicit [`Limits`] that fit its traffic:
//!
//! - at most `max_connections` open connections; when a new one arrives at the limit, the
//!   connection that has been idle longest (no request in progress and no response streaming,
//!   whether kept alive or never used) is closed for it, as nginx drains reusable
//!   connections; with none idle, accepting waits until one ends (the kernel's backlog
//!   queues the rest), so busy clients are never cut off and idle ones never starve others;
//! - a request head must arrive within `header_read_timeout` and fit `max_header_bytes` and
//!   `max_headers` (hyper answers 431 otherwise), so an idle or trickling client holds a
//!   connection only that long;
//! - request bodies read by handlers are limited to `body_limit` (413 beyond);
//! - accept errors (out of file descriptors) back off instead of spinning;
//! - handlers can read the peer's address as axum's `ConnectInfo<SocketAddr>`.
//!
//! [`proxy`] is the one reverse proxy (Admin Router, a standby Marathon): streaming both ways,
//! hop-by-hop headers dropped, `X-Forwarded-*` added, upgrades passed through, 413/502/504.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::serve::Listener;
use axum::Router;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

pub mod json;
pub mod leader;
pub mod proxy;
pub mod query;

/// What one listener allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Time a client has to send a whole request head, also between kept-alive requests.
    pub header_read_timeout: Duration,
    /// Bytes of a request head at most (hyper's read buffer).
    pub max_header_bytes: usize,
    /// Header fields of a request at most.
    pub max_headers: usize,
    /// Bytes of a request body that a handler reads at most.
    pub body_limit: usize,
    /// How long a response may wait for a client that does not read it before the
    /// connection is closed (a client that never reads would hold its slot for ever).
    pub write_stall: Duration,
    /// How long a stopping server lets open connections finish.
    pub drain: Duration,
}

impl Limits {
    /// Limits for an API with small requests: 256 connections, 10 s for a head of 16 KiB and
    /// 100 fields, bodies of 1 MiB.
    pub const fn api() -> Limits {
        Limits {
            max_connections: 256,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            body_limit: 1024 * 1024,
            write_stall: Duration::from_secs(60),
            drain: Duration::from_secs(5),
        }
    }

    /// These limits with at most `n` connections.
    pub const fn connections(mut self, n: usize) -> Limits {
        self.max_connections = n;
        self
    }

    /// These limits with request bodies of at most `bytes`.
    pub const fn body(mut self, bytes: usize) -> Limits {
        self.body_limit = bytes;
        self
    }

    /// These limits with `t` to send a request head.
    pub const fn header_timeout(mut self, t: Duration) -> Limits {
        self.header_read_timeout = t;
        self
    }
}

/// One open connection as the limiter sees it.
struct Conn {
    /// Requests whose handling or response body has not finished.
    busy: AtomicUsize,
    /// Milliseconds since the server's start when it was last busy.
    last_active: AtomicU64,
    /// A write is waiting for the client to take bytes (a response is still going out
    /// after hyper has taken its whole body).
    writing: Arc<std::sync::atomic::AtomicBool>,
    /// Closes the connection.
    evict: CancellationToken,
}

/// The open connections of one server.
struct Conns {
    start: Instant,
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Conns {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn add(&self) -> (u64, Arc<Conn>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            busy: AtomicUsize::new(0),
            last_active: AtomicU64::new(self.now_ms()),
            writing: Arc::default(),
            evict: CancellationToken::new(),
        });
        self.lock().insert(id, conn.clone());
        (id, conn)
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Registers a connection for as long as the guard lives (also if its task panics).
    fn register(self: &Arc<Self>) -> Registered {
        let (id, conn) = self.add();
        Registered {
            id,
            conn,
            conns: self.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes the connection idle longest; false if every connection is busy.
    fn evict_idlest(&self) -> bool {
        let open = self.lock();
        let idlest = open
            .values()
            .filter(|c| {
                c.busy.load(Ordering::Acquire) == 0
                    && !c.writing.load(Ordering::Acquire)
                    && !c.evict.is_cancelled()
            })
            .min_by_key(|c| c.last_active.load(Ordering::Relaxed));
        match idlest {
            Some(c) => {
                c.evict.cancel();
                true
            }
            None => false,
        }
    }

    fn cancel_all(&self) {
        for c in self.lock().values() {
            c.evict.cancel();
        }
    }
}

/// A connection's entry in [`Conns`], removed when dropped.
struct Registered {
    id: u64,
    conn: Arc<Conn>,
    conns: Arc<Conns>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.conns.remove(self.id);
    }
}

/// Marks its connection busy while alive: held by a request's handler and then by its
/// response body until the body is sent or dropped.
struct Busy {
    conn: Arc<Conn>,
    conns: Arc<Conns>,
}

impl Busy {
    fn new(conn: Arc<Conn>, conns: Arc<Conns>) -> Busy {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        Busy { conn, conns }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.conn
            .last_active
            .store(self.conns.now_ms(), Ordering::Relaxed);
        self.conn.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown`, then lets open
/// connections finish for `limits.drain` and closes the rest. Handlers read the peer's
/// address as `ConnectInfo<L::Addr>`.
pub async fn serve<L>(listener: L, router: Router, limits: Limits, shutdown: CancellationToken)
where
    L: Listener,
    L::Addr: Clone + Send + Sync + 'static,
{
    let router = router.layer(DefaultBodyLimit::max(limits.body_limit));
    serve_with(listener, limits, shutdown, move |peer: L::Addr| {
        let router = router.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(ConnectInfo(peer.clone()));
            router.clone().oneshot(req)
        })
    })
    .await
}

/// Serves the hyper service that `make` gives each connection (from its peer address) on
/// `listener` within `limits` until `shutdown`: for servers that are not axum routers (Admin
/// Router's proxy). `body_limit` is the service's own to enforce.
pub async fn serve_with<L, F, S, B>(
    listener: L,
    limits: Limits,
    shutdown: CancellationToken,
    make: F,
) where
    L: Listener,
    F: Fn(L::Addr) -> S,
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conns = Arc::new(Conns {
        start: Instant::now(),
        next: AtomicU64::new(0),
        open: Mutex::new(HashMap::new()),
    });
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut tasks = JoinSet::new();
    let mut listener = listener;
    loop {
        let (io, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let Some(permit) = slot(&permits, &conns, limits.max_connections, &shutdown).await else {
            break;
        };
        // Registered before its task starts, so eviction and shutdown see it at once.
        let registered = conns.register();
        tasks.spawn(connection(io, make(peer), limits, registered, permit));
        // Reap finished connections so the set does not grow with every one ever served.
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    conns.cancel_all();
    let drained = tokio::time::timeout(limits.drain, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
    }
}

/// A free connection slot: at the limit, the idlest connection is closed to make one, and
/// while every connection is busy the acceptor waits, trying again as connections turn idle.
/// `None` once the server stops.
async fn slot(
    permits: &Arc<Semaphore>,
    conns: &Conns,
    max: usize,
    shutdown: &CancellationToken,
) -> Option<OwnedSemaphorePermit> {
    let mut warned = false;
    loop {
        if let Ok(p) = permits.clone().try_acquire_owned() {
            return Some(p);
        }
        if !conns.evict_idlest() && !warned {
            tracing::warn!(
                max,
                "connection limit reached with every connection busy; waiting"
            );
            warned = true;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            p = permits.clone().acquire_owned() => return p.ok(),
            _ = tokio::time::sleep(EVICT_RETRY) => {}
        }
    }
}

/// How often a full server looks again for a connection that turned idle.
const EVICT_RETRY: Duration = Duration::from_millis(100);

/// One connection: HTTP/1.1 with the limits, until it ends, is evicted or the server stops.
async fn connection<I, S, B>(
    io: I,
    service: S,
    limits: Limits,
    registered: Registered,
    _permit: OwnedSemaphorePermit,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = registered.conn.clone();
    let tracked = {
        let (conn, conns) = (conn.clone(), registered.conns.clone());
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let busy = Busy::new(conn.clone(), conns.clone());
            let answer = service.call(req);
            async move {
                let resp = answer.await?;
                // The connection stays busy until the response body is sent or dropped.
                Ok::<_, Infallible>(resp.map(|body| {
                    body.map_frame(move |frame| {
                        let _ = &busy;
                        frame
                    })
                }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers);
    let served = builder
        .serve_connection(
            TokioIo::new(StallLimit::new(
                io,
                limits.write_stall,
                conn.writing.clone(),
            )),
            tracked,
        )
        .with_upgrades();
    tokio::pin!(served);
    tokio::select! {
        _ = served.as_mut() => {}
        _ = conn.evict.cancelled() => {
            // Idle: closed at once, nothing of a request is lost. Busy (the server stops):
            // the requests in progress finish first.
            if conn.busy.load(Ordering::Acquire) > 0 {
                served.as_mut().graceful_shutdown();
                let _ = served.await;
            }
        }
    }
    drop(registered);
}

/// An IO whose writes fail when the peer has not taken any bytes for `stall`.
/// Also tells its connection's `writing` whether a write is waiting.
struct StallLimit<I> {
    io: I,
    stall: Duration,
    since: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    writing: Arc<std::sync::atomic::AtomicBool>,
}

impl<I> StallLimit<I> {
    fn new(io: I, stall: Duration, writing: Arc<std::sync::atomic::AtomicBool>) -> StallLimit<I> {
        StallLimit {
            io,
            stall,
            since: None,
            writing,
        }
    }

    /// `poll` of a write, failed once it has waited `stall` without progress.
    fn check<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        poll: std::task::Poll<std::io::Result<T>>,
    ) -> std::task::Poll<std::io::Result<T>> {
        use std::task::Poll;
        self.writing.store(poll.is_pending(), Ordering::Release);
        if !poll.is_pending() {
            self.since = None;
            return poll;
        }
        let stall = self.stall;
        let timer = self
            .since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<I: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for StallLimit<I> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<I: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for StallLimit<I> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = std::pin::Pin::new(&mut this.io).poll_write(cx, buf);
        this.check(cx, poll)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let poll = std::pin::Pin::new(&mut this.io).poll_flush(cx);
        this.check(cx, poll)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = std::pin::Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.check(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Serves a plain TCP protocol (DNS over TCP, epmd, gossip) on `listener` until `shutdown`:
/// each connection is handled by `handle` in its own task, at most `max_connections` at once
/// (a connection beyond is closed at once: these protocols' clients retry, and each handler
/// bounds its own idle time); failed accepts back off; open connections end with the server.
pub async fn serve_tcp<F, Fut>(
    listener: tokio::net::TcpListener,
    max_connections: usize,
    shutdown: CancellationToken,
    handle: F,
) where
    F: Fn(tokio::net::TcpStream, std::net::SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let open = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut tasks = JoinSet::new();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff = ACCEPT_BACKOFF_MIN;
                a
            }
            Err(e) => {
                // Out of file descriptors or memory: wait, longer each time, not spin.
                tracing::warn!(error = %e, ?backoff, "tcp accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::debug!(%peer, max = max_connections, "connection limit reached; closing");
            continue;
        };
        let work = handle(stream, peer);
        tasks.spawn(async move {
            let _permit = permit;
            work.await
        });
        while tasks.try_join_next().is_some() {}
    }
    tasks.abort_all();
}

/// The first and the longest pause after a failed accept.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests;
