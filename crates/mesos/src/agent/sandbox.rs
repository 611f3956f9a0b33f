//! Sandboxes: where a task's files live, and the environment it gets.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::api::{validate_id, ExecutorInfo, InvalidId, Resource, TaskInfo};

/// The sandbox of a run: `work_dir/slaves/<agent>/frameworks/<fw>/executors/<ex>/runs/<container>`.
/// Each id becomes one directory name, so each must be a valid id (no `/`, `.`, `..`).
pub fn sandbox_dir(
    work_dir: &Path,
    agent_id: &str,
    framework_id: &str,
    executor_id: &str,
    container_id: &str,
) -> Result<PathBuf, InvalidSandboxId> {
    let mut dir = work_dir.to_path_buf();
    for (kind, id, what) in [
        ("slaves", agent_id, "agent"),
        ("frameworks", framework_id, "framework"),
        ("executors", executor_id, "executor"),
        ("runs", container_id, "container"),
    ] {
        validate_id(id).map_err(|source| InvalidSandboxId {
            what,
            id: id.escape_debug().to_string(),
            source,
        })?;
        dir.push(kind);
        dir.push(id);
    }
    Ok(dir)
}

/// An id that cannot name a sandbox directory.
#[derive(Debug, thiserror::Error)]
#[error("invalid {what} id '{id}': {source}")]
pub struct InvalidSandboxId {
    /// Which id.
    pub what: &'static str,
    /// The id (escaped).
    pub id: String,
    /// Why.
    #[source]
    pub source: InvalidId,
}

/// The task's host ports, in the order the framework listed them.
pub fn task_ports(resources: &[Resource]) -> Vec<u16> {
    resources
        .iter()
        .filter(|r| r.name == "ports")
        .flat_map(|r| r.ranges.iter().flat_map(|rs| rs.range.iter()))
        .flat_map(|r| (r.begin..=r.end.min(u64::from(u16::MAX))).map(|p| p as u16))
        .collect()
}

pub use dcos_mesos_api::env::{env_name, port_env};

/// Who and where an executor is: what every executor (built-in or custom) finds in its environment.
pub struct ExecutorPlace<'a> {
    /// The node's IP (`HOST`).
    pub host: &'a str,
    /// The run's sandbox.
    pub sandbox: &'a Path,
    /// The framework.
    pub framework_id: &'a str,
    /// The executor.
    pub executor_id: &'a str,
    /// The agent.
    pub agent_id: &'a str,
    /// The agent's `ip:port` (`MESOS_AGENT_ENDPOINT`).
    pub agent_endpoint: &'a str,
}

impl ExecutorPlace<'_> {
    /// `HOST`, `MESOS_SANDBOX`, `MESOS_FRAMEWORK_ID`, `MESOS_AGENT_ENDPOINT` and friends.
    fn env(&self) -> Vec<(String, String)> {
        let sandbox = self.sandbox.display().to_string();
        vec![
            ("HOST".to_string(), self.host.to_string()),
            ("MESOS_SANDBOX".into(), sandbox.clone()),
            ("MESOS_DIRECTORY".into(), sandbox),
            ("MESOS_FRAMEWORK_ID".into(), self.framework_id.into()),
            ("MESOS_EXECUTOR_ID".into(), self.executor_id.into()),
            ("MESOS_AGENT_ENDPOINT".into(), self.agent_endpoint.into()),
            ("MESOS_SLAVE_ID".into(), self.agent_id.into()),
            ("MESOS_AGENT_ID".into(), self.agent_id.into()),
            (
                "MESOS_SLAVE_PID".into(),
                format!("slave(1)@{}", self.agent_endpoint),
            ),
        ]
    }
}

/// The environment of a custom executor: its place, the executor API's settings, then the
/// executor command's own variables.
pub fn executor_env(place: &ExecutorPlace<'_>, info: &ExecutorInfo) -> Vec<(String, String)> {
    let mut env = place.env();
    env.extend(
        [
            ("MESOS_CHECKPOINT", "1"),
            ("MESOS_RECOVERY_TIMEOUT", "15mins"),
            ("MESOS_SUBSCRIPTION_BACKOFF_MAX", "2secs"),
            ("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "5secs"),
            ("MESOS_HTTP_COMMAND_EXECUTOR", "0"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let own = info.command.as_ref().and_then(|c| c.environment.as_ref());
    env.extend(
        own.into_iter()
            .flat_map(|e| e.variables.iter())
            .map(|v| (v.name.clone(), v.value.clone())),
    );
    env
}

/// The environment of a command task: its place, `MESOS_TASK_ID`, `PORT0..n`, `PORTS`,
/// `PORT_<NAME>`, then the task command's own variables.
pub fn task_env(task: &TaskInfo, place: &ExecutorPlace<'_>) -> Vec<(String, String)> {
    let mut env = place.env();
    env.push(("MESOS_TASK_ID".into(), task.task_id.value.clone()));
    let ports = task_ports(&task.resources);
    env.extend(port_env(&ports));
    let named = task
        .discovery
        .as_ref()
        .and_then(|d| d.pointer("/ports/ports"))
        .and_then(Value::as_array);
    for (i, port) in named.into_iter().flatten().enumerate() {
        if let Some(name) = port
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            let number = port
                .get("number")
                .and_then(Value::as_u64)
                .map(|n| n.to_string())
                .or_else(|| ports.get(i).map(u16::to_string));
            if let Some(number) = number {
                env.push((format!("PORT_{}", env_name(name)), number));
            }
        }
    }
    let own = task.command.as_ref().and_then(|c| c.environment.as_ref());
    for v in own.into_iter().flat_map(|e| e.variables.iter()) {
        env.push((v.name.clone(), v.value.clone()));
    }
    env
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sandboxes_are_built_from_valid_ids_only() {
        let work = Path::new("/w");
        assert_eq!(
            sandbox_dir(work, "a", "f", "e", "c").unwrap(),
            Path::new("/w/slaves/a/frameworks/f/executors/e/runs/c")
        );
        for (agent, fw, ex) in [
            ("a", "f", ".."),
            ("a", "..", "e"),
            ("", "f", "e"),
            ("a", "f", "../../../../tmp/x"),
            ("a", "f", "/etc"),
            ("a", "f\n", "e"),
        ] {
            assert!(
                sandbox_dir(work, agent, fw, ex, "c").is_err(),
                "{agent} {fw} {ex}"
            );
        }
    }

    #[test]
    fn env_has_ports_and_names() {
        let task: TaskInfo = serde_json::from_value(json!({
            "name": "web", "task_id": {"value": "t1"}, "agent_id": {"value": "a1"},
            "resources": [{"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 3000, "end": 3000}, {"begin": 2000, "end": 2001}]}}],
            "discovery": {"visibility": "FRAMEWORK", "ports": {"ports": [{"number": 3000, "name": "http-api"}, {"number": 2000}]}},
            "command": {"value": "x", "environment": {"variables": [{"name": "A", "value": "1"}]}}
        })).unwrap();
        let env = task_env(
            &task,
            &ExecutorPlace {
                host: "10.0.0.2",
                sandbox: Path::new("/sb"),
                framework_id: "fw",
                executor_id: "t1",
                agent_id: "a1",
                agent_endpoint: "10.0.0.2:5051",
            },
        );
        let get = |k: &str| {
            env.iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("PORT0"), Some("3000"));
        assert_eq!(get("PORT2"), Some("2001"));
        assert_eq!(get("PORTS"), Some("3000,2000,2001"));
        assert_eq!(get("PORT_HTTP_API"), Some("3000"));
        assert_eq!(get("HOST"), Some("10.0.0.2"));
        assert_eq!(get("A"), Some("1"));
        assert_eq!(get("MESOS_SANDBOX"), Some("/sb"));
        assert_eq!(get("MESOS_TASK_ID"), Some("t1"));
        assert_eq!(get("MESOS_AGENT_ID"), Some("a1"));
    }
}
