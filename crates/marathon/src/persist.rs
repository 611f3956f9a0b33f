//! Marathon's state in the `store`, under `/marathon`: every app with its kept versions, every
//! instance, every deployment, and the framework id. A change is written here before it is
//! acknowledged to the client, so a restarted Marathon resumes exactly where it stopped.
//!
//! The records' writes are built here (`*_write`, `*_removal`); the engine plans a change's
//! writes under its state lock and stores them with one [`Persist::apply`] without it.

use std::collections::BTreeMap;

use dcos_store::{Store, Write};
use serde::{Deserialize, Serialize};

use crate::api::App;
use crate::state::{Deployment, Instance};

const APPS: &str = "/marathon/apps";
const INSTANCES: &str = "/marathon/instances";
const DEPLOYMENTS: &str = "/marathon/deployments";
const FRAMEWORK_ID: &str = "/marathon/framework-id";

/// Persistence failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error("Marathon's store failed at {path}")]
    Store {
        /// The node.
        path: String,
        /// The cause.
        #[source]
        source: dcos_store::Error,
    },
    /// A stored record does not parse.
    #[error("the record at {path} is not valid")]
    Corrupt {
        /// The node.
        path: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// An app and its kept versions, as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredApp {
    /// The current definition.
    pub app: App,
    /// Kept versions by version string.
    pub versions: BTreeMap<String, App>,
    /// Being deleted.
    #[serde(default)]
    pub deleting: bool,
}

/// Everything Marathon keeps.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Apps.
    pub apps: Vec<StoredApp>,
    /// Instances.
    pub instances: Vec<Instance>,
    /// Deployments.
    pub deployments: Vec<Deployment>,
    /// The framework id.
    pub framework_id: Option<String>,
}

/// The store, under `/marathon`.
#[derive(Clone)]
pub struct Persist<S: Store> {
    store: S,
}

/// App ids are paths of `[a-z0-9.-]` segments, so `_` cannot clash as the separator.
fn node_name(id: &str) -> String {
    id.trim_start_matches('/').replace('/', "_")
}

impl<S: Store> Persist<S> {
    /// Wraps a store session.
    pub fn new(store: S) -> Self {
        Persist { store }
    }

    /// Applies `writes` (in one transaction where the store can).
    pub async fn apply(&self, writes: Vec<Write>) -> Result<(), Error> {
        let path = match writes.as_slice() {
            [] => return Ok(()),
            [one] => one.path().to_string(),
            [first, ..] => format!("{} and {} more", first.path(), writes.len() - 1),
        };
        self.store
            .write_all(writes)
            .await
            .map_err(|source| Error::Store { path, source })
    }

    async fn put(&self, path: &str, data: Vec<u8>) -> Result<(), Error> {
        self.apply(vec![Write::Put {
            path: path.into(),
            data,
        }])
        .await
    }

    async fn load_all<T: for<'de> Deserialize<'de>>(&self, dir: &str) -> Result<Vec<T>, Error> {
        let names = match self.store.children(dir).await {
            Ok(n) => n,
            Err(dcos_store::Error::NoNode { .. }) => return Ok(Vec::new()),
            Err(source) => {
                return Err(Error::Store {
                    path: dir.into(),
                    source,
                })
            }
        };
        let mut out = Vec::new();
        for name in names {
            let path = format!("{dir}/{name}");
            let Some((data, _)) = self.store.get(&path).await.map_err(|source| Error::Store {
                path: path.clone(),
                source,
            })?
            else {
                continue;
            };
            out.push(
                serde_json::from_slice(&data).map_err(|source| Error::Corrupt { path, source })?,
            );
        }
        Ok(out)
    }

    /// Loads everything.
    pub async fn load(&self) -> Result<Loaded, Error> {
        let framework_id = self
            .store
            .get(FRAMEWORK_ID)
            .await
            .map_err(|source| Error::Store {
                path: FRAMEWORK_ID.into(),
                source,
            })?
            .map(|(d, _)| String::from_utf8_lossy(&d).to_string())
            .filter(|s| !s.is_empty());
        Ok(Loaded {
            apps: self.load_all(APPS).await?,
            instances: self.load_all(INSTANCES).await?,
            deployments: self.load_all(DEPLOYMENTS).await?,
            framework_id,
        })
    }

    /// The write that stores an app with its versions.
    pub fn app_write(app: &StoredApp) -> Result<Write, Error> {
        let data = serde_json::to_vec(app).map_err(|source| Error::Corrupt {
            path: app.app.id.clone(),
            source,
        })?;
        Ok(Write::Put {
            path: format!("{APPS}/{}", node_name(&app.app.id)),
            data,
        })
    }

    /// The write that forgets an app.
    pub fn app_removal(id: &str) -> Write {
        Write::Remove {
            path: format!("{APPS}/{}", node_name(id)),
        }
    }

    /// The write that stores an instance.
    pub fn instance_write(i: &Instance) -> Result<Write, Error> {
        let data = serde_json::to_vec(i).map_err(|source| Error::Corrupt {
            path: i.task_id.clone(),
            source,
        })?;
        Ok(Write::Put {
            path: format!("{INSTANCES}/{}", i.task_id),
            data,
        })
    }

    /// The write that forgets an instance.
    pub fn instance_removal(task_id: &str) -> Write {
        Write::Remove {
            path: format!("{INSTANCES}/{task_id}"),
        }
    }

    /// The write that stores a deployment.
    pub fn deployment_write(d: &Deployment) -> Result<Write, Error> {
        let data = serde_json::to_vec(d).map_err(|source| Error::Corrupt {
            path: d.id.clone(),
            source,
        })?;
        Ok(Write::Put {
            path: format!("{DEPLOYMENTS}/{}", d.id),
            data,
        })
    }

    /// The write that forgets a deployment.
    pub fn deployment_removal(id: &str) -> Write {
        Write::Remove {
            path: format!("{DEPLOYMENTS}/{id}"),
        }
    }

    /// Stores the framework id.
    pub async fn save_framework_id(&self, id: &str) -> Result<(), Error> {
        self.put(FRAMEWORK_ID, id.as_bytes().to_vec()).await
    }
}
