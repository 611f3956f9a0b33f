//! `dcos node run|status|health|log`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use dcos_node::supervisor::{self, Options};
use dcos_ports::NodeRole;

use crate::{init_tracing, load_config, parse_role, shutdown_on_signals, Output};

#[derive(Args)]
pub(crate) struct NodeArgs {
    #[command(subcommand)]
    command: NodeCommand,
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Run a node: preflight, then start, watch and restart the role's units.
    Run {
        #[arg(long, value_parser = parse_role)]
        role: NodeRole,
        #[arg(long)]
        config: PathBuf,
    },
    /// A node's units, their state, pid, restarts and ports (from its pkgpanda API).
    Status {
        /// The node's config (its work dir holds the status).
        #[arg(long)]
        config: PathBuf,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Every unit of every node with its health and, when unhealthy, why (dcos-diagnostics
    /// through Admin Router); exits 1 when one is unhealthy.
    Health(crate::node_health::HealthArgs),
    /// Print a node's unit logs, the leading master's or an agent's (through Admin Router's
    /// dcos-log API).
    Log(crate::node_log::LogArgs),
}

pub(crate) fn run(args: NodeArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        NodeCommand::Health(args) => crate::node_health::run(args),
        NodeCommand::Log(args) => crate::node_log::run(args),
        NodeCommand::Run { role, config } => {
            init_tracing();
            let loaded = load_config(&config)?;
            let binary = std::env::current_exe()?;
            // One thread: the kernel's parent-death signal for the units is tied to the
            // thread that spawned them, so they must all come from a thread that lives as
            // long as the supervisor.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let shutdown = shutdown_on_signals()?;
                let opts = Options {
                    role,
                    config_path: std::path::absolute(&config)?,
                    config: loaded,
                    binary,
                };
                match supervisor::run(opts, shutdown).await {
                    Ok(()) => Ok(ExitCode::SUCCESS),
                    Err(supervisor::Error::Preflight(report)) => {
                        crate::preflight::print_report(&report);
                        Err(crate::preflight::failure(&report).into())
                    }
                    Err(e) => Err(e.into()),
                }
            })
        }
        NodeCommand::Status { config, output } => {
            let config = load_config(&config)?;
            let run_dir = dcos_node::units::run_dir(&config);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            // Masters serve the status on the pkgpanda socket; the page gives agents no
            // pkgpanda unit, so there the supervisor's status file is read directly.
            let status = match rt.block_on(dcos_node::pkgpanda::fetch_status(&run_dir)) {
                Ok(st) => st,
                Err(api_err) => dcos_node::status::read(&run_dir).map_err(|e| {
                    anyhow::anyhow!("node status unavailable ({api_err}; status file: {e}); is `dcos node run` running for this config?")
                })?,
            };
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&status)?),
                Output::Table => {
                    println!(
                        "{} node {} (supervisor pid {})",
                        status.role, status.ip, status.supervisor_pid
                    );
                    let mut table = Table::new();
                    table.load_preset(UTF8_BORDERS_ONLY).set_header(vec![
                        "UNIT",
                        "STATE",
                        "PID",
                        "RESTARTS",
                        "PORTS",
                        "LAST EXIT",
                    ]);
                    for u in &status.units {
                        table.add_row(vec![
                            u.name.clone(),
                            serde_json::to_value(u.state)?
                                .as_str()
                                .unwrap_or_default()
                                .to_string(),
                            u.pid.map(|p| p.to_string()).unwrap_or_default(),
                            u.restarts.to_string(),
                            u.ports.join(", "),
                            u.last_exit.clone().unwrap_or_default(),
                        ]);
                    }
                    println!("{table}");
                }
            }
            Ok(if status.healthy() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            })
        }
    }
}
