//! The units of a node: which a role runs, in what order, and how `dcos unit run` runs one.
//!
//! Unit names are the systemd units of the port contract. A unit whose component is not
//! built yet is left out of its role's set (and `dcos unit list` says so): no contract port
//! is ever bound by a placeholder.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use dcos_ports::{
    bind_addrs, rows_of_unit, units_for, Bind, BindError, NodeRole, PortRow, Protocol,
};
use tokio_util::sync::CancellationToken;

use crate::config::NodeConfig;

/// Start order: storage and coordination first, then the master, the frameworks and
/// services that read it, then the node-local services, then the front doors.
const START_ORDER: &[&str] = &[
    "dcos-pkgpanda-api.service",
    "dcos-exhibitor.service",
    "dcos-bouncer.service",
    "dcos-ca.service",
    "dcos-mesos-master.service",
    "dcos-mesos-dns.service",
    "dcos-registry.service",
    "dcos-marathon.service",
    "dcos-metronome.service",
    "dcos-cosmos.service",
    "dcos-history-service.service",
    "dcos-net.service",
    "dcos-mesos-slave.service",
    "dcos-diagnostics.service",
    "dcos-log-master.service",
    "dcos-log-agent.service",
    "dcos-rexray.service",
    "dcos-metrics-master.service",
    "dcos-metrics-agent.service",
    "dcos-adminrouter.service",
    "dcos-adminrouter-agent",
];

/// The units whose component dcos-rs has built.
const BUILT: &[&str] = &[
    "dcos-pkgpanda-api.service",
    "dcos-exhibitor.service",
    "dcos-bouncer.service",
    "dcos-ca.service",
    "dcos-registry.service",
    "dcos-mesos-master.service",
    "dcos-mesos-dns.service",
    "dcos-marathon.service",
    "dcos-metronome.service",
    "dcos-cosmos.service",
    "dcos-history-service.service",
    "dcos-net.service",
    "dcos-mesos-slave.service",
    "dcos-diagnostics.service",
    "dcos-log-master.service",
    "dcos-log-agent.service",
    "dcos-metrics-master.service",
    "dcos-metrics-agent.service",
    "dcos-adminrouter.service",
    "dcos-adminrouter-agent",
];

/// One unit of a role.
#[derive(Clone, Debug)]
pub struct Unit {
    /// The systemd unit name.
    pub name: &'static str,
    /// Whether its component is built (only built units are started).
    pub built: bool,
    /// The role of the node it runs on.
    pub role: NodeRole,
    /// The contract rows it binds on this role.
    pub rows: Vec<&'static PortRow>,
}

impl Unit {
    /// Where its listeners are on a node at `ip`: its rows' addresses from
    /// [`dcos_ports::bind_addrs`] (the Enterprise rows dcos-rs does not serve left out).
    pub fn binds(&self, ip: IpAddr) -> Result<Vec<Bind>, BindError> {
        Ok(bind_addrs(self.name, self.role, ip)?
            .iter()
            .filter(|b| self.rows.contains(&b.row))
            .copied()
            .collect())
    }

    /// The TCP addresses that accept connections once the unit is ready.
    pub fn tcp_addrs(&self, ip: IpAddr) -> Vec<SocketAddr> {
        // A unit of `role_units` is always one of its role's contract units.
        self.binds(ip)
            .unwrap_or_default()
            .iter()
            .filter(|b| b.protocol() == Protocol::Tcp)
            // Only the ensemble's leader listens on ZooKeeper's quorum port.
            .filter(|b| b.port() != dcos_exhibitor::zookeeper::QUORUM_PORT)
            .map(Bind::connect_addr)
            .collect()
    }
}

/// The unix sockets a unit serves on a node of `role` whose run dir is `run_dir`: what
/// readiness and health probe for the units that have no TCP port there.
pub fn unit_sockets(name: &str, role: NodeRole, run_dir: &std::path::Path) -> Vec<PathBuf> {
    let file = match name {
        "dcos-pkgpanda-api.service" => "pkgpanda-api.sock",
        "dcos-diagnostics.service" if role.is_agent() => "dcos-diagnostics.sock",
        // On a master-and-agent node the agent's unit serves the log socket.
        "dcos-log-agent.service" => "dcos-log.sock",
        "dcos-log-master.service" if !role.is_agent() => "dcos-log.sock",
        "dcos-metrics-master.service" => "dcos-metrics-master.sock",
        "dcos-metrics-agent.service" => "dcos-metrics-agent.sock",
        _ => return Vec::new(),
    };
    vec![run_dir.join(file)]
}

/// Every OSS unit of a role in start order, built or not.
pub fn role_units(role: NodeRole) -> Vec<Unit> {
    let mut names: Vec<&'static str> = units_for(role)
        .into_iter()
        .filter(|u| rows_of_unit(role, u).any(|r| r.served()))
        .collect();
    names.sort_by_key(|n| {
        START_ORDER
            .iter()
            .position(|o| o == n)
            .unwrap_or(usize::MAX)
    });
    names
        .into_iter()
        .map(|name| Unit {
            name,
            built: BUILT.contains(&name),
            role,
            rows: rows_of_unit(role, name)
                .filter(|r| r.served())
                // The metrics row names both metrics units; a master-and-agent node binds
                // 61091 once, in the agent's unit.
                .filter(|r| {
                    !(role == NodeRole::MasterAgent
                        && name == "dcos-metrics-master.service"
                        && r.ports().contains(dcos_metrics::PROMETHEUS_PORT))
                })
                .collect(),
        })
        .collect()
}

/// The units a node of `role` starts: the built ones, in start order.
pub fn runnable_units(role: NodeRole) -> Vec<Unit> {
    role_units(role).into_iter().filter(|u| u.built).collect()
}

/// A unit that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    /// No such unit on this role.
    #[error(
        "unit {unit:?} is not a unit of a {role} node; `dcos unit list --role {role}` lists them"
    )]
    Unknown {
        /// The name given.
        unit: String,
        /// The role.
        role: NodeRole,
    },
    /// The unit's component is not built yet.
    #[error("unit {unit} is not built yet in dcos-rs")]
    NotBuilt {
        /// The unit.
        unit: String,
    },
    /// The component failed.
    #[error("unit {unit} failed")]
    Failed {
        /// The unit.
        unit: String,
        /// The cause.
        #[source]
        source: anyhow::Error,
    },
}

/// Paths a node uses under its work dir.
pub fn run_dir(config: &NodeConfig) -> PathBuf {
    run_dir_of(&config.work_dir)
}

/// The run dir (status file, sockets) under a work dir.
pub fn run_dir_of(work_dir: &std::path::Path) -> PathBuf {
    work_dir.join("run")
}

/// Runs one unit in the foreground until `shutdown` is cancelled.
pub async fn run_unit(
    name: &str,
    role: NodeRole,
    config: &NodeConfig,
    shutdown: CancellationToken,
) -> Result<(), UnitError> {
    let unit = role_units(role)
        .into_iter()
        .find(|u| u.name == name)
        .ok_or_else(|| UnitError::Unknown {
            unit: name.into(),
            role,
        })?;
    if !unit.built {
        return Err(UnitError::NotBuilt { unit: name.into() });
    }
    let failed = |source: anyhow::Error| UnitError::Failed {
        unit: name.into(),
        source,
    };
    let node_ip = || config.node_ip().map_err(|e| failed(e.into()));
    // Where this unit listens on this node: the port contract's addresses for it. Mesos-DNS,
    // dcos-net and Admin Router take theirs from it in their `Config::dcos`.
    let binds = || {
        let ip = node_ip()?;
        bind_addrs(unit.name, role, ip)
            .map(|binds| (ip, binds))
            .map_err(|e| failed(e.into()))
    };
    // One of those addresses (a port the contract does not give the unit fails it).
    let at = |addr: Result<SocketAddr, BindError>| addr.map_err(|e| failed(e.into()));
    let masters = || config.master_addrs().map_err(|e| failed(e.into()));
    // Strict security: frameworks authenticate to the master with a token of this master's IAM.
    let strict = config.security == dcos_iam::api::SecurityMode::Strict;
    // A component's service account's tokens for the masters (strict security only: the
    // secrets exist only then).
    let credentials = |component: &str| {
        dcos_iam::client::TokenSource::function(
            config
                .service_account_secrets
                .get(component)
                .map(PathBuf::as_path),
        )
        .map(|f| f.map(dcos_mesos_dns::follow::Credentials))
        .map_err(|e| failed(anyhow::anyhow!(e)))
    };
    // Strict security on agents: tokens checked against the keys the first master's Admin
    // Router publishes (the IAM is on the masters' loopback).
    let master_router = || {
        let first = config
            .master_list
            .first()
            .copied()
            .ok_or_else(|| failed(anyhow::anyhow!("no master in master_list")))?;
        // The router binds every address of its master: reached at the master's IP.
        let port = at(
            bind_addrs("dcos-adminrouter.service", NodeRole::Master, first)
                .and_then(|b| b.connect_tcp(80)),
        )?
        .port();
        Ok::<_, UnitError>(SocketAddr::new(first, port))
    };

    let iam = || {
        let ip = node_ip()?;
        at(bind_addrs("dcos-bouncer.service", NodeRole::Master, ip)
            .and_then(|b| b.connect_tcp(dcos_iam::PORT)))
    };
    match unit.name {
        "dcos-pkgpanda-api.service" => crate::pkgpanda::serve(config, shutdown)
            .await
            .map_err(failed),
        "dcos-cosmos.service" => {
            let (ip, binds) = binds()?;
            // This master's Marathon, which sends writes to the leading one.
            let marathon = at(bind_addrs("dcos-marathon.service", NodeRole::Master, ip)
                .and_then(|b| b.connect_tcp(8080)))?;
            dcos_cosmos::serve(
                dcos_cosmos::Config {
                    listen: at(binds.tcp(dcos_cosmos::API_PORT))?,
                    admin: Some(at(binds.tcp(dcos_cosmos::ADMIN_PORT))?),
                    marathon: format!("http://{marathon}"),
                    store: config.store_location("cosmos/cosmos.redb"),
                },
                shutdown,
            )
            .await
            .map_err(|e| failed(e.into()))
        }
        "dcos-diagnostics.service" => {
            let (ip, binds) = binds()?;
            let run = run_dir(config);
            let logs_dir = config.work_dir.join("logs");
            // The node's own Mesos id, looked up in the background (the master or agent on
            // this node may start after this unit).
            let mesos_id = crate::health::MesosId::default();
            let (own, component) = if role.is_master() {
                (
                    at(
                        bind_addrs("dcos-mesos-master.service", NodeRole::Master, ip)
                            .and_then(|b| b.connect_tcp(5050)),
                    )?,
                    "diagnostics",
                )
            } else {
                (
                    at(bind_addrs("dcos-mesos-slave.service", role, ip)
                        .and_then(|b| b.connect_tcp(5051)))?,
                    "agent",
                )
            };
            // One token source for the component's account, shared by its callers.
            let own_credentials = credentials(component)?;
            tokio::spawn(crate::health::learn_mesos_id(
                own,
                own_credentials.clone(),
                mesos_id.clone(),
                shutdown.clone(),
            ));
            let (listen, pull) = if role.is_master() {
                let mut mesos = dcos_mesos_api::follow::Config::summary(
                    masters()?,
                    crate::health::PULL_INTERVAL,
                );
                mesos.credentials = own_credentials;
                let pull = dcos_diagnostics::pull::Pull {
                    masters: config.master_list.clone(),
                    master_port: dcos_diagnostics::MASTER_PORT,
                    agent_router_port: 61001,
                    mesos,
                    interval: crate::health::PULL_INTERVAL,
                    bundles_dir: config.work_dir.join("diagnostics").join("bundles"),
                };
                (
                    dcos_diagnostics::Listen::Tcp(at(binds.tcp(dcos_diagnostics::MASTER_PORT))?),
                    Some(pull),
                )
            } else {
                (
                    dcos_diagnostics::Listen::Unix(run.join("dcos-diagnostics.sock")),
                    None,
                )
            };
            let node_role = if role.is_master() {
                "master"
            } else {
                role.as_str()
            };
            dcos_diagnostics::serve(
                dcos_diagnostics::Config {
                    listen,
                    ip,
                    role: node_role.into(),
                    dcos_version: dcos_adminrouter::pages::DCOS_VERSION.into(),
                    local: crate::health::reporter(
                        role,
                        ip,
                        run.clone(),
                        logs_dir.clone(),
                        mesos_id,
                    ),
                    logs_dir,
                    pull,
                    // A master that is also an agent: its agent router asks the socket.
                    also_socket: (role.is_master() && role.is_agent())
                        .then(|| run.join("dcos-diagnostics.sock")),
                    verify_tokens: if strict { Some(iam()?) } else { None },
                },
                shutdown,
            )
            .await
            .map_err(|e| failed(e.into()))
        }
        "dcos-log-master.service" | "dcos-log-agent.service" => {
            // One socket a node: on a master-and-agent node the agent's unit serves both.
            if unit.name == "dcos-log-master.service" && role.is_agent() {
                tracing::info!("dcos-log-agent.service serves this node's logs");
                shutdown.cancelled().await;
                return Ok(());
            }
            let ip = node_ip()?;
            let mut log = dcos_log::Config::new(&run_dir(config), config.work_dir.join("logs"));
            log.hostname = Some(ip.to_string());
            if role.is_agent() {
                log.sandboxes = Some(config.agent_work_dir());
            }
            if role.is_master() {
                let master = at(
                    bind_addrs("dcos-mesos-master.service", NodeRole::Master, ip)
                        .and_then(|b| b.connect_tcp(5050)),
                )?;
                log.mesos_state = Some(format!("http://{master}/master/state"));
            }
            dcos_log::serve(log, shutdown)
                .await
                .map_err(|e| failed(e.into()))
        }
        "dcos-metrics-master.service" | "dcos-metrics-agent.service" => {
            let (ip, binds) = binds()?;
            let run = run_dir(config);
            let agent_unit = unit.name == "dcos-metrics-agent.service";
            let http = |unit: &str, role: NodeRole, port: u16| {
                at(bind_addrs(unit, role, ip).and_then(|b| b.connect_tcp(port)))
                    .map(|a| format!("http://{a}"))
            };
            let mut metrics = if agent_unit {
                let mut m = dcos_metrics::Config::new(
                    dcos_metrics::Role::Agent,
                    run.join("dcos-metrics-agent.sock"),
                    ip,
                );
                m.agent = Some(http("dcos-mesos-slave.service", role, 5051)?);
                m.statsd = Some(at(binds
                    .get(dcos_ports::Protocol::Udp, dcos_metrics::STATSD_PORT)
                    .map(|b| b.addr))?);
                m
            } else {
                dcos_metrics::Config::new(
                    dcos_metrics::Role::Master,
                    run.join("dcos-metrics-master.sock"),
                    ip,
                )
            };
            if role.is_master() {
                metrics.master = Some(http("dcos-mesos-master.service", NodeRole::Master, 5050)?);
                metrics.marathon = Some(http("dcos-marathon.service", NodeRole::Master, 8080)?);
            }
            // One Prometheus port a node: on a master-and-agent node the agent's unit,
            // which reads the master and Marathon too, serves it.
            if agent_unit || !role.is_agent() {
                metrics.prometheus = Some(at(binds.tcp(dcos_metrics::PROMETHEUS_PORT))?);
            }
            metrics.cluster_id = config.cluster_id.clone().unwrap_or_default();
            metrics.login = dcos_iam::client::ServiceLogin::from_optional_file(
                config
                    .service_account_secrets
                    .get(if agent_unit { "agent" } else { "metrics" })
                    .map(PathBuf::as_path),
            )
            .map_err(|e| failed(anyhow::anyhow!(e)))?;
            dcos_metrics::serve(metrics, shutdown)
                .await
                .map_err(|e| failed(e.into()))
        }
        "dcos-bouncer.service" => {
            let (_, binds) = binds()?;
            let superuser = match (&config.superuser_username, &config.superuser_password_hash) {
                (Some(uid), Some(hash)) => Some((uid.clone(), hash.clone())),
                _ => None,
            };
            let bootstrap = dcos_iam::Bootstrap {
                superuser,
                service_accounts: config
                    .service_account_keys
                    .iter()
                    .map(|(uid, key)| (uid.clone(), key.clone()))
                    .collect(),
            };
            dcos_iam::serve(
                dcos_iam::Config {
                    listen: at(binds.tcp(dcos_iam::PORT))?,
                    store: config.store_location("iam/iam.redb"),
                    bootstrap: Some(bootstrap),
                    seal_secret: config.seal_secret().map_err(|e| failed(e.into()))?,
                    require_token: config.security.enabled(),
                    oidc: config.oidc_providers.clone(),
                },
                shutdown,
            )
            .await
            .map_err(|e| failed(e.into()))
        }
        "dcos-ca.service" => {
            let Some(ca_dir) = config.ca_dir.clone() else {
                // A node installed alone has no cluster CA to serve: bind nothing and wait,
                // so systemd does not restart it in a loop.
                tracing::info!("no cluster CA on this node (ca_dir): the CA's API is not served");
                shutdown.cancelled().await;
                return Ok(());
            };
            let (_, binds) = binds()?;
            dcos_ca::serve(
                dcos_ca::Config {
                    listen: at(binds.tcp(dcos_ca::PORT))?,
                    ca_dir,
                },
                shutdown,
            )
            .await
            .map_err(|e| failed(e.into()))
        }
        "dcos-history-service.service" => {
            let (_, binds) = binds()?;
            dcos_history::serve(
                dcos_history::Config {
                    listen: at(binds.tcp(15055))?,
                    masters: masters()?,
                    buffer_dir: config.work_dir.join("history"),
                    fetch_period: dcos_history::FETCH_PERIOD,
                    credentials: credentials("history")?,
                },
                shutdown,
            )
            .await
            .map_err(|e| failed(e.into()))
        }
        "dcos-exhibitor.service" => {
            let (ip, binds) = binds()?;
            let mut exhibitor = dcos_exhibitor::Config::dcos(
                ip,
                &config.master_list,
                config.work_dir.join("exhibitor"),
            )
            .map_err(|e| failed(e.into()))?;
            exhibitor.http = at(binds.tcp(dcos_exhibitor::HTTP_PORT))?;
            exhibitor.server.client = at(binds.tcp(dcos_exhibitor::zookeeper::CLIENT_PORT))?;
            dcos_exhibitor::serve(exhibitor, shutdown)
                .await
                .map_err(|e| failed(e.into()))
        }
        "dcos-mesos-master.service" => {
            let (_, binds) = binds()?;
            dcos_mesos::master::serve(
                dcos_mesos::master::Config {
                    listen: at(binds.tcp(5050))?,
                    cluster: config.cluster_name.clone(),
                    allocation_interval: Duration::from_secs_f64(
                        config.mesos.allocation_interval_secs,
                    ),
                    agent_ping_timeout: Duration::from_secs_f64(
                        config.mesos.agent_ping_timeout_secs,
                    ),
                    weights: Default::default(),
                    store: config.store_location("mesos-master/registry.redb"),
                    agent_reregister_timeout: dcos_mesos::master::AGENT_REREGISTER_TIMEOUT,
                    authenticate: if strict { Some(iam()?) } else { None },
                },
                shutdown,
            )
            .await
            .map_err(|e| failed(e.into()))
        }
        "dcos-mesos-dns.service" => {
            let ip = node_ip()?;
            // The upstream resolvers' standard DNS port (they are outside the cluster).
            let resolvers = config
                .resolvers
                .iter()
                .map(|r| SocketAddr::new(*r, 53))
                .collect();
            let mut dns = dcos_mesos_dns::Config::dcos(ip, masters()?, resolvers);
            dns.credentials = credentials("mesos-dns")?;
            dcos_mesos_dns::serve(dns, shutdown)
                .await
                .map_err(|e| failed(e.into()))
        }
        "dcos-adminrouter.service" | "dcos-adminrouter-agent" => {
            use dcos_adminrouter::routes::Role;
            let ip = node_ip()?;
            let ar_role = if unit.name == "dcos-adminrouter.service" {
                Role::Master
            } else {
                Role::Agent
            };
            let mut c = dcos_adminrouter::Config::dcos(
                ar_role,
                ip,
                config.master_list.clone(),
                run_dir(config),
            );
            c.fixed.insert(
                dcos_adminrouter::routes::Fixed::Pkgpanda,
                dcos_adminrouter::proxy::Upstream::Unix(crate::pkgpanda::socket_path(&run_dir(
                    config,
                ))),
            );
            c.cert_dir = config.work_dir.join("adminrouter");
            c.ca_dir = config.ca_dir.clone();
            c.cluster_id = config.cluster_id.clone().unwrap_or_default();
            c.units = runnable_units(role).iter().map(|u| u.name).collect();
            c.security = config.security;
            if strict && ar_role == Role::Agent {
                c.fixed.insert(
                    dcos_adminrouter::routes::Fixed::Iam,
                    dcos_adminrouter::proxy::Upstream::Tcp(master_router()?),
                );
            }
            c.login = dcos_iam::client::ServiceLogin::from_optional_file(
                config
                    .service_account_secrets
                    .get("adminrouter")
                    .map(PathBuf::as_path),
            )
            .map_err(|e| failed(anyhow::anyhow!(e)))?;
            dcos_adminrouter::serve(c, shutdown)
                .await
                .map_err(|e| failed(e.into()))
        }
        "dcos-net.service" => {
            let ip = node_ip()?;
            let mut net = dcos_net::Config::dcos(
                ip,
                role.as_str(),
                config.master_list.clone(),
                config.resolvers.clone(),
            );
            net.credentials = credentials("net")?;
            dcos_net::serve(net, shutdown)
                .await
                .map_err(|e| failed(e.into()))
        }
        "dcos-registry.service" => {
            if !config.registry {
                // Installed with every master's units, run only where enabled: a disabled
                // registry binds nothing and waits, so systemd does not restart it in a loop.
                tracing::info!("the image registry is not enabled on this node (registry: true)");
                shutdown.cancelled().await;
                return Ok(());
            }
            let (_, binds) = binds()?;
            dcos_registry::serve(
                dcos_registry::Config {
                    listen: at(binds.tcp(dcos_registry::PORT))?,
                    dir: config.work_dir.join("registry"),
                },
                shutdown,
            )
            .await
            .map_err(|e| failed(e.into()))
        }
        "dcos-marathon.service" => {
            let (_, binds) = binds()?;
            dcos_marathon::serve(
                dcos_marathon::Config {
                    listen: at(binds.tcp(8080))?,
                    https: Some(at(binds.tcp(8443))?),
                    libprocess: Some(at(binds.tcp(15101))?),
                    masters: masters()?,
                    work_dir: config.work_dir.join("marathon"),
                    store: config.store_location("marathon/marathon.redb"),
                    framework_name: "marathon".into(),
                    ca_dir: config.ca_dir.clone(),
                    credentials: config.service_account_secrets.get("marathon").cloned(),
                    verify_tokens: if strict { Some(iam()?) } else { None },
                },
                shutdown,
            )
            .await
            .map_err(|e| failed(e.into()))
        }
        "dcos-metronome.service" => {
            let (_, binds) = binds()?;
            dcos_metronome::serve(
                dcos_metronome::Config {
                    listen: at(binds.tcp(dcos_metronome::ports::HTTP))?,
                    https: Some(at(binds.tcp(dcos_metronome::ports::HTTPS))?),
                    libprocess: Some(at(binds.tcp(dcos_metronome::ports::LIBPROCESS))?),
                    masters: masters()?,
                    work_dir: config.work_dir.join("metronome"),
                    store: config.store_location("metronome/metronome.redb"),
                    framework_name: "metronome".into(),
                    ca_dir: config.ca_dir.clone(),
                    credentials: config.service_account_secrets.get("metronome").cloned(),
                    verify_tokens: if strict { Some(iam()?) } else { None },
                },
                shutdown,
            )
            .await
            .map_err(|e| failed(e.into()))
        }
        "dcos-mesos-slave.service" => {
            let (_, binds) = binds()?;
            let agent_dir = config.agent_work_dir();
            fs_err::create_dir_all(&agent_dir).map_err(|e| failed(e.into()))?;
            let (cpus, mem, disk) = dcos_mesos::agent::Config::host_resources(&agent_dir);
            let mut attributes = config.agent.attributes.clone();
            if role == NodeRole::AgentPublic {
                attributes.insert("public_ip".into(), "true".into());
            }
            dcos_mesos::agent::serve(
                dcos_mesos::agent::Config {
                    listen: at(binds.tcp(5051))?,
                    masters: masters()?,
                    work_dir: agent_dir,
                    resources: dcos_mesos::resources::Resources {
                        cpus: config.agent.cpus.unwrap_or(cpus),
                        mem: config.agent.mem.unwrap_or(mem),
                        disk: config.agent.disk.unwrap_or(disk),
                        gpus: config.agent.gpus.unwrap_or(0.0),
                        ports: config.task_ranges(role),
                    },
                    attributes,
                    // Each master's registry, where it listens.
                    login: dcos_iam::client::ServiceLogin::from_optional_file(
                        config
                            .service_account_secrets
                            .get("agent")
                            .map(PathBuf::as_path),
                    )
                    .map_err(|e| failed(anyhow::anyhow!(e)))?,
                    verify_tokens: if strict { Some(master_router()?) } else { None },
                    insecure_registries: config
                        .master_list
                        .iter()
                        .map(|m| {
                            let registry =
                                bind_addrs("dcos-registry.service", NodeRole::Master, *m);
                            at(registry.and_then(|r| r.connect_tcp(dcos_registry::PORT)))
                                .map(|a| a.to_string())
                        })
                        .collect::<Result<_, _>>()?,
                    ..dcos_mesos::agent::Config::default()
                },
                shutdown,
            )
            .await
            .map_err(|e| failed(e.into()))
        }
        other => Err(UnitError::NotBuilt { unit: other.into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 5));

    fn unit(role: NodeRole, name: &str) -> Unit {
        role_units(role)
            .into_iter()
            .find(|u| u.name == name)
            .unwrap()
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn units_are_reached_where_the_contract_binds_them() {
        let master = |name| unit(NodeRole::Master, name).tcp_addrs(IP);
        assert_eq!(
            master("dcos-mesos-master.service"),
            addrs(&["10.0.0.5:5050"])
        );
        assert_eq!(
            master("dcos-marathon.service"),
            addrs(&["10.0.0.5:8080", "10.0.0.5:8443", "10.0.0.5:15101"])
        );
        assert_eq!(
            master("dcos-history-service.service"),
            addrs(&["127.0.0.1:15055"])
        );
        assert_eq!(
            master("dcos-mesos-dns.service"),
            addrs(&["127.0.0.1:8123", "10.0.0.5:61053"])
        );
        // Every address: reached on loopback.
        assert_eq!(
            master("dcos-adminrouter.service"),
            addrs(&["127.0.0.1:80", "127.0.0.1:443"])
        );
        // Not the quorum port, which only the leader holds.
        assert_eq!(
            master("dcos-exhibitor.service"),
            addrs(&["10.0.0.5:2181", "10.0.0.5:3888", "10.0.0.5:8181"])
        );
        // The resolver on loopback too; not the enterprise networking API (61430).
        assert_eq!(
            master("dcos-net.service"),
            addrs(&[
                "10.0.0.5:53",
                "127.0.0.1:53",
                "10.0.0.5:61420",
                "10.0.0.5:62080",
                "10.0.0.5:62501"
            ])
        );
        let agent = |name| unit(NodeRole::Agent, name).tcp_addrs(IP);
        assert_eq!(agent("dcos-mesos-slave.service"), addrs(&["10.0.0.5:5051"]));
        assert_eq!(
            agent("dcos-adminrouter-agent"),
            addrs(&["10.0.0.5:61001", "10.0.0.5:61002"])
        );
    }

    #[test]
    fn every_runnable_unit_has_its_contract_addresses() {
        for role in [
            NodeRole::Master,
            NodeRole::Agent,
            NodeRole::AgentPublic,
            NodeRole::MasterAgent,
        ] {
            for u in runnable_units(role) {
                let binds = u.binds(IP).unwrap();
                assert!(binds.iter().all(|b| b.row.served()), "{role} {}", u.name);
                let udp: Vec<_> = binds
                    .iter()
                    .filter(|b| b.protocol() == Protocol::Udp)
                    .map(|b| b.addr)
                    .collect();
                match u.name {
                    "dcos-net.service" => assert_eq!(udp, addrs(&["10.0.0.5:53", "127.0.0.1:53"])),
                    "dcos-mesos-dns.service" => assert_eq!(udp, addrs(&["10.0.0.5:61053"])),
                    // The local StatsD collector.
                    "dcos-metrics-agent.service" => {
                        assert_eq!(udp, addrs(&["127.0.0.1:8124"]))
                    }
                    _ => assert!(udp.is_empty(), "{role} {}", u.name),
                }
            }
        }
    }

    #[test]
    fn the_masters_are_reached_at_their_ips() {
        let config = NodeConfig {
            master_list: vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()],
            ..NodeConfig::default()
        };
        assert_eq!(
            config.master_addrs().unwrap(),
            addrs(&["10.0.0.1:5050", "10.0.0.2:5050"])
        );
    }

    #[test]
    fn master_units_start_pkgpanda_first_and_admin_router_last() {
        let names: Vec<_> = role_units(NodeRole::Master)
            .iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names.first(), Some(&"dcos-pkgpanda-api.service"));
        assert_eq!(names.last(), Some(&"dcos-adminrouter.service"));
        // The Enterprise units dcos-rs serves are in, the others not.
        assert!(names.contains(&"dcos-bouncer.service") && names.contains(&"dcos-ca.service"));
        assert!(!names.iter().any(|n| n.contains("vault")));
        let agent: Vec<_> = role_units(NodeRole::Agent).iter().map(|u| u.name).collect();
        assert_eq!(
            agent,
            vec![
                "dcos-net.service",
                "dcos-mesos-slave.service",
                "dcos-diagnostics.service",
                "dcos-log-agent.service",
                "dcos-rexray.service",
                "dcos-metrics-agent.service",
                "dcos-adminrouter-agent"
            ]
        );
    }
}
