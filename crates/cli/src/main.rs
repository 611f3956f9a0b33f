//! The `dcos` binary.
use std::process::ExitCode;

fn main() -> ExitCode {
    dcos_cli::main()
}
