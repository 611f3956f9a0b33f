//! Marathon 1.6 wire types: the app definition as clients send it ([`AppSpec`], every field
//! optional so one type serves POST, PUT and PATCH) and as Marathon returns it ([`App`], every
//! default filled in), the error bodies, and the path form of app ids.
//!
//! Field names are Marathon 1.6's and no others: real clients (marathon-python) build objects
//! from the JSON with no catch-all, so an extra field breaks them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Marathon's version string in `/v2/info`.
pub const MARATHON_VERSION: &str = "1.6.322";

/// First service port Marathon hands out for `port: 0` (`--local_port_min`).
pub const SERVICE_PORT_MIN: u16 = 10000;
/// Last service port (`--local_port_max` is exclusive in Marathon).
pub const SERVICE_PORT_MAX: u16 = 20000;

/// A port definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortDefinition {
    /// The service port (0: Marathon picks one); with `requirePorts`, also the host port.
    #[serde(default)]
    pub port: u32,
    /// `tcp`, `udp` or `udp,tcp`.
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// Its name (`PORT_<NAME>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

fn default_protocol() -> String {
    "tcp".into()
}

/// A health check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// `HTTP`, `HTTPS`, `TCP`, `COMMAND`, `MESOS_HTTP`, `MESOS_HTTPS`, `MESOS_TCP`.
    #[serde(default = "default_hc_protocol")]
    pub protocol: String,
    /// The HTTP path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Which of the task's ports to probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_index: Option<u32>,
    /// A fixed port to probe instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// For `COMMAND`: `{"value": "..."}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Value>,
    /// Failures before the first success that do not count.
    #[serde(default = "default_grace")]
    pub grace_period_seconds: u64,
    /// Seconds between probes.
    #[serde(default = "default_interval")]
    pub interval_seconds: u64,
    /// Seconds a probe may take.
    #[serde(default = "default_hc_timeout")]
    pub timeout_seconds: u64,
    /// Consecutive failures after which the task is killed (0: never).
    #[serde(default = "default_max_failures")]
    pub max_consecutive_failures: u32,
    /// Treat 1xx as healthy.
    #[serde(default)]
    pub ignore_http1xx: bool,
    /// Delay before the first probe (Mesos-side checks).
    #[serde(default = "default_delay")]
    pub delay_seconds: u64,
    /// `IPv4` or `IPv6`.
    #[serde(default = "default_ip_protocol")]
    pub ip_protocol: String,
}

fn default_hc_protocol() -> String {
    "HTTP".into()
}
fn default_grace() -> u64 {
    300
}
fn default_interval() -> u64 {
    60
}
fn default_hc_timeout() -> u64 {
    20
}
fn default_max_failures() -> u32 {
    3
}
fn default_delay() -> u64 {
    15
}
fn default_ip_protocol() -> String {
    "IPv4".into()
}

/// How a rolling change proceeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpgradeStrategy {
    /// Share of `instances` that must stay healthy during the change (0..1).
    #[serde(default = "one")]
    pub minimum_health_capacity: f64,
    /// Share of `instances` that may run on top during the change (0..1).
    #[serde(default = "one")]
    pub maximum_over_capacity: f64,
}

fn one() -> f64 {
    1.0
}

impl Default for UpgradeStrategy {
    fn default() -> Self {
        UpgradeStrategy {
            minimum_health_capacity: 1.0,
            maximum_over_capacity: 1.0,
        }
    }
}

/// What happens to tasks on an unreachable agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnreachableStrategy {
    /// Seconds after which a replacement is launched.
    #[serde(default = "default_inactive_after")]
    pub inactive_after_seconds: u64,
    /// Seconds after which the unreachable task is forgotten.
    #[serde(default = "default_expunge_after")]
    pub expunge_after_seconds: u64,
}

fn default_inactive_after() -> u64 {
    0
}
fn default_expunge_after() -> u64 {
    0
}

impl Default for UnreachableStrategy {
    fn default() -> Self {
        UnreachableStrategy {
            inactive_after_seconds: default_inactive_after(),
            expunge_after_seconds: default_expunge_after(),
        }
    }
}

/// A file the fetcher puts in the sandbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fetch {
    /// A local path or http(s) URI.
    pub uri: String,
    /// chmod +x.
    #[serde(default)]
    pub executable: bool,
    /// Extract archives.
    #[serde(default = "default_true")]
    pub extract: bool,
    /// Cache it.
    #[serde(default)]
    pub cache: bool,
    /// Save as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_path: Option<String>,
}

fn default_true() -> bool {
    true
}

/// `versionInfo`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// Last change of anything (including `instances`).
    pub last_scaling_at: String,
    /// Last change of the task's configuration (not `instances`).
    pub last_config_change_at: String,
}

impl VersionInfo {
    /// Not yet stored.
    pub fn is_unset(&self) -> bool {
        self.last_scaling_at.is_empty()
    }
}

/// An app as a client sends it: every field optional. POST fills the rest with defaults;
/// PUT and PATCH change only the fields present (Marathon 1.6's partial update), unless a
/// PUT says `partialUpdate=false` (then it is the whole definition).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct AppSpec {
    pub id: Option<String>,
    pub cmd: Option<Option<String>>,
    pub args: Option<Option<Vec<String>>>,
    pub user: Option<Option<String>>,
    pub env: Option<BTreeMap<String, Value>>,
    pub instances: Option<i64>,
    pub cpus: Option<f64>,
    pub mem: Option<f64>,
    pub disk: Option<f64>,
    pub gpus: Option<i64>,
    pub executor: Option<String>,
    pub constraints: Option<Vec<Vec<String>>>,
    pub uris: Option<Vec<String>>,
    pub fetch: Option<Vec<Fetch>>,
    pub store_urls: Option<Vec<String>>,
    pub backoff_seconds: Option<f64>,
    pub backoff_factor: Option<f64>,
    pub max_launch_delay_seconds: Option<f64>,
    pub container: Option<Option<Value>>,
    pub health_checks: Option<Vec<HealthCheck>>,
    pub readiness_checks: Option<Vec<Value>>,
    pub dependencies: Option<Vec<String>>,
    pub upgrade_strategy: Option<UpgradeStrategy>,
    pub labels: Option<BTreeMap<String, String>>,
    pub accepted_resource_roles: Option<Option<Vec<String>>>,
    pub ip_address: Option<Option<Value>>,
    pub version: Option<String>,
    pub version_info: Option<Value>,
    pub residency: Option<Option<Value>>,
    pub secrets: Option<BTreeMap<String, Value>>,
    pub task_kill_grace_period_seconds: Option<Option<f64>>,
    pub unreachable_strategy: Option<Value>,
    pub kill_selection: Option<String>,
    pub ports: Option<Vec<i64>>,
    pub port_definitions: Option<Vec<PortDefinition>>,
    pub require_ports: Option<bool>,
    pub networks: Option<Vec<Value>>,
    pub tty: Option<Option<bool>>,
    // Read-only fields that clients echo back from a GET; accepted and ignored, as Marathon does.
    pub tasks_staged: Option<Value>,
    pub tasks_running: Option<Value>,
    pub tasks_healthy: Option<Value>,
    pub tasks_unhealthy: Option<Value>,
    pub deployments: Option<Value>,
    pub tasks: Option<Value>,
    pub last_task_failure: Option<Value>,
    pub task_stats: Option<Value>,
    pub readiness_check_results: Option<Value>,
}

/// An app as Marathon stores and returns it, with its collections even when empty and its
/// unset options left out, as Marathon answers; reading one back fills what is missing
/// from the defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs)]
pub struct App {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub env: BTreeMap<String, Value>,
    pub instances: u32,
    pub cpus: f64,
    pub mem: f64,
    pub disk: f64,
    pub gpus: u32,
    pub executor: String,
    pub constraints: Vec<Vec<String>>,
    #[serde(skip_serializing)]
    pub uris: Vec<String>,
    pub fetch: Vec<Fetch>,
    #[serde(skip_serializing)]
    pub store_urls: Vec<String>,
    pub backoff_seconds: f64,
    pub backoff_factor: f64,
    pub max_launch_delay_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<Value>,
    pub health_checks: Vec<HealthCheck>,
    pub readiness_checks: Vec<Value>,
    pub dependencies: Vec<String>,
    pub upgrade_strategy: UpgradeStrategy,
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_resource_roles: Option<Vec<String>>,
    #[serde(skip_serializing)]
    pub ip_address: Option<Value>,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residency: Option<Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_kill_grace_period_seconds: Option<f64>,
    pub unreachable_strategy: UnreachableStrategy,
    pub kill_selection: String,
    #[serde(skip_serializing)]
    pub ports: Vec<u32>,
    pub port_definitions: Vec<PortDefinition>,
    pub require_ports: bool,
    pub networks: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    #[serde(skip_serializing_if = "VersionInfo::is_unset")]
    pub version_info: VersionInfo,
}

impl Default for App {
    fn default() -> Self {
        App::with_defaults(String::new())
    }
}

impl App {
    /// An app with every default, for `id`.
    pub fn with_defaults(id: String) -> App {
        App {
            id,
            cmd: None,
            args: None,
            user: None,
            env: BTreeMap::new(),
            instances: 1,
            cpus: 1.0,
            mem: 128.0,
            disk: 0.0,
            gpus: 0,
            executor: String::new(),
            constraints: Vec::new(),
            uris: Vec::new(),
            fetch: Vec::new(),
            store_urls: Vec::new(),
            backoff_seconds: 1.0,
            backoff_factor: 1.15,
            max_launch_delay_seconds: 3600.0,
            container: None,
            health_checks: Vec::new(),
            readiness_checks: Vec::new(),
            dependencies: Vec::new(),
            upgrade_strategy: UpgradeStrategy::default(),
            labels: BTreeMap::new(),
            accepted_resource_roles: None,
            ip_address: None,
            version: String::new(),
            residency: None,
            secrets: BTreeMap::new(),
            task_kill_grace_period_seconds: None,
            unreachable_strategy: UnreachableStrategy::default(),
            kill_selection: "YOUNGEST_FIRST".into(),
            ports: Vec::new(),
            port_definitions: vec![PortDefinition {
                port: 0,
                protocol: "tcp".into(),
                name: Some("default".into()),
                labels: BTreeMap::new(),
            }],
            require_ports: false,
            networks: vec![serde_json::json!({"mode": "host"})],
            tty: None,
            version_info: VersionInfo {
                last_scaling_at: String::new(),
                last_config_change_at: String::new(),
            },
        }
    }

    /// Whether `other` differs from this app only in `instances` (a scale, not a config change).
    pub fn same_config(&self, other: &App) -> bool {
        let mut a = self.clone();
        let mut b = other.clone();
        for x in [&mut a, &mut b] {
            x.instances = 0;
            x.version = String::new();
            x.version_info = VersionInfo {
                last_scaling_at: String::new(),
                last_config_change_at: String::new(),
            };
        }
        a == b
    }

    /// The Mesos task id prefix of this app: its path without the leading `/`, `/` as `_`.
    pub fn task_id_prefix(&self) -> String {
        self.id.trim_start_matches('/').replace('/', "_")
    }
}

/// Where a validation error is and what it says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON path of the offending field (`/cpus`, `/portDefinitions(0)/port`).
    pub path: String,
    /// The messages.
    pub errors: Vec<String>,
}

/// An id path: `/a/b` from `a/b`, `/a/b/`, `./b` relative to `base`.
pub fn canonical_id(raw: &str, base: &str) -> String {
    let joined = if raw.starts_with('/') {
        raw.to_string()
    } else {
        format!("{}/{raw}", base.trim_end_matches('/'))
    };
    let mut parts: Vec<&str> = Vec::new();
    for seg in joined.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The parent group of an app id (`/a/b` -> `/a`, `/x` -> `/`).
pub fn parent_of(id: &str) -> String {
    match id.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => id[..i].to_string(),
    }
}

/// A timestamp in Marathon's form: ISO 8601, UTC, milliseconds.
pub fn timestamp(at: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// Now, in Marathon's form.
pub fn now() -> String {
    timestamp(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_made_absolute_and_clean() {
        assert_eq!(canonical_id("foo", "/"), "/foo");
        assert_eq!(canonical_id("/a/b/", "/"), "/a/b");
        assert_eq!(canonical_id("../c", "/a/b"), "/a/c");
        assert_eq!(canonical_id("./d", "/a"), "/a/d");
        assert_eq!(parent_of("/a/b"), "/a");
        assert_eq!(parent_of("/a"), "/");
    }

    #[test]
    fn timestamps_have_milliseconds() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_440_621_204_225);
        assert_eq!(timestamp(t), "2015-08-26T20:33:24.225Z");
    }

    #[test]
    fn a_default_app_serialises_with_marathon_field_names() {
        let app = App::with_defaults("/x".into());
        let v = serde_json::to_value(&app).unwrap();
        for key in [
            "backoffFactor",
            "maxLaunchDelaySeconds",
            "portDefinitions",
            "requirePorts",
            "upgradeStrategy",
            "killSelection",
            "unreachableStrategy",
        ] {
            assert!(v.get(key).is_some(), "{key} missing from {v}");
        }
        assert_eq!(v["upgradeStrategy"]["minimumHealthCapacity"], 1.0);
    }
}
