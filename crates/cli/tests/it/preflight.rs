use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use serde_json::Value;

use crate::Netns;

/// A listener held by a Python process inside the namespace; returns the child once bound.
fn hold(ns: &Netns, proto: &str, addr: &str, port: u16) -> Child {
    let kind = if proto == "tcp" {
        "SOCK_STREAM"
    } else {
        "SOCK_DGRAM"
    };
    let listen = if proto == "tcp" { "s.listen(1);" } else { "" };
    let script = format!(
        "import socket,sys,time;s=socket.socket(socket.AF_INET,socket.{kind});s.bind(('{addr}',{port}));{listen}print('ready',flush=True);time.sleep(60)"
    );
    let mut child = ns
        .command("python3")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

fn preflight(ns: &Netns, role: &str) -> (bool, Value, String) {
    let out = ns
        .command(env!("CARGO_BIN_EXE_dcos"))
        .args([
            "preflight",
            "--role",
            role,
            "--ip",
            "127.0.0.1",
            "--output",
            "json",
        ])
        .output()
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
    let mut tcp = hold(&ns, "tcp", "127.0.0.1", 5050);
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
    assert_eq!(check["holders"][0]["pid"], tcp.id());
    assert_eq!(check["holders"][0]["name"], "python3");
    // Only that port is reported; 5050/udp is not a contract port and 61053/udp is free.
    let taken: Vec<_> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["state"] != "free")
        .collect();
    assert_eq!(taken.len(), 1, "{taken:?}");
    tcp.kill().unwrap();
    tcp.wait().unwrap();

    // A UDP socket on Mesos-DNS's port is found separately from TCP.
    let mut udp = hold(&ns, "udp", "0.0.0.0", 61053);
    let (ok, report, _) = preflight(&ns, "master");
    assert!(!ok);
    let checks = report["checks"].as_array().unwrap();
    let udp_check = checks
        .iter()
        .find(|c| c["port"] == 61053 && c["protocol"] == "udp")
        .unwrap();
    assert_eq!(udp_check["holders"][0]["pid"], udp.id());
    let tcp_check = checks
        .iter()
        .find(|c| c["port"] == 61053 && c["protocol"] == "tcp")
        .unwrap();
    assert_eq!(tcp_check["state"], "free");
    udp.kill().unwrap();
    udp.wait().unwrap();

    // And nothing is left bound by preflight itself.
    let (ok, _, _) = preflight(&ns, "agent");
    assert!(ok);
}
