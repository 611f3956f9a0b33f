//! What dcos-diagnostics reports of this node: each unit the supervisor runs, with its
//! health checked beyond the supervisor's state. A unit whose process is stopped (SIGSTOP)
//! or does not accept connections on its contract ports is unhealthy with that reason, even
//! though it is alive; systemd's state, all DC/OS looked at, would call it active.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dcos_diagnostics::model::{unit_name, HEALTHY, UNHEALTHY};
use dcos_diagnostics::{Local, Unit};
use dcos_ports::NodeRole;

use crate::status::{self, UnitState, UnitStatus};
use crate::units::role_units;

/// How often the masters pull every node's health.
pub const PULL_INTERVAL: Duration = Duration::from_secs(10);
/// How long a unit's port may take to accept a connection.
const CONNECT: Duration = Duration::from_millis(500);
/// Log lines of an unhealthy unit shown in its output.
const TAIL_LINES: usize = 20;

/// Each unit's systemd `Description`, as DC/OS writes them (`name: what it does`).
pub fn description(unit: &str) -> &'static str {
    match unit {
        "dcos-pkgpanda-api.service" => "Pkgpanda API: Package management API",
        "dcos-exhibitor.service" => "Exhibitor: Zookeeper Supervisor Service",
        "dcos-bouncer.service" => "DC/OS IAM: identity and access management",
        "dcos-ca.service" => "DC/OS CA: the cluster's certificate authority",
        "dcos-registry.service" => "Container Registry: the cluster's own image registry",
        "dcos-mesos-master.service" => "Mesos Master: distributed systems kernel",
        "dcos-mesos-dns.service" => "Mesos DNS: DNS based Service Discovery",
        "dcos-marathon.service" => "Marathon: container orchestration engine",
        "dcos-metronome.service" => "Jobs Service: DC/OS Metronome",
        "dcos-cosmos.service" => "Package Service: DC/OS Packaging API",
        "dcos-history-service.service" => {
            "DC/OS History: caches and exposes historical system state"
        }
        "dcos-net.service" => "Networking: A distributed systems & network overlay service",
        "dcos-mesos-slave.service" => "Mesos Agent: distributed systems kernel agent",
        "dcos-adminrouter.service" => {
            "Admin Router Master: exposes a unified control plane proxy for components and services"
        }
        "dcos-adminrouter-agent" => {
            "Admin Router Agent: exposes a unified control plane proxy for components and services"
        }
        "dcos-diagnostics.service" => {
            "DC/OS Diagnostics: collects and serves the health of DC/OS components"
        }
        "dcos-metrics-master.service" => "DC/OS Metrics Master: exposes the master's metrics",
        "dcos-metrics-agent.service" => {
            "DC/OS Metrics Agent: exposes the agent's and containers' metrics"
        }
        "dcos-log-master.service" => "DC/OS Log Master: serves the master's logs",
        "dcos-log-agent.service" => "DC/OS Log Agent: serves the agent's and tasks' logs",
        "dcos-rexray.service" => "REX-Ray: storage orchestration engine",
        _ => "DC/OS component",
    }
}

/// The node's Mesos id, once known (filled by the unit's background lookup).
pub type MesosId = Arc<Mutex<String>>;

/// Reads the `id` of the Mesos master or agent at `own` (`/state`) into `into`, retrying
/// until it answers or `stop`.
pub async fn learn_mesos_id(
    own: SocketAddr,
    credentials: Option<dcos_mesos_api::follow::Credentials>,
    into: MesosId,
    stop: tokio_util::sync::CancellationToken,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a plain HTTP client builds");
    loop {
        let mut request = client.get(format!("http://{own}/state"));
        if let Some(c) = &credentials {
            if let Ok(token) = (c.0)().await {
                request = request.header("Authorization", format!("token={token}"));
            }
        }
        let id = match request.send().await {
            Ok(r) if r.status().is_success() => r
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_string)),
            _ => None,
        };
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            *into.lock().unwrap_or_else(|e| e.into_inner()) = id;
            return;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// The reporter of a node: reads the supervisor's status under `run_dir` and checks each
/// unit of `role` on the node at `ip`; unit logs are in `logs_dir`.
pub fn reporter(
    role: NodeRole,
    ip: IpAddr,
    run_dir: PathBuf,
    logs_dir: PathBuf,
    mesos_id: MesosId,
) -> dcos_diagnostics::Reporter {
    // The role's units (their contract addresses), made once.
    let known = role_units(role);
    Arc::new(move || {
        let units = match status::read(&run_dir) {
            Ok(st) => st
                .units
                .iter()
                .filter_map(|u| report(role, ip, &known, &run_dir, &logs_dir, u))
                .collect(),
            // The supervisor's status cannot be read: the node is not healthy, and says why.
            Err(e) => vec![Unit {
                id: "dcos-diagnostics.service".into(),
                health: UNHEALTHY,
                output: format!("the node's unit status cannot be read: {e}"),
                description: description("dcos-diagnostics.service").into(),
                help: "Is `dcos node run` running on this node?".into(),
                name: unit_name(description("dcos-diagnostics.service")),
            }],
        };
        Local {
            units,
            mesos_id: mesos_id.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    })
}

/// The state letter of a process (`R`, `S`, `T` stopped, `Z` zombie, ...), if it exists.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) S ...`: the command may hold spaces and parentheses; the state follows the
    // last `)`.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Why a running unit is not healthy, if it is not: its process, then its TCP ports, then
/// its unix sockets.
fn running_problem(pid: Option<u32>, addrs: &[SocketAddr], sockets: &[PathBuf]) -> Option<String> {
    if let Some(pid) = pid {
        match process_state(pid) {
            None => return Some(format!("its process {pid} is gone")),
            Some('T' | 't') => {
                return Some(format!(
                    "its process {pid} is stopped (state T): it is alive but answers on none of its ports"
                ))
            }
            Some('Z' | 'X') => return Some(format!("its process {pid} has exited")),
            Some(_) => {}
        }
    }
    for addr in addrs {
        if let Err(e) = TcpStream::connect_timeout(addr, CONNECT) {
            return Some(format!("it does not accept connections on {addr}: {e}"));
        }
    }
    for path in sockets {
        if let Err(e) = std::os::unix::net::UnixStream::connect(path) {
            return Some(format!(
                "it does not accept connections on {}: {e}",
                path.display()
            ));
        }
    }
    None
}

/// The last lines of a unit's log.
fn log_tail(logs_dir: &Path, unit: &str) -> String {
    let path = logs_dir.join(format!("{unit}.log"));
    let bytes = dcos_diagnostics::tail(&path, 16 * 1024).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

/// One unit's report; `None` for units this node does not run (not built, not in use).
fn report(
    role: NodeRole,
    ip: IpAddr,
    units: &[crate::units::Unit],
    run_dir: &Path,
    logs_dir: &Path,
    u: &UnitStatus,
) -> Option<Unit> {
    let problem = match u.state {
        UnitState::NotBuilt | UnitState::NotInUse | UnitState::NeedsRoot => return None,
        UnitState::Running => {
            let addrs = units
                .iter()
                .find(|r| r.name == u.name)
                .map(|r| r.tcp_addrs(ip))
                .unwrap_or_default();
            let sockets = crate::units::unit_sockets(&u.name, role, run_dir);
            running_problem(u.pid, &addrs, &sockets)
        }
        UnitState::Starting => Some("it is starting: not yet accepting on its ports".into()),
        UnitState::Backoff => Some(format!(
            "it exited ({}); the supervisor restarts it (restart {})",
            u.last_exit.as_deref().unwrap_or("no reason recorded"),
            u.restarts
        )),
        UnitState::Failing => Some(format!(
            "it keeps failing ({}); restarted {} times",
            u.last_exit.as_deref().unwrap_or("no reason recorded"),
            u.restarts
        )),
        UnitState::Stopping | UnitState::Stopped => Some("it is stopped".into()),
    };
    let description = description(&u.name).to_string();
    let (health, output) = match problem {
        None => (HEALTHY, String::new()),
        Some(why) => (
            UNHEALTHY,
            format!(
                "{} is unhealthy: {why}\n{}",
                u.name,
                log_tail(logs_dir, &u.name)
            ),
        ),
    };
    Some(Unit {
        id: u.name.clone(),
        health,
        output,
        name: unit_name(&description),
        description,
        help: format!(
            "See the unit's log: `dcos node log --mesos-id=<this node's id> --component={0}`, \
             or on the node `dcos node status` and {1}/{0}.log",
            u.name,
            logs_dir.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_process_is_unhealthy_though_alive() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert_eq!(running_problem(Some(pid), &[], &[]), None);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGSTOP,
        )
        .unwrap();
        // The state changes once the signal is delivered.
        let mut why = None;
        for _ in 0..50 {
            why = running_problem(Some(pid), &[], &[]);
            if why.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(why.unwrap().contains("stopped"));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_port_that_does_not_accept_is_named() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        assert_eq!(running_problem(None, &[open], &[]), None);
        // A port nothing listens on, below the ephemeral range (a freed ephemeral port can
        // be connected to itself).
        let closed: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let why = running_problem(None, &[open, closed], &[]).unwrap();
        assert!(why.contains("127.0.0.1:1:"), "{why}");
        // A socket nobody serves.
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone.sock");
        let why = running_problem(None, &[], std::slice::from_ref(&gone)).unwrap();
        assert!(why.contains("gone.sock"), "{why}");
    }

    #[test]
    fn descriptions_give_dcos_names() {
        assert_eq!(
            unit_name(description("dcos-history-service.service")),
            "DC/OS History"
        );
        assert_eq!(
            unit_name(description("dcos-mesos-master.service")),
            "Mesos Master"
        );
    }
}
