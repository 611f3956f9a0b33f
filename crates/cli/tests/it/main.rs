//! Integration tests of the real `dcos` binary: client commands, `dcos node run`,
//! `dcos install`, and whole clusters in network namespaces (through `dcos-testkit`).

mod cluster;
mod config;
mod dns;
mod install;
mod node_run;
mod ports;
mod preflight;

use std::process::{Command, Output};

/// The binary under test.
pub const DCOS: &str = env!("CARGO_BIN_EXE_dcos");

/// Runs the real binary.
pub fn dcos(args: &[&str]) -> Output {
    Command::new(DCOS).args(args).output().expect("run dcos")
}
