//! A master node and simulated agents for the launch and footprint scenarios: the real
//! `dcos node run --role master` (every master unit its own process, as in a cluster) on a
//! loopback address of its own, and `dcos-bench simulate-agents` in another process.
//!
//! Both binaries are found beside the running one: `cargo build` puts `dcos` and `dcos-bench`
//! in the same `target/<profile>/`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

/// The master node's address: loopback, but none of the addresses tests and clusters use.
pub const MASTER_IP: &str = "127.0.90.1";

/// How long the master node may take to serve.
const NODE_START: Duration = Duration::from_secs(120);

/// A running master node with simulated agents; stopped on drop.
pub struct Rig {
    dir: tempfile::TempDir,
    node: Child,
    sims: Option<Simulator>,
    ip: IpAddr,
    /// A client for the node's APIs.
    pub client: reqwest::Client,
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

impl Rig {
    /// Starts the master node and waits until Mesos and Marathon serve.
    pub async fn start() -> anyhow::Result<Rig> {
        anyhow::ensure!(
            nix::unistd::geteuid().is_root(),
            "this scenario needs root: its master node binds DC/OS' privileged ports (53, 80, 443)"
        );
        let exe = dcos_exe()?;
        let mut dir = tempfile::tempdir()?;
        // To read the node's and the simulator's logs after a run.
        if std::env::var_os("DCOS_BENCH_KEEP").is_some() {
            dir.disable_cleanup(true);
            tracing::info!(dir = %dir.path().display(), "keeping the rig's directory");
        }
        let ip: IpAddr = MASTER_IP.parse()?;
        let config = dir.path().join("node.yaml");
        fs_err::write(
            &config,
            format!(
                "cluster_name: bench\nip: {ip}\nmaster_list: [{ip}]\nwork_dir: {}\n",
                dir.path().join("work").display()
            ),
        )?;
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
            ip,
            client: reqwest::Client::new(),
        };
        let deadline = Instant::now() + NODE_START;
        loop {
            if let Some(status) = rig.node.try_wait()? {
                anyhow::bail!("the master node exited ({status}):\n{}", tail(&log));
            }
            let marathon = rig.get(&rig.marathon("/v2/info")).await;
            let mesos = rig.get(&rig.mesos("/metrics/snapshot")).await;
            if marathon.is_ok() && mesos.is_ok() {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the master node did not serve Mesos and Marathon within {NODE_START:?}:\n{}",
                tail(&log)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
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
        let resp = self
            .client
            .get(url)
            .timeout(Duration::from_secs(30))
            .send()
            .await?;
        anyhow::ensure!(resp.status().is_success(), "{url}: {}", resp.status());
        Ok(resp.json().await?)
    }

    /// The node's units and their pids, as its supervisor last wrote them.
    pub fn unit_pids(&self) -> Vec<(String, u32)> {
        let run_dir = dcos_node::units::run_dir_of(&self.work_dir());
        dcos_node::status::read(&run_dir)
            .map(|st| {
                st.units
                    .into_iter()
                    .filter_map(|u| Some((u.name, u.pid?)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The simulated agents' process.
    pub fn simulator_pid(&self) -> Option<u32> {
        self.sims.as_ref().map(Simulator::pid)
    }

    fn work_dir(&self) -> PathBuf {
        self.dir.path().join("work")
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
    let started = Instant::now();
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
    let metrics = format!("http://{master}/metrics/snapshot");
    loop {
        if let Some(status) = sims.0.try_wait()? {
            anyhow::bail!(
                "dcos-bench simulate-agents exited ({status}):\n{}",
                tail(log)
            );
        }
        let active = async { client.get(&metrics).send().await?.json::<Value>().await };
        let active = active
            .await
            .ok()
            .and_then(|m| m["master/slaves_active"].as_u64());
        if active == Some(count as u64) {
            return Ok((sims, started.elapsed().as_secs_f64()));
        }
        anyhow::ensure!(
            started.elapsed() < deadline,
            "{count} simulated agents did not register within {deadline:?} ({active:?} did):\n{}",
            tail(log)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
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
        stop(&mut self.node);
    }
}
