//! `dcos install`: preflight, then systemd units and the sysctl reservation for a role.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use dcos_node::install;
use dcos_ports::{preflight, rows_for, NodeRole};

use crate::{load_config, parse_role};

#[derive(Args)]
pub(crate) struct InstallArgs {
    #[arg(long, value_parser = parse_role)]
    role: NodeRole,
    #[arg(long)]
    config: PathBuf,
    /// Print what would be written; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Install under this root instead of / (for staging and tests).
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// The binary the units run (default: this one).
    #[arg(long)]
    binary: Option<PathBuf>,
}

pub(crate) fn run(args: InstallArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    let ip = config.node_ip()?;
    let report = preflight::check_rows(args.role, ip, rows_for(args.role).filter(|r| r.served()));
    let binary = match args.binary {
        Some(b) => b,
        None => std::env::current_exe()?,
    };
    let config_path = std::path::absolute(&args.config)?;
    let plan = install::plan(args.role, &args.root, &config_path, &binary);
    println!("units of a {} node:", args.role);
    for (unit, built) in &plan.units {
        let what = if *built {
            "write"
        } else {
            "skip (component not built yet)"
        };
        println!("  {} ({what})", install::unit_file_name(unit));
    }
    if !report.ok() {
        crate::preflight::print_report(&report);
        if !args.dry_run {
            return Err(crate::preflight::failure(&report).into());
        }
        println!("(dry run: preflight failed as shown; a real install would stop here)");
    }
    for f in &plan.files {
        if args.dry_run {
            println!("--- would write {} ---\n{}", f.path.display(), f.text);
        } else {
            println!("wrote {}", f.path.display());
        }
    }
    if !args.dry_run {
        install::write(&plan)?;
        println!("next: sysctl --system && systemctl daemon-reload && systemctl enable --now <the units above>");
    }
    Ok(ExitCode::SUCCESS)
}
