//! A master node and simulated agents for the launch and footprint scenarios: the real
//! `dcos node run --role master` (every master unit its own process, as in a cluster) on an
//! address of its own, and `dcos-bench simulate-agents` in another process.
//!
//! A linked rig ([`Rig::start_linked`]) can also run one real agent node (`dcos node run
//! --role agent`, every agent unit its own process). A node binds its resolver on
//! `127.0.0.1:53` as well as on its own address, so two nodes cannot share a network
//! namespace: the agent runs in one of its own, joined to the host by a veth pair whose host
//! side carries the master's address ([`LINK_MASTER_IP`]), as `dcos cluster up` joins its
//! nodes to a bridge.
//!
//! Both binaries are found beside the running one: `cargo build` puts `dcos` and `dcos-bench`
//! in the same `target/<profile>/`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use dcos_testkit::Netns;
use serde_json::Value;

/// The master node's address: loopback, but none of the addresses tests and clusters use.
pub const MASTER_IP: &str = "127.0.90.1";

/// A linked rig's master address, on the host's side of the veth pair to the agent's
/// namespace (`dcos cluster up` takes blocks of 10.231.0.0/16, never this one).
pub const LINK_MASTER_IP: &str = "10.232.90.1";
/// The real agent's address, on the namespace's side.
pub const LINK_AGENT_IP: &str = "10.232.90.2";

/// The Mesos attribute the real agent has, so apps can be kept on it (`CLUSTER`) or off it
/// (`UNLIKE`) with a Marathon constraint.
pub const AGENT_ATTRIBUTE: (&str, &str) = ("bench", "real-agent");

/// How long a node may take to serve.
const NODE_START: Duration = Duration::from_secs(120);

/// A running master node with simulated agents (and a real agent node, when linked); stopped
/// on drop.
pub struct Rig {
    node: Child,
    sims: Option<Simulator>,
    /// The real agent node, once started.
    agent: Option<Child>,
    ip: IpAddr,
    /// A client for the node's APIs.
    pub client: reqwest::Client,
    /// A linked rig's agent namespace: dropped after every node has stopped, which kills what
    /// still runs in it (the agent's tasks) and removes it with the veth pair.
    link: Option<Netns>,
    // Last: removed once nothing runs in it.
    dir: tempfile::TempDir,
}

fn spawn_logged(exe: &Path, args: &[&str], log: &Path) -> anyhow::Result<Child> {
    let file = fs_err::File::create(log)?;
    let err = file.try_clone()?;
    Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(file.into_parts().0))
        .stderr(Stdio::from(err.into_parts().0))
        .spawn()
        .with_context(|| format!("starting {} {}", exe.display(), args.join(" ")))
}

/// `name` beside the running executable: the executable itself when it is `name`, else in
/// its directory or the one above (a test binary runs from `target/<profile>/deps/`).
fn beside_me(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    if exe.file_name() == Some(name.as_ref()) {
        return Ok(exe);
    }
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no `{name}` binary beside {}: build it (`cargo build` builds every binary)",
                exe.display()
            )
        })
}

/// The product binary `dcos`, which the scenarios run as nodes.
pub fn dcos_exe() -> anyhow::Result<PathBuf> {
    beside_me("dcos")
}

/// This suite's binary `dcos-bench`, which runs the simulated agents.
pub fn bench_exe() -> anyhow::Result<PathBuf> {
    beside_me("dcos-bench")
}

fn tail(path: &Path) -> String {
    let text = fs_err::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Waits until `ready` answers `Ok`, checking every `every`; fails when `child` (`what`,
/// its output in `log`) exits first or `within` passes, with `ready`'s last answer and the
/// log's tail. Returns the seconds it took.
async fn wait_ready<F: std::future::Future<Output = Result<(), String>>>(
    child: &mut Child,
    what: &str,
    log: &Path,
    within: Duration,
    every: Duration,
    mut ready: impl FnMut() -> F,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("{what} exited ({status}):\n{}", tail(log));
        }
        let why = match ready().await {
            Ok(()) => return Ok(started.elapsed().as_secs_f64()),
            Err(why) => why,
        };
        anyhow::ensure!(
            started.elapsed() < within,
            "{what} was not ready within {within:?} ({why}):\n{}",
            tail(log)
        );
        tokio::time::sleep(every).await;
    }
}

/// GETs JSON.
async fn get_json(client: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let resp = client
        .get(url)
        .timeout(Duration::from_secs(30))
        .send()
        .await?;
    anyhow::ensure!(resp.status().is_success(), "{url}: {}", resp.status());
    Ok(resp.json().await?)
}

/// The agents the master at `metrics` (its `/metrics/snapshot`) counts active.
async fn agents_active(client: &reqwest::Client, metrics: &str) -> Result<u64, String> {
    let snapshot = get_json(client, metrics).await.map_err(|e| e.to_string())?;
    snapshot["master/slaves_active"]
        .as_u64()
        .ok_or_else(|| "no master/slaves_active".to_string())
}

/// Writes `<dir>/node.yaml`: a node at `ip` of the master at `master`, its work dir
/// `<dir>/work`, of the cluster whose CA is in `ca_dir`, with `extra` (YAML) added. Returns
/// its path.
fn write_config(
    dir: &Path,
    ip: IpAddr,
    master: IpAddr,
    ca_dir: &Path,
    extra: &str,
) -> anyhow::Result<PathBuf> {
    let config = dir.join("node.yaml");
    fs_err::write(
        &config,
        format!(
            "cluster_name: bench\nip: {ip}\nmaster_list: [{master}]\nwork_dir: {}\n\
             ca_dir: {}\n{extra}",
            dir.join("work").display(),
            ca_dir.display()
        ),
    )?;
    Ok(config)
}

/// `ip <args>`, which must succeed.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = dcos_testkit::output_within(Command::new("ip").args(args), Duration::from_secs(30))
        .context("running `ip` (Debian's iproute2)")?;
    anyhow::ensure!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// The units of the node with `work_dir` and their pids, as its supervisor last wrote them.
fn unit_pids_of(work_dir: &Path) -> Vec<(String, u32)> {
    let run_dir = dcos_node::units::run_dir_of(work_dir);
    dcos_node::status::read(&run_dir)
        .map(|st| {
            st.units
                .into_iter()
                .filter_map(|u| Some((u.name, u.pid?)))
                .collect()
        })
        .unwrap_or_default()
}

fn ensure_root() -> anyhow::Result<()> {
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "this scenario needs root: its master node binds DC/OS' privileged ports (53, 80, 443)"
    );
    Ok(())
}

impl Rig {
    /// Starts the master node on [`MASTER_IP`] and waits until Mesos and Marathon serve.
    pub async fn start() -> anyhow::Result<Rig> {
        ensure_root()?;
        Self::start_on(MASTER_IP.parse()?, None, "").await
    }

    /// As [`Rig::start`], with logins off (`security: disabled`): for a browser that has none.
    pub async fn start_without_logins() -> anyhow::Result<Rig> {
        ensure_root()?;
        Self::start_on(MASTER_IP.parse()?, None, "security: disabled\n").await
    }

    /// Makes the real agent's namespace and the veth pair to it, then starts the master node
    /// on the host's side ([`LINK_MASTER_IP`]) and waits until Mesos and Marathon serve;
    /// [`Rig::start_agent`] starts the agent.
    pub async fn start_linked() -> anyhow::Result<Rig> {
        ensure_root()?;
        // Named after this process: the sweep of a later run removes it should this one die.
        let ns = Netns::new("agent");
        let veth = format!("dcb{}", std::process::id());
        ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
        ])?;
        ip(&["addr", "add", &format!("{LINK_MASTER_IP}/30"), "dev", &veth])?;
        ip(&["link", "set", &veth, "up"])?;
        let inside = ["-n", ns.name.as_str()];
        let agent_addr = format!("{LINK_AGENT_IP}/30");
        ip(&[&inside[..], &["addr", "add", &agent_addr, "dev", "eth0"]].concat())?;
        ip(&[&inside[..], &["link", "set", "eth0", "up"]].concat())?;
        Self::start_on(LINK_MASTER_IP.parse()?, Some(ns), "").await
    }

    async fn start_on(ip: IpAddr, link: Option<Netns>, extra: &str) -> anyhow::Result<Rig> {
        let exe = dcos_exe()?;
        let mut dir = tempfile::tempdir()?;
        // To read the nodes' and the simulator's logs after a run.
        if std::env::var_os("DCOS_BENCH_KEEP").is_some() {
            dir.disable_cleanup(true);
            tracing::info!(dir = %dir.path().display(), "keeping the rig's directory");
        }
        // A cluster CA, as `dcos cluster up` makes: without one the master's dcos-ca serves
        // nothing and its supervisor waits its whole start timeout for it.
        dcos_tls::create_ca(&dir.path().join("ca"), "bench")?;
        let config = write_config(dir.path(), ip, ip, &dir.path().join("ca"), extra)?;
        let log = dir.path().join("node.log");
        let config_arg = config.display().to_string();
        let node = spawn_logged(
            &exe,
            &["node", "run", "--role", "master", "--config", &config_arg],
            &log,
        )?;
        let mut rig = Rig {
            dir,
            node,
            sims: None,
            agent: None,
            ip,
            client: reqwest::Client::new(),
            link,
        };
        let client = &rig.client.clone();
        let (marathon, mesos) = (&rig.marathon("/v2/info"), &rig.mesos("/metrics/snapshot"));
        let serving = move || async move {
            get_json(client, marathon)
                .await
                .and(get_json(client, mesos).await)
                .map(drop)
                .map_err(|e| e.to_string())
        };
        let (node, what) = (&mut rig.node, "the master node");
        wait_ready(
            node,
            what,
            &log,
            NODE_START,
            Duration::from_millis(200),
            serving,
        )
        .await?;
        Ok(rig)
    }

    /// Starts `count` simulated agents in their own process and waits until the master
    /// counts them active; returns the seconds that took.
    pub async fn simulate(&mut self, count: usize) -> anyhow::Result<f64> {
        let master = SocketAddr::new(self.ip, 5050);
        let log = self.dir.path().join("simulate.log");
        let (child, took) = simulate(&self.client, master, count, &log).await?;
        self.sims = Some(child);
        Ok(took)
    }

    /// Starts the real agent node of a linked rig in its namespace (`dcos node run --role
    /// agent`, every unit its own process, with the attribute [`AGENT_ATTRIBUTE`]) and waits
    /// until every unit runs and the master counts one agent more active. Returns the
    /// seconds that took.
    pub async fn start_agent(&mut self) -> anyhow::Result<f64> {
        let ns = self
            .link
            .as_ref()
            .context("only a linked rig (Rig::start_linked) runs a real agent")?
            .name
            .clone();
        let dir = self.agent_dir();
        fs_err::create_dir_all(&dir)?;
        let (key, value) = AGENT_ATTRIBUTE;
        let attributes = format!("agent:\n  attributes:\n    {key}: {value}\n");
        let ca_dir = self.dir.path().join("ca");
        let config = write_config(&dir, LINK_AGENT_IP.parse()?, self.ip, &ca_dir, &attributes)?;
        let metrics = &self.mesos("/metrics/snapshot");
        let before = agents_active(&self.client, metrics)
            .await
            .map_err(anyhow::Error::msg)?;
        let (exe, log) = (dcos_exe()?, dir.join("node.log"));
        let (exe, config) = (exe.display().to_string(), config.display().to_string());
        let argv = ["netns", "exec", &ns, &exe, "node", "run", "--role", "agent"];
        let child = spawn_logged(
            Path::new("ip"),
            &[&argv[..], &["--config", &config]].concat(),
            &log,
        )?;
        let (client, run_dir) = (
            &self.client.clone(),
            &dcos_node::units::run_dir_of(&dir.join("work")),
        );
        let registered = move || async move {
            let status = dcos_node::status::read(run_dir).map_err(|e| e.to_string())?;
            let waiting: Vec<String> = status
                .units
                .iter()
                .filter(|u| u.state != dcos_node::status::UnitState::Running)
                .map(|u| format!("{} {:?}", u.name, u.state))
                .collect();
            if !status.healthy() {
                return Err(format!("units not running: {}", waiting.join(", ")));
            }
            match agents_active(client, metrics).await? {
                n if n > before => Ok(()),
                n => Err(format!("the master counts {n} agents active, as before it")),
            }
        };
        let agent = self.agent.insert(child);
        let every = Duration::from_millis(250);
        wait_ready(agent, "the agent node", &log, NODE_START, every, registered).await
    }

    /// The master node's IP.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// `http://<master>:5050<path>`.
    pub fn mesos(&self, path: &str) -> String {
        format!("http://{}:5050{path}", self.ip)
    }

    /// `http://<master>:8080<path>`.
    pub fn marathon(&self, path: &str) -> String {
        format!("http://{}:8080{path}", self.ip)
    }

    /// GETs JSON.
    pub async fn get(&self, url: &str) -> anyhow::Result<Value> {
        get_json(&self.client, url).await
    }

    /// The master node's units and their pids, as its supervisor last wrote them.
    pub fn unit_pids(&self) -> Vec<(String, u32)> {
        unit_pids_of(&self.dir.path().join("work"))
    }

    /// The real agent node's units and their pids (none before it is started).
    pub fn agent_unit_pids(&self) -> Vec<(String, u32)> {
        unit_pids_of(&self.agent_dir().join("work"))
    }

    /// The real agent node's run dir (its status file and unit sockets).
    pub fn agent_run_dir(&self) -> PathBuf {
        dcos_node::units::run_dir_of(&self.agent_dir().join("work"))
    }

    /// The simulated agents' process.
    pub fn simulator_pid(&self) -> Option<u32> {
        self.sims.as_ref().map(Simulator::pid)
    }

    fn agent_dir(&self) -> PathBuf {
        self.dir.path().join("agent")
    }
}

/// Starts `count` simulated agents of `master` in their own process
/// (`dcos-bench simulate-agents`, its output in `log`) and waits until the master counts them active. Returns the process
/// and the seconds registration took.
pub async fn simulate(
    client: &reqwest::Client,
    master: SocketAddr,
    count: usize,
    log: &Path,
) -> anyhow::Result<(Simulator, f64)> {
    let exe = bench_exe()?;
    let (master_arg, count_arg) = (master.to_string(), count.to_string());
    let mut sims = Simulator(spawn_logged(
        &exe,
        &[
            "simulate-agents",
            "--count",
            &count_arg,
            "--master",
            &master_arg,
        ],
        log,
    )?);
    let deadline = crate::simulate::registration_deadline(count);
    let metrics = &format!("http://{master}/metrics/snapshot");
    let registered = move || async move {
        match agents_active(client, metrics).await {
            Ok(n) if n == count as u64 => Ok(()),
            active => Err(format!("{active:?} of {count} registered")),
        }
    };
    let what = format!("{count} simulated agents (dcos-bench simulate-agents)");
    let every = Duration::from_millis(250);
    let took = wait_ready(&mut sims.0, &what, log, deadline, every, registered).await?;
    Ok((sims, took))
}

/// The simulated agents' process; stopped on drop.
pub struct Simulator(Child);

impl Simulator {
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        stop(&mut self.0);
    }
}

/// SIGTERM to `child`, then SIGKILL if it has not exited within 15 s; reaped either way.
pub(crate) fn stop(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Rig {
    fn drop(&mut self) {
        // The agents first, so the master does not see them go one by one.
        self.sims = None;
        if let Some(agent) = self.agent.as_mut() {
            stop(agent);
        }
        stop(&mut self.node);
        // Then `link` is dropped: what the agent left running in its namespace (its tasks,
        // which outlive an agent by design) is killed, and the namespace removed.
    }
}
