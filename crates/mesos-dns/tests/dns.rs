//! Mesos-DNS against a real master and agent on loopback, asked with the real `dig`
//! (Debian's dnsutils, installed by scripts/install-deps) and over its HTTP API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dcos_mesos_dns::server::{self, Resolve};
use dcos_mesos_dns::{Config, Listeners};
use dcos_testkit::dns::{dig, eventually_dig};
use dcos_testkit::loopback;
use hickory_proto::op::Message;
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// An upstream resolver run by the test: every name is 192.0.2.7.
struct Upstream;

impl Resolve for Upstream {
    async fn resolve(&self, request: Message) -> Message {
        let mut response = dcos_mesos_dns::zone::response_to(&request);
        let name = request.queries()[0].name().clone();
        response.add_answer(Record::from_rdata(name, 30, RData::A(A::new(192, 0, 2, 7))));
        response
    }
}

struct Dns {
    addr: SocketAddr,
    http: SocketAddr,
    stop: CancellationToken,
}

async fn mesos_dns(masters: Vec<SocketAddr>, resolvers: Vec<SocketAddr>) -> Dns {
    let (udp, tcp) = dcos_testkit::dns::udp_tcp_pair("127.0.0.1".parse().unwrap()).await;
    let addr = udp.local_addr().unwrap();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_addr = http.local_addr().unwrap();
    let mut config = Config::dcos(addr.ip(), masters, resolvers);
    config.dns_listen = addr;
    config.http_listen = http_addr;
    let stop = CancellationToken::new();
    tokio::spawn(dcos_mesos_dns::serve_on(
        Listeners { udp, tcp, http },
        config,
        stop.clone(),
    ));
    Dns {
        addr,
        http: http_addr,
        stop,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_masters_and_forwarding_resolve_with_dig() {
    let master = loopback::master().await;
    let (agent, ports) = loopback::agent_of(master.addr, 5).await;
    // An upstream the test runs, for names outside the zone.
    let upstream_sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let upstream = upstream_sock.local_addr().unwrap();
    let stop_upstream = CancellationToken::new();
    tokio::spawn(server::serve_udp(
        upstream_sock,
        Arc::new(Upstream),
        stop_upstream.clone(),
    ));
    let dns = mesos_dns(vec![master.addr], vec![upstream]).await;

    eventually_dig(dns.addr, &["+short", "leader.mesos"], "127.0.0.1").await;
    let srv = dig(dns.addr, &["+short", "SRV", "_leader._tcp.mesos"]).await;
    assert!(
        srv.contains(&format!("0 1 {} leader.mesos.", master.addr.port())),
        "{srv}"
    );

    // A framework named "marathon" runs task "web.prod" (Marathon's name for /prod/web).
    let port = loopback::first_port(&ports);
    let task = loopback::launch_task(master.addr, "marathon", "web.prod", "prod_web.1", port).await;

    let a = eventually_dig(dns.addr, &["web-prod.marathon.mesos"], "status: NOERROR").await;
    assert!(a.contains("flags: qr aa rd ra"), "{a}");
    assert!(
        a.contains("web-prod.marathon.mesos. 60 IN A 127.0.0.1"),
        "{a}"
    );
    let srv = dig(dns.addr, &["SRV", "_web-prod._tcp.marathon.mesos"]).await;
    assert!(srv.contains(&format!("SRV 0 1 {port} web-prod-")), "{srv}");
    assert!(
        srv.contains(".marathon.slave.mesos. 60 IN A 127.0.0.1"),
        "additional section: {srv}"
    );
    // Case does not matter; TCP gives the same.
    let mixed = dig(dns.addr, &["+short", "+tcp", "WEB-prod.MaRaThOn.mesos"]).await;
    assert_eq!(mixed.trim(), "127.0.0.1");
    // Unknown names in the zone: NXDOMAIN with the SOA; known names of another type: NODATA.
    let missing = dig(dns.addr, &["nothing.marathon.mesos"]).await;
    assert!(missing.contains("status: NXDOMAIN"), "{missing}");
    assert!(
        missing.contains("SOA ns1.mesos. root.ns1.mesos."),
        "{missing}"
    );
    let nodata = dig(dns.addr, &["AAAA", "web-prod.marathon.mesos"]).await;
    assert!(
        nodata.contains("status: NOERROR") && nodata.contains("ANSWER: 0"),
        "{nodata}"
    );
    // Everything else goes upstream.
    let out = dig(dns.addr, &["+short", "example.test"]).await;
    assert_eq!(out.trim(), "192.0.2.7");

    // The HTTP API.
    let http = |path: &str| {
        let url = format!("http://{}{path}", dns.http);
        async move {
            reqwest::get(url)
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(http("/v1/version").await["Service"], "Mesos-DNS");
    assert_eq!(
        http("/v1/hosts/web-prod.marathon.mesos").await,
        json!([{"host": "web-prod.marathon.mesos.", "ip": "127.0.0.1"}])
    );
    assert_eq!(
        http("/v1/hosts/nope.mesos").await,
        json!([{"host": "", "ip": ""}])
    );
    let services = http("/v1/services/_web-prod._tcp.marathon.mesos").await;
    assert_eq!(services[0]["port"], port.to_string(), "{services}");
    let enumerate = http("/v1/enumerate").await;
    assert_eq!(
        enumerate["frameworks"][0]["tasks"][0]["id"], "prod_web.1",
        "{enumerate}"
    );

    // Killing the task removes its names.
    task.kill().await;
    eventually_dig(dns.addr, &["web-prod.marathon.mesos"], "status: NXDOMAIN").await;

    drop(task);
    dns.stop.cancel();
    stop_upstream.cancel();
    agent.stop().await;
    master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_packets_and_floods_leave_it_answering() {
    let master = loopback::master().await;
    // No resolvers: names outside the zone are refused.
    let dns = mesos_dns(vec![master.addr], vec![]).await;
    eventually_dig(dns.addr, &["+short", "leader.mesos"], "127.0.0.1").await;
    let refused = dig(dns.addr, &["example.test"]).await;
    assert!(refused.contains("status: REFUSED"), "{refused}");

    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(dns.addr).await.unwrap();
    let mut buf = [0u8; 4096];
    // Garbage with a readable header: FORMERR with its id.
    let mut garbage = vec![0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    garbage.extend_from_slice(&[0xff; 40]);
    sock.send(&garbage).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let reply = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(reply.id(), 0xabcd);
    assert_eq!(
        reply.response_code(),
        hickory_proto::op::ResponseCode::FormErr
    );
    // Too short to answer, empty, and oversized packets are dropped without harm.
    for packet in [vec![1u8, 2, 3], vec![], vec![0u8; 60_000]] {
        sock.send(&packet).await.unwrap();
    }
    // A bounded flood of 5,000 queries, then it still answers.
    let query = {
        let mut m = Message::new();
        m.add_query(hickory_proto::op::Query::query(
            hickory_proto::rr::Name::from_ascii("leader.mesos.").unwrap(),
            hickory_proto::rr::RecordType::A,
        ));
        m.to_vec().unwrap()
    };
    for _ in 0..5_000 {
        sock.send(&query).await.unwrap();
    }
    let ok = eventually_dig(dns.addr, &["+short", "leader.mesos"], "127.0.0.1").await;
    assert_eq!(ok.trim(), "127.0.0.1");
    // Over TCP too, with a bogus length prefix first.
    let mut tcp = tokio::net::TcpStream::connect(dns.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut tcp, &[0xff, 0xff, 1, 2, 3])
        .await
        .unwrap();
    drop(tcp);
    let ok = dig(dns.addr, &["+short", "+tcp", "leader.mesos"]).await;
    assert_eq!(ok.trim(), "127.0.0.1");
    dns.stop.cancel();
    master.stop().await;
}
