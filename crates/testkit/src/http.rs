//! A minimal HTTP/1.0 client for tests: enough to ask a component `GET /ping` over TCP (from
//! inside a namespace) or a Unix socket (the pkgpanda API), with bounded waits.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// How long a read or write may block.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// An HTTP response: status code and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The body, as text.
    pub body: String,
}

/// Sends `GET path` on a connected TCP stream. HTTP/1.0, so the body ends at EOF and is
/// never chunked.
pub fn get(
    mut stream: std::net::TcpStream,
    host: &str,
    path: &str,
) -> std::io::Result<HttpResponse> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    exchange(&mut stream, host, path)
}

/// Sends `GET path` to the HTTP server on a Unix socket.
pub fn get_unix(socket: &Path, path: &str) -> std::io::Result<HttpResponse> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    exchange(&mut stream, "localhost", path)
}

fn exchange(
    stream: &mut (impl Read + Write),
    host: &str,
    path: &str,
) -> std::io::Result<HttpResponse> {
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse(&String::from_utf8_lossy(&raw))
}

fn parse(text: &str) -> std::io::Result<HttpResponse> {
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not an HTTP response: {text:?}"),
        )
    };
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok(HttpResponse {
        status,
        body: body.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_into_status_and_body() {
        let r = parse("HTTP/1.0 200 OK\r\ncontent-type: x\r\n\r\n\"pong\"").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "\"pong\"");
        assert!(parse("garbage").is_err());
    }
}
