//! Pulls from a real registry (Debian's docker-registry, started per test on 127.0.0.1) of
//! images built here from busybox-static. Runs as root (extraction keeps ownership, whiteouts
//! are device nodes).

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use dcos_image::{Credentials, Error, Limits, Reason, Reference, Store};
use dcos_testkit::images;
use dcos_testkit::registry::Registry;

fn registry() -> Registry {
    Registry::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("docker-registry starts")
}

/// Limits whose gc removes what a pull returned at once.
fn no_grace() -> Limits {
    Limits {
        gc_grace: std::time::Duration::ZERO,
        ..Limits::default()
    }
}

fn reference(reg: &Registry, repo_tag: &str) -> Reference {
    Reference::parse(&format!("{}/{repo_tag}", reg.host())).unwrap()
}

/// The digest of the only layer of `repo`'s latest manifest in `reg`.
fn layout_digest_of(reg: &Registry, repo: &str) -> String {
    let tag = reg
        .storage_dir()
        .join("docker/registry/v2/repositories")
        .join(repo)
        .join("_manifests/tags/latest/current/link");
    let manifest = std::fs::read_to_string(tag).unwrap();
    let body: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reg.blob_data(&manifest)).unwrap()).unwrap();
    body["layers"][0]["digest"].as_str().unwrap().to_string()
}

/// The layer digests of the first image of an OCI layout.
fn layout_layers(dir: &Path) -> Vec<String> {
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let index = read(&dir.join("index.json"));
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest = read(&dir.join("blobs/sha256").join(&digest[7..]));
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

fn reason(result: Result<dcos_image::Image, Error>) -> (Reason, String) {
    let err = result.expect_err("the pull fails");
    let text = err.to_string();
    match err {
        Error::Image { reason, .. } => (reason, text),
        other => panic!("not an image error: {other}"),
    }
}

#[tokio::test]
async fn pulls_a_pushed_oci_image_with_layers_and_config() {
    let reg = registry();
    let digest = images::push_busybox(&reg, "busybox:latest").await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path(), vec![]).unwrap();
    let image = store
        .pull(&reference(&reg, "busybox"), None, false)
        .await
        .unwrap();
    assert_eq!(image.digest, digest);
    assert_eq!(image.layers.len(), 1);
    let layer = &image.layers[0];
    // Named by the full digest, with its completion marker beside it.
    let hex = &layout_digest_of(&reg, "busybox")[7..];
    assert_eq!(layer, &root.path().join("layers").join(hex));
    assert!(root.path().join(format!("layers/{hex}.done")).is_file());
    let busybox = std::fs::metadata(layer.join("bin/busybox")).unwrap();
    assert_eq!(busybox.permissions().mode() & 0o7777, 0o755);
    assert_eq!((busybox.uid(), busybox.gid()), (0, 0));
    assert_eq!(
        std::fs::read_link(layer.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let tmp = std::fs::metadata(layer.join("tmp")).unwrap();
    assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);
    assert!(layer.join("proc").is_dir() && layer.join("dev").is_dir());
    assert_eq!(image.config.cmd, vec!["sh"]);
    assert!(image.config.env.iter().any(|e| e.starts_with("PATH=")));
    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0].references,
        vec![format!("{}/busybox:latest", reg.host())]
    );
}

#[tokio::test]
async fn pushes_and_pulls_a_docker_save_archive() {
    let reg = registry();
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("image.tar");
    images::write_docker_archive(&tar, &images::whiteout_layers().unwrap(), &["httpd", "-f"])
        .unwrap();
    let target = reference(&reg, "team/archived:v1");
    let digest = dcos_image::push_docker_archive(&tar, &target, None, &[])
        .await
        .unwrap();
    // Pushing again skips the blobs the registry has and gives the same manifest.
    let again = dcos_image::push_docker_archive(&tar, &target, None, &[])
        .await
        .unwrap();
    assert_eq!(digest, again);
    let store = Store::open(dir.path().join("store").as_path(), vec![]).unwrap();
    let image = store.pull(&target, None, false).await.unwrap();
    assert_eq!(image.digest, digest);
    assert_eq!(image.layers.len(), 2);
    assert_eq!(image.config.cmd, vec!["httpd", "-f"]);
}

#[tokio::test]
async fn whiteouts_become_overlay_whiteouts() {
    let reg = registry();
    images::push_whiteout(&reg, "whiteout:latest")
        .await
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path(), vec![]).unwrap();
    let image = store
        .pull(&reference(&reg, "whiteout"), None, false)
        .await
        .unwrap();
    let [bottom, top] = &image.layers[..] else {
        panic!("two layers: {:?}", image.layers)
    };
    assert_eq!(
        std::fs::read(bottom.join("etc/hidden")).unwrap(),
        b"secret\n"
    );
    let whiteout = std::fs::symlink_metadata(top.join("etc/hidden")).unwrap();
    assert!(whiteout.file_type().is_char_device());
    assert_eq!(whiteout.rdev(), 0);
    assert!(!top.join("etc/.wh.hidden").exists());
    let opaque = xattr::get(top.join("data"), "trusted.overlay.opaque").unwrap();
    assert_eq!(opaque.as_deref(), Some(&b"y"[..]));
    assert!(!top.join("data/.wh..wh..opq").exists());
    assert_eq!(std::fs::read(top.join("data/new")).unwrap(), b"new\n");
}

/// A registry holding busybox as `busybox:latest`, and the digest of its one layer.
async fn pushed_busybox() -> (Registry, String) {
    let reg = registry();
    let layout = tempfile::tempdir().unwrap();
    images::busybox_layout(layout.path()).unwrap();
    images::push_layout(layout.path(), &reg, "busybox:latest")
        .await
        .unwrap();
    let layer = layout_layers(layout.path()).remove(0);
    (reg, layer)
}

#[tokio::test]
async fn a_corrupt_blob_fails_with_the_digest_error_and_leaves_nothing() {
    let (reg, layer) = pushed_busybox().await;
    let data = reg.blob_data(&layer);
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();

    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path(), vec![]).unwrap();
    let (reason, text) = reason(store.pull(&reference(&reg, "busybox"), None, false).await);
    assert!(
        matches!(&reason, Reason::DigestMismatch(d) if *d == layer),
        "{text}"
    );
    assert_eq!(
        text,
        format!(
            "Failed to pull image '{}/busybox:latest': blob {layer} does not match its digest",
            reg.host()
        )
    );
    assert_eq!(
        std::fs::read_dir(root.path().join("tmp")).unwrap().count(),
        0
    );
    assert!(!root.path().join("blobs/sha256").join(&layer[7..]).exists());
    assert_eq!(
        std::fs::read_dir(root.path().join("layers"))
            .unwrap()
            .count(),
        0
    );
    assert!(store.list().unwrap().is_empty());
}

#[tokio::test]
async fn an_unknown_image_fails_with_manifest_unknown() {
    let reg = registry();
    let store = Store::open(tempfile::tempdir().unwrap().path(), vec![]).unwrap();
    let (reason, text) = reason(store.pull(&reference(&reg, "nope"), None, false).await);
    assert!(matches!(reason, Reason::ManifestUnknown));
    assert_eq!(
        text,
        format!(
            "Failed to pull image '{}/nope:latest': manifest unknown (404)",
            reg.host()
        )
    );
}

#[tokio::test]
async fn a_registry_that_is_down_is_unreachable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), vec![]).unwrap();
    let r = Reference::parse(&format!("127.0.0.1:{port}/busybox")).unwrap();
    let (reason, text) = reason(store.pull(&r, None, false).await);
    assert!(matches!(reason, Reason::Unreachable { .. }), "{text}");
    assert!(
        text.ends_with(&format!(
            "registry 127.0.0.1:{port} is unreachable: connection refused"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn concurrent_pulls_share_one_download_and_force_pulls_again() {
    let reg = registry();
    images::push_busybox(&reg, "busybox:latest").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), vec![]).unwrap();
    let r = reference(&reg, "busybox");
    let pulls = (0..4).map(|_| {
        let (store, r) = (store.clone(), r.clone());
        tokio::spawn(async move { store.pull(&r, None, false).await })
    });
    let images: Vec<_> = futures::future::join_all(pulls).await;
    let first = images[0].as_ref().unwrap().as_ref().unwrap().clone();
    for i in &images {
        assert_eq!(i.as_ref().unwrap().as_ref().unwrap(), &first);
    }
    let s = store.stats();
    assert_eq!(
        (s.manifests, s.blobs),
        (1, 2),
        "one manifest, one config, one layer"
    );

    // Cached: no registry traffic. Forced: the manifest again, no blobs (unchanged image).
    store.pull(&r, None, false).await.unwrap();
    assert_eq!(store.stats().manifests, 1);
    store.pull(&r, None, true).await.unwrap();
    assert_eq!(store.stats().manifests, 2);
    assert_eq!(store.stats().blobs, 2);

    // The tag moves: a cached pull keeps the old image, a forced one gets the new.
    let new = images::push_whiteout(&reg, "busybox:latest").await.unwrap();
    assert_eq!(
        store.pull(&r, None, false).await.unwrap().digest,
        first.digest
    );
    assert_eq!(store.pull(&r, None, true).await.unwrap().digest, new);
}

#[tokio::test]
async fn hold_release_and_gc() {
    let reg = registry();
    let old = images::push_busybox(&reg, "app:v1").await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path(), vec![]).unwrap();
    let r = reference(&reg, "app:v1");
    let old_image = store.pull(&r, None, false).await.unwrap();
    store.hold(&old, "container-1").unwrap();
    let unknown = format!("sha256:{}", "0".repeat(64));
    assert!(matches!(
        store.hold(&unknown, "c2"),
        Err(Error::UnknownImage(_))
    ));

    let new = images::push_whiteout(&reg, "app:v1").await.unwrap();
    let new_image = store.pull(&r, None, true).await.unwrap();
    assert_eq!(new_image.digest, new);

    // Held (also after a restart): kept although no tag points at it any more.
    let reopened = Store::open(root.path(), vec![]).unwrap();
    assert!(reopened.gc().unwrap().images.is_empty());
    assert!(old_image.layers[0].is_dir());

    let stale = root
        .path()
        .join("tmp")
        .join(format!("{}.partial", "d".repeat(64)));
    std::fs::write(&stale, b"broken off").unwrap();
    reopened.release("container-1").unwrap();
    reopened.release("never-held").unwrap();
    // Pulled moments ago: kept for the grace a caller of pull has to hold the image.
    assert!(reopened.gc().unwrap().images.is_empty());
    let reopened = Store::open_with(root.path(), vec![], no_grace()).unwrap();
    let report = reopened.gc().unwrap();
    assert_eq!(report.images, vec![old.clone()]);
    assert_eq!(report.layers, 1);
    assert!(!old_image.layers[0].exists());
    assert!(!stale.exists());
    assert!(new_image.layers.iter().all(|l| l.is_dir()));
    let list = reopened.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].digest, new);
    assert_eq!(reopened.gc().unwrap(), Default::default());
}

#[tokio::test]
async fn a_partial_blob_is_resumed_and_a_bad_one_discarded() {
    let (reg, layer) = pushed_busybox().await;
    let blob = std::fs::read(reg.blob_data(&layer)).unwrap();
    let root = tempfile::tempdir().unwrap();
    let partial = root
        .path()
        .join("tmp")
        .join(format!("{}.partial", &layer[7..]));
    let r = reference(&reg, "busybox");

    // A prefix that is not the blob's: the pull fails on the digest and drops it.
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, vec![0u8; blob.len() / 2]).unwrap();
    let store = Store::open(root.path(), vec![]).unwrap();
    let (reason, _) = reason(store.pull(&r, None, false).await);
    assert!(matches!(reason, Reason::DigestMismatch(_)));
    assert!(!partial.exists());

    // The blob's true first half: the rest is fetched with a Range request.
    std::fs::write(&partial, &blob[..blob.len() / 2]).unwrap();
    let image = store.pull(&r, None, false).await.unwrap();
    assert!(image.layers[0].join("bin/busybox").is_file());
    assert!(!partial.exists());
    let log = std::fs::read_to_string(reg.log_path()).unwrap();
    assert!(
        log.contains("\" 206 "),
        "no partial response in the registry's log"
    );
}

#[tokio::test]
async fn basic_auth_wants_the_right_credentials() {
    let reg = Registry::start_with_auth(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), "u", "pw")
        .expect("docker-registry starts");
    let good = Credentials {
        username: "u".into(),
        password: "pw".into(),
    };
    let bad = Credentials {
        username: "u".into(),
        password: "nope".into(),
    };
    let dir = tempfile::tempdir().unwrap();
    images::busybox_layout(dir.path()).unwrap();
    let r = reference(&reg, "private:latest");
    let digest = dcos_image::push_oci_layout(dir.path(), &r, Some(&good), &[])
        .await
        .unwrap();
    let store = Store::open(dir.path().join("store").as_path(), vec![]).unwrap();
    for creds in [None, Some(&bad)] {
        let (reason, text) = reason(store.pull(&r, creds, false).await);
        assert!(matches!(reason, Reason::Unauthorized(401)), "{text}");
        assert!(
            text.ends_with("unauthorized (401): check the registry credentials"),
            "{text}"
        );
    }
    assert_eq!(
        store.pull(&r, Some(&good), false).await.unwrap().digest,
        digest
    );
}

#[tokio::test]
async fn a_layer_without_its_marker_is_extracted_again() {
    let reg = registry();
    images::push_busybox(&reg, "busybox:latest").await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path(), vec![]).unwrap();
    let r = reference(&reg, "busybox");
    let layer = store.pull(&r, None, false).await.unwrap().layers.remove(0);
    // What a crash mid-extraction leaves: a directory, no marker.
    let marker = layer.with_extension("done");
    std::fs::remove_file(&marker).unwrap();
    std::fs::remove_file(layer.join("bin/busybox")).unwrap();
    let again = store.pull(&r, None, false).await.unwrap();
    assert_eq!(again.layers[0], layer);
    assert!(layer.join("bin/busybox").is_file() && marker.is_file());
    assert_eq!(store.stats().blobs, 3, "config, layer, and the layer again");
}
