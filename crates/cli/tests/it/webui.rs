//! The web UI in a real browser (headless chromium through WebDriver) against a cluster with
//! logins: what a DC/OS user does from the UI, each step seen on the page as it happens, with
//! no JavaScript error in the browser's console. Screenshots of each page go to
//! `target/tmp/ui-screenshots/`.

use std::time::Duration;

use serde_json::json;

use dcos_testkit::browser::{Browser, ENTER, TAB, WAIT};

/// Every form control in the form on the page has a label.
const ALL_LABELLED: &str = "const f = document.querySelector('main form');\
    return !!f && [...f.querySelectorAll('input, select, textarea')]\
      .filter((i) => i.type !== 'hidden')\
      .every((i) => i.labels.length > 0 || i.getAttribute('aria-label'));";

/// Sends SIGSTOP to a process and SIGCONT when dropped, whatever happens in between.
struct Paused(i32);

impl Paused {
    fn new(pid: u32) -> Paused {
        let pid = pid as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGSTOP,
        )
        .expect("stop the process");
        Paused(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGCONT,
        );
    }
}

fn no_javascript_errors(browser: &Browser, step: &str) {
    let errors = browser.javascript_errors();
    assert!(
        errors.is_empty(),
        "JavaScript errors at {step}: {errors:#?}"
    );
}

#[test]
fn a_user_runs_the_cluster_from_the_web_ui() {
    let cluster = crate::master_and_agent();
    let master = cluster.master(0);
    let agent = &cluster.agents()[0];
    let ui = format!("http://{}", master.ip);
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    let browser = Browser::start(shots);
    let page = |hash: &str| browser.goto(&format!("{ui}/{hash}"));
    let long = Duration::from_secs(60);

    // Not logged in: the UI sends the user to its login page, and back after the login,
    // which the keyboard alone completes.
    page("#/services");
    browser.labelled("Username");
    browser.screenshot("login");
    browser.fill("Username", "bootstrapuser");
    browser.fill("Password", &crate::superuser_password(&cluster));
    let password = browser.labelled("Password");
    browser.keys(&password, ENTER);
    browser.text_when("main h1", WAIT, |t| t.contains("Services"));
    no_javascript_errors(&browser, "login");

    // The dashboard: allocation, tasks, services and components.
    page("#/dashboard");
    for panel in [
        "CPU Allocation",
        "Memory Allocation",
        "Disk Allocation",
        "Tasks",
        "Services Health",
        "Component Health",
    ] {
        browser.until(panel, WAIT, || {
            let found = browser.script(
                "return [...document.querySelectorAll('main h2')].some((h) => h.textContent.trim() === arguments[0])",
                json!([panel]),
            );
            (found == true).then_some(())
        });
    }
    browser.screenshot("dashboard");
    no_javascript_errors(&browser, "dashboard");

    // A service from the form: labelled fields, reached with the keyboard; Marathon's
    // validation message shows on its field.
    page("#/services");
    browser.click_text("Run a Service");
    let id = browser.labelled("Service ID");
    assert_eq!(browser.script(ALL_LABELLED, json!([])), true);
    browser.keys(&id, "/Bad Id");
    browser.keys(&id, TAB);
    let focused = browser.script(
        "return document.activeElement.labels[0].textContent.trim()",
        json!([]),
    );
    assert_eq!(focused, "Command", "Tab moves from the id to the command");
    browser.fill("Command", "python3 -m http.server $PORT0");
    browser.fill("CPUs", "0.1");
    browser.fill("Memory (MiB)", "64");
    browser.click_text("Deploy");
    let error = browser.text_when(".field.invalid .error", WAIT, |t| !t.is_empty());
    assert!(!error.is_empty());
    browser.screenshot("service-form-invalid");
    browser.fill("Service ID", "/web");
    browser.click_text("Deploy");
    let state = "tr[data-task-id] [data-task-state]";
    browser.text_when(state, long, |t| t.contains("RUNNING"));
    let endpoint = browser.attribute("a[data-endpoint]", "href");
    let (status, listing) = cluster.curl(master, &[&endpoint]);
    assert_eq!(
        status, 200,
        "the endpoint link answers: {endpoint} {listing}"
    );
    browser.screenshot("service-detail");
    no_javascript_errors(&browser, "deploy");

    // Scaled to 3: three running tasks on the page.
    browser.click_text("Scale");
    let instances = browser.labelled("Instances");
    browser.clear(&instances);
    browser.keys(&instances, "3");
    browser.click("dialog [data-confirm]");
    browser.until("3 running tasks", long, || {
        let running = browser.script(
            "return [...document.querySelectorAll(arguments[0])].filter((s) => s.textContent.includes('RUNNING')).length",
            json!([state]),
        );
        (running == 3).then_some(())
    });
    browser.screenshot("service-scaled");

    // The services list is live: an app made through the API shows within seconds.
    page("#/services");
    browser.text_when("tr[data-app-id=\"/web\"] [data-instances]", WAIT, |t| {
        t.contains("3/3")
    });
    let tick = json!({"id": "/tick", "cpus": 0.1, "mem": 32,
        "cmd": "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.5; done"});
    let (status, body) = marathon_post(&cluster, &tick);
    assert_eq!(status, 201, "{body}");
    browser.until("/tick in the list", Duration::from_secs(8), || {
        browser.find("tr[data-app-id=\"/tick\"]")
    });
    browser.screenshot("services");

    // An app asking for more CPU than any agent has says why it waits.
    page("#/services/new");
    browser.click("[role=tab][data-tab=json]");
    browser.fill(
        "App definition (JSON)",
        &json!({"id": "/big", "cmd": "sleep 1000", "cpus": 100, "mem": 32}).to_string(),
    );
    browser.click_text("Deploy");
    browser.text_when("[data-waiting]", long, |t| t.contains("InsufficientCpus"));
    browser.screenshot("service-waiting");
    no_javascript_errors(&browser, "waiting");

    // A task's stdout as it grows.
    page(&format!("#/services/detail/{}", "%2Ftick"));
    browser.click("tr[data-task-id] a[href^='#/tasks/']");
    let log = "pre.log[data-log=\"stdout\"]";
    let first = browser.text_when(log, long, |t| t.contains("tick 3"));
    let last_tick = |t: &str| {
        t.lines()
            .filter_map(|l| l.strip_prefix("tick ")?.trim().parse::<u32>().ok())
            .max()
            .unwrap_or(0)
    };
    let seen = last_tick(&first);
    browser.text_when(log, WAIT, |t| last_tick(t) >= seen + 4);
    browser.screenshot("task-log");
    no_javascript_errors(&browser, "task log");

    // A job: created from the form, run now, SUCCESS in its history.
    page("#/jobs");
    browser.click_text("Create a Job");
    browser.fill("Job ID", "hello");
    browser.fill("Command", "echo hello from a job");
    browser.click_text("Create Job");
    browser.text_when("main h1", WAIT, |t| t.contains("hello"));
    browser.click_text("Run now");
    browser.text_when("tr[data-run-id] [data-run-status]", long, |t| {
        t == "SUCCESS"
    });
    browser.screenshot("job");
    no_javascript_errors(&browser, "job");

    // A catalog package installed with the form made from its options' schema.
    page("#/catalog");
    let search = browser.labelled("Search packages");
    browser.keys(&search, "hello");
    browser.click("a[data-package=\"hello-world\"]");
    browser.text_when("main h1", WAIT, |t| t.contains("hello-world"));
    assert_eq!(browser.script(ALL_LABELLED, json!([])), true);
    browser.screenshot("catalog-package");
    browser.click_text("Install");
    browser.text_when("[data-installed]", long, |t| t.contains("hello-world"));
    let (status, apps) = cluster.curl(
        master,
        &[
            "-H",
            &format!("Authorization: token={}", token(&cluster)),
            &format!("{ui}/service/marathon/v2/apps"),
        ],
    );
    assert_eq!(status, 200);
    assert!(apps.contains("DCOS_PACKAGE_NAME"), "{apps}");
    no_javascript_errors(&browser, "install");

    // Nodes, users, and the components' own UIs.
    page("#/nodes");
    browser.wait_for(&format!("tr[data-node-ip=\"{}\"]", agent.ip));
    browser.screenshot("nodes");
    page("#/organization/users");
    browser.wait_for("tr[data-uid=\"bootstrapuser\"]");
    browser.screenshot("users");
    browser.goto(&format!("{ui}/mesos/"));
    assert_eq!(browser.script("return document.title", json!([])), "Mesos");
    browser.text_when("main", WAIT, |t| t.contains(&agent.ip.to_string()));
    browser.screenshot("mesos");
    browser.goto(&format!("{ui}/marathon/"));
    assert_eq!(
        browser.script("return document.title", json!([])),
        "Marathon"
    );
    browser.wait_for("tr[data-app-id=\"/web\"]");
    browser.screenshot("marathon");
    no_javascript_errors(&browser, "nodes, users, mesos, marathon");

    // Every component healthy; then one whose process hangs is shown unhealthy.
    page("#/components");
    browser.until("every component healthy", long, || {
        let states = browser.script(
            "return [...document.querySelectorAll('tr[data-unit] [data-health]')].map((e) => e.textContent.trim())",
            json!([]),
        );
        let states = states.as_array()?.clone();
        (states.len() > 10 && states.iter().all(|s| s == "Healthy")).then_some(())
    });
    browser.screenshot("components");
    let pid = cluster
        .unit_pid(master, "dcos-mesos-dns.service")
        .expect("Mesos-DNS runs");
    let paused = Paused::new(pid);
    browser.text_when(
        "tr[data-unit=\"dcos-mesos-dns.service\"] [data-health]",
        long,
        |t| t == "Unhealthy",
    );
    browser.screenshot("components-unhealthy");
    drop(paused);
    no_javascript_errors(&browser, "components");
}

/// A token of the bootstrap superuser.
fn token(cluster: &dcos_testkit::Cluster) -> String {
    let master = cluster.master(0);
    let body = json!({"uid": "bootstrapuser", "password": crate::superuser_password(cluster)});
    let (status, answer) = crate::post_json(
        cluster,
        master,
        &format!("http://{}/acs/api/v1/auth/login", master.ip),
        &body,
    );
    assert_eq!(status, 200, "{answer}");
    answer["token"].as_str().expect("a token").to_string()
}

fn marathon_post(
    cluster: &dcos_testkit::Cluster,
    app: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let master = cluster.master(0);
    let auth = format!("Authorization: token={}", token(cluster));
    let url = format!("http://{}/service/marathon/v2/apps", master.ip);
    let body = app.to_string();
    let mut args = dcos_testkit::json_request_args("POST", &url, &body).to_vec();
    args.extend(["-H", &auth]);
    crate::curl(cluster, master, &args)
}
