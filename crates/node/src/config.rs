//! The node config (`node.yaml`), in DC/OS `config.yaml` vocabulary where one exists.
//!
//! Every key has a default taken from the port contract; unknown keys and bad values are
//! rejected with the key's path and the expected form.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use dcos_ports::{NodeRole, RangeSet};
use serde::{Deserialize, Serialize};

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read node config {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A key is unknown or a value has the wrong form.
    #[error("invalid node config {path}: at `{key}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key's path, `agent.port_ranges`.
        key: String,
        /// What is wrong and the expected form.
        message: String,
    },
    /// The `ip_detect` command failed.
    #[error("ip_detect command {command:?} failed: {message}")]
    IpDetect {
        /// The command.
        command: String,
        /// What happened.
        message: String,
    },
}

/// One node's configuration.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The cluster's name (DC/OS `cluster_name`).
    #[serde(default = "default_cluster_name")]
    pub cluster_name: String,
    /// The masters' IPs (DC/OS `master_list`).
    #[serde(default = "default_master_list")]
    pub master_list: Vec<IpAddr>,
    /// Upstream DNS resolvers for names outside the cluster's zones (DC/OS `resolvers`).
    #[serde(default)]
    pub resolvers: Vec<IpAddr>,
    /// This node's cluster IP; when absent, `ip_detect` decides, else the default route's address.
    #[serde(default)]
    pub ip: Option<IpAddr>,
    /// A shell command printing this node's IP (DC/OS `ip_detect_filename`, inline).
    #[serde(default)]
    pub ip_detect: Option<String>,
    /// Where units keep their state.
    #[serde(default = "default_work_dir")]
    pub work_dir: PathBuf,
    /// The agent's resources and ports.
    #[serde(default)]
    pub agent: AgentConfig,
    /// Where replicated state lives.
    #[serde(default)]
    pub store: StoreConfig,
    /// Mesos master settings.
    #[serde(default)]
    pub mesos: MesosConfig,
    /// The cluster's id (DC/OS' `/var/lib/dcos/cluster-id`), made by `dcos cluster up`.
    #[serde(default)]
    pub cluster_id: Option<String>,
    /// The cluster CA's dir (`ca.crt`, `ca.key`), made by `dcos cluster up`; it issues the
    /// nodes' TLS certificates. Without it they are self-signed.
    #[serde(default)]
    pub ca_dir: Option<PathBuf>,
    /// Run the cluster-local image registry (`dcos-registry.service`, port 5000) on this
    /// master; off by default. Agents always accept the masters' registries over http.
    #[serde(default)]
    pub registry: bool,
    /// What the cluster asks of its callers (`dcos cluster up --security`): Admin Router asks
    /// a login unless `disabled`.
    #[serde(default)]
    pub security: dcos_iam::api::SecurityMode,
    /// The bootstrap superuser the IAM creates on a new cluster (DC/OS `superuser_username`).
    #[serde(default)]
    pub superuser_username: Option<String>,
    /// Its password's Argon2id PHC string (DC/OS `superuser_password_hash`), never the password.
    #[serde(default)]
    pub superuser_password_hash: Option<String>,
    /// OpenID Connect providers whose ID tokens log in the remote accounts they vouch for.
    #[serde(default)]
    pub oidc_providers: Vec<dcos_iam::oidc::ProviderConfig>,
    /// Service accounts the IAM creates on a new cluster: uid to public key (PEM). In strict
    /// security, the frameworks' (`dcos_marathon`, `dcos_metronome`).
    #[serde(default)]
    pub service_account_keys: std::collections::BTreeMap<String, String>,
    /// The components' service account secrets on this node (`marathon`, `metronome`), with
    /// which they log in to authenticate to the master in strict security.
    #[serde(default)]
    pub service_account_secrets: std::collections::BTreeMap<String, PathBuf>,
}

/// The agent's advertised resources.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// CPUs to advertise (default: the host's).
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Memory in MB to advertise (default: the host's, less 1 GiB for the system).
    #[serde(default)]
    pub mem: Option<f64>,
    /// Disk in MB to advertise (default: free space of the work dir's file system).
    #[serde(default)]
    pub disk: Option<f64>,
    /// GPUs to advertise.
    #[serde(default)]
    pub gpus: Option<f64>,
    /// Task port ranges in Mesos form (default: the contract's ranges minus co-located
    /// component ports).
    #[serde(default)]
    pub port_ranges: Option<String>,
    /// Agent attributes (`public_ip: "true"` is added on public agents).
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// The store backend.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `embedded` (single master) or `zookeeper`.
    #[serde(default)]
    pub backend: StoreBackend,
}

/// `embedded` or `zookeeper`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// A redb file in the work dir.
    #[default]
    Embedded,
    /// ZooKeeper on the masters.
    Zookeeper,
}

/// Mesos master settings.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MesosConfig {
    /// Batched allocation interval in seconds.
    #[serde(default = "default_allocation_interval")]
    pub allocation_interval_secs: f64,
    /// How long an agent may miss pings before it is unreachable, in seconds.
    #[serde(default = "default_agent_timeout")]
    pub agent_ping_timeout_secs: f64,
}

impl Default for MesosConfig {
    fn default() -> Self {
        MesosConfig {
            allocation_interval_secs: default_allocation_interval(),
            agent_ping_timeout_secs: default_agent_timeout(),
        }
    }
}

fn default_cluster_name() -> String {
    "dcos-rs".into()
}
fn default_master_list() -> Vec<IpAddr> {
    vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
}
fn default_work_dir() -> PathBuf {
    PathBuf::from("/var/lib/dcos-rs")
}
fn default_allocation_interval() -> f64 {
    1.0
}
fn default_agent_timeout() -> f64 {
    75.0
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            cluster_name: default_cluster_name(),
            master_list: default_master_list(),
            resolvers: Vec::new(),
            ip: None,
            ip_detect: None,
            work_dir: default_work_dir(),
            agent: AgentConfig::default(),
            store: StoreConfig::default(),
            mesos: MesosConfig::default(),
            cluster_id: None,
            ca_dir: None,
            registry: false,
            security: Default::default(),
            superuser_username: None,
            superuser_password_hash: None,
            oidc_providers: Vec::new(),
            service_account_keys: Default::default(),
            service_account_secrets: Default::default(),
        }
    }
}

/// The Mesos agent's work dir under a node's work dir (sandboxes, checkpoints, images).
pub const AGENT_DIR: &str = "mesos-agent";

impl NodeConfig {
    /// The file whose bytes seal the IAM's signing key in the store: the cluster CA's
    /// private key (every master has it, nothing else does), or, on a node without the
    /// cluster's CA, a random secret of its own made at first start.
    pub fn seal_secret(&self) -> std::io::Result<PathBuf> {
        if let Some(key) = self.ca_dir.as_ref().map(|d| d.join("ca.key")) {
            if key.exists() {
                return Ok(key);
            }
        }
        let path = self.work_dir.join("iam").join("seal.key");
        if !path.exists() {
            fs_err::create_dir_all(self.work_dir.join("iam"))?;
            let secret: Vec<u8> = (0..2)
                .flat_map(|_| *uuid::Uuid::new_v4().as_bytes())
                .collect();
            dcos_store::file::write_atomic(&path, &secret, 0o600)?;
        }
        Ok(path)
    }

    /// Where this node's Mesos agent keeps its state.
    pub fn agent_work_dir(&self) -> PathBuf {
        self.work_dir.join(AGENT_DIR)
    }

    /// Reads and validates a node config file.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates YAML text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = if text.trim().is_empty() { "{}" } else { text };
        let de = serde_norway::Deserializer::from_str(text);
        let config: NodeConfig =
            serde_path_to_error::deserialize(de).map_err(|e| ConfigError::Invalid {
                path: path.to_path_buf(),
                key: match e.path().to_string() {
                    p if p == "." => "(top level)".into(),
                    p => p,
                },
                message: e.inner().to_string(),
            })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.into(),
            message,
        };
        if self.master_list.is_empty() {
            return Err(invalid(
                "master_list",
                "must name at least one master IP".into(),
            ));
        }
        if self.cluster_name.trim().is_empty() {
            return Err(invalid("cluster_name", "must not be empty".into()));
        }
        if let Some(r) = &self.agent.port_ranges {
            r.parse::<RangeSet>()
                .map_err(|e| invalid("agent.port_ranges", e.to_string()))?;
        }
        for (key, v) in [
            ("agent.cpus", self.agent.cpus),
            ("agent.mem", self.agent.mem),
            ("agent.disk", self.agent.disk),
            ("agent.gpus", self.agent.gpus),
        ] {
            if v.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                return Err(invalid(key, "expected a non-negative number".into()));
            }
        }
        // The units turn these into a `Duration`, which panics on a negative, NaN, infinite
        // or huge number: refuse them here, naming the key.
        for (key, v) in [
            (
                "mesos.allocation_interval_secs",
                self.mesos.allocation_interval_secs,
            ),
            (
                "mesos.agent_ping_timeout_secs",
                self.mesos.agent_ping_timeout_secs,
            ),
        ] {
            if !(v > 0.0 && std::time::Duration::try_from_secs_f64(v).is_ok()) {
                return Err(invalid(key, "expected a positive number of seconds".into()));
            }
        }
        Ok(())
    }

    /// Where a component keeps its state: `file` under the work dir with the embedded store,
    /// the masters' ZooKeeper ensemble otherwise.
    pub fn store_location(&self, file: &str) -> dcos_store::Location {
        match self.store.backend {
            StoreBackend::Embedded => dcos_store::Location::Embedded(self.work_dir.join(file)),
            StoreBackend::Zookeeper => dcos_store::Location::zookeeper(&self.master_list),
        }
    }

    /// This node's cluster IP: `ip`, else `ip_detect`'s output, else the default route's address.
    pub fn node_ip(&self) -> Result<IpAddr, ConfigError> {
        if let Some(ip) = self.ip {
            return Ok(ip);
        }
        if let Some(cmd) = &self.ip_detect {
            let err = |message: String| ConfigError::IpDetect {
                command: cmd.clone(),
                message,
            };
            let out = std::process::Command::new("sh")
                .args(["-c", cmd])
                .output()
                .map_err(|e| err(e.to_string()))?;
            if !out.status.success() {
                return Err(err(format!("exited with {}", out.status)));
            }
            let text = String::from_utf8_lossy(&out.stdout);
            return text
                .trim()
                .parse()
                .map_err(|_| err(format!("printed {:?}, not an IP address", text.trim())));
        }
        Ok(dcos_ports::preflight::detect_ip())
    }

    /// The agent's task port ranges on a node of `role`.
    pub fn task_ranges(&self, role: NodeRole) -> RangeSet {
        self.agent
            .port_ranges
            .as_deref()
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| dcos_ports::task_ranges(role))
    }

    /// The Mesos master addresses (`ip:5050`) of `master_list`: where each master binds the
    /// contract's Mesos master port ([`dcos_ports::bind_addrs`]).
    pub fn master_addrs(&self) -> Result<Vec<SocketAddr>, dcos_ports::BindError> {
        self.master_list
            .iter()
            .map(|ip| {
                dcos_ports::bind_addrs("dcos-mesos-master.service", NodeRole::Master, *ip)?
                    .connect_tcp(5050)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
        NodeConfig::parse(text, Path::new("node.yaml"))
    }

    #[test]
    fn empty_config_has_contract_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.master_list, vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        assert_eq!(
            c.task_ranges(NodeRole::Agent).to_string(),
            "[1025-2180, 2182-3887, 3889-5049, 5052-8079, 8082-8180, 8182-32000]"
        );
        assert!(!c.task_ranges(NodeRole::MasterAgent).contains(15055));
        assert_eq!(c.mesos.allocation_interval_secs, 1.0);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_path() {
        let err = parse("agent:\n  cpus: 2\n  cpu_count: 4\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`agent`") || err.contains("agent.cpu_count"),
            "{err}"
        );
        assert!(err.contains("unknown field `cpu_count`"), "{err}");
        let err = parse("master_lsit: [10.0.0.1]\n").unwrap_err().to_string();
        assert!(err.contains("unknown field `master_lsit`"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key_and_the_form() {
        let err = parse("master_list: [not-an-ip]\n").unwrap_err().to_string();
        assert!(err.contains("master_list"), "{err}");
        let err = parse("agent:\n  port_ranges: '1025-2000'\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("agent.port_ranges") && err.contains("[1025-2180"),
            "{err}"
        );
        let err = parse("agent:\n  cpus: -1\n").unwrap_err().to_string();
        assert!(err.contains("agent.cpus"), "{err}");
        let err = parse("store:\n  backend: etcd\n").unwrap_err().to_string();
        assert!(
            err.contains("store.backend") && err.contains("embedded"),
            "{err}"
        );
    }

    #[test]
    fn mesos_durations_must_be_positive_finite_seconds() {
        for key in ["allocation_interval_secs", "agent_ping_timeout_secs"] {
            for bad in ["0", "-1", ".nan", ".inf", "1e300"] {
                let err = parse(&format!("mesos:\n  {key}: {bad}\n"))
                    .unwrap_err()
                    .to_string();
                assert!(
                    err.contains(&format!("mesos.{key}")) && err.contains("positive"),
                    "{key}: {bad}: {err}"
                );
            }
            assert!(parse(&format!("mesos:\n  {key}: 0.5\n")).is_ok());
        }
    }

    #[test]
    fn ip_detect_runs_the_command() {
        let c = parse("ip_detect: echo 10.1.2.3\n").unwrap();
        assert_eq!(c.node_ip().unwrap().to_string(), "10.1.2.3");
        let c = parse("ip_detect: echo nope\n").unwrap();
        assert!(c.node_ip().unwrap_err().to_string().contains("not an IP"));
    }
}
