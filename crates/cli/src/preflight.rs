//! `dcos preflight`: are the role's ports free?

use std::net::IpAddr;
use std::process::ExitCode;

use clap::Args;
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use dcos_ports::preflight::{self, PortState, Report};
use dcos_ports::{rows_for, NodeRole};

use crate::{parse_role, Output, UserError};

#[derive(Args)]
pub(crate) struct PreflightArgs {
    /// master, agent, agent_public or master+agent.
    #[arg(long, value_parser = parse_role)]
    role: NodeRole,
    /// The node's cluster IP (default: the address of the default route's interface, else 127.0.0.1).
    #[arg(long)]
    ip: Option<IpAddr>,
    /// Also check the enterprise-only rows.
    #[arg(long)]
    enterprise: bool,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub(crate) fn run(args: PreflightArgs) -> anyhow::Result<ExitCode> {
    let ip = args.ip.unwrap_or_else(dcos_ports::preflight::detect_ip);
    let rows = rows_for(args.role).filter(|r| args.enterprise || r.served());
    let report = preflight::check_rows(args.role, ip, rows);
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Table => print_report(&report),
    }
    if report.ok() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(anyhow::Error::new(failure(&report)))
    }
}

/// The error a failed preflight becomes, with what to do.
pub(crate) fn failure(report: &Report) -> UserError {
    let taken = report.problems().count();
    let needs_root = report
        .problems()
        .any(|c| matches!(c.state, PortState::NeedsRoot));
    let mut hint =
        String::from("free the ports above (stop the processes named) or pick another node");
    if needs_root {
        hint.push_str("; ports below 1024 need root: run as root");
    }
    UserError::new(format!(
        "preflight failed for a {} node on {}: {taken} port(s) unavailable",
        report.role, report.ip
    ))
    .hint(hint)
}

pub(crate) fn print_report(report: &Report) {
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY).set_header(vec![
        "PORT", "PROTO", "ADDRESS", "UNITS", "STATE", "HELD BY",
    ]);
    for c in &report.checks {
        let (state, held) = match &c.state {
            PortState::Free => ("free".to_string(), String::new()),
            PortState::Taken { holders } => (
                "TAKEN".to_string(),
                if holders.is_empty() {
                    "unknown (another namespace or user)".to_string()
                } else {
                    holders
                        .iter()
                        .map(|h| format!("pid {} ({})", h.pid, h.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            ),
            PortState::NeedsRoot => ("NEEDS ROOT".to_string(), String::new()),
            PortState::Error { message } => (format!("ERROR: {message}"), String::new()),
        };
        table.add_row(vec![
            c.port.to_string(),
            c.protocol.as_str().to_string(),
            c.address.to_string(),
            c.units.join(", "),
            state,
            held,
        ]);
    }
    println!("{table}");
    for port in &report.ephemeral_warnings {
        println!(
            "warning: port {port} lies in the kernel's ephemeral range and is not reserved; an outgoing connection could take it (reserve it: `dcos ports sysctl --role {}`)",
            report.role
        );
    }
}
