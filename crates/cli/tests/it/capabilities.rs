//! `/capabilities` through Admin Router on a one-master cluster: Cosmos (dcos-cosmos on the
//! master) lists METRONOME with Cosmos' vendor media type, the DC/OS CLI 0.6.1's condition
//! for `dcos job`, and no PACKAGE_MANAGEMENT (the package API is issue 23).

use dcos_testkit::Cluster;

use crate::DCOS;

const CAPABILITIES: &str = "application/vnd.dcos.capabilities+json;charset=utf-8;version=v1";

#[test]
fn capabilities_through_admin_router_list_metronome() {
    let cluster = Cluster::builder()
        .masters(1)
        .agents(0)
        .public_agents(0)
        .binary(DCOS)
        .start()
        .expect("start the cluster");
    let master = cluster.master(0);
    let url = format!("http://{}/capabilities", master.ip);
    let accept = format!("Accept: {CAPABILITIES}");
    let auth = cluster.auth_header();
    let (status, text) = cluster.curl(
        master,
        &[
            "-H",
            &accept,
            "-H",
            &auth,
            "-w",
            "\n%{content_type}\n%{http_code}",
            &url,
        ],
    );
    // The last `-w` wins: the body, the content type, then the status that `curl` parses.
    let (body, content_type) = text.rsplit_once('\n').expect("the content type");
    assert_eq!(status, 200, "{text}");
    assert_eq!(content_type, CAPABILITIES);
    let body: serde_json::Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(
        body,
        serde_json::json!({"capabilities": [{"name": "METRONOME"}]})
    );
    // Cosmos wants its own media type named.
    let (status, text) = cluster.curl(
        master,
        &["-H", "Accept: application/json", "-H", &auth, &url],
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("not_valid"), "{text}");
}
