//! A real cluster for one test: `Cluster::builder().masters(1).agents(2).start()`.
//!
//! It is brought up by `dcos_node::cluster::up`, the code behind `dcos cluster up`: every
//! node is a `dcos node run` supervisor in its own network namespace `dcos-<name>-<node>`
//! on the cluster's own bridge. Each cluster has a name no other test process uses
//! (`t<pid>-<n>`) and a private state dir, so tests run in parallel.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dcos_node::cluster::{self as node_cluster, Node, Record, Spec};
use dcos_node::status::NodeStatus;

use crate::http::HttpResponse;
use crate::netns;
use crate::{output_within, tail};

/// How long a node may take to report every unit running.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a command run in a node may take.
const EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// Where the clusters' state dirs live, so a later test process finds abandoned ones.
const STATE_BASE: &str = "dcos-testkit";

/// A cluster that could not be started or stopped.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Namespace mode needs root.
    #[error("a testkit cluster puts each node in its own network namespace, which needs root")]
    NotRoot,
    /// [`Builder::binary`] was not called.
    #[error("no `dcos` binary given: call `.binary(env!(\"CARGO_BIN_EXE_dcos\"))`")]
    NoBinary,
    /// The private state dir could not be created.
    #[error("cannot create a cluster state dir under {path}")]
    StateDir {
        /// The parent dir.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `up` failed; what it made is torn down again.
    #[error("cluster {name} did not come up")]
    Up {
        /// The cluster.
        name: String,
        /// The cause.
        #[source]
        source: node_cluster::Error,
    },
    /// `down` failed; the namespaces are still swept.
    #[error("cluster {name} did not go down cleanly")]
    Down {
        /// The cluster.
        name: String,
        /// The cause.
        #[source]
        source: node_cluster::Error,
    },
}

/// Prints the whole chain, so `start().unwrap()` shows why (with the node's log tail).
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")?;
        let mut cause = std::error::Error::source(self);
        while let Some(e) = cause {
            write!(f, "\n  caused by: {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

/// What to start; see [`Cluster::builder`].
#[derive(Clone, Debug)]
pub struct Builder {
    masters: usize,
    store: Option<dcos_node::config::StoreBackend>,
    agents: usize,
    public_agents: usize,
    binary: Option<PathBuf>,
    timeout: Duration,
    registry: bool,
    security: dcos_iam::api::SecurityMode,
}

impl Builder {
    /// What the cluster asks of its callers (default permissive, as `dcos cluster up`):
    /// Admin Router wants [`Cluster::token`] on its guarded routes.
    pub fn security(mut self, mode: dcos_iam::api::SecurityMode) -> Self {
        self.security = mode;
        self
    }

    /// Run the cluster-local image registry on every master (default off).
    pub fn registry(mut self) -> Self {
        self.registry = true;
        self
    }

    /// How many masters (default 1).
    pub fn masters(mut self, n: usize) -> Self {
        self.masters = n;
        self
    }

    /// The masters' store (default: embedded for one master, ZooKeeper for several).
    pub fn store(mut self, store: dcos_node::config::StoreBackend) -> Self {
        self.store = Some(store);
        self
    }

    /// How many private agents (default 0).
    pub fn agents(mut self, n: usize) -> Self {
        self.agents = n;
        self
    }

    /// How many public agents (default 0).
    pub fn public_agents(mut self, n: usize) -> Self {
        self.public_agents = n;
        self
    }

    /// The `dcos` binary the nodes run: `env!("CARGO_BIN_EXE_dcos")` in the cli's tests.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// How long every node may take to report all its units running (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Brings the cluster up and waits until every node is healthy.
    pub fn start(self) -> Result<Cluster, Error> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        if !node_cluster::is_root() {
            return Err(Error::NotRoot);
        }
        let binary = self.binary.ok_or(Error::NoBinary)?;
        netns::sweep_once();
        let name = format!(
            "t{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let base = std::env::temp_dir().join(STATE_BASE);
        let state_dir = fs_err::create_dir_all(&base)
            .and_then(|()| {
                tempfile::Builder::new()
                    .prefix(&format!("{name}."))
                    .tempdir_in(&base)
            })
            .map_err(|source| Error::StateDir { path: base, source })?;
        let spec = Spec {
            name: name.clone(),
            masters: self.masters,
            store: self.store,
            agents: self.agents,
            public_agents: self.public_agents,
            binary,
            state_dir: state_dir.path().to_path_buf(),
            timeout: self.timeout,
            registry: self.registry,
            security: self.security,
        };
        // The guard exists before `up` makes anything: a failed `up` is torn down by its drop.
        let mut cluster = Cluster {
            name: name.clone(),
            record: None,
            torn_down: false,
            token: std::sync::OnceLock::new(),
            state_dir,
        };
        let record = node_cluster::up(&spec, |line| eprintln!("[{name}] {line}"))
            .map_err(|source| Error::Up { name, source })?;
        cluster.record = Some(record);
        Ok(cluster)
    }
}

/// A running cluster; dropping it stops every process and removes every namespace, veth and
/// bridge it made (also when the test panics, after printing the nodes' log tails).
pub struct Cluster {
    name: String,
    record: Option<Record>,
    torn_down: bool,
    /// The bootstrap superuser's token, once asked for.
    token: std::sync::OnceLock<String>,
    // Last: removed after the teardown that reads it.
    state_dir: tempfile::TempDir,
}

impl Cluster {
    /// What to start: one master, no agents, until told otherwise.
    pub fn builder() -> Builder {
        Builder {
            masters: 1,
            store: None,
            agents: 0,
            public_agents: 0,
            binary: None,
            timeout: START_TIMEOUT,
            registry: false,
            security: dcos_iam::api::SecurityMode::Permissive,
        }
    }

    /// A token of the bootstrap superuser, from a login at the first master's Admin Router
    /// (made once, then reused).
    ///
    /// # Panics
    ///
    /// When the cluster has no superuser (security disabled) or the login fails.
    pub fn token(&self) -> &str {
        self.token.get_or_init(|| {
            let c = node_cluster::superuser(self.record())
                .unwrap_or_else(|| panic!("cluster {} has no superuser", self.name));
            let (status, body) = self.login(self.master(0), &c.uid, &c.password);
            assert_eq!(status, 200, "superuser login: {body}");
            let v: serde_json::Value = serde_json::from_str(&body).expect("login answer");
            v["token"].as_str().expect("a token").to_string()
        })
    }

    /// `Authorization: token=<superuser token>`, for curl's `-H`.
    pub fn auth_header(&self) -> String {
        format!("Authorization: token={}", self.token())
    }

    /// A password login at `node`'s Admin Router: the status and the body.
    pub fn login(&self, node: &Node, uid: &str, password: &str) -> (u16, String) {
        let body = serde_json::json!({"uid": uid, "password": password}).to_string();
        let url = format!("http://{}/acs/api/v1/auth/login", node.ip);
        self.curl(node, &json_request_args("POST", &url, &body))
    }

    /// The cluster's name (`t<pid>-<n>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The state dir `dcos cluster --state-dir` takes for this cluster.
    pub fn state_dir(&self) -> &Path {
        self.state_dir.path()
    }

    /// The cluster's record, as `up` wrote it to `<state dir>/<name>/cluster.json`.
    pub fn record(&self) -> &Record {
        self.record
            .as_ref()
            .expect("a started cluster has a record")
    }

    /// Every node, masters first.
    pub fn nodes(&self) -> &[Node] {
        &self.record().nodes
    }

    /// The node with this id (`master-1`, `agent-2`, `public-agent-1`).
    ///
    /// # Panics
    ///
    /// When there is none.
    pub fn node(&self, id: &str) -> &Node {
        self.nodes()
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("cluster {} has no node {id}", self.name))
    }

    /// The `i`-th master, from 0 (`master(0)` is `master-1`).
    ///
    /// # Panics
    ///
    /// When there are not that many.
    pub fn master(&self, i: usize) -> &Node {
        self.with_role("master")
            .nth(i)
            .unwrap_or_else(|| panic!("cluster {} has no master #{i}", self.name))
    }

    /// The private agents.
    pub fn agents(&self) -> Vec<&Node> {
        self.with_role("agent").collect()
    }

    /// The public agents.
    pub fn public_agents(&self) -> Vec<&Node> {
        self.with_role("agent_public").collect()
    }

    fn with_role<'a>(&'a self, role: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.nodes().iter().filter(move |n| n.role == role)
    }

    /// Runs `argv` inside a node's network namespace (`ip netns exec`).
    ///
    /// # Panics
    ///
    /// When it cannot be started or runs longer than 30 s.
    pub fn exec(&self, node: &Node, argv: &[&str]) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns_of(node)]).args(argv);
        output_within(&mut cmd, EXEC_TIMEOUT)
            .unwrap_or_else(|e| panic!("{argv:?} in {}: {e}", node.id))
    }

    /// `curl` inside a node: the status code (0 when no answer came) and the body. `args`
    /// are curl's own (`-m 2`, `-X POST`, the URL, ...); `-sS` and the status are added.
    ///
    /// # Panics
    ///
    /// As [`Cluster::exec`].
    pub fn curl(&self, node: &Node, args: &[&str]) -> (u16, String) {
        let mut argv = vec!["curl", "-sS", "-w", "\n%{http_code}"];
        argv.extend_from_slice(args);
        let out = self.exec(node, &argv);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// Cuts a node off the cluster's bridge (`cut`), or connects it again: its veth's host
    /// end goes down or up. The node keeps running and keeps its own loopback.
    ///
    /// # Panics
    ///
    /// When `ip link` fails.
    pub fn cut_off(&self, node: &Node, cut: bool) {
        let veth = node.veth.as_deref().expect("a testkit node has a veth");
        let state = if cut { "down" } else { "up" };
        let out = output_within(
            Command::new("ip").args(["link", "set", veth, state]),
            EXEC_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("ip link set {veth} {state}: {e}"));
        assert!(out.status.success(), "ip link set {veth} {state}: {out:?}");
    }

    /// Opens a TCP connection to `addr` from inside a node's namespace.
    pub fn connect(&self, from: &Node, addr: SocketAddr) -> std::io::Result<std::net::TcpStream> {
        netns::in_netns(netns_of(from), || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        })?
    }

    /// `GET path` on `addr`, sent from inside a node's namespace.
    pub fn http_get(
        &self,
        from: &Node,
        addr: SocketAddr,
        path: &str,
    ) -> std::io::Result<HttpResponse> {
        netns::http_get(netns_of(from), addr, path)
    }

    /// A node's unit status, as its supervisor last wrote it.
    ///
    /// # Panics
    ///
    /// When the status file cannot be read (after `start` it always can).
    pub fn status(&self, node: &Node) -> NodeStatus {
        let run_dir = dcos_node::units::run_dir_of(&node.work_dir);
        dcos_node::status::read(&run_dir)
            .unwrap_or_else(|e| panic!("status of {} in {}: {e}", node.id, run_dir.display()))
    }

    /// The pid of a node's unit while it runs, as its supervisor last wrote it.
    pub fn unit_pid(&self, node: &Node, unit: &str) -> Option<u32> {
        let status = self.status(node);
        let unit = status.units.iter().find(|u| u.name == unit)?;
        (unit.state == dcos_node::status::UnitState::Running)
            .then_some(unit.pid)
            .flatten()
    }

    /// Kills (-9) a node's running unit, as a crash would, and returns the pid it had; its
    /// supervisor starts it again.
    ///
    /// # Panics
    ///
    /// When the unit is not running.
    pub fn kill_unit(&self, node: &Node, unit: &str) -> u32 {
        let pid = self
            .unit_pid(node, unit)
            .unwrap_or_else(|| panic!("{unit} is not running on {}", node.id));
        crate::kill_9(pid);
        pid
    }

    /// Every process of the cluster known now: each supervisor and each unit process.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        for node in self.nodes() {
            pids.extend(node.pid);
            let run_dir = dcos_node::units::run_dir_of(&node.work_dir);
            if let Ok(st) = dcos_node::status::read(&run_dir) {
                pids.extend(st.units.iter().filter_map(|u| u.pid));
            }
        }
        pids
    }

    /// Tears the cluster down now, reporting whether `dcos cluster down` succeeded.
    pub fn down(mut self) -> Result<(), Error> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), Error> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        // A failed `up` returned no record, but may have written one (and made things).
        let record = self
            .record
            .clone()
            .or_else(|| node_cluster::load(self.state_dir.path(), &self.name).ok());
        let result = match node_cluster::down(self.state_dir.path(), &self.name) {
            Ok(()) => Ok(()),
            // `up` failed before writing its record: nothing of it exists to stop.
            Err(node_cluster::Error::Invalid(_)) if record.is_none() => Ok(()),
            Err(source) => Err(Error::Down {
                name: self.name.clone(),
                source,
            }),
        };
        // Last resort, whatever `down` did: no namespace, process or bridge of ours survives.
        sweep_cluster(&self.name, record.as_ref());
        result
    }

    fn dump_logs(&self) {
        let Some(record) = &self.record else { return };
        for node in &record.nodes {
            eprintln!(
                "--- {} ({}): {} ---",
                node.id,
                node.role,
                node.log.display()
            );
            eprintln!("{}", tail(&node.log, 40));
            let Ok(entries) = fs_err::read_dir(node.work_dir.join("logs")) else {
                continue;
            };
            for entry in entries.flatten() {
                eprintln!("--- {}: {} ---", node.id, entry.path().display());
                eprintln!("{}", tail(&entry.path(), 20));
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        if let Err(e) = self.teardown() {
            eprintln!("testkit: {e:?}");
        }
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.name)
            .field("state_dir", &self.state_dir.path())
            .field("record", &self.record)
            .finish()
    }
}

fn netns_of(node: &Node) -> &str {
    node.netns
        .as_deref()
        .expect("a testkit node lives in a network namespace")
}

/// Removes whatever of cluster `name` is left: its supervisors, its namespaces (with every
/// process in them) and its bridge.
fn sweep_cluster(name: &str, record: Option<&Record>) {
    use nix::sys::signal::{kill, Signal};
    for pid in record
        .iter()
        .flat_map(|r| r.nodes.iter().filter_map(|n| n.pid))
    {
        // Only a process that still is this cluster's supervisor: its config path names the
        // cluster (a pid freed by `down` may already belong to someone else).
        let cmdline = fs_err::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let ours = String::from_utf8_lossy(&cmdline).contains(&format!("/{name}/"));
        if ours && node_cluster::pid_alive(pid) {
            let _ = kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
    let prefix = format!("dcos-{name}-");
    for ns in netns::netns_list() {
        if ns.starts_with(&prefix) {
            netns::remove_netns(&ns);
        }
    }
    if let Some(bridge) = record.and_then(|r| r.bridge.as_deref()) {
        let _ = Command::new("ip")
            .args(["link", "del", bridge])
            .stderr(Stdio::null())
            .status();
    }
}

/// Takes down the clusters whose test process died before its `Drop` ran.
pub(crate) fn sweep_state_dirs() {
    let base = std::env::temp_dir().join(STATE_BASE);
    let Ok(entries) = fs_err::read_dir(&base) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let owner = entry.file_name().to_str().and_then(netns::owner_pid);
        if !owner.is_some_and(netns::abandoned) {
            continue;
        }
        for record in node_cluster::list(&dir) {
            let _ = node_cluster::down(&dir, &record.name);
            sweep_cluster(&record.name, Some(&record));
        }
        let _ = fs_err::remove_dir_all(&dir);
    }
}

/// curl's arguments for a `method` request (`POST`, `PUT`) with the JSON `body` to `url`,
/// for [`Cluster::curl`].
pub fn json_request_args<'a>(method: &'a str, url: &'a str, body: &'a str) -> [&'a str; 7] {
    [
        "-X",
        method,
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
        url,
    ]
}
