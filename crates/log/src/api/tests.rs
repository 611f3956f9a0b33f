use super::*;
use crate::rotate::{RotatingLog, Rotation};
use crate::{Config, Tuning};
use axum::http::Request;
use http_body_util::BodyExt as _;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};
use tower::ServiceExt as _;

struct Fixture {
    logs: tempfile::TempDir,
    agent: tempfile::TempDir,
    shutdown: CancellationToken,
    router: Router,
}

fn fixture_with(tuning: Tuning, mesos_state: Option<String>) -> Fixture {
    let logs = tempfile::tempdir().unwrap();
    let agent = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let mut config = Config::new(logs.path(), logs.path().to_path_buf());
    config.sandboxes = Some(agent.path().to_path_buf());
    config.mesos_state = mesos_state;
    config.hostname = Some("node-1".into());
    config.tuning = tuning;
    let router = crate::router(config, shutdown.clone());
    Fixture {
        logs,
        agent,
        shutdown,
        router,
    }
}

fn fixture() -> Fixture {
    fixture_with(
        Tuning {
            poll: Duration::from_millis(20),
            ..Tuning::default()
        },
        None,
    )
}

impl Fixture {
    fn log(&self, stem: &str) -> RotatingLog {
        RotatingLog::open(self.logs.path(), stem, Rotation::default()).unwrap()
    }

    /// Writes `<stem> <n>` at second n for each n.
    fn write(&self, stem: &str, ns: impl IntoIterator<Item = u64>) {
        let log = self.log(stem);
        for n in ns {
            let ts = UNIX_EPOCH + Duration::from_secs(1_700_000_000 + n);
            log.append(ts, &[format!("{stem} {n}").as_bytes()]).unwrap();
        }
    }

    fn sandbox(&self) -> std::path::PathBuf {
        let dir = self
            .agent
            .path()
            .join("slaves/S0/frameworks/FW/executors/web.1/runs/C1");
        fs_err::create_dir_all(&dir).unwrap();
        dir
    }

    async fn get(&self, uri: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = Request::get(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.router
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }
}

async fn text(resp: Response) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The messages of a `text/plain` journal answer (after the time).
fn messages(body: &str) -> Vec<&str> {
    body.lines()
        .map(|l| l.split_once(": ").map_or(l, |(_, m)| m))
        .collect()
}

/// Reads frames of a followed answer until `done` says the text so far is enough.
async fn read_until(body: &mut Body, seen: &mut String, done: impl Fn(&str) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done(seen) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .expect("the stream sent what was expected in time")
            .expect("the stream is open")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            seen.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
}

/// The `data:` objects of an event stream.
fn events(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn ids(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .collect()
}

#[tokio::test]
async fn the_last_lines_of_a_unit_as_the_cli_asks_them() {
    let f = fixture();
    f.write("dcos-mesos-master.service", 0..20);
    f.write("dcos-marathon.service", 0..5);
    let resp = f
        .get(
            "/v1/range/?skip_prev=3&filter=_SYSTEMD_UNIT:dcos-mesos-master.service",
            &[("Accept", "text/plain")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert_eq!(resp.headers()["x-journal-skip-prev"], "3");
    assert_eq!(resp.headers()["x-journal-skip-next"], "0");
    let body = text(resp).await;
    assert_eq!(
        messages(&body),
        [
            "dcos-mesos-master.service 17",
            "dcos-mesos-master.service 18",
            "dcos-mesos-master.service 19"
        ]
    );
    let first = body.lines().next().unwrap();
    assert!(
        first.starts_with(&crate::format::local_time(1_700_000_017_000_000)),
        "{first}"
    );
}

#[tokio::test]
async fn without_a_filter_every_unit_is_read_in_time_order() {
    let f = fixture();
    f.write("dcos-mesos-master.service", [1, 3]);
    f.write("dcos-marathon.service", [2, 4]);
    f.write("dcos-adminrouter-agent", [5]);
    let body = text(f.get("/v2/component?skip=-4", &[]).await).await;
    assert_eq!(
        messages(&body),
        [
            "dcos-marathon.service 2",
            "dcos-mesos-master.service 3",
            "dcos-marathon.service 4",
            "dcos-adminrouter-agent 5"
        ]
    );
    // A unit named by DC/OS (with `.service`) whose file has no suffix.
    let body = text(
        f.get("/v2/component/dcos-adminrouter-agent.service?skip=-10", &[])
            .await,
    )
    .await;
    assert_eq!(messages(&body), ["dcos-adminrouter-agent 5"]);
}

#[tokio::test]
async fn json_entries_have_dcos_logs_shape() {
    let f = fixture();
    f.write("dcos-mesos-master.service", [7]);
    let resp = f
        .get("/v1/range/?limit=1", &[("Accept", "application/json")])
        .await;
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body = text(resp).await;
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(v["fields"]["MESSAGE"], "dcos-mesos-master.service 7");
    assert_eq!(v["fields"]["_SYSTEMD_UNIT"], "dcos-mesos-master.service");
    assert_eq!(v["fields"]["SYSLOG_IDENTIFIER"], "dcos-mesos-master");
    assert_eq!(v["fields"]["_HOSTNAME"], "node-1");
    assert_eq!(v["realtime_timestamp"], 1_700_000_007_000_000u64);
    assert!(v["cursor"]
        .as_str()
        .unwrap()
        .starts_with("s=dcos-mesos-master.service;"));
    assert!(v["monotonic_timestamp"].is_u64());
}

#[tokio::test]
async fn ranges_page_with_cursors_limits_and_skips() {
    let f = fixture();
    f.write("u.service", 0..10);
    let body = text(
        f.get(
            "/v1/range/?skip_next=2&limit=3",
            &[("Accept", "application/json")],
        )
        .await,
    )
    .await;
    let page: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<&str> = page
        .iter()
        .map(|v| v["fields"]["MESSAGE"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["u.service 2", "u.service 3", "u.service 4"]);
    // The next page starts after the last entry's cursor.
    let cursor = page[2]["cursor"].as_str().unwrap();
    let escaped = cursor.replace(';', "%3B").replace('=', "%3D");
    let body = text(
        f.get(&format!("/v1/range/?cursor={escaped}&limit=2"), &[])
            .await,
    )
    .await;
    assert_eq!(messages(&body), ["u.service 5", "u.service 6"]);
    // Back two from a cursor: the entry before it and the cursor's own.
    let body = text(
        f.get(
            &format!("/v1/range/?cursor={escaped}&skip_prev=2&limit=2"),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(messages(&body), ["u.service 3", "u.service 4"]);
    let body = text(f.get("/v1/range/?read_reverse=true&skip_prev=2", &[]).await).await;
    assert_eq!(
        messages(&body),
        [
            "u.service 8",
            "u.service 7",
            "u.service 6",
            "u.service 5",
            "u.service 4",
            "u.service 3",
            "u.service 2",
            "u.service 1",
            "u.service 0"
        ]
    );
}

#[tokio::test]
async fn the_entry_count_of_a_range_is_capped() {
    let f = fixture_with(
        Tuning {
            max_entries: 5,
            ..Tuning::default()
        },
        None,
    );
    f.write("u.service", 0..20);
    let resp = f.get("/v1/range/?skip_prev=50", &[]).await;
    assert_eq!(resp.headers()["x-journal-skip-prev"], "5");
    assert_eq!(messages(&text(resp).await).len(), 5);
    assert_eq!(
        messages(&text(f.get("/v1/range/", &[]).await).await).len(),
        5
    );
}

#[tokio::test]
async fn nothing_to_read_is_no_content() {
    let f = fixture();
    f.write("u.service", 0..3);
    for uri in [
        "/v1/range/?filter=_SYSTEMD_UNIT:nope.service&skip_prev=10",
        "/v1/range/?filter=_SYSTEMD_UNIT:../../etc/passwd",
        "/v2/component/nope.service?skip=-10",
        "/v2/component/..%2F..%2Fetc%2Fpasswd",
        "/v1/range/framework/FW/executor/E/container/C",
    ] {
        let resp = f.get(uri, &[]).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "{uri}");
    }
}

#[tokio::test]
async fn malformed_parameters_are_bad_requests() {
    let f = fixture();
    f.write("u.service", 0..3);
    for (uri, words) in [
        ("/v1/range/?filter=nocolon", "Incorrect filter"),
        ("/v1/range/?filter=a:b:c", "Incorrect filter"),
        ("/v1/range/?skip_prev=-1", "skip_prev"),
        ("/v1/range/?limit=x", "limit"),
        ("/v1/range/?cursor=nonsense", "Cursor"),
        ("/v1/range/?read_reverse=maybe", "read_reverse"),
        ("/v1/stream/?limit=3", "limit"),
        ("/v1/stream/?read_reverse=true", "read_reverse"),
        ("/v2/component?skip=x", "skip"),
        (
            "/v1/range/framework/FW/executor/../container/C",
            "executor id",
        ),
        (
            "/v1/range/framework/FW/executor/a%2Fb/container/C",
            "executor id",
        ),
        ("/v2/task/frameworks/FW/executors/web.1/runs/C1/..", "file"),
        (
            "/v2/task/frameworks/FW/executors/web.1/runs/C1/stdout?cursor=x",
            "cursor",
        ),
        ("/v1/fields/_SYSTEMD_UNIT", "not an allowed field"),
    ] {
        let resp = f.get(uri, &[]).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{uri}");
        let body = text(resp).await;
        assert!(body.contains(words), "{uri}: {body}");
    }
    let resp = f.get("/v1/nothing", &[]).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        f.get("/v1/fields/STREAM", &[]).await.status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn a_stream_sends_lines_written_after_it_started() {
    let f = fixture();
    f.write("dcos-mesos-master.service", 0..5);
    let resp = f
        .get(
            "/v1/stream/?skip_prev=2&filter=_SYSTEMD_UNIT:dcos-mesos-master.service",
            &[("Accept", "text/event-stream")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let mut seen = String::new();
    read_until(&mut body, &mut seen, |s| events(s).len() >= 2).await;
    f.write("dcos-mesos-master.service", 5..8);
    f.write("dcos-marathon.service", [100]);
    read_until(&mut body, &mut seen, |s| events(s).len() >= 5).await;
    let got: Vec<String> = events(&seen)
        .iter()
        .map(|e| e["fields"]["MESSAGE"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        got,
        (3..8)
            .map(|n| format!("dcos-mesos-master.service {n}"))
            .collect::<Vec<_>>()
    );
    // Every event has its cursor as id; a client that reconnects with the last one gets
    // what came after it, and nothing twice.
    let last_id = ids(&seen)[2].to_string();
    assert_eq!(ids(&seen).len(), 5);
    let resp = f
        .get(
            "/v1/stream/?skip_prev=2&filter=_SYSTEMD_UNIT:dcos-mesos-master.service",
            &[("Accept", "text/event-stream"), ("Last-Event-ID", &last_id)],
        )
        .await;
    let mut body = resp.into_body();
    let mut again = String::new();
    read_until(&mut body, &mut again, |s| events(s).len() >= 2).await;
    let got: Vec<String> = events(&again)
        .iter()
        .map(|e| e["fields"]["MESSAGE"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        got,
        ["dcos-mesos-master.service 6", "dcos-mesos-master.service 7"]
    );
}

#[tokio::test]
async fn a_followed_journal_picks_up_new_units_and_rotations() {
    let f = fixture_with(
        Tuning {
            poll: Duration::from_millis(20),
            rescan: Duration::from_millis(50),
            ..Tuning::default()
        },
        None,
    );
    f.write("a.service", [1]);
    let resp = f
        .get("/v2/component?skip=-1", &[("Accept", "text/event-stream")])
        .await;
    let mut body = resp.into_body();
    let mut seen = String::new();
    read_until(&mut body, &mut seen, |s| !events(s).is_empty()).await;
    // A unit whose log appears later, and a unit whose file rotates meanwhile.
    f.write("b.service", [2]);
    let small = RotatingLog::open(
        f.logs.path(),
        "a.service",
        Rotation {
            max_file_bytes: 60,
            rotated_files: 3,
        },
    )
    .unwrap();
    for n in 3..7 {
        let ts = UNIX_EPOCH + Duration::from_secs(1_700_000_000 + n);
        small
            .append(ts, &[format!("a.service {n}").as_bytes()])
            .unwrap();
    }
    read_until(&mut body, &mut seen, |s| events(s).len() >= 6).await;
    let mut got: Vec<String> = events(&seen)
        .iter()
        .map(|e| e["fields"]["MESSAGE"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "a.service 1",
            "a.service 3",
            "a.service 4",
            "a.service 5",
            "a.service 6",
            "b.service 2"
        ]
    );
}

#[tokio::test]
async fn an_idle_stream_gets_keepalives_and_ends_on_shutdown() {
    let f = fixture_with(
        Tuning {
            poll: Duration::from_millis(10),
            keepalive: Duration::from_millis(50),
            ..Tuning::default()
        },
        None,
    );
    let resp = f
        .get(
            "/v1/stream/?skip_prev=1",
            &[("Accept", "text/event-stream")],
        )
        .await;
    let mut body = resp.into_body();
    let mut seen = String::new();
    read_until(&mut body, &mut seen, |s| s.contains(": ping\n\n")).await;
    f.shutdown.cancel();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(frame) = body.frame().await {
            frame.unwrap();
        }
    })
    .await;
    assert!(end.is_ok(), "the stream ended when the server stopped");
}

fn write_sandbox(dir: &Path, name: &str, lines: std::ops::Range<u32>) {
    use std::io::Write as _;
    let mut file = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .unwrap();
    for n in lines {
        writeln!(file, "{name} {n}").unwrap();
    }
}

#[tokio::test]
async fn v1_task_logs_are_the_sandbox_streams() {
    let f = fixture();
    let sandbox = f.sandbox();
    write_sandbox(&sandbox, "stdout", 0..5);
    write_sandbox(&sandbox, "stderr", 0..2);
    let base = "/v1/range/framework/FW/executor/web.1/container/C1";
    let body = text(
        f.get(&format!("{base}?skip_prev=2&filter=STREAM:STDOUT"), &[])
            .await,
    )
    .await;
    assert_eq!(body, "stdout 3\nstdout 4\n");
    let body = text(
        f.get(
            &format!("{base}?filter=STREAM:STDERR"),
            &[("Accept", "application/json")],
        )
        .await,
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
    assert_eq!(v["fields"]["STREAM"], "STDERR");
    assert_eq!(v["fields"]["AGENT_ID"], "S0");
    assert_eq!(v["fields"]["CONTAINER_ID"], "C1");
    assert_eq!(v["fields"]["MESSAGE"], "stderr 0");
    assert!(v.get("realtime_timestamp").is_none());
    // Following stdout shows what the task writes later.
    let resp = f
        .get(
            "/v1/stream/framework/FW/executor/web.1/container/C1?skip_prev=1&filter=STREAM:STDOUT",
            &[("Accept", "text/event-stream")],
        )
        .await;
    let mut body = resp.into_body();
    let mut seen = String::new();
    read_until(&mut body, &mut seen, |s| !events(s).is_empty()).await;
    write_sandbox(&sandbox, "stdout", 5..7);
    read_until(&mut body, &mut seen, |s| events(s).len() >= 3).await;
    let got: Vec<String> = events(&seen)
        .iter()
        .map(|e| e["fields"]["MESSAGE"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, ["stdout 4", "stdout 5", "stdout 6"]);
}

#[tokio::test]
async fn v2_task_files_read_the_last_lines_and_follow() {
    let f = fixture();
    let sandbox = f.sandbox();
    write_sandbox(&sandbox, "stdout", 0..10);
    let base = "/v2/task/frameworks/FW/executors/web.1/runs/C1/stdout";
    let resp = f
        .get(
            &format!("{base}?cursor=END&skip=-3"),
            &[("Accept", "text/plain")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(text(resp).await, "stdout 7\nstdout 8\nstdout 9\n");
    let body = text(f.get(&format!("{base}?skip=2&limit=2"), &[]).await).await;
    assert_eq!(body, "stdout 2\nstdout 3\n");
    // Followed: each event's id is the offset of its line's end.
    let resp = f
        .get(
            &format!("{base}?cursor=END&skip=-1"),
            &[("Accept", "text/event-stream")],
        )
        .await;
    let mut body = resp.into_body();
    let mut seen = String::new();
    read_until(&mut body, &mut seen, |s| !events(s).is_empty()).await;
    write_sandbox(&sandbox, "stdout", 10..12);
    read_until(&mut body, &mut seen, |s| events(s).len() >= 3).await;
    let evs = events(&seen);
    assert_eq!(evs[0]["fields"]["MESSAGE"], "stdout 9");
    assert_eq!(evs[0]["fields"]["FILE"], "stdout");
    assert_eq!(evs[0]["fields"]["EXECUTOR_ID"], "web.1");
    assert_eq!(evs[2]["fields"]["MESSAGE"], "stdout 11");
    let got_ids = ids(&seen);
    // "stdout N\n" is 9 bytes: line 9 ends (before its newline) at 89.
    assert_eq!(got_ids, ["89", "99", "109"]);
    let resp = f
        .get(
            base,
            &[("Accept", "text/event-stream"), ("Last-Event-ID", "99")],
        )
        .await;
    let mut body = resp.into_body();
    let mut again = String::new();
    read_until(&mut body, &mut again, |s| !events(s).is_empty()).await;
    assert_eq!(events(&again)[0]["fields"]["MESSAGE"], "stdout 11");
}

#[tokio::test]
async fn v2_task_files_outside_the_sandbox_are_not_found() {
    let f = fixture();
    let sandbox = f.sandbox();
    let secret = f.agent.path().join("secret");
    fs_err::write(&secret, "s3cr3t\n").unwrap();
    std::os::unix::fs::symlink(&secret, sandbox.join("stdout")).unwrap();
    for uri in [
        "/v2/task/frameworks/FW/executors/web.1/runs/C1/stdout",
        "/v2/task/frameworks/FW/executors/web.1/runs/C1/missing",
        "/v2/task/frameworks/FW/executors/web.1/runs/NOPE/stderr",
    ] {
        let resp = f.get(uri, &[]).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{uri}");
        assert!(!text(resp).await.contains("s3cr3t"));
    }
    // A v1 read of the same run finds no stdout either.
    let resp = f
        .get(
            "/v1/range/framework/FW/executor/web.1/container/C1?filter=STREAM:STDOUT",
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_task_id_is_redirected_to_its_agents_sandbox() {
    let state = serde_json::json!({"frameworks": [{"id": "FW", "tasks": [
        {"id": "web.1", "name": "web", "framework_id": "FW", "executor_id": "", "slave_id": "S0",
         "statuses": [{"state": "TASK_RUNNING", "container_status": {"container_id": {"value": "C1"}}}]}
    ], "completed_tasks": []}]});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen_auth = Arc::new(std::sync::Mutex::new(None::<String>));
    let seen = seen_auth.clone();
    let master = Router::new()
        .route(
            "/redirect",
            get(|| async {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, "/master/state")],
                )
            }),
        )
        .route(
            "/master/state",
            get(move |headers: HeaderMap| {
                let seen = seen.clone();
                let state = state.clone();
                async move {
                    *seen.lock().unwrap() = headers
                        .get(header::AUTHORIZATION)
                        .map(|v| v.to_str().unwrap().to_string());
                    axum::Json(state)
                }
            }),
        );
    let server = tokio::spawn(async move { axum::serve(listener, master).await });
    let f = fixture_with(Tuning::default(), Some(format!("http://{addr}/redirect")));
    let resp = f
        .get(
            "/v2/task/web/file/stdout?cursor=END&skip=-10",
            &[("Authorization", "token=T")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        resp.headers()[header::LOCATION],
        "/system/v1/agent/S0/logs/v2/task/frameworks/FW/executors/web.1/runs/C1/stdout?cursor=END&skip=-10"
    );
    assert_eq!(seen_auth.lock().unwrap().as_deref(), Some("token=T"));
    let resp = f.get("/v2/task/web", &[]).await;
    assert_eq!(
        resp.headers()[header::LOCATION],
        "/system/v1/agent/S0/logs/v2/task/frameworks/FW/executors/web.1/runs/C1/stdout"
    );
    let resp = f.get("/v2/task/nope", &[]).await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(text(resp).await.contains("task not found"));
    server.abort();
}
