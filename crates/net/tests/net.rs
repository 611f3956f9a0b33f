//! dcos-net on loopback: a "master" dcos-net beside a real Mesos master, agent and Mesos-DNS,
//! and an "agent" dcos-net at 127.0.0.2 that learns the cluster zones over the gossip, asked
//! with the real `dig`, over its HTTP API and its epmd port.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dcos_mesos_dns::server::{self, Resolve};
use dcos_net::{Config, Listeners, MasterPorts};
use dcos_testkit::dns::{dig, eventually_dig};
use dcos_testkit::loopback;
use hickory_proto::op::Message;
use hickory_proto::rr::{rdata::TXT, RData, Record};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// The test's own upstream resolver: every name has one TXT record, `upstream`.
struct Upstream;

impl Resolve for Upstream {
    async fn resolve(&self, request: Message) -> Message {
        let mut response = dcos_mesos_dns::zone::response_to(&request);
        let name = request.queries()[0].name().clone();
        let txt = TXT::new(vec!["upstream".into()]);
        response.add_answer(Record::from_rdata(name, 30, RData::TXT(txt)));
        response
    }
}

struct Net {
    dns: SocketAddr,
    http: SocketAddr,
    epmd: SocketAddr,
    gossip: SocketAddr,
    stop: CancellationToken,
}

async fn bind(ip: Ipv4Addr) -> (Listeners, Net) {
    let any = SocketAddr::new(IpAddr::V4(ip), 0);
    let (udp, tcp) = dcos_testkit::dns::udp_tcp_pair(IpAddr::V4(ip)).await;
    let dns = udp.local_addr().unwrap();
    let listen = || async { tokio::net::TcpListener::bind(any).await.unwrap() };
    let (http, epmd, gossip) = (listen().await, listen().await, listen().await);
    let net = Net {
        dns,
        http: http.local_addr().unwrap(),
        epmd: epmd.local_addr().unwrap(),
        gossip: gossip.local_addr().unwrap(),
        stop: CancellationToken::new(),
    };
    let listeners = Listeners {
        udp: vec![udp],
        tcp: vec![tcp],
        http,
        epmd,
        gossip,
    };
    (listeners, net)
}

fn start(listeners: Listeners, net: &Net, role: &str, ports: MasterPorts, up: SocketAddr) {
    let mut config = Config::dcos(
        net.dns.ip(),
        role,
        vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        vec![],
    );
    config.dns_listen = vec![net.dns];
    config.http_listen = net.http;
    config.epmd_listen = net.epmd;
    config.gossip_listen = net.gossip;
    config.master_ports = ports;
    config.resolvers = vec![up];
    config.refresh = Duration::from_secs(2);
    tokio::spawn(dcos_net::serve_on(listeners, config, net.stop.clone()));
}

async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let resp = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A raw epmd request (two-byte length, body); the whole answer.
async fn epmd(addr: SocketAddr, body: &[u8]) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = (body.len() as u16).to_be_bytes().to_vec();
    req.extend_from_slice(body);
    s.write_all(&req).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_zone_resolves_and_follows_the_cluster() {
    let master = loopback::master().await;
    let (agent, ports) = loopback::agent_of(master.addr, 2).await;
    let up_sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let up = up_sock.local_addr().unwrap();
    let stop_up = CancellationToken::new();
    tokio::spawn(server::serve_udp(
        up_sock,
        Arc::new(Upstream),
        stop_up.clone(),
    ));

    // Mesos-DNS, then the master's dcos-net and an agent's at 127.0.0.2.
    let (mdns_udp, mdns_tcp) = dcos_testkit::dns::udp_tcp_pair("127.0.0.1".parse().unwrap()).await;
    let mdns = mdns_udp.local_addr().unwrap();
    let mut mdns_config = dcos_mesos_dns::Config::dcos(mdns.ip(), vec![master.addr], vec![]);
    mdns_config.dns_listen = mdns;
    let stop_mdns = CancellationToken::new();
    tokio::spawn(dcos_mesos_dns::serve_on(
        dcos_mesos_dns::Listeners {
            udp: mdns_udp,
            tcp: mdns_tcp,
            http: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        },
        mdns_config,
        stop_mdns.clone(),
    ));
    let (m_listeners, m_net) = bind(Ipv4Addr::LOCALHOST).await;
    let (a_listeners, a_net) = bind(Ipv4Addr::new(127, 0, 0, 2)).await;
    let master_ports = MasterPorts {
        mesos: master.addr.port(),
        mesos_dns: mdns.port(),
        epmd: m_net.epmd.port(),
    };
    start(m_listeners, &m_net, "master", master_ports, up);
    start(a_listeners, &a_net, "agent", master_ports, up);

    // Zones of its own, on both: authoritative, TTL 5.
    for net in [&m_net, &a_net] {
        let out = eventually_dig(net.dns, &["ready.spartan"], "status: NOERROR").await;
        assert!(out.contains("flags: qr aa rd ra"), "{out}");
        assert!(out.contains("ready.spartan. 5 IN A 127.0.0.1"), "{out}");
        let zk = dig(net.dns, &["+short", "zk-5.zk"]).await;
        assert_eq!(zk.trim(), "127.0.0.1");
    }
    // Other names go to the upstream resolver.
    let out = dig(a_net.dns, &["+short", "TXT", "example.test"]).await;
    assert_eq!(out.trim(), "\"upstream\"");

    // A task: its Mesos-DNS names through the agent's dcos-net, its dcos-net names too.
    let port = loopback::first_port(&ports);
    let task = loopback::launch_task(master.addr, "marathon", "web", "web.1", port).await;
    let a = eventually_dig(a_net.dns, &["web.marathon.mesos"], "status: NOERROR").await;
    assert!(a.contains("web.marathon.mesos. 60 IN A 127.0.0.1"), "{a}");
    let srv = dig(a_net.dns, &["+short", "SRV", "_web._tcp.marathon.mesos"]).await;
    assert!(srv.contains(&format!("0 1 {port} web-")), "{srv}");
    let agentip = "web.marathon.agentip.dcos.thisdcos.directory";
    let out = eventually_dig(a_net.dns, &[agentip], "status: NOERROR").await;
    assert!(
        out.contains(&format!("{agentip}. 5 IN A 127.0.0.1")),
        "{out}"
    );
    assert!(out.contains("flags: qr aa rd ra"), "{out}");
    let leader = dig(a_net.dns, &["+short", "leader.dcos.thisdcos.directory"]).await;
    assert_eq!(leader.trim(), "127.0.0.1");
    let mirror = dig(
        a_net.dns,
        &[
            "+short",
            "SRV",
            "_web._tcp.marathon.mesos.thisdcos.directory",
        ],
    )
    .await;
    assert!(mirror.contains(&format!("{port} web-")), "{mirror}");
    // Unknown names in the zones: NXDOMAIN.
    for name in [
        "nothing.marathon.mesos",
        "nothing.thisdcos.directory",
        "nope.spartan",
    ] {
        let out = dig(a_net.dns, &[name]).await;
        assert!(out.contains("status: NXDOMAIN"), "{name}: {out}");
    }

    // The HTTP API.
    let (status, version) = get(a_net.http, "/v1/version").await;
    assert_eq!(
        (status, version),
        (200, json!({"Service": "dcos-dns", "Version": "0.0.1"}))
    );
    let (_, records) = get(a_net.http, "/v1/records").await;
    let records = records.as_array().unwrap();
    assert!(records.contains(&json!({"name": "ready.spartan", "host": "127.0.0.1", "rtype": "A"})));
    assert!(records.contains(&json!({"name": agentip, "host": "127.0.0.1", "rtype": "A"})));
    let (_, hosts) = get(a_net.http, &format!("/v1/hosts/{agentip}")).await;
    assert_eq!(
        hosts,
        json!([{"host": format!("{agentip}."), "ip": "127.0.0.1"}])
    );
    let (_, services) = get(
        a_net.http,
        "/v1/services/_web._tcp.marathon.mesos.thisdcos.directory",
    )
    .await;
    assert_eq!(services[0]["port"], port, "{services}");
    assert_eq!(services[0]["ip"], "127.0.0.1", "{services}");
    assert_eq!(get(a_net.http, "/v1/config").await.0, 501);
    // The master knows the agent's dcos-net as a member, and the agent learns of the master.
    for net in [&m_net, &a_net] {
        let (_, nodes) = get(net.http, "/v1/nodes").await;
        let ips: Vec<&str> = nodes
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["private_ip"].as_str())
            .collect();
        assert_eq!(ips, ["127.0.0.1", "127.0.0.2"], "{nodes}");
    }
    // A peer that claims another node's address, or announces a huge frame, is dropped and
    // changes nothing.
    for hello in [
        json!({"type": "hello", "node": {"ip": "127.0.0.2", "role": "agent"}}).to_string(),
        String::new(),
    ] {
        let mut s = tokio::net::TcpStream::connect(m_net.gossip).await.unwrap();
        let len = if hello.is_empty() {
            u32::MAX
        } else {
            hello.len() as u32
        };
        s.write_all(&len.to_be_bytes()).await.unwrap();
        s.write_all(hello.as_bytes()).await.unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    }
    let (_, nodes) = get(m_net.http, "/v1/nodes").await;
    assert_eq!(nodes.as_array().unwrap().len(), 2, "{nodes}");

    // epmd: both names at the gossip port; an unknown name is refused; registrations are not
    // taken.
    let names = epmd(m_net.epmd, b"n").await;
    assert_eq!(&names[..4], &u32::from(m_net.epmd.port()).to_be_bytes());
    let gport = m_net.gossip.port();
    assert_eq!(
        String::from_utf8_lossy(&names[4..]),
        format!("name dcos-net at port {gport}\nname navstar at port {gport}\n")
    );
    let mut want = vec![119, 0];
    want.extend_from_slice(&gport.to_be_bytes());
    want.extend_from_slice(&[77, 0, 0, 5, 0, 5, 0, 7]);
    want.extend_from_slice(b"navstar");
    want.extend_from_slice(&[0, 0]);
    assert_eq!(epmd(m_net.epmd, b"znavstar").await, want);
    assert_eq!(epmd(m_net.epmd, b"zother").await, vec![119, 1]);
    assert_eq!(
        epmd(
            m_net.epmd,
            b"x\x00\x01M\x00\x00\x06\x00\x05\x00\x01a\x00\x00"
        )
        .await,
        Vec::<u8>::new()
    );

    // Killing the task removes its names everywhere.
    task.kill().await;
    eventually_dig(a_net.dns, &["web.marathon.mesos"], "status: NXDOMAIN").await;
    eventually_dig(a_net.dns, &[agentip], "status: NXDOMAIN").await;

    // Mesos-DNS gone: `.mesos` names fail (SERVFAIL), dcos-net's own still answer.
    stop_mdns.cancel();
    eventually_dig(a_net.dns, &["leader.mesos"], "status: SERVFAIL").await;
    // The master's dcos-net gone: the agent drops the cluster zones once they are stale.
    m_net.stop.cancel();
    let out = eventually_dig(
        a_net.dns,
        &["leader.dcos.thisdcos.directory"],
        "status: NXDOMAIN",
    )
    .await;
    assert!(
        out.contains("SOA ns.spartan. support.mesosphere.com."),
        "{out}"
    );
    let out = dig(a_net.dns, &["+short", "ready.spartan"]).await;
    assert_eq!(out.trim(), "127.0.0.1");

    a_net.stop.cancel();
    stop_up.cancel();
    agent.stop().await;
    master.stop().await;
}
