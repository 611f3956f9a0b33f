//! `ContainerInfo`s that frameworks build for the agents' Mesos containerizer: one place for
//! the shape Marathon's `MESOS` containers and Metronome's `docker` jobs both give a task
//! that runs in a Docker image.

use serde_json::{json, Value};

/// A host path mounted into a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostVolume<'a> {
    /// Where the task sees it (absolute, or relative to the sandbox).
    pub container_path: &'a str,
    /// The agent's path.
    pub host_path: &'a str,
    /// Mounted read-only (`RO`) rather than read-write (`RW`).
    pub read_only: bool,
}

/// Registry credentials for pulling an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credential<'a> {
    /// The user.
    pub principal: &'a str,
    /// The password.
    pub secret: &'a str,
}

/// The `ContainerInfo` of a task run in `image` by the Mesos containerizer (type `MESOS`, a
/// `DOCKER` image, cached unless `force_pull`), with `volumes` mounted as given.
pub fn mesos_image(
    image: &str,
    force_pull: bool,
    credential: Option<Credential<'_>>,
    volumes: &[HostVolume<'_>],
) -> Value {
    let mut docker = json!({"name": image});
    if let Some(c) = credential {
        docker["credential"] = json!({"principal": c.principal, "secret": c.secret});
    }
    let volumes: Vec<Value> = volumes
        .iter()
        .map(|v| {
            json!({
                "container_path": v.container_path,
                "host_path": v.host_path,
                "mode": if v.read_only { "RO" } else { "RW" },
            })
        })
        .collect();
    json!({
        "type": "MESOS",
        "volumes": volumes,
        "mesos": {"image": {"type": "DOCKER", "docker": docker, "cached": !force_pull}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_container_names_its_image_and_volumes() {
        let v = [HostVolume {
            container_path: "/data",
            host_path: "/srv",
            read_only: true,
        }];
        let info = mesos_image("busybox:latest", true, None, &v);
        assert_eq!(
            info,
            json!({"type": "MESOS",
                "volumes": [{"container_path": "/data", "host_path": "/srv", "mode": "RO"}],
                "mesos": {"image": {"type": "DOCKER", "docker": {"name": "busybox:latest"}, "cached": false}}})
        );
    }
}
