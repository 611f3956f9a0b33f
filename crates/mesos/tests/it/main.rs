//! Mesos master and agent over real sockets on loopback: a scheduler speaking the v1 HTTP
//! API (JSON, RecordIO streams) drives them end to end.

mod containers;
mod executor;
mod hardening;
mod harness;
mod health;
mod pymesos;
mod sandboxing;
mod scheduler;
mod statsd;
mod tasks;
