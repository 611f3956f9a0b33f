//! A Mesos master and agents running inside the test process on 127.0.0.1 (ephemeral ports),
//! for tests of frameworks (Marathon, Metronome) that need real offers and real tasks but not
//! a whole cluster. Each agent advertises its own small port range, so tests that run in
//! parallel never hand out the same host port twice within one test.
//!
//! An agent's tasks outlive it by design (a restarted agent re-attaches to them), so a test
//! agent kills every process working in its work dir when it is stopped or dropped (also
//! when the test panics); [`Running::stop_keeping_tasks`] is the restart that keeps them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dcos_mesos::api::Id;
use dcos_mesos::resources::Resources;
use dcos_mesos::scheduler::{Accept, Acknowledge, CallBody, Event, Kill, Operation};
use dcos_mesos::{agent, master};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running in-process server.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: CancellationToken,
    handle: JoinHandle<()>,
    /// An agent's work dir: what runs there is killed when the agent stops or is dropped.
    tasks_in: Option<PathBuf>,
    /// A work dir the server owns, removed when it is dropped.
    _dir: Option<tempfile::TempDir>,
}

impl Running {
    /// Stops it and waits until it has; an agent's tasks are killed.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let _ = (&mut self.handle).await;
    }

    /// Stops an agent and leaves its tasks running, as a real agent's restart does: for a
    /// test that starts another agent on the same work dir, which then owns them.
    pub async fn stop_keeping_tasks(mut self) {
        self.tasks_in = None;
        self.stop().await;
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Running {
    /// Stops it (a failed test never called [`Running::stop`]) and kills an agent's tasks.
    fn drop(&mut self) {
        self.stop.cancel();
        self.handle.abort();
        if let Some(dir) = self.tasks_in.take() {
            kill_processes_under(&dir);
        }
    }
}

/// SIGKILLs every process working under `dir` (its cwd, or an argument, is below it) with
/// its process group: what agents with that work dir started (a task's wrapper shell runs
/// in its sandbox and leads the task's group; a container's `unshare` names its spec there).
/// Other tests' processes, in other dirs, are never touched; the test's own group is never
/// signalled. Scans again until none is left: a task may have been starting meanwhile.
pub fn kill_processes_under(dir: &Path) {
    use nix::sys::signal::{kill, killpg, Signal};
    use nix::unistd::{getpgid, getpgrp, Pid};
    let dirs: Vec<PathBuf> = [Some(dir.to_path_buf()), dir.canonicalize().ok()]
        .into_iter()
        .flatten()
        .collect();
    let me = std::process::id();
    for _ in 0..50 {
        let found: Vec<u32> = pids()
            .filter(|pid| *pid != me && works_under(*pid, &dirs))
            .collect();
        if found.is_empty() {
            return;
        }
        for pid in found {
            let pid = Pid::from_raw(pid as i32);
            match getpgid(Some(pid)) {
                Ok(group) if group != getpgrp() && group.as_raw() > 1 => {
                    let _ = killpg(group, Signal::SIGKILL);
                }
                _ => {
                    let _ = kill(pid, Signal::SIGKILL);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pids in `/proc`.
fn pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
}

/// Whether process `pid` works in one of `dirs`: its cwd, or an argument, is below it (a
/// zombie has neither).
fn works_under(pid: u32, dirs: &[PathBuf]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let under = |p: &Path| dirs.iter().any(|d| p.starts_with(d));
    if std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| under(&cwd)) {
        return true;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    cmdline
        .split(|b| *b == 0)
        .any(|arg| !arg.is_empty() && under(Path::new(std::ffi::OsStr::from_bytes(arg))))
}

/// The allocation interval of [`master`]: fast, so that tests get offers soon.
const TEST_ALLOCATION_INTERVAL: Duration = Duration::from_millis(100);

/// Starts a master on 127.0.0.1 (an ephemeral port, its own registry) with a fast
/// allocation interval.
pub async fn master() -> Running {
    master_with(TEST_ALLOCATION_INTERVAL).await
}

/// Starts a master on 127.0.0.1 (an ephemeral port, its own registry) allocating every
/// `allocation_interval`.
pub async fn master_with(allocation_interval: Duration) -> Running {
    let dir = tempfile::tempdir().expect("a temporary dir for the master's registry");
    let listen = "127.0.0.1:0".parse().expect("an address");
    let mut running = start_master(listen, dir.path().into(), allocation_interval).await;
    running._dir = Some(dir);
    running
}

/// Starts a master on `listen` with its registry in `work_dir` (a restarted master passes
/// the address and dir of the one it replaces).
pub async fn master_on(listen: SocketAddr, work_dir: PathBuf) -> Running {
    start_master(listen, work_dir, TEST_ALLOCATION_INTERVAL).await
}

async fn start_master(
    listen: SocketAddr,
    work_dir: PathBuf,
    allocation_interval: Duration,
) -> Running {
    let listener = TcpListener::bind(listen)
        .await
        .expect("bind a loopback port for the master");
    let addr = listener.local_addr().expect("the listener's address");
    let stop = CancellationToken::new();
    let config = master::Config {
        listen: addr,
        cluster: "test".into(),
        allocation_interval,
        agent_ping_timeout: Duration::from_secs(2),
        weights: Default::default(),
        store: dcos_store::Location::Embedded(work_dir.join("registry.redb")),
        agent_reregister_timeout: master::AGENT_REREGISTER_TIMEOUT,
        authenticate: None,
    };
    let s = stop.clone();
    let handle = tokio::spawn(async move {
        if let Err(e) = master::serve_on(listener, config, s).await {
            panic!("master failed: {e}");
        }
    });
    Running {
        addr,
        stop,
        handle,
        tasks_in: None,
        _dir: None,
    }
}

/// Starts an agent of `master` on `listen` (port 0 for any) with `ports` as its task ports
/// and 4 cpus, 4 GiB of memory and disk.
pub async fn agent(
    master: SocketAddr,
    listen: SocketAddr,
    work_dir: PathBuf,
    ports: &str,
) -> Running {
    let resources = Resources {
        cpus: 4.0,
        mem: 4096.0,
        disk: 4096.0,
        gpus: 0.0,
        ports: ports.parse().expect("a valid port range set"),
    };
    agent_with(master, listen, work_dir, resources).await
}

/// Starts an agent of `master` on 127.0.0.1 with its own temporary work dir and `n` free
/// task ports; returns it and its ports (Mesos form).
pub async fn agent_of(master: SocketAddr, n: u16) -> (Running, String) {
    let dir = tempfile::tempdir().expect("a temporary dir for the agent");
    let ports = free_port_range(n);
    let listen = "127.0.0.1:0".parse().expect("an address");
    let mut running = agent(master, listen, dir.path().into(), &ports).await;
    running._dir = Some(dir);
    (running, ports)
}

/// `target/<profile>/dcos` beside the running test binary (`target/<profile>/deps/…`), if
/// built: scripts/test builds every binary before the tests run.
pub fn dcos_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    // `target/<profile>/deps/<test>`: the binary is one or two levels up, never further.
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("dcos"))
        .find(|p| p.is_file())
}

/// Starts an agent of `master` on `listen` (port 0 for any) advertising `resources`.
pub async fn agent_with(
    master: SocketAddr,
    listen: SocketAddr,
    work_dir: PathBuf,
    resources: Resources,
) -> Running {
    let listener = TcpListener::bind(listen)
        .await
        .expect("bind a loopback port for the agent");
    let addr = listener.local_addr().expect("the listener's address");
    let stop = CancellationToken::new();
    let config = agent::Config {
        listen: addr,
        masters: vec![master],
        work_dir: work_dir.clone(),
        resources,
        attributes: Default::default(),
        // In-process agents run in a test binary, not `dcos`: their containers' init is the
        // built `dcos` beside it.
        container_init: dcos_binary(),
        ..agent::Config::default()
    };
    let s = stop.clone();
    let handle = tokio::spawn(async move {
        if let Err(e) = agent::serve_on(listener, config, s).await {
            panic!("agent failed: {e}");
        }
    });
    Running {
        addr,
        stop,
        handle,
        tasks_in: Some(work_dir),
        _dir: None,
    }
}

/// A range of `n` ports on 127.0.0.1 that nothing listens on at the time of the call, in
/// the Mesos form (`[20000-20009]`). Below the kernel's ephemeral range, so outgoing
/// connections never take them; the slot is chosen by pid so parallel test processes differ.
pub fn free_port_range(n: u16) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static TAKEN: AtomicU32 = AtomicU32::new(0);
    let n = u32::from(n.max(1));
    let slots = 10_000 / n;
    let first = std::process::id() % slots + TAKEN.fetch_add(1, Ordering::Relaxed);
    for k in 0..slots {
        let start = 20_000 + ((first + k) % slots) * n;
        let end = start + n - 1;
        let free = (start..=end).all(|p| {
            u16::try_from(p).is_ok_and(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        });
        if free {
            TAKEN.fetch_add(k, Ordering::Relaxed);
            return format!("[{start}-{end}]");
        }
    }
    panic!("no {n} free ports between 20000 and 29999 on 127.0.0.1");
}

/// A task a test framework launched and keeps acknowledging the updates of (an agent sends a
/// task's next update only after the last one is acknowledged).
pub struct LaunchedTask {
    /// The framework's connection, for more calls.
    pub conn: dcos_mesos::scheduler::Connection,
    /// The task id.
    pub task_id: String,
    acker: JoinHandle<()>,
}

impl LaunchedTask {
    /// Asks the master to kill the task.
    ///
    /// # Panics
    ///
    /// When the master refuses the call.
    pub async fn kill(&self) {
        let kill = CallBody::Kill(Kill {
            task_id: Id::new(&self.task_id),
            ..Kill::default()
        });
        self.conn.call(kill).await.expect("KILL accepted");
    }
}

impl Drop for LaunchedTask {
    fn drop(&mut self) {
        self.acker.abort();
    }
}

/// Subscribes a framework named `framework` at `master` and launches `exec sleep 60` as task
/// `name` (id `task_id`) on the first offer, with host port `port`.
///
/// # Panics
///
/// When the master does not offer or refuses the launch.
pub async fn launch_task(
    master: SocketAddr,
    framework: &str,
    name: &str,
    task_id: &str,
    port: u16,
) -> LaunchedTask {
    use serde_json::json;
    let info: dcos_mesos::api::FrameworkInfo =
        serde_json::from_value(json!({"user": "root", "name": framework})).expect("framework");
    let (conn, mut events, _) =
        dcos_mesos::scheduler::subscribe(&reqwest::Client::new(), master, &info)
            .await
            .expect("framework subscribes");
    let offer = loop {
        if let Event::Offers(offers) = events.next().await.expect("an offer") {
            if let Some(offer) = offers.offers.into_iter().next() {
                break offer;
            }
        }
    };
    let scalar = |name: &str, value: f64| json!({"name": name, "type": "SCALAR", "scalar": {"value": value}});
    let task = json!({"name": name, "task_id": {"value": task_id}, "agent_id": offer.agent_id,
        "resources": [scalar("cpus", 0.1), scalar("mem", 16.0),
            {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": port, "end": port}]}}],
        "command": {"value": "exec sleep 60"}});
    let launch = CallBody::Accept(Accept {
        offer_ids: vec![offer.id],
        operations: vec![Operation::launch(vec![
            serde_json::from_value(task).expect("a task")
        ])],
        filters: None,
    });
    conn.call(launch).await.expect("ACCEPT accepted");
    let acker = {
        let conn = conn.clone();
        tokio::spawn(async move {
            while let Ok(ev) = events.next().await {
                if let Event::Update(update) = ev {
                    if let Some(ack) = Acknowledge::of(&update.status) {
                        let _ = conn.call(CallBody::Acknowledge(ack)).await;
                    }
                }
            }
        })
    };
    LaunchedTask {
        conn,
        task_id: task_id.to_string(),
        acker,
    }
}

/// The first port of a range from [`free_port_range`].
pub fn first_port(range: &str) -> u16 {
    range
        .trim_matches(['[', ']'])
        .split('-')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a range from free_port_range")
}
