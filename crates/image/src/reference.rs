//! Image references as Docker spells them.

use crate::{digest_hex, Error};

/// Where Docker Hub's Registry API lives; `docker.io` is its name in references.
pub const DOCKER_HUB: &str = "registry-1.docker.io";

/// An image: registry host, repository, and a tag and/or digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `host[:port]`; Docker Hub is [`DOCKER_HUB`].
    pub registry: String,
    /// Path components, e.g. `library/busybox`.
    pub repository: String,
    /// `latest` when neither tag nor digest is given.
    pub tag: Option<String>,
    /// `sha256:<hex>`: the manifest (or manifest list) to pull.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses `[registry/]repository[:tag][@digest]`. The first component is a registry when it
    /// holds a `.` or `:` or is `localhost` and more components follow; Docker Hub's official
    /// images get `library/`. Repository, tag and digest become file names in the store, so
    /// only Docker's grammar passes (no `..`, no empty components, no upper case).
    pub fn parse(s: &str) -> Result<Reference, Error> {
        let bad = |reason: &str| Error::InvalidReference {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (name, digest) = match s.split_once('@') {
            Some((name, d)) => {
                digest_hex(d).ok_or_else(|| bad("the digest is not sha256:<64 hex digits>"))?;
                (name, Some(d.to_string()))
            }
            None => (s, None),
        };
        let (registry, rest) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first, rest)
            }
            _ => ("docker.io", name),
        };
        check_registry(registry).map_err(bad)?;
        // A ':' after the registry part separates the tag.
        let (repository, tag) = match rest.rsplit_once(':') {
            Some((repo, tag)) => {
                check_tag(tag).map_err(bad)?;
                (repo, Some(tag.to_string()))
            }
            None => (rest, None),
        };
        check_repository(repository).map_err(bad)?;
        let hub = matches!(registry, "docker.io" | "index.docker.io" | DOCKER_HUB);
        let repository = if hub && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_string()
        };
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(Reference {
            registry: if hub {
                DOCKER_HUB.into()
            } else {
                registry.into()
            },
            repository,
            tag,
            digest,
        })
    }

    /// What to ask the registry's manifests endpoint for: the digest when there is one.
    pub(crate) fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Reference::parse(s)
    }
}

fn check_registry(host: &str) -> Result<(), &'static str> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !name.starts_with(['.', '-']);
    if !name_ok {
        return Err("the registry is not a host name");
    }
    match port {
        Some(p) if p.parse::<u16>().is_err() => Err("the registry port is not a number"),
        _ => Ok(()),
    }
}

fn check_repository(repo: &str) -> Result<(), &'static str> {
    if repo.is_empty() || repo.len() > 255 {
        return Err("the repository name is empty or longer than 255 characters");
    }
    // Each component: lower-case alphanumerics, separated by '.', '_', '__' or dashes; never
    // starting or ending with a separator (so never '.' or '..').
    let component_ok = |c: &str| {
        let bytes = c.as_bytes();
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        !bytes.is_empty()
            && alnum(bytes[0])
            && alnum(bytes[bytes.len() - 1])
            && bytes
                .iter()
                .all(|&b| alnum(b) || matches!(b, b'.' | b'_' | b'-'))
            && !c.contains("..")
    };
    if repo.split('/').all(component_ok) {
        Ok(())
    } else {
        Err("repository components are lower-case letters, digits and separators (. _ -)")
    }
}

fn check_tag(tag: &str) -> Result<(), &'static str> {
    let bytes = tag.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err("a tag is up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn docker_hub_names() {
        let r = p("busybox");
        assert_eq!(r.registry, DOCKER_HUB);
        assert_eq!(r.repository, "library/busybox");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.digest, None);
        assert_eq!(p("docker.io/foo/bar:1.0").repository, "foo/bar");
        assert_eq!(p("foo/bar:1.0").tag.as_deref(), Some("1.0"));
        assert_eq!(p("foo/bar").registry, DOCKER_HUB);
    }

    #[test]
    fn registries_ports_and_digests() {
        let r = p("127.0.0.1:5000/team/app:v2");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("v2"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = p(&format!("localhost/app@{d}"));
        assert_eq!(r.registry, "localhost");
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.to_string(), format!("localhost/app@{d}"));
        assert_eq!(p("localhost:5000/a:b").manifest_ref(), "b");
        assert_eq!(p("Host.example.com/a").registry, "Host.example.com");
    }

    #[test]
    fn rejects_path_tricks_and_bad_syntax() {
        for s in [
            "",
            "../etc",
            "a/../b",
            "a//b",
            "UPPER",
            "a:",
            "a:.x",
            "a:b/c",
            "a@sha256:xyz",
            "host:port/a",
            "a/./b",
            "a/.b",
            "a b",
            "localhost/a:../../x",
        ] {
            assert!(Reference::parse(s).is_err(), "{s:?} parsed");
        }
    }
}
