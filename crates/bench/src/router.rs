//! Admin Router: `wrk` (Debian) through Admin Router and through nginx (Debian), configured
//! by the benchmark with the same route to the same backend, in the same run.
//!
//! The backend is a small HTTP server in this process answering `GET /ping` with 5 bytes.
//! The route is DC/OS' `/dcos-history-service/` location: the prefix is stripped and the
//! request forwarded over a keep-alive connection (nginx: `proxy_http_version 1.1` and an
//! upstream `keepalive 64` pool; Admin Router: its pool). nginx runs `worker_processes auto`
//! (one per core), Admin Router a runtime with one worker per core. Each is measured twice
//! for S seconds, alternating, with `wrk -t2 -cC`; the figures are the means.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dcos_adminrouter::proxy::Upstream;
use dcos_adminrouter::routes::{Fixed, Role};
use dcos_adminrouter::{Config, Router};
use serde_json::{json, Value};

use crate::{Args, Kind, Param, Scenario};
use tokio_util::sync::CancellationToken;

const PATH: &str = "/dcos-history-service/ping";

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// wrk's requests per second and 99th percentile latency (ms).
fn wrk(url: &str, seconds: u64, connections: usize) -> anyhow::Result<Value> {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            url,
        ])
        .output()
        .context("wrk runs (scripts/install-deps installs Debian's wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(out.status.success(), "wrk failed: {text}");
    let after = |label: &str| -> Option<String> {
        let line = text.lines().find(|l| l.trim_start().starts_with(label))?;
        Some(
            line.trim_start()[label.len()..]
                .split_whitespace()
                .next()?
                .to_string(),
        )
    };
    let rps: f64 = after("Requests/sec:").context("no rate")?.parse()?;
    let p99 = after("99%").context("no p99")?;
    let p99_ms = if let Some(v) = p99.strip_suffix("us") {
        v.parse::<f64>()? / 1000.0
    } else if let Some(v) = p99.strip_suffix("ms") {
        v.parse::<f64>()?
    } else if let Some(v) = p99.strip_suffix('s') {
        v.parse::<f64>()? * 1000.0
    } else {
        anyhow::bail!("unknown latency unit in {p99}")
    };
    let errors = text
        .lines()
        .any(|l| l.contains("Non-2xx") || l.contains("Socket errors"));
    anyhow::ensure!(!errors, "wrk saw errors: {text}");
    Ok(json!({"rps": rps, "p99_ms": p99_ms}))
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx(dir: &Path, port: u16, backend: SocketAddr) -> anyhow::Result<Nginx> {
    let conf = format!(
        "worker_processes auto;\nerror_log {dir}/error.log;\npid {dir}/nginx.pid;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {dir};\n  proxy_temp_path {dir};\n\
           upstream backend {{ server {backend}; keepalive 64; }}\n\
           server {{\n    listen 127.0.0.1:{port};\n\
             location /dcos-history-service/ {{\n      proxy_pass http://backend/;\n\
               proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n\
               proxy_set_header Host $http_host;\n      proxy_set_header X-Real-IP $remote_addr;\n\
               proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
               proxy_set_header X-Forwarded-Proto $scheme;\n    }}\n  }}\n}}\n",
        dir = dir.display()
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf)?;
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&path)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .spawn()
        .context("nginx runs (scripts/install-deps installs Debian's nginx-light)")?;
    Ok(Nginx(child))
}

async fn wait_ok(url: &str) -> anyhow::Result<()> {
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(url).await {
            if r.status().is_success() && r.text().await.unwrap_or_default() == "pong\n" {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("{url} does not answer pong")
}

async fn run(args: Args) -> anyhow::Result<Value> {
    let (seconds, connections) = (args.num("seconds") as u64, args.num("connections"));
    let dir = tempfile::tempdir()?;
    let stop = CancellationToken::new();

    // The backend.
    let backend_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let backend = backend_listener.local_addr()?;
    let app = axum::Router::new().route("/ping", axum::routing::get(|| async { "pong\n" }));
    let serving =
        axum::serve(backend_listener, app).with_graceful_shutdown(stop.clone().cancelled_owned());
    tokio::spawn(async move { serving.await });

    // Admin Router, with History's location pointing at the backend.
    let mut config = Config::dcos(
        Role::Master,
        "127.0.0.1".parse()?,
        vec![],
        dir.path().into(),
    );
    config.fixed.insert(Fixed::History, Upstream::Tcp(backend));
    config.cert_dir = dir.path().join("tls");
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let ours = http.local_addr()?;
    let https = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let acceptor = dcos_adminrouter::tls_acceptor(&config, &["localhost"])?;
    tokio::spawn(dcos_adminrouter::serve_on(
        http,
        dcos_tls::TlsListener::new(https, acceptor),
        Arc::new(Router::new(config)),
        stop.clone(),
    ));

    let port = free_port()?;
    let peer = nginx(dir.path(), port, backend)?;
    let ours_url = format!("http://{ours}{PATH}");
    let peer_url = format!("http://127.0.0.1:{port}{PATH}");
    wait_ok(&ours_url).await?;
    wait_ok(&peer_url).await?;

    let mut runs = json!({"adminrouter": [], "nginx": []});
    for _ in 0..2 {
        for (key, url) in [("adminrouter", &ours_url), ("nginx", &peer_url)] {
            let figures = tokio::task::block_in_place(|| wrk(url, seconds, connections))?;
            runs[key].as_array_mut().expect("an array").push(figures);
        }
    }
    drop(peer);
    stop.cancel();
    let mean = |key: &str, field: &str| {
        let v = runs[key].as_array().expect("runs");
        v.iter().filter_map(|r| r[field].as_f64()).sum::<f64>() / v.len() as f64
    };
    Ok(json!({
        "seconds_per_run": seconds,
        "connections": connections,
        "runs": runs,
        "adminrouter_rps": mean("adminrouter", "rps"),
        "nginx_rps": mean("nginx", "rps"),
        "rps_ratio_to_nginx": mean("adminrouter", "rps") / mean("nginx", "rps"),
        "adminrouter_p99_ms": mean("adminrouter", "p99_ms"),
        "nginx_p99_ms": mean("nginx", "p99_ms"),
        "p99_ratio_to_nginx": mean("adminrouter", "p99_ms") / mean("nginx", "p99_ms"),
    }))
}

const PARAMS: &[Param] = &[
    Param {
        key: "seconds",
        kind: Kind::Num,
        full: "10",
        tiny: "1",
        help: "seconds per wrk run (each router runs twice)",
    },
    Param {
        key: "connections",
        kind: Kind::Num,
        full: "64",
        tiny: "8",
        help: "wrk's open connections",
    },
];

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "router",
    about: "wrk through Admin Router and through nginx on the same route",
    params: PARAMS,
    run: |args| Box::pin(run(args)),
    section,
};

fn section(doc: &Value) -> String {
    use crate::report::{heading, num, ratio, table};
    let f = &doc["figures"];
    let mut out = heading("Admin Router against nginx", doc);
    out.push_str(&format!(
        "`wrk -t2 -c{}`, each router twice for {} s, alternating; the figures are the means. \
         nginx (Debian's `nginx-light`, `worker_processes auto`) is configured with the same \
         location as Admin Router's `/dcos-history-service/` (prefix stripped, HTTP/1.1 \
         upstream keep-alive pool, the same forwarding headers); both forward to the same \
         backend (`GET /ping`, 5 bytes) in the benchmark's process.\n\n",
        f["connections"], f["seconds_per_run"],
    ));
    out.push_str(&table(
        &[
            "figure",
            "Admin Router (dcos-rs)",
            "nginx (same run)",
            "ratio",
        ],
        &[
            vec![
                "requests per second".into(),
                num(&f["adminrouter_rps"], 0),
                num(&f["nginx_rps"], 0),
                ratio(&f["rps_ratio_to_nginx"]),
            ],
            vec![
                "p99 latency (ms)".into(),
                num(&f["adminrouter_p99_ms"], 2),
                num(&f["nginx_p99_ms"], 2),
                ratio(&f["p99_ratio_to_nginx"]),
            ],
        ],
    ));
    out
}
