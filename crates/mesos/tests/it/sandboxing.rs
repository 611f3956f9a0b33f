//! What a framework, or a task, must not be able to do to the agent's host: write outside
//! its sandbox (through ids or fetch paths), fetch host files, read other sandboxes or the
//! agent's checkpoints through the files API, or run as a user other than its own.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use dcos_mesos::agent;
use dcos_mesos::recordio;
use dcos_testkit::loopback;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::harness::{agent_resources, launch, sandbox_of, task, Scheduler};

/// An agent started with a config the test shapes.
struct Agent {
    addr: SocketAddr,
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

impl Agent {
    async fn start(
        master: SocketAddr,
        work_dir: &Path,
        shape: impl FnOnce(&mut agent::Config),
    ) -> Agent {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = agent::Config {
            listen: addr,
            masters: vec![master],
            work_dir: work_dir.to_path_buf(),
            resources: agent_resources(),
            ..agent::Config::default()
        };
        shape(&mut config);
        let stop = CancellationToken::new();
        let s = stop.clone();
        let handle = tokio::spawn(async move {
            agent::serve_on(listener, config, s).await.unwrap();
        });
        Agent { addr, stop, handle }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = self.handle.await;
    }
}

/// A work dir a task's user (not only root) can reach, as the agent's is on a node.
fn work_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Waits until every one of `tasks` reached a terminal state; their last statuses.
async fn terminal(s: &mut Scheduler, tasks: &[&str]) -> HashMap<String, Value> {
    let mut done = HashMap::new();
    while done.len() < tasks.len() {
        let ev = s.next("UPDATE").await;
        let status = ev["update"]["status"].clone();
        if let Some(uuid) = status.get("uuid") {
            let ack = json!({"type": "ACKNOWLEDGE", "acknowledge": {"agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": uuid}});
            assert_eq!(s.call(ack).await.0, 202);
        }
        let id = status["task_id"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if status["state"]
            .as_str()
            .and_then(|s| s.parse::<dcos_mesos::api::TaskState>().ok())
            .is_some_and(|s| s.is_terminal())
        {
            done.insert(id, status);
        }
    }
    done
}

/// Launches `tasks` on the next offer and waits for all of them to end.
async fn run_all(s: &mut Scheduler, tasks: Vec<Value>) -> HashMap<String, Value> {
    let offer = s.offer().await;
    let ids: Vec<String> = tasks
        .iter()
        .map(|t| t["task_id"]["value"].as_str().unwrap().to_string())
        .collect();
    let tasks: Vec<Value> = tasks
        .into_iter()
        .map(|mut t| {
            t["agent_id"] = offer["agent_id"].clone();
            t
        })
        .collect();
    assert_eq!(s.call(launch(&offer, tasks)).await.0, 202);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    tokio::time::timeout(Duration::from_secs(60), terminal(s, &refs))
        .await
        .expect("every task ends")
}

fn cmd_task(id: &str, cmd: &str) -> Value {
    task(
        id,
        &json!({"agent_id": {"value": "set-on-launch"}}),
        cmd,
        0.1,
        &[],
    )
}

/// A server of fetchable artifacts: `/artifact` (7 bytes) and `/big` (4 KiB).
async fn artifacts() -> SocketAddr {
    let app = Router::new()
        .route("/artifact", get(|| async { "payload" }))
        .route("/big", get(|| async { vec![b'x'; 4096] }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// An empty directory outside every work dir, where escaping writes would land (removed
/// when dropped, even by a failing test).
fn unique_outside() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("dcos-rs-escape-")
        .tempdir()
        .unwrap()
}

#[tokio::test]
async fn fetches_stay_in_the_sandbox_and_local_files_in_the_allow_list() {
    let master = loopback::master().await;
    let dir = work_dir();
    let allowed = tempfile::tempdir().unwrap();
    std::fs::write(allowed.path().join("data.txt"), "-local").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", allowed.path().join("leak")).unwrap();
    let outside_dir = unique_outside();
    let outside = outside_dir.path();
    let allowed_dir = allowed.path().to_path_buf();
    let agent = Agent::start(master.addr, dir.path(), |c| {
        c.fetch_allowed_dirs = vec![allowed_dir];
        c.fetch_max_bytes = 1024;
    })
    .await;
    let web = artifacts().await;
    let mut s = Scheduler::subscribe(master.addr, crate::harness::framework("fetch")).await;
    let with_uris = |id: &str, cmd: &str, uris: Value| {
        let mut t = cmd_task(id, cmd);
        t["command"]["uris"] = uris;
        t
    };
    let artifact = format!("http://{web}/artifact");
    let escape = format!("{}/{}/rel", "../".repeat(20), outside.display());
    let tasks = vec![
        with_uris(
            "out-rel",
            "true",
            json!([{"value": artifact, "output_file": escape}]),
        ),
        with_uris(
            "out-abs",
            "true",
            json!([{"value": artifact, "output_file": outside.join("abs")}]),
        ),
        with_uris(
            "host-file",
            "true",
            json!([{"value": "file:///etc/hostname"}]),
        ),
        with_uris("host-path", "true", json!([{"value": "/etc/passwd"}])),
        with_uris(
            "via-link",
            "true",
            json!([{"value": format!("file://{}/leak", allowed.path().display())}]),
        ),
        with_uris(
            "too-big",
            "true",
            json!([{"value": format!("http://{web}/big")}]),
        ),
        with_uris(
            "fetched",
            "cat conf/app.txt data.txt",
            json!([{"value": artifact, "output_file": "conf/app.txt"}, {"value": format!("file://{}/data.txt", allowed.path().display())}]),
        ),
    ];
    let done = run_all(&mut s, tasks).await;
    for (id, says) in [
        ("out-rel", "relative path inside the sandbox"),
        ("out-abs", "relative path inside the sandbox"),
        ("host-file", "fetch_allowed_dirs"),
        ("host-path", "fetch_allowed_dirs"),
        ("via-link", "Failed to fetch"),
        ("too-big", "fetch_max_bytes"),
    ] {
        let st = &done[id];
        assert_eq!(st["state"], "TASK_FAILED", "{id}: {st}");
        assert_eq!(st["reason"], "REASON_CONTAINER_LAUNCH_FAILED", "{id}: {st}");
        let message = st["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{id}: {message}");
    }
    assert_eq!(
        done["fetched"]["state"], "TASK_FINISHED",
        "{}",
        done["fetched"]
    );
    let state = get_json_from(&agent, "/state").await;
    let sandbox = sandbox_of(&state, "fetched").expect("the task's sandbox in /state");
    let out = get_json_from(&agent, &format!("/files/read?path={sandbox}/stdout")).await;
    assert_eq!(out["data"], "payload-local");
    let written: Vec<_> = std::fs::read_dir(outside).unwrap().collect();
    assert!(
        written.is_empty(),
        "fetches wrote outside the sandbox: {written:?}"
    );
    agent.stop().await;
    master.stop().await;
}

async fn get_json_from(agent: &Agent, path: &str) -> Value {
    reqwest::get(agent.url(path))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn status_of(agent: &Agent, path: &str) -> u16 {
    reqwest::Client::new()
        .get(agent.url(path))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_files_api_serves_sandboxes_and_follows_no_symlink_out() {
    let master = loopback::master().await;
    let dir = work_dir();
    let agent = Agent::start(master.addr, dir.path(), |_| {}).await;
    let mut s = Scheduler::subscribe(master.addr, crate::harness::framework("files")).await;
    let cmd = "echo visible; ln -s /etc/passwd leak; ln -s ../../../../../../../.. up; mkfifo fifo";
    let done = run_all(&mut s, vec![cmd_task("linker", cmd)]).await;
    assert_eq!(
        done["linker"]["state"], "TASK_FINISHED",
        "{}",
        done["linker"]
    );
    let state = get_json_from(&agent, "/state").await;
    let sandbox = sandbox_of(&state, "linker").expect("the task's sandbox in /state");
    let work = dir.path().display().to_string();
    // `up` is the work dir itself: everything the files API must not show.
    assert!(Path::new(&sandbox).join("up/meta/agent_id").exists());

    let read = get_json_from(&agent, &format!("/files/read?path={sandbox}/stdout")).await;
    assert_eq!(read["data"], "visible\n");
    let latest = format!(
        "/frameworks/{}/executors/linker/runs/latest",
        s.framework_id
    );
    let read = get_json_from(&agent, &format!("/files/read?path={latest}/stdout")).await;
    assert_eq!(read["data"], "visible\n");
    let listed = get_json_from(&agent, &format!("/files/browse?path={sandbox}")).await;
    let leak = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == format!("{sandbox}/leak"))
        .expect("the symlink is listed");
    assert!(leak["mode"].as_str().unwrap().starts_with('l'), "{leak}");

    for path in [
        format!("/files/read?path={sandbox}/leak"),
        format!("/files/download?path={sandbox}/leak"),
        format!("/files/read?path={sandbox}/up/meta/agent_id"),
        format!("/files/browse?path={sandbox}/up"),
        format!("/files/read?path={work}/meta/agent_id"),
        format!("/files/browse?path={work}"),
        format!("/files/browse?path={work}/meta"),
        format!("/files/read?path={sandbox}/../../../../../../../meta/agent_id"),
        format!("/files/read?path={sandbox}/%2e%2e/%2e%2e/stdout"),
        "/files/read?path=/etc/passwd".to_string(),
    ] {
        assert_eq!(status_of(&agent, &path).await, 404, "{path}");
    }
    // A FIFO the task made must not hang the agent.
    assert_eq!(
        status_of(&agent, &format!("/files/read?path={sandbox}/fifo")).await,
        400
    );
    agent.stop().await;
    master.stop().await;
}

#[tokio::test]
async fn tasks_run_as_their_user_and_unknown_users_fail() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: switching users needs root");
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("a nobody user");
    let master = loopback::master().await;
    let dir = work_dir();
    let agent = Agent::start(master.addr, dir.path(), |_| {}).await;
    let framework = json!({"user": "nobody", "name": "users", "failover_timeout": 60.0});
    let mut s = Scheduler::subscribe(master.addr, framework).await;
    let mut as_root = cmd_task("as-root", "id -u");
    as_root["command"]["user"] = json!("root");
    let mut unknown = cmd_task("unknown", "id -u");
    unknown["command"]["user"] = json!("no-such-user-dcos-rs");
    let done = run_all(
        &mut s,
        vec![
            cmd_task("as-fw-user", "id -u; touch mine"),
            as_root,
            unknown,
        ],
    )
    .await;
    assert_eq!(
        done["as-fw-user"]["state"], "TASK_FINISHED",
        "{}",
        done["as-fw-user"]
    );
    assert_eq!(
        done["as-root"]["state"], "TASK_FINISHED",
        "{}",
        done["as-root"]
    );
    let failed = &done["unknown"];
    assert_eq!(failed["state"], "TASK_FAILED", "{failed}");
    assert_eq!(
        failed["reason"], "REASON_CONTAINER_LAUNCH_FAILED",
        "{failed}"
    );
    assert!(
        failed["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Failed to get user information for 'no-such-user-dcos-rs'"),
        "{failed}"
    );
    let state = get_json_from(&agent, "/state").await;
    for (task, uid) in [("as-fw-user", nobody.uid.as_raw()), ("as-root", 0)] {
        let sandbox = sandbox_of(&state, task).expect("the task's sandbox in /state");
        let out = get_json_from(&agent, &format!("/files/read?path={sandbox}/stdout")).await;
        assert_eq!(out["data"], format!("{uid}\n"), "{task}");
    }
    let sandbox = sandbox_of(&state, "as-fw-user").expect("the task's sandbox in /state");
    let listed = get_json_from(&agent, &format!("/files/browse?path={sandbox}")).await;
    let mine = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == format!("{sandbox}/mine"))
        .expect("the task wrote into its sandbox");
    assert_eq!(mine["uid"], nobody.name);
    agent.stop().await;
    master.stop().await;
}

/// A master that registers one agent and sends it the events the test gives, bypassing
/// the real master's validation to test the agent's own.
struct FakeMaster {
    addr: SocketAddr,
    events: mpsc::UnboundedSender<Value>,
    updates: mpsc::UnboundedReceiver<Value>,
}

impl FakeMaster {
    async fn start() -> FakeMaster {
        let (events_tx, events_rx) = mpsc::unbounded_channel::<Value>();
        let (updates_tx, updates) = mpsc::unbounded_channel::<Value>();
        let events_rx = std::sync::Arc::new(tokio::sync::Mutex::new(events_rx));
        let acks = events_tx.clone();
        let app = Router::new().route(
            "/api/v1/agent",
            post(move |body: Bytes| {
                let (events_rx, updates_tx, acks) =
                    (events_rx.clone(), updates_tx.clone(), acks.clone());
                async move {
                    let call: Value = serde_json::from_slice(&body).unwrap_or_default();
                    if call["type"] == "UPDATE" {
                        let status = &call["status"];
                        // Acknowledged at once, as by a scheduler, so the next update follows.
                        let _ = acks.send(json!({"type": "ACKNOWLEDGE", "framework_id": call["framework_id"], "task_id": status["task_id"], "uuid": status["uuid"]}));
                        let _ = updates_tx.send(status.clone());
                        return StatusCode::ACCEPTED.into_response();
                    }
                    let registered = json!({"type": "REGISTERED", "agent_id": {"value": "agent-1"}, "master_id": "fake"});
                    let stream = futures::stream::unfold(
                        (Some(registered), events_rx),
                        |(first, rx)| async move {
                            let next = match first {
                                Some(ev) => ev,
                                None => rx.lock().await.recv().await?,
                            };
                            let bytes = recordio::encode(next.to_string().as_bytes());
                            Some((Ok::<_, std::io::Error>(bytes), (None, rx)))
                        },
                    );
                    Body::from_stream(stream).into_response()
                }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeMaster {
            addr,
            events: events_tx,
            updates,
        }
    }

    fn run_task(&self, task: Value) {
        let framework = json!({"id": {"value": "fw-1"}, "user": "root", "name": "fake"});
        self.events
            .send(json!({"type": "RUN_TASK", "framework": framework, "task": task}))
            .unwrap();
    }

    /// The next terminal update of `task`.
    async fn terminal(&mut self, task: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let status = tokio::time::timeout_at(deadline, self.updates.recv())
                .await
                .unwrap_or_else(|_| panic!("no terminal update for {task}"))
                .unwrap();
            let state = status["state"].as_str().unwrap_or_default();
            if status["task_id"]["value"] == task
                && !["TASK_STAGING", "TASK_STARTING", "TASK_RUNNING"].contains(&state)
            {
                return status;
            }
        }
    }
}

#[tokio::test]
async fn ids_that_would_leave_the_work_dir_are_refused_by_the_agent() {
    let mut master = FakeMaster::start().await;
    let dir = work_dir();
    let agent = Agent::start(master.addr, dir.path(), |_| {}).await;
    let outside_dir = unique_outside();
    let outside = outside_dir.path();
    let escape = format!("{}{}", "../".repeat(20), outside.display());
    let task = |id: &str| json!({"name": id, "task_id": {"value": id}, "agent_id": {"value": "agent-1"}, "resources": [], "command": {"value": "echo hi > out"}});
    // A command task under an executor id that climbs out of the work dir.
    let mut climbing = task("climbing-executor");
    climbing["executor"] = json!({"type": "DEFAULT", "executor_id": {"value": escape}});
    master.run_task(climbing);
    // A custom executor whose id is `..`.
    let mut dotdot = task("dotdot-executor");
    dotdot["executor"] = json!({"executor_id": {"value": ".."}, "command": {"value": "sleep 5"}});
    master.run_task(dotdot);
    // A task id that is itself a path: nothing to report it under, nothing may be written.
    master.run_task(task(&escape));
    master.run_task(task("fine"));
    for id in ["climbing-executor", "dotdot-executor"] {
        let status = master.terminal(id).await;
        assert_eq!(status["state"], "TASK_ERROR", "{id}: {status}");
        assert_eq!(status["reason"], "REASON_TASK_INVALID", "{id}: {status}");
    }
    // The stream survived the bad events: a valid task still runs.
    assert_eq!(master.terminal("fine").await["state"], "TASK_FINISHED");
    let written: Vec<_> = std::fs::read_dir(outside).unwrap().collect();
    assert!(
        written.is_empty(),
        "the agent wrote outside its work dir: {written:?}"
    );
    let fw_dir = dir.path().join("slaves/agent-1/frameworks/fw-1");
    let dirs: Vec<_> = std::fs::read_dir(&fw_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(dirs, vec![std::ffi::OsString::from("executors")]);
    let executors: Vec<_> = std::fs::read_dir(fw_dir.join("executors"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(executors, vec![std::ffi::OsString::from("fine")]);
    agent.stop().await;
}
