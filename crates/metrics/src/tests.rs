//! The service on real sockets: the API on a unix socket, Prometheus on TCP, StatsD relayed
//! over UDP, reading a stand-in agent on loopback.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Json, Router};
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use super::*;

/// A stand-in Mesos agent on loopback: one container, its task, and a metrics snapshot.
async fn fake_agent() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let app = Router::new()
        .route(
            "/containers",
            get(|| async {
                Json(json!([{
                    "container_id": "c1",
                    "executor_id": "statsd-emitter.1",
                    "executor_name": "statsd-emitter",
                    "framework_id": "fw-0000",
                    "source": "statsd-emitter.1",
                    "statistics": {"cpus_user_time_secs": 0.5, "mem_total_bytes": 2048}
                }]))
            }),
        )
        .route(
            "/state",
            get(|| async {
                Json(json!({"id": "agent-S1", "frameworks": [{
                    "id": "fw-0000", "name": "marathon", "role": "*",
                    "executors": [{"id": "statsd-emitter.1", "container": "c1",
                        "tasks": [{"id": "statsd-emitter.1", "name": "statsd-emitter"}]}]
                }]}))
            }),
        )
        .route(
            "/metrics/snapshot",
            get(|| async { Json(json!({"slave/tasks_running": 1, "slave/registered": 1})) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

/// GET over the unix socket: status and body.
async fn unix_get(socket: &Path, path: &str) -> (u16, Vec<u8>) {
    let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", "dcos-metrics")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    drop(sender);
    let _ = conn.await;
    (status, body)
}

#[tokio::test]
async fn serves_the_api_prometheus_and_relayed_statsd_on_real_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("dcos-metrics-agent.sock");
    let (agent, agent_task) = fake_agent().await;
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut config = Config::new(Role::Agent, socket.clone(), ip);
    config.cluster_id = "cluster-1".into();
    config.agent = Some(format!("http://{agent}"));
    let listeners = Listeners {
        api: UnixListener::bind(&socket).unwrap(),
        prometheus: Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
        statsd: Some(UdpSocket::bind("127.0.0.1:0").await.unwrap()),
    };
    let prom = listeners.prometheus.as_ref().unwrap().local_addr().unwrap();
    let statsd = listeners.statsd.as_ref().unwrap().local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve_on(listeners, config, shutdown.clone()));

    let (status, body) = unix_get(&socket, "/v0/ping").await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["ok"], true);
    let (status, body) = unix_get(&socket, "/v0/node").await;
    assert_eq!(status, 200);
    let node: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(node["dimensions"]["mesos_id"], "agent-S1");
    assert_eq!(node["dimensions"]["hostname"], "127.0.0.1");

    // What the agent relays for the task.
    let origin = relay::Origin {
        container_id: "c1",
        executor_id: "statsd-emitter.1",
        framework_id: "fw-0000",
    };
    let mut datagram = origin.header().unwrap();
    datagram.extend_from_slice(b"statsd_tester.time.uptime:42|g|#test_tag_key:test_tag_value");
    let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sender.send_to(b"garbage", statsd).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let app = loop {
        sender.send_to(&datagram, statsd).await.unwrap();
        let (status, body) = unix_get(&socket, "/v0/containers/c1/app").await;
        if status == 200 {
            break serde_json::from_slice::<Value>(&body).unwrap();
        }
        assert!(Instant::now() < deadline, "the relayed metric never showed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let point = &app["datapoints"][0];
    assert_eq!(point["name"], "statsd_tester.time.uptime");
    assert_eq!(point["tags"]["test_tag_key"], "test_tag_value");
    assert_eq!(app["dimensions"]["task_name"], "statsd-emitter");

    let (status, body) = unix_get(&socket, "/v0/containers").await;
    assert_eq!((status, body), (200, b"[\"c1\"]\n".to_vec()));
    let (status, _) = unix_get(&socket, "/v0/containers/c1").await;
    assert_eq!(status, 200);
    let (status, body) = unix_get(&socket, "/v0/containers/c9").await;
    assert_eq!((status, body.len()), (204, 0));

    let text = reqwest::get(format!("http://{prom}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("# TYPE load_1min gauge\n"), "{text}");
    assert!(text
        .lines()
        .any(|l| l.starts_with("mesos_slave_tasks_running{") && l.contains("role=\"agent\"")));
    assert!(text
        .lines()
        .any(|l| l.starts_with("statsd_tester_time_uptime{") && l.ends_with(" 42")));
    promtool_check(&text);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the service stops when asked")
        .unwrap();
    agent_task.abort();
}

#[tokio::test]
async fn serve_replaces_a_stale_socket_and_removes_it_on_exit() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run/dcos-metrics-master.sock");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    std::fs::write(&socket, b"stale").unwrap();
    let config = Config::new(
        Role::Master,
        socket.clone(),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    );
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(config, shutdown.clone()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        assert!(Instant::now() < deadline, "never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _) = unix_get(&socket, "/v0/ping").await;
    assert_eq!(status, 200);
    shutdown.cancel();
    server.await.unwrap().unwrap();
    assert!(!socket.exists());
}

#[tokio::test]
async fn a_taken_port_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = Config::new(
        Role::Master,
        dir.path().join("m.sock"),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    );
    config.prometheus = Some(taken.local_addr().unwrap());
    let err = serve(config, CancellationToken::new()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains(&taken.local_addr().unwrap().to_string()),
        "{err}"
    );
}

/// Checks an exposition with Debian's `promtool check metrics` (`apt-get install
/// prometheus`) when it is installed; says so and passes otherwise.
pub(crate) fn promtool_check(text: &str) {
    use std::io::Write as _;
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool is not installed; skipping its check");
        return;
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}\n{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
