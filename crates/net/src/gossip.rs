//! Cluster state between dcos-net nodes on 62501, the port dcos-net's lashup gossips on.
//!
//! The masters' dcos-net make the cluster zones from the leading Mesos master; every other
//! node subscribes to one master (found through its epmd on 61420, failing over to the next
//! master) and receives the zones and the member list whenever they change, with a ping every
//! few seconds so a dead master is noticed. A node serves what it knows to any subscriber.
//!
//! Frames are a four-byte big-endian length and a JSON object tagged by `type`: `hello` (the
//! subscriber introduces itself), `state` (the zones, their version and the members), `ping`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dcos_mesos_dns::zone::Records;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::DcosNet;

/// The names dcos-net's node goes by in epmd (`navstar@<ip>` since 1.10, `dcos-net` too).
pub const NODE_NAMES: [&str; 2] = ["dcos-net", "navstar"];
/// The name peers ask for.
pub const NODE_NAME: &str = NODE_NAMES[1];
/// The largest frame a node accepts from a master (a zone of 100,000 tasks is a few MiB).
const MAX_STATE_FRAME: usize = 64 << 20;
/// The largest frame a master accepts from a subscriber (a hello or a ping).
const MAX_SUBSCRIBER_FRAME: usize = 4 << 10;
/// The roles a subscriber may say it has.
const ROLES: [&str; 4] = ["master", "agent", "agent_public", "master+agent"];
/// How often a quiet connection is pinged.
const PING: Duration = Duration::from_secs(3);
/// How long without any frame before the peer is taken for dead.
const SILENCE: Duration = Duration::from_secs(10);

/// A node of the cluster, as the gossip knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its IP.
    pub ip: IpAddr,
    /// `master`, `agent` or `agent_public`.
    pub role: String,
}

/// The zones made from the Mesos state, with a version that grows with each change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterZones {
    /// Bumped by the maker on every change.
    pub version: u64,
    /// Zone name (`dcos.thisdcos.directory.`) to records.
    pub zones: BTreeMap<String, Records>,
}

/// One frame.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame {
    /// A subscriber introduces itself.
    Hello {
        /// The subscriber.
        node: Member,
    },
    /// What the serving node knows.
    State {
        /// The cluster zones.
        zones: ClusterZones,
        /// The nodes connected to the serving node, and itself.
        members: Vec<Member>,
    },
    /// Still here.
    Ping,
}

/// Writes one frame, waiting at most [`SILENCE`] for a peer that does not read.
pub async fn write_frame(w: &mut (impl AsyncWrite + Unpin), frame: &Frame) -> anyhow::Result<()> {
    let body = serde_json::to_vec(frame)?;
    let mut out = u32::try_from(body.len())?.to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    tokio::time::timeout(SILENCE, w.write_all(&out)).await??;
    Ok(())
}

/// Reads one frame of at most `max` bytes, waiting at most [`SILENCE`]. The body is read as it
/// arrives, so a length prefix alone reserves nothing.
pub async fn read_frame(r: &mut (impl AsyncRead + Unpin), max: usize) -> anyhow::Result<Frame> {
    let read = async {
        let mut len = [0u8; 4];
        r.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        anyhow::ensure!(len <= max, "a {len}-byte frame is too large");
        let mut body = Vec::new();
        (&mut *r).take(len as u64).read_to_end(&mut body).await?;
        anyhow::ensure!(body.len() == len, "the frame ended early");
        Ok(serde_json::from_slice(&body)?)
    };
    tokio::time::timeout(SILENCE, read).await?
}

/// Subscribers a master serves at once: one per node of the cluster, with room to spare.
const MAX_SUBSCRIBERS: usize = 4096;

/// Serves the gossip on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, net: Arc<DcosNet>, shutdown: CancellationToken) {
    dcos_serve::serve_tcp(listener, MAX_SUBSCRIBERS, shutdown, move |stream, peer| {
        let net = net.clone();
        async move {
            if let Err(e) = subscriber(stream, peer.ip(), &net).await {
                tracing::debug!(%peer, error = %e, "gossip subscriber left");
            }
        }
    })
    .await
}

/// One subscriber: its hello, then the state now and on every change, pings in between. A
/// node is the address it connects from; its hello must say the same.
async fn subscriber(stream: TcpStream, from: IpAddr, net: &DcosNet) -> anyhow::Result<()> {
    let (mut rd, mut wr) = stream.into_split();
    let Frame::Hello { node } = read_frame(&mut rd, MAX_SUBSCRIBER_FRAME).await? else {
        anyhow::bail!("the first frame must be a hello");
    };
    anyhow::ensure!(
        node.ip == from,
        "a hello from {from} says it is {}",
        node.ip
    );
    anyhow::ensure!(
        ROLES.contains(&node.role.as_str()),
        "unknown role {:?}",
        node.role
    );
    net.members_add(node);
    let result = serve_subscriber(&mut rd, &mut wr, net).await;
    net.members_remove(from);
    result
}

async fn serve_subscriber(
    rd: &mut (impl AsyncRead + Unpin),
    wr: &mut (impl AsyncWrite + Unpin),
    net: &DcosNet,
) -> anyhow::Result<()> {
    let mut changes = net.subscribe_changes();
    let reader = async {
        loop {
            read_frame(rd, MAX_SUBSCRIBER_FRAME).await?;
        }
    };
    let writer = async {
        write_frame(wr, &net.state_frame()).await?;
        loop {
            tokio::select! {
                r = changes.changed() => {
                    r?;
                    write_frame(wr, &net.state_frame()).await?;
                }
                _ = tokio::time::sleep(PING) => write_frame(wr, &Frame::Ping).await?,
            }
        }
    };
    tokio::select! {
        r = reader => r,
        r = writer => r,
    }
}

/// Keeps this node's cluster zones in step with a master's, failing over between `masters`
/// (their epmd at `epmd_port` names the gossip port), until `shutdown`. Without any master
/// for longer than `stale_after`, the cluster zones are dropped.
pub async fn follow_masters(
    net: Arc<DcosNet>,
    masters: Vec<IpAddr>,
    epmd_port: u16,
    stale_after: Duration,
    shutdown: CancellationToken,
) {
    let mut last_ok = Instant::now();
    let mut next = 0usize;
    loop {
        if masters.is_empty() {
            return;
        }
        let master = masters[next % masters.len()];
        next += 1;
        let round = follow_one(&net, master, epmd_port, &mut last_ok);
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = round => r,
        };
        if let Err(e) = result {
            tracing::debug!(%master, error = %e, "gossip with master failed");
        }
        if last_ok.elapsed() > stale_after {
            net.install_cluster(ClusterZones::default(), Vec::new());
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
    }
}

async fn follow_one(
    net: &DcosNet,
    master: IpAddr,
    epmd_port: u16,
    last_ok: &mut Instant,
) -> anyhow::Result<()> {
    let port = crate::epmd::port_please(SocketAddr::new(master, epmd_port), NODE_NAME).await?;
    // From this node's own address, which is who the master takes it for.
    let me = net.me().ip;
    let socket = if me.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(me, 0))?;
    let stream = tokio::time::timeout(
        Duration::from_secs(2),
        socket.connect(SocketAddr::new(master, port)),
    )
    .await??;
    let (mut rd, mut wr) = stream.into_split();
    write_frame(&mut wr, &Frame::Hello { node: net.me() }).await?;
    let pinger = async {
        loop {
            tokio::time::sleep(PING).await;
            write_frame(&mut wr, &Frame::Ping).await?;
        }
    };
    let reader = async {
        loop {
            match read_frame(&mut rd, MAX_STATE_FRAME).await? {
                Frame::State { zones, members } => {
                    net.install_cluster(zones, members);
                    *last_ok = Instant::now();
                }
                Frame::Ping => *last_ok = Instant::now(),
                Frame::Hello { .. } => anyhow::bail!("a master sent a hello"),
            }
        }
    };
    tokio::select! {
        r = pinger => r,
        r = reader => r,
    }
}
