//! Resource statistics of the running containers (`/monitor/statistics`, `/containers`):
//! their limits, and cpu times and memory of their leading process from `/proc`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::agent::procfs::{Stat, PAGE_SIZE, TICKS_PER_SECOND};
use crate::agent::state::{Run, Shared};
use crate::api;
use crate::resources::Resources;

/// CPU times and RSS of a container's leading process.
fn process_stats(pid: u32) -> Value {
    let stat = Stat::of(pid).unwrap_or_default();
    json!({
        "timestamp": api::now_secs(),
        "cpus_user_time_secs": stat.user_ticks as f64 / TICKS_PER_SECOND,
        "cpus_system_time_secs": stat.system_ticks as f64 / TICKS_PER_SECOND,
        "mem_rss_bytes": stat.rss_pages * PAGE_SIZE,
    })
}

/// A running task's entry of `/monitor/statistics`.
fn run_statistics(run: &Run) -> Value {
    let res = Resources::from_api(&run.task.resources).unwrap_or_default();
    let mut s = run.pid.map(process_stats).unwrap_or_else(|| json!({}));
    s["cpus_limit"] = json!(res.cpus);
    s["mem_limit_bytes"] = json!((res.mem * 1_048_576.0) as u64);
    json!({
        "executor_id": run.executor_id,
        "executor_name": run.task.name,
        "framework_id": run.framework_id(),
        "source": run.task.task_id.value,
        "statistics": s,
    })
}

/// `/monitor/statistics`.
pub(super) async fn statistics(State(shared): State<Shared>) -> Response {
    let out: Vec<Value> = shared.lock().live_runs().map(run_statistics).collect();
    Json(out).into_response()
}

/// `/containers`.
pub(super) async fn containers(State(shared): State<Shared>) -> Response {
    let host = shared.host();
    let out: Vec<Value> = shared
        .lock()
        .live_runs()
        .map(|r| {
            json!({
                "container_id": r.container_id,
                "executor_id": r.executor_id,
                "executor_name": r.task.name,
                "framework_id": r.framework_id(),
                "source": r.task.task_id.value,
                "status": {
                    "container_id": {"value": r.container_id},
                    "executor_pid": r.pid,
                    "network_infos": [{"ip_addresses": [{"ip_address": host}]}],
                },
                "statistics": r.pid.map(process_stats),
            })
        })
        .collect();
    Json(out).into_response()
}
