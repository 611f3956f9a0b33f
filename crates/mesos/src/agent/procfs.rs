//! What the agent reads of `/proc`: a process's `stat` (its state, parent, cpu times, memory,
//! threads and start time), its children and descendants, the host's memory and load, and the
//! ports bound on the host. Every reader is parsed here, once.

use std::collections::HashMap;

use dcos_ports::RangeSet;

/// The fields of `/proc/<pid>/stat` the agent uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stat {
    /// Its state (`R`, `S`, `Z`, ...; field 3).
    pub(crate) state: char,
    /// Its parent (field 4).
    pub(crate) ppid: u32,
    /// Clock ticks in user mode, its own and its reaped children's (fields 14 and 16).
    pub(crate) user_ticks: u64,
    /// Clock ticks in kernel mode, its own and its reaped children's (fields 15 and 17).
    pub(crate) system_ticks: u64,
    /// Its threads (field 20).
    pub(crate) threads: u64,
    /// When it started, in clock ticks since boot (field 22).
    pub(crate) start_time: u64,
    /// Its resident set, in pages (field 24).
    pub(crate) rss_pages: u64,
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on every Linux the agent runs on).
pub(crate) const TICKS_PER_SECOND: f64 = 100.0;
/// Bytes in a page.
pub(crate) const PAGE_SIZE: u64 = 4096;

impl Stat {
    /// Reads `/proc/<pid>/stat`; None if there is no such process.
    pub(crate) fn of(pid: u32) -> Option<Stat> {
        Stat::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// Parses the text of a `stat` file.
    pub(crate) fn parse(text: &str) -> Option<Stat> {
        // The command name (field 2) may hold spaces and parentheses; fields after it are plain.
        let (_, rest) = text.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3: field n is index n - 3.
        let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
        let ticks = |a: usize, b: usize| field(a).unwrap_or(0) + field(b).unwrap_or(0);
        Some(Stat {
            state: fields.first()?.chars().next()?,
            ppid: u32::try_from(field(4)?).ok()?,
            user_ticks: ticks(14, 16),
            system_ticks: ticks(15, 17),
            threads: field(20).unwrap_or(0),
            start_time: field(22)?,
            // A kernel thread's rss may read as negative in odd kernels: none.
            rss_pages: field(24).unwrap_or(0),
        })
    }

    /// Whether the process has exited (a zombie, or dead).
    pub(crate) fn is_dead(&self) -> bool {
        self.state == 'Z' || self.state == 'X'
    }
}

/// The first child of process `pid` (`/proc/<pid>/task/<pid>/children`, else a scan of every
/// process for one whose parent it is).
pub(crate) fn child_of(pid: u32) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"));
    if let Some(child) = children
        .ok()
        .and_then(|c| c.split_whitespace().next()?.parse().ok())
    {
        return Some(child);
    }
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|candidate| Stat::of(*candidate).is_some_and(|s| s.ppid == pid))
}

/// Every process of the host (its pid namespace) by pid.
pub(crate) fn processes() -> HashMap<u32, Stat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, Stat::of(pid)?)))
        .collect()
}

/// What a process and all its descendants use together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TreeUsage {
    /// Processes.
    pub(crate) processes: u64,
    /// Threads.
    pub(crate) threads: u64,
    /// Clock ticks in user mode (each process's own and its reaped children's).
    pub(crate) user_ticks: u64,
    /// Clock ticks in kernel mode (likewise).
    pub(crate) system_ticks: u64,
    /// Resident pages.
    pub(crate) rss_pages: u64,
}

/// Children of each process in `table`.
pub(crate) fn children(table: &HashMap<u32, Stat>) -> HashMap<u32, Vec<u32>> {
    let mut out: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, stat) in table {
        out.entry(stat.ppid).or_default().push(*pid);
    }
    out
}

/// What `root` and its descendants use; zeros if `root` is not in `table`.
pub(crate) fn tree_usage(
    root: u32,
    table: &HashMap<u32, Stat>,
    children: &HashMap<u32, Vec<u32>>,
) -> TreeUsage {
    let mut usage = TreeUsage::default();
    let mut todo = vec![root];
    let mut seen = std::collections::HashSet::new();
    while let Some(pid) = todo.pop() {
        // A pid reused while the table was read could make a cycle: each once.
        if !seen.insert(pid) {
            continue;
        }
        let Some(stat) = table.get(&pid) else {
            continue;
        };
        usage.processes += 1;
        usage.threads += stat.threads;
        usage.user_ticks += stat.user_ticks;
        usage.system_ticks += stat.system_ticks;
        usage.rss_pages += stat.rss_pages;
        todo.extend(children.get(&pid).into_iter().flatten().copied());
    }
    usage
}

/// The host's load averages (`/proc/loadavg`).
pub(crate) fn load_averages() -> Option<(f64, f64, f64)> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut f = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some((f.next()??, f.next()??, f.next()??))
}

/// The host's free memory in KiB (`MemFree` of `/proc/meminfo`).
pub(crate) fn mem_free_kib() -> Option<f64> {
    meminfo_kib("MemFree:")
}

/// The host's memory in KiB (`MemTotal` of `/proc/meminfo`).
pub(crate) fn mem_total_kib() -> Option<f64> {
    meminfo_kib("MemTotal:")
}

fn meminfo_kib(key: &str) -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Ports bound on this host (its network namespace): TCP listeners and UDP sockets.
pub(crate) fn bound_ports() -> RangeSet {
    let mut set = RangeSet::new();
    for (file, state) in [
        ("/proc/net/tcp", "0A"),
        ("/proc/net/tcp6", "0A"),
        ("/proc/net/udp", "07"),
        ("/proc/net/udp6", "07"),
    ] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for port in socket_ports(&text, state) {
            set.insert(port, port);
        }
    }
    set
}

/// The local ports of the sockets in `state` of a `/proc/net/{tcp,udp}[6]` table.
fn socket_ports<'a>(table: &'a str, state: &'a str) -> impl Iterator<Item = u16> + 'a {
    table.lines().skip(1).filter_map(move |line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.get(3) != Some(&state) {
            return None;
        }
        let (_, port) = cols.get(1)?.rsplit_once(':')?;
        u16::from_str_radix(port, 16).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_past_a_hostile_command_name() {
        let text = "42 (a) b) (c) S 7 42 42 0 -1 4194560 100 0 0 0 11 12 13 14 20 0 1 0 \
                    5555 1000000 250 18446744073709551615";
        let stat = Stat::parse(text).unwrap();
        assert_eq!(
            stat,
            Stat {
                state: 'S',
                ppid: 7,
                user_ticks: 11 + 13,
                system_ticks: 12 + 14,
                threads: 1,
                start_time: 5555,
                rss_pages: 250,
            }
        );
        assert_eq!(Stat::parse("1 (x)"), None);
        let me = Stat::of(std::process::id()).unwrap();
        assert!(!me.is_dead());
        assert_eq!(me.ppid, nix::unistd::getppid().as_raw() as u32);
    }

    #[test]
    fn a_tree_sums_a_process_and_its_descendants_once() {
        let stat = |ppid: u32| Stat {
            state: 'S',
            ppid,
            user_ticks: 10,
            system_ticks: 1,
            threads: 2,
            start_time: 0,
            rss_pages: 3,
        };
        // 1 -> 2 -> 3, 4 elsewhere, and a cycle 5 <-> 6 that must not hang.
        let table: HashMap<u32, Stat> = [
            (1, stat(0)),
            (2, stat(1)),
            (3, stat(2)),
            (4, stat(0)),
            (5, stat(6)),
            (6, stat(5)),
        ]
        .into();
        let kids = children(&table);
        assert_eq!(
            tree_usage(1, &table, &kids),
            TreeUsage {
                processes: 3,
                threads: 6,
                user_ticks: 30,
                system_ticks: 3,
                rss_pages: 9,
            }
        );
        assert_eq!(tree_usage(5, &table, &kids).processes, 2);
        assert_eq!(tree_usage(99, &table, &kids), TreeUsage::default());
        let me = std::process::id();
        let all = processes();
        assert!(tree_usage(me, &all, &children(&all)).threads >= 1);
        assert!(load_averages().is_some() && mem_free_kib().is_some());
    }

    #[test]
    fn bound_ports_come_from_listening_and_udp_sockets() {
        let tcp = "  sl  local_address rem_address   st\n\
                   0: 0100007F:1F90 00000000:0000 0A\n\
                   1: 0100007F:0050 0100007F:9C40 01\n";
        assert_eq!(socket_ports(tcp, "0A").collect::<Vec<_>>(), [8080]);
        assert!(mem_total_kib().is_some_and(|k| k > 0.0));
    }
}
