//! Mesos-DNS (`dcos-mesos-dns.service`): DNS on 61053 (UDP and TCP) and its HTTP API on 8123.
//!
//! It follows the leading Mesos master: it reads `/master/state`, holds the master's operator
//! event stream open, and reads the state again as soon as a task, agent or framework changes
//! (and every `refresh` regardless), so records follow the cluster within a fraction of a
//! second. Names in the domain are answered from the latest snapshot; other names are
//! forwarded to the configured resolvers.
//!
//! Modules: [`records`] names things as Mesos-DNS does, [`zone`] answers queries in the
//! domain, [`server`] serves DNS on sockets, [`forward`] asks other servers, [`follow`] keeps
//! up with the leading master, [`http`] is the 8123 API. All but `http` are shared with
//! dcos-net's node resolver.

#![warn(missing_docs)]

pub mod follow;
pub mod forward;
pub mod http;
pub mod records;
pub mod server;
pub mod zone;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::records::{IpSource, Naming};
use crate::zone::{Records, Soa, Zone};

/// The configuration, with DC/OS' values as defaults (see [`Config::dcos`]).
#[derive(Clone, Debug)]
pub struct Config {
    /// DNS (UDP and TCP): the node's IP, port 61053 (the contract binds both protocols alike).
    pub dns_listen: SocketAddr,
    /// The HTTP API: 127.0.0.1:8123.
    pub http_listen: SocketAddr,
    /// The masters (`ip:5050`); the leader among them is followed.
    pub masters: Vec<SocketAddr>,
    /// Upstream resolvers for names outside the domain; none means REFUSED for those.
    pub resolvers: Vec<SocketAddr>,
    /// The domain (`mesos`).
    pub domain: String,
    /// The TTL of every record (60).
    pub ttl: u32,
    /// The longest time between two reads of the state (30 s in DC/OS), and how long records
    /// outlive a master that stopped answering.
    pub refresh: Duration,
    /// Where a token for the masters comes from (strict security).
    pub credentials: Option<dcos_mesos_api::follow::Credentials>,
    /// Task address sources (DC/OS: host, then netinfo).
    pub ip_sources: Vec<IpSource>,
    /// RFC 952 labels instead of RFC 1123.
    pub rfc952: bool,
}

/// Mesos-DNS' unit in the port contract.
pub const UNIT: &str = "dcos-mesos-dns.service";
/// DNS, UDP and TCP.
pub const DNS_PORT: u16 = 61053;
/// The HTTP API.
pub const HTTP_PORT: u16 = 8123;

impl Config {
    /// DC/OS' Mesos-DNS on a master at `ip`, listening where the port contract binds it
    /// ([`dcos_ports::bind_addrs`]): DNS on `ip` (UDP and TCP alike), HTTP on 127.0.0.1.
    pub fn dcos(ip: IpAddr, masters: Vec<SocketAddr>, resolvers: Vec<SocketAddr>) -> Config {
        // Constants of this crate, which the tests look up: a failed lookup is a bug.
        let bound = |port, protocol| {
            dcos_ports::bind_addrs(UNIT, dcos_ports::NodeRole::Master, ip)
                .and_then(|b| b.get(protocol, port).map(|b| b.addr))
                .unwrap_or_else(|e| panic!("Mesos-DNS' port contract lookup: {e}"))
        };
        Config {
            dns_listen: bound(DNS_PORT, dcos_ports::Protocol::Udp),
            http_listen: bound(HTTP_PORT, dcos_ports::Protocol::Tcp),
            masters,
            resolvers,
            domain: "mesos".into(),
            ttl: 60,
            refresh: Duration::from_secs(30),
            credentials: None,
            ip_sources: records::DCOS_IP_SOURCES.to_vec(),
            rfc952: false,
        }
    }

    fn naming(&self) -> Naming {
        Naming {
            domain: self.domain.clone(),
            masters: self.masters.iter().map(ToString::to_string).collect(),
            listener: match self.dns_listen.ip() {
                IpAddr::V4(ip) if !ip.is_unspecified() => ip,
                _ => Ipv4Addr::LOCALHOST,
            },
            ip_sources: self.ip_sources.clone(),
            rfc952: self.rfc952,
            mname: format!("ns1.{}.", self.domain),
        }
    }
}

/// Errors starting Mesos-DNS.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A port could not be bound.
    #[error("failed to bind Mesos-DNS on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// What the servers share: the current zone and the state it came from.
pub struct MesosDns {
    config: Config,
    zone: RwLock<Arc<Zone>>,
    state: RwLock<Arc<Value>>,
}

fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

impl MesosDns {
    /// Mesos-DNS with no state yet: only its own `ns1` name.
    pub fn new(config: Config) -> MesosDns {
        let domain = format!("{}.", config.domain);
        let zone = Zone {
            soa: Soa {
                mname: format!("ns1.{domain}"),
                rname: format!("root.ns1.{domain}"),
                refresh: 60,
                retry: 600,
                expire: 86400,
                minttl: config.ttl,
            },
            domain,
            ttl: config.ttl,
            serial: unix_now(),
            records: records::generate(&Value::Null, &config.naming()),
        };
        MesosDns {
            config,
            zone: RwLock::new(Arc::new(zone)),
            state: RwLock::new(Arc::new(Value::Null)),
        }
    }

    /// The zone now.
    pub fn zone(&self) -> Arc<Zone> {
        self.zone.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The state the zone was made from.
    pub fn state(&self) -> Arc<Value> {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Makes the zone from a new state snapshot.
    pub fn install(&self, state: Value) {
        let records = records::generate(&state, &self.config.naming());
        self.swap(records);
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(state);
    }

    fn swap(&self, records: Records) {
        let current = self.zone();
        if current.records == records {
            return;
        }
        let zone = Zone {
            domain: current.domain.clone(),
            ttl: current.ttl,
            soa: current.soa.clone(),
            serial: unix_now().max(current.serial + 1),
            records,
        };
        *self.zone.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(zone);
    }
}

impl server::Resolve for MesosDns {
    async fn resolve(&self, request: Message) -> Message {
        let Some(query) = request.queries().first() else {
            return server::error(&request, ResponseCode::FormErr);
        };
        let qname = query.name().to_ascii().to_ascii_lowercase();
        let qname = if qname.ends_with('.') {
            qname
        } else {
            format!("{qname}.")
        };
        let zone = self.zone();
        if zone.contains(&qname) {
            let mut response = zone::response_to(&request);
            response.set_recursion_available(true);
            zone.answer(query.name(), &qname, query.query_type(), &mut response);
            return response;
        }
        if self.config.resolvers.is_empty() {
            return server::error(&request, ResponseCode::Refused);
        }
        match forward::forward(&request, &self.config.resolvers).await {
            Some(response) => response,
            None => server::error(&request, ResponseCode::ServFail),
        }
    }
}

/// Binds DNS (UDP and TCP) and HTTP and serves until `shutdown`.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let bind = |addr: SocketAddr| move |source| Error::Bind { addr, source };
    let udp = tokio::net::UdpSocket::bind(config.dns_listen)
        .await
        .map_err(bind(config.dns_listen))?;
    let tcp = tokio::net::TcpListener::bind(config.dns_listen)
        .await
        .map_err(bind(config.dns_listen))?;
    let http = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .map_err(bind(config.http_listen))?;
    serve_on(Listeners { udp, tcp, http }, config, shutdown).await;
    Ok(())
}

/// Bound sockets for [`serve_on`].
pub struct Listeners {
    /// DNS over UDP.
    pub udp: tokio::net::UdpSocket,
    /// DNS over TCP.
    pub tcp: tokio::net::TcpListener,
    /// The HTTP API.
    pub http: tokio::net::TcpListener,
}

/// Serves on bound sockets until `shutdown`.
pub async fn serve_on(listeners: Listeners, config: Config, shutdown: CancellationToken) {
    let dns = Arc::new(MesosDns::new(config));
    tracing::info!(dns = ?listeners.udp.local_addr().ok(), http = ?listeners.http.local_addr().ok(), "serving Mesos-DNS");
    let app = http::router(dns.clone());
    // Local callers (Admin Router, the CLI) with small GETs.
    let limits = dcos_serve::Limits::api().body(64 * 1024);
    let http = dcos_serve::serve(listeners.http, app, limits, shutdown.clone());
    tokio::join!(
        {
            let dns = dns.clone();
            let (masters, refresh) = (dns.config.masters.clone(), dns.config.refresh);
            follow::follow(
                masters,
                refresh,
                dns.config.credentials.clone(),
                move |state| dns.install(state),
                shutdown.clone(),
            )
        },
        server::serve_udp(listeners.udp, dns.clone(), shutdown.clone()),
        server::serve_tcp(listeners.tcp, dns, shutdown.clone()),
        http,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dcos_listens_where_the_contract_binds_it_udp_and_tcp() {
        let ip: IpAddr = "10.0.0.5".parse().unwrap();
        let c = Config::dcos(ip, vec![], vec![]);
        assert_eq!(c.dns_listen, SocketAddr::new(ip, 61053));
        assert_eq!(c.http_listen, "127.0.0.1:8123".parse().unwrap());
        // One DNS address serves both protocols: the contract binds them alike.
        let binds = dcos_ports::bind_addrs(UNIT, dcos_ports::NodeRole::Master, ip).unwrap();
        assert_eq!(binds.tcp(DNS_PORT), Ok(c.dns_listen));
        assert_eq!(binds.udp(DNS_PORT), Ok(c.dns_listen));
    }
}
