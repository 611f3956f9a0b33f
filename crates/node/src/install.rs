//! `dcos install`: systemd unit files for a role's units and the sysctl file that reserves
//! the role's contract ports from the kernel's ephemeral range.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use dcos_ports::{component_ports, NodeRole, Protocol};

use crate::units::role_units;

/// One file the installer writes (or would write).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedFile {
    /// The path under the install root.
    pub path: PathBuf,
    /// The file's text.
    pub text: String,
}

/// What `dcos install` does for a role.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Every unit of the role the page lists, with whether it is written.
    pub units: Vec<(&'static str, bool)>,
    /// The files to write.
    pub files: Vec<PlannedFile>,
}

/// The systemd file name of a unit (`dcos-adminrouter-agent` has no suffix on the page).
pub fn unit_file_name(unit: &str) -> String {
    if unit.ends_with(".service") {
        unit.to_string()
    } else {
        format!("{unit}.service")
    }
}

/// Plans the install of a `role` node whose config lives at `config` and whose binary at `binary`.
pub fn plan(role: NodeRole, root: &Path, config: &Path, binary: &Path) -> Plan {
    let units = role_units(role);
    let mut files = Vec::new();
    let mut previous: Option<String> = None;
    for unit in units.iter().filter(|u| u.built) {
        let file = unit_file_name(unit.name);
        let mut text = String::new();
        let ports: Vec<String> = unit
            .rows
            .iter()
            .map(|r| match r.port {
                dcos_ports::PortSpec::Single(p) => format!("{p}/{}", r.protocol.as_str()),
                _ => "a local socket".into(),
            })
            .collect();
        let _ = writeln!(
            text,
            "# Written by dcos install for a {role} node. Ports: {}.",
            ports.join(", ")
        );
        let _ = writeln!(text, "[Unit]");
        let _ = writeln!(
            text,
            "Description={}: dcos-rs {}",
            unit.rows.first().map_or("DC/OS", |r| r.component),
            unit.name
        );
        let _ = writeln!(text, "Wants=network-online.target");
        match &previous {
            Some(prev) => {
                let _ = writeln!(text, "After=network-online.target {prev}");
            }
            None => {
                let _ = writeln!(text, "After=network-online.target");
            }
        }
        let _ = writeln!(text, "\n[Service]\nType=simple");
        let _ = writeln!(
            text,
            "ExecStart={} unit run {} --role {} --config {}",
            binary.display(),
            unit.name,
            role,
            config.display()
        );
        let _ = writeln!(text, "Restart=always\nRestartSec=5\nLimitNOFILE=1048576");
        // The agent's tasks live in their own sessions: restarting the agent must not kill
        // them, so systemd stops only the agent process (as DC/OS configures Mesos agents).
        if unit.name == "dcos-mesos-slave.service" {
            let _ = writeln!(text, "KillMode=process");
        }
        let _ = writeln!(text, "\n[Install]\nWantedBy=multi-user.target");
        files.push(PlannedFile {
            path: root.join("etc/systemd/system").join(&file),
            text,
        });
        previous = Some(file);
    }
    let reserved =
        component_ports(role, Protocol::Tcp).union(&component_ports(role, Protocol::Udp));
    files.push(PlannedFile {
        path: root.join("etc/sysctl.d/90-dcos-rs-ports.conf"),
        text: format!(
            "# The contract ports of a {role} node, kept out of the ephemeral range so no\n# outgoing connection can take one before its component binds it.\nnet.ipv4.ip_local_reserved_ports = {}\n",
            reserved.to_sysctl()
        ),
    });
    Plan {
        units: units.iter().map(|u| (u.name, u.built)).collect(),
        files,
    }
}

/// Writes the plan's files.
pub fn write(plan: &Plan) -> std::io::Result<()> {
    for f in &plan.files {
        if let Some(dir) = f.path.parent() {
            fs_err::create_dir_all(dir)?;
        }
        fs_err::write(&f.path, &f.text)?;
    }
    Ok(())
}
