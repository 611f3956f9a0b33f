//! Universe's package and repository formats (mesosphere/universe `repo/meta/schema`):
//! a repository is `{"packages": [...]}`, each package one version of one name, in packaging
//! version 2.0, 3.0 or 4.0.
//!
//! A package is kept as the JSON its repository gave (answers such as `describe` return it
//! as it is) with the fields Cosmos decides by read out and checked once, when the
//! repository is read: a repository with one malformed package is refused whole.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Map, Value};

/// The packaging versions Cosmos 0.5 reads.
const PACKAGING_VERSIONS: &[&str] = &["2.0", "3.0", "4.0"];

/// The fields of a package's list-style metadata (`DCOS_PACKAGE_METADATA`, `list`'s
/// `packageDefinition`), in Cosmos' order.
const METADATA_FIELDS: &[&str] = &[
    "packagingVersion",
    "name",
    "version",
    "maintainer",
    "description",
    "tags",
    "selected",
    "scm",
    "website",
    "framework",
    "preInstallNotes",
    "postInstallNotes",
    "postUninstallNotes",
    "licenses",
];

/// The fields `describe`'s v2 answer (the package, flat) has beyond the metadata's.
const DESCRIBE_V2_EXTRA_FIELDS: &[&str] = &[
    "minDcosReleaseVersion",
    "marathon",
    "resource",
    "config",
    "command",
];

/// The largest package read back from an app's label (decompressed).
pub const MAX_PACKAGE: usize = 4 * 1024 * 1024;
/// The largest template a package may carry (decoded).
const MAX_TEMPLATE: usize = 1024 * 1024;

/// One version of one package.
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    json: Map<String, Value>,
    /// `name`.
    pub name: String,
    /// `version`: the package's own version text.
    pub version: String,
    /// `releaseVersion`: the order of this name's versions in its repository.
    pub release_version: u64,
    /// `packagingVersion`: "2.0", "3.0" or "4.0".
    pub packaging_version: String,
}

fn string_field(json: &Map<String, Value>, key: &str) -> Result<String, String> {
    match json.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(format!("`{key}` is not a non-empty string")),
        None => Err(format!("`{key}` is missing")),
    }
}

/// Universe's package name rule: lowercase letters, digits and inner dashes.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

impl Package {
    /// Reads one package of a repository.
    pub fn from_json(value: Value) -> Result<Package, String> {
        let Value::Object(json) = value else {
            return Err("a package is not a JSON object".into());
        };
        let name = string_field(&json, "name")?;
        let label = name.clone();
        let fail = |what: String| format!("package {label:?}: {what}");
        if !valid_name(&name) {
            return Err(fail(
                "the name is not lowercase letters, digits and dashes".into(),
            ));
        }
        let packaging_version = string_field(&json, "packagingVersion").map_err(fail)?;
        if !PACKAGING_VERSIONS.contains(&packaging_version.as_str()) {
            return Err(fail(format!(
                "packagingVersion {packaging_version:?} is not one of {PACKAGING_VERSIONS:?}"
            )));
        }
        let version = string_field(&json, "version").map_err(fail)?;
        string_field(&json, "maintainer").map_err(fail)?;
        string_field(&json, "description").map_err(fail)?;
        let release_version = json
            .get("releaseVersion")
            .and_then(Value::as_u64)
            .ok_or_else(|| fail("`releaseVersion` is not a non-negative integer".into()))?;
        if let Some(tags) = json.get("tags") {
            let ok = tags
                .as_array()
                .is_some_and(|t| t.iter().all(Value::is_string));
            if !ok {
                return Err(fail("`tags` is not a list of strings".into()));
            }
        }
        for object in ["config", "resource", "marathon", "command"] {
            if json.get(object).is_some_and(|v| !v.is_object()) {
                return Err(fail(format!("`{object}` is not a JSON object")));
            }
        }
        let package = Package {
            json,
            name,
            version,
            release_version,
            packaging_version,
        };
        if let Some(template) = package.json.pointer_template() {
            decode_template(template).map_err(fail)?;
        }
        Ok(package)
    }

    /// The package as its repository has it.
    pub fn json(&self) -> &Map<String, Value> {
        &self.json
    }

    /// A top-level field.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.json.get(key)
    }

    fn pick(&self, fields: &[&str]) -> Value {
        let mut out = Map::new();
        for field in fields {
            if let Some(v) = self.json.get(*field) {
                out.insert((*field).to_string(), v.clone());
            }
        }
        if fields.contains(&"tags") && !out.contains_key("tags") {
            out.insert("tags".into(), json!([]));
        }
        Value::Object(out)
    }

    /// The list-style metadata (`list`'s `packageDefinition`, `DCOS_PACKAGE_METADATA`);
    /// `selected` and `framework` are `false` when the package does not say.
    pub fn metadata(&self) -> Value {
        let mut out = self.pick(METADATA_FIELDS);
        for flag in ["selected", "framework"] {
            if out.get(flag).is_none() {
                out[flag] = Value::Bool(false);
            }
        }
        if let Some(images) = self.get("resource").and_then(|r| r.get("images")) {
            out["images"] = images.clone();
        }
        out
    }

    /// `describe`'s v2 answer.
    pub fn describe_v2(&self) -> Value {
        let mut out = self.pick(METADATA_FIELDS);
        if let (Value::Object(out), Value::Object(extra)) =
            (&mut out, self.pick(DESCRIBE_V2_EXTRA_FIELDS))
        {
            out.extend(extra);
        }
        out
    }

    /// The option schema (`config`), if the package has options.
    pub fn config(&self) -> Option<&Value> {
        self.get("config")
    }

    /// The Marathon app template (decoded), if the package runs as an app.
    pub fn template(&self) -> Option<String> {
        // Checked when the package was read.
        self.json
            .pointer_template()
            .and_then(|t| decode_template(t).ok())
    }

    /// Universe's media type of this package, as `DCOS_PACKAGE_DEFINITION` records it.
    pub fn media_type(&self) -> &'static str {
        match self.packaging_version.as_str() {
            "2.0" => "application/vnd.dcos.universe.package+json;charset=utf-8;version=v2",
            "3.0" => "application/vnd.dcos.universe.package+json;charset=utf-8;version=v3",
            _ => "application/vnd.dcos.universe.package+json;charset=utf-8;version=v4",
        }
    }

    /// Every URL the package names in `resource` (images, assets, CLI binaries): what
    /// `/package/resource` may fetch.
    pub fn resource_urls(&self) -> Vec<String> {
        let mut urls = Vec::new();
        if let Some(resource) = self.get("resource") {
            collect_urls(resource, &mut urls);
        }
        urls
    }

    /// Whether `query` matches the name, the description or a tag (case-insensitive; `*`
    /// is any text, and without one the query matches anywhere in the text).
    pub fn matches(&self, query: &str) -> bool {
        let query = query.trim().to_lowercase();
        if query.is_empty() {
            return true;
        }
        let texts = [
            Some(self.name.as_str()),
            self.get("description").and_then(Value::as_str),
        ];
        let tags = self
            .get("tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(Some);
        texts
            .into_iter()
            .chain(tags)
            .flatten()
            .any(|text| glob_match(&query, &text.to_lowercase()))
    }

    /// A 4.0 package's `upgradesFrom` / `downgradesTo`: the versions it may replace or be
    /// replaced by (`*` is any); older packaging versions name none.
    pub fn version_list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    }
}

/// The package's template field, read through one accessor.
trait TemplateField {
    fn pointer_template(&self) -> Option<&str>;
}

impl TemplateField for Map<String, Value> {
    fn pointer_template(&self) -> Option<&str> {
        self.get("marathon")?.get("v2AppMustacheTemplate")?.as_str()
    }
}

fn decode_template(base64: &str) -> Result<String, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64.trim())
        .map_err(|e| format!("marathon.v2AppMustacheTemplate is not base64: {e}"))?;
    if bytes.len() > MAX_TEMPLATE {
        return Err("marathon.v2AppMustacheTemplate is larger than 1 MiB".into());
    }
    String::from_utf8(bytes).map_err(|_| "marathon.v2AppMustacheTemplate is not UTF-8".into())
}

fn collect_urls(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if s.starts_with("http://") || s.starts_with("https://") => {
            out.push(s.clone())
        }
        Value::Array(items) => items.iter().for_each(|v| collect_urls(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_urls(v, out)),
        _ => {}
    }
}

/// `pattern` with `*` as any text against `text`; without a `*`, a substring match.
fn glob_match(pattern: &str, text: &str) -> bool {
    if !pattern.contains('*') {
        return text.contains(pattern);
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text.ends_with(last) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// The packages of one repository, read from its JSON.
pub fn parse_repository(bytes: &[u8]) -> Result<Vec<Arc<Package>>, String> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the repository is not JSON: {e}"))?;
    let Value::Object(mut repository) = value else {
        return Err("the repository has no `packages` list".into());
    };
    let Some(Value::Array(packages)) = repository.remove("packages") else {
        return Err("the repository has no `packages` list".into());
    };
    let mut out = Vec::with_capacity(packages.len());
    for package in packages {
        out.push(Arc::new(Package::from_json(package)?));
    }
    let mut seen = std::collections::HashSet::new();
    for p in &out {
        if !seen.insert((&p.name, &p.version)) {
            return Err(format!(
                "package {:?} version {:?} is listed twice",
                p.name, p.version
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, version: &str, release: u64) -> Value {
        json!({"packagingVersion": "4.0", "name": name, "version": version,
            "releaseVersion": release, "maintainer": "m@example.com",
            "description": "A web server", "tags": ["http", "Web"],
            "upgradesFrom": ["*"], "downgradesTo": ["0.1.0"],
            "resource": {"images": {"icon-small": "https://example.com/s.png"},
                "assets": {"uris": {"jar": "http://example.com/a.jar", "not": "ftp://x"}}},
            "marathon": {"v2AppMustacheTemplate":
                base64::engine::general_purpose::STANDARD.encode("{\"id\": \"{{service.name}}\"}")}})
    }

    #[test]
    fn a_repository_is_read_with_its_packages_checked() {
        let repo = json!({"packages": [package("web", "1.0", 1), package("web", "0.9", 0)]});
        let packages = parse_repository(repo.to_string().as_bytes()).unwrap();
        assert_eq!(packages.len(), 2);
        let p = &packages[0];
        assert_eq!(
            (p.name.as_str(), p.version.as_str(), p.release_version),
            ("web", "1.0", 1)
        );
        assert_eq!(p.template().unwrap(), "{\"id\": \"{{service.name}}\"}");
        assert_eq!(
            p.metadata()["images"]["icon-small"],
            "https://example.com/s.png"
        );
        assert!(p.metadata().get("marathon").is_none());
        assert!(p.describe_v2().get("marathon").is_some());
        assert_eq!(p.version_list("downgradesTo"), ["0.1.0"]);
        let mut urls = p.resource_urls();
        urls.sort();
        assert_eq!(
            urls,
            ["http://example.com/a.jar", "https://example.com/s.png"]
        );
    }

    #[test]
    fn a_malformed_package_refuses_the_whole_repository() {
        let cases = [
            (json!({"packages": {}}), "no `packages`"),
            (json!({"packages": [1]}), "not a JSON object"),
            (json!({"packages": [{"name": "Bad Name"}]}), "lowercase"),
            (
                json!({"packages": [{"name": "a", "packagingVersion": "5.0"}]}),
                "packagingVersion",
            ),
        ];
        for (repo, why) in cases {
            let err = parse_repository(repo.to_string().as_bytes()).unwrap_err();
            assert!(err.contains(why), "{err} / {why}");
        }
        let mut p = package("web", "1.0", 1);
        p["marathon"]["v2AppMustacheTemplate"] = json!("%%%");
        let err = parse_repository(json!({"packages": [p]}).to_string().as_bytes()).unwrap_err();
        assert!(err.contains("base64"), "{err}");
        let mut p = package("web", "1.0", 1);
        p.as_object_mut().unwrap().remove("releaseVersion");
        assert!(parse_repository(json!({"packages": [p]}).to_string().as_bytes()).is_err());
        let twice = json!({"packages": [package("web", "1.0", 1), package("web", "1.0", 2)]});
        assert!(parse_repository(twice.to_string().as_bytes())
            .unwrap_err()
            .contains("twice"));
        assert!(parse_repository(b"not json").is_err());
    }

    #[test]
    fn search_matches_name_description_and_tags() {
        let p = Package::from_json(package("web-server", "1.0", 1)).unwrap();
        for hit in [
            "", "web", "WEB", "server", "http", "w*r", "*server", "web*", "a web",
        ] {
            assert!(p.matches(hit), "{hit}");
        }
        for miss in ["kafka", "x*", "*z", "server*web"] {
            assert!(!p.matches(miss), "{miss}");
        }
    }

    #[test]
    fn names_follow_universes_rule() {
        for ok in ["a", "hello-world", "a1"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
