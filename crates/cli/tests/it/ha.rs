//! Highly available masters: three masters form a ZooKeeper ensemble (Debian's ZooKeeper,
//! run by each master's Exhibitor), and Mesos and Marathon each run one leader with hot
//! standbys. Each failure below is real (kill -9 of a process, a master cut off its bridge);
//! each time a new leader serves within a bound the test reports, the app and its tasks are
//! unchanged, acknowledged writes are there, and the tasks keep running.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dcos_testkit::{eventually, Cluster, Node};
use serde_json::{json, Value};

use crate::packages::cosmos_from;
use crate::{curl, curl_text, post_json, DCOS};

/// How long a leader may take to be replaced: the 10 s ZooKeeper session timeout of the
/// lost leader, re-registration, and slack for a loaded 2-core machine.
pub(crate) const FAILOVER_BOUND: Duration = Duration::from_secs(60);

/// `GET url` from `node`, with the bootstrap superuser's token (which Admin Router asks
/// for and the components' own ports ignore): status and JSON.
pub(crate) fn get(cluster: &Cluster, node: &Node, url: &str) -> (u16, Value) {
    curl(
        cluster,
        node,
        &["-m", "3", "-H", &cluster.auth_header(), url],
    )
}

/// The Mesos leader every reachable master names through `/master/redirect`, if they agree.
fn mesos_leader(cluster: &Cluster, from: &Node, masters: &[&Node]) -> Option<IpAddr> {
    let mut named = Vec::new();
    for m in masters {
        let url = format!("http://{}:5050/master/redirect", m.ip);
        let out = cluster.exec(
            from,
            &[
                "curl",
                "-sS",
                "-m",
                "3",
                "-o",
                "/dev/null",
                "-w",
                "%{redirect_url}",
                &url,
            ],
        );
        let location = String::from_utf8_lossy(&out.stdout).into_owned();
        let host = location
            .split("//")
            .nth(1)?
            .split(':')
            .next()?
            .parse()
            .ok()?;
        named.push(host);
    }
    named.dedup();
    (named.len() == 1).then(|| named[0])
}

/// The leading Marathon (`ip`) as `/v2/leader` on `via` reports it.
fn marathon_leader(cluster: &Cluster, from: &Node, via: IpAddr) -> Option<IpAddr> {
    let (status, body) = get(cluster, from, &format!("http://{via}:8080/v2/leader"));
    (status == 200).then_some(())?;
    body["leader"].as_str()?.split(':').next()?.parse().ok()
}

/// The app's running task ids, sorted, as Marathon on `via` reports them.
fn running_tasks(cluster: &Cluster, from: &Node, via: IpAddr) -> Option<Vec<String>> {
    let (status, body) = get(
        cluster,
        from,
        &format!("http://{via}:8080/v2/apps/ha/tasks"),
    );
    (status == 200).then_some(())?;
    let mut ids: Vec<String> = body["tasks"]
        .as_array()?
        .iter()
        .filter(|t| t["state"] == "TASK_RUNNING")
        .filter_map(|t| t["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    Some(ids)
}

/// Exhibitor's view from `via`: (serving servers, leaders).
fn ensemble(cluster: &Cluster, from: &Node, via: IpAddr) -> (usize, usize) {
    let url = format!("http://{via}:8181/exhibitor/v1/cluster/status");
    let (_, status) = get(cluster, from, &url);
    let servers = status.as_array().cloned().unwrap_or_default();
    let serving = servers.iter().filter(|s| s["code"] == 3).count();
    let leaders = servers.iter().filter(|s| s["isLeader"] == true).count();
    (serving, leaders)
}

pub(crate) fn report(what: &str, since: Instant) {
    eprintln!("[ha] {what} in {:.1} s", since.elapsed().as_secs_f64());
}

#[test]
fn three_masters_survive_the_loss_of_each_leader_and_a_partition() {
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

    // The ensemble: every Exhibitor lists the three masters, all serving, one leader.
    for m in &masters {
        let (status, list) = get(
            &cluster,
            agent,
            &format!("http://{}:8181/exhibitor/v1/cluster/list", m.ip),
        );
        assert_eq!(status, 200);
        let want: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
        assert_eq!(list, json!({"servers": want, "port": 2181}));
        eventually(Duration::from_secs(30), || {
            (ensemble(&cluster, agent, m.ip) == (3, 1)).then_some(())
        });
    }

    // Exhibitor's contract ports answer on each master's IP; the quorum port on ZooKeeper's
    // leader only, which is where followers connect.
    for m in &masters {
        for port in [2181, 3888, 8181] {
            let addr = std::net::SocketAddr::new(m.ip, port);
            cluster
                .connect(agent, addr)
                .unwrap_or_else(|e| panic!("{addr}: {e}"));
        }
    }
    let url = format!("http://{}:8181/exhibitor/v1/cluster/status", ips[0]);
    let (_, status) = get(&cluster, agent, &url);
    let zk_leader = status
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["isLeader"] == true)
        .unwrap();
    let zk_leader: IpAddr = zk_leader["hostname"].as_str().unwrap().parse().unwrap();
    cluster
        .connect(agent, std::net::SocketAddr::new(zk_leader, 2888))
        .expect("the ZooKeeper leader's quorum port");

    // An app, created through a follower Marathon (which proxies to the leader).
    let leader = eventually(Duration::from_secs(30), || {
        marathon_leader(&cluster, agent, ips[0])
    });
    let follower = *ips.iter().find(|ip| **ip != leader).unwrap();
    let app =
        json!({"id": "/ha", "cmd": "exec sleep 3600", "cpus": 0.1, "mem": 16, "instances": 2});
    let (status, created) = post_json(
        &cluster,
        agent,
        &format!("http://{follower}:8080/v2/apps"),
        &app,
    );
    assert_eq!(status, 201, "{created}");
    let tasks = eventually(Duration::from_secs(60), || {
        running_tasks(&cluster, agent, follower).filter(|t| t.len() == 2)
    });

    // A login before any failure: its token is used to the end (step 5).
    cluster.token();

    // A package repository added through one master's Cosmos is in every master's list:
    // the list is in ZooKeeper (checked again after the failures, step 5).
    let repo_dir = tempfile::tempdir().unwrap();
    let repo_file = repo_dir.path().join("repo.json");
    fs_err::write(&repo_file, r#"{"packages": []}"#).unwrap();
    let repo = json!({"name": "Shared", "uri": format!("file://{}", repo_file.display())});
    let (status, added) = cosmos_from(
        &cluster,
        agent,
        ips[1],
        "repository/add",
        "repository.add",
        "v1",
        &repo,
    );
    assert_eq!(status, 200, "{added}");
    let repositories = |via: IpAddr| {
        let (status, listed) = cosmos_from(
            &cluster,
            agent,
            via,
            "repository/list",
            "repository.list",
            "v1",
            &json!({}),
        );
        assert_eq!(status, 200, "{listed}");
        listed["repositories"].clone()
    };
    for ip in &ips {
        assert_eq!(repositories(*ip), added["repositories"], "via {ip}");
    }

    // 1. kill -9 the leading Mesos master.
    let old = eventually(Duration::from_secs(10), || {
        mesos_leader(&cluster, agent, &masters)
    });
    let old_node = masters.iter().find(|m| m.ip == old).unwrap();
    let since = Instant::now();
    cluster.kill_unit(old_node, "dcos-mesos-master.service");
    let new = eventually(FAILOVER_BOUND, || {
        mesos_leader(&cluster, agent, &masters).filter(|l| *l != old)
    });
    report(&format!("Mesos leader {old} killed; {new} leads"), since);
    // The agent re-registers with its tasks, and Marathon re-subscribes.
    let state = eventually(FAILOVER_BOUND, || {
        let (status, state) = get(&cluster, agent, &format!("http://{new}:5050/master/state"));
        let framework = state["frameworks"]
            .as_array()?
            .iter()
            .find(|f| f["name"] == "marathon")?
            .clone();
        (status == 200
            && state["slaves"].as_array()?.len() == 1
            && framework["tasks"].as_array()?.len() == 2)
            .then_some(state)
    });
    report("agent and Marathon back on the new Mesos leader", since);
    assert!(state["leader"]
        .as_str()
        .unwrap()
        .ends_with(&format!("{new}:5050")));
    assert_eq!(
        running_tasks(&cluster, agent, follower),
        Some(tasks.clone())
    );
    // The leader's followers see the change: Admin Router on every master routes /mesos to
    // the new leader, and every master's Mesos-DNS answers leader.mesos with it.
    for m in &masters {
        eventually(FAILOVER_BOUND, || {
            let url = format!("http://{}/mesos/master/state", m.ip);
            let (status, state) = get(&cluster, agent, &url);
            (status == 200 && state["leader"] == format!("master@{new}:5050")).then_some(())
        });
        eventually(FAILOVER_BOUND, || {
            let server = format!("@{}", m.ip);
            let argv = [
                "dig",
                &server,
                "-p",
                "61053",
                "+short",
                "+time=2",
                "+tries=1",
                "leader.mesos",
            ];
            let out = cluster.exec(agent, &argv);
            (String::from_utf8_lossy(&out.stdout).trim() == new.to_string()).then_some(())
        });
    }
    report(
        "Admin Router and Mesos-DNS on every master follow the new leader",
        since,
    );

    // 2. kill -9 the leading Marathon; a standby takes over with the same state, and takes writes.
    let old = eventually(Duration::from_secs(10), || {
        marathon_leader(&cluster, agent, ips[0])
    });
    let old_node = masters.iter().find(|m| m.ip == old).unwrap();
    let since = Instant::now();
    cluster.kill_unit(old_node, "dcos-marathon.service");
    let new = eventually(FAILOVER_BOUND, || {
        marathon_leader(&cluster, agent, *ips.iter().find(|ip| **ip != old).unwrap())
            .filter(|l| *l != old)
    });
    report(&format!("Marathon leader {old} killed; {new} leads"), since);
    let served = eventually(FAILOVER_BOUND, || running_tasks(&cluster, agent, new));
    assert_eq!(served, tasks, "the new leader lost or changed tasks");
    let scale = |via: IpAddr, n: usize| {
        let body = json!({"instances": n}).to_string();
        let url = format!("http://{via}:8080/v2/apps/ha");
        curl(
            &cluster,
            agent,
            &dcos_testkit::json_request_args("PUT", &url, &body),
        )
    };
    let (status, answer) = scale(old, 3);
    assert_eq!(
        status, 200,
        "scaling through the restarted Marathon: {answer}"
    );
    let three = eventually(FAILOVER_BOUND, || {
        running_tasks(&cluster, agent, new).filter(|t| t.len() == 3)
    });
    assert!(
        tasks.iter().all(|t| three.contains(t)),
        "the first two tasks kept running"
    );

    // 3. kill -9 one ZooKeeper (the ensemble's leader): Exhibitor restarts it, a new
    // ZooKeeper leader is elected, and the masters keep their leaders and their writes.
    let zk_leader = {
        let url = format!("http://{}:8181/exhibitor/v1/cluster/status", ips[0]);
        let (_, status) = get(&cluster, agent, &url);
        let leader = status
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["isLeader"] == true)
            .unwrap()
            .clone();
        leader["hostname"]
            .as_str()
            .unwrap()
            .parse::<IpAddr>()
            .unwrap()
    };
    let zk_node = masters.iter().find(|m| m.ip == zk_leader).unwrap();
    let pid_file = zk_node.work_dir.join("exhibitor/zookeeper/zookeeper.pid");
    let zk_pid: u32 = fs_err::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let since = Instant::now();
    dcos_testkit::kill_9(zk_pid);
    eventually(FAILOVER_BOUND, || {
        let restarted: u32 = fs_err::read_to_string(&pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        (restarted != zk_pid && ensemble(&cluster, agent, ips[0]) == (3, 1)).then_some(())
    });
    report(
        &format!("ZooKeeper leader on {zk_leader} killed; ensemble serving again"),
        since,
    );
    let (status, answer) = eventually(FAILOVER_BOUND, || {
        let leader = marathon_leader(&cluster, agent, ips[0])?;
        let (status, answer) = scale(leader, 2);
        (status == 200).then_some((status, answer))
    });
    assert_eq!(status, 200, "{answer}");
    report("a write acknowledged after the ZooKeeper loss", since);
    let two = eventually(FAILOVER_BOUND, || {
        running_tasks(&cluster, agent, ips[0]).filter(|t| t.len() == 2)
    });

    // 4. Cut the leading Mesos master off the bridge, then heal it: the others elect a new
    // leader, the cut-off one stops leading, and after healing all agree on one leader.
    let old = eventually(Duration::from_secs(10), || {
        mesos_leader(&cluster, agent, &masters)
    });
    let cut = *masters.iter().find(|m| m.ip == old).unwrap();
    let others: Vec<&Node> = masters.iter().copied().filter(|m| m.ip != old).collect();
    let since = Instant::now();
    cluster.cut_off(cut, true);
    let healed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let new = eventually(FAILOVER_BOUND, || {
            mesos_leader(&cluster, agent, &others).filter(|l| *l != old)
        });
        report(&format!("Mesos leader {old} cut off; {new} leads"), since);
        // Seen from inside its namespace, the cut-off master stops leading: no split brain.
        eventually(FAILOVER_BOUND, || {
            let (status, _) = get(&cluster, cut, &format!("http://{old}:5050/master/state"));
            (status != 200).then_some(())
        });
        report("the cut-off master stepped down", since);
    }));
    cluster.cut_off(cut, false);
    if let Err(panic) = healed {
        std::panic::resume_unwind(panic);
    }
    let since = Instant::now();
    let leader = eventually(FAILOVER_BOUND, || mesos_leader(&cluster, agent, &masters));
    assert_ne!(leader, old, "the healed master does not take over again");
    eventually(FAILOVER_BOUND, || {
        (ensemble(&cluster, agent, old) == (3, 1)).then_some(())
    });
    report("partition healed; one Mesos leader, ensemble whole", since);
    let after = eventually(FAILOVER_BOUND, || {
        running_tasks(&cluster, agent, ips[0]).filter(|t| t.len() == 2)
    });
    assert_eq!(after, two, "tasks changed across the partition");
    let (status, text) = curl_text(
        &cluster,
        agent,
        &["-m", "3", &format!("http://{leader}:5050/master/state")],
    );
    assert_eq!(status, 200, "{text}");

    // 5. The login made before every failure above still works at every master's Admin
    // Router, also after kill -9 of the IAM that issued it: the signing key and the
    // permissions are the cluster's, in ZooKeeper.
    let since = Instant::now();
    cluster.kill_unit(masters[0], "dcos-bouncer.service");
    for m in &masters {
        eventually(FAILOVER_BOUND, || {
            let url = format!("http://{}/acs/api/v1/users/bootstrapuser", m.ip);
            let (status, user) = get(&cluster, agent, &url);
            (status == 200 && user["uid"] == "bootstrapuser").then_some(())
        });
    }
    report(
        "the first login works on every master after the failures",
        since,
    );
    for ip in &ips {
        assert_eq!(repositories(*ip), added["repositories"], "via {ip}");
    }
}
