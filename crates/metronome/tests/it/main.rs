//! Metronome end to end on loopback: a real Mesos master and agents in the test process,
//! Metronome on its REST API, real tasks (processes) in agent sandboxes, a clock the tests
//! set.

mod cli;
mod dcoscli;
mod failover;
mod harness;
mod images;
mod jobs;
mod schedules;
