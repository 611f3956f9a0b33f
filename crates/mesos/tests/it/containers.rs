//! Tasks in container images (the Mesos containerizer): a busybox image of two layers built
//! here, served by an in-memory image store, run by an agent on loopback. Each test checks
//! that the task saw the image and not the host, and that no mount or cgroup of its
//! container is left afterwards. Needs root (namespaces, overlayfs, cgroups) and
//! `/bin/busybox` (Debian's `busybox-static`), and the `dcos` binary built
//! (`cargo build -p dcos-cli`) for the containers' init.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dcos_mesos::agent::container::{Image, ImageConfig, ImageRequest, ImageStore};
use dcos_mesos::agent::{self, Config};
use dcos_testkit::loopback;
use futures::future::BoxFuture;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::harness::{agent_resources, eventually, framework, launch, task, Scheduler};

/// An image store holding one image, `busybox`, whose layers were built in a tempdir.
#[derive(Debug)]
struct TestImages {
    layers: Vec<PathBuf>,
    held: Mutex<Vec<String>>,
}

impl ImageStore for TestImages {
    fn pull<'a>(&'a self, request: &'a ImageRequest) -> BoxFuture<'a, Result<Image, String>> {
        Box::pin(async move {
            if request.name != "busybox" {
                let name = &request.name;
                return Err(format!("Failed to pull image '{name}': manifest unknown"));
            }
            Ok(Image {
                digest: "sha256:test".into(),
                layers: self.layers.clone(),
                config: ImageConfig {
                    env: vec!["PATH=/bin".into(), "FROM_IMAGE=yes".into()],
                    cmd: vec!["/bin/sh".into()],
                    ..ImageConfig::default()
                },
            })
        })
    }

    fn hold(&self, _digest: &str, container_id: &str) -> Result<(), String> {
        self.held.lock().unwrap().push(container_id.into());
        Ok(())
    }

    fn release(&self, container_id: &str) -> Result<(), String> {
        self.held.lock().unwrap().retain(|c| c != container_id);
        Ok(())
    }
}

/// Layer 0: busybox and its applets, `/etc/passwd`, `/etc/gone`; layer 1: `/etc/added` and
/// an overlay whiteout (a 0:0 character device) hiding `/etc/gone`.
fn build_layers(root: &Path) -> Vec<PathBuf> {
    let (base, top) = (root.join("0"), root.join("1"));
    for dir in ["bin", "etc"] {
        std::fs::create_dir_all(base.join(dir)).unwrap();
        std::fs::create_dir_all(top.join(dir)).unwrap();
    }
    std::fs::copy("/bin/busybox", base.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "cat", "sleep", "dd", "echo", "test", "tr", "ls", "id", "hostname", "touch", "pwd",
        "grep", "mount", "mknod",
    ] {
        symlink("busybox", base.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        base.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(base.join("etc/gone"), "deleted in layer 1\n").unwrap();
    std::fs::write(top.join("etc/added"), "from layer 1\n").unwrap();
    nix::sys::stat::mknod(
        &top.join("etc/gone"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        nix::sys::stat::makedev(0, 0),
    )
    .unwrap();
    vec![base, top]
}

/// Fails the test, saying what is missing, where this host cannot run containers: the test
/// command runs as root and installs busybox-static, so a missing piece is a broken setup.
pub(crate) fn require_containers() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "containers need root (namespaces, overlayfs, cgroups)"
    );
    assert!(
        Path::new("/bin/busybox").is_file(),
        "no /bin/busybox: scripts/install-deps installs Debian's busybox-static"
    );
}

pub(crate) struct Cluster {
    pub(crate) master: loopback::Running,
    pub(crate) agent: std::net::SocketAddr,
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
    images: Arc<TestImages>,
    pub(crate) work_dir: tempfile::TempDir,
    _layers: tempfile::TempDir,
}

impl Drop for Cluster {
    /// Stops the agent and kills what a failed test left running (tasks outlive their agent
    /// by design), so one failure does not leave containers behind.
    fn drop(&mut self) {
        self.stop.cancel();
        let Ok(entries) = std::fs::read_dir(self.work_dir.path().join("provisioner")) else {
            return;
        };
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            let dirs = ["memory", "cpu"].map(|c| cgroup_of(c, &id));
            for _ in 0..50 {
                for dir in &dirs {
                    let procs = std::fs::read_to_string(dir.join("cgroup.procs"));
                    let pids = procs.unwrap_or_default();
                    // Never 0 (or less): kill(0) would signal this test's own group.
                    for pid in pids.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
                        if pid > 0 {
                            let pid = nix::unistd::Pid::from_raw(pid);
                            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                        }
                    }
                    let _ = std::fs::remove_dir(dir);
                }
                if dirs.iter().all(|d| !d.exists()) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Cluster {
    pub(crate) async fn start() -> Cluster {
        let layers = tempfile::tempdir().unwrap();
        let images = Arc::new(TestImages {
            layers: build_layers(layers.path()),
            held: Mutex::new(Vec::new()),
        });
        let master = loopback::master().await;
        let work_dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (stop, handle) = serve_agent(listener, master.addr, work_dir.path(), &images);
        Cluster {
            agent: handle.0,
            master,
            stop,
            handle: handle.1,
            images,
            work_dir,
            _layers: layers,
        }
    }

    /// Stops the agent (its containers keep running) and starts it again on its address.
    async fn restart_agent(&mut self) {
        self.stop.cancel();
        (&mut self.handle).await.unwrap();
        let listener = TcpListener::bind(self.agent).await.unwrap();
        let (stop, handle) = serve_agent(
            listener,
            self.master.addr,
            self.work_dir.path(),
            &self.images,
        );
        self.stop = stop;
        self.handle = handle.1;
        // It serves only once it has recovered.
        let health = format!("http://{}/health", self.agent);
        eventually(Duration::from_secs(5), "the agent back", || async {
            reqwest::get(&health).await.ok().map(|_| ())
        })
        .await;
    }
}

fn serve_agent(
    listener: TcpListener,
    master: std::net::SocketAddr,
    work_dir: &Path,
    images: &Arc<TestImages>,
) -> (
    CancellationToken,
    (std::net::SocketAddr, tokio::task::JoinHandle<()>),
) {
    let addr = listener.local_addr().unwrap();
    let config = Config {
        listen: addr,
        masters: vec![master],
        work_dir: work_dir.into(),
        resources: agent_resources(),
        container_init: Some(
            loopback::dcos_binary().expect("the dcos binary: run `cargo build -p dcos-cli` first"),
        ),
        images: Some(images.clone()),
        ..Config::default()
    };
    let stop = CancellationToken::new();
    let s = stop.clone();
    let handle = tokio::spawn(async move {
        agent::serve_on(listener, config, s).await.unwrap();
    });
    (stop, (addr, handle))
}

/// A task running `cmd` in the busybox image with `mem` MB.
pub(crate) fn image_task(id: &str, offer: &Value, cmd: &str, mem: f64) -> Value {
    let mut t = task(id, offer, cmd, 0.5, &[]);
    t["resources"][1]["scalar"]["value"] = json!(mem);
    t["container"] = json!({"type": "MESOS", "mesos": {"image": {"type": "DOCKER", "docker": {"name": "busybox"}}}});
    t
}

/// The container id a status names.
pub(crate) fn container_id(status: &Value) -> String {
    status["container_status"]["container_id"]["value"]
        .as_str()
        .expect("the status names its container")
        .to_string()
}

/// This process's (the agent's) cgroup dir of `controller` for `container`.
fn cgroup_of(controller: &str, container: &str) -> PathBuf {
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, c, p) = (f.next()?, f.next()?, f.next()?);
            c.split(',').any(|c| c == controller).then(|| p.to_string())
        })
        .unwrap();
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(own.trim_start_matches('/'))
        .join("mesos")
        .join(container)
}

/// Nothing of `container` is left: no mount under the work dir, no provisioner dir, no cgroup.
pub(crate) fn assert_nothing_left(work_dir: &Path, container: &str) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let prefix = work_dir.display().to_string();
    assert!(
        !mounts.lines().any(|l| l.contains(&prefix)),
        "a mount under the work dir is left:\n{mounts}"
    );
    assert!(!work_dir.join("provisioner").join(container).exists());
    for controller in ["memory", "cpu"] {
        let dir = cgroup_of(controller, container);
        assert!(!dir.exists(), "cgroup {} is left", dir.display());
    }
}

/// The sandbox of a command task on the agent.
fn sandbox(work_dir: &Path, status: &Value, framework_id: &str, task: &str) -> PathBuf {
    let agent_id = status["agent_id"]["value"].as_str().unwrap();
    dcos_mesos::agent::sandbox::sandbox_dir(
        work_dir,
        agent_id,
        framework_id,
        task,
        &container_id(status),
    )
    .unwrap()
}

#[tokio::test]
async fn a_task_runs_in_its_image_under_its_own_init() {
    require_containers();
    let c = Cluster::start().await;
    let mut s = Scheduler::subscribe(c.master.addr, framework("ucr")).await;
    let offer = s.offer().await;
    let cmd = r#"set -e
        test "$MESOS_SANDBOX" = /mnt/mesos/sandbox
        test ! -e /etc/gone
        test ! -e /etc/debian_version
        cat /etc/added > "$MESOS_SANDBOX/added"
        tr '\0' ' ' < /proc/1/cmdline > "$MESOS_SANDBOX/init"
        echo "$$ $FROM_IMAGE $MESOS_TASK_ID" > "$MESOS_SANDBOX/me"
        sleep 1"#;
    let t = image_task("img", &offer, cmd, 64.0);
    assert_eq!(s.call(launch(&offer, vec![t])).await.0, 202);
    let running = s.until("img", "TASK_RUNNING").await;
    let id = container_id(&running);
    let containers: Value = reqwest::get(format!("http://{}/containers", c.agent))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        containers
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["container_id"] == id),
        "{containers}"
    );
    assert!(cgroup_of("memory", &id).is_dir());
    s.until("img", "TASK_FINISHED").await;
    let sandbox = sandbox(c.work_dir.path(), &running, &s.framework_id, "img");
    let read = |f: &str| std::fs::read_to_string(sandbox.join(f)).unwrap_or_default();
    assert_eq!(
        read("added"),
        "from layer 1\n",
        "stderr: {}",
        read("stderr")
    );
    assert!(read("init").contains("container-init"), "{}", read("init"));
    assert_eq!(read("me"), "2 yes img\n");
    assert_nothing_left(c.work_dir.path(), &id);
}

#[tokio::test]
async fn a_killed_container_gets_sigterm_then_goes_away() {
    require_containers();
    let c = Cluster::start().await;
    let mut s = Scheduler::subscribe(c.master.addr, framework("ucr-kill")).await;
    let offer = s.offer().await;
    let cmd = r#"trap 'echo term > "$MESOS_SANDBOX/term"; exit 0' TERM
        while true; do sleep 0.1; done"#;
    let mut t = image_task("k", &offer, cmd, 64.0);
    t["kill_policy"] = json!({"grace_period": {"nanoseconds": 5_000_000_000u64}});
    assert_eq!(s.call(launch(&offer, vec![t])).await.0, 202);
    let running = s.until("k", "TASK_RUNNING").await;
    let id = container_id(&running);
    let started = Instant::now();
    let kill = json!({"type": "KILL", "kill": {"task_id": {"value": "k"}, "agent_id": running["agent_id"]}});
    assert_eq!(s.call(kill).await.0, 202);
    s.until("k", "TASK_KILLED").await;
    let elapsed = started.elapsed();
    let sandbox = sandbox(c.work_dir.path(), &running, &s.framework_id, "k");
    assert_eq!(
        std::fs::read_to_string(sandbox.join("term")).unwrap_or_default(),
        "term\n",
        "the task never saw SIGTERM; stderr: {}",
        std::fs::read_to_string(sandbox.join("stderr")).unwrap_or_default()
    );
    assert!(
        elapsed < Duration::from_secs(4),
        "not within its grace period: {elapsed:?}"
    );
    assert_nothing_left(c.work_dir.path(), &id);
}

#[tokio::test]
async fn a_container_over_its_memory_limit_fails_with_the_oom_reason() {
    require_containers();
    let c = Cluster::start().await;
    let mut s = Scheduler::subscribe(c.master.addr, framework("ucr-oom")).await;
    let offer = s.offer().await;
    let cmd = "dd if=/dev/zero of=/dev/null bs=100M count=1";
    let t = image_task("oom", &offer, cmd, 32.0);
    assert_eq!(s.call(launch(&offer, vec![t])).await.0, 202);
    let running = s.until("oom", "TASK_RUNNING").await;
    let failed = s.until("oom", "TASK_FAILED").await;
    assert_eq!(
        failed["reason"], "REASON_CONTAINER_LIMITATION_MEMORY",
        "{failed}"
    );
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.starts_with("Memory limit exceeded: Requested: 32MB Maximum Used: "),
        "{message}"
    );
    assert_nothing_left(c.work_dir.path(), &container_id(&running));
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_fails_the_task_and_leaves_nothing() {
    require_containers();
    let c = Cluster::start().await;
    let mut s = Scheduler::subscribe(c.master.addr, framework("ucr-pull")).await;
    let offer = s.offer().await;
    let mut t = image_task("nopull", &offer, "true", 32.0);
    t["container"] = json!({"type": "DOCKER", "docker": {"image": "no-such-image"}});
    assert_eq!(s.call(launch(&offer, vec![t])).await.0, 202);
    let failed = s.until("nopull", "TASK_FAILED").await;
    assert_eq!(
        failed["reason"], "REASON_CONTAINER_LAUNCH_FAILED",
        "{failed}"
    );
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.contains("Failed to pull image 'no-such-image': manifest unknown"),
        "{message}"
    );
    let provisioner = c.work_dir.path().join("provisioner");
    let left = eventually(
        Duration::from_secs(5),
        "an empty provisioner dir",
        || async {
            let n = std::fs::read_dir(&provisioner).map_or(0, |d| d.count());
            (n == 0).then_some(n)
        },
    )
    .await;
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_restarted_agent_keeps_running_containers_and_cleans_up_dead_ones() {
    require_containers();
    let mut c = Cluster::start().await;
    let mut s = Scheduler::subscribe(c.master.addr, framework("ucr-recover")).await;
    let offer = s.offer().await;
    let forever = "while true; do sleep 0.1; done";
    let tasks = vec![
        image_task("alive", &offer, forever, 32.0),
        image_task("dead", &offer, forever, 32.0),
    ];
    assert_eq!(s.call(launch(&offer, tasks)).await.0, 202);
    let mut ids = std::collections::BTreeMap::new();
    while ids.len() < 2 {
        let status = s.next("UPDATE").await["update"]["status"].clone();
        let (code, _) = s.call(json!({"type": "ACKNOWLEDGE", "acknowledge": {"agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]}})).await;
        assert_eq!(code, 202);
        if status["state"] == "TASK_RUNNING" {
            let task = status["task_id"]["value"].as_str().unwrap().to_string();
            ids.insert(task, (container_id(&status), status["agent_id"].clone()));
        }
    }
    // A container the agent made but never recorded a task for (it died in between).
    let orphan = cgroup_of("memory", "orphan-1");
    std::fs::create_dir_all(&orphan).unwrap();
    let orphan_dir = c.work_dir.path().join("provisioner/orphan-1");
    std::fs::create_dir_all(orphan_dir.join("upper")).unwrap();
    let checkpoint = json!({"id": "orphan-1", "dir": orphan_dir, "cgroups": [orphan]});
    std::fs::write(orphan_dir.join("container.json"), checkpoint.to_string()).unwrap();
    c.restart_agent().await;
    assert_nothing_left(c.work_dir.path(), "orphan-1");
    // The "dead" container's processes die while the agent is gone: its init, the task.
    let procs = cgroup_of("memory", &ids["dead"].0).join("cgroup.procs");
    for pid in std::fs::read_to_string(&procs).unwrap().lines() {
        let pid = nix::unistd::Pid::from_raw(pid.trim().parse().unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
    let failed = s.until("dead", "TASK_FAILED").await;
    assert_eq!(failed["state"], "TASK_FAILED");
    eventually(
        Duration::from_secs(5),
        "the dead container gone",
        || async {
            (!c.work_dir
                .path()
                .join("provisioner")
                .join(&ids["dead"].0)
                .exists())
            .then_some(())
        },
    )
    .await;
    assert_nothing_left(c.work_dir.path(), &ids["dead"].0);
    // The living one was re-attached: the agent can still kill it.
    assert!(cgroup_of("memory", &ids["alive"].0).is_dir());
    let kill = json!({"type": "KILL", "kill": {"task_id": {"value": "alive"}, "agent_id": ids["alive"].1}});
    assert_eq!(s.call(kill).await.0, 202);
    s.until("alive", "TASK_KILLED").await;
    assert_nothing_left(c.work_dir.path(), &ids["alive"].0);
    assert!(c.images.held.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_container_gets_its_volumes_hostname_and_user() {
    use std::os::unix::fs::PermissionsExt;
    require_containers();
    let c = Cluster::start().await;
    let volumes = tempfile::tempdir().unwrap();
    let (ro, rw) = (volumes.path().join("ro"), volumes.path().join("rw"));
    for (dir, mode) in [(volumes.path(), 0o755), (&ro, 0o755), (&rw, 0o777)] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::fs::write(ro.join("in"), "host data\n").unwrap();
    let mut s = Scheduler::subscribe(c.master.addr, framework("ucr-vol")).await;
    let offer = s.offer().await;
    let cmd = r#"set -e
        ! touch /data/x 2>/dev/null
        echo "$(hostname) $(id -u) $(pwd) $(cat /data/in)" > out/me
        echo written > out/by-task"#;
    let mut t = image_task("vol", &offer, cmd, 32.0);
    t["command"]["user"] = json!("nobody");
    t["container"]["hostname"] = json!("box");
    t["container"]["volumes"] = json!([
        {"container_path": "/data", "host_path": ro, "mode": "RO"},
        {"container_path": "out", "host_path": rw, "mode": "RW"},
    ]);
    assert_eq!(s.call(launch(&offer, vec![t])).await.0, 202);
    let running = s.until("vol", "TASK_RUNNING").await;
    let done = s.until("vol", "TASK_FINISHED").await;
    let sandbox = sandbox(c.work_dir.path(), &running, &s.framework_id, "vol");
    let stderr = std::fs::read_to_string(sandbox.join("stderr")).unwrap_or_default();
    assert_eq!(
        std::fs::read_to_string(rw.join("me")).unwrap_or_default(),
        "box 65534 /mnt/mesos/sandbox host data\n",
        "{done} {stderr}"
    );
    assert!(rw.join("by-task").is_file());
    assert!(!ro.join("x").exists());
    assert_nothing_left(c.work_dir.path(), &container_id(&running));
}

#[tokio::test]
async fn a_container_ignoring_sigterm_is_killed_after_its_grace_period() {
    require_containers();
    let c = Cluster::start().await;
    let mut s = Scheduler::subscribe(c.master.addr, framework("ucr-stubborn")).await;
    let offer = s.offer().await;
    let cmd = "trap '' TERM; while true; do sleep 0.1; done";
    let mut t = image_task("stubborn", &offer, cmd, 32.0);
    t["kill_policy"] = json!({"grace_period": {"nanoseconds": 1_000_000_000u64}});
    assert_eq!(s.call(launch(&offer, vec![t])).await.0, 202);
    let running = s.until("stubborn", "TASK_RUNNING").await;
    let started = Instant::now();
    let kill = json!({"type": "KILL", "kill": {"task_id": {"value": "stubborn"}, "agent_id": running["agent_id"]}});
    assert_eq!(s.call(kill).await.0, 202);
    s.until("stubborn", "TASK_KILLED").await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    assert_nothing_left(c.work_dir.path(), &container_id(&running));
}

#[tokio::test]
async fn a_root_task_in_a_container_cannot_act_on_the_host() {
    require_containers();
    let c = Cluster::start().await;
    let mut s = Scheduler::subscribe(c.master.addr, framework("ucr-confined")).await;
    let offer = s.offer().await;
    let cmd = r#"out="$MESOS_SANDBOX"
        grep CapBnd /proc/self/status > "$out/capbnd"
        mount -t tmpfs none /tmp 2>/dev/null && echo mounted > "$out/mount"
        echo x 2>/dev/null > /proc/sys/kernel/domainname && echo wrote > "$out/sysctl"
        test -s /proc/kcore && echo readable > "$out/kcore"
        mknod /tmp/disk b 8 0 2>/dev/null && echo made > "$out/mknod"
        true"#;
    let t = image_task("confined", &offer, cmd, 64.0);
    assert_eq!(s.call(launch(&offer, vec![t])).await.0, 202);
    let running = s.until("confined", "TASK_RUNNING").await;
    s.until("confined", "TASK_FINISHED").await;
    let sandbox = sandbox(c.work_dir.path(), &running, &s.framework_id, "confined");
    let read = |f: &str| std::fs::read_to_string(sandbox.join(f)).unwrap_or_default();
    // Docker's default set without mknod and net_raw: chown, dac_override, fowner, fsetid,
    // kill, setgid, setuid, setpcap, net_bind_service, sys_chroot, audit_write, setfcap.
    assert_eq!(
        read("capbnd").trim(),
        "CapBnd:\t00000000a00405fb",
        "stderr: {}",
        read("stderr")
    );
    assert_eq!(read("mount"), "", "a container mounted a filesystem");
    assert_eq!(read("sysctl"), "", "a container changed a kernel setting");
    assert_eq!(read("kcore"), "", "a container read the kernel's memory");
    assert_eq!(read("mknod"), "", "a container made a block device");
    assert_nothing_left(c.work_dir.path(), &container_id(&running));
}
