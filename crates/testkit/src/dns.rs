//! Asking DNS servers with the real `dig` (Debian's dnsutils, installed by
//! scripts/install-deps), its output tidied so tests can match lines.

use std::net::SocketAddr;
use std::time::Duration;

/// dig's output with one space between fields, whatever dig aligned them with.
pub fn tidy(stdout: &[u8]) -> String {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The arguments of one `dig @server -p port +time=2 +tries=1 <args>`.
pub fn dig_args(server: SocketAddr, args: &[&str]) -> Vec<String> {
    let mut all = vec![
        format!("@{}", server.ip()),
        "-p".into(),
        server.port().to_string(),
        "+time=2".into(),
        "+tries=1".into(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    all
}

/// `dig @server <args>`, tidied.
///
/// # Panics
///
/// When dig cannot be run.
pub async fn dig(server: SocketAddr, args: &[&str]) -> String {
    let out = tokio::process::Command::new("dig")
        .args(dig_args(server, args))
        .output()
        .await
        .expect("dig runs (dnsutils is installed by scripts/install-deps)");
    tidy(&out.stdout)
}

/// Digs until the output contains `want` (10 s at most) and returns it.
///
/// # Panics
///
/// When it never does; the message shows the last output.
pub async fn eventually_dig(server: SocketAddr, args: &[&str], want: &str) -> String {
    let found = crate::poll_until(Duration::from_secs(10), || async {
        let out = dig(server, args).await;
        out.contains(want).then_some(out)
    })
    .await;
    match found {
        Some(out) => out,
        None => panic!(
            "dig {args:?} never showed {want:?}; last:\n{}",
            dig(server, args).await
        ),
    }
}

/// A UDP socket and a TCP listener on the same free port of `ip`, as a DNS server needs;
/// tries other ports while the TCP side of a free UDP port is taken.
///
/// # Panics
///
/// When no port is found in 100 tries.
pub async fn udp_tcp_pair(
    ip: std::net::IpAddr,
) -> (tokio::net::UdpSocket, tokio::net::TcpListener) {
    for _ in 0..100 {
        let udp = tokio::net::UdpSocket::bind((ip, 0))
            .await
            .expect("bind a UDP port");
        let addr = udp.local_addr().expect("the socket's address");
        if let Ok(tcp) = tokio::net::TcpListener::bind(addr).await {
            return (udp, tcp);
        }
    }
    panic!("no port on {ip} free for both UDP and TCP");
}
