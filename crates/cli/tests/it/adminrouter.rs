//! Admin Router on a whole cluster: every route reaches its component from a client in
//! another node's namespace, over HTTP and over TLS verified with the cluster CA; bad paths,
//! unknown routes and dead upstreams get Admin Router's statuses and bodies.

use std::time::Duration;

use dcos_testkit::{eventually, Cluster};
use serde_json::json;

use crate::{curl, curl_text, DCOS};

#[test]
fn every_route_reaches_its_component_through_the_router() {
    let cluster = Cluster::builder()
        .masters(1)
        .agents(1)
        .binary(DCOS)
        .start()
        .expect("start the cluster");
    let master = cluster.master(0);
    let agent = cluster.agents()[0];
    // The client is the agent's namespace; the router is the master's port 80.
    let ar = format!("http://{}", master.ip);
    // Logged in as the bootstrap superuser (the guards are tested in iam.rs).
    let auth = cluster.auth_header();
    let get = |path: &str| curl(&cluster, agent, &["-H", &auth, &format!("{ar}{path}")]);
    let get_text = |path: &str| curl_text(&cluster, agent, &["-H", &auth, &format!("{ar}{path}")]);

    // What clients read first.
    let (status, meta) = get("/metadata");
    assert_eq!(status, 200, "{meta}");
    assert_eq!(meta["PUBLIC_IPV4"], master.ip.to_string());
    assert_eq!(
        meta["CLUSTER_ID"].as_str(),
        cluster.record().cluster_id.as_deref()
    );
    let (status, version) = get("/dcos-metadata/dcos-version.json");
    assert_eq!(
        (status, version["dcos-variant"].as_str()),
        (200, Some("open"))
    );
    let out = cluster.exec(
        agent,
        &[
            "curl",
            "-sS",
            "-I",
            "-H",
            &auth,
            &format!("{ar}/pkgpanda/active.buildinfo.full.json"),
        ],
    );
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("cache-control: no-cache, no-store, must-revalidate"),
        "{head}"
    );
    let (status, providers) = get("/acs/api/v1/auth/providers");
    assert_eq!(status, 200, "{providers}");
    assert_eq!(
        providers["dcos-users"]["authentication-type"],
        "dcos-uid-password"
    );
    let (status, ui) = get("/dcos-metadata/ui-config.json");
    assert_eq!(status, 200);
    assert_eq!(ui["clusterConfiguration"]["id"], meta["CLUSTER_ID"]);

    // The leading master, Marathon (as the framework it is), Mesos-DNS, History.
    let (status, state) = get("/mesos/master/state");
    assert_eq!(status, 200);
    assert_eq!(state["leader"], format!("master@{}:5050", master.ip));
    let (_, summary) = get("/mesos/state-summary");
    assert_eq!(summary["cluster"], cluster.name());
    assert_eq!(get_text("/mesos").0, 301);
    let (status, info) = get("/marathon/v2/info");
    assert_eq!(
        (status, info["name"].as_str()),
        (200, Some("marathon")),
        "{info}"
    );
    let (status, mdns) = get("/mesos_dns/v1/version");
    assert_eq!((status, mdns["Service"].as_str()), (200, Some("Mesos-DNS")));
    assert_eq!(
        get_text("/dcos-history-service/ping"),
        (200, "\"pong\"".to_string())
    );
    let (status, records) = get("/navstar/lashup/key");
    assert_eq!(status, 404, "dcos-net has no lashup KV: {records}");

    // A service: an app whose task serves HTTP, found by its DCOS_SERVICE_* labels.
    let app = json!({"id": "/web", "cmd": "exec python3 -m http.server $PORT0", "cpus": 0.1,
        "mem": 64, "instances": 1, "portDefinitions": [{"port": 0}],
        "labels": {"DCOS_SERVICE_NAME": "web", "DCOS_SERVICE_PORT_INDEX": "0",
                   "DCOS_SERVICE_SCHEME": "http"}});
    let (status, body) = curl(
        &cluster,
        agent,
        &[
            "-H",
            &auth,
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            &app.to_string(),
            &format!("{ar}/marathon/v2/apps"),
        ],
    );
    assert_eq!(status, 201, "{body}");
    let listing = eventually(Duration::from_secs(30), || {
        let (status, text) = get_text("/service/web/");
        (status == 200 && text.contains("stdout")).then_some(text)
    });
    assert!(listing.contains("Directory listing"), "{listing}");
    assert_eq!(get_text("/service/web").0, 301);

    // The task's stdout through the agent's route.
    let agent_id = state["slaves"][0]["id"].as_str().unwrap().to_string();
    // `/` is the web UI, as DC/OS' `test_if_dcos_ui_is_up` checks it: 200, "DC/OS", and
    // every relative link in it answers HEAD 200.
    let (status, page) = get_text("/");
    assert_eq!(status, 200);
    assert!(page.len() > 100 && page.contains("DC/OS"), "{page}");
    let links: Vec<&str> = page
        .split("href=\"")
        .chain(page.split("src=\"").skip(1))
        .skip(1)
        .filter_map(|l| l.split('"').next())
        .collect();
    assert!(links.len() >= 3, "{page}");
    for link in links {
        let (status, _) = cluster.curl(master, &["-I", &format!("{ar}/{link}")]);
        assert_eq!(status, 200, "HEAD {link}");
    }
    let (status, agent_state) = get(&format!("/agent/{agent_id}/state"));
    assert_eq!(status, 200);
    let dir = agent_state["frameworks"][0]["executors"][0]["directory"]
        .as_str()
        .expect("the task's sandbox")
        .to_string();
    let (status, read) = get(&format!(
        "/agent/{agent_id}/files/read?path={dir}/stdout&offset=0"
    ));
    assert_eq!(status, 200, "{read}");
    assert!(read["data"].is_string(), "{read}");

    // Unknown things: nginx's page, or the resolvers' one-line answers.
    let (status, page) = get_text("/no/such/route");
    assert_eq!(status, 404);
    assert!(
        page.contains("<center><h1>404 Not Found</h1></center>"),
        "{page}"
    );
    assert_eq!(
        get_text("/service/nope/x"),
        (404, "404 Not Found: service not found.\n".into())
    );
    assert_eq!(
        get_text("/agent/nope-S9/state"),
        (404, "404 Not Found: agent `nope-S9` unknown.\n".into())
    );
    // Paths that climb above the root, or hide a slash, never reach an upstream.
    for bad in ["/mesos/%2e%2e/%2e%2e/etc/passwd", "/service/web%2f..%2fx"] {
        assert_eq!(get_text(bad).0, 400, "{bad}");
    }
    let huge = format!("X-Big: {}", "a".repeat(100_000));
    let (status, page) = curl_text(
        &cluster,
        agent,
        &["-H", &auth, "-H", &huge, &format!("{ar}/metadata")],
    );
    assert!(
        page.contains("400 Request Header Or Cookie Too Large"),
        "{page}"
    );
    assert_eq!(status, 400);
    // A dead upstream (Exhibitor does not run with the embedded store): 502, and the router
    // keeps serving.
    let (status, page) = get_text("/exhibitor/exhibitor/v1/cluster/status");
    assert_eq!(status, 502);
    assert!(page.contains("502 Bad Gateway"), "{page}");
    assert_eq!(get("/metadata").0, 200);

    // TLS, verified with the cluster CA, on the master (443) and the agent (61002).
    let ca = cluster
        .record()
        .ca_cert
        .clone()
        .expect("the cluster has a CA");
    let ca = ca.to_str().unwrap();
    let (status, meta_tls) = curl(
        &cluster,
        agent,
        &[
            "-H",
            &auth,
            "--cacert",
            ca,
            &format!("https://{}/metadata", master.ip),
        ],
    );
    assert_eq!((status, &meta_tls), (200, &meta));
    let (status, _) = curl(
        &cluster,
        master,
        &[
            "--cacert",
            ca,
            &format!("https://{}:61002/dcos-metadata/dcos-version.json", agent.ip),
        ],
    );
    assert_eq!(status, 200);
    // The agent's router: its Mesos endpoints, nothing else.
    let (status, own) = curl(
        &cluster,
        master,
        &[&format!("http://{}:61001/state", agent.ip)],
    );
    assert_eq!((status, own["id"].as_str()), (200, Some(agent_id.as_str())));
    assert_eq!(
        curl_text(&cluster, master, &[&format!("http://{}:61001/", agent.ip)]).0,
        404
    );
}
