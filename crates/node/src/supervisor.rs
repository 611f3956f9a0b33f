//! `dcos node run`: the unit supervisor.
//!
//! Preflight first (refusing to start when a port is taken), then each unit of the role as
//! its own child process in start order, each waited for until it accepts on its ports.
//! A unit that exits is restarted with exponential backoff (capped); one that keeps failing
//! is reported as `failing`, not hidden. On shutdown the units stop in reverse order:
//! SIGTERM to the unit's process group, SIGKILL after a grace period. Every child asks the
//! kernel to kill it if the supervisor dies, so no unit is ever orphaned.
//!
//! A unit's stdout and stderr are pipes the supervisor reads, line by line, into
//! `<work dir>/logs/<unit>.log`, each line with the time it was read, rotated at 10 MiB with
//! the newest 5 rotated files kept (`dcos_log::rotate`): a unit that logs forever never fills
//! the disk, and dcos-log serves the files as DC/OS' journal.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dcos_log::{RotatingLog, Rotation};
use dcos_ports::preflight::{self, Report};
use dcos_ports::NodeRole;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::config::{NodeConfig, StoreBackend};
use crate::status::{self, NodeStatus, UnitState, UnitStatus};
use crate::units::{role_units, run_dir, Unit};

/// The first restart delay.
const BACKOFF_START: Duration = Duration::from_millis(500);
/// The longest restart delay.
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// A unit that ran this long is considered healthy again; its backoff resets.
const HEALTHY_RUN: Duration = Duration::from_secs(30);
/// Exits in a row (each before [`HEALTHY_RUN`]) after which a unit is reported failing.
const FAILING_AFTER: u32 = 5;
/// How long a unit has to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long start-up waits for a unit to accept on its ports before starting the next.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopped unit's output may take to reach its log (a child of the unit that
/// keeps the pipe open is not waited for longer).
const LOG_DRAIN: Duration = Duration::from_secs(2);

/// What the supervisor needs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The node's role.
    pub role: NodeRole,
    /// The config file the units are started with.
    pub config_path: PathBuf,
    /// The config, loaded.
    pub config: NodeConfig,
    /// The `dcos` binary that runs each unit.
    pub binary: PathBuf,
}

/// Why the supervisor stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A port the node needs is taken.
    #[error("preflight failed for a {} node on {}", .0.role, .0.ip)]
    Preflight(Box<Report>),
    /// The node IP could not be determined.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The run dir could not be prepared.
    #[error("cannot prepare run dir {path}")]
    RunDir {
        /// The dir.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A unit's log file could not be opened.
    #[error("cannot open the log of {unit} in {}", dir.display())]
    Log {
        /// The unit.
        unit: String,
        /// The logs dir.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Shared status, written to disk on every change.
#[derive(Clone)]
struct Board {
    status: Arc<Mutex<NodeStatus>>,
    run_dir: PathBuf,
}

impl Board {
    fn update(&self, unit: &str, f: impl FnOnce(&mut UnitStatus)) {
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(u) = st.units.iter_mut().find(|u| u.name == unit) {
            f(u);
        }
        if let Err(e) = status::write(&self.run_dir, &st) {
            tracing::warn!(error = %e, "could not write node status");
        }
    }
}

/// The units this node starts, and the status of all of the role's units.
fn plan(role: NodeRole, config: &NodeConfig) -> (Vec<Unit>, Vec<UnitStatus>) {
    let mut start = Vec::new();
    let mut statuses = Vec::new();
    for unit in role_units(role) {
        let in_use = match unit.name {
            "dcos-exhibitor.service" => config.store.backend != StoreBackend::Embedded,
            "dcos-registry.service" => config.registry,
            _ => true,
        };
        let state = match (unit.built, in_use) {
            (_, false) => UnitState::NotInUse,
            (false, _) => UnitState::NotBuilt,
            (true, true) if needs_root(&unit) => UnitState::NeedsRoot,
            (true, true) => UnitState::Starting,
        };
        statuses.push(UnitStatus {
            name: unit.name.to_string(),
            state,
            pid: None,
            restarts: 0,
            ports: unit
                .rows
                .iter()
                .map(|r| match r.port {
                    dcos_ports::PortSpec::Single(p) => format!("{p}/{}", r.protocol.as_str()),
                    _ => "unix socket".to_string(),
                })
                .collect(),
            last_exit: None,
        });
        if state == UnitState::Starting {
            start.push(unit);
        }
    }
    (start, statuses)
}

/// Whether the unit binds a privileged port and this process may not.
fn needs_root(unit: &Unit) -> bool {
    let first_free = dcos_ports::preflight::read_unprivileged_port_start();
    !nix::unistd::geteuid().is_root()
        && unit
            .rows
            .iter()
            .any(|r| matches!(r.port, dcos_ports::PortSpec::Single(p) if p < first_free))
}

/// Runs the node until `shutdown` is cancelled.
pub async fn run(opts: Options, shutdown: CancellationToken) -> Result<(), Error> {
    let ip = opts.config.node_ip()?;
    let (units, statuses) = plan(opts.role, &opts.config);
    let report = preflight::check_rows(
        opts.role,
        ip,
        units.iter().flat_map(|u| u.rows.iter().copied()),
    );
    if !report.ok() {
        return Err(Error::Preflight(Box::new(report)));
    }
    let run_dir = run_dir(&opts.config);
    let logs = opts.config.work_dir.join("logs");
    for dir in [&run_dir, &logs] {
        fs_err::create_dir_all(dir).map_err(|source| Error::RunDir {
            path: dir.clone(),
            source,
        })?;
    }
    let board = Board {
        status: Arc::new(Mutex::new(NodeStatus {
            role: opts.role.to_string(),
            ip,
            supervisor_pid: std::process::id(),
            units: statuses,
        })),
        run_dir: run_dir.clone(),
    };
    board.update("", |_| {});
    tracing::info!(role = %opts.role, %ip, units = units.len(), "node starting");

    let mut running: Vec<(CancellationToken, tokio::task::JoinHandle<()>)> = Vec::new();
    for unit in units {
        if shutdown.is_cancelled() {
            break;
        }
        let stop = CancellationToken::new();
        let ready = Arc::new(tokio::sync::Notify::new());
        let log = RotatingLog::open(&logs, unit.name, Rotation::default()).map_err(|source| {
            Error::Log {
                unit: unit.name.to_string(),
                dir: logs.clone(),
                source,
            }
        })?;
        let runner = Runner {
            unit: unit.clone(),
            opts: opts.clone(),
            ip,
            board: board.clone(),
            log: Arc::new(log),
            stop: stop.clone(),
            ready: ready.clone(),
        };
        let handle = tokio::spawn(runner.run());
        running.push((stop, handle));
        // Later units depend on earlier ones (the master before the agents that register).
        tokio::select! {
            _ = ready.notified() => {}
            _ = tokio::time::sleep(READY_TIMEOUT) => {
                tracing::warn!(unit = unit.name, "unit not ready in time; starting the next one anyway");
            }
            _ = shutdown.cancelled() => {}
        }
    }

    shutdown.cancelled().await;
    tracing::info!("node stopping");
    for (stop, handle) in running.into_iter().rev() {
        stop.cancel();
        let _ = handle.await;
    }
    Ok(())
}

/// Owns one unit's child process and its restart loop.
struct Runner {
    unit: Unit,
    opts: Options,
    ip: IpAddr,
    board: Board,
    /// The unit's log (`<logs>/<unit>.log`, rotated).
    log: Arc<RotatingLog>,
    stop: CancellationToken,
    ready: Arc<tokio::sync::Notify>,
}

impl Runner {
    async fn run(self) {
        let name = self.unit.name;
        let mut backoff = BACKOFF_START;
        let mut quick_exits = 0u32;
        // The tasks copying each child's output to the log; they end when the pipes close.
        let mut pumps = tokio::task::JoinSet::new();
        loop {
            while pumps.try_join_next().is_some() {}
            let started = Instant::now();
            let mut child = match self.spawn() {
                Ok(child) => child,
                Err(e) => {
                    tracing::error!(unit = name, error = %e, "cannot start unit");
                    self.board.update(name, |u| {
                        u.state = UnitState::Failing;
                        u.last_exit = Some(format!("cannot start: {e}"));
                    });
                    if self.sleep(BACKOFF_CAP).await {
                        return;
                    }
                    continue;
                }
            };
            if let Some(stdout) = child.stdout.take() {
                pumps.spawn(dcos_log::pump(stdout, self.log.clone()));
            }
            if let Some(stderr) = child.stderr.take() {
                pumps.spawn(dcos_log::pump(stderr, self.log.clone()));
            }
            let pid = child.id();
            self.board.update(name, |u| {
                u.state = UnitState::Starting;
                u.pid = pid;
            });
            tracing::info!(unit = name, pid, "unit started");
            let exit = tokio::select! {
                exit = child.wait() => exit,
                () = self.wait_ready(pid) => child.wait().await,
                () = self.stop.cancelled() => {
                    self.stop_child(&mut child, pid).await;
                    drain(pumps).await;
                    return;
                }
            };
            let exit = match exit {
                Ok(s) => s.to_string(),
                Err(e) => format!("wait failed: {e}"),
            };
            if started.elapsed() >= HEALTHY_RUN {
                backoff = BACKOFF_START;
                quick_exits = 0;
            }
            quick_exits += 1;
            let state = if quick_exits >= FAILING_AFTER {
                UnitState::Failing
            } else {
                UnitState::Backoff
            };
            tracing::warn!(unit = name, %exit, ?state, delay_ms = backoff.as_millis() as u64, "unit exited; restarting");
            self.board.update(name, |u| {
                u.state = state;
                u.pid = None;
                u.restarts += 1;
                u.last_exit = Some(exit);
            });
            if self.sleep(backoff).await {
                drain(pumps).await;
                return;
            }
            backoff = (backoff * 2).min(BACKOFF_CAP);
        }
    }

    /// Sleeps, returning true if the unit was told to stop meanwhile.
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = self.stop.cancelled() => {
                self.board.update(self.unit.name, |u| u.state = UnitState::Stopped);
                true
            }
        }
    }

    /// Resolves once the unit accepts on its ports (marking it running), then never.
    async fn wait_ready(&self, pid: Option<u32>) {
        let addrs = self.unit.tcp_addrs(self.ip);
        let sockets =
            crate::units::unit_sockets(self.unit.name, self.unit.role, &run_dir(&self.opts.config));
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if ready(&addrs, &sockets).await {
                break;
            }
        }
        self.board.update(self.unit.name, |u| {
            if u.pid == pid {
                u.state = UnitState::Running;
            }
        });
        tracing::info!(unit = self.unit.name, "unit ready");
        self.ready.notify_one();
        std::future::pending::<()>().await
    }

    fn spawn(&self) -> std::io::Result<Child> {
        let mut cmd = Command::new(&self.opts.binary);
        cmd.args([
            "unit",
            "run",
            self.unit.name,
            "--role",
            self.opts.role.as_str(),
            "--config",
        ])
        .arg(&self.opts.config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
        // glibc gives each thread that allocates concurrently an arena of its own, up to 8
        // per core, and a busy unit's freed memory stays spread over them: two keep the
        // master's and Marathon's resident memory 15-20% lower under a 10,000-task launch
        // (`dcos-bench launch`), at the same speed. A value set for the node is inherited.
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            cmd.env("MALLOC_ARENA_MAX", "2");
        }
        // Logs are files, not terminals: no colour escapes in them (the units' tracing
        // output honours NO_COLOR), as journald shows a unit's lines.
        if std::env::var_os("NO_COLOR").is_none() {
            cmd.env("NO_COLOR", "1");
        }
        die_with_parent(&mut cmd);
        cmd.spawn()
    }

    async fn stop_child(&self, child: &mut Child, pid: Option<u32>) {
        let name = self.unit.name;
        self.board.update(name, |u| u.state = UnitState::Stopping);
        if let Some(pid) = pid {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        if tokio::time::timeout(STOP_GRACE, child.wait())
            .await
            .is_err()
        {
            tracing::warn!(unit = name, "unit did not stop in time; killing it");
            if let Some(pid) = pid {
                let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            let _ = child.wait().await;
        }
        self.board.update(name, |u| {
            u.state = UnitState::Stopped;
            u.pid = None;
        });
        tracing::info!(unit = name, "unit stopped");
    }
}

/// Lets a stopped unit's last output reach its log, then stops copying.
async fn drain(mut pumps: tokio::task::JoinSet<()>) {
    let all = async { while pumps.join_next().await.is_some() {} };
    if tokio::time::timeout(LOG_DRAIN, all).await.is_err() {
        pumps.abort_all();
    }
}

async fn ready(addrs: &[std::net::SocketAddr], sockets: &[PathBuf]) -> bool {
    for path in sockets {
        if tokio::net::UnixStream::connect(path).await.is_err() {
            return false;
        }
    }
    for addr in addrs {
        let connect = tokio::net::TcpStream::connect(addr);
        if !matches!(
            tokio::time::timeout(Duration::from_secs(1), connect).await,
            Ok(Ok(_))
        ) {
            return false;
        }
    }
    true
}

/// Asks the kernel to SIGKILL the child when the supervisor dies, so a unit is never orphaned
/// even when the supervisor itself is killed with SIGKILL.
#[expect(
    unsafe_code,
    reason = "pre_exec runs an async-signal-safe prctl between fork and exec"
)]
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure only calls prctl(2), which is async-signal-safe, and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
