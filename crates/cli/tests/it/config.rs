//! A node config with a key `node.yaml` does not have is refused, naming the key's path.

use std::time::Duration;

use dcos_testkit::{output_within, Netns};

use crate::DCOS;

#[test]
fn node_run_rejects_an_unknown_key_and_names_its_path() {
    // In a namespace of its own: should the config be accepted, nothing binds the host's ports.
    let ns = Netns::new("cfg");
    let dir = tempfile::tempdir().unwrap();
    let work_dir = dir.path().join("work");
    for (extra, key) in [
        ("agent:\n  cpus: 2\n  cpu_count: 4\n", "agent.cpu_count"),
        ("master_lsit: [10.0.0.1]\n", "master_lsit"),
        (
            "mesos:\n  allocation_intervall_secs: 2\n",
            "mesos.allocation_intervall_secs",
        ),
    ] {
        let config = dir.path().join("node.yaml");
        std::fs::write(
            &config,
            format!("ip: 127.0.0.1\nwork_dir: {}\n{extra}", work_dir.display()),
        )
        .unwrap();
        let out = output_within(
            ns.command(DCOS)
                .args(["node", "run", "--role", "agent", "--config"])
                .arg(&config),
            Duration::from_secs(20),
        )
        .expect("dcos node run must exit by itself");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{key}: {stderr}");
        let field = key.rsplit('.').next().unwrap();
        assert!(stderr.contains(&format!("at `{key}`")), "{key}: {stderr}");
        assert!(
            stderr.contains(&format!("unknown field `{field}`")),
            "{key}: {stderr}"
        );
        assert!(stderr.contains(config.to_str().unwrap()), "{stderr}");
        assert!(stderr.contains("hint:"), "{stderr}");
        assert!(!work_dir.exists(), "{key}: the node started");
    }
}
