//! dcos-log on a one-master, one-agent cluster, through Admin Router: unit log ranges (v1
//! and v2, the master's own and an agent's through the masters), the JSON entries' fields,
//! bad names refused without reading anything outside the logs dir, `dcos node log` of ours
//! and of the DC/OS CLI 0.6.1 (a followed log shows a line written after it started), and a
//! Marathon task's stdout read and followed with the DC/OS CLI's `dcos task log`.

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dcos_testkit::{eventually, Cluster, Node};
use serde_json::{json, Value};

use crate::DCOS;

/// A command run in a process group of its own, whose stdout lines are gathered as they
/// come; the group is killed when this is dropped, whatever the test did.
struct Follower {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Follower {
    fn spawn(mut cmd: Command) -> Follower {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn a follower");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("piped stderr");
        let gathered = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
            gathered.lock().unwrap().push_str(&text);
        });
        Follower {
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// The first line printed (from now on) for which `f` gives something, within `within`.
    #[track_caller]
    fn wait_for<T>(&mut self, within: Duration, mut f: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = f(&line);
                    self.seen.push(line);
                    if let Some(v) = found {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.try_wait();
                    panic!(
                        "no such line within {within:?} (exit: {status:?}); printed:\n{}\nstderr:\n{}",
                        self.seen.join("\n"),
                        self.stderr.lock().unwrap()
                    );
                }
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET through the master's Admin Router, from inside the master, with an `Accept`:
/// status and body.
fn get(cluster: &Cluster, m: &Node, path: &str, accept: &str) -> (u16, String) {
    let auth = cluster.auth_header();
    let accept = format!("Accept: {accept}");
    cluster.curl(
        m,
        &[
            "-m",
            "10",
            "-H",
            &auth,
            "-H",
            &accept,
            &format!("http://{}{path}", m.ip),
        ],
    )
}

/// A GET straight to a node's dcos-log socket (no Admin Router, the path as it is).
fn get_socket(cluster: &Cluster, node: &Node, path: &str) -> (u16, String) {
    let run_dir = dcos_node::units::run_dir_of(&node.work_dir);
    let socket = run_dir.join(dcos_log::SOCKET_NAME);
    cluster.curl(
        node,
        &[
            "-m",
            "10",
            "--path-as-is",
            "--unix-socket",
            socket.to_str().unwrap(),
            &format!("http://localhost{path}"),
        ],
    )
}

/// Our `dcos node log` against the master's Admin Router.
fn our_node_log(cluster: &Cluster, m: &Node, args: &[&str]) -> Command {
    let mut cmd = Command::new(DCOS);
    cmd.args(["node", "log", "--url", &format!("http://{}", m.ip)])
        .args(args)
        .env("DCOS_ACS_TOKEN", cluster.token());
    cmd
}

/// The DC/OS CLI 0.6.1 as [`crate::DcosCli::run`] runs it, unbuffered, to be spawned.
fn their_cli(cli: &crate::DcosCli, args: &[&str]) -> Command {
    let mut cmd = Command::new(crate::DCOS_CLI);
    cmd.args(args)
        .env("DCOS_DIR", cli.home.path())
        .env("HOME", cli.home.path())
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("DCOS_URL")
        .env_remove("DCOS_ACS_TOKEN");
    cmd
}

/// The counter values (`tick <n>`) in a text.
fn ticks(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.split("tick ").nth(1)?.trim().parse().ok())
        .collect()
}

#[test]
fn unit_and_task_logs_ranges_follows_and_refusals() {
    let cluster = crate::master_and_agent();
    let m = cluster.master(0);
    let agent = cluster.agents()[0];
    let auth = cluster.auth_header();

    // The app is posted first, so its task starts while the rest runs.
    let app = json!({"id": "/logs-counter", "cpus": 0.05, "mem": 16, "instances": 1,
        "cmd": "i=0; while true; do i=$((i+1)); echo \"tick $i\"; sleep 0.5; done"});
    let app = app.to_string();
    let (status, body) = crate::curl(
        &cluster,
        m,
        &[
            "-H",
            &auth,
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            &app,
            &format!("http://{}/marathon/v2/apps", m.ip),
        ],
    );
    assert_eq!(status, 201, "{body}");

    let agent_id = eventually(Duration::from_secs(30), || {
        let (_, slaves) = crate::curl(
            &cluster,
            m,
            &["-H", &auth, &format!("http://{}/mesos/master/slaves", m.ip)],
        );
        slaves["slaves"]
            .as_array()?
            .iter()
            .find(|s| s["hostname"] == agent.ip.to_string())?["id"]
            .as_str()
            .map(String::from)
    });

    // The task running makes the agent's log 3 lines long at least.
    let task_id = eventually(Duration::from_secs(30), || {
        let (_, tasks) = crate::curl(
            &cluster,
            m,
            &[
                "-H",
                &auth,
                &format!("http://{}/marathon/v2/apps/logs-counter/tasks", m.ip),
            ],
        );
        tasks["tasks"]
            .as_array()?
            .iter()
            .find(|t| t["state"] == "TASK_RUNNING")?["id"]
            .as_str()
            .map(String::from)
    });
    // 1. Ranges. v1: the last 5 entries of the Mesos master at most.
    let (status, text) = eventually(Duration::from_secs(10), || {
        let r = get(
            &cluster,
            m,
            "/system/v1/logs/v1/range/?skip_prev=5&filter=_SYSTEMD_UNIT:dcos-mesos-master.service",
            "text/plain",
        );
        (r.0 == 200).then_some(r)
    });
    let lines = text.lines().count();
    assert!(
        status == 200 && (1..=5).contains(&lines),
        "{status}: {text}"
    );
    // v2 of the agent, through the master: the last 3.
    let agent_logs = format!("/system/v1/agent/{agent_id}/logs");
    let path = format!("{agent_logs}/v2/component/dcos-mesos-slave.service?skip=-3");
    let text = eventually(Duration::from_secs(10), || {
        let (status, text) = get(&cluster, m, &path, "text/plain");
        (status == 200 && text.lines().count() == 3).then_some(text)
    });
    // `2006-01-02 15:04:05: MESSAGE`, as dcos-log's text.
    for line in text.lines() {
        assert_eq!(line.get(19..21), Some(": "), "{text}");
    }
    // JSON entries: journald's fields, a cursor and the times.
    for (path, unit) in [
        (
            "/system/v1/logs/v1/range/?skip_prev=3&filter=_SYSTEMD_UNIT:dcos-mesos-master.service"
                .to_string(),
            "dcos-mesos-master.service",
        ),
        (path.clone(), "dcos-mesos-slave.service"),
    ] {
        let (status, text) = get(&cluster, m, &path, "application/json");
        assert_eq!(status, 200, "{path}: {text}");
        let entries: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(entries.len(), 3, "{path}: {text}");
        for e in &entries {
            assert!(e["fields"]["MESSAGE"].is_string(), "{e}");
            assert_eq!(e["fields"]["_SYSTEMD_UNIT"], unit, "{e}");
            assert!(e["cursor"].as_str().is_some_and(|c| !c.is_empty()), "{e}");
            assert!(
                e["realtime_timestamp"].as_u64().is_some_and(|t| t > 0),
                "{e}"
            );
        }
    }

    // 2. Bad input. An unknown unit has no entries: 204.
    for path in [
        "/system/v1/logs/v2/component/no-such-unit.service?skip=-3".to_string(),
        "/system/v1/logs/v1/range/?filter=_SYSTEMD_UNIT:no-such-unit.service".to_string(),
        format!("{agent_logs}/v2/component/no-such-unit.service"),
    ] {
        let (status, text) = get(&cluster, m, &path, "text/plain");
        assert_eq!((status, text.as_str()), (204, ""), "{path}");
    }
    // A file beside the agent's logs dir, which no request may read.
    let secret = format!("outside-the-logs-dir-{}", std::process::id());
    let beside = agent.work_dir.join("outside.service.log");
    fs_err::write(&beside, format!("{secret}\n")).unwrap();
    let logs_dir = agent.work_dir.join("logs");
    assert!(logs_dir.join("dcos-mesos-slave.service.log").is_file());
    // Through Admin Router: an escaped `/` is refused before dcos-log sees it; `..` is
    // resolved by Admin Router and never climbs out of the logs API.
    for path in [
        format!("{agent_logs}/v2/component/..%2Foutside.service?skip=-3"),
        format!("{agent_logs}/v2/task/frameworks/..%2F..%2F..%2F..%2F/executors/e/runs/c/outside.service.log"),
        format!("{agent_logs}/v2/task/frameworks/f/executors/e/runs/c/..%2F..%2F..%2F..%2F..%2F..%2Foutside.service.log"),
        "/system/v1/logs/v2/task/logs-counter/file/..%2F..%2F..%2Foutside.service.log".to_string(),
        format!("{agent_logs}/v1/range/framework/..%2F..%2F/executor/e/container/c"),
    ] {
        let (status, text) = get(&cluster, m, &path, "text/plain");
        assert_eq!(status, 400, "{path}: {text}");
        assert!(!text.contains(&secret), "{path}: {text}");
    }
    for path in [
        format!("{agent_logs}/v1/range/?filter=_SYSTEMD_UNIT:../outside.service"),
        format!("{agent_logs}/v1/range/?filter=_SYSTEMD_UNIT:..%2Foutside.service.log"),
        format!("{agent_logs}/v2/component/%2E%2E/outside.service?skip=-3"),
    ] {
        let (status, text) = get(&cluster, m, &path, "text/plain");
        assert!(
            matches!(status, 204 | 404) && !text.contains(&secret),
            "{path}: {status} {text}"
        );
    }
    // dcos-log itself, on the agent's socket, with `..` and `/` as they are.
    for path in [
        "/v2/task/frameworks/../executors/e/runs/c/stdout",
        "/v2/task/frameworks/f/executors/e/runs/c/..",
        "/v2/task/frameworks/f/executors/%2E%2E/runs/c/stdout",
        "/v2/task/frameworks/f/executors/e/runs/c/..%2F..%2F..%2F..%2F..%2F..%2Foutside.service.log",
        "/v2/task/frameworks/..%2F..%2F..%2F..%2F/executors/e/runs/c/outside.service.log",
        "/v1/range/framework/../executor/e/container/c",
        "/v1/stream/framework/f/executor/e/container/..%2F..",
    ] {
        let (status, text) = get_socket(&cluster, agent, path);
        assert_eq!(status, 400, "{path}: {text}");
        assert!(!text.contains(&secret), "{path}: {text}");
    }
    for path in [
        "/v2/component/..%2Foutside.service?skip=-3",
        "/v2/component/../outside.service?skip=-3",
        "/v1/range/?filter=_SYSTEMD_UNIT:..%2Foutside.service",
    ] {
        let (status, text) = get_socket(&cluster, agent, path);
        assert!(
            matches!(status, 204 | 404) && !text.contains(&secret),
            "{path}: {status} {text}"
        );
    }
    // Every entry the agent serves comes from its logs dir.
    let (status, text) = get(
        &cluster,
        m,
        &format!("{agent_logs}/v2/component?cursor=BEG"),
        "text/plain",
    );
    assert!(status == 200 && !text.contains(&secret), "{status}");
    fs_err::remove_file(&beside).unwrap();

    // 3. Our `dcos node log --follow` of the leader's Admin Router prints the access log line
    // of a request made after it started.
    let mut follower = Follower::spawn(our_node_log(
        &cluster,
        m,
        &["--leader", "--component", "dcos-adminrouter", "--follow"],
    ));
    follower.wait_for(Duration::from_secs(10), |_| Some(()));
    let marker = format!("/logs-follow-marker-{}", std::process::id());
    let (status, _) = cluster.curl(m, &["-m", "5", &format!("http://{}{marker}", m.ip)]);
    assert_eq!(status, 404);
    let line = follower.wait_for(Duration::from_secs(10), |l| {
        l.contains(&marker).then(|| l.to_string())
    });
    assert!(line.contains("404"), "{line}");
    drop(follower);
    // The range of an agent's unit and the leader's default log.
    for args in [
        &["--mesos-id", &agent_id, "--component", "dcos-mesos-slave"][..],
        &["--leader", "--lines", "4"][..],
    ] {
        let out = our_node_log(&cluster, m, args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.lines().count() >= 1,
            "dcos node log {args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if args[0] == "--leader" {
            assert_eq!(stdout.lines().count(), 4, "{stdout}");
        }
    }
    // Bad input to ours: no node, an unknown unit.
    let out = our_node_log(&cluster, m, &["--component", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = our_node_log(&cluster, m, &["--leader", "--component", "no-such-unit"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("No logs found"),
        "{stderr}"
    );

    // 4. The task's stdout: through the master's v2 (redirected to the agent), then the
    // DC/OS CLI 0.6.1.
    // The last `lines` lines of the task's stdout, as text.
    let stdout_tail = |lines: u32| {
        let path =
            format!("/system/v1/logs/v2/task/{task_id}/file/stdout?cursor=END&skip=-{lines}");
        cluster.curl(
            m,
            &[
                "-m",
                "10",
                "-L",
                "-H",
                &auth,
                "-H",
                "Accept: text/plain",
                &format!("http://{}{path}", m.ip),
            ],
        )
    };
    let (status, text) = eventually(Duration::from_secs(10), || {
        let (status, text) = stdout_tail(3);
        (ticks(&text).len() == 3).then_some((status, text))
    });
    assert_eq!(status, 200, "{text}");

    let cli = crate::DcosCli::fresh();
    let ar = format!("http://{}", m.ip);
    let (ok, text) = cli.setup(&cluster, &ar);
    assert!(ok, "dcos cluster setup: {text}");
    let (ok, text) = cli.run(&["task", "log", "logs-counter"]);
    assert!(ok && !ticks(&text).is_empty(), "dcos task log: {text}");
    let mut follower = Follower::spawn(their_cli(
        &cli,
        &["task", "log", "--follow", "logs-counter"],
    ));
    // Once it printed, whatever the task writes from now on is news to it.
    follower.wait_for(Duration::from_secs(20), |l| ticks(l).first().copied());
    let (_, now) = stdout_tail(1);
    let last = *ticks(&now).last().expect("a tick");
    follower.wait_for(Duration::from_secs(10), |l| {
        ticks(l).first().is_some_and(|&n| n > last).then_some(())
    });
    drop(follower);
    for args in [
        &["node", "log", "--leader"][..],
        &[
            "node",
            "log",
            &format!("--mesos-id={agent_id}"),
            "--component=dcos-mesos-slave",
        ][..],
    ] {
        let (ok, text) = cli.run(args);
        assert!(ok && text.lines().count() >= 1, "dcos {args:?}: {text}");
    }
    // The DC/OS CLI's `dcos node log --leader --follow` (every unit of the leader) prints
    // Admin Router's line of a request made after it started.
    let mut follower = Follower::spawn(their_cli(&cli, &["node", "log", "--leader", "--follow"]));
    follower.wait_for(Duration::from_secs(20), |_| Some(()));
    let marker = format!("/logs-their-follow-marker-{}", std::process::id());
    let (status, _) = cluster.curl(m, &["-m", "5", &format!("http://{}{marker}", m.ip)]);
    assert_eq!(status, 404);
    follower.wait_for(Duration::from_secs(10), |l| {
        l.contains(&marker).then_some(())
    });
    drop(follower);
}
