//! Firewall rules rendered from the contract's Source column.
//!
//! For each port a node of a role holds, the rules accept exactly the sources the page
//! allows (`localhost` rows: loopback only; `public IP` rows: anyone; `master`: the masters;
//! `agent/master`: every node) and drop everything else aimed at a contract port. Traffic to
//! ports outside the contract is left alone: the rules add no default policy.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::contract::{rows_for, BindScope, NodeRole, PortRow, PortSpec, Protocol};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// An `nft -f` script (table `inet dcos`).
    Nftables,
    /// An `iptables-restore --noflush` script (chain `DCOS-INPUT`).
    Iptables,
}

/// Who may reach a row's port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Allowed {
    Loopback,
    Anyone,
    Masters,
    Nodes,
}

fn allowed(row: &PortRow) -> Allowed {
    match row.bind() {
        BindScope::Localhost => Allowed::Loopback,
        BindScope::Any => Allowed::Anyone,
        BindScope::Cluster if row.source == "master" => Allowed::Masters,
        BindScope::Cluster => Allowed::Nodes,
    }
}

/// The node's rows that carry a port (ephemeral rows have none), enterprise rows only if asked.
fn firewall_rows(role: NodeRole, enterprise: bool) -> Vec<&'static PortRow> {
    rows_for(role)
        .filter(|r| !matches!(r.port, PortSpec::Ephemeral))
        .filter(|r| enterprise || r.served())
        .collect()
}

fn port_text(row: &PortRow, sep: char) -> String {
    match row.port {
        PortSpec::Single(p) => p.to_string(),
        PortSpec::Range(b, e) => format!("{b}{sep}{e}"),
        PortSpec::Ephemeral => String::new(),
    }
}

/// Renders the rules for a node of `role` in a cluster of `masters` and `agents`.
pub fn render(
    format: Format,
    role: NodeRole,
    masters: &[Ipv4Addr],
    agents: &[Ipv4Addr],
    enterprise: bool,
) -> String {
    let rows = firewall_rows(role, enterprise);
    match format {
        Format::Nftables => nftables(role, &rows, masters, agents),
        Format::Iptables => iptables(role, &rows, masters, agents),
    }
}

fn nft_set(out: &mut String, name: &str, ips: &[Ipv4Addr]) {
    let _ = writeln!(out, "  set {name} {{\n    type ipv4_addr");
    if !ips.is_empty() {
        let list: Vec<String> = ips.iter().map(Ipv4Addr::to_string).collect();
        let _ = writeln!(out, "    elements = {{ {} }}", list.join(", "));
    }
    out.push_str("  }\n");
}

fn nftables(
    role: NodeRole,
    rows: &[&PortRow],
    masters: &[Ipv4Addr],
    agents: &[Ipv4Addr],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# dcos-rs firewall for a {role} node, from the DC/OS 1.11 port contract"
    );
    out.push_str("table inet dcos\ndelete table inet dcos\n");
    out.push_str("table inet dcos {\n");
    nft_set(&mut out, "masters", masters);
    let nodes: Vec<Ipv4Addr> = masters.iter().chain(agents).copied().collect();
    nft_set(&mut out, "nodes", &nodes);
    out.push_str("  chain input {\n    type filter hook input priority filter; policy accept;\n");
    out.push_str("    ct state established,related accept\n");
    for row in rows {
        let proto = row.protocol.as_str();
        let port = port_text(row, '-');
        let cond = match allowed(row) {
            Allowed::Loopback => "iifname \"lo\" ".to_string(),
            Allowed::Anyone => String::new(),
            Allowed::Masters => "ip saddr @masters ".to_string(),
            Allowed::Nodes => "ip saddr @nodes ".to_string(),
        };
        let _ = writeln!(
            out,
            "    {cond}{proto} dport {port} accept comment \"{}\"",
            row.component.replace('"', "'")
        );
    }
    for proto in [Protocol::Tcp, Protocol::Udp] {
        let ports: Vec<String> = rows
            .iter()
            .filter(|r| r.protocol == proto)
            .map(|r| port_text(r, '-'))
            .collect();
        if !ports.is_empty() {
            let _ = writeln!(
                out,
                "    {} dport {{ {} }} drop",
                proto.as_str(),
                ports.join(", ")
            );
        }
    }
    out.push_str("  }\n}\n");
    out
}

fn iptables(
    role: NodeRole,
    rows: &[&PortRow],
    masters: &[Ipv4Addr],
    agents: &[Ipv4Addr],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# dcos-rs firewall for a {role} node, from the DC/OS 1.11 port contract"
    );
    out.push_str(
        "# load with: iptables-restore --noflush < this-file\n*filter\n:DCOS-INPUT - [0:0]\n",
    );
    out.push_str("-A INPUT -j DCOS-INPUT\n");
    out.push_str("-A DCOS-INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n");
    let nodes: Vec<Ipv4Addr> = masters.iter().chain(agents).copied().collect();
    for row in rows {
        let proto = row.protocol.as_str();
        let port = port_text(row, ':');
        let sources: Vec<String> = match allowed(row) {
            Allowed::Loopback => vec!["-i lo".into()],
            Allowed::Anyone => vec![String::new()],
            Allowed::Masters => masters.iter().map(|ip| format!("-s {ip}/32")).collect(),
            Allowed::Nodes => nodes.iter().map(|ip| format!("-s {ip}/32")).collect(),
        };
        for src in sources {
            let src = if src.is_empty() {
                String::new()
            } else {
                format!("{src} ")
            };
            let _ = writeln!(
                out,
                "-A DCOS-INPUT {src}-p {proto} --dport {port} -j ACCEPT"
            );
        }
    }
    for row in rows {
        let _ = writeln!(
            out,
            "-A DCOS-INPUT -p {} --dport {} -j DROP",
            row.protocol.as_str(),
            port_text(row, ':')
        );
    }
    out.push_str("COMMIT\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_ports_accept_only_loopback_and_master_ports_only_masters() {
        let m = [Ipv4Addr::new(10, 0, 0, 1)];
        let a = [Ipv4Addr::new(10, 0, 0, 2)];
        let text = render(Format::Nftables, NodeRole::Master, &m, &a, false);
        assert!(text.contains("iifname \"lo\" tcp dport 8123 accept"));
        assert!(text.contains("ip saddr @masters tcp dport 15101 accept"));
        assert!(text.contains("ip saddr @nodes tcp dport 5050 accept"));
        assert!(text.contains("    tcp dport 80 accept"));
        assert!(text.contains("elements = { 10.0.0.1, 10.0.0.2 }"));
        // The served Enterprise rows are in (the IAM, localhost only); the others on request.
        assert!(text.contains("iifname \"lo\" tcp dport 8101 accept"));
        assert!(
            !text.contains("dport 8200"),
            "enterprise rows only on request"
        );
        let ipt = render(Format::Iptables, NodeRole::Agent, &m, &a, false);
        assert!(ipt.contains("-A DCOS-INPUT -s 10.0.0.2/32 -p tcp --dport 5051 -j ACCEPT"));
        assert!(ipt.contains("-A DCOS-INPUT -p tcp --dport 8182:32000 -j DROP"));
        assert!(!ipt.contains("5050"));
    }
}
