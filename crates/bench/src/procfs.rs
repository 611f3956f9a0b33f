//! Resident memory and CPU time of a process, from `/proc`.

use std::time::Instant;

use serde_json::{json, Value};

/// One reading of a process.
#[derive(Clone, Copy, Debug)]
pub struct Reading {
    /// When it was taken.
    pub at: Instant,
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// Peak resident set size so far, KiB.
    pub peak_kib: u64,
    /// User plus system CPU time, seconds.
    pub cpu_secs: f64,
}

fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64
}

/// Reads `pid` now; `None` when it is gone.
pub fn read(pid: u32) -> Option<Reading> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its `)` are fixed.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15; after `)`, field 3 is at index 0.
    let cpu = (ticks(11) + ticks(12)) as f64 / clock_ticks();
    Some(Reading {
        at: Instant::now(),
        rss_kib: kib("VmRSS:"),
        peak_kib: kib("VmHWM:"),
        cpu_secs: cpu,
    })
}

/// What a process used between two readings: its resident memory at the end, its peak, and
/// its CPU use in cores (1.0 is one core busy the whole time).
pub fn between(from: &Reading, to: &Reading) -> Value {
    let wall = to.at.duration_since(from.at).as_secs_f64().max(1e-9);
    json!({
        "rss_mib": to.rss_kib as f64 / 1024.0,
        "peak_rss_mib": to.peak_kib as f64 / 1024.0,
        "cpu_secs": to.cpu_secs - from.cpu_secs,
        "cpu_cores": (to.cpu_secs - from.cpu_secs) / wall,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let r = read(std::process::id()).unwrap();
        assert!(r.rss_kib > 0 && r.peak_kib >= r.rss_kib);
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        let later = read(std::process::id()).unwrap();
        assert!(later.cpu_secs >= r.cpu_secs);
        assert!(read(u32::MAX).is_none());
    }
}
