//! Our own `dcos job` against a Metronome: the built `dcos` binary beside the tests
//! (skipped, saying so, when it is not built).

use std::process::Command;
use std::time::Duration;

use crate::harness::Env;

fn dcos(env: &Env, args: &[&str]) -> (bool, String, String) {
    let bin = dcos_testkit::loopback::dcos_binary().expect("the dcos binary");
    let out = Command::new(bin)
        .arg("job")
        .arg("--url")
        .arg(env.url(""))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dcos_job_adds_lists_runs_shows_history_and_removes() {
    if dcos_testkit::loopback::dcos_binary().is_none() {
        eprintln!("skipped: build the dcos binary (cargo build -p dcos-cli) to run this test");
        return;
    }
    let env = Env::start(1).await;
    let file = env.dir.path().join("job.json");
    std::fs::write(
        &file,
        r#"{"id": "cli.hello", "run": {"cmd": "echo hi", "cpus": 0.1, "mem": 32, "disk": 0}}"#,
    )
    .unwrap();
    let (ok, out, err) = dcos(&env, &["add", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "Created job cli.hello");
    let (ok, _, err) = dcos(&env, &["add", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("Job with this id already exists"), "{err}");

    let (ok, out, err) = dcos(&env, &["run", "cli.hello"]);
    assert!(ok, "{err}");
    let run = out.trim().strip_prefix("Run ID: ").unwrap().to_string();
    assert!(
        env.finished("cli.hello", &run, Duration::from_secs(30))
            .await
    );

    let (ok, out, _) = dcos(&env, &["list"]);
    assert!(ok);
    assert!(
        out.contains("cli.hello") && out.contains("success"),
        "{out}"
    );
    let (ok, out, _) = dcos(&env, &["list", "--json"]);
    assert!(ok);
    let jobs: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(jobs[0]["historySummary"]["successCount"], 1);
    let (ok, out, _) = dcos(&env, &["history", "cli.hello"]);
    assert!(ok);
    assert!(out.contains(&run) && out.contains("SUCCESS"), "{out}");
    let (ok, out, _) = dcos(&env, &["history", "cli.hello", "--json"]);
    assert!(ok);
    let h: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(h["successfulFinishedRuns"][0]["id"], serde_json::json!(run));

    let bad = env.dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"id": "Bad", "run": {"cmd": "x", "cpus": 1, "mem": 32, "disk": 0}}"#,
    )
    .unwrap();
    let (ok, _, err) = dcos(&env, &["add", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("422") && err.contains("/id:"), "{err}");

    let (ok, _, err) = dcos(&env, &["remove", "cli.hello"]);
    assert!(ok, "{err}");
    let (code, _) = env.get("/v1/jobs/cli.hello").await;
    assert_eq!(code, 404);
    env.stop().await;
}
