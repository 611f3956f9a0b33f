//! Containers as the local Mesos agent reports them: its operator endpoint `/containers`
//! (ids and resource statistics) joined with its `/state` (framework names, task names and
//! labels), mapped to datapoints as dcos-metrics 1.11's agent collector maps them
//! (`collectors/mesos/agent`).

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::api::{now_nanos, unit, Datapoint, Dimensions, Value};

/// Containers kept from one read at most.
pub const MAX_CONTAINERS: usize = 4096;
/// Labels longer than this are dropped, as the real collector drops them.
pub const MAX_LABEL_LENGTH: usize = 128;

/// Labels Cosmos and Marathon put on tasks for their own bookkeeping: of no use in metrics,
/// so the real collector strips them.
pub const COSMOS_LABELS: &[&str] = &[
    "DCOS_PACKAGE_DEFINITION",
    "DCOS_PACKAGE_FRAMEWORK_NAME",
    "DCOS_PACKAGE_METADATA",
    "DCOS_PACKAGE_OPTIONS",
    "DCOS_PACKAGE_SOURCE",
    "DCOS_SERVICE_PORT_INDEX",
    "DCOS_SERVICE_SCHEME",
    "MARATHON_SINGLE_INSTANCE_APP",
];

/// One entry of the agent's `/containers`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AgentContainer {
    /// The container.
    pub container_id: String,
    /// Its executor.
    #[serde(default)]
    pub executor_id: String,
    /// Its executor's name.
    #[serde(default)]
    pub executor_name: String,
    /// Its framework.
    #[serde(default)]
    pub framework_id: String,
    /// Its executor's source.
    #[serde(default)]
    pub source: String,
    /// Its resource statistics (Mesos' `ResourceStatistics`), absent if not measured.
    #[serde(default)]
    pub statistics: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A label.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Label {
    /// Its key.
    #[serde(default)]
    pub key: String,
    /// Its value.
    #[serde(default)]
    pub value: Option<String>,
}

/// A task of the agent's `/state`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct StateTask {
    /// Its id.
    #[serde(default)]
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Its labels.
    #[serde(default)]
    pub labels: Vec<Label>,
}

/// An executor of the agent's `/state`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct StateExecutor {
    /// Its id.
    #[serde(default)]
    pub id: String,
    /// Its container.
    #[serde(default)]
    pub container: String,
    /// Its labels.
    #[serde(default)]
    pub labels: Vec<Label>,
    /// Its running tasks.
    #[serde(default)]
    pub tasks: Vec<StateTask>,
}

/// A framework of the agent's `/state`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct StateFramework {
    /// Its id.
    #[serde(default)]
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Its role.
    #[serde(default)]
    pub role: String,
    /// Its principal.
    #[serde(default)]
    pub principal: Option<String>,
    /// Its executors.
    #[serde(default)]
    pub executors: Vec<StateExecutor>,
}

/// What the collector reads of the agent's `/state`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AgentState {
    /// The agent's id ("" before it registered).
    #[serde(default)]
    pub id: String,
    /// Its frameworks.
    #[serde(default)]
    pub frameworks: Vec<StateFramework>,
}

/// What the collector reads of a master's `/state`: its id and the leader's.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MasterState {
    /// This master's id.
    #[serde(default)]
    pub id: String,
    /// The leader.
    #[serde(default)]
    pub leader_info: Option<LeaderInfo>,
}

/// The leading master.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LeaderInfo {
    /// Its id.
    #[serde(default)]
    pub id: String,
}

impl MasterState {
    /// The id dcos-metrics reports on masters: the leader's (the real one read it from
    /// `leader.mesos:5050/state`), else this master's.
    pub fn mesos_id(&self) -> String {
        self.leader_info
            .as_ref()
            .map(|l| l.id.clone())
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| self.id.clone())
    }
}

/// Who a container is: the task and framework dimensions, and the labels that become the
/// tags of its application metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerInfo {
    /// Its dimensions (with the node's).
    pub dimensions: Dimensions,
    /// Its resource datapoints; empty if the agent gave no statistics.
    pub datapoints: Vec<Datapoint>,
}

/// The node's dimensions every message carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeDims {
    /// `mesos_id`.
    pub mesos_id: String,
    /// `cluster_id`.
    pub cluster_id: String,
    /// `hostname` (the node's IP).
    pub hostname: String,
}

impl NodeDims {
    /// Dimensions with only the node's.
    pub fn dimensions(&self) -> Dimensions {
        Dimensions {
            mesos_id: self.mesos_id.clone(),
            cluster_id: self.cluster_id.clone(),
            hostname: self.hostname.clone(),
            ..Dimensions::default()
        }
    }
}

/// `ResourceStatistics` fields and the datapoints they become: (field, name, unit).
const STATISTICS: &[(&str, &str, &str)] = &[
    ("processes", "processes", unit::COUNT),
    ("threads", "threads", unit::COUNT),
    ("cpus_user_time_secs", "cpus.user.time", unit::SECONDS),
    ("cpus_system_time_secs", "cpus.system.time", unit::SECONDS),
    ("cpus_limit", "cpus.limit", unit::COUNT),
    ("cpus_nr_periods", "cpus.nr.periods", unit::COUNT),
    ("cpus_nr_throttled", "cpus.nr.throttled", unit::COUNT),
    (
        "cpus_throttled_time_secs",
        "cpus.throttled.time",
        unit::SECONDS,
    ),
    ("mem_total_bytes", "mem.total", unit::BYTES),
    ("mem_total_memsw_bytes", "mem.total.memsw", unit::BYTES),
    ("mem_limit_bytes", "mem.limit", unit::BYTES),
    ("mem_soft_limit_bytes", "mem.soft.limit", unit::BYTES),
    ("mem_cache_bytes", "mem.cache", unit::BYTES),
    ("mem_rss_bytes", "mem.rss", unit::BYTES),
    ("mem_mapped_file_bytes", "mem.mapped.file", unit::BYTES),
    ("mem_swap_bytes", "mem.swap", unit::BYTES),
    ("mem_unevictable_bytes", "mem.unevictable", unit::BYTES),
    ("mem_low_pressure_counter", "mem.low.pressure", unit::COUNT),
    (
        "mem_medium_pressure_counter",
        "mem.medium.pressure",
        unit::COUNT,
    ),
    (
        "mem_critical_pressure_counter",
        "mem.critical.pressure",
        unit::COUNT,
    ),
    ("disk_limit_bytes", "disk.limit", unit::BYTES),
    ("disk_used_bytes", "disk.used", unit::BYTES),
    ("net_rx_packets", "net.rx.packets", unit::COUNT),
    ("net_rx_bytes", "net.rx.bytes", unit::BYTES),
    ("net_rx_errors", "net.rx.errors", unit::COUNT),
    ("net_rx_dropped", "net.rx.dropped", unit::COUNT),
    ("net_tx_packets", "net.tx.packets", unit::COUNT),
    ("net_tx_bytes", "net.tx.bytes", unit::BYTES),
    ("net_tx_errors", "net.tx.errors", unit::COUNT),
    ("net_tx_dropped", "net.tx.dropped", unit::COUNT),
];

/// A container's resource datapoints: one per statistic the agent measured, each tagged
/// with the container's ids as the real collector tags them (`container_id`, `source`,
/// `framework_id`, `executor_id`, `executor_name`).
pub fn container_datapoints(c: &AgentContainer) -> Vec<Datapoint> {
    let Some(stats) = &c.statistics else {
        return Vec::new();
    };
    let ts = now_nanos();
    let tags: BTreeMap<String, String> = [
        ("container_id", &c.container_id),
        ("source", &c.source),
        ("framework_id", &c.framework_id),
        ("executor_id", &c.executor_id),
        ("executor_name", &c.executor_name),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.clone()))
    .collect();
    STATISTICS
        .iter()
        .filter_map(|(field, name, unit)| {
            let v = stats.get(*field)?.as_f64().filter(|v| v.is_finite())?;
            Some(Datapoint {
                name: name.to_string(),
                value: Value(v),
                unit: unit.to_string(),
                timestamp: ts.clone(),
                tags: tags.clone(),
            })
        })
        .collect()
}

/// Labels as metrics carry them: Cosmos' bookkeeping and over-long values left out.
pub fn metric_labels(labels: &[Label]) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|l| !l.key.is_empty() && !COSMOS_LABELS.contains(&l.key.as_str()))
        .filter_map(|l| {
            let v = l.value.clone().unwrap_or_default();
            (v.len() <= MAX_LABEL_LENGTH).then(|| (l.key.clone(), v))
        })
        .collect()
}

/// Joins `/containers` with `/state`: each container with its dimensions and datapoints.
pub fn containers(
    list: &[AgentContainer],
    state: &AgentState,
    node: &NodeDims,
) -> BTreeMap<String, ContainerInfo> {
    // container id -> (framework, executor)
    let mut by_container: HashMap<&str, (&StateFramework, &StateExecutor)> = HashMap::new();
    for f in &state.frameworks {
        for e in &f.executors {
            by_container.insert(e.container.as_str(), (f, e));
        }
    }
    let frameworks: HashMap<&str, &StateFramework> = state
        .frameworks
        .iter()
        .map(|f| (f.id.as_str(), f))
        .collect();
    list.iter()
        .filter(|c| !c.container_id.is_empty())
        .take(MAX_CONTAINERS)
        .map(|c| {
            let mut d = node.dimensions();
            d.container_id = c.container_id.clone();
            d.executor_id = c.executor_id.clone();
            d.framework_id = c.framework_id.clone();
            let found = by_container.get(c.container_id.as_str()).copied();
            let framework = found
                .map(|(f, _)| f)
                .or_else(|| frameworks.get(c.framework_id.as_str()).copied());
            if let Some(f) = framework {
                d.framework_name = f.name.clone();
                d.framework_role = f.role.clone();
                d.framework_principal = f.principal.clone().unwrap_or_default();
            }
            if let Some((_, e)) = found {
                if let Some(t) = e.tasks.first() {
                    d.task_id = t.id.clone();
                    d.task_name = t.name.clone();
                }
                // The executor's labels, as the real collector reads them; a command
                // task's executor has none here, so its task's.
                d.labels = metric_labels(&e.labels);
                if d.labels.is_empty() {
                    d.labels = e
                        .tasks
                        .first()
                        .map(|t| metric_labels(&t.labels))
                        .unwrap_or_default();
                }
            }
            let info = ContainerInfo {
                dimensions: d,
                datapoints: container_datapoints(c),
            };
            (c.container_id.clone(), info)
        })
        .collect()
}

#[cfg(test)]
mod tests;
