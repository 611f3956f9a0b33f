//! The ZooKeeper backend against a real server (Debian's `zookeeper`): the common suite, and
//! that acknowledged writes survive a kill -9 of the server.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use dcos_exhibitor::zookeeper::{self, Installation, ServerConfig, Status};
use dcos_store::CreateMode::Persistent;
use dcos_store::{Store, ZooKeeper};
use tempfile::TempDir;
use tokio::process::Child;

use crate::suite::{suite_tests, Harness};

/// A standalone ZooKeeper on a free loopback port, killed (-9) when dropped.
struct Server {
    config: ServerConfig,
    child: Child,
    _dir: TempDir,
}

impl Server {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let config = ServerConfig::standalone(client, dir.path().join("zk"));
        let child = spawn_serving(&config).await;
        Server {
            config,
            child,
            _dir: dir,
        }
    }

    fn servers(&self) -> String {
        self.config.client.to_string()
    }

    async fn session(&self) -> ZooKeeper {
        ZooKeeper::connect(&self.servers(), Duration::from_secs(6))
            .await
            .unwrap()
    }
}

/// Starts the server and waits until it serves.
async fn spawn_serving(config: &ServerConfig) -> Child {
    let install = Installation::find().expect("Debian's zookeeper package (scripts/install-deps)");
    let child = config.spawn(&install).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(zookeeper::status(config.client).await, Status::Serving(_)) {
        assert!(Instant::now() < deadline, "ZooKeeper did not start serving");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child
}

impl Harness for Server {
    type S = ZooKeeper;

    async fn session(&self) -> ZooKeeper {
        Server::session(self).await
    }

    fn base(&self) -> String {
        "/suite".to_owned()
    }
}

/// One server for the whole suite: a JVM per test would cost seconds of CPU each.
#[tokio::test]
async fn zookeeper_backend_passes_the_store_suite() {
    let server = Server::start().await;
    suite_tests!(run_suite!(&server;));
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9_of_zookeeper() {
    let mut server = Server::start().await;
    let s = server.session().await;
    let mut acked = Vec::new();
    for i in 0..50 {
        let path = s
            .create_all(&format!("/kill/n{i}"), i.to_string().as_bytes(), Persistent)
            .await
            .unwrap();
        acked.push(path);
    }
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();
    server.child = spawn_serving(&server.config).await;

    let fresh = server.session().await;
    for (i, path) in acked.iter().enumerate() {
        let (data, _) = fresh
            .get(path)
            .await
            .unwrap()
            .expect("an acknowledged node");
        assert_eq!(data, i.to_string().as_bytes());
    }
    assert_eq!(fresh.children("/kill").await.unwrap().len(), 50);
}
