//! The Mesos v1 HTTP API, typed, for everything that speaks it: the master and agent serve
//! it, Marathon, Metronome and test frameworks are clients of it.
//!
//! - [`api`]: wire types (ids that validate, resources, task infos and statuses, states).
//! - [`resources`]: resource arithmetic over the wire form.
//! - [`recordio`]: the framing of event streams.
//! - [`scheduler`]: the v1 scheduler client frameworks use.
#![warn(missing_docs)]

pub mod api;
pub mod recordio;
pub mod resources;
pub mod scheduler;
