//! Failover: a three-master cluster (ZooKeeper ensemble, as `dcos cluster up --masters 3`
//! makes it), whose leading Marathon, then leading Mesos master, is killed (-9) R times.
//! Each figure is the time from the kill to the first acknowledged write on the new leader,
//! asked through the surviving masters every 100 ms: for Marathon a `POST /v2/apps` answered
//! 201; for Mesos a scheduler `SUBSCRIBE` answered 200 (the master registers the framework).
//! The limit in the same run is the ZooKeeper session timeout (10 s), which bounds how soon
//! the ensemble may declare a silent leader gone. Needs root (namespaces).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dcos_testkit::{eventually, Cluster, Node};
use serde_json::{json, Value};

use crate::{Args, Kind, Param, Scenario};

/// The session timeout the masters' components ask ZooKeeper for.
const SESSION_TIMEOUT: Duration = dcos_store::ZK_SESSION_TIMEOUT;

/// How long one failover may take before the benchmark gives up.
const GIVE_UP: Duration = Duration::from_secs(90);

/// Every request gives up after 2 s: a master being killed must not hold the next attempt.
const REQUEST_SECS: &str = "2";

/// `POST` of the JSON `body` to `url` from `node`, after `extra` curl arguments: the status.
fn post_status(cluster: &Cluster, node: &Node, extra: &[&str], url: &str, body: &str) -> u16 {
    let mut args = vec!["-m", REQUEST_SECS];
    args.extend_from_slice(extra);
    args.extend(dcos_testkit::json_request_args("POST", url, body));
    cluster.curl(node, &args).0
}

fn curl_json(cluster: &Cluster, node: &Node, url: &str) -> Value {
    let (_, body) = cluster.curl(node, &["-m", REQUEST_SECS, url]);
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// The leader's IP from `host:port` or `//host:port/...`.
fn host(text: &str) -> Option<IpAddr> {
    let text = text.trim_start_matches("http:").trim_start_matches("//");
    text.split([':', '/']).next()?.parse().ok()
}

fn marathon_leader(cluster: &Cluster, from: &Node, via: IpAddr) -> Option<IpAddr> {
    let leader = curl_json(cluster, from, &format!("http://{via}:8080/v2/leader"));
    host(leader["leader"].as_str()?)
}

fn mesos_leader(cluster: &Cluster, from: &Node, via: IpAddr) -> Option<IpAddr> {
    let url = format!("http://{via}:5050/master/redirect");
    let args = [
        "curl",
        "-s",
        "-m",
        REQUEST_SECS,
        "-o",
        "/dev/null",
        "-w",
        "%{redirect_url}",
        &url,
    ];
    let out = cluster.exec(from, &args);
    host(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .split("//")
            .nth(1)?,
    )
}

/// Kills `unit` on the leader `old`, then writes through the other masters until one write
/// is acknowledged; returns the seconds from the kill, once the killed unit runs again.
fn one_failover(
    cluster: &Cluster,
    masters: &[&Node],
    old: IpAddr,
    unit: &str,
    write: impl Fn(IpAddr) -> bool,
) -> f64 {
    let old_node = masters
        .iter()
        .find(|m| m.ip == old)
        .expect("the leader is a master");
    let since = Instant::now();
    let pid = cluster.kill_unit(old_node, unit);
    let survivors: Vec<IpAddr> = masters
        .iter()
        .map(|m| m.ip)
        .filter(|ip| *ip != old)
        .collect();
    let took = eventually(GIVE_UP, || {
        survivors
            .iter()
            .any(|via| write(*via))
            .then(|| since.elapsed().as_secs_f64())
    });
    // The next repetition starts with three contenders again.
    eventually(GIVE_UP, || {
        cluster.unit_pid(old_node, unit).filter(|p| *p != pid)
    });
    took
}

fn summary(samples: &[f64]) -> Value {
    let median = crate::median(samples);
    let min = samples.iter().copied().reduce(f64::min);
    let max = samples.iter().copied().reduce(f64::max);
    json!({
        "samples_secs": samples,
        "min_secs": min,
        "median_secs": median,
        "max_secs": max,
        "median_ratio_to_session_timeout": median / SESSION_TIMEOUT.as_secs_f64(),
    })
}

fn run_blocking(args: Args) -> anyhow::Result<Value> {
    let repetitions = args.num("repetitions");
    let cluster = Cluster::builder()
        .masters(3)
        .agents(1)
        .binary(crate::rig::dcos_exe()?)
        .timeout(Duration::from_secs(180))
        .start()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let masters: Vec<&Node> = (0..3).map(|i| cluster.master(i)).collect();
    let client = cluster.agents()[0];
    let first = masters[0].ip;

    let mut marathon = Vec::new();
    for i in 0..repetitions {
        let old = eventually(GIVE_UP, || marathon_leader(&cluster, client, first));
        let app =
            json!({"id": format!("/failover-{i}"), "cmd": "sleep 1", "instances": 0}).to_string();
        let took = one_failover(&cluster, &masters, old, "dcos-marathon.service", |via| {
            let url = format!("http://{via}:8080/v2/apps");
            post_status(&cluster, client, &[], &url, &app) == 201
        });
        eprintln!("[failover] Marathon {i}: {took:.2} s");
        marathon.push(took);
    }
    let mut mesos = Vec::new();
    for i in 0..repetitions {
        let old = eventually(GIVE_UP, || mesos_leader(&cluster, client, first));
        let call = json!({"type": "SUBSCRIBE", "subscribe": {"framework_info":
            {"user": "root", "name": format!("failover-{i}")}}})
        .to_string();
        let took = one_failover(
            &cluster,
            &masters,
            old,
            "dcos-mesos-master.service",
            |via| {
                // -L: a standby answers 307 to the leader; curl repeats the POST there.
                let url = format!("http://{via}:5050/api/v1/scheduler");
                post_status(&cluster, client, &["-L"], &url, &call) == 200
            },
        );
        eprintln!("[failover] Mesos {i}: {took:.2} s");
        mesos.push(took);
    }
    cluster.down().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(json!({
        "masters": 3,
        "repetitions": repetitions,
        "session_timeout_secs": SESSION_TIMEOUT.as_secs_f64(),
        "marathon": summary(&marathon),
        "mesos": summary(&mesos),
    }))
}

const PARAMS: &[Param] = &[Param {
    key: "repetitions",
    kind: Kind::Num,
    full: "10",
    tiny: "1",
    help: "kills of each leader",
}];

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "failover",
    about: "kill -9 of the leading Marathon and Mesos master, to the first acknowledged write",
    params: PARAMS,
    run: |args| {
        Box::pin(async move { tokio::task::spawn_blocking(move || run_blocking(args)).await? })
    },
    section,
};

fn section(doc: &Value) -> String {
    use crate::report::{heading, num, ratio, table};
    let f = &doc["figures"];
    let mut out = heading("Failover of the masters", doc);
    out.push_str(&format!(
        "A three-master cluster (each master: Exhibitor with Debian's ZooKeeper, Mesos \
         master, Marathon) and one agent, in network namespaces. {} times each, the leading \
         Marathon or Mesos master is killed (-9), and the first acknowledged write on the \
         new leader is timed, asked through the surviving masters every 100 ms (Marathon: \
         `POST /v2/apps` answered 201; Mesos: a scheduler `SUBSCRIBE` answered 200). The \
         limit is the ZooKeeper session timeout the components ask for ({} s, Mesos' and \
         Marathon's default): a killed leader's leadership cannot end sooner.\n\n",
        f["repetitions"], f["session_timeout_secs"],
    ));
    let row = |name: &str, s: &Value| {
        vec![
            name.to_string(),
            num(&s["min_secs"], 2),
            num(&s["median_secs"], 2),
            num(&s["max_secs"], 2),
            ratio(&s["median_ratio_to_session_timeout"]),
        ]
    };
    out.push_str(&table(
        &[
            "leader killed",
            "min (s)",
            "median (s)",
            "max (s)",
            "median / session timeout",
        ],
        &[
            row("Marathon", &f["marathon"]),
            row("Mesos master", &f["mesos"]),
        ],
    ));
    out.push_str(
        "\nZooKeeper expires sessions in buckets of its tick (2 s, DC/OS' `tickTime`), which \
         adds up to one tick to the session timeout; the rest (the standby's watch, reading \
         the election, recovering state, the write) is under 0.1 s.\n",
    );
    out
}
