//! Forwarding queries to other DNS servers (upstream resolvers, or the masters' Mesos-DNS
//! from dcos-net), in order or all at once, each with a timeout; over TCP when the UDP answer
//! is truncated.

use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one upstream has to answer.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// A fresh random query id, so an off-path spoofer cannot guess it from the client's.
fn fresh_id() -> u16 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish() as u16
}

/// Asks each upstream in turn until one answers; the answer carries the request's id.
/// `None` if none answered in time.
pub async fn forward(request: &Message, upstreams: &[SocketAddr]) -> Option<Message> {
    for upstream in upstreams {
        match ask(request, *upstream).await {
            Ok(mut response) => {
                response.set_id(request.id());
                return Some(response);
            }
            Err(e) => tracing::debug!(%upstream, error = %e, "upstream did not answer"),
        }
    }
    None
}

/// Asks every upstream at once; the first answer wins and carries the request's id (as
/// dcos-net asks the masters' Mesos-DNS). `None` if none answered in time.
pub async fn race(request: &Message, upstreams: &[SocketAddr]) -> Option<Message> {
    use futures::StreamExt;
    let mut asks: futures::stream::FuturesUnordered<_> = upstreams
        .iter()
        .map(|u| async move { (*u, ask(request, *u).await) })
        .collect();
    while let Some((upstream, result)) = asks.next().await {
        match result {
            Ok(mut response) => {
                response.set_id(request.id());
                return Some(response);
            }
            Err(e) => tracing::debug!(%upstream, error = %e, "upstream did not answer"),
        }
    }
    None
}

async fn ask(request: &Message, upstream: SocketAddr) -> anyhow::Result<Message> {
    let mut query = request.clone();
    let id = fresh_id();
    query.set_id(id);
    let bytes = query.to_vec()?;
    let response = tokio::time::timeout(UPSTREAM_TIMEOUT, udp(&bytes, id, upstream)).await??;
    if !response.truncated() {
        return Ok(response);
    }
    tokio::time::timeout(UPSTREAM_TIMEOUT, tcp(&bytes, upstream)).await?
}

async fn udp(bytes: &[u8], id: u16, upstream: SocketAddr) -> anyhow::Result<Message> {
    let local: SocketAddr = if upstream.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(bytes).await?;
    let mut buf = vec![0u8; 65_535];
    loop {
        let n = socket.recv(&mut buf).await?;
        // Anything that is not the answer to this query is ignored.
        if let Ok(m) = Message::from_vec(&buf[..n]) {
            if m.id() == id {
                return Ok(m);
            }
        }
    }
}

async fn tcp(bytes: &[u8], upstream: SocketAddr) -> anyhow::Result<Message> {
    let mut stream = TcpStream::connect(upstream).await?;
    let mut out = u16::try_from(bytes.len())?.to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    stream.write_all(&out).await?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await?;
    Ok(Message::from_vec(&buf)?)
}
