//! The DC/OS 1.11 port contract, the spine of dcos-rs.
//!
//! - [`contract`]: every row of the "Ports" page as typed data, plus the rows the project adds
//!   (ZooKeeper's quorum port 2888), with each row's bind scope, and [`bind_addrs`]: the
//!   addresses a unit listens on, the one place every unit gets them from.
//! - [`range`]: port range sets in the Mesos `ports` resource form.
//! - [`preflight`]: tries every port a role needs and names the processes holding taken ones.
//! - [`firewall`]: nftables/iptables rules that allow exactly the flows the page allows.
#![warn(missing_docs)]

pub mod contract;
pub mod firewall;
pub mod preflight;
pub mod range;

pub use contract::{
    bind_addrs, component_ports, rows_for, rows_of_unit, task_ranges, units_for, Bind, BindError,
    BindScope, Binds, NodeRole, PortRow, PortRowJson, PortSpec, Protocol, Section, CONTRACT,
};
pub use range::RangeSet;
