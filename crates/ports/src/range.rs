//! Port range sets with the arithmetic the agent's `ports` resource needs.
//!
//! A [`RangeSet`] is kept normalised: sorted, non-overlapping, non-adjacent inclusive ranges.
//! Its text form is the one Mesos uses for the `ports` resource: `[1025-2180, 2182-3887]`.

use std::fmt;
use std::str::FromStr;

/// A normalised set of inclusive `u16` port ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RangeSet {
    ranges: Vec<(u16, u16)>,
}

/// A range-set text that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid port range set {text:?}: {why}; expected the Mesos form `[1025-2180, 2182-3887]`")]
pub struct ParseRangeSetError {
    text: String,
    why: &'static str,
}

impl RangeSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A set holding one inclusive range; an inverted range gives the empty set.
    pub fn range(begin: u16, end: u16) -> Self {
        let mut set = Self::new();
        set.insert(begin, end);
        set
    }

    /// A set holding a single port.
    pub fn single(port: u16) -> Self {
        Self::range(port, port)
    }

    /// Builds a set from arbitrary (possibly overlapping, unsorted) ranges.
    pub fn from_ranges(ranges: impl IntoIterator<Item = (u16, u16)>) -> Self {
        let mut set = Self::new();
        for (b, e) in ranges {
            set.insert(b, e);
        }
        set
    }

    /// Adds an inclusive range, merging with overlapping or adjacent ranges.
    pub fn insert(&mut self, begin: u16, end: u16) {
        if begin > end {
            return;
        }
        let (mut b, mut e) = (begin, end);
        let mut out = Vec::with_capacity(self.ranges.len() + 1);
        let mut placed = false;
        for &(rb, re) in &self.ranges {
            // Disjoint and not adjacent: keep as is, placing the new range in order.
            if u32::from(re) + 1 < u32::from(b) {
                out.push((rb, re));
            } else if u32::from(e) + 1 < u32::from(rb) {
                if !placed {
                    out.push((b, e));
                    placed = true;
                }
                out.push((rb, re));
            } else {
                b = b.min(rb);
                e = e.max(re);
            }
        }
        if !placed {
            out.push((b, e));
        }
        out.sort_unstable();
        self.ranges = out;
    }

    /// The union of two sets.
    pub fn union(&self, other: &RangeSet) -> RangeSet {
        let mut out = self.clone();
        for &(b, e) in &other.ranges {
            out.insert(b, e);
        }
        out
    }

    /// Every port of `self` that is not in `other`.
    pub fn subtract(&self, other: &RangeSet) -> RangeSet {
        let mut out = Vec::new();
        for &(b, e) in &self.ranges {
            let mut start = u32::from(b);
            let end = u32::from(e);
            for &(ob, oe) in &other.ranges {
                let (ob, oe) = (u32::from(ob), u32::from(oe));
                if oe < start || ob > end {
                    continue;
                }
                if ob > start {
                    out.push((start as u16, (ob - 1) as u16));
                }
                start = oe + 1;
                if start > end {
                    break;
                }
            }
            if start <= end {
                out.push((start as u16, end as u16));
            }
        }
        RangeSet { ranges: out }
    }

    /// Whether `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        self.ranges
            .binary_search_by(|&(b, e)| {
                if e < port {
                    std::cmp::Ordering::Less
                } else if b > port {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
    }

    /// Whether every port of `other` is in `self`.
    pub fn contains_set(&self, other: &RangeSet) -> bool {
        other.subtract(self).is_empty()
    }

    /// Whether the set holds no port.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// How many ports the set holds.
    pub fn len(&self) -> u32 {
        self.ranges
            .iter()
            .map(|&(b, e)| u32::from(e) - u32::from(b) + 1)
            .sum()
    }

    /// The normalised ranges, in order.
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.ranges
    }

    /// Every port, in order.
    pub fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.ranges.iter().flat_map(|&(b, e)| b..=e)
    }

    /// The sysctl list form, `53,61003,1025-2180`.
    pub fn to_sysctl(&self) -> String {
        self.ranges
            .iter()
            .map(|&(b, e)| {
                if b == e {
                    b.to_string()
                } else {
                    format!("{b}-{e}")
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Parses the sysctl list form (`ip_local_reserved_ports`): `1,2-5`, possibly empty.
    pub fn from_sysctl(text: &str) -> Result<RangeSet, ParseRangeSetError> {
        let mut set = RangeSet::new();
        for part in text
            .trim()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (b, e) = parse_range(part).map_err(|why| ParseRangeSetError {
                text: text.to_string(),
                why,
            })?;
            set.insert(b, e);
        }
        Ok(set)
    }
}

fn parse_range(part: &str) -> Result<(u16, u16), &'static str> {
    let (b, e) = match part.split_once('-') {
        Some((b, e)) => (b.trim(), e.trim()),
        None => (part, part),
    };
    let b: u16 = b
        .parse()
        .map_err(|_| "a bound is not a port number (0-65535)")?;
    let e: u16 = e
        .parse()
        .map_err(|_| "a bound is not a port number (0-65535)")?;
    if b > e {
        return Err("a range begins after it ends");
    }
    Ok((b, e))
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, &(b, e)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{b}-{e}")?;
        }
        f.write_str("]")
    }
}

impl FromStr for RangeSet {
    type Err = ParseRangeSetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |why| ParseRangeSetError {
            text: text.to_string(),
            why,
        };
        let inner = text
            .trim()
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .ok_or_else(|| err("it is not enclosed in [ ]"))?;
        let mut set = RangeSet::new();
        for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (b, e) = parse_range(part).map_err(err)?;
            set.insert(b, e);
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_set() -> impl Strategy<Value = RangeSet> {
        proptest::collection::vec((any::<u16>(), 0u16..2000), 0..8).prop_map(|v| {
            RangeSet::from_ranges(v.into_iter().map(|(b, len)| (b, b.saturating_add(len))))
        })
    }

    #[test]
    fn text_form_round_trips_the_mesos_syntax() {
        let set: RangeSet = "[1025-2180, 2182-3887]".parse().unwrap();
        assert_eq!(set.ranges(), &[(1025, 2180), (2182, 3887)]);
        assert_eq!(set.to_string(), "[1025-2180, 2182-3887]");
        assert!("1025-2180".parse::<RangeSet>().is_err());
        assert!("[5-1]".parse::<RangeSet>().is_err());
        assert!("[1-70000]".parse::<RangeSet>().is_err());
    }

    #[test]
    fn adjacent_ranges_merge() {
        let set = RangeSet::from_ranges([(10, 20), (21, 30), (40, 40)]);
        assert_eq!(set.ranges(), &[(10, 30), (40, 40)]);
        assert_eq!(set.len(), 22);
    }

    #[test]
    fn subtract_splits_ranges() {
        let set = RangeSet::range(1025, 32000).subtract(&RangeSet::from_ranges([
            (2181, 2181),
            (3888, 3888),
            (1025, 1025),
            (32000, 32000),
        ]));
        assert_eq!(set.to_string(), "[1026-2180, 2182-3887, 3889-31999]");
    }

    #[test]
    fn sysctl_form_round_trips() {
        let set = RangeSet::from_sysctl("53, 61003,1025-2180").unwrap();
        assert_eq!(set.to_sysctl(), "53,1025-2180,61003");
        assert!(RangeSet::from_sysctl("").unwrap().is_empty());
    }

    proptest! {
        #[test]
        fn subtraction_never_yields_a_port_of_the_subtrahend(a in arb_set(), b in arb_set()) {
            let d = a.subtract(&b);
            for p in d.ports() {
                prop_assert!(!b.contains(p));
                prop_assert!(a.contains(p));
            }
            // Nothing of a is lost except what b holds.
            prop_assert_eq!(d.len() + a.subtract(&d).len(), a.len());
            prop_assert!(a.subtract(&d).ports().all(|p| b.contains(p)));
        }

        #[test]
        fn union_is_idempotent_and_commutative(a in arb_set(), b in arb_set()) {
            prop_assert_eq!(a.union(&a), a.clone());
            let u = a.union(&b);
            prop_assert_eq!(u.union(&b), u.clone());
            prop_assert_eq!(b.union(&a), u.clone());
            prop_assert!(u.contains_set(&a) && u.contains_set(&b));
        }

        #[test]
        fn sets_stay_normalised(a in arb_set()) {
            for w in a.ranges().windows(2) {
                prop_assert!(u32::from(w[0].1) + 1 < u32::from(w[1].0));
            }
            let text = a.to_string();
            prop_assert_eq!(text.parse::<RangeSet>().unwrap(), a);
        }
    }
}
