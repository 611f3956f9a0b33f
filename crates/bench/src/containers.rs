//! Containers: start latency of a task in a cached image and pull throughput, each against
//! its peers in the same run.
//!
//! - Start: a framework launches busybox's `sleep 30` in a cached busybox image through
//!   a real master and agent on 127.0.0.1, one task at a time, and times the ACCEPT call to
//!   TASK_RUNNING (the agent reports RUNNING once the container's init has spawned the task).
//!   In the same rounds: the same command as a plain process task on the same agent,
//!   fork+exec of `/bin/busybox sleep 30` by the benchmark (until `spawn` returns, that is
//!   once the exec succeeded), and `runc run -d` of an OCI bundle whose rootfs is the same
//!   image (until runc exits, once the container's process was started).
//! - Pull: an image of busybox and a layer of incompressible random data is pushed to a
//!   local `docker-registry`; a cold `Store::pull` into an empty store is timed against
//!   `skopeo copy` of the same image into an OCI layout.
//!
//! Needs root (namespaces, overlayfs, cgroups), Debian's `docker-registry`, `busybox-static`,
//! `runc` and `skopeo`, and the `dcos` binary (the containers' init).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;
use dcos_mesos::api::{Filters, Id, TaskState, TaskStatus};
use dcos_mesos::scheduler::{self, Accept, Acknowledge, CallBody, Event, Kill, Offer, Operation};
use dcos_testkit::images::{self, Item};
use dcos_testkit::loopback;
use dcos_testkit::registry::Registry;
use serde_json::{json, Value};

use crate::{framework, median, percentile, Args, Kind, Param, Scenario};

/// The image the start latency is measured with.
const BUSYBOX: &str = "bench/busybox:latest";
/// The image the pulls are measured with.
const BIG: &str = "bench/big:latest";
/// The command every start runs: the same busybox binary, in the image and on the host.
const SLEEP: [&str; 3] = ["/bin/busybox", "sleep", "30"];
/// What each task (and the runc container) is given: the agent's cgroups get these limits.
const TASK_CPUS: f64 = 0.1;
const TASK_MEM_MB: f64 = 64.0;
const MIB: f64 = 1_048_576.0;
/// Issue 32's goal for the image task's start, over fork+exec of the same command.
const GOAL_OVER_FORK_EXEC_MS: f64 = 3.0;

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

/// Median and p90 of samples (milliseconds or seconds, as given).
fn summary(samples: &[f64]) -> Value {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    json!({"median": median(samples), "p90": percentile(&sorted, 0.9), "samples": samples})
}

/// Fails early, saying what is missing, rather than half-way through a run.
fn require_tools() -> anyhow::Result<()> {
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "this scenario needs root: containers need namespaces, overlayfs and cgroups"
    );
    for (path, package) in [
        (dcos_testkit::registry::REGISTRY_BIN, "docker-registry"),
        (images::BUSYBOX_BIN, "busybox-static"),
        ("/usr/sbin/runc", "runc"),
        ("/usr/bin/skopeo", "skopeo"),
    ] {
        anyhow::ensure!(
            Path::new(path).is_file(),
            "no {path}: install Debian's {package} (scripts/install-deps)"
        );
    }
    anyhow::ensure!(
        loopback::dcos_binary().is_some(),
        "no dcos binary beside this one for the containers' init: build it (`cargo build`) \
         and run the built `dcos-bench`"
    );
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<Value> {
    require_tools()?;
    // `start` waits for the registry with blocking sleeps.
    let registry =
        tokio::task::spawn_blocking(|| Registry::start("127.0.0.1:0".parse().expect("addr")))
            .await??;
    let start = start_latency(&registry, args.num("launches").max(1)).await?;
    let pull = pull_throughput(
        &registry,
        args.num("pulls").max(1),
        args.num("layer-mib").max(1),
    )
    .await?;
    Ok(json!({"start": start, "pull": pull}))
}

/// The benchmark's framework: one task at a time, every update acknowledged, offers kept
/// until used (an offer left unanswered would hold the agent's resources).
struct Framework {
    conn: scheduler::Connection,
    events: scheduler::Events,
    offers: VecDeque<Offer>,
}

impl Framework {
    /// The next event, keeping offers and acknowledging updates.
    async fn next(&mut self) -> anyhow::Result<Option<TaskStatus>> {
        match self.events.next().await? {
            Event::Offers(offers) => self.offers.extend(offers.offers),
            Event::Rescind(rescind) => self.offers.retain(|o| o.id != rescind.offer_id),
            Event::Update(update) => {
                if let Some(ack) = Acknowledge::of(&update.status) {
                    self.conn.call(CallBody::Acknowledge(ack)).await?;
                }
                return Ok(Some(update.status));
            }
            _ => {}
        }
        Ok(None)
    }

    /// The state of the next update of `task_id`, with its message.
    async fn update_of(&mut self, task_id: &str) -> anyhow::Result<(TaskState, String)> {
        loop {
            if let Some(status) = self.next().await? {
                if status.task_id.value == task_id {
                    return Ok((status.state, status.message.unwrap_or_default()));
                }
            }
        }
    }

    /// Launches `task` (no ids or agent yet) on an offer and returns the milliseconds from
    /// the ACCEPT call to TASK_RUNNING; then kills it and waits until it is gone, so no
    /// teardown overlaps the next measurement.
    async fn launch(&mut self, task_id: &str, mut task: Value) -> anyhow::Result<f64> {
        let offer = loop {
            match self.offers.pop_front() {
                Some(offer) => break offer,
                None => drop(self.next().await?),
            }
        };
        task["name"] = json!(task_id);
        task["task_id"] = json!({"value": task_id});
        task["agent_id"] = json!(offer.agent_id);
        // Refusing the rest for 0 s has it offered again at the next allocation, rather
        // than after Mesos' default 5 s.
        let accept = CallBody::Accept(Accept {
            offer_ids: vec![offer.id],
            operations: vec![Operation::launch(vec![serde_json::from_value(task)?])],
            filters: Some(Filters {
                refuse_seconds: Some(0.0),
            }),
        });
        let start = Instant::now();
        self.conn.call(accept).await?;
        let elapsed = loop {
            match self.update_of(task_id).await? {
                (TaskState::Running, _) => break ms_since(start),
                (TaskState::Starting | TaskState::Staging, _) => {}
                (state, message) => anyhow::bail!("task {task_id} ended {state}: {message}"),
            }
        };
        let kill = CallBody::Kill(Kill {
            task_id: Id::new(task_id),
            ..Kill::default()
        });
        self.conn.call(kill).await?;
        while !self.update_of(task_id).await?.0.is_terminal() {}
        Ok(elapsed)
    }
}

/// A task running [`SLEEP`] directly (no shell), in `image` if given.
fn sleep_task(image: Option<&str>) -> Value {
    let scalar = |name: &str, value: f64| json!({"name": name, "type": "SCALAR", "scalar": {"value": value}});
    // Mesos' exec form: `value` is the program, `arguments` the whole argv.
    let mut task = json!({
        "resources": [scalar("cpus", TASK_CPUS), scalar("mem", TASK_MEM_MB)],
        "command": {"shell": false, "value": SLEEP[0], "arguments": SLEEP},
    });
    if let Some(name) = image {
        task["container"] = json!({"type": "MESOS",
            "mesos": {"image": {"type": "DOCKER", "docker": {"name": name}}}});
    }
    task
}

/// fork+exec of [`SLEEP`] by the benchmark until `spawn` returns, which is once the exec
/// succeeded; the kill and wait after are not timed.
fn fork_exec_ms() -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut child = Command::new(SLEEP[0])
        .args(&SLEEP[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let elapsed = ms_since(start);
    child.kill()?;
    child.wait()?;
    Ok(elapsed)
}

/// `runc run -d` of the bundle until runc exits (the container's process started), then an
/// untimed `runc delete -f`.
fn runc_ms(state: &Path, bundle: &Path, id: &str) -> anyhow::Result<f64> {
    // A file, not a pipe: the detached container inherits runc's stderr, and reading a pipe
    // to its end would wait for the container.
    let log = state.join(format!("{id}.stderr"));
    let runc = |args: &[&str]| -> anyhow::Result<()> {
        let status = Command::new("runc")
            .arg("--root")
            .arg(state)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs_err::File::create(&log)?.into_parts().0)
            .status()?;
        let said = || fs_err::read_to_string(&log).unwrap_or_default();
        anyhow::ensure!(
            status.success(),
            "runc {args:?}: {status}: {}",
            said().trim()
        );
        Ok(())
    };
    let bundle = bundle.to_str().context("a UTF-8 bundle path")?;
    let start = Instant::now();
    runc(&["run", "-d", "--bundle", bundle, id])?;
    let elapsed = ms_since(start);
    runc(&["delete", "-f", id])?;
    Ok(elapsed)
}

/// An OCI bundle in `dir` running [`SLEEP`] with `rootfs` (read-only) as its root: `runc
/// spec`'s config with the agent's isolation (mount, pid, uts and ipc namespaces, the host's
/// network) and the task's cgroup limits.
fn runc_bundle(dir: &Path, rootfs: &Path) -> anyhow::Result<()> {
    let status = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(dir)
        .status()?;
    anyhow::ensure!(status.success(), "runc spec failed: {status}");
    let path = dir.join("config.json");
    let mut config: Value = serde_json::from_slice(&fs_err::read(&path)?)?;
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(SLEEP);
    config["root"] = json!({"path": rootfs, "readonly": true});
    if let Some(namespaces) = config["linux"]["namespaces"].as_array_mut() {
        namespaces.retain(|n| n["type"] != "network");
    }
    // As the agent sets them (see its cgroups): shares 1024 per cpu, CFS quota per 100 ms.
    config["linux"]["resources"]["memory"] = json!({"limit": (TASK_MEM_MB * MIB) as i64});
    config["linux"]["resources"]["cpu"] = json!({"shares": (1024.0 * TASK_CPUS) as u64,
        "period": 100_000, "quota": (TASK_CPUS * 100_000.0) as i64});
    fs_err::write(&path, serde_json::to_vec_pretty(&config)?)?;
    Ok(())
}

/// The start latency figures: an untimed first launch pulls the image (its time is kept),
/// then each round runs one of each kind, so drift over the run hits all alike.
async fn start_latency(registry: &Registry, launches: usize) -> anyhow::Result<Value> {
    let image = format!("{}/{BUSYBOX}", registry.host());
    images::push_busybox(registry, BUSYBOX)
        .await
        .map_err(anyhow::Error::msg)?;
    let dir = tempfile::tempdir()?;
    // The bundle's rootfs: the image as dcos-image pulls and extracts it, in a store of its
    // own (the agent's is its own business); busybox is one layer, used as it is.
    let store = dcos_image::Store::open(&dir.path().join("images"), Vec::new())?;
    let pulled = store
        .pull(&dcos_image::Reference::parse(&image)?, None, false)
        .await?;
    anyhow::ensure!(pulled.layers.len() == 1, "the busybox image has one layer");
    let (bundle, runc_state) = (dir.path().join("bundle"), dir.path().join("runc"));
    fs_err::create_dir_all(&bundle)?;
    fs_err::create_dir_all(&runc_state)?;
    runc_bundle(&bundle, &pulled.layers[0])?;

    let master = loopback::master().await;
    let agent_dir = dir.path().join("agent");
    let ports = loopback::free_port_range(10);
    let agent = loopback::agent(master.addr, "127.0.0.1:0".parse()?, agent_dir, &ports).await;
    let (conn, events, _) = scheduler::subscribe(
        &reqwest::Client::new(),
        master.addr,
        &framework("bench-containers"),
    )
    .await?;
    let mut fw = Framework {
        conn,
        events,
        offers: VecDeque::new(),
    };
    let first = fw.launch("first", sleep_task(Some(&image))).await?;
    fw.launch("first-process", sleep_task(None)).await?;
    let (mut ours, mut process, mut fork, mut runc) = (vec![], vec![], vec![], vec![]);
    for i in 0..launches {
        ours.push(
            fw.launch(&format!("image-{i}"), sleep_task(Some(&image)))
                .await?,
        );
        process.push(fw.launch(&format!("process-{i}"), sleep_task(None)).await?);
        fork.push(tokio::task::spawn_blocking(fork_exec_ms).await??);
        let (state, bundle, id) = (runc_state.clone(), bundle.clone(), format!("bench-{i}"));
        runc.push(tokio::task::spawn_blocking(move || runc_ms(&state, &bundle, &id)).await??);
    }
    agent.stop().await;
    master.stop().await;
    let (ours_ms, fork_ms, runc_ms) = (median(&ours), median(&fork), median(&runc));
    Ok(json!({
        "launches": launches,
        "image": BUSYBOX,
        "command": SLEEP.join(" "),
        // Debug builds of the agent and the containers' init are several times slower.
        "build": crate::machine::build(),
        "task": {"cpus": TASK_CPUS, "mem_mb": TASK_MEM_MB},
        "first_launch_with_pull_ms": first,
        "image_task_ms": summary(&ours),
        "process_task_ms": summary(&process),
        "fork_exec_ms": summary(&fork),
        "runc_run_ms": summary(&runc),
        "minus_fork_exec_ms": ours_ms - fork_ms,
        "ratio_to_fork_exec": ours_ms / fork_ms,
        "ratio_to_runc": ours_ms / runc_ms,
    }))
}

/// Writes an OCI layout of busybox plus a layer of `mib` MiB from `/dev/urandom` (gzip
/// cannot shrink it, so the bytes pulled are the bytes pushed); returns its blobs' total
/// size, what a pull transfers.
fn big_layout(dir: &Path, mib: usize) -> anyhow::Result<u64> {
    use std::io::Read;
    let mut random = vec![0; mib << 20];
    fs_err::File::open("/dev/urandom")?.read_exact(&mut random)?;
    let data = images::tar_of(&[
        Item::Dir("data".into(), 0o755),
        Item::File("data/random".into(), 0o644, random),
    ])?;
    let mut layers = images::busybox_layers()?;
    layers.push(data);
    images::write_oci_layout(dir, &layers, &["sh"])?;
    let mut bytes = 0;
    for entry in fs_err::read_dir(dir.join("blobs/sha256"))? {
        bytes += entry?.metadata()?.len();
    }
    Ok(bytes)
}

/// Seconds of a cold `Store::pull` into an empty store at `root` (download, digest check and
/// extraction of every layer).
async fn pull_ours(image: &str, root: &Path) -> anyhow::Result<f64> {
    let reference = dcos_image::Reference::parse(image)?;
    let store = dcos_image::Store::open(root, Vec::new())?;
    let start = Instant::now();
    store.pull(&reference, None, false).await?;
    Ok(start.elapsed().as_secs_f64())
}

/// Seconds of `skopeo copy` of `image` into a new OCI layout at `dest` (download and digest
/// check; blobs stay compressed).
fn pull_skopeo(image: &str, dest: &Path) -> anyhow::Result<f64> {
    let start = Instant::now();
    // `--insecure-policy`: no signature policy applies to a local test registry.
    let out = Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
        ])
        .arg(format!("docker://{image}"))
        .arg(format!("oci:{}:latest", dest.display()))
        .stdin(Stdio::null())
        .output()?;
    let secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        out.status.success(),
        "skopeo copy failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(secs)
}

/// The pull figures: `pulls` rounds of one pull each way, the order alternating and the
/// disk synced between pulls, so neither pays for the other's writeback.
async fn pull_throughput(
    registry: &Registry,
    pulls: usize,
    layer_mib: usize,
) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let layout = dir.path().join("layout");
    let bytes = {
        let layout = layout.clone();
        tokio::task::spawn_blocking(move || big_layout(&layout, layer_mib)).await??
    };
    images::push_layout(&layout, registry, BIG)
        .await
        .map_err(anyhow::Error::msg)?;
    let image = format!("{}/{BIG}", registry.host());
    let (mut ours, mut skopeo) = (vec![], vec![]);
    for i in 0..pulls {
        let (root, dest): (PathBuf, PathBuf) = (
            dir.path().join(format!("store-{i}")),
            dir.path().join(format!("skopeo-{i}")),
        );
        for ours_first in [i % 2 == 0, i % 2 == 1] {
            nix::unistd::sync();
            if ours_first {
                ours.push(pull_ours(&image, &root).await?);
            } else {
                let (image, dest) = (image.clone(), dest.clone());
                skopeo
                    .push(tokio::task::spawn_blocking(move || pull_skopeo(&image, &dest)).await??);
            }
        }
        fs_err::remove_dir_all(&root)?;
        fs_err::remove_dir_all(&dest)?;
    }
    let mib = bytes as f64 / MIB;
    let (ours_s, skopeo_s) = (median(&ours), median(&skopeo));
    Ok(json!({
        "pulls": pulls,
        "image": BIG,
        "random_layer_mib": layer_mib,
        "image_mib": mib,
        "ours_s": summary(&ours),
        "skopeo_s": summary(&skopeo),
        "ours_mib_per_s": mib / ours_s,
        "skopeo_mib_per_s": mib / skopeo_s,
        "throughput_ratio_to_skopeo": skopeo_s / ours_s,
    }))
}

const PARAMS: &[Param] = &[
    Param {
        key: "launches",
        kind: Kind::Num,
        full: "50",
        tiny: "3",
        help: "rounds of starts (one image task, process task, fork+exec and runc run each)",
    },
    Param {
        key: "pulls",
        kind: Kind::Num,
        full: "5",
        tiny: "1",
        help: "rounds of pulls (one Store::pull and one skopeo copy each)",
    },
    Param {
        key: "layer-mib",
        kind: Kind::Num,
        full: "64",
        tiny: "4",
        help: "MiB of random data in the pulled image's second layer",
    },
];

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "containers",
    about: "LAUNCH to TASK_RUNNING in a cached image against fork+exec and runc run; image pull against skopeo copy",
    params: PARAMS,
    run: |args| Box::pin(run(args)),
    section,
};

fn section(doc: &Value) -> String {
    use crate::report::heading;
    let mut out = heading("Containers: start latency and image pull", doc);
    out.push_str(&start_section(&doc["figures"]["start"]));
    out.push('\n');
    out.push_str(&pull_section(&doc["figures"]["pull"]));
    out
}

fn start_section(f: &Value) -> String {
    use crate::report::{num, ratio, table};
    let ours = f["image_task_ms"]["median"].as_f64().unwrap_or(f64::NAN);
    let row = |name: &str, peer: &Value| {
        let peer_ms = peer["median"].as_f64().unwrap_or(f64::NAN);
        vec![
            name.to_string(),
            num(&peer["median"], 2),
            num(&peer["p90"], 2),
            num(&json!(ours - peer_ms), 2),
            ratio(&json!(ours / peer_ms)),
        ]
    };
    // The image task against itself says nothing.
    let mut own = row(
        "dcos-rs: image task, LAUNCH to TASK_RUNNING",
        &f["image_task_ms"],
    );
    own.truncate(3);
    own.extend(["".into(), "".into()]);
    let mut out = format!(
        "**Start** ({} build). A framework launches `{}` (no shell) in the cached image `{}` \
         through a real master and agent on 127.0.0.1, {} rounds, one task at a time: the \
         time from the ACCEPT call to TASK_RUNNING, which the agent sends once the \
         container's init (in new mount, pid, uts and ipc namespaces, on an overlayfs rootfs, \
         in cpu and memory cgroups) has spawned the task. Each round also times the same \
         command as a plain process task on the same agent, fork+exec of `{}` on the host \
         (the same busybox) by the benchmark until `spawn` returns (the exec succeeded), and \
         `runc run -d` of an OCI bundle until runc exits (the container's process started; \
         `runc delete -f` after, untimed). The bundle is `runc spec`'s with the image's extracted layer as \
         its read-only rootfs, the agent's namespaces (no network namespace) and the task's \
         limits ({} cpus, {} MB). The first image launch, which pulled the image, took {} ms \
         and is not counted.\n\n",
        f["build"].as_str().unwrap_or("?"),
        f["command"].as_str().unwrap_or("?"),
        f["image"].as_str().unwrap_or("?"),
        f["launches"],
        f["command"].as_str().unwrap_or("?"),
        f["task"]["cpus"],
        num(&f["task"]["mem_mb"], 0),
        num(&f["first_launch_with_pull_ms"], 1),
    );
    out.push_str(&table(
        &[
            "start",
            "median (ms)",
            "p90 (ms)",
            "image task − this (ms)",
            "image task / this",
        ],
        &[
            own,
            row("dcos-rs: process task, same agent", &f["process_task_ms"]),
            row("fork+exec (same run)", &f["fork_exec_ms"]),
            row("`runc run -d` (same run)", &f["runc_run_ms"]),
        ],
    ));
    let over = f["minus_fork_exec_ms"].as_f64().unwrap_or(f64::NAN);
    out.push_str(&format!(
        "\nThe goal (issue 32): within {GOAL_OVER_FORK_EXEC_MS} ms of fork+exec ({}: {} ms \
         over) and far under `runc run` ({} of it).\n",
        if over <= GOAL_OVER_FORK_EXEC_MS {
            "met"
        } else {
            "not met"
        },
        num(&json!(over), 2),
        ratio(&f["ratio_to_runc"]),
    ));
    out
}

fn pull_section(f: &Value) -> String {
    use crate::report::{num, ratio, table};
    let mut out = format!(
        "**Pull.** An image of busybox and a layer of {} MiB of random data ({} MiB of blobs) \
         in a local `docker-registry`; {} rounds of one pull each way, alternating which \
         goes first, the disk synced before each: a cold `Store::pull` of dcos-image into an empty store (download, digest \
         check and extraction of every layer, as the agent pulls) against `skopeo copy \
         docker://… oci:…` of the same image (download and digest check; it does not \
         unpack).\n\n",
        f["random_layer_mib"],
        num(&f["image_mib"], 1),
        f["pulls"],
    );
    out.push_str(&table(
        &[
            "pull",
            "dcos-image `Store::pull`",
            "`skopeo copy` (same run)",
            "ratio",
        ],
        &[
            vec![
                "time, median (s)".into(),
                num(&f["ours_s"]["median"], 3),
                num(&f["skopeo_s"]["median"], 3),
                ratio(&json!(
                    f["ours_s"]["median"].as_f64().unwrap_or(f64::NAN)
                        / f["skopeo_s"]["median"].as_f64().unwrap_or(f64::NAN)
                )),
            ],
            vec![
                "throughput (MiB/s)".into(),
                num(&f["ours_mib_per_s"], 1),
                num(&f["skopeo_mib_per_s"], 1),
                ratio(&f["throughput_ratio_to_skopeo"]),
            ],
        ],
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_sets_each_figure_against_its_peers() {
        let ms = |median: f64| json!({"median": median, "p90": median * 1.5});
        let doc = json!({"date": "2026-12-07", "command": "dcos-bench containers", "wall_seconds": 9,
            "figures": {
                "start": {"launches": 3, "image": BUSYBOX, "command": SLEEP.join(" "), "build": "release",
                    "task": {"cpus": 0.1, "mem_mb": 64.0}, "first_launch_with_pull_ms": 150.0,
                    "image_task_ms": ms(8.0), "process_task_ms": ms(4.0),
                    "fork_exec_ms": ms(0.5), "runc_run_ms": ms(40.0),
                    "minus_fork_exec_ms": 7.5, "ratio_to_runc": 0.2},
                "pull": {"pulls": 1, "random_layer_mib": 4, "image_mib": 5.1,
                    "ours_s": ms(0.1), "skopeo_s": ms(0.2), "ours_mib_per_s": 51.0,
                    "skopeo_mib_per_s": 25.5, "throughput_ratio_to_skopeo": 2.0}}});
        let text = section(&doc);
        assert!(
            text.contains("| fork+exec (same run) | 0.50 | 0.75 | 7.50 | 16.00× |"),
            "{text}"
        );
        assert!(
            text.contains("| `runc run -d` (same run) | 40.00 | 60.00 | -32.00 | 0.20× |"),
            "{text}"
        );
        assert!(
            text.contains("| throughput (MiB/s) | 51.0 | 25.5 | 2.00× |"),
            "{text}"
        );
        assert!(text.contains("(not met: 7.50 ms over)"), "{text}");
    }
}
