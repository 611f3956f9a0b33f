//! Manifests, manifest lists and image configs (Docker schema 2 and OCI) as far as the runtime
//! needs them.

use serde::{Deserialize, Serialize};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The `Accept` header of a manifest request: a registry serves an OCI manifest only to a
/// client that says it takes one.
pub fn accept_header() -> String {
    [DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX].join(", ")
}

/// A blob reference inside a manifest or index.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
}

/// A manifest or a list/index: both are parsed as this, told apart by their media type or by
/// which of `layers`/`manifests` they have.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnyManifest {
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Option<Descriptor>,
    pub layers: Option<Vec<Descriptor>>,
    pub manifests: Option<Vec<Descriptor>>,
}

impl AnyManifest {
    pub fn is_index(&self, content_type: &str) -> bool {
        let mt = self.media_type.as_deref().unwrap_or(content_type);
        mt == DOCKER_LIST || mt == OCI_INDEX || (self.layers.is_none() && self.manifests.is_some())
    }

    /// The linux/amd64 entry of a list or index (what this agent runs).
    pub fn pick_linux_amd64(&self) -> Option<&Descriptor> {
        self.manifests.as_ref()?.iter().find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
        })
    }
}

/// The image config blob; only `config` matters to the runtime.
#[derive(Debug, Default, Deserialize)]
pub struct ConfigBlob {
    #[serde(default)]
    pub config: Option<RawConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawConfig {
    env: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
}

/// What an image says about running it (the `config` of its config blob).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// `NAME=value` entries.
    pub env: Vec<String>,
    /// Empty when the image has none.
    pub entrypoint: Vec<String>,
    /// Empty when the image has none.
    pub cmd: Vec<String>,
    /// `None` when empty: the runtime then uses `/`.
    pub working_dir: Option<String>,
    /// `user[:group]` as names or ids; `None` when empty.
    pub user: Option<String>,
}

impl ImageConfig {
    pub(crate) fn from_blob(bytes: &[u8]) -> Result<ImageConfig, serde_json::Error> {
        let raw = serde_json::from_slice::<ConfigBlob>(bytes)?
            .config
            .unwrap_or_default();
        let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
        Ok(ImageConfig {
            env: raw.env.unwrap_or_default(),
            entrypoint: raw.entrypoint.unwrap_or_default(),
            cmd: raw.cmd.unwrap_or_default(),
            working_dir: non_empty(raw.working_dir),
            user: non_empty(raw.user),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_fields_and_nulls() {
        let c = ImageConfig::from_blob(
            br#"{"architecture":"amd64","config":{"Env":["PATH=/bin"],"Entrypoint":null,
                "Cmd":["sh"],"WorkingDir":"","User":"nobody"}}"#,
        )
        .unwrap();
        assert_eq!(c.env, vec!["PATH=/bin"]);
        assert!(c.entrypoint.is_empty());
        assert_eq!(c.cmd, vec!["sh"]);
        assert_eq!(c.working_dir, None);
        assert_eq!(c.user.as_deref(), Some("nobody"));
        assert_eq!(
            ImageConfig::from_blob(b"{}").unwrap(),
            ImageConfig::default()
        );
    }

    #[test]
    fn index_picks_linux_amd64() {
        let m: AnyManifest = serde_json::from_str(
            r#"{"schemaVersion":2,"manifests":[
              {"digest":"sha256:1","size":1,"platform":{"os":"linux","architecture":"arm64"}},
              {"digest":"sha256:2","size":1,"platform":{"os":"linux","architecture":"amd64"}}]}"#,
        )
        .unwrap();
        assert!(m.is_index(""));
        assert_eq!(m.pick_linux_amd64().unwrap().digest, "sha256:2");
    }
}
