//! The one JSON shape every Mesos v1 call, event and answer shares: `{"type": "KIND",
//! "<kind in lower case>": payload}`, and Mesos' words for a missing field.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::api::Id;

/// Writes `{"type": kind, <ids>..., "<kind in lower case>": payload}`.
pub(crate) fn tagged<S: Serializer, P: Serialize + ?Sized>(
    s: S,
    kind: &str,
    ids: &[(&str, &Id)],
    payload: Option<&P>,
) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(None)?;
    map.serialize_entry("type", kind)?;
    for (name, id) in ids {
        map.serialize_entry(name, id)?;
    }
    if let Some(payload) = payload {
        map.serialize_entry(&kind.to_ascii_lowercase(), payload)?;
    }
    map.end()
}

/// `Expecting '<field>' to be present`, Mesos' words for a missing field.
pub(crate) fn expecting(field: &str) -> String {
    format!("Expecting '{field}' to be present")
}
