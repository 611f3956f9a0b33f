//! Where logs are: the node's unit log files and the agent's sandboxes.
//!
//! Nothing here builds a path from a request's text. Units are found by listing the logs
//! directory and matching names against the listing; sandbox ids are single names checked
//! like Mesos ids, and every component below the sandbox root is opened relative to its
//! parent's descriptor without following symlinks: a task owns its sandbox and may plant a
//! symlink (`ln -sf /etc/shadow stdout`) or a FIFO there.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::rotate;

/// systemd's unit types: a log file's stem with one of these suffixes is the unit's name.
const UNIT_TYPES: [&str; 11] = [
    "service",
    "socket",
    "device",
    "mount",
    "automount",
    "swap",
    "target",
    "path",
    "timer",
    "slice",
    "scope",
];

/// The systemd unit a log file's stem stands for: the stem, with `.service` added when it
/// names no unit type (`dcos-adminrouter-agent` is `dcos-adminrouter-agent.service`).
pub fn unit_name(stem: &str) -> String {
    let typed = stem
        .rsplit_once('.')
        .is_some_and(|(_, t)| UNIT_TYPES.contains(&t));
    if typed {
        stem.to_string()
    } else {
        format!("{stem}.service")
    }
}

/// Whether a stem found in the logs dir is served: unit-name characters only, so it can
/// stand in a cursor unescaped.
fn servable_stem(stem: &str) -> bool {
    !stem.is_empty()
        && stem.len() <= 256
        && !stem.starts_with('.')
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@._:-\\".contains(&b))
}

/// The unit logs in `dir`: each stem with its rotated generations (ascending).
pub fn unit_logs(dir: &Path) -> io::Result<BTreeMap<String, Vec<u64>>> {
    let mut units: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let entries = match fs_err::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(units),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((stem, generation)) = rotate::parse_name(name) else {
            continue;
        };
        if !servable_stem(stem) {
            continue;
        }
        let gens = units.entry(stem.to_string()).or_default();
        if let Some(g) = generation {
            gens.push(g);
        }
    }
    for gens in units.values_mut() {
        gens.sort_unstable();
    }
    Ok(units)
}

/// Why a name from a request is refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid {what} {value:?}: {why}")]
pub struct InvalidName {
    /// What the name was for.
    pub what: &'static str,
    /// The name (escaped when printed).
    pub value: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Checks a Mesos id or a sandbox file name as Mesos does: one path component, not `.` or
/// `..`, no control characters or `\`, at most 255 bytes.
pub fn check_name(what: &'static str, value: &str) -> Result<(), InvalidName> {
    let why = if value.is_empty() {
        Some("it is empty")
    } else if value == "." || value == ".." {
        Some("it is a relative directory")
    } else if value.len() > 255 {
        Some("it is longer than 255 bytes")
    } else if value.contains(['/', '\\']) {
        Some("it contains a path separator")
    } else if value.chars().any(char::is_control) {
        Some("it contains a control character")
    } else {
        None
    };
    match why {
        Some(why) => Err(InvalidName {
            what,
            value: value.to_string(),
            why,
        }),
        None => Ok(()),
    }
}

/// The path through which `name` in the open directory `dir` is opened: the kernel
/// resolves `/proc/self/fd/<n>` through the descriptor, never through a path name.
fn at(dir: &File, name: &OsStr) -> PathBuf {
    Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name)
}

/// Opens the directory `root/names...`, none of the names a symlink.
pub fn open_dir_beneath(root: &Path, names: &[&str]) -> io::Result<File> {
    let mut dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(root)?;
    for name in names {
        dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(at(&dir, OsStr::new(name)))?;
    }
    Ok(dir)
}

/// Opens the regular file `name` in the open directory `dir` for reading, never following a
/// symlink and never blocking on a FIFO; anything but a regular file is `NotFound`.
pub fn open_file_in(dir: &File, name: &str) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(at(dir, OsStr::new(name)))
        .map_err(|e| match e.raw_os_error() {
            // A symlink (ELOOP) or something else in the way reads as absent.
            Some(libc::ELOOP) | Some(libc::ENXIO) => {
                io::Error::new(io::ErrorKind::NotFound, "not a regular file")
            }
            _ => e,
        })?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// A run's sandbox under the agent's work dir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunId {
    /// The framework.
    pub framework_id: String,
    /// The executor (a command task's is the task's id).
    pub executor_id: String,
    /// The run's container.
    pub container_id: String,
}

impl RunId {
    /// Checks every id as Mesos does.
    pub fn check(&self) -> Result<(), InvalidName> {
        check_name("framework id", &self.framework_id)?;
        check_name("executor id", &self.executor_id)?;
        check_name("container id", &self.container_id)
    }
}

/// A found sandbox: the agent id it lives under and its open directory.
#[derive(Debug)]
pub struct Sandbox {
    /// The agent id (the `slaves/<id>` directory it was found in).
    pub agent_id: String,
    /// The sandbox directory, open.
    pub dir: File,
}

/// Finds the sandbox of `run` under `root` (the agent's work dir):
/// `slaves/<agent>/frameworks/<fw>/executors/<ex>/runs/<container>`, whichever agent id
/// (an agent that registered again has a new one) holds it. `Ok(None)` when there is none.
pub fn find_sandbox(root: &Path, run: &RunId) -> io::Result<Option<Sandbox>> {
    let slaves = match open_dir_beneath(root, &["slaves"]) {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut agents: Vec<String> = fs_err::read_dir(at(&slaves, OsStr::new("")))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|a| check_name("agent id", a).is_ok())
        .collect();
    agents.sort();
    for agent in agents {
        let names = [
            "slaves",
            agent.as_str(),
            "frameworks",
            &run.framework_id,
            "executors",
            &run.executor_id,
            "runs",
            &run.container_id,
        ];
        match open_dir_beneath(root, &names) {
            Ok(dir) => {
                return Ok(Some(Sandbox {
                    agent_id: agent,
                    dir,
                }))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) || e.raw_os_error() == Some(libc::ELOOP) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_name_their_units() {
        assert_eq!(
            unit_name("dcos-mesos-master.service"),
            "dcos-mesos-master.service"
        );
        assert_eq!(
            unit_name("dcos-adminrouter-agent"),
            "dcos-adminrouter-agent.service"
        );
        assert_eq!(unit_name("dcos-logrotate.timer"), "dcos-logrotate.timer");
    }

    #[test]
    fn the_listing_groups_generations_and_skips_strangers() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "a.service.log",
            "a.service.log.3",
            "a.service.log.1",
            "b.log.2",
            "notes.txt",
            "we;ird.log",
            ".hidden.log",
        ] {
            fs_err::write(dir.path().join(f), "").unwrap();
        }
        let units = unit_logs(dir.path()).unwrap();
        assert_eq!(
            units.into_iter().collect::<Vec<_>>(),
            vec![
                ("a.service".to_string(), vec![1, 3]),
                ("b".to_string(), vec![2])
            ]
        );
        assert!(unit_logs(&dir.path().join("missing")).unwrap().is_empty());
    }

    #[test]
    fn names_are_checked_as_mesos_ids() {
        for bad in ["", ".", "..", "a/b", "a\\b", "a\nb", &"x".repeat(256)] {
            assert!(check_name("id", bad).is_err(), "{bad:?}");
        }
        for good in ["task.1", "a..b", "8f0c-1", "web_app.instance-1"] {
            assert!(check_name("id", good).is_ok(), "{good:?}");
        }
    }

    fn make_sandbox(root: &Path, agent: &str) -> PathBuf {
        let dir = root.join(format!("slaves/{agent}/frameworks/F/executors/E/runs/C"));
        fs_err::create_dir_all(&dir).unwrap();
        dir
    }

    fn run() -> RunId {
        RunId {
            framework_id: "F".into(),
            executor_id: "E".into(),
            container_id: "C".into(),
        }
    }

    #[test]
    fn a_sandbox_is_found_under_any_agent_id() {
        let root = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(root.path().join("slaves/OLD")).unwrap();
        let dir = make_sandbox(root.path(), "S1");
        fs_err::write(dir.join("stdout"), "hi\n").unwrap();
        let found = find_sandbox(root.path(), &run()).unwrap().unwrap();
        assert_eq!(found.agent_id, "S1");
        let file = open_file_in(&found.dir, "stdout").unwrap();
        assert_eq!(file.metadata().unwrap().len(), 3);
        let other = RunId {
            container_id: "D".into(),
            ..run()
        };
        assert!(find_sandbox(root.path(), &other).unwrap().is_none());
        let empty = tempfile::tempdir().unwrap();
        assert!(find_sandbox(empty.path(), &run()).unwrap().is_none());
    }

    #[test]
    fn symlinks_and_fifos_planted_in_a_sandbox_are_not_read() {
        let root = tempfile::tempdir().unwrap();
        let secret = root.path().join("secret");
        fs_err::write(&secret, "s3cr3t").unwrap();
        let dir = make_sandbox(root.path(), "S1");
        std::os::unix::fs::symlink(&secret, dir.join("stdout")).unwrap();
        nix::unistd::mkfifo(&dir.join("stderr"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        fs_err::create_dir(dir.join("sub")).unwrap();
        let found = find_sandbox(root.path(), &run()).unwrap().unwrap();
        for name in ["stdout", "stderr", "sub", "missing"] {
            let err = open_file_in(&found.dir, name).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound, "{name}");
        }
    }

    #[test]
    fn a_symlinked_run_directory_is_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let elsewhere = root.path().join("elsewhere");
        fs_err::create_dir_all(&elsewhere).unwrap();
        fs_err::write(elsewhere.join("stdout"), "not yours").unwrap();
        let runs = root.path().join("slaves/S1/frameworks/F/executors/E/runs");
        fs_err::create_dir_all(&runs).unwrap();
        std::os::unix::fs::symlink(&elsewhere, runs.join("C")).unwrap();
        assert!(find_sandbox(root.path(), &run()).unwrap().is_none());
    }
}
