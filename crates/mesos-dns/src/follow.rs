//! Following the leading Mesos master: the one follower of the cluster's state
//! ([`dcos_mesos_api::follow`]) reads `/master/state` from the leader, holds its operator
//! event stream open, and reads the state again as soon as a task, agent or framework changes
//! (and every `refresh` regardless). [`follow`] hands each state whole to Mesos-DNS' records
//! and dcos-net's zones, `Value::Null` once no master answers for `refresh`.

pub use dcos_mesos_api::follow::{follow, Credentials};
