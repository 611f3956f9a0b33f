use std::net::SocketAddr;
use std::time::Duration;

use dcos_testkit::loopback::{self, Running};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A master, agents and Marathon, all on 127.0.0.1.
pub struct Env {
    pub master: Running,
    pub agents: Vec<(Running, std::path::PathBuf, String)>,
    pub marathon: Option<(SocketAddr, CancellationToken, JoinHandle<()>)>,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    pub https: Option<SocketAddr>,
    pub libprocess: Option<SocketAddr>,
}

impl Env {
    pub async fn start(agents: usize) -> Env {
        let master = loopback::master().await;
        let dir = tempfile::tempdir().unwrap();
        let mut env = Env {
            master,
            agents: Vec::new(),
            marathon: None,
            dir,
            client: reqwest::Client::new(),
            https: None,
            libprocess: None,
        };
        for i in 0..agents {
            let work = env.dir.path().join(format!("agent{i}"));
            let ports = loopback::free_port_range(10);
            let a = loopback::agent(
                env.master.addr,
                "127.0.0.1:0".parse().unwrap(),
                work.clone(),
                &ports,
            )
            .await;
            env.agents.push((a, work, ports));
        }
        env.start_marathon().await;
        env
    }

    pub async fn start_marathon(&mut self) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let https = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let libprocess = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.https = Some(https.local_addr().unwrap());
        self.libprocess = Some(libprocess.local_addr().unwrap());
        let config = dcos_marathon::Config {
            listen: addr,
            https: None,
            libprocess: None,
            masters: vec![self.master.addr],
            work_dir: self.dir.path().join("marathon"),
            store: dcos_store::Location::Embedded(self.dir.path().join("marathon/marathon.redb")),
            framework_name: "marathon".into(),
            ca_dir: None,
            credentials: None,
            verify_tokens: None,
        };
        let s = stop.clone();
        let handle = tokio::spawn(async move {
            let listeners = dcos_marathon::Listeners {
                http: listener,
                https: Some(https),
                libprocess: Some(libprocess),
            };
            dcos_marathon::serve_on(listeners, config, s).await.unwrap();
        });
        self.marathon = Some((addr, stop, handle));
        self.eventually("marathon subscribed", Duration::from_secs(10), || async {
            let (_, info) = self.get("/v2/info").await;
            info["frameworkId"].as_str().map(|_| ())
        })
        .await;
    }

    pub async fn stop_marathon(&mut self) {
        if let Some((_, stop, handle)) = self.marathon.take() {
            stop.cancel();
            let _ = handle.await;
        }
    }

    /// Restarts agent `i` on the same address and work dir.
    pub async fn restart_agent(&mut self, i: usize) {
        let (a, work, ports) = self.agents.remove(i);
        let addr = a.addr;
        a.stop_keeping_tasks().await;
        let a = loopback::agent(self.master.addr, addr, work.clone(), &ports).await;
        self.agents.insert(i, (a, work, ports));
    }

    fn url(&self, path: &str) -> String {
        let addr = self.marathon.as_ref().expect("marathon is running").0;
        format!("http://{addr}{path}")
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.client.request(method.parse().unwrap(), self.url(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }

    /// testkit's wait, that shows Marathon's apps and queue when it times out.
    pub async fn eventually<T, F, Fut>(&self, what: &str, within: Duration, f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        match dcos_testkit::poll_until(within, f).await {
            Some(v) => v,
            None => {
                let (_, apps) = self.get("/v2/apps?embed=apps.tasks").await;
                let (_, queue) = self.get("/v2/queue").await;
                panic!(
                    "timed out after {within:?} waiting for {what}\napps: {apps}\nqueue: {queue}"
                );
            }
        }
    }

    /// Waits until `app` has exactly `n` running tasks and no deployment; returns the tasks.
    pub async fn settled(&self, app: &str, n: usize) -> Vec<Value> {
        self.eventually(
            &format!("{app} settled at {n} running tasks"),
            Duration::from_secs(30),
            || async {
                let (code, v) = self.get(&format!("/v2/apps{app}")).await;
                if code != 200 {
                    return None;
                }
                let tasks = v["app"]["tasks"].as_array()?.clone();
                let running = tasks
                    .iter()
                    .filter(|t| t["state"] == "TASK_RUNNING")
                    .count();
                (running == n && tasks.len() == n && v["app"]["deployments"] == json!([]))
                    .then_some(tasks)
            },
        )
        .await
    }

    pub async fn stop(mut self) {
        self.stop_marathon().await;
        for (a, _, _) in self.agents.drain(..) {
            a.stop().await;
        }
        self.master.stop().await;
    }
}

/// The ports of a task.
pub fn ports(task: &Value) -> Vec<u64> {
    task["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect()
}

/// Whether `port` lies in a Mesos range set like `[20000-20009]`.
pub fn in_ranges(port: u64, ranges: &str) -> bool {
    ranges
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .filter_map(|r| {
            let (a, b) = r.trim().split_once('-')?;
            Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?))
        })
        .any(|(a, b)| (a..=b).contains(&port))
}
