//! Resource arithmetic: cpus, mem, disk, gpus (scalars) and ports (ranges).
//!
//! dcos-rs agents offer unreserved (`*`) resources; a framework's role is recorded in the
//! offer's `allocation_info`, as Mesos 1.5 does for every framework.

use std::fmt;

use dcos_ports::RangeSet;
use serde_json::{json, Value};

use crate::api::{AllocationInfo, Range, Ranges, Resource, Scalar};

/// Scalars are compared with this tolerance (Mesos keeps three decimals).
const EPSILON: f64 = 0.0005;

/// A bundle of resources.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources {
    /// CPUs.
    pub cpus: f64,
    /// Memory, MB.
    pub mem: f64,
    /// Disk, MB.
    pub disk: f64,
    /// GPUs.
    pub gpus: f64,
    /// Ports.
    pub ports: RangeSet,
}

/// A resource list that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidResources(pub String);

impl Resources {
    /// Parses a resource list as frameworks send it.
    pub fn from_api(list: &[Resource]) -> Result<Resources, InvalidResources> {
        let mut r = Resources::default();
        for res in list {
            if let Some(role) = res.role.as_deref() {
                if role != "*" {
                    return Err(InvalidResources(format!(
                        "Resource '{}' is reserved for role '{role}', but dcos-rs agents only offer unreserved ('*') resources",
                        res.name
                    )));
                }
            }
            match (res.name.as_str(), res.kind.as_str()) {
                ("cpus" | "mem" | "disk" | "gpus", "SCALAR") => {
                    let v = res.scalar.as_ref().map(|s| s.value).ok_or_else(|| {
                        InvalidResources(format!("Invalid scalar resource '{}': missing 'scalar'", res.name))
                    })?;
                    if !v.is_finite() || v < 0.0 {
                        return Err(InvalidResources(format!(
                            "Invalid scalar resource '{}': the value {v} is negative or not a number",
                            res.name
                        )));
                    }
                    match res.name.as_str() {
                        "cpus" => r.cpus += v,
                        "mem" => r.mem += v,
                        "disk" => r.disk += v,
                        _ => r.gpus += v,
                    }
                }
                ("ports", "RANGES") => {
                    for range in res.ranges.iter().flat_map(|rs| &rs.range) {
                        if range.begin > range.end || range.end > u64::from(u16::MAX) {
                            return Err(InvalidResources(format!(
                                "Invalid ranges resource 'ports': [{}-{}] is not a valid port range",
                                range.begin, range.end
                            )));
                        }
                        let add = RangeSet::range(range.begin as u16, range.end as u16);
                        if !r.ports.subtract(&add).eq(&r.ports) {
                            return Err(InvalidResources(format!(
                                "Invalid ranges resource 'ports': [{}-{}] overlaps another range",
                                range.begin, range.end
                            )));
                        }
                        r.ports = r.ports.union(&add);
                    }
                }
                (name, kind) => {
                    return Err(InvalidResources(format!(
                        "Unsupported resource '{name}' of type {kind}: dcos-rs agents offer cpus, mem, disk, gpus (SCALAR) and ports (RANGES)"
                    )))
                }
            }
        }
        Ok(r)
    }

    /// The resource list form, tagged with the allocation role when given.
    pub fn to_api(&self, allocation_role: Option<&str>) -> Vec<Resource> {
        let alloc = allocation_role.map(|role| AllocationInfo {
            role: Some(role.to_string()),
        });
        let mut out = Vec::new();
        for (name, v) in [
            ("cpus", self.cpus),
            ("mem", self.mem),
            ("disk", self.disk),
            ("gpus", self.gpus),
        ] {
            if v > EPSILON {
                out.push(Resource {
                    name: name.into(),
                    kind: "SCALAR".into(),
                    scalar: Some(Scalar { value: round(v) }),
                    role: Some("*".into()),
                    allocation_info: alloc.clone(),
                    ..Resource::default()
                });
            }
        }
        if !self.ports.is_empty() {
            out.push(Resource {
                name: "ports".into(),
                kind: "RANGES".into(),
                ranges: Some(Ranges {
                    range: self
                        .ports
                        .ranges()
                        .iter()
                        .map(|&(b, e)| Range {
                            begin: b.into(),
                            end: e.into(),
                        })
                        .collect(),
                }),
                role: Some("*".into()),
                allocation_info: alloc,
                ..Resource::default()
            });
        }
        out
    }

    /// The v0 state form: `{"cpus": 2.0, "mem": .., "disk": .., "gpus": .., "ports": "[1025-2180]"}`.
    pub fn to_state_json(&self) -> Value {
        let mut v = json!({
            "cpus": round(self.cpus),
            "mem": round(self.mem),
            "disk": round(self.disk),
            "gpus": round(self.gpus),
        });
        if !self.ports.is_empty() {
            v["ports"] = Value::String(self.ports.to_string());
        }
        v
    }

    /// Whether `other` fits in `self`.
    pub fn contains(&self, other: &Resources) -> bool {
        self.cpus + EPSILON >= other.cpus
            && self.mem + EPSILON >= other.mem
            && self.disk + EPSILON >= other.disk
            && self.gpus + EPSILON >= other.gpus
            && self.ports.contains_set(&other.ports)
    }

    /// `self + other`.
    pub fn add(&self, other: &Resources) -> Resources {
        Resources {
            cpus: self.cpus + other.cpus,
            mem: self.mem + other.mem,
            disk: self.disk + other.disk,
            gpus: self.gpus + other.gpus,
            ports: self.ports.union(&other.ports),
        }
    }

    /// `self - other`, floored at zero.
    pub fn sub(&self, other: &Resources) -> Resources {
        Resources {
            cpus: (self.cpus - other.cpus).max(0.0),
            mem: (self.mem - other.mem).max(0.0),
            disk: (self.disk - other.disk).max(0.0),
            gpus: (self.gpus - other.gpus).max(0.0),
            ports: self.ports.subtract(&other.ports),
        }
    }

    /// Whether nothing worth offering is left (Mesos's minimum: 0.01 cpus or 32 MB mem).
    pub fn is_offerable(&self) -> bool {
        self.cpus >= 0.01 || self.mem >= 32.0
    }

    /// The share of the scalar `total` this bundle holds, max over kinds (DRF's dominant share).
    pub fn dominant_share(&self, total: &Resources) -> f64 {
        let share = |a: f64, t: f64| if t > 0.0 { a / t } else { 0.0 };
        share(self.cpus, total.cpus)
            .max(share(self.mem, total.mem))
            .max(share(self.disk, total.disk))
            .max(share(self.gpus, total.gpus))
    }
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cpus:{}; mem:{}; disk:{}",
            round(self.cpus),
            round(self.mem),
            round(self.disk)
        )?;
        if self.gpus > 0.0 {
            write!(f, "; gpus:{}", round(self.gpus))?;
        }
        if !self.ports.is_empty() {
            write!(f, "; ports:{}", self.ports)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_arithmetic() {
        let total = Resources {
            cpus: 2.0,
            mem: 1024.0,
            disk: 100.0,
            gpus: 0.0,
            ports: "[1025-2180, 2182-3887]".parse().unwrap(),
        };
        let api = total.to_api(Some("*"));
        assert_eq!(Resources::from_api(&api).unwrap(), total);
        let task = Resources {
            cpus: 0.5,
            mem: 128.0,
            ports: RangeSet::single(2000),
            ..Default::default()
        };
        assert!(total.contains(&task));
        let left = total.sub(&task);
        assert!(!left.ports.contains(2000));
        assert!(!left.contains(&task));
        assert_eq!(left.add(&task), total);
        assert_eq!(total.to_state_json()["ports"], "[1025-2180, 2182-3887]");
    }

    #[test]
    fn bad_resources_are_rejected() {
        let neg = Resource {
            name: "cpus".into(),
            kind: "SCALAR".into(),
            scalar: Some(Scalar { value: -1.0 }),
            ..Default::default()
        };
        assert!(Resources::from_api(&[neg]).is_err());
        let port = Resource {
            name: "ports".into(),
            kind: "RANGES".into(),
            ranges: Some(Ranges {
                range: vec![Range {
                    begin: 5,
                    end: 70000,
                }],
            }),
            ..Default::default()
        };
        assert!(Resources::from_api(&[port]).is_err());
    }
}
