//! Logins on a one-master cluster (security `permissive`, the default): Admin Router guards
//! its routes with the IAM's tokens and permissions; accounts, service accounts and grants
//! made with `dcos user|service-account|acl`; forged, expired and unsigned tokens refused;
//! wrong passwords slowed down; the CA's API signing a CSR that verifies against the
//! cluster CA; and the real DC/OS CLI 0.6.1 logging in with `dcos cluster setup`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use dcos_testkit::{eventually, json_request_args, Cluster, Node};
use serde_json::{json, Value};

use crate::DCOS;

/// The head and body of a GET from `node` with extra curl `args`.
fn head_and_body(cluster: &Cluster, node: &Node, url: &str, args: &[&str]) -> String {
    let mut argv = vec!["curl", "-sS", "-i", "-m", "10"];
    argv.extend_from_slice(args);
    argv.push(url);
    String::from_utf8_lossy(&cluster.exec(node, &argv).stdout).to_lowercase()
}

/// The status of a GET with a token in `header`.
fn status_with(cluster: &Cluster, node: &Node, url: &str, header: &str) -> u16 {
    cluster
        .curl(node, &["-o", "/dev/null", "-H", header, url])
        .0
}

/// A password login: status and JSON.
fn login(cluster: &Cluster, node: &Node, body: &Value) -> (u16, Value) {
    let url = format!("http://{}/acs/api/v1/auth/login", node.ip);
    let (status, text) = cluster.curl(node, &json_request_args("POST", &url, &body.to_string()));
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The real `dcos` with the superuser's token, against Admin Router at `ar`.
fn dcos_as(token: &str, ar: &str, args: &[&str]) -> String {
    let out = Command::new(DCOS)
        .env("DCOS_ACS_TOKEN", token)
        .args(args)
        .args(["--url", ar])
        .output()
        .expect("run dcos");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dcos {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn unsigned_token(alg: &str, uid: &str) -> String {
    let exp = dcos_iam::api::now_secs() + 600;
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "JWT"}).to_string()),
        URL_SAFE_NO_PAD.encode(json!({"uid": uid, "exp": exp}).to_string()),
        URL_SAFE_NO_PAD.encode(b"not a signature")
    )
}

#[test]
fn logins_guard_the_front_door() {
    let cluster = Cluster::builder()
        .masters(1)
        .agents(0)
        .binary(DCOS)
        .start()
        .expect("start the cluster");
    let m = cluster.master(0);
    let ar = format!("http://{}", m.ip);
    let token = cluster.token().to_string();

    // Unauthenticated: 401, `WWW-Authenticate: acsjwt` and the page that sends a browser to
    // the login. With the superuser's token as a header, Bearer or the cookie alone: 200.
    for path in [
        "/mesos/master/state",
        "/service/marathon/v2/apps",
        "/mesos_dns/v1/version",
        "/acs/api/v1/users",
    ] {
        let url = format!("{ar}{path}");
        let page = head_and_body(&cluster, m, &url, &[]);
        assert!(page.starts_with("http/1.1 401"), "{path}: {page}");
        assert!(page.contains("www-authenticate: acsjwt"), "{path}: {page}");
        assert!(
            page.contains("<html>") && page.contains("window.location"),
            "{path}: {page}"
        );
        for header in [
            format!("Authorization: token={token}"),
            format!("Authorization: Bearer {token}"),
            format!("Cookie: dcos-acs-auth-cookie={token}"),
        ] {
            // Marathon registers with the master shortly after the cluster is up.
            eventually(Duration::from_secs(30), || {
                (status_with(&cluster, m, &url, &header) == 200).then_some(())
            });
        }
    }
    // Open routes stay open.
    for path in [
        "/dcos-metadata/dcos-version.json",
        "/acs/api/v1/auth/jwks",
        "/ca/dcos-ca.crt",
    ] {
        assert_eq!(cluster.curl(m, &[&format!("{ar}{path}")]).0, 200, "{path}");
    }

    // A user granted only Marathon reads Marathon and nothing else.
    dcos_as(
        &token,
        &ar,
        &["user", "add", "alice", "--password", "alice-pw-1"],
    );
    dcos_as(
        &token,
        &ar,
        &["acl", "grant", "dcos:adminrouter:service:marathon", "alice"],
    );
    let listed = dcos_as(&token, &ar, &["user", "list"]);
    assert!(
        listed.contains("alice") && listed.contains("bootstrapuser"),
        "{listed}"
    );
    let (status, answer) = login(
        &cluster,
        m,
        &json!({"uid": "alice", "password": "alice-pw-1"}),
    );
    assert_eq!(status, 200, "{answer}");
    let alice = format!("Authorization: token={}", answer["token"].as_str().unwrap());
    assert_eq!(
        status_with(
            &cluster,
            m,
            &format!("{ar}/service/marathon/v2/apps"),
            &alice
        ),
        200
    );
    let page = head_and_body(
        &cluster,
        m,
        &format!("{ar}/mesos/master/state"),
        &["-H", &alice],
    );
    assert!(page.starts_with("http/1.1 403"), "{page}");
    assert_eq!(
        status_with(&cluster, m, &format!("{ar}/acs/api/v1/users"), &alice),
        403
    );
    // Her own permissions are hers to read.
    let (status, perms) = crate::curl(
        &cluster,
        m,
        &[
            "-H",
            &alice,
            &format!("{ar}/acs/api/v1/users/alice/permissions"),
        ],
    );
    assert_eq!(status, 200);
    assert_eq!(
        perms["direct"][0]["rid"],
        "dcos:adminrouter:service:marathon"
    );
    // A revoked permission bites within Admin Router's decision cache.
    dcos_as(
        &token,
        &ar,
        &[
            "acl",
            "revoke",
            "dcos:adminrouter:service:marathon",
            "alice",
        ],
    );
    eventually(Duration::from_secs(15), || {
        (status_with(
            &cluster,
            m,
            &format!("{ar}/service/marathon/v2/apps"),
            &alice,
        ) == 403)
            .then_some(())
    });

    // A service account logs in with a token signed by its own key.
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = (keys.path().join("svc.key"), keys.path().join("svc.pub"));
    let (p, q) = (private.to_str().unwrap(), public.to_str().unwrap());
    Command::new(DCOS)
        .args(["service-account", "keypair", p, q])
        .status()
        .unwrap();
    dcos_as(
        &token,
        &ar,
        &["service-account", "add", "svc1", "--public-key", q],
    );
    let pem = fs_err::read_to_string(&private).unwrap();
    let svc = dcos_iam::keys::account_login_token("svc1", &pem, 300).unwrap();
    let (status, answer) = login(&cluster, m, &json!({"uid": "svc1", "token": svc}));
    assert_eq!(status, 200, "{answer}");
    assert!(answer["token"].is_string());
    // Its token for another account, or another account's key, logs nobody in.
    let (status, _) = login(&cluster, m, &json!({"uid": "alice", "token": svc}));
    assert_eq!(status, 401);

    // Tokens that are not the cluster's, and logins that are wrong, get the same 401.
    let (other, _) = dcos_iam::keys::SigningKey::generate().unwrap();
    let exp = dcos_iam::api::now_secs() + 600;
    let foreign = other
        .sign(&json!({"uid": "bootstrapuser", "exp": exp}))
        .unwrap();
    let (status, short) = login(
        &cluster,
        m,
        &json!({"uid": "bootstrapuser", "password": crate::superuser_password(&cluster), "exp": dcos_iam::api::now_secs() + 2}),
    );
    assert_eq!(status, 200, "{short}");
    let short = short["token"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_secs(3));
    for bad in [
        foreign,
        short,
        unsigned_token("none", "bootstrapuser"),
        unsigned_token("HS256", "bootstrapuser"),
        "garbage".to_string(),
    ] {
        let page = head_and_body(
            &cluster,
            m,
            &format!("{ar}/mesos/master/state"),
            &["-H", &format!("Authorization: token={bad}")],
        );
        assert!(page.starts_with("http/1.1 401"), "{bad}: {page}");
    }
    let wrong = login(
        &cluster,
        m,
        &json!({"uid": "alice", "password": "not-hers"}),
    );
    let unknown = login(
        &cluster,
        m,
        &json!({"uid": "nobody", "password": "not-hers"}),
    );
    assert_eq!(wrong.0, 401);
    assert_eq!(
        wrong, unknown,
        "a wrong password and an unknown user look alike"
    );
    assert_eq!(wrong.1["code"], "ERR_INVALID_CREDENTIALS");
    // Repeated wrong passwords for one user are slowed down.
    for _ in 0..3 {
        login(&cluster, m, &json!({"uid": "alice", "password": "guess"}));
    }
    let started = Instant::now();
    let (status, _) = login(&cluster, m, &json!({"uid": "alice", "password": "guess"}));
    assert_eq!(status, 401);
    assert!(
        started.elapsed() >= dcos_iam::throttle::FIRST_DELAY,
        "the fifth wrong password took {:?}",
        started.elapsed()
    );
    // Bad bodies change nothing.
    let (status, answer) = login(
        &cluster,
        m,
        &json!({"uid": "alice", "password": "x", "admin": true}),
    );
    assert_eq!(status, 400, "{answer}");

    // Logout clears the cookie.
    let page = head_and_body(&cluster, m, &format!("{ar}/acs/api/v1/auth/logout"), &[]);
    assert!(
        page.contains("set-cookie: dcos-acs-auth-cookie=\"\"; expires=sat, 01 jan 2000"),
        "{page}"
    );

    ca_signs_a_csr(&cluster, m, &token);
    dcos_cli_logs_in(&cluster, &ar);
}

/// A CSR signed through `/ca/api/v2/sign` verifies against the cluster CA's certificate.
fn ca_signs_a_csr(cluster: &Cluster, m: &Node, token: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (key, csr) = (dir.path().join("k.pem"), dir.path().join("r.csr"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-subj", "/CN=web.example", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{made:?}");
    let body = json!({"certificate_request": fs_err::read_to_string(&csr).unwrap()}).to_string();
    let url = format!("http://{}/ca/api/v2/sign", m.ip);
    let mut args = json_request_args("POST", &url, &body).to_vec();
    let unauthenticated = cluster.curl(m, &args).0;
    assert_eq!(unauthenticated, 401);
    let auth = format!("Authorization: token={token}");
    args.extend(["-H", &auth]);
    let (status, text) = cluster.curl(m, &args);
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["success"], true, "{answer}");
    let cert = dir.path().join("c.pem");
    fs_err::write(&cert, answer["result"]["certificate"].as_str().unwrap()).unwrap();
    let ca = cluster.record().ca_cert.clone().expect("a cluster CA");
    let verified = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&ca)
        .arg(&cert)
        .output()
        .unwrap();
    assert!(verified.status.success(), "{verified:?}");
    // The bundle a client downloads is that CA.
    let (_, served) = cluster.curl(m, &[&format!("http://{}/ca/dcos-ca.crt", m.ip)]);
    assert_eq!(
        served.trim(),
        fs_err::read_to_string(Path::new(&ca)).unwrap().trim()
    );
}

/// The DC/OS CLI 0.6.1 logs in with `dcos cluster setup --username --password` and lists
/// Marathon's apps through Admin Router.
fn dcos_cli_logs_in(cluster: &Cluster, ar: &str) {
    let cli = crate::DcosCli::fresh();
    let (ok, text) = cli.setup(cluster, ar);
    assert!(ok, "dcos cluster setup: {text}");
    let (ok, text) = cli.run(&["marathon", "app", "list", "--json"]);
    assert!(ok, "dcos marathon app list: {text}");
    assert_eq!(text.trim(), "[]", "{text}");
    // A wrong password is refused.
    let (ok, text) = cli.run(&[
        "auth",
        "login",
        "--username",
        "bootstrapuser",
        "--password",
        "wrong",
    ]);
    assert!(!ok, "{text}");
}

/// In strict security frameworks and agents must log in to register: Marathon, Metronome and
/// the agent do, with their service accounts; a SUBSCRIBE without a token, or with a forged
/// one, gets 401; an account without the permission, 403. The master's, Marathon's,
/// Metronome's and the agent's own ports ask a token too.
#[test]
fn strict_security_makes_frameworks_and_agents_authenticate() {
    let cluster = Cluster::builder()
        .masters(1)
        .agents(1)
        .security(dcos_iam::api::SecurityMode::Strict)
        .binary(DCOS)
        .start()
        .expect("start the cluster");
    let m = cluster.master(0);
    let auth = cluster.auth_header();
    let state_url = format!("http://{}:5050/master/state", m.ip);
    // The master's own endpoints ask a token; its health probe does not.
    assert_eq!(cluster.curl(m, &["-o", "/dev/null", &state_url]).0, 401);
    let health = format!("http://{}:5050/health", m.ip);
    assert_eq!(cluster.curl(m, &["-o", "/dev/null", &health]).0, 200);
    let names = eventually(Duration::from_secs(60), || {
        let (_, state) = crate::curl(&cluster, m, &["-H", &auth, &state_url]);
        let mut names: Vec<String> = state["frameworks"]
            .as_array()?
            .iter()
            .filter_map(|f| f["name"].as_str().map(String::from))
            .collect();
        names.sort();
        (names == ["marathon", "metronome"]).then_some(names)
    });
    assert_eq!(names, ["marathon", "metronome"]);

    let subscribe = json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
        "user": "root", "name": "intruder"}}})
    .to_string();
    let url = format!("http://{}:5050/api/v1/scheduler", m.ip);
    let (other, _) = dcos_iam::keys::SigningKey::generate().unwrap();
    let forged = other
        .sign(&json!({"uid": "bootstrapuser", "exp": dcos_iam::api::now_secs() + 600}))
        .unwrap();
    for header in [None, Some(format!("Authorization: token={forged}"))] {
        let mut args = vec!["-m", "3", "-o", "/dev/null"];
        args.extend(json_request_args("POST", &url, &subscribe));
        if let Some(h) = &header {
            args.extend(["-H", h.as_str()]);
        }
        let (status, _) = cluster.curl(m, &args);
        assert_eq!(status, 401, "{header:?}");
    }
    // With a token of the cluster whose account may register in the role, it registers
    // (the stream stays open: curl times out after the head). Without the permission: 403.
    let subscribe_as = |header: &str, body: &str| {
        let mut args = vec!["-m", "2", "-o", "/dev/null"];
        args.extend(json_request_args("POST", &url, body));
        args.extend(["-H", header]);
        cluster.curl(m, &args).0
    };
    assert_eq!(subscribe_as(&auth, &subscribe), 200);
    let ar = format!("http://{}", m.ip);
    dcos_as(
        cluster.token(),
        &ar,
        &["user", "add", "mallory", "--password", "mallory-pw"],
    );
    let (_, answer) = login(
        &cluster,
        m,
        &json!({"uid": "mallory", "password": "mallory-pw"}),
    );
    let mallory = format!("Authorization: token={}", answer["token"].as_str().unwrap());
    assert_eq!(subscribe_as(&mallory, &subscribe), 403);
    // Even a superuser cannot take over Marathon's stream: it is its service account's.
    let (_, state) = crate::curl(&cluster, m, &["-H", &auth, &state_url]);
    let marathon_id = state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "marathon")
        .map(|f| f["id"].as_str().unwrap().to_string())
        .unwrap();
    let takeover = json!({"type": "SUBSCRIBE", "framework_id": {"value": marathon_id},
        "subscribe": {"framework_info": {"user": "root", "name": "marathon",
        "id": {"value": marathon_id}}}})
    .to_string();
    assert_eq!(subscribe_as(&auth, &takeover), 403);
    // The agent registered with its service account; one without a token cannot.
    let (_, slaves) = crate::curl(
        &cluster,
        m,
        &["-H", &auth, &format!("http://{}:5050/master/slaves", m.ip)],
    );
    assert_eq!(
        slaves["slaves"].as_array().map(Vec::len),
        Some(1),
        "{slaves}"
    );
    let agent = json!({"type": "SUBSCRIBE", "info": {"hostname": "10.0.0.99", "port": 5051,
        "resources": []}})
    .to_string();
    let agent_url = format!("http://{}:5050/api/v1/agent", m.ip);
    let mut args = vec!["-m", "3", "-o", "/dev/null"];
    args.extend(json_request_args("POST", &agent_url, &agent));
    assert_eq!(cluster.curl(m, &args).0, 401);
    // Marathon's and Metronome's own ports ask a token too (their health probes do not);
    // through Admin Router a browser's cookie reaches them.
    for (port, path) in [(8080, "/v2/apps"), (9090, "/v1/jobs")] {
        let url = format!("http://{}:{port}{path}", m.ip);
        assert_eq!(cluster.curl(m, &["-o", "/dev/null", &url]).0, 401, "{url}");
        assert_eq!(status_with(&cluster, m, &url, &auth), 200, "{url}");
        let ping = format!("http://{}:{port}/ping", m.ip);
        assert_eq!(
            cluster.curl(m, &["-o", "/dev/null", &ping]).0,
            200,
            "{ping}"
        );
    }
    let cookie = format!("Cookie: dcos-acs-auth-cookie={}", cluster.token());
    for path in ["/service/marathon/v2/apps", "/service/metronome/v1/jobs"] {
        let url = format!("http://{}{path}", m.ip);
        let status = eventually(Duration::from_secs(30), || {
            let s = status_with(&cluster, m, &url, &cookie);
            (s == 200).then_some(s)
        });
        assert_eq!(status, 200, "{url}");
    }
    // The agent's own API and its Admin Router ask a token too (their probes do not); the
    // master's Admin Router passes a browser's login on to the agent.
    let agent = cluster.agents()[0];
    for url in [
        format!("http://{}:5051/state", agent.ip),
        format!("http://{}:61001/state", agent.ip),
    ] {
        assert_eq!(cluster.curl(m, &["-o", "/dev/null", &url]).0, 401, "{url}");
        assert_eq!(status_with(&cluster, m, &url, &auth), 200, "{url}");
    }
    let health = format!("http://{}:5051/health", agent.ip);
    assert_eq!(cluster.curl(m, &["-o", "/dev/null", &health]).0, 200);
    let agent_id = slaves["slaves"][0]["id"].as_str().unwrap().to_string();
    let via_router = format!("http://{}/agent/{agent_id}/state", m.ip);
    assert_eq!(status_with(&cluster, m, &via_router, &cookie), 200);
    // Mesos-DNS and History read the master with their service accounts.
    let dns = eventually(Duration::from_secs(30), || {
        let (_, hosts) = crate::curl(
            &cluster,
            m,
            &["http://127.0.0.1:8123/v1/hosts/leader.mesos"],
        );
        (hosts[0]["ip"] == m.ip.to_string()).then_some(hosts)
    });
    assert_eq!(dns[0]["ip"], m.ip.to_string());
    eventually(Duration::from_secs(30), || {
        let (_, last) = crate::curl(&cluster, m, &["http://127.0.0.1:15055/history/last"]);
        last["frameworks"]
            .as_array()
            .filter(|f| !f.is_empty())
            .map(|_| ())
    });
    // The frameworks' secrets stay with the cluster's owner.
    let secrets = cluster.state_dir().join(cluster.name()).join("secrets");
    for entry in fs_err::read_dir(&secrets).unwrap() {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &entry.unwrap().metadata().unwrap().permissions(),
        );
        assert_eq!(mode & 0o077, 0, "a secret readable by others");
    }
    // Cosmos installs with the user's token, which it passes to Marathon; without a token
    // Admin Router refuses the package API.
    let install = json!({"packageName": "http-echo"});
    let (status, installed) =
        crate::packages::cosmos_from(&cluster, m, m.ip, "install", "install", "v2", &install);
    assert_eq!(status, 200, "{installed}");
    assert_eq!(installed["appId"], "/http-echo");
    let url = format!("http://{}/package/list", m.ip);
    assert_eq!(
        cluster.curl(m, &["-X", "POST", "-o", "/dev/null", &url]).0,
        401
    );
    let (status, removed) = crate::packages::cosmos_from(
        &cluster,
        m,
        m.ip,
        "uninstall",
        "uninstall",
        "v1",
        &json!({"packageName": "http-echo"}),
    );
    assert_eq!(status, 200, "{removed}");
    // dcos-diagnostics pulls the agent with its service account: every node healthy; its
    // 1050 asks a token too.
    let url = format!("http://{}/system/health/v1/nodes?cache=0", m.ip);
    let nodes = eventually(Duration::from_secs(30), || {
        let (_, nodes) = crate::curl(&cluster, m, &["-H", &auth, &url]);
        let list = nodes["nodes"].as_array()?.clone();
        (list.len() == 2 && list.iter().all(|n| n["health"] == 0)).then_some(list)
    });
    assert_eq!(nodes.len(), 2);
    let own = format!("http://{}:1050/system/health/v1", m.ip);
    assert_eq!(cluster.curl(m, &["-o", "/dev/null", &own]).0, 401);
}
