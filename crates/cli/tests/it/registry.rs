//! The cluster-local image registry (`dcos cluster up --registry`): an operator pushes an
//! image built on this machine to the master's registry with `dcos image push`, and a
//! Marathon app on an agent (its own network namespace, its own `dcos node run`) pulls it
//! from there and serves from the image.

use std::time::Duration;

use dcos_testkit::{eventually, Cluster};
use serde_json::json;

use crate::{curl, curl_text, post_json, DCOS};

#[test]
fn an_image_pushed_to_the_masters_registry_runs_on_an_agent() {
    let cluster = Cluster::builder()
        .masters(1)
        .agents(1)
        .registry()
        .binary(DCOS)
        .start()
        .expect("start the cluster");
    let master = cluster.master(0);
    let registry = format!("{}:5000", master.ip);
    let layout = tempfile::tempdir().unwrap();
    dcos_testkit::images::busybox_layout(layout.path()).unwrap();
    let layout = layout.path().to_string_lossy().into_owned();
    let image = format!("{registry}/tools/busybox:1");
    // Pushed from the master's own node, as an operator on it would.
    let pushed = cluster.exec(
        master,
        &[
            DCOS,
            "image",
            "push",
            &layout,
            &image,
            "--insecure-registry",
            &registry,
        ],
    );
    assert!(
        pushed.status.success(),
        "dcos image push: {}",
        String::from_utf8_lossy(&pushed.stderr)
    );

    let marathon = format!("http://{}:8080", master.ip);
    let app = json!({"id": "/from-registry", "cpus": 0.1, "mem": 32,
        "cmd": "exec httpd -f -p $PORT0 -h /etc",
        "container": {"type": "MESOS", "docker": {"image": image}}});
    let (status, body) = post_json(&cluster, master, &format!("{marathon}/v2/apps"), &app);
    assert_eq!(status, 201, "{body}");
    let task = eventually(Duration::from_secs(60), || {
        let (_, tasks) = curl(
            &cluster,
            master,
            &[&format!("{marathon}/v2/apps/from-registry/tasks")],
        );
        tasks["tasks"]
            .as_array()?
            .iter()
            .find(|t| t["state"] == "TASK_RUNNING")
            .cloned()
    });
    let url = format!(
        "http://{}:{}/passwd",
        task["host"].as_str().unwrap(),
        task["ports"][0]
    );
    let agent = cluster.agents()[0];
    let passwd = eventually(Duration::from_secs(20), || {
        let (code, text) = curl_text(&cluster, agent, &["-m", "2", &url]);
        (code == 200).then_some(text)
    });
    assert!(passwd.contains("nobody:x:65534"), "{passwd}");
    let (status, _) = curl(
        &cluster,
        master,
        &["-X", "DELETE", &format!("{marathon}/v2/apps/from-registry")],
    );
    assert_eq!(status, 200);
}
