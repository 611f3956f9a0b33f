//! Cosmos on a one-master, one-agent cluster, through Admin Router: `/capabilities`, the
//! package API driven by our `dcos package` and by the DC/OS CLI 0.6.1, a second repository
//! served over HTTP, the refusals that change nothing, and Cosmos' ports bound to the
//! master's loopback only.

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use base64::Engine as _;
use dcos_testkit::{eventually, Cluster, Node};
use serde_json::{json, Value};

use crate::DCOS;

const CAPABILITIES: &str = "application/vnd.dcos.capabilities+json;charset=utf-8;version=v1";

fn package_type(kind: &str, version: &str) -> String {
    format!("application/vnd.dcos.package.{kind}+json;charset=utf-8;version={version}")
}

/// A POST of `body` to `url` with a request and an answer media type, from inside node
/// `from`, logged in: the status and the answer.
fn vendor_post(
    cluster: &Cluster,
    from: &Node,
    url: &str,
    request: &str,
    answer: &str,
    body: &Value,
) -> (u16, Value) {
    let content_type = format!("Content-Type: {request}");
    let accept = format!("Accept: {answer}");
    let auth = cluster.auth_header();
    let body = body.to_string();
    let args = [
        "-X",
        "POST",
        "-H",
        &content_type,
        "-H",
        &accept,
        "-H",
        &auth,
        "-d",
        &body,
        url,
    ];
    crate::curl(cluster, from, &args)
}

/// A call of Cosmos' package API with its media types, through the Admin Router of master
/// `m`, sent from inside node `from`: the status and the answer.
pub(crate) fn cosmos_from(
    cluster: &Cluster,
    from: &Node,
    m: std::net::IpAddr,
    path: &str,
    kind: &str,
    version: &str,
    body: &Value,
) -> (u16, Value) {
    let request = package_type(&format!("{kind}-request"), "v1");
    let answer = package_type(&format!("{kind}-response"), version);
    vendor_post(
        cluster,
        from,
        &format!("http://{m}/package/{path}"),
        &request,
        &answer,
        body,
    )
}

/// [`cosmos_from`] the master itself.
fn cosmos(
    cluster: &Cluster,
    m: &Node,
    path: &str,
    kind: &str,
    version: &str,
    body: &Value,
) -> (u16, Value) {
    cosmos_from(cluster, m, m.ip, path, kind, version, body)
}

/// Our `dcos package` against the cluster's Admin Router: success, stdout and stderr.
fn dcos_package(cluster: &Cluster, m: &Node, args: &[&str]) -> (bool, String) {
    let url = format!("http://{}", m.ip);
    let out = Command::new(DCOS)
        .args(["package", "--url", &url])
        .args(args)
        .env("DCOS_ACS_TOKEN", cluster.token())
        .output()
        .expect("run dcos");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Marathon's apps, through Admin Router.
fn apps(cluster: &Cluster, m: &Node) -> Vec<Value> {
    let auth = cluster.auth_header();
    let url = format!("http://{}/marathon/v2/apps", m.ip);
    let (status, body) = crate::curl(cluster, m, &["-H", &auth, &url]);
    assert_eq!(status, 200, "{body}");
    body["apps"].as_array().cloned().unwrap_or_default()
}

/// What `/service/<path>` answers through Admin Router, once the app's task is healthy.
fn service_answer(cluster: &Cluster, m: &Node, path: &str) -> String {
    let auth = cluster.auth_header();
    let url = format!("http://{}/service/{path}", m.ip);
    eventually(Duration::from_secs(90), || {
        let (status, text) = cluster.curl(m, &["-m", "5", "-H", &auth, &url]);
        (status == 200).then_some(text)
    })
}

/// A process in a node's namespace, killed when dropped.
struct InNode(Child);

impl Drop for InNode {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A second repository: one package, `echo-extra`, in Universe's v4 format.
fn second_repository(dir: &Path) {
    let template = r#"{"id": "/{{service.name}}", "cmd": "sleep 3600", "cpus": 0.05, "mem": 16}"#;
    let repo = json!({"packages": [{
        "packagingVersion": "4.0", "name": "echo-extra", "version": "1.0.0", "releaseVersion": 0,
        "maintainer": "tests@example.com", "description": "A package of the second repository",
        "tags": ["second"], "selected": false, "framework": false,
        "resource": {"images": {"icon-small": "http://127.0.0.1:18999/icon.png"}},
        "upgradesFrom": ["*"], "downgradesTo": ["*"],
        "config": {"type": "object", "properties": {"service": {"type": "object",
            "properties": {"name": {"type": "string", "default": "echo-extra"}}}}},
        "marathon": {"v2AppMustacheTemplate":
            base64::engine::general_purpose::STANDARD.encode(template)},
    }]});
    fs_err::write(dir.join("repo.json"), repo.to_string()).unwrap();
    fs_err::write(dir.join("icon.png"), b"not really a PNG").unwrap();
}

#[test]
fn packages_install_list_and_uninstall_through_admin_router() {
    let cluster = crate::master_and_agent();
    let m = cluster.master(0);
    let agent = cluster.agents()[0];

    // `/capabilities` names the package manager and Metronome, in Cosmos' media type only.
    let auth = cluster.auth_header();
    let url = format!("http://{}/capabilities", m.ip);
    let accept = format!("Accept: {CAPABILITIES}");
    let (status, body) = crate::curl(&cluster, m, &["-H", &accept, "-H", &auth, &url]);
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "PACKAGE_MANAGEMENT",
            "SUPPORT_CLUSTER_REPORT",
            "METRONOME",
            "LOGGING",
            "LOGGING_V2"
        ]
    );
    let (status, body) = crate::curl(
        &cluster,
        m,
        &["-H", "Accept: application/json", "-H", &auth, &url],
    );
    assert_eq!((status, body["type"].as_str()), (400, Some("not_valid")));

    // Cosmos listens on the master's loopback only: refused at the master's IP from the
    // agent, answering at 127.0.0.1 inside the master (404 on 7070's `/`, 9990's `/` is
    // the admin page).
    for port in [7070, 9990] {
        let addr = format!("{}:{port}", m.ip).parse().unwrap();
        let refused = cluster.connect(agent, addr).unwrap_err();
        assert_eq!(
            refused.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{port}"
        );
        let addr = format!("{}:{port}", m.ip).parse().unwrap();
        assert!(
            cluster.connect(m, addr).is_err(),
            "{port} on the master's IP"
        );
    }
    assert_eq!(cluster.curl(m, &["http://127.0.0.1:7070/"]).0, 404);
    assert_eq!(cluster.curl(m, &["-L", "http://127.0.0.1:9990/"]).0, 200);

    // Search finds the shipped packages.
    let (ok, text) = dcos_package(&cluster, m, &["search", "hello"]);
    assert!(
        ok && text.contains("hello-world") && text.contains("0.2.0"),
        "{text}"
    );

    // Refusals change nothing: an unknown package or version, options the schema refuses,
    // a request without Cosmos' media types.
    let install = |body: Value| cosmos(&cluster, m, "install", "install", "v2", &body);
    let (status, body) = install(json!({"packageName": "nope"}));
    assert_eq!(
        (status, body["type"].as_str()),
        (400, Some("PackageNotFound"))
    );
    let (status, body) = install(json!({"packageName": "hello-world", "packageVersion": "9"}));
    assert_eq!(
        (status, body["type"].as_str()),
        (400, Some("VersionNotFound"))
    );
    let (status, body) = install(
        json!({"packageName": "hello-world", "options": {"service": {"cpus": 0, "name": "Bad Name"}}}),
    );
    assert_eq!(
        (status, body["type"].as_str()),
        (400, Some("JsonSchemaMismatch")),
        "{body}"
    );
    let pointers: Vec<&str> = body["data"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["instance"]["pointer"].as_str())
        .collect();
    assert!(
        pointers.contains(&"/service/cpus") && pointers.contains(&"/service/name"),
        "{body}"
    );
    let url = format!("http://{}/package/install", m.ip);
    let (status, body) = crate::curl(
        &cluster,
        m,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-H",
            "Accept: */*",
            "-H",
            &auth,
            "-d",
            r#"{"packageName": "hello-world"}"#,
            &url,
        ],
    );
    assert_eq!(
        (status, body["type"].as_str()),
        (400, Some("not_valid")),
        "{body}"
    );
    assert!(apps(&cluster, m).is_empty(), "nothing was created");

    // Install with the defaults: a Marathon app with the package's labels, reachable at
    // /service/hello-world/.
    let (ok, text) = dcos_package(&cluster, m, &["install", "hello-world", "--yes"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("/service/hello-world/"),
        "the post-install notes: {text}"
    );
    let installed = apps(&cluster, m);
    assert_eq!(installed.len(), 1);
    let labels = &installed[0]["labels"];
    assert_eq!(installed[0]["id"], "/hello-world");
    assert_eq!(labels["DCOS_PACKAGE_NAME"], "hello-world");
    assert_eq!(labels["DCOS_PACKAGE_VERSION"], "0.2.0");
    assert_eq!(labels["DCOS_PACKAGE_SOURCE"], "builtin:universe");
    for label in [
        "DCOS_PACKAGE_METADATA",
        "DCOS_PACKAGE_DEFINITION",
        "DCOS_PACKAGE_OPTIONS",
    ] {
        assert!(labels[label].is_string(), "{label}: {labels}");
    }
    assert!(service_answer(&cluster, m, "hello-world/").contains("Hello from dcos-rs"));

    // The same package again without another app id: 409 PackageAlreadyInstalled.
    let (status, body) = install(json!({"packageName": "hello-world"}));
    assert_eq!(
        (status, body["type"].as_str()),
        (409, Some("PackageAlreadyInstalled"))
    );

    // With custom options (the older version, its own name and greeting).
    let dir = tempfile::tempdir().unwrap();
    let options = dir.path().join("options.json");
    fs_err::write(
        &options,
        json!({"service": {"name": "greeter", "greeting": "Hi \"there\" & <you>"}}).to_string(),
    )
    .unwrap();
    let (ok, text) = dcos_package(
        &cluster,
        m,
        &[
            "install",
            "hello-world",
            "--package-version",
            "0.1.0",
            "--options",
            options.to_str().unwrap(),
            "--yes",
        ],
    );
    assert!(ok, "{text}");
    assert!(service_answer(&cluster, m, "greeter/").contains("Hi \"there\" & <you>"));

    // List: both, sorted by app id; --json is Cosmos' answer.
    let (ok, text) = dcos_package(&cluster, m, &["list", "--json"]);
    assert!(ok, "{text}");
    let listed: Value = serde_json::from_str(&text).expect("JSON");
    let listed = listed.to_string();
    assert!(
        listed.contains("/greeter") && listed.contains("/hello-world"),
        "{listed}"
    );
    let (status, body) = cosmos(&cluster, m, "list", "list", "v1", &json!({}));
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["appId"].as_str())
        .collect();
    assert_eq!(ids, ["/greeter", "/hello-world"]);
    assert_eq!(
        body["packages"][0]["packageInformation"]["packageDefinition"]["version"],
        "0.1.0"
    );

    // The service view: the older install may be upgraded; updating it keeps its options.
    let service_call = |kind: &str, body: Value| {
        let media = |end: &str| {
            format!("application/vnd.dcos.service.{kind}-{end}+json;charset=utf-8;version=v1")
        };
        let url = format!("http://{}/cosmos/service/{kind}", m.ip);
        vendor_post(
            &cluster,
            m,
            &url,
            &media("request"),
            &media("response"),
            &body,
        )
    };
    let (status, described) = service_call("describe", json!({"appId": "/greeter"}));
    assert_eq!(status, 200, "{described}");
    assert_eq!(described["package"]["version"], "0.1.0");
    assert_eq!(described["upgradesTo"], json!(["0.2.0"]));
    assert_eq!(
        described["userProvidedOptions"]["service"]["name"],
        "greeter"
    );
    assert_eq!(described["resolvedOptions"]["service"]["cpus"], 0.1);
    let (status, body) = service_call("describe", json!({"appId": "/nope"}));
    assert_eq!(
        (status, body["type"].as_str()),
        (400, Some("MarathonAppNotFound"))
    );
    let (status, updated) = service_call(
        "update",
        json!({"appId": "/greeter", "packageVersion": "0.2.0", "replace": false}),
    );
    assert_eq!(status, 200, "{updated}");
    assert!(updated["marathonDeploymentId"].is_string(), "{updated}");
    assert_eq!(
        updated["resolvedOptions"]["service"]["greeting"],
        "Hi \"there\" & <you>"
    );
    assert_eq!(service_answer(&cluster, m, "greeter/health").trim(), "OK");
    assert!(service_answer(&cluster, m, "greeter/").contains("Hi \"there\" & <you>"));

    // Uninstall: two installs of one package need an app id; then each goes.
    let uninstall = |body: Value| cosmos(&cluster, m, "uninstall", "uninstall", "v1", &body);
    let (status, body) = uninstall(json!({"packageName": "hello-world"}));
    assert_eq!(
        (status, body["type"].as_str()),
        (400, Some("AmbiguousAppId")),
        "{body}"
    );
    assert_eq!(apps(&cluster, m).len(), 2);
    // Without --yes the service's name must be typed (stdin is empty here): nothing goes.
    let (ok, text) = dcos_package(
        &cluster,
        m,
        &["uninstall", "hello-world", "--app-id", "/greeter"],
    );
    assert!(!ok && text.contains("Cancelling uninstall."), "{text}");
    assert_eq!(apps(&cluster, m).len(), 2);
    let (ok, text) = dcos_package(
        &cluster,
        m,
        &["uninstall", "hello-world", "--app-id", "/greeter", "--yes"],
    );
    assert!(
        ok && text.contains("Uninstalled package [hello-world] version [0.2.0]"),
        "{text}"
    );
    let (ok, text) = dcos_package(&cluster, m, &["uninstall", "hello-world", "--yes"]);
    assert!(ok, "{text}");
    let (status, body) = uninstall(json!({"packageName": "hello-world"}));
    assert_eq!(
        (status, body["type"].as_str()),
        (400, Some("PackageNotInstalled"))
    );
    let (_, body) = cosmos(&cluster, m, "list", "list", "v1", &json!({}));
    assert_eq!(body["packages"], json!([]));
    eventually(Duration::from_secs(30), || {
        apps(&cluster, m).is_empty().then_some(())
    });

    // A second repository, served over HTTP on the master's loopback: searched with the
    // shipped one, then removed. One that cannot be fetched is not added.
    let repo_dir = tempfile::tempdir().unwrap();
    second_repository(repo_dir.path());
    let ns = m.netns.as_deref().expect("a namespace");
    let _server = InNode(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "python3",
                "-m",
                "http.server",
                "18999",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(repo_dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3's http.server"),
    );
    eventually(Duration::from_secs(10), || {
        (cluster.curl(m, &["http://127.0.0.1:18999/repo.json"]).0 == 200).then_some(())
    });
    let (ok, text) = dcos_package(
        &cluster,
        m,
        &["repo", "add", "Unreachable", "http://127.0.0.1:1/repo.json"],
    );
    assert!(!ok && text.contains("Could not access data"), "{text}");
    let (ok, text) = dcos_package(
        &cluster,
        m,
        &["repo", "add", "Second", "http://127.0.0.1:18999/repo.json"],
    );
    assert!(ok, "{text}");
    let (ok, text) = dcos_package(&cluster, m, &["repo", "list"]);
    assert!(ok, "{text}");
    assert_eq!(
        text.trim(),
        "Universe: builtin:universe\nSecond: http://127.0.0.1:18999/repo.json"
    );
    let (ok, text) = dcos_package(&cluster, m, &["search", "--json"]);
    assert!(
        ok && text.contains("echo-extra") && text.contains("hello-world"),
        "{text}"
    );
    // Its package's assets come through /package/resource; other URLs do not.
    let resource = |url: &str| {
        let url = format!("http://{}/package/resource?url={url}", m.ip);
        cluster.curl(m, &["-H", &auth, &url])
    };
    assert_eq!(
        resource("http://127.0.0.1:18999/icon.png"),
        (200, "not really a PNG".to_string())
    );
    let (status, text) = resource("http://127.0.0.1:18999/repo.json");
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("Forbidden"), "{text}");
    let (ok, text) = dcos_package(&cluster, m, &["repo", "remove", "Second"]);
    assert!(ok, "{text}");
    let (ok, text) = dcos_package(&cluster, m, &["search", "--json"]);
    assert!(ok && !text.contains("echo-extra"), "{text}");

    // The DC/OS CLI 0.6.1 installs, lists and uninstalls a package.
    let cli = crate::DcosCli::fresh();
    let ar = format!("http://{}", m.ip);
    let (ok, text) = cli.setup(&cluster, &ar);
    assert!(ok, "dcos cluster setup: {text}");
    let (ok, text) = cli.run(&["package", "search", "echo"]);
    assert!(
        ok && text.contains("http-echo"),
        "dcos package search: {text}"
    );
    let (ok, text) = cli.run(&["package", "describe", "hello-world", "--package-versions"]);
    assert!(
        ok && text.contains("0.1.0") && text.contains("0.2.0"),
        "dcos package describe: {text}"
    );
    let (ok, text) = cli.run(&["package", "repo", "list"]);
    assert!(
        ok && text.contains("Universe: builtin:universe"),
        "dcos package repo list: {text}"
    );
    let (ok, text) = cli.run(&["package", "install", "http-echo", "--yes"]);
    assert!(ok, "dcos package install: {text}");
    let (ok, text) = cli.run(&["package", "list", "--json"]);
    assert!(
        ok && text.contains("http-echo"),
        "dcos package list: {text}"
    );
    let (ok, text) = cli.run(&["package", "uninstall", "http-echo", "--yes"]);
    assert!(
        ok && text.contains("Uninstalled package [http-echo]"),
        "dcos package uninstall: {text}"
    );
    let (ok, text) = cli.run(&["package", "list", "--json"]);
    assert!(
        ok && !text.contains("http-echo"),
        "dcos package list: {text}"
    );
}
