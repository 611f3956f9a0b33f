//! Parsers of the `/proc` files the node collector reads. Each takes the file's text and
//! never fails on odd input: a line it cannot read is skipped.

use std::collections::HashSet;

/// The cpu times of the `cpu` line of `/proc/stat`, in clock ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// User mode (without nice).
    pub user: u64,
    /// Niced user mode.
    pub nice: u64,
    /// Kernel mode.
    pub system: u64,
    /// Idle.
    pub idle: u64,
    /// Waiting for I/O.
    pub iowait: u64,
    /// Hard interrupts.
    pub irq: u64,
    /// Soft interrupts.
    pub softirq: u64,
    /// Stolen by the hypervisor.
    pub steal: u64,
}

impl CpuTimes {
    /// Every tick counted once (guest time is already part of user time).
    pub fn total(&self) -> u64 {
        self.user
            .saturating_add(self.nice)
            .saturating_add(self.system)
            .saturating_add(self.idle)
            .saturating_add(self.iowait)
            .saturating_add(self.irq)
            .saturating_add(self.softirq)
            .saturating_add(self.steal)
    }
}

/// What `/proc/stat` says of the cpus: the totals and how many cpus are online.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    /// The `cpu` line.
    pub cpu: CpuTimes,
    /// The number of `cpuN` lines.
    pub cores: u64,
}

/// Parses `/proc/stat`.
pub fn parse_stat(text: &str) -> Stat {
    let mut stat = Stat::default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(label) = fields.next() else { continue };
        if label == "cpu" {
            let n: Vec<u64> = fields.map(|f| f.parse().unwrap_or(0)).collect();
            let at = |i: usize| n.get(i).copied().unwrap_or(0);
            stat.cpu = CpuTimes {
                user: at(0),
                nice: at(1),
                system: at(2),
                idle: at(3),
                iowait: at(4),
                irq: at(5),
                softirq: at(6),
                steal: at(7),
            };
        } else if label
            .strip_prefix("cpu")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            stat.cores += 1;
        }
    }
    stat
}

/// The share of the interval between two samples each state took, in percent rounded to two
/// decimals (as the real collector rounds): user, system, idle, iowait.
pub fn cpu_percents(before: &CpuTimes, after: &CpuTimes) -> (f64, f64, f64, f64) {
    let total = after.total().saturating_sub(before.total());
    let pct = |a: u64, b: u64| -> f64 {
        if total == 0 {
            return 0.0;
        }
        let share = a.saturating_sub(b) as f64 / total as f64;
        ((share * 10_000.0).round() / 100.0).clamp(0.0, 100.0)
    };
    (
        pct(after.user, before.user),
        pct(after.system, before.system),
        pct(after.idle, before.idle),
        pct(after.iowait, before.iowait),
    )
}

/// The load averages of `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Option<(f64, f64, f64)> {
    let mut f = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some((f.next()??, f.next()??, f.next()??))
}

/// Seconds since boot, from `/proc/uptime`.
pub fn parse_uptime(text: &str) -> Option<u64> {
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then_some(secs as u64)
}

/// The fields of `/proc/meminfo` the collector reports, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemInfo {
    /// `MemTotal`.
    pub total: u64,
    /// `MemFree`.
    pub free: u64,
    /// `Buffers`.
    pub buffers: u64,
    /// `Cached`.
    pub cached: u64,
    /// `SwapTotal`.
    pub swap_total: u64,
    /// `SwapFree`.
    pub swap_free: u64,
}

/// Parses `/proc/meminfo` (values in kB).
pub fn parse_meminfo(text: &str) -> MemInfo {
    let mut m = MemInfo::default();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(kb) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
        else {
            continue;
        };
        let bytes = kb.saturating_mul(1024);
        match key {
            "MemTotal" => m.total = bytes,
            "MemFree" => m.free = bytes,
            "Buffers" => m.buffers = bytes,
            "Cached" => m.cached = bytes,
            "SwapTotal" => m.swap_total = bytes,
            "SwapFree" => m.swap_free = bytes,
            _ => {}
        }
    }
    m
}

/// The counters of one interface of `/proc/net/dev`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetDev {
    /// The interface.
    pub name: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Send errors.
    pub tx_errors: u64,
    /// Packets dropped on sending.
    pub tx_dropped: u64,
}

/// Parses `/proc/net/dev`: at most `max` interfaces.
pub fn parse_net_dev(text: &str, max: usize) -> Vec<NetDev> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let name = name.trim();
            if name.is_empty() || name.contains('|') {
                return None;
            }
            let n: Vec<u64> = rest
                .split_whitespace()
                .map(|v| v.parse().unwrap_or(0))
                .collect();
            if n.len() < 16 {
                return None;
            }
            Some(NetDev {
                name: name.to_string(),
                rx_bytes: n[0],
                rx_packets: n[1],
                rx_errors: n[2],
                rx_dropped: n[3],
                tx_bytes: n[8],
                tx_packets: n[9],
                tx_errors: n[10],
                tx_dropped: n[11],
            })
        })
        .take(max)
        .collect()
}

/// The filesystem types `/proc/filesystems` marks `nodev`: pseudo filesystems (proc, sysfs,
/// cgroup, tmpfs, overlay, ...) that hold no device's blocks.
pub fn parse_nodev(text: &str) -> HashSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("nodev"))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Filesystem types skipped even when `/proc/filesystems` does not say `nodev` (or cannot be
/// read): those that are never a device's.
const PSEUDO: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "tmpfs",
    "devtmpfs",
    "devpts",
    "mqueue",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "configfs",
    "fusectl",
    "hugetlbfs",
    "autofs",
    "binfmt_misc",
    "rpc_pipefs",
    "nsfs",
    "overlay",
    "squashfs",
    "ramfs",
    "efivarfs",
    "fuse.lxcfs",
    "fuse.gvfsd-fuse",
    "nfsd",
];

/// One mounted filesystem that holds a device's blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted.
    pub path: String,
    /// Its type.
    pub fstype: String,
}

/// The real filesystems of `/proc/self/mounts`: pseudo ones (by type, `nodev` or [`PSEUDO`])
/// skipped, one entry per mount point (the last mount over a path is the one seen there),
/// at most `max`.
pub fn parse_mounts(text: &str, nodev: &HashSet<String>, max: usize) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(_device), Some(path), Some(fstype)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if nodev.contains(fstype) || PSEUDO.contains(&fstype) {
            continue;
        }
        let path = unescape_octal(path);
        if !path.starts_with('/') {
            continue;
        }
        out.retain(|m| m.path != path);
        if out.len() >= max {
            continue;
        }
        out.push(Mount {
            path,
            fstype: fstype.to_string(),
        });
    }
    out
}

/// Undoes the `\040`-style escapes of `/proc/self/mounts` (space, tab, newline, backslash).
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(b) = u8::try_from(v) {
                    out.push(b);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How many processes run: the numeric entries of `/proc`.
pub fn count_processes<I: IntoIterator<Item = String>>(names: I) -> u64 {
    names
        .into_iter()
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .count() as u64
}

#[cfg(test)]
mod tests;
