use serde_json::Value;

use crate::dcos;

#[test]
fn ports_list_json_has_every_row_and_the_documented_keys() {
    let out = dcos(&["ports", "list", "--output", "json"]);
    assert!(out.status.success());
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rows.len(),
        47,
        "40 rows of the page plus ZooKeeper's quorum port, dcos-diagnostics (masters' 1050, \
         agents' socket), dcos-log's sockets, the agents' StatsD collector and the image \
         registry"
    );
    let zk = rows.iter().find(|r| r["port"] == 2888).unwrap();
    assert_eq!(zk["in_spec"], false);
    let registry = rows.iter().find(|r| r["port"] == 5000).unwrap();
    assert_eq!(registry["in_spec"], false);
    let ar = rows.iter().find(|r| r["port"] == 80).unwrap();
    assert_eq!(ar["bind"], "any");
    assert_eq!(ar["roles"], serde_json::json!(["master"]));
    let master_only = dcos(&["ports", "list", "--role", "agent", "--output", "json"]);
    let agent_rows: Vec<Value> = serde_json::from_slice(&master_only.stdout).unwrap();
    assert!(agent_rows.iter().all(|r| r["roles"][0] != "master"));
    assert!(agent_rows.iter().any(|r| r["port"] == 5051));
}

#[test]
fn ranges_print_the_six_ranges_and_respect_co_location() {
    let out = dcos(&["ports", "ranges", "--role", "agent"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "[1025-2180, 2182-3887, 3889-5049, 5052-8079, 8082-8180, 8182-32000]"
    );
    let out = dcos(&[
        "ports",
        "ranges",
        "--role",
        "agent",
        "--colocated",
        "master",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2182-2887, 2889-3887"), "{text}");
    assert!(text.contains("15056-15100"), "{text}");
}

#[test]
fn sysctl_line_reserves_the_roles_ports() {
    let out = dcos(&["ports", "sysctl", "--role", "agent"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "net.ipv4.ip_local_reserved_ports = 53,5051,8124,61001-61003,61091,61420,62080,62501"
    );
}

#[test]
fn firewall_rules_load_in_nft_check_mode_for_every_role() {
    let dir = tempfile::tempdir().unwrap();
    for role in ["master", "agent", "agent_public"] {
        let out = dcos(&[
            "ports",
            "firewall",
            "--role",
            role,
            "--masters",
            "10.99.0.1,10.99.0.2",
            "--agents",
            "10.99.0.3",
            "--format",
            "nftables",
        ]);
        assert!(out.status.success());
        let path = dir.path().join(format!("{role}.nft"));
        std::fs::write(&path, &out.stdout).unwrap();
        let check = std::process::Command::new("nft")
            .args(["-c", "-f"])
            .arg(&path)
            .output()
            .expect("nft (Debian package nftables) must be installed by the test command");
        assert!(
            check.status.success(),
            "nft -c rejected the {role} rules: {}\n{}",
            String::from_utf8_lossy(&check.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
