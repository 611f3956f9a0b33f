//! Test images built on this machine, never downloaded: busybox from Debian's `busybox-static`
//! (`/bin/busybox` plus applet symlinks, the mount points a container runtime needs and an
//! `/etc/passwd` with root and nobody), and an image whose second layer deletes a file and
//! makes a directory opaque. Written as OCI image layouts or `docker save` archives, or pushed
//! straight to a registry.

use std::io::Write;
use std::path::Path;

use sha2::Digest;

use crate::registry::Registry;

/// Where Debian's `busybox-static` puts its binary.
pub const BUSYBOX_BIN: &str = "/bin/busybox";

/// The applets the busybox image links in `/bin` (httpd and friends for apps' tests).
pub const APPLETS: &[&str] = &[
    "sh", "ash", "httpd", "sleep", "cat", "id", "ls", "echo", "env", "ps", "kill", "true", "false",
    "wget", "nc", "mkdir", "rm", "touch", "test", "grep", "hostname", "whoami", "pwd", "uname",
    "printenv", "stat", "head", "tail", "wc", "cp", "mv", "ln", "chmod", "date", "mount", "df",
    "free", "seq", "yes", "dd",
];

/// `PATH` of the images' configs.
const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One entry of a test layer.
pub enum Item {
    /// A directory with its mode.
    Dir(String, u32),
    /// A file with its mode and content.
    File(String, u32, Vec<u8>),
    /// A symlink (name, target).
    Symlink(String, String),
}

/// An uncompressed tar of `items`, owned by root, in GNU format (which GNU tar reads back).
pub fn tar_of(items: &[Item]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for item in items {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        match item {
            Item::Dir(path, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                b.append_data(&mut h, path.as_str(), std::io::empty())?;
            }
            Item::File(path, mode, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path.as_str(), data.as_slice())?;
            }
            Item::Symlink(path, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, path.as_str(), target.as_str())?;
            }
        }
    }
    b.into_inner()
}

/// The busybox root filesystem's items.
pub fn busybox_items() -> std::io::Result<Vec<Item>> {
    let busybox = fs_err::read(BUSYBOX_BIN)?;
    let mut items = vec![];
    for dir in [
        "bin", "dev", "etc", "proc", "sys", "usr", "usr/bin", "var", "var/www",
    ] {
        items.push(Item::Dir(dir.into(), 0o755));
    }
    items.push(Item::Dir("tmp".into(), 0o1777));
    items.push(Item::Dir("root".into(), 0o700));
    items.push(Item::File("bin/busybox".into(), 0o755, busybox));
    for applet in APPLETS {
        items.push(Item::Symlink(format!("bin/{applet}"), "busybox".into()));
    }
    let passwd =
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    items.push(Item::File("etc/passwd".into(), 0o644, passwd.into()));
    items.push(Item::File(
        "etc/group".into(),
        0o644,
        b"root:x:0:\nnogroup:x:65534:\n".to_vec(),
    ));
    Ok(items)
}

/// The busybox image's one layer, as a tar.
pub fn busybox_layers() -> std::io::Result<Vec<Vec<u8>>> {
    Ok(vec![tar_of(&busybox_items()?)?])
}

/// Where Debian's Python lives; the python image carries it (with the libraries it and its
/// extension modules load) on top of busybox.
const PYTHON: &str = "/usr/bin/python3.11";
const PYTHON_LIB: &str = "/usr/lib/python3.11";
/// Parts of the standard library no test app imports (and caches Python rebuilds).
const PYTHON_SKIP: &[&str] = &[
    "__pycache__",
    "test",
    "idlelib",
    "tkinter",
    "ensurepip",
    "lib2to3",
    "pydoc_data",
    "turtledemo",
    "site-packages",
    "dist-packages",
];

/// The shared libraries `binary` loads, as `ldd` names them (absolute paths).
fn shared_libraries(binary: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let out = std::process::Command::new("ldd").arg(binary).output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| path.into())
        })
        .collect())
}

/// `path` (a file, followed through links) as an item at the same place in the image,
/// after each parent directory not yet in `dirs`.
fn copied(
    path: &Path,
    items: &mut Vec<Item>,
    dirs: &mut std::collections::BTreeSet<String>,
) -> std::io::Result<()> {
    let name = path.to_string_lossy().trim_start_matches('/').to_string();
    let parents: Vec<String> = Path::new(&name)
        .ancestors()
        .skip(1)
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    for dir in parents.into_iter().rev() {
        if dirs.insert(dir.clone()) {
            items.push(Item::Dir(dir, 0o755));
        }
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(&fs_err::metadata(path)?.permissions());
    items.push(Item::File(name, mode & 0o7777, fs_err::read(path)?));
    Ok(())
}

/// The python image's second layer: Debian's Python 3.11 (as `/usr/bin/python3`), its
/// standard library without tests and caches, and the shared libraries the interpreter and
/// its extension modules load (and the dynamic loader).
pub fn python_items() -> std::io::Result<Vec<Item>> {
    let mut dirs: std::collections::BTreeSet<String> = ["bin", "usr", "usr/bin"]
        .iter()
        .map(|d| d.to_string())
        .collect();
    let mut items = Vec::new();
    let mut binaries = vec![std::path::PathBuf::from(PYTHON)];
    let mut stack = vec![std::path::PathBuf::from(PYTHON_LIB)];
    while let Some(dir) = stack.pop() {
        for entry in fs_err::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if PYTHON_SKIP.contains(&name.as_str()) {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                if name.ends_with(".so") {
                    binaries.push(path.clone());
                }
                copied(&path, &mut items, &mut dirs)?;
            }
        }
    }
    let mut libraries = std::collections::BTreeSet::new();
    for binary in &binaries {
        libraries.extend(shared_libraries(binary)?);
    }
    copied(Path::new(PYTHON), &mut items, &mut dirs)?;
    for library in libraries {
        copied(&library, &mut items, &mut dirs)?;
    }
    items.push(Item::Symlink("usr/bin/python3".into(), "python3.11".into()));
    Ok(items)
}

/// Busybox in layer 1, Python in layer 2 (see [`python_items`]).
pub fn python_layers() -> std::io::Result<Vec<Vec<u8>>> {
    Ok(vec![tar_of(&busybox_items()?)?, tar_of(&python_items()?)?])
}

/// Busybox plus `/etc/hidden` and `/data/old` in layer 1; layer 2 deletes `/etc/hidden`
/// (`etc/.wh.hidden`), makes `/data` opaque (`data/.wh..wh..opq`) and adds `/data/new`.
pub fn whiteout_layers() -> std::io::Result<Vec<Vec<u8>>> {
    let mut first = busybox_items()?;
    first.push(Item::File("etc/hidden".into(), 0o644, b"secret\n".to_vec()));
    first.push(Item::Dir("data".into(), 0o755));
    first.push(Item::File("data/old".into(), 0o644, b"old\n".to_vec()));
    let second = [
        Item::Dir("etc".into(), 0o755),
        Item::File("etc/.wh.hidden".into(), 0o644, vec![]),
        Item::Dir("data".into(), 0o755),
        Item::File("data/.wh..wh..opq".into(), 0o644, vec![]),
        Item::File("data/new".into(), 0o644, b"new\n".to_vec()),
    ];
    Ok(vec![tar_of(&first)?, tar_of(&second)?])
}

fn sha256(bytes: &[u8]) -> (String, String) {
    let hex = format!("{:x}", sha2::Sha256::digest(bytes));
    (format!("sha256:{hex}"), hex)
}

/// The image config JSON for `diff_ids` with `Cmd` `cmd`.
fn config_json(diff_ids: &[String], cmd: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": [PATH], "Cmd": cmd },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .expect("json")
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes)?;
    enc.finish()
}

/// Writes an OCI image layout of `layers` (tars, gzipped here) in `dir`, tagged `latest`;
/// returns the manifest digest.
pub fn write_oci_layout(dir: &Path, layers: &[Vec<u8>], cmd: &[&str]) -> std::io::Result<String> {
    let blobs = dir.join("blobs/sha256");
    fs_err::create_dir_all(&blobs)?;
    let put = |bytes: &[u8]| -> std::io::Result<serde_json::Value> {
        let (digest, hex) = sha256(bytes);
        fs_err::write(blobs.join(hex), bytes)?;
        Ok(serde_json::json!({ "digest": digest, "size": bytes.len() }))
    };
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in layers {
        diff_ids.push(sha256(layer).0);
        let mut d = put(&gzip(layer)?)?;
        d["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip".into();
        descriptors.push(d);
    }
    let mut config = put(&config_json(&diff_ids, cmd))?;
    config["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": descriptors,
    }))
    .expect("json");
    let mut entry = put(&manifest)?;
    entry["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
    entry["annotations"] = serde_json::json!({ "org.opencontainers.image.ref.name": "latest" });
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [entry] });
    fs_err::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )?;
    fs_err::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(sha256(&manifest).0)
}

/// Writes a `docker save`-style archive of `layers` (uncompressed, as Docker writes them) at
/// `path`.
pub fn write_docker_archive(path: &Path, layers: &[Vec<u8>], cmd: &[&str]) -> std::io::Result<()> {
    let mut b = tar::Builder::new(fs_err::File::create(path)?);
    let mut add = |name: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(bytes.len() as u64);
        b.append_data(&mut h, name, bytes)
    };
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l).0).collect();
    let config = config_json(&diff_ids, cmd);
    let config_name = format!("{}.json", sha256(&config).1);
    add(&config_name, &config)?;
    let mut names = Vec::new();
    for (layer, id) in layers.iter().zip(&diff_ids) {
        let name = format!("{}/layer.tar", id.trim_start_matches("sha256:"));
        add(&name, layer)?;
        names.push(name);
    }
    let manifest = serde_json::json!([{
        "Config": config_name, "RepoTags": ["test:latest"], "Layers": names,
    }]);
    add(
        "manifest.json",
        &serde_json::to_vec(&manifest).expect("json"),
    )?;
    b.into_inner()?.sync_all()
}

/// Writes the busybox image (`Cmd: ["sh"]`) as an OCI layout in `dir`; returns its digest.
pub fn busybox_layout(dir: &Path) -> std::io::Result<String> {
    write_oci_layout(dir, &busybox_layers()?, &["sh"])
}

/// Writes the whiteout image as an OCI layout in `dir`; returns its digest.
pub fn whiteout_layout(dir: &Path) -> std::io::Result<String> {
    write_oci_layout(dir, &whiteout_layers()?, &["sh"])
}

/// Pushes an OCI layout to `registry` as `repo_tag` (e.g. `busybox:latest`) with
/// dcos-image's push; returns the manifest digest.
pub async fn push_layout(
    layout: &Path,
    registry: &Registry,
    repo_tag: &str,
) -> Result<String, String> {
    let target = dcos_image::Reference::parse(&format!("{}/{repo_tag}", registry.host()))
        .map_err(|e| e.to_string())?;
    dcos_image::push_oci_layout(layout, &target, None, &[])
        .await
        .map_err(|e| e.to_string())
}

/// Builds the busybox image and pushes it to `registry` as `repo_tag`; returns its digest.
pub async fn push_busybox(registry: &Registry, repo_tag: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    busybox_layout(dir.path()).map_err(|e| e.to_string())?;
    push_layout(dir.path(), registry, repo_tag).await
}

/// Builds the python image and pushes it to `registry` as `repo_tag`; returns its digest.
pub async fn push_python(registry: &Registry, repo_tag: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    write_oci_layout(
        dir.path(),
        &python_layers().map_err(|e| e.to_string())?,
        &["python3"],
    )
    .map_err(|e| e.to_string())?;
    push_layout(dir.path(), registry, repo_tag).await
}

/// Builds the whiteout image and pushes it to `registry` as `repo_tag`; returns its digest.
pub async fn push_whiteout(registry: &Registry, repo_tag: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    whiteout_layout(dir.path()).map_err(|e| e.to_string())?;
    push_layout(dir.path(), registry, repo_tag).await
}
