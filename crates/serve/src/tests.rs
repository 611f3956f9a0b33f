use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// Serves a test router with `limits` on a loopback port; `/slow` answers after `/release`.
async fn start(limits: Limits) -> (SocketAddr, CancellationToken, Arc<tokio::sync::Notify>) {
    let release = Arc::new(tokio::sync::Notify::new());
    let r = release.clone();
    let router = Router::new()
        .route("/", get(|| async { "hello" }))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        )
        .route(
            "/echo",
            post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        )
        .route("/big", get(|| async { "b".repeat(32 << 20) }))
        .route(
            "/slow",
            get(move || {
                let r = r.clone();
                async move {
                    r.notified().await;
                    "released"
                }
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, router, limits, stop.clone()));
    (addr, stop, release)
}

/// One request on a fresh connection; the status line and body.
async fn request(addr: SocketAddr, raw: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn get_close(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_and_within_it_are_read() {
    let (addr, stop, _) = start(Limits::api().body(1000)).await;
    let small = format!(
        "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n{}",
        "a".repeat(1000)
    );
    assert!(request(addr, &small).await.ends_with("1000"));
    let big = format!(
        "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1001\r\nconnection: close\r\n\r\n{}",
        "a".repeat(1001)
    );
    assert!(request(addr, &big).await.starts_with("HTTP/1.1 413"));
    stop.cancel();
}

#[tokio::test]
async fn oversized_heads_are_refused() {
    let (addr, stop, _) = start(Limits::api()).await;
    let long = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\nconnection: close\r\n\r\n",
        "b".repeat(40_000)
    );
    assert!(request(addr, &long).await.starts_with("HTTP/1.1 431"));
    let mut many = String::from("GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n");
    for i in 0..150 {
        many.push_str(&format!("x-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert!(request(addr, &many).await.starts_with("HTTP/1.1 431"));
    stop.cancel();
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_header_timeout() {
    let limits = Limits::api().header_timeout(Duration::from_millis(300));
    let (addr, stop, _) = start(limits).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await;
    // Closed (EOF or a 408 then EOF), well before the test's own deadline.
    assert!(read.is_ok(), "the server kept an idle connection open");
    stop.cancel();
}

#[tokio::test]
async fn idle_connections_make_way_for_a_new_client() {
    let (addr, stop, _) = start(Limits::api().connections(8)).await;
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let answer = tokio::time::timeout(Duration::from_secs(5), request(addr, &get_close("/")))
        .await
        .expect("a normal client waited behind idle connections");
    assert!(answer.ends_with("hello"), "{answer}");
    stop.cancel();
}

#[tokio::test]
async fn busy_connections_are_not_cut_and_the_limit_holds() {
    let (addr, stop, release) = start(Limits::api().connections(2)).await;
    let slow = || tokio::spawn(async move { request(addr, &get_close("/slow")).await });
    let (a, b) = (slow(), slow());
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Both connections are busy: a third is not served until one ends.
    let third = tokio::spawn(async move { request(addr, &get_close("/")).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served beyond the limit"
    );
    release.notify_waiters();
    assert!(a.await.unwrap().ends_with("released"));
    assert!(b.await.unwrap().ends_with("released"));
    assert!(third.await.unwrap().ends_with("hello"));
    stop.cancel();
}

#[tokio::test]
async fn handlers_see_the_peer_address() {
    let (addr, stop, _) = start(Limits::api()).await;
    assert!(request(addr, &get_close("/peer"))
        .await
        .ends_with("127.0.0.1"));
    stop.cancel();
}

#[tokio::test]
async fn stopping_frees_the_port() {
    let (addr, stop, _) = start(Limits::api()).await;
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    TcpListener::bind(addr)
        .await
        .expect("port still held after stop");
}

#[tokio::test]
async fn a_client_that_does_not_read_loses_its_connection() {
    let limits = Limits {
        write_stall: Duration::from_millis(300),
        ..Limits::api().connections(1)
    };
    let (addr, stop, _) = start(limits).await;
    // Asks for 32 MiB and reads none of it: the only slot is busy until the write stalls.
    let mut hog = TcpStream::connect(addr).await.unwrap();
    hog.write_all(get_close("/big").as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(5), request(addr, &get_close("/")))
        .await
        .expect("a client that never reads held the server's only connection");
    assert!(answer.ends_with("hello"), "{answer}");
    // Not evicted as idle while its response was still going out: it lost its slot to the
    // stall limit only.
    assert!(started.elapsed() >= Duration::from_millis(150));
    drop(hog);
    stop.cancel();
}
