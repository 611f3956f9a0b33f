//! `dcos container-init <spec.json>`: PID 1 of a container.
//!
//! The agent starts it under util-linux `unshare` in new mount, pid, uts and ipc namespaces
//! (the workspace forbids `unsafe`, so no namespaces or `pre_exec` from the agent itself).
//! It joins the container's cgroups before anything of the task runs, mounts the image's
//! rootfs and what a task expects inside it, pivots into it, starts the task as its child and
//! then acts as init: signals the agent sends (SIGTERM for a kill) reach the task, which a
//! PID 1 without handlers would silently drop, every orphan is reaped, and it exits with the
//! task's status. All its mounts live in the container's mount namespace only, so they vanish
//! with it and nothing is left mounted on the host.

use std::os::unix::fs::symlink;
use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// What the init writes to its stdin (the write end of the agent's pipe) once the task runs.
pub(crate) const STARTED: &[u8] = b"started\n";

/// Where the sandbox appears inside a container (Mesos' `MESOS_SANDBOX`).
pub const SANDBOX: &str = "/mnt/mesos/sandbox";

/// Everything the init needs, written by the agent beside the rootfs (outside the sandbox,
/// so the task cannot change what the next start of its init would do).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Spec {
    /// The container's provisioner dir: `l/<n>` (links to the layers, 0 the bottom one),
    /// `upper`, `work` and `rootfs`. Paths are given to overlayfs relative to it, which keeps
    /// the mount options short whatever the layer paths are.
    pub dir: PathBuf,
    /// How many layers `l/` holds.
    pub layers: usize,
    /// The sandbox on the host.
    pub sandbox: PathBuf,
    /// The command, resolved.
    pub argv: Vec<String>,
    /// The environment, complete.
    pub env: Vec<(String, String)>,
    /// `uid[:gid]` or a user name of the image's `/etc/passwd`; None for root.
    pub user: Option<String>,
    /// The working dir inside the container; None for the sandbox.
    pub working_dir: Option<String>,
    /// The container's hostname; None keeps the host's.
    pub hostname: Option<String>,
    /// Host paths to bind in.
    pub volumes: Vec<Volume>,
    /// The container's cgroup dirs; the init joins each before starting the task.
    pub cgroups: Vec<PathBuf>,
}

/// A host path bound into the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Volume {
    /// On the host.
    pub host_path: PathBuf,
    /// In the container: absolute in the rootfs, relative in the sandbox (as Mesos).
    pub container_path: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Runs a container's init; returns the task's exit status (128 + signal if killed).
pub fn run(spec_path: &Path) -> anyhow::Result<i32> {
    let text = fs_err::read(spec_path)?;
    let spec: Spec = serde_json::from_slice(&text)
        .with_context(|| format!("invalid container spec {}", spec_path.display()))?;
    for cgroup in &spec.cgroups {
        // "0" is the writer itself.
        fs_err::write(cgroup.join("cgroup.procs"), "0")?;
    }
    let user = mount_rootfs(&spec)?;
    // Where the task's exit status goes, opened before the host's root is detached: the
    // provisioner dir, which no task can reach or plant a link in.
    let exit_file = fs_err::File::create(spec.dir.join(EXIT_STATUS))?
        .into_parts()
        .0;
    enter_rootfs(&spec.dir.join("rootfs"))?;
    if let Some(name) = &spec.hostname {
        nix::unistd::sethostname(name).context("cannot set the container's hostname")?;
    }
    drop_capabilities()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let code = runtime.block_on(supervise(&spec, user))?;
    record_exit(exit_file, code);
    Ok(code)
}

/// The file in a container's provisioner dir where its init records the task's exit status.
pub(crate) const EXIT_STATUS: &str = "exit_status";

/// The capabilities a container's processes may have at most: Docker's default set without
/// MKNOD (no devices cgroup stops a made block device) and NET_RAW (containers share the
/// host's network, where raw sockets would see and forge its traffic). The rest (mounting,
/// loading modules, raw I/O, changing the clock, ...) would let a task in an image act on
/// the host, since containers share the host's user ids.
const KEPT_CAPABILITIES: [caps::Capability; 12] = [
    caps::Capability::CAP_CHOWN,
    caps::Capability::CAP_DAC_OVERRIDE,
    caps::Capability::CAP_FSETID,
    caps::Capability::CAP_FOWNER,
    caps::Capability::CAP_SETGID,
    caps::Capability::CAP_SETUID,
    caps::Capability::CAP_SETFCAP,
    caps::Capability::CAP_SETPCAP,
    caps::Capability::CAP_NET_BIND_SERVICE,
    caps::Capability::CAP_SYS_CHROOT,
    caps::Capability::CAP_KILL,
    caps::Capability::CAP_AUDIT_WRITE,
];

/// Drops every other capability from the bounding set, which the task inherits, and
/// clears the inheritable and ambient sets (which a root exec would add back).
fn drop_capabilities() -> anyhow::Result<()> {
    for cap in caps::all() {
        if !KEPT_CAPABILITIES.contains(&cap) {
            caps::drop(None, caps::CapSet::Bounding, cap)
                .map_err(|e| anyhow::anyhow!("cannot drop {cap}: {e}"))?;
        }
    }
    for set in [caps::CapSet::Inheritable, caps::CapSet::Ambient] {
        caps::clear(None, set).map_err(|e| anyhow::anyhow!("cannot clear {set:?}: {e}"))?;
    }
    Ok(())
}

/// Runs `argv` in the running container whose init is `init` (a child of `parent`, its
/// `unshare`), as its task runs: the init's cgroups and namespaces, its root, the task's
/// environment, user and capabilities, from the sandbox; the command's exit status. This is
/// how the agent runs a task's command health check in its container.
pub fn exec(spec_path: &Path, init: u32, parent: u32, argv: &[String]) -> anyhow::Result<i32> {
    use nix::sched::{setns, CloneFlags};
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let text = fs_err::read(spec_path)?;
    let spec: Spec = serde_json::from_slice(&text)
        .with_context(|| format!("invalid container spec {}", spec_path.display()))?;
    let namespace = |name: &str| fs_err::File::open(format!("/proc/{init}/ns/{name}"));
    let joined = [
        (namespace("ipc")?, CloneFlags::CLONE_NEWIPC),
        (namespace("uts")?, CloneFlags::CLONE_NEWUTS),
        (namespace("pid")?, CloneFlags::CLONE_NEWPID),
        (namespace("mnt")?, CloneFlags::CLONE_NEWNS),
    ];
    // Checked after the namespaces are open: a pid reused since the init died must not be
    // entered (the handles stay the init's even if it dies now).
    anyhow::ensure!(
        parent_of(init) == Some(parent),
        "the container's init ({init}) is gone"
    );
    for cgroup in &spec.cgroups {
        fs_err::write(cgroup.join("cgroup.procs"), "0")?;
    }
    for (file, kind) in joined {
        setns(file, kind).with_context(|| format!("cannot enter the container's {kind:?}"))?;
    }
    // Entering the mount namespace put this process at its root: the container's rootfs.
    std::env::set_current_dir("/")?;
    drop_capabilities()?;
    let user = match spec.user.as_deref().filter(|u| !u.is_empty()) {
        Some(user) => Some(resolve_user(user, &image_passwd(Path::new("/")))?),
        None => None,
    };
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("nothing to run"))?;
    let mut cmd = std::process::Command::new(program);
    // The task's environment, then this process's own (the agent starts it with nothing
    // but the check's variables).
    cmd.args(args)
        .env_clear()
        .envs(spec.env.iter().cloned())
        .envs(std::env::vars())
        .current_dir(SANDBOX)
        .stdin(std::process::Stdio::null());
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    // A child: only children enter the joined pid namespace.
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {program}"))?;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// The parent of process `pid`, from `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> Option<u32> {
    crate::agent::procfs::Stat::of(pid).map(|s| s.ppid)
}

/// Mounts the overlay rootfs and, inside it, what a task expects; gives the sandbox to the
/// task's user before any volume is mounted into it. The task's user as (uid, gid).
fn mount_rootfs(spec: &Spec) -> anyhow::Result<Option<(u32, u32)>> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("cannot make the container's mounts private")?;
    std::env::set_current_dir(&spec.dir)?;
    let lower: Vec<String> = (0..spec.layers).rev().map(|i| format!("l/{i}")).collect();
    let options = format!("lowerdir={},upperdir=upper,workdir=work", lower.join(":"));
    // No device nodes from an image: the only devices are the few bound in below.
    mount(
        Some("overlay"),
        "rootfs",
        Some("overlay"),
        MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .with_context(|| format!("cannot mount the container's rootfs ({options})"))?;
    let root = spec.dir.join("rootfs");
    let fs_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs(&root, "proc", "proc", fs_flags, None)?;
    if let Err(e) = mount_fs(&root, "sys", "sysfs", fs_flags | MsFlags::MS_RDONLY, None) {
        // Not every host lets a namespace mount sysfs; few tasks need it.
        eprintln!("container-init: no /sys in the container: {e:#}");
    }
    mount_dev(&root)?;
    protect_proc(&root)?;
    let sandbox = mount_point(&root, SANDBOX, true)?;
    bind(&spec.sandbox, &sandbox, false)?;
    confine(&sandbox, false)?;
    let user = match spec.user.as_deref().filter(|u| !u.is_empty()) {
        Some(user) => Some(resolve_user(user, &image_passwd(&root))?),
        None => None,
    };
    if let Some((uid, gid)) = user.filter(|(uid, _)| *uid != 0) {
        // The sandbox is the task's, as Mesos hands it to the task's user.
        crate::agent::containerizer::launcher::chown_tree(&spec.sandbox, uid, gid)
            .context("cannot give the sandbox to the task's user")?;
    }
    for volume in &spec.volumes {
        let target = if volume.container_path.starts_with('/') {
            volume.container_path.clone()
        } else {
            format!("{SANDBOX}/{}", volume.container_path)
        };
        let target = mount_point(&root, &target, volume.host_path.is_dir())?;
        bind(&volume.host_path, &target, volume.read_only)
            .and_then(|()| confine(&target, volume.read_only))
            .with_context(|| format!("cannot mount volume {}", volume.host_path.display()))?;
    }
    Ok(user)
}

/// What of `/proc` a container may not change or read, as Docker masks it: the kernel's
/// settings and the sysrq trigger read-only, the kernel's memory and keys hidden.
fn protect_proc(root: &Path) -> anyhow::Result<()> {
    for path in [
        "proc/sys",
        "proc/sysrq-trigger",
        "proc/irq",
        "proc/bus",
        "proc/fs",
    ] {
        let at = root.join(path);
        if at.exists() {
            bind(&at, &at, true)?;
        }
    }
    let null = root.join("dev/null");
    for path in [
        "proc/kcore",
        "proc/keys",
        "proc/timer_list",
        "proc/sched_debug",
        "proc/latency_stats",
    ] {
        let at = root.join(path);
        if at.exists() {
            bind(&null, &at, true)?;
        }
    }
    Ok(())
}

/// The image's `/etc/passwd`: a regular file, not followed through a link, at most 1 MiB
/// (an image could make it a FIFO or a device that never ends); empty if there is none.
fn image_passwd(root: &Path) -> String {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(root.join("etc/passwd"));
    let Ok(file) = opened else {
        return String::new();
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return String::new();
    }
    let mut text = String::new();
    let _ = file.take(1 << 20).read_to_string(&mut text);
    text
}

/// `/dev` as a tmpfs with the usual devices bound from the host, its own ptys and shm.
fn mount_dev(root: &Path) -> anyhow::Result<()> {
    let dev = mount_fs(
        root,
        "dev",
        "tmpfs",
        // nodev: a node made here is no device; the few bound in keep their own mounts.
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let host = Path::new("/dev").join(name);
        if host.exists() {
            let target = dev.join(name);
            fs_err::File::create(&target)?;
            bind(&host, &target, false)?;
        }
    }
    mount_fs(
        root,
        "dev/pts",
        "devpts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    mount_fs(
        root,
        "dev/shm",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777,size=65536k"),
    )?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(target, dev.join(link))?;
    }
    Ok(())
}

/// Mounts a filesystem of `fstype` at `path` (relative to the rootfs), creating the mount
/// point a scratch image lacks.
fn mount_fs(
    root: &Path,
    path: &str,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> anyhow::Result<PathBuf> {
    let target = mount_point(root, path, true)?;
    mount(Some(fstype), &target, Some(fstype), flags, data)
        .with_context(|| format!("cannot mount {fstype} at /{path}"))?;
    Ok(target)
}

/// Remounts a bind at `target` without devices or setuid (what a task writes there, or a
/// host directory holds, must not become a device or a way to root).
fn confine(target: &Path, read_only: bool) -> anyhow::Result<()> {
    let mut flags = MsFlags::MS_BIND
        | MsFlags::MS_REC
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_NODEV
        | MsFlags::MS_NOSUID;
    if read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .with_context(|| format!("cannot confine the mount at {}", target.display()))?;
    Ok(())
}

/// Binds `source` at `target`, read-only if asked (which takes a remount).
fn bind(source: &Path, target: &Path, read_only: bool) -> anyhow::Result<()> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
    mount(Some(source), target, None::<&str>, flags, None::<&str>)
        .with_context(|| format!("cannot bind {} in", source.display()))?;
    if read_only {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )?;
    }
    Ok(())
}

/// The host path of `path` inside the rootfs, created (a dir, or an empty file for a file
/// mount) if missing. No component may be a symlink: an image must not redirect a mount
/// out of its rootfs.
fn mount_point(root: &Path, path: &str, dir: bool) -> anyhow::Result<PathBuf> {
    let mut at = root.to_path_buf();
    let components: Vec<Component> = Path::new(path).components().collect();
    for (i, c) in components.iter().enumerate() {
        let Component::Normal(name) = c else {
            if matches!(c, Component::RootDir | Component::CurDir) {
                continue;
            }
            anyhow::bail!("mount point {path} leaves the container");
        };
        at.push(name);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                anyhow::bail!("mount point {path} goes through a symlink in the image")
            }
            Ok(_) => {}
            Err(_) if dir || i + 1 < components.len() => fs_err::create_dir(&at)?,
            Err(_) => drop(fs_err::File::create(&at)?),
        }
    }
    Ok(at)
}

/// Makes `root` the container's `/` and detaches the host's.
fn enter_rootfs(root: &Path) -> anyhow::Result<()> {
    std::env::set_current_dir(root)?;
    // Stacking the old root under the new one needs no put_old dir in the image.
    nix::unistd::pivot_root(".", ".").context("cannot pivot into the container's rootfs")?;
    umount2(".", MntFlags::MNT_DETACH).context("cannot detach the host's root")?;
    std::env::set_current_dir("/")?;
    Ok(())
}

/// A user as the image knows it: (uid, gid).
fn resolve_user(user: &str, passwd: &str) -> anyhow::Result<(u32, u32)> {
    let (name, group) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && (f[0] == name || f[2] == name));
    let uid = match (name.parse::<u32>(), &entry) {
        (Ok(uid), _) => uid,
        (Err(_), Some(f)) => f[2].parse()?,
        (Err(_), None) if name == "root" => 0,
        (Err(_), None) => anyhow::bail!("user '{name}' is not in the image's /etc/passwd"),
    };
    // An image's /etc/passwd must not turn a named user into root.
    if uid == 0 && name != "root" && name != "0" {
        anyhow::bail!(
            "user '{name}' is uid 0 in the image's /etc/passwd; refusing to run it as root"
        );
    }
    let gid = match (group, &entry) {
        (Some(g), _) => g
            .parse()
            .map_err(|_| anyhow::anyhow!("group '{g}' must be numeric"))?,
        (None, Some(f)) => f[3].parse()?,
        (None, None) => 0,
    };
    Ok((uid, gid))
}

/// Starts the task inside the (already entered) rootfs, as `user` if given.
fn spawn_task(spec: &Spec, user: Option<(u32, u32)>) -> anyhow::Result<Pid> {
    use std::os::unix::process::CommandExt;
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("the task has no command and its image none either"))?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(spec.env.iter().cloned())
        .current_dir(spec.working_dir.as_deref().unwrap_or(SANDBOX))
        .stdin(std::process::Stdio::null());
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    Ok(Pid::from_raw(child.id() as i32))
}

/// Starts the task, forwards termination signals to it and reaps every child until it
/// ends; returns its status as a shell reports it (127 if it could not start).
///
/// Signals are caught with handlers (tokio's), not blocked: a blocked mask would be inherited
/// by the task, and without a handler a namespace's init never receives SIGTERM at all.
/// Handlers revert to the default in the task when it execs.
async fn supervise(spec: &Spec, user: Option<(u32, u32)>) -> anyhow::Result<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut forwarded = Vec::new();
    for (kind, sig) in [
        (SignalKind::terminate(), Signal::SIGTERM),
        (SignalKind::interrupt(), Signal::SIGINT),
        (SignalKind::hangup(), Signal::SIGHUP),
        (SignalKind::quit(), Signal::SIGQUIT),
    ] {
        forwarded.push((signal(kind)?, sig));
    }
    // Registered before the task starts, so its exit cannot go unnoticed.
    let mut children = signal(SignalKind::child())?;
    let task = match spawn_task(spec, user) {
        Ok(pid) => pid,
        Err(e) => {
            eprintln!("Failed to start the task in its container: {e:#}");
            return Ok(127);
        }
    };
    // The agent's pipe (our stdin) learns that the task runs: only now is it RUNNING, and
    // only now can a kill's SIGTERM reach it.
    let _ = nix::unistd::write(std::io::stdin(), STARTED);
    loop {
        if let Some(code) = reap(task) {
            return Ok(code);
        }
        let received = futures::future::select_all(
            forwarded
                .iter_mut()
                .map(|(stream, sig)| Box::pin(async move { stream.recv().await.map(|_| *sig) })),
        );
        tokio::select! {
            (sig, _, _) = received => {
                if let Some(sig) = sig {
                    let _ = kill(task, sig);
                }
            }
            _ = children.recv() => {}
        }
    }
}

/// Reaps every exited child; the task's status if it was among them.
fn reap(task: Pid) -> Option<i32> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == task => return Some(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == task => return Some(128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return None,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

/// Records the task's exit status where a restarted agent looks for it.
fn record_exit(mut file: std::fs::File, code: i32) {
    use std::io::Write;
    let _ = writeln!(file, "{code}");
    let _ = file.sync_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_against_the_image_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65533::/:/bin/false\n";
        assert_eq!(resolve_user("nobody", passwd).unwrap(), (65534, 65533));
        assert_eq!(resolve_user("65534", passwd).unwrap(), (65534, 65533));
        assert_eq!(resolve_user("1000:2000", passwd).unwrap(), (1000, 2000));
        assert_eq!(resolve_user("1000", "").unwrap(), (1000, 0));
        assert_eq!(resolve_user("root", "").unwrap(), (0, 0));
        assert!(resolve_user("alice", passwd).is_err());
    }

    #[test]
    fn mount_points_stay_in_the_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let p = mount_point(root, "/mnt/mesos/sandbox", true).unwrap();
        assert!(p.is_dir());
        let f = mount_point(root, "/etc/hosts", false).unwrap();
        assert!(f.is_file());
        symlink("/etc", root.join("link")).unwrap();
        assert!(mount_point(root, "/link/x", true).is_err());
        assert!(mount_point(root, "/../x", true).is_err());
    }
}
