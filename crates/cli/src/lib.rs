//! The `dcos` command line: argument parsing and output. Logic lives in the component crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod ports;
mod preflight;

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
}

/// Parses arguments, runs the command, renders errors, picks the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ports(args) => ports::run(args),
        Command::Preflight(args) => preflight::run(args),
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
