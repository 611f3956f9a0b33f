//! The real Admin Router's own routing table (`../shared/reference/data/adminrouter/*.yml`,
//! its test harness' data) run against this router.
//!
//! Everything runs in a fresh network namespace, so the harness' own addresses are free:
//! mock upstreams listen exactly where the table says (`127.0.0.1:8181`, `127.0.0.2:5050`,
//! unix sockets by their file names) and answer with who they are and the path they saw. The
//! mock Mesos leader and Marathon also describe the agents, frameworks and apps the table's
//! service and agent entries need. For each entry of a master or agent router: the path
//! sent reaches the named upstream as the expected path, redirects have their status, and
//! `Location` headers are rewritten as listed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use dcos_adminrouter::proxy::Upstream;
use dcos_adminrouter::routes::{Fixed, Role};
use dcos_adminrouter::{Config, Router};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/reference/data/adminrouter"
);
/// An address that is no cluster node: a mock listens there, and the router must never
/// proxy to it.
const OUTSIDE: &str = "127.0.0.9:16001";
const AGENT_S1: &str = "de1baf83-c36c-4d23-9cb0-f89f596cd6ab-S1";
const AGENT_S0: &str = "de1baf83-c36c-4d23-9cb0-f89f596cd6ab-S0";

/// Entries this router answers differently on purpose, with why.
const DEPARTURES: &[(&str, &str)] = &[(
    "/dcos-metadata/ui-config.json",
    "no IAM (8101) in dcos-rs: the router answers the open cluster's UI config itself",
)];

fn departure(text: &str) -> Option<&'static str> {
    DEPARTURES
        .iter()
        .find(|(k, _)| text.contains(k))
        .map(|(_, why)| *why)
}

/// A mock upstream: who it is, and what the discovery endpoints answer.
#[derive(Clone)]
struct Mock {
    id: String,
    extra: Arc<BTreeMap<&'static str, Value>>,
}

async fn reflect(State(mock): State<Mock>, req: Request) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    if let Some(v) = mock.extra.get(req.uri().path()) {
        return axum::Json(v.clone()).into_response();
    }
    // The location tests ask the upstream to redirect somewhere.
    if let Some(loc) = req.headers().get("x-set-location").cloned() {
        return (
            axum::http::StatusCode::TEMPORARY_REDIRECT,
            [(axum::http::header::LOCATION, loc)],
            "",
        )
            .into_response();
    }
    axum::Json(json!({"endpoint_id": mock.id, "path": path})).into_response()
}

fn mesos_state() -> Value {
    json!({
        "leader": "master@127.0.0.2:5050",
        "slaves": [
            {"id": AGENT_S1, "pid": "slave(1)@127.0.0.2:15001"},
            {"id": AGENT_S0, "pid": "slave(1)@127.0.0.3:15002"},
        ],
        "frameworks": [
            {"name": "marathon", "webui_url": "http://127.0.0.1:8080"},
            {"name": "metronome", "webui_url": "http://127.0.0.1:9000"},
            {"name": "scheduler-alwaysthere", "webui_url": "http://127.0.0.1:16000"},
            {"name": "nest2/nest1/scheduler-onlymesos", "webui_url": "http://127.0.0.1:18002"},
            {"name": "scheduler-onlymesosdns.nest1.nest2", "webui_url": ""},
            // A framework anyone could register, pointing the router outside the cluster.
            {"name": "outsider", "webui_url": format!("http://{OUTSIDE}")},
            // A framework whose web UI is the Mesos master itself (its agent API inside).
            {"name": "mesos-itself", "webui_url": "http://127.0.0.2:5050"},
        ],
    })
}

fn marathon_apps() -> Value {
    let app = |name: &str, port: u16| {
        json!({"id": format!("/{name}"), "labels": {"DCOS_SERVICE_NAME": name,
            "DCOS_SERVICE_PORT_INDEX": "0", "DCOS_SERVICE_SCHEME": "http"},
            "tasks": [{"state": "TASK_RUNNING", "host": "127.0.0.1", "ports": [port]}]})
    };
    let mut outside = app("outsider-app", 16001);
    outside["tasks"][0]["host"] = json!("127.0.0.9");
    json!({"apps": [
        outside,
        app("scheduler-alwaysthere", 16000),
        app("nest1/scheduler-alwaysthere", 17000),
        app("nest2/nest1/scheduler-alwaysthere", 18000),
        app("nest2/nest1/scheduler-onlymarathon", 18001),
    ]})
}

/// Every upstream the table names, as (id, where to listen).
fn upstream_ids(entries: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = entries
        .iter()
        .filter_map(|e| e["tests"]["is_upstream_correct"]["upstream"].as_str())
        .map(String::from)
        .collect();
    // Discovery needs these even where no entry names them.
    ids.extend([
        "http://127.0.0.2:5050".into(),
        "http://127.0.0.1:8080".into(),
        format!("http://{OUTSIDE}"),
    ]);
    ids.sort();
    ids.dedup();
    ids
}

fn socket_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(id.rsplit('/').next().unwrap_or("x.sock"))
}

async fn start_mock(id: &str, sockets: &Path, stop: &CancellationToken) {
    let mut extra = BTreeMap::new();
    if id == "http://127.0.0.2:5050" {
        extra.insert("/master/state", mesos_state());
    }
    if id == "http://127.0.0.1:8123" {
        extra.insert(
            "/v1/services/_scheduler-onlymesosdns.nest1.nest2._tcp.marathon.mesos",
            json!([{"service": "_scheduler-onlymesosdns.nest1.nest2._tcp.marathon.mesos",
                    "host": "scheduler-onlymesosdns.nest1.nest2-xyz.marathon.mesos.",
                    "ip": "127.0.0.1", "port": "18003"}]),
        );
    }
    if id == "http://127.0.0.1:8080" {
        extra.insert("/v2/apps", marathon_apps());
        extra.insert("/v2/leader", json!({"leader": "127.0.0.2:8080"}));
    }
    let app = axum::Router::new().fallback(reflect).with_state(Mock {
        id: id.to_string(),
        extra: Arc::new(extra),
    });
    let shutdown = stop.clone().cancelled_owned();
    if id.starts_with("http:///") {
        let listener = tokio::net::UnixListener::bind(socket_path(sockets, id)).unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        });
    } else {
        let addr: SocketAddr = id.trim_start_matches("http://").parse().unwrap();
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        });
    }
}

fn config(role: Role, sockets: &Path) -> Config {
    let lo = "127.0.0.1".parse().unwrap();
    let mut c = Config::dcos(role, lo, vec!["127.0.0.2".parse().unwrap()], sockets.into());
    // The routing table alone: logins are tested against a real IAM (crates/cli/tests/it/iam.rs).
    c.security = dcos_iam::api::SecurityMode::Disabled;
    c.http_listen = match role {
        Role::Master => "127.0.0.1:80".parse().unwrap(),
        Role::Agent => "127.0.0.1:61001".parse().unwrap(),
    };
    let unix = |name: &str| Upstream::Unix(sockets.join(name));
    c.fixed.insert(Fixed::Pkgpanda, unix("pkgpanda-api.sock"));
    c.fixed.insert(Fixed::Logs, unix("dcos-log.sock"));
    c.fixed.insert(
        Fixed::Net,
        Upstream::Tcp("127.0.0.1:62080".parse().unwrap()),
    );
    c.fixed.insert(
        Fixed::Exhibitor,
        Upstream::Tcp("127.0.0.1:8181".parse().unwrap()),
    );
    c.fixed.insert(
        Fixed::Marathon,
        Upstream::Tcp("127.0.0.1:8080".parse().unwrap()),
    );
    c
}

async fn start_router(role: Role, sockets: &Path, stop: &CancellationToken) {
    let c = config(role, sockets);
    let http = tokio::net::TcpListener::bind(c.http_listen).await.unwrap();
    let router = Arc::new(Router::new(c));
    let stop = stop.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = http.accept().await else {
                continue;
            };
            let router = router.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let router = router.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(router.handle(req, peer, "http").await)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
            if stop.is_cancelled() {
                return;
            }
        }
    });
}

/// `GET path` from the router of `role`, with `headers`: status, `Location`, body.
async fn ask(role: Role, path: &str, headers: &[(&str, &str)]) -> (u16, String, Value) {
    let base = match role {
        Role::Master => "http://127.0.0.1",
        Role::Agent => "http://127.0.0.1:61001",
    };
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = client.get(format!("{base}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, location, resp.json().await.unwrap_or(Value::Null))
}

fn roles(entry: &Value) -> Vec<Role> {
    entry["type"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| match t.as_str() {
            Some("master") => Some(Role::Master),
            Some("agent") => Some(Role::Agent),
            _ => None,
        })
        .collect()
}

async fn run_table(sockets: PathBuf) {
    let mut entries = Vec::new();
    for file in ["routes.master-agent.yml", "routes.open.yml"] {
        let text = std::fs::read_to_string(format!("{DATA}/{file}")).unwrap();
        let doc: Value = serde_norway::from_str(&text).unwrap();
        entries.extend(doc["endpoint_tests"].as_array().unwrap().iter().cloned());
    }
    let stop = CancellationToken::new();
    for id in upstream_ids(&entries) {
        start_mock(&id, &sockets, &stop).await;
    }
    start_router(Role::Master, &sockets, &stop).await;
    start_router(Role::Agent, &sockets, &stop).await;

    let (mut checked, mut departed, mut failures) = (0, Vec::new(), Vec::new());
    let mut check = |what: String, ok: bool, skip: Option<&str>| match skip {
        Some(why) => departed.push(format!("{what}: {why}")),
        None if ok => checked += 1,
        None => failures.push(what),
    };
    for entry in &entries {
        let tests = &entry["tests"];
        for role in roles(entry) {
            let upstream = tests["is_upstream_correct"]["upstream"].as_str();
            for path in tests["is_upstream_correct"]["test_paths"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let path = path.as_str().unwrap();
                let (_, _, body) = ask(role, path, &[]).await;
                let skip = departure(path).or_else(|| upstream.and_then(departure));
                check(
                    format!("{role:?} {path} reaches {upstream:?}, got {body}"),
                    body["endpoint_id"].as_str() == upstream,
                    skip,
                );
            }
            for case in tests["is_upstream_req_ok"]["test_paths"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let (sent, expected) = (
                    case["sent"].as_str().unwrap(),
                    case["expected"].as_str().unwrap(),
                );
                let (_, _, body) = ask(role, sent, &[]).await;
                check(
                    format!("{role:?} {sent} arrives as {expected}, got {body}"),
                    body["path"].as_str() == Some(expected),
                    departure(sent),
                );
            }
            for loc in tests["is_endpoint_redirecting_properly"]["locations"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let (path, code) = (loc["path"].as_str().unwrap(), loc["code"].as_u64().unwrap());
                let (status, location, _) = ask(role, path, &[]).await;
                check(
                    format!("{role:?} {path} redirects with {code}, got {status} {location}"),
                    u64::from(status) == code && location.ends_with(&format!("{path}/")),
                    None,
                );
            }
            let rewrite = &tests["is_location_header_rewritten"];
            for case in rewrite["redirect_testscases"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let base = rewrite["basepath"].as_str().unwrap();
                let (set, want) = (
                    case["location_set"].as_str().unwrap(),
                    case["location_expected"].as_str().unwrap(),
                );
                let (_, location, _) = ask(role, base, &[("x-set-location", set)]).await;
                check(
                    format!("{role:?} {base}: Location {set} becomes {want}, got {location}"),
                    location == want,
                    None,
                );
            }
        }
    }
    // Beyond the table: hosts outside the cluster and the components' internal APIs.
    for path in [
        "/service/outsider/",
        "/service/outsider-app/",
        "/service/mesos-itself/api/v1/agent",
    ] {
        let (status, _, body) = ask(Role::Master, path, &[]).await;
        check(
            format!("{path} is not proxied outside the cluster, got {status} {body}"),
            status == 404 && body["endpoint_id"].is_null(),
            None,
        );
    }
    for (role, path) in [
        (Role::Master, "/mesos/api/v1/agent"),
        (Role::Master, "/mesos/api/v1/agen%74"),
        (Role::Master, "/mesos//api/v1/./agent/"),
        (Role::Master, &format!("/agent/{AGENT_S1}/api/v1/executor")),
        (Role::Agent, "/api/v1/executor"),
    ] {
        let (status, _, body) = ask(role, path, &[]).await;
        check(
            format!("{role:?} {path} is refused, got {status} {body}"),
            status == 403 && body["endpoint_id"].is_null(),
            None,
        );
    }
    stop.cancel();
    eprintln!(
        "{checked} checks passed; departures:\n  {}",
        departed.join("\n  ")
    );
    assert!(
        failures.is_empty(),
        "{} failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    assert!(checked > 150, "only {checked} checks ran");
}

#[test]
fn the_real_routing_table_holds() {
    let ns = dcos_testkit::Netns::new("artable");
    let sockets = tempfile::tempdir().unwrap();
    let dir = sockets.path().to_path_buf();
    // Every socket, the router's and the mocks', lives in the namespace: the runtime's
    // threads are started from a thread inside it.
    dcos_testkit::in_netns(&ns.name, move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(run_table(dir));
    })
    .unwrap();
}
