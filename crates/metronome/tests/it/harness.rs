use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dcos_metronome::Clock;
use dcos_testkit::loopback::{self, Running};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running Metronome of the test.
pub struct Instance {
    pub addr: SocketAddr,
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

/// A master, agents and Metronomes on 127.0.0.1, sharing one embedded store (as the masters'
/// Metronomes share ZooKeeper) and one clock.
pub struct Env {
    pub master: Running,
    pub agents: Vec<(Running, String)>,
    pub metronomes: Vec<Option<Instance>>,
    pub store: dcos_store::Embedded,
    pub clock: Clock,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
}

impl Env {
    /// One Metronome on the system clock.
    pub async fn start(agents: usize) -> Env {
        Env::with(agents, 1, Clock::system()).await
    }

    pub async fn with(agents: usize, metronomes: usize, clock: Clock) -> Env {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let master = loopback::master().await;
        let dir = tempfile::tempdir().unwrap();
        let store = dcos_store::Embedded::open(dir.path().join("metronome.redb")).unwrap();
        let mut env = Env {
            master,
            agents: Vec::new(),
            metronomes: Vec::new(),
            store,
            clock,
            dir,
            client: reqwest::Client::new(),
        };
        for _ in 0..agents {
            let a = loopback::agent_of(env.master.addr, 10).await;
            env.agents.push(a);
        }
        for _ in 0..metronomes {
            env.start_metronome().await;
        }
        env.eventually(
            "a leading Metronome subscribed",
            Duration::from_secs(15),
            || async {
                let (code, _) = env.get("/v1/jobs").await;
                (code == 200).then_some(())
            },
        )
        .await;
        env
    }

    pub async fn start_metronome(&mut self) -> usize {
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = http.local_addr().unwrap();
        let n = self.metronomes.len();
        let config = dcos_metronome::Config {
            listen: addr,
            https: None,
            libprocess: None,
            masters: vec![self.master.addr],
            work_dir: self.dir.path().join(format!("metronome{n}")),
            store: dcos_store::Location::Embedded(self.dir.path().join("metronome.redb")),
            framework_name: "metronome".into(),
            ca_dir: None,
            credentials: None,
            verify_tokens: None,
        };
        let store = dcos_store::AnyStore::Embedded(self.store.session());
        let stop = CancellationToken::new();
        let s = stop.clone();
        let clock = self.clock.clone();
        let handle = tokio::spawn(async move {
            let listeners = dcos_metronome::Listeners {
                http,
                https: None,
                libprocess: None,
            };
            if let Err(e) = dcos_metronome::serve_with(listeners, config, store, clock, s).await {
                eprintln!("metronome ended: {e}");
            }
        });
        self.metronomes.push(Some(Instance { addr, stop, handle }));
        n
    }

    /// Ends Metronome `n` abruptly, as kill -9 does: its tasks are dropped mid-flight, its
    /// store session ends with them.
    pub async fn kill(&mut self, n: usize) {
        if let Some(i) = self.metronomes[n].take() {
            i.handle.abort();
            let _ = i.handle.await;
        }
    }

    fn addr(&self) -> SocketAddr {
        self.metronomes
            .iter()
            .flatten()
            .next()
            .expect("a running Metronome")
            .addr
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None).await
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .client
            .request(method.parse().unwrap(), self.url(path))
            .timeout(Duration::from_secs(10));
        if let Some(b) = body {
            req = req.json(&b);
        }
        match req.send().await {
            Ok(r) => {
                let code = r.status().as_u16();
                (code, r.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    pub async fn eventually<T, F, Fut>(&self, what: &str, within: Duration, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let end = tokio::time::Instant::now() + within;
        loop {
            if let Some(v) = f().await {
                return v;
            }
            if tokio::time::Instant::now() >= end {
                let (_, jobs) = self.get("/v1/jobs?embed=activeRuns&embed=history").await;
                panic!("timed out waiting for {what}\njobs: {jobs}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts a run of `job`; its id.
    pub async fn run(&self, job: &str) -> String {
        let (code, run) = self
            .send("POST", &format!("/v1/jobs/{job}/runs"), None)
            .await;
        assert_eq!(code, 201, "{run}");
        run["id"].as_str().unwrap().to_string()
    }

    /// Waits until run `run` of `job` has left the active set (404) and is in the history;
    /// whether it succeeded.
    pub async fn finished(&self, job: &str, run: &str, within: Duration) -> bool {
        self.eventually(&format!("run {run} of {job} finished"), within, || async {
            let (code, _) = self.get(&format!("/v1/jobs/{job}/runs/{run}")).await;
            if code != 404 {
                return None;
            }
            let (_, j) = self.get(&format!("/v1/jobs/{job}?embed=history")).await;
            let has = |list: &str| {
                j["history"][list]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|r| r["id"] == run))
            };
            if has("successfulFinishedRuns") {
                Some(true)
            } else if has("failedFinishedRuns") {
                Some(false)
            } else {
                None
            }
        })
        .await
    }

    pub async fn stop(mut self) {
        for i in self.metronomes.drain(..).flatten() {
            i.stop.cancel();
            let _ = i.handle.await;
        }
        for (a, _) in self.agents.drain(..) {
            a.stop().await;
        }
        self.master.stop().await;
    }
}

/// A job spec that runs `cmd`.
pub fn job(id: &str, cmd: &str) -> Value {
    serde_json::json!({"id": id, "run": {"cmd": cmd, "cpus": 0.1, "mem": 32, "disk": 0}})
}

pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}
