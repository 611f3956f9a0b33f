//! A package's Marathon app: rendered from its template with the resolved options and marked
//! with the `DCOS_PACKAGE_*` labels; and read back from those labels, so `list`,
//! `uninstall` and `/cosmos/service/*` work from Marathon's state alone (a restart or another
//! master's Cosmos sees the same installs).

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::error::CosmosError;
use crate::mustache;
use crate::options;
use crate::universe::Package;

/// The package's name.
pub const NAME_LABEL: &str = "DCOS_PACKAGE_NAME";
/// The package's version.
pub const VERSION_LABEL: &str = "DCOS_PACKAGE_VERSION";
/// The URI of the repository it came from.
pub const SOURCE_LABEL: &str = "DCOS_PACKAGE_SOURCE";
/// Base64 of its list-style metadata.
pub const METADATA_LABEL: &str = "DCOS_PACKAGE_METADATA";
/// Base64 of the storage envelope holding the whole package.
pub const DEFINITION_LABEL: &str = "DCOS_PACKAGE_DEFINITION";
/// Base64 of the options the user gave.
pub const OPTIONS_LABEL: &str = "DCOS_PACKAGE_OPTIONS";

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(value.to_string())
}

fn unb64(text: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A Marathon app id as Cosmos passes it on: absolute, path segments of lowercase letters,
/// digits, dashes and dots (Marathon's rule), so it can stand in a Marathon URL.
pub fn app_path(id: &str) -> Result<String, CosmosError> {
    let path = if id.starts_with('/') {
        id.to_string()
    } else {
        format!("/{id}")
    };
    let ok = path.len() <= 512
        && path[1..].split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        });
    if !ok {
        return Err(CosmosError::new(
            "InvalidAppId",
            format!("App id [{id}] is not a Marathon app id: path segments of lowercase letters, digits, '-' and '.'"),
        )
        .data(json!({"appId": id})));
    }
    Ok(path)
}

/// Strings as JSON writes them without the quotes, everywhere in `value`: Cosmos renders
/// templates without HTML escaping and with option strings JSON-encoded, so a value with
/// quotes or backslashes stays one JSON string in the rendered app.
fn json_encoded(value: &Value) -> Value {
    match value {
        Value::String(s) => {
            let quoted = Value::String(s.clone()).to_string();
            Value::String(quoted[1..quoted.len() - 1].to_string())
        }
        Value::Array(items) => Value::Array(items.iter().map(json_encoded).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), json_encoded(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The storage envelope of `DCOS_PACKAGE_DEFINITION`: the package's JSON, gzipped (it can
/// be large, and Marathon keeps labels in ZooKeeper), with its media type.
fn envelope(package: &Package) -> Value {
    use std::io::Write as _;
    let json = Value::Object(package.json().clone()).to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let zipped = gz
        .write_all(json.as_bytes())
        .and_then(|()| gz.finish())
        .expect("gzip into memory cannot fail");
    json!({
        "metadata": {"Content-Type": package.media_type(), "Content-Encoding": "gzip"},
        "data": base64::engine::general_purpose::STANDARD.encode(zipped),
    })
}

/// The package in a storage envelope, gzipped or not.
fn open_envelope(envelope: &Value) -> Option<Package> {
    use std::io::Read as _;
    let data = envelope.get("data")?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()?;
    let gzipped = envelope.pointer("/metadata/Content-Encoding") == Some(&json!("gzip"));
    let json = if gzipped {
        let mut out = Vec::new();
        // A label is small; a gzip bomb stops at the limit.
        flate2::read::GzDecoder::new(bytes.as_slice())
            .take(crate::universe::MAX_PACKAGE as u64)
            .read_to_end(&mut out)
            .ok()?;
        out
    } else {
        bytes
    };
    Package::from_json(serde_json::from_slice(&json).ok()?).ok()
}

/// The rendered app of a package and the options it was rendered with.
pub struct Rendered {
    /// The Marathon app.
    pub app: Map<String, Value>,
    /// The defaults with the user's options over them.
    pub resolved: Map<String, Value>,
}

/// Renders `package`'s app with `user` options; `None` if it has no app (a CLI-only
/// package). `source` is the URI of its repository; `app_id` replaces the template's id.
pub fn render(
    package: &Package,
    source: &str,
    user: &Map<String, Value>,
    app_id: Option<&str>,
) -> Result<Option<Rendered>, CosmosError> {
    let resolved = options::resolve(package.config(), user)?;
    let Some(template) = package.template() else {
        return Ok(None);
    };
    let mut scope = resolved.clone();
    if let Some(resource) = package.get("resource") {
        scope.insert("resource".into(), resource.clone());
    }
    let not_json = |why: String| {
        CosmosError::new(
            "PackageFileNotJson",
            format!("Package file [marathon.json.mustache] does not render to JSON: {why}"),
        )
        .data(json!({"fileName": "marathon.json.mustache", "parseError": why}))
    };
    let compiled = mustache::compile(&template).map_err(|e| not_json(e.to_string()))?;
    let text = compiled.render(&json_encoded(&Value::Object(scope)), mustache::Escape::None);
    let rendered: Value = serde_json::from_str(&text).map_err(|e| not_json(e.to_string()))?;
    let Value::Object(mut app) = rendered else {
        return Err(CosmosError::new(
            "MarathonTemplateMustBeJsonObject",
            "Rendered Marathon JSON must be a JSON object",
        ));
    };
    let mut labels = match app.remove("labels") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(labels)) if labels.values().all(Value::is_string) => labels,
        Some(_) => {
            return Err(CosmosError::new(
                "PackageFileSchemaMismatch",
                "The rendered app's `labels` is not an object of strings",
            ))
        }
    };
    let envelope = envelope(package);
    for (label, value) in [
        (METADATA_LABEL, b64(&package.metadata())),
        (NAME_LABEL, package.name.clone()),
        (VERSION_LABEL, package.version.clone()),
        (SOURCE_LABEL, source.to_string()),
        (OPTIONS_LABEL, b64(&Value::Object(user.clone()))),
        (DEFINITION_LABEL, b64(&envelope)),
    ] {
        labels.insert(label.into(), Value::String(value));
    }
    app.insert("labels".into(), Value::Object(labels));
    // The id Marathon will answer with (absolute), so install and list agree.
    let id = match app_id {
        Some(id) => Some(id),
        None => app.get("id").and_then(Value::as_str),
    };
    if let Some(id) = id.map(app_path).transpose()? {
        app.insert("id".into(), Value::String(id));
    }
    Ok(Some(Rendered { app, resolved }))
}

/// A package install as its Marathon app records it.
#[derive(Debug)]
pub struct Installed {
    /// The app's id.
    pub app_id: String,
    /// `DCOS_PACKAGE_NAME`.
    pub name: String,
    /// `DCOS_PACKAGE_VERSION`.
    pub version: String,
    /// The list-style metadata (`DCOS_PACKAGE_METADATA`; name and version if unreadable).
    pub metadata: Value,
    /// The whole package (`DCOS_PACKAGE_DEFINITION`), if the app carries it.
    pub package: Option<Package>,
    /// The options the user gave (`DCOS_PACKAGE_OPTIONS`).
    pub user_options: Map<String, Value>,
    /// The URI of the repository it came from (`DCOS_PACKAGE_SOURCE`).
    pub source: Option<String>,
}

/// Reads a Marathon app's package labels; `None` for an app no package installed.
pub fn installed(app: &Value) -> Option<Installed> {
    let labels = app.get("labels")?;
    let label = |key: &str| labels.get(key).and_then(Value::as_str);
    let name = label(NAME_LABEL)?.to_string();
    let version = label(VERSION_LABEL).unwrap_or_default().to_string();
    let app_id = app.get("id")?.as_str()?.to_string();
    let package = label(DEFINITION_LABEL)
        .and_then(unb64)
        .and_then(|envelope| open_envelope(&envelope));
    // As Cosmos: the metadata of the stored package, else of its label; an app with
    // neither is not listed as a package.
    let metadata = match &package {
        Some(p) => p.metadata(),
        None => label(METADATA_LABEL)
            .and_then(unb64)
            .filter(Value::is_object)?,
    };
    let user_options = label(OPTIONS_LABEL)
        .and_then(unb64)
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    Some(Installed {
        source: label(SOURCE_LABEL).map(str::to_string),
        app_id,
        name,
        version,
        metadata,
        package,
        user_options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(template: &str) -> Package {
        Package::from_json(json!({
            "packagingVersion": "4.0", "name": "web", "version": "1.0", "releaseVersion": 3,
            "maintainer": "m", "description": "d", "tags": [],
            "resource": {"assets": {"uris": {"tgz": "http://example.com/web.tgz"}}},
            "config": {"type": "object", "properties": {"service": {"type": "object",
                "properties": {"name": {"type": "string", "default": "web"},
                    "note": {"type": "string", "default": "plain"},
                    "on": {"type": "boolean", "default": true}}}}},
            "marathon": {"v2AppMustacheTemplate":
                base64::engine::general_purpose::STANDARD.encode(template)},
        }))
        .unwrap()
    }

    const TEMPLATE: &str = r#"{"id": "/{{service.name}}", "cmd": "echo {{service.note}}",
        "env": {"ON": "{{service.on}}"}, "uris": ["{{resource.assets.uris.tgz}}"],
        "labels": {"DCOS_SERVICE_NAME": "{{service.name}}", "DCOS_PACKAGE_NAME": "forged"}}"#;

    #[test]
    fn an_app_is_rendered_with_the_package_labels_and_read_back() {
        let p = package(TEMPLATE);
        let user = json!({"service": {"note": "say \"hi\" \\ <b>"}});
        let rendered = render(&p, "builtin:universe", user.as_object().unwrap(), None)
            .unwrap()
            .unwrap();
        let app = Value::Object(rendered.app);
        assert_eq!(app["id"], "/web");
        assert_eq!(app["cmd"], "echo say \"hi\" \\ <b>");
        assert_eq!(app["env"]["ON"], "true");
        assert_eq!(app["uris"][0], "http://example.com/web.tgz");
        assert_eq!(app["labels"]["DCOS_SERVICE_NAME"], "web");
        assert_eq!(app["labels"][NAME_LABEL], "web", "the package's labels win");
        assert_eq!(app["labels"][SOURCE_LABEL], "builtin:universe");
        assert_eq!(rendered.resolved["service"]["name"], "web");

        let back = installed(&app).unwrap();
        assert_eq!(
            (
                back.app_id.as_str(),
                back.name.as_str(),
                back.version.as_str()
            ),
            ("/web", "web", "1.0")
        );
        assert_eq!(back.metadata["name"], "web");
        assert_eq!(Value::Object(back.user_options), user);
        assert_eq!(back.package.unwrap(), p);
        assert!(installed(&json!({"id": "/x", "labels": {}})).is_none());
        // Labels an older Cosmos wrote: an envelope without gzip; only the metadata label;
        // neither (not listed).
        let plain = json!({"metadata": {"Content-Type": p.media_type()},
            "data": base64::engine::general_purpose::STANDARD
                .encode(Value::Object(p.json().clone()).to_string())});
        let older = json!({"id": "/web", "labels": {NAME_LABEL: "web", VERSION_LABEL: "1.0",
            DEFINITION_LABEL: b64(&plain)}});
        assert_eq!(installed(&older).unwrap().package.unwrap(), p);
        let metadata_only = json!({"id": "/web", "labels": {NAME_LABEL: "web",
            METADATA_LABEL: b64(&json!({"name": "web", "description": "d"}))}});
        let back = installed(&metadata_only).unwrap();
        assert!(back.package.is_none());
        assert_eq!(back.metadata["description"], "d");
        assert!(installed(&json!({"id": "/web", "labels": {NAME_LABEL: "web"}})).is_none());
    }

    #[test]
    fn an_app_id_replaces_the_templates_and_is_checked() {
        let p = package(TEMPLATE);
        let rendered = render(&p, "u", &Map::new(), Some("team/web-2"))
            .unwrap()
            .unwrap();
        assert_eq!(rendered.app["id"], "/team/web-2");
        for bad in ["", "/", "a//b", "UP", "a/../b", "a b", "a?x=1"] {
            assert_eq!(app_path(bad).unwrap_err().kind, "InvalidAppId", "{bad:?}");
        }
    }

    #[test]
    fn templates_that_do_not_render_an_object_are_errors() {
        let cases = [
            ("[1]", "MarathonTemplateMustBeJsonObject"),
            ("{\"id\": ", "PackageFileNotJson"),
            ("{{#a}}", "PackageFileNotJson"),
            (r#"{"labels": {"a": 1}}"#, "PackageFileSchemaMismatch"),
        ];
        for (template, kind) in cases {
            let err = render(&package(template), "u", &Map::new(), None)
                .err()
                .unwrap();
            assert_eq!(err.kind, kind, "{template}");
        }
        let bad = json!({"service": {"on": "yes"}});
        let err = render(&package(TEMPLATE), "u", bad.as_object().unwrap(), None)
            .err()
            .unwrap();
        assert_eq!(err.kind, "JsonSchemaMismatch");
    }
}
