//! Cosmos' media types and its header rules (`RequestValidators` in Cosmos 0.5).
//!
//! Every request and answer has its own vendor type
//! `application/vnd.dcos.<ns>.<kind>+json;charset=utf-8;version=vN`. `Accept` is required and
//! must name one of the endpoint's answer types with all of its parameters (Cosmos looks the
//! chosen value up by equality, so `*/*` or `application/json` never match); the highest `q`
//! wins. A request body's `Content-Type` must have the endpoint's type and parameters, and may
//! have more.

use axum::http::{header, HeaderMap};

use crate::error::CosmosError;

/// The media type of a `/capabilities` answer.
pub const CAPABILITIES: &str = "application/vnd.dcos.capabilities+json;charset=utf-8;version=v1";

/// `application/vnd.dcos.package.<kind>+json;charset=utf-8;version=<version>`.
macro_rules! package_type {
    ($kind:literal, $version:literal) => {
        concat!(
            "application/vnd.dcos.package.",
            $kind,
            "+json;charset=utf-8;version=",
            $version
        )
    };
}
pub(crate) use package_type;

/// `application/vnd.dcos.service.<kind>+json;charset=utf-8;version=v1`.
macro_rules! service_type {
    ($kind:literal) => {
        concat!(
            "application/vnd.dcos.service.",
            $kind,
            "+json;charset=utf-8;version=v1"
        )
    };
}
pub(crate) use service_type;

/// The types of a Universe repository a server may answer with, best first.
pub const REPO_V4: &str = "application/vnd.dcos.universe.repo+json;charset=utf-8;version=v4";
/// A v3 repository.
pub const REPO_V3: &str = "application/vnd.dcos.universe.repo+json;charset=utf-8;version=v3";

/// A media type: `type/subtype` (lowercase) and its parameters (sorted, `q` apart).
#[derive(Debug, PartialEq)]
pub struct MediaType {
    /// `type/subtype`.
    pub essence: String,
    /// The parameters but `q`, names lowercased, sorted.
    pub params: Vec<(String, String)>,
    /// The `q` value (1 when absent).
    pub q: f32,
}

impl MediaType {
    /// Parses one media type (`None` if it is not one).
    pub fn parse(text: &str) -> Option<MediaType> {
        let mut parts = text.split(';');
        let essence = parts.next()?.trim().to_ascii_lowercase();
        let (ty, sub) = essence.split_once('/')?;
        if ty.is_empty() || sub.is_empty() {
            return None;
        }
        let mut params = Vec::new();
        let mut q = 1.0;
        for p in parts {
            if p.trim().is_empty() {
                continue;
            }
            let (k, v) = p.split_once('=')?;
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"'));
            if k == "q" {
                q = v.parse().ok().filter(|q: &f32| (0.0..=1.0).contains(q))?;
            } else {
                params.push((k, v.to_string()));
            }
        }
        params.sort();
        Some(MediaType { essence, params, q })
    }

    /// Whether this type has `other`'s essence and at least its parameters.
    pub fn covers(&self, other: &MediaType) -> bool {
        self.essence == other.essence && other.params.iter().all(|p| self.params.contains(p))
    }
}

fn header_values<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// Which of `offers` (the endpoint's answer types, preferred first) `Accept` asks for.
pub fn negotiate(
    headers: &HeaderMap,
    offers: &[&'static str],
) -> Result<&'static str, CosmosError> {
    let values = header_values(headers, &header::ACCEPT);
    if values.is_empty() {
        return Err(CosmosError::new(
            "not_present",
            "Item 'header' 'Accept' not present but required",
        ));
    }
    let listed: Vec<MediaType> = values
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(MediaType::parse)
        .collect();
    let mut best: Option<(&'static str, f32)> = None;
    for offer in offers {
        let server = MediaType::parse(offer).expect("a valid server media type");
        let q = listed
            .iter()
            .filter(|m| m.essence == server.essence && m.params == server.params)
            .map(|m| m.q)
            .fold(0.0, f32::max);
        if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((offer, q));
        }
    }
    best.map(|(offer, _)| offer).ok_or_else(|| {
        CosmosError::new(
            "not_valid",
            format!(
                "Item 'header' 'Accept' deemed invalid by rule: 'media type was {} but should be one of: {}'",
                values.join(","),
                offers.join(", ")
            ),
        )
    })
}

/// Checks a request body's `Content-Type` against the endpoint's `expected` type.
pub fn check_content_type(headers: &HeaderMap, expected: &str) -> Result<(), CosmosError> {
    let values = header_values(headers, &header::CONTENT_TYPE);
    let Some(value) = values.first() else {
        return Err(CosmosError::new(
            "not_present",
            "Item 'header' 'Content-Type' not present but required",
        ));
    };
    let want = MediaType::parse(expected).expect("a valid server media type");
    match MediaType::parse(value) {
        Some(got) if got.covers(&want) => Ok(()),
        _ => Err(CosmosError::new(
            "not_valid",
            format!(
                "Item 'header' 'Content-Type' deemed invalid by rule: 'media type was {value} but should be {expected}'"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    const V1: &str = package_type!("install-response", "v1");
    const V2: &str = package_type!("install-response", "v2");

    #[test]
    fn accept_picks_the_highest_q_then_the_servers_preference() {
        let pick = |accept: &str| negotiate(&headers(header::ACCEPT, accept), &[V2, V1]);
        assert_eq!(pick(V1), Ok(V1));
        assert_eq!(pick(&format!("{V1},{V2}")), Ok(V2));
        assert_eq!(pick(&format!("{V1};q=0.9,{V2};q=0.5")), Ok(V1));
        assert_eq!(
            pick("application/vnd.dcos.package.install-response+json; version=v2 ;charset=utf-8"),
            Ok(V2)
        );
        for refused in [
            "*/*",
            "application/json",
            &format!("{V2};q=0"),
            "text/plain;q=x",
        ] {
            let e = pick(refused).unwrap_err();
            assert_eq!(e.kind, "not_valid", "{refused}");
            assert!(e.message.contains(V2) && e.message.contains(V1));
        }
        let e = negotiate(&HeaderMap::new(), &[V1]).unwrap_err();
        assert_eq!(e.kind, "not_present");
    }

    #[test]
    fn content_type_must_carry_the_endpoints_parameters() {
        let want = package_type!("install-request", "v1");
        let check = |value: &str| check_content_type(&headers(header::CONTENT_TYPE, value), want);
        assert!(check(want).is_ok());
        assert!(check(&format!("{want};extra=1")).is_ok());
        for refused in [
            "application/json",
            "application/vnd.dcos.package.install-request+json",
            "application/vnd.dcos.package.install-request+json;charset=utf-8;version=v2",
            "garbage",
        ] {
            assert_eq!(check(refused).unwrap_err().kind, "not_valid", "{refused}");
        }
        let e = check_content_type(&HeaderMap::new(), want).unwrap_err();
        assert_eq!(e.kind, "not_present");
    }
}
