//! What Admin Router must know of the cluster to route: the leading Mesos master, the agents
//! (by id), the frameworks, and the Marathon apps that are services. The Mesos side comes from
//! the one follower of the leading master's state ([`dcos_mesos_api::follow`]), kept current
//! by the master's event stream, and is derived again only when a new state arrives; Marathon's
//! `/v2/apps` is cached for [`FRESH`]. A miss (an agent id or a service not known) reads again
//! before answering 404, but never more often than every [`REREAD`] and never more often than
//! the follower reads on changes, so unknown names cannot turn requests into reads.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use dcos_mesos_api::follow::{self, Follower};
use serde_json::Value;
use tokio::sync::Mutex;

/// The most leading segments of a `/service/…` path tried as a service's name.
pub const MAX_SERVICE_SEGMENTS: usize = 16;
/// How long a reading of Marathon's apps is used.
pub const FRESH: Duration = Duration::from_secs(2);
/// The least age of a reading that a miss may replace.
pub const REREAD: Duration = Duration::from_millis(250);
/// How long a request waits for the first reading of the Mesos state, or for a newer one
/// after a miss.
pub const WAIT: Duration = Duration::from_secs(5);
/// The longest time between two reads of the Mesos state, and how long a reading outlives
/// the last master that answered (the event stream keeps it current in between).
pub const REFRESH: Duration = Duration::from_secs(30);

/// One value read from elsewhere, with when it was read.
struct Cached<T> {
    slot: Mutex<Option<(Instant, Arc<T>)>>,
}

impl<T> Cached<T> {
    fn new() -> Cached<T> {
        Cached {
            slot: Mutex::new(None),
        }
    }

    /// The value, read again with `load` if older than [`FRESH`] (or [`REREAD`] when
    /// `missed`). Readers wait for one read rather than each making their own.
    async fn get<F>(&self, missed: bool, load: F) -> anyhow::Result<Arc<T>>
    where
        F: std::future::Future<Output = anyhow::Result<T>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some((at, value)) = slot.as_ref() {
            if at.elapsed() < if missed { REREAD } else { FRESH } {
                return Ok(value.clone());
            }
        }
        let value = Arc::new(load.await?);
        *slot = Some((Instant::now(), value.clone()));
        Ok(value)
    }
}

/// An agent as the master knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    /// Its Mesos endpoint (`ip:5051`).
    pub addr: SocketAddr,
}

/// A service's endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// `http` or `https`.
    pub scheme: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Whether the service's own prefix is stripped (DCOS_SERVICE_REWRITE_REQUEST_URLS).
    pub rewrite: bool,
}

/// One reading of the Mesos state.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The leading master (`ip:5050`).
    pub leader: Option<SocketAddr>,
    /// Agents by id.
    pub agents: HashMap<String, Agent>,
    /// Frameworks' web UIs by framework name (empty: the framework has none, ask Mesos-DNS).
    pub webuis: HashMap<String, String>,
    /// Every address Admin Router may proxy a service to: the masters and agents (whose
    /// addresses the master checked against their connections) and the container addresses
    /// of tasks the master placed. A framework's `webui_url` or a record elsewhere cannot
    /// point the router at any other host.
    pub cluster_ips: HashSet<IpAddr>,
    /// Which of the follower's readings this is, and when it was read.
    reading: Option<(u64, Instant)>,
}

fn pid_addr(pid: &str) -> Option<SocketAddr> {
    pid.split_once('@')?.1.parse().ok()
}

impl Snapshot {
    /// The records Admin Router routes by, from one reading.
    fn from_reading(reading: &follow::Snapshot) -> Snapshot {
        let state = &*reading.state;
        let agents: HashMap<String, Agent> = state["slaves"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| {
                let id = a["id"].as_str()?.to_string();
                Some((
                    id,
                    Agent {
                        addr: pid_addr(a["pid"].as_str()?)?,
                    },
                ))
            })
            .collect();
        let webuis = state["frameworks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| {
                let url = f["webui_url"].as_str()?;
                Some((f["name"].as_str()?.to_string(), url.to_string()))
            })
            .collect();
        let leader = state["leader"].as_str().and_then(pid_addr);
        let cluster_ips = task_ips(state)
            .chain(agents.values().map(|a| a.addr.ip()))
            .chain(leader.map(|l| l.ip()))
            .collect();
        Snapshot {
            leader,
            agents,
            webuis,
            cluster_ips,
            reading: Some((reading.seq, reading.read_at.into_std())),
        }
    }

    /// Whether a service at `addr` is a cluster node or a task's container (see
    /// [`Snapshot::cluster_ips`]); `nodes` are the ones configured (the masters and this
    /// router's own node). The Mesos master's and agent's own ports are never a service:
    /// they carry agent registration and the executor API, which the router refuses.
    pub fn allows(&self, addr: &SocketAddr, nodes: &[IpAddr]) -> bool {
        !MESOS_PORTS.contains(addr.port())
            && (self.cluster_ips.contains(&addr.ip()) || nodes.contains(&addr.ip()))
    }
}

/// The ports of the Mesos master and agent units, from the port contract (built once).
static MESOS_PORTS: std::sync::LazyLock<dcos_ports::RangeSet> =
    std::sync::LazyLock::new(mesos_ports);

fn mesos_ports() -> dcos_ports::RangeSet {
    use dcos_ports::contract::{rows_of_unit, NodeRole};
    rows_of_unit(NodeRole::Master, "dcos-mesos-master.service")
        .chain(rows_of_unit(NodeRole::Agent, "dcos-mesos-slave.service"))
        .fold(dcos_ports::RangeSet::new(), |acc, r| acc.union(&r.ports()))
}

/// Whether a task's reported address can be a container's: unicast and not this host's
/// (loopback), link-local (cloud metadata services) or unspecified, whatever an executor
/// put in its status.
fn container_address(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unicast_link_local()
                || v6.to_ipv4_mapped().is_some())
        }
    }
}

/// The container addresses in the latest status of each task in a Mesos state.
fn task_ips(state: &Value) -> impl Iterator<Item = IpAddr> + '_ {
    state["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|f| f["tasks"].as_array().into_iter().flatten())
        .filter_map(|t| t["statuses"].as_array()?.last())
        .flat_map(|s| {
            s.pointer("/container_status/network_infos")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .flat_map(|n| n["ip_addresses"].as_array().into_iter().flatten())
        .filter_map(|a| a["ip_address"].as_str()?.parse().ok())
        .filter(container_address)
}

/// Follows the leading master's state and reads Marathon's apps.
pub struct Discovery {
    client: reqwest::Client,
    /// Strict security: the router's service account's tokens for Marathon and the masters.
    token: Option<Arc<dcos_iam::client::TokenSource>>,
    masters: Vec<SocketAddr>,
    /// The masters' and this node's addresses: always cluster nodes.
    nodes: Vec<IpAddr>,
    marathon: SocketAddr,
    mesos_dns: SocketAddr,
    /// The follower of the leading master, started on first use (it runs on the runtime).
    follower: OnceLock<Follower>,
    /// The records of the latest reading routed by.
    mesos: std::sync::Mutex<Arc<Snapshot>>,
    services: Cached<HashMap<String, Service>>,
}

impl Discovery {
    /// Discovery on the node at `node_ip` through `masters` (`ip:5050`), the Marathon at
    /// `marathon` and the Mesos-DNS API at `mesos_dns`.
    pub fn new(
        node_ip: IpAddr,
        masters: Vec<SocketAddr>,
        marathon: SocketAddr,
        mesos_dns: SocketAddr,
        login: Option<dcos_iam::client::ServiceLogin>,
    ) -> Discovery {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        let nodes = masters.iter().map(|m| m.ip()).chain([node_ip]).collect();
        Discovery {
            client,
            token: login.map(|l| Arc::new(dcos_iam::client::TokenSource::new(l))),
            masters,
            nodes,
            marathon,
            mesos_dns,
            follower: OnceLock::new(),
            mesos: std::sync::Mutex::default(),
            services: Cached::new(),
        }
    }

    async fn get(&self, url: String) -> anyhow::Result<Value> {
        let mut req = self.client.get(url);
        if let Some(source) = &self.token {
            let token = source.token().await.map_err(anyhow::Error::msg)?;
            req = req.header(reqwest::header::AUTHORIZATION, format!("token={token}"));
        }
        Ok(req.send().await?.error_for_status()?.json().await?)
    }

    fn follower(&self) -> &Follower {
        self.follower.get_or_init(|| {
            let credentials = self.token.clone().map(|source| {
                follow::Credentials(Arc::new(move || {
                    let source = source.clone();
                    Box::pin(async move { source.token().await })
                }))
            });
            Follower::spawn(follow::Config {
                credentials,
                ..follow::Config::state(self.masters.clone(), REFRESH)
            })
        })
    }

    /// The records of `reading`, derived once per reading.
    fn records(&self, reading: &follow::Snapshot) -> Arc<Snapshot> {
        let mut latest = self.mesos.lock().unwrap_or_else(|p| p.into_inner());
        if latest.reading.is_some_and(|(seq, _)| seq == reading.seq) {
            return latest.clone();
        }
        let records = Arc::new(Snapshot::from_reading(reading));
        *latest = records.clone();
        records
    }

    /// The cluster as the follower last read it (its first reading, while it starts).
    pub async fn snapshot(&self) -> anyhow::Result<Arc<Snapshot>> {
        let reading =
            self.follower().ready(WAIT).await.ok_or_else(|| {
                anyhow::anyhow!("no Mesos master answers (of {:?})", self.masters)
            })?;
        Ok(self.records(&reading))
    }

    /// After a miss in `seen`: a newer reading, unless `seen` is younger than [`REREAD`].
    async fn after_miss(&self, seen: &Snapshot) -> Option<Arc<Snapshot>> {
        if seen.reading.is_some_and(|(_, at)| at.elapsed() < REREAD) {
            return None;
        }
        let reading = self.follower().reread(WAIT).await?;
        Some(self.records(&reading))
    }

    /// The agent with `id`, reading again once if it is not known.
    pub async fn agent(&self, id: &str) -> anyhow::Result<Option<Agent>> {
        let snap = self.snapshot().await?;
        if let Some(a) = snap.agents.get(id) {
            return Ok(Some(a.clone()));
        }
        Ok(self
            .after_miss(&snap)
            .await
            .and_then(|s| s.agents.get(id).cloned()))
    }

    /// The Marathon apps that are services: `DCOS_SERVICE_NAME` (or the app id) to where
    /// their first running task listens.
    async fn read_services(&self) -> anyhow::Result<HashMap<String, Service>> {
        let apps = self
            .get(format!("http://{}/v2/apps?embed=apps.tasks", self.marathon))
            .await?;
        let mut services = HashMap::new();
        for app in apps["apps"].as_array().into_iter().flatten() {
            let labels = &app["labels"];
            let label = |k: &str| labels[k].as_str();
            let Some(name) = label("DCOS_SERVICE_NAME") else {
                continue;
            };
            let index: usize = label("DCOS_SERVICE_PORT_INDEX")
                .and_then(|i| i.parse().ok())
                .unwrap_or(0);
            let Some(task) = app["tasks"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["state"] == "TASK_RUNNING")
            else {
                continue;
            };
            let Some(addr) = task_endpoint(app, task, index) else {
                continue;
            };
            services.insert(
                name.trim_matches('/').to_string(),
                Service {
                    scheme: label("DCOS_SERVICE_SCHEME").unwrap_or("http").to_string(),
                    addr,
                    rewrite: label("DCOS_SERVICE_REWRITE_REQUEST_URLS") != Some("false"),
                },
            );
        }
        Ok(services)
    }

    /// The service a `/service/…` path names, and how many of its segments the name takes.
    /// Reads again once if nothing matches in the latest readings.
    pub async fn service(&self, segments: &[String]) -> anyhow::Result<Option<(Service, usize)>> {
        // A service name is a Marathon group path: a few segments. Trying every prefix of
        // a path of thousands would cost the square of its length.
        let segments = &segments[..segments.len().min(MAX_SERVICE_SEGMENTS)];
        let snap = self.snapshot().await?;
        if let Some(found) = self.find_service(segments, false, &snap).await? {
            return Ok(Some(found));
        }
        let snap = self.after_miss(&snap).await.unwrap_or(snap);
        self.find_service(segments, true, &snap).await
    }

    /// The longest leading run of segments that is a Marathon service (except for Marathon
    /// and Metronome themselves), else a framework with a web UI in `snap`.
    async fn find_service(
        &self,
        segments: &[String],
        missed: bool,
        snap: &Snapshot,
    ) -> anyhow::Result<Option<(Service, usize)>> {
        let services = self.services.get(missed, self.read_services()).await?;
        for n in (1..=segments.len()).rev() {
            let name = segments[..n].join("/");
            let framework_only = name == "marathon" || name == "metronome";
            let allowed = |s: &Service| snap.allows(&s.addr, &self.nodes);
            if let Some(s) = services.get(&name).filter(|_| !framework_only) {
                if allowed(s) {
                    return Ok(Some((s.clone(), n)));
                }
                tracing::warn!(service = %name, addr = %s.addr, "refusing to proxy a service outside the cluster");
            }
            // Frameworks go by the plain name or the normalised one (`app.nest1.nest2`).
            let normalised: Vec<&str> = segments[..n].iter().rev().map(String::as_str).collect();
            let normalised = normalised.join(".");
            let webui = snap
                .webuis
                .get(&name)
                .or_else(|| snap.webuis.get(&normalised));
            let found = match webui.map(String::as_str) {
                None => None,
                Some("") => self.mesos_dns_service(&normalised).await?,
                Some(url) => webui_service(url),
            };
            if let Some(service) = found {
                if allowed(&service) {
                    return Ok(Some((service, n)));
                }
                tracing::warn!(service = %name, addr = %service.addr, "refusing to proxy a framework web UI outside the cluster");
            }
        }
        Ok(None)
    }

    /// The leading Marathon's IP, from Marathon's `/v2/leader`.
    pub async fn marathon_leader(&self) -> anyhow::Result<Option<IpAddr>> {
        let v = self
            .get(format!("http://{}/v2/leader", self.marathon))
            .await?;
        Ok(v["leader"]
            .as_str()
            .and_then(|l| l.rsplit_once(':'))
            .and_then(|(ip, _)| ip.parse().ok()))
    }

    /// A framework without a web UI, found through Mesos-DNS' record of its scheduler task
    /// (`_<name>._tcp.marathon.mesos`).
    async fn mesos_dns_service(&self, normalised: &str) -> anyhow::Result<Option<Service>> {
        let url = format!(
            "http://{}/v1/services/_{normalised}._tcp.marathon.mesos",
            self.mesos_dns
        );
        let records = self.get(url).await?;
        let first = &records[0];
        let ip = first["ip"].as_str().filter(|ip| !ip.is_empty());
        let port = first["port"]
            .as_str()
            .and_then(|p| p.parse().ok())
            .or_else(|| first["port"].as_u64().and_then(|p| u16::try_from(p).ok()));
        Ok(match (ip.and_then(|ip| ip.parse().ok()), port) {
            (Some(ip), Some(port)) => Some(Service {
                scheme: "http".into(),
                addr: SocketAddr::new(ip, port),
                rewrite: true,
            }),
            _ => None,
        })
    }
}

/// Where a Marathon task listens for port `index`: its container address on a container
/// network, its agent's otherwise.
fn task_endpoint(app: &Value, task: &Value, index: usize) -> Option<SocketAddr> {
    let container_port = app
        .pointer("/container/portMappings")
        .or_else(|| app.pointer("/container/docker/portMappings"))
        .and_then(|m| m.get(index))
        .and_then(|m| m["containerPort"].as_u64());
    let host_port = task["ports"].get(index).and_then(Value::as_u64);
    let host: Option<IpAddr> = task["host"].as_str().and_then(|h| h.parse().ok());
    match (host_port, host) {
        (Some(port), Some(ip)) => Some(SocketAddr::new(ip, u16::try_from(port).ok()?)),
        _ => {
            let ip: IpAddr = task["ipAddresses"][0]["ipAddress"].as_str()?.parse().ok()?;
            Some(SocketAddr::new(ip, u16::try_from(container_port?).ok()?))
        }
    }
}

/// A framework's `webui_url` (`http://10.0.0.1:8080/`) as a service.
fn webui_service(url: &str) -> Option<Service> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let addr: SocketAddr = authority
        .parse()
        .ok()
        .or_else(|| format!("{authority}:80").parse().ok())?;
    Some(Service {
        scheme: scheme.to_string(),
        addr,
        rewrite: true,
    })
}
