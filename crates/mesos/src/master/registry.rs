//! The master's registry and leader record, kept in the `store` under `/mesos`.
//!
//! As Mesos' registrar does, the master admits an agent to the registry before it tells the
//! agent it is registered, so a restarted master knows every agent it ever admitted: they are
//! "recovered" until they re-register, and unreachable if they do not within the re-register
//! timeout. Agents found unreachable are recorded too. Tasks are not stored: re-registering
//! agents report them, as in Mesos.
//!
//! Layout (JSON values):
//! - `/mesos/json.info_<seq>`: this master's `MasterInfo`, an ephemeral sequential contender
//!   node, which is how Mesos publishes the leader (and how pymesos and Mesos-DNS find it);
//! - `/mesos/registry/agents/<id>`: an admitted agent's `AgentInfo`;
//! - `/mesos/registry/unreachable/<id>`: `{"timestamp": secs}` for an unreachable agent.

use dcos_store::{AnyStore, Candidate, CreateMode, LeaderElection, Location, Store};
use serde_json::{json, Value};

use crate::protocol::AgentInfo;

const AGENTS: &str = "/mesos/registry/agents";
const UNREACHABLE: &str = "/mesos/registry/unreachable";

/// The registry, through one store session (embedded, or the masters' ZooKeeper).
#[derive(Clone, Debug)]
pub struct Registry {
    session: AnyStore,
}

/// What a registry operation failed on.
pub type Error = dcos_store::Error;

impl Registry {
    /// Opens a session on the store at `location`.
    pub async fn open(location: &Location) -> Result<Registry, Error> {
        Ok(Registry {
            session: location.open().await?,
        })
    }

    /// Every admitted agent, by id.
    pub async fn agents(&self) -> Result<Vec<(String, AgentInfo)>, Error> {
        self.session.ensure_path(AGENTS).await?;
        let mut out = Vec::new();
        for id in self.session.children(AGENTS).await? {
            if let Some((data, _)) = self.session.get(&format!("{AGENTS}/{id}")).await? {
                match serde_json::from_slice(&data) {
                    Ok(info) => out.push((id, info)),
                    Err(e) => {
                        tracing::warn!(agent_id = %id, error = %e, "unreadable registry entry; ignoring it")
                    }
                }
            }
        }
        Ok(out)
    }

    /// Admits an agent (or updates its info), clearing any unreachable mark. Durable on return.
    pub async fn admit(&self, id: &str, info: &AgentInfo) -> Result<(), Error> {
        let data = serde_json::to_vec(info).unwrap_or_default();
        let path = format!("{AGENTS}/{id}");
        match self
            .session
            .create_all(&path, &data, CreateMode::Persistent)
            .await
        {
            Ok(_) => {}
            Err(Error::NodeExists { .. }) => {
                self.session.set(&path, &data, None).await?;
            }
            Err(e) => return Err(e),
        }
        match self
            .session
            .delete(&format!("{UNREACHABLE}/{id}"), None)
            .await
        {
            Ok(()) | Err(Error::NoNode { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Records that an agent is unreachable.
    pub async fn mark_unreachable(&self, id: &str, timestamp: f64) -> Result<(), Error> {
        let data = json!({"timestamp": timestamp}).to_string();
        match self
            .session
            .create_all(
                &format!("{UNREACHABLE}/{id}"),
                data.as_bytes(),
                CreateMode::Persistent,
            )
            .await
        {
            Ok(_) | Err(Error::NodeExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The agents recorded unreachable.
    pub async fn unreachable(&self) -> Result<Vec<String>, Error> {
        self.session.ensure_path(UNREACHABLE).await?;
        self.session.children(UNREACHABLE).await
    }

    /// The masters' election under `/mesos`.
    pub fn election(&self) -> LeaderElection<AnyStore> {
        LeaderElection::new(self.session.clone(), "/mesos").expect("a valid path")
    }

    /// Enters the leader election under `/mesos` with this master's `MasterInfo`.
    pub async fn contend(&self, master_info: &Value) -> Result<Candidate<AnyStore>, Error> {
        self.election()
            .join(master_info.to_string().as_bytes())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(host: &str) -> AgentInfo {
        AgentInfo {
            hostname: host.into(),
            port: 5051,
            ..AgentInfo::default()
        }
    }

    #[tokio::test]
    async fn admitted_and_unreachable_agents_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let file = Location::Embedded(dir.path().join("registry.redb"));
        {
            let r = Registry::open(&file).await.unwrap();
            assert!(r.agents().await.unwrap().is_empty());
            r.admit("a1", &agent("10.0.0.1")).await.unwrap();
            r.admit("a2", &agent("10.0.0.2")).await.unwrap();
            r.admit("a1", &agent("10.0.0.9")).await.unwrap();
            r.mark_unreachable("a2", 1.0).await.unwrap();
            r.mark_unreachable("a2", 2.0).await.unwrap();
        }
        let r = Registry::open(&file).await.unwrap();
        let agents = r.agents().await.unwrap();
        assert_eq!(agents.len(), 2);
        assert_eq!(agents[0], ("a1".to_string(), agent("10.0.0.9")));
        assert_eq!(r.unreachable().await.unwrap(), vec!["a2".to_string()]);
        // Re-admission clears the mark.
        r.admit("a2", &agent("10.0.0.2")).await.unwrap();
        assert!(r.unreachable().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_leader_record_is_a_json_info_node_that_ends_with_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let file = Location::Embedded(dir.path().join("registry.redb"));
        {
            let r = Registry::open(&file).await.unwrap();
            let info = json!({"id": "m1", "hostname": "10.0.0.1", "port": 5050});
            let candidate = r.contend(&info).await.unwrap();
            assert!(candidate.path().starts_with("/mesos/json.info_"));
            let leader = Some((candidate.path().to_owned(), info.to_string().into_bytes()));
            assert_eq!(r.election().leader().await.unwrap(), leader);
        }
        // A new owner of the file finds no stale leader.
        let r = Registry::open(&file).await.unwrap();
        assert_eq!(r.election().leader().await.unwrap(), None);
    }
}
