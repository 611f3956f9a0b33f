//! `dcos node run` refuses to start a node whose ports are taken (preflight).

use std::time::{Duration, Instant};

use dcos_testkit::{output_within, Netns};

use crate::DCOS;

#[test]
fn preflight_stops_node_run_naming_the_taken_port_and_its_holder() {
    let ns = Netns::new("nr");
    let holder = ns.hold("tcp", "127.0.0.1", 15055);
    let dir = tempfile::tempdir().unwrap();
    let work_dir = dir.path().join("work");
    let config = dir.path().join("node.yaml");
    std::fs::write(
        &config,
        format!("ip: 127.0.0.1\nwork_dir: {}\n", work_dir.display()),
    )
    .unwrap();

    let started = Instant::now();
    let out = output_within(
        ns.command(DCOS)
            .args(["node", "run", "--role", "master", "--config"])
            .arg(&config),
        Duration::from_secs(20),
    )
    .expect("dcos node run must exit by itself");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("preflight failed"), "{stderr}");
    let text = format!("{stdout}{stderr}");
    let taken = text
        .lines()
        .find(|l| l.contains("15055") && l.contains("TAKEN"))
        .unwrap_or_else(|| panic!("15055 not reported taken:\n{text}"));
    assert!(
        taken.contains(&format!("pid {} (python3)", holder.pid())),
        "{taken}"
    );

    // Nothing was started: no status with a live unit, and no process in the namespace but
    // the holder.
    let status = dcos_node::status::read(&dcos_node::units::run_dir_of(&work_dir));
    if let Ok(status) = status {
        assert!(status.units.iter().all(|u| u.pid.is_none()), "{status:#?}");
    }
    assert_eq!(ns.pids(), vec![holder.pid()]);
}
