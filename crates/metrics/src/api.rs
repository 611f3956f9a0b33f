//! The wire types of dcos-metrics' HTTP API (`/v0/...`), in the shapes of dcos-metrics 1.11
//! (`producers/interface.go`): a message is `{"datapoints": [...], "dimensions": {...}}`, a
//! datapoint `{"name", "value", "unit", "timestamp", "tags"?}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};

/// Units as dcos-metrics names them.
pub mod unit {
    /// A count (also seconds of uptime and load averages, as the real collector says).
    pub const COUNT: &str = "count";
    /// Bytes.
    pub const BYTES: &str = "bytes";
    /// A percentage, 0 to 100.
    pub const PERCENT: &str = "percent";
    /// Seconds (cpu times of containers).
    pub const SECONDS: &str = "seconds";
    /// Application metrics carry no unit.
    pub const NONE: &str = "";
}

/// One value of one metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Datapoint {
    /// Its name (`cpu.total`, `filesystem.capacity.used`, `statsd_tester.time.uptime`).
    pub name: String,
    /// Its value.
    pub value: Value,
    /// Its unit ([`unit`]).
    pub unit: String,
    /// When it was read (RFC 3339, UTC).
    pub timestamp: String,
    /// What tells it apart from other datapoints of the same name (`path`, `interface`,
    /// an application's StatsD tags); omitted when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// A datapoint's value: a finite number, written as an integer when it is one (as Go writes
/// the real collector's unsigned counters).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Value(pub f64);

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if !v.is_finite() {
            // Go's encoder cannot write these; the real framework collector wrote "NaN".
            return s.serialize_str(if v.is_nan() { "NaN" } else { "Inf" });
        }
        // Integral values within f64's exact range print as integers.
        if v.fract() == 0.0 && v.abs() < 9.007_199_254_740_992e15 {
            if v >= 0.0 {
                return s.serialize_u64(v as u64);
            }
            return s.serialize_i64(v as i64);
        }
        s.serialize_f64(v)
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value(v as f64)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value(v)
    }
}

/// What a message's datapoints are about: the node, and for containers, which container of
/// which task of which framework. `mesos_id` and `hostname` are always written, the rest
/// only when known.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Dimensions {
    /// The agent's id (agents), the leading master's id (masters), "" before it is known.
    pub mesos_id: String,
    /// The cluster's id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster_id: String,
    /// The container.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_id: String,
    /// The container's executor.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub executor_id: String,
    /// The framework's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub framework_name: String,
    /// The framework.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub framework_id: String,
    /// The framework's role.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub framework_role: String,
    /// The framework's principal.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub framework_principal: String,
    /// The task's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub task_name: String,
    /// The task.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub task_id: String,
    /// The node, by its IP (DC/OS uses the IP as the hostname).
    pub hostname: String,
    /// The task's labels (but Cosmos' own), for container resource metrics.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The names of the identity dimensions: a tag or label of the same (sanitized) name is
/// dropped, so a task cannot pass its metrics off as another container's.
pub const DIMENSION_NAMES: [&str; 11] = [
    "mesos_id",
    "cluster_id",
    "container_id",
    "executor_id",
    "framework_name",
    "framework_id",
    "framework_role",
    "framework_principal",
    "task_name",
    "task_id",
    "hostname",
];

/// Whether a tag named `name` would name an identity dimension once sanitized as a
/// Prometheus label.
pub fn is_dimension_name(name: &str) -> bool {
    DIMENSION_NAMES.contains(&crate::prometheus::label_name(name).as_str())
}

impl Dimensions {
    /// The dimensions as name/value pairs, the empty ones left out, labels last.
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = [
            ("mesos_id", self.mesos_id.as_str()),
            ("cluster_id", &self.cluster_id),
            ("container_id", &self.container_id),
            ("executor_id", &self.executor_id),
            ("framework_name", &self.framework_name),
            ("framework_id", &self.framework_id),
            ("framework_role", &self.framework_role),
            ("framework_principal", &self.framework_principal),
            ("task_name", &self.task_name),
            ("task_id", &self.task_id),
            ("hostname", &self.hostname),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
        out.extend(self.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        out
    }
}

/// A set of datapoints that share their dimensions: the answer of `/v0/node`,
/// `/v0/containers/{id}` and `/v0/containers/{id}/app[/{metric}]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The datapoints.
    pub datapoints: Vec<Datapoint>,
    /// Their dimensions.
    pub dimensions: Dimensions,
}

/// The answer of `/v0/ping`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ping {
    /// Always true.
    pub ok: bool,
    /// Now (RFC 3339, UTC, whole seconds).
    pub timestamp: String,
}

/// Now, as the node and container collectors write it (RFC 3339 with nanoseconds, UTC).
pub fn now_nanos() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Now in whole seconds (RFC 3339, UTC), as `/v0/ping` and application datapoints write it.
pub fn now_secs() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_as_go_prints_them() {
        let json = |v: f64| serde_json::to_string(&Value(v)).unwrap();
        assert_eq!(json(8_253_919_232.0), "8253919232");
        assert_eq!(json(12.5), "12.5");
        assert_eq!(json(-3.0), "-3");
        assert_eq!(json(1e300), "1e+300");
        assert_eq!(json(f64::NAN), "\"NaN\"");
    }

    #[test]
    fn dimensions_write_mesos_id_and_hostname_always_and_the_rest_when_known() {
        let d = Dimensions {
            hostname: "10.0.0.2".into(),
            cluster_id: "c".into(),
            ..Dimensions::default()
        };
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            serde_json::json!({"mesos_id": "", "cluster_id": "c", "hostname": "10.0.0.2"})
        );
        assert_eq!(d.pairs(), [("cluster_id", "c"), ("hostname", "10.0.0.2")]);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let s = now_secs();
        assert!(chrono::DateTime::parse_from_rfc3339(&s).is_ok(), "{s}");
        assert!(s.ends_with('Z') && !s.contains('.'), "{s}");
        assert!(chrono::DateTime::parse_from_rfc3339(&now_nanos()).is_ok());
    }
}
