//! A Mesos-compatible master and agent.
//!
//! Frameworks written against Apache Mesos's v1 HTTP API (JSON) run unmodified: the
//! scheduler API with RecordIO event streams, the operator endpoints, the agent's sandboxes
//! and files API. Marathon and Metronome are ordinary frameworks of this master.
//!
//! - [`api`]: v1 wire types; [`recordio`]: stream framing; [`resources`]: resource arithmetic.
//! - [`master`]: the master (5050); [`agent`]: the agent (5051).
//! - [`protocol`]: how agents and the master talk; [`scheduler`]: the v1 scheduler client
//!   that Marathon and Metronome use.
#![warn(missing_docs)]

pub mod agent;
mod http;
pub mod master;
pub mod protocol;

// The wire protocol lives in its own crate (frameworks depend on it alone); re-exported so the
// master and agent name it as before.
pub use dcos_mesos_api::{api, recordio, resources, scheduler};

/// The Mesos version dcos-rs speaks (DC/OS 1.11 shipped Mesos 1.5).
pub const MESOS_VERSION: &str = "1.5.0";
