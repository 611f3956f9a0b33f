//! Integration tests of the real `dcos` binary: client commands, `dcos node run`,
//! `dcos install`, and whole clusters in network namespaces (through `dcos-testkit`).

mod adminrouter;
mod cluster;
mod config;
mod diagnostics;
mod dns;
mod ha;
mod iam;
mod install;
mod jobs_ha;
mod logs;
mod metrics;
mod node_run;
mod packages;
mod ports;
mod preflight;
mod registry;
mod webui;

use std::process::{Command, Output};

/// The binary under test.
pub const DCOS: &str = env!("CARGO_BIN_EXE_dcos");

/// Where install-deps puts the DC/OS CLI 0.6.1.
pub const DCOS_CLI: &str = "/opt/dcoscli-0.6.1/bin/dcos";

/// The bootstrap superuser's password of a testkit cluster.
pub fn superuser_password(cluster: &dcos_testkit::Cluster) -> String {
    dcos_node::cluster::superuser(cluster.record())
        .expect("superuser credentials")
        .password
}

/// The real DC/OS CLI 0.6.1, with a home of its own (no configuration of the machine's).
pub struct DcosCli {
    home: tempfile::TempDir,
}

impl DcosCli {
    /// The CLI, with an empty configuration.
    pub fn fresh() -> DcosCli {
        assert!(
            std::path::Path::new(DCOS_CLI).is_file(),
            "the DC/OS CLI 0.6.1 is missing: scripts/install-dcoscli installs it"
        );
        DcosCli {
            home: tempfile::tempdir().expect("a temporary home"),
        }
    }

    /// Runs it: whether it succeeded, and its stdout then its stderr.
    pub fn run(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(DCOS_CLI)
            .args(args)
            .env("DCOS_DIR", self.home.path())
            .env("HOME", self.home.path())
            .env_remove("DCOS_URL")
            .env_remove("DCOS_ACS_TOKEN")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run the DC/OS CLI");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// `dcos cluster setup` of the cluster at Admin Router `ar`, as the bootstrap superuser.
    pub fn setup(&self, cluster: &dcos_testkit::Cluster, ar: &str) -> (bool, String) {
        let password = superuser_password(cluster);
        self.run(&[
            "cluster",
            "setup",
            ar,
            "--username",
            "bootstrapuser",
            "--password",
            &password,
            "--no-check",
        ])
    }
}

/// A cluster of one master and one private agent, running the binary under test.
pub fn master_and_agent() -> dcos_testkit::Cluster {
    dcos_testkit::Cluster::builder()
        .masters(1)
        .agents(1)
        .public_agents(0)
        .binary(DCOS)
        .start()
        .expect("start the cluster")
}

/// Runs the real binary.
pub fn dcos(args: &[&str]) -> Output {
    Command::new(DCOS).args(args).output().expect("run dcos")
}

/// `curl` run inside a cluster node: the status code and the body as JSON (null if it is
/// not JSON).
pub fn curl(
    cluster: &dcos_testkit::Cluster,
    node: &dcos_testkit::Node,
    args: &[&str],
) -> (u16, serde_json::Value) {
    let (code, text) = curl_text(cluster, node, args);
    (
        code,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// `curl` run inside a cluster node: the status code and the body.
pub fn curl_text(
    cluster: &dcos_testkit::Cluster,
    node: &dcos_testkit::Node,
    args: &[&str],
) -> (u16, String) {
    cluster.curl(node, args)
}

/// `curl -X POST` of a JSON body from inside a cluster node: the status and the answer.
pub fn post_json(
    cluster: &dcos_testkit::Cluster,
    node: &dcos_testkit::Node,
    url: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let body = body.to_string();
    curl(
        cluster,
        node,
        &dcos_testkit::json_request_args("POST", url, &body),
    )
}
