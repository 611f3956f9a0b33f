//! `dcos cluster up|down|list`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use dcos_node::cluster::{self, Spec};
use dcos_node::config::StoreBackend;

use crate::UserError;

#[derive(Args)]
pub(crate) struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
    /// Where cluster records live (default: /var/lib/dcos-rs/clusters as root, else ~/.dcos-rs/clusters).
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Start a local cluster and wait until every node is healthy.
    Up {
        /// 1, 3 or 5 masters; more than one form a ZooKeeper ensemble.
        #[arg(long, default_value_t = 1)]
        masters: usize,
        /// Where the masters keep their state: `embedded` (one master only) or `zookeeper`.
        /// Default: embedded with one master, zookeeper with several.
        #[arg(long, value_parser = ["embedded", "zookeeper"])]
        store: Option<String>,
        #[arg(long, default_value_t = 2)]
        agents: usize,
        #[arg(long, default_value_t = 0)]
        public_agents: usize,
        #[arg(long, default_value = "dcos")]
        name: String,
        /// Seconds to wait for health.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Run a cluster-local image registry on every master (port 5000): push with
        /// `dcos image push <dir|tar> <master-ip>:5000/<repo>:<tag>`.
        #[arg(long)]
        registry: bool,
        /// What the cluster asks of its callers: `permissive` (Admin Router asks a login),
        /// `strict` (the components' own APIs too) or `disabled` (no logins).
        #[arg(long, default_value = "permissive", value_parser = ["disabled", "permissive", "strict"])]
        security: String,
    },
    /// Stop a cluster and remove every process, namespace, bridge and veth it made.
    Down {
        /// The cluster (default: the current one).
        #[arg(long)]
        name: Option<String>,
    },
    /// The recorded clusters.
    List {
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(args: ClusterArgs) -> anyhow::Result<ExitCode> {
    let state_dir = args.state_dir.unwrap_or_else(cluster::default_state_dir);
    match args.command {
        ClusterCommand::Up {
            masters,
            store,
            agents,
            public_agents,
            name,
            timeout,
            registry,
            security,
        } => {
            let security = dcos_iam::api::SecurityMode::parse(&security)
                .ok_or_else(|| UserError::new(format!("unknown security mode {security:?}")))?;
            let store = match store.as_deref() {
                Some("zookeeper") => Some(StoreBackend::Zookeeper),
                Some(_) => Some(StoreBackend::Embedded),
                None => None,
            };
            let spec = Spec {
                name,
                masters,
                store,
                agents,
                public_agents,
                binary: std::env::current_exe()?,
                state_dir: state_dir.clone(),
                timeout: Duration::from_secs(timeout),
                registry,
                security,
            };
            let record = cluster::up(&spec, |line| eprintln!("{line}")).map_err(|e| match e {
                cluster::Error::Invalid(m) => anyhow::Error::new(UserError::new(m)),
                other => anyhow::Error::new(other).context(format!(
                    "cluster {:?} did not come up; clean up with `dcos cluster down --name {}`",
                    spec.name, spec.name
                )),
            })?;
            println!("cluster {} is up:", record.name);
            for n in &record.nodes {
                println!("  {:<16} {:<13} {}", n.id, n.role, n.ip);
            }
            if let Some(m) = record.nodes.iter().find(|n| n.role.starts_with("master")) {
                println!("Admin Router: http://{}/ and https://{}/", m.ip, m.ip);
                if let Some(ca) = &record.ca_cert {
                    println!("cluster CA:   {} (trust it for https)", ca.display());
                }
                println!("Mesos master: http://{}:5050", m.ip);
                println!(
                    "node status:  dcos node status --config {}",
                    m.config.display()
                );
            }
            if let Some(c) = cluster::superuser(&record) {
                // Shown once; the file keeps it for the cluster's owner.
                println!("superuser:    {} / {}", c.uid, c.password);
                if let Some(base) = crate::iam::router_url(&record) {
                    let body = serde_json::json!({"uid": c.uid, "password": c.password});
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    match runtime.block_on(crate::iam::login(&base, &state_dir, &record, body)) {
                        Ok(uid) => println!("logged in as {uid} (`dcos auth logout` forgets it)"),
                        Err(e) => eprintln!("could not log in as {}: {e:#}", c.uid),
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Down { name } => {
            let name = name
                .or_else(|| cluster::current(&state_dir))
                .ok_or_else(|| {
                    UserError::new("no cluster given and no current cluster")
                        .hint("name one with --name (see `dcos cluster list`)")
                })?;
            cluster::down(&state_dir, &name)?;
            println!("cluster {name} is down");
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::List { json } => {
            let records = cluster::list(&state_dir);
            let current = cluster::current(&state_dir);
            let view: Vec<serde_json::Value> = records
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "name": r.name,
                        "current": current.as_deref() == Some(r.name.as_str()),
                        "ca_cert": r.ca_cert,
                        "cluster_id": r.cluster_id,
                        "nodes": r.nodes.iter().map(|n| serde_json::json!({
                            "id": n.id,
                            "role": n.role,
                            "ip": n.ip,
                            "netns": n.netns,
                            "healthy": cluster::node_healthy(n),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                for c in &view {
                    println!(
                        "{}{}",
                        c["name"].as_str().unwrap_or_default(),
                        if c["current"] == true {
                            " (current)"
                        } else {
                            ""
                        }
                    );
                    for n in c["nodes"].as_array().into_iter().flatten() {
                        println!(
                            "  {:<16} {:<13} {:<15} {}",
                            n["id"].as_str().unwrap_or_default(),
                            n["role"].as_str().unwrap_or_default(),
                            n["ip"].as_str().unwrap_or_default(),
                            if n["healthy"] == true {
                                "healthy"
                            } else {
                                "UNHEALTHY"
                            }
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
