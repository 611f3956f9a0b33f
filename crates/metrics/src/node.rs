//! The node's own metrics, read from `/proc` and `statvfs(3)` at each collection: the names,
//! units and tags of dcos-metrics 1.11's node collector (`collectors/node`).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::api::{now_nanos, unit, Datapoint, Value};
use crate::procfs::{self, CpuTimes};

/// Filesystems reported at most.
pub const MAX_FILESYSTEMS: usize = 256;
/// Interfaces reported at most.
pub const MAX_INTERFACES: usize = 256;

/// Clock ticks (of all cpus) an interval must span for its cpu percentages to be new:
/// shorter ones (collections right after another, or after the start) answer the last.
pub const MIN_CPU_TICKS: u64 = 100;

/// The cpu sample percentages are measured from, and the percentages last measured.
#[derive(Default)]
struct CpuState {
    baseline: Option<CpuTimes>,
    last: Option<(f64, f64, f64, f64)>,
}

/// Reads the node's metrics from a `/proc` (the host's, or a test's copy).
pub struct NodeCollector {
    proc_root: PathBuf,
    /// Cpu percentages cover the time since the baseline.
    cpu: Mutex<CpuState>,
}

impl NodeCollector {
    /// A collector of the `/proc` at `proc_root`; the first cpu sample is taken now, so the
    /// first collection's percentages cover the time since.
    pub fn new(proc_root: impl Into<PathBuf>) -> NodeCollector {
        let c = NodeCollector {
            proc_root: proc_root.into(),
            cpu: Mutex::new(CpuState::default()),
        };
        let first = c.read("stat").map(|t| procfs::parse_stat(&t).cpu);
        c.lock_cpu().baseline = first;
        c
    }

    fn lock_cpu(&self) -> std::sync::MutexGuard<'_, CpuState> {
        self.cpu.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// User, system, idle and iowait percentages since the baseline, which moves to `now`
    /// when the interval is long enough to say something ([`MIN_CPU_TICKS`]).
    fn cpu_percents(&self, now: CpuTimes) -> (f64, f64, f64, f64) {
        let mut cpu = self.lock_cpu();
        let before = cpu.baseline.unwrap_or_default();
        let span = now.total().saturating_sub(before.total());
        if span < MIN_CPU_TICKS {
            if let Some(last) = cpu.last {
                return last;
            }
        } else {
            cpu.baseline = Some(now);
        }
        let pcts = procfs::cpu_percents(&before, &now);
        if span >= MIN_CPU_TICKS {
            cpu.last = Some(pcts);
        }
        pcts
    }

    fn read(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.proc_root.join(file)).ok()
    }

    /// Every node datapoint, read now (blocking: `statvfs` of a hung network filesystem
    /// waits; call it off the async threads). What cannot be read is left out.
    pub fn collect(&self) -> Vec<Datapoint> {
        let ts = now_nanos();
        let mut out = Vec::new();
        let mut point = |name: &str, value: Value, unit: &str, tags: &[(&str, &str)]| {
            out.push(Datapoint {
                name: name.to_string(),
                value,
                unit: unit.to_string(),
                timestamp: ts.clone(),
                tags: tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            })
        };
        if let Some(up) = self.read("uptime").and_then(|t| procfs::parse_uptime(&t)) {
            point("system.uptime", up.into(), unit::COUNT, &[]);
        }
        if let Some(stat) = self.read("stat").map(|t| procfs::parse_stat(&t)) {
            let (user, system, idle, wait) = self.cpu_percents(stat.cpu);
            point("cpu.cores", stat.cores.into(), unit::COUNT, &[]);
            let total = ((user + system) * 100.0).round() / 100.0;
            point("cpu.total", total.into(), unit::PERCENT, &[]);
            point("cpu.user", user.into(), unit::PERCENT, &[]);
            point("cpu.system", system.into(), unit::PERCENT, &[]);
            point("cpu.idle", idle.into(), unit::PERCENT, &[]);
            point("cpu.wait", wait.into(), unit::PERCENT, &[]);
        }
        if let Some((l1, l5, l15)) = self.read("loadavg").and_then(|t| procfs::parse_loadavg(&t)) {
            point("load.1min", l1.into(), unit::COUNT, &[]);
            point("load.5min", l5.into(), unit::COUNT, &[]);
            point("load.15min", l15.into(), unit::COUNT, &[]);
        }
        for fs in filesystems(&self.proc_root) {
            let tags = [("path", fs.path.as_str())];
            point(
                "filesystem.capacity.total",
                fs.total.into(),
                unit::BYTES,
                &tags,
            );
            point(
                "filesystem.capacity.used",
                fs.used.into(),
                unit::BYTES,
                &tags,
            );
            point(
                "filesystem.capacity.free",
                fs.free.into(),
                unit::BYTES,
                &tags,
            );
            point(
                "filesystem.inode.total",
                fs.inodes.into(),
                unit::COUNT,
                &tags,
            );
            point(
                "filesystem.inode.used",
                fs.inodes_used.into(),
                unit::COUNT,
                &tags,
            );
            point(
                "filesystem.inode.free",
                fs.inodes_free.into(),
                unit::COUNT,
                &tags,
            );
        }
        if let Some(m) = self.read("meminfo").map(|t| procfs::parse_meminfo(&t)) {
            point("memory.total", m.total.into(), unit::BYTES, &[]);
            point("memory.free", m.free.into(), unit::BYTES, &[]);
            point("memory.buffers", m.buffers.into(), unit::BYTES, &[]);
            point("memory.cached", m.cached.into(), unit::BYTES, &[]);
            point("swap.total", m.swap_total.into(), unit::BYTES, &[]);
            point("swap.free", m.swap_free.into(), unit::BYTES, &[]);
            let used = m.swap_total.saturating_sub(m.swap_free);
            point("swap.used", used.into(), unit::BYTES, &[]);
        }
        let devs = self
            .read("net/dev")
            .map(|t| procfs::parse_net_dev(&t, MAX_INTERFACES))
            .unwrap_or_default();
        for d in devs {
            let tags = [("interface", d.name.as_str())];
            point("network.in", d.rx_bytes.into(), unit::BYTES, &tags);
            point("network.out", d.tx_bytes.into(), unit::BYTES, &tags);
            point(
                "network.in.packets",
                d.rx_packets.into(),
                unit::COUNT,
                &tags,
            );
            point(
                "network.out.packets",
                d.tx_packets.into(),
                unit::COUNT,
                &tags,
            );
            point(
                "network.in.dropped",
                d.rx_dropped.into(),
                unit::COUNT,
                &tags,
            );
            point(
                "network.out.dropped",
                d.tx_dropped.into(),
                unit::COUNT,
                &tags,
            );
            point("network.in.errors", d.rx_errors.into(), unit::COUNT, &tags);
            point("network.out.errors", d.tx_errors.into(), unit::COUNT, &tags);
        }
        if let Ok(entries) = std::fs::read_dir(&self.proc_root) {
            let names = entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok());
            point(
                "process.count",
                procfs::count_processes(names).into(),
                unit::COUNT,
                &[],
            );
        }
        out
    }
}

/// One filesystem's usage.
struct FsUsage {
    path: String,
    total: u64,
    used: u64,
    free: u64,
    inodes: u64,
    inodes_used: u64,
    inodes_free: u64,
}

/// The usage of every real mounted filesystem; those `statvfs` cannot read are left out, and
/// filesystems seen at several paths (bind mounts) are reported at the first only.
fn filesystems(proc_root: &Path) -> Vec<FsUsage> {
    let nodev = std::fs::read_to_string(proc_root.join("filesystems"))
        .map(|t| procfs::parse_nodev(&t))
        .unwrap_or_default();
    let Ok(mounts) = std::fs::read_to_string(proc_root.join("self/mounts")) else {
        return Vec::new();
    };
    let mut seen = HashSet::new();
    procfs::parse_mounts(&mounts, &nodev, MAX_FILESYSTEMS)
        .into_iter()
        .filter_map(|m| {
            let s = nix::sys::statvfs::statvfs(Path::new(&m.path)).ok()?;
            let frsize = s.fragment_size() as u64;
            let blocks = s.blocks() as u64;
            let bfree = s.blocks_free() as u64;
            // The same filesystem (fsid) seen again is a bind mount of one already counted.
            if !seen.insert((s.filesystem_id(), blocks, s.files() as u64)) {
                return None;
            }
            let files = s.files() as u64;
            let ffree = s.files_free() as u64;
            Some(FsUsage {
                path: m.path,
                total: blocks.saturating_mul(frsize),
                used: blocks.saturating_sub(bfree).saturating_mul(frsize),
                free: (s.blocks_available() as u64).saturating_mul(frsize),
                inodes: files,
                inodes_used: files.saturating_sub(ffree),
                inodes_free: ffree,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_proc_gives_every_node_metric_with_its_unit() {
        let c = NodeCollector::new("/proc");
        let points = c.collect();
        let names: HashSet<&str> = points.iter().map(|d| d.name.as_str()).collect();
        for name in [
            "system.uptime",
            "process.count",
            "cpu.cores",
            "cpu.total",
            "cpu.user",
            "cpu.system",
            "cpu.idle",
            "cpu.wait",
            "load.1min",
            "load.5min",
            "load.15min",
            "memory.total",
            "memory.free",
            "memory.buffers",
            "memory.cached",
            "swap.total",
            "swap.free",
            "swap.used",
            "filesystem.capacity.total",
            "filesystem.capacity.used",
            "filesystem.capacity.free",
            "filesystem.inode.total",
            "filesystem.inode.used",
            "filesystem.inode.free",
            "network.in",
            "network.out",
            "network.in.packets",
            "network.out.packets",
            "network.in.dropped",
            "network.out.dropped",
            "network.in.errors",
            "network.out.errors",
        ] {
            assert!(names.contains(name), "{name} missing");
        }
        let unit_of = |n: &str| points.iter().find(|d| d.name == n).unwrap().unit.clone();
        assert_eq!(unit_of("memory.total"), "bytes");
        assert_eq!(unit_of("cpu.idle"), "percent");
        assert_eq!(unit_of("filesystem.inode.free"), "count");
        for d in &points {
            if d.name.starts_with("filesystem.") {
                assert!(d.tags["path"].starts_with('/'), "{d:?}");
            }
            if d.name.starts_with("network.") {
                assert!(!d.tags["interface"].is_empty(), "{d:?}");
            }
            assert!(d.value.0.is_finite() && d.value.0 >= 0.0, "{d:?}");
        }
        // Each path once.
        let paths: Vec<&String> = points
            .iter()
            .filter(|d| d.name == "filesystem.capacity.total")
            .map(|d| &d.tags["path"])
            .collect();
        let unique: HashSet<&&String> = paths.iter().collect();
        assert_eq!(paths.len(), unique.len());
    }

    #[test]
    fn a_proc_without_files_gives_nothing_rather_than_failing() {
        let dir = tempfile::tempdir().unwrap();
        let c = NodeCollector::new(dir.path());
        assert!(c.collect().iter().all(|d| d.name == "process.count"));
    }

    #[test]
    fn cpu_percentages_cover_the_time_since_the_last_sample() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("stat"),
            "cpu 100 0 100 100 0 0 0 0\ncpu0 1\n",
        )
        .unwrap();
        let c = NodeCollector::new(dir.path());
        std::fs::write(
            dir.path().join("stat"),
            "cpu 150 0 100 150 0 0 0 0\ncpu0 1\n",
        )
        .unwrap();
        let points = c.collect();
        let v = |n: &str| points.iter().find(|d| d.name == n).unwrap().value.0;
        assert_eq!(v("cpu.user"), 50.0);
        assert_eq!(v("cpu.idle"), 50.0);
        assert_eq!(v("cpu.total"), 50.0);
        assert_eq!(v("cpu.cores"), 1.0);
        // Too short an interval says nothing new: the last percentages stand.
        std::fs::write(
            dir.path().join("stat"),
            "cpu 160 0 100 150 0 0 0 0\ncpu0 1\n",
        )
        .unwrap();
        let points = c.collect();
        let v = |n: &str| points.iter().find(|d| d.name == n).unwrap().value.0;
        assert_eq!(v("cpu.user"), 50.0);
        // The next interval starts where the last long one ended.
        std::fs::write(
            dir.path().join("stat"),
            "cpu 150 0 100 250 0 0 0 0\ncpu0 1\n",
        )
        .unwrap();
        let points = c.collect();
        let v = |n: &str| points.iter().find(|d| d.name == n).unwrap().value.0;
        assert_eq!((v("cpu.user"), v("cpu.idle")), (0.0, 100.0));
    }
}
