//! `dcos ports`: print the contract, the agent's task ranges, the sysctl line and firewall rules.

use std::net::Ipv4Addr;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use dcos_ports::firewall::{self, Format};
use dcos_ports::{
    component_ports, rows_for, task_ranges, NodeRole, PortRowJson, PortSpec, Protocol, CONTRACT,
};

use crate::{parse_role, Output};

#[derive(Args)]
pub(crate) struct PortsArgs {
    #[command(subcommand)]
    command: PortsCommand,
}

#[derive(Subcommand)]
enum PortsCommand {
    /// Every row of the contract, or a role's rows.
    List {
        /// master, agent, agent_public or master+agent.
        #[arg(long, value_parser = parse_role)]
        role: Option<NodeRole>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// The agent's advertised task port ranges, in Mesos resource form.
    Ranges {
        #[arg(long, value_parser = parse_role, default_value = "agent")]
        role: NodeRole,
        /// Another role on the same node (`master`): its component ports are left out.
        #[arg(long, value_parser = parse_role)]
        colocated: Option<NodeRole>,
    },
    /// The sysctl line that reserves a role's contract ports from the ephemeral range.
    Sysctl {
        #[arg(long, value_parser = parse_role)]
        role: NodeRole,
    },
    /// Firewall rules allowing exactly the contract's flows to a node of a role.
    Firewall {
        #[arg(long, value_parser = parse_role)]
        role: NodeRole,
        /// The masters' IPs, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        masters: Vec<Ipv4Addr>,
        /// The agents' IPs, comma separated.
        #[arg(long, value_delimiter = ',')]
        agents: Vec<Ipv4Addr>,
        #[arg(long, value_enum, default_value_t = FirewallFormat::Nftables)]
        format: FirewallFormat,
        /// Include the enterprise-only rows.
        #[arg(long)]
        enterprise: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum FirewallFormat {
    Nftables,
    Iptables,
}

pub(crate) fn run(args: PortsArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        PortsCommand::List { role, output } => {
            let rows: Vec<_> = match role {
                Some(role) => rows_for(role).collect(),
                None => CONTRACT.iter().collect(),
            };
            match output {
                Output::Json => {
                    let json: Vec<PortRowJson> = rows.into_iter().map(PortRowJson::from).collect();
                    println!("{}", serde_json::to_string_pretty(&json)?);
                }
                Output::Table => {
                    let mut table = Table::new();
                    table.load_preset(UTF8_BORDERS_ONLY).set_header(vec![
                        "PORT",
                        "PROTO",
                        "ROLE",
                        "COMPONENT",
                        "UNITS",
                        "SOURCE",
                        "DESTINATION",
                        "BIND",
                        "NOTE",
                    ]);
                    for r in rows {
                        let port = match r.port {
                            PortSpec::Single(p) => p.to_string(),
                            PortSpec::Range(b, e) => format!("{b}-{e}"),
                            PortSpec::Ephemeral => "ephemeral".into(),
                        };
                        let note = match (r.enterprise, r.in_spec) {
                            (true, _) => "enterprise",
                            (_, false) => "added (not on the page)",
                            _ => "",
                        };
                        table.add_row(vec![
                            port,
                            r.protocol.as_str().into(),
                            format!("{:?}", r.section).to_lowercase(),
                            r.component.into(),
                            r.units.join(", "),
                            r.source.into(),
                            r.destination.into(),
                            format!("{:?}", r.bind()).to_lowercase(),
                            note.into(),
                        ]);
                    }
                    println!("{table}");
                }
            }
        }
        PortsCommand::Ranges { role, colocated } => {
            let node = match (role, colocated) {
                (r, Some(c)) if r.is_agent() && c.is_master() => NodeRole::MasterAgent,
                (r, _) => r,
            };
            println!("{}", task_ranges(node));
        }
        PortsCommand::Sysctl { role } => {
            println!(
                "net.ipv4.ip_local_reserved_ports = {}",
                sysctl_ports(role).to_sysctl()
            );
        }
        PortsCommand::Firewall {
            role,
            masters,
            agents,
            format,
            enterprise,
        } => {
            let format = match format {
                FirewallFormat::Nftables => Format::Nftables,
                FirewallFormat::Iptables => Format::Iptables,
            };
            print!(
                "{}",
                firewall::render(format, role, &masters, &agents, enterprise)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Every component port of a role, TCP and UDP: what the installer reserves.
pub(crate) fn sysctl_ports(role: NodeRole) -> dcos_ports::RangeSet {
    component_ports(role, Protocol::Tcp).union(&component_ports(role, Protocol::Udp))
}
