//! The proxy's behaviour at the edges, through the real router on loopback: large bodies
//! both ways, server-sent events and WebSocket upgrades passed through as they happen, the
//! headers upstreams see, an upstream that never answers, and a client that never finishes
//! its request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use dcos_adminrouter::proxy::Upstream;
use dcos_adminrouter::routes::{Fixed, Role};
use dcos_adminrouter::{Config, Router};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A mock History: echoes bodies, streams events, reports headers; `/hang` never answers.
async fn mock_upstream(stop: &CancellationToken) -> SocketAddr {
    let app = axum::Router::new()
        .route(
            "/echo",
            axum::routing::post(|body: axum::body::Bytes| async move { body }),
        )
        .route(
            "/headers",
            axum::routing::get(|req: Request| async move {
                let h: serde_json::Map<String, Value> = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
                    .collect();
                axum::Json(Value::Object(h))
            }),
        )
        .route(
            "/events",
            axum::routing::get(|| async {
                let stream = futures::stream::unfold(0u32, |n| async move {
                    if n > 0 {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    (n < 3).then(|| (Ok::<_, std::io::Error>(format!("data: {n}\n\n")), n + 1))
                });
                (
                    [("content-type", "text/event-stream")],
                    Body::from_stream(stream),
                )
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::disable())
        .route(
            "/hang",
            axum::routing::get(|| async {
                std::future::pending::<()>().await;
                ""
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = axum::serve(listener, app).with_graceful_shutdown(stop.clone().cancelled_owned());
    tokio::spawn(async move { serving.await });
    addr
}

/// A raw upstream that agrees to any upgrade and then echoes bytes.
async fn upgrading_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).to_lowercase();
                if !text.contains("upgrade: websocket") {
                    return;
                }
                let _ = s
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
                    .await;
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn router(fixed: &[(Fixed, SocketAddr)], stop: &CancellationToken) -> SocketAddr {
    let dir = std::env::temp_dir();
    let mut c = Config::dcos(Role::Master, "127.0.0.1".parse().unwrap(), vec![], dir);
    // Proxying alone: logins are tested against a real IAM (crates/cli/tests/it/iam.rs).
    c.security = dcos_iam::api::SecurityMode::Disabled;
    for (f, addr) in fixed {
        c.fixed.insert(*f, Upstream::Tcp(*addr));
    }
    c.upstream_timeout = Duration::from_millis(500);
    c.header_timeout = Duration::from_millis(500);
    let tls_dir = tempfile::tempdir().unwrap();
    c.cert_dir = tls_dir.path().into();
    let acceptor = dcos_adminrouter::tls_acceptor(&c, &["localhost"]).unwrap();
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = http.local_addr().unwrap();
    tokio::spawn(dcos_adminrouter::serve_on(
        http,
        dcos_tls::TlsListener::new(https, acceptor),
        Arc::new(Router::new(c)),
        stop.clone(),
    ));
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_streams_upgrades_and_timeouts() {
    let stop = CancellationToken::new();
    let history = mock_upstream(&stop).await;
    let ws = upgrading_upstream().await;
    let ar = router(&[(Fixed::History, history), (Fixed::MesosDns, ws)], &stop).await;
    let base = format!("http://{ar}/dcos-history-service");
    let client = reqwest::Client::new();

    // 8 MiB up and back down, byte for byte.
    let body: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    let resp = client
        .post(format!("{base}/echo"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.unwrap() == body);

    // What the upstream is told: who asked, how; hop-by-hop headers stay behind.
    let seen: Value = client
        .get(format!("{base}/headers"))
        .header("Connection", "keep-alive, X-Secret")
        .header("X-Secret", "hop")
        .header("X-Forwarded-For", "192.0.2.1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["x-real-ip"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-for"], "192.0.2.1, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["host"], ar.to_string());
    assert!(seen.get("x-secret").is_none(), "{seen}");

    // Server-sent events arrive as they are sent, not when the stream ends.
    let started = Instant::now();
    let mut events = client.get(format!("{base}/events")).send().await.unwrap();
    let first = events.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"data: 0\n\n");
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    let mut rest = Vec::new();
    while let Some(c) = events.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    assert_eq!(rest, b"data: 1\n\ndata: 2\n\n");

    // A WebSocket upgrade: the 101 comes back and bytes flow both ways.
    let mut s = TcpStream::connect(ar).await.unwrap();
    s.write_all(b"GET /mesos_dns/socket HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
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

    // An upstream that never answers: 504 once its time is up; the router keeps serving.
    let resp = client.get(format!("{base}/hang")).send().await.unwrap();
    assert_eq!(resp.status(), 504);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("<h1>504 Gateway Time-out</h1>"));
    assert_eq!(
        client
            .get(format!("http://{ar}/metadata"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // A client that never finishes its request head is cut off.
    let mut slow = TcpStream::connect(ar).await.unwrap();
    slow.write_all(b"GET /metadata HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection stayed open");
    let answer = String::from_utf8_lossy(&buf);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );

    stop.cancel();
}
