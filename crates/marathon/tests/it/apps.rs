use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{in_ranges, ports, Env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_gets_distinct_host_ports_and_passes_its_http_health_check() {
    let env = Env::start(1).await;
    let app = json!({
        "id": "/web",
        "cmd": "exec python3 -m http.server $PORT0 --bind 127.0.0.1",
        "cpus": 0.1, "mem": 32,
        "portDefinitions": [{"port": 0, "name": "http"}, {"port": 0, "name": "admin"}],
        "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0, "intervalSeconds": 1, "gracePeriodSeconds": 30, "timeoutSeconds": 2}]
    });
    let (code, body) = env.send("POST", "/v2/apps", Some(app)).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["id"], "/web");
    assert_eq!(body["deployments"].as_array().unwrap().len(), 1);
    let tasks = env.settled("/web", 1).await;
    let p = ports(&tasks[0]);
    assert_eq!(p.len(), 2);
    assert_ne!(p[0], p[1]);
    let ranges = &env.agents[0].2;
    assert!(
        p.iter().all(|x| in_ranges(*x, ranges)),
        "{p:?} outside {ranges}"
    );
    // The process listens on $PORT0 and Marathon's probe reaches it.
    env.eventually("the task is healthy", Duration::from_secs(20), || async {
        let (_, v) = env.get("/v2/apps/web").await;
        (v["app"]["tasksHealthy"] == 1).then_some(())
    })
    .await;
    let (_, v) = env.get("/v2/apps/web").await;
    let hc = &v["app"]["tasks"][0]["healthCheckResults"][0];
    assert_eq!(hc["alive"], true, "{v}");
    let direct = reqwest::get(format!("http://127.0.0.1:{}/", p[0]))
        .await
        .unwrap();
    assert_eq!(direct.status(), 200);
    // Service ports are assigned from Marathon's 10000-20000 range.
    let service = v["app"]["portDefinitions"][0]["port"].as_u64().unwrap();
    assert!((10000..20000).contains(&service), "{service}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_one_to_five_to_zero() {
    let env = Env::start(2).await;
    let (code, _) = env
        .send(
            "POST",
            "/v2/apps",
            Some(json!({"id": "/sleepy", "cmd": "sleep 600", "cpus": 0.1, "mem": 16})),
        )
        .await;
    assert_eq!(code, 201);
    env.settled("/sleepy", 1).await;
    let (code, body) = env
        .send("PUT", "/v2/apps/sleepy", Some(json!({"instances": 5})))
        .await;
    assert_eq!(code, 200, "{body}");
    assert!(body["deploymentId"].is_string() && body["version"].is_string());
    let tasks = env.settled("/sleepy", 5).await;
    let agents: std::collections::BTreeSet<&str> = tasks
        .iter()
        .map(|t| t["slaveId"].as_str().unwrap())
        .collect();
    assert!(!agents.is_empty());
    let (code, _) = env
        .send("PATCH", "/v2/apps/sleepy", Some(json!({"instances": 0})))
        .await;
    assert_eq!(code, 200);
    env.settled("/sleepy", 0).await;
    let (_, v) = env.get("/v2/apps/sleepy").await;
    assert_eq!(v["app"]["instances"], 0);
    // Scaling is not a config change.
    assert!(
        v["app"]["versionInfo"]["lastConfigChangeAt"].as_str()
            < v["app"]["versionInfo"]["lastScalingAt"].as_str()
    );
    let (_, versions) = env.get("/v2/apps/sleepy/versions").await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 3);
    // Empty collections are answered, as Marathon does.
    assert_eq!(v["app"]["healthChecks"], json!([]), "{v}");
    assert_eq!(v["app"]["env"], json!({}), "{v}");
    // `partialUpdate=false`: the body is the whole definition; what it leaves out (here
    // cpus and mem) takes Marathon's defaults instead of the old values.
    let whole = json!({"cmd": "sleep 601", "instances": 0});
    let (code, body) = env
        .send("PUT", "/v2/apps/sleepy?partialUpdate=false", Some(whole))
        .await;
    assert_eq!(code, 200, "{body}");
    let (_, v) = env.get("/v2/apps/sleepy").await;
    assert_eq!(
        (&v["app"]["cmd"], &v["app"]["cpus"], &v["app"]["mem"]),
        (&json!("sleep 601"), &json!(1.0), &json!(128.0)),
        "{v}"
    );
    // The same whole definition with another instance count is a scale: the configuration
    // keeps its version, so running tasks are not replaced.
    let changed_at = v["app"]["versionInfo"]["lastConfigChangeAt"].clone();
    env.settled("/sleepy", 0).await;
    let same = json!({"cmd": "sleep 601", "instances": 1});
    let (code, body) = env
        .send("PUT", "/v2/apps/sleepy?partialUpdate=false", Some(same))
        .await;
    assert_eq!(code, 200, "{body}");
    let (_, v) = env.get("/v2/apps/sleepy").await;
    assert_eq!(
        v["app"]["versionInfo"]["lastConfigChangeAt"], changed_at,
        "{v}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_required_port_waits_in_the_queue() {
    let env = Env::start(1).await;
    let ranges = env.agents[0].2.clone();
    let fixed: u64 = ranges[1..6].parse().unwrap();
    let app = |id: &str| json!({"id": id, "cmd": "sleep 600", "cpus": 0.1, "mem": 16, "requirePorts": true, "portDefinitions": [{"port": fixed}]});
    assert_eq!(
        env.send("POST", "/v2/apps", Some(app("/first"))).await.0,
        201
    );
    let tasks = env.settled("/first", 1).await;
    assert_eq!(ports(&tasks[0]), vec![fixed]);
    assert_eq!(
        env.send("POST", "/v2/apps", Some(app("/second"))).await.0,
        201
    );
    let item = env
        .eventually(
            "the second app's offers are declined for ports",
            Duration::from_secs(20),
            || async {
                let (_, q) = env.get("/v2/queue").await;
                let item = q["queue"]
                    .as_array()?
                    .iter()
                    .find(|i| i["app"]["id"] == "/second")?
                    .clone();
                let ports = item["processedOffersSummary"]["rejectSummaryLaunchAttempt"]
                    .as_array()?
                    .iter()
                    .find(|r| r["reason"] == "InsufficientPorts")?
                    .clone();
                (ports["declined"].as_u64()? >= 1).then_some(item)
            },
        )
        .await;
    assert_eq!(item["count"], 1);
    let (_, v) = env.get("/v2/apps/second").await;
    assert_eq!(v["app"]["tasks"], json!([]));
    assert_eq!(v["app"]["tasksRunning"], 0);
    // Freeing the port lets it launch.
    assert_eq!(env.send("DELETE", "/v2/apps/first", None).await.0, 200);
    let tasks = env.settled("/second", 1).await;
    assert_eq!(ports(&tasks[0]), vec![fixed]);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_app_backs_off() {
    let env = Env::start(1).await;
    let app = json!({"id": "/crash", "cmd": "exit 3", "cpus": 0.1, "mem": 16, "backoffSeconds": 2, "backoffFactor": 2, "maxLaunchDelaySeconds": 30});
    assert_eq!(env.send("POST", "/v2/apps", Some(app)).await.0, 201);
    let failure = env
        .eventually(
            "a recorded task failure",
            Duration::from_secs(20),
            || async {
                let (_, v) = env.get("/v2/apps/crash").await;
                v["app"].get("lastTaskFailure").cloned()
            },
        )
        .await;
    assert_eq!(failure["state"], "TASK_FAILED");
    assert!(
        failure["message"].as_str().unwrap().contains("3"),
        "{failure}"
    );
    // The queue shows the delay; over 6 s at most 3 launches happen (delays 2, 4, ...).
    let delayed = env
        .eventually(
            "a backoff delay in the queue",
            Duration::from_secs(10),
            || async {
                let (_, q) = env.get("/v2/queue").await;
                let item = q["queue"].as_array()?.first()?.clone();
                (item["delay"]["overdue"] == false).then_some(item)
            },
        )
        .await;
    assert!(delayed["delay"]["timeLeftSeconds"].as_u64().unwrap() <= 30);
    let (_, master) = env
        .client
        .get(format!("http://{}/master/tasks?limit=100", env.master.addr))
        .send()
        .await
        .map(|r| (0, r))
        .unwrap();
    let tasks: Value = master.json().await.unwrap();
    let launched = tasks["tasks"].as_array().unwrap().len();
    assert!(
        launched <= 4,
        "{launched} launches in a few seconds: no backoff"
    );
    // Resetting the delay lets it launch at once.
    let r = env
        .client
        .delete(format!(
            "http://{}/v2/queue/crash/delay",
            env.marathon.as_ref().unwrap().0
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_of_marathon_and_of_an_agent_lose_no_app_and_no_task() {
    let mut env = Env::start(1).await;
    let app = json!({"id": "/keep/me", "cmd": "sleep 600", "cpus": 0.1, "mem": 16, "instances": 2});
    assert_eq!(env.send("POST", "/v2/apps", Some(app)).await.0, 201);
    let before: Vec<String> = env
        .settled("/keep/me", 2)
        .await
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    let (_, info) = env.get("/v2/info").await;
    let framework = info["frameworkId"].clone();
    env.stop_marathon().await;
    env.start_marathon().await;
    let (_, info) = env.get("/v2/info").await;
    assert_eq!(
        info["frameworkId"], framework,
        "Marathon re-subscribed as the same framework"
    );
    let mut after: Vec<String> = env
        .settled("/keep/me", 2)
        .await
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    after.sort();
    let mut b = before.clone();
    b.sort();
    assert_eq!(after, b, "the same tasks run after a Marathon restart");
    env.restart_agent(0).await;
    // Give reconciliation a chance to report anything lost, then check nothing was.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut again: Vec<String> = env
        .settled("/keep/me", 2)
        .await
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    again.sort();
    assert_eq!(again, b, "the same tasks run after an agent restart");
    let (_, groups) = env.get("/v2/groups").await;
    assert_eq!(groups["groups"][0]["id"], "/keep");
    assert_eq!(groups["groups"][0]["apps"][0]["id"], "/keep/me");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_marathon_errors_and_change_nothing() {
    let env = Env::start(0).await;
    let raw = env
        .client
        .post(format!(
            "http://{}/v2/apps",
            env.marathon.as_ref().unwrap().0
        ))
        .header("Content-Type", "application/json")
        .body("{\"id\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["message"], "Invalid JSON");
    let (code, body) = env
        .send(
            "POST",
            "/v2/apps",
            Some(json!({"id": "/x", "cpus": "lots"})),
        )
        .await;
    assert_eq!(code, 422);
    assert_eq!(
        body,
        json!({"message": "Invalid JSON", "details": [{"path": "/cpus", "errors": ["error.expected.jsnumber"]}]})
    );
    let (code, body) = env
        .send("POST", "/v2/apps", Some(json!({"id": "/x"})))
        .await;
    assert_eq!(code, 422);
    assert_eq!(body["message"], "Object is not valid");
    assert_eq!(
        body["details"][0]["errors"][0],
        "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."
    );
    let (code, body) = env
        .send(
            "POST",
            "/v2/apps",
            Some(json!({"id": "/x", "cmd": "y", "mem": -5})),
        )
        .await;
    assert_eq!(code, 422);
    assert_eq!(
        body["details"][0],
        json!({"path": "/mem", "errors": ["error.min"]})
    );
    let (code, body) = env.send("GET", "/v2/apps/nope", None).await;
    assert_eq!(
        (code, body),
        (404, json!({"message": "App '/nope' does not exist"}))
    );
    let (_, apps) = env.get("/v2/apps").await;
    assert_eq!(apps, json!({"apps": []}));
    // A deployment in progress locks the app (no agents: it cannot finish).
    assert_eq!(
        env.send(
            "POST",
            "/v2/apps",
            Some(json!({"id": "/locked", "cmd": "sleep 9"}))
        )
        .await
        .0,
        201
    );
    let (code, _) = env
        .send(
            "POST",
            "/v2/apps",
            Some(json!({"id": "/locked", "cmd": "sleep 9"})),
        )
        .await;
    assert_eq!(code, 409);
    let (code, body) = env
        .send("PUT", "/v2/apps/locked", Some(json!({"cmd": "sleep 10"})))
        .await;
    assert_eq!(code, 409, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .starts_with("App is locked by one or more deployments."));
    let dep = body["deployments"][0]["id"].as_str().unwrap().to_string();
    let (_, deps) = env.get("/v2/deployments").await;
    assert_eq!(deps[0]["id"], dep.as_str());
    assert_eq!(deps[0]["affectedApps"], json!(["/locked"]));
    let (code, _) = env
        .send(
            "PUT",
            "/v2/apps/locked?force=true",
            Some(json!({"cmd": "sleep 10"})),
        )
        .await;
    assert_eq!(code, 200);
    let (_, v) = env.get("/v2/apps/locked").await;
    assert_eq!(v["app"]["cmd"], "sleep 10");
    let (code, _) = env.send("DELETE", "/v2/deployments/no-such", None).await;
    assert_eq!(code, 404);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_that_crashed_marathon_are_refused_and_it_stays_up() {
    let env = Env::start(1).await;
    let refusals = [
        (
            json!({"id": "/hc", "cmd": "sleep 9", "healthChecks": [{"protocol": "HTTP", "intervalSeconds": u64::MAX}]}),
            "/healthChecks(0)/intervalSeconds",
            "error.expected.int",
        ),
        (
            json!({"id": "/bo", "cmd": "exit 1", "backoffSeconds": 1e20}),
            "/backoffSeconds",
            "error.expected.int",
        ),
        (
            json!({"id": "/ml", "cmd": "exit 1", "maxLaunchDelaySeconds": 1e20}),
            "/maxLaunchDelaySeconds",
            "error.expected.int",
        ),
        (
            json!({"id": "/neg", "cmd": "exit 1", "healthChecks": [{"intervalSeconds": -1}]}),
            "/healthChecks(0)/intervalSeconds",
            "error.min",
        ),
    ];
    for (app, path, error) in refusals {
        let (code, body) = env.send("POST", "/v2/apps", Some(app.clone())).await;
        assert_eq!(code, 422, "{app}: {body}");
        assert_eq!(
            body,
            json!({"message": "Invalid JSON", "details": [{"path": path, "errors": [error]}]})
        );
        // The same through an update of an app that does not exist yet.
        let id = app["id"].as_str().unwrap();
        let (code, _) = env.send("PUT", &format!("/v2/apps{id}"), Some(app)).await;
        assert_eq!(code, 422);
    }
    for dest in ["/etc/cron.d/evil", "../../evil", "a/../../evil"] {
        let app = json!({"id": "/fetcher", "cmd": "sleep 9", "fetch": [{"uri": "http://127.0.0.1:1/x", "destPath": dest}]});
        let (code, body) = env.send("POST", "/v2/apps", Some(app)).await;
        assert_eq!(code, 422, "{dest}: {body}");
        assert_eq!(body["message"], "Object is not valid");
        assert_eq!(body["details"][0]["path"], "/fetch(0)/destPath");
    }
    let (_, apps) = env.get("/v2/apps").await;
    assert_eq!(apps, json!({"apps": []}), "nothing refused was stored");
    // Marathon still schedules: an app whose tasks fail at once backs off at the largest
    // values it accepts, and a sound app runs beside it.
    let failing = json!({"id": "/fails", "cmd": "exit 1", "cpus": 0.1, "mem": 16,
        "backoffSeconds": i32::MAX, "maxLaunchDelaySeconds": i32::MAX});
    assert_eq!(env.send("POST", "/v2/apps", Some(failing)).await.0, 201);
    env.eventually("a failure of /fails", Duration::from_secs(20), || async {
        let (_, v) = env.get("/v2/apps/fails").await;
        v["app"].get("lastTaskFailure").map(|_| ())
    })
    .await;
    let sound = json!({"id": "/sound", "cmd": "sleep 600", "cpus": 0.1, "mem": 16});
    assert_eq!(env.send("POST", "/v2/apps", Some(sound)).await.0, 201);
    env.settled("/sound", 1).await;
    let (code, _) = env.get("/v2/info").await;
    assert_eq!(code, 200);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_replaces_every_task_and_the_event_stream_reports_it() {
    let env = Env::start(1).await;
    let url = format!(
        "http://{}/v2/events?event_type=deployment_success&event_type=status_update_event",
        env.marathon.as_ref().unwrap().0
    );
    let refused = env.client.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 405, "no text/event-stream Accept header");
    let mut stream = env
        .client
        .get(&url)
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(
        env.send(
            "POST",
            "/v2/apps",
            Some(
                json!({"id": "/roll", "cmd": "sleep 600", "cpus": 0.1, "mem": 16, "instances": 2})
            )
        )
        .await
        .0,
        201
    );
    let old: Vec<String> = env
        .settled("/roll", 2)
        .await
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    let (code, _) = env.send("POST", "/v2/apps/roll/restart", None).await;
    assert_eq!(code, 200);
    env.eventually("all tasks replaced", Duration::from_secs(30), || async {
        let (_, v) = env.get("/v2/apps/roll").await;
        let ids: Vec<String> = v["app"]["tasks"]
            .as_array()?
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect();
        (ids.len() == 2
            && ids.iter().all(|i| !old.contains(i))
            && v["app"]["deployments"] == json!([]))
        .then_some(())
    })
    .await;
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !(text.contains("event: deployment_success") && text.contains("TASK_KILLED")) {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("events so far: {text}"))
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(stream);
    assert!(
        text.contains("event: status_update_event\r\ndata: {"),
        "{text}"
    );
    assert!(
        !text.contains("event: deployment_info"),
        "filtered out: {text}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_served_over_verified_tls_and_the_process_port_reports_metrics() {
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = Env::start(0).await;
    let pem = fs_err::read(env.dir.path().join("marathon/marathon.crt")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(env.https.unwrap())
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .expect("the certificate verifies");
    tls.write_all(b"GET /v2/info HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"),
        "{text}"
    );
    assert!(text.contains("\"name\":\"marathon\""), "{text}");
    let m: Value = reqwest::get(format!(
        "http://{}/metrics/snapshot",
        env.libprocess.unwrap()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(m["marathon/subscribed"], 1.0);
    assert_eq!(m["marathon/apps"], 0);
    env.stop().await;
}

#[tokio::test]
async fn idle_connections_and_large_bodies_do_not_stop_marathon() {
    let env = Env::start(0).await;
    let addr = env.marathon.as_ref().unwrap().0;
    // Twice the connection limit, all idle: each new client takes the place of an idle one.
    let mut idle = Vec::new();
    for _ in 0..(2 * dcos_marathon::LIMITS.max_connections).max(1000) {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let started = std::time::Instant::now();
    let (code, _) = tokio::time::timeout(Duration::from_secs(5), env.get("/v2/apps"))
        .await
        .expect("a normal client waited behind idle connections");
    assert_eq!(code, 200);
    assert!(started.elapsed() < Duration::from_secs(5));
    // A body over the limit is refused before anything is parsed or stored.
    let big = json!({"id": "/big", "cmd": "x".repeat(dcos_marathon::LIMITS.body_limit)});
    let (code, _) = env.send("POST", "/v2/apps", Some(big)).await;
    assert_eq!(code, 413);
    let (_, apps) = env.get("/v2/apps").await;
    assert_eq!(apps["apps"], json!([]));
    drop(idle);
    env.stop().await;
}

#[tokio::test]
async fn an_app_being_deleted_is_not_recreated_by_a_put() {
    let env = Env::start(1).await;
    // A PUT sent as soon as the DELETE is answered meets the app while its task is still
    // being killed (the kill goes to the agent and its end comes back through the master).
    let app = json!({"id": "/slow-stop", "cmd": "trap '' TERM; while true; do sleep 0.1; done", "cpus": 0.1,
        "mem": 16, "taskKillGracePeriodSeconds": 5});
    let (code, body) = env.send("POST", "/v2/apps", Some(app.clone())).await;
    assert_eq!(code, 201, "{body}");
    env.settled("/slow-stop", 1).await;
    let (code, body) = env.send("DELETE", "/v2/apps/slow-stop", None).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = env.send("PUT", "/v2/apps/slow-stop", Some(app)).await;
    assert_eq!(code, 409, "{body}");
    env.eventually("the app gone", Duration::from_secs(20), || async {
        let (_, v) = env.get("/v2/apps").await;
        (v["apps"] == json!([])).then_some(())
    })
    .await;
    env.stop().await;
}
