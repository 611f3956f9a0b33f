//! The content-addressed image store under one root (the agent's `<work_dir>/images`):
//!
//! ```text
//! blobs/sha256/<hex>     manifests and configs (layer blobs go once extracted)
//! layers/<12 hex>        extracted layers: short, as overlay's mount options fit in a page
//! images/<hex>.json      an image by manifest digest: its layers and config
//! state.json             tag references (reference -> digest) and holds (container -> digests)
//! tmp/                   partial downloads (resumed) and extractions in progress
//! ```
//!
//! Garbage collection keeps every image a container holds and the image each reference was
//! last pulled as; every other image goes, then every layer and blob no kept image uses, and
//! whatever `tmp/` holds for pulls not in flight (broken downloads, a crash's extractions).
//! Layer directories are named by the first 12 hex digits of the layer digest (48 bits: a
//! clash within one agent's store is not expected).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::extract::extract_layer;
use crate::manifest::{AnyManifest, Descriptor, ImageConfig};
use crate::registry::{http_client, Session};
use crate::{digest_hex, Credentials, Error, Reason, Reference};

/// Layers downloaded at once per pull.
const CONCURRENT_LAYERS: usize = 3;
/// Characters of a layer digest naming its directory.
const LAYER_DIR_LEN: usize = 12;

/// A pulled image, ready for the provisioner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// The manifest's digest (of the linux/amd64 manifest when a list was pulled).
    pub digest: String,
    /// Extracted layer directories, bottom layer first.
    pub layers: Vec<PathBuf>,
    /// How to run it.
    pub config: ImageConfig,
}

/// One image of [`Store::list`].
#[derive(Clone, Debug, Serialize)]
pub struct ImageSummary {
    /// The references it was last pulled as.
    pub references: Vec<String>,
    /// Manifest digest.
    pub digest: String,
    /// Compressed size of its layers, in bytes.
    pub size: u64,
    /// How many layers.
    pub layers: usize,
    /// Containers holding it.
    pub containers: Vec<String>,
    /// When it was pulled (seconds since the epoch).
    pub pulled_at: u64,
}

/// What [`Store::gc`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Digests of the images removed.
    pub images: Vec<String>,
    /// Layer directories removed.
    pub layers: usize,
    /// Blob files removed.
    pub blobs: usize,
}

/// Registry traffic since [`Store::open`] (tests check that pulls are shared).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Manifest GETs.
    pub manifests: u64,
    /// Blob downloads.
    pub blobs: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    refs: BTreeMap<String, String>,
    holds: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ImageMeta {
    digest: String,
    config_digest: String,
    layers: Vec<LayerMeta>,
    config: ImageConfig,
    pulled_at: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct LayerMeta {
    digest: String,
    size: u64,
    dir: String,
}

type Flight = Arc<tokio::sync::Mutex<Option<(Instant, Image)>>>;

/// The image store; cheap to clone, shared by all launches of an agent.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    insecure: Vec<String>,
    http: reqwest::Client,
    state: Mutex<State>,
    /// One pull per reference at a time; the slot holds the last result, handed to callers
    /// that were waiting for it.
    flights: Mutex<HashMap<String, Flight>>,
    /// One download or extraction per blob at a time, across references.
    blob_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Layer dirs and blob hexes a pull in flight uses: gc leaves them alone.
    busy: Mutex<HashMap<String, usize>>,
    manifests: AtomicU64,
    blobs: AtomicU64,
}

/// Marks names busy for gc while alive.
struct Busy {
    inner: Arc<Inner>,
    names: Vec<String>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut busy = self.inner.busy.lock().expect("busy lock");
        for n in &self.names {
            if let Some(c) = busy.get_mut(n) {
                *c -= 1;
                if *c == 0 {
                    busy.remove(n);
                }
            }
        }
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |e| Error::io(context, e)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers (the CLI's
/// `image list`) never see half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(io_err(format!("writing {}", path.display())))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Store {
    /// Opens (creating) the store at `root`. Registries in `insecure_registries`
    /// (`host[:port]`) are spoken to over plain http, as loopback ones always are.
    pub fn open(root: &Path, insecure_registries: Vec<String>) -> Result<Store, Error> {
        for dir in ["blobs/sha256", "layers", "images", "tmp"] {
            let d = root.join(dir);
            std::fs::create_dir_all(&d).map_err(io_err(format!("creating {}", d.display())))?;
        }
        let state_path = root.join("state.json");
        let state = match std::fs::read(&state_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::io(
                    format!("reading {}", state_path.display()),
                    std::io::Error::other(e),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(Error::io(format!("reading {}", state_path.display()), e)),
        };
        Ok(Store {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                insecure: insecure_registries,
                http: http_client(),
                state: Mutex::new(state),
                flights: Mutex::new(HashMap::new()),
                blob_locks: Mutex::new(HashMap::new()),
                busy: Mutex::new(HashMap::new()),
                manifests: AtomicU64::new(0),
                blobs: AtomicU64::new(0),
            }),
        })
    }

    /// Pulls `reference` (unless it is stored and `force` is false) and returns the image.
    /// Concurrent pulls of one reference share one pull: a caller that waited for a pull
    /// that started after it asked gets that pull's image.
    pub async fn pull(
        &self,
        reference: &Reference,
        credentials: Option<&Credentials>,
        force: bool,
    ) -> Result<Image, Error> {
        let key = reference.to_string();
        let asked = Instant::now();
        let flight = {
            let mut flights = self.inner.flights.lock().expect("flights lock");
            flights.entry(key.clone()).or_default().clone()
        };
        let mut slot = flight.lock().await;
        if let Some((done, image)) = &*slot {
            if *done >= asked {
                return Ok(image.clone());
            }
        }
        if !force {
            let digest = self.state().refs.get(&key).cloned();
            if let Some(image) = digest.and_then(|d| self.load(&d)) {
                return Ok(image);
            }
        }
        let image = self.pull_now(reference, credentials).await?;
        *slot = Some((Instant::now(), image.clone()));
        Ok(image)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().expect("state lock")
    }

    fn save_state(&self, state: &State) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(state).expect("state serializes");
        write_atomic(&self.inner.root.join("state.json"), &bytes)
    }

    fn blob_path(&self, hex: &str) -> PathBuf {
        self.inner.root.join("blobs/sha256").join(hex)
    }

    fn meta_path(&self, hex: &str) -> PathBuf {
        self.inner.root.join("images").join(format!("{hex}.json"))
    }

    fn read_meta(&self, digest: &str) -> Option<ImageMeta> {
        let bytes = std::fs::read(self.meta_path(digest_hex(digest)?)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The stored image `digest`, if it is complete.
    fn load(&self, digest: &str) -> Option<Image> {
        let meta = self.read_meta(digest)?;
        let layers: Vec<PathBuf> = meta
            .layers
            .iter()
            .map(|l| self.inner.root.join("layers").join(&l.dir))
            .collect();
        layers.iter().all(|l| l.is_dir()).then_some(Image {
            digest: meta.digest,
            layers,
            config: meta.config,
        })
    }

    fn mark_busy(&self, names: Vec<String>) -> Busy {
        let mut busy = self.inner.busy.lock().expect("busy lock");
        for n in &names {
            *busy.entry(n.clone()).or_default() += 1;
        }
        Busy {
            inner: self.inner.clone(),
            names,
        }
    }

    async fn lock_blob(&self, digest: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.inner.blob_locks.lock().expect("blob locks");
            locks.entry(digest.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Resolves the reference to one linux/amd64 manifest: (bytes, digest, parsed).
    async fn resolve(
        &self,
        session: &Session,
        r: &str,
    ) -> Result<(Vec<u8>, String, AnyManifest), Error> {
        let parse = |bytes: &[u8]| {
            serde_json::from_slice::<AnyManifest>(bytes).map_err(|e| {
                session.err(Reason::Unsupported(format!(
                    "the manifest is not valid: {e}"
                )))
            })
        };
        self.inner.manifests.fetch_add(1, Ordering::Relaxed);
        let (bytes, content_type, digest) = session.manifest(r).await?;
        let manifest = parse(&bytes)?;
        if !manifest.is_index(&content_type) {
            return Ok((bytes, digest, manifest));
        }
        let entry = manifest.pick_linux_amd64().ok_or_else(|| {
            session.err(Reason::Unsupported(
                "the manifest list has no linux/amd64 image".into(),
            ))
        })?;
        self.inner.manifests.fetch_add(1, Ordering::Relaxed);
        let (bytes, _, digest) = session.manifest(&entry.digest).await?;
        let manifest = parse(&bytes)?;
        Ok((bytes, digest, manifest))
    }

    async fn pull_now(
        &self,
        reference: &Reference,
        credentials: Option<&Credentials>,
    ) -> Result<Image, Error> {
        let session = Session::new(
            self.inner.http.clone(),
            reference,
            credentials,
            &self.inner.insecure,
            false,
        );
        let (bytes, digest, manifest) = self.resolve(&session, reference.manifest_ref()).await?;
        let (Some(config), Some(layers)) = (manifest.config, manifest.layers) else {
            return Err(session.err(Reason::Unsupported(
                "only Docker schema 2 and OCI image manifests are supported (not schema 1)".into(),
            )));
        };
        let hex_of = |d: &Descriptor| {
            digest_hex(&d.digest).map(str::to_string).ok_or_else(|| {
                session.err(Reason::Unsupported(format!(
                    "unsupported digest {}",
                    d.digest
                )))
            })
        };
        let mut names = vec![hex_of(&config)?];
        for l in &layers {
            names.push(hex_of(l)?[..LAYER_DIR_LEN].to_string());
        }
        let _busy = self.mark_busy(names);
        let mut meta = None;
        if self.load(&digest).is_none() {
            let config = self.fetch_config(&session, &config).await?;
            // The futures are made first: a closure inside the stream makes the pull future
            // lose `Send` for the agent's `tokio::spawn` (a higher-ranked lifetime).
            let fetches: Vec<_> = layers
                .iter()
                .map(|l| self.fetch_layer(&session, l))
                .collect();
            let metas: Vec<LayerMeta> = futures::stream::iter(fetches)
                .buffered(CONCURRENT_LAYERS)
                .try_collect()
                .await?;
            meta = Some(ImageMeta {
                digest: digest.clone(),
                config_digest: config.0,
                layers: metas,
                config: config.1,
                pulled_at: now_secs(),
            });
        }
        // Under the state lock, so gc sees the image and its reference together.
        let mut state = self.state();
        if let Some(meta) = meta {
            let hex = digest_hex(&digest).expect("sha256 digest");
            write_atomic(&self.blob_path(hex), &bytes)?;
            let json = serde_json::to_vec_pretty(&meta).expect("meta serializes");
            write_atomic(&self.meta_path(hex), &json)?;
        }
        state.refs.insert(reference.to_string(), digest.clone());
        self.save_state(&state)?;
        drop(state);
        self.load(&digest).ok_or_else(|| {
            session.err(Reason::Transfer("the image vanished from the store".into()))
        })
    }

    /// Downloads a blob into `blobs/` unless it is there.
    async fn fetch_blob(&self, session: &Session, digest: &str) -> Result<PathBuf, Error> {
        let hex = digest_hex(digest).expect("checked digest");
        let path = self.blob_path(hex);
        if !path.exists() {
            let partial = self.inner.root.join("tmp").join(format!("{hex}.partial"));
            self.inner.blobs.fetch_add(1, Ordering::Relaxed);
            session.download_blob(digest, &partial, &path).await?;
        }
        Ok(path)
    }

    async fn fetch_config(
        &self,
        session: &Session,
        d: &Descriptor,
    ) -> Result<(String, ImageConfig), Error> {
        let _lock = self.lock_blob(&d.digest).await;
        let path = self.fetch_blob(session, &d.digest).await?;
        let bytes = std::fs::read(&path).map_err(io_err(format!("reading {}", path.display())))?;
        let config = ImageConfig::from_blob(&bytes).map_err(|e| {
            session.err(Reason::Unsupported(format!(
                "the image config is not valid: {e}"
            )))
        })?;
        Ok((d.digest.clone(), config))
    }

    /// Downloads and extracts one layer unless its directory exists; the blob goes once the
    /// layer is extracted (the directory is what containers use).
    async fn fetch_layer(&self, session: &Session, d: &Descriptor) -> Result<LayerMeta, Error> {
        let hex = digest_hex(&d.digest).expect("checked digest");
        let name = hex[..LAYER_DIR_LEN].to_string();
        let dir = self.inner.root.join("layers").join(&name);
        let meta = LayerMeta {
            digest: d.digest.clone(),
            size: d.size,
            dir: name.clone(),
        };
        let _lock = self.lock_blob(&d.digest).await;
        if dir.is_dir() {
            return Ok(meta);
        }
        let blob = self.fetch_blob(session, &d.digest).await?;
        let tmp = self.inner.root.join("tmp").join(format!("{name}.x"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
        let (b, t) = (blob.clone(), tmp.clone());
        let extracted = tokio::task::spawn_blocking(move || extract_layer(&b, &t))
            .await
            .unwrap_or_else(|e| Err(format!("extraction panicked: {e}")));
        if let Err(cause) = extracted {
            let _ = std::fs::remove_dir_all(&tmp);
            let _ = std::fs::remove_file(&blob);
            return Err(session.err(Reason::Layer {
                digest: d.digest.clone(),
                cause,
            }));
        }
        std::fs::rename(&tmp, &dir).map_err(io_err(format!("renaming {}", tmp.display())))?;
        let _ = std::fs::remove_file(&blob);
        Ok(meta)
    }

    /// Records that `container_id` uses image `image_digest` (persisted across restarts).
    pub fn hold(&self, image_digest: &str, container_id: &str) -> Result<(), Error> {
        if self.read_meta(image_digest).is_none() {
            return Err(Error::UnknownImage(image_digest.to_string()));
        }
        let mut state = self.state();
        state
            .holds
            .entry(container_id.to_string())
            .or_default()
            .insert(image_digest.to_string());
        self.save_state(&state)
    }

    /// Drops every hold of `container_id` (none is fine).
    pub fn release(&self, container_id: &str) -> Result<(), Error> {
        let mut state = self.state();
        if state.holds.remove(container_id).is_some() {
            self.save_state(&state)?;
        }
        Ok(())
    }

    fn metas(&self) -> Vec<ImageMeta> {
        let Ok(entries) = std::fs::read_dir(self.inner.root.join("images")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let hex = name.strip_suffix(".json")?;
                self.read_meta(&format!("sha256:{hex}"))
            })
            .collect()
    }

    /// Removes the images no container holds and no reference points at, then the layers
    /// and blobs no remaining image uses (see the module doc). Pulls in flight are safe.
    pub fn gc(&self) -> Result<GcReport, Error> {
        let state = self.state();
        let mut keep: HashSet<&str> = state.refs.values().map(String::as_str).collect();
        keep.extend(state.holds.values().flatten().map(String::as_str));
        let mut used: HashSet<String> = self
            .inner
            .busy
            .lock()
            .expect("busy lock")
            .keys()
            .cloned()
            .collect();
        let mut report = GcReport::default();
        for meta in self.metas() {
            let hex = digest_hex(&meta.digest).unwrap_or_default().to_string();
            if keep.contains(meta.digest.as_str()) {
                used.insert(hex);
                used.extend(digest_hex(&meta.config_digest).map(str::to_string));
                used.extend(meta.layers.into_iter().map(|l| l.dir));
            } else {
                let path = self.meta_path(&hex);
                std::fs::remove_file(&path)
                    .map_err(io_err(format!("removing {}", path.display())))?;
                report.images.push(meta.digest);
            }
        }
        // Partial downloads and extractions of pulls not in flight (a crash, a failed pull).
        let tmp_used: HashSet<String> = std::fs::read_dir(self.inner.root.join("tmp"))
            .map_err(io_err("reading tmp"))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                used.iter()
                    .any(|u| n.starts_with(&u[..u.len().min(LAYER_DIR_LEN)]))
            })
            .collect();
        remove_unused(&self.inner.root.join("tmp"), &tmp_used)?;
        report.layers = remove_unused(&self.inner.root.join("layers"), &used)?;
        report.blobs = remove_unused(&self.inner.root.join("blobs/sha256"), &used)?;
        Ok(report)
    }

    /// Every stored image.
    pub fn list(&self) -> Result<Vec<ImageSummary>, Error> {
        let state = self.state();
        let mut out: Vec<ImageSummary> = self
            .metas()
            .into_iter()
            .map(|m| ImageSummary {
                references: state
                    .refs
                    .iter()
                    .filter(|(_, d)| **d == m.digest)
                    .map(|(r, _)| r.clone())
                    .collect(),
                containers: state
                    .holds
                    .iter()
                    .filter(|(_, ds)| ds.contains(&m.digest))
                    .map(|(c, _)| c.clone())
                    .collect(),
                size: m.layers.iter().map(|l| l.size).sum(),
                layers: m.layers.len(),
                digest: m.digest,
                pulled_at: m.pulled_at,
            })
            .collect();
        out.sort_by(|a, b| a.references.cmp(&b.references));
        Ok(out)
    }

    /// Registry traffic since the store was opened.
    pub fn stats(&self) -> Stats {
        Stats {
            manifests: self.inner.manifests.load(Ordering::Relaxed),
            blobs: self.inner.blobs.load(Ordering::Relaxed),
        }
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }
}

/// Removes the entries of `dir` whose names are not in `used`; returns how many went.
fn remove_unused(dir: &Path, used: &HashSet<String>) -> Result<usize, Error> {
    let mut removed = 0;
    let entries = std::fs::read_dir(dir).map_err(io_err(format!("reading {}", dir.display())))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if used.contains(&name) {
            continue;
        }
        let path = e.path();
        let result = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        result.map_err(io_err(format!("removing {}", path.display())))?;
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The agent shares one store between launches and spawns pulls on tokio.
    #[test]
    fn store_is_shareable_and_pulls_are_send() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        fn send<T: Send>(_: T) {}
        shareable::<Store>();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), vec![]).unwrap();
        let r = Reference::parse("busybox").unwrap();
        send(store.pull(&r, None, false));
        send(crate::push_oci_layout(dir.path(), &r, None));
    }
}
