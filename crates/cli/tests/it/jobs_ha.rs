//! Metronome on three masters: one leads, the others proxy to it (`X-LEADER`). Killing the
//! leading Metronome (kill -9 of the real process) during an active run loses neither the
//! job, the run nor the job history; a standby takes over, and the node supervisor restarts
//! the killed unit.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dcos_testkit::{eventually, Cluster, Node};
use serde_json::{json, Value};

use crate::ha::{get, report, FAILOVER_BOUND};
use crate::{curl, post_json, DCOS};

const UNIT: &str = "dcos-metronome.service";

/// The leading Metronome every answering master names: a follower names it in `X-LEADER`,
/// the leader answers itself without one. `None` unless all that answer agree.
fn metronome_leader(cluster: &Cluster, from: &Node, masters: &[IpAddr]) -> Option<IpAddr> {
    let mut named = Vec::new();
    for ip in masters {
        let url = format!("http://{ip}:9090/v1/jobs");
        let out = cluster.exec(
            from,
            &["curl", "-sS", "-m", "3", "-o", "/dev/null", "-D", "-", &url],
        );
        let head = String::from_utf8_lossy(&out.stdout).into_owned();
        if !head.lines().next().is_some_and(|l| l.contains(" 200")) {
            continue;
        }
        let leader = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("x-leader")
                .then(|| value.trim().to_owned())
        });
        named.push(match leader {
            Some(l) => l.rsplit_once(':')?.0.parse().ok()?,
            None => *ip,
        });
    }
    named.dedup();
    (named.len() == 1).then(|| named[0])
}

/// Run `run` of `job` as Metronome on `via` lists it: its status.
fn run_status(cluster: &Cluster, from: &Node, via: IpAddr, job: &str, run: &str) -> Option<String> {
    let (status, runs) = get(
        cluster,
        from,
        &format!("http://{via}:9090/v1/jobs/{job}/runs"),
    );
    (status == 200).then_some(())?;
    let found = runs.as_array()?.iter().find(|r| r["id"] == run)?;
    found["status"].as_str().map(str::to_owned)
}

/// `job`'s history as Metronome on `via` reports it.
fn history(cluster: &Cluster, from: &Node, via: IpAddr, job: &str) -> Option<Value> {
    let url = format!("http://{via}:9090/v1/jobs/{job}?embed=history");
    let (status, body) = get(cluster, from, &url);
    (status == 200).then(|| body["history"].clone())
}

fn start_run(cluster: &Cluster, from: &Node, via: IpAddr, job: &str) -> String {
    let url = format!("http://{via}:9090/v1/jobs/{job}/runs");
    let (status, run) = curl(cluster, from, &["-m", "10", "-X", "POST", &url]);
    assert_eq!(status, 201, "{run}");
    run["id"].as_str().unwrap().to_owned()
}

#[test]
fn killing_the_leading_metronome_loses_neither_job_run_nor_history() {
    let cluster = Cluster::builder()
        .masters(3)
        .agents(1)
        .binary(DCOS)
        .timeout(Duration::from_secs(180))
        .start()
        .expect("start the cluster");
    let masters: Vec<&Node> = (0..3).map(|i| cluster.master(i)).collect();
    let agent = cluster.agents()[0];
    let ips: Vec<IpAddr> = masters.iter().map(|m| m.ip).collect();

    let leader = eventually(Duration::from_secs(60), || {
        metronome_leader(&cluster, agent, &ips)
    });
    let follower = *ips.iter().find(|ip| **ip != leader).unwrap();

    // History first: a short job run to success, created through a follower (proxied).
    for (id, cmd) in [("ha.quick", "true"), ("ha.wait", "sleep 60")] {
        let job = json!({"id": id, "run": {"cmd": cmd, "cpus": 0.1, "mem": 32, "disk": 0}});
        let (status, created) = post_json(
            &cluster,
            agent,
            &format!("http://{follower}:9090/v1/jobs"),
            &job,
        );
        assert_eq!(status, 201, "{created}");
    }
    let quick = start_run(&cluster, agent, follower, "ha.quick");
    eventually(Duration::from_secs(60), || {
        let h = history(&cluster, agent, follower, "ha.quick")?;
        (h["successfulFinishedRuns"][0]["id"] == quick.as_str()).then_some(())
    });

    // A run active across the failover.
    let run = start_run(&cluster, agent, follower, "ha.wait");
    eventually(Duration::from_secs(30), || {
        (run_status(&cluster, agent, follower, "ha.wait", &run)? == "ACTIVE").then_some(())
    });

    // kill -9 the leading Metronome.
    let old = eventually(Duration::from_secs(10), || {
        metronome_leader(&cluster, agent, &ips)
    });
    let old_node = masters.iter().find(|m| m.ip == old).unwrap();
    let since = Instant::now();
    let old_pid = cluster.kill_unit(old_node, UNIT);
    let survivor = *ips.iter().find(|ip| **ip != old).unwrap();
    let new = eventually(FAILOVER_BOUND, || {
        metronome_leader(&cluster, agent, &[survivor]).filter(|l| *l != old)
    });
    report(
        &format!("Metronome leader {old} killed; {new} leads"),
        since,
    );

    // On another master: the job, the same run ACTIVE, and the history.
    eventually(FAILOVER_BOUND, || {
        (run_status(&cluster, agent, survivor, "ha.wait", &run)? == "ACTIVE").then_some(())
    });
    report(&format!("run {run} ACTIVE under the new leader"), since);
    let (status, job) = get(
        &cluster,
        agent,
        &format!("http://{survivor}:9090/v1/jobs/ha.wait"),
    );
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["id"], "ha.wait");
    assert_eq!(job["run"]["cmd"], "sleep 60");
    let h = history(&cluster, agent, survivor, "ha.quick").expect("ha.quick's history");
    assert_eq!(h["successfulFinishedRuns"][0]["id"], json!(quick), "{h}");
    assert_eq!(h["successCount"], 1, "{h}");

    // The node supervisor restarts the killed Metronome, which follows the new leader.
    eventually(FAILOVER_BOUND, || {
        cluster
            .unit_pid(old_node, UNIT)
            .filter(|pid| *pid != old_pid)
    });
    eventually(FAILOVER_BOUND, || {
        (run_status(&cluster, agent, old, "ha.wait", &run)? == "ACTIVE").then_some(())
    });
    report(&format!("Metronome on {old} restarted and serving"), since);
    assert_eq!(metronome_leader(&cluster, agent, &ips), Some(new));
}
