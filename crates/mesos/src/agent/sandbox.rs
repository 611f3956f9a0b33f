//! Sandboxes: where a task's files live, the environment it gets, and the files API over them.

use std::path::{Component, Path, PathBuf};

use serde_json::{json, Value};

use crate::api::{ExecutorInfo, Resource, TaskInfo};

/// The sandbox of a run: `work_dir/slaves/<agent>/frameworks/<fw>/executors/<ex>/runs/<container>`.
pub fn sandbox_dir(
    work_dir: &Path,
    agent_id: &str,
    framework_id: &str,
    executor_id: &str,
    container_id: &str,
) -> PathBuf {
    work_dir
        .join("slaves")
        .join(agent_id)
        .join("frameworks")
        .join(framework_id)
        .join("executors")
        .join(executor_id)
        .join("runs")
        .join(container_id)
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

/// `PORT0..n`, `PORT` and `PORTS` for a task's host ports, as Mesos and Marathon set them.
pub fn port_env(ports: &[u16]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("PORT{i}"), p.to_string()))
        .collect();
    if let Some(p) = ports.first() {
        env.push(("PORT".into(), p.to_string()));
        let all: Vec<String> = ports.iter().map(u16::to_string).collect();
        env.push(("PORTS".into(), all.join(",")));
    }
    env
}

/// `PORT_<NAME>`: upper case, anything but letters and digits becomes `_`.
pub fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

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

/// Why a files request fails.
#[derive(Debug, PartialEq, Eq)]
pub enum FilesError {
    /// 400.
    BadRequest(String),
    /// 404.
    NotFound(String),
}

/// Resolves a path a client asked for, allowing only paths inside `root`.
pub fn resolve(root: &Path, requested: &str) -> Result<PathBuf, FilesError> {
    if requested.is_empty() {
        return Err(FilesError::BadRequest(
            "Expecting 'path=value' in query".into(),
        ));
    }
    let path = Path::new(requested);
    // Sandbox paths may be given as absolute paths (what `directory` in state shows).
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(FilesError::NotFound(format!(
            "Failed to find '{requested}'"
        )));
    }
    let full = if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    };
    let canonical = full
        .canonicalize()
        .map_err(|_| FilesError::NotFound(format!("Failed to find '{requested}'")))?;
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    if !canonical.starts_with(&root) {
        return Err(FilesError::NotFound(format!(
            "Failed to find '{requested}'"
        )));
    }
    Ok(canonical)
}

fn mode_string(mode: u32, is_dir: bool) -> String {
    let mut s = String::with_capacity(10);
    s.push(if is_dir { 'd' } else { '-' });
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}

/// `/files/browse`: the entries of a directory.
pub fn browse(path: &Path) -> Result<Value, FilesError> {
    use std::os::unix::fs::MetadataExt;
    let entries = std::fs::read_dir(path)
        .map_err(|_| FilesError::NotFound(format!("Failed to find '{}'", path.display())))?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Ok(md) = e.metadata() else { continue };
        out.push(json!({
            "path": e.path().display().to_string(),
            "nlink": md.nlink(),
            "size": md.size(),
            "mtime": md.mtime(),
            "mode": mode_string(md.mode(), md.is_dir()),
            "uid": user_name(md.uid()),
            "gid": group_name(md.gid()),
        }));
    }
    out.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    Ok(Value::Array(out))
}

/// The most a single `/files/read` returns.
pub const MAX_READ: u64 = 4 << 20;

/// `/files/read`: `offset=-1` gives the size with no data (how clients find the end to tail).
pub fn read(path: &Path, offset: Option<&str>, length: Option<&str>) -> Result<Value, FilesError> {
    use std::io::{Read, Seek, SeekFrom};
    let offset: i64 = match offset {
        None => 0,
        Some(o) => o.parse().map_err(|_| {
            FilesError::BadRequest(format!(
                "Failed to parse offset: Failed to convert '{o}' to number"
            ))
        })?,
    };
    let length: Option<i64> = match length {
        None => None,
        Some(l) => Some(l.parse().map_err(|_| {
            FilesError::BadRequest(format!(
                "Failed to parse length: Failed to convert '{l}' to number"
            ))
        })?),
    };
    if offset < -1 {
        return Err(FilesError::BadRequest(format!(
            "Negative offset provided: {offset}"
        )));
    }
    if length.is_some_and(|l| l < -1) {
        return Err(FilesError::BadRequest(format!(
            "Negative length provided: {}",
            length.unwrap_or(0)
        )));
    }
    if path.is_dir() {
        return Err(FilesError::BadRequest("Cannot read a directory".into()));
    }
    let mut file = std::fs::File::open(path)
        .map_err(|_| FilesError::NotFound(format!("Failed to find '{}'", path.display())))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    if offset == -1 {
        return Ok(json!({"data": "", "offset": size}));
    }
    let offset = (offset as u64).min(size);
    let want = match length {
        None | Some(-1) => size - offset,
        Some(l) => (l as u64).min(size - offset),
    }
    .min(MAX_READ);
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| FilesError::BadRequest(e.to_string()))?;
    let mut buf = vec![0u8; want as usize];
    let n = file
        .read(&mut buf)
        .map_err(|e| FilesError::BadRequest(e.to_string()))?;
    buf.truncate(n);
    Ok(json!({"data": String::from_utf8_lossy(&buf), "offset": offset}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_follows_mesos_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("stdout");
        std::fs::write(&f, "hello world").unwrap();
        assert_eq!(
            read(&f, Some("-1"), None).unwrap(),
            json!({"data": "", "offset": 11})
        );
        assert_eq!(
            read(&f, Some("6"), Some("3")).unwrap(),
            json!({"data": "wor", "offset": 6})
        );
        assert_eq!(
            read(&f, Some("20"), None).unwrap(),
            json!({"data": "", "offset": 11})
        );
        assert!(matches!(
            read(&f, Some("x"), None),
            Err(FilesError::BadRequest(_))
        ));
        assert!(matches!(
            resolve(dir.path(), "../etc/passwd"),
            Err(FilesError::NotFound(_))
        ));
        assert!(matches!(
            resolve(dir.path(), "/etc/passwd"),
            Err(FilesError::NotFound(_))
        ));
        assert_eq!(
            resolve(dir.path(), "stdout").unwrap(),
            f.canonicalize().unwrap()
        );
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
