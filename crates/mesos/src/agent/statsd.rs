//! StatsD for tasks, as DC/OS 1.11's metrics Mesos module gives it: each container gets a
//! UDP socket of its own on the node's IP, named to its task by `STATSD_UDP_HOST` and
//! `STATSD_UDP_PORT`, and what arrives there is relayed to the node's dcos-metrics collector
//! (`127.0.0.1:8124`) with the container's ids (`dcos_metrics::relay`). The socket closes
//! when its container ends.
//!
//! Relaying never holds the agent up: each container's socket is read by its own task, a
//! datagram is sent on without waiting (dropped if the collector's socket buffer is full),
//! datagrams over `dcos_metrics::relay::MAX_PAYLOAD` are dropped, and a container sends at
//! most [`LIMIT_BYTES`] per [`LIMIT_PERIOD`] (the module's defaults), the rest dropped.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dcos_metrics::relay::{self, Origin};
use tokio_util::sync::CancellationToken;

use super::state::Shared;

/// Bytes a container may send per [`LIMIT_PERIOD`].
pub(crate) const LIMIT_BYTES: usize = 10 * 1024 * 1024;
/// The period of [`LIMIT_BYTES`].
pub(crate) const LIMIT_PERIOD: Duration = Duration::from_secs(60);
/// How often sockets of containers that ended unnoticed are closed.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// One container's open socket; its relay stops (and the socket closes) when dropped.
struct Relay {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every container's StatsD socket.
pub(crate) struct Relays {
    /// Where datagrams go; None: tasks get no StatsD.
    collector: Option<SocketAddr>,
    /// Where the containers' sockets are bound (and what tasks are told).
    host: IpAddr,
    /// The socket relayed datagrams leave from.
    out: Option<Arc<std::net::UdpSocket>>,
    open: Mutex<HashMap<String, Relay>>,
}

impl Relays {
    /// Relays to `collector` from sockets on `host` (loopback if it is unspecified).
    pub(crate) fn new(collector: Option<SocketAddr>, host: IpAddr) -> Relays {
        let host = if host.is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            host
        };
        let out = collector.and_then(|to| {
            let any = if to.is_ipv4() {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            };
            let socket = std::net::UdpSocket::bind((any, 0))
                .and_then(|s| s.set_nonblocking(true).map(|()| s));
            match socket {
                Ok(s) => Some(Arc::new(s)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot open the StatsD relay's socket; tasks get no StatsD");
                    None
                }
            }
        });
        Relays {
            collector,
            host,
            out,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Relay>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The address tasks send to (`STATSD_UDP_HOST`).
    pub(crate) fn host(&self) -> IpAddr {
        self.host
    }

    /// Opens the container's socket (on `port` if given: a task re-attached to after a
    /// restart keeps the port it was told), or gives the one open; its port, None if there is
    /// no collector or it cannot be bound. Must run on the runtime.
    pub(crate) fn open(&self, origin: Origin<'_>, port: Option<u16>) -> Option<u16> {
        let (to, out) = (self.collector?, self.out.clone()?);
        // Checked, bound and inserted under one lock: two opens for one container cannot
        // both bind (and the second's insert drop the first's socket).
        let mut open = self.lock();
        if let Some(relay) = open.get(origin.container_id) {
            return Some(relay.port);
        }
        let Some(header) = origin.header() else {
            tracing::warn!(
                container = origin.container_id,
                "ids cannot be relayed; the task gets no StatsD"
            );
            return None;
        };
        let bound = std::net::UdpSocket::bind((self.host, port.unwrap_or(0)))
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .and_then(tokio::net::UdpSocket::from_std);
        let socket = match bound {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(container = origin.container_id, port, error = %e, "cannot open the task's StatsD socket");
                return None;
            }
        };
        let port = socket.local_addr().ok()?.port();
        let task = tokio::spawn(relay(socket, header, out, to));
        open.insert(origin.container_id.to_string(), Relay { port, task });
        Some(port)
    }

    /// Closes the container's socket.
    pub(crate) fn close(&self, container_id: &str) {
        // Dropped outside the lock.
        let relay = self.lock().remove(container_id);
        drop(relay);
    }

    /// Closes the sockets of containers not in `live`.
    pub(crate) fn retain(&self, live: &HashSet<String>) {
        let mut closed = Vec::new();
        self.lock().retain(|id, r| {
            if live.contains(id) {
                return true;
            }
            closed.push(r.port);
            false
        });
        if !closed.is_empty() {
            tracing::debug!(?closed, "closed StatsD sockets of containers that ended");
        }
    }

    /// Open sockets.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Relays what arrives on a container's socket, for ever (until aborted).
async fn relay(
    socket: tokio::net::UdpSocket,
    header: Vec<u8>,
    out: Arc<std::net::UdpSocket>,
    to: SocketAddr,
) {
    let h = header.len();
    // The header once, each datagram received right behind it: one send, no copy.
    let mut buf = header;
    buf.resize(h + relay::MAX_PAYLOAD + 1, 0);
    let (mut window, mut sent) = (Instant::now(), 0usize);
    loop {
        let n = match socket.recv(&mut buf[h..]).await {
            Ok(n) => n,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if n == 0 || n > relay::MAX_PAYLOAD {
            continue;
        }
        if window.elapsed() >= LIMIT_PERIOD {
            (window, sent) = (Instant::now(), 0);
        }
        sent += n;
        if sent > LIMIT_BYTES {
            continue;
        }
        // Never waits: a full buffer (or no collector yet) drops the datagram.
        let _ = out.send_to(&buf[..h + n], to);
    }
}

/// Closes the sockets of containers that are no longer running, every [`SWEEP_EVERY`] (each
/// is also closed as its task ends); all of them when the agent stops.
pub(crate) async fn sweep(shared: Shared, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = every.tick() => {
                let live: HashSet<String> = shared
                    .lock()
                    .live_runs()
                    .map(|r| r.container_id.clone())
                    .collect();
                shared.statsd.retain(&live);
            }
        }
    }
    shared.statsd.retain(&HashSet::new());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(id: &str) -> Origin<'_> {
        Origin {
            container_id: id,
            executor_id: "app.1",
            framework_id: "fw",
        }
    }

    #[tokio::test]
    async fn a_containers_datagrams_reach_the_collector_with_its_ids_until_it_closes() {
        let collector = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let relays = Relays::new(
            Some(collector.local_addr().unwrap()),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        );
        let port = relays.open(origin("c1"), None).unwrap();
        assert_eq!(
            relays.open(origin("c1"), None),
            Some(port),
            "one socket per container"
        );
        let task = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        task.send_to(b"m:1|g|#k:v", ("127.0.0.1", port))
            .await
            .unwrap();
        let mut buf = vec![0; 70_000];
        let n = tokio::time::timeout(Duration::from_secs(5), collector.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let (got, payload) = relay::parse(&buf[..n]).unwrap();
        assert_eq!(got, origin("c1"));
        assert_eq!(payload, b"m:1|g|#k:v");
        // Oversized datagrams are dropped, the next one still goes.
        task.send_to(&vec![b'x'; relay::MAX_PAYLOAD + 1], ("127.0.0.1", port))
            .await
            .unwrap();
        task.send_to(b"n:2|c", ("127.0.0.1", port)).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), collector.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(relay::parse(&buf[..n]).unwrap().1, b"n:2|c");

        relays.close("c1");
        assert_eq!(relays.len(), 0);
        // The socket is closed: the port can be bound again.
        tokio::time::timeout(Duration::from_secs(5), async {
            while std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the container's socket closes");
    }

    #[tokio::test]
    async fn a_recovered_container_gets_its_port_back_and_ended_ones_are_swept() {
        let relays = Relays::new(
            Some("127.0.0.1:9".parse().unwrap()),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        );
        assert_eq!(relays.host(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        let free = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert_eq!(relays.open(origin("c1"), Some(free)), Some(free));
        relays.open(origin("c2"), None).unwrap();
        relays.retain(&["c2".to_string()].into());
        assert_eq!(relays.len(), 1);
        let bad = Origin {
            container_id: "c\n",
            ..origin("")
        };
        assert_eq!(relays.open(bad, None), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_opens_of_one_container_share_one_socket() {
        let relays = Arc::new(Relays::new(
            Some("127.0.0.1:9".parse().unwrap()),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        ));
        for round in 0..20 {
            let id = format!("c{round}");
            let opens: Vec<_> = (0..4)
                .map(|_| {
                    let (relays, id) = (relays.clone(), id.clone());
                    tokio::spawn(async move { relays.open(origin(&id), None) })
                })
                .collect();
            let mut ports = Vec::new();
            for o in opens {
                ports.push(o.await.unwrap().unwrap());
            }
            ports.dedup();
            assert_eq!(ports.len(), 1, "one port per container: {ports:?}");
            assert_eq!(relays.len(), round + 1);
            // The socket open is the one kept: its port cannot be bound.
            assert!(std::net::UdpSocket::bind(("127.0.0.1", ports[0])).is_err());
        }
    }

    #[tokio::test]
    async fn without_a_collector_tasks_get_no_socket() {
        let relays = Relays::new(None, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(relays.open(origin("c1"), None), None);
        assert_eq!(relays.len(), 0);
    }
}
