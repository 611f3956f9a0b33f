use std::time::Duration;

use dcos_testkit::{output_within, Netns};
use serde_json::Value;

use crate::DCOS;

fn preflight(ns: &Netns, role: &str) -> (bool, Value, String) {
    let out = output_within(
        ns.command(DCOS).args([
            "preflight",
            "--role",
            role,
            "--ip",
            "127.0.0.1",
            "--output",
            "json",
        ]),
        Duration::from_secs(30),
    )
    .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap();
    (
        out.status.success(),
        report,
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn preflight_passes_on_free_ports_and_names_the_holder_of_taken_ones() {
    let ns = Netns::new("pf");
    let (ok, report, _) = preflight(&ns, "master");
    assert!(ok, "{report}");

    // A TCP listener on the Mesos master port.
    let tcp = ns.hold("tcp", "127.0.0.1", 5050);
    let (ok, report, stderr) = preflight(&ns, "master");
    assert!(!ok);
    assert!(
        stderr.contains("preflight failed") && stderr.contains("hint:"),
        "{stderr}"
    );
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["port"] == 5050 && c["protocol"] == "tcp")
        .unwrap();
    assert_eq!(check["state"], "taken");
    assert_eq!(check["holders"][0]["pid"], tcp.pid());
    assert_eq!(check["holders"][0]["name"], "python3");
    // Only that port is reported; 5050/udp is not a contract port and 61053/udp is free.
    let taken: Vec<_> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["state"] != "free")
        .collect();
    assert_eq!(taken.len(), 1, "{taken:?}");
    drop(tcp);

    // A UDP socket on Mesos-DNS's port is found separately from TCP.
    let udp = ns.hold("udp", "0.0.0.0", 61053);
    let (ok, report, _) = preflight(&ns, "master");
    assert!(!ok);
    let checks = report["checks"].as_array().unwrap();
    let udp_check = checks
        .iter()
        .find(|c| c["port"] == 61053 && c["protocol"] == "udp")
        .unwrap();
    assert_eq!(udp_check["holders"][0]["pid"], udp.pid());
    let tcp_check = checks
        .iter()
        .find(|c| c["port"] == 61053 && c["protocol"] == "tcp")
        .unwrap();
    assert_eq!(tcp_check["state"], "free");
    drop(udp);

    // And nothing is left bound by preflight itself.
    let (ok, _, _) = preflight(&ns, "agent");
    assert!(ok);
}
