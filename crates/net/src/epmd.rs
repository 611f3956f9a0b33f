//! The port mapper on 61420: Erlang's epmd protocol, as dcos-net runs epmd there
//! (`ERL_EPMD_PORT=61420`). It maps node names to the ports their gossip listens on; dcos-net
//! registers itself, and peers ask it where a node's gossip port is before connecting.
//!
//! Requests are a two-byte big-endian length and a body whose first byte is the request;
//! each connection carries one request and is closed after the answer. As dcos-net 1.11's
//! embedded epmd: `NAMES_REQ` (110) answers the epmd port (four bytes) and a
//! `name N at port P` line per name; `PORT_PLEASE2_REQ` (122) answers `PORT2_RESP` (119) with
//! the port, node type 77, protocol 0 and versions 5 to 5, or `119, 1` for an unknown name;
//! anything else (registrations included: nothing registers here) gets an empty answer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const PORT2_RESP: u8 = 119;
const PORT_PLEASE2_REQ: u8 = 122;
const NAMES_REQ: u8 = 110;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The names this epmd answers for, with their ports.
pub type Names = BTreeMap<String, u16>;

/// Serves epmd on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, names: Arc<Names>, shutdown: CancellationToken) {
    let epmd_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    // One short request per connection, answered within REQUEST_TIMEOUT.
    dcos_serve::serve_tcp(listener, 256, shutdown, move |stream, peer| {
        let names = names.clone();
        async move {
            if let Err(e) = connection(stream, &names, epmd_port).await {
                tracing::debug!(%peer, error = %e, "epmd request failed");
            }
        }
    })
    .await
}

async fn read_request(stream: &mut TcpStream) -> anyhow::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    tokio::time::timeout(REQUEST_TIMEOUT, stream.read_exact(&mut len)).await??;
    let len = usize::from(u16::from_be_bytes(len));
    anyhow::ensure!(len > 0, "empty request");
    let mut body = vec![0u8; len];
    tokio::time::timeout(REQUEST_TIMEOUT, stream.read_exact(&mut body)).await??;
    Ok(body)
}

async fn connection(mut stream: TcpStream, names: &Names, epmd_port: u16) -> anyhow::Result<()> {
    let body = read_request(&mut stream).await?;
    let out = match body[0] {
        NAMES_REQ => {
            let mut out = u32::from(epmd_port).to_be_bytes().to_vec();
            for (name, port) in names {
                out.extend_from_slice(format!("name {name} at port {port}\n").as_bytes());
            }
            out
        }
        PORT_PLEASE2_REQ => {
            let name = String::from_utf8_lossy(&body[1..]);
            match names.get(name.as_ref()) {
                Some(port) => {
                    let mut out = vec![PORT2_RESP, 0];
                    out.extend_from_slice(&port.to_be_bytes());
                    // Normal node, TCP over IPv4, distribution versions 5 to 5.
                    out.extend_from_slice(&[77, 0, 0, 5, 0, 5]);
                    out.extend_from_slice(&u16::try_from(name.len())?.to_be_bytes());
                    out.extend_from_slice(name.as_bytes());
                    out.extend_from_slice(&[0, 0]);
                    out
                }
                None => vec![PORT2_RESP, 1],
            }
        }
        _ => Vec::new(),
    };
    stream.write_all(&out).await?;
    stream.shutdown().await?;
    Ok(())
}

/// Asks the epmd at `addr` for `name`'s port (`PORT_PLEASE2_REQ`).
pub async fn port_please(addr: SocketAddr, name: &str) -> anyhow::Result<u16> {
    let ask = async {
        let mut stream = TcpStream::connect(addr).await?;
        let mut req = ((name.len() + 1) as u16).to_be_bytes().to_vec();
        req.push(PORT_PLEASE2_REQ);
        req.extend_from_slice(name.as_bytes());
        stream.write_all(&req).await?;
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).await?;
        anyhow::ensure!(head[0] == PORT2_RESP, "not an epmd answer");
        anyhow::ensure!(head[1] == 0, "epmd at {addr} knows no node {name:?}");
        let mut port = [0u8; 2];
        stream.read_exact(&mut port).await?;
        Ok(u16::from_be_bytes(port))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, ask).await?
}
