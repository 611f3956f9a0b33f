//! Admin Router: `wrk` (Debian) through Admin Router and through nginx (Debian), configured
//! by the benchmark with the same route to the same backend, in the same run.
//!
//! The backend is a small HTTP server in this process answering `GET /ping` with 5 bytes.
//! The route is DC/OS' `/dcos-history-service/` location: the prefix is stripped and the
//! request forwarded over a keep-alive connection (nginx: `proxy_http_version 1.1` and an
//! upstream `keepalive 64` pool; Admin Router: its pool). nginx runs `worker_processes auto`
//! (one per core), Admin Router a runtime with one worker per core. Each is measured twice
//! for S seconds, alternating, with `wrk -t2 -cC`; the figures are the means.
//!
//! Admin Router runs twice: open (security disabled, nginx's exact route) and logged in
//! (security permissive, an IAM in this process): every request carries a token that the
//! router verifies (RS256) before forwarding, as on a DC/OS cluster; nginx does no auth.

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
/// What the backend answers.
const PONG: &str = "pong\n";

/// A port on 127.0.0.1 nothing listens on at the time of the call.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// wrk's requests per second and 99th percentile latency (ms) against `url`, with `options`
/// before the others (`-H <header>`, `-s <script>`); any non-2xx answer or socket error
/// fails it.
pub(crate) fn wrk(
    url: &str,
    seconds: u64,
    connections: usize,
    options: &[&str],
) -> anyhow::Result<Value> {
    let out = Command::new("wrk")
        .args(options)
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

/// An nginx of the benchmark's; stopped on drop with SIGTERM, on which its master stops
/// its workers (after a SIGKILL of the master they would live on).
pub(crate) struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        crate::rig::stop(&mut self.0);
    }
}

/// Debian's nginx in the foreground, `worker_processes auto`, its files in `dir`, with `http`
/// as the rest of its `http` block (the servers).
pub(crate) fn nginx(dir: &Path, http: &str) -> anyhow::Result<Nginx> {
    let conf = format!(
        "worker_processes auto;\nerror_log {dir}/error.log;\npid {dir}/nginx.pid;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {dir};\n  proxy_temp_path {dir};\n\
         {http}}}\n",
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

/// nginx with Admin Router's `/dcos-history-service/` location forwarding to `backend`.
fn nginx_router(dir: &Path, port: u16, backend: SocketAddr) -> anyhow::Result<Nginx> {
    let http = format!(
        "  upstream backend {{ server {backend}; keepalive 64; }}\n\
           server {{\n    listen 127.0.0.1:{port};\n\
             location /dcos-history-service/ {{\n      proxy_pass http://backend/;\n\
               proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n\
               proxy_set_header Host $http_host;\n      proxy_set_header X-Real-IP $remote_addr;\n\
               proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
               proxy_set_header X-Forwarded-Proto $scheme;\n    }}\n  }}\n"
    );
    nginx(dir, &http)
}

/// Waits until a GET of `url` (with `header`, `Name: value`) answers 2xx with `expect`.
pub(crate) async fn wait_ok(url: &str, header: Option<&str>, expect: &[u8]) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    for _ in 0..100 {
        let mut req = client.get(url);
        if let Some((name, value)) = header.and_then(|h| h.split_once(": ")) {
            req = req.header(name, value);
        }
        if let Ok(r) = req.send().await {
            if r.status().is_success() && r.bytes().await.is_ok_and(|b| b == expect) {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("{url} does not answer what is expected")
}

async fn run(args: Args) -> anyhow::Result<Value> {
    let (seconds, connections) = (args.num("seconds") as u64, args.num("connections"));
    let dir = tempfile::tempdir()?;
    let stop = CancellationToken::new();

    // The backend.
    let backend_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let backend = backend_listener.local_addr()?;
    let app = axum::Router::new().route("/ping", axum::routing::get(|| async { PONG }));
    let serving =
        axum::serve(backend_listener, app).with_graceful_shutdown(stop.clone().cancelled_owned());
    tokio::spawn(async move { serving.await });

    // The IAM the logged-in router asks, and a superuser's token.
    let (iam, token) = iam(dir.path(), &stop).await?;
    let header = format!("Authorization: token={token}");

    // Admin Router, with History's location pointing at the backend: open, and logged in.
    let ours = router(dir.path(), backend, None, &stop).await?;
    let logged_in = router(dir.path(), backend, Some(iam), &stop).await?;

    let port = free_port()?;
    let peer = nginx_router(dir.path(), port, backend)?;
    let ours_url = format!("http://{ours}{PATH}");
    let auth_url = format!("http://{logged_in}{PATH}");
    let peer_url = format!("http://127.0.0.1:{port}{PATH}");
    wait_ok(&ours_url, None, PONG.as_bytes()).await?;
    wait_ok(&auth_url, Some(&header), PONG.as_bytes()).await?;
    wait_ok(&peer_url, None, PONG.as_bytes()).await?;
    anyhow::ensure!(
        reqwest::get(&auth_url).await?.status() == reqwest::StatusCode::UNAUTHORIZED,
        "the logged-in router lets a request without a token through"
    );

    let mut runs = json!({"adminrouter": [], "adminrouter_auth": [], "nginx": []});
    for _ in 0..2 {
        for (key, url, h) in [
            ("adminrouter", &ours_url, None),
            ("adminrouter_auth", &auth_url, Some(header.as_str())),
            ("nginx", &peer_url, None),
        ] {
            let options: Vec<&str> = h.map(|h| vec!["-H", h]).unwrap_or_default();
            let figures = tokio::task::block_in_place(|| wrk(url, seconds, connections, &options))?;
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
        "adminrouter_auth_rps": mean("adminrouter_auth", "rps"),
        "auth_rps_ratio_to_nginx": mean("adminrouter_auth", "rps") / mean("nginx", "rps"),
        "adminrouter_auth_p99_ms": mean("adminrouter_auth", "p99_ms"),
        "auth_p99_ratio_to_nginx": mean("adminrouter_auth", "p99_ms") / mean("nginx", "p99_ms"),
        "adminrouter_p99_ms": mean("adminrouter", "p99_ms"),
        "nginx_p99_ms": mean("nginx", "p99_ms"),
        "p99_ratio_to_nginx": mean("adminrouter", "p99_ms") / mean("nginx", "p99_ms"),
    }))
}

/// An IAM on loopback (its own store in `dir`) with a superuser, and that superuser's token.
async fn iam(dir: &Path, stop: &CancellationToken) -> anyhow::Result<(SocketAddr, String)> {
    let password = "bench-superuser-password";
    let secret = dir.join("seal.key");
    std::fs::write(&secret, uuid::Uuid::new_v4().as_bytes())?;
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let config = dcos_iam::Config {
        listen,
        store: dcos_store::Location::Embedded(dir.join("iam.redb")),
        bootstrap: Some(dcos_iam::Bootstrap {
            superuser: Some(("bench".into(), dcos_iam::password::hash(password)?)),
            service_accounts: Vec::new(),
        }),
        seal_secret: secret,
        require_token: true,
        oidc: Vec::new(),
    };
    let stop = stop.clone();
    tokio::spawn(async move {
        if let Err(e) = dcos_iam::serve(config, stop).await {
            tracing::error!(error = %e, "the benchmark's IAM failed");
        }
    });
    let client = reqwest::Client::new();
    let url = format!("http://{listen}/acs/api/v1/auth/login");
    for _ in 0..200 {
        let sent = client
            .post(&url)
            .json(&json!({"uid": "bench", "password": password}))
            .send()
            .await;
        if let Ok(r) = sent {
            let answer: Value = r.json().await?;
            let token = answer["token"].as_str().context("a login token")?;
            return Ok((listen, token.to_string()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the benchmark's IAM does not answer at {listen}")
}

/// An Admin Router forwarding History's location to `backend`: open, or asking logins of
/// the IAM at `iam`.
async fn router(
    dir: &Path,
    backend: SocketAddr,
    iam: Option<SocketAddr>,
    stop: &CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let mut config = Config::dcos(Role::Master, "127.0.0.1".parse()?, vec![], dir.into());
    config.fixed.insert(Fixed::History, Upstream::Tcp(backend));
    config.cert_dir = dir.join("tls");
    config.security = match iam {
        Some(addr) => {
            config.fixed.insert(Fixed::Iam, Upstream::Tcp(addr));
            dcos_iam::api::SecurityMode::Permissive
        }
        None => dcos_iam::api::SecurityMode::Disabled,
    };
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = http.local_addr()?;
    let https = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let acceptor = dcos_adminrouter::tls_acceptor(&config, &["localhost"])?;
    tokio::spawn(dcos_adminrouter::serve_on(
        http,
        dcos_tls::TlsListener::new(https, acceptor),
        Arc::new(Router::new(config)),
        stop.clone(),
    ));
    Ok(addr)
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
         backend (`GET /ping`, 5 bytes) in the benchmark's process. The logged-in rows run a \
         second Admin Router with security `permissive` and an IAM in the same process: each \
         request carries a superuser's token, which the router checks before forwarding (its \
         RS256 signature verified once and remembered, its expiry and its account's permission \
         on the route each time, the permission as the IAM's policy query answered it within 5 s); \
         nginx does no auth.\n\n",
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
            vec![
                "requests per second, token checked on each".into(),
                num(&f["adminrouter_auth_rps"], 0),
                num(&f["nginx_rps"], 0),
                ratio(&f["auth_rps_ratio_to_nginx"]),
            ],
            vec![
                "p99 latency (ms), token checked on each".into(),
                num(&f["adminrouter_auth_p99_ms"], 2),
                num(&f["nginx_p99_ms"], 2),
                ratio(&f["auth_p99_ratio_to_nginx"]),
            ],
        ],
    ));
    out
}
