//! Marathon's state in the `store`, under `/marathon`: every app with its kept versions, every
//! instance, every deployment, and the framework id. A change is written here before it is
//! acknowledged to the client, so a restarted Marathon resumes exactly where it stopped.
//!
//! The records' writes are built here (`*_write`, `*_removal`); the engine plans a change's
//! writes under its state lock and stores them with one [`Persist::apply`] without it.

use std::collections::BTreeMap;

use dcos_store::records::{put, RecordError, Records};
use dcos_store::{Store, Write};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::api::App;
use crate::state::{Deployment, Instance};

const APPS: &str = "/marathon/apps";
const INSTANCES: &str = "/marathon/instances";
const DEPLOYMENTS: &str = "/marathon/deployments";
const FRAMEWORK_ID: &str = "/marathon/framework-id";

/// Persistence failures.
pub type Error = RecordError;

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
    records: Records<S>,
}

/// App ids are paths of `[a-z0-9.-]` segments, so `_` cannot clash as the separator.
fn node_name(id: &str) -> String {
    id.trim_start_matches('/').replace('/', "_")
}

impl<S: Store> Persist<S> {
    /// Wraps a store session.
    pub fn new(store: S) -> Self {
        let records = Records::new(store, "Marathon");
        Persist { records }
    }

    /// Applies `writes` (in one transaction where the store can).
    pub async fn apply(&self, writes: Vec<Write>) -> Result<(), Error> {
        self.records.apply(writes).await
    }

    async fn load_all<T: DeserializeOwned>(&self, dir: &str) -> Result<Vec<T>, Error> {
        let records = self.records.load_dir(dir).await?;
        Ok(records.into_iter().map(|(_, record)| record).collect())
    }

    /// Loads everything.
    pub async fn load(&self) -> Result<Loaded, Error> {
        Ok(Loaded {
            apps: self.load_all(APPS).await?,
            instances: self.load_all(INSTANCES).await?,
            deployments: self.load_all(DEPLOYMENTS).await?,
            framework_id: self.records.text(FRAMEWORK_ID).await?,
        })
    }

    /// The write that stores an app with its versions.
    pub fn app_write(app: &StoredApp) -> Result<Write, Error> {
        put(format!("{APPS}/{}", node_name(&app.app.id)), app)
    }

    /// The write that forgets an app.
    pub fn app_removal(id: &str) -> Write {
        Write::Remove {
            path: format!("{APPS}/{}", node_name(id)),
        }
    }

    /// The write that stores an instance.
    pub fn instance_write(i: &Instance) -> Result<Write, Error> {
        put(format!("{INSTANCES}/{}", i.task_id), i)
    }

    /// The write that forgets an instance.
    pub fn instance_removal(task_id: &str) -> Write {
        Write::Remove {
            path: format!("{INSTANCES}/{task_id}"),
        }
    }

    /// The write that stores a deployment.
    pub fn deployment_write(d: &Deployment) -> Result<Write, Error> {
        put(format!("{DEPLOYMENTS}/{}", d.id), d)
    }

    /// The write that forgets a deployment.
    pub fn deployment_removal(id: &str) -> Write {
        Write::Remove {
            path: format!("{DEPLOYMENTS}/{id}"),
        }
    }

    /// Stores the framework id.
    pub async fn save_framework_id(&self, id: &str) -> Result<(), Error> {
        let data = id.as_bytes().to_vec();
        let path = FRAMEWORK_ID.into();
        self.apply(vec![Write::Put { path, data }]).await
    }
}
