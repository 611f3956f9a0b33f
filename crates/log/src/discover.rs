//! Finding a task's run from the Mesos master's state, as dcos-log v2's `/task/{id}` does
//! before it redirects to the agent that has the task's sandbox.

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, LOCATION};
use serde_json::Value;

/// Where a task ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRun {
    /// The task's id.
    pub task_id: String,
    /// Its agent.
    pub agent_id: String,
    /// Its framework.
    pub framework_id: String,
    /// Its executor's id (a command task's is the task id).
    pub executor_id: String,
    /// The run's (outermost) container.
    pub container_id: String,
}

/// Why a task cannot be found.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    /// No task has this name or id.
    #[error("task not found")]
    NotFound,
    /// Several tasks match.
    #[error("found more then 1 task with name {name}: {ids:?}")]
    Ambiguous {
        /// What was looked for.
        name: String,
        /// The tasks it matched.
        ids: Vec<String>,
    },
    /// The task has no container yet.
    #[error("invalid task. Container ID not found")]
    NoContainer,
    /// The master's state could not be read.
    #[error("cannot read the Mesos master's state from {url}: {reason}")]
    State {
        /// The state URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// The run of the task whose name is `name` or whose id contains it (DC/OS' lookup), among
/// running tasks, else among completed ones.
pub fn find(state: &Value, name: &str) -> Result<TaskRun, FindError> {
    for completed in [false, true] {
        let frameworks = state["frameworks"].as_array().into_iter().flatten().chain(
            completed
                .then(|| state["completed_frameworks"].as_array())
                .flatten()
                .into_iter()
                .flatten(),
        );
        let list = if completed {
            "completed_tasks"
        } else {
            "tasks"
        };
        let found: Vec<&Value> = frameworks
            .flat_map(|f| f[list].as_array().into_iter().flatten())
            .filter(|t| {
                t["name"].as_str() == Some(name)
                    || t["id"].as_str().is_some_and(|id| id.contains(name))
            })
            .collect();
        match found.as_slice() {
            [] => continue,
            [task] => return run_of(task),
            many => {
                return Err(FindError::Ambiguous {
                    name: name.to_string(),
                    ids: many
                        .iter()
                        .filter_map(|t| t["id"].as_str().map(str::to_string))
                        .collect(),
                })
            }
        }
    }
    Err(FindError::NotFound)
}

fn run_of(task: &Value) -> Result<TaskRun, FindError> {
    let text = |key: &str| task[key].as_str().unwrap_or_default().to_string();
    let task_id = text("id");
    // The latest status that names a container; its outermost parent is the run.
    let container = task["statuses"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .find_map(|s| {
            let mut id = s.get("container_status")?.get("container_id")?;
            while let Some(parent) = id.get("parent") {
                id = parent;
            }
            id["value"].as_str().filter(|v| !v.is_empty())
        })
        .ok_or(FindError::NoContainer)?;
    let executor_id = Some(text("executor_id"))
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| task_id.clone());
    Ok(TaskRun {
        agent_id: text("slave_id"),
        framework_id: text("framework_id"),
        executor_id,
        container_id: container.to_string(),
        task_id,
    })
}

/// Reads the master's state, sending the caller's `Authorization` (the master checks the
/// caller, not this service). A standby's redirect to the leader is followed with it, but
/// only to the same port and scheme.
pub async fn state(
    client: &reqwest::Client,
    url: &str,
    authorization: Option<&HeaderValue>,
) -> Result<Value, FindError> {
    let fail = |reason: String| FindError::State {
        url: url.to_string(),
        reason,
    };
    let mut target = reqwest::Url::parse(url).map_err(|e| fail(e.to_string()))?;
    for _ in 0..3 {
        let mut headers = HeaderMap::new();
        if let Some(a) = authorization {
            headers.insert(AUTHORIZATION, a.clone());
        }
        let resp = client
            .get(target.clone())
            .headers(headers)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = resp.status();
        if status.is_redirection() {
            let next = resp
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| target.join(l).ok())
                .ok_or_else(|| fail(format!("{status} without a usable Location")))?;
            if next.scheme() != target.scheme()
                || next.port_or_known_default() != target.port_or_known_default()
            {
                return Err(fail(format!("refused redirect to {next}")));
            }
            target = next;
            continue;
        }
        if !status.is_success() {
            return Err(fail(format!(
                "GET request returned response code {}",
                status.as_u16()
            )));
        }
        return resp.json().await.map_err(|e| fail(e.to_string()));
    }
    Err(fail("too many redirects".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state() -> Value {
        json!({
            "frameworks": [{
                "id": "FW",
                "tasks": [
                    {"id": "web.1234", "name": "web", "framework_id": "FW", "executor_id": "", "slave_id": "S0",
                     "statuses": [
                        {"state": "TASK_STARTING"},
                        {"state": "TASK_RUNNING", "container_status": {"container_id": {"value": "C1"}}}
                     ]},
                    {"id": "pod.task", "name": "t", "framework_id": "FW", "executor_id": "EX", "slave_id": "S1",
                     "statuses": [{"state": "TASK_RUNNING", "container_status": {"container_id": {"value": "child", "parent": {"value": "P"}}}}]},
                    {"id": "staging.1", "name": "staging", "framework_id": "FW", "executor_id": "", "slave_id": "S0", "statuses": []}
                ],
                "completed_tasks": [
                    {"id": "old.1", "name": "old", "framework_id": "FW", "executor_id": "", "slave_id": "S0",
                     "statuses": [{"state": "TASK_FINISHED", "container_status": {"container_id": {"value": "C0"}}}]}
                ]
            }]
        })
    }

    #[test]
    fn a_command_task_runs_under_an_executor_named_after_it() {
        assert_eq!(
            find(&state(), "web").unwrap(),
            TaskRun {
                task_id: "web.1234".into(),
                agent_id: "S0".into(),
                framework_id: "FW".into(),
                executor_id: "web.1234".into(),
                container_id: "C1".into(),
            }
        );
        assert_eq!(find(&state(), "1234").unwrap().task_id, "web.1234");
    }

    #[test]
    fn nested_containers_give_their_outermost_parent() {
        let run = find(&state(), "pod.task").unwrap();
        assert_eq!(
            (run.executor_id.as_str(), run.container_id.as_str()),
            ("EX", "P")
        );
    }

    #[test]
    fn completed_tasks_are_found_after_running_ones() {
        assert_eq!(find(&state(), "old").unwrap().container_id, "C0");
    }

    #[test]
    fn unknown_ambiguous_and_containerless_tasks_are_errors() {
        assert!(matches!(find(&state(), "nope"), Err(FindError::NotFound)));
        assert!(matches!(
            find(&state(), "."),
            Err(FindError::Ambiguous { .. })
        ));
        assert!(matches!(
            find(&state(), "staging"),
            Err(FindError::NoContainer)
        ));
    }
}
