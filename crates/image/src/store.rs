//! The content-addressed image store under one root (the agent's `<work_dir>/images`):
//!
//! ```text
//! blobs/sha256/<hex>     manifests and configs (layer blobs go once extracted)
//! layers/<hex>           extracted layers, by the full digest (the agent mounts them through
//!                        short symlinks, so the length does not matter to overlay)
//! layers/<hex>.done      written (durably) once layers/<hex> is complete: a directory
//!                        without it is what a crash left, and is extracted again
//! images/<hex>.json      an image by manifest digest: its layers and config
//! state.json             tag references (reference -> digest) and holds (container -> digests)
//! tmp/                   partial downloads (resumed) and extractions in progress
//! ```
//!
//! Garbage collection keeps every image a container holds, the image each reference was
//! last pulled as, and every image a pull returned less than [`Limits::gc_grace`] ago (its
//! caller may not have held it yet); every other image goes, then every layer and blob no
//! kept image uses, and whatever `tmp/` holds for pulls not in flight (broken downloads, a
//! crash's extractions).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::extract::extract_layer;
use crate::manifest::{AnyManifest, Descriptor, ImageConfig};
use crate::registry::{http_client, Session};
use crate::{digest_hex, Credentials, Error, Reason, Reference};

/// Layers downloaded at once per pull.
const CONCURRENT_LAYERS: usize = 3;
/// Suffix of a layer's completion marker, beside its directory.
const DONE: &str = ".done";
/// Directory names of layers in stores made before full-digest names: gc keeps these for
/// the images it keeps, as containers may still run on them.
const LEGACY_LAYER_DIR_LEN: usize = 12;
/// A layer may always decompress to this much, however well it compresses (a tar is padded
/// to 10 KiB, so a tiny layer expands a lot).
const LAYER_FLOOR: u64 = 64 << 20;

/// Limits of a store's pulls; the default is what the agent uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Time a whole pull may take (each read also times out after 60 s).
    pub pull_deadline: Duration,
    /// A layer may decompress to this many times its compressed size (and to 64 MiB at
    /// least) ...
    pub layer_expansion: u64,
    /// ... and never to more than this many bytes.
    pub max_layer_bytes: u64,
    /// An image a pull returned this recently is kept by gc, whatever holds it: the caller
    /// of [`Store::pull`] holds it only afterwards.
    pub gc_grace: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            pull_deadline: Duration::from_secs(30 * 60),
            layer_expansion: 20,
            max_layer_bytes: 64 << 30,
            gc_grace: Duration::from_secs(10 * 60),
        }
    }
}

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

/// A layer's directory is named by its digest (older stores also wrote a `dir`, ignored).
#[derive(Debug, Serialize, Deserialize)]
struct LayerMeta {
    digest: String,
    size: u64,
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
    limits: Limits,
    http: reqwest::Client,
    state: Mutex<State>,
    /// One pull per reference at a time; the slot holds the last result, handed to callers
    /// that were waiting for it.
    flights: Mutex<HashMap<String, Flight>>,
    /// One download or extraction per blob at a time, across references.
    blob_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Blob hexes (naming layer dirs too) a pull in flight uses: gc leaves them alone.
    busy: Mutex<HashMap<String, usize>>,
    /// When a pull last returned each image (digest), for [`Limits::gc_grace`].
    returned: Mutex<HashMap<String, Instant>>,
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
/// `image list`) never see half a file, and durably (the directory is synced too).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    dcos_store::file::write_atomic(path, bytes, 0o644)
        .map_err(io_err(format!("writing {}", path.display())))
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
        Store::open_with(root, insecure_registries, Limits::default())
    }

    /// [`Store::open`] with other [`Limits`].
    pub fn open_with(
        root: &Path,
        insecure_registries: Vec<String>,
        limits: Limits,
    ) -> Result<Store, Error> {
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
                limits,
                http: http_client(),
                state: Mutex::new(state),
                flights: Mutex::new(HashMap::new()),
                blob_locks: Mutex::new(HashMap::new()),
                busy: Mutex::new(HashMap::new()),
                returned: Mutex::new(HashMap::new()),
                manifests: AtomicU64::new(0),
                blobs: AtomicU64::new(0),
            }),
        })
    }

    /// Pulls `reference` (unless it is stored and `force` is false) and returns the image.
    /// Concurrent pulls of one reference share one pull: a caller that waited for a pull
    /// that started after it asked gets that pull's image. A pull from the registry fails
    /// after [`Limits::pull_deadline`]; gc keeps the image for [`Limits::gc_grace`], until
    /// the caller [`Store::hold`]s it.
    pub async fn pull(
        &self,
        reference: &Reference,
        credentials: Option<&Credentials>,
        force: bool,
    ) -> Result<Image, Error> {
        let image = self.pull_shared(reference, credentials, force).await?;
        self.inner
            .returned
            .lock()
            .expect("returned lock")
            .insert(image.digest.clone(), Instant::now());
        Ok(image)
    }

    async fn pull_shared(
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
        let deadline = self.inner.limits.pull_deadline;
        let image = tokio::time::timeout(deadline, self.pull_now(reference, credentials))
            .await
            .map_err(|_| Error::Image {
                op: "pull",
                image: reference.to_string(),
                reason: Reason::Transfer(format!(
                    "the pull did not finish within {} s",
                    deadline.as_secs_f32()
                )),
            })??;
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

    fn layer_dir(&self, hex: &str) -> PathBuf {
        self.inner.root.join("layers").join(hex)
    }

    fn layer_marker(&self, hex: &str) -> PathBuf {
        self.inner.root.join("layers").join(format!("{hex}{DONE}"))
    }

    /// Whether layer `hex` was extracted to its end (its marker is written last).
    fn layer_complete(&self, hex: &str) -> bool {
        self.layer_dir(hex).is_dir() && self.layer_marker(hex).is_file()
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
        let mut layers = Vec::with_capacity(meta.layers.len());
        for l in &meta.layers {
            let hex = digest_hex(&l.digest)?;
            if !self.layer_complete(hex) {
                return None;
            }
            layers.push(self.layer_dir(hex));
        }
        Some(Image {
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
        // The entry's manifest is fetched by digest and must hash to it (`manifest` checks).
        if digest_hex(&entry.digest).is_none() {
            return Err(session.err(Reason::Unsupported(format!(
                "the manifest list names an unsupported digest {:?}",
                entry.digest
            ))));
        }
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
            names.push(hex_of(l)?);
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

    /// Downloads the blob `d` into `blobs/` unless it is there (verified by its digest when it
    /// was downloaded).
    async fn fetch_blob(&self, session: &Session, d: &Descriptor) -> Result<PathBuf, Error> {
        let hex = digest_hex(&d.digest).expect("checked digest");
        let path = self.blob_path(hex);
        if !path.exists() {
            let partial = self.inner.root.join("tmp").join(format!("{hex}.partial"));
            self.inner.blobs.fetch_add(1, Ordering::Relaxed);
            session.download_blob(d, &partial, &path).await?;
        }
        Ok(path)
    }

    async fn fetch_config(
        &self,
        session: &Session,
        d: &Descriptor,
    ) -> Result<(String, ImageConfig), Error> {
        let _lock = self.lock_blob(&d.digest).await;
        let path = self.fetch_blob(session, d).await?;
        let bytes = std::fs::read(&path).map_err(io_err(format!("reading {}", path.display())))?;
        let config = ImageConfig::from_blob(&bytes).map_err(|e| {
            session.err(Reason::Unsupported(format!(
                "the image config is not valid: {e}"
            )))
        })?;
        Ok((d.digest.clone(), config))
    }

    /// Downloads and extracts one layer unless it is complete; the blob goes once the layer
    /// is extracted (the directory is what containers use).
    async fn fetch_layer(&self, session: &Session, d: &Descriptor) -> Result<LayerMeta, Error> {
        let hex = digest_hex(&d.digest).expect("checked digest").to_string();
        let meta = LayerMeta {
            digest: d.digest.clone(),
            size: d.size,
        };
        let lock = self.lock_blob(&d.digest).await;
        if self.layer_complete(&hex) {
            return Ok(meta);
        }
        let blob = self.fetch_blob(session, d).await?;
        let limits = &self.inner.limits;
        let max = (d.size.saturating_mul(limits.layer_expansion))
            .max(LAYER_FLOOR)
            .min(limits.max_layer_bytes);
        // The extraction keeps the blob's lock and a busy mark until it is done, even when
        // the pull is dropped (its deadline): another extraction into the same directory, or
        // gc, must not meet it half done.
        let held = (lock, self.mark_busy(vec![hex.clone()]));
        let store = self.clone();
        let installed = tokio::task::spawn_blocking(move || {
            let _held = held;
            store.install_layer(&hex, &blob, max)
        })
        .await
        .unwrap_or_else(|e| Err(format!("extraction panicked: {e}")));
        installed.map_err(|cause| {
            session.err(Reason::Layer {
                digest: d.digest.clone(),
                cause,
            })
        })?;
        Ok(meta)
    }

    /// Extracts `blob` into `tmp/`, then moves it to `layers/<hex>` and writes its marker;
    /// the blob goes either way (a bad one is downloaded again).
    fn install_layer(&self, hex: &str, blob: &Path, max: u64) -> Result<(), String> {
        let dir = self.layer_dir(hex);
        let tmp = self.inner.root.join("tmp").join(format!("{hex}.x"));
        let _ = std::fs::remove_dir_all(&tmp);
        // A directory without its marker is what a crash left mid-install.
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| format!("removing {}: {e}", dir.display()))?;
        }
        let installed = std::fs::create_dir(&tmp)
            .map_err(|e| format!("creating {}: {e}", tmp.display()))
            .and_then(|()| extract_layer(blob, &tmp, max))
            .and_then(|()| {
                let io = |e: std::io::Error| format!("installing the layer: {e}");
                // One syncfs makes every extracted file durable (cheaper than one fsync per
                // file) before the marker says the layer is whole.
                let d = std::fs::File::open(&tmp).map_err(io)?;
                nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&d))
                    .map_err(|e| io(e.into()))?;
                std::fs::rename(&tmp, &dir).map_err(io)?;
                // Syncs `layers/` too, which makes the rename durable.
                dcos_store::file::write_atomic(&self.layer_marker(hex), b"", 0o644).map_err(io)
            });
        if installed.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        let _ = std::fs::remove_file(blob);
        installed
    }

    /// Records that `container_id` uses image `image_digest` (persisted across restarts).
    pub fn hold(&self, image_digest: &str, container_id: &str) -> Result<(), Error> {
        // Checked under the state lock, which gc holds while it removes images.
        let mut state = self.state();
        if self.read_meta(image_digest).is_none() {
            return Err(Error::UnknownImage(image_digest.to_string()));
        }
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

    /// Images a pull returned less than [`Limits::gc_grace`] ago (forgetting older ones).
    fn recently_returned(&self) -> HashSet<String> {
        let grace = self.inner.limits.gc_grace;
        let mut returned = self.inner.returned.lock().expect("returned lock");
        returned.retain(|_, at| at.elapsed() < grace);
        returned.keys().cloned().collect()
    }

    /// Removes the images no container holds, no reference points at and no pull returned
    /// lately, then the layers and blobs no remaining image uses (see the module doc). Pulls
    /// in flight are safe.
    pub fn gc(&self) -> Result<GcReport, Error> {
        let state = self.state();
        let mut keep: HashSet<String> = state.refs.values().cloned().collect();
        keep.extend(state.holds.values().flatten().cloned());
        keep.extend(self.recently_returned());
        let grace = self.inner.limits.gc_grace.as_secs();
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
            if keep.contains(&meta.digest) || now_secs().saturating_sub(meta.pulled_at) < grace {
                used.insert(hex);
                used.extend(digest_hex(&meta.config_digest).map(str::to_string));
                for l in meta.layers.iter().filter_map(|l| digest_hex(&l.digest)) {
                    used.insert(l.to_string());
                    used.insert(l[..LEGACY_LAYER_DIR_LEN].to_string());
                }
            } else {
                let path = self.meta_path(&hex);
                std::fs::remove_file(&path)
                    .map_err(io_err(format!("removing {}", path.display())))?;
                report.images.push(meta.digest);
            }
        }
        // Partial downloads and extractions (`<hex>.partial`, `<hex>.x`) of pulls not in
        // flight (a crash, a failed pull).
        remove_unused(&self.inner.root.join("tmp"), &used)?;
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

/// Removes the entries of `dir` whose names, up to the first dot, are not in `used`; returns
/// how many went, not counting layer markers. Markers go first, so that a layer whose
/// removal is cut short is not trusted.
fn remove_unused(dir: &Path, used: &HashSet<String>) -> Result<usize, Error> {
    let entries = std::fs::read_dir(dir).map_err(io_err(format!("reading {}", dir.display())))?;
    let mut doomed: Vec<(bool, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            // `.<name>.<pid>.<n>.tmp` is a write_atomic in progress (or a crash's leftover).
            let stem = name
                .trim_start_matches('.')
                .split('.')
                .next()
                .unwrap_or_default();
            let counted = !name.starts_with('.') && !name.ends_with(DONE);
            (!used.contains(stem)).then(|| (counted, e.path()))
        })
        .collect();
    doomed.sort();
    let mut removed = 0;
    for (counted, path) in doomed {
        let result = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        result.map_err(io_err(format!("removing {}", path.display())))?;
        removed += usize::from(counted);
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
        send(crate::push_oci_layout(dir.path(), &r, None, &[]));
    }
}
