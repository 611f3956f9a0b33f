//! Integration tests of the `dcos` binary's client commands.

mod ports;
mod preflight;

use std::process::{Command, Output};

/// Runs the real binary.
pub fn dcos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dcos"))
        .args(args)
        .output()
        .expect("run dcos")
}

/// A network namespace for one test, removed on drop (also when the test panics).
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("dcostest-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip");
        assert!(ok.success(), "ip netns add {name} (tests run as root)");
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    pub fn exec(&self, argv: &[&str]) -> Output {
        let out = self
            .command(argv[0])
            .args(&argv[1..])
            .output()
            .expect("ip netns exec");
        assert!(
            out.status.success(),
            "{argv:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
