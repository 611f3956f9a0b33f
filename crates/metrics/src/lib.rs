//! dcos-metrics (`dcos-metrics-master.service`, `dcos-metrics-agent.service`): every node's
//! metrics, as DC/OS 1.11's dcos-metrics serves them.
//!
//! - Its HTTP API ([`http`]) on a unix socket that Admin Router serves at
//!   `/system/v1/metrics/v0/...`: `/v0/ping`, `/v0/node` (cpu, load, memory, swap,
//!   filesystems by `path`, network by `interface`, uptime, process count: [`node`]), and on
//!   agents `/v0/containers`, `/v0/containers/{id}` (each container's resource use, from the
//!   local agent's `/containers` and `/state`: [`agent`]) and `/v0/containers/{id}/app[/{metric}]`
//!   (what its task sent over StatsD).
//! - The Prometheus text exposition on 61091 `/metrics` ([`prometheus`]): all of the above,
//!   and the local Mesos master's and agent's `/metrics/snapshot` and Marathon's `/metrics`.
//! - On agents, the StatsD collector on `127.0.0.1:8124` UDP: the agent opens a UDP socket
//!   per container (the task's `STATSD_UDP_HOST`/`STATSD_UDP_PORT`) and relays each datagram
//!   here with its container's ids ([`relay`]); lines are parsed ([`statsd`]) and the latest
//!   value of each (container, metric, tags) kept ([`store`]) until the container ends.
//!
//! What the StatsD collector trusts: any local process can send to `127.0.0.1:8124`, and
//! tasks share the host's network. Relayed datagrams are accepted only for containers the
//! agent's last `/containers` read listed, or for at most [`collector::MAX_UNKNOWN`]
//! unknown ones during a short grace (containers newer than that read), which makes the
//! agent be read again; so made-up ids cannot fill the store for long. A local process
//! (tasks run as root here) can still send datagrams naming another *running* container
//! (forging its metrics, within the store's per-container limits), send more than the
//! agent's per-container rate limit allows by writing to `8124` directly, or, as root, bind
//! or sniff loopback at will. Identity dimensions always win over tags, so a datagram
//! cannot relabel whose metrics it carries beyond the container id it names.
//!
//! Everything is read on request with short caches ([`collector`]); a background task only
//! expires application metrics.

#![warn(missing_docs)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket, UnixListener};
use tokio_util::sync::CancellationToken;

pub mod agent;
pub mod api;
pub mod collector;
pub mod fetch;
pub mod http;
pub mod node;
pub mod procfs;
pub mod prometheus;
pub mod relay;
pub mod statsd;
pub mod store;

pub use collector::Collector;
pub use store::StoreLimits;

/// The Prometheus port of the contract.
pub const PROMETHEUS_PORT: u16 = 61091;
/// The StatsD collector's port (the agent relays tasks' datagrams to it, on loopback).
pub const STATSD_PORT: u16 = 8124;

/// Which node's metrics these are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A master: node metrics only (`dcos-metrics-master.service`).
    Master,
    /// An agent, public or private: node and container metrics
    /// (`dcos-metrics-agent.service`).
    Agent,
}

/// Where dcos-metrics listens and what it reads.
#[derive(Clone, Debug)]
pub struct Config {
    /// Which node.
    pub role: Role,
    /// The HTTP API's unix socket (`<run_dir>/dcos-metrics-master.sock` or
    /// `<run_dir>/dcos-metrics-agent.sock`); a stale file there is replaced.
    pub socket: PathBuf,
    /// The Prometheus exposition (`<node-ip>:61091`), if any.
    pub prometheus: Option<SocketAddr>,
    /// The StatsD collector the agent relays to (`127.0.0.1:8124` UDP; agents).
    pub statsd: Option<SocketAddr>,
    /// The node's IP: the `hostname` dimension.
    pub node_ip: IpAddr,
    /// The cluster's id: the `cluster_id` dimension.
    pub cluster_id: String,
    /// The local Mesos agent (`http://<ip>:5051`): containers, its id, its metrics.
    pub agent: Option<String>,
    /// The local Mesos master (`http://<ip>:5050`): the leader's id, its metrics.
    pub master: Option<String>,
    /// The local Marathon (`http://<ip>:8080`): its metrics.
    pub marathon: Option<String>,
    /// The service account to read those as when security asks a token.
    pub login: Option<dcos_iam::client::ServiceLogin>,
    /// Where `/proc` is (tests point it elsewhere).
    pub proc_root: PathBuf,
    /// How long a read of a local component may take.
    pub request_timeout: Duration,
    /// What the application metrics store keeps.
    pub store_limits: StoreLimits,
}

impl Config {
    /// A config with the defaults: no Prometheus port, no StatsD, no components to read.
    pub fn new(role: Role, socket: PathBuf, node_ip: IpAddr) -> Config {
        Config {
            role,
            socket,
            prometheus: None,
            statsd: None,
            node_ip,
            cluster_id: String::new(),
            agent: None,
            master: None,
            marathon: None,
            login: None,
            proc_root: PathBuf::from("/proc"),
            request_timeout: Duration::from_secs(3),
            store_limits: StoreLimits::default(),
        }
    }
}

/// Why dcos-metrics cannot run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket cannot be bound.
    #[error("cannot bind the {what} on {addr}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// Its address or path.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The sockets dcos-metrics serves on.
pub struct Listeners {
    /// The HTTP API.
    pub api: UnixListener,
    /// The Prometheus exposition.
    pub prometheus: Option<TcpListener>,
    /// The StatsD collector.
    pub statsd: Option<UdpSocket>,
}

/// Limits of the API socket: Admin Router's requests, all small GETs.
pub const LIMITS: dcos_serve::Limits = dcos_serve::Limits::api().connections(64).body(4096);
/// Limits of 61091: Prometheus scrapers.
pub const PROMETHEUS_LIMITS: dcos_serve::Limits =
    dcos_serve::Limits::api().connections(32).body(4096);
/// How often application metrics are expired.
pub const EXPIRE_EVERY: Duration = Duration::from_secs(30);

/// Binds the configured sockets and serves until `shutdown` is cancelled.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let bind_err = |what, addr: String| move |source| Error::Bind { what, addr, source };
    if let Some(dir) = config.socket.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // A socket file left by a killed predecessor would make bind fail.
    let _ = std::fs::remove_file(&config.socket);
    let api = UnixListener::bind(&config.socket)
        .map_err(bind_err("metrics API", config.socket.display().to_string()))?;
    let prometheus = match config.prometheus {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(bind_err("Prometheus exposition", addr.to_string()))?,
        ),
        None => None,
    };
    let statsd = match config.statsd {
        Some(addr) => Some(
            UdpSocket::bind(addr)
                .await
                .map_err(bind_err("StatsD collector", addr.to_string()))?,
        ),
        None => None,
    };
    let socket = config.socket.clone();
    let listeners = Listeners {
        api,
        prometheus,
        statsd,
    };
    serve_on(listeners, config, shutdown).await;
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

/// Serves on already-bound sockets until `shutdown` is cancelled.
pub async fn serve_on(listeners: Listeners, config: Config, shutdown: CancellationToken) {
    tracing::info!(socket = %config.socket.display(), "listening for metrics API requests");
    let collector = Arc::new(Collector::new(config));
    let api = dcos_serve::serve(
        listeners.api,
        http::router(collector.clone()),
        LIMITS,
        shutdown.clone(),
    );
    let prometheus = async {
        if let Some(l) = listeners.prometheus {
            if let Ok(addr) = l.local_addr() {
                tracing::info!(%addr, "listening for Prometheus scrapes");
            }
            let router = http::prometheus_router(collector.clone());
            dcos_serve::serve(l, router, PROMETHEUS_LIMITS, shutdown.clone()).await;
        }
    };
    let statsd = async {
        if let Some(socket) = listeners.statsd {
            if let Ok(addr) = socket.local_addr() {
                tracing::info!(%addr, "listening for relayed StatsD datagrams");
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = receive_statsd(socket, collector.clone()) => {}
            }
        }
    };
    let expire = async {
        let mut every = tokio::time::interval(EXPIRE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = every.tick() => collector.expire().await,
            }
        }
    };
    tokio::join!(api, prometheus, statsd, expire);
}

/// Receives relayed datagrams for ever, recording their samples; what is not a relayed
/// datagram, or not of a container the agent runs or just started ([`Collector::admit`]), is
/// dropped.
async fn receive_statsd(socket: UdpSocket, collector: Arc<Collector>) {
    let mut buf = vec![0u8; relay::MAX_DATAGRAM + 1];
    let mut dropped: u64 = 0;
    loop {
        let n = match socket.recv_from(&mut buf).await {
            Ok((n, _)) => n,
            Err(e) => {
                // ICMP errors surface here on some kernels; nothing to do but go on.
                tracing::debug!(error = %e, "StatsD receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        match relay::parse(&buf[..n]) {
            Some((origin, payload)) if collector.admit(origin.container_id) => {
                let mut oversized = 0;
                collector.apps.record(
                    origin,
                    statsd::parse_packet_counting(payload, &mut oversized),
                );
                collector.apps.refuse(oversized);
            }
            _ => {
                dropped += 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(
                        dropped,
                        "datagrams that are not relayed StatsD of a known container dropped"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
