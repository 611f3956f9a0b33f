//! A real third-party Mesos client, pymesos 0.3.15 from PyPI (installed by
//! `scripts/install-deps` into `/opt/pymesos-venv`), drives a scheduler and a custom executor
//! against the master and agent: SUBSCRIBE, offers, LAUNCH with an executor, the executor
//! API (SUBSCRIBE, LAUNCH, UPDATE, KILL, ACKNOWLEDGED), framework messages both ways,
//! implicit acknowledgements and TEARDOWN.

use std::path::Path;
use std::time::Duration;

use dcos_testkit::loopback;

use crate::harness::{agent, eventually, get};

fn python() -> String {
    let python =
        std::env::var("PYMESOS_PYTHON").unwrap_or_else(|_| "/opt/pymesos-venv/bin/python".into());
    assert!(
        Path::new(&python).exists(),
        "pymesos' Python ({python}) is missing: run scripts/install-deps"
    );
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymesos_runs_a_scheduler_and_a_custom_executor() {
    let python = python();
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pymesos");
    let master = loopback::master().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(master.addr, dir.path().into()).await;
    let executor = format!("{python} {}", scripts.join("executor.py").display());
    let run = tokio::process::Command::new(&python)
        .arg(scripts.join("scheduler.py"))
        .arg(master.addr.to_string())
        .arg(&executor)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the pymesos scheduler ends within 120 s")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pymesos scheduler failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for line in [
        "status greeter TASK_RUNNING SOURCE_EXECUTOR",
        "status greeter TASK_FINISHED SOURCE_EXECUTOR",
        "status sleeper TASK_KILLED SOURCE_EXECUTOR",
        "message pyexec pong ",
        "ok",
    ] {
        assert!(stdout.contains(line), "no '{line}' in:\n{stdout}");
    }
    // Both tasks ran in the one executor's sandbox, whose path the executor sent back.
    let sandbox = stdout
        .lines()
        .find_map(|l| l.strip_prefix("message pyexec pong "))
        .unwrap()
        .to_string();
    assert!(
        sandbox.contains("/executors/pyexec/runs/"),
        "sandbox {sandbox}"
    );
    // TEARDOWN shut the executor down and the agent lists it as completed.
    eventually(
        Duration::from_secs(20),
        "the executor completed",
        || async {
            let st = get(&agent, "/state").await;
            let fw = st["frameworks"]
                .as_array()?
                .iter()
                .find(|f| f["name"] == "pymesos-test")?
                .clone();
            let live = fw["executors"].as_array()?.len();
            let done = fw["completed_executors"].as_array()?;
            (live == 0
                && done
                    .iter()
                    .any(|e| e["id"] == "pyexec" && e["directory"] == sandbox.as_str()))
            .then_some(())
        },
    )
    .await;
    agent.stop().await;
    master.stop().await;
}
