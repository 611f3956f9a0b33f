//! A job whose spec names a `docker` image runs in that image on the agents' Mesos
//! containerizer (DC/OS' `test_metronome` job: `ls` in `busybox:latest` as `nobody`), from
//! a real registry (Debian's docker-registry) with an image built from busybox-static.

use std::time::Duration;

use dcos_testkit::images;
use dcos_testkit::registry::Registry;
use serde_json::json;

use crate::harness::Env;

/// Kills what a failed test leaves running: containers outlive their agent by design.
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
async fn a_docker_job_runs_in_its_image_and_succeeds() {
    if dcos_testkit::loopback::dcos_binary().is_none() {
        eprintln!("skipped: containers need the built dcos binary (cargo build -p dcos-cli)");
        return;
    }
    let registry = match Registry::start("127.0.0.1:0".parse().unwrap()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("skipped: no registry to pull from ({e}); scripts/install-deps installs one");
            return;
        }
    };
    images::push_busybox(&registry, "busybox:latest")
        .await
        .unwrap();
    let host = registry.host();
    let env = Env::start(1).await;
    let _cleanup = KillContainers(env.dir.path().to_path_buf());
    // `ls` of the image's root: it fails unless the task runs in the image.
    let spec = json!({"id": "test.metronome", "run": {
        "cmd": "ls /bin/busybox && test ! -e /work", "cpus": 0.1, "mem": 64, "disk": 0,
        "user": "nobody", "docker": {"image": format!("{host}/busybox:latest")},
        "restart": {"policy": "ON_FAILURE"}}});
    let (code, body) = env.send("POST", "/v1/jobs", Some(spec)).await;
    assert_eq!(code, 201, "{body}");
    let run = env.run("test.metronome").await;
    assert!(
        env.finished("test.metronome", &run, Duration::from_secs(60))
            .await
    );
    let (_, m) = env.get("/v1/metrics").await;
    assert_eq!(
        m["counters"]["dcos.metronome.task.launched"]["count"], 1,
        "one task, no retries"
    );
    env.stop().await;
}
