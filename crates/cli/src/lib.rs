//! The `dcos` command line: argument parsing and output. Logic lives in the component crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cluster;
mod iam;
mod image;
mod install;
mod job;
mod marathon;
mod node;
mod node_health;
mod node_log;
mod package;
mod ports;
mod preflight;
mod rest;
mod unit;

/// A user error: the message says what is wrong; exit code 1.
#[derive(Debug)]
pub(crate) struct UserError {
    message: String,
    hint: Option<String>,
}

impl UserError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        UserError {
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

#[derive(Parser)]
#[command(
    name = "dcos",
    version,
    about = "dcos-rs: a DC/OS-compatible datacenter operating system"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The DC/OS 1.11 port contract.
    Ports(ports::PortsArgs),
    /// Check that every port a node role needs is free.
    Preflight(preflight::PreflightArgs),
    /// Run or list a node's units.
    Unit(unit::UnitArgs),
    /// Run a node (the unit supervisor) or show its status.
    Node(node::NodeArgs),
    /// Write systemd units and the port-reservation sysctl for a role.
    Install(install::InstallArgs),
    /// A local cluster on this machine.
    Cluster(cluster::ClusterArgs),
    /// Marathon apps (a client of Marathon's REST API).
    Marathon(marathon::MarathonArgs),
    /// Container images: push to a registry, list an agent's store.
    Image(image::ImageArgs),
    /// DC/OS Jobs (a client of Metronome's REST API).
    Job(job::JobArgs),
    /// Packages: search, install, list, uninstall, and their repositories (a client of
    /// Cosmos' package API).
    Package(package::PackageArgs),
    /// Log in to a cluster, log out, and who you are.
    Auth(iam::AuthArgs),
    /// Users who log in with a password.
    User(iam::UserArgs),
    /// Service accounts, which log in with a key.
    ServiceAccount(iam::ServiceAccountArgs),
    /// Who may take which action on which resource.
    Acl(iam::AclArgs),
    /// PID 1 of a task's container, started by the agent (not for people).
    #[command(hide = true)]
    ContainerInit {
        /// The container's spec, written by the agent.
        spec: std::path::PathBuf,
        /// Instead of starting the container, run ARGV in the running one whose init has this
        /// pid (a task's command health check).
        #[arg(long, requires = "parent")]
        exec_in: Option<u32>,
        /// The pid of that init's parent (its `unshare`), to tell it from a reused pid.
        #[arg(long)]
        parent: Option<u32>,
        /// The command to run with --exec-in.
        #[arg(last = true)]
        argv: Vec<String>,
    },
}

/// Raises the open-file limit to its hard limit, as DC/OS' units do (`LimitNOFILE`): a
/// master holds a connection per agent and framework, and a node's units inherit this.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// Parses arguments, runs the command, renders errors, picks the exit code.
pub fn main() -> ExitCode {
    raise_fd_limit();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ports(args) => ports::run(args),
        Command::Preflight(args) => preflight::run(args),
        Command::Unit(args) => unit::run(args),
        Command::Node(args) => node::run(args),
        Command::Install(args) => install::run(args),
        Command::Cluster(args) => cluster::run(args),
        Command::Marathon(args) => marathon::run(args),
        Command::Image(args) => image::run(args),
        Command::Job(args) => job::run(args),
        Command::Package(args) => package::run(args),
        Command::Auth(args) => iam::run_auth(args),
        Command::User(args) => iam::run_user(args),
        Command::ServiceAccount(args) => iam::run_service_account(args),
        Command::Acl(args) => iam::run_acl(args),
        Command::ContainerInit {
            spec,
            exec_in,
            parent,
            argv,
        } => match (exec_in, parent) {
            (Some(init), Some(parent)) => {
                dcos_mesos::agent::container::init::exec(&spec, init, parent, &argv)
            }
            _ => dcos_mesos::agent::container::init::run(&spec),
        }
        .map(|code| ExitCode::from(u8::try_from(code).unwrap_or(255))),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            if let Some(user) = err.downcast_ref::<UserError>() {
                if let Some(hint) = &user.hint {
                    eprintln!("hint: {hint}");
                }
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

/// Parses a node role as the CLI spells it.
pub(crate) fn parse_role(text: &str) -> Result<dcos_ports::NodeRole, String> {
    dcos_ports::NodeRole::parse(text).ok_or_else(|| {
        format!("unknown role {text:?}; expected master, agent, agent_public or master+agent")
    })
}

/// `--output table|json`.
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub(crate) enum Output {
    #[default]
    Table,
    Json,
}

/// Logs to stderr, one line per event; `RUST_LOG` filters (default `info`).
pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// A cancellation token cancelled by SIGTERM or SIGINT.
pub(crate) fn shutdown_on_signals() -> std::io::Result<tokio_util::sync::CancellationToken> {
    use tokio::signal::unix::{signal, SignalKind};
    let token = tokio_util::sync::CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let t = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("signal received; shutting down");
        t.cancel();
    });
    Ok(token)
}

/// Loads a node config, as a user error when it is wrong.
pub(crate) fn load_config(path: &std::path::Path) -> anyhow::Result<dcos_node::config::NodeConfig> {
    dcos_node::config::NodeConfig::load(path).map_err(|e| {
        anyhow::Error::new(
            UserError::new(e.to_string()).hint("see README.md for the node.yaml keys"),
        )
    })
}
