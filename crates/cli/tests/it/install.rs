//! `dcos install`: the role's units as the contract lists them, the unit files of the built
//! ones, and the sysctl that reserves the role's ports.

use std::collections::BTreeSet;
use std::path::Path;

use dcos_node::install::unit_file_name;
use dcos_node::units::role_units;
use dcos_ports::NodeRole;
use dcos_testkit::Netns;

use crate::DCOS;

/// The OSS units of each role, from the DC/OS 1.11 ports page, the Enterprise units dcos-rs
/// serves (the IAM and the CA; the other Enterprise rows left out), and the cluster-local
/// image registry this project adds.
const MASTER_UNITS: &[&str] = &[
    "dcos-pkgpanda-api.service",
    "dcos-exhibitor.service",
    "dcos-bouncer.service",
    "dcos-ca.service",
    "dcos-mesos-master.service",
    "dcos-mesos-dns.service",
    "dcos-registry.service",
    "dcos-marathon.service",
    "dcos-metronome.service",
    "dcos-cosmos.service",
    "dcos-history-service.service",
    "dcos-net.service",
    "dcos-diagnostics.service",
    "dcos-log-master.service",
    "dcos-rexray.service",
    "dcos-metrics-master.service",
    "dcos-adminrouter.service",
];
const AGENT_UNITS: &[&str] = &[
    "dcos-net.service",
    "dcos-mesos-slave.service",
    "dcos-diagnostics.service",
    "dcos-log-agent.service",
    "dcos-rexray.service",
    "dcos-metrics-agent.service",
    "dcos-adminrouter-agent.service",
];
const ROLES: [(&str, &[&str]); 3] = [
    ("master", MASTER_UNITS),
    ("agent", AGENT_UNITS),
    ("agent_public", AGENT_UNITS),
];

fn write_config(dir: &Path) -> String {
    let config = dir.join("node.yaml");
    std::fs::write(
        &config,
        format!("ip: 127.0.0.1\nwork_dir: {}\n", dir.join("work").display()),
    )
    .unwrap();
    config.to_str().unwrap().to_string()
}

/// Runs `dcos install` inside the namespace, which must succeed; returns its stdout.
fn install(ns: &Netns, role: &str, config: &str, root: &Path, dry_run: bool) -> String {
    let mut argv = vec![
        DCOS,
        "install",
        "--role",
        role,
        "--config",
        config,
        "--root",
        root.to_str().unwrap(),
    ];
    if dry_run {
        argv.push("--dry-run");
    }
    String::from_utf8_lossy(&ns.exec(&argv).stdout).into_owned()
}

/// The `  <unit file> (write|skip ...)` lines under `units of a <role> node:`.
fn listed(stdout: &str) -> Vec<(String, bool)> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("units of a "))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            let (name, what) = l.trim().split_once(' ').unwrap();
            (name.to_string(), what == "(write)")
        })
        .collect()
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    files
}

fn built_unit_files(role: &str) -> BTreeSet<String> {
    role_units(NodeRole::parse(role).unwrap())
        .iter()
        .filter(|u| u.built)
        .map(|u| unit_file_name(u.name))
        .collect()
}

#[test]
fn dry_run_lists_exactly_the_roles_oss_units_and_writes_nothing() {
    let ns = Netns::new("insd");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    for (role, expected) in ROLES {
        let root = tempfile::tempdir().unwrap();
        let stdout = install(&ns, role, &config, root.path(), true);
        let units = listed(&stdout);
        let names: BTreeSet<_> = units.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            expected.iter().copied().collect(),
            "{role}:\n{stdout}"
        );
        assert_eq!(names.len(), units.len(), "{role}: a unit listed twice");
        // `(write)` marks exactly the built units.
        let written: BTreeSet<_> = units
            .iter()
            .filter(|(_, w)| *w)
            .map(|(n, _)| n.clone())
            .collect();
        assert_eq!(written, built_unit_files(role), "{role}");
        assert!(
            stdout.contains("would write") && stdout.contains("90-dcos-rs-ports.conf"),
            "{stdout}"
        );
        assert!(
            files_under(root.path()).is_empty(),
            "{role}: a dry run wrote files"
        );
    }
}

#[test]
fn install_writes_the_built_units_and_the_port_reservation() {
    // A fresh namespace: every port of every role is free, so preflight passes.
    let ns = Netns::new("ins");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    for (role, _) in ROLES {
        let root = tempfile::tempdir().unwrap();
        install(&ns, role, &config, root.path(), false);

        let units = built_unit_files(role);
        assert!(!units.is_empty(), "{role}");
        let mut expected: BTreeSet<String> = units
            .iter()
            .map(|u| format!("etc/systemd/system/{u}"))
            .collect();
        expected.insert("etc/sysctl.d/90-dcos-rs-ports.conf".into());
        assert_eq!(files_under(root.path()), expected, "{role}");
        for u in role_units(NodeRole::parse(role).unwrap())
            .iter()
            .filter(|u| u.built)
        {
            let path = root
                .path()
                .join("etc/systemd/system")
                .join(unit_file_name(u.name));
            let text = std::fs::read_to_string(path).unwrap();
            let exec = format!(
                "ExecStart={DCOS} unit run {} --role {role} --config {config}",
                u.name
            );
            assert!(
                text.lines().any(|l| l == exec),
                "{role} {}:\n{text}",
                u.name
            );
        }

        let sysctl =
            std::fs::read_to_string(root.path().join("etc/sysctl.d/90-dcos-rs-ports.conf"))
                .unwrap();
        let line = sysctl
            .lines()
            .find(|l| l.starts_with("net.ipv4.ip_local_reserved_ports"))
            .unwrap_or_else(|| panic!("{sysctl}"));
        let out = crate::dcos(&["ports", "sysctl", "--role", role]);
        assert_eq!(line, String::from_utf8_lossy(&out.stdout).trim(), "{role}");
        if role != "master" {
            assert_eq!(
                line,
                "net.ipv4.ip_local_reserved_ports = 53,5051,8124,61001-61003,61091,61420,62080,62501"
            );
        }
    }
}
