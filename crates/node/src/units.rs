//! The units of a node: which a role runs, in what order, and how `dcos unit run` runs one.
//!
//! Unit names are the systemd units of the port contract. A unit whose component is not
//! built yet is left out of its role's set (and `dcos unit list` says so): no contract port
//! is ever bound by a placeholder.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use dcos_ports::preflight::bind_address;
use dcos_ports::{rows_of_unit, units_for, NodeRole, PortRow, PortSpec};
use tokio_util::sync::CancellationToken;

use crate::config::NodeConfig;

/// Start order: storage and coordination first, then the master, the frameworks and
/// services that read it, then the node-local services, then the front doors.
const START_ORDER: &[&str] = &[
    "dcos-pkgpanda-api.service",
    "dcos-exhibitor.service",
    "dcos-mesos-master.service",
    "dcos-mesos-dns.service",
    "dcos-registry.service",
    "dcos-marathon.service",
    "dcos-metronome.service",
    "dcos-cosmos.service",
    "dcos-history-service.service",
    "dcos-net.service",
    "dcos-mesos-slave.service",
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
    "dcos-registry.service",
    "dcos-mesos-master.service",
    "dcos-mesos-dns.service",
    "dcos-marathon.service",
    "dcos-metronome.service",
    "dcos-history-service.service",
    "dcos-net.service",
    "dcos-mesos-slave.service",
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
    /// The contract rows it binds on this role.
    pub rows: Vec<&'static PortRow>,
}

impl Unit {
    /// The TCP addresses that accept connections once the unit is ready.
    pub fn tcp_addrs(&self, ip: IpAddr) -> Vec<SocketAddr> {
        self.rows
            .iter()
            .filter(|r| r.protocol == dcos_ports::Protocol::Tcp)
            // Only the ensemble's leader listens on ZooKeeper's quorum port.
            .filter(|r| r.port != PortSpec::Single(dcos_exhibitor::zookeeper::QUORUM_PORT))
            .filter_map(|r| match r.port {
                PortSpec::Single(p) => Some(SocketAddr::new(
                    connect_address(bind_address(r.bind(), ip)),
                    p,
                )),
                _ => None,
            })
            .collect()
    }
}

/// Where to connect to reach a listener bound on `bound` (a wildcard is reached on loopback).
fn connect_address(bound: IpAddr) -> IpAddr {
    if bound.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        bound
    }
}

/// Every OSS unit of a role in start order, built or not.
pub fn role_units(role: NodeRole) -> Vec<Unit> {
    let mut names: Vec<&'static str> = units_for(role)
        .into_iter()
        .filter(|u| rows_of_unit(role, u).any(|r| !r.enterprise))
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
            rows: rows_of_unit(role, name).filter(|r| !r.enterprise).collect(),
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
    match unit.name {
        "dcos-pkgpanda-api.service" => crate::pkgpanda::serve(config, shutdown)
            .await
            .map_err(failed),
        "dcos-history-service.service" => dcos_history::serve(
            dcos_history::Config {
                listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 15055),
                masters: config.master_addrs(),
                buffer_dir: config.work_dir.join("history"),
                fetch_period: dcos_history::FETCH_PERIOD,
            },
            shutdown,
        )
        .await
        .map_err(|e| failed(e.into())),
        "dcos-exhibitor.service" => {
            let ip = config.node_ip().map_err(|e| failed(e.into()))?;
            let exhibitor = dcos_exhibitor::Config::dcos(
                ip,
                &config.master_list,
                config.work_dir.join("exhibitor"),
            )
            .map_err(|e| failed(e.into()))?;
            dcos_exhibitor::serve(exhibitor, shutdown)
                .await
                .map_err(|e| failed(e.into()))
        }
        "dcos-mesos-master.service" => {
            let ip = config.node_ip().map_err(|e| failed(e.into()))?;
            dcos_mesos::master::serve(
                dcos_mesos::master::Config {
                    listen: SocketAddr::new(ip, 5050),
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
                },
                shutdown,
            )
            .await
            .map_err(|e| failed(e.into()))
        }
        "dcos-mesos-dns.service" => {
            let ip = config.node_ip().map_err(|e| failed(e.into()))?;
            let resolvers = config
                .resolvers
                .iter()
                .map(|r| SocketAddr::new(*r, 53))
                .collect();
            dcos_mesos_dns::serve(
                dcos_mesos_dns::Config::dcos(ip, config.master_addrs(), resolvers),
                shutdown,
            )
            .await
            .map_err(|e| failed(e.into()))
        }
        "dcos-adminrouter.service" | "dcos-adminrouter-agent" => {
            use dcos_adminrouter::routes::Role;
            let ip = config.node_ip().map_err(|e| failed(e.into()))?;
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
            c.cluster_name = config.cluster_name.clone();
            c.cluster_id = config.cluster_id.clone().unwrap_or_default();
            c.units = runnable_units(role).iter().map(|u| u.name).collect();
            dcos_adminrouter::serve(c, shutdown)
                .await
                .map_err(|e| failed(e.into()))
        }
        "dcos-net.service" => {
            let ip = config.node_ip().map_err(|e| failed(e.into()))?;
            dcos_net::serve(
                dcos_net::Config::dcos(
                    ip,
                    role.as_str(),
                    config.master_list.clone(),
                    config.resolvers.clone(),
                ),
                shutdown,
            )
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
            let ip = config.node_ip().map_err(|e| failed(e.into()))?;
            dcos_registry::serve(
                dcos_registry::Config {
                    listen: SocketAddr::new(ip, dcos_registry::PORT),
                    dir: config.work_dir.join("registry"),
                },
                shutdown,
            )
            .await
            .map_err(|e| failed(e.into()))
        }
        "dcos-marathon.service" => {
            let ip = config.node_ip().map_err(|e| failed(e.into()))?;
            dcos_marathon::serve(
                dcos_marathon::Config {
                    listen: SocketAddr::new(ip, 8080),
                    https: Some(SocketAddr::new(ip, 8443)),
                    libprocess: Some(SocketAddr::new(ip, 15101)),
                    masters: config.master_addrs(),
                    work_dir: config.work_dir.join("marathon"),
                    store: config.store_location("marathon/marathon.redb"),
                    framework_name: "marathon".into(),
                    ca_dir: config.ca_dir.clone(),
                },
                shutdown,
            )
            .await
            .map_err(|e| failed(e.into()))
        }
        "dcos-metronome.service" => {
            let ip = config.node_ip().map_err(|e| failed(e.into()))?;
            dcos_metronome::serve(
                dcos_metronome::Config {
                    listen: SocketAddr::new(ip, dcos_metronome::ports::HTTP),
                    https: Some(SocketAddr::new(ip, dcos_metronome::ports::HTTPS)),
                    libprocess: Some(SocketAddr::new(ip, dcos_metronome::ports::LIBPROCESS)),
                    masters: config.master_addrs(),
                    work_dir: config.work_dir.join("metronome"),
                    store: config.store_location("metronome/metronome.redb"),
                    framework_name: "metronome".into(),
                    ca_dir: config.ca_dir.clone(),
                },
                shutdown,
            )
            .await
            .map_err(|e| failed(e.into()))
        }
        "dcos-mesos-slave.service" => {
            let ip = config.node_ip().map_err(|e| failed(e.into()))?;
            let agent_dir = config.agent_work_dir();
            fs_err::create_dir_all(&agent_dir).map_err(|e| failed(e.into()))?;
            let (cpus, mem, disk) = dcos_mesos::agent::Config::host_resources(&agent_dir);
            let mut attributes = config.agent.attributes.clone();
            if role == NodeRole::AgentPublic {
                attributes.insert("public_ip".into(), "true".into());
            }
            dcos_mesos::agent::serve(
                dcos_mesos::agent::Config {
                    listen: SocketAddr::new(ip, 5051),
                    masters: config.master_addrs(),
                    work_dir: agent_dir,
                    resources: dcos_mesos::resources::Resources {
                        cpus: config.agent.cpus.unwrap_or(cpus),
                        mem: config.agent.mem.unwrap_or(mem),
                        disk: config.agent.disk.unwrap_or(disk),
                        gpus: config.agent.gpus.unwrap_or(0.0),
                        ports: config.task_ranges(role),
                    },
                    attributes,
                    insecure_registries: config
                        .master_list
                        .iter()
                        .map(|m| SocketAddr::new(*m, dcos_registry::PORT).to_string())
                        .collect(),
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

    #[test]
    fn master_units_start_pkgpanda_first_and_admin_router_last() {
        let names: Vec<_> = role_units(NodeRole::Master)
            .iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names.first(), Some(&"dcos-pkgpanda-api.service"));
        assert_eq!(names.last(), Some(&"dcos-adminrouter.service"));
        assert!(!names
            .iter()
            .any(|n| n.contains("bouncer") || n.contains("vault")));
        let agent: Vec<_> = role_units(NodeRole::Agent).iter().map(|u| u.name).collect();
        assert_eq!(
            agent,
            vec![
                "dcos-net.service",
                "dcos-mesos-slave.service",
                "dcos-rexray.service",
                "dcos-metrics-agent.service",
                "dcos-adminrouter-agent"
            ]
        );
    }
}
