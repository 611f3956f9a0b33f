//! Resource statistics of the running containers (`/monitor/statistics`, `/containers`), in
//! Mesos' `ResourceStatistics` fields: their limits (`cpus_limit`, `mem_limit_bytes`,
//! `disk_limit_bytes`), what their processes use from `/proc` (every process of the
//! container's tree: `processes`, `threads`, cpu times, `mem_rss_bytes`, and
//! `mem_total_bytes` as the same resident memory), and their sandbox's disk use
//! (`disk_used_bytes`, measured as Mesos' `disk/du` isolator does, at most every
//! [`DU_INTERVAL`] and bounded in files).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::agent::procfs::{self, Stat, PAGE_SIZE, TICKS_PER_SECOND};
use crate::agent::state::{Run, Shared};
use crate::api;
use crate::resources::Resources;

/// How long a sandbox's measured disk use is reused (Mesos' `container_disk_watch_interval`).
pub(crate) const DU_INTERVAL: Duration = Duration::from_secs(15);
/// Files counted per sandbox at most: a sandbox with more reads as what was counted.
pub(crate) const DU_MAX_ENTRIES: usize = 100_000;

/// The sandboxes' disk use by container: (measured at, bytes).
#[derive(Default)]
pub(crate) struct DiskUsage(Mutex<HashMap<String, (Instant, u64)>>);

impl DiskUsage {
    /// The disk use of each sandbox, measured again where older than [`DU_INTERVAL`];
    /// measurements of containers not asked about are forgotten. Blocking.
    fn of(&self, sandboxes: &[(&str, &Path)]) -> HashMap<String, u64> {
        let stale: Vec<(&str, &Path)> = {
            let known = self.lock();
            sandboxes
                .iter()
                .filter(|(id, _)| {
                    known
                        .get(*id)
                        .is_none_or(|(at, _)| at.elapsed() >= DU_INTERVAL)
                })
                .copied()
                .collect()
        };
        // Measured outside the lock: a big sandbox must not hold up other requests' reads.
        let measured: Vec<(String, u64)> = stale
            .into_iter()
            .map(|(id, dir)| (id.to_string(), du(dir, DU_MAX_ENTRIES)))
            .collect();
        let mut known = self.lock();
        let now = Instant::now();
        for (id, bytes) in measured {
            known.insert(id, (now, bytes));
        }
        let asked: HashSet<&str> = sandboxes.iter().map(|(id, _)| *id).collect();
        known.retain(|id, _| asked.contains(id.as_str()));
        known.iter().map(|(id, (_, b))| (id.clone(), *b)).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, u64)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Bytes of disk the files under `dir` take (`du -s`: allocated blocks, each inode once, no
/// symlink followed, staying on `dir`'s filesystem), counting at most `max_entries` files.
pub(crate) fn du(dir: &Path, max_entries: usize) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(root) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let dev = root.dev();
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut entries = 0usize;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(path) = todo.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        entries += 1;
        if entries > max_entries {
            break;
        }
        if meta.dev() != dev || !seen.insert(meta.ino()) {
            continue;
        }
        total = total.saturating_add(meta.blocks().saturating_mul(512));
        if meta.is_dir() {
            if let Ok(list) = std::fs::read_dir(&path) {
                todo.extend(list.flatten().map(|e| e.path()));
            }
        }
    }
    total
}

/// A container's statistics: what its processes use now, its limits and its disk use.
fn statistics(
    run: &Run,
    processes: &HashMap<u32, Stat>,
    children: &HashMap<u32, Vec<u32>>,
    disk_used: Option<u64>,
) -> Value {
    let res = Resources::from_api(&run.task.resources).unwrap_or_default();
    let mut s = json!({
        "timestamp": api::now_secs(),
        "cpus_limit": res.cpus,
        "mem_limit_bytes": (res.mem * 1_048_576.0) as u64,
    });
    if let Some(pid) = run.pid {
        let u = procfs::tree_usage(pid, processes, children);
        let rss = u.rss_pages * PAGE_SIZE;
        s["processes"] = json!(u.processes);
        s["threads"] = json!(u.threads);
        s["cpus_user_time_secs"] = json!(u.user_ticks as f64 / TICKS_PER_SECOND);
        s["cpus_system_time_secs"] = json!(u.system_ticks as f64 / TICKS_PER_SECOND);
        s["mem_rss_bytes"] = json!(rss);
        s["mem_total_bytes"] = json!(rss);
    }
    if res.disk > 0.0 {
        s["disk_limit_bytes"] = json!((res.disk * 1_048_576.0) as u64);
    }
    if let Some(used) = disk_used {
        s["disk_used_bytes"] = json!(used);
    }
    s
}

/// One entry per running container (a custom executor's tasks share theirs), with its
/// statistics, built from one read of the process table. Blocking.
fn containers_with_statistics(shared: &Shared) -> Vec<(Run, Value)> {
    let runs: Vec<Run> = {
        let st = shared.lock();
        let mut by_container: BTreeMap<&str, &Run> = BTreeMap::new();
        for r in st.live_runs() {
            by_container.entry(r.container_id.as_str()).or_insert(r);
        }
        by_container.into_values().cloned().collect()
    };
    let processes = procfs::processes();
    let children = procfs::children(&processes);
    let sandboxes: Vec<(&str, &Path)> = runs
        .iter()
        .filter(|r| !r.sandbox.as_os_str().is_empty())
        .map(|r| (r.container_id.as_str(), r.sandbox.as_path()))
        .collect();
    let disk = shared.disk_usage.of(&sandboxes);
    runs.into_iter()
        .map(|r| {
            let s = statistics(
                &r,
                &processes,
                &children,
                disk.get(&r.container_id).copied(),
            );
            (r, s)
        })
        .collect()
}

/// The statistics of every running container, read off the async threads.
async fn read(shared: Shared) -> Vec<(Run, Value)> {
    tokio::task::spawn_blocking(move || containers_with_statistics(&shared))
        .await
        .unwrap_or_default()
}

/// `/monitor/statistics`.
pub(super) async fn statistics_endpoint(State(shared): State<Shared>) -> Response {
    let out: Vec<Value> = read(shared)
        .await
        .into_iter()
        .map(|(r, s)| {
            json!({
                "executor_id": r.executor_id,
                "executor_name": r.task.name,
                "framework_id": r.framework_id(),
                "source": r.task.task_id.value,
                "statistics": s,
            })
        })
        .collect();
    Json(out).into_response()
}

/// `/containers`.
pub(super) async fn containers(State(shared): State<Shared>) -> Response {
    let host = shared.host();
    let out: Vec<Value> = read(shared)
        .await
        .into_iter()
        .map(|(r, s)| {
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
                "statistics": s,
            })
        })
        .collect();
    Json(out).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn du_counts_blocks_once_and_stops_at_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![1u8; 64 * 1024]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), vec![1u8; 64 * 1024]).unwrap();
        std::fs::hard_link(dir.path().join("a"), dir.path().join("a-again")).unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("root")).unwrap();
        let all = du(dir.path(), DU_MAX_ENTRIES);
        assert!(all >= 128 * 1024, "{all}");
        assert!(
            all < 256 * 1024,
            "hard link or symlink target counted: {all}"
        );
        assert!(du(dir.path(), 1) < all);
        assert_eq!(du(&dir.path().join("missing"), 10), 0);
    }

    #[test]
    fn disk_use_is_measured_again_only_when_stale_and_forgotten_when_gone() {
        let dir = tempfile::tempdir().unwrap();
        let usage = DiskUsage::default();
        std::fs::write(dir.path().join("f"), vec![1u8; 8192]).unwrap();
        let first = usage.of(&[("c1", dir.path())])["c1"];
        std::fs::write(dir.path().join("g"), vec![1u8; 65536]).unwrap();
        // Within the interval: the measurement is reused.
        assert_eq!(usage.of(&[("c1", dir.path())])["c1"], first);
        assert!(usage.of(&[]).is_empty());
        assert!(usage.of(&[("c1", dir.path())])["c1"] > first);
    }
}
