//! Tasks' StatsD, as DC/OS' metrics module gives it: each container's own UDP socket, named
//! in the task's environment, relayed to the metrics collector with the container's ids and
//! closed when the task ends; and the container's statistics in `/containers`.

use std::time::Duration;

use dcos_mesos::agent;
use dcos_testkit::loopback;
use serde_json::{json, Value};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

use crate::harness::{agent_resources, eventually, framework, launch, sandbox_of, task, Scheduler};

async fn get(url: String) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn a_tasks_statsd_reaches_the_collector_with_its_container_until_it_ends() {
    let master = loopback::master().await;
    let dir = tempfile::tempdir().unwrap();
    let collector = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = agent::Config {
        listen: addr,
        masters: vec![master.addr],
        work_dir: dir.path().into(),
        resources: agent_resources(),
        container_init: loopback::dcos_binary(),
        statsd: Some(collector.local_addr().unwrap()),
        ..agent::Config::default()
    };
    let stop = CancellationToken::new();
    let agent_task = tokio::spawn({
        let stop = stop.clone();
        async move { agent::serve_on(listener, config, stop).await.unwrap() }
    });

    let mut s = Scheduler::subscribe(master.addr, framework("statsd")).await;
    let offer = s.offer().await;
    let cmd = "echo \"$STATSD_UDP_HOST $STATSD_UDP_PORT\" > statsd.txt && exec sleep 600";
    let t = task("emitter", &offer, cmd, 0.1, &[]);
    assert_eq!(s.call(launch(&offer, vec![t])).await.0, 202);
    let running = s.until("emitter", "TASK_RUNNING").await;

    let containers = get(format!("http://{addr}/containers")).await;
    let c = &containers[0];
    let container_id = c["container_id"].as_str().unwrap().to_string();
    assert_eq!(containers.as_array().unwrap().len(), 1, "{containers}");
    let stats = &c["statistics"];
    assert_eq!(stats["mem_limit_bytes"], 32 * 1024 * 1024, "{stats}");
    assert_eq!(stats["cpus_limit"], 0.1);
    assert!(stats["processes"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["threads"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["mem_total_bytes"].as_u64().unwrap() > 0, "{stats}");
    assert!(stats["disk_used_bytes"].is_u64(), "{stats}");

    let state = get(format!("http://{addr}/state")).await;
    let sandbox = sandbox_of(&state, "emitter").unwrap();
    let told = eventually(Duration::from_secs(10), "the task's statsd.txt", || async {
        std::fs::read_to_string(format!("{sandbox}/statsd.txt"))
            .ok()
            .filter(|t| t.ends_with('\n'))
    })
    .await;
    let (host, port) = told.trim().split_once(' ').unwrap();
    assert_eq!(host, "127.0.0.1", "the agent's IP");
    let port: u16 = port.parse().unwrap();

    let task_socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    task_socket
        .send_to(
            b"statsd_tester.time.uptime:42|g|#test_tag_key:test_tag_value",
            (host, port),
        )
        .await
        .unwrap();
    let mut buf = vec![0; 70_000];
    let n = tokio::time::timeout(Duration::from_secs(10), collector.recv(&mut buf))
        .await
        .expect("the relayed datagram")
        .unwrap();
    let (origin, payload) = dcos_metrics::relay::parse(&buf[..n]).unwrap();
    assert_eq!(origin.container_id, container_id);
    assert_eq!(origin.executor_id, "emitter");
    assert_eq!(origin.framework_id, s.framework_id);
    assert_eq!(
        payload,
        b"statsd_tester.time.uptime:42|g|#test_tag_key:test_tag_value"
    );

    let snapshot = get(format!("http://{addr}/metrics/snapshot")).await;
    assert_eq!(snapshot["slave/tasks_running"], 1, "{snapshot}");
    assert_eq!(snapshot["slave/registered"], 1, "{snapshot}");

    let kill = json!({"type": "KILL", "kill": {"task_id": {"value": "emitter"}, "agent_id": running["agent_id"]}});
    assert_eq!(s.call(kill).await.0, 202);
    s.until("emitter", "TASK_KILLED").await;
    eventually(
        Duration::from_secs(10),
        "the container's StatsD socket closed",
        || async { std::net::UdpSocket::bind((host, port)).ok() },
    )
    .await;

    stop.cancel();
    let _ = agent_task.await;
    master.stop().await;
}
