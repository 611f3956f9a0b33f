//! Application metrics: the latest value of each (container, metric, tags) a task sent over
//! StatsD, bounded in containers, series and (approximate) bytes, expired when not updated for a while and when
//! the agent no longer runs the container.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::relay::Origin;
use crate::statsd::Sample;

/// How much the store keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Containers at most.
    pub containers: usize,
    /// Series (metric and tags) of one container at most.
    pub series_per_container: usize,
    /// Series of all containers at most.
    pub series: usize,
    /// Approximate bytes ([`series_bytes`]) of one container's series at most: a new series
    /// beyond it is refused, an update of a kept one always lands.
    pub bytes_per_container: usize,
    /// Approximate bytes of all containers' series at most.
    pub bytes: usize,
    /// A series not updated for this long is dropped.
    pub ttl: Duration,
}

impl Default for StoreLimits {
    fn default() -> StoreLimits {
        StoreLimits {
            containers: 1024,
            series_per_container: 2000,
            series: 50_000,
            bytes_per_container: 1024 * 1024,
            bytes: 32 * 1024 * 1024,
            ttl: Duration::from_secs(300),
        }
    }
}

/// A series: a metric's name and its sorted tags.
pub type SeriesKey = (String, Vec<(String, String)>);

/// What a series costs besides its strings' bytes: the key's and value's structs, the
/// timestamp and the map's share.
pub const SERIES_OVERHEAD: usize = 160;
/// What a tag costs besides its strings' bytes.
pub const TAG_OVERHEAD: usize = std::mem::size_of::<(String, String)>();

/// The approximate bytes a series holds.
pub fn series_bytes(key: &SeriesKey) -> usize {
    SERIES_OVERHEAD
        + key.0.len()
        + key
            .1
            .iter()
            .map(|(k, v)| TAG_OVERHEAD + k.len() + v.len())
            .sum::<usize>()
}

/// The latest value of a series.
#[derive(Clone, Debug, PartialEq)]
pub struct Latest {
    /// The value.
    pub value: f64,
    /// When it arrived (RFC 3339, whole seconds, as the real collector stamped it).
    pub timestamp: String,
    at: Instant,
}

/// One container's application metrics.
#[derive(Clone, Debug, Default)]
pub struct AppContainer {
    /// Its executor, as the agent said when relaying.
    pub executor_id: String,
    /// Its framework, as the agent said when relaying.
    pub framework_id: String,
    /// Its series.
    pub series: BTreeMap<SeriesKey, Latest>,
    first_seen: Option<Instant>,
    /// Approximate bytes of `series`.
    bytes: usize,
}

#[derive(Default)]
struct Inner {
    containers: HashMap<String, AppContainer>,
    series: usize,
    /// Approximate bytes of all containers' series.
    bytes: usize,
    /// Samples refused because a limit was reached, since the last report.
    refused: u64,
}

/// The store.
pub struct AppStore {
    limits: StoreLimits,
    inner: Mutex<Inner>,
}

impl AppStore {
    /// An empty store with these limits.
    pub fn new(limits: StoreLimits) -> AppStore {
        AppStore {
            limits,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records samples of one container; samples beyond a limit are dropped (and counted).
    pub fn record(&self, origin: Origin<'_>, samples: impl IntoIterator<Item = Sample>) {
        let now = Instant::now();
        let timestamp = crate::api::now_secs();
        let limits = self.limits;
        let mut inner = self.lock();
        let inner = &mut *inner;
        if !inner.containers.contains_key(origin.container_id)
            && inner.containers.len() >= limits.containers
        {
            inner.refused += samples.into_iter().count() as u64;
            return;
        }
        let container = inner
            .containers
            .entry(origin.container_id.to_string())
            .or_insert_with(|| AppContainer {
                first_seen: Some(now),
                ..AppContainer::default()
            });
        container.executor_id = origin.executor_id.to_string();
        container.framework_id = origin.framework_id.to_string();
        for sample in samples {
            let mut tags: Vec<(String, String)> = sample
                .tags
                .into_iter()
                // Tags that would name an identity dimension are dropped: dimensions win.
                .filter(|(k, _)| !crate::api::is_dimension_name(k))
                .collect();
            // Stable: a key sent twice in one line keeps its order, and the last one counts,
            // as in a map.
            tags.sort_by(|a, b| a.0.cmp(&b.0));
            tags.reverse();
            tags.dedup_by(|a, b| a.0 == b.0);
            tags.reverse();
            let key = (sample.name, tags);
            let latest = Latest {
                value: sample.value,
                timestamp: timestamp.clone(),
                at: now,
            };
            if let Some(slot) = container.series.get_mut(&key) {
                *slot = latest;
                continue;
            }
            let bytes = series_bytes(&key);
            if container.series.len() < limits.series_per_container
                && inner.series < limits.series
                && container.bytes + bytes <= limits.bytes_per_container
                && inner.bytes + bytes <= limits.bytes
            {
                container.series.insert(key, latest);
                container.bytes += bytes;
                inner.series += 1;
                inner.bytes += bytes;
            } else {
                inner.refused += 1;
            }
        }
    }

    /// Drops series older than the TTL, containers left without series, and containers the
    /// agent no longer runs: those missing from `running` (the agent's containers as read at
    /// `read_at`) that were first seen before that read. Returns how many samples were
    /// refused at a limit since the last call.
    pub fn expire(&self, running: Option<(&HashSet<String>, Instant)>) -> u64 {
        let now = Instant::now();
        let ttl = self.limits.ttl;
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut removed = 0;
        let mut removed_bytes = 0;
        inner.containers.retain(|id, c| {
            let gone = running.is_some_and(|(ids, read_at)| {
                !ids.contains(id) && c.first_seen.is_some_and(|f| f < read_at)
            });
            if gone {
                removed += c.series.len();
                removed_bytes += c.bytes;
                return false;
            }
            let before = c.series.len();
            let mut freed = 0;
            c.series.retain(|key, l| {
                let keep = now.saturating_duration_since(l.at) < ttl;
                if !keep {
                    freed += series_bytes(key);
                }
                keep
            });
            c.bytes -= freed;
            removed_bytes += freed;
            removed += before - c.series.len();
            !c.series.is_empty()
        });
        inner.series -= removed;
        inner.bytes -= removed_bytes;
        std::mem::take(&mut inner.refused)
    }

    /// A copy of one container's metrics.
    pub fn container(&self, id: &str) -> Option<AppContainer> {
        self.lock().containers.get(id).cloned()
    }

    /// The ids of the containers that sent metrics.
    pub fn container_ids(&self) -> Vec<String> {
        self.lock().containers.keys().cloned().collect()
    }

    /// A copy of every container's metrics.
    pub fn all(&self) -> Vec<(String, AppContainer)> {
        self.lock()
            .containers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Series kept in all.
    pub fn series(&self) -> usize {
        self.lock().series
    }

    /// Approximate bytes ([`series_bytes`]) kept in all.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Counts `n` samples dropped before reaching the store (an oversized line), reported
    /// with those refused at a limit by [`AppStore::expire`].
    pub fn refuse(&self, n: u64) {
        if n > 0 {
            self.lock().refused += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(id: &str) -> Origin<'_> {
        Origin {
            container_id: id,
            executor_id: "e",
            framework_id: "f",
        }
    }

    fn sample(name: &str, value: f64, tags: &[(&str, &str)]) -> Sample {
        Sample {
            name: name.into(),
            value,
            kind: "g".into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_latest_value_per_metric_and_tags_is_kept() {
        let store = AppStore::new(StoreLimits::default());
        store.record(
            origin("c"),
            [
                sample("m", 1.0, &[("b", "2"), ("a", "1")]),
                sample("m", 2.0, &[("a", "1"), ("b", "2")]),
                sample("m", 3.0, &[("a", "other")]),
                sample(
                    "m",
                    4.0,
                    &[("container_id", "spoof"), ("k", "1"), ("k", "2")],
                ),
            ],
        );
        let c = store.container("c").unwrap();
        assert_eq!(c.executor_id, "e");
        let values: Vec<(Vec<(String, String)>, f64)> = c
            .series
            .iter()
            .map(|((_, tags), l)| (tags.clone(), l.value))
            .collect();
        let t = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            values,
            [
                (t(&[("a", "1"), ("b", "2")]), 2.0),
                (t(&[("a", "other")]), 3.0),
                (t(&[("k", "2")]), 4.0),
            ]
        );
        assert_eq!(store.series(), 3);
    }

    #[test]
    fn limits_bound_containers_and_series() {
        let store = AppStore::new(StoreLimits {
            containers: 2,
            series_per_container: 2,
            series: 3,
            ttl: Duration::from_secs(60),
            ..StoreLimits::default()
        });
        let many = |n: usize| (0..n).map(|i| sample(&format!("m{i}"), 1.0, &[]));
        store.record(origin("a"), many(5));
        store.record(origin("b"), many(5));
        store.record(origin("c"), many(1));
        assert_eq!(store.series(), 3);
        assert_eq!(store.container("a").unwrap().series.len(), 2);
        assert_eq!(store.container("b").unwrap().series.len(), 1);
        assert!(store.container("c").is_none());
        // Updates of kept series still land at the limit.
        store.record(origin("a"), [sample("m0", 9.0, &[])]);
        let a = store.container("a").unwrap();
        assert_eq!(a.series.values().next().unwrap().value, 9.0);
        assert_eq!(store.expire(None), 3 + 4 + 1);
        assert_eq!(store.expire(None), 0);
    }

    #[test]
    fn containers_the_agent_no_longer_runs_are_dropped() {
        let store = AppStore::new(StoreLimits::default());
        store.record(origin("gone"), [sample("m", 1.0, &[])]);
        store.record(origin("kept"), [sample("m", 1.0, &[])]);
        let read_before = Instant::now() - Duration::from_secs(1);
        let running: HashSet<String> = ["kept".to_string()].into();
        // A read older than the container's first sample proves nothing.
        store.expire(Some((&running, read_before)));
        assert_eq!(store.container_ids().len(), 2);
        store.expire(Some((&running, Instant::now())));
        assert_eq!(store.container_ids(), ["kept"]);
        assert_eq!(store.series(), 1);
    }

    #[test]
    fn stale_series_expire() {
        let store = AppStore::new(StoreLimits {
            ttl: Duration::ZERO,
            ..StoreLimits::default()
        });
        store.record(origin("c"), [sample("m", 1.0, &[])]);
        store.expire(None);
        assert!(store.container("c").is_none());
        assert_eq!(store.series(), 0);
    }

    #[test]
    fn bytes_bound_new_series_but_not_updates() {
        let tags = [("k", "v")];
        let one = series_bytes(&("m0".to_string(), vec![("k".to_string(), "v".to_string())]));
        let store = AppStore::new(StoreLimits {
            bytes_per_container: 3 * one,
            bytes: 5 * one,
            ..StoreLimits::default()
        });
        let many = |n: usize| {
            (0..n)
                .map(|i| sample(&format!("m{i}"), 1.0, &tags))
                .collect::<Vec<_>>()
        };
        store.record(origin("a"), many(5));
        assert_eq!(store.container("a").unwrap().series.len(), 3);
        assert_eq!(store.bytes(), 3 * one);
        store.record(origin("b"), many(5));
        assert_eq!(store.container("b").unwrap().series.len(), 2);
        assert_eq!(store.bytes(), 5 * one);
        assert_eq!(store.series(), 5);
        // Updates of kept series still land at the budget.
        store.record(origin("b"), [sample("m1", 7.0, &tags)]);
        let b = store.container("b").unwrap();
        assert_eq!(b.series.values().nth(1).unwrap().value, 7.0);
        assert_eq!(store.expire(None), 2 + 3);
        // Freed bytes are free again.
        let running: HashSet<String> = ["b".to_string()].into();
        store.expire(Some((&running, Instant::now())));
        assert_eq!(store.bytes(), 2 * one);
        store.record(origin("b"), many(5));
        assert_eq!(store.container("b").unwrap().series.len(), 3);
        assert_eq!(store.bytes(), 3 * one);
    }

    #[test]
    fn a_series_bytes_count_its_name_and_tags() {
        let key = |name: &str, tags: &[(&str, &str)]| -> SeriesKey {
            (
                name.to_string(),
                tags.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        assert_eq!(series_bytes(&key("abc", &[])), SERIES_OVERHEAD + 3);
        assert_eq!(
            series_bytes(&key("abc", &[("k", "vv"), ("", "")])),
            SERIES_OVERHEAD + 3 + 2 * TAG_OVERHEAD + 3
        );
        let store = AppStore::new(StoreLimits::default());
        store.record(origin("c"), [sample("abc", 1.0, &[("k", "vv")])]);
        assert_eq!(store.bytes(), series_bytes(&key("abc", &[("k", "vv")])));
        let store = AppStore::new(StoreLimits {
            ttl: Duration::ZERO,
            ..StoreLimits::default()
        });
        store.record(origin("c"), [sample("abc", 1.0, &[])]);
        store.expire(None);
        assert_eq!(store.bytes(), 0);
    }

    #[test]
    fn drops_before_the_store_are_reported_with_refusals() {
        let store = AppStore::new(StoreLimits::default());
        store.refuse(0);
        assert_eq!(store.expire(None), 0);
        store.refuse(3);
        assert_eq!(store.expire(None), 3);
        assert_eq!(store.expire(None), 0);
    }

    #[test]
    fn the_largest_series_fit_the_default_budget() {
        // The parser's bounds make a key at most this large; a container can still hold
        // some hundreds of them.
        let max = SERIES_OVERHEAD
            + crate::statsd::MAX_NAME
            + crate::statsd::MAX_TAGS * (TAG_OVERHEAD + 2 * crate::statsd::MAX_TAG);
        let limits = StoreLimits::default();
        assert!(limits.bytes_per_container / max >= 150);
        assert!(limits.bytes >= limits.bytes_per_container);
    }
}
