//! Marathon end to end on loopback: a real Mesos master and agents in the test process,
//! Marathon on its REST API, real tasks (processes) in agent sandboxes.

mod apps;
mod harness;
mod images;
mod mesos_health;
