//! Tasks in container images, as the Mesos containerizer (DC/OS' Universal Container
//! Runtime) runs them: no Docker daemon, the agent pulls the image and runs the task in it.
//!
//! A task whose `container` names an image (`type: MESOS` with `mesos.image`, or
//! `type: DOCKER` with `docker.image`, which runs here too) is pulled through the agent's
//! [`ImageStore`], given a provisioner dir over the image's layers (`provisioner`) and cgroups
//! with its memory and cpu limits (`cgroups`), and started as util-linux `unshare` (new mount,
//! pid, uts and ipc namespaces; the host's network) running `dcos container-init`
//! (`init`), which builds the rootfs and runs the task as PID 1's child.
//!
//! What recovery needs is checkpointed in the provisioner dir (`container.json`), keyed by
//! container id: a restarted agent re-attaches to a container whose `unshare` still runs
//! (identified as any task process) and destroys every other one, so neither mounts nor
//! cgroups outlive their container.

mod cgroups;
pub mod init;
mod provisioner;

use std::fmt;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::checkpoint;
use crate::api::{CommandInfo, TaskInfo};
use crate::resources::Resources;

pub use dcos_image::{Image, ImageConfig};

/// Where the agent gets images from: [`RegistryImages`] in production, anything that yields
/// extracted layers in tests.
pub trait ImageStore: Send + Sync + fmt::Debug {
    /// Pulls the image a task asks for (again from the registry if it asks to force that);
    /// the error says what failed, for the task's status.
    fn pull<'a>(&'a self, request: &'a ImageRequest) -> BoxFuture<'a, Result<Image, String>>;
    /// Keeps the image's layers while `container_id` uses them.
    fn hold(&self, digest: &str, container_id: &str) -> Result<(), String>;
    /// Lets go of what `container_id` held.
    fn release(&self, container_id: &str) -> Result<(), String>;
    /// Removes what no container holds any more (unreferenced images and layers); a summary
    /// for the log.
    fn collect_garbage(&self) -> Result<String, String> {
        Ok(String::new())
    }
}

/// The image crate's store (the agent's is at `<work_dir>/images`).
#[derive(Clone)]
pub struct RegistryImages(pub dcos_image::Store);

impl fmt::Debug for RegistryImages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RegistryImages")
    }
}

impl ImageStore for RegistryImages {
    fn pull<'a>(&'a self, request: &'a ImageRequest) -> BoxFuture<'a, Result<Image, String>> {
        Box::pin(async move {
            let reference =
                dcos_image::Reference::parse(&request.name).map_err(|e| e.to_string())?;
            self.0
                .pull(&reference, request.credential.as_ref(), request.force)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn hold(&self, digest: &str, container_id: &str) -> Result<(), String> {
        self.0.hold(digest, container_id).map_err(|e| e.to_string())
    }

    fn release(&self, container_id: &str) -> Result<(), String> {
        self.0.release(container_id).map_err(|e| e.to_string())
    }

    fn collect_garbage(&self) -> Result<String, String> {
        self.0
            .gc()
            .map(|r| format!("{r:?}"))
            .map_err(|e| e.to_string())
    }
}

/// How often the agent removes images and layers no container holds.
pub(super) const IMAGE_GC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Collects the image store's garbage every [`IMAGE_GC_INTERVAL`] until `shutdown`, so
/// pulled images do not fill the agent's disk.
pub(super) async fn collect_images(
    images: Option<Arc<dyn ImageStore>>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let Some(images) = images else {
        return;
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(IMAGE_GC_INTERVAL) => {}
        }
        let store = images.clone();
        match tokio::task::spawn_blocking(move || store.collect_garbage()).await {
            Ok(Ok(report)) => tracing::info!(%report, "image garbage collected"),
            Ok(Err(e)) => tracing::warn!(error = %e, "image garbage collection failed"),
            Err(e) => tracing::warn!(error = %e, "image garbage collection panicked"),
        }
    }
}

/// The image a task asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRequest {
    /// The Docker reference.
    pub name: String,
    /// Pull even if it is cached.
    pub force: bool,
    /// Asked for as `type: DOCKER`: run by the Mesos containerizer all the same.
    pub docker: bool,
    /// Registry credentials (`mesos.image.docker.credential`: principal, secret); their
    /// Debug hides the secret.
    pub credential: Option<dcos_image::Credentials>,
}

/// Note on the status of a `type: DOCKER` task (this agent has no Docker daemon).
pub(super) const DOCKER_ON_UCR: &str =
    "Docker image run by the Mesos containerizer (UCR): this agent has no Docker daemon";

/// The image a task's container names, if any; an error for a container that names one
/// wrongly (unsupported image types, `type: DOCKER` without an image).
pub(super) fn image_of(task: &TaskInfo) -> Result<Option<ImageRequest>, String> {
    let Some(container) = &task.container else {
        return Ok(None);
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    match container
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("MESOS")
    {
        "DOCKER" => {
            let docker = container.get("docker");
            let name = text(docker.and_then(|d| d.get("image")))
                .filter(|n| !n.is_empty())
                .ok_or("a DOCKER container needs docker.image")?;
            let force = docker
                .and_then(|d| d.get("force_pull_image"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Ok(Some(ImageRequest {
                name,
                force,
                docker: true,
                credential: credential(docker.and_then(|d| d.get("credential"))),
            }))
        }
        "MESOS" => {
            let Some(image) = container.pointer("/mesos/image") else {
                return Ok(None);
            };
            match image.get("type").and_then(Value::as_str) {
                Some("DOCKER") => {}
                other => {
                    return Err(format!(
                        "unsupported image type {other:?}: only DOCKER images are provisioned"
                    ))
                }
            }
            let name = text(image.pointer("/docker/name"))
                .filter(|n| !n.is_empty())
                .ok_or("a DOCKER image needs docker.name")?;
            // `cached: false` is Mesos' force pull.
            let force = !image.get("cached").and_then(Value::as_bool).unwrap_or(true);
            Ok(Some(ImageRequest {
                name,
                force,
                docker: false,
                credential: credential(image.pointer("/docker/credential")),
            }))
        }
        other => Err(format!("unsupported container type {other}")),
    }
}

/// A Mesos `Credential` (`principal`, `secret`) as registry credentials.
fn credential(value: Option<&Value>) -> Option<dcos_image::Credentials> {
    let value = value?;
    let field = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_string);
    Some(dcos_image::Credentials {
        username: field("principal")?,
        password: field("secret").unwrap_or_default(),
    })
}

/// What the agent checkpoints of a container: all that destroying it needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Container {
    /// Its id (the run's container id).
    pub(super) id: String,
    /// Its provisioner dir.
    pub(super) dir: PathBuf,
    /// Its cgroup dirs.
    pub(super) cgroups: Vec<PathBuf>,
}

impl Container {
    fn checkpoint_path(dir: &Path) -> PathBuf {
        dir.join("container.json")
    }

    /// A container with nothing made yet.
    fn bare(work_dir: &Path, container_id: &str) -> Container {
        Container {
            id: container_id.to_string(),
            dir: provisioner::dir(work_dir, container_id),
            cgroups: Vec::new(),
        }
    }

    /// The container of `container_id` as checkpointed; None if there is no provisioner dir
    /// (not a container), a bare one if its checkpoint is unreadable.
    pub(super) fn load(work_dir: &Path, container_id: &str) -> Option<Container> {
        let bare = Container::bare(work_dir, container_id);
        if !bare.dir.exists() {
            return None;
        }
        let checkpointed = std::fs::read(Self::checkpoint_path(&bare.dir))
            .ok()
            .and_then(|text| serde_json::from_slice::<Container>(&text).ok())
            // A checkpoint naming other paths is not trusted with removing them.
            .filter(|c| c.dir == bare.dir && c.id == container_id)
            .filter(|c| {
                c.cgroups
                    .iter()
                    .all(|g| cgroups::is_container_cgroup(g, container_id))
            });
        Some(checkpointed.unwrap_or(bare))
    }

    /// Mesos' message if the container ended because it hit its memory limit.
    pub(super) fn memory_limitation(&self) -> Option<String> {
        cgroups::memory_limitation(&self.cgroups)
    }

    /// Removes its cgroups, rootfs and provisioner dir and releases its image.
    pub(super) fn destroy(&self, images: Option<&Arc<dyn ImageStore>>) {
        cgroups::remove(&self.cgroups);
        if let Err(e) = provisioner::destroy(&self.dir) {
            tracing::error!(container = %self.id, error = %e, "cannot remove the container's rootfs");
        }
        if let Some(Err(e)) = images.map(|s| s.release(&self.id)) {
            tracing::warn!(container = %self.id, error = %e, "cannot release the container's image");
        }
    }
}

/// Destroys every container of `work_dir` that no live run owns (the agent died between
/// making it and checkpointing the run, or the run ended while it was down).
pub(super) fn destroy_orphans(
    work_dir: &Path,
    live: &[&str],
    images: Option<&Arc<dyn ImageStore>>,
) {
    let Ok(entries) = std::fs::read_dir(work_dir.join("provisioner")) else {
        return;
    };
    for entry in entries.flatten() {
        let id = entry.file_name().to_string_lossy().into_owned();
        if live.contains(&id.as_str()) {
            continue;
        }
        tracing::info!(container = %id, "destroying a container no task owns");
        if let Some(container) = Container::load(work_dir, &id) {
            container.destroy(images);
        }
    }
}

/// Returns once the container of `container_id` has hit its memory limit (the kernel killed
/// one of its processes for it); never for a run that is not a container. Polled, as the
/// counters are cheap files: Mesos' memory isolator then destroys the whole container, since
/// a task that lost a process to the OOM killer may go on half-broken.
pub(super) async fn memory_limit_hit(work_dir: &Path, container_id: &str) {
    let Some(container) = Container::load(work_dir, container_id) else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(MEMORY_POLL).await;
        if container.memory_limitation().is_some() {
            return;
        }
    }
}

/// How often a running container's memory counters are read.
const MEMORY_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// Ends a run's container, if it is one, with nothing of it left after: whether it hit its
/// memory limit (Mesos' message), and the task's exit status as its init recorded it.
pub(super) fn finish(
    work_dir: &Path,
    container_id: &str,
    images: Option<&Arc<dyn ImageStore>>,
) -> (Option<String>, Option<i32>) {
    let Some(container) = Container::load(work_dir, container_id) else {
        return (None, None);
    };
    let limitation = container.memory_limitation();
    let exit = std::fs::read_to_string(container.dir.join(init::EXIT_STATUS))
        .ok()
        .and_then(|t| t.trim().parse().ok());
    container.destroy(images);
    (limitation, exit)
}

/// What launching a task in a container needs from the agent.
pub(super) struct Launch<'a> {
    /// The agent's work dir.
    pub(super) work_dir: &'a Path,
    /// The agent's image store.
    pub(super) images: Option<&'a Arc<dyn ImageStore>>,
    /// The `dcos` binary that runs `container-init`.
    pub(super) init: &'a Path,
    /// The container id.
    pub(super) container_id: &'a str,
    /// The task.
    pub(super) task: &'a TaskInfo,
    /// The user the task asks for (command's or framework's), if switching users.
    pub(super) user: Option<&'a str>,
    /// The sandbox on the host.
    pub(super) sandbox: &'a Path,
    /// The environment the agent gives every task.
    pub(super) env: Vec<(String, String)>,
}

/// Pulls the task's image and starts the task in a container; on failure nothing of the
/// container is left.
pub(super) async fn launch(
    launch: Launch<'_>,
    image: &ImageRequest,
) -> anyhow::Result<tokio::process::Child> {
    let store = launch.images.ok_or_else(|| {
        anyhow::anyhow!(
            "this agent has no image store, so it cannot run image '{}'",
            image.name
        )
    })?;
    let pulled = store.pull(image).await.map_err(anyhow::Error::msg)?;
    let mut container = Container::bare(launch.work_dir, launch.container_id);
    let error = match provision(&launch, &pulled, store, &mut container) {
        Ok((mut child, started)) => {
            let sandbox = launch.sandbox.to_path_buf();
            let waited = tokio::task::spawn_blocking(move || wait_started(started, &sandbox));
            // An init stuck before its task starts (a mount that hangs) is given up on: the
            // kill below closes the pipe, which ends the blocking wait too.
            let waited = tokio::time::timeout(START_TIMEOUT, waited).await;
            let waited = match waited {
                Ok(joined) => joined.map_err(anyhow::Error::from).and_then(|r| r),
                Err(_) => Err(anyhow::anyhow!(
                    "the container's init did not start the task within {START_TIMEOUT:?}"
                )),
            };
            match waited {
                Ok(()) => return Ok(child),
                Err(e) => {
                    if let Some(pid) = child.id() {
                        let _ = nix::sys::signal::killpg(
                            nix::unistd::Pid::from_raw(pid as i32),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    let _ = child.wait().await;
                    e
                }
            }
        }
        Err(e) => e,
    };
    container.destroy(Some(store));
    Err(error)
}

/// How long a container's init may take from its start to its task's.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Everything after the pull: layers held, rootfs dir, cgroups, checkpoint, spec, spawn.
fn provision(
    launch: &Launch<'_>,
    image: &Image,
    store: &Arc<dyn ImageStore>,
    container: &mut Container,
) -> anyhow::Result<(tokio::process::Child, OwnedFd)> {
    store
        .hold(&image.digest, &container.id)
        .map_err(|e| anyhow::anyhow!("Failed to hold image {}: {e}", image.digest))?;
    checkpoint::create_dir(&container.dir)?;
    // Checkpointed before anything else is made, so a crash leaves it findable.
    write_checkpoint(container)?;
    provisioner::prepare(&container.dir, &image.layers)?;
    let resources = Resources::from_api(&launch.task.resources).unwrap_or_default();
    container.cgroups = cgroups::create(&container.id, resources.mem, resources.cpus)?;
    write_checkpoint(container)?;
    let spec = spec(launch, image, container)?;
    let spec_path = container.dir.join("spec.json");
    checkpoint::write_atomic(&spec_path, &serde_json::to_vec(&spec)?)?;
    let stdout = fs_err::File::create(launch.sandbox.join("stdout"))?
        .into_parts()
        .0;
    let stderr = fs_err::File::create(launch.sandbox.join("stderr"))?
        .into_parts()
        .0;
    let (started, started_writer) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let child = tokio::process::Command::new("unshare")
        .args([
            "--mount",
            "--pid",
            "--uts",
            "--ipc",
            "--fork",
            "--kill-child",
        ])
        .args(["--propagation", "private"])
        .arg(launch.init)
        .arg("container-init")
        .arg(&spec_path)
        .env_clear()
        // The init reports through its stdin that the task has started.
        .stdin(started_writer)
        .stdout(stdout)
        .stderr(stderr)
        // Its own process group, as every task: a kill signals the group.
        .process_group(0)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start unshare for the container: {e}"))?;
    Ok((child, started))
}

/// Waits until the container's init says its task runs; an error with the init's last
/// words (the sandbox's stderr) if it ends first. Only the init and its `unshare` hold the
/// pipe's write end, so it ends (EOF) when they do.
fn wait_started(pipe: OwnedFd, sandbox: &Path) -> anyhow::Result<()> {
    use std::io::Read;
    let mut said = Vec::new();
    std::fs::File::from(pipe)
        .take(init::STARTED.len() as u64)
        .read_to_end(&mut said)?;
    if said == init::STARTED {
        return Ok(());
    }
    let stderr = std::fs::read_to_string(sandbox.join("stderr")).unwrap_or_default();
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no reason given");
    anyhow::bail!("the container's init failed: {last}")
}

fn write_checkpoint(container: &Container) -> std::io::Result<()> {
    let text = serde_json::to_vec(container).map_err(std::io::Error::other)?;
    checkpoint::write_atomic(&Container::checkpoint_path(&container.dir), &text)
}

/// The init's spec: the command, environment and user resolved as Mesos resolves them.
fn spec(launch: &Launch<'_>, image: &Image, container: &Container) -> anyhow::Result<init::Spec> {
    let command = launch.task.command.clone().unwrap_or_default();
    let mut env: Vec<(String, String)> = image
        .config
        .env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push((
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ));
    }
    env.extend(launch.env.iter().cloned());
    // As Mesos: MESOS_SANDBOX is where the task sees its sandbox, MESOS_DIRECTORY stays
    // the host's path.
    env.push(("MESOS_SANDBOX".into(), init::SANDBOX.into()));
    // Later settings win: keep the last of each name.
    let mut seen = std::collections::BTreeSet::new();
    env.reverse();
    env.retain(|(k, _)| seen.insert(k.clone()));
    env.reverse();
    let container_info = launch.task.container.as_ref();
    Ok(init::Spec {
        dir: container.dir.clone(),
        layers: image.layers.len(),
        sandbox: launch.sandbox.to_path_buf(),
        argv: argv(&command, &image.config)?,
        env,
        // As Mesos: the command's user, else the framework's (decided by the agent); the
        // image's `User` does not pick who a framework's task runs as.
        user: launch.user.map(str::to_string),
        working_dir: image.config.working_dir.clone().filter(|w| !w.is_empty()),
        hostname: container_info
            .and_then(|c| c.get("hostname"))
            .and_then(Value::as_str)
            .map(str::to_string),
        volumes: volumes(container_info)?,
        cgroups: container.cgroups.clone(),
    })
}

/// The command as Mesos runs it in an image: a shell line through the image's `/bin/sh`, a
/// program with its arguments, or with no command the image's entrypoint and cmd (the
/// task's arguments replacing cmd).
fn argv(command: &CommandInfo, image: &ImageConfig) -> anyhow::Result<Vec<String>> {
    let argv = match (&command.value, command.shell.unwrap_or(true)) {
        (Some(value), true) => vec!["/bin/sh".into(), "-c".into(), value.clone()],
        (Some(value), false) => std::iter::once(value.clone())
            .chain(command.arguments.iter().skip(1).cloned())
            .collect(),
        (None, _) => {
            let cmd = if command.arguments.is_empty() {
                &image.cmd
            } else {
                &command.arguments
            };
            image.entrypoint.iter().chain(cmd).cloned().collect()
        }
    };
    if argv.is_empty() {
        anyhow::bail!("the task has no command and its image neither an entrypoint nor a cmd");
    }
    Ok(argv)
}

/// The host-path volumes of a ContainerInfo.
fn volumes(container: Option<&Value>) -> anyhow::Result<Vec<init::Volume>> {
    let list = container
        .and_then(|c| c.get("volumes"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let mut out = Vec::new();
    for v in list {
        let container_path = v
            .get("container_path")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| anyhow::anyhow!("a volume needs a container_path"))?;
        let Some(host_path) = v.get("host_path").and_then(Value::as_str) else {
            // Other sources (persistent volumes, secrets) are not provisioned here yet.
            anyhow::bail!("volume {container_path}: only host_path volumes are supported");
        };
        let host_path = PathBuf::from(host_path);
        if !host_path.is_absolute() || !host_path.exists() {
            anyhow::bail!(
                "volume {container_path}: host path {} does not exist",
                host_path.display()
            );
        }
        out.push(init::Volume {
            host_path,
            container_path: container_path.into(),
            read_only: v.get("mode").and_then(Value::as_str) == Some("RO"),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn task(container: Value) -> TaskInfo {
        TaskInfo {
            container: Some(container),
            ..TaskInfo::default()
        }
    }

    #[test]
    fn images_are_found_in_mesos_and_docker_containers() {
        let mesos = json!({"type": "MESOS", "mesos": {"image": {"type": "DOCKER", "docker": {"name": "busybox", "credential": {"principal": "u", "secret": "p"}}, "cached": false}}});
        assert_eq!(
            image_of(&task(mesos)).unwrap(),
            Some(ImageRequest {
                name: "busybox".into(),
                force: true,
                docker: false,
                credential: Some(dcos_image::Credentials {
                    username: "u".into(),
                    password: "p".into()
                }),
            })
        );
        let docker =
            json!({"type": "DOCKER", "docker": {"image": "r/x:1", "force_pull_image": true}});
        assert_eq!(
            image_of(&task(docker)).unwrap(),
            Some(ImageRequest {
                name: "r/x:1".into(),
                force: true,
                docker: true,
                credential: None,
            })
        );
        assert_eq!(image_of(&task(json!({"type": "MESOS"}))).unwrap(), None);
        assert_eq!(image_of(&TaskInfo::default()).unwrap(), None);
        assert!(image_of(&task(json!({"type": "DOCKER"}))).is_err());
        assert!(image_of(&task(
            json!({"type": "MESOS", "mesos": {"image": {"type": "APPC"}}})
        ))
        .is_err());
    }

    #[test]
    fn commands_resolve_as_mesos_does() {
        let image = ImageConfig {
            entrypoint: vec!["/ep".into()],
            cmd: vec!["a".into()],
            ..ImageConfig::default()
        };
        let shell = CommandInfo {
            value: Some("echo hi".into()),
            ..CommandInfo::default()
        };
        assert_eq!(argv(&shell, &image).unwrap(), ["/bin/sh", "-c", "echo hi"]);
        let exec = CommandInfo {
            value: Some("/bin/echo".into()),
            shell: Some(false),
            arguments: vec!["echo".into(), "x".into()],
            ..CommandInfo::default()
        };
        assert_eq!(argv(&exec, &image).unwrap(), ["/bin/echo", "x"]);
        assert_eq!(argv(&CommandInfo::default(), &image).unwrap(), ["/ep", "a"]);
        let args = CommandInfo {
            arguments: vec!["b".into()],
            shell: Some(false),
            ..CommandInfo::default()
        };
        assert_eq!(argv(&args, &image).unwrap(), ["/ep", "b"]);
        assert!(argv(&CommandInfo::default(), &ImageConfig::default()).is_err());
    }

    #[test]
    fn volumes_need_existing_host_paths() {
        let c =
            json!({"volumes": [{"container_path": "/data", "host_path": "/tmp", "mode": "RO"}]});
        let v = volumes(Some(&c)).unwrap();
        assert_eq!(v[0].host_path, Path::new("/tmp"));
        assert!(v[0].read_only);
        let bad = json!({"volumes": [{"container_path": "/d", "host_path": "/no/such/dir-dcos"}]});
        assert!(volumes(Some(&bad)).is_err());
    }
}
