//! The IAM's state in the cluster's store: one JSON value at [`STATE_PATH`] changed by
//! compare-and-set (so a change is whole, and masters that change it at once both land),
//! and the sealed signing key at [`KEY_PATH`]. Every master keeps the newest state in memory,
//! refreshed by a watch and a periodic read, and answers reads from it.
//!
//! The state is one node, so on ZooKeeper it is bounded by its 1 MiB node limit: about
//! [`crate::model::MAX_ENTRIES`] accounts with password hashes fit. Its bytes are an
//! HMAC-SHA-256 of the JSON under a key only masters can derive, then the JSON: a state
//! written by anything else is refused, and the masters keep the last good one.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use dcos_store::{AnyStore, CreateMode, Store};

use crate::api::{Action, ApiError};
use crate::keys::{self, SigningKey};
use crate::model::{Account, Credential, Grantee, State};

/// The IAM's state.
pub const STATE_PATH: &str = "/dcos-iam/state";
/// The sealed signing key.
pub const KEY_PATH: &str = "/dcos-iam/signing-key";
/// How often the state is read even without a watch event (a watch can be lost with a
/// ZooKeeper session).
const REFRESH: Duration = Duration::from_secs(5);
/// How many times a change is retried when another master changed the state meanwhile.
const CAS_ATTEMPTS: usize = 16;

/// The state in memory and in the store.
pub struct Persist {
    store: AnyStore,
    /// Authenticates the stored state.
    mac: ring::hmac::Key,
    /// The newest state seen and its store version (-1 before the first write).
    current: RwLock<(i64, Arc<State>)>,
}

/// The accounts `dcos cluster up` asks for, created with full access when the IAM first
/// starts: the bootstrap superuser, and (strict security) the frameworks' service accounts.
#[derive(Clone, Debug, Default)]
pub struct Bootstrap {
    /// The superuser's uid and its password's Argon2 PHC string.
    pub superuser: Option<(String, String)>,
    /// Service accounts' uids and public keys (PEM).
    pub service_accounts: Vec<(String, String)>,
}

fn store_failed(e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "the IAM's store failed");
    ApiError::unavailable("The IAM's store cannot be reached; try again.")
}

impl Persist {
    /// Loads the state from `store`, creating it (with `bootstrap`'s superuser) if the
    /// cluster has none yet.
    pub async fn open(
        store: AnyStore,
        bootstrap: Option<Bootstrap>,
        secret: &[u8],
    ) -> Result<Persist, ApiError> {
        let persist = Persist {
            store,
            mac: keys::state_key(secret),
            current: RwLock::new((-1, Arc::new(State::default()))),
        };
        if persist.read().await?.is_none() {
            let mut first = State::default();
            let b = bootstrap.unwrap_or_default();
            let people = b.superuser.into_iter().map(|(uid, hash)| {
                let credential = Credential::Password { hash };
                (uid, "Bootstrap superuser".to_string(), credential)
            });
            let services = b.service_accounts.into_iter().map(|(uid, public_key)| {
                let credential = Credential::ServiceAccount { public_key };
                (uid, "Cluster component".to_string(), credential)
            });
            for (uid, description, credential) in people.chain(services) {
                let account = Account {
                    description,
                    credential,
                };
                first.add_account(&uid, account)?;
                first.grant(crate::api::SUPERUSER, Grantee::User(&uid), Action::Full)?;
                tracing::info!(%uid, "created a bootstrap account");
            }
            let data = persist.encode(&first)?;
            match persist
                .store
                .create_all(STATE_PATH, &data, CreateMode::Persistent)
                .await
            {
                // Another master made it first: its state is the cluster's.
                Ok(_) | Err(dcos_store::Error::NodeExists { .. }) => {}
                Err(e) => return Err(store_failed(e)),
            }
            persist.read().await?;
        }
        Ok(persist)
    }

    /// The newest state this master has seen.
    pub fn state(&self) -> Arc<State> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    fn publish(&self, version: i64, state: Arc<State>) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if version > current.0 {
            *current = (version, state);
        }
    }

    /// Reads the state from the store into memory; `None` if the store has none yet.
    async fn read(&self) -> Result<Option<(i64, State)>, ApiError> {
        let Some((data, stat)) = self.store.get(STATE_PATH).await.map_err(store_failed)? else {
            return Ok(None);
        };
        let state = self.decode(&data)?;
        self.publish(stat.version, Arc::new(state.clone()));
        Ok(Some((stat.version, state)))
    }

    /// Applies `change` to the newest state in the store (compare-and-set, retried when
    /// another master wrote meanwhile); its error leaves the state as it was.
    pub async fn update<T>(
        &self,
        change: impl Fn(&mut State) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        for _ in 0..CAS_ATTEMPTS {
            let Some((version, mut state)) = self.read().await? else {
                return Err(ApiError::unavailable("The IAM's state is missing."));
            };
            let out = change(&mut state)?;
            let data = self.encode(&state)?;
            match self.store.set(STATE_PATH, &data, Some(version)).await {
                Ok(stat) => {
                    self.publish(stat.version, Arc::new(state));
                    return Ok(out);
                }
                Err(dcos_store::Error::BadVersion { .. }) => continue,
                Err(e) => return Err(store_failed(e)),
            }
        }
        Err(ApiError::unavailable(
            "The IAM's state changed too often to apply this change; try again.",
        ))
    }

    /// The stored form of `state`: its MAC, then its JSON.
    fn encode(&self, state: &State) -> Result<Vec<u8>, ApiError> {
        let json = serde_json::to_vec(state).map_err(store_failed)?;
        let tag = ring::hmac::sign(&self.mac, &json);
        Ok([tag.as_ref(), &json].concat())
    }

    /// The state stored as `data`, if a master wrote it.
    fn decode(&self, data: &[u8]) -> Result<State, ApiError> {
        let invalid = |why: &str| {
            tracing::error!("the IAM's state in the store is refused: {why}");
            ApiError::unavailable("The IAM's state in the store is not valid.")
        };
        let tag_len = ring::digest::SHA256_OUTPUT_LEN;
        if data.len() < tag_len {
            return Err(invalid("too short"));
        }
        let (tag, json) = data.split_at(tag_len);
        ring::hmac::verify(&self.mac, json, tag)
            .map_err(|_| invalid("its MAC does not verify (not written by a master)"))?;
        serde_json::from_slice(json).map_err(|_| invalid("not JSON of the IAM's state"))
    }

    /// Keeps the state in memory fresh until `shutdown`: on every change the store reports,
    /// and every [`REFRESH`].
    pub async fn follow(&self, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            let mut watch = self.store.watch(STATE_PATH).await.ok();
            loop {
                let event = async {
                    match watch.as_mut() {
                        Some(w) => w.recv().await,
                        None => std::future::pending().await,
                    }
                };
                let ended = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    e = event => e.is_none(),
                    _ = tokio::time::sleep(REFRESH) => false,
                };
                if let Err(e) = self.read().await {
                    tracing::debug!(error = %e, "IAM state refresh failed");
                }
                if ended {
                    break;
                }
            }
        }
    }

    /// The cluster's signing key: the one in the store, or a new one put there when there
    /// is none. `secret` seals it.
    pub async fn signing_key(&self, secret: &[u8]) -> Result<SigningKey, String> {
        loop {
            match self.store.get(KEY_PATH).await.map_err(|e| e.to_string())? {
                Some((sealed, _)) => {
                    let der = keys::open(secret, &sealed).map_err(|e| e.to_string())?;
                    return SigningKey::from_pkcs8(&der).map_err(|e| e.to_string());
                }
                None => {
                    let (key, der) = tokio::task::spawn_blocking(SigningKey::generate)
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?;
                    let sealed = keys::seal(secret, &der).map_err(|e| e.to_string())?;
                    match self
                        .store
                        .create_all(KEY_PATH, &sealed, CreateMode::Persistent)
                        .await
                    {
                        Ok(_) => {
                            tracing::info!(kid = ?key.public().kid, "made the cluster's token signing key");
                            return Ok(key);
                        }
                        // Another master made one first: use that.
                        Err(dcos_store::Error::NodeExists { .. }) => continue,
                        Err(e) => return Err(e.to_string()),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_state_not_written_by_a_master_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = dcos_store::Location::Embedded(dir.path().join("iam.redb"))
            .open()
            .await
            .unwrap();
        let bootstrap = Bootstrap {
            superuser: Some((
                "root".into(),
                "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
            )),
            service_accounts: Vec::new(),
        };
        let persist = Persist::open(store.clone(), Some(bootstrap), b"masters' secret")
            .await
            .unwrap();
        assert!(persist.state().allowed("root", "dcos:x", Action::Full));
        // Someone with the store but not the secret makes himself a superuser.
        let mut forged = (*persist.state()).clone();
        forged
            .add_account(
                "mallory",
                Account {
                    description: String::new(),
                    credential: Credential::Password { hash: "x".into() },
                },
            )
            .unwrap();
        forged
            .grant(
                crate::api::SUPERUSER,
                Grantee::User("mallory"),
                Action::Full,
            )
            .unwrap();
        let json = serde_json::to_vec(&forged).unwrap();
        let wrong = ring::hmac::sign(&keys::state_key(b"a guess"), &json);
        for data in [json.clone(), [wrong.as_ref(), &json].concat()] {
            store.set(STATE_PATH, &data, None).await.unwrap();
            assert!(persist.read().await.is_err());
            assert!(!persist.state().users.contains_key("mallory"));
            // Changes fail closed rather than build on it.
            assert!(persist.update(|_| Ok(())).await.is_err());
        }
    }
}
