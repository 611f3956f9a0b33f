//! The real DC/OS CLI 0.6.1 (`dcoscli` from PyPI, installed by `scripts/install-deps` into
//! `/opt/dcoscli-0.6.1`) drives `dcos job` against Metronome, as on DC/OS: it asks Cosmos'
//! `/capabilities` for `METRONOME`, then calls `<dcos_url>/service/metronome/v1/...`.
//!
//! The front door here plays Admin Router's two routes the CLI uses: `/service/metronome/`
//! (prefix stripped, proxied to Metronome) and `/capabilities`, answered as Cosmos answers it
//! (Cosmos is not built yet; in a cluster Admin Router sends `/capabilities` to 127.0.0.1:7070).

use std::path::PathBuf;
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use dcos_serve::proxy::{Origin, Proxy, Settings, Upstream};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::harness::Env;

/// Where the CLI is: `$DCOS_CLI_0_6_1`, else where install-deps puts it.
fn cli() -> Option<PathBuf> {
    let p = std::env::var_os("DCOS_CLI_0_6_1")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/dcoscli-0.6.1/bin/dcos"));
    p.is_file().then_some(p)
}

async fn front_door(
    metronome: std::net::SocketAddr,
    stop: CancellationToken,
) -> std::net::SocketAddr {
    let proxy = Proxy::new(Settings::new(Duration::from_secs(30)));
    let app = Router::new()
        .route(
            "/capabilities",
            get(|| async {
                (
                    [("content-type", "application/vnd.dcos.capabilities+json;charset=utf-8;version=v1")],
                    r#"{"capabilities":[{"name":"PACKAGE_MANAGEMENT"},{"name":"SUPPORT_CLUSTER_REPORT"},{"name":"METRONOME"},{"name":"LOGGING"}]}"#,
                )
            }),
        )
        .fallback(move |req: Request| {
            let proxy = proxy.clone();
            async move {
                let pq = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
                let Some(rest) = pq.strip_prefix("/service/metronome") else {
                    return (axum::http::StatusCode::NOT_FOUND, "not here").into_response();
                };
                let rest = if rest.starts_with('/') { rest.to_string() } else { format!("/{rest}") };
                match proxy.forward(req, &Upstream::Tcp(metronome), &rest, Origin::default()).await {
                    Ok(r) => r.map(axum::body::Body::new),
                    Err(e) => {
                        let r: Response = (e.status(), e.to_string()).into_response();
                        r
                    }
                }
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    addr
}

struct Dcos {
    bin: PathBuf,
    home: PathBuf,
    url: String,
}

impl Dcos {
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(&self.bin)
            .args(args)
            .env("DCOS_DIR", &self.home)
            .env("DCOS_URL", &self.url)
            .env("HOME", &self.home)
            .env_remove("DCOS_CLUSTER")
            .output()
            .await
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dcos_cli_0_6_1_adds_runs_and_shows_the_history_of_a_job() {
    let Some(bin) = cli() else {
        eprintln!("skipped: the DC/OS CLI 0.6.1 is not installed (scripts/install-deps)");
        return;
    };
    let env = Env::start(1).await;
    let stop = CancellationToken::new();
    let metronome: std::net::SocketAddr =
        env.url("").trim_start_matches("http://").parse().unwrap();
    let front = front_door(metronome, stop.clone()).await;
    let home = env.dir.path().join("dcos-home");
    std::fs::create_dir_all(&home).unwrap();
    let dcos = Dcos {
        bin,
        home: home.clone(),
        url: format!("http://{front}"),
    };

    let file = home.join("job.json");
    std::fs::write(
        &file,
        r#"{"id": "cli.real", "description": "from the DC/OS CLI", "run": {"cmd": "echo from-dcoscli", "cpus": 0.1, "mem": 32, "disk": 0}}"#,
    )
    .unwrap();
    let (ok, out, err) = dcos.run(&["job", "add", file.to_str().unwrap()]).await;
    assert!(ok, "dcos job add: {out}{err}");
    let (code, job) = env.get("/v1/jobs/cli.real").await;
    assert_eq!(code, 200);
    assert_eq!(job["description"], "from the DC/OS CLI");

    let (ok, out, err) = dcos.run(&["job", "run", "cli.real"]).await;
    assert!(ok, "dcos job run: {out}{err}");
    let (_, runs) = env
        .get("/v1/jobs/cli.real?embed=activeRuns&embed=history")
        .await;
    let run = runs["activeRuns"][0]["id"]
        .as_str()
        .or_else(|| runs["history"]["successfulFinishedRuns"][0]["id"].as_str())
        .expect("the run the CLI started")
        .to_string();
    assert!(out.contains(&run) || out.trim().is_empty(), "{out}");
    assert!(
        env.finished("cli.real", &run, Duration::from_secs(30))
            .await
    );

    let (ok, out, err) = dcos.run(&["job", "history", "cli.real"]).await;
    assert!(ok, "dcos job history: {out}{err}");
    assert!(out.contains(&run), "dcos job history shows the run: {out}");

    let (ok, out, err) = dcos.run(&["job", "list"]).await;
    assert!(ok, "dcos job list: {out}{err}");
    assert!(out.contains("cli.real"), "{out}");
    let (ok, out, err) = dcos.run(&["job", "show", "cli.real"]).await;
    assert!(ok, "dcos job show: {out}{err}");
    assert!(out.contains("echo from-dcoscli"), "{out}");

    let sched = home.join("schedule.json");
    std::fs::write(
        &sched,
        r#"{"id": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Berlin"}"#,
    )
    .unwrap();
    let (ok, out, err) = dcos
        .run(&[
            "job",
            "schedule",
            "add",
            "cli.real",
            sched.to_str().unwrap(),
        ])
        .await;
    assert!(ok, "dcos job schedule add: {out}{err}");
    let (ok, out, err) = dcos.run(&["job", "schedule", "show", "cli.real"]).await;
    assert!(ok, "dcos job schedule show: {out}{err}");
    assert!(out.contains("nightly"), "{out}");
    let (ok, out, err) = dcos.run(&["job", "show", "runs", "cli.real"]).await;
    assert!(ok, "dcos job show runs: {out}{err}");

    let (ok, out, err) = dcos.run(&["job", "remove", "cli.real"]).await;
    assert!(ok, "dcos job remove: {out}{err}");
    let (code, _) = env.get("/v1/jobs/cli.real").await;
    assert_eq!(code, 404);
    stop.cancel();
    env.stop().await;
}
