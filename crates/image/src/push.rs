//! Pushing an image to a registry from an OCI image layout or a `docker save` archive
//! (`dcos image push`, and the tests' images).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

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

/// What a push sends: blobs (digest, the file opened) and then the manifest.
struct Plan {
    blobs: Vec<(String, File)>,
    media_type: String,
    manifest: Vec<u8>,
    /// Keeps files made for the push (compressed layers) until it is done.
    _scratch: Option<tempfile::TempDir>,
}

/// Pushes the image of an OCI image layout directory (the entry whose ref name is the
/// target's tag, else the first) to `target`; returns the manifest digest. Registries in
/// `insecure` are spoken to over http.
pub async fn push_oci_layout(
    dir: &Path,
    target: &Reference,
    credentials: Option<&Credentials>,
    insecure: &[String],
) -> Result<String, Error> {
    let tag = target.tag.clone();
    let plan = move |dir: &Path| oci_plan(dir, tag.as_deref());
    push_plan(dir, plan, target, credentials, insecure).await
}

/// Pushes the image of a `docker save` tarball to `target` (as a Docker schema 2 manifest
/// with gzip layers); returns the manifest digest. Registries in `insecure` are spoken to
/// over http.
pub async fn push_docker_archive(
    tar: &Path,
    target: &Reference,
    credentials: Option<&Credentials>,
    insecure: &[String],
) -> Result<String, Error> {
    push_plan(tar, archive_plan, target, credentials, insecure).await
}

/// Pushes from an OCI layout directory or a `docker save` tarball, whichever `source` is;
/// registries in `insecure` are spoken to over http.
pub async fn push(
    source: &Path,
    target: &Reference,
    credentials: Option<&Credentials>,
    insecure: &[String],
) -> Result<String, Error> {
    if source.is_dir() {
        push_oci_layout(source, target, credentials, insecure).await
    } else {
        push_docker_archive(source, target, credentials, insecure).await
    }
}

/// Makes the plan of `source` (off the runtime: it reads and compresses files) and pushes it.
async fn push_plan(
    source: &Path,
    make: impl FnOnce(&Path) -> Result<Plan, String> + Send + 'static,
    target: &Reference,
    credentials: Option<&Credentials>,
    insecure: &[String],
) -> Result<String, Error> {
    let src = source.to_path_buf();
    let plan = tokio::task::spawn_blocking(move || make(&src))
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
        .map(|(digest, file)| upload_missing(&session, digest, file))
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

async fn upload_missing(session: &Session, digest: &str, file: &File) -> Result<(), Error> {
    if !session.blob_exists(digest).await? {
        session.upload_blob(digest, file).await?;
    }
    Ok(())
}

/// Opens `rel` under `root` (canonical) only as a regular file that really is inside it: a
/// layout or archive is untrusted, and a symlink planted in it must not make the push read
/// (and upload) another file of the user's.
fn open_inside(root: &Path, rel: &Path) -> Result<File, String> {
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(format!("{} is a path outside the source", rel.display()));
    }
    let path = root.join(rel);
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let file = std::fs::OpenOptions::new()
        .read(true)
        // Not the last component through a symlink, and no hang on a planted fifo.
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(&path)
        .map_err(err)?;
    // Where the file really is covers symlinks among the directories above it.
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    let real = std::fs::read_link(format!("/proc/self/fd/{fd}")).map_err(err)?;
    if !real.starts_with(root) || !file.metadata().map_err(err)?.is_file() {
        return Err(format!(
            "{} is not a regular file inside {}",
            rel.display(),
            root.display()
        ));
    }
    Ok(file)
}

/// The canonical form of a push's source directory, which [`open_inside`] compares against.
fn canonical(dir: &Path) -> Result<PathBuf, String> {
    dir.canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))
}

fn read_json<T: serde::de::DeserializeOwned>(root: &Path, rel: &str) -> Result<T, String> {
    let mut bytes = Vec::new();
    open_inside(root, Path::new(rel))?
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{rel}: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{rel}: {e}"))
}

fn oci_plan(dir: &Path, tag: Option<&str>) -> Result<Plan, String> {
    let dir = &canonical(dir)?;
    let index: AnyManifest = read_json(dir, "index.json")?;
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
    let blob = |d: &str| -> Result<File, String> {
        let hex = digest_hex(d).ok_or_else(|| format!("unsupported digest {d}"))?;
        open_inside(dir, &Path::new("blobs/sha256").join(hex))
    };
    let mut bytes = Vec::new();
    blob(&entry.digest)?
        .read_to_end(&mut bytes)
        .map_err(|e| format!("manifest {}: {e}", entry.digest))?;
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

/// sha256 digest and size of a file, read from its start.
fn file_digest(f: &mut File) -> Result<(String, u64), String> {
    let err = |e: std::io::Error| format!("hashing a blob: {e}");
    f.rewind().map_err(err)?;
    let mut h = sha2::Sha256::new();
    let n = std::io::copy(f, &mut h).map_err(err)?;
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
    // The archive's entries go to `archive/`, the push's own files to `gz/`, where the
    // archive cannot have planted anything.
    let unpacked = scratch.path().join("archive");
    let own = scratch.path().join("gz");
    for d in [&unpacked, &own] {
        std::fs::create_dir(d).map_err(|e| e.to_string())?;
    }
    let unpacked = canonical(&unpacked)?;
    let file = File::open(tar).map_err(|e| e.to_string())?;
    // `unpack` keeps every entry inside the directory; symlinks it makes are met by
    // `open_inside`.
    tar::Archive::new(file)
        .unpack(&unpacked)
        .map_err(|e| format!("not a readable tar archive: {e}"))?;
    let entries: Vec<Entry> = read_json(&unpacked, "manifest.json")
        .map_err(|e| format!("not a `docker save` archive: {e}"))?;
    let entry = entries.first().ok_or("manifest.json lists no image")?;
    let mut config = open_inside(&unpacked, Path::new(&entry.config))?;
    let (config_digest, config_size) = file_digest(&mut config)?;
    let mut blobs = vec![(config_digest.clone(), config)];
    let mut layers = Vec::new();
    for (i, layer) in entry.layers.iter().enumerate() {
        let layer = open_inside(&unpacked, Path::new(layer))?;
        let mut gz = gzipped(layer, &own.join(format!("layer{i}.tar.gz")))?;
        let (digest, size) = file_digest(&mut gz)?;
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
fn gzipped(layer: File, out: &Path) -> Result<File, String> {
    let err = |e: std::io::Error| format!("compressing a layer: {e}");
    let mut reader = BufReader::new(layer);
    if reader.fill_buf().map_err(err)?.starts_with(&[0x1f, 0x8b]) {
        return Ok(reader.into_inner());
    }
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(err)?;
    let mut enc = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    std::io::copy(&mut reader, &mut enc).map_err(err)?;
    enc.finish().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn write_tar(path: &Path, entries: &[(&str, Option<&str>, &[u8])]) {
        let mut b = tar::Builder::new(File::create(path).unwrap());
        for (name, link, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(0);
            match link {
                Some(target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    b.append_link(&mut h, name, target).unwrap();
                }
                None => {
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, name, *data).unwrap();
                }
            }
        }
        b.finish().unwrap();
    }

    #[test]
    fn symlinks_planted_in_a_layout_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cret").unwrap();
        let hex = "a".repeat(64);
        let index = format!(r#"{{"manifests":[{{"digest":"sha256:{hex}"}}]}}"#);
        // The manifest blob itself a symlink; then the blobs directory one.
        let layout = dir.path().join("layout");
        std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
        std::fs::write(layout.join("index.json"), &index).unwrap();
        symlink(&secret, layout.join("blobs/sha256").join(&hex)).unwrap();
        let err = oci_plan(&layout, None).err().unwrap();
        assert!(err.contains("symbolic links"), "{err}");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(outside.join("sha256")).unwrap();
        std::fs::copy(&secret, outside.join("sha256").join(&hex)).unwrap();
        std::fs::remove_dir_all(layout.join("blobs")).unwrap();
        symlink(&outside, layout.join("blobs")).unwrap();
        let err = oci_plan(&layout, None).err().unwrap();
        assert!(err.contains("is not a regular file inside"), "{err}");
    }

    #[test]
    fn symlinks_planted_in_an_archive_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cret").unwrap();
        let manifest = br#"[{"Config":"c.json","Layers":["l.tar"]}]"#;
        let tar = dir.path().join("image.tar");
        let secret = secret.to_str().unwrap();
        write_tar(
            &tar,
            &[
                ("manifest.json", None, manifest),
                ("c.json", Some(secret), b""),
            ],
        );
        let err = archive_plan(&tar).err().unwrap();
        assert!(err.contains("symbolic links"), "{err}");
        write_tar(
            &tar,
            &[
                ("manifest.json", None, manifest),
                ("c.json", None, b"{}"),
                ("l.tar", Some(secret), b""),
            ],
        );
        let err = archive_plan(&tar).err().unwrap();
        assert!(err.contains("symbolic links"), "{err}");
    }
}
