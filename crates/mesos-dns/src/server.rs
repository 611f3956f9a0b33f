//! DNS over UDP and TCP on tokio sockets, for any [`Resolve`]r: Mesos-DNS here, dcos-net's
//! node resolver too. hickory-proto parses and writes the messages.
//!
//! Hostile input is contained: an unparsable packet with a readable header gets FORMERR, a
//! shorter one is dropped; a UDP answer larger than the client accepts (512 bytes, or its
//! EDNS size) is sent truncated with TC so the client retries over TCP; at most
//! [`MAX_IN_FLIGHT`] UDP queries are worked on at once, the rest wait in the socket buffer.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// UDP queries handled concurrently.
pub const MAX_IN_FLIGHT: usize = 1024;
/// How long a TCP connection may sit idle between queries, or take to read an answer.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Open TCP connections at most per listener (BIND's `tcp-clients` is 150). Beyond it a new
/// connection is closed at once: DNS clients retry, and idle ones are closed after
/// [`TCP_IDLE`], so a client holding connections open delays others by at most that.
pub const MAX_TCP_CONNECTIONS: usize = 256;

/// Something that answers DNS queries.
pub trait Resolve: Send + Sync + 'static {
    /// The response to a parsed request.
    fn resolve(&self, request: Message) -> impl Future<Output = Message> + Send;
}

/// The answer to raw bytes: FORMERR for garbage with a readable id, nothing for less.
async fn answer<R: Resolve>(resolver: &R, packet: &[u8]) -> Option<Message> {
    match Message::from_vec(packet) {
        Ok(request) if request.message_type() == MessageType::Query => {
            if request.op_code() != OpCode::Query {
                return Some(error(&request, ResponseCode::NotImp));
            }
            if request.queries().len() != 1 {
                return Some(error(&request, ResponseCode::FormErr));
            }
            Some(resolver.resolve(request).await)
        }
        Ok(_) => None,
        Err(_) if packet.len() >= 12 => {
            let id = u16::from_be_bytes([packet[0], packet[1]]);
            Some(Message::error_msg(id, OpCode::Query, ResponseCode::FormErr))
        }
        Err(_) => None,
    }
}

/// An error response to `request`.
pub fn error(request: &Message, code: ResponseCode) -> Message {
    let mut m = crate::zone::response_to(request);
    m.set_response_code(code);
    m
}

/// Encodes a UDP response within `limit` bytes, truncating (TC, no records) if needed.
fn udp_bytes(response: &Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = response.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    let mut cut = response.truncate();
    cut.set_truncated(true);
    cut.to_vec().ok()
}

/// Serves DNS over UDP until `shutdown`.
pub async fn serve_udp<R: Resolve>(
    socket: UdpSocket,
    resolver: Arc<R>,
    shutdown: CancellationToken,
) {
    let socket = Arc::new(socket);
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut buf = vec![0u8; 65_535];
    loop {
        let (len, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "udp receive failed");
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let packet = buf[..len].to_vec();
        let (socket, resolver) = (socket.clone(), resolver.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let limit = Message::from_vec(&packet)
                .map(|m| usize::from(m.max_payload()).max(512))
                .unwrap_or(512);
            if let Some(response) = answer(&*resolver, &packet).await {
                if let Some(bytes) = udp_bytes(&response, limit) {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
    }
}

/// Serves DNS over TCP (two-byte length prefix, several queries per connection) until
/// `shutdown`, at most [`MAX_TCP_CONNECTIONS`] connections at once.
pub async fn serve_tcp<R: Resolve>(
    listener: TcpListener,
    resolver: Arc<R>,
    shutdown: CancellationToken,
) {
    dcos_serve::serve_tcp(listener, MAX_TCP_CONNECTIONS, shutdown, move |stream, _| {
        let resolver = resolver.clone();
        async move { tcp_connection(stream, &*resolver).await }
    })
    .await
}

async fn tcp_connection<R: Resolve>(mut stream: TcpStream, resolver: &R) {
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let mut packet = vec![0u8; usize::from(u16::from_be_bytes(len))];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut packet)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let Some(response) = answer(resolver, &packet).await else {
            return;
        };
        let Ok(bytes) = response.to_vec() else {
            return;
        };
        let Ok(n) = u16::try_from(bytes.len()) else {
            return;
        };
        let mut out = n.to_be_bytes().to_vec();
        out.extend_from_slice(&bytes);
        match tokio::time::timeout(TCP_IDLE, stream.write_all(&out)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}

/// Binds UDP and TCP on `addr` and serves both until `shutdown`.
pub async fn serve<R: Resolve>(
    addr: SocketAddr,
    resolver: Arc<R>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let udp = UdpSocket::bind(addr).await?;
    let tcp = TcpListener::bind(addr).await?;
    tokio::join!(
        serve_udp(udp, resolver.clone(), shutdown.clone()),
        serve_tcp(tcp, resolver, shutdown)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Answers everything with an empty NOERROR.
    struct Empty;

    impl Resolve for Empty {
        async fn resolve(&self, request: Message) -> Message {
            crate::zone::response_to(&request)
        }
    }

    fn run(packet: &[u8]) -> Option<Message> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(answer(&Empty, packet))
    }

    proptest! {
        // The request path as a fuzz target: any bytes give an answer or silence, never a
        // panic, and an answer always carries the request's id.
        #[test]
        fn any_bytes_are_answered_or_dropped(packet in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Some(reply) = run(&packet) {
                prop_assert!(packet.len() >= 12);
                prop_assert_eq!(reply.id(), u16::from_be_bytes([packet[0], packet[1]]));
                prop_assert!(reply.to_vec().is_ok());
            }
        }
    }

    /// One query over TCP: the answer's id, or None if the server closed the connection.
    async fn tcp_query(addr: SocketAddr) -> Option<u16> {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let mut q = Message::new();
        q.set_id(4242);
        q.add_query(hickory_proto::op::Query::query(
            hickory_proto::rr::Name::from_ascii("x.mesos.").unwrap(),
            hickory_proto::rr::RecordType::A,
        ));
        let bytes = q.to_vec().unwrap();
        let mut out = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
        out.extend_from_slice(&bytes);
        s.write_all(&out).await.ok()?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await.ok()?;
        let mut packet = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut packet).await.ok()?;
        Some(Message::from_vec(&packet).ok()?.id())
    }

    #[tokio::test]
    async fn tcp_connections_are_limited_and_freed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(serve_tcp(listener, Arc::new(Empty), stop.clone()));
        assert_eq!(tcp_query(addr).await, Some(4242));
        let mut idle = Vec::new();
        for _ in 0..MAX_TCP_CONNECTIONS {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(tcp_query(addr).await, None, "served beyond the limit");
        drop(idle);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(tcp_query(addr).await, Some(4242));
        stop.cancel();
    }

    #[test]
    fn oversized_udp_answers_are_truncated() {
        let mut m = Message::new();
        for i in 0..100u8 {
            m.add_answer(hickory_proto::rr::Record::from_rdata(
                hickory_proto::rr::Name::from_ascii("a-long-name-for-padding.marathon.mesos.")
                    .unwrap(),
                60,
                hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A::new(10, 0, 0, i)),
            ));
        }
        let bytes = udp_bytes(&m, 512).unwrap();
        assert!(bytes.len() <= 512);
        let cut = Message::from_vec(&bytes).unwrap();
        assert!(cut.truncated());
        assert!(udp_bytes(&m, 65_535).unwrap().len() > 512);
    }
}
