use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::Request as AxumRequest;
use axum::routing::{get, post};
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::{serve, serve_with, Limits};

/// An upstream: `/echo` returns the body, `/headers` the headers it saw (`name: value`
/// lines), `/hang` never answers, `/events` sends a line now and one after `/release`.
async fn upstream(stop: &CancellationToken) -> SocketAddr {
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let r = release.clone();
    let app = Router::new()
        .route("/echo", post(|body: axum::body::Bytes| async move { body }))
        .route(
            "/headers",
            get(|req: AxumRequest| async move {
                let mut out = String::new();
                for (k, v) in req.headers() {
                    out.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("")));
                }
                out.push_str(&format!("path: {}\n", req.uri()));
                out
            }),
        )
        .route(
            "/hang",
            get(|| async {
                std::future::pending::<()>().await;
                ""
            }),
        )
        .route(
            "/events",
            get(move || {
                let r = r.clone();
                async move {
                    let stream = two_chunks(r);
                    axum::body::Body::from_stream(stream)
                }
            }),
        )
        .route(
            "/release",
            get(move || {
                let release = release.clone();
                async move {
                    release.notify_one();
                    "released"
                }
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::disable());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(
        listener,
        app,
        Limits::api().body(64 << 20),
        stop.clone(),
    ));
    addr
}

/// A body of two chunks: one now, one once `release` is notified.
fn two_chunks(
    release: std::sync::Arc<tokio::sync::Notify>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::unfold(0u8, move |n| {
        let release = release.clone();
        async move {
            match n {
                0 => Some((Ok(Bytes::from_static(b"first\n")), 1)),
                1 => {
                    release.notified().await;
                    Some((Ok(Bytes::from_static(b"second\n")), 2))
                }
                _ => None,
            }
        }
    })
}

/// A proxy in front of `to`, every path passed as it is; request bodies of `limit` bytes.
async fn front(to: Upstream, settings: Settings, stop: &CancellationToken) -> SocketAddr {
    let proxy = Proxy::new(settings);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = Limits::api().body(usize::MAX);
    tokio::spawn(serve_with(
        listener,
        limits,
        stop.clone(),
        move |peer: SocketAddr| {
            let (proxy, to) = (proxy.clone(), to.clone());
            hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let (proxy, to) = (proxy.clone(), to.clone());
                async move {
                    let path = req
                        .uri()
                        .path_and_query()
                        .map_or("/", |p| p.as_str())
                        .to_string();
                    let origin = Origin {
                        peer: Some(peer.ip()),
                        scheme: Some("http"),
                    };
                    Ok::<_, std::convert::Infallible>(
                        match proxy.forward(req, &to, &path, origin).await {
                            Ok(resp) => resp,
                            Err(e) => e.response(),
                        },
                    )
                }
            })
        },
    ));
    addr
}

/// One raw request on a fresh connection; everything the server sent until it closed.
async fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn settings() -> Settings {
    Settings::new(Duration::from_millis(500))
}

#[tokio::test]
async fn the_upstream_learns_who_asked_and_never_sees_hop_by_hop_headers() {
    let stop = CancellationToken::new();
    let up = upstream(&stop).await;
    let proxy = front(Upstream::Tcp(up), settings(), &stop).await;
    let answer = exchange(
        proxy,
        b"GET /headers?x=1 HTTP/1.1\r\nHost: example.test\r\nConnection: close, X-Secret\r\nX-Secret: hop\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: gopher\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("host: example.test\n"), "{answer}");
    assert!(answer.contains("x-real-ip: 127.0.0.1\n"), "{answer}");
    assert!(
        answer.contains("x-forwarded-for: 192.0.2.1, 127.0.0.1\n"),
        "{answer}"
    );
    assert!(answer.contains("x-forwarded-proto: http\n"), "{answer}");
    assert!(answer.contains("path: /headers?x=1\n"), "{answer}");
    for gone in ["x-secret", "keep-alive", "te:"] {
        assert!(
            !answer.to_lowercase().contains(&format!("\n{gone}")),
            "{gone} in {answer}"
        );
    }
    stop.cancel();
}

#[tokio::test]
async fn bodies_stream_both_ways() {
    let stop = CancellationToken::new();
    let up = upstream(&stop).await;
    let proxy = front(Upstream::Tcp(up), settings(), &stop).await;
    // 4 MiB up and back, chunked on the way up.
    let body: Vec<u8> = (0..4u32 << 20).map(|i| b'a' + (i % 26) as u8).collect();
    let mut raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for chunk in body.chunks(100_000) {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let answer = exchange(proxy, &raw).await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "{}",
        &answer[..200.min(answer.len())]
    );
    assert!(answer.ends_with(std::str::from_utf8(&body[body.len() - 1000..]).unwrap()));
    assert!(answer.len() > body.len());

    // A response body arrives as it is sent, not when it ends.
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("first") {
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
            .await
            .expect("the first chunk came before the stream ended")
            .unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(!String::from_utf8_lossy(&seen).contains("second"));
    exchange(
        up,
        b"GET /release HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&rest).contains("second"));
    stop.cancel();
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_whether_declared_or_streamed() {
    let stop = CancellationToken::new();
    let up = upstream(&stop).await;
    let proxy = front(Upstream::Tcp(up), settings().request_body(1000), &stop).await;
    let declared = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1001\r\n\r\n{}",
        "a".repeat(1001)
    );
    let answer = exchange(proxy, declared.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let streamed = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n{}\r\n0\r\n\r\n",
        "a".repeat(2000)
    );
    let answer = exchange(proxy, streamed.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let within = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1000\r\n\r\n{}",
        "a".repeat(1000)
    );
    let answer = exchange(proxy, within.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    stop.cancel();
}

#[tokio::test]
async fn silent_and_missing_upstreams_are_504_and_502_with_a_reason() {
    let stop = CancellationToken::new();
    let up = upstream(&stop).await;
    let proxy = front(Upstream::Tcp(up), settings(), &stop).await;
    let answer = exchange(
        proxy,
        b"GET /hang HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(
        answer.contains(&format!("upstream http://{up} did not answer within 500ms")),
        "{answer}"
    );

    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone = closed.local_addr().unwrap();
    drop(closed);
    let proxy = front(Upstream::Tcp(gone), settings(), &stop).await;
    let answer = exchange(
        proxy,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(
        answer.contains(&format!("upstream http://{gone} failed:")),
        "{answer}"
    );
    stop.cancel();
}

#[tokio::test]
async fn unix_socket_upstreams_and_upgrades_pass_through() {
    let stop = CancellationToken::new();
    // A unix-socket upstream.
    let dir = std::env::temp_dir().join(format!("dcos-serve-proxy-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let sock = dir.join("up.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let app = Router::new().route("/hello", get(|| async { "over a socket" }));
    let shutdown = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    });
    let proxy = front(Upstream::Unix(sock.clone()), settings(), &stop).await;
    let answer = exchange(
        proxy,
        b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.ends_with("over a socket"), "{answer}");

    // An upstream that agrees to any upgrade, then echoes.
    let raw = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws = raw.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = raw.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        assert!(String::from_utf8_lossy(&head)
            .to_lowercase()
            .contains("upgrade: websocket"));
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
            .await
            .unwrap();
        let (mut r, mut w) = s.into_split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    });
    let proxy = front(Upstream::Tcp(ws), settings(), &stop).await;
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(
        b"GET /socket HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = vec![0u8; 512];
    let n = s.read(&mut head).await.unwrap();
    let head = String::from_utf8_lossy(&head[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(b"ping over the tunnel").await.unwrap();
    let mut echo = [0u8; 20];
    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"ping over the tunnel");
    stop.cancel();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn connection_named_headers_are_hop_by_hop() {
    let mut h = HeaderMap::new();
    h.insert("connection", HeaderValue::from_static("X-A, keep-alive"));
    h.insert("x-a", HeaderValue::from_static("1"));
    h.insert("x-b", HeaderValue::from_static("2"));
    h.insert("upgrade", HeaderValue::from_static("websocket"));
    h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
    strip_hop_by_hop(&mut h);
    assert_eq!(h.len(), 1);
    assert!(h.contains_key("x-b"));
}
