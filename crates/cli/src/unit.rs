//! `dcos unit run|list`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use dcos_node::units::{role_units, run_unit, UnitError};
use dcos_ports::{NodeRole, PortSpec};

use crate::{init_tracing, load_config, parse_role, shutdown_on_signals, UserError};

#[derive(Args)]
pub(crate) struct UnitArgs {
    #[command(subcommand)]
    command: UnitCommand,
}

#[derive(Subcommand)]
enum UnitCommand {
    /// Run one unit in the foreground until SIGTERM.
    Run {
        /// The systemd unit name, as the port contract spells it.
        unit: String,
        #[arg(long, value_parser = parse_role, default_value = "master+agent")]
        role: NodeRole,
        #[arg(long)]
        config: PathBuf,
    },
    /// The units of a role in start order, with their contract ports.
    List {
        #[arg(long, value_parser = parse_role)]
        role: NodeRole,
    },
}

pub(crate) fn run(args: UnitArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        UnitCommand::List { role } => {
            let mut table = Table::new();
            table
                .load_preset(UTF8_BORDERS_ONLY)
                .set_header(vec!["UNIT", "PORTS", "STATUS"]);
            for u in role_units(role) {
                let ports: Vec<String> = u
                    .rows
                    .iter()
                    .map(|r| match r.port {
                        PortSpec::Single(p) => format!("{p}/{}", r.protocol.as_str()),
                        _ => "local socket".into(),
                    })
                    .collect();
                let status = if u.built {
                    "built"
                } else {
                    "not built yet: left out of the node"
                };
                table.add_row(vec![
                    u.name.to_string(),
                    ports.join(", "),
                    status.to_string(),
                ]);
            }
            println!("{table}");
            Ok(ExitCode::SUCCESS)
        }
        UnitCommand::Run { unit, role, config } => {
            init_tracing();
            let config = load_config(&config)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let shutdown = shutdown_on_signals()?;
                match run_unit(&unit, role, &config, shutdown).await {
                    Ok(()) => Ok(ExitCode::SUCCESS),
                    Err(e @ (UnitError::Unknown { .. } | UnitError::NotBuilt { .. })) => {
                        Err(UserError::new(e.to_string()).into())
                    }
                    Err(e) => Err(e.into()),
                }
            })
        }
    }
}
