//! The local cluster: `dcos cluster up/down/list`.
//!
//! As root, every node lives in its own network namespace (its own IP and its own loopback,
//! so each binds the contract's real ports and localhost-only rules hold), attached by a veth
//! pair to a bridge this module creates. Each cluster takes its own /24 and bridge, found by
//! trying to create `dcosbr<K>` (creation is atomic, so parallel tests never share a block).
//! Without root it runs one combined master+agent node on 127.0.0.1.
//!
//! The cluster's record is written before anything is created, so `down` cleans up after a
//! crashed `up`; `down` is idempotent.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{NodeConfig, StoreBackend, StoreConfig};
use crate::status;

/// What to start.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The cluster's name.
    pub name: String,
    /// How many masters: 1, 3 or 5.
    pub masters: usize,
    /// The masters' store; `None` picks embedded for one master, ZooKeeper for several.
    pub store: Option<StoreBackend>,
    /// How many private agents.
    pub agents: usize,
    /// How many public agents.
    pub public_agents: usize,
    /// The `dcos` binary the nodes run.
    pub binary: PathBuf,
    /// Where cluster records and node work dirs live.
    pub state_dir: PathBuf,
    /// How long to wait for every node to be healthy.
    pub timeout: Duration,
    /// Run the cluster-local image registry on every master.
    pub registry: bool,
    /// What the cluster asks of its callers; unless `disabled`, a bootstrap superuser is made.
    pub security: dcos_iam::api::SecurityMode,
}

/// A recorded cluster.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    /// The cluster's name.
    pub name: String,
    /// The bridge, in namespace mode.
    pub bridge: Option<String>,
    /// The bridge's own address (the host's side), in namespace mode.
    pub gateway: Option<IpAddr>,
    /// Every node.
    pub nodes: Vec<Node>,
    /// The cluster CA's certificate, for clients to trust the routers' TLS.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// The cluster's id.
    #[serde(default)]
    pub cluster_id: Option<String>,
    /// The bootstrap superuser's credentials (readable by the cluster's owner only).
    #[serde(default)]
    pub superuser: Option<PathBuf>,
}

/// A recorded node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Node {
    /// `master-1`, `agent-2`, `public-agent-1`.
    pub id: String,
    /// `master`, `agent`, `agent_public` or `master+agent`.
    pub role: String,
    /// The node's cluster IP.
    pub ip: IpAddr,
    /// Its network namespace, or null on the host.
    pub netns: Option<String>,
    /// Its host-side veth, in namespace mode.
    #[serde(default)]
    pub veth: Option<String>,
    /// The supervisor's pid once started.
    pub pid: Option<u32>,
    /// Its work dir.
    pub work_dir: PathBuf,
    /// Its config file.
    pub config: PathBuf,
    /// Its supervisor's log.
    pub log: PathBuf,
}

/// A cluster that cannot be brought up or down.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command failed.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed.
        stderr: String,
    },
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The cluster name is taken or invalid.
    #[error("{0}")]
    Invalid(String),
    /// A node did not become healthy.
    #[error("node {node} did not become healthy within {secs} s: {why}\n--- last lines of {log} ---\n{tail}")]
    Unhealthy {
        /// The node.
        node: String,
        /// The wait.
        secs: u64,
        /// What was seen.
        why: String,
        /// The supervisor log.
        log: String,
        /// Its last lines.
        tail: String,
    },
}

/// The default state dir: `/var/lib/dcos-rs/clusters` as root, `~/.dcos-rs/clusters` otherwise.
pub fn default_state_dir() -> PathBuf {
    if is_root() {
        PathBuf::from("/var/lib/dcos-rs/clusters")
    } else {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".dcos-rs/clusters")
    }
}

/// Whether the isolated (namespace) mode is available.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn run(args: &[&str]) -> Result<String, Error> {
    let out = Command::new(args[0]).args(&args[1..]).output()?;
    if !out.status.success() {
        return Err(Error::Command {
            command: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn record_path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join(name).join("cluster.json")
}

fn save(state_dir: &Path, record: &Record) -> Result<(), Error> {
    let path = record_path(state_dir, &record.name);
    fs_err::create_dir_all(path.parent().unwrap_or(state_dir))?;
    let tmp = path.with_extension("json.tmp");
    fs_err::write(
        &tmp,
        serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?,
    )?;
    fs_err::rename(tmp, path)?;
    Ok(())
}

/// Reads a cluster's record.
pub fn load(state_dir: &Path, name: &str) -> Result<Record, Error> {
    let text = fs_err::read(record_path(state_dir, name))?;
    serde_json::from_slice(&text).map_err(|e| Error::Io(std::io::Error::other(e)))
}

/// The cluster `dcos` client commands target by default.
pub fn current(state_dir: &Path) -> Option<String> {
    fs_err::read_to_string(state_dir.join("current"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 24
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Takes a free /24 by creating its bridge; returns the block number.
fn allocate_bridge(name: &str) -> Result<u8, Error> {
    let start = name
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    for i in 0..250u32 {
        let k = ((start + i) % 250 + 1) as u8;
        let bridge = format!("dcosbr{k}");
        if run(&["ip", "link", "add", &bridge, "type", "bridge"]).is_ok() {
            return Ok(k);
        }
    }
    Err(Error::Invalid("no free address block: every dcosbr1..250 bridge exists; run `dcos cluster down` for old clusters".into()))
}

fn node_ip(block: u8, index: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 231, block, index)
}

/// Brings a cluster up and waits until every node is healthy. `progress` hears each step.
pub fn up(spec: &Spec, mut progress: impl FnMut(&str)) -> Result<Record, Error> {
    if !valid_name(&spec.name) {
        return Err(Error::Invalid(format!(
            "invalid cluster name {:?}: use up to 24 letters, digits and dashes",
            spec.name
        )));
    }
    if record_path(&spec.state_dir, &spec.name).exists() {
        return Err(Error::Invalid(format!(
            "cluster {:?} exists already; run `dcos cluster down --name {}` first",
            spec.name, spec.name
        )));
    }
    if ![1, 3, 5].contains(&spec.masters) {
        return Err(Error::Invalid(format!(
            "{} masters asked: a cluster has 1, 3 or 5 masters (a ZooKeeper quorum is a majority)",
            spec.masters
        )));
    }
    let store = store_backend(spec)?;
    let dir = spec.state_dir.join(&spec.name);
    let isolated = is_root();
    if !isolated && spec.masters > 1 {
        return Err(Error::Invalid(
            "several masters need root: each runs in its own network namespace with its own IP"
                .into(),
        ));
    }
    let mut record = Record {
        name: spec.name.clone(),
        bridge: None,
        gateway: None,
        nodes: Vec::new(),
        ca_cert: None,
        cluster_id: Some(uuid::Uuid::new_v4().to_string()),
        superuser: None,
    };
    let mut roles: Vec<(String, &str)> = Vec::new();
    if isolated {
        roles.extend((1..=spec.masters).map(|i| (format!("master-{i}"), "master")));
        roles.extend((1..=spec.agents).map(|i| (format!("agent-{i}"), "agent")));
        roles.extend(
            (1..=spec.public_agents).map(|i| (format!("public-agent-{i}"), "agent_public")),
        );
    } else {
        progress("not root: running one combined master+agent node on 127.0.0.1 (each node in its own network namespace needs root)");
        roles.push(("master-1".into(), "master+agent"));
    }
    if roles.len() > 200 {
        return Err(Error::Invalid("at most 200 nodes".into()));
    }

    let block = if isolated {
        let k = allocate_bridge(&spec.name)?;
        record.bridge = Some(format!("dcosbr{k}"));
        record.gateway = Some(IpAddr::V4(node_ip(k, 1)));
        Some(k)
    } else {
        None
    };
    let masters: Vec<IpAddr> = roles
        .iter()
        .enumerate()
        .filter(|(_, (_, r))| r.starts_with("master"))
        .map(|(i, _)| match block {
            Some(k) => IpAddr::V4(node_ip(k, 10 + i as u8)),
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        })
        .collect();
    for (i, (id, role)) in roles.iter().enumerate() {
        let work_dir = dir.join(id);
        let (ip, netns, veth) = match block {
            Some(k) => (
                IpAddr::V4(node_ip(k, 10 + i as u8)),
                Some(format!("dcos-{}-{id}", spec.name)),
                Some(format!("dcv{k}n{i}")),
            ),
            None => (IpAddr::V4(Ipv4Addr::LOCALHOST), None, None),
        };
        record.nodes.push(Node {
            id: id.clone(),
            role: role.to_string(),
            ip,
            netns,
            veth,
            pid: None,
            config: work_dir.join("node.yaml"),
            log: work_dir.join("node.log"),
            work_dir,
        });
    }
    // Recorded before anything is created, so `down` can always clean up.
    save(&spec.state_dir, &record)?;

    let result = bring_up(spec, store, &mut record, &masters, &mut progress);
    save(&spec.state_dir, &record)?;
    result?;
    fs_err::write(spec.state_dir.join("current"), &spec.name)?;
    Ok(record)
}

/// The store the masters use: ZooKeeper for several masters, embedded for one unless asked.
fn store_backend(spec: &Spec) -> Result<StoreBackend, Error> {
    match (spec.store, spec.masters) {
        (Some(StoreBackend::Embedded), n) if n > 1 => Err(Error::Invalid(format!(
            "{n} masters cannot share the embedded store; they need `--store zookeeper`"
        ))),
        (Some(store), _) => Ok(store),
        (None, 1) => Ok(StoreBackend::Embedded),
        (None, _) => Ok(StoreBackend::Zookeeper),
    }
}

fn bring_up(
    spec: &Spec,
    store: StoreBackend,
    record: &mut Record,
    masters: &[IpAddr],
    progress: &mut impl FnMut(&str),
) -> Result<(), Error> {
    if let (Some(bridge), Some(gw)) = (&record.bridge, record.gateway) {
        run(&["ip", "addr", "add", &format!("{gw}/24"), "dev", bridge])?;
        run(&["ip", "link", "set", bridge, "up"])?;
        progress(&format!("created bridge {bridge} ({gw}/24)"));
    }
    let ca_dir = spec.state_dir.join(&spec.name).join("ca");
    let ca_cert = dcos_tls::create_ca(&ca_dir, &spec.name).map_err(std::io::Error::other)?;
    progress(&format!("cluster CA: {}", ca_cert.display()));
    record.ca_cert = Some(ca_cert);
    let superuser = match spec.security.enabled() {
        true => {
            let (path, hash) = make_superuser(&spec.state_dir.join(&spec.name))?;
            progress(&format!(
                "bootstrap superuser {BOOTSTRAP_UID}: credentials in {} (root only)",
                path.display()
            ));
            record.superuser = Some(path);
            Some(hash)
        }
        false => None,
    };
    let frameworks = match spec.security {
        dcos_iam::api::SecurityMode::Strict => {
            progress("strict security: the frameworks authenticate with service accounts");
            framework_accounts(&spec.state_dir.join(&spec.name), masters)?
        }
        _ => FrameworkAccounts::default(),
    };
    for node in &mut record.nodes {
        fs_err::create_dir_all(&node.work_dir)?;
        let config = NodeConfig {
            cluster_id: record.cluster_id.clone(),
            ca_dir: Some(ca_dir.clone()),
            cluster_name: spec.name.clone(),
            master_list: masters.to_vec(),
            store: StoreConfig { backend: store },
            ip: Some(node.ip),
            work_dir: node.work_dir.clone(),
            registry: spec.registry && node.role.contains("master"),
            security: spec.security,
            superuser_username: superuser.as_ref().map(|_| BOOTSTRAP_UID.to_string()),
            superuser_password_hash: superuser.clone(),
            service_account_keys: frameworks.keys.clone(),
            // The frameworks' secrets on masters, the agents' on agents.
            service_account_secrets: frameworks
                .secrets
                .iter()
                .filter(|(component, _)| match component.as_str() {
                    "agent" => node.role.contains("agent"),
                    _ => node.role.contains("master"),
                })
                .map(|(c, p)| (c.clone(), p.clone()))
                .collect(),
            ..NodeConfig::default()
        };
        let yaml = serde_norway::to_string(&config).map_err(std::io::Error::other)?;
        // The owner's only: it holds the bootstrap superuser's password hash.
        dcos_store::file::write_atomic(&node.config, yaml.as_bytes(), 0o600)?;
        if let (Some(ns), Some(veth), Some(bridge)) = (&node.netns, &node.veth, &record.bridge) {
            run(&["ip", "netns", "add", ns])?;
            run(&[
                "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ])?;
            run(&["ip", "link", "set", veth, "master", bridge, "up"])?;
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", node.ip),
                "dev",
                "eth0",
            ])?;
            run(&["ip", "-n", ns, "link", "set", "eth0", "up"])?;
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        }
        let log = fs_err::File::create(&node.log)?.into_parts().0;
        let mut cmd = match &node.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&spec.binary);
                c
            }
            None => Command::new(&spec.binary),
        };
        cmd.args(["node", "run", "--role", &node.role, "--config"])
            .arg(&node.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Its own process group: a Ctrl-C in the terminal that ran `up` does not reach it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn()?;
        node.pid = Some(child.id());
        progress(&format!(
            "started {} ({}) on {}",
            node.id, node.role, node.ip
        ));
    }
    wait_healthy(spec, record, progress)
}

/// The bootstrap superuser's uid, as DC/OS names it.
pub const BOOTSTRAP_UID: &str = "bootstrapuser";

/// The bootstrap superuser's credentials as `dcos cluster up` keeps them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Credentials {
    /// The uid.
    pub uid: String,
    /// The password.
    pub password: String,
}

/// Makes the bootstrap superuser's password, keeps it readable by root only in `dir`, and
/// gives its path and the password's hash (the only form the nodes get).
fn make_superuser(dir: &Path) -> Result<(PathBuf, String), Error> {
    // 40 hex digits from two v4 UUIDs' random bytes (at least 150 random bits).
    let password: String = (0..2)
        .flat_map(|_| *uuid::Uuid::new_v4().as_bytes())
        .take(20)
        .map(|b| format!("{b:02x}"))
        .collect();
    let hash = dcos_iam::password::hash(&password).map_err(|e| Error::Invalid(e.0))?;
    let credentials = Credentials {
        uid: BOOTSTRAP_UID.into(),
        password,
    };
    fs_err::create_dir_all(dir)?;
    let path = dir.join("superuser.json");
    let text = serde_json::to_vec_pretty(&credentials).map_err(std::io::Error::other)?;
    dcos_store::file::write_atomic(&path, &text, 0o600)?;
    Ok((path, hash))
}

/// The frameworks' service accounts of a strict cluster.
#[derive(Default)]
struct FrameworkAccounts {
    /// uid to public key.
    keys: std::collections::BTreeMap<String, String>,
    /// component to secret file.
    secrets: std::collections::BTreeMap<String, PathBuf>,
}

/// Makes the service accounts with which Marathon, Metronome and the agents authenticate to
/// the master (DC/OS' `dcos_marathon`, `dcos_metronome`, `dcos_agent`): a key pair each, the
/// secret (as DC/OS keeps service account secrets) readable by root only in `dir/secrets`.
/// The frameworks log in at their master's own IAM; agents at the masters' Admin Routers.
fn framework_accounts(dir: &Path, masters: &[IpAddr]) -> Result<FrameworkAccounts, Error> {
    let mut out = FrameworkAccounts::default();
    let secrets = dir.join("secrets");
    fs_err::create_dir_all(&secrets)?;
    let login = "/acs/api/v1/auth/login";
    let own_iam = format!("http://127.0.0.1:{}{login}", dcos_iam::PORT);
    let routers: Vec<String> = masters
        .iter()
        .map(|m| format!("http://{m}{login}"))
        .collect();
    for (component, uid) in [
        ("marathon", "dcos_marathon"),
        ("metronome", "dcos_metronome"),
        ("agent", "dcos_agent"),
        ("adminrouter", "dcos_adminrouter"),
        ("mesos-dns", "dcos_mesos_dns"),
        ("net", "dcos_net"),
        ("history", "dcos_history_service"),
        ("diagnostics", "dcos_diagnostics"),
        ("metrics", "dcos_metrics"),
    ] {
        let (login_endpoint, also_at) = match (component, routers.split_first()) {
            ("agent", Some((first, others))) => (first.clone(), others.to_vec()),
            _ => (own_iam.clone(), Vec::new()),
        };
        let (private, public) =
            dcos_iam::keys::generate_account_pair().map_err(|e| Error::Invalid(e.to_string()))?;
        let secret = dcos_iam::client::ServiceSecret {
            scheme: "RS256".into(),
            uid: uid.into(),
            private_key: private,
            login_endpoint,
            also_at,
        };
        let path = secrets.join(format!("{uid}.json"));
        let text = serde_json::to_vec_pretty(&secret).map_err(std::io::Error::other)?;
        dcos_store::file::write_atomic(&path, &text, 0o600)?;
        out.keys.insert(uid.into(), public);
        out.secrets.insert(component.into(), path);
    }
    Ok(out)
}

/// The bootstrap superuser's credentials of a cluster, if it has them.
pub fn superuser(record: &Record) -> Option<Credentials> {
    let text = fs_err::read(record.superuser.as_ref()?).ok()?;
    serde_json::from_slice(&text).ok()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs_err::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn wait_healthy(
    spec: &Spec,
    record: &Record,
    progress: &mut impl FnMut(&str),
) -> Result<(), Error> {
    let deadline = Instant::now() + spec.timeout;
    let mut last_said = String::new();
    loop {
        let mut waiting = Vec::new();
        for node in &record.nodes {
            let alive = node.pid.is_some_and(pid_alive);
            if !alive {
                return Err(Error::Unhealthy {
                    node: node.id.clone(),
                    secs: spec.timeout.as_secs(),
                    why: "its supervisor exited".into(),
                    log: node.log.display().to_string(),
                    tail: tail(&node.log, 30),
                });
            }
            match status::read(&crate::units::run_dir_of(&node.work_dir)) {
                Ok(st) if st.healthy() => {}
                Ok(st) => {
                    let pending: Vec<String> = st
                        .units
                        .iter()
                        .filter(|u| {
                            !matches!(
                                u.state,
                                status::UnitState::Running
                                    | status::UnitState::NotBuilt
                                    | status::UnitState::NotInUse
                                    | status::UnitState::NeedsRoot
                            )
                        })
                        .map(|u| format!("{} {:?}", u.name, u.state).to_lowercase())
                        .collect();
                    waiting.push(format!("{}: {}", node.id, pending.join(", ")));
                }
                Err(_) => waiting.push(format!("{}: starting", node.id)),
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        let said = format!("waiting for {}", waiting.join("; "));
        if said != last_said {
            progress(&said);
            last_said = said;
        }
        if Instant::now() >= deadline {
            let node = &record.nodes[0];
            return Err(Error::Unhealthy {
                node: waiting.join("; "),
                secs: spec.timeout.as_secs(),
                why: "units not running".into(),
                log: node.log.display().to_string(),
                tail: tail(&node.log, 30),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether a pid is a live (not zombie) process.
pub fn pid_alive(pid: u32) -> bool {
    match fs_err::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn kill(pid: u32, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
}

/// Stops every process of a cluster and removes its namespaces, veths and bridge. Idempotent.
pub fn down(state_dir: &Path, name: &str) -> Result<(), Error> {
    use nix::sys::signal::Signal;
    let record = match load(state_dir, name) {
        Ok(r) => r,
        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Invalid(format!(
                "no cluster named {name:?} (see `dcos cluster list`)"
            )));
        }
        Err(e) => return Err(e),
    };
    // Supervisors first, gracefully: they stop their units in reverse order.
    let pids: Vec<u32> = record
        .nodes
        .iter()
        .filter_map(|n| n.pid)
        .filter(|p| pid_alive(*p))
        .collect();
    for &pid in &pids {
        kill(pid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while pids.iter().any(|p| pid_alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for &pid in &pids {
        if pid_alive(pid) {
            kill(pid, Signal::SIGKILL);
        }
    }
    // Then anything left in the namespaces (tasks run in their own sessions).
    let mut errors = Vec::new();
    for node in &record.nodes {
        if let Some(ns) = &node.netns {
            if let Ok(out) = run(&["ip", "netns", "pids", ns]) {
                for pid in out.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
                    kill(pid, Signal::SIGKILL);
                }
            }
            if let Err(e) = run(&["ip", "netns", "del", ns]) {
                if !e.to_string().contains("No such file") {
                    errors.push(e.to_string());
                }
            }
        }
        if let Some(veth) = &node.veth {
            let _ = run(&["ip", "link", "del", veth]);
        }
    }
    if let Some(bridge) = &record.bridge {
        let _ = run(&["ip", "link", "del", bridge]);
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(format!(
            "cleanup incomplete: {}",
            errors.join("; ")
        )));
    }
    fs_err::remove_dir_all(state_dir.join(name))?;
    if current(state_dir).as_deref() == Some(name) {
        let _ = fs_err::remove_file(state_dir.join("current"));
    }
    Ok(())
}

/// Every recorded cluster, by name.
pub fn list(state_dir: &Path) -> Vec<Record> {
    let Ok(entries) = fs_err::read_dir(state_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().join("cluster.json").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|n| load(state_dir, &n).ok())
        .collect()
}

/// Whether a node's supervisor lives and reports every unit running.
pub fn node_healthy(node: &Node) -> bool {
    node.pid.is_some_and(pid_alive)
        && status::read(&crate::units::run_dir_of(&node.work_dir)).is_ok_and(|s| s.healthy())
}
