//! Marathon apps from container images, end to end: a real registry (Debian's
//! docker-registry) with images built here from busybox-static, a master and an agent on
//! loopback whose containers run on the Mesos containerizer, Marathon launching, health
//! checking and reporting failures.

use std::time::Duration;

use dcos_testkit::images;
use dcos_testkit::registry::Registry;
use serde_json::{json, Value};

use crate::harness::{ports, Env};

/// GETs `path` from a task's first host port.
async fn from_task(task: &Value, path: &str) -> Option<String> {
    let port = *ports(task).first()?;
    let url = format!("http://127.0.0.1:{port}{path}");
    reqwest::get(url).await.ok()?.text().await.ok()
}

/// The app's last task failure message, once it has one.
async fn failure(env: &Env, app: &str) -> String {
    env.eventually(
        &format!("a task failure of {app}"),
        Duration::from_secs(30),
        || async {
            let (_, v) = env.get(&format!("/v2/apps{app}")).await;
            v["app"]["lastTaskFailure"]["message"]
                .as_str()
                .map(str::to_string)
        },
    )
    .await
}

/// Kills what a failed test leaves running: containers outlive their agent by design, and
/// each one's `unshare` and init name the agent's work dir on their command line.
struct KillContainers(std::path::PathBuf);

impl Drop for KillContainers {
    fn drop(&mut self) {
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-f"])
            .arg(format!("container-init {}", self.0.display()))
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_apps_run_pass_health_checks_and_fail_clearly() {
    let registry = Registry::start("127.0.0.1:0".parse().unwrap()).unwrap();
    images::push_busybox(&registry, "busybox:1").await.unwrap();
    images::push_whiteout(&registry, "layered:1").await.unwrap();
    let host = registry.host();
    let env = Env::start(1).await;
    let _cleanup = KillContainers(env.dir.path().to_path_buf());

    // busybox httpd from the image serves the image's /etc, health-checked over HTTP.
    let web = json!({
        "id": "/img-web", "cpus": 0.1, "mem": 32, "instances": 1,
        "cmd": "exec httpd -f -p $PORT0 -h /etc",
        "container": {"type": "MESOS", "docker": {"image": format!("{host}/busybox:1")}},
        "healthChecks": [{"protocol": "HTTP", "path": "/passwd", "portIndex": 0,
                          "intervalSeconds": 1, "gracePeriodSeconds": 30}],
    });
    let (code, body) = env.send("POST", "/v2/apps", Some(web)).await;
    assert_eq!(code, 201, "{body}");
    let tasks = env.settled("/img-web", 1).await;
    let passwd = from_task(&tasks[0], "/passwd").await.unwrap_or_default();
    assert!(passwd.contains("nobody:x:65534"), "served {passwd:?}");
    env.eventually("/img-web healthy", Duration::from_secs(30), || async {
        let (_, v) = env.get("/v2/apps/img-web").await;
        (v["app"]["tasksHealthy"] == 1).then_some(())
    })
    .await;

    // A DOCKER container runs on the Mesos containerizer too; a whiteout hides a file of
    // a lower layer and an opaque directory hides its lower contents.
    let layered = json!({
        "id": "/img-layered", "cpus": 0.1, "mem": 32,
        "cmd": "test ! -e /etc/hidden && test ! -e /data/old && test -e /data/new && exec httpd -f -p $PORT0 -h /data",
        "container": {"type": "DOCKER", "docker": {"image": format!("{host}/layered:1")}},
    });
    let (code, body) = env.send("POST", "/v2/apps", Some(layered)).await;
    assert_eq!(code, 201, "{body}");
    let tasks = env.settled("/img-layered", 1).await;
    assert_eq!(from_task(&tasks[0], "/new").await.as_deref(), Some("new\n"));

    // An image the registry does not have, and a registry that is not there.
    let missing = json!({"id": "/img-missing", "cpus": 0.1, "mem": 32, "cmd": "sleep 100",
        "container": {"type": "MESOS", "docker": {"image": format!("{host}/nope:1")}}});
    env.send("POST", "/v2/apps", Some(missing)).await;
    let message = failure(&env, "/img-missing").await;
    assert!(message.contains("manifest unknown"), "{message}");
    let down = json!({"id": "/img-down", "cpus": 0.1, "mem": 32, "cmd": "sleep 100",
        "container": {"type": "MESOS", "docker": {"image": "127.0.0.1:1/busybox:1"}}});
    env.send("POST", "/v2/apps", Some(down)).await;
    let message = failure(&env, "/img-down").await;
    assert!(message.contains("unreachable"), "{message}");

    // forcePullImage takes the tag's new image: the tag now names the layered image.
    images::push_whiteout(&registry, "busybox:1").await.unwrap();
    let forced = json!({"id": "/img-forced", "cpus": 0.1, "mem": 32,
        "cmd": "test -e /data/new && exec sleep 100",
        "container": {"type": "MESOS", "docker": {"image": format!("{host}/busybox:1"), "forcePullImage": true}}});
    let (code, body) = env.send("POST", "/v2/apps", Some(forced)).await;
    assert_eq!(code, 201, "{body}");
    env.settled("/img-forced", 1).await;

    // A task over its memory limit fails with the OOM reason.
    let hog = json!({"id": "/img-hog", "cpus": 0.1, "mem": 32,
        "cmd": "dd if=/dev/zero of=/dev/null bs=100M count=1; sleep 100",
        "container": {"type": "MESOS", "docker": {"image": format!("{host}/busybox:1")}}});
    env.send("POST", "/v2/apps", Some(hog)).await;
    let message = failure(&env, "/img-hog").await;
    assert!(message.contains("Memory limit exceeded"), "{message}");

    for app in [
        "img-web",
        "img-layered",
        "img-missing",
        "img-down",
        "img-forced",
        "img-hog",
    ] {
        let (code, body) = env.send("DELETE", &format!("/v2/apps/{app}"), None).await;
        assert_eq!(code, 200, "DELETE {app}: {body}");
    }
    env.eventually("every image app gone", Duration::from_secs(30), || async {
        let (_, v) = env.get("/v2/apps").await;
        (v["apps"] == json!([])).then_some(())
    })
    .await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_image_serves_http() {
    let registry = Registry::start("127.0.0.1:0".parse().unwrap()).unwrap();
    images::push_python(&registry, "python:3.11").await.unwrap();
    let env = Env::start(1).await;
    let _cleanup = KillContainers(env.dir.path().to_path_buf());
    let app = json!({
        "id": "/py", "cpus": 0.1, "mem": 64,
        "cmd": "cd $MESOS_SANDBOX && echo from-python > hello.txt && exec python3 -m http.server $PORT0",
        "container": {"type": "MESOS", "docker": {"image": format!("{}/python:3.11", registry.host())}},
        "healthChecks": [{"protocol": "HTTP", "path": "/hello.txt", "portIndex": 0,
                          "intervalSeconds": 1, "gracePeriodSeconds": 30}],
    });
    let (code, body) = env.send("POST", "/v2/apps", Some(app)).await;
    assert_eq!(code, 201, "{body}");
    let tasks = env.settled("/py", 1).await;
    let served = env
        .eventually("python answers", Duration::from_secs(30), || async {
            from_task(&tasks[0], "/hello.txt")
                .await
                .filter(|t| !t.is_empty())
        })
        .await;
    assert_eq!(served, "from-python\n");
    env.send("DELETE", "/v2/apps/py", None).await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_that_does_not_match_its_digest_fails_the_task() {
    let registry = Registry::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let host = registry.host();
    let env = Env::start(1).await;
    let _cleanup = KillContainers(env.dir.path().to_path_buf());
    // A layer whose bytes do not match its digest (corrupted in the registry's storage): a
    // layer of its own, since the agent already holds busybox's.
    let layout = tempfile::tempdir().unwrap();
    let mut layers = images::busybox_layers().unwrap();
    layers.push(
        images::tar_of(&[images::Item::File(
            "only-here".into(),
            0o644,
            b"a layer no other image has\n".to_vec(),
        )])
        .unwrap(),
    );
    images::write_oci_layout(layout.path(), &layers, &["sh"]).unwrap();
    images::push_layout(layout.path(), &registry, "corrupt:1")
        .await
        .unwrap();
    let manifest: Value = reqwest::Client::new()
        .get(format!("http://{host}/v2/corrupt/manifests/1"))
        .header(
            "accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let layer = manifest["layers"][1]["digest"].as_str().unwrap();
    let data = registry.blob_data(layer);
    let mut bytes = std::fs::read(&data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    let corrupt = json!({"id": "/img-corrupt", "cpus": 0.1, "mem": 32, "cmd": "sleep 100",
        "container": {"type": "MESOS", "docker": {"image": format!("{host}/corrupt:1")}}});
    env.send("POST", "/v2/apps", Some(corrupt)).await;
    let message = failure(&env, "/img-corrupt").await;
    assert!(message.contains("does not match its digest"), "{message}");
    let missing = json!({"id": "/img-missing", "cpus": 0.1, "mem": 32, "cmd": "sleep 100",
        "container": {"type": "MESOS", "docker": {"image": format!("{host}/nope:1")}}});
    env.send("POST", "/v2/apps", Some(missing)).await;
    failure(&env, "/img-missing").await;
    for app in ["img-missing", "img-corrupt"] {
        let (code, body) = env.send("DELETE", &format!("/v2/apps/{app}"), None).await;
        assert_eq!(code, 200, "{body}");
    }
    env.eventually("the app gone", Duration::from_secs(15), || async {
        let (_, v) = env.get("/v2/apps").await;
        (v["apps"] == json!([])).then_some(())
    })
    .await;
    env.stop().await;
}
