//! cgroups v1 of a container: memory and cpu limits, and how its memory limit was hit.
//!
//! A container's cgroups are `mesos/<container_id>` under the agent's own cgroup of each
//! hierarchy (from `/proc/self/cgroup`), never under the root: on a host where the agent is
//! itself contained, the root cgroup belongs to someone else.

use std::path::{Path, PathBuf};

/// The v1 hierarchies a container is limited in.
const CONTROLLERS: [&str; 2] = ["memory", "cpu"];
/// Where the v1 hierarchies are mounted.
const ROOT: &str = "/sys/fs/cgroup";
/// `cpu.cfs_period_us` as Mesos sets it: 100 ms.
const CFS_PERIOD_US: u64 = 100_000;

/// The agent's own path in a v1 hierarchy, e.g. `/process_api/<id>` for memory.
fn own_path(controller: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        controllers
            .split(',')
            .any(|c| c == controller)
            .then(|| path.to_string())
    })
}

/// The dir of a container's cgroup in `controller`, if that hierarchy is mounted here.
fn path(controller: &str, container_id: &str) -> Option<PathBuf> {
    let hierarchy = Path::new(ROOT).join(controller);
    if !hierarchy.join("cgroup.procs").exists() {
        return None;
    }
    let own = own_path(controller)?;
    Some(
        hierarchy
            .join(own.trim_start_matches('/'))
            .join("mesos")
            .join(container_id),
    )
}

/// Whether `dir` is a cgroup this agent would make for `container_id`.
pub(crate) fn is_container_cgroup(dir: &Path, container_id: &str) -> bool {
    CONTROLLERS
        .iter()
        .any(|c| path(c, container_id).is_some_and(|p| p == dir))
}

/// Creates a container's cgroups with its limits: `mem` in MB (0: none), `cpus` (0: none).
/// Hierarchies missing here are skipped with a warning; a failure removes what was made.
pub(crate) fn create(container_id: &str, mem: f64, cpus: f64) -> std::io::Result<Vec<PathBuf>> {
    let mut made = Vec::new();
    for controller in CONTROLLERS {
        let Some(dir) = path(controller, container_id) else {
            tracing::warn!(
                controller,
                container = container_id,
                "no cgroup v1 hierarchy; the container runs without this limit"
            );
            continue;
        };
        let result = fs_err::create_dir_all(&dir).and_then(|()| {
            made.push(dir.clone());
            limit(controller, &dir, mem, cpus)
        });
        if let Err(e) = result {
            remove(&made);
            return Err(e);
        }
    }
    Ok(made)
}

fn limit(controller: &str, dir: &Path, mem: f64, cpus: f64) -> std::io::Result<()> {
    match controller {
        "memory" if mem > 0.0 => {
            let bytes = ((mem * 1_048_576.0) as u64).to_string();
            fs_err::write(dir.join("memory.limit_in_bytes"), &bytes)?;
            // With swap accounting, the same bound on memory plus swap: a task must not
            // escape its limit into swap.
            let memsw = dir.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                fs_err::write(memsw, &bytes)?;
            }
            Ok(())
        }
        "cpu" if cpus > 0.0 => {
            let shares = ((1024.0 * cpus) as u64).max(2);
            fs_err::write(dir.join("cpu.shares"), shares.to_string())?;
            fs_err::write(dir.join("cpu.cfs_period_us"), CFS_PERIOD_US.to_string())?;
            // Mesos' floor for the quota: 1 ms per period.
            let quota = ((cpus * CFS_PERIOD_US as f64) as u64).max(1000);
            fs_err::write(dir.join("cpu.cfs_quota_us"), quota.to_string())
        }
        _ => Ok(()),
    }
}

fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Mesos' message if the container's memory limit was hit and something was killed for it
/// ("Memory limit exceeded: Requested: 64MB Maximum Used: 64MB"), read before removal.
pub(crate) fn memory_limitation(dirs: &[PathBuf]) -> Option<String> {
    let dir = dirs
        .iter()
        .find(|d| d.join("memory.limit_in_bytes").exists())?;
    let limit = read_number(&dir.join("memory.limit_in_bytes"))?;
    let max_used = read_number(&dir.join("memory.max_usage_in_bytes")).unwrap_or(0);
    let oom_kills = std::fs::read_to_string(dir.join("memory.oom_control"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("oom_kill "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        });
    let failed = read_number(&dir.join("memory.failcnt")).unwrap_or(0);
    // Kernels without the `oom_kill` count: allocations failed at the limit.
    let hit = oom_kills.map_or(failed > 0 && max_used >= limit, |n| n > 0);
    hit.then(|| {
        format!(
            "Memory limit exceeded: Requested: {}MB Maximum Used: {}MB",
            limit >> 20,
            max_used >> 20
        )
    })
}

/// Removes a container's cgroups, killing whatever still runs in them (the init is gone by
/// now; stragglers of its pid namespace are being killed by the kernel).
pub(crate) fn remove(dirs: &[PathBuf]) {
    for dir in dirs.iter().rev() {
        for attempt in 0..50 {
            match std::fs::remove_dir(dir) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) if attempt == 49 => {
                    tracing::error!(cgroup = %dir.display(), error = %e, "cannot remove a container's cgroup");
                }
                Err(_) => {
                    let procs =
                        std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                    for pid in procs
                        .lines()
                        .filter_map(|p| p.trim().parse::<i32>().ok())
                        .filter(|p| *p > 0)
                    {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_are_made_under_the_agents_own_and_removed() {
        if !nix::unistd::Uid::effective().is_root() {
            return;
        }
        let id = format!("unit-{}", uuid::Uuid::new_v4());
        let dirs = create(&id, 32.0, 0.5).unwrap();
        for dir in &dirs {
            assert!(dir.is_dir(), "{}", dir.display());
            assert!(dir.ends_with(Path::new("mesos").join(&id)));
        }
        if let Some(mem) = dirs.iter().find(|d| d.starts_with("/sys/fs/cgroup/memory")) {
            assert_eq!(
                read_number(&mem.join("memory.limit_in_bytes")),
                Some(32 << 20)
            );
        }
        if let Some(cpu) = dirs.iter().find(|d| d.starts_with("/sys/fs/cgroup/cpu/")) {
            assert_eq!(read_number(&cpu.join("cpu.shares")), Some(512));
            assert_eq!(read_number(&cpu.join("cpu.cfs_quota_us")), Some(50_000));
        }
        assert_eq!(memory_limitation(&dirs), None);
        remove(&dirs);
        assert!(dirs.iter().all(|d| !d.exists()));
    }
}
