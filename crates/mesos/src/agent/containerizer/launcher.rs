//! Starting a command (a task's, or a custom executor's) as the user it must run as.
//!
//! The user is the command's own `user`, else the framework's (Mesos' precedence). An agent
//! running as root switches to it (uid, primary group and supplementary groups) and hands
//! it the sandbox; an agent running as anyone else can run tasks only as itself. With
//! `switch_user` off, every task runs as the agent's user, as Mesos' `--switch_user=false`.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid, User};

use crate::agent::beneath;
use crate::api::{CommandInfo, FrameworkInfo};

/// The file in the sandbox where the wrapper shell records the command's exit status.
const EXIT_STATUS: &str = ".exit_status";

/// A user other than the agent's that a command runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RunAs {
    /// The name asked for.
    pub(crate) name: String,
    /// Its uid.
    pub(crate) uid: u32,
    /// Its primary group.
    pub(crate) gid: u32,
    /// Its supplementary groups (without the primary one).
    pub(crate) groups: Vec<u32>,
}

/// Why a command cannot run as the user it asks for.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UserError {
    /// No such user here (Mesos' wording, which Marathon's users look for).
    #[error("Failed to get user information for '{0}': no such user on this agent")]
    Unknown(String),
    /// The user database could not be read.
    #[error("Failed to get user information for '{user}': {source}")]
    Lookup {
        /// The user.
        user: String,
        /// The cause.
        source: nix::Error,
    },
    /// The agent cannot switch users.
    #[error("Cannot run as user '{user}': the agent runs as uid {agent_uid}, not root, so it can run tasks only as its own user (or with switch_user off)")]
    NotRoot {
        /// The user.
        user: String,
        /// The agent's uid.
        agent_uid: u32,
    },
}

/// The user a command asks to run as: its own, else its framework's; None if neither says.
pub(crate) fn requested_user<'a>(
    framework: &'a FrameworkInfo,
    command: &'a CommandInfo,
) -> Option<&'a str> {
    command
        .user
        .as_deref()
        .filter(|u| !u.is_empty())
        .or(Some(framework.user.as_str()).filter(|u| !u.is_empty()))
}

/// Who a command runs as: None for the agent's own user (no switch needed or wanted).
pub(crate) fn run_as(switch_user: bool, user: Option<&str>) -> Result<Option<RunAs>, UserError> {
    let Some(name) = user.filter(|_| switch_user) else {
        return Ok(None);
    };
    let info = User::from_name(name)
        .map_err(|source| UserError::Lookup {
            user: name.into(),
            source,
        })?
        .ok_or_else(|| UserError::Unknown(name.into()))?;
    let me = Uid::effective();
    if info.uid == me {
        return Ok(None);
    }
    if !me.is_root() {
        return Err(UserError::NotRoot {
            user: name.into(),
            agent_uid: me.as_raw(),
        });
    }
    let groups = CString::new(name)
        .ok()
        .and_then(|c| nix::unistd::getgrouplist(&c, info.gid).ok())
        .unwrap_or_default()
        .into_iter()
        .map(Gid::as_raw)
        .filter(|g| *g != info.gid.as_raw())
        .collect();
    Ok(Some(RunAs {
        name: name.into(),
        uid: info.uid.as_raw(),
        gid: info.gid.as_raw(),
        groups,
    }))
}

/// Gives a directory tree to a user (what the agent made there: fetched files, stdout,
/// stderr), symlinks themselves rather than their targets.
pub(crate) fn chown_tree(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let device = std::fs::symlink_metadata(path)?.dev();
    chown_within(path, device, uid, gid)
}

/// [`chown_tree`] on one filesystem: a host directory mounted into the sandbox (a volume)
/// is not the sandbox's to give away.
fn chown_within(path: &Path, device: u64, uid: u32, gid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.dev() != device {
        return Ok(());
    }
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_within(&entry?.path(), device, uid, gid)?;
        }
    }
    Ok(())
}

/// A program on the agent's PATH.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin:/usr/sbin:/sbin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The process that runs the wrapper shell, switched to `run_as`. Supplementary groups need
/// `setgroups` between fork and exec, which only `setpriv` (util-linux) offers without
/// unsafe code; without it the command keeps its primary group only.
fn shell_as(run_as: Option<&RunAs>) -> tokio::process::Command {
    let Some(user) = run_as else {
        return tokio::process::Command::new("/bin/sh");
    };
    if !user.groups.is_empty() {
        if let Some(setpriv) = find_program("setpriv") {
            let groups: Vec<String> = user.groups.iter().map(u32::to_string).collect();
            let mut cmd = tokio::process::Command::new(setpriv);
            cmd.arg(format!("--reuid={}", user.uid))
                .arg(format!("--regid={}", user.gid))
                .arg(format!("--groups={}", groups.join(",")))
                .arg("--")
                .arg("/bin/sh");
            return cmd;
        }
        tracing::warn!(user = %user.name, "setpriv not found: the task runs without its supplementary groups");
    }
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.uid(user.uid).gid(user.gid);
    cmd
}

/// Starts a command in its sandbox, in its own process group, with exactly `env`, as
/// `run_as` (the sandbox is handed to that user first).
///
/// A wrapper shell runs it and records its exit status in the sandbox, so an agent restarted
/// meanwhile still learns how it ended.
pub(crate) fn spawn_command(
    command: &CommandInfo,
    sandbox: &Path,
    env: Vec<(String, String)>,
    run_as: Option<&RunAs>,
) -> anyhow::Result<tokio::process::Child> {
    let argv: Vec<String> = if command.shell.unwrap_or(true) {
        vec![
            "/bin/sh".into(),
            "-c".into(),
            command.value.clone().unwrap_or_default(),
        ]
    } else {
        let program = command
            .value
            .clone()
            .ok_or_else(|| anyhow::anyhow!("command.value is required when shell is false"))?;
        let mut argv = vec![program];
        argv.extend(command.arguments.iter().skip(1).cloned());
        argv
    };
    let stdout = fs_err::File::create(sandbox.join("stdout"))?.into_parts().0;
    let stderr = fs_err::File::create(sandbox.join("stderr"))?.into_parts().0;
    if let Some(user) = run_as {
        chown_tree(sandbox, user.uid, user.gid).map_err(|e| {
            anyhow::anyhow!(
                "Failed to chown the sandbox {} to user '{}': {e}",
                sandbox.display(),
                user.name
            )
        })?;
    }
    let child = shell_as(run_as)
        .arg("-c")
        .arg(format!("\"$@\"; s=$?; echo $s > {EXIT_STATUS}; exit $s"))
        .arg("mesos-executor")
        .args(&argv)
        .current_dir(sandbox)
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
        )
        .envs(env)
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        // Its own process group: killing it kills all it started, and stopping the agent
        // does not kill it.
        .process_group(0)
        .spawn()?;
    Ok(child)
}

/// The exit status the wrapper shell recorded in the sandbox. The task owns the sandbox, so
/// the file is opened without following a symlink and read only if it is a small regular
/// file (a FIFO there must not block the agent).
pub(crate) fn recorded_exit(sandbox: &Path) -> Option<i32> {
    use std::io::Read;
    let file = beneath::open(sandbox, Path::new(EXIT_STATUS)).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_user_wins_over_the_framework_user() {
        let fw = FrameworkInfo {
            user: "root".into(),
            ..FrameworkInfo::default()
        };
        let mut cmd = CommandInfo::default();
        assert_eq!(requested_user(&fw, &cmd), Some("root"));
        cmd.user = Some("nobody".into());
        assert_eq!(requested_user(&fw, &cmd), Some("nobody"));
        cmd.user = Some(String::new());
        assert_eq!(requested_user(&fw, &cmd), Some("root"));
        assert_eq!(
            requested_user(&FrameworkInfo::default(), &CommandInfo::default()),
            None
        );
    }

    #[test]
    fn users_are_looked_up_and_unknown_ones_refused() {
        assert!(matches!(
            run_as(true, Some("no-such-user-dcos-rs")),
            Err(UserError::Unknown(u)) if u == "no-such-user-dcos-rs"
        ));
        assert_eq!(run_as(false, Some("no-such-user-dcos-rs")).unwrap(), None);
        assert_eq!(run_as(true, None).unwrap(), None);
        let me = User::from_uid(Uid::effective()).unwrap().unwrap();
        assert_eq!(run_as(true, Some(&me.name)).unwrap(), None);
        if Uid::effective().is_root() {
            let nobody = run_as(true, Some("nobody")).unwrap().expect("a switch");
            assert_ne!(nobody.uid, 0);
        }
    }
}
