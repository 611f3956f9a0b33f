//! Node paths, with ZooKeeper's rules: absolute, `/`-separated, no empty, `.` or `..`
//! segments, no trailing slash except the root, no control characters.

use crate::{CreateMode, Error, Result};

/// Checks that `path` is a valid node path.
pub fn validate(path: &str) -> Result<()> {
    check(path).map_err(|why| invalid(path, why))
}

/// Checks the path given to `create`: a sequential node's path is the name prefix, which may
/// be empty (`/dir/` yields `/dir/0000000000`), as in ZooKeeper.
pub(crate) fn validate_create(path: &str, mode: CreateMode) -> Result<()> {
    let why = if mode.is_sequential() {
        check(&format!("{path}0000000000"))
    } else {
        check(path)
    };
    why.map_err(|why| invalid(path, why))
}

fn check(path: &str) -> Result<(), &'static str> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("must start with /");
    };
    if rest.is_empty() {
        return Ok(());
    }
    if rest.ends_with('/') {
        return Err("must not end with /");
    }
    for segment in rest.split('/') {
        match segment {
            "" => return Err("has an empty segment (//)"),
            "." | ".." => return Err("has a relative segment (. or ..)"),
            _ if segment.chars().any(char::is_control) => {
                return Err("contains a control character")
            }
            _ => {}
        }
    }
    Ok(())
}

fn invalid(path: &str, why: &'static str) -> Error {
    Error::InvalidPath {
        path: path.to_owned(),
        why,
    }
}

/// The parent of a valid path; `None` for the root.
pub fn parent(path: &str) -> Option<&str> {
    match path.rfind('/')? {
        0 if path.len() == 1 => None,
        0 => Some("/"),
        i => Some(&path[..i]),
    }
}

/// The last segment of a valid path (empty for the root).
pub fn name(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

/// `parent/name`, without doubling the root's slash.
pub fn join(parent: &str, name: &str) -> String {
    match parent {
        "/" => format!("/{name}"),
        _ => format!("{parent}/{name}"),
    }
}

/// The ancestors of a valid path below the root, outermost first: `/a/b/c` -> `/a`, `/a/b`.
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .filter(|(i, _)| *i > 0)
        .map(|(i, _)| &path[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_zookeeper_paths() {
        for path in [
            "/",
            "/mesos",
            "/mesos/registry/agents/a-1",
            "/mesos/json.info_0000000003",
        ] {
            assert!(validate(path).is_ok(), "{path}");
        }
    }

    #[test]
    fn rejects_bad_paths_saying_why() {
        for (path, why) in [
            ("", "must start with /"),
            ("mesos", "must start with /"),
            ("/mesos/", "must not end with /"),
            ("/mesos//agents", "has an empty segment (//)"),
            ("/mesos/../etc", "has a relative segment (. or ..)"),
            ("/mesos/a\0b", "contains a control character"),
        ] {
            let err = validate(path).expect_err(path);
            assert!(
                matches!(&err, Error::InvalidPath { why: w, .. } if *w == why),
                "{err}"
            );
            assert!(err.to_string().contains(&format!("{path:?}")), "{err}");
        }
    }

    #[test]
    fn sequential_prefix_may_end_with_slash() {
        assert!(validate_create("/dir/", CreateMode::PersistentSequential).is_ok());
        assert!(validate_create("/dir/", CreateMode::Persistent).is_err());
    }

    #[test]
    fn parent_join_and_ancestors() {
        assert_eq!(parent("/"), None);
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(name("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(ancestors("/a/b/c").collect::<Vec<_>>(), ["/a", "/a/b"]);
        assert_eq!(ancestors("/a").count(), 0);
    }
}
