//! `dcos agent simulate`: many simulated agents in one process, for scale tests.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::{Args, Subcommand};
use dcos_mesos::resources::Resources;
use dcos_mesos::simulate;
use dcos_ports::{NodeRole, RangeSet};

use crate::{init_tracing, shutdown_on_signals, UserError};

#[derive(Args)]
pub(crate) struct AgentArgs {
    #[command(subcommand)]
    command: AgentCommand,
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Register N simulated agents with a master and run their tasks until SIGTERM.
    ///
    /// Each speaks the agent protocol a real agent speaks, with its own id, hostname
    /// (`<prefix>-<n>`), resources and the contract's task port ranges; its containerizer
    /// runs no process: a task goes TASK_RUNNING after --start-delay-ms, or TASK_FAILED
    /// when --fail-every says so.
    Simulate {
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
    },
}

pub(crate) fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let AgentCommand::Simulate {
        count,
        master,
        cpus,
        mem,
        disk,
        ports,
        start_delay_ms,
        fail_every,
        hostname_prefix,
    } = args.command;
    init_tracing();
    for (name, v) in [("--cpus", cpus), ("--mem", mem), ("--disk", disk)] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(UserError::new(format!("{name} must be a non-negative number")).into());
        }
    }
    if count == 0 {
        return Err(UserError::new("--count must be at least 1").into());
    }
    let limit = crate::fd_limit();
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
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
