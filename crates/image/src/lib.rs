//! Container images for the Universal Container Runtime: the agent pulls Docker and OCI images
//! itself, with no Docker daemon.
//!
//! - [`Reference`]: an image name as Docker spells it (`busybox`, `host:port/repo:tag`,
//!   `repo@sha256:...`).
//! - [`Store`]: pulls over the Registry HTTP API v2 (token and basic auth, Docker schema 2 and
//!   OCI manifests, manifest lists, blobs verified by digest, resumed and fetched concurrently),
//!   keeps blobs and extracted layers content-addressed under one root, counts which
//!   containers hold which image and collects the rest.
//! - [`push_oci_layout`] and [`push_docker_archive`]: `dcos image push` and the tests' images.
//!
//! Layers are extracted for overlayfs: Docker/OCI whiteouts become overlay whiteouts (0:0
//! character devices) and opaque directories get `trusted.overlay.opaque=y`; extraction runs as
//! root so ownership and modes survive.

mod error;
mod extract;
mod manifest;
mod push;
mod reference;
mod registry;
mod store;

pub use error::{Error, Reason};
pub use manifest::ImageConfig;
pub use push::{push, push_docker_archive, push_oci_layout};
pub use reference::Reference;
pub use store::{GcReport, Image, ImageSummary, Limits, Stats, Store};

/// Registry credentials (basic auth, also sent to a token service).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or access token.
    pub password: String,
}

/// Redacts the password: credentials end up in logged task and pull errors' debug output.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The sha256 digest of `bytes` as `sha256:<hex>`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

/// The hex part of a `sha256:<hex>` digest, when it is one (64 lowercase hex digits): digests
/// become file names, so nothing else passes.
pub(crate) fn digest_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    let ok = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then_some(hex)
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_debug_hides_the_password() {
        let c = super::Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{c:?} {:?}", Some(&c));
        assert!(
            shown.contains("\"u\"") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
