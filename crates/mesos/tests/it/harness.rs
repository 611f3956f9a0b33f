use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use dcos_mesos::recordio::Decoder;
use dcos_mesos::resources::Resources;
use dcos_testkit::loopback;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use dcos_testkit::loopback::Running;

/// The resources of a test agent: 2 cpus, 1 GiB, and two small port ranges.
pub fn agent_resources() -> Resources {
    Resources {
        cpus: 2.0,
        mem: 1024.0,
        disk: 1024.0,
        gpus: 0.0,
        ports: "[31000-31009, 31100-31100]".parse().unwrap(),
    }
}

/// Starts a test agent of `master` on `listen` (port 0 for any).
pub async fn agent_on(listen: SocketAddr, master: SocketAddr, work_dir: PathBuf) -> Running {
    loopback::agent_with(master, listen, work_dir, agent_resources()).await
}

/// Starts a test agent of `master`.
pub async fn agent(master: SocketAddr, work_dir: PathBuf) -> Running {
    agent_on("127.0.0.1:0".parse().unwrap(), master, work_dir).await
}

/// GETs JSON from a server.
pub async fn get(server: &Running, path: &str) -> Value {
    reqwest::get(server.url(path))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A FrameworkInfo that survives a minute of disconnection.
pub fn framework(name: &str) -> Value {
    json!({"user": "root", "name": name, "failover_timeout": 60.0})
}

/// The one wait of async tests.
pub use dcos_testkit::eventually_async as eventually;

/// A scheduler speaking the v1 scheduler API.
pub struct Scheduler {
    pub master: SocketAddr,
    pub framework_id: String,
    pub stream_id: String,
    events: mpsc::UnboundedReceiver<Value>,
    reader: JoinHandle<()>,
    client: reqwest::Client,
}

impl Scheduler {
    pub async fn subscribe(master: SocketAddr, framework_info: Value) -> Scheduler {
        let client = reqwest::Client::new();
        let mut call =
            json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": framework_info}});
        if let Some(id) = framework_info.get("id") {
            call["framework_id"] = id.clone();
        }
        let resp = client
            .post(format!("http://{master}/api/v1/scheduler"))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .json(&call)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "SUBSCRIBE answered {}", resp.status());
        let stream_id = resp
            .headers()
            .get("Mesos-Stream-Id")
            .expect("Mesos-Stream-Id header")
            .to_str()
            .unwrap()
            .to_string();
        let (tx, mut events) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            let mut body = resp.bytes_stream();
            let mut decoder = Decoder::new();
            while let Some(Ok(chunk)) = body.next().await {
                decoder.feed(&chunk);
                while let Ok(Some(record)) = decoder.next_record() {
                    let _ = tx.send(serde_json::from_slice::<Value>(&record).unwrap());
                }
            }
        });
        let first = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first["type"], "SUBSCRIBED", "{first}");
        let framework_id = first["subscribed"]["framework_id"]["value"]
            .as_str()
            .unwrap()
            .to_string();
        Scheduler {
            master,
            framework_id,
            stream_id,
            events,
            reader,
            client,
        }
    }

    pub async fn call(&self, mut call: Value) -> (u16, String) {
        call["framework_id"] = json!({"value": self.framework_id});
        let resp = self
            .client
            .post(format!("http://{}/api/v1/scheduler", self.master))
            .header("Content-Type", "application/json")
            .header("Mesos-Stream-Id", &self.stream_id)
            .json(&call)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// The next event of `kind`, skipping heartbeats and others.
    pub async fn next(&mut self, kind: &str) -> Value {
        let end = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ev = tokio::time::timeout_at(end, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no {kind} event in time"))
                .expect("stream ended");
            if ev["type"] == kind {
                return ev;
            }
        }
    }

    /// The next update for `task`, acknowledged if it carries a uuid.
    pub async fn update(&mut self, task: &str) -> Value {
        loop {
            let ev = self.next("UPDATE").await;
            let status = ev["update"]["status"].clone();
            if let Some(uuid) = status.get("uuid") {
                let (code, _) = self.call(json!({"type": "ACKNOWLEDGE", "acknowledge": {"agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": uuid}})).await;
                assert_eq!(code, 202);
            }
            if status["task_id"]["value"] == task {
                return status;
            }
        }
    }

    /// Waits for `task` to reach `state`, acknowledging along the way.
    pub async fn until(&mut self, task: &str, state: &str) -> Value {
        loop {
            let st = self.update(task).await;
            if st["state"] == state {
                return st;
            }
        }
    }

    pub async fn offer(&mut self) -> Value {
        self.next("OFFERS").await["offers"]["offers"][0].clone()
    }

    /// Drops the subscription's connection (a scheduler crash).
    pub fn disconnect(self) {
        self.reader.abort();
    }
}

pub fn task(id: &str, offer: &Value, cmd: &str, cpus: f64, ports: &[(u64, u64)]) -> Value {
    let mut resources = vec![
        json!({"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}}),
        json!({"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}),
    ];
    if !ports.is_empty() {
        resources.push(json!({"name": "ports", "type": "RANGES", "ranges": {"range": ports.iter().map(|(b, e)| json!({"begin": b, "end": e})).collect::<Vec<_>>()}}));
    }
    json!({"name": id, "task_id": {"value": id}, "agent_id": offer["agent_id"], "resources": resources, "command": {"value": cmd}})
}

pub fn launch(offer: &Value, tasks: Vec<Value>) -> Value {
    json!({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH", "launch": {"task_infos": tasks}}]}})
}

/// The sandbox directory of `executor` (a command task's executor is the task) in an agent's
/// `/state`, among running and completed frameworks and executors.
pub fn sandbox_of(agent_state: &Value, executor: &str) -> Option<String> {
    let frameworks = |key: &str| {
        agent_state[key]
            .as_array()
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
    };
    frameworks("frameworks")
        .into_iter()
        .chain(frameworks("completed_frameworks"))
        .flat_map(|f| {
            f["executors"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(f["completed_executors"].as_array().into_iter().flatten())
        })
        .find(|e| e["id"] == executor)
        .and_then(|e| e["directory"].as_str().map(str::to_string))
}
