//! Packages: Cosmos' `/package/search` against nginx serving the same answer as a static
//! file, and `hello-world`'s install to TASK_RUNNING against the same app posted straight
//! to Marathon, in the same run.
//!
//! 1. Search. A Universe repository of N generated packages (packaging version 4.0, one
//!    version each, a config schema and a Marathon template) is written to a file; Cosmos
//!    (in this process, its own store file) has the shipped repository removed and that file
//!    added (`file://`), so the answer lists exactly those N. The query `pkg` matches every
//!    package: the full list, the largest answer. That answer, byte for byte, is written to
//!    a file that nginx (Debian's, `worker_processes auto`) serves with the search answer's
//!    media type: the ceiling for an answer that must be computed. `wrk -t2 -cC` runs S
//!    seconds against each, alternating, `rounds` times; Cosmos gets the POST with both
//!    vendor media types (a Lua script), nginx a GET of the file. The figures are the means.
//! 2. Install. A Mesos master and one real agent (the test kit's, in this process,
//!    [`ALLOCATION`] interval), Marathon in this process with its own store file, and a second
//!    Cosmos pointed at it with the shipped repository. `installs` times, alternating: Cosmos
//!    installs `hello-world` (`POST /package/install`, its defaults) and the time to its task's
//!    TASK_RUNNING is taken from Marathon's event stream (`status_update_event`, read from
//!    before the request); then it is uninstalled. The peer: the app Cosmos renders for that
//!    install (`/package/render`, the same JSON and labels) posted to Marathon's `/v2/apps`,
//!    timed the same way, then deleted. Each waits until the app is gone and the master runs
//!    no task before the next, and the k-th of n pauses k/n of the allocation interval
//!    first, so the requests land evenly over the master's allocation cycle.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine as _;
use dcos_mesos::api::TaskState;
use dcos_testkit::loopback;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::router::{free_port, nginx, wait_ok, wrk};
use crate::{median, Args, Kind, Param, Scenario};

/// The search every request asks: matched by every generated package's name.
const QUERY: &str = "pkg";
/// The shipped package installed, and its app.
const PACKAGE: &str = "hello-world";
const APP: &str = "/hello-world";
/// The master's allocation interval in the install part: short, so that the wait for an
/// offer does not drown what is measured.
const ALLOCATION: Duration = Duration::from_millis(10);
/// How long one install, uninstall or start may take.
const GIVE_UP: Duration = Duration::from_secs(60);

/// Cosmos' media type of a `<kind>` request (`request`) or answer of `version`.
fn media(kind: &str, request: bool, version: &str) -> String {
    let half = if request { "request" } else { "response" };
    format!("application/vnd.dcos.package.{kind}-{half}+json;charset=utf-8;version={version}")
}

const WORDS: &[&str] = &[
    "web",
    "service",
    "database",
    "queue",
    "cache",
    "proxy",
    "stream",
    "batch",
    "metrics",
    "search",
    "storage",
    "gateway",
    "scheduler",
    "monitor",
    "ledger",
    "broker",
];

/// The `i`-th generated package (`pkg-00001`, ...).
fn package(i: usize) -> Value {
    let name = format!("pkg-{i:05}");
    let word = |k: usize| WORDS[(i * 7 + k * 5) % WORDS.len()];
    let template = r#"{"id": "/{{service.name}}", "cmd": "sleep 3600", "cpus": {{service.cpus}}, "mem": {{service.mem}}, "instances": 1, "labels": {"DCOS_SERVICE_NAME": "{{service.name}}"}}"#;
    json!({
        "packagingVersion": "4.0",
        "name": name,
        "version": "1.0.0",
        "releaseVersion": 0,
        "maintainer": "bench@dcos-rs.invalid",
        "description": format!(
            "Generated package {i} for the search benchmark: a {} {} with a {} and a {}.",
            word(0), word(1), word(2), word(3)
        ),
        "tags": ["bench", word(0), word(2)],
        "selected": false,
        "framework": false,
        "config": {
            "type": "object",
            "properties": {"service": {"type": "object", "properties": {
                "name": {"type": "string", "default": name},
                "cpus": {"type": "number", "default": 0.1, "minimum": 0.01},
                "mem": {"type": "number", "default": 32, "minimum": 16},
            }}},
        },
        "marathon": {
            "v2AppMustacheTemplate": base64::engine::general_purpose::STANDARD.encode(template),
        },
    })
}

/// A Cosmos of the benchmark's, in this process.
struct Cosmos {
    addr: SocketAddr,
    client: reqwest::Client,
}

impl Cosmos {
    /// Starts one with its store in `dir/<name>.redb`, installing through `marathon`, and
    /// waits until it answers.
    async fn start(
        dir: &Path,
        name: &str,
        marathon: &str,
        stop: &CancellationToken,
    ) -> anyhow::Result<Cosmos> {
        let config = dcos_cosmos::Config {
            listen: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
            admin: None,
            marathon: marathon.into(),
            store: dcos_store::Location::Embedded(dir.join(format!("{name}.redb"))),
        };
        let cosmos = Cosmos {
            addr: config.listen,
            client: reqwest::Client::builder().timeout(GIVE_UP).build()?,
        };
        let stop = stop.clone();
        tokio::spawn(async move {
            if let Err(e) = dcos_cosmos::serve(config, stop).await {
                tracing::error!(error = %e, "the benchmark's Cosmos failed");
            }
        });
        let until = Instant::now() + Duration::from_secs(30);
        while cosmos
            .post("repository/list", "repository.list", "v1", &json!({}))
            .await
            .is_err()
        {
            anyhow::ensure!(Instant::now() < until, "Cosmos does not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(cosmos)
    }

    /// `POST /package/<path>` of a `<kind>` request, asking for the answer of `version`:
    /// the answer's bytes, which must be a 200.
    async fn post(
        &self,
        path: &str,
        kind: &str,
        version: &str,
        body: &Value,
    ) -> anyhow::Result<Vec<u8>> {
        let url = format!("http://{}/package/{path}", self.addr);
        let r = self
            .client
            .post(&url)
            .header("Content-Type", media(kind, true, "v1"))
            .header("Accept", media(kind, false, version))
            .body(body.to_string())
            .send()
            .await?;
        let status = r.status();
        let answer = r.bytes().await?.to_vec();
        anyhow::ensure!(
            status.is_success(),
            "POST {url}: {status}: {}",
            String::from_utf8_lossy(&answer)
        );
        Ok(answer)
    }

    /// [`Cosmos::post`], the answer read as JSON.
    async fn call(
        &self,
        path: &str,
        kind: &str,
        version: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        Ok(serde_json::from_slice(
            &self.post(path, kind, version, &body).await?,
        )?)
    }
}

/// The mean of `field` over wrk's runs.
fn mean(runs: &Value, field: &str) -> f64 {
    let runs = runs.as_array().map(Vec::as_slice).unwrap_or_default();
    runs.iter().filter_map(|r| r[field].as_f64()).sum::<f64>() / runs.len() as f64
}

/// Part 1: search requests per second, Cosmos against nginx serving its answer.
async fn search(args: &Args, dir: &Path) -> anyhow::Result<Value> {
    let stop = CancellationToken::new();
    // Cosmos stops with the part, whichever way it ends.
    let _stop = stop.clone().drop_guard();
    let count = args.num("packages");
    let (seconds, connections) = (args.num("seconds") as u64, args.num("connections"));
    let repo = dir.join("repo.json");
    let packages: Vec<Value> = (1..=count).map(package).collect();
    fs_err::write(&repo, json!({"packages": packages}).to_string())?;

    let cosmos = Cosmos::start(dir, "search", "http://127.0.0.1:1", &stop).await?;
    let delete = json!({"name": "Universe"});
    cosmos
        .call("repository/delete", "repository.delete", "v1", delete)
        .await?;
    let add = json!({"name": "bench", "uri": format!("file://{}", repo.display())});
    cosmos
        .call("repository/add", "repository.add", "v1", add)
        .await?;
    let request = json!({"query": QUERY});
    let answer = cosmos.post("search", "search", "v1", &request).await?;
    let listed = serde_json::from_slice::<Value>(&answer)?["packages"]
        .as_array()
        .map_or(0, Vec::len);
    anyhow::ensure!(
        listed == count,
        "the search lists {listed} packages, not {count}"
    );

    // The same answer as a static file.
    let root = dir.join("static");
    fs_err::create_dir_all(&root)?;
    fs_err::write(root.join("search"), &answer)?;
    let port = free_port()?;
    let server = format!(
        "  server {{\n    listen 127.0.0.1:{port};\n    location = /search {{\n      \
         root {root};\n      default_type \"{kind}\";\n    }}\n  }}\n",
        root = root.display(),
        kind = media("search", false, "v1"),
    );
    let peer = nginx(dir, &server)?;
    let peer_url = format!("http://127.0.0.1:{port}/search");
    wait_ok(&peer_url, None, &answer).await?;

    // wrk POSTs the request Cosmos needs with a script.
    let script = dir.join("search.lua");
    fs_err::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{request}'\n\
             wrk.headers[\"Content-Type\"] = \"{}\"\nwrk.headers[\"Accept\"] = \"{}\"\n",
            media("search", true, "v1"),
            media("search", false, "v1"),
        ),
    )?;
    let script = script.display().to_string();
    let cosmos_url = format!("http://{}/package/search", cosmos.addr);
    let mut runs = json!({"cosmos": [], "nginx": []});
    let rounds = args.num("rounds").max(1);
    for _ in 0..rounds {
        for (key, url, options) in [
            ("cosmos", &cosmos_url, vec!["-s", script.as_str()]),
            ("nginx", &peer_url, vec![]),
        ] {
            let figures = tokio::task::block_in_place(|| wrk(url, seconds, connections, &options))?;
            runs[key].as_array_mut().expect("an array").push(figures);
        }
    }
    drop(peer);
    let (ours, theirs) = (&runs["cosmos"], &runs["nginx"]);
    Ok(json!({
        "packages": count,
        "query": QUERY,
        "answer_bytes": answer.len(),
        "seconds_per_run": seconds,
        "rounds": rounds,
        "connections": connections,
        "runs": runs,
        "cosmos_rps": mean(ours, "rps"),
        "nginx_rps": mean(theirs, "rps"),
        "rps_ratio_to_nginx": mean(ours, "rps") / mean(theirs, "rps"),
        "cosmos_p99_ms": mean(ours, "p99_ms"),
        "nginx_p99_ms": mean(theirs, "p99_ms"),
        "p99_ratio_to_nginx": mean(ours, "p99_ms") / mean(theirs, "p99_ms"),
    }))
}

/// A task's state change, as Marathon's event stream told it, and when it was read.
struct Seen {
    app: String,
    state: TaskState,
    at: Instant,
}

/// Marathon's `status_update_event`s from now on, each with the instant it was read.
async fn task_events(marathon: SocketAddr) -> anyhow::Result<mpsc::UnboundedReceiver<Seen>> {
    let url = format!("http://{marathon}/v2/events?event_type=status_update_event");
    let mut response = reqwest::Client::new()
        .get(&url)
        .header("Accept", "text/event-stream")
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buffer = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            let at = Instant::now();
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let frame: Vec<u8> = buffer.drain(..end + 4).collect();
                let frame = String::from_utf8_lossy(&frame);
                for data in frame.lines().filter_map(|l| l.strip_prefix("data: ")) {
                    let Ok(event) = serde_json::from_str::<Value>(data) else {
                        continue;
                    };
                    let Ok(state) = serde_json::from_value(event["taskStatus"].clone()) else {
                        continue;
                    };
                    let app = event["appId"].as_str().unwrap_or_default().to_string();
                    if tx.send(Seen { app, state, at }).is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok(rx)
}

/// Waits for the app's first TASK_RUNNING read after `since`: the milliseconds from `since`.
async fn until_running(
    events: &mut mpsc::UnboundedReceiver<Seen>,
    since: Instant,
) -> anyhow::Result<f64> {
    let wait = async {
        while let Some(seen) = events.recv().await {
            if seen.app == APP && seen.state == TaskState::Running && seen.at >= since {
                return Ok(seen.at.duration_since(since).as_secs_f64() * 1000.0);
            }
        }
        anyhow::bail!("Marathon's event stream ended")
    };
    tokio::time::timeout(GIVE_UP, wait)
        .await
        .with_context(|| format!("{APP} not TASK_RUNNING within {GIVE_UP:?}"))?
}

/// Marathon (in this process, its own store file) framework of `master`, once registered:
/// its address and its task.
async fn marathon(
    dir: &Path,
    master: SocketAddr,
    stop: &CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = http.local_addr()?;
    let config = dcos_marathon::Config {
        listen: addr,
        masters: vec![master],
        store: dcos_store::Location::Embedded(dir.join("marathon.redb")),
        work_dir: dir.join("marathon"),
        framework_name: "marathon".into(),
        https: None,
        libprocess: None,
        ca_dir: None,
        credentials: None,
        verify_tokens: None,
    };
    let listeners = dcos_marathon::Listeners {
        http,
        https: None,
        libprocess: None,
    };
    let stop = stop.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = dcos_marathon::serve_on(listeners, config, stop).await {
            tracing::error!(error = %e, "the benchmark's Marathon failed");
        }
    });
    let info = format!("http://{addr}/v2/info");
    let until = Instant::now() + GIVE_UP;
    loop {
        let registered = async { reqwest::get(&info).await?.json::<Value>().await };
        if registered.await.is_ok_and(|i| i["frameworkId"].is_string()) {
            return Ok((addr, task));
        }
        anyhow::ensure!(Instant::now() < until, "Marathon did not register");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until Marathon has no app `APP` nor deployment, and the master runs no task.
async fn until_gone(
    client: &reqwest::Client,
    marathon: SocketAddr,
    master: &loopback::Running,
) -> anyhow::Result<()> {
    let until = Instant::now() + GIVE_UP;
    loop {
        let app = client
            .get(format!("http://{marathon}/v2/apps{APP}"))
            .send()
            .await?
            .status();
        let deployments: Value = client
            .get(format!("http://{marathon}/v2/deployments"))
            .send()
            .await?
            .json()
            .await?;
        let metrics: Value = client
            .get(master.url("/metrics/snapshot"))
            .send()
            .await?
            .json()
            .await?;
        let tasks = [
            "master/tasks_staging",
            "master/tasks_starting",
            "master/tasks_running",
        ]
        .iter()
        .map(|k| metrics[*k].as_f64().unwrap_or(0.0))
        .sum::<f64>();
        if app == reqwest::StatusCode::NOT_FOUND
            && deployments.as_array().is_some_and(Vec::is_empty)
            && tasks == 0.0
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < until,
            "{APP} still there after {GIVE_UP:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn summary(to_running: &[f64], answered: &[f64]) -> Value {
    json!({
        "samples_ms": to_running,
        "min_ms": to_running.iter().copied().reduce(f64::min),
        "median_ms": median(to_running),
        "max_ms": to_running.iter().copied().reduce(f64::max),
        "answered_median_ms": median(answered),
    })
}

/// Part 2: `hello-world` installed through Cosmos to TASK_RUNNING, against its app posted
/// to Marathon.
async fn install(args: &Args, dir: &Path) -> anyhow::Result<Value> {
    let installs = args.num("installs").max(1);
    let stop = CancellationToken::new();
    // Marathon and Cosmos stop with the part, whichever way it ends; the master and the
    // agent (which kills its tasks) on drop.
    let _stop = stop.clone().drop_guard();
    let master = loopback::master_with(ALLOCATION).await;
    let ports = loopback::free_port_range(10);
    let agent_dir = dir.join("agent");
    let agent = loopback::agent(master.addr, "127.0.0.1:0".parse()?, agent_dir, &ports).await;
    let (marathon, marathon_task) = marathon(dir, master.addr, &stop).await?;
    let cosmos = Cosmos::start(dir, "install", &format!("http://{marathon}"), &stop).await?;
    let client = reqwest::Client::builder().timeout(GIVE_UP).build()?;
    let mut events = task_events(marathon).await?;

    let request = json!({"packageName": PACKAGE});
    let rendered = cosmos
        .call("render", "render", "v1", request.clone())
        .await?;
    let app = &rendered["marathonJson"];
    anyhow::ensure!(app["id"] == APP, "{PACKAGE} renders {}", app["id"]);

    let mut version = Value::Null;
    let (mut ours, mut ours_answered) = (Vec::new(), Vec::new());
    let (mut direct, mut direct_answered) = (Vec::new(), Vec::new());
    for k in 0..installs {
        // Everything else is quick, so each request would land at the same point of the
        // master's allocation cycle: spread them evenly over it, the same for both.
        let pause = ALLOCATION.mul_f64(k as f64 / installs as f64);
        tokio::time::sleep(pause).await;
        let since = Instant::now();
        let installed = cosmos
            .call("install", "install", "v2", request.clone())
            .await?;
        ours_answered.push(since.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(installed["appId"] == APP, "install answered {installed}");
        version = installed["packageVersion"].clone();
        ours.push(until_running(&mut events, since).await?);
        cosmos
            .call("uninstall", "uninstall", "v1", request.clone())
            .await?;
        until_gone(&client, marathon, &master).await?;

        tokio::time::sleep(pause).await;
        let since = Instant::now();
        let posted = client
            .post(format!("http://{marathon}/v2/apps"))
            .json(app)
            .send()
            .await?;
        direct_answered.push(since.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            posted.status() == reqwest::StatusCode::CREATED,
            "POST /v2/apps: {}",
            posted.status()
        );
        direct.push(until_running(&mut events, since).await?);
        let deleted = client
            .delete(format!("http://{marathon}/v2/apps{APP}"))
            .send()
            .await?;
        anyhow::ensure!(
            deleted.status().is_success(),
            "DELETE /v2/apps{APP}: {}",
            deleted.status()
        );
        until_gone(&client, marathon, &master).await?;
    }
    // The framework first, so it does not see its master go.
    stop.cancel();
    let _ = marathon_task.await;
    drop(events);
    agent.stop().await;
    master.stop().await;
    let (ours, direct) = (
        summary(&ours, &ours_answered),
        summary(&direct, &direct_answered),
    );
    let ratio = |key: &str| {
        ours[key].as_f64().unwrap_or(f64::NAN) / direct[key].as_f64().unwrap_or(f64::NAN)
    };
    Ok(json!({
        "installs": installs,
        "allocation_interval_ms": ALLOCATION.as_millis() as u64,
        "package": PACKAGE,
        "version": version,
        "median_ratio_to_marathon": ratio("median_ms"),
        "max_ratio_to_marathon": ratio("max_ms"),
        "cosmos": ours,
        "marathon": direct,
    }))
}

async fn run(args: Args) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let search_dir = dir.path().join("search");
    let install_dir = dir.path().join("install");
    fs_err::create_dir_all(&search_dir)?;
    fs_err::create_dir_all(&install_dir)?;
    let search = search(&args, &search_dir).await?;
    let install = install(&args, &install_dir).await?;
    Ok(json!({"search": search, "install": install}))
}

const PARAMS: &[Param] = &[
    Param {
        key: "packages",
        kind: Kind::Num,
        full: "1000",
        tiny: "50",
        help: "generated packages in the searched repository",
    },
    Param {
        key: "seconds",
        kind: Kind::Num,
        full: "10",
        tiny: "1",
        help: "seconds per wrk run",
    },
    Param {
        key: "connections",
        kind: Kind::Num,
        full: "64",
        tiny: "8",
        help: "wrk's open connections",
    },
    Param {
        key: "rounds",
        kind: Kind::Num,
        full: "2",
        tiny: "1",
        help: "wrk runs of Cosmos and of nginx, alternating",
    },
    Param {
        key: "installs",
        kind: Kind::Num,
        full: "30",
        tiny: "1",
        help: "installs through Cosmos and posts to Marathon, alternating",
    },
];

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "packages",
    about: "Cosmos: /package/search against nginx serving its answer; install to TASK_RUNNING against Marathon",
    params: PARAMS,
    run: |args| Box::pin(run(args)),
    section,
};

fn section(doc: &Value) -> String {
    use crate::report::{heading, num, ratio, table};
    let (s, i) = (&doc["figures"]["search"], &doc["figures"]["install"]);
    let mut out = heading("Packages: Cosmos search and install", doc);
    out.push_str(&format!(
        "Release build. **Search.** A Universe repository of {} generated packages \
         (packaging version 4.0, a config schema and a Marathon template each) in a file, added to Cosmos (in the \
         benchmark's process) with a `file://` URI, the shipped repository removed. Every \
         request is `POST /package/search` of `{{\"query\": \"{}\"}}`, which every package \
         matches: the full list ({} bytes), the most expensive answer. nginx (Debian's \
         `nginx-light`, `worker_processes auto`) serves that answer, byte for byte, as a \
         static file with the same media type (a GET): the ceiling for an answer that must be \
         computed. `wrk -t2 -c{}`, each server {} times for {} s, alternating; the figures \
         are the means.\n\n",
        num(&s["packages"], 0),
        s["query"].as_str().unwrap_or("?"),
        num(&s["answer_bytes"], 0),
        s["connections"],
        s["rounds"],
        s["seconds_per_run"],
    ));
    out.push_str(&table(
        &[
            "figure",
            "Cosmos (dcos-rs)",
            "nginx, static file (same run)",
            "ratio",
        ],
        &[
            vec![
                "requests per second".into(),
                num(&s["cosmos_rps"], 0),
                num(&s["nginx_rps"], 0),
                ratio(&s["rps_ratio_to_nginx"]),
            ],
            vec![
                "p99 latency (ms)".into(),
                num(&s["cosmos_p99_ms"], 2),
                num(&s["nginx_p99_ms"], 2),
                ratio(&s["p99_ratio_to_nginx"]),
            ],
        ],
    ));
    out.push_str(&format!(
        "\n**Install.** A Mesos master (allocating every {} ms, so that the wait for an offer \
         does not drown what is measured; DC/OS' default is 1 s) and one real agent, both the \
         test kit's, and Marathon, all in the benchmark's process, and a Cosmos with the \
         shipped repository. {} times, alternating: `POST /package/install` of `{}` (version \
         {}, its defaults) through Cosmos, then uninstalled; and the app Cosmos renders for \
         it (`/package/render`: the same JSON and labels) posted to Marathon's `/v2/apps`, \
         then deleted. Each is timed from the request to its task's TASK_RUNNING as \
         Marathon's event stream (`status_update_event`, subscribed before) tells it. The \
         next starts once the app is gone and the master runs no task, after a pause of k/n \
         of the allocation interval for the k-th of n (the same for both), so that the \
         requests land evenly over the master's allocation cycle. \"Request answered\" is \
         the install's or the POST's own answer.\n\n",
        i["allocation_interval_ms"],
        i["installs"],
        i["package"].as_str().unwrap_or("?"),
        i["version"].as_str().unwrap_or("?"),
    ));
    let row = |name: &str, f: &Value| {
        vec![
            name.to_string(),
            num(&f["min_ms"], 1),
            num(&f["median_ms"], 1),
            num(&f["max_ms"], 1),
            num(&f["answered_median_ms"], 1),
        ]
    };
    out.push_str(&table(
        &[
            "to TASK_RUNNING",
            "min (ms)",
            "median (ms)",
            "max (ms)",
            "request answered, median (ms)",
        ],
        &[
            row("install through Cosmos", &i["cosmos"]),
            row("same app posted to Marathon (same run)", &i["marathon"]),
            vec![
                "ratio".into(),
                String::new(),
                ratio(&i["median_ratio_to_marathon"]),
                ratio(&i["max_ratio_to_marathon"]),
                String::new(),
            ],
        ],
    ));
    out
}
