//! dcos-net (`dcos-net.service`, every node): the node's DNS resolver on port 53, its HTTP API
//! on 62080, its port mapper on 61420 and the gossip between nodes on 62501.
//!
//! The resolver answers, on the node's IP and on loopback:
//! - `*.mesos` by asking every master's Mesos-DNS (61053) at once, the first answer winning
//!   (SERVFAIL if none answers);
//! - the zones dcos-net owns ([`zones`]): `spartan`, `zk`, `localhost`,
//!   `thisnode.thisdcos.directory`, and the cluster zones `dcos.thisdcos.directory` and
//!   `mesos.thisdcos.directory`, which the masters make from the leading Mesos master's state
//!   and [`gossip`] carries to every other node;
//! - everything else by asking the upstream `resolvers`.
//!
//! The DNS wire handling is Mesos-DNS' (`dcos_mesos_dns::server`, `forward`).

#![warn(missing_docs)]

pub mod epmd;
pub mod gossip;
pub mod http;
pub mod zones;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use dcos_mesos_dns::server::{self, Resolve};
use dcos_mesos_dns::zone::{self, Zone};
use dcos_mesos_dns::{follow, forward};
use dcos_ports::{NodeRole, Protocol};
use hickory_proto::op::{Message, ResponseCode};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

use crate::gossip::{ClusterZones, Frame, Member};

/// The ports dcos-net finds on the masters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MasterPorts {
    /// The Mesos master (5050).
    pub mesos: u16,
    /// Mesos-DNS (61053).
    pub mesos_dns: u16,
    /// The masters' dcos-net epmd (61420).
    pub epmd: u16,
}

impl Default for MasterPorts {
    /// The masters' ports in the port contract (a test checks each against it).
    fn default() -> Self {
        MasterPorts {
            mesos: 5050,
            mesos_dns: dcos_mesos_dns::DNS_PORT,
            epmd: EPMD_PORT,
        }
    }
}

/// dcos-net's unit in the port contract.
pub const UNIT: &str = "dcos-net.service";
/// The node's resolver, UDP and TCP.
pub const DNS_PORT: u16 = 53;
/// The HTTP API.
pub const HTTP_PORT: u16 = 62080;
/// The port mapper.
pub const EPMD_PORT: u16 = 61420;
/// The gossip.
pub const GOSSIP_PORT: u16 = 62501;

/// The configuration; [`Config::dcos`] gives DC/OS' layout.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's IP.
    pub node_ip: IpAddr,
    /// This node's role (`master`, `agent`, `agent_public`).
    pub role: String,
    /// Whether this node makes the cluster zones from the Mesos state (the masters) rather than
    /// receiving them from a master.
    pub makes_zones: bool,
    /// DNS (UDP and TCP): port 53 on the node's IP and on loopback (the contract binds both
    /// protocols alike).
    pub dns_listen: Vec<SocketAddr>,
    /// The HTTP API (62080).
    pub http_listen: SocketAddr,
    /// The port mapper (61420).
    pub epmd_listen: SocketAddr,
    /// The gossip (62501).
    pub gossip_listen: SocketAddr,
    /// The masters' IPs (`master_list`).
    pub masters: Vec<IpAddr>,
    /// Where on the masters things are.
    pub master_ports: MasterPorts,
    /// Upstream resolvers for names outside the cluster's zones.
    pub resolvers: Vec<SocketAddr>,
    /// How long cluster zones outlive the last word from a master (30 s).
    pub refresh: Duration,
    /// Where a token for the masters comes from (strict security).
    pub credentials: Option<follow::Credentials>,
}

impl Config {
    /// DC/OS' dcos-net on a node at `ip`, listening where the port contract binds it
    /// ([`dcos_ports::bind_addrs`]): everything on `ip`, the resolver on loopback too.
    pub fn dcos(ip: IpAddr, role: &str, masters: Vec<IpAddr>, resolvers: Vec<IpAddr>) -> Config {
        // dcos-net runs on every node, with the same rows whatever the role.
        let node_role = NodeRole::parse(role).unwrap_or(NodeRole::Agent);
        // Constants of this crate, which the tests look up: a failed lookup is a bug.
        let lookup =
            |e: dcos_ports::BindError| -> ! { panic!("dcos-net's port contract lookup: {e}") };
        let binds = dcos_ports::bind_addrs(UNIT, node_role, ip).unwrap_or_else(|e| lookup(e));
        let tcp = |port| binds.tcp(port).unwrap_or_else(|e| lookup(e));
        Config {
            node_ip: ip,
            role: role.to_string(),
            makes_zones: role.starts_with("master"),
            dns_listen: binds
                .addrs(Protocol::Udp, DNS_PORT)
                .unwrap_or_else(|e| lookup(e)),
            http_listen: tcp(HTTP_PORT),
            epmd_listen: tcp(EPMD_PORT),
            gossip_listen: tcp(GOSSIP_PORT),
            masters,
            master_ports: MasterPorts::default(),
            resolvers: resolvers
                .into_iter()
                .map(|r| SocketAddr::new(r, 53))
                .collect(),
            refresh: Duration::from_secs(30),
            credentials: None,
        }
    }

    /// The masters' Mesos-DNS.
    pub fn mesos_dns(&self) -> Vec<SocketAddr> {
        self.masters
            .iter()
            .map(|ip| SocketAddr::new(*ip, self.master_ports.mesos_dns))
            .collect()
    }
}

/// Errors starting dcos-net.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A port could not be bound.
    #[error("failed to bind dcos-net on {addr}{hint}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why it may have failed.
        hint: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// What dcos-net knows of the cluster, swapped whole on each change.
#[derive(Default)]
struct ClusterView {
    zones: ClusterZones,
    built: Vec<Arc<Zone>>,
    /// Every zone served: the local ones and `built`, most specific domain first.
    served: Vec<Arc<Zone>>,
    /// Members as the master this node follows reported them.
    members: Vec<Member>,
}

/// The state the servers share.
pub struct DcosNet {
    config: Config,
    local: Vec<Arc<Zone>>,
    /// The masters' Mesos-DNS, where `*.mesos` goes.
    mesos_dns: Vec<SocketAddr>,
    cluster: RwLock<Arc<ClusterView>>,
    /// The nodes subscribed to this node's gossip now, with their open connections.
    subscribers: Mutex<BTreeMap<IpAddr, (Member, usize)>>,
    changes: tokio::sync::watch::Sender<u64>,
}

impl DcosNet {
    /// dcos-net with its local zones and no cluster zones yet.
    pub fn new(config: Config) -> DcosNet {
        let node_v4 = match config.node_ip {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(_) => Ipv4Addr::LOCALHOST,
        };
        let local = zones::local_zones(node_v4, &zones::ipv4s(&config.masters));
        let view = ClusterView {
            served: served(&local, &[]),
            ..ClusterView::default()
        };
        DcosNet {
            mesos_dns: config.mesos_dns(),
            config,
            local,
            cluster: RwLock::new(Arc::new(view)),
            subscribers: Mutex::default(),
            changes: tokio::sync::watch::channel(0).0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This node, as it introduces itself.
    pub fn me(&self) -> Member {
        Member {
            ip: self.config.node_ip,
            role: self.config.role.clone(),
        }
    }

    fn view(&self) -> Arc<ClusterView> {
        self.cluster
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every zone served now, most specific domain first.
    pub fn zones(&self) -> Vec<Arc<Zone>> {
        self.view().served.clone()
    }

    /// The zone that holds `qname` (lower case, fully qualified): the longest match.
    fn zone_for(&self, qname: &str) -> Option<Arc<Zone>> {
        self.view()
            .served
            .iter()
            .find(|z| z.contains(qname))
            .cloned()
    }

    /// The cluster zones now.
    pub fn cluster_zones(&self) -> ClusterZones {
        self.view().zones.clone()
    }

    /// Installs cluster zones (and the members their sender knows) received from a master.
    pub fn install_cluster(&self, zones: ClusterZones, members: Vec<Member>) {
        let view = self.view();
        if view.zones == zones && view.members == members {
            return;
        }
        let built = if view.zones == zones {
            view.built.clone()
        } else {
            zones
                .zones
                .iter()
                .map(|(name, records)| Arc::new(zones::zone(name, records.clone())))
                .collect()
        };
        *self.cluster.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ClusterView {
            served: served(&self.local, &built),
            zones,
            built,
            members,
        });
        self.changes.send_modify(|v| *v += 1);
    }

    /// Makes the cluster zones from a leading master's state (`Null`: none), on a master.
    pub fn make_cluster(&self, state: &serde_json::Value) {
        let records = zones::cluster_records(state, &zones::ipv4s(&self.config.masters));
        let view = self.view();
        if view.zones.zones == records {
            return;
        }
        let zones = ClusterZones {
            version: view.zones.version + 1,
            zones: records,
        };
        self.install_cluster(zones, view.members.clone());
    }

    /// Every member known: this node, its subscribers, and those its master reported.
    pub fn members(&self) -> Vec<Member> {
        let mut all: BTreeMap<IpAddr, Member> = BTreeMap::new();
        for m in self.view().members.iter().cloned() {
            all.insert(m.ip, m);
        }
        for (m, _) in self.lock_subscribers().values() {
            all.insert(m.ip, m.clone());
        }
        all.insert(self.config.node_ip, self.me());
        all.into_values().collect()
    }

    fn lock_subscribers(&self) -> std::sync::MutexGuard<'_, BTreeMap<IpAddr, (Member, usize)>> {
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn members_add(&self, member: Member) {
        let mut subs = self.lock_subscribers();
        let entry = subs.entry(member.ip).or_insert((member.clone(), 0));
        entry.0 = member;
        entry.1 += 1;
        drop(subs);
        self.changes.send_modify(|v| *v += 1);
    }

    /// One connection of the member at `ip` closed; it leaves with its last one.
    pub(crate) fn members_remove(&self, ip: IpAddr) {
        let mut subs = self.lock_subscribers();
        let Some(entry) = subs.get_mut(&ip) else {
            return;
        };
        entry.1 -= 1;
        if entry.1 == 0 {
            subs.remove(&ip);
            drop(subs);
            self.changes.send_modify(|v| *v += 1);
        }
    }

    pub(crate) fn subscribe_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub(crate) fn state_frame(&self) -> Frame {
        Frame::State {
            zones: self.cluster_zones(),
            members: self.members(),
        }
    }
}

/// `local` and `cluster` zones, most specific domain first (so the first that contains a
/// name is its zone).
fn served(local: &[Arc<Zone>], cluster: &[Arc<Zone>]) -> Vec<Arc<Zone>> {
    let mut all: Vec<Arc<Zone>> = local.iter().chain(cluster).cloned().collect();
    all.sort_by_key(|z| std::cmp::Reverse(z.domain.len()));
    all
}

/// The name asked, lower case and fully qualified.
fn qname_of(request: &Message) -> Option<String> {
    let name = request
        .queries()
        .first()?
        .name()
        .to_ascii()
        .to_ascii_lowercase();
    Some(if name.ends_with('.') {
        name
    } else {
        format!("{name}.")
    })
}

impl Resolve for DcosNet {
    async fn resolve(&self, request: Message) -> Message {
        let (Some(query), Some(qname)) = (request.queries().first(), qname_of(&request)) else {
            return server::error(&request, ResponseCode::FormErr);
        };
        let upstreams: &[SocketAddr] = if qname == "mesos." || qname.ends_with(".mesos.") {
            &self.mesos_dns
        } else if let Some(zone) = self.zone_for(&qname) {
            let mut response = zone::response_to(&request);
            response.set_recursion_available(true);
            zone.answer(query.name(), &qname, query.query_type(), &mut response);
            return response;
        } else {
            &self.config.resolvers
        };
        match forward::race(&request, upstreams).await {
            Some(mut response) => {
                response.set_recursion_available(true);
                response
            }
            None => server::error(&request, ResponseCode::ServFail),
        }
    }
}

/// Bound sockets for [`serve_on`].
pub struct Listeners {
    /// DNS over UDP, one per address.
    pub udp: Vec<UdpSocket>,
    /// DNS over TCP, one per address.
    pub tcp: Vec<TcpListener>,
    /// The HTTP API.
    pub http: TcpListener,
    /// The port mapper.
    pub epmd: TcpListener,
    /// The gossip.
    pub gossip: TcpListener,
}

impl Listeners {
    /// Binds every address of `config`.
    pub async fn bind(config: &Config) -> Result<Listeners, Error> {
        let bind = |addr: SocketAddr| {
            move |source: std::io::Error| Error::Bind {
                addr,
                hint: match source.kind() {
                    std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => {
                        " (a port below 1024 needs root)"
                    }
                    std::io::ErrorKind::AddrInUse => {
                        " (another process holds it: `dcos preflight --role <role>` names it)"
                    }
                    _ => "",
                },
                source,
            }
        };
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for addr in &config.dns_listen {
            udp.push(UdpSocket::bind(addr).await.map_err(bind(*addr))?);
            tcp.push(TcpListener::bind(addr).await.map_err(bind(*addr))?);
        }
        let tcp_at =
            |addr: SocketAddr| async move { TcpListener::bind(addr).await.map_err(bind(addr)) };
        Ok(Listeners {
            udp,
            tcp,
            http: tcp_at(config.http_listen).await?,
            epmd: tcp_at(config.epmd_listen).await?,
            gossip: tcp_at(config.gossip_listen).await?,
        })
    }
}

/// Binds every port of `config` and serves until `shutdown`.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let listeners = Listeners::bind(&config).await?;
    serve_on(listeners, config, shutdown).await;
    Ok(())
}

/// Serves on bound sockets until `shutdown`.
pub async fn serve_on(listeners: Listeners, config: Config, shutdown: CancellationToken) {
    let net = Arc::new(DcosNet::new(config));
    let config = net.config().clone();
    tracing::info!(dns = ?config.dns_listen, http = %config.http_listen, role = %config.role, "serving dcos-net");

    // The port mapper names the gossip port, for peers to find (both of dcos-net's names).
    let gossip_port = listeners.gossip.local_addr().map_or(0, |a| a.port());
    let names: epmd::Names = gossip::NODE_NAMES
        .iter()
        .map(|n| (n.to_string(), gossip_port))
        .collect();

    let cluster = {
        let (net, shutdown) = (net.clone(), shutdown.clone());
        async move {
            if config.makes_zones {
                let masters = config
                    .masters
                    .iter()
                    .map(|ip| SocketAddr::new(*ip, config.master_ports.mesos))
                    .collect();
                follow::follow(
                    masters,
                    config.refresh,
                    config.credentials.clone(),
                    |state| net.make_cluster(&state),
                    shutdown,
                )
                .await;
            } else {
                gossip::follow_masters(
                    net.clone(),
                    config.masters.clone(),
                    config.master_ports.epmd,
                    config.refresh,
                    shutdown,
                )
                .await;
            }
        }
    };
    let dns = futures::future::join_all(
        listeners
            .udp
            .into_iter()
            .map(|s| {
                futures::future::Either::Left(server::serve_udp(s, net.clone(), shutdown.clone()))
            })
            .chain(listeners.tcp.into_iter().map(|l| {
                futures::future::Either::Right(server::serve_tcp(l, net.clone(), shutdown.clone()))
            })),
    );
    // Every node's tooling and Admin Router read it; the records API takes small bodies.
    let limits = dcos_serve::Limits::api().body(64 * 1024);
    let http = dcos_serve::serve(
        listeners.http,
        http::router(net.clone()),
        limits,
        shutdown.clone(),
    );
    tokio::join!(
        cluster,
        dns,
        epmd::serve(listeners.epmd, Arc::new(names), shutdown.clone()),
        gossip::serve(listeners.gossip, net.clone(), shutdown.clone()),
        http,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));
    const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn dcos_listens_where_the_contract_binds_it_udp_and_tcp() {
        for role in ["master", "agent", "agent_public", "master+agent"] {
            let c = Config::dcos(IP, role, vec![], vec![]);
            let dns = vec![SocketAddr::new(IP, 53), SocketAddr::new(LO, 53)];
            assert_eq!(c.dns_listen, dns, "{role}");
            assert_eq!(c.http_listen, SocketAddr::new(IP, 62080));
            assert_eq!(c.epmd_listen, SocketAddr::new(IP, 61420));
            assert_eq!(c.gossip_listen, SocketAddr::new(IP, 62501));
            // One list of DNS addresses serves both protocols: the contract binds them alike.
            let binds = dcos_ports::bind_addrs(UNIT, NodeRole::parse(role).unwrap(), IP).unwrap();
            assert_eq!(binds.addrs(Protocol::Tcp, DNS_PORT), Ok(dns.clone()));
            assert_eq!(binds.addrs(Protocol::Udp, DNS_PORT), Ok(dns));
        }
        // A node on loopback binds the resolver once.
        let c = Config::dcos(LO, "master+agent", vec![], vec![]);
        assert_eq!(c.dns_listen, vec![SocketAddr::new(LO, 53)]);
    }

    #[test]
    fn the_masters_ports_are_where_the_contract_binds_them_on_a_master() {
        let ports = MasterPorts::default();
        let master = |unit| dcos_ports::bind_addrs(unit, NodeRole::Master, IP).unwrap();
        let at = |port| Ok(SocketAddr::new(IP, port));
        assert_eq!(
            master("dcos-mesos-master.service").connect_tcp(ports.mesos),
            at(5050)
        );
        let mesos_dns = master(dcos_mesos_dns::UNIT);
        assert_eq!(mesos_dns.udp(ports.mesos_dns), at(61053));
        assert_eq!(mesos_dns.connect_tcp(ports.mesos_dns), at(61053));
        assert_eq!(master(UNIT).connect_tcp(ports.epmd), at(61420));
    }
}
