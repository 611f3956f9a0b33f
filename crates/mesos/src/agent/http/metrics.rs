//! `/metrics/snapshot`: the agent's own metrics under Mesos' keys (`slave/tasks_running`,
//! `slave/cpus_used`, `system/load_1min`, ...), which dashboards and dcos-metrics'
//! Prometheus exposition read.

use std::collections::HashSet;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::agent::procfs;
use crate::agent::state::{AgentState, Shared};
use crate::api::{self, TaskState};
use crate::resources::Resources;

/// The snapshot of an agent's state.
fn snapshot_of(st: &AgentState, total: &Resources) -> Value {
    let live: Vec<_> = st.live_runs().collect();
    let used = live.iter().fold(Resources::default(), |acc, r| {
        acc.add(&Resources::from_api(&r.task.resources).unwrap_or_default())
    });
    let count = |state: TaskState| st.runs.values().filter(|r| r.state == state).count();
    let percent = |used: f64, total: f64| if total > 0.0 { used / total } else { 0.0 };
    let executors: HashSet<&str> = live.iter().map(|r| r.container_id.as_str()).collect();
    let mut v = json!({
        "slave/registered": u8::from(st.id.is_some() && st.master.is_some()),
        "slave/uptime_secs": api::now_secs() - st.start_time,
        "slave/executors_running": executors.len(),
        "slave/tasks_staging": count(TaskState::Staging),
        "slave/tasks_starting": count(TaskState::Starting),
        "slave/tasks_running": count(TaskState::Running),
        "slave/tasks_killing": count(TaskState::Killing),
        // Ended tasks the agent still remembers (the last 1000).
        "slave/tasks_finished": count(TaskState::Finished),
        "slave/tasks_failed": count(TaskState::Failed),
        "slave/tasks_killed": count(TaskState::Killed),
        "slave/tasks_lost": count(TaskState::Lost),
        "slave/tasks_error": count(TaskState::Error),
        "slave/cpus_total": total.cpus,
        "slave/cpus_used": used.cpus,
        "slave/cpus_percent": percent(used.cpus, total.cpus),
        "slave/mem_total": total.mem,
        "slave/mem_used": used.mem,
        "slave/mem_percent": percent(used.mem, total.mem),
        "slave/disk_total": total.disk,
        "slave/disk_used": used.disk,
        "slave/disk_percent": percent(used.disk, total.disk),
        "slave/gpus_total": total.gpus,
        "slave/gpus_used": used.gpus,
        "slave/gpus_percent": percent(used.gpus, total.gpus),
    });
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    v["system/cpus_total"] = json!(cpus);
    if let Some((l1, l5, l15)) = procfs::load_averages() {
        v["system/load_1min"] = json!(l1);
        v["system/load_5min"] = json!(l5);
        v["system/load_15min"] = json!(l15);
    }
    if let Some(kib) = procfs::mem_total_kib() {
        v["system/mem_total_bytes"] = json!((kib * 1024.0) as u64);
    }
    if let Some(kib) = procfs::mem_free_kib() {
        v["system/mem_free_bytes"] = json!((kib * 1024.0) as u64);
    }
    v
}

/// `/metrics/snapshot`.
pub(super) async fn snapshot(State(shared): State<Shared>) -> Response {
    let v = snapshot_of(&shared.lock(), &shared.config.resources);
    Json(v).into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn an_idle_agent_reports_its_resources_and_no_tasks() {
        let st = AgentState {
            id: None,
            runs: BTreeMap::new(),
            executors: BTreeMap::new(),
            master: None,
            start_time: api::now_secs() - 5.0,
        };
        let total = Resources {
            cpus: 4.0,
            mem: 1024.0,
            ..Resources::default()
        };
        let v = snapshot_of(&st, &total);
        assert_eq!(v["slave/cpus_total"], 4.0);
        assert_eq!(v["slave/cpus_used"], 0.0);
        assert_eq!(v["slave/cpus_percent"], 0.0);
        assert_eq!(v["slave/tasks_running"], 0);
        assert_eq!(v["slave/registered"], 0);
        assert!(v["slave/uptime_secs"].as_f64().unwrap() >= 5.0);
        assert!(v["system/load_1min"].is_number());
        assert!(v["system/mem_total_bytes"].as_u64().unwrap() > 0);
        // Every value is a number, as dashboards and Prometheus read them.
        assert!(v.as_object().unwrap().values().all(Value::is_number));
    }
}
