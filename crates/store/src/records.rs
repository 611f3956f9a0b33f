//! A service's state as JSON records in a store (Marathon's under `/marathon`, Metronome's
//! under `/metronome`): the writes that store a record, a whole directory loaded, a change's
//! writes applied at once, and errors that name the service and the node.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Store, Write};

/// Failures reading or writing the records.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The store failed.
    #[error("{owner}'s store failed at {path}")]
    Store {
        /// The service (`Marathon`).
        owner: &'static str,
        /// The node.
        path: String,
        /// The cause.
        #[source]
        source: crate::Error,
    },
    /// A record does not parse or serialize.
    #[error("the record at {path} is not valid")]
    Corrupt {
        /// The node.
        path: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// The write that stores `value` at `path` as JSON.
pub fn put<T: Serialize>(path: String, value: &T) -> Result<Write, RecordError> {
    match serde_json::to_vec(value) {
        Ok(data) => Ok(Write::Put { path, data }),
        Err(source) => Err(RecordError::Corrupt { path, source }),
    }
}

/// One service's records in a store session.
#[derive(Clone, Debug)]
pub struct Records<S> {
    store: S,
    owner: &'static str,
}

impl<S: Store> Records<S> {
    /// `owner`'s records (the name is in the errors) in `store`.
    pub fn new(store: S, owner: &'static str) -> Self {
        Self { store, owner }
    }

    fn failed(&self, path: impl Into<String>) -> impl FnOnce(crate::Error) -> RecordError {
        let (owner, path) = (self.owner, path.into());
        move |source| RecordError::Store {
            owner,
            path,
            source,
        }
    }

    /// Applies `writes` (in one transaction where the store can).
    pub async fn apply(&self, writes: Vec<Write>) -> Result<(), RecordError> {
        let path = match writes.as_slice() {
            [] => return Ok(()),
            [one] => one.path().to_string(),
            [first, ..] => format!("{} and {} more", first.path(), writes.len() - 1),
        };
        self.store
            .write_all(writes)
            .await
            .map_err(self.failed(path))
    }

    /// Every record in `dir` with its node name; none if `dir` does not exist.
    pub async fn load_dir<T: DeserializeOwned>(
        &self,
        dir: &str,
    ) -> Result<Vec<(String, T)>, RecordError> {
        let names = match self.store.children(dir).await {
            Ok(n) => n,
            Err(crate::Error::NoNode { .. }) => return Ok(Vec::new()),
            Err(source) => return Err(self.failed(dir)(source)),
        };
        let mut out = Vec::new();
        for name in names {
            let path = format!("{dir}/{name}");
            let got = self.store.get(&path).await.map_err(self.failed(&path))?;
            let Some((data, _)) = got else { continue };
            match serde_json::from_slice(&data) {
                Ok(value) => out.push((name, value)),
                Err(source) => return Err(RecordError::Corrupt { path, source }),
            }
        }
        Ok(out)
    }

    /// The text at `path`, `None` if it is missing or empty (a framework id).
    pub async fn text(&self, path: &str) -> Result<Option<String>, RecordError> {
        let got = self.store.get(path).await.map_err(self.failed(path))?;
        Ok(got
            .map(|(d, _)| String::from_utf8_lossy(&d).into_owned())
            .filter(|s| !s.is_empty()))
    }
}
