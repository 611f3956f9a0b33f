//! The `dcos-bench` binary: the benchmark suite and the agent simulator.
//!
//! Neither is part of the product binary `dcos`: this one carries the test harness the
//! scenarios need (dcos-testkit). It runs the `dcos` beside it (`cargo build` puts both in
//! `target/<profile>/`) for the scenarios' nodes, and itself (`simulate-agents`) for their
//! simulated agents.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::{Parser, Subcommand};
use dcos_bench::{simulate, SCENARIOS};
use dcos_mesos::resources::Resources;
use dcos_ports::{NodeRole, RangeSet};

/// Where results go unless `--dir` or `--out` says otherwise, relative to the working
/// directory (the repository's root when run from a checkout).
const RESULTS_DIR: &str = "bench/results";
const RESULTS_MD: &str = "bench/RESULTS.md";

#[derive(Parser)]
#[command(
    name = "dcos-bench",
    version,
    about = "dcos-rs' benchmark suite and agent simulator (not part of the product `dcos`)",
    after_help = "Scenarios: offers, launch, real-launch, containers, dns, router, failover, jobs, \
    packages, footprint: `dcos-bench <scenario> [--size full|tiny] [--out FILE] [--dir DIR] \
    [--key value]...`; `dcos-bench list` shows each scenario's options. Run as root. With \
    DCOS_BENCH_KEEP=1 set, the launch and footprint scenarios keep their master node's \
    directory (every unit's log) and print where it is."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every scenario and its options.
    List,
    /// Every scenario, then RESULTS.md regenerated beside the results directory.
    All {
        /// `full` (the sizes RESULTS.md reports) or `tiny` (a few seconds each).
        #[arg(long)]
        size: Option<String>,
        /// The results directory; RESULTS.md is written beside it.
        #[arg(long, default_value = RESULTS_DIR)]
        dir: PathBuf,
    },
    /// Only regenerate bench/RESULTS.md from bench/results/*.json.
    Report,
    /// Register N simulated agents with a master and run their tasks until SIGTERM.
    ///
    /// Each speaks the agent protocol a real agent speaks, with its own id, hostname
    /// (`<prefix>-<n>`), resources and the contract's task port ranges; its containerizer
    /// runs no process: a task goes TASK_RUNNING after --start-delay-ms, or TASK_FAILED
    /// when --fail-every says so.
    SimulateAgents(SimulateArgs),
    /// A scenario: `<scenario> [--size full|tiny] [--out FILE] [--dir DIR] [--key value]...`.
    #[command(external_subcommand)]
    Scenario(Vec<String>),
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// How many agents.
    #[arg(long)]
    count: usize,
    /// The leading master, `ip:port`.
    #[arg(long)]
    master: SocketAddr,
    /// CPUs per agent.
    #[arg(long, default_value_t = 4.0)]
    cpus: f64,
    /// Memory per agent, MB.
    #[arg(long, default_value_t = 8192.0)]
    mem: f64,
    /// Disk per agent, MB.
    #[arg(long, default_value_t = 8192.0)]
    disk: f64,
    /// Task port ranges in Mesos form (default: the contract's agent ranges).
    #[arg(long)]
    ports: Option<RangeSet>,
    /// Milliseconds from a launch to TASK_RUNNING.
    #[arg(long, default_value_t = 0)]
    start_delay_ms: u64,
    /// Every n-th launched task goes TASK_FAILED instead (0: none).
    #[arg(long, default_value_t = 0)]
    fail_every: u64,
    /// Agent hostnames are `<prefix>-<n>`.
    #[arg(long, default_value = "sim")]
    hostname_prefix: String,
}

/// A user error: the message says what is wrong; exit code 1.
#[derive(Debug)]
struct UserError {
    message: String,
    hint: Option<String>,
}

impl UserError {
    fn new(message: impl Into<String>) -> Self {
        UserError {
            message: message.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
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

fn main() -> ExitCode {
    raise_fd_limit();
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::List => {
            list();
            Ok(ExitCode::SUCCESS)
        }
        Command::All { size, dir } => run_all(size, &dir),
        Command::Report => write_report(Path::new(RESULTS_DIR), Path::new(RESULTS_MD)),
        Command::SimulateAgents(args) => simulate_agents(args),
        Command::Scenario(argv) => run_scenario(&argv),
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

/// Raises the open-file limit to its hard limit, as `dcos` does: an in-process master holds
/// a connection per agent and framework, and the simulator one per agent.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// The open-file limit now.
fn fd_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft)
}

/// Logs to stderr, one line per event; `RUST_LOG` filters (default `info`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn list() {
    for s in SCENARIOS {
        println!("{:<12} {}", s.name, s.about);
        for p in s.params {
            println!(
                "    --{:<14} {} (full: {}, tiny: {})",
                p.key, p.help, p.full, p.tiny
            );
        }
    }
}

fn write_report(dir: &Path, out: &Path) -> anyhow::Result<ExitCode> {
    fs_err::write(out, dcos_bench::report(dir))?;
    println!("wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// `all`: every scenario at `size` with its results in `dir`, then RESULTS.md beside `dir`.
fn run_all(size: Option<String>, dir: &Path) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    for s in SCENARIOS {
        let mut argv = Vec::new();
        if let Some(size) = &size {
            argv.extend(["--size".to_string(), size.clone()]);
        }
        let args = dcos_bench::Args::parse(s.params, &argv).map_err(UserError::new)?;
        eprintln!("== dcos-bench {} ==", s.name);
        rt.block_on(s.run(args, dir))
            .map_err(|e| e.context(format!("scenario {}", s.name)))?;
    }
    let md = dir.parent().unwrap_or(dir).join("RESULTS.md");
    write_report(dir, &md)
}

/// `<scenario> [options]`: runs it and prints its result document.
fn run_scenario(argv: &[String]) -> anyhow::Result<ExitCode> {
    let (name, options) = argv
        .split_first()
        .expect("clap gives the subcommand's name");
    let scenario = dcos_bench::scenario(name).ok_or_else(|| {
        UserError::new(format!("unknown scenario {name:?}"))
            .hint("`dcos-bench list` shows the scenarios and their options")
    })?;
    let args = dcos_bench::Args::parse(scenario.params, options).map_err(UserError::new)?;
    let doc = runtime()?.block_on(scenario.run(args, RESULTS_DIR.as_ref()))?;
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(ExitCode::SUCCESS)
}

/// A cancellation token cancelled by SIGTERM or SIGINT.
fn shutdown_on_signals() -> std::io::Result<tokio_util::sync::CancellationToken> {
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

/// `simulate-agents`: the agents until SIGTERM or SIGINT, then what their tasks did.
fn simulate_agents(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let SimulateArgs {
        count,
        master,
        cpus,
        mem,
        disk,
        ports,
        start_delay_ms,
        fail_every,
        hostname_prefix,
    } = args;
    for (name, v) in [("--cpus", cpus), ("--mem", mem), ("--disk", disk)] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(UserError::new(format!("{name} must be a non-negative number")).into());
        }
    }
    if count == 0 {
        return Err(UserError::new("--count must be at least 1").into());
    }
    let limit = fd_limit();
    // One connection per agent plus a few for updates; leave room for the process itself.
    if (count as u64) + 256 > limit {
        return Err(UserError::new(format!(
            "{count} agents need about {} open files; the limit here is {limit}",
            count + 256
        ))
        .hint("raise it with `ulimit -n`, or start fewer agents per process")
        .into());
    }
    let spec = simulate::Spec {
        master,
        resources: Resources {
            cpus,
            mem,
            disk,
            gpus: 0.0,
            ports: ports.unwrap_or_else(|| dcos_ports::task_ranges(NodeRole::Agent)),
        },
        start_delay: Duration::from_millis(start_delay_ms),
        hostname_prefix,
        fail_every,
    };
    runtime()?.block_on(async {
        let shutdown = shutdown_on_signals()?;
        let agents = tokio::select! {
            agents = simulate::start(spec, count) => agents?,
            _ = shutdown.cancelled() => return Ok(ExitCode::SUCCESS),
        };
        println!("{count} simulated agents registered with {master}");
        shutdown.cancelled().await;
        let c = agents.counts();
        println!(
            "tasks launched {}, running {}, failed {}, killed {}",
            c.launched.load(Ordering::Relaxed),
            c.running.load(Ordering::Relaxed),
            c.failed.load(Ordering::Relaxed),
            c.killed.load(Ordering::Relaxed)
        );
        agents.stop().await;
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_scenario_takes_its_options_as_given() {
        let cli =
            Cli::try_parse_from(["dcos-bench", "offers", "--size", "tiny", "--dir", "d"]).unwrap();
        let Command::Scenario(argv) = cli.command else {
            panic!("not a scenario");
        };
        assert_eq!(argv, ["offers", "--size", "tiny", "--dir", "d"]);
    }

    #[test]
    fn simulate_agents_takes_the_simulators_flags() {
        let cli = Cli::try_parse_from([
            "dcos-bench",
            "simulate-agents",
            "--count",
            "3",
            "--master",
            "127.0.0.1:5050",
            "--start-delay-ms",
            "5",
            "--fail-every",
            "2",
        ])
        .unwrap();
        let Command::SimulateAgents(args) = cli.command else {
            panic!("not simulate-agents");
        };
        assert_eq!(
            (args.count, args.start_delay_ms, args.fail_every),
            (3, 5, 2)
        );
        assert_eq!(args.master, "127.0.0.1:5050".parse().unwrap());
    }
}
