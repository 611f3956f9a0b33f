//! The sources a request reads: the node's unit logs, or a task's sandbox files, with the
//! fields journald would have given their entries.

use std::io;
use std::path::Path;

use crate::files::{self, RunId, Sandbox};
use crate::journal::{Fields, Filter, Journal, SourceInfo};
use crate::source::{self, Source};

/// What the node tells about itself in each unit entry.
#[derive(Clone, Debug, Default)]
pub struct Node {
    /// `_HOSTNAME`.
    pub hostname: String,
    /// `_BOOT_ID`, when known.
    pub boot_id: Option<String>,
    /// The boot time in microseconds since the epoch (for `monotonic_timestamp`).
    pub boot_usec: u64,
}

impl Node {
    /// This machine's.
    pub fn local(hostname: Option<String>) -> Node {
        let hostname = hostname.unwrap_or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_default()
        });
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().replace('-', ""))
            .filter(|s| !s.is_empty());
        let boot_usec = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| {
                stat.lines()
                    .find_map(|l| l.strip_prefix("btime "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
            .map_or(0, |secs| secs * 1_000_000);
        Node {
            hostname,
            boot_id,
            boot_usec,
        }
    }
}

/// The fields of a unit's entries: those journald gives a service's stdout.
pub fn unit_info(stem: &str, node: &Node) -> SourceInfo {
    let unit = files::unit_name(stem);
    let identifier = unit
        .rsplit_once('.')
        .map_or(unit.as_str(), |(name, _)| name)
        .to_string();
    let mut fields = Fields::new();
    fields.insert("_SYSTEMD_UNIT", unit);
    fields.insert("SYSLOG_IDENTIFIER", identifier);
    fields.insert("_HOSTNAME", node.hostname.clone());
    fields.insert("_TRANSPORT", "stdout".into());
    fields.insert("PRIORITY", "6".into());
    fields.insert("SYSLOG_FACILITY", "3".into());
    if let Some(boot) = &node.boot_id {
        fields.insert("_BOOT_ID", boot.clone());
    }
    SourceInfo {
        key: stem.to_string(),
        fields,
        timed: true,
    }
}

/// Every unit log of `dir` that `filter` may match, merged.
pub fn units(dir: &Path, node: &Node, filter: Filter, partial: bool) -> io::Result<Journal> {
    let mut journal = Journal::new(filter, partial);
    for (stem, rotated) in files::unit_logs(dir)? {
        let source = Source::unit(dir.to_path_buf(), stem.clone(), rotated);
        journal.add(unit_info(&stem, node), source, false)?;
    }
    Ok(journal)
}

/// Adds the unit logs that appeared in `dir` since `journal` was made, from their start.
pub fn rescan_units(journal: &mut Journal, dir: &Path, node: &Node) -> io::Result<()> {
    for (stem, rotated) in files::unit_logs(dir)? {
        if journal.has(&stem) {
            continue;
        }
        let info = unit_info(&stem, node);
        if !journal.filter().admits(&info.fields) {
            continue;
        }
        let source = Source::unit(dir.to_path_buf(), stem, rotated);
        journal.add(info, source, false)?;
    }
    Ok(())
}

/// The fields of a run's entries, as the journald container logger gives them.
pub fn run_fields(agent_id: &str, run: &RunId) -> Fields {
    let mut fields = Fields::new();
    fields.insert("AGENT_ID", agent_id.to_string());
    fields.insert("FRAMEWORK_ID", run.framework_id.clone());
    fields.insert("EXECUTOR_ID", run.executor_id.clone());
    fields.insert("CONTAINER_ID", run.container_id.clone());
    fields
}

/// A run's `stdout` and `stderr` (`STREAM=STDOUT|STDERR`) that `filter` may match, merged;
/// empty when the sandbox is not on this agent.
pub fn task(root: &Path, run: &RunId, filter: Filter, partial: bool) -> io::Result<Journal> {
    let mut journal = Journal::new(filter, partial);
    let Some(Sandbox { agent_id, dir }) = files::find_sandbox(root, run)? else {
        return Ok(journal);
    };
    for (file, stream) in [("stdout", "STDOUT"), ("stderr", "STDERR")] {
        let source = match source::sandbox_file(&dir, file) {
            Ok(source) => source,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut fields = run_fields(&agent_id, run);
        fields.insert("STREAM", stream.into());
        let info = SourceInfo {
            key: stream.to_string(),
            fields,
            timed: false,
        };
        journal.add(info, source, false)?;
    }
    Ok(journal)
}

/// One sandbox file of a run, and the fields its events carry (v2); `None` when the
/// sandbox or the file is not on this agent.
pub fn task_file(
    root: &Path,
    run: &RunId,
    file: &str,
    partial: bool,
) -> io::Result<Option<(Journal, Fields)>> {
    let Some(Sandbox { agent_id, dir }) = files::find_sandbox(root, run)? else {
        return Ok(None);
    };
    let source = match source::sandbox_file(&dir, file) {
        Ok(source) => source,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut fields = run_fields(&agent_id, run);
    fields.insert("FILE", file.to_string());
    let mut journal = Journal::new(Filter::default(), partial);
    let info = SourceInfo {
        key: file.to_string(),
        fields: Fields::new(),
        timed: false,
    };
    journal.add(info, source, false)?;
    Ok(Some((journal, fields)))
}
