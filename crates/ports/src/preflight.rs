//! Preflight: every port a node's role needs must be free before anything starts.
//!
//! Each port is tried by binding it (TCP and UDP separately) on every address the contract
//! says ([`PortRow::bind_addrs`], as the units bind them), then closing it at once. A taken port is reported with the processes that hold it,
//! found through `/proc/net/{tcp,udp}{,6}` inodes and `/proc/<pid>/fd`. Nothing is killed.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

use serde::Serialize;

use crate::contract::{NodeRole, PortRow, Protocol};
use crate::range::RangeSet;

/// A process holding a port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// Its pid.
    pub pid: u32,
    /// Its command name (`/proc/<pid>/comm`).
    pub name: String,
}

/// What trying one port found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum PortState {
    /// The port could be bound.
    Free,
    /// Something holds it.
    Taken {
        /// The processes that hold it (empty when they live in another namespace or
        /// belong to another user we cannot inspect).
        holders: Vec<Holder>,
    },
    /// The port is privileged and this process is not root, so it was not tried.
    NeedsRoot,
    /// Binding failed for another reason (for example the address is not on this host).
    Error {
        /// The OS error.
        message: String,
    },
}

/// One tried port.
#[derive(Clone, Debug, Serialize)]
pub struct PortCheck {
    /// The port.
    pub port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The address it was tried on.
    pub address: IpAddr,
    /// The component that owns it.
    pub component: &'static str,
    /// The units that own it.
    pub units: &'static [&'static str],
    /// Whether binding it needs root.
    pub needs_root: bool,
    /// What was found.
    #[serde(flatten)]
    pub state: PortState,
}

/// The whole preflight report for a node.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The role that was checked.
    pub role: NodeRole,
    /// The node's cluster IP.
    pub ip: IpAddr,
    /// Every tried port.
    pub checks: Vec<PortCheck>,
    /// Contract ports inside the kernel's ephemeral range that are not reserved.
    pub ephemeral_warnings: Vec<u16>,
}

impl Report {
    /// True when every port is free (or was skipped for lack of root).
    pub fn ok(&self) -> bool {
        self.checks
            .iter()
            .all(|c| matches!(c.state, PortState::Free))
    }

    /// The checks that failed.
    pub fn problems(&self) -> impl Iterator<Item = &PortCheck> {
        self.checks
            .iter()
            .filter(|c| !matches!(c.state, PortState::Free))
    }
}

/// Tries every fixed port of `rows` on a node whose cluster IP is `ip`.
pub fn check_rows<'a>(
    role: NodeRole,
    ip: IpAddr,
    rows: impl IntoIterator<Item = &'a PortRow>,
) -> Report {
    let unprivileged = read_unprivileged_port_start();
    let is_root = nix::unistd::geteuid().is_root();
    let mut checks = Vec::new();
    let mut seen = HashSet::new();
    for row in rows {
        for addr in row.bind_addrs(ip) {
            if !seen.insert((addr, row.protocol)) {
                continue;
            }
            let port = addr.port();
            let needs_root = port < unprivileged;
            let state = if needs_root && !is_root {
                PortState::NeedsRoot
            } else {
                try_bind(addr, row.protocol)
            };
            checks.push(PortCheck {
                port,
                protocol: row.protocol,
                address: addr.ip(),
                component: row.component,
                units: row.units,
                needs_root,
                state,
            });
        }
    }
    let ports = checks.iter().fold(RangeSet::new(), |acc, c| {
        acc.union(&RangeSet::single(c.port))
    });
    Report {
        role,
        ip,
        checks,
        ephemeral_warnings: ephemeral_conflicts(&ports),
    }
}

/// Binds `addr` and closes it again, reporting who holds it when that fails.
pub fn try_bind(addr: SocketAddr, protocol: Protocol) -> PortState {
    let result = match protocol {
        Protocol::Tcp => TcpListener::bind(addr).map(drop),
        Protocol::Udp => UdpSocket::bind(addr).map(drop),
    };
    match result {
        Ok(()) => PortState::Free,
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => PortState::Taken {
            holders: holders(addr.port(), protocol),
        },
        Err(e) => PortState::Error {
            message: e.to_string(),
        },
    }
}

/// The processes holding `port` (listening for TCP, bound for UDP) in this network namespace.
pub fn holders(port: u16, protocol: Protocol) -> Vec<Holder> {
    let inodes = socket_inodes(port, protocol);
    if inodes.is_empty() {
        return Vec::new();
    }
    let mut found = Vec::new();
    let Ok(procs) = fs_err::read_dir("/proc") else {
        return found;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .ok()
                .and_then(|l| {
                    l.to_str()
                        .and_then(|s| s.strip_prefix("socket:["))
                        .and_then(|s| s.strip_suffix(']'))
                        .and_then(|s| s.parse::<u64>().ok())
                })
                .is_some_and(|ino| inodes.contains(&ino))
        });
        if holds {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            found.push(Holder { pid, name });
        }
    }
    found.sort_by_key(|h| h.pid);
    found
}

/// Socket inodes bound to `port` from `/proc/net`.
fn socket_inodes(port: u16, protocol: Protocol) -> HashSet<u64> {
    let (files, wanted_state) = match protocol {
        // 0A is TCP_LISTEN; 07 is TCP_CLOSE, which is what a bound UDP socket shows.
        Protocol::Tcp => (["/proc/net/tcp", "/proc/net/tcp6"], "0A"),
        Protocol::Udp => (["/proc/net/udp", "/proc/net/udp6"], "07"),
    };
    let mut inodes = HashSet::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        inodes.extend(parse_proc_net(&text, port, wanted_state));
    }
    inodes
}

fn parse_proc_net(text: &str, port: u16, wanted_state: &str) -> Vec<u64> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local = cols.get(1)?;
            let (_, hex_port) = local.rsplit_once(':')?;
            let p = u16::from_str_radix(hex_port, 16).ok()?;
            (p == port && *cols.get(3)? == wanted_state).then(|| cols.get(9)?.parse().ok())?
        })
        .collect()
}

/// The first port a process that is not root may bind (`net.ipv4.ip_unprivileged_port_start`).
pub fn read_unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// The kernel's ephemeral range (`net.ipv4.ip_local_port_range`).
pub fn ephemeral_range() -> Option<RangeSet> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(|s| s.parse::<u16>());
    match (it.next(), it.next()) {
        (Some(Ok(b)), Some(Ok(e))) => Some(RangeSet::range(b, e)),
        _ => None,
    }
}

/// Ports already reserved (`net.ipv4.ip_local_reserved_ports`).
pub fn reserved_ports() -> RangeSet {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_reserved_ports")
        .ok()
        .and_then(|s| RangeSet::from_sysctl(&s).ok())
        .unwrap_or_default()
}

/// The ports of `ports` that an outgoing connection could take: inside the ephemeral range
/// and not reserved.
pub fn ephemeral_conflicts(ports: &RangeSet) -> Vec<u16> {
    let Some(ephemeral) = ephemeral_range() else {
        return Vec::new();
    };
    let exposed = ports.subtract(&reserved_ports());
    exposed.ports().filter(|p| ephemeral.contains(*p)).collect()
}

/// The node's IP: the IPv4 address of the interface holding the default route, or 127.0.0.1.
pub fn detect_ip() -> IpAddr {
    let iface = std::fs::read_to_string("/proc/net/route")
        .ok()
        .and_then(|text| {
            text.lines()
                .skip(1)
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .find(|c| c.get(1) == Some(&"00000000"))
                .and_then(|c| c.first().map(|s| s.to_string()))
        });
    let Some(iface) = iface else {
        return IpAddr::V4(Ipv4Addr::LOCALHOST);
    };
    nix::ifaddrs::getifaddrs()
        .ok()
        .and_then(|addrs| {
            addrs
                .filter(|a| a.interface_name == iface)
                .find_map(|a| a.address?.as_sockaddr_in().map(|s| IpAddr::V4(s.ip())))
        })
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_lines_parse_to_inodes() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:13BA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:13BA 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 999 1\n";
        assert_eq!(parse_proc_net(text, 5050, "0A"), vec![12345]);
        assert!(parse_proc_net(text, 5051, "0A").is_empty());
    }

    #[test]
    fn a_listener_we_hold_is_reported_with_our_pid() {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        let state = try_bind(SocketAddr::from(([127, 0, 0, 1], port)), Protocol::Tcp);
        let PortState::Taken { holders } = state else {
            panic!("expected taken, got {state:?}");
        };
        assert!(holders.iter().any(|h| h.pid == std::process::id()));

        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        let state = try_bind(SocketAddr::from(([127, 0, 0, 1], port)), Protocol::Udp);
        assert!(
            matches!(state, PortState::Taken { ref holders } if holders.iter().any(|h| h.pid == std::process::id()))
        );
        // Free again once dropped.
        drop(udp);
        assert_eq!(
            try_bind(SocketAddr::from(([127, 0, 0, 1], port)), Protocol::Udp),
            PortState::Free
        );
    }
}
