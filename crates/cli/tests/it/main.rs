//! Integration tests of the real `dcos` binary: client commands, `dcos node run`,
//! `dcos install`, and whole clusters in network namespaces (through `dcos-testkit`).

mod adminrouter;
mod capabilities;
mod cluster;
mod config;
mod dns;
mod ha;
mod iam;
mod install;
mod jobs_ha;
mod node_run;
mod ports;
mod preflight;
mod registry;

use std::process::{Command, Output};

/// The binary under test.
pub const DCOS: &str = env!("CARGO_BIN_EXE_dcos");

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
