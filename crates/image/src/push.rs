//! Pushing an image to a registry from an OCI image layout or a `docker save` archive
//! (`dcos image push`, and the tests' images).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};
use sha2::Digest;

use crate::manifest::{
    AnyManifest, Descriptor, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_MANIFEST,
};
use crate::registry::{http_client, Session};
use crate::{digest_hex, Credentials, Error, Reference};

/// Blobs uploaded at once.
const CONCURRENT_UPLOADS: usize = 3;
/// The OCI annotation naming an image inside a layout's index.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What a push sends: blobs (digest, file) and then the manifest.
struct Plan {
    blobs: Vec<(String, PathBuf)>,
    media_type: String,
    manifest: Vec<u8>,
    /// Keeps files made for the push (compressed layers) until it is done.
    _scratch: Option<tempfile::TempDir>,
}

/// Pushes the image of an OCI image layout directory (the entry whose ref name is the
/// target's tag, else the first) to `target`; returns the manifest digest.
pub async fn push_oci_layout(
    dir: &Path,
    target: &Reference,
    credentials: Option<&Credentials>,
) -> Result<String, Error> {
    push(dir, target, credentials, &[]).await
}

/// Pushes the image of a `docker save` tarball to `target` (as a Docker schema 2 manifest
/// with gzip layers); returns the manifest digest.
pub async fn push_docker_archive(
    tar: &Path,
    target: &Reference,
    credentials: Option<&Credentials>,
) -> Result<String, Error> {
    push(tar, target, credentials, &[]).await
}

/// Pushes from an OCI layout directory or a `docker save` tarball, whichever `source` is;
/// registries in `insecure` are spoken to over http.
pub async fn push(
    source: &Path,
    target: &Reference,
    credentials: Option<&Credentials>,
    insecure: &[String],
) -> Result<String, Error> {
    let (src, tag) = (source.to_path_buf(), target.tag.clone());
    let plan = tokio::task::spawn_blocking(move || {
        if src.is_dir() {
            oci_plan(&src, tag.as_deref())
        } else {
            archive_plan(&src)
        }
    })
    .await
    .unwrap_or_else(|e| Err(format!("preparing the push panicked: {e}")))
    .map_err(|reason| Error::BadSource {
        path: source.display().to_string(),
        reason,
    })?;
    let session = Session::new(http_client(), target, credentials, insecure, true);
    // Futures made first, as in the store's pull, so the push future stays `Send`.
    let uploads: Vec<_> = plan
        .blobs
        .iter()
        .map(|(digest, path)| upload_missing(&session, digest, path))
        .collect();
    futures::stream::iter(uploads)
        .buffer_unordered(CONCURRENT_UPLOADS)
        .try_collect::<Vec<()>>()
        .await?;
    let digest = crate::sha256_digest(&plan.manifest);
    let tag = target.tag.clone().unwrap_or(digest);
    session
        .put_manifest(&tag, &plan.media_type, plan.manifest)
        .await
}

async fn upload_missing(session: &Session, digest: &str, path: &Path) -> Result<(), Error> {
    if !session.blob_exists(digest).await? {
        session.upload_blob(digest, path).await?;
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn oci_plan(dir: &Path, tag: Option<&str>) -> Result<Plan, String> {
    let index: AnyManifest = read_json(&dir.join("index.json"))?;
    let entries = index.manifests.unwrap_or_default();
    let named = |d: &&Descriptor| {
        let name = d.annotations.as_ref().and_then(|a| a.get(REF_NAME));
        tag.is_some() && name.map(String::as_str) == tag
    };
    let entry = entries
        .iter()
        .find(named)
        .or(entries.first())
        .ok_or("index.json lists no image")?;
    let blob = |d: &str| -> Result<PathBuf, String> {
        let hex = digest_hex(d).ok_or_else(|| format!("unsupported digest {d}"))?;
        Ok(dir.join("blobs/sha256").join(hex))
    };
    let manifest_path = blob(&entry.digest)?;
    let bytes =
        std::fs::read(&manifest_path).map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    let manifest: AnyManifest = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    let (Some(config), Some(layers)) = (manifest.config, manifest.layers) else {
        return Err("the layout's entry is not an image manifest".into());
    };
    let blobs = std::iter::once(&config)
        .chain(&layers)
        .map(|d| Ok((d.digest.clone(), blob(&d.digest)?)))
        .collect::<Result<_, String>>()?;
    let media_type = manifest
        .media_type
        .or(Some(entry.media_type.clone()).filter(|m| !m.is_empty()))
        .unwrap_or_else(|| OCI_MANIFEST.to_string());
    Ok(Plan {
        blobs,
        media_type,
        manifest: bytes,
        _scratch: None,
    })
}

/// sha256 digest and size of a file.
fn file_digest(path: &Path) -> Result<(String, u64), String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut h = sha2::Sha256::new();
    let n = std::io::copy(&mut f, &mut h).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((format!("sha256:{:x}", h.finalize()), n))
}

/// A descriptor's JSON for the manifest this push writes.
fn descriptor(media_type: &str, digest: &str, size: u64) -> serde_json::Value {
    serde_json::json!({ "mediaType": media_type, "digest": digest, "size": size })
}

fn archive_plan(tar: &Path) -> Result<Plan, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        config: String,
        layers: Vec<String>,
    }
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = std::fs::File::open(tar).map_err(|e| e.to_string())?;
    // `unpack` keeps every entry inside the scratch dir.
    tar::Archive::new(file)
        .unpack(scratch.path())
        .map_err(|e| format!("not a readable tar archive: {e}"))?;
    let entries: Vec<Entry> = read_json(&scratch.path().join("manifest.json"))
        .map_err(|e| format!("not a `docker save` archive: {e}"))?;
    let entry = entries.first().ok_or("manifest.json lists no image")?;
    let inside = |p: &str| -> Result<PathBuf, String> {
        let rel = Path::new(p);
        if rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(format!(
                "manifest.json names a path outside the archive: {p}"
            ));
        }
        Ok(scratch.path().join(rel))
    };
    let config_path = inside(&entry.config)?;
    let (config_digest, config_size) = file_digest(&config_path)?;
    let mut blobs = vec![(config_digest.clone(), config_path)];
    let mut layers = Vec::new();
    for (i, layer) in entry.layers.iter().enumerate() {
        let gz = gzipped(
            &inside(layer)?,
            &scratch.path().join(format!("layer{i}.tar.gz")),
        )?;
        let (digest, size) = file_digest(&gz)?;
        layers.push(descriptor(DOCKER_LAYER_GZIP, &digest, size));
        blobs.push((digest, gz));
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, &config_digest, config_size),
        "layers": layers,
    });
    Ok(Plan {
        blobs,
        media_type: DOCKER_MANIFEST.to_string(),
        manifest: serde_json::to_vec(&manifest).expect("json"),
        _scratch: Some(scratch),
    })
}

/// The layer as gzip: as it is when it already is, else compressed to `out`.
fn gzipped(layer: &Path, out: &Path) -> Result<PathBuf, String> {
    let err = |e: std::io::Error| format!("{}: {e}", layer.display());
    let mut reader = BufReader::new(std::fs::File::open(layer).map_err(err)?);
    if reader.fill_buf().map_err(err)?.starts_with(&[0x1f, 0x8b]) {
        return Ok(layer.to_path_buf());
    }
    let file = std::fs::File::create(out).map_err(err)?;
    let mut enc = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    std::io::copy(&mut reader.by_ref(), &mut enc).map_err(err)?;
    enc.finish().map_err(err)?.sync_all().map_err(err)?;
    Ok(out.to_path_buf())
}
