//! The node runtime: config, units, the supervisor, the pkgpanda API, the installer and
//! the local cluster.
//!
//! - [`config`]: `node.yaml`, in DC/OS `config.yaml` vocabulary.
//! - [`units`]: the units of each role, in start order, and `dcos unit run`.
//! - [`supervisor`]: `dcos node run`, which starts, restarts and stops a role's units.
//! - [`status`], [`pkgpanda`]: the node's unit status and the Unix-socket API serving it.
//! - [`health`]: what dcos-diagnostics reports of the node's units.
//! - [`install`]: systemd unit files and the port-reservation sysctl for a role.
//! - [`cluster`]: the local cluster (`dcos cluster up`), each node in a network namespace.
#![warn(missing_docs)]

pub mod cluster;
pub mod config;
pub mod health;
pub mod install;
pub mod pkgpanda;
pub mod status;
pub mod supervisor;
pub mod units;
