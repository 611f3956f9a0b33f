//! The Mesos v1 HTTP API, typed, for everything that speaks it: the master and agent serve
//! it, Marathon, Metronome and test frameworks are clients of it.
//!
//! - [`api`]: wire types (ids that validate, resources, task infos and statuses, states).
//! - [`resources`]: resource arithmetic over the wire form.
//! - [`container`]: the `ContainerInfo` of a task run in a Docker image (Marathon, Metronome);
//!   [`env`]: the port variables a task gets (`PORT0`, `PORTS`, `PORT_<NAME>`).
//! - [`recordio`]: the framing of event streams.
//! - [`follow`]: the one follower of the leading master's state (Mesos-DNS, dcos-net,
//!   Admin Router, History).
//! - [`scheduler`]: the v1 scheduler client frameworks use.
//! - [`executor`]: the v1 executor API's calls and events.
//! - [`operator`]: the master's v1 operator API: calls, answers, events.
#![warn(missing_docs)]

pub mod api;
pub mod container;
pub mod env;
pub mod executor;
pub mod follow;
pub mod operator;
pub mod recordio;
pub mod resources;
pub mod scheduler;
mod wire;
